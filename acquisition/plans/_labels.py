"""Soft signals that label each event of a plan (role of the frame, requested value, index),
with units in ``describe()``."""
from __future__ import annotations

from ophyd import Signal


class LabelSignal(Signal):
    def __init__(self, *, name, value=0, units: str = "", **kwargs):
        super().__init__(name=name, value=value, kind="normal", **kwargs)
        self.units = units

    def describe(self):
        desc = super().describe()
        if self.units:
            desc[self.name]["units"] = self.units
        return desc
