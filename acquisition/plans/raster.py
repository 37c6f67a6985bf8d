"""Raster of the sample stage under the beam (nano-diffraction maps): one frame per point on a
grid in um, snaking by default.

EXAMPLE::

    from trxrd.acquisition.plans.raster import raster_scan
    RE(raster_scan([pilatus], (-20, 20), (-10, 10), 5.0, stage=stage, i0=i0, md={"sample": s}))  # 9 x 5
"""
from __future__ import annotations

from collections.abc import Sequence

from bluesky import plans as bp
from bluesky.protocols import Readable
from bluesky.utils import MsgGenerator

from ... import datakeys as dk
from ...validation import finite, flag, readables
from .metadata import plan_md


def _axis(rng, step, axis, what):
    if isinstance(rng, (str, bytes, dict)) or not hasattr(rng, "__len__") or len(rng) != 2:
        raise ValueError(f"{what} must be (start, stop) in um, got {rng!r}")
    start, stop = (finite(v, what, unit="um") for v in rng)
    lo, hi = axis.limits
    for v in (start, stop):
        if hi > lo and not lo <= v <= hi:
            raise ValueError(f"{what}: {v} um is outside the stage limits {lo} .. {hi} um")
    if start != stop and step > abs(stop - start):
        raise ValueError(f"step_um = {step} um is longer than {what} ({start} .. {stop} um)")
    num = int(round(abs(stop - start) / step)) + 1
    if abs(abs(stop - start) - (num - 1) * step) > 1e-6 * step:
        raise ValueError(f"{what} ({start} .. {stop} um) is not a whole number of {step} um steps")
    return start, stop, num


def raster_scan(detectors: Sequence[Readable], x_range: tuple[float, float], y_range: tuple[float, float],
                step_um: float, snake: bool = True, *, stage, i0, md: dict | None = None) -> MsgGenerator[str]:
    """Frames on a grid of sample-stage positions, y the slow axis.

    Parameters
    ----------
    detectors : list of detectors
    x_range, y_range : (float, float)
        Start and stop (um, inclusive), inside the stage's limits, a whole number of steps apart.
    step_um : float
        Grid step (um).
    snake : bool
        Reverse every other x line.
    stage, i0 : SampleStage, I0Monitor
    md : dict, optional
        Metadata for the start document; must hold ``sample``.

    Returns
    -------
    MsgGenerator
        The plan (bluesky's ``grid_scan``), checked.

    EXAMPLE::

        RE(raster_scan([pilatus], (-20, 20), (-10, 10), 5.0, stage=stage, i0=i0, md={"sample": s}))
    """
    detectors = readables(detectors, "detectors")
    snake = flag(snake, "snake")
    step = finite(step_um, "step_um", low=0.0, strict=True, unit="um")
    x0, x1, nx = _axis(x_range, step, stage.x, "x_range")
    y0, y1, ny = _axis(y_range, step, stage.y, "y_range")
    meta = plan_md("raster_scan", {"detectors": [d.name for d in detectors], "x_range": [x0, x1],
                                   "y_range": [y0, y1], "step_um": step, "snake": bool(snake)}, md,
                   num_points=nx * ny, **{dk.KEY_MAP: {"x_um": stage.x.name, "y_um": stage.y.name, "i0": i0.name,
                                                       **dk.image_fields(detectors)}})
    return bp.grid_scan(list(detectors) + [i0], stage.y, y0, y1, ny, stage.x, x0, x1, nx,
                        snake_axes=bool(snake), md=meta)
