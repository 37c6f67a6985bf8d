"""Peak metrics on I(q) and difference curves dI(q): window integrals, the pump-probe window
signal, pseudo-Voigt peak fits, tetragonal lattice parameters, Scherrer size and
Debye-Waller <du^2>.

Integrating dI over a peak's q window nulls the derivative-shaped part of a peak shift and
measures the lost (melted, disordered) intensity; integrating only the negative part of dI
is more robust against a rising diffuse background (docs/science.md 5). Peak positions, widths
and areas come from pseudo-Voigt fits on a baseline; positions of indexed reflections give
a and c of chalcopyrite CuInSe2, intensity ratios give <du^2> (docs/science.md 7).

EXAMPLE::

    import numpy as np
    from trxrd.reduction.peaks import (window_integral, window_parts, window_signal, pseudo_voigt,
                                 fit_pseudo_voigt, lattice_parameters_tetragonal,
                                 reflection_q_tetragonal, scherrer_size_nm, debye_waller_du2,
                                 mean_du2)
    q = np.linspace(1, 3, 201); off = np.exp(-((q - 1.88) / 0.03) ** 2)
    window_integral(q, off, 1.7, 2.05)                 # ~0.0532 (area under the peak)
    on = 0.8 * off
    window_parts(q, on - off, 1.7, 2.05)               # net ~-0.0106, negative ~-0.0106, positive 0
    window_signal(q, on - off, off, [(1.7, 2.05)])     # (-0.2, 0.0): relative area change, error

    q = np.linspace(1.7, 2.05, 351)
    i = 100 + pseudo_voigt(q, 1.882, 0.03, 50.0, 0.4)
    fit = fit_pseudo_voigt(q, i, q_min=1.75, q_max=2.0)
    fit.center, fit.center_err, fit.fwhm, fit.area    # ~1.882, ~0, ~0.03, ~50
    hkls = [(1, 1, 2), (2, 2, 0), (2, 0, 4), (3, 1, 2), (1, 1, 6)]
    qs = reflection_q_tetragonal(hkls, 5.78, 11.62)    # A^-1; (112) at ~1.880
    lattice_parameters_tetragonal(hkls, qs)["a_angstrom"]   # {"value": 5.78, "stderr": ~0}
    scherrer_size_nm(2 * np.pi * 0.9 / 70)             # 7.0 nm
    du2, err = debye_waller_du2([90.0, 70.0], [100.0, 100.0], qs[:2], [1.0, 1.0], [1.0, 1.0])
    mean_du2(du2, err)                                 # (<du^2> in A^2, its error)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from lmfit.models import ConstantModel, LinearModel, PseudoVoigtModel

SIGNAL_PARTS = ("area", "negative", "positive")
BASELINES = ("linear", "constant", "none")
GAUSS_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def _window(q: np.ndarray, q_min: float, q_max: float) -> np.ndarray:
    if not (np.isfinite(q_min) and np.isfinite(q_max)) or q_min >= q_max:
        raise ValueError(f"bad q window [{q_min}, {q_max}] A^-1: give QMIN < QMAX")
    if q_min < q.min() or q_max > q.max():
        raise ValueError(f"q window [{q_min}, {q_max}] A^-1 is outside the data range "
                         f"[{q.min():.3f}, {q.max():.3f}] A^-1")
    sel = (q >= q_min) & (q <= q_max)
    if sel.sum() < 2:
        raise ValueError(f"q window [{q_min}, {q_max}] A^-1 holds fewer than 2 q bins")
    return sel


def _weights(q: np.ndarray) -> np.ndarray:
    """Trapezoid weights of the bins of q (so sum(w * y) == trapezoid(y, q))."""
    dq = np.diff(q)
    w = np.zeros_like(q)
    w[:-1] += dq / 2
    w[1:] += dq / 2
    return w


def window_integral(q_inv_angstrom: np.ndarray, intensity: np.ndarray, q_min: float, q_max: float) -> float:
    """Integral of intensity over [q_min, q_max] (trapezoid on the bins inside)."""
    q = np.asarray(q_inv_angstrom, dtype=float)
    sel = _window(q, q_min, q_max)
    return float(np.trapezoid(np.asarray(intensity, dtype=float)[sel], q[sel]))


def window_parts(q_inv_angstrom: np.ndarray, d_intensity: np.ndarray, q_min: float, q_max: float) -> dict:
    """Integrals of a difference curve over [q_min, q_max]: ``net`` (all of dI), ``negative``
    (only dI < 0, so <= 0) and ``positive`` (only dI > 0)."""
    d = np.asarray(d_intensity, dtype=float)
    return {"net": window_integral(q_inv_angstrom, d, q_min, q_max),
            "negative": window_integral(q_inv_angstrom, np.minimum(d, 0.0), q_min, q_max),
            "positive": window_integral(q_inv_angstrom, np.maximum(d, 0.0), q_min, q_max)}


def window_signal(q_inv_angstrom, d_intensity, reference, windows, *, part: str = "area",
                  d_intensity_err=None) -> tuple:
    """Pump-probe signal of difference curve(s): the sum over q *windows* of the integral of dI
    (``part`` = "area": all of it, "negative" / "positive": one sign only), divided by the sum of
    the integrals of the *reference* (pump-off) curve over the same windows.

    d_intensity and reference are (nq,) or (n, nq); returns (signal, error) as floats or (n,)
    arrays. The error propagates d_intensity_err (1 sigma per bin, same shape) through the
    integrals; without it the error is 0. For a uniform intensity loss the "area" signal is
    minus the lost fraction.
    """
    q = np.asarray(q_inv_angstrom, dtype=float)
    d = np.asarray(d_intensity, dtype=float)
    ref = np.asarray(reference, dtype=float)
    if part not in SIGNAL_PARTS:
        raise ValueError(f"unknown signal part {part!r}; choose one of {SIGNAL_PARTS}")
    if d.shape[-1] != q.size or ref.shape[-1] != q.size:
        raise ValueError(f"curves have {d.shape[-1]} / {ref.shape[-1]} bins, q has {q.size}")
    if not windows:
        raise ValueError("give at least one q window")
    w = np.zeros(q.size)
    for q_min, q_max in windows:        # trapezoid weights per window; overlaps count once
        sel = _window(q, q_min, q_max)
        w[sel] = np.maximum(w[sel], _weights(q[sel]))
    if part == "negative":
        keep = d < 0
    elif part == "positive":
        keep = d > 0
    else:
        keep = np.ones_like(d, bool)
    norm = ref @ w
    if np.any(~np.isfinite(norm)) or np.any(norm <= 0):
        raise ValueError("the reference (pump-off) intensity integrates to <= 0 or NaN in the q windows")
    signal = (np.where(keep, d, 0.0) @ w) / norm
    if d_intensity_err is None:
        err = np.zeros_like(signal)
    else:
        e = np.where(keep, np.asarray(d_intensity_err, dtype=float), 0.0)
        err = np.sqrt((e * e) @ (w * w)) / np.abs(norm)
    if np.ndim(signal) == 0:
        return float(signal), float(err)
    return signal, err


def pseudo_voigt(q, center: float, fwhm: float, area: float, eta: float):
    """Area-normalised pseudo-Voigt: eta * Lorentzian + (1 - eta) * Gaussian, both of FWHM
    *fwhm* (same units as q, > 0) and integral *area*; 0 <= eta <= 1."""
    if not (fwhm > 0 and 0.0 <= eta <= 1.0):
        raise ValueError(f"pseudo-Voigt needs fwhm > 0 and 0 <= eta <= 1, got fwhm={fwhm}, eta={eta}")
    x = np.asarray(q, dtype=float) - center
    sigma = fwhm / GAUSS_FWHM_PER_SIGMA
    half = fwhm / 2.0
    gauss = np.exp(-0.5 * (x / sigma) ** 2) / (sigma * math.sqrt(2.0 * math.pi))
    lorentz = half / (math.pi * (x * x + half * half))
    return area * (eta * lorentz + (1.0 - eta) * gauss)


def _finite(name: str, values) -> np.ndarray:
    a = np.asarray(values, dtype=float)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} holds NaN or infinite values")
    return a


@dataclass
class PeakFit:
    """A pseudo-Voigt fit on [q_min, q_max]: ``params`` maps name -> (value, stderr) for
    center (A^-1), fwhm (A^-1), area, eta (Lorentzian fraction), height and the baseline
    (``baseline``: its value at ``q_ref_inv_angstrom``, the window middle; ``baseline_slope``
    per A^-1). A stderr of NaN means the covariance could not be estimated."""

    params: dict
    redchi: float
    q_min: float
    q_max: float
    baseline: str
    q_ref_inv_angstrom: float
    npoints: int

    @property
    def center(self) -> float:
        """Peak position (A^-1)."""
        return self.params["center"][0]

    @property
    def center_err(self) -> float:
        return self.params["center"][1]

    @property
    def fwhm(self) -> float:
        """Full width at half maximum (A^-1)."""
        return self.params["fwhm"][0]

    @property
    def fwhm_err(self) -> float:
        return self.params["fwhm"][1]

    @property
    def area(self) -> float:
        """Integral of the peak above the baseline."""
        return self.params["area"][0]

    @property
    def area_err(self) -> float:
        return self.params["area"][1]

    def evaluate(self, q_inv_angstrom):
        """The fitted curve (peak + baseline) at q_inv_angstrom."""
        q = np.asarray(q_inv_angstrom, dtype=float)
        p = {k: v[0] for k, v in self.params.items()}
        return (pseudo_voigt(q, p["center"], p["fwhm"], p["area"], p["eta"])
                + p.get("baseline", 0.0) + p.get("baseline_slope", 0.0) * (q - self.q_ref_inv_angstrom))

    def as_dict(self) -> dict:
        """JSON-able: values and stderrs as floats (None where not finite)."""
        def clean(x):
            return float(x) if math.isfinite(x) else None
        return {"params": {k: {"value": clean(v), "stderr": clean(e)} for k, (v, e) in self.params.items()},
                "redchi": clean(self.redchi), "q_min": self.q_min, "q_max": self.q_max,
                "baseline": self.baseline, "q_ref_inv_angstrom": self.q_ref_inv_angstrom,
                "npoints": self.npoints}


def _peak_guess(q: np.ndarray, y: np.ndarray, baseline: str) -> dict:
    """Start values from the data: baseline through the window edges, the peak at the
    maximum above it, the width from the half-maximum crossings, the area from both."""
    n_edge = max(2, q.size // 10)
    y_lo, y_hi = np.median(y[:n_edge]), np.median(y[-n_edge:])
    q_lo, q_hi = np.mean(q[:n_edge]), np.mean(q[-n_edge:])
    q_ref = 0.5 * (q[0] + q[-1])
    if baseline == "linear":
        slope = (y_hi - y_lo) / (q_hi - q_lo)
        level = y_lo + slope * (q_ref - q_lo)
    elif baseline == "constant":
        slope, level = 0.0, min(y_lo, y_hi)
    else:
        slope, level = 0.0, 0.0
    peak = y - level - slope * (q - q_ref)
    i_max = int(np.argmax(peak))
    height = peak[i_max]
    above = peak >= 0.5 * height
    lo = i_max
    while lo > 0 and above[lo - 1]:
        lo -= 1
    hi = i_max
    while hi < q.size - 1 and above[hi + 1]:
        hi += 1
    step = (q[-1] - q[0]) / (q.size - 1)
    fwhm = max(q[hi] - q[lo] + step, 2.0 * step)
    return {"center": q[i_max], "fwhm": fwhm, "area": 1.3 * height * fwhm, "eta": 0.5,
            "baseline": level, "baseline_slope": slope}


def fit_pseudo_voigt(q_inv_angstrom, intensity, *, q_min: float, q_max: float, sigma=None,
                     baseline: str = "linear", eta: float | None = None) -> PeakFit:
    """Least-squares fit of one pseudo-Voigt peak on a ``baseline`` ("linear", "constant" or
    "none") to intensity over [q_min, q_max] A^-1, with lmfit's ``PseudoVoigtModel`` (+
    ``LinearModel`` / ``ConstantModel``); its ``sigma`` is half the FWHM of both parts.

    *sigma* (1 sigma per bin, e.g. sqrt(counts)) weights the fit and makes the stderrs
    absolute; without it the bins weigh equally and the covariance is scaled by the reduced
    chi-square. The center is bounded to the window, eta to [0, 1]; a number for *eta* fixes
    the Lorentzian fraction (e.g. at the reference pattern's, to compare areas). Start values
    come from the data in the window (see ``_peak_guess``).
    """
    q = _finite("q_inv_angstrom", q_inv_angstrom)
    y = _finite("intensity", intensity)
    if q.ndim != 1 or y.shape != q.shape:
        raise ValueError(f"q_inv_angstrom {q.shape} and intensity {y.shape} must be 1-D of equal length")
    if baseline not in BASELINES:
        raise ValueError(f"unknown baseline {baseline!r}; choose one of {BASELINES}")
    if np.any(np.diff(q) <= 0):
        raise ValueError("q_inv_angstrom must increase strictly")
    sel = _window(q, q_min, q_max)
    q, y = q[sel], y[sel]
    if sigma is not None:
        s = _finite("sigma", np.broadcast_to(np.asarray(sigma, dtype=float), sel.shape))[sel]
        if np.any(s <= 0):
            raise ValueError("sigma must be > 0 in the q window")
    else:
        s = np.ones_like(y)
    free = {"linear": 6, "constant": 5, "none": 4}[baseline]
    if q.size < free + 2:
        raise ValueError(f"q window [{q_min}, {q_max}] A^-1 holds {q.size} bins; a pseudo-Voigt "
                         f"with a {baseline} baseline needs at least {free + 2}")

    start = _peak_guess(q, y, baseline)
    q_ref = 0.5 * (q[0] + q[-1])
    x = q - q_ref                        # the baseline's level is its value at the window middle
    step = (q[-1] - q[0]) / (q.size - 1)
    model = PseudoVoigtModel()
    if baseline == "linear":
        model = model + LinearModel(prefix="bg_")
    elif baseline == "constant":
        model = model + ConstantModel(prefix="bg_")
    params = model.make_params()
    # bounds not centred on a bin: a bounded start at their exact middle never moves in lmfit
    params["center"].set(value=start["center"] - q_ref, min=x[0] - step / 3, max=x[-1])
    params["sigma"].set(value=start["fwhm"] / 2, min=0.25 * step, max=q[-1] - q[0])   # lmfit: fwhm = 2 sigma
    params["amplitude"].set(value=start["area"], min=-np.inf, max=np.inf)
    if eta is not None and not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must be within [0, 1], got {eta}")
    params["fraction"].set(value=start["eta"] if eta is None else eta, min=0.0, max=1.0, vary=eta is None)
    if baseline == "linear":
        params["bg_intercept"].set(value=start["baseline"])
        params["bg_slope"].set(value=start["baseline_slope"])
    elif baseline == "constant":
        params["bg_c"].set(value=start["baseline"])
    result = model.fit(y, params, x=x, weights=1.0 / s, scale_covar=sigma is None)
    names = {"center": "center", "fwhm": "fwhm", "area": "amplitude", "eta": "fraction", "height": "height",
             "baseline": {"linear": "bg_intercept", "constant": "bg_c"}.get(baseline),
             "baseline_slope": "bg_slope" if baseline == "linear" else None}
    out = {}
    for name, lm in names.items():
        if lm is not None:
            par = result.params[lm]
            out[name] = (float(par.value), float(par.stderr) if par.stderr is not None else math.nan)
    out["center"] = (out["center"][0] + q_ref, out["center"][1])
    return PeakFit(params=out, redchi=float(result.redchi), q_min=float(q_min), q_max=float(q_max),
                   baseline=baseline, q_ref_inv_angstrom=float(q_ref), npoints=int(q.size))


def _hkl_rows(hkls) -> np.ndarray:
    h = np.asarray(hkls, dtype=float)
    if h.ndim != 2 or h.shape[1] != 3 or not np.all(np.isfinite(h)):
        raise ValueError("hkls must be a list of (h, k, l) triples")
    if np.any(np.all(h == 0, axis=1)):
        raise ValueError("(000) is not a reflection")
    return np.column_stack([h[:, 0] ** 2 + h[:, 1] ** 2, h[:, 2] ** 2])


def reflection_q_tetragonal(hkl, a_angstrom: float, c_angstrom: float):
    """q (A^-1) of reflection(s) *hkl* of a tetragonal lattice: 2 pi sqrt((h^2+k^2)/a^2 + l^2/c^2).
    One (h, k, l) gives a float, a list of them an array."""
    if not (a_angstrom > 0 and c_angstrom > 0):
        raise ValueError(f"lattice parameters must be > 0, got a={a_angstrom}, c={c_angstrom} A")
    single = np.ndim(hkl) == 1
    rows = _hkl_rows(np.atleast_2d(hkl))
    q = 2.0 * math.pi * np.sqrt(rows @ np.array([a_angstrom ** -2.0, c_angstrom ** -2.0]))
    return float(q[0]) if single else q


def lattice_parameters_tetragonal(hkls, q_inv_angstrom, q_err=None) -> dict:
    """a, c and cell volume a^2 c (A, A^3) of a tetragonal lattice from the positions of
    indexed reflections: weighted linear least squares of 1/d^2 = (h^2+k^2)/a^2 + l^2/c^2,
    d = 2 pi / q.

    Returns {"a_angstrom", "c_angstrom", "volume_angstrom3"}, each {"value", "stderr"}. With
    *q_err* (1 sigma per reflection) the covariance is (X^T W X)^-1, exact propagation for
    two reflections; without it, reflections weigh equally and the covariance is scaled by
    the residual variance (needs >= 3 reflections; with 2 the stderrs are NaN). Needs >= 2
    reflections whose (h^2+k^2, l^2) rows are independent.
    """
    rows = _hkl_rows(hkls)
    q = _finite("q_inv_angstrom", q_inv_angstrom)
    if q.shape != (rows.shape[0],):
        raise ValueError(f"{rows.shape[0]} reflections but {q.size} q values")
    if np.any(q <= 0):
        raise ValueError("q_inv_angstrom must be > 0")
    if rows.shape[0] < 2 or np.linalg.matrix_rank(rows) < 2:
        raise ValueError("need >= 2 reflections with independent (h^2+k^2, l^2), e.g. (112) and "
                         "(220); (hk0) reflections alone do not fix c, (00l) alone do not fix a")
    inv_d2 = (q / (2.0 * math.pi)) ** 2
    if q_err is None:
        w = np.ones_like(q)
    else:
        qe = _finite("q_err", np.broadcast_to(np.asarray(q_err, dtype=float), q.shape))
        if np.any(qe <= 0):
            raise ValueError("q_err must be > 0")
        w = 1.0 / (2.0 * q * qe / (2.0 * math.pi) ** 2) ** 2
    normal = rows.T @ (w[:, None] * rows)
    cov = np.linalg.inv(normal)
    coef = cov @ (rows.T @ (w * inv_d2))
    if np.any(coef <= 0):
        raise ValueError("the reflections give 1/a^2 or 1/c^2 <= 0: check the indexing")
    if q_err is None:
        dof = q.size - 2
        cov = cov * (float(w @ (inv_d2 - rows @ coef) ** 2) / dof if dof > 0 else math.nan)
    a, c = coef ** -0.5
    jac = np.diag(-0.5 * coef ** -1.5)             # d(a, c) / d(1/a^2, 1/c^2)
    cov_ac = jac @ cov @ jac.T
    grad_v = np.array([2.0 * a * c, a * a])
    var_v = grad_v @ cov_ac @ grad_v
    return {"a_angstrom": {"value": float(a), "stderr": float(math.sqrt(cov_ac[0, 0]))},
            "c_angstrom": {"value": float(c), "stderr": float(math.sqrt(cov_ac[1, 1]))},
            "volume_angstrom3": {"value": float(a * a * c), "stderr": float(math.sqrt(var_v))}}


def scherrer_size_nm(fwhm_q_inv_angstrom, k: float = 0.9, instrumental_fwhm_q_inv_angstrom: float = 0.0):
    """Crystallite size D = 2 pi K / dq in nm, dq the peak FWHM in q (A^-1) with the
    instrumental FWHM removed in quadrature. Float in, float out; array in, array out."""
    w = _finite("fwhm_q_inv_angstrom", fwhm_q_inv_angstrom)
    inst = float(instrumental_fwhm_q_inv_angstrom)
    if not (k > 0) or not (math.isfinite(inst) and inst >= 0):
        raise ValueError(f"need K > 0 and instrumental FWHM >= 0, got K={k}, {inst} A^-1")
    if np.any(w <= inst):
        raise ValueError(f"peak FWHM must exceed the instrumental FWHM ({inst} A^-1) and 0")
    size = 2.0 * math.pi * k / np.sqrt(w * w - inst * inst) / 10.0
    return float(size) if size.ndim == 0 else size


def debye_waller_du2(intensity, intensity_ref, q_inv_angstrom, intensity_err=None, intensity_ref_err=None):
    """Mean-square displacement change <du^2> (A^2) per reflection from I = I0 exp(-q^2 <du^2>)
    (= exp(-4 pi^2 <du^2> s^2), s = q / 2 pi): <du^2> = -ln(I / I0) / q^2.

    Returns (du2, err) arrays; err propagates the 1-sigma intensity errors (0 without them).
    """
    i = _finite("intensity", intensity)
    i0 = _finite("intensity_ref", intensity_ref)
    q = _finite("q_inv_angstrom", q_inv_angstrom)
    if not (i.ndim == 1 and i.shape == i0.shape == q.shape):
        raise ValueError(f"intensity {i.shape}, intensity_ref {i0.shape} and q {q.shape} must be "
                         "1-D of equal length (one value per reflection)")
    if np.any(i <= 0) or np.any(i0 <= 0) or np.any(q <= 0):
        raise ValueError("intensities and q must be > 0")
    rel2 = np.zeros_like(i)
    for name, e, v in (("intensity_err", intensity_err, i), ("intensity_ref_err", intensity_ref_err, i0)):
        if e is not None:
            e = _finite(name, np.broadcast_to(np.asarray(e, dtype=float), i.shape))
            if np.any(e < 0):
                raise ValueError(f"{name} must be >= 0")
            rel2 = rel2 + (e / v) ** 2
    return -np.log(i / i0) / q ** 2, np.sqrt(rel2) / q ** 2


def mean_du2(du2, err=None) -> tuple:
    """Average <du^2> over reflections with its error: weighted by 1/err^2 (error
    1/sqrt(sum 1/err^2)); with err=None the plain mean and its standard error from the
    scatter (needs >= 2 reflections)."""
    d = _finite("du2", du2).ravel()
    if d.size == 0:
        raise ValueError("no reflections")
    if err is None:
        if d.size < 2:
            raise ValueError("the scatter of one reflection gives no error: pass err")
        return float(d.mean()), float(d.std(ddof=1) / math.sqrt(d.size))
    e = _finite("err", np.broadcast_to(np.asarray(err, dtype=float), np.shape(du2))).ravel()
    if np.any(e <= 0):
        raise ValueError("err must be > 0 for a weighted mean; pass err=None for the plain mean")
    w = 1.0 / e ** 2
    return float(w @ d / w.sum()), float(1.0 / math.sqrt(w.sum()))
