"""Delay lists for pump-probe scans (ps).

EXAMPLE::

    from trxrd.acquisition.plans.delays import linear_delays, log_delays, dense_then_log
    linear_delays(-100, 100, 21)          # -100, -90, ..., 100
    log_delays(-100, 5000, 20)            # dense near t0, logarithmic away from it
    dense_then_log(-200, 300, 25, 10000, 12)
"""
from __future__ import annotations

import numpy as np

from ...validation import count, finite

MAX_DELAYS = 100_000          # delays in one list
MAX_ABS_DELAY_PS = 1e9        # 1 ms: far beyond any delay axis (the plans check the axis's own reach)


def _span(start, stop, num, what):
    start = finite(start, f"{what} start", low=-MAX_ABS_DELAY_PS, high=MAX_ABS_DELAY_PS, unit="ps")
    stop = finite(stop, f"{what} stop", low=-MAX_ABS_DELAY_PS, high=MAX_ABS_DELAY_PS, unit="ps")
    if stop <= start:
        raise ValueError(f"{what}: stop ({stop} ps) must be after start ({start} ps)")
    return start, stop, count(num, f"{what}: num (number of points)", low=2, high=MAX_DELAYS)


def linear_delays(start_ps: float, stop_ps: float, num: int) -> list[float]:
    """*num* equally spaced delays from *start_ps* to *stop_ps* inclusive."""
    start, stop, num = _span(start_ps, stop_ps, num, "linear_delays")
    return [round(float(t), 3) for t in np.linspace(start, stop, num)]


def log_delays(start_ps: float, stop_ps: float, num: int, *, linear_width_ps: float = 50.0) -> list[float]:
    """*num* delays from *start_ps* to *stop_ps*, spaced evenly in asinh(t / w): about
    linear (step ~ w) within +-w of time zero and logarithmic beyond, on both sides.
    ``w`` = *linear_width_ps* (choose it near the instrument response)."""
    start, stop, num = _span(start_ps, stop_ps, num, "log_delays")
    w = finite(linear_width_ps, "linear_width_ps", low=0.0, strict=True, unit="ps")
    u = np.linspace(np.arcsinh(start / w), np.arcsinh(stop / w), num)
    return [round(float(t), 3) for t in w * np.sinh(u)]


def dense_then_log(start_ps: float, dense_stop_ps: float, num_dense: int, stop_ps: float,
                   num_log: int) -> list[float]:
    """*num_dense* linear delays from *start_ps* to *dense_stop_ps*, then *num_log*
    logarithmically spaced delays after it up to *stop_ps* (``dense_stop_ps`` must be > 0)."""
    dense = linear_delays(start_ps, dense_stop_ps, num_dense)
    num_log = count(num_log, "dense_then_log: num_log", high=MAX_DELAYS)
    lo, stop, num_log = _span(dense_stop_ps, stop_ps, num_log + 1, "dense_then_log tail")
    if lo <= 0:
        raise ValueError(f"dense_then_log: the logarithmic tail must start after time zero, got {lo} ps")
    tail = np.geomspace(lo, stop, num_log)[1:]
    return dense + [round(float(t), 3) for t in tail]
