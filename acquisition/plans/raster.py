"""Raster of the sample stage under the beam (nano-diffraction maps, seed 003): one frame
per point on a grid in um, snaking by default.

EXAMPLE::

    from trxrd.acquisition.plans.raster import raster_scan
    RE(raster_scan([pilatus], (-20, 20), (-10, 10), 5.0))     # um; 9 x 5 points
"""
from __future__ import annotations

from bluesky import plans as bp

from ...validation import finite
from .metadata import plan_md


def _axis(rng, step, axis, what):
    if len(rng) != 2:
        raise ValueError(f"{what} must be (start, stop) in um, got {rng!r}")
    start, stop = (finite(v, what, unit="um") for v in rng)
    lo, hi = axis.limits
    for v in (start, stop):
        if hi > lo and not lo <= v <= hi:
            raise ValueError(f"{what}: {v} um is outside the stage limits {lo} .. {hi} um")
    num = int(round(abs(stop - start) / step)) + 1
    if abs(abs(stop - start) - (num - 1) * step) > 1e-6 * step:
        raise ValueError(f"{what} ({start} .. {stop} um) is not a whole number of {step} um steps")
    return start, stop, num


def raster_scan(detectors, x_range, y_range, step_um, snake=True, *, stage, i0, md=None):
    """Frames on the grid *x_range* x *y_range* (um, inclusive) with *step_um* spacing;
    y is the slow axis; ``snake`` reverses every other x line."""
    if not detectors:
        raise ValueError("give at least one detector, e.g. [pilatus]")
    step = finite(step_um, "step_um", low=0.0, strict=True, unit="um")
    x0, x1, nx = _axis(x_range, step, stage.x, "x_range")
    y0, y1, ny = _axis(y_range, step, stage.y, "y_range")
    meta = plan_md("raster_scan", {"detectors": [d.name for d in detectors], "x_range": [x0, x1],
                                   "y_range": [y0, y1], "step_um": step, "snake": bool(snake)}, md,
                   num_points=nx * ny)
    return bp.grid_scan(list(detectors) + [i0], stage.y, y0, y1, ny, stage.x, x0, x1, nx,
                        snake_axes=bool(snake), md=meta)
