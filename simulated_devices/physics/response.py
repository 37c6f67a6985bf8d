"""Time dependence of a pump-probe observable as the simulator renders it: a causal response
(zero before time zero) convolved with the Gaussian instrument response by numerical
quadrature, not by the closed forms the reduction fits with, so an error in either is seen
(tests/test_physics.py compares them).

The convolution (f * g)(t) = int_0^inf f(u) g(t - u) du runs over u in
[max(0, t - 8 sigma), max(0, t + 8 sigma)], split into ``PANELS`` equal panels with
``NODES`` Gauss-Legendre nodes each (the Gaussian beyond 8 sigma is below 1e-14).

EXAMPLE::

    import numpy as np
    from trxrd.simulated_devices.physics.response import convolve_irf, exponential
    convolve_irf(exponential(150.0), np.array([-500.0, 0.0, 1000.0]), irf_fwhm_ps=79.0)
    # ~[0, 0.41, 0.0013]: not yet risen, half-risen at time zero (less the decay), decayed
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

PANELS = 16
NODES = 24
REACH_SIGMA = 8.0
_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
_X, _W = np.polynomial.legendre.leggauss(NODES)


def exponential(tau_ps: float) -> Callable:
    """exp(-u / tau) for u >= 0: a decay that starts at time zero."""
    return lambda u: np.exp(-u / tau_ps)


def rise(tau_ps: float) -> Callable:
    """1 - exp(-u / tau) for u >= 0: a rise that starts at time zero."""
    return lambda u: -np.expm1(-u / tau_ps)


def convolve_irf(response: Callable, t_ps, irf_fwhm_ps: float) -> np.ndarray:
    """response(u) for u >= 0 (zero before) convolved with a unit-area Gaussian of FWHM
    *irf_fwhm_ps*, at delays *t_ps* (ps). *response* takes an array of u >= 0 (ps)."""
    t = np.atleast_1d(np.asarray(t_ps, dtype=float))
    if irf_fwhm_ps <= 0:
        out = np.where(t >= 0, response(np.clip(t, 0.0, None)), 0.0)
        return out.reshape(np.shape(t_ps))
    sigma = irf_fwhm_ps / _FWHM_PER_SIGMA
    lo = np.clip(t - REACH_SIGMA * sigma, 0.0, None)
    hi = np.clip(t + REACH_SIGMA * sigma, 0.0, None)
    width = (hi - lo) / PANELS                                        # (n,)
    centers = lo[:, None] + width[:, None] * (np.arange(PANELS) + 0.5)  # (n, PANELS)
    u = centers[..., None] + 0.5 * width[:, None, None] * _X           # (n, PANELS, NODES)
    g = np.exp(-0.5 * ((t[:, None, None] - u) / sigma) ** 2) / (sigma * math.sqrt(2.0 * math.pi))
    out = (response(u) * g) @ _W * (0.5 * width[:, None])              # (n, PANELS)
    return out.sum(axis=1).reshape(np.shape(t_ps))
