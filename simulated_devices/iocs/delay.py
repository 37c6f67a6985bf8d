"""Pump-probe delay: the optical delay stage (motor record, mm) and the electronic delay
generator that shifts the laser trigger relative to the X-ray bunch.

PVs: ``{P}DLY:m1`` (motor record), ``{P}DG:Delay`` (s), ``{P}DG:Delay_RBV``, ``{P}DG:Enable``.

EXAMPLE::

    trxrd sim --list-pvs | grep -E 'DLY|DG'
"""
from __future__ import annotations

from caproto import ChannelType
from caproto.server import PVGroup, pvproperty

from ._common import checked
from .motor_record import configure_motor, motor_property


class DelayStageIOC(PVGroup):
    """Optical delay stage in the pump path (retro-reflector, mm)."""

    m1 = motor_property("m1", "optical delay stage")

    def __init__(self, *args, model, **kwargs):
        self.model = model
        super().__init__(*args, **kwargs)

    @m1.startup
    async def m1(self, instance, async_lib):
        d = self.model.cfg["delay"]

        def on_position(dial_mm: float) -> None:
            self.model.stage_mm = dial_mm

        await configure_motor(instance, egu="mm", velocity=d["stage_velocity_mm_s"],
                              travel=(d["stage_low_mm"], d["stage_high_mm"]),
                              position=self.model.stage_mm, description="pump delay stage",
                              resolution=1e-4, on_position=on_position)


class DelayGeneratorIOC(PVGroup):
    """Electronic delay of the laser trigger (0 .. 10 us, 10 ps steps)."""

    delay = pvproperty(name="Delay", value=0.0, units="s", precision=12,
                       doc="Laser trigger delay relative to the X-ray bunch (s)")
    delay_rbv = pvproperty(name="Delay_RBV", value=0.0, units="s", precision=12, read_only=True,
                           doc="Applied delay, rounded to the generator resolution (s)")
    enable = pvproperty(name="Enable", value="Off", dtype=ChannelType.ENUM, enum_strings=("Off", "On"),
                        doc="Apply the electronic delay")

    def __init__(self, *args, model, **kwargs):
        self.model = model
        super().__init__(*args, **kwargs)

    @delay.startup
    async def delay(self, instance, async_lib):
        await instance.write_metadata(lower_ctrl_limit=0.0,             # DRVL/DRVH
                                      upper_ctrl_limit=self.model.cfg["delay"]["electronic_max_s"])

    @delay.putter
    async def delay(self, instance, value):
        d = self.model.cfg["delay"]
        value = checked(value, "DG:Delay", low=0.0, high=d["electronic_max_s"], unit="s")
        res = d["electronic_resolution_s"]
        applied = round(value / res) * res
        self.model.electronic_delay_s = applied
        await self.delay_rbv.write(applied)
        return value

    @enable.putter
    async def enable(self, instance, value):
        self.model.electronic_enabled = value == "On"
        return value
