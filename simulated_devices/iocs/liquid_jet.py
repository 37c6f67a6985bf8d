"""Liquid jet: peristaltic pump, flow sensor, reservoir and back pressure.

PVs: ``{P}JET:FlowRate`` (mL/min), ``FlowRate_RBV``, ``Run`` (Stop/Run), ``Flowing_RBV``,
``Reservoir_RBV`` (mL), ``Pressure_RBV`` (bar).

EXAMPLE::

    trxrd sim --list-pvs | grep JET
"""
from __future__ import annotations

from caproto import ChannelType
from caproto.server import PVGroup, pvproperty

from ._common import checked, readback


class LiquidJetIOC(PVGroup):
    flow_rate = pvproperty(name="FlowRate", value=0.0, units="mL/min", precision=2,
                           doc="Pump flow set point (mL/min)")
    flow_rate_rbv = readback("FlowRate_RBV", "Measured flow (mL/min)", units="mL/min", precision=2)
    run = pvproperty(name="Run", value="Stop", dtype=ChannelType.ENUM, enum_strings=("Stop", "Run"),
                     doc="Peristaltic pump on/off")
    flowing = pvproperty(name="Flowing_RBV", value=0, dtype=int, read_only=True,
                         doc="Flow sensor: 1 when a stable jet flows")
    reservoir = readback("Reservoir_RBV", "Liquid left in the reservoir (mL)", units="mL", precision=3)
    pressure = readback("Pressure_RBV", "Back pressure of the jet (bar)", units="bar", precision=3)

    def __init__(self, *args, model, **kwargs):
        self.model = model
        super().__init__(*args, **kwargs)

    @flow_rate.startup
    async def flow_rate(self, instance, async_lib):
        await instance.write_metadata(lower_ctrl_limit=0.0,             # DRVL/DRVH
                                      upper_ctrl_limit=self.model.cfg["liquid_jet"]["max_flow_ml_min"])
        await instance.write(self.model.jet.setpoint_ml_min)

    @flow_rate.putter
    async def flow_rate(self, instance, value):
        value = checked(value, "JET:FlowRate", low=0.0,
                        high=self.model.cfg["liquid_jet"]["max_flow_ml_min"], unit="mL/min")
        self.model.jet.setpoint_ml_min = value
        return value

    @run.putter
    async def run(self, instance, value):
        self.model.advance()
        self.model.jet.run = value == "Run"
        return value

    @flow_rate_rbv.scan(period=0.05)
    async def flow_rate_rbv(self, instance, async_lib):
        m = self.model
        m.advance()
        flow = round(m.jet.flow_ml_min, 4)
        if flow != instance.value:
            await instance.write(flow)
        if int(m.jet.flowing) != self.flowing.value:
            await self.flowing.write(int(m.jet.flowing))
        await self.reservoir.write(round(m.jet.reservoir_ml, 4))
        await self.pressure.write(round(m.jet.pressure_bar, 4))
