"""Argument checks shared by devices and plans: numbers that must be finite, inside limits and
in stated units, and counts that must be whole. Every message names the argument and its unit,
so bad input fails with one clear line before anything moves or exposes.

EXAMPLE::

    from trxrd.validation import count, finite
    finite(12.5, "flow", low=0.0, strict=True, unit="mL/min")     # 12.5
    finite(float("nan"), "delay", unit="ps")     # ValueError: delay must be finite, got nan
    count(3, "frames_per_point")                 # 3
    count(2.5, "repeats")                        # ValueError: repeats must be an integer >= 1
"""
from __future__ import annotations

import math
import numbers

__all__ = ["finite", "count"]


def finite(value, what: str, *, low: float | None = None, high: float | None = None,
           strict: bool = False, unit: str = "") -> float:
    """*value* as a float, refusing NaN/inf, non-numbers and values outside [low, high].

    Parameters
    ----------
    value : number
        What the user gave.
    what : str
        Its name in the error message.
    low, high : float, optional
        Allowed range (inclusive; ``strict`` excludes ``low``).
    strict : bool
        ``low`` itself is refused.
    unit : str
        Unit for the message.

    Returns
    -------
    float

    EXAMPLE::

        finite("3.5", "exposure", low=0, strict=True, unit="s")     # 3.5
    """
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {value!r}") from None
    u = f" {unit}" if unit else ""
    if not math.isfinite(v):
        raise ValueError(f"{what} must be finite, got {value!r}")
    if low is not None and (v <= low if strict else v < low):
        raise ValueError(f"{what} = {v}{u} must be {'>' if strict else '>='} {low}{u}")
    if high is not None and v > high:
        raise ValueError(f"{what} = {v}{u} must be <= {high}{u}")
    return v


def count(value, what: str, low: int = 1) -> int:
    """*value* as an int if it is a whole number >= *low* (``2.0`` passes, ``2.5`` and
    ``True`` do not), else ``ValueError`` naming *what*.

    EXAMPLE::

        count(2.0, "frames")      # 2
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or int(value) != value or value < low:
        raise ValueError(f"{what} must be an integer >= {low}, got {value!r}")
    return int(value)
