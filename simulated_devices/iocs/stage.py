"""Sample stage: x (across the jet / raster fast axis) and y, motor records in um.

PVs: ``{P}SMP:x``, ``{P}SMP:y``.

EXAMPLE::

    trxrd sim --list-pvs | grep SMP
"""
from __future__ import annotations

from caproto.server import PVGroup

from .motor_record import configure_motor, motor_property


class SampleStageIOC(PVGroup):
    x = motor_property("x", "sample stage x", precision=2)
    y = motor_property("y", "sample stage y", precision=2)

    def __init__(self, *args, model, **kwargs):
        self.model = model
        super().__init__(*args, **kwargs)

    async def _configure(self, instance, axis: str) -> None:
        s = self.model.cfg["stage"]

        def on_position(dial_um: float) -> None:
            setattr(self.model, f"stage_{axis}_um", dial_um)

        await configure_motor(instance, egu="um", velocity=s["velocity_um_s"],
                              travel=(s[f"{axis}_low_um"], s[f"{axis}_high_um"]),
                              position=getattr(self.model, f"stage_{axis}_um"),
                              description=f"sample {axis}", resolution=0.01, home_dial=0.0,
                              on_position=on_position)

    @x.startup
    async def x(self, instance, async_lib):
        await self._configure(instance, "x")

    @y.startup
    async def y(self, instance, async_lib):
        await self._configure(instance, "y")
