"""I0 ion chamber in front of the sample.

PVs: ``{P}I0:Current_RBV`` (A). Like a scaler gated by the detector, each exposure sets it
to the flux integrated during that exposure and it holds that value, so the value read
after a frame normalises that frame; with no exposure for HOLD_S it follows the beam's
fluctuations again. ``{P}I0:BeamOn`` (simulation only: 0 dumps the X-ray beam, 1 brings it
back): without beam every frame is dark and the current reads 0 at once.

EXAMPLE::

    trxrd sim --list-pvs | grep I0
"""
from __future__ import annotations

import time

from caproto.server import PVGroup, pvproperty

from ._common import readback


HOLD_S = 2.0


class IonChamberIOC(PVGroup):
    current = readback("Current_RBV", "Ion chamber current (A)", units="A", precision=12)
    beam_on = pvproperty(name="BeamOn", value=1, doc="Simulation: the X-ray beam on (1) or dumped (0)")

    def __init__(self, *args, model, **kwargs):
        self.model = model
        self._last_exposure = -HOLD_S
        super().__init__(*args, **kwargs)

    @current.scan(period=0.5)
    async def current(self, instance, async_lib):
        if self.model.exposing or time.monotonic() - self._last_exposure < HOLD_S:
            return
        self.model.draw_flux()
        await instance.write(self.model.i0_current_a())

    @beam_on.putter
    async def beam_on(self, instance, value):
        if value not in (0, 1):
            raise ValueError(f"I0:BeamOn: {value} is not 0 (beam dumped) or 1 (beam on)")
        self.model.beam_on = bool(value)
        self.model.draw_flux()
        await self.current.write(self.model.i0_current_a())       # a beam dump reads at once
        return value

    async def publish(self, flux: float | None = None) -> None:
        """Called by a detector after an exposure: report the flux it integrated (*flux*: the mean
        flux factor of a multi-frame acquisition so far; default the last frame's)."""
        self._last_exposure = time.monotonic()
        current = self.model.i0_current_a() if flux is None else self.model.cfg["beam"]["i0_nominal_a"] * flux
        await self.current.write(current)
