"""Offline reduction of detector files from a past beamtime with the same functions as the
live reduction: ``trxrd integrate``, ``trxrd kinetics``, ``trxrd reflections``,
``trxrd thermometer``, ``trxrd saxs``, ``trxrd stacking`` and ``trxrd xcca``.

EXAMPLE::

    from trxrd.reduction.offline import integrate_files, kinetics_files
    integrate_files(["scan.h5"], "waxs.poni", mask="waxs_mask.edf", out="reduced.h5")
    result = kinetics_files(["scan.h5"], "waxs.poni", "scan.csv", [(1.70, 2.05)], model="biexp")
    result.fit.summary(), result.as_dict()
    refl = [parse_reflection("112:1.80:1.96")]
    cals = thermometer_files(["heat.h5"], "waxs.poni", "heat.csv", refl)        # {"112": calibration}
    series = reflections_files(["scan.h5"], "waxs.poni", "scan.csv", refl, thermometer=cals["112"])
    series.as_dict()["temperature_rise_K"]
    saxs = saxs_files(["synthesis.h5"], "saxs.poni", "synthesis.csv", background="auto")   # time_s < 0: solvent
    saxs.as_dict()["t98_concentration_s"], saxs_figure(saxs).savefig("saxs.png")
    stacking_files(["anneal.h5"], "saxs.poni", "anneal.csv", q_min=0.1, q_max=0.6).as_dict()["segments"]
    xcca = xcca_files(["raster.h5"], "waxs.poni", q1=0.172, q2=1.833, table="raster.csv")   # frame,x_um,y_um
    xcca.as_dict()["peaks_deg"], xcca_figure(xcca).savefig("xcca.png")
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .difference import differences
from .integrate import AzimuthalIntegration
from .io import _image_frame, frame_files, iter_frames, load_frames, read_frame_table, write_nexus
from .peaks import fit_pseudo_voigt
from .pump_probe import PumpProbeResult, fit_delays, pump_probe_signal
from .reflections import (
    MIN_FIT_POINTS,
    ReflectionSeries,
    calibrate_reflection_thermometer,
    check_reflections,
    fit_reflection_kinetics,
    measure_series,
    temperature_rise_series,
)
from .thermometry import ThermometerCalibration


def _integrator(poni, mask, npt, frames) -> AzimuthalIntegration:
    if int(npt) != npt or npt < 10:
        raise ValueError(f"--npt must be an integer >= 10, got {npt}")
    integ = AzimuthalIntegration(poni, mask=mask, npt=npt)
    if integ.shape and tuple(frames.shape[1:]) != integ.shape:
        raise ValueError(f"the frames are {frames.shape[2]} x {frames.shape[1]} pixels but the PONI file "
                         f"{poni} is for a {integ.shape[1]} x {integ.shape[0]} detector")
    return integ


def integrate_files(frame_paths, poni, *, out, mask=None, npt: int = 1000) -> Path:
    """Integrate every frame of *frame_paths* to I(q) and write them as NeXus to *out*."""
    frames = load_frames(frame_paths)
    integ = _integrator(poni, mask, npt, frames)
    q, intensity, sigma = integ.integrate_many(frames)
    return write_nexus(out, q, intensity, sigma, sources=frame_paths,
                       program_notes={"poni_file": Path(poni).resolve(), "poni": Path(poni).read_text(),
                                      "mask_file": "" if mask is None else Path(mask).resolve(), "npt": npt})


def kinetics_files(frame_paths, poni, table, windows, *, mask=None, npt: int = 1000, part: str = "area",
                   model: str = "auto", irf_fwhm_ps: float | None = None,
                   reference: str = "interleaved") -> PumpProbeResult:
    """Frames + frame table -> I(q) (normalised by ``i0`` when the table has it) -> pump-on
    minus pump-off per delay -> window signal -> kinetics fit."""
    if irf_fwhm_ps is not None and not (np.isfinite(irf_fwhm_ps) and irf_fwhm_ps > 0):
        raise ValueError(f"--irf-fwhm must be a positive number of ps, got {irf_fwhm_ps}")
    frames = load_frames(frame_paths)
    rows = read_frame_table(table, len(frames))
    integ = _integrator(poni, mask, npt, frames)
    q, intensity, sigma = integ.integrate_many(frames, monitors=rows.get("i0"))
    result = pump_probe_signal(q, intensity, rows["delay_ps"], ~rows["pump_on"], windows, sigma=sigma,
                               part=part, mode=reference)
    if not np.all(np.isfinite(result.signal)):
        raise ValueError("the window signal has NaN/inf values (a window on masked pixels only?)")
    result.fit = fit_delays(result, model=model, irf_fwhm_ps=irf_fwhm_ps)
    return result


def reflections_files(frame_paths, poni, table, reflections, *, mask=None, npt: int = 1000,
                      structure: str = "cubic", thermometer: ThermometerCalibration | None = None,
                      irf_fwhm_ps: float | None = None, reference: str = "interleaved",
                      sample: str | None = None) -> ReflectionSeries:
    """Frames + frame table -> I(q) -> pump-on and reference per delay -> every reflection
    fitted per delay -> per-reflection kinetics (and dT with a *thermometer*)."""
    frames = load_frames(frame_paths)
    rows = read_frame_table(table, len(frames))
    integ = _integrator(poni, mask, npt, frames)
    q, intensity, sigma = integ.integrate_many(frames, monitors=rows.get("i0"))
    reflections = check_reflections(reflections, q)
    diff = differences(intensity, rows["delay_ps"], ~rows["pump_on"], mode=reference, sigma=sigma)
    if diff.points.size < MIN_FIT_POINTS:
        raise ValueError(f"{diff.points.size} delays are too few for the per-reflection fits (need {MIN_FIT_POINTS})")
    series = measure_series(q, diff.points, diff.d_intensity, diff.d_intensity_err, diff.reference, reflections,
                            structure=structure)
    fit_reflection_kinetics(series, irf_fwhm_ps=irf_fwhm_ps)
    if thermometer is not None:
        temperature_rise_series(series, thermometer, sample=sample)
    return series


def thermometer_files(frame_paths, poni, table, reflections, *, mask=None, npt: int = 1000, degree: int = 1,
                      sample: str | None = None) -> tuple[dict, list]:
    """Frames of a static heating series + a table with ``temperature_c`` -> each reflection
    fitted per frame -> a thermometer per reflection. Returns ({label: calibration}, rows)."""
    frames = load_frames(frame_paths)
    rows = read_frame_table(table, len(frames), required=("frame", "temperature_c"))
    integ = _integrator(poni, mask, npt, frames)
    q, intensity, sigma = integ.integrate_many(frames, monitors=rows.get("i0"))
    reflections = check_reflections(reflections, q)
    points, calibrations = [], {}
    for r in reflections:
        fits = [fit_pseudo_voigt(q, intensity[k], q_min=r.q_min, q_max=r.q_max, sigma=sigma[k])
                for k in range(len(frames))]
        centers = np.array([f.center for f in fits])
        errs = np.array([f.center_err for f in fits])
        calibrations[r.label] = calibrate_reflection_thermometer(
            rows["temperature_c"], centers, errs if np.all(np.isfinite(errs) & (errs > 0)) else None, r.label,
            degree=degree, sample=sample)
        points.append({"hkl": r.label, "temperature_c": rows["temperature_c"].tolist(), "q": centers.tolist(),
                       "q_err": errs.tolist()})
    return calibrations, points


# -- in-situ SAXS and the stacking peak of a platelet film -------------------------------------------
WAXS_Q_LOW_INV_ANGSTROM = 0.1        # a SAXS geometry reaches below this q (A^-1) ...
WAXS_Q_HIGH_INV_ANGSTROM = 1.0       # ... and rarely beyond this one
SAXS_MIN_BINS = 8                    # fit_spheres needs at least this many q bins


def _check_q_range(q_min, q_max) -> None:
    for name, value in (("--qmin", q_min), ("--qmax", q_max)):
        if value is not None and not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive q in A^-1, got {value}")
    if q_min is not None and q_max is not None and not q_min < q_max:
        raise ValueError(f"--qmin {q_min:g} must be below --qmax {q_max:g} (A^-1): need QMIN < QMAX")


def _covered(q, sigma) -> np.ndarray:
    """Bins of the integration that hold data (finite, sigma > 0 in the mean over the frames)."""
    s = np.sqrt(np.nanmean(np.asarray(sigma, dtype=float) ** 2, axis=0))
    return np.isfinite(q) & np.isfinite(s) & (s > 0)


def _fit_bins(q, covered, q_min, q_max) -> tuple[np.ndarray, tuple[float, float]]:
    """The bins inside [q_min, q_max] (default: every covered bin); the range must lie inside the
    q range of the PONI's integration (half a bin of slack)."""
    if not covered.any():
        raise ValueError("no q bin of the integration holds data (every pixel masked?)")
    q_lo, q_hi = float(q[covered][0]), float(q[covered][-1])
    half = 0.5 * float(np.median(np.diff(q))) if len(q) > 1 else 0.0
    lo = q_lo if q_min is None else float(q_min)
    hi = q_hi if q_max is None else float(q_max)
    if not lo < hi:
        raise ValueError(f"q range {lo:.4g}-{hi:.4g} A^-1: need QMIN < QMAX (the detector covers "
                         f"{q_lo:.4g}-{q_hi:.4g} A^-1)")
    if lo < q_lo - half or hi > q_hi + half:
        raise ValueError(f"q range {lo:.4g}-{hi:.4g} A^-1 is outside the q range of this PONI's integration "
                         f"({q_lo:.4g}-{q_hi:.4g} A^-1)")
    return covered & (q >= lo) & (q <= hi), (lo, hi)


def _mean_pattern(intensity, sigma) -> tuple[np.ndarray, np.ndarray]:
    """Mean of curves (N, npt) and its 1-sigma error."""
    n = len(intensity)
    return np.mean(intensity, axis=0), np.sqrt(np.sum(np.asarray(sigma) ** 2, axis=0)) / n


def _saxs_background(background, frames, rows, integ, q, intensity, sigma, background_i0):
    """The I(q) subtracted from every frame and a description of it (see ``saxs_files``)."""
    if isinstance(background, str):
        background = [background]
    background = list(background)
    if background == ["auto"]:
        if background_i0 is not None:
            raise ValueError("--background-i0 goes with background frame files, not with --background auto")
        before = rows["time_s"] < 0
        if not before.any():
            raise ValueError("no pre-injection frames (time_s < 0) for --background auto")
        bg, bg_sigma = _mean_pattern(intensity[before], sigma[before])
        return bg, bg_sigma, f"auto: mean of the {int(before.sum())} pre-injection frames (time_s < 0)"
    if "auto" in background:
        raise ValueError("--background: give 'auto' alone or background frame files")
    bg_frames = load_frames(background)
    if bg_frames.shape[1:] != frames.shape[1:]:
        raise ValueError(f"the background frames are {bg_frames.shape[2]} x {bg_frames.shape[1]} pixels, the "
                         f"sample frames {frames.shape[2]} x {frames.shape[1]}")
    monitors = None
    if "i0" in rows:
        if background_i0 is None:
            raise ValueError("the frame table has i0 (frames divided by it): give --background-i0, the monitor "
                             "of the background frames, so that they are normalised the same way")
        if not (np.isfinite(background_i0) and background_i0 > 0):
            raise ValueError(f"--background-i0 must be a positive number, got {background_i0}")
        monitors = [float(background_i0)] * len(bg_frames)
    elif background_i0 is not None:
        raise ValueError("--background-i0 without an i0 column in the frame table: the frames are not "
                         "monitor-normalised, so neither is the background")
    q_bg, i_bg, s_bg = integ.integrate_many(bg_frames, monitors=monitors)
    if q_bg.shape != q.shape or not np.allclose(q_bg, q):
        raise ValueError("the background frames integrate to other q bins than the sample frames "
                         "(other invalid pixels?); use the same mask")
    bg, bg_sigma = _mean_pattern(i_bg, s_bg)
    return bg, bg_sigma, f"mean of the {len(bg_frames)} frame(s) of {', '.join(str(p) for p in background)}"


class SaxsResult:
    """``saxs_files``: per frame the background-subtracted I(q) on the fitted bins and its
    ``SphereFit`` (None before injection), and the derived series (``saxs.saxs_series``)."""

    def __init__(self, *, frames, series, q, intensity, sigma, q_range, distribution, background,
                 contrast_cm2=None, absolute_factor=1.0):
        self.frames = frames                # dicts: frame, time_s, fit, concentration_rel, yield_rel, ...
        self.series = series
        self.q = q                          # A^-1, the fitted bins
        self.intensity = intensity          # (N, bins), background subtracted, in frame-table order
        self.sigma = sigma
        self.q_range = q_range
        self.distribution = distribution
        self.background = background
        self.contrast_cm2 = contrast_cm2
        self.absolute_factor = absolute_factor

    def as_dict(self) -> dict:
        """The JSON of ``trxrd saxs``: the live reduction's report (``saxs.saxs_report``) plus
        the fit range, bins, distribution and background of this run."""
        from .saxs import saxs_report

        out = saxs_report(self.frames, self.series)
        out.update(frames_with_particles=self.series["frames_with_particles"],
                   q_range_inv_angstrom=[float(v) for v in self.q_range], q_bins=int(len(self.q)),
                   distribution=self.distribution, background=self.background)
        if self.contrast_cm2 is not None:
            out.update(contrast_cm2=self.contrast_cm2, absolute_factor=self.absolute_factor)
        return out


def saxs_files(frame_paths, poni, table, *, mask=None, npt: int = 500, background="auto", background_i0=None,
               distribution: str = "schulz", q_min: float | None = None, q_max: float | None = None,
               contrast_cm2: float | None = None, absolute_factor: float = 1.0) -> SaxsResult:
    """In-situ SAXS of a synthesis from detector files: frames + frame table (``frame``,
    ``time_s`` since injection, negative before; optional ``i0``, then every frame is divided
    by it) -> I(q) -> minus the background -> polydisperse spheres fitted per frame from
    injection on (each fit seeded by the previous frame with particles, else a Guinier start)
    -> relative concentration and yield, their t98, the growth law (``saxs.saxs_series``).

    Parameters
    ----------
    background : "auto" or list of frame files
        "auto": the mean I(q) of the frames with time_s < 0. Files: the mean of their frames;
        when the table has ``i0``, *background_i0* (their monitor) normalises them the same way,
        otherwise they are subtracted as they are (same exposure and flux as the frames).
    distribution : {"schulz", "gaussian"}
    q_min, q_max : float, optional
        Fit range (A^-1); default the bins the detector covers.
    contrast_cm2, absolute_factor : float, optional
        Scattering-length-density difference (cm^-2) and the factor to cm^-1: adds the
        concentration in uM per frame.

    EXAMPLE::

        result = saxs_files(["synthesis.h5"], "saxs.poni", "synthesis.csv", mask="saxs_mask.edf",
                            q_min=0.02, q_max=0.35)
        doc = result.as_dict()
        doc["t98_concentration_s"], doc["frames"][-1]["r_mean_nm"]
    """
    from .saxs import BEFORE_INJECTION, DISTRIBUTIONS, SphereTable, fit_spheres, saxs_series, subtract_background

    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"unknown radius distribution {distribution!r}; choose one of {', '.join(DISTRIBUTIONS)}")
    _check_q_range(q_min, q_max)
    if contrast_cm2 is not None and not (np.isfinite(contrast_cm2) and contrast_cm2 != 0):
        raise ValueError(f"--contrast must be a finite, non-zero scattering-length-density difference (cm^-2), "
                         f"got {contrast_cm2}")
    if not (np.isfinite(absolute_factor) and absolute_factor > 0):
        raise ValueError(f"--absolute-factor must be a positive number, got {absolute_factor}")
    frames = load_frames(frame_paths)
    rows = read_frame_table(table, len(frames), required=("frame", "time_s"))
    integ = _integrator(poni, mask, npt, frames)
    q, intensity, sigma = integ.integrate_many(frames, monitors=rows.get("i0"))
    covered = _covered(q, sigma)
    if not covered.any() or q[covered][0] > WAXS_Q_LOW_INV_ANGSTROM:
        low = float(q[covered][0]) if covered.any() else float(q[0])
        raise ValueError(f"this PONI is a WAXS geometry (q from {low:.3g} A^-1): SAXS needs q down to "
                         f"{WAXS_Q_LOW_INV_ANGSTROM:g} A^-1 or below (a long sample-detector distance)")
    sel, q_range = _fit_bins(q, covered, q_min, q_max)
    if sel.sum() < SAXS_MIN_BINS:
        q_lo, q_hi = float(q[covered][0]), float(q[covered][-1])
        why = (f"this PONI is a WAXS geometry (q from {q_lo:.3g} to {q_hi:.3g} A^-1): SAXS needs q down to about "
               f"0.01 A^-1 in bins of about 0.001 A^-1 (a long sample-detector distance)"
               if q_hi > WAXS_Q_HIGH_INV_ANGSTROM else "raise --npt or widen --qmin/--qmax")
        raise ValueError(f"the fit range {q_range[0]:.4g}-{q_range[1]:.4g} A^-1 holds {int(sel.sum())} q bins of "
                         f"this PONI's integration (bins of {np.median(np.diff(q)):.3g} A^-1, need {SAXS_MIN_BINS}): "
                         + why)
    bg, bg_sigma, bg_text = _saxs_background(background, frames, rows, integ, q, intensity, sigma, background_i0)
    sub_i, sub_s = subtract_background(intensity, sigma, bg[None, :], bg_sigma[None, :])
    q_fit, sub_i, sub_s = q[sel], sub_i[:, sel], sub_s[:, sel]
    table_q = SphereTable(q_fit, distribution=distribution)
    per_frame, seed = [], None
    for k in np.argsort(rows["time_s"], kind="stable"):
        t = float(rows["time_s"][k])
        fit = None
        if t >= 0:
            fit = fit_spheres(q_fit, sub_i[k], sub_s[k], table=table_q, seed=seed)
            if fit.particles:
                seed = fit
        per_frame.append({"frame": int(rows["frame"][k]), "time_s": t, "fit": fit, "row": int(k),
                          **({} if t >= 0 else {"reason": BEFORE_INJECTION})})
    series = saxs_series(per_frame, contrast_cm2=contrast_cm2, absolute_factor=absolute_factor)
    return SaxsResult(frames=per_frame, series=series, q=q_fit, intensity=sub_i, sigma=sub_s, q_range=q_range,
                      distribution=distribution, background=bg_text,
                      contrast_cm2=contrast_cm2, absolute_factor=absolute_factor)


class StackingResult:
    """``stacking_files``: per frame its ``StackingFit`` with the table's time / temperature /
    segment, the segments (``saxs.stacking_segments``) and the I(q) fitted."""

    def __init__(self, *, frames, segments, q, intensity, sigma, q_range):
        self.frames = frames
        self.segments = segments
        self.q = q
        self.intensity = intensity
        self.sigma = sigma
        self.q_range = q_range

    def as_dict(self) -> dict:
        """The JSON of ``trxrd stacking``."""
        keys = ("frame", "time_s", "temperature_c", "segment", "segment_kind")
        frames = [{**{k: f[k] for k in keys if k in f}, **f["fit"].as_dict()} for f in self.frames]
        return {"frames": frames, "segments": self.segments, "q_range_inv_angstrom": [float(v) for v in self.q_range]}


def stacking_files(frame_paths, poni, table, *, mask=None, npt: int = 1000, q_min: float | None = None,
                   q_max: float | None = None) -> StackingResult:
    """The stacking peak of a platelet film per frame of an anneal: frames + frame table
    (``frame`` and ``temperature_c`` and/or ``time_s``; optional ``i0``, ``segment`` (integer)
    and ``segment_kind`` (text, e.g. ramp / hold)) -> I(q) -> Lorentzian structure-factor peak on the form factor in
    [q_min, q_max] (A^-1; default the detector's range), each fit seeded by the previous frame
    with a peak -> d = 2 pi / q* (nm) with its error; per segment the d trajectory and its end
    value (``saxs.stacking_segments``, needs ``segment``, ``time_s`` and ``temperature_c``).

    EXAMPLE::

        result = stacking_files(["anneal.h5"], "saxs.poni", "anneal.csv", q_min=0.1, q_max=0.6)
        [f["d_nm"]["value"] for f in result.as_dict()["frames"]], result.segments
    """
    from .saxs import fit_stacking_peak, stacking_segments

    _check_q_range(q_min, q_max)
    frames = load_frames(frame_paths)
    rows = read_frame_table(table, len(frames), required=("frame",), optional=("time_s", "segment"),
                            text=("segment_kind",))
    if "time_s" not in rows and "temperature_c" not in rows:
        raise ValueError(f"{table}: the frame table needs a time_s and/or a temperature_c column")
    if "segment" in rows:
        if "time_s" not in rows or "temperature_c" not in rows:
            raise ValueError(f"{table}: a segment column needs both time_s and temperature_c")
        if not np.all(rows["segment"] == np.round(rows["segment"])):
            raise ValueError(f"{table}: segment must be an integer in every row")
    integ = _integrator(poni, mask, npt, frames)
    q, intensity, sigma = integ.integrate_many(frames, monitors=rows.get("i0"))
    sel, q_range = _fit_bins(q, _covered(q, sigma), q_min, q_max)
    order = np.lexsort((rows["frame"], rows["time_s"])) if "time_s" in rows else np.arange(len(frames))
    per_frame, seed = [], None
    for k in order:
        fit = fit_stacking_peak(q[sel], intensity[k, sel], sigma[k, sel], q_range=q_range, seed=seed)
        if fit.found:
            seed = fit
        entry = {"frame": int(rows["frame"][k]), "fit": fit, "row": int(k)}
        for key in ("time_s", "temperature_c"):
            if key in rows:
                entry[key] = float(rows[key][k])
        if "segment" in rows:
            entry["segment"] = int(rows["segment"][k])
            entry["segment_kind"] = str(rows["segment_kind"][k]) if "segment_kind" in rows else ""
        per_frame.append(entry)
    segments = stacking_segments(per_frame) if "segment" in rows else []
    return StackingResult(frames=per_frame, segments=segments, q=q[sel], intensity=intensity[:, sel],
                          sigma=sigma[:, sel], q_range=q_range)


# -- X-ray cross-correlation analysis of a nano-diffraction raster ----------------------------------------


def _finite(value):
    """*value* as strict JSON: numpy scalars and arrays as Python numbers and lists, NaN/inf as None."""
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_finite(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


class XccaResult:
    """``xcca_files``: the report of ``xcca.XccaAnalysis.report`` (averaged CCF, its peaks, beta
    and c/a, the averaged Bragg peak and the disorder, ``frames``: one row per pattern with its
    ``frame`` index and, with a table, ``x_um`` and ``y_um``) and the files it came from."""

    def __init__(self, report: dict, sources):
        self.report = report
        self.sources = [str(s) for s in sources]

    @property
    def rows(self) -> list[dict]:
        return self.report["frames"]

    def as_dict(self) -> dict:
        """The JSON of ``trxrd xcca``: the report (each row starting with its frame index) and the
        frame files, as strict JSON (NaN and inf as None)."""
        frames = [{"frame": r.get("frame"), **r} for r in self.rows]
        return _finite({**self.report, "frames": frames, "sources": self.sources})


def _xcca_arguments(q1, q2, dq, nphi) -> float:
    """Check the rings and the binning of ``xcca_files``; the ring width (A^-1) in force."""
    from .xcca import DQ_DEFAULT, check_nphi, check_rings

    if q1 is None or q2 is None:
        raise ValueError("XCCA needs two rings: give --q1 and --q2 (A^-1)")
    if dq is None and isinstance(q1, (int, float)) and q1 == q2:
        raise ValueError(f"--q1 and --q2 are the same ring ({q1:g} A^-1): XCCA correlates two distinct rings "
                         f"(a superlattice and an atomic-lattice ring)")
    _, _, dq = check_rings(q1, q2, DQ_DEFAULT if dq is None else dq)
    check_nphi(nphi)
    return dq


def xcca_files(frame_paths, poni, *, q1: float, q2: float, mask=None, dq: float | None = None, nphi: int = 180,
               table=None) -> XccaResult:
    """X-ray cross-correlation analysis of a nano-diffraction raster from detector files: every
    frame in order (HDF5 stacks and one-frame images, as ``io.load_frames`` reads them, a block at
    a time) through ``xcca.XccaAnalysis`` -> per pattern the grain, its orientation, the
    misorientation psi and the n-fold symmetry; over the raster the averaged CCF C(q1, q2, D), its
    peaks, beta and c/a of a bct superlattice, the averaged AL Bragg peak and the disorder.

    Parameters
    ----------
    q1, q2 : float
        The two rings (A^-1): the lower one the superlattice ring, the higher the atomic-lattice one.
    dq : float, optional
        Width of each ring (A^-1); default ``xcca.DQ_DEFAULT`` (0.02). The rings must not overlap.
    nphi : int
        Azimuth bins over 360 deg (even, 36 .. 3600).
    table : path, optional
        CSV, one row per frame: ``frame`` (0 .. N-1), ``x_um``, ``y_um`` (the beam's position;
        copied into each row, where the figure places it); with ``i0`` each frame is divided by it.

    ``ValueError`` on bad input (files, calibration, rings, table) and when fewer than
    ``xcca.MIN_CCF_PATTERNS`` patterns show spots on both rings.

    EXAMPLE::

        result = xcca_files(["raster.h5"], "waxs.poni", mask="waxs_mask.edf", q1=0.172, q2=1.833,
                            table="raster.csv")
        doc = result.as_dict()
        doc["peaks_deg"], doc["c_over_a"], doc["disorder_deg"], doc["frames"][0]["orientation_deg"]
    """
    from .xcca import XccaAnalysis

    dq = _xcca_arguments(q1, q2, dq, nphi)
    files = frame_files(frame_paths)
    n_frames = sum(n for _, n, _ in files)
    integ = AzimuthalIntegration(poni, mask=mask)
    shape = next((s for _, _, s in files if s is not None), None)
    if shape is not None and integ.shape and shape != integ.shape:
        raise ValueError(f"the frames are {shape[1]} x {shape[0]} pixels but the PONI file {poni} is for a "
                         f"{integ.shape[1]} x {integ.shape[0]} detector")
    if integ.shape is None:             # a PONI of a generic detector: its size is the frames'
        shape = shape or _image_frame(files[0][0]).shape[1:]
        if integ.mask is not None and integ.mask.shape != shape:
            raise ValueError(f"mask shape {integ.mask.shape} does not match the frames {shape}")
        integ.ai.detector.shape = integ.shape = shape
    rows = None
    if table is not None:
        rows = read_frame_table(table, n_frames, required=("frame", "x_um", "y_um"))
    analysis = XccaAnalysis(integ, q1, q2, dq=dq, nphi=int(nphi))
    for i, image in enumerate(iter_frames(files)):
        labels = {} if rows is None else {"x_um": float(rows["x_um"][i]), "y_um": float(rows["y_um"][i])}
        monitor = None if rows is None or "i0" not in rows else float(rows["i0"][i])
        analysis.add(image, monitor, frame=i, **labels)
    return XccaResult(analysis.report(), [p for p, _, _ in files])


# -- figures (the live reduction's) ---------------------------------------------------------------------
def saxs_figure(result: SaxsResult):
    """The live synthesis figure (``plots.draw_saxs``): r(t) and sigma/r(t) with error bars,
    relative concentration and yield with their 98 % times, I(q) of the last frame with
    particles and its fit (q in nm^-1)."""
    from matplotlib.figure import Figure

    from .plots import draw_saxs

    good = [f for f in result.frames if f["fit"] is not None and f["fit"].particles]
    last = None
    if good:
        f = good[-1]
        last = (result.q, result.intensity[f["row"]], f["fit"].model)
    return draw_saxs(Figure(figsize=(16, 4)), result.frames, result.series, last)


def xcca_figure(result: XccaResult):
    """The raster figure (``plots.draw_xcca``): grain orientation, misorientation psi and n-fold
    symmetry per beam position, the averaged CCF with its error band and its peaks."""
    from matplotlib.figure import Figure

    from .plots import draw_xcca

    return draw_xcca(Figure(figsize=(19, 4.4)), result.rows, result.report)


def stacking_figure(result: StackingResult):
    """The live anneal figure (``plots.draw_stacking``: d vs temperature, d and temperature vs
    time) when the table has both; else d and xi against the one it has."""
    from matplotlib.figure import Figure

    if all("time_s" in f and "temperature_c" in f for f in result.frames):
        from .plots import draw_stacking

        return draw_stacking(Figure(figsize=(10, 4)), result.frames)
    fig = Figure(figsize=(10, 4), layout="constrained")
    key, label = ("time_s", "time (s)") if "time_s" in result.frames[0] else ("temperature_c", "temperature (C)")
    found = [f for f in result.frames if f["fit"].found]
    for ax, name, text in zip(fig.subplots(1, 2), ("d_nm", "xi_nm"),
                              ("stacking period d (nm)", "correlation length xi (nm)")):
        ax.errorbar([f[key] for f in found], [getattr(f["fit"], name)[0] for f in found],
                    yerr=[getattr(f["fit"], name)[1] for f in found], fmt="o", ms=3, capsize=2)
        ax.set_xlabel(label)
        ax.set_ylabel(text)
    return fig
