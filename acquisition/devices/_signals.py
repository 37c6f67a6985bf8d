"""Signals shared by the device modules."""
from __future__ import annotations

from ophyd import EpicsSignal, EpicsSignalRO
from ophyd.utils.errors import LimitError

from ...validation import finite


class UnitReadback(EpicsSignalRO):
    """Read-only PV whose ``describe()`` always carries units (also against an IOC that
    does not publish EGU)."""

    def __init__(self, *args, unit: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.unit = unit

    def describe(self):
        desc = super().describe()
        desc[self.name]["units"] = self.unit
        return desc


class CheckedSignal(EpicsSignal):
    """An ``EpicsSignal`` that refuses non-finite values and values outside [low, high]
    (``unit`` for the messages and ``describe()``) in ``put()`` and ``set()``, before
    anything is sent to the IOC."""

    def __init__(self, *args, low: float | None = None, high: float | None = None,
                 unit: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.low, self.high, self.unit = low, high, unit

    def check_value(self, value):
        v = finite(value, self.name, unit=self.unit)
        if (self.low is not None and v < self.low) or (self.high is not None and v > self.high):
            raise LimitError(f"{self.name} = {v} {self.unit} is outside [{self.low}, {self.high}] {self.unit}")
        super().check_value(value)

    def set(self, value, **kwargs):
        self.check_value(value)   # EpicsSignal.set would only check inside its worker thread
        return super().set(value, **kwargs)

    def describe(self):
        desc = super().describe()
        if self.unit:
            desc[self.name]["units"] = self.unit
        return desc

