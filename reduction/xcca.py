"""X-ray cross-correlation analysis (XCCA) of nano-diffraction patterns: pure functions.

A raster of a mesocrystal film gives one pattern per beam position. Each pattern is re-binned
in (q, phi) by pyFAI's binning (``AzimuthalIntegration.polars``); on two rings q1 and q2 (a superlattice
(SL) reflection at small angle and an atomic-lattice (AL) reflection) this module finds

- the **ring profiles** I(phi) (mean over the ring's width dq; masked and gap bins are invalid,
  never zero-filled) and their **peaks** (azimuth, height, FWHM with errors; kept at
  ``MIN_SIGNIFICANCE`` sigma of Poisson noise over the ring's median);
- the **grain orientation**: the mirror axis of the spots on the lower-q (SL) ring, i.e. the
  bisector of the short arc between its two strongest spots folded onto 0-180 deg (for a bct SL
  seen along [110] with 1 <= c/a < sqrt 2, between bcc and fcc, that is the [001] axis); the same
  construction on the AL ring gives its mirror axis (for AL 111 along [110]: [1-10], 90 deg from
  [001]); the **misorientation** psi = AL axis - SL axis, folded into [-45, 45) deg since both
  patterns have two perpendicular mirror lines;
- the **two-point cross-correlation function** C(q1, q2, D) = <dI(q1, phi) dI(q2, phi + D)>_phi
  / (<I(q1)> <I(q2)>), dI = I - <I>_phi, by FFT along phi, each product normalised by the
  correlation of the two rings' valid-bin masks (so a half-masked ring gives the same CCF), and its
  Fourier components C_n; the CCF averaged over the patterns that show peaks on both rings;
- the **peaks of the averaged CCF** (Gaussians of one shared width with the average's symmetry
  C(D) = C(-D) = C(D + 180), started at the maxima of the smoothed -C''), and from them **beta
  and c/a** of a bct SL: for a rock-salt AL and a bct SL,
  both with [110] along the beam and [001]_SL parallel to [001]_AL, the CCF between the AL 111
  ring and the SL 112 ring peaks at D = +-(90 +- theta +- beta), theta = 35.26 deg (the angle
  between [1-11] and [1-10]), tan(beta) = c / (a sqrt 2);
- the **averaged Bragg peak**: the AL ring's spots stacked on their fitted azimuth, fitted with
  Gaussians radially and azimuthally; the azimuthal width in excess of the radial one (a spot of
  a finite, randomly oriented crystal is as wide in angle as its radial width / q) is the
  **orientational disorder** (FWHM, deg).

The errors of the averages (beta, c/a, widths, disorder) are the larger of the fit's and the
spread of SUBSETS interleaved subsets of the patterns.

EXAMPLE::

    from trxrd.reduction.integrate import AzimuthalIntegration
    from trxrd.reduction.xcca import XccaAnalysis
    xc = XccaAnalysis(AzimuthalIntegration("waxs.poni", mask="waxs_mask.edf"), q1=1.833, q2=0.172)
    for frame in frames:
        row = xc.add(frame)               # {"has_grain": True, "orientation_deg": 31.2, ...}
    report = xc.report()                  # averaged CCF, its peaks, beta, c/a, disorder
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
THETA_DEG = math.degrees(math.acos(math.sqrt(2.0 / 3.0)))   # 35.26: [1-11] vs [1-10] in a cubic lattice
MIN_SIGNIFICANCE = 5.0        # sigma of a ring peak over the ring's median
SMOOTH_DEG = 2.0              # sigma of the smoothing before the spots' maxima are found
SIGNIFICANCE_HALF_DEG = 8.0   # half window of a spot's excess over the ring's median
FIT_HALF_DEG = 16.0           # half window of a spot's Gaussian fit
SPOT_SIGMA_DEG = (0.6, 24.0)  # range of a spot's Gaussian sigma
DQ_DEFAULT = 0.02             # width of each ring (A^-1)
MIN_CCF_PATTERNS = 3          # patterns with both rings needed for an averaged CCF
CRITERION = (f"a ring shows a grain's spot where the excess over the ring's median within "
             f"+-{SIGNIFICANCE_HALF_DEG:g} deg of a "
             f"local maximum is >= {MIN_SIGNIFICANCE:g} sigma (Poisson) and a Gaussian fits it; the CCF "
             f"average takes the patterns with spots on both rings")


def wrap180(angle):
    """Angle(s) in deg wrapped into [-180, 180)."""
    return (np.asarray(angle, dtype=float) + 180.0) % 360.0 - 180.0


def _wrap_period(angle, period):
    return (np.asarray(angle, dtype=float) + period / 2) % period - period / 2


# -- rings -------------------------------------------------------------------------------------------
@dataclass
class Ring:
    """The profile of one ring: I(phi) (nan where no valid pixel), its Poisson 1-sigma and the
    valid-bin mask; q and dq in A^-1, phi in deg."""
    q: float
    dq: float
    phi_deg: np.ndarray
    intensity: np.ndarray
    sigma: np.ndarray
    valid: np.ndarray

    @property
    def bin_deg(self) -> float:
        return 360.0 / len(self.phi_deg)

    @property
    def mean(self) -> float:
        return float(np.mean(self.intensity[self.valid])) if self.valid.any() else math.nan


def ring_profile(polar, q: float, dq: float) -> Ring:
    """The ring |q' - q| <= dq / 2 of a ``Polar`` re-binning: per azimuth bin the summed counts over
    the summed normalisation of its valid pixels. ``ValueError`` when no q bin of *polar* lies in
    the ring."""
    qs = np.asarray(polar.q_inv_angstrom)
    sel = np.abs(qs - q) <= dq / 2 + 1e-12
    if not sel.any():
        step = float(np.median(np.diff(qs))) if qs.size > 1 else 0.0
        raise ValueError(f"no q bin within the ring {q:.4f} +- {dq / 2:.4f} A^-1 (bins of {step:.4f} A^-1): "
                         f"widen dq")
    signal = polar.signal[:, sel].sum(axis=1)
    norm = polar.norm[:, sel].sum(axis=1)
    valid = (polar.count[:, sel].sum(axis=1) > 0) & (norm > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        intensity = np.where(valid, signal / norm, np.nan)
        sigma = np.where(valid, np.sqrt(np.maximum(signal, 1.0)) / norm, np.nan)
    return Ring(float(q), float(dq), np.asarray(polar.phi_deg, dtype=float), intensity, sigma, valid)


@dataclass
class RingPeak:
    """A spot on a ring: azimuth (deg, in [-180, 180)), height above the ring's level and FWHM
    (deg), with 1-sigma errors, and its significance (sigma)."""
    phi_deg: float
    phi_err: float
    height: float
    fwhm_deg: float
    fwhm_err: float
    significance: float


def _circular_smooth(values, weights, sigma_bins):
    n = len(values)
    k = np.fft.rfftfreq(n) * 2 * np.pi
    kernel = np.exp(-0.5 * (k * sigma_bins) ** 2)
    num = np.fft.irfft(np.fft.rfft(values) * kernel, n)
    den = np.fft.irfft(np.fft.rfft(weights) * kernel, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 1e-3, num / den, np.nan)


def _gauss(x, height, centre, sigma):
    return height * np.exp(-0.5 * ((x - centre) / sigma) ** 2)


def ring_peaks(ring: Ring, *, min_significance: float = MIN_SIGNIFICANCE, max_peaks: int = 8) -> list[RingPeak]:
    """The spots on *ring*: local maxima of the profile smoothed over SMOOTH_DEG whose excess over
    the ring's median within +-SIGNIFICANCE_HALF_DEG is at least *min_significance* Poisson sigma,
    each fitted with a Gaussian on a constant (periodic in phi) over +-FIT_HALF_DEG; strongest
    first, at most *max_peaks*."""
    valid = ring.valid
    if valid.sum() < 8:
        return []
    n, step = len(ring.phi_deg), ring.bin_deg
    level = float(np.median(ring.intensity[valid]))
    excess = np.where(valid, ring.intensity - level, 0.0)
    var = np.where(valid, ring.sigma**2, 0.0)
    smooth = _circular_smooth(excess, valid.astype(float), max(SMOOTH_DEG / step, 0.5))
    ok = np.isfinite(smooth)
    s = np.where(ok, smooth, -np.inf)
    maxima = np.flatnonzero(ok & (s > 0) & (s >= np.roll(s, 1)) & (s > np.roll(s, -1)))
    half = max(1, round(SIGNIFICANCE_HALF_DEG / step))
    offsets = np.arange(-half, half + 1)
    found: list[RingPeak] = []
    for m in maxima[np.argsort(-s[maxima])]:
        idx = (m + offsets) % n
        err = math.sqrt(var[idx].sum())
        significance = excess[idx].sum() / err if err > 0 else 0.0
        if significance < min_significance:
            continue
        peak = _fit_ring_peak(ring, m, level, step)
        if peak is None:
            continue
        peak.significance = float(significance)
        if any(abs(float(wrap180(peak.phi_deg - p.phi_deg))) < 0.5 * max(peak.fwhm_deg, p.fwhm_deg)
               for p in found):
            continue
        found.append(peak)
        if len(found) == max_peaks:
            break
    return found


def _fit_ring_peak(ring: Ring, m: int, level: float, step: float) -> RingPeak | None:
    n = len(ring.phi_deg)
    half = max(3, round(FIT_HALF_DEG / step))
    idx = (m + np.arange(-half, half + 1)) % n
    idx = idx[ring.valid[idx]]
    if idx.size < 5:
        return None
    x = wrap180(ring.phi_deg[idx] - ring.phi_deg[m])
    y, e = ring.intensity[idx], ring.sigma[idx]

    def resid(p):
        return (p[0] + _gauss(x, p[1], p[2], p[3]) - y) / e

    def jac(p):                  # analytic: a pattern has a few spots per ring, a raster thousands
        u = (x - p[2]) / p[3]
        g = np.exp(-0.5 * u * u)
        return np.column_stack([np.ones_like(x), g, p[1] * g * u / p[3], p[1] * g * u * u / p[3]]) / e[:, None]

    height0 = max(float(y.max() - level), 1e-12)
    try:
        lo, hi = SPOT_SIGMA_DEG
        fit = least_squares(resid, [level, height0, 0.0, float(np.clip(3.0, lo, hi))], jac=jac,
                            bounds=([-np.inf, 0.0, -max(3 * step, SMOOTH_DEG), min(lo, step)],
                                    [np.inf, np.inf, max(3 * step, SMOOTH_DEG), hi]))
    except ValueError:
        return None
    if not fit.success:
        return None
    J = fit.jac
    try:
        cov = np.linalg.inv(J.T @ J) * max(1.0, 2 * fit.cost / max(idx.size - 4, 1))
    except np.linalg.LinAlgError:
        return None
    err = np.sqrt(np.clip(np.diag(cov), 0, None))
    if not (np.all(np.isfinite(err)) and fit.x[1] > 2 * err[1]):
        return None
    return RingPeak(float(wrap180(ring.phi_deg[m] + fit.x[2])), float(err[2]), float(fit.x[1]),
                    float(fit.x[3] * FWHM_PER_SIGMA), float(err[3] * FWHM_PER_SIGMA), 0.0)


def mirror_axis(peaks: list[RingPeak]) -> tuple[float, float] | None:
    """(axis, error) in deg, axis in [0, 180): the bisector of the short arc between the two
    strongest spots folded onto 0-180 deg; None without two such spots (one spot and its Friedel
    mate do not show where the mirror line is)."""
    if not peaks:
        return None
    a = peaks[0]
    others = [p for p in peaks[1:]
              if abs(float(_wrap_period(p.phi_deg - a.phi_deg, 180.0))) > 0.5 * max(p.fwhm_deg, a.fwhm_deg)]
    if not others:
        return None
    b = others[0]
    axis = a.phi_deg + 0.5 * float(_wrap_period(b.phi_deg - a.phi_deg, 180.0))
    return float(axis % 180.0), 0.5 * math.hypot(a.phi_err, b.phi_err)


# -- cross-correlation ----------------------------------------------------------------------------------
def _fluctuation(ring: Ring):
    w = ring.valid.astype(float)
    mean = ring.mean
    return np.where(ring.valid, ring.intensity - mean, 0.0), w, mean


def ccf(ring1: Ring, ring2: Ring, *, min_overlap: float = 0.1) -> np.ndarray:
    """C(q1, q2, D) for D = k x bin (k = 0 .. nphi - 1, deg) by FFT along phi:
    sum_phi dI1(phi) dI2(phi + D) / sum_phi W1(phi) W2(phi + D) / (<I1> <I2>), dI = I - <I>
    over the valid bins W; nan where fewer than *min_overlap* of the bins overlap."""
    if len(ring1.phi_deg) != len(ring2.phi_deg):
        raise ValueError("the two rings have different azimuthal binnings")
    d1, w1, m1 = _fluctuation(ring1)
    d2, w2, m2 = _fluctuation(ring2)
    n = len(d1)
    num = np.fft.irfft(np.conj(np.fft.rfft(d1)) * np.fft.rfft(d2), n)
    den = np.fft.irfft(np.conj(np.fft.rfft(w1)) * np.fft.rfft(w2), n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > max(min_overlap * n, 0.5), num / np.round(den) / (m1 * m2), np.nan)


def ccf_direct(ring1: Ring, ring2: Ring) -> np.ndarray:
    """``ccf`` by the direct sum over phi (the reference of the FFT; O(nphi^2))."""
    d1, w1, m1 = _fluctuation(ring1)
    d2, w2, m2 = _fluctuation(ring2)
    n = len(d1)
    out = np.full(n, np.nan)
    for k in range(n):
        den = np.sum(w1 * np.roll(w2, -k))
        if den > max(0.1 * n, 0.5):
            out[k] = np.sum(d1 * np.roll(d2, -k)) / den / (m1 * m2)
    return out


def delta_deg(nphi: int) -> np.ndarray:
    """The D axis of ``ccf`` (deg): k x 360 / nphi."""
    return np.arange(nphi) * 360.0 / nphi


def fourier_components(c: np.ndarray, n_max: int = 12) -> np.ndarray:
    """|C_n| for n = 0 .. n_max of a CCF over the full circle (nan bins left out of the mean;
    C_n = <C(D) exp(-i n D)>_D)."""
    ok = np.isfinite(c)
    d = np.radians(delta_deg(len(c)))[ok]
    n = np.arange(n_max + 1)[:, None]
    return np.abs(np.mean(c[ok][None, :] * np.exp(-1j * n * d[None, :]), axis=1)) if ok.any() else \
        np.full(n_max + 1, np.nan)


def dominant_symmetry(c: np.ndarray) -> int:
    """The n-fold symmetry of a ring's autocorrelation: the even n in 2..12 with the largest |C_n|
    (0 when undetermined)."""
    comps = fourier_components(c)
    if not np.isfinite(comps).all():
        return 0
    even = np.arange(2, 13, 2)
    return int(even[np.argmax(comps[even])])


# -- the averaged CCF's peaks and the bct model ---------------------------------------------------------------
@dataclass
class CcfPeak:
    """A peak of the averaged CCF: position D (deg, in [-180, 180)), amplitude and FWHM, with
    errors; *component* numbers the fitted peaks (the symmetric copies of one share it)."""
    delta_deg: float
    delta_err: float
    amplitude: float
    fwhm_deg: float
    component: int = 0


def _images(p):
    """The four D of one peak of a CCF with C(D) = C(-D) = C(D + 180)."""
    return (p, -p, 180.0 - p, p - 180.0)


def _ccf_model(x, params, k, symmetric):
    out = np.full_like(x, params[0])
    sig = params[1]
    for j in range(k):
        amp, centre = params[2 + 2 * j: 4 + 2 * j]
        for c in (_images(centre) if symmetric else (centre,)):
            out += amp * np.exp(-0.5 * (wrap180(x - c) / sig) ** 2)
    return out


def symmetrized(c: np.ndarray) -> np.ndarray:
    """The mean of C(D), C(-D), C(D + 180) and C(180 - D) (nan-aware) on the D grid of
    ``XccaAnalysis.averaged_ccf`` (-180 + i x 360 / n, n even)."""
    n = len(c)
    i = np.arange(n)
    stack = np.array([c, c[(n - i) % n], c[(i + n // 2) % n], c[(n - i - n // 2) % n]])
    with np.errstate(invalid="ignore"):
        return np.nanmean(stack, axis=0) if np.isfinite(stack).any() else np.full(n, np.nan)


def ccf_peaks(delta: np.ndarray, c: np.ndarray, err: np.ndarray | None = None, *, symmetric: bool = True,
              min_significance: float = 3.0, max_peaks: int = 12) -> list[CcfPeak]:
    """Peaks of an averaged CCF on the D grid of ``XccaAnalysis.averaged_ccf`` (deg, -180 ..
    180): candidates at the maxima of -C'' of the smoothed CCF where C is above its median,
    refined together as Gaussians of one shared width on a constant (periodic in D). With
    *symmetric* (patterns that obey Friedel's law and have a mirror line, as both lattices seen
    along [110] do) each peak p comes with -p, 180 - p and p - 180, which resolves pairs closer
    than a width (a pair around 90 deg is one p below 90 and its image above). A peak is kept when
    its amplitude exceeds *min_significance* times its error. Sorted by D."""
    ok = np.isfinite(c)
    n = len(c)
    if ok.sum() < 16 or (symmetric and n % 2):
        return []
    step = 360.0 / n
    if err is None:
        e = np.full(n, float(np.nanstd(np.diff(c[ok])) / math.sqrt(2)) or 1.0)
    else:
        e = np.asarray(err, dtype=float)
        good = np.isfinite(e) & (e > 0)
        e = np.where(good, e, np.median(e[good]) if good.any() else 1.0)
    ref = symmetrized(c) if symmetric else c
    rok = np.isfinite(ref)
    smooth = _circular_smooth(np.where(rok, ref, 0.0), rok.astype(float), max(1.0, 2.0 / step))
    curv = -(np.roll(smooth, -1) - 2 * smooth + np.roll(smooth, 1))
    median = float(np.nanmedian(c))
    sel = np.isfinite(curv) & (curv > 0) & (curv >= np.roll(curv, 1)) & (curv >= np.roll(curv, -1)) & (smooth > median)
    if symmetric:
        sel &= (delta >= -step / 2) & (delta <= 90.0 + step / 2)
    cand = np.flatnonzero(sel)
    if cand.size == 0:
        return []
    cand = cand[np.argsort(-curv[cand])][:max_peaks]
    x, y, ye = delta[ok], c[ok], e[ok]
    k = cand.size
    sig0 = 3.0 * step
    p0, lo, hi = [median, sig0], [-np.inf, 0.5 * step], [np.inf, 30.0]
    for m in cand:
        centre = float(delta[m])
        if symmetric:      # off the mirror points, where the fit could not move
            centre = float(np.clip(centre, 0.5 * sig0, 90.0 - 0.5 * sig0))
            lo += [0.0, 0.0]
            hi += [np.inf, 90.0]
        else:
            lo += [0.0, centre - 6 * step]
            hi += [np.inf, centre + 6 * step]
        p0 += [max(float(smooth[m]) - median, 1e-12), centre]
    fit = least_squares(lambda p: (_ccf_model(x, p, k, symmetric) - y) / ye, p0, bounds=(lo, hi), x_scale="jac")
    cov = np.linalg.pinv(fit.jac.T @ fit.jac) * max(1.0, 2 * fit.cost / max(x.size - len(p0), 1))
    perr = np.sqrt(np.clip(np.diag(cov), 0, None))
    fwhm = float(fit.x[1] * FWHM_PER_SIGMA)
    peaks: list[CcfPeak] = []
    for j in range(k):
        amp, centre = fit.x[2 + 2 * j: 4 + 2 * j]
        if amp <= min_significance * perr[2 + 2 * j]:
            continue
        for d in (_images(centre) if symmetric else (centre,)):
            d = float(wrap180(d))
            if all(abs(float(wrap180(d - p.delta_deg))) > 0.5 * step for p in peaks):
                peaks.append(CcfPeak(d, float(perr[3 + 2 * j]), float(amp), fwhm, j))
    return sorted(peaks, key=lambda p: p.delta_deg)


def bct_peaks_deg(beta_deg: float, theta_deg: float = THETA_DEG) -> np.ndarray:
    """The eight D = +-(90 +- theta +- beta) (deg, in [-180, 180)) of the AL 111 x SL 112 CCF."""
    out = [s1 * (90.0 + s2 * theta_deg + s3 * beta_deg) for s1 in (1, -1) for s2 in (1, -1) for s3 in (1, -1)]
    return np.sort(wrap180(out))


def bct_from_peaks(peaks: list[CcfPeak], theta_deg: float = THETA_DEG) -> dict | None:
    """beta (deg) and c/a of a bct SL from the averaged CCF's peaks (see module): each peak is
    matched to the nearest of the eight model positions (after a grid search over beta), beta is
    the weighted least-squares value over the matched peaks, the symmetric copies of one fitted peak
    sharing its weight (error scaled by sqrt(redchi) when above 1, redchi over the independent
    peaks). None with fewer than two matched peaks."""
    if len(peaks) < 2:
        return None
    pos = np.array([p.delta_deg for p in peaks])
    err = np.array([max(p.delta_err, 0.05) for p in peaks])
    comp = np.array([p.component for p in peaks])
    copies = np.array([np.sum(comp == c) for c in comp], dtype=float)
    weight = 1.0 / (err**2 * copies)
    signs = [(s1, s2, s3) for s1 in (1, -1) for s2 in (1, -1) for s3 in (1, -1)]

    def model(beta):
        return np.array([wrap180(s1 * (90.0 + s2 * theta_deg + s3 * beta)) for s1, s2, s3 in signs])

    def nearest(beta):
        m = model(beta)
        j = np.argmin(np.abs(wrap180(pos[:, None] - m[None, :])), axis=1)
        return m, j, wrap180(pos - m[j])

    grid = np.arange(0.25, 90.0, 0.25)
    beta = float(grid[np.argmin([np.sum(weight * nearest(b)[2] ** 2) for b in grid])])
    for _ in range(3):                                # refine on the matched peaks: linear in beta
        m, j, resid = nearest(beta)
        matched = np.abs(resid) < 3 * np.maximum(err, 1.0)
        if matched.sum() < 2:
            return None
        slope = np.array([signs[i][0] * signs[i][2] for i in j], dtype=float)[matched]
        w = weight[matched]
        beta += float(np.sum(w * slope * resid[matched]) / np.sum(w))
    m, j, resid = nearest(beta)
    matched = np.abs(resid) < 3 * np.maximum(err, 1.0)
    if matched.sum() < 2:
        return None
    w = weight[matched]
    independent = len(set(comp[matched]))
    redchi = float(np.sum(w * resid[matched] ** 2) / (independent - 1)) if independent > 1 else None
    beta_err = math.sqrt(1.0 / np.sum(w)) * math.sqrt(max(1.0, redchi or 1.0))
    b = math.radians(beta)
    c_over_a = math.sqrt(2.0) * math.tan(b)
    c_over_a_err = math.sqrt(2.0) / math.cos(b) ** 2 * math.radians(beta_err)
    return {"beta_deg": {"value": beta, "stderr": beta_err}, "c_over_a": {"value": c_over_a, "stderr": c_over_a_err},
            "theta_deg": theta_deg, "peaks_matched": int(matched.sum()), "independent_peaks": independent,
            "redchi": redchi, "model_peaks_deg": [float(v) for v in np.sort(m)]}


# -- averaged Bragg peak and disorder ------------------------------------------------------------------------------
def _fit_gauss_line(x, y, e, slope: bool):
    """Gaussian on a constant (or a line, *slope*): centre, sigma, height with 1-sigma errors."""
    ok = np.isfinite(y) & np.isfinite(e) & (e > 0)
    x, y, e = x[ok], y[ok], e[ok]
    if x.size < 6:
        return None
    i = int(np.argmax(y))
    span = float(x.max() - x.min())
    xc = x - x[i]

    def model(p):
        return p[0] + _gauss(x, p[1], p[2], p[3]) + (p[4] * xc if slope else 0.0)

    base = float(np.median(y))
    p0 = [base, float(y[i] - base), float(x[i]), span / 8] + ([0.0] if slope else [])
    lo = [-np.inf, 0.0, float(x.min()), span / 200] + ([-np.inf] if slope else [])
    hi = [np.inf, np.inf, float(x.max()), span] + ([np.inf] if slope else [])
    fit = least_squares(lambda p: (model(p) - y) / e, p0, bounds=(lo, hi), x_scale="jac")
    cov = np.linalg.pinv(fit.jac.T @ fit.jac) * max(1.0, 2 * fit.cost / max(x.size - len(p0), 1))
    err = np.sqrt(np.clip(np.diag(cov), 0, None))
    return {"centre": float(fit.x[2]), "centre_err": float(err[2]), "sigma": float(fit.x[3]),
            "sigma_err": float(err[3]), "height": float(fit.x[1]), "height_err": float(err[1])}


SUBSETS = 8       # interleaved subsets of the patterns (spots) whose spread gives the errors of the averages


def split_error(values) -> float | None:
    """Standard error of a quantity from its values on the interleaved subsets (sd / sqrt(n));
    None with fewer than three."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    return float(v.std(ddof=1) / math.sqrt(v.size)) if v.size >= 3 else None


def _larger(a, b):
    return b if a is None else a if b is None else max(a, b)


class BraggPeakStack:
    """The spots of one ring accumulated on their fitted azimuth (constant work per spot), in
    SUBSETS interleaved stacks, then fitted once (``result``): radial and azimuthal FWHM and the
    orientational disorder, with errors from the fit and from the spread of the subsets."""

    def __init__(self, q: float, half_width_deg: float = 40.0):
        self.q = float(q)
        self.half_width_deg = float(half_width_deg)
        self.signal = self.norm = None
        self.spots = 0
        self._pos_var = np.zeros(SUBSETS)
        self._count = np.zeros(SUBSETS, dtype=int)

    def add(self, polar, peak: RingPeak) -> None:
        nphi = len(polar.phi_deg)
        step = 360.0 / nphi
        shift = int(round((peak.phi_deg - polar.phi_deg[0]) / step)) - nphi // 2
        if self.signal is None:
            self.signal = np.zeros((SUBSETS,) + polar.signal.shape)
            self.norm = np.zeros_like(self.signal)
            self.q_axis = np.asarray(polar.q_inv_angstrom, dtype=float)
            self.phi_axis = (np.arange(nphi) - nphi // 2) * step     # azimuth from the spot's fitted centre
            self.step = step
        k = self.spots % SUBSETS
        self.signal[k] += np.roll(polar.signal, -shift, axis=0)
        self.norm[k] += np.roll(polar.norm, -shift, axis=0)
        self._pos_var[k] += peak.phi_err**2
        self._count[k] += 1
        self.spots += 1

    def result(self) -> dict | None:
        """Radial FWHM (A^-1) and azimuthal FWHM (deg) of the stacked spot with errors, and the
        disorder sqrt(FWHM_az^2 - (FWHM_rad / q)^2) in deg; the azimuthal width is corrected for
        the azimuth bins (bin^2 / 12 of the profile and of the alignment) and the spots' own
        position errors. Each error is the larger of the fit's and the subsets' spread. None
        without spots or when the fit fails."""
        if not self.spots:
            return None
        out = self._fit(self.signal.sum(axis=0), self.norm.sum(axis=0), self._pos_var.sum() / self.spots)
        if out is None:
            return None
        parts = [self._fit(self.signal[k], self.norm[k], self._pos_var[k] / self._count[k])
                 for k in range(SUBSETS) if self._count[k] >= 3]
        parts = [p for p in parts if p is not None]
        for key in ("radial_fwhm", "azimuthal_fwhm_deg"):
            err_key = "azimuthal_fwhm_err_deg" if key == "azimuthal_fwhm_deg" else "radial_fwhm_err"
            out[err_key] = _larger(out[err_key], split_error([p[key] for p in parts]))
        d = out["disorder_deg"]
        d["stderr"] = _larger(d["stderr"], split_error([p["disorder_deg"]["value"] for p in parts]))
        out["subsets"] = len(parts)
        return out

    def _fit(self, signal, norm, pos_var) -> dict | None:
        phi, qs = self.phi_axis, self.q_axis
        near = np.abs(phi) <= self.half_width_deg
        with np.errstate(invalid="ignore", divide="ignore"):
            # radial first, close to the spot's centre, to find the ring's peak
            rad_sig = signal[np.abs(phi) <= 5 * self.step].sum(axis=0)
            rad_nor = norm[np.abs(phi) <= 5 * self.step].sum(axis=0)
            radial = _fit_gauss_line(qs, rad_sig / rad_nor, np.sqrt(np.maximum(rad_sig, 1)) / rad_nor, slope=True)
            if radial is None:
                return None
            qsel = np.abs(qs - radial["centre"]) <= max(radial["sigma"] * 1.2, np.median(np.diff(qs)))
            az_sig = signal[:, qsel].sum(axis=1)[near]
            az_nor = norm[:, qsel].sum(axis=1)[near]
            azim = _fit_gauss_line(phi[near], az_sig / az_nor, np.sqrt(np.maximum(az_sig, 1)) / az_nor, slope=False)
            if azim is None:
                return None
            # radial again, within the spot's azimuthal FWHM
            psel = np.abs(phi) <= max(azim["sigma"] * 1.2, self.step)
            rad_sig = signal[psel].sum(axis=0)
            rad_nor = norm[psel].sum(axis=0)
            radial = _fit_gauss_line(qs, rad_sig / rad_nor, np.sqrt(np.maximum(rad_sig, 1)) / rad_nor, slope=True) \
                or radial
        q_step = float(np.median(np.diff(qs)))
        var_az = azim["sigma"] ** 2 - self.step**2 / 6 - pos_var
        var_rad = radial["sigma"] ** 2 - q_step**2 / 12
        fw_az = FWHM_PER_SIGMA * math.sqrt(max(var_az, 0.0))
        fw_rad = FWHM_PER_SIGMA * math.sqrt(max(var_rad, 0.0))
        fw_az_err = FWHM_PER_SIGMA * azim["sigma_err"] * azim["sigma"] / max(math.sqrt(max(var_az, 1e-12)), 1e-12)
        fw_rad_err = FWHM_PER_SIGMA * radial["sigma_err"] * radial["sigma"] / max(math.sqrt(max(var_rad, 1e-12)), 1e-12)
        size_deg = math.degrees(fw_rad / radial["centre"])
        size_err = math.degrees(fw_rad_err / radial["centre"])
        d2 = fw_az**2 - size_deg**2
        disorder = math.sqrt(d2) if d2 > 0 else 0.0
        disorder_err = (math.hypot(fw_az * fw_az_err, size_deg * size_err) / disorder) if disorder > 0 else None
        return {"spots": self.spots, "q": radial["centre"], "q_err": radial["centre_err"],
                "radial_fwhm": fw_rad, "radial_fwhm_err": fw_rad_err,
                "azimuthal_fwhm_deg": fw_az, "azimuthal_fwhm_err_deg": fw_az_err,
                "size_broadening_deg": size_deg,
                "disorder_deg": {"value": disorder, "stderr": disorder_err}}


NPHI_RANGE = (36, 3600)
MAX_PATCH_BINS = 400          # q bins of the AL patch the averaged Bragg peak is fitted on


def check_nphi(nphi) -> int:
    """*nphi* as an int if it is an even number of azimuth bins in NPHI_RANGE (even: D = 180 must
    lie on the CCF's grid for its symmetry), else ``ValueError``."""
    lo, hi = NPHI_RANGE
    if isinstance(nphi, (bool, np.bool_)) or not isinstance(nphi, (int, np.integer)) or not lo <= nphi <= hi \
            or nphi % 2:
        raise ValueError(f"nphi must be an even number of azimuth bins from {lo} to {hi} (D = 180 deg on the "
                         f"CCF's grid), got {nphi!r}")
    return int(nphi)


def check_rings(q1, q2, dq) -> tuple[float, float, float]:
    """(q1, q2, dq) as floats if they are positive and the rings do not overlap, else ``ValueError``."""
    values = []
    for name, v in (("q1", q1), ("q2", q2), ("dq", dq)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not (math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a positive number of A^-1, got {v!r}")
        values.append(float(v))
    q1, q2, dq = values
    if abs(q1 - q2) < dq:
        raise ValueError(f"the rings q1 = {q1:.4f} and q2 = {q2:.4f} A^-1 overlap at dq = {dq:.4f} A^-1: "
                         f"XCCA correlates two distinct rings")
    return q1, q2, dq


# -- a raster, pattern by pattern ---------------------------------------------------------------------------------
class XccaAnalysis:
    """Per-pattern XCCA of a raster with constant work per pattern (``add``), and the averages
    at the end (``report``).

    Parameters
    ----------
    integration : AzimuthalIntegration
        The detector's calibration (PONI, mask).
    q1, q2 : float
        The two rings (A^-1); C(q1, q2, D) correlates I(q1, phi) with I(q2, phi + D). The lower
        one is taken as the superlattice ring (grain and orientation), the higher as the atomic
        lattice ring (misorientation, averaged Bragg peak).
    dq : float
        Width of each ring (A^-1).
    nphi : int
        Azimuth bins over 360 deg.
    bragg_half_width : float
        Half width (relative to q) of the radial patch around the AL ring that the averaged
        Bragg peak is fitted on.
    """

    def __init__(self, integration, q1: float, q2: float, *, dq: float = DQ_DEFAULT, nphi: int = 180,
                 bragg_half_width: float = 0.1, min_significance: float = MIN_SIGNIFICANCE):
        q1, q2, dq = check_rings(q1, q2, dq)
        nphi = check_nphi(nphi)
        self.integration = integration
        self.q1, self.q2, self.dq, self.nphi = q1, q2, dq, int(nphi)
        self.q_sl, self.q_al = min(q1, q2), max(q1, q2)
        self.min_significance = float(min_significance)
        self._check_on_detector()
        # the AL patch: an odd number of bins of dq / 3 (dq if that would be too many) centred on the
        # ring, so that the ring's profile takes exactly its width dq
        per_ring = 3 if bragg_half_width * self.q_al / (dq / 3) <= MAX_PATCH_BINS // 2 else 1
        step = dq / per_ring
        n_half = min(MAX_PATCH_BINS // 2, max(per_ring, math.ceil(bragg_half_width * self.q_al / step)))
        self._binnings = ((self.q_sl - dq / 2, self.q_sl + dq / 2), 3), \
            ((self.q_al - (n_half + 0.5) * step, self.q_al + (n_half + 0.5) * step), 2 * n_half + 1)
        self.bragg = BraggPeakStack(self.q_al)
        self.rows: list[dict] = []
        self._sum = np.zeros((SUBSETS, self.nphi))       # per interleaved subset of the patterns
        self._sum2 = np.zeros((SUBSETS, self.nphi))
        self._n = np.zeros((SUBSETS, self.nphi))
        self.n_used = 0

    def _check_on_detector(self):
        """Both rings on the detector's valid pixels, dq at least one pixel's q step there, and at
        least one pixel per azimuth bin on the lower ring."""
        if self.integration.shape is None:                # a generic detector: no pixels to check
            return
        q = self.integration.ai.qArray(self.integration.shape) / 10.0          # nm^-1 -> A^-1
        valid = np.ones(q.shape, bool) if self.integration.mask is None else ~self.integration.mask
        qv = q[valid]
        lo, hi = float(qv.min()), float(qv.max())
        step = np.hypot(*np.gradient(q))                 # q step of one pixel (A^-1)
        for name, v in (("q1", self.q1), ("q2", self.q2)):
            if not lo <= v <= hi:
                raise ValueError(f"the ring {name} = {v:.4f} A^-1 is not on the detector (its valid pixels see "
                                 f"{lo:.4f} to {hi:.4f} A^-1)")
            ring = valid & (np.abs(q - v) <= self.dq / 2)
            pixel = float(np.median(step[ring])) if ring.any() else math.inf
            if self.dq < pixel:
                raise ValueError(f"dq = {self.dq:.4g} A^-1 is below one pixel's q step at {name} = {v:.4f} A^-1 "
                                 f"({pixel:.4g} A^-1): widen dq")
            if v == self.q_sl and ring.sum() < self.nphi:
                raise ValueError(f"the ring {name} = {v:.4f} +- {self.dq / 2:.4g} A^-1 has {int(ring.sum())} valid "
                                 f"pixels for {self.nphi} azimuth bins: fewer bins (nphi) or a wider dq")

    def rings(self, image, monitor=None):
        """(SL ring, AL ring, AL polar patch) of one image."""
        sl, al = self.integration.polars(image, [(r, nq, self.nphi) for r, nq in self._binnings], monitor=monitor)
        return ring_profile(sl, self.q_sl, self.dq), ring_profile(al, self.q_al, self.dq), al

    def add(self, image, monitor=None, **labels) -> dict:
        """Analyse one pattern (*image*), add it to the averages; returns its row (``labels``
        such as ``frame``, ``x_um``, ``y_um`` are copied into it)."""
        ring_sl, ring_al, al_polar = self.rings(image, monitor)
        peaks_sl = ring_peaks(ring_sl, min_significance=self.min_significance)
        peaks_al = ring_peaks(ring_al, min_significance=self.min_significance)
        axis_sl, axis_al = mirror_axis(peaks_sl), mirror_axis(peaks_al)
        row = {**labels, "has_grain": bool(peaks_sl), "both_rings": bool(peaks_sl and peaks_al),
               "orientation_deg": axis_sl[0] if axis_sl else None,
               "orientation_err": axis_sl[1] if axis_sl else None,
               "al_axis_deg": axis_al[0] if axis_al else None,
               "psi_deg": None, "psi_err": None, "n_fold": 0,
               "peaks_sl": [_peak_dict(p) for p in peaks_sl], "peaks_al": [_peak_dict(p) for p in peaks_al]}
        if axis_sl and axis_al:
            row["psi_deg"] = float(_wrap_period(axis_al[0] - axis_sl[0], 90.0))
            row["psi_err"] = math.hypot(axis_sl[1], axis_al[1])
        if peaks_sl:
            row["n_fold"] = dominant_symmetry(ccf(ring_sl, ring_sl))
        if row["both_rings"]:
            r1, r2 = (ring_al, ring_sl) if self.q1 == self.q_al else (ring_sl, ring_al)
            c = ccf(r1, r2)
            ok = np.isfinite(c)
            k = self.n_used % SUBSETS
            self._sum[k, ok] += c[ok]
            self._sum2[k, ok] += c[ok] ** 2
            self._n[k, ok] += 1
            self.n_used += 1
        for p in peaks_al:
            self.bragg.add(al_polar, p)
        self.rows.append(row)
        return row

    def averaged_ccf(self, subset: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(D in deg over [-180, 180), mean CCF, its standard error) of the patterns with both
        rings (or of one interleaved *subset* of them)."""
        sel = slice(None) if subset is None else slice(subset, subset + 1)
        total, total2, n = (a[sel].sum(axis=0) for a in (self._sum, self._sum2, self._n))
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(n > 0, total / np.maximum(n, 1), np.nan)
            var = np.where(n > 1, (total2 / np.maximum(n, 1) - mean**2) / np.maximum(n - 1, 1), np.nan)
        d = wrap180(delta_deg(self.nphi))
        order = np.argsort(d)
        return d[order], mean[order], np.sqrt(np.clip(var, 0, None))[order]

    def report(self) -> dict:
        """The averages of the raster so far: the averaged CCF, its peaks and C_n, beta and c/a
        (bct model), the averaged AL Bragg peak and the disorder, and one row per pattern.
        ``ValueError`` with fewer than MIN_CCF_PATTERNS patterns showing both rings."""
        if self.n_used < MIN_CCF_PATTERNS:
            raise ValueError(f"{self.n_used} of {len(self.rows)} patterns show spots on both rings "
                             f"(q1 = {self.q1:.4f}, q2 = {self.q2:.4f} A^-1); the averaged CCF needs at least "
                             f"{MIN_CCF_PATTERNS}: check the rings, dq and the significance")
        d, c, e = self.averaged_ccf()
        peaks = ccf_peaks(d, c, e)
        bct = bct_from_peaks(peaks)
        if bct is not None:             # beta's error: the larger of the fit's and the subsets' spread
            betas = []
            for k in range(SUBSETS):
                if self._n[k].max() >= MIN_CCF_PATTERNS:
                    fit = bct_from_peaks(ccf_peaks(*self.averaged_ccf(k)))
                    betas.append(None if fit is None else fit["beta_deg"]["value"])
            err = _larger(bct["beta_deg"]["stderr"], split_error(betas))
            b = math.radians(bct["beta_deg"]["value"])
            bct["beta_deg"]["stderr"] = err
            bct["c_over_a"]["stderr"] = math.sqrt(2.0) / math.cos(b) ** 2 * math.radians(err)
            bct["subsets"] = sum(v is not None for v in betas)
        bragg = self.bragg.result()
        comps = fourier_components(c)          # |C_n| does not depend on where the D axis starts
        return {"q1": self.q1, "q2": self.q2, "dq": self.dq, "nphi": self.nphi, "q_unit": "A^-1",
                "criterion": CRITERION,
                "delta_deg": [float(v) for v in d], "ccf": [_num(v) for v in c], "ccf_err": [_num(v) for v in e],
                "fourier_components": [_num(v) for v in comps],
                "peaks_deg": [p.delta_deg for p in peaks],
                "peaks": [{"delta_deg": p.delta_deg, "stderr": p.delta_err, "amplitude": p.amplitude,
                           "fwhm_deg": p.fwhm_deg} for p in peaks],
                "bct": bct,
                "beta_deg": None if bct is None else bct["beta_deg"],
                "c_over_a": None if bct is None else bct["c_over_a"],
                "n_frames": len(self.rows), "n_frames_with_grain": sum(r["has_grain"] for r in self.rows),
                "n_frames_used": self.n_used,
                "bragg_peak": bragg,
                "azimuthal_fwhm_deg": None if bragg is None else bragg["azimuthal_fwhm_deg"],
                "radial_fwhm": None if bragg is None else bragg["radial_fwhm"],
                "disorder_deg": None if bragg is None else bragg["disorder_deg"],
                "psi_deg": _mean_sd([r["psi_deg"] for r in self.rows if r["psi_deg"] is not None]),
                "frames": self.rows}


def _num(v):
    return float(v) if np.isfinite(v) else None


def _mean_sd(values):
    if not values:
        return None
    v = np.asarray(values, dtype=float)
    return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if v.size > 1 else None, "n": int(v.size)}


def _peak_dict(p: RingPeak) -> dict:
    return {"phi_deg": p.phi_deg, "phi_err": p.phi_err, "height": p.height, "fwhm_deg": p.fwhm_deg,
            "significance": p.significance}
