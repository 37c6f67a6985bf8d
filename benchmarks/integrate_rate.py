"""Integration rate: trxrd's engine against every pyFAI method that applies, and the memory-read
floor, on the same frame in the same run.

Frames: int32 Poisson counts (mean 10) with -1 in the module gaps, as a Pilatus writes them,
for a Pilatus 2M (1679 x 1475) and a Pilatus 300K (619 x 487) of pyFAI's detector list; 1000 q
bins, solid angle and polarisation corrections, Poisson errors, the detector's gap mask. Per
figure the median of repeated calls (frames/s):

- trxrd: ``AzimuthalIntegration.integrate`` (the engine, all cores, map read from its cache);
- pyFAI: ``ai.integrate1d`` with each method of that splitting (CSR, CSC, LUT, histogram; Cython,
  as pyFAI ships them); the best is the baseline;
- floor: ``frame.sum()`` of the same int32 frame (numpy, one pass over the frame's memory).

Also the size of each map: trxrd's cached map against pyFAI's CSR matrix. The figures are
reported, never asserted. Run by ``make bench`` (``benchmarks/run.py``).

EXAMPLE::

    .venv/bin/python benchmarks/integrate_rate.py            # ~1 min; JSON on stdout
    .venv/bin/python benchmarks/integrate_rate.py --quick
"""
from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

DETECTORS = {"pilatus2m": "Pilatus2M", "pilatus300k": "Pilatus300k"}
PYFAI_METHODS = {"no": ("csr", "csc", "lut", "histogram"), "bbox": ("csr", "csc", "lut", "histogram")}
NPT = 1000


def median_rate(fn, seconds: float, min_calls: int = 5) -> float:
    """Calls/s: the median of single-call times over about *seconds* (after one warm call)."""
    fn()
    times = []
    t_end = time.perf_counter() + seconds
    while len(times) < min_calls or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1.0 / float(np.median(times))


def frame_for(detector: str, seed: int = 0):
    """(pyFAI integrator, int32 frame, gap mask) of a detector, beam near its centre."""
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator

    ai = AzimuthalIntegrator(detector=detector, wavelength=1e-10)
    ny, nx = ai.detector.shape
    px1, px2 = ai.detector.pixel1, ai.detector.pixel2
    ai.setFit2D(200.0, 0.45 * nx, 0.52 * ny, tilt=2.0, tiltPlanRotation=30.0, pixelX=px2 * 1e6, pixelY=px1 * 1e6)
    gaps = ai.detector.mask.astype(bool) if ai.detector.mask is not None else np.zeros((ny, nx), bool)
    frame = np.random.default_rng(seed).poisson(10.0, (ny, nx)).astype(np.int32)
    frame[gaps] = -1
    return ai, frame, gaps


def bench(quick: bool = False) -> dict:
    from trxrd.reduction import engine as engine_mod
    from trxrd.reduction.integrate import AzimuthalIntegration

    logging.getLogger("silx.opencl.common").setLevel(logging.ERROR)
    seconds = 0.4 if quick else 1.5
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, detector in DETECTORS.items():
            ai, frame, gaps = frame_for(detector)
            poni = Path(tmp) / f"{label}.poni"
            ai.save(str(poni))
            floor = median_rate(lambda: frame.sum(), seconds, 20)
            for split in ("no", "bbox"):
                integ = AzimuthalIntegration(poni, mask=gaps, npt=NPT, method=(split, "csr", "cython"))
                ours = median_rate(lambda: integ.integrate(frame), seconds)
                check = AzimuthalIntegration(poni, mask=gaps, npt=NPT, method=(split, "csr", "cython"),
                                             engine="pyfai").integrate(frame)
                got = integ.integrate(frame)
                ok = check.intensity > 0
                max_rel = float(np.max(np.abs(got.intensity[ok] / check.intensity[ok] - 1)))
                methods = {}
                for algo in PYFAI_METHODS[split]:
                    method = (split, algo, "cython")
                    ai.reset()
                    call = lambda m=method: ai.integrate1d(frame, NPT, mask=gaps, unit="q_A^-1", method=m,  # noqa: E731
                                                           correctSolidAngle=True, polarization_factor=0.99,
                                                           error_model="poisson")
                    methods["/".join(method)] = median_rate(call, seconds if algo != "histogram" else seconds / 2,
                                                            3)
                best = max(methods, key=methods.get)
                engine = integ._engine(None)
                map_bytes = sum(v.nbytes for v in engine.arrays.values())
                ai.reset()
                ai.integrate1d(frame, NPT, mask=gaps, unit="q_A^-1", method=(split, "csr", "cython"))
                csr = next(e.engine for k, e in ai.engines.items() if k.algo_lower == "csr")
                out[f"{label}_{'nosplit' if split == 'no' else split}"] = {
                    "trxrd": round(ours, 1), "pyfai_best": round(methods[best], 1), "pyfai_method": best,
                    "pyfai_methods": {k: round(v, 1) for k, v in methods.items()},
                    "floor": round(floor, 1), "ratio_vs_pyfai": round(ours / methods[best], 2),
                    "fraction_of_floor": round(ours / floor, 3), "max_rel_diff_vs_pyfai": max_rel,
                    "map_mb": round(map_bytes / 2**20, 1), "pyfai_csr_mb": round(csr.lut_nbytes / 2**20, 1),
                    "threads": engine_mod.cores(),
                }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter timing windows")
    args = parser.parse_args()
    print(json.dumps(bench(args.quick), indent=1))


if __name__ == "__main__":
    main()
