"""Offline reduction of detector files from a past beamtime with the same functions as the
live reduction: ``trxrd integrate``, ``trxrd kinetics``, ``trxrd reflections`` and
``trxrd thermometer``.

EXAMPLE::

    from trxrd.reduction.offline import integrate_files, kinetics_files
    integrate_files(["scan.h5"], "waxs.poni", mask="waxs_mask.edf", out="reduced.h5")
    result = kinetics_files(["scan.h5"], "waxs.poni", "scan.csv", [(1.70, 2.05)], model="biexp")
    result.fit.summary(), result.as_dict()
    refl = [parse_reflection("112:1.80:1.96")]
    cals = thermometer_files(["heat.h5"], "waxs.poni", "heat.csv", refl)        # {"112": calibration}
    series = reflections_files(["scan.h5"], "waxs.poni", "scan.csv", refl, thermometer=cals["112"])
    series.as_dict()["temperature_rise_K"]
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .difference import differences
from .integrate import AzimuthalIntegration
from .io import load_frames, read_frame_table, write_nexus
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
