"""Peak metrics on I(q) and difference curves.

EXAMPLE::

    import numpy as np
    from reduction.peaks import window_integral
    q = np.linspace(1, 3, 201); i = np.exp(-((q - 1.88) / 0.03) ** 2)
    window_integral(q, i, 1.7, 2.05)      # ~0.0532 (area under the peak)
"""
from __future__ import annotations

import numpy as np


def window_integral(q_inv_angstrom: np.ndarray, intensity: np.ndarray, q_min: float, q_max: float) -> float:
    """Integral of intensity over [q_min, q_max] (trapezoid on the bins inside)."""
    q = np.asarray(q_inv_angstrom, dtype=float)
    if not (np.isfinite(q_min) and np.isfinite(q_max)) or q_min >= q_max:
        raise ValueError(f"bad q window [{q_min}, {q_max}]")
    if q_min < q.min() or q_max > q.max():
        raise ValueError(f"q window [{q_min}, {q_max}] A^-1 is outside the data range "
                         f"[{q.min():.3f}, {q.max():.3f}] A^-1")
    sel = (q >= q_min) & (q <= q_max)
    return float(np.trapezoid(np.asarray(intensity, dtype=float)[sel], q[sel]))
