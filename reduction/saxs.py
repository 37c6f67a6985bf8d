"""In-situ SAXS of nanocrystals: polydisperse homogeneous spheres fitted per frame (mean
radius, size dispersion, scale ~ number density x contrast^2, flat background), the series
derived from them (number concentration, scattering volume -> yield, t98, growth rate and the
growth law dr/dt = k / r^n), and the stacking peak of a platelet film (period d = 2 pi / q*,
correlation length) during an anneal.

Units: q is in A^-1 at every interface (``q_inv_angstrom``); radii, sigma and distances in nm;
``parse_q`` also takes "0.2nm-1" where SAXS users think in nm^-1.

Model (docs/science.md 13): I(q) = scale * int p(r) V(r)^2 F(qr)^2 dr + background, with p the
number distribution of radii (Schulz or Gaussian, mean ``r_mean_nm``, standard deviation
``sigma_nm``), V = 4/3 pi r^3 (nm^3) and F the normalised sphere amplitude 3 (sin x - x cos x)/x^3.
The integral is a precomputed table of V^2 F^2 on a geometric radius grid (0.4 % steps) for the
q bins of the data (``SphereTable``), so a fit costs a few ms. The two linear parameters
(scale, background) are solved exactly at every step (variable projection); the standard errors
of all four come from the full Jacobian, scaled by the reduced chi-square.

"No particles": a frame is reported without particles when the sphere term does not improve
chi-square over a flat background by at least ``min_significance`` (5) standard deviations,
sqrt((chi2_flat - chi2_spheres) / max(redchi, 1)), or when the fitted mean radius is not
determined to 25 %, or lies at the edge of the radii the q range can see.

EXAMPLE::

    import numpy as np
    from trxrd.reduction.saxs import SphereTable, fit_spheres, fit_stacking_peak
    q = np.linspace(0.02, 0.40, 300)                          # A^-1
    table = SphereTable(q, distribution="schulz")
    i = table.intensity(2.0, 0.15, scale=1.0, background=50.0)
    fit = fit_spheres(q, i, np.sqrt(i), table=table)          # seeded by a Guinier estimate
    fit.value("r_mean_nm"), fit.stderr("r_mean_nm"), fit.particles   # 2.0, ~0, True
    fit_spheres(q, i, np.sqrt(i), table=table, seed=fit)      # the next frame: seeded by this one
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, stats

from .peaks import _weights as trapezoid_weights

DISTRIBUTIONS = ("schulz", "gaussian")
NM_PER_ANGSTROM_INV = 10.0            # q (nm^-1) = 10 q (A^-1)
MIN_SIGNIFICANCE = 5.0                # sigma of the sphere term over a flat background
MAX_RELATIVE_RADIUS_ERROR = 0.25
MIN_STACKED_PERIODS = 2.0             # a stacking peak: correlation length xi = 2 pi / FWHM >= 2 periods d
REL_SIGMA_BOUNDS = (0.02, 0.5)        # sigma / r_mean fitted within these
AVOGADRO = 6.02214076e23
PARAMS = ("r_mean_nm", "sigma_nm", "scale", "background")


def parse_q(text, name: str = "q") -> float:
    """A q value in A^-1 from "0.02", "0.02A-1" / "0.02/A" or "0.2nm-1" / "0.2/nm" (converted)."""
    match = re.fullmatch(r"\s*([0-9.eE+-]+)\s*(a\^?-1|1/a|/a|nm\^?-1|1/nm|/nm)?\s*", str(text), re.IGNORECASE)
    try:
        value = float(match.group(1)) if match else float("nan")
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} {text!r}: expected a positive q in A^-1 (e.g. 0.02) or nm^-1 (e.g. 0.2nm-1)")
    unit = (match.group(2) or "").lower()
    return value / NM_PER_ANGSTROM_INV if "nm" in unit else value


# -- form factor and distributions ----------------------------------------------------------------
def sphere_amplitude(qr) -> np.ndarray:
    """Normalised sphere amplitude F(x) = 3 (sin x - x cos x) / x^3, F(0) = 1 (series below x = 1e-2)."""
    x = np.asarray(qr, dtype=float)
    out = np.empty_like(x)
    small = np.abs(x) < 1e-2
    xs = x[small]
    out[small] = 1.0 - xs**2 / 10.0 + xs**4 / 280.0
    xb = x[~small]
    out[~small] = 3.0 * (np.sin(xb) - xb * np.cos(xb)) / xb**3
    return out


def number_distribution(r_nm, r_mean_nm: float, sigma_nm: float, kind: str = "schulz") -> np.ndarray:
    """Probability density of radii (nm^-1): Schulz (a gamma distribution with this mean and
    standard deviation) or Gaussian (truncated at r = 0 by the caller's grid)."""
    r = np.asarray(r_nm, dtype=float)
    if kind == "schulz":
        shape = (r_mean_nm / sigma_nm) ** 2                 # z + 1
        return stats.gamma.pdf(r, shape, scale=sigma_nm**2 / r_mean_nm)
    if kind == "gaussian":
        return stats.norm.pdf(r, r_mean_nm, sigma_nm)
    raise ValueError(f"unknown radius distribution {kind!r}; choose one of {', '.join(DISTRIBUTIONS)}")


class SphereTable:
    """V(r)^2 F(q r)^2 (nm^6) for the q bins of the data on a geometric radius grid, so the
    polydisperse intensity is one short matrix-vector product (see module).

    Parameters
    ----------
    q_inv_angstrom : array
        q of the bins to be fitted (A^-1).
    distribution : {"schulz", "gaussian"}
    r_max_nm : float, optional
        Largest radius in the table; default 2.5 pi / q_min (beyond what the data can size).
    step : float
        Relative step of the radius grid.
    """

    def __init__(self, q_inv_angstrom, *, distribution: str = "schulz", r_max_nm: float | None = None,
                 step: float = 0.004):
        if distribution not in DISTRIBUTIONS:
            raise ValueError(f"unknown radius distribution {distribution!r}; choose one of {', '.join(DISTRIBUTIONS)}")
        q = np.asarray(q_inv_angstrom, dtype=float)
        if q.ndim != 1 or len(q) < 8 or not np.all(np.isfinite(q)) or q.min() <= 0:
            raise ValueError("SphereTable needs at least 8 finite q > 0 (A^-1)")
        self.q = q
        self.distribution = distribution
        q_nm = q * NM_PER_ANGSTROM_INV
        self.r_max_nm = float(r_max_nm or min(100.0, 2.5 * math.pi / q_nm.min()))
        self.r_min_nm = 0.05
        n = int(math.ceil(math.log(self.r_max_nm / self.r_min_nm) / math.log1p(step))) + 1
        self.r = self.r_min_nm * (1.0 + step) ** np.arange(n)
        self.dr = trapezoid_weights(self.r)
        volume = 4.0 / 3.0 * math.pi * self.r**3
        self.volume = volume
        self.table = (volume[:, None] ** 2) * sphere_amplitude(np.outer(self.r, q_nm)) ** 2   # (n_r, n_q)
        # radii the q range can size: from about 1 / q_max (form-factor minima) to ~ 1.3 / q_min (Guinier)
        self.r_sizable = (1.0 / q_nm.max(), 1.3 / q_nm.min())

    def _weights(self, r_mean_nm: float, sigma_nm: float) -> tuple[slice, np.ndarray]:
        lo = np.searchsorted(self.r, max(self.r_min_nm, r_mean_nm - 8.0 * sigma_nm))
        hi = np.searchsorted(self.r, r_mean_nm + 10.0 * sigma_nm) + 1
        sl = slice(max(0, lo - 1), min(len(self.r), hi))
        p = number_distribution(self.r[sl], r_mean_nm, sigma_nm, self.distribution)
        w = p * self.dr[sl]
        total = w.sum()
        if not total > 0:
            raise ValueError(f"radius distribution r = {r_mean_nm} nm, sigma = {sigma_nm} nm lies outside "
                             f"the table ({self.r_min_nm}-{self.r_max_nm:.1f} nm)")
        return sl, w / total

    def form(self, r_mean_nm: float, sigma_nm: float) -> np.ndarray:
        """<V^2 F^2> over the number distribution (nm^6) on the q bins."""
        sl, w = self._weights(r_mean_nm, sigma_nm)
        return w @ self.table[sl]

    def mean_volume_nm3(self, r_mean_nm: float, sigma_nm: float) -> float:
        """Number-averaged particle volume <V> (nm^3)."""
        sl, w = self._weights(r_mean_nm, sigma_nm)
        return float(w @ self.volume[sl])

    def intensity(self, r_mean_nm: float, sigma_nm: float, scale: float = 1.0, background: float = 0.0):
        """scale * <V^2 F^2> + background on the q bins."""
        return scale * self.form(r_mean_nm, sigma_nm) + background


# -- per-frame fit -----------------------------------------------------------------------------------
@dataclass
class SphereFit:
    """Result of one frame: ``params`` {name: (value, stderr)} of ``PARAMS``; ``particles``
    False means "no particles" (``reason`` says why; the values are then not reported)."""

    params: dict
    redchi: float
    chi2: float
    chi2_flat: float
    dof: int
    significance: float
    particles: bool
    reason: str = ""
    distribution: str = "schulz"
    q_range: tuple = ()
    mean_volume_nm3: float = math.nan
    model: np.ndarray | None = field(default=None, repr=False)

    def value(self, name: str) -> float:
        return self.params[name][0]

    def stderr(self, name: str) -> float:
        return self.params[name][1]

    @property
    def volume(self) -> float:
        """Scattering volume ~ number density x contrast^2 x <V> (scale x <V>, arbitrary units)."""
        return self.value("scale") * self.mean_volume_nm3 if self.particles else math.nan

    def as_dict(self) -> dict:
        """The JSON form of ``trxrd saxs`` (values None without particles)."""
        out = {"particles": bool(self.particles), "significance": _num(self.significance), "redchi": _num(self.redchi)}
        for name in PARAMS:
            value, err = self.params[name]
            keep = self.particles or name == "background"
            out[name] = {"value": _num(value) if keep else None, "stderr": _num(err) if keep else None}
        if not self.particles:
            out["reason"] = self.reason
        return out


def _num(x):
    return None if x is None or not np.isfinite(x) else float(x)


def _linear(m: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Weighted least squares of y ~ a m + b: (a, b, weighted residuals)."""
    mw = m * w
    a11, a12, a22 = mw @ mw, mw @ w, w @ w
    b1, b2 = mw @ (y * w), w @ (y * w)
    det = a11 * a22 - a12 * a12
    if not det > 0:
        return 0.0, b2 / a22, (y - b2 / a22) * w
    a = (a22 * b1 - a12 * b2) / det
    b = (a11 * b2 - a12 * b1) / det
    return a, b, (y - a * m - b) * w


def guinier_radius_nm(q_inv_angstrom, intensity, background: float = 0.0) -> float | None:
    """Radius of a sphere (nm) from the Guinier slope ln I = ln I0 - q^2 Rg^2 / 3 (R = sqrt(5/3) Rg),
    over the low-q bins where q Rg < 1.3 (iterated); None when the data show no Guinier regime."""
    q = np.asarray(q_inv_angstrom, dtype=float) * NM_PER_ANGSTROM_INV
    y = np.asarray(intensity, dtype=float) - background
    n = max(6, len(q) // 10)
    rg = None
    for _ in range(6):
        sel = slice(0, n)
        qq, yy = q[sel], y[sel]
        good = yy > 0
        if good.sum() < 4:
            return None
        slope = np.polyfit(qq[good] ** 2, np.log(yy[good]), 1)[0]
        if slope >= 0:
            return None
        rg = math.sqrt(-3.0 * slope)
        n_new = int(np.searchsorted(q, 1.3 / rg))
        if n_new < 4:
            break
        if n_new == n:
            break
        n = n_new
    return None if rg is None else math.sqrt(5.0 / 3.0) * rg


def fit_spheres(q_inv_angstrom, intensity, sigma=None, *, table: SphereTable | None = None,
                distribution: str = "schulz", seed=None, q_range: tuple | None = None,
                min_significance: float = MIN_SIGNIFICANCE) -> SphereFit:
    """Fit polydisperse spheres + flat background to one background-subtracted I(q).

    Parameters
    ----------
    q_inv_angstrom, intensity, sigma : arrays
        The pattern (A^-1; any intensity unit; 1-sigma errors, default sqrt(|I|) + 1).
    table : SphereTable, optional
        Built for the same q bins (within *q_range*); made here if not given (reuse it per frame).
    distribution : {"schulz", "gaussian"}
    seed : SphereFit or dict, optional
        Start values (the previous frame's fit, or {"r_mean_nm": ..., "sigma_nm": ...}); default
        a Guinier estimate refined on a few trial radii.
    q_range : (qmin, qmax), optional
        A^-1; default all bins.
    min_significance : float
        The "no particles" criterion (see module).

    Returns
    -------
    SphereFit

    EXAMPLE::

        fit = fit_spheres(q, i, s, table=SphereTable(q))
        fit.as_dict()["r_mean_nm"]          # {"value": ..., "stderr": ...}
    """
    q = np.asarray(q_inv_angstrom, dtype=float)
    y = np.asarray(intensity, dtype=float)
    s = np.sqrt(np.abs(y)) + 1.0 if sigma is None else np.asarray(sigma, dtype=float)
    if q.shape != y.shape or s.shape != y.shape:
        raise ValueError(f"q, intensity and sigma must have one shape, got {q.shape}, {y.shape}, {s.shape}")
    sel = np.isfinite(q) & np.isfinite(y) & np.isfinite(s)
    if q_range is not None:
        lo, hi = q_range
        sel &= (q >= lo) & (q <= hi)
    positive = s[sel & (s > 0)]
    if len(positive) < 8:
        raise ValueError("fewer than 8 valid q bins to fit")
    s = np.where(s > 0, s, positive.min())
    q, y, s = q[sel], y[sel], s[sel]
    if table is None:
        table = SphereTable(q, distribution=distribution)
    elif table.q.shape != q.shape or not np.allclose(table.q, q):
        raise ValueError("the SphereTable was built for other q bins than the ones fitted")
    w = 1.0 / s
    dof = len(q) - 4
    flat_b = float(np.sum(y * w * w) / np.sum(w * w))
    chi2_flat = float(np.sum(((y - flat_b) * w) ** 2))
    r_lo, r_hi = table.r_min_nm * 4, table.r_max_nm / 2

    def residual(x):
        mean, rel = x
        return _linear(table.form(mean, rel * mean), y, w)[2]

    fit = _fit_from(_starts(q, y, seed, table, residual, (r_lo, r_hi)), q, y, w, table, residual, dof, chi2_flat,
                    (r_lo, r_hi), min_significance)
    if seed is not None and not fit.particles:          # the previous frame may mislead: from Guinier too
        fresh = _fit_from(_starts(q, y, None, table, residual, (r_lo, r_hi)), q, y, w, table, residual, dof,
                          chi2_flat, (r_lo, r_hi), min_significance)
        if fresh.particles or fresh.chi2 < fit.chi2:
            fit = fresh
    return fit


def _fit_from(starts, q, y, w, table, residual, dof, chi2_flat, bounds, min_significance) -> SphereFit:
    r_lo, r_hi = bounds
    best = None
    for x0 in starts:
        x0 = np.clip(x0, [r_lo * 1.001, REL_SIGMA_BOUNDS[0] * 1.001], [r_hi * 0.999, REL_SIGMA_BOUNDS[1] * 0.999])
        try:
            res = optimize.least_squares(residual, x0, bounds=([r_lo, REL_SIGMA_BOUNDS[0]], [r_hi, REL_SIGMA_BOUNDS[1]]),
                                         x_scale=[x0[0], 0.05], diff_step=1e-4, xtol=1e-10, ftol=1e-10)
        except ValueError:
            continue
        if best is None or res.cost < best.cost:
            best = res
    if best is None:
        raise ValueError("the sphere fit failed from every start")
    mean, rel = best.x
    sig = rel * mean
    form = table.form(mean, sig)
    scale, bg, res = _linear(form, y, w)
    chi2 = float(res @ res)
    redchi = chi2 / max(dof, 1)
    # full Jacobian (weighted) in (mean, sigma, scale, background) for the covariance
    cols = []
    for k, h in ((0, 1e-4 * mean), (1, 1e-4 * max(sig, 1e-3))):
        xp = [mean, sig]
        xm = [mean, sig]
        xp[k] += h
        xm[k] -= h
        cols.append(scale * (table.form(*xp) - table.form(*xm)) / (2 * h) * w)
    jac = np.stack(cols + [form * w, w], axis=1)
    try:
        cov = np.linalg.inv(jac.T @ jac) * max(redchi, 1e-12)
        errs = np.sqrt(np.clip(np.diag(cov), 0, None))
    except np.linalg.LinAlgError:
        errs = np.full(4, np.nan)
    values = (mean, sig, scale, bg)
    params = {name: (float(v), float(e)) for name, v, e in zip(PARAMS, values, errs)}
    significance = math.sqrt(max(chi2_flat - chi2, 0.0) / max(redchi, 1.0))
    particles, reason = True, ""
    if not scale > 0:
        particles = False
        reason = ("no particles: the sphere term comes out negative (is the background over-subtracted, "
                  "or taken with another monitor?)")
    elif significance < min_significance:
        particles = False
        reason = (f"no particles: the sphere term improves chi2 over a flat background by {significance:.1f} "
                  f"sigma (< {min_significance:g})")
    elif not errs[0] < MAX_RELATIVE_RADIUS_ERROR * mean:
        particles = False
        reason = f"no particles: the mean radius is not determined to {MAX_RELATIVE_RADIUS_ERROR:.0%}"
    elif not table.r_sizable[0] <= mean <= table.r_sizable[1] or mean in (r_lo, r_hi):
        particles = False
        reason = (f"no particles: r = {mean:.2f} nm is outside the radii this q range sizes "
                  f"({table.r_sizable[0]:.2f}-{table.r_sizable[1]:.1f} nm)")
    return SphereFit(params=params, redchi=redchi, chi2=chi2, chi2_flat=chi2_flat, dof=dof,
                     significance=significance, particles=particles, reason=reason,
                     distribution=table.distribution, q_range=(float(q.min()), float(q.max())),
                     mean_volume_nm3=table.mean_volume_nm3(mean, sig), model=scale * form + bg)


def _starts(q, y, seed, table, residual, bounds) -> list:
    """Start values (mean, sigma/mean): the seed, else the best of trial radii around a Guinier estimate."""
    if isinstance(seed, SphereFit):
        seed = {"r_mean_nm": seed.value("r_mean_nm"), "sigma_nm": seed.value("sigma_nm")} if seed.particles else None
    if seed:
        mean = float(seed["r_mean_nm"])
        rel = float(seed.get("sigma_nm", 0.1 * mean)) / mean
        if bounds[0] < mean < bounds[1] and np.isfinite(rel):
            return [np.array([mean, rel])]
    tail = y[-max(5, len(y) // 10):]
    guess = guinier_radius_nm(q, y, float(np.median(tail)))
    lo, hi = max(bounds[0], table.r_sizable[0]), min(bounds[1], table.r_sizable[1])
    centre = guess if guess is not None and lo < guess < hi else math.sqrt(lo * hi)
    trials = [centre * f for f in (0.6, 0.75, 0.9, 1.0, 1.12, 1.3, 1.6) if lo < centre * f < hi] or [centre]
    costs = []
    for r in trials:
        try:
            costs.append(float(np.sum(residual((r, 0.1)) ** 2)))
        except ValueError:
            costs.append(math.inf)
    order = np.argsort(costs)
    return [np.array([trials[i], 0.1]) for i in order[:2]]


# -- background -----------------------------------------------------------------------------------------
def subtract_background(intensity, sigma, background, background_sigma, *, monitor=None, background_monitor=None):
    """I - k B with its error, k = monitor / background_monitor (1 when not given): for frames
    that are not already monitor-normalised, a background frame measured at another flux."""
    k = 1.0
    if monitor is not None or background_monitor is not None:
        if monitor is None or background_monitor is None or not (monitor > 0 and background_monitor > 0):
            raise ValueError("give both monitors (> 0) to scale the background, or neither")
        k = float(monitor) / float(background_monitor)
    i = np.asarray(intensity, dtype=float) - k * np.asarray(background, dtype=float)
    s = np.hypot(np.asarray(sigma, dtype=float), k * np.asarray(background_sigma, dtype=float))
    return i, s


# -- derived series ----------------------------------------------------------------------------------
def absolute_concentration_um(scale, *, contrast_cm2: float, absolute_factor: float = 1.0):
    """Number concentration (uM) from the fitted scale when the intensity times *absolute_factor*
    is in cm^-1 and the particles' contrast (scattering-length-density difference) is
    *contrast_cm2* (cm^-2): n = scale * factor / (drho^2 * 1e-42 cm^6/nm^6)."""
    if not (contrast_cm2 and np.isfinite(contrast_cm2) and absolute_factor > 0):
        raise ValueError("absolute concentration needs a finite contrast (cm^-2) and an absolute factor > 0")
    n_per_cm3 = np.asarray(scale, dtype=float) * absolute_factor / (contrast_cm2**2 * 1e-42)
    return n_per_cm3 * 1e3 / AVOGADRO * 1e6


def time_to_fraction(time_s, values, fraction: float = 0.98, *, final_window_s: float | None = None) -> float | None:
    """When *values* (a quantity that only grows, such as a concentration or a yield) reach
    *fraction* of their final value: the time at which their monotone (isotonic) least-squares
    fit crosses fraction x final, interpolated between frames. The final value is the median
    over the last *final_window_s* (default: the last 10 % of the times, at least 5 frames).
    None if the series never gets there, falls rather than rises (a decreasing monotone fit is
    closer) or has fewer than 5 frames."""
    t = np.asarray(time_s, dtype=float)
    v = np.asarray(values, dtype=float)
    good = np.isfinite(t) & np.isfinite(v)
    t, v = t[good], v[good]
    if len(t) < 5:
        return None
    order = np.argsort(t)
    t, v = t[order], v[order]
    window = final_window_s if final_window_s is not None else 0.1 * (t[-1] - t[0])
    tail = v[t >= t[-1] - window]
    final = float(np.median(tail if len(tail) >= 5 else v[-5:]))
    if not final > 0:
        return None
    level = fraction * final
    rising = optimize.isotonic_regression(v).x
    falling = optimize.isotonic_regression(v, increasing=False).x
    if np.sum((v - falling) ** 2) < np.sum((v - rising) ** 2):      # it falls (ripening, loss): no t98
        return None
    above = np.flatnonzero(rising >= level)
    if len(above) == 0:
        return None
    k = int(above[0])
    if k == 0:
        return float(t[0])
    # between the last frame below and the first at or above, on the monotone fit
    return float(t[k - 1] + (level - rising[k - 1]) / (rising[k] - rising[k - 1]) * (t[k] - t[k - 1]))


def growth_rate(time_s, r_nm, r_err=None, *, window_s: float = 2.0) -> dict:
    """dr/dt from weighted straight lines through r(t) in consecutive windows of *window_s*:
    {"r_nm", "drdt_nm_s", "drdt_err_nm_s", "time_s"} per window (at least 4 frames each)."""
    t = np.asarray(time_s, dtype=float)
    r = np.asarray(r_nm, dtype=float)
    e = np.ones_like(r) if r_err is None else np.asarray(r_err, dtype=float)
    good = np.isfinite(t) & np.isfinite(r) & np.isfinite(e) & (e > 0)
    t, r, e = t[good], r[good], e[good]
    out = {"time_s": [], "r_nm": [], "drdt_nm_s": [], "drdt_err_nm_s": []}
    if len(t) < 4:
        return out
    edges = np.arange(t.min(), t.max() + window_s, window_s)
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (t >= lo) & (t < hi)
        if sel.sum() < 4:
            continue
        (slope, icpt), cov = np.polyfit(t[sel], r[sel], 1, w=1.0 / e[sel], cov="unscaled")
        resid = (r[sel] - (slope * t[sel] + icpt)) / e[sel]
        scale = max(1.0, float(resid @ resid) / (sel.sum() - 2))
        tc = float(np.mean(t[sel]))
        out["time_s"].append(tc)
        out["r_nm"].append(float(slope * tc + icpt))
        out["drdt_nm_s"].append(float(slope))
        out["drdt_err_nm_s"].append(float(math.sqrt(cov[0, 0] * scale)))
    return out


def fit_growth_law(r_nm, drdt_nm_s, drdt_err_nm_s) -> dict | None:
    """Weighted fit of dr/dt = k / r^n: {"k": {"value", "stderr"} (nm^(n+1)/s), "n": {...},
    "points": N}; None with fewer than 3 windows of positive growth."""
    r = np.asarray(r_nm, dtype=float)
    g = np.asarray(drdt_nm_s, dtype=float)
    e = np.asarray(drdt_err_nm_s, dtype=float)
    sel = np.isfinite(r) & np.isfinite(g) & np.isfinite(e) & (e > 0) & (r > 0) & (g > 0)
    if sel.sum() < 3:
        return None
    r, g, e = r[sel], g[sel], e[sel]
    ln_k0, n0 = np.polyfit(np.log(r), np.log(g), 1)[::-1]
    try:
        popt, pcov = optimize.curve_fit(lambda x, k, n: k * x ** (-n), r, g, p0=[math.exp(ln_k0), -n0], sigma=e,
                                        absolute_sigma=False, maxfev=5000)
    except (RuntimeError, ValueError):
        return None
    errs = np.sqrt(np.clip(np.diag(pcov), 0, None))
    return {"k": {"value": float(popt[0]), "stderr": float(errs[0])},
            "n": {"value": float(popt[1]), "stderr": float(errs[1])}, "points": int(sel.sum())}


def saxs_series(frames: list[dict], *, contrast_cm2: float | None = None, absolute_factor: float = 1.0,
                growth_window_s: float | None = None) -> dict:
    """The derived series of a synthesis from per-frame results ({"time_s", "fit": SphereFit}):
    relative number concentration and yield (scattering volume) against their final values,
    t98 of both, the growth rate (straight lines through r(t) in windows of *growth_window_s*,
    default max(2 s, 4.5 frame intervals): at least 4 frames each) and the growth-law fit. Adds
    "concentration_rel", "yield_rel" (and "concentration_um" with a contrast) to each frame's dict."""
    with_p = [f for f in frames if f["fit"] is not None and f["fit"].particles and f["time_s"] >= 0]
    times = np.array([f["time_s"] for f in with_p])
    scales = np.array([f["fit"].value("scale") for f in with_p])
    volumes = np.array([f["fit"].volume for f in with_p])
    t98_c = time_to_fraction(times, scales)
    t98_y = time_to_fraction(times, volumes)
    final_c = _final(times, scales)
    final_v = _final(times, volumes)
    for f in frames:
        fit = f["fit"]
        ok = fit is not None and fit.particles
        f["concentration_rel"] = fit.value("scale") / final_c if ok and final_c else None
        f["yield_rel"] = fit.volume / final_v if ok and final_v else None
        if contrast_cm2 is not None:
            f["concentration_um"] = (float(absolute_concentration_um(fit.value("scale"), contrast_cm2=contrast_cm2,
                                                                     absolute_factor=absolute_factor)) if ok else None)
    if growth_window_s is None:
        step = float(np.median(np.diff(np.sort(times)))) if len(times) > 1 else 0.0
        growth_window_s = max(2.0, 4.5 * step)
    rates = growth_rate(times, [f["fit"].value("r_mean_nm") for f in with_p],
                        [f["fit"].stderr("r_mean_nm") for f in with_p], window_s=growth_window_s)
    return {"t98_concentration_s": t98_c, "t98_yield_s": t98_y, "growth_rate": rates, "growth_window_s": growth_window_s,
            "growth_law": fit_growth_law(rates["r_nm"], rates["drdt_nm_s"], rates["drdt_err_nm_s"]),
            "frames_with_particles": len(with_p)}


def _final(times, values) -> float | None:
    if len(values) < 5:
        return None
    tail = values[times >= times.max() - 0.1 * (times.max() - times.min())]
    return float(np.median(tail if len(tail) >= 5 else values[-5:]))


# -- stacking peak of a platelet film --------------------------------------------------------------------
@dataclass
class StackingFit:
    """Stacking peak of one frame: position q* (A^-1), FWHM, area, and from them the period
    d = 2 pi / q* and the correlation length xi = 2 pi / FWHM (nm); ``found`` False when no
    significant peak (``reason``)."""

    q_star: tuple
    fwhm: tuple
    area: tuple
    d_nm: tuple
    xi_nm: tuple
    redchi: float
    significance: float
    found: bool
    reason: str = ""
    window: tuple = ()

    def as_dict(self) -> dict:
        out = {"found": bool(self.found), "redchi": _num(self.redchi), "significance": _num(self.significance)}
        for name in ("q_star", "fwhm", "area", "d_nm", "xi_nm"):
            value, err = getattr(self, name)
            out[name] = {"value": _num(value) if self.found else None, "stderr": _num(err) if self.found else None}
        if not self.found:
            out["reason"] = self.reason
        return out


def _lorentzian(q, q0, fwhm, area):
    g = fwhm / 2.0
    return area / math.pi * g / ((q - q0) ** 2 + g * g)


def _find_peaks(q: np.ndarray, y: np.ndarray, most: int = 3) -> list[tuple[float, float]]:
    """Positions and widths (A^-1) of the *most* prominent bumps of log I above a smooth trend
    (a quadratic in log I vs log q: power laws and a flat background bend it only slowly),
    most prominent first."""
    from scipy.signal import find_peaks, peak_widths

    logq, logy = np.log(q), np.log(np.clip(y, np.max(y) * 1e-9, None))
    resid = logy - np.polyval(np.polyfit(logq, logy, 2), logq)
    smooth = np.convolve(resid, np.ones(5) / 5, mode="same")
    peaks, props = find_peaks(smooth[2:-2], prominence=0)
    if len(peaks) == 0:
        k = int(np.argmax(smooth))
        return [(float(q[k]), 0.1 * float(q[k]))]
    out = []
    for i in np.argsort(props["prominences"])[::-1][:most]:
        k = int(peaks[i]) + 2
        fw = peak_widths(smooth, [k], rel_height=0.5)[0][0] * float(np.median(np.diff(q)))
        out.append((float(q[k]), float(np.clip(fw, 0.02 * q[k], 0.5 * q[k]))))
    return out


def fit_stacking_peak(q_inv_angstrom, intensity, sigma=None, *, q_range: tuple, seed: StackingFit | None = None,
                      min_significance: float = MIN_SIGNIFICANCE) -> StackingFit:
    """Stacking peak as a structure factor: I = B(q) (1 + L(q)), L a Lorentzian (position q*,
    FWHM, area in A^-1) and B a smooth local background (a power law with curvature in log-log:
    the platelets' form factor), fitted in a window of +-4 FWHM around the peak inside *q_range*
    (A^-1). The peak multiplies the form factor, so a falling form factor does not pull q* low.
    The fit starts at the three most prominent bumps of log I over a smooth trend and, with a
    *seed* (the previous frame's fit with a peak), also where that peak was: the most
    significant stacking peak wins (a peak that moved, a broad form-factor hump next to a
    narrow peak). Significance:
    sqrt((chi2 without the peak - chi2) / max(redchi, 1)) in the window; below
    *min_significance*, wider than q* / MIN_STACKED_PERIODS (a correlation length under two
    periods: a form-factor hump), or closer than 2 FWHM to the end of the data in its window (no
    background measured on that side), the peak is "not found".

    EXAMPLE::

        fit = fit_stacking_peak(q, i, s, q_range=(0.1, 0.8))
        fit.d_nm                            # (period in nm, stderr)
    """
    q = np.asarray(q_inv_angstrom, dtype=float)
    y = np.asarray(intensity, dtype=float)
    s = np.sqrt(np.abs(y)) + 1.0 if sigma is None else np.asarray(sigma, dtype=float)
    lo, hi = q_range
    if not (0 < lo < hi):
        raise ValueError(f"stacking q range {q_range}: need 0 < QMIN < QMAX (A^-1)")
    sel = np.isfinite(y) & np.isfinite(s) & (s > 0) & (q >= lo) & (q <= hi)
    if sel.sum() < 12:
        raise ValueError(f"stacking q range {lo}-{hi} A^-1 holds fewer than 12 valid bins")
    qa, ya, sa = q[sel], y[sel], s[sel]
    starts = _find_peaks(qa, ya)
    if seed is not None and seed.found and lo < seed.q_star[0] < hi:
        starts.insert(0, (seed.q_star[0], seed.fwhm[0]))
    fits = [_stacking_from(qa, ya, sa, q0, fw, (lo, hi), min_significance) for q0, fw in starts]
    found = [f for f in fits if f.found]
    return max(found, key=lambda f: f.significance) if found else fits[0]


def _stacking_from(qa, ya, sa, q0, fw, q_range, min_significance) -> StackingFit:
    """The fit in log I (see ``fit_stacking_peak``): log I = log B + log(1 + L); log B = c0 - p u + c2 u^2,
    u = log(q / q0), is linear and solved exactly for every (q*, FWHM, area) (variable projection)."""
    lo, hi = q_range

    def failed(why):
        nan2 = (math.nan, math.nan)
        return StackingFit(nan2, nan2, nan2, nan2, nan2, math.nan, 0.0, False, f"no stacking peak: {why}", (lo, hi))

    for _ in range(2):
        win = (qa >= q0 - 4 * fw) & (qa <= q0 + 4 * fw) & (ya > 0)
        if win.sum() < 10:
            return failed(f"fewer than 10 bins with counts within 4 FWHM of q = {q0:.3f} A^-1")
        qw, yw, sw = qa[win], ya[win], sa[win]
        z, wz = np.log(yw), yw / sw                        # log I and its weights (sigma_log = sigma / I)
        u = np.log(qw / q0)
        basis = np.stack([np.ones_like(u), -u, u * u], axis=1) * wz[:, None]

        def residual(x, basis=basis, z=z, wz=wz, qw=qw):
            qc, width, log_area = x
            target = (z - np.log1p(_lorentzian(qw, qc, width, math.exp(log_area)))) * wz
            coef, *_ = np.linalg.lstsq(basis, target, rcond=None)
            return target - basis @ coef

        peak_rel = max(float(np.interp(q0, qw, yw)) / float(np.median(yw)) - 1.0, 0.05)
        x0 = [q0, fw, math.log(peak_rel * math.pi * fw / 2)]
        bounds = ([qw[0], 0.2 * fw, -20.0], [qw[-1], 4.0 * fw, 10.0])
        x0 = np.clip(x0, np.array(bounds[0]) + 1e-12, np.array(bounds[1]) - 1e-12)
        try:
            res = optimize.least_squares(residual, x0, bounds=bounds, x_scale=[fw, fw, 1.0], xtol=1e-12, ftol=1e-12)
        except ValueError as exc:
            return failed(f"the fit failed ({exc})")
        q0, fw = float(res.x[0]), float(res.x[1])
    chi2 = float(res.fun @ res.fun)
    redchi = chi2 / max(len(qw) - 6, 1)
    try:
        cov = np.linalg.inv(res.jac.T @ res.jac) * max(redchi, 1e-12)
        errs = np.sqrt(np.clip(np.diag(cov), 0, None))
    except np.linalg.LinAlgError:
        errs = np.full(3, np.nan)
    qc, width, area = float(res.x[0]), float(res.x[1]), math.exp(res.x[2])
    qc_e, width_e, area_e = float(errs[0]), float(errs[1]), area * float(errs[2])
    coef, *_ = np.linalg.lstsq(basis, z * wz, rcond=None)           # the same window without a peak
    chi2_flat = float(((z * wz - basis @ coef) ** 2).sum())
    significance = math.sqrt(max(chi2_flat - chi2, 0.0) / max(redchi, 1.0))
    found, reason = True, ""
    if not significance >= min_significance:
        found, reason = False, (f"no stacking peak: it improves chi2 over the background alone by {significance:.1f} "
                                f"sigma (< {min_significance:g})")
    elif not (qw[0] + 2 * width <= qc <= qw[-1] - 2 * width):
        found, reason = False, (f"no stacking peak: the bump at {qc:.3f} A^-1 lies within 2 FWHM of the end of the "
                                f"data ({qw[0]:.3f}-{qw[-1]:.3f} A^-1): its background is not measured on both sides")
    elif width > qc / MIN_STACKED_PERIODS:
        found, reason = False, (f"no stacking peak: the bump at {qc:.3f} A^-1 is {width / qc:.2f} q* wide, a correlation "
                                f"length under {MIN_STACKED_PERIODS:g} periods (a form-factor hump, not a stack)")
    d = 2 * math.pi / (NM_PER_ANGSTROM_INV * qc)
    xi = 2 * math.pi / (NM_PER_ANGSTROM_INV * width)
    return StackingFit(q_star=(qc, qc_e), fwhm=(width, width_e), area=(area, area_e), d_nm=(d, d * qc_e / qc),
                       xi_nm=(xi, xi * width_e / width), redchi=redchi, significance=significance, found=found,
                       reason=reason, window=(float(qw[0]), float(qw[-1])))


def stacking_segments(frames: list[dict], hold_tail: float = 1.0 / 3.0) -> list[dict]:
    """Per anneal segment (frames carry "segment", "segment_kind", "time_s", "temperature_c",
    "fit": StackingFit): its kind, times, temperatures, the d(t) trajectory, and for every
    segment the period at its end, mean and standard error of d over the last *hold_tail* of its
    frames with a peak (for a hold: the settled distance)."""
    out = []
    keys = sorted({f["segment"] for f in frames})
    for seg in keys:
        rows = [f for f in frames if f["segment"] == seg]
        good = [f for f in rows if f["fit"] is not None and f["fit"].found]
        d = np.array([f["fit"].d_nm[0] for f in good])
        entry = {"segment": int(seg), "kind": rows[0].get("segment_kind", ""),
                 "time_s": [float(rows[0]["time_s"]), float(rows[-1]["time_s"])],
                 "temperature_c": [float(rows[0]["temperature_c"]), float(rows[-1]["temperature_c"])],
                 "frames": len(rows), "frames_with_peak": len(good),
                 "trajectory": [{"time_s": float(f["time_s"]), "temperature_c": float(f["temperature_c"]),
                                 "d_nm": float(f["fit"].d_nm[0]), "d_err_nm": float(f["fit"].d_nm[1])} for f in good]}
        if len(good):
            tail = d[-max(1, int(math.ceil(hold_tail * len(d)))):]
            entry["d_end_nm"] = {"value": float(np.mean(tail)),
                                 "stderr": float(np.std(tail, ddof=1) / math.sqrt(len(tail))) if len(tail) > 1
                                 else float(good[-1]["fit"].d_nm[1])}
        else:
            entry["d_end_nm"] = {"value": None, "stderr": None}
        out.append(entry)
    return out


CRITERION = (f"particles when the sphere term improves chi2 over a flat background by >= {MIN_SIGNIFICANCE:g} sigma, "
             f"the mean radius is determined to {MAX_RELATIVE_RADIUS_ERROR:.0%} and lies within the radii the q "
             "range sizes")
BEFORE_INJECTION = "before injection (background)"


def saxs_report(rows: list[dict], series: dict) -> dict:
    """The JSON form of a synthesis reduction (``trxrd saxs --json``, the live ``saxs`` run's
    report): per frame the fit (values None without particles, with the reason), t98s and the
    growth law."""
    frames = []
    for r in rows:
        fit = r.get("fit")
        entry = {"frame": r["frame"], "time_s": r["time_s"]}
        if fit is None:
            entry.update(particles=False, reason=r.get("reason", BEFORE_INJECTION))
        else:
            entry.update(fit.as_dict())
            entry["concentration_rel"] = r.get("concentration_rel")
            entry["yield_rel"] = r.get("yield_rel")
            if "concentration_um" in r:
                entry["concentration_um"] = r["concentration_um"]
        frames.append(entry)
    return {"frames": frames, "t98_concentration_s": series["t98_concentration_s"],
            "t98_yield_s": series["t98_yield_s"], "growth_law": series["growth_law"],
            "growth_rate": series["growth_rate"], "growth_window_s": series["growth_window_s"],
            "criterion": CRITERION}
