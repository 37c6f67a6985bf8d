"""Syringe pump that injects the precursor into the hot flask.

PVs: ``{P}SYR:Rate`` (mL/min), ``Volume`` (mL to deliver), ``Infuse`` (start), ``Stop``,
``Infusing_RBV``, ``Delivered_RBV`` (mL).

EXAMPLE::

    trxrd sim --list-pvs | grep SYR
"""
from __future__ import annotations

import time

from caproto.server import PVGroup, pvproperty

from ._common import checked, readback


class SyringePumpIOC(PVGroup):
    rate = pvproperty(name="Rate", value=10.0, units="mL/min", precision=3,
                      doc="Infusion rate (mL/min)")
    volume = pvproperty(name="Volume", value=1.0, units="mL", precision=3,
                        doc="Volume to deliver on the next Infuse (mL)")
    infuse = pvproperty(name="Infuse", value=0, dtype=int, doc="Write 1 to start infusing")
    stop = pvproperty(name="Stop", value=0, dtype=int, doc="Write 1 to stop")
    infusing = pvproperty(name="Infusing_RBV", value=0, dtype=int, read_only=True,
                          doc="1 while infusing")
    delivered = readback("Delivered_RBV", "Volume delivered since start-up (mL)", units="mL")

    def __init__(self, *args, model, **kwargs):
        self.model = model
        self._target_ml = 0.0
        self._last = None
        super().__init__(*args, **kwargs)

    @rate.startup
    async def rate(self, instance, async_lib):
        cfg = self.model.cfg["syringe_pump"]
        await instance.write_metadata(lower_ctrl_limit=1e-6, upper_ctrl_limit=cfg["max_rate_ml_min"])  # DRVL/DRVH
        await self.volume.write_metadata(lower_ctrl_limit=0.0, upper_ctrl_limit=cfg["syringe_ml"])

    @rate.putter
    async def rate(self, instance, value):
        return checked(value, "SYR:Rate", low=1e-6,
                       high=self.model.cfg["syringe_pump"]["max_rate_ml_min"], unit="mL/min")

    @volume.putter
    async def volume(self, instance, value):
        return checked(value, "SYR:Volume", low=0.0, high=self.model.cfg["syringe_pump"]["syringe_ml"],
                       unit="mL")

    @infuse.putter
    async def infuse(self, instance, value):
        if value and not self.infusing.value:
            left = self.model.cfg["syringe_pump"]["syringe_ml"] - self.model.injected_ml
            if self.volume.value > left + 1e-9:
                raise ValueError(f"SYR:Infuse: {self.volume.value} mL requested, {left:.3f} mL left")
            self._target_ml = self.model.injected_ml + self.volume.value
            self._last = time.time()
            if self.model.injection_start is None and self.volume.value > 0:
                self.model.injection_start = self._last   # reaction time zero: first drop
            await self.infusing.write(1)
        return 0

    @stop.putter
    async def stop(self, instance, value):
        if value:
            await self.infusing.write(0)
        return 0

    @delivered.scan(period=0.02)
    async def delivered(self, instance, async_lib):
        if not self.infusing.value:
            return
        now = time.time()
        dv = self.rate.value / 60.0 * (now - self._last)
        self._last = now
        self.model.injected_ml = min(self.model.injected_ml + dv, self._target_ml)
        await instance.write(self.model.injected_ml)
        if self.model.injected_ml >= self._target_ml - 1e-12:
            await self.infusing.write(0)
