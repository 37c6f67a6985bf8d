"""Small helpers shared by the instrument PVGroups."""
from __future__ import annotations

import math

from caproto import ChannelType
from caproto.server import get_pv_pair_wrapper, pvproperty

pv_with_rbv = get_pv_pair_wrapper(setpoint_suffix="", readback_suffix="_RBV")


def checked(value, what: str, *, low: float | None = None, high: float | None = None,
            unit: str = "") -> float:
    """Refuse NaN/inf and values outside [low, high] with a message that names the PV."""
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{what}: {value} is not a finite number")
    if low is not None and value < low:
        raise ValueError(f"{what}: {value} {unit} is below the minimum {low} {unit}")
    if high is not None and value > high:
        raise ValueError(f"{what}: {value} {unit} is above the maximum {high} {unit}")
    return value


def readback(name: str, doc: str, value=0.0, units: str = "", precision: int = 4, **kw) -> pvproperty:
    """A read-only process variable with engineering units."""
    return pvproperty(name=name, value=value, doc=doc, read_only=True, units=units,
                      precision=precision, **kw)


def long_string(name: str, doc: str, value: str = "", read_only: bool = False) -> pvproperty:
    """A char waveform long enough for file paths (areaDetector style)."""
    return pvproperty(name=name, value=value.ljust(256, "\x00"), doc=doc, dtype=ChannelType.CHAR, max_length=256,
                      report_as_string=False, read_only=read_only)
