"""Temperature controller of the heating cell (or heating mantle): PID on a K-type
thermocouple, with a ramped set point.

PVs: ``{P}TC:Setpoint``, ``Setpoint_RBV`` (working, ramped set point), ``Temperature_RBV``
(C), ``RampRate`` (C/min, 0 = step), ``Output_RBV`` (%), ``Enable``, ``P``, ``I``, ``D``.

EXAMPLE::

    trxrd sim --list-pvs | grep TC:
"""
from __future__ import annotations

from caproto import ChannelType
from caproto.server import PVGroup, pvproperty

from ._common import checked, readback


class HeatingCellIOC(PVGroup):
    setpoint = pvproperty(name="Setpoint", value=25.0, units="C", precision=2,
                          doc="Temperature set point (C)")
    setpoint_rbv = readback("Setpoint_RBV", "Working set point, ramping toward Setpoint (C)",
                            value=25.0, units="C", precision=2)
    temperature = readback("Temperature_RBV", "Thermocouple reading (C)", value=25.0, units="C",
                           precision=3)
    ramp_rate = pvproperty(name="RampRate", value=0.0, units="C/min", precision=2,
                           doc="Set-point ramp rate (C/min); 0 jumps to the set point")
    output = readback("Output_RBV", "Heater output (%)", units="%", precision=1)
    enable = pvproperty(name="Enable", value="Off", dtype=ChannelType.ENUM, enum_strings=("Off", "On"),
                        doc="Closed-loop control on/off")
    p = pvproperty(name="P", value=0.0, precision=4, doc="Proportional gain (output fraction per C)")
    i = pvproperty(name="I", value=0.0, precision=5, doc="Integral gain (output fraction per C s)")
    d = pvproperty(name="D", value=0.0, precision=4, doc="Derivative gain (output fraction per C/s)")

    def __init__(self, *args, model, **kwargs):
        self.model = model
        super().__init__(*args, **kwargs)

    @property
    def cell(self):
        return self.model.cell

    @setpoint.startup
    async def setpoint(self, instance, async_lib):
        cfg = self.model.cfg["heating_cell"]
        await instance.write_metadata(lower_ctrl_limit=cfg["ambient_c"] - 25.0,      # DRVL/DRVH
                                      upper_ctrl_limit=cfg["max_setpoint_c"])
        await self.ramp_rate.write_metadata(lower_ctrl_limit=0.0, upper_ctrl_limit=cfg["max_ramp_c_min"])
        await instance.write(self.cell.setpoint_c)
        await self.p.write(self.cell.p)
        await self.i.write(self.cell.i)
        await self.d.write(self.cell.d)

    @setpoint.putter
    async def setpoint(self, instance, value):
        cfg = self.model.cfg["heating_cell"]
        value = checked(value, "TC:Setpoint", low=cfg["ambient_c"] - 25.0,
                        high=cfg["max_setpoint_c"], unit="C")
        self.model.advance()
        self.cell.setpoint_c = value
        return value

    @ramp_rate.putter
    async def ramp_rate(self, instance, value):
        value = checked(value, "TC:RampRate", low=0.0,
                        high=self.model.cfg["heating_cell"]["max_ramp_c_min"], unit="C/min")
        self.model.advance()
        if value > 0 and self.cell.ramp_c_min == 0:
            self.cell.working_setpoint_c = self.cell.sensor_c   # ramp from where we are
        self.cell.ramp_c_min = value
        return value

    @enable.putter
    async def enable(self, instance, value):
        self.model.advance()
        on = value == "On"
        if on and not self.cell.enabled:
            self.cell.working_setpoint_c = self.cell.sensor_c if self.cell.ramp_c_min > 0 else self.cell.setpoint_c
        self.cell.enabled = on
        return value

    @p.putter
    async def p(self, instance, value):
        self.cell.p = checked(value, "TC:P", low=0.0)
        return value

    @i.putter
    async def i(self, instance, value):
        self.cell.i = checked(value, "TC:I", low=0.0)
        return value

    @d.putter
    async def d(self, instance, value):
        self.cell.d = checked(value, "TC:D", low=0.0)
        return value

    @temperature.scan(period=0.05)
    async def temperature(self, instance, async_lib):
        self.model.advance()
        await instance.write(self.cell.reading_c())
        await self.setpoint_rbv.write(self.cell.working_setpoint_c)
        await self.output.write(100.0 * self.cell.output)
