"""Offline reduction of detector files from a past beamtime with the same functions as the
live reduction: ``trxrd integrate`` and ``trxrd kinetics``.

EXAMPLE::

    from trxrd.reduction.offline import integrate_files, kinetics_files
    integrate_files(["scan.h5"], "waxs.poni", mask="waxs_mask.edf", out="reduced.h5")
    result = kinetics_files(["scan.h5"], "waxs.poni", "scan.csv", [(1.70, 2.05)], model="biexp")
    result.fit.summary(), result.as_dict()
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .integrate import AzimuthalIntegration
from .io import load_frames, read_frame_table, write_nexus
from .pump_probe import PumpProbeResult, fit_delays, pump_probe_signal


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
