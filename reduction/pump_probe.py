"""The pump-probe reduction chain on integrated frames, one function for live and offline use:
I(q) per frame -> pump-on minus reference per point -> window signal -> kinetics (delay scans)
or melting threshold (fluence scans).

The live callback calls it after every completed point, ``trxrd kinetics`` and ``trxrd reduce``
once on all frames, so live and offline results are the same numbers.

EXAMPLE::

    import numpy as np
    from trxrd.reduction.pump_probe import pump_probe_signal, fit_delays
    # q (nq,), intensity/sigma (N, nq) from AzimuthalIntegration.integrate_many;
    # delay_ps (N,), is_reference (N,) from the scan's table
    result = pump_probe_signal(q, intensity, delay_ps, is_reference, [(1.70, 2.05)], sigma=sigma)
    result.fit = fit_delays(result, model="auto")
    result.fit.summary(), result.as_dict()["fit"]["tau1_ps"]
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .difference import Differences, differences
from .fluence import fit_threshold, melted_fraction
from .kinetics import fit_kinetics, fit_kinetics_auto, fit_onset
from .peaks import window_signal

MODELS = {"exp": 1, "biexp": 2}
KINETICS_MODELS = (*MODELS, "auto")


@dataclass
class PumpProbeResult:
    """Per point (sorted by *points*): mean x (actual delay in ps, or <N>), window signal with
    error, the differences dI(q) behind it, and the fit once made."""
    q_inv_angstrom: np.ndarray
    points: np.ndarray
    x: np.ndarray
    signal: np.ndarray
    signal_err: np.ndarray
    diff: Differences
    windows: list
    part: str
    fit: object = None

    def as_dict(self, x_name: str = "delays_ps") -> dict:
        """JSON-ready summary: model, fit (value/stderr per parameter), x, signal, signal_err."""
        fit = self.fit
        return {"model": getattr(fit, "model", None),
                "fit": None if fit is None else fit.as_dict(),
                x_name: _floats(self.x), "signal": _floats(self.signal),
                "signal_err": _floats(self.signal_err), "n_pairs": [int(n) for n in self.diff.n_pairs],
                "windows_inv_angstrom": [[float(a), float(b)] for a, b in self.windows], "signal_part": self.part}


def _floats(values) -> list:
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(values, dtype=float)]


def pump_probe_signal(q_inv_angstrom, intensity, points, is_reference, windows, *, sigma=None, x=None,
                      part: str = "area", mode: str = "interleaved") -> PumpProbeResult:
    """Differences per point (see ``trxrd.reduction.difference``) and their window signal (see
    ``trxrd.reduction.peaks.window_signal``). *points* groups frames (requested delay or fluence),
    *x* (default: points) is averaged per point over its signal frames (the actual delay)."""
    points = np.asarray(points, dtype=float)
    is_reference = np.asarray(is_reference, dtype=bool)
    diff = differences(intensity, points, is_reference, mode=mode, sigma=sigma)
    signal, err = window_signal(q_inv_angstrom, diff.d_intensity, diff.reference, windows, part=part,
                                d_intensity_err=diff.d_intensity_err)
    x = points if x is None else np.asarray(x, dtype=float)
    keys = np.round(points[~is_reference], 6)
    xs = x[~is_reference]
    mean_x = np.array([xs[keys == value].mean() for value in diff.points])
    return PumpProbeResult(np.asarray(q_inv_angstrom), diff.points, mean_x, signal, err, diff,
                           [tuple(w) for w in windows], part)


def _weights(err):
    err = np.asarray(err, dtype=float)
    return err if np.all(np.isfinite(err)) and np.all(err > 0) else None


def fit_delays(result: PumpProbeResult, *, model: str = "auto", irf_fwhm_ps: float | None = None):
    """Kinetics fit of a delay scan's signal: ``model`` "exp", "biexp" or "auto" (chosen by
    AIC); ``irf_fwhm_ps`` fixes the instrument response, else it is fitted."""
    kwargs = {} if irf_fwhm_ps is None else {"irf_fwhm_ps": float(irf_fwhm_ps)}
    err = _weights(result.signal_err)
    if model == "auto":
        return fit_kinetics_auto(result.x, result.signal, err, max_components=2, **kwargs)
    if model not in MODELS:
        raise ValueError(f"unknown kinetics model {model!r}; choose exp, biexp or auto")
    return fit_kinetics(result.x, result.signal, err, n_components=MODELS[model], **kwargs)


def fit_time_zero(result: PumpProbeResult, *, irf_fwhm_ps: float | None = None):
    """Onset fit of a scan across time zero (``kinetics.fit_onset``): t0, IRF, step amplitude."""
    return fit_onset(result.x, result.signal, _weights(result.signal_err), irf_fwhm_ps=irf_fwhm_ps)


def fit_fluences(result: PumpProbeResult, *, model: str = "saturating"):
    """Melting-threshold fit of a fluence scan (x = <N>): melted fraction = -signal."""
    fraction, err = melted_fraction(result.signal, result.signal_err)
    return fit_threshold(result.x, fraction, _weights(err), model=model)
