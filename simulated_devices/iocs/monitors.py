"""I0 ion chamber in front of the sample.

PV: ``{P}I0:Current_RBV`` (A). Between exposures it follows the beam's fluctuations; each
detector exposure sets it to the flux integrated during that exposure, so the value read
after a frame normalises that frame.

EXAMPLE::

    trxrd sim --list-pvs | grep I0
"""
from __future__ import annotations

from caproto.server import PVGroup

from ._common import readback


class IonChamberIOC(PVGroup):
    current = readback("Current_RBV", "Ion chamber current (A)", units="A", precision=12)

    def __init__(self, *args, model, **kwargs):
        self.model = model
        super().__init__(*args, **kwargs)

    @current.scan(period=0.5)
    async def current(self, instance, async_lib):
        if not self.model.exposing:
            self.model.draw_flux()
        await instance.write(self.model.i0_current_a())

    async def publish(self) -> None:
        """Called by a detector after an exposure: report the flux it integrated."""
        await self.current.write(self.model.i0_current_a())
