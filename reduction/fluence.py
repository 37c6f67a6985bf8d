"""Fluence-series reduction: excitations per nanocrystal <N>, melted fraction, and the melting
threshold <N>_th fitted to melted fraction vs <N> (docs/science.md 3 and 5).

<N> = sigma * j / (h nu) with j the pump fluence (mJ/cm^2) and sigma the NC absorption
cross-section at the pump wavelength (cm^2). Melted material gives no Bragg peak, so the
melted fraction at a fixed delay is minus the relative change of the Bragg-peak area (the
"area" signal of ``trxrd.reduction.peaks.window_signal``).

EXAMPLE::

    import numpy as np
    from trxrd.reduction.fluence import excitations_per_nc, melted_fraction, fit_threshold
    n = excitations_per_nc(np.linspace(0.0, 3.73, 12), sigma_cm2=4e-14)    # <N> 0 .. ~300
    true = np.where(n > 60, 0.6 * (1 - np.exp(-(n - 60) / 150)), 0.0)
    area_change = -true + np.random.default_rng(1).normal(0, 0.005, n.size)
    frac, frac_err = melted_fraction(area_change, np.full(n.size, 0.005))
    fit = fit_threshold(n, frac, frac_err)
    print(fit.summary())      # threshold <N>_th = 58 +- 2 (56 .. 60), f_max 0.61 +- 0.02
    fit.as_dict()             # JSON-able, for the run's derived document
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import lmfit
import numpy as np
from scipy.constants import c as LIGHT_M_S
from scipy.constants import h as PLANCK_J_S
from scipy.optimize import brentq, minimize_scalar

THRESHOLD_MODELS = {"saturating": ("f_max", "n_sat"), "linear": ("slope",)}
N_TH_GRID = 201          # grid points over the allowed <N>_th range (start and profile)
N_SAT_DECADES = 2.0      # saturating model: N_sat searched within span * 10**(+-2)
MIN_DELTA_CHI2 = 9.0     # a rise must beat f = 0 by this chi-square (scaled), ~3 sigma


def photon_energy_mj(wavelength_nm):
    """Energy of one photon of wavelength *wavelength_nm* in mJ (h c / lambda)."""
    lam = np.asarray(wavelength_nm, dtype=float)
    if not np.all(np.isfinite(lam)) or np.any(lam <= 0):
        raise ValueError(f"wavelength must be finite and > 0 nm, got {wavelength_nm}")
    energy = PLANCK_J_S * LIGHT_M_S / (lam * 1e-9) * 1e3
    return float(energy) if energy.ndim == 0 else energy


def excitations_per_nc(fluence_mj_cm2, sigma_cm2: float, wavelength_nm: float = 400.0):
    """Mean absorbed photons per nanocrystal <N> = sigma * j / (h nu)."""
    j = np.asarray(fluence_mj_cm2, dtype=float)
    if not np.all(np.isfinite(j)) or np.any(j < 0):
        raise ValueError("fluence_mj_cm2 must be finite and >= 0")
    if not (math.isfinite(sigma_cm2) and sigma_cm2 > 0):
        raise ValueError(f"sigma_cm2 must be > 0, got {sigma_cm2}")
    n = sigma_cm2 * j / photon_energy_mj(wavelength_nm)
    return float(n) if n.ndim == 0 else n


def melted_fraction(relative_area_change, relative_area_change_err=None) -> tuple:
    """Melted (disordered) fraction = -(relative Bragg-area change) at a fixed delay, with its
    error: 0 without one, NaN passed through where the error is unknown (e.g. a point
    measured once). Floats in, floats out; arrays in, arrays out."""
    x = np.asarray(relative_area_change, dtype=float)
    if not np.all(np.isfinite(x)):
        raise ValueError("relative_area_change holds NaN or infinite values")
    if relative_area_change_err is None:
        err = np.zeros_like(x)
    else:
        err = np.array(np.broadcast_to(np.asarray(relative_area_change_err, dtype=float), x.shape))
        if np.any(np.isinf(err)) or np.any(err < 0):
            raise ValueError("relative_area_change_err must be >= 0 (NaN: unknown)")
    if x.ndim == 0:
        return float(-x), float(err)
    return -x, err


def _shape(model: str, n, n_th: float, n_sat: float = 1.0):
    """The model divided by its amplitude (f_max or slope): 0 below <N>_th."""
    over = np.clip(np.asarray(n, dtype=float) - n_th, 0.0, None)
    return 1.0 - np.exp(-over / n_sat) if model == "saturating" else over


def _amp_chi2(g, f, w) -> tuple:
    """Best amplitude >= 0 for f ~ amp * g (weights w) and its chi-square."""
    den = w @ (g * g)
    amp = max(w @ (g * f) / den, 0.0) if den > 0 else 0.0
    r = f - amp * g
    return float(w @ (r * r)), amp


def _profile(model: str, n, f, w, n_th: float, span: float) -> tuple:
    """Chi-square minimised over the other parameters at fixed <N>_th: (chi2, amp, n_sat).
    The amplitude is linear (solved exactly); N_sat is searched on a log grid, then refined."""
    if model == "linear":
        chi2, amp = _amp_chi2(_shape(model, n, n_th), f, w)
        return chi2, amp, math.nan
    logs = np.linspace(-N_SAT_DECADES, N_SAT_DECADES, 41) + math.log10(span)
    chi2s = [_amp_chi2(_shape(model, n, n_th, 10.0 ** x), f, w)[0] for x in logs]
    i = int(np.argmin(chi2s))
    lo, hi = logs[max(i - 1, 0)], logs[min(i + 1, logs.size - 1)]
    best = minimize_scalar(lambda x: _amp_chi2(_shape(model, n, n_th, 10.0 ** x), f, w)[0],
                           bounds=(lo, hi), method="bounded")
    x = best.x if best.fun <= chi2s[i] else logs[i]
    chi2, amp = _amp_chi2(_shape(model, n, n_th, 10.0 ** x), f, w)
    return chi2, amp, 10.0 ** x


def _fmt(value: float, err: float) -> str:
    """value +- err rounded to the error's first significant digit."""
    if not (math.isfinite(err) and err > 0):
        return f"{value:.3g} +- {err:.1g}"
    decimals = max(0, -math.floor(math.log10(err)))
    return f"{value:.{decimals}f} +- {err:.{decimals}f}"


@dataclass
class ThresholdFit:
    """Melting-threshold fit of melted fraction vs <N>.

    ``params`` maps name -> (value, stderr): ``n_th`` and ``f_max``, ``n_sat`` ("saturating")
    or ``slope`` ("linear"); stderrs from the fit covariance (NaN where it could not be
    estimated). ``threshold_range`` is the 68 % range of <N>_th from the chi-square profile
    (see ``fit_threshold``); ``weighted`` says whether fraction errors were given.
    """

    model: str
    params: dict
    threshold_range: tuple
    redchi: float
    ndata: int
    weighted: bool

    @property
    def threshold(self) -> float:
        """<N>_th, the fitted threshold (excitations per NC)."""
        return self.params["n_th"][0]

    @property
    def threshold_err(self) -> float:
        return self.params["n_th"][1]

    def evaluate(self, n):
        """The fitted melted fraction at excitations *n*."""
        p = {k: v[0] for k, v in self.params.items()}
        if self.model == "saturating":
            return p["f_max"] * _shape(self.model, n, p["n_th"], p["n_sat"])
        return p["slope"] * _shape(self.model, n, p["n_th"])

    def as_dict(self) -> dict:
        """JSON-able: floats, None where not finite."""
        def clean(x):
            return float(x) if math.isfinite(x) else None
        return {"model": self.model, "threshold": clean(self.threshold),
                "threshold_err": clean(self.threshold_err),
                "threshold_range": [clean(x) for x in self.threshold_range],
                "params": {k: {"value": clean(v), "stderr": clean(e)} for k, (v, e) in self.params.items()},
                "redchi": clean(self.redchi), "ndata": self.ndata, "weighted": self.weighted}

    def summary(self) -> str:
        """One line, e.g. ``threshold <N>_th = 61 +- 4 (57 .. 66), f_max 0.58 +- 0.03``."""
        value, err = self.params["n_th"]
        decimals = max(0, -math.floor(math.log10(err))) if math.isfinite(err) and err > 0 else 0
        lo, hi = self.threshold_range
        amp = "f_max" if self.model == "saturating" else "slope"
        return (f"threshold <N>_th = {_fmt(value, err)} ({lo:.{decimals}f} .. {hi:.{decimals}f}), "
                f"{amp} {_fmt(*self.params[amp])}")


def fit_threshold(excitations, fraction, fraction_err=None, *, model: str = "saturating") -> ThresholdFit:
    """Fit the melting threshold <N>_th to melted fraction vs excitations <N>.

    Models (0 for <N> <= <N>_th):
      "saturating": f = f_max (1 - exp(-(<N> - <N>_th) / N_sat))
      "linear":     f = slope (<N> - <N>_th)          (data below saturation)

    <N>_th is searched between the smallest <N> and the second-largest distinct <N> (so at
    least two points lie above it). Start: a grid over that range, each point with the other
    parameters re-optimised (amplitude exactly, N_sat on a log grid); the best grid point
    starts an lmfit least-squares fit of all parameters, which gives the stderrs. With
    *fraction_err* the fit is weighted and the stderrs are absolute; without it the
    covariance is scaled by the reduced chi-square.

    ``threshold_range``: the profile chi2_p(<N>_th) (other parameters re-optimised) is
    followed outward from the best fit to where it exceeds the minimum by 1 (by the reduced
    chi-square when no errors are given): the 68 % range, clipped to the searched range.

    Raises ValueError for fewer than 4 points, fewer than 3 distinct <N>, NaN, negative <N>,
    non-positive errors, or no significant rise (f = 0 fits within delta chi2 < 9).
    """
    if model not in THRESHOLD_MODELS:
        raise ValueError(f"unknown threshold model {model!r}; choose one of {tuple(THRESHOLD_MODELS)}")
    n = np.asarray(excitations, dtype=float)
    f = np.asarray(fraction, dtype=float)
    if n.ndim != 1 or f.shape != n.shape:
        raise ValueError(f"excitations {n.shape} and fraction {f.shape} must be 1-D of equal length")
    if n.size < 4:
        raise ValueError(f"a threshold fit needs at least 4 points, got {n.size}")
    if not (np.all(np.isfinite(n)) and np.all(np.isfinite(f))):
        raise ValueError("excitations or fraction hold NaN or infinite values")
    if np.any(n < 0):
        raise ValueError("excitations <N> must be >= 0")
    if fraction_err is None:
        w = np.ones_like(f)
    else:
        e = np.broadcast_to(np.asarray(fraction_err, dtype=float), f.shape)
        if not np.all(np.isfinite(e)) or np.any(e <= 0):
            raise ValueError("fraction_err must be finite and > 0")
        w = 1.0 / e ** 2
    distinct = np.unique(n)
    if distinct.size < 3:
        raise ValueError("a threshold fit needs at least 3 distinct <N>")
    lo, hi = float(distinct[0]), float(distinct[-2])
    span = float(distinct[-1] - distinct[0])

    grid = np.linspace(lo, hi, N_TH_GRID)
    prof = np.array([_profile(model, n, f, w, x, span)[0] for x in grid])
    i_best = int(np.argmin(prof))
    _, amp0, n_sat0 = _profile(model, n, f, w, grid[i_best], span)

    amp_name = THRESHOLD_MODELS[model][0]
    params = lmfit.Parameters()
    params.add("n_th", value=grid[i_best], min=lo, max=hi)
    params.add(amp_name, value=amp0, min=0.0)
    if model == "saturating":
        params.add("n_sat", value=n_sat0, min=span * 10.0 ** -N_SAT_DECADES, max=span * 10.0 ** N_SAT_DECADES)
    sqrt_w = np.sqrt(w)

    def residual(p):
        v = p.valuesdict()
        g = _shape(model, n, v["n_th"], v.get("n_sat", 1.0))
        return (f - v[amp_name] * g) * sqrt_w

    result = lmfit.minimize(residual, params, method="leastsq", scale_covar=fraction_err is None)
    chi2_min = min(float(result.chisqr), float(prof[i_best]))
    scale = float(result.redchi) if fraction_err is None else 1.0
    if (float(w @ (f * f)) - chi2_min) < MIN_DELTA_CHI2 * scale or result.params[amp_name].value <= 0:
        raise ValueError("no significant rise of the fraction above a threshold (f = 0 fits "
                         "as well): check the signal or extend the fluence range")

    n_th = float(result.params["n_th"].value)
    target = chi2_min + scale

    def excess(x):
        return _profile(model, n, f, w, x, span)[0] - target

    def edge(outward) -> float:
        """From the best fit along the grid (indices *outward*) to the first point above the
        target, then the crossing by root finding; the grid end if never above."""
        inside = n_th
        for j in outward:
            if prof[j] > target:
                return brentq(excess, min(inside, grid[j]), max(inside, grid[j]),
                              xtol=1e-6 * span) if excess(inside) < 0 else inside
            inside = grid[j]
        return inside

    above = np.flatnonzero(grid > n_th)
    below = np.flatnonzero(grid < n_th)[::-1]
    out = {name: (float(result.params[name].value),
                  float(result.params[name].stderr) if result.params[name].stderr is not None else math.nan)
           for name in ("n_th",) + THRESHOLD_MODELS[model]}
    return ThresholdFit(model=model, params=out, threshold_range=(float(edge(below)), float(edge(above))),
                        redchi=float(result.redchi), ndata=int(n.size), weighted=fraction_err is not None)
