"""Throughput of the live reduction chain against bare pyFAI, on the same frames, in one run, for
a short and a long delay scan: the ratio must not fall with the scan's length (constant work
per frame, refits throttled).

Frames of the simulator's physics model (Pilatus 300K or 2M shape) are written once to an HDF5
file with an areaDetector resource; the documents of a delay scan (on/off pairs, one datum per
frame; repeats reuse the file's frames) go to ``LiveReduction`` exactly as a RunEngine sends
them: the chain runs on its own thread (frame read through resource/datum, pyFAI with Poisson
errors, reduced and pump_probe runs composed, per-point sums, throttled kinetics refits and the
final fit) and the time counts until it has caught up. The baseline, measured next to each
case, is ``AzimuthalIntegration.integrate`` alone on frames in memory.

EXAMPLE::

    .venv/bin/python benchmarks/live_reduction_rate.py                       # 80 and 2000 frames
    .venv/bin/python benchmarks/live_reduction_rate.py --detector pilatus2m --pool-delays 20
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
from event_model import compose_run

from trxrd import datakeys as dk

C_MM_PER_PS = 299792458.0 * 1e-9


def _pool(detector: str, delays: list[float]):
    """One pump-on and one pump-off frame per delay, from the simulator's physics (the model's
    time zero: the delays are true delays), with their I0."""
    from trxrd.simulated_devices.physics.beamline import BeamlineModel

    model = BeamlineModel(waxs_detector=detector, seed=1)
    model.jet.run = True
    model.jet.advance(10.0)
    model.waveplate_deg = model.cfg["laser"]["theta0_deg"]
    d = model.cfg["delay"]
    frames, i0 = [], []
    for t in delays:
        model.stage_mm = d["stage_time_zero_mm"] + t * C_MM_PER_PS / d["n_passes"]
        for role in (dk.ROLE_ON, dk.ROLE_OFF):
            model.shutter_open = role == dk.ROLE_ON
            frames.append(model.waxs_frame(0.1))
            i0.append(model.i0_current_a())
    return model, np.array(frames), np.array(i0)


def _documents(path: Path, delays: list[float], repeats: int, i0: np.ndarray, shape):
    """A delay scan's documents as the pump-probe plan writes them (see trxrd.datakeys)."""
    keys = {"delay": "pump_delay", "fluence": "att_fluence", "excitations": "att_excitations", "i0": "i0",
            "shutter": "pump_shutter", "jet_flow": "jet_flow", "image": "pilatus_image"}
    run = compose_run(metadata={"plan_name": "delay_scan", dk.REFERENCE: "interleaved", dk.KEY_MAP: keys})
    yield "start", run.start_doc
    number = {"source": "bench", "dtype": "number", "shape": []}
    data_keys = {"pilatus_image": {"source": "bench", "dtype": "array", "shape": list(shape), "external": "FILESTORE:"},
                 dk.REQUESTED_DELAY: number, "pump_delay": number, "i0": number,
                 dk.ROLE: {"source": "bench", "dtype": "string", "shape": []}}
    desc = run.compose_descriptor(name="primary", data_keys=data_keys)
    yield "descriptor", desc.descriptor_doc
    res = run.compose_resource(spec="AD_HDF5", root=str(path.parent), resource_path=path.name,
                               resource_kwargs={"frame_per_point": 1})
    yield "resource", res.resource_doc
    for _ in range(repeats):
        for k, t in enumerate(delays):
            for j, role in enumerate((dk.ROLE_ON, dk.ROLE_OFF)):
                frame = 2 * k + j
                datum = res.compose_datum(datum_kwargs={"point_number": frame})
                yield "datum", datum
                data = {"pilatus_image": datum["datum_id"], dk.REQUESTED_DELAY: t, "pump_delay": t,
                        "i0": float(i0[frame]), dk.ROLE: role}
                yield "event", desc.compose_event(data=data, timestamps={k_: 0.0 for k_ in data})
    yield "stop", run.compose_stop()


def _bare_rate(integ, frames, i0, seconds: float = 2.0) -> float:
    """Frames/s of pyFAI alone (frames in memory), for at least *seconds*."""
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        integ.integrate(frames[n % len(frames)], monitor=float(i0[n % len(frames)]))
        n += 1
    return n / (time.perf_counter() - t0)


def _case(settings, path, frames, i0, delays, repeats, integ):
    from trxrd.reduction.callbacks import LiveReduction

    bare = _bare_rate(integ, frames, i0)
    derived = []
    live = LiveReduction(settings, store=lambda name, doc: derived.append(name))
    docs = list(_documents(path, delays, repeats, i0, frames.shape[1:]))
    n = 2 * len(delays) * repeats
    t0 = time.perf_counter()
    for name, doc in docs:            # what a RunEngine does: enqueue and go on
        live(name, doc)
    live.wait(3600)
    chain = n / (time.perf_counter() - t0)
    live.close()
    pp = live.pump_probe
    assert live.integrator.frames == n and derived.count("stop") == 2, (live.integrator.frames, derived.count("stop"))
    return {"frames": n, "bare": bare, "chain": chain, "ratio": chain / bare, "refits": len(pp.refit_s),
            "refit_ms": float(np.median(pp.refit_s)) * 1e3, "fit": pp.result.fit}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", choices=("pilatus300k", "pilatus2m"), default="pilatus300k")
    parser.add_argument("--pool-delays", type=int, default=100,
                        help="distinct delays rendered (2 frames each); the long scan repeats them")
    parser.add_argument("--long-frames", type=int, default=2000)
    args = parser.parse_args()
    from trxrd.acquisition.plans.delays import dense_then_log
    from trxrd.reduction.integrate import AzimuthalIntegration
    from trxrd.reduction.settings import ReductionSettings
    from trxrd.simulated_devices.physics.beamline import window_for

    pool = dense_then_log(-200, 200, 17, 10000, args.pool_delays - 17)
    short = dense_then_log(-200, 200, 17, 10000, 23)                        # 40 delays: 80 frames
    short_idx = [int(np.argmin(np.abs(np.array(pool) - t))) for t in short]
    repeats = max(1, round(args.long_frames / (2 * len(pool))))
    model, frames, i0 = _pool(args.detector, pool)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        poni, mask = model.waxs.write_calibration(tmp, "waxs")
        settings = ReductionSettings(poni, mask=mask, windows=[window_for("112", model.cfg)], model="biexp")
        long_path = tmp / "frames.h5"
        with h5py.File(long_path, "w") as f:
            f.create_dataset("/entry/data/data", data=frames, chunks=(1, *frames.shape[1:]))
        sel = np.array([[2 * k, 2 * k + 1] for k in short_idx]).ravel()
        short_path = tmp / "short.h5"
        with h5py.File(short_path, "w") as f:
            f.create_dataset("/entry/data/data", data=frames[sel], chunks=(1, *frames.shape[1:]))
        integ = AzimuthalIntegration(poni, mask=mask)
        integ.integrate(frames[0])                       # build the engine before timing
        rows = [_case(settings, short_path, frames[sel], i0[sel], [pool[k] for k in short_idx], 1, integ),
                _case(settings, long_path, frames, i0, pool, repeats, integ)]
    print(f"{args.detector} {frames.shape[2]}x{frames.shape[1]}, 1000 q bins; live chain on its own thread "
          f"(read + integrate + dI + throttled refits) vs pyFAI integrate alone, measured next to each case")
    print(f"  {'frames':>6} {'pyFAI alone':>12} {'live chain':>11} {'ratio':>6} {'refits':>7} {'median refit':>13}")
    for r in rows:
        print(f"  {r['frames']:>6} {r['bare']:>8.1f} f/s {r['chain']:>7.1f} f/s {r['ratio']:>6.2f} "
              f"{r['refits']:>7} {r['refit_ms']:>10.0f} ms")
    print(f"  ratio long / short: {rows[1]['ratio'] / rows[0]['ratio']:.2f} (>= 1: no slow-down with scan length)")
    print(f"  final fit of the long scan: {rows[1]['fit'].summary()}")


if __name__ == "__main__":
    main()
