"""Argument checks shared by devices and plans: numbers that must be finite, inside limits and
in stated units, and counts that must be whole. Every message names the argument and its unit,
so bad input fails with one clear line before anything moves or exposes.

EXAMPLE::

    from trxrd.validation import count, finite
    finite(12.5, "flow", low=0.0, strict=True, unit="mL/min")     # 12.5
    finite(float("nan"), "delay", unit="ps")     # ValueError: delay must be finite, got nan
    count(3, "frames_per_point")                 # 3
    count(2.5, "repeats")                        # ValueError: repeats must be an integer >= 1
    file_stem("../../zz")                        # '______zz': a name that stays in its folder
    inside("/data/live", "a1b2c3d4.json", "result file")     # /data/live/a1b2c3d4.json
"""
from __future__ import annotations

import math
import numbers
import os
import re
from pathlib import Path

import numpy as np

__all__ = ["finite", "count", "file_stem", "inside", "flag", "seed", "readables"]


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
    if isinstance(value, (bool, bytes, bytearray)):
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


MAX_COUNT = 1_000_000        # frames, repeats, readings: more is a typo, not a plan


def count(value, what: str, low: int = 1, high: int = MAX_COUNT) -> int:
    """*value* as an int if it is a whole number in [*low*, *high*] (``2.0`` passes, ``2.5``,
    ``True`` and ``10**20`` do not), else ``ValueError`` naming *what*.

    EXAMPLE::

        count(2.0, "frames")      # 2
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or int(value) != value or not low <= value <= high:
        raise ValueError(f"{what} must be an integer >= {low} (at most {high}), got {value!r}")
    return int(value)


_NOT_IN_A_STEM = re.compile(r"[^A-Za-z0-9_-]")


def file_stem(text, limit: int = 64) -> str:
    """A file name stem made from *text* (a run uid, a sample or run name from a document) that
    cannot leave its folder: every character but letters, digits, ``_`` and ``-`` becomes ``_``
    (so no ``/``, ``\\``, ``..``, NUL), at most *limit* characters, never empty.

    EXAMPLE::

        file_stem("3f2a9c1e")           # '3f2a9c1e'
        file_stem("../../etc/passwd")   # '______etc_passwd'
    """
    return _NOT_IN_A_STEM.sub("_", str(text))[:limit] or "_"


def inside(directory, name: str, what: str = "file") -> Path:
    """``directory / name``, refused with ``ValueError`` naming *what* unless it stays inside
    *directory* once ``..`` and symbolic links are resolved.

    EXAMPLE::

        inside("/data/live", "run.json")          # /data/live/run.json
        inside("/data/live", "../x.json")         # ValueError: ... outside /data/live
    """
    folder = Path(os.path.realpath(directory))
    if "\x00" in str(name):
        raise ValueError(f"{what} {str(name)!r} has a NUL character")
    path = Path(os.path.realpath(folder / str(name)))
    if path == folder or folder not in path.parents:
        raise ValueError(f"{what} {str(name)!r} would be outside {folder}")
    return path


def flag(value, what: str) -> bool:
    """*value* as a bool if it is one (``True``/``False``, numpy's too), else ``ValueError``
    naming *what*: ``"no"`` or ``None`` would otherwise count as a choice.

    EXAMPLE::

        flag(True, "shuffle")      # True
        flag("no", "shuffle")      # ValueError: shuffle must be True or False, got 'no'
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ValueError(f"{what} must be True or False, got {value!r}")


def seed(value, what: str = "seed") -> int | None:
    """A random seed: None or a whole number 0 .. 2**63 - 1, else ``ValueError`` naming *what*.

    EXAMPLE::

        seed(42)       # 42
    """
    if value is None:
        return None
    return count(value, what, low=0, high=2 ** 63 - 1)


def readables(devices, what: str = "detectors", *, empty_ok: bool = False) -> list:
    """*devices* as a list of readable devices (a ``name`` and ``read``/``describe``), else
    ``ValueError`` naming *what* and the culprit.

    EXAMPLE::

        readables([pilatus])      # [pilatus]
        readables("pilatus")      # ValueError: detectors must be a list of devices, e.g. [pilatus]
    """
    if isinstance(devices, (str, bytes, dict)) or not hasattr(devices, "__iter__"):
        raise ValueError(f"{what} must be a list of devices, e.g. [pilatus], got {devices!r:.80}")
    out = list(devices)
    if not out and not empty_ok:
        raise ValueError(f"{what}: give at least one, e.g. [pilatus]")
    for i, dev in enumerate(out):
        if not (isinstance(getattr(dev, "name", None), str) and callable(getattr(dev, "read", None))
                and callable(getattr(dev, "describe", None))):
            raise ValueError(f"{what}[{i}] is not a readable device: {dev!r:.80}")
    return out
