"""Per-pattern XCCA rate (``reduction.xcca.XccaAnalysis.add``) and the live XCCA chain on
Pilatus 300K patterns, against one azimuthal integration of the same frames in the same run.

One core: OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS are set to 1 before numpy is
imported and the process is pinned to one CPU where the OS allows it (the target, >= 20
patterns/s on 2 cores, is then met if one core does it).

The patterns: a raster over the simulator's PbS mesocrystal (``pbs-mesocrystal``: grains,
borders, holes; superlattice and atomic-lattice spots, Poisson noise), made before the timing.
Timed:

- baseline: one azimuthal integration (1000 bins, the project's ``AzimuthalIntegration``);
- per pattern: the two polar re-binnings, ring profiles, spot fits, orientation, CCF and the
  running averages (``XccaAnalysis.add``), and the averages' fits at the end (``report``);
- the live chain (``LiveXccaReduction``: frame read through resource/datum from an HDF5 file,
  per-pattern XCCA, documents) fed with the documents of a ``raster_scan``, timed until it has
  caught up: the patterns/s it sustains during a raster.

The target is reported, never asserted.

EXAMPLE::

    .venv/bin/python benchmarks/xcca_rate.py               # ~30 s
    .venv/bin/python benchmarks/xcca_rate.py --side 10
"""
from __future__ import annotations

import one_core  # first: the thread counts, before numpy

import argparse  # noqa: E402  (after one_core)
import logging  # noqa: E402
import math  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

TARGET_PATTERNS_PER_S = 20.0
STEP_UM = 0.4
Q1, Q2 = 2 * math.pi * math.sqrt(3) / 5.936, 0.172     # PbS 111 (literature a) and the published SL ring


def make_raster(side: int, seed: int = 4):
    """(model, [(x, y, frame)]) of a side x side snake raster over the mesocrystal."""
    from trxrd.simulated_devices.physics import load_config
    from trxrd.simulated_devices.physics.beamline import BeamlineModel

    model = BeamlineModel(load_config("pbs-mesocrystal"), seed=seed)
    out = []
    for j in range(side):
        xs = range(side) if j % 2 == 0 else reversed(range(side))
        for i in xs:
            model.stage_x_um, model.stage_y_um = (i - side / 2) * STEP_UM, (j - side / 2) * STEP_UM
            out.append((model.stage_x_um, model.stage_y_um, model.waxs_frame(0.1)))
    return model, out


def raster_documents(frames, path: Path):
    """The documents of a raster whose frames lie in the HDF5 file *path* (resource/datum)."""
    import h5py
    from event_model import compose_run

    from trxrd import datakeys as dk

    with h5py.File(path, "w") as f:
        f.create_dataset("/entry/data/data", data=np.asarray([fr for _, _, fr in frames], dtype=np.int32))
    run = compose_run(metadata={"plan_name": "raster_scan", dk.KEY_MAP: {
        "image": "pilatus_image", "x_um": "sample_x", "y_um": "sample_y"}})
    desc = run.compose_descriptor(name="primary", data_keys={
        "pilatus_image": {"source": "bench", "dtype": "array", "shape": list(frames[0][2].shape),
                          "external": "FILESTORE:"},
        "sample_x": {"source": "bench", "dtype": "number", "shape": []},
        "sample_y": {"source": "bench", "dtype": "number", "shape": []}})
    res = run.compose_resource(spec="AD_HDF5", root="/", resource_path=str(path.relative_to("/")),
                               resource_kwargs={"frame_per_point": 1})
    docs = [("start", run.start_doc), ("descriptor", desc.descriptor_doc), ("resource", res.resource_doc)]
    for k, (x, y, _) in enumerate(frames):
        datum = res.compose_datum(datum_kwargs={"point_number": k})
        data = {"pilatus_image": datum["datum_id"], "sample_x": x, "sample_y": y}
        docs += [("datum", datum), ("event", desc.compose_event(data=data, timestamps={key: 0.0 for key in data},
                                                                filled={"pilatus_image": False}))]
    docs.append(("stop", run.compose_stop()))
    return docs


def measure(side: int) -> dict:
    """The timings (s) on a side x side raster, on one core."""
    logging.getLogger("silx.opencl.common").setLevel(logging.ERROR)
    pinned = one_core.pin()

    from trxrd.reduction.callbacks.live import LiveXccaReduction
    from trxrd.reduction.integrate import AzimuthalIntegration
    from trxrd.reduction.settings import XccaSettings
    from trxrd.reduction.xcca import XccaAnalysis

    t0 = time.perf_counter()
    model, frames = make_raster(side)
    t_make = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        poni, mask = model.waxs.write_calibration(tmp, "waxs")
        integ = AzimuthalIntegration(poni, mask=mask, npt=1000)
        integ.integrate(frames[0][2])                                   # warm: the engine's pixel -> bin map
        t0 = time.perf_counter()
        for _, _, fr in frames:
            integ.integrate(fr)
        t_integrate = (time.perf_counter() - t0) / len(frames)

        xc = XccaAnalysis(integ, Q1, Q2)
        xc.add(frames[0][2])                                            # warm: the polar maps
        xc = XccaAnalysis(integ, Q1, Q2)
        t0 = time.perf_counter()
        for x, y, fr in frames:
            xc.add(fr, x_um=x, y_um=y)
        t_pattern = (time.perf_counter() - t0) / len(frames)
        t0 = time.perf_counter()
        report = xc.report()
        t_report = time.perf_counter() - t0

        docs = raster_documents(frames, Path(tmp) / "raster.h5")
        live = LiveXccaReduction(XccaSettings(poni, q1=Q1, q2=Q2, mask=mask))
        t0 = time.perf_counter()
        for name, doc in docs:
            live(name, doc)
        live.wait(600)
        t_live = (time.perf_counter() - t0) / len(frames)
        live.close()
        if live.result is None:
            raise RuntimeError(f"the live XCCA chain gave no report: {live.xcca.status}")
    return dict(pinned=pinned, frames=len(frames), t_make=t_make, t_integrate=t_integrate, t_pattern=t_pattern,
                t_report=t_report, t_live=t_live, report=report)


def bench(quick: bool = False) -> dict:
    """``make bench``'s figures (ms per pattern, one core)."""
    m = measure(8 if quick else 14)
    return {"xcca_pattern_ms": round(1e3 * m["t_pattern"], 2), "xcca_live_chain_ms": round(1e3 * m["t_live"], 2),
            "integrate_ms": round(1e3 * m["t_integrate"], 2), "patterns": m["frames"], "cores": 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=14, help="raster of side x side patterns (default 14)")
    args = parser.parse_args()
    m = measure(args.side)
    pinned, frames, t_make, report = m["pinned"], m["frames"], m["t_make"], m["report"]
    t_integrate, t_pattern, t_report, t_live = m["t_integrate"], m["t_pattern"], m["t_report"], m["t_live"]
    print(f"XCCA rate, one core ({pinned}; OMP/OPENBLAS/MKL threads = 1)")
    print(f"  patterns: {frames} of the simulated PbS mesocrystal (Pilatus 300K), made in {t_make:.1f} s; "
          f"{report['n_frames_with_grain']} with a grain, {report['n_frames_used']} with both rings")
    print(f"  baseline: one integration (1000 bins)                       {1e3 * t_integrate:7.2f} ms")
    for label, t in (("per pattern (XccaAnalysis.add)", t_pattern),
                     ("live chain (read + XCCA + documents)", t_live)):
        print(f"  {label:<40} {1e3 * t:7.2f} ms = {1 / t:6.1f} patterns/s = {t / t_integrate:5.2f} integrations")
    print(f"  averages at the end (CCF peaks, beta, Bragg peak fits)       {1e3 * t_report:7.2f} ms (once)")
    verdict = "met" if 1 / max(t_pattern, t_live) >= TARGET_PATTERNS_PER_S else "not met"
    print(f"  target >= {TARGET_PATTERNS_PER_S:g} patterns/s on 2 cores: {verdict} on one core "
          f"({1 / max(t_pattern, t_live):.1f} patterns/s, the slower of the two paths)")


if __name__ == "__main__":
    main()
