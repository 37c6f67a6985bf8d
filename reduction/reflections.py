"""Per-reflection lattice dynamics of a pump-probe scan: for every point and every Bragg
reflection, pseudo-Voigt fits of the pump-on pattern and of its reference give the relative
position shift dq/q (expansion along that direction is -dq/q), the FWHM change, the intensity
ratio I/I0 and from it the Debye-Waller <du^2> = -ln(I/I0) / q^2 (docs/science.md 7, 11);
lattice parameters per point (cubic from every reflection, tetragonal a, c, V); then per
reflection single-exponential fits with the instrument response (``reduction.kinetics``) of the
shift and of <du^2>: time constants and amplitudes per reflection family (the anisotropy table).

The pump-on curve of a point is its reference plus the mean difference; the per-bin error of
each is the difference's error / sqrt(2) (on and reference frames have nearly equal counts).
Both are fitted with the Lorentzian fraction of the reference's free fit, so the areas compare
like with like.

EXAMPLE::

    import numpy as np
    from trxrd.reduction.reflections import parse_reflection, measure_point
    from trxrd.reduction.peaks import pseudo_voigt
    q = np.linspace(1.9, 2.2, 301)
    ref = 100 + pseudo_voigt(q, 2.053, 0.06, 10.0, 0.3)
    on = 100 + pseudo_voigt(q, 2.053 * (1 - 1e-3), 0.062, 10.0 * np.exp(-2e-3 * 2.053 ** 2), 0.3)
    point = measure_point(q, on, ref, 0.05, 0.05, [parse_reflection("200:1.95:2.15")])
    point["200"]["shift"], point["200"]["du2_A2"]      # ~-1.0e-3, ~2.0e-3 A^2
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import lmfit
import numpy as np

from .kinetics import IRF_MIN_PS, TAU_MIN_PS, KineticsFit, fit_kinetics, kinetics_model
from .peaks import fit_pseudo_voigt, lattice_parameters_tetragonal, mean_du2
from .thermometry import ThermometerCalibration, calibrate_thermometer, temperature_rise

STRUCTURES = ("cubic", "tetragonal")
MIN_FIT_POINTS = 6          # delay points a per-reflection kinetics fit needs (5 free parameters)


@dataclass(frozen=True)
class Reflection:
    """A Bragg reflection (h, k, l) and the q window (A^-1) its peak is fitted in."""
    hkl: tuple
    q_min: float
    q_max: float

    @property
    def label(self) -> str:
        """"200" for (2, 0, 0); "1,1,10" when an index has two digits or a sign."""
        if all(0 <= i <= 9 for i in self.hkl):
            return "".join(str(i) for i in self.hkl)
        return ",".join(str(i) for i in self.hkl)

    @property
    def s2(self) -> int:
        """h^2 + k^2 + l^2."""
        return sum(i * i for i in self.hkl)

    @property
    def family(self) -> str:
        """The reflection family {hkl}: the sorted absolute indices ("{220}")."""
        return "{" + "".join(str(i) for i in sorted((abs(i) for i in self.hkl), reverse=True)) + "}"


def parse_hkl(text: str) -> tuple:
    """"200" -> (2, 0, 0); "1,1,10" or "-1,1,1" for indices of two digits or with a sign."""
    t = str(text).strip()
    if re.fullmatch(r"\d{3}", t):
        hkl = tuple(int(c) for c in t)
    elif re.fullmatch(r"-?\d+,-?\d+,-?\d+", t):
        hkl = tuple(int(c) for c in t.split(","))
    else:
        raise ValueError(f"reflection {text!r}: give hkl as three digits (200) or h,k,l (1,1,10)")
    if hkl == (0, 0, 0):
        raise ValueError("(000) is not a reflection")
    return hkl


def parse_reflection(text: str) -> Reflection:
    """"HKL:QMIN:QMAX" (A^-1), e.g. "200:1.95:2.15"."""
    parts = str(text).split(":")
    if len(parts) != 3:
        raise ValueError(f"reflection {text!r}: expected HKL:QMIN:QMAX, e.g. 200:1.95:2.15 (q in A^-1)")
    try:
        q_min, q_max = float(parts[1]), float(parts[2])
    except ValueError:
        raise ValueError(f"reflection {text!r}: QMIN and QMAX must be numbers (A^-1)") from None
    if not (math.isfinite(q_min) and math.isfinite(q_max) and 0 < q_min < q_max):
        raise ValueError(f"reflection {text!r}: need 0 < QMIN < QMAX (A^-1)")
    return Reflection(parse_hkl(parts[0]), q_min, q_max)


def reflection_q(hkl, a_angstrom: float, c_angstrom: float | None = None) -> float:
    """q (A^-1) of *hkl* in a cubic (a) or tetragonal (a, c) lattice."""
    h, k, l = hkl
    c = a_angstrom if c_angstrom is None else c_angstrom
    if not (a_angstrom > 0 and c > 0):
        raise ValueError(f"lattice parameters must be > 0, got a={a_angstrom}, c={c_angstrom} A")
    return 2.0 * math.pi * math.sqrt((h * h + k * k) / a_angstrom ** 2 + l * l / c ** 2)


def reflections_for_lattice(hkls, a_angstrom: float, c_angstrom: float | None = None, *,
                            half_width: float) -> list[Reflection]:
    """Windows q(hkl) +- half_width (A^-1) at a nominal lattice, e.g. +- 2 Scherrer FWHM."""
    if not half_width > 0:
        raise ValueError(f"half_width must be > 0 A^-1, got {half_width}")
    out = []
    for hkl in hkls:
        hkl = parse_hkl(hkl) if isinstance(hkl, str) else tuple(int(i) for i in hkl)
        q0 = reflection_q(hkl, a_angstrom, c_angstrom)
        out.append(Reflection(hkl, round(q0 - half_width, 4), round(q0 + half_width, 4)))
    return out


def check_reflections(reflections, q_inv_angstrom) -> list[Reflection]:
    """The reflections sorted by q; ``ValueError`` for none, duplicates, a window outside the
    data's q range or windows that overlap."""
    refl = sorted(reflections, key=lambda r: r.q_min)
    if not refl:
        raise ValueError("give at least one reflection, e.g. 200:1.95:2.15")
    labels = [r.label for r in refl]
    if len(set(labels)) != len(labels):
        raise ValueError(f"reflection given twice: {sorted(labels)}")
    q = np.asarray(q_inv_angstrom, dtype=float)
    lo, hi = float(np.nanmin(q)), float(np.nanmax(q))
    for r in refl:
        if r.q_min < lo or r.q_max > hi:
            raise ValueError(f"reflection {r.label}: window {r.q_min}-{r.q_max} A^-1 is outside the data's "
                             f"q range {lo:.3f}-{hi:.3f} A^-1")
    for a, b in zip(refl, refl[1:]):
        if b.q_min < a.q_max:
            raise ValueError(f"reflections {a.label} ({a.q_min}-{a.q_max}) and {b.label} ({b.q_min}-{b.q_max}) "
                             "have overlapping q windows: fit overlapping peaks in one window or narrow them")
    return refl


def _ratio_err(a, ea, b, eb):
    return abs(a / b) * math.sqrt((ea / a) ** 2 + (eb / b) ** 2)


def measure_point(q_inv_angstrom, on, reference, on_sigma, reference_sigma, reflections, *,
                  baseline: str = "linear") -> dict:
    """One point: every reflection fitted in *on* and *reference* (I(q), 1-sigma per bin or a
    scalar). Returns {label: {"q_on", "q_ref", "q_err" (each), "shift" (dq/q), "shift_err",
    "fwhm", "fwhm_ref", "fwhm_change", "fwhm_err", "ratio" (I/I0), "ratio_err", "du2_A2",
    "du2_err"}} with q and FWHM in A^-1, <du^2> in A^2."""
    q = np.asarray(q_inv_angstrom, dtype=float)
    out = {}
    for r in reflections:
        # the Lorentzian fraction of the reference, then both fits at that fraction: its
        # uncertainty is common to both and cancels in the ratio and the shift
        eta = fit_pseudo_voigt(q, reference, q_min=r.q_min, q_max=r.q_max, sigma=reference_sigma,
                               baseline=baseline).params["eta"][0]
        f_ref, f_on = (fit_pseudo_voigt(q, y, q_min=r.q_min, q_max=r.q_max, sigma=s, baseline=baseline, eta=eta)
                       for y, s in ((reference, reference_sigma), (on, on_sigma)))
        if not (f_on.area > 0 and f_ref.area > 0):
            raise ValueError(f"reflection {r.label}: no peak above the baseline in {r.q_min}-{r.q_max} A^-1")
        ratio = f_on.area / f_ref.area
        ratio_err = _ratio_err(f_on.area, _finite_err(f_on.area_err), f_ref.area, _finite_err(f_ref.area_err))
        q_ref = f_ref.center
        q_err_on, q_err_ref = _finite_err(f_on.center_err), _finite_err(f_ref.center_err)
        out[r.label] = {
            "q_on": f_on.center, "q_ref": q_ref, "q_err": math.hypot(q_err_on, q_err_ref) / math.sqrt(2),
            "shift": f_on.center / q_ref - 1.0,
            "shift_err": math.hypot(q_err_on, q_err_ref * f_on.center / q_ref) / q_ref,
            "fwhm": f_on.fwhm, "fwhm_ref": f_ref.fwhm, "fwhm_change": f_on.fwhm - f_ref.fwhm,
            "fwhm_err": math.hypot(_finite_err(f_on.fwhm_err), _finite_err(f_ref.fwhm_err)),
            "ratio": ratio, "ratio_err": ratio_err,
            "du2_A2": -math.log(ratio) / q_ref ** 2, "du2_err": ratio_err / ratio / q_ref ** 2}
    return out


def _finite_err(e) -> float:
    return float(e) if e is not None and math.isfinite(e) else math.inf


def lattice_point(point: dict, reflections, structure: str) -> dict:
    """Lattice parameters of the pump-on and reference patterns of one measured point:
    cubic a (weighted mean over the reflections) or tetragonal a, c, V (two reflections at
    least; with one, only the structure), plus the relative change of each (on / reference - 1).
    Values {"value", "stderr"}."""
    if structure not in STRUCTURES:
        raise ValueError(f"unknown structure {structure!r}; choose one of {STRUCTURES}")
    out = {}
    for side in ("on", "ref"):
        qs = np.array([point[r.label][f"q_{side}"] for r in reflections])
        qe = np.array([point[r.label]["q_err"] for r in reflections])
        if structure == "cubic":
            a = 2.0 * math.pi * np.sqrt([r.s2 for r in reflections]) / qs
            a_err = a * qe / qs
            value, err = mean_du2(a, np.where(np.isfinite(a_err) & (a_err > 0), a_err, 1.0))
            out[side] = {"a_angstrom": {"value": value, "stderr": err}}
        elif len(reflections) < 2:
            return {"structure": structure}     # a and c need two reflections: positions only
        else:
            out[side] = lattice_parameters_tetragonal([r.hkl for r in reflections], qs,
                                                      qe if np.all(np.isfinite(qe) & (qe > 0)) else None)
    result = {"structure": structure}
    for name, on in out["on"].items():
        ref = out["ref"][name]
        result[name] = on
        result[name + "_ref"] = ref
        result[name.split("_")[0] + "_change"] = {
            "value": on["value"] / ref["value"] - 1.0,
            "stderr": math.hypot(on["stderr"], ref["stderr"]) / ref["value"]}
    return result


@dataclass
class ReflectionSeries:
    """Per-reflection observables of a scan: ``x`` (delay in ps or <N>), ``points`` (one
    ``measure_point`` dict per x), ``lattice`` (one ``lattice_point`` per x), per-reflection
    ``fits`` ({label: {"shift": KineticsFit, "du2": KineticsFit}}) with the time zero and IRF
    they share (``common``) and, with a thermometer,
    ``temperature_rise`` (dicts per x)."""
    reflections: list
    x: np.ndarray
    points: list
    lattice: list
    fits: dict = field(default_factory=dict)
    common: dict = field(default_factory=dict)
    error_scale: dict = field(default_factory=dict)
    temperature_rise: list | None = None

    def values(self, label: str, name: str) -> np.ndarray:
        """One observable of one reflection over the scan (e.g. "shift", "du2_A2")."""
        return np.array([p[label][name] for p in self.points], dtype=float)

    def mean_du2(self) -> list[dict]:
        """<du^2> averaged over the reflections per point (1/err^2 weights)."""
        out = []
        for p in self.points:
            d = np.array([p[r.label]["du2_A2"] for r in self.reflections])
            e = np.array([p[r.label]["du2_err"] for r in self.reflections])
            ok = np.isfinite(e) & (e > 0)
            value, err = mean_du2(d[ok], e[ok]) if ok.any() else (float(d.mean()), math.nan)
            out.append({"value": value, "stderr": err})
        return out

    def anisotropy(self) -> list[dict]:
        """Per reflection: tau and amplitude of the shift and of <du^2> (the anisotropy table)."""
        rows = []
        for r in self.reflections:
            fits = self.fits.get(r.label, {})
            row = {"hkl": r.label, "family": r.family, "q0": float(np.nanmedian(self.values(r.label, "q_ref")))}
            for what in ("shift", "du2"):
                fit = fits.get(what)
                row[f"tau_{what}_ps"] = _param(fit, "tau1_ps")
                row[f"{what}_max" + ("_A2" if what == "du2" else "")] = _param(fit, "offset")
            rows.append(row)
        return rows

    def as_dict(self, x_name: str = "delay_ps") -> dict:
        """JSON-able: the shape of ``trxrd reflections --json``."""
        rows = {row["hkl"]: row for row in self.anisotropy()}
        refl = []
        for r in self.reflections:
            pts = [{x_name: float(x), "shift": _clean(p[r.label]["shift"]), "shift_err": _clean(p[r.label]["shift_err"]),
                    "du2_A2": _clean(p[r.label]["du2_A2"]), "du2_err": _clean(p[r.label]["du2_err"]),
                    "fwhm": _clean(p[r.label]["fwhm"]), "fwhm_change": _clean(p[r.label]["fwhm_change"]),
                    "fwhm_err": _clean(p[r.label]["fwhm_err"]), "ratio": _clean(p[r.label]["ratio"]),
                    "ratio_err": _clean(p[r.label]["ratio_err"]), "q": _clean(p[r.label]["q_on"])}
                   for x, p in zip(self.x, self.points)]
            fits = {k: v.as_dict() for k, v in self.fits.get(r.label, {}).items()}
            refl.append({**rows[r.label], "window_inv_angstrom": [r.q_min, r.q_max], "points": pts, "fits": fits})
        out = {"reflections": refl, "common": dict(self.common),
               "mean_du2": [{x_name: float(x), "du2_A2": _clean(m["value"]), "du2_err": _clean(m["stderr"])}
                            for x, m in zip(self.x, self.mean_du2())],
               "lattice": [{x_name: float(x), **_clean_tree(lat)} for x, lat in zip(self.x, self.lattice)]}
        if self.temperature_rise is not None:
            out["temperature_rise_K"] = [{x_name: float(x), **_clean_tree(t)}
                                         for x, t in zip(self.x, self.temperature_rise)]
        return out


def _param(fit: KineticsFit | None, name: str) -> dict:
    if fit is None or name not in fit.params:
        return {"value": None, "stderr": None}
    value, err = fit.params[name]
    return {"value": _clean(value), "stderr": _clean(err)}


def _clean(v):
    return float(v) if v is not None and math.isfinite(v) else None


def _clean_tree(d):
    if isinstance(d, dict):
        return {k: _clean_tree(v) for k, v in d.items()}
    if isinstance(d, (float, np.floating)):
        return _clean(float(d))
    return d


def measure_series(q_inv_angstrom, x, d_intensity, d_intensity_err, reference, reflections, *,
                   structure: str = "cubic", baseline: str = "linear") -> ReflectionSeries:
    """Every point of a pump-probe result (the ``Differences`` of ``reduction.difference`` or
    the live accumulator: dI, its error and the reference curve per point) measured per
    reflection (see module)."""
    reflections = check_reflections(reflections, q_inv_angstrom)
    d = np.atleast_2d(np.asarray(d_intensity, dtype=float))
    ref = np.atleast_2d(np.asarray(reference, dtype=float))
    err = np.atleast_2d(np.asarray(d_intensity_err, dtype=float))
    points, lattice = [], []
    for k in range(d.shape[0]):
        sigma = err[k] / math.sqrt(2.0) if np.all(np.isfinite(err[k])) and np.all(err[k] > 0) else None
        p = measure_point(q_inv_angstrom, ref[k] + d[k], ref[k], sigma, sigma, reflections, baseline=baseline)
        points.append(p)
        lattice.append(lattice_point(p, reflections, structure))
    return ReflectionSeries(reflections, np.asarray(x, dtype=float), points, lattice)


def _median(values) -> float:
    """Median of the (value, stderr) pairs whose error is known, else of all values."""
    values = list(values)
    known = [v for v, e in values if e is not None and math.isfinite(e) and e > 0]
    return float(np.median(known or [v for v, _ in values]))


def _joint_onset(series, first: dict, t0_ps, irf_fwhm_ps) -> tuple[float, float, dict]:
    """Time zero, IRF and the per-reflection shift fits of one joint fit of every reflection's
    shift (its own amplitude, step and tau each, t0 and IRF shared, covariance scaled by the
    reduced chi-square, so each tau's error includes what t0 and the IRF leave uncertain),
    started from the single fits; the medians of those (and no joint fits) when it fails."""
    t0_start = t0_ps if t0_ps is not None else _median(f.params["t0_ps"] for f in first.values())
    irf_start = irf_fwhm_ps if irf_fwhm_ps is not None else _median(f.params["irf_fwhm_ps"] for f in first.values())
    params = lmfit.Parameters()
    span = float(series.x.max() - series.x.min())
    params.add("t0_ps", value=t0_start, min=float(series.x.min()), max=float(series.x.max()), vary=t0_ps is None)
    params.add("irf_fwhm_ps", value=max(irf_start, IRF_MIN_PS), min=IRF_MIN_PS, max=span, vary=irf_fwhm_ps is None)
    data = []
    for k, (label, fit) in enumerate(first.items()):
        y, e = series.values(label, "shift"), series.values(label, "shift_err")
        w = 1.0 / e if np.all(np.isfinite(e) & (e > 0)) else np.ones_like(y)
        # each reflection weighed by its own scatter about its single fit: their errors are
        # overstated by different factors (section 11 of docs/science.md)
        w = w / math.sqrt(fit.redchi) if fit.redchi > 0 and math.isfinite(fit.redchi) else w
        data.append((k, y, w))
        params.add(f"a{k}", value=fit.value("a1"))
        params.add(f"tau{k}", value=fit.value("tau1_ps"), min=TAU_MIN_PS)
        params.add(f"off{k}", value=fit.value("offset"))

    def residual(p):
        v = p.valuesdict()
        return np.concatenate([(y - kinetics_model(series.x, t0_ps=v["t0_ps"], irf_fwhm_ps=v["irf_fwhm_ps"],
                                                   amplitudes=[v[f"a{k}"]], taus_ps=[v[f"tau{k}"]],
                                                   offset=v[f"off{k}"])) * w for k, y, w in data])

    result = lmfit.minimize(residual, params, method="leastsq")        # covariance scaled by redchi
    if not result.success or not all(np.isfinite([result.params["t0_ps"].value, result.params["irf_fwhm_ps"].value])):
        return t0_start, irf_start, {}

    def param(name):
        p = result.params[name]
        return float(p.value), (float(p.stderr) if p.stderr is not None and np.isfinite(p.stderr) else None)

    fits = {}
    for k, label in enumerate(first):
        fits[label] = KineticsFit(
            model="exp", n_components=1, params={"t0_ps": param("t0_ps"), "irf_fwhm_ps": param("irf_fwhm_ps"),
                                                  "a1": param(f"a{k}"), "tau1_ps": param(f"tau{k}"),
                                                  "offset": param(f"off{k}")},
            redchi=float(result.redchi), chisqr=float(result.chisqr), aic=float(result.aic), bic=float(result.bic),
            ndata=int(result.ndata), nvarys=int(result.nvarys), success=bool(result.success),
            message=str(result.message))
    return float(result.params["t0_ps"].value), float(result.params["irf_fwhm_ps"].value), fits


def _fit_one(series, label, value, err, **kwargs) -> KineticsFit | None:
    y, e = series.values(label, value), series.values(label, err)
    weights = e if np.all(np.isfinite(e) & (e > 0)) else None
    try:
        return fit_kinetics(series.x, y, weights, n_components=1, offset=True, scale_covar=True, **kwargs)
    except ValueError:
        return None


def fit_reflection_kinetics(series: ReflectionSeries, *, t0_ps: float | None = None,
                            irf_fwhm_ps: float | None = None) -> ReflectionSeries:
    """Per reflection, a single exponential with the IRF and a step (the long-lived level)
    fitted to the shift and to <du^2> vs delay: ``tau1_ps`` is the time constant, ``offset``
    the amplitude reached. Time zero and the IRF are common to all reflections: given, or
    from one joint fit of every reflection's shift (the best-determined observable; its
    per-reflection results are the shift fits), started from single free fits; the <du^2>
    fits are made with them fixed (``series.common``) and ``error_scale`` holds sqrt(reduced
    chi-square) of each single shift fit. Errors are scaled by the reduced chi-square: the pump-on and reference fits of a point share their baseline and shape, so
    the points' own errors (taken as independent) overstate the scatter of a shift about 2x
    (tests/test_coverage.py). Fills ``series.fits``; a fit that cannot be made is left out."""
    if series.x.size < MIN_FIT_POINTS:
        raise ValueError(f"{series.x.size} delay points are too few for a per-reflection fit "
                         f"(need at least {MIN_FIT_POINTS})")
    if t0_ps is None or irf_fwhm_ps is None:
        free = {}
        if t0_ps is not None:
            free.update(t0_ps=t0_ps, vary_t0=False)
        if irf_fwhm_ps is not None:
            free.update(irf_fwhm_ps=irf_fwhm_ps)
        first = {r.label: f for r in series.reflections
                 if (f := _fit_one(series, r.label, "shift", "shift_err", **free)) is not None}
        if not first:
            raise ValueError("no reflection's shift could be fitted: no time zero or IRF to share")
        series.error_scale = {label: math.sqrt(f.redchi) for label, f in first.items()
                              if f.redchi > 0 and math.isfinite(f.redchi)}
        t0_ps, irf_fwhm_ps, joint = _joint_onset(series, first, t0_ps, irf_fwhm_ps)
    else:
        joint = {}
    series.common = {"t0_ps": float(t0_ps), "irf_fwhm_ps": float(irf_fwhm_ps)}
    for r in series.reflections:
        fits = {key: _fit_one(series, r.label, value, err, t0_ps=t0_ps, vary_t0=False, irf_fwhm_ps=irf_fwhm_ps,
                              vary_irf=False)
                for key, value, err in (("shift", "shift", "shift_err"), ("du2", "du2_A2", "du2_err"))}
        if r.label in joint:
            fits["shift"] = joint[r.label]
        series.fits[r.label] = {k: v for k, v in fits.items() if v is not None}
    return series


# -- lattice thermometry -----------------------------------------------------------------------------
def thermometer_quantity(label: str) -> str:
    """The quantity a thermometer on reflection *label* calibrates: its position q (A^-1)."""
    return f"q_{label}_inv_angstrom"


def thermometer_reflection(calibration: ThermometerCalibration) -> str:
    """The reflection label of a thermometer made by :func:`calibrate_reflection_thermometer`."""
    m = re.fullmatch(r"q_(.+)_inv_angstrom", calibration.quantity)
    if not m:
        raise ValueError(f"the thermometer calibrates {calibration.quantity!r}, not a reflection's position")
    return m.group(1)


def calibrate_reflection_thermometer(temperature_c, q_inv_angstrom, q_err, label: str, *, degree: int = 1,
                                     sample: str | None = None) -> ThermometerCalibration:
    """Peak position of reflection *label* vs heating-cell temperature (a static heating
    series, fitted per frame) as a thermometer (``reduction.thermometry``)."""
    cal = calibrate_thermometer(temperature_c, q_inv_angstrom, q_err, degree=degree,
                                quantity=thermometer_quantity(label))
    cal.sample = sample
    return cal


def temperature_rise_series(series: ReflectionSeries, calibration: ThermometerCalibration, *,
                            sample: str | None = None) -> list[dict]:
    """Lattice temperature rise dT (K) per point from the thermometer's reflection: pump-on vs
    reference position through the calibration. Each point: {"value", "stderr", "extrapolated",
    "temperature_c", "reference_temperature_c"}
    (True when either temperature lies outside the calibrated range by more than its error: a linear calibration is
    extrapolated and says so; a curved one gives None beyond 20 % of its span). The error
    combines both positions' errors and the slope's. ``ValueError`` when the thermometer is for another
    sample or a reflection this series does not have. After ``fit_reflection_kinetics`` the
    position errors are scaled by the scatter of that reflection's shifts about their fit
    (``error_scale``): the pump-on and reference positions share baseline and shape errors, which
    cancel in their difference."""
    label = thermometer_reflection(calibration)
    labels = [r.label for r in series.reflections]
    if label not in labels:
        raise ValueError(f"the thermometer is for reflection {label}, which is not among {', '.join(labels)}")
    if sample is not None and calibration.sample is not None and calibration.sample != sample:
        raise ValueError(f"the thermometer was measured on {calibration.sample!r}, this scan is on {sample!r}")
    lo, hi = calibration.temperature_range_c
    scale = series.error_scale.get(label, 1.0)
    c0, c1 = calibration.coefficients[:2]
    var_c1 = calibration.covariance[1, 1]
    out = []
    for p in series.points:
        q_on, q_ref, q_err = p[label]["q_on"], p[label]["q_ref"], p[label]["q_err"] * scale
        err = q_err if math.isfinite(q_err) else None
        if calibration.degree == 1:         # a straight line extrapolates as far as it is trusted
            t_on = calibration.reference_temperature_c + (q_on - c0) / c1
            t_ref = calibration.reference_temperature_c + (q_ref - c0) / c1
            rise = (q_on - q_ref) / c1
            rise_err = math.sqrt(2.0 * (err or 0.0) ** 2 / c1 ** 2 + rise ** 2 * var_c1 / c1 ** 2)
        else:
            try:
                rise, rise_err = temperature_rise(calibration, q_on, q_ref, err)
                t_on, _ = calibration.temperature(q_on)
                t_ref, _ = calibration.temperature(q_ref)
            except ValueError:              # a curved calibration is not inverted far outside its range
                out.append({"value": None, "stderr": None, "extrapolated": True})
                continue
        slack = (err or 0.0) / abs(c1)     # the temperature's own error: noise at the edge is not outside
        outside = not (lo - slack <= t_on <= hi + slack and lo - slack <= t_ref <= hi + slack)
        out.append({"value": rise, "stderr": rise_err, "extrapolated": outside, "temperature_c": t_on,
                    "reference_temperature_c": t_ref})
    series.temperature_rise = out
    return out


def load_thermometers(path) -> dict:
    """The thermometers of a file written by ``trxrd thermometer --out``: {hkl: calibration}."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ValueError(f"thermometer file not found: {path}")
    try:
        data = json.loads(path.read_text())
        return {str(h): ThermometerCalibration.from_dict(c) for h, c in data["calibrations"].items()}
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path} is not a thermometer file (trxrd thermometer --out): {exc}") from None
