"""Throughput of the live reduction chain against bare pyFAI, on the same frames, in one run.

Frames of the simulator's physics model (Pilatus 300K or 2M shape) are written to an HDF5
file with an areaDetector resource and one datum per frame; the documents of a delay scan
(on/off pairs) then go through ``live_reduction`` (frame read through resource/datum, pyFAI
with Poisson errors, derived documents, pump-on minus pump-off, window signal, a kinetics
refit after every point). The baseline is ``integrate1d`` alone on the frames in memory.
Also reported: the median time of one kinetics refit.

EXAMPLE::

    .venv/bin/python benchmarks/live_reduction_rate.py --detector pilatus300k --delays 40
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
from event_model import compose_run


def _frames(detector: str, delays: list[float]):
    from trxrd.simulated_devices.physics.beamline import BeamlineModel

    model = BeamlineModel(waxs_detector=detector, seed=1)
    model.jet.run = True
    model.jet.advance(10.0)
    model.waveplate_deg = model.cfg["laser"]["theta0_deg"]
    d = model.cfg["delay"]
    frames, rows = [], []
    for t in delays:
        model.stage_mm = d["stage_time_zero_mm"] + t * 1e-12 * 299792458.0 / d["n_passes"] * 1e3
        for role in ("on", "off"):
            model.shutter_open = role == "on"
            frames.append(model.waxs_frame(0.1))
            rows.append({"requested_delay": t, "pump_delay": t, "role": role, "i0": model.i0_current_a()})
    return model, np.array(frames), rows


def _documents(path: Path, n_frames: int, rows: list[dict], shape):
    run = compose_run(metadata={"plan_name": "delay_scan", "reference": "interleaved"})
    yield "start", run.start_doc
    keys = {"pilatus_image": {"source": "bench", "dtype": "array", "shape": list(shape), "external": "FILESTORE:"},
            "requested_delay": {"source": "bench", "dtype": "number", "shape": [], "units": "ps"},
            "pump_delay": {"source": "bench", "dtype": "number", "shape": [], "units": "ps"},
            "role": {"source": "bench", "dtype": "string", "shape": []},
            "i0": {"source": "bench", "dtype": "number", "shape": [], "units": "A"}}
    desc = run.compose_descriptor(name="primary", data_keys=keys)
    yield "descriptor", desc.descriptor_doc
    res = run.compose_resource(spec="AD_HDF5", root=str(path.parent), resource_path=path.name,
                               resource_kwargs={"frame_per_point": 1})
    yield "resource", res.resource_doc
    for i in range(n_frames):
        datum = res.compose_datum(datum_kwargs={"point_number": i})
        yield "datum", datum
        data = {"pilatus_image": datum["datum_id"], **rows[i]}
        yield "event", desc.compose_event(data=data, timestamps={k: 0.0 for k in data})
    yield "stop", run.compose_stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", choices=("pilatus300k", "pilatus2m"), default="pilatus300k")
    parser.add_argument("--delays", type=int, default=40)
    args = parser.parse_args()
    from trxrd.acquisition.plans.delays import dense_then_log
    from trxrd.reduction.callbacks import live_reduction
    from trxrd.reduction.integrate import AzimuthalIntegration
    from trxrd.simulated_devices.physics.beamline import window_for

    delays = dense_then_log(-200, 200, 17, 10000, args.delays - 17)
    model, frames, rows = _frames(args.detector, delays)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        poni, mask = model.waxs.write_calibration(tmp, "waxs")
        path = tmp / "frames.h5"
        with h5py.File(path, "w") as f:
            f.create_dataset("/entry/data/data", data=frames)
        integ = AzimuthalIntegration(poni, mask=mask)
        integ.integrate(frames[0])                       # build the engine before timing
        t0 = time.perf_counter()
        for frame, row in zip(frames, rows):
            integ.integrate(frame, monitor=row["i0"])
        bare = len(frames) / (time.perf_counter() - t0)
        sink = []
        integrator, pump_probe = live_reduction(poni, mask=mask, windows=[window_for("112", model.cfg)],
                                                store=lambda name, doc: sink.append(name), model="biexp")
        docs = list(_documents(path, len(frames), rows, frames.shape[1:]))
        t0 = time.perf_counter()
        for name, doc in docs:
            integrator(name, doc)
        chain = len(frames) / (time.perf_counter() - t0)
    fit = pump_probe.result.fit
    print(f"{args.detector} {frames.shape[2]}x{frames.shape[1]}, {len(delays)} delays, {len(frames)} frames")
    print(f"  pyFAI integrate alone (baseline)       {bare:7.1f} frames/s   1.00")
    print(f"  live chain (read+integrate+dI+refits)  {chain:7.1f} frames/s   {chain / bare:.2f}")
    print(f"  kinetics refits: {len(pump_probe.refit_s)}, median {np.median(pump_probe.refit_s) * 1e3:.0f} ms, "
          f"max {np.max(pump_probe.refit_s) * 1e3:.0f} ms; final {fit.summary()}")


if __name__ == "__main__":
    main()
