"""The live chain on streamed Pilatus 2M frames (1679 x 1475) against the bare engine, in one run.

Frames come from the simulator's physics with its pooled Poisson noise (``[waxs] noise_pool``,
sample ``pilatus2m``; rendered before the clock starts, in the detector's process: two cores
cannot fill a new state's noise pool and reduce at once) and are written the way the simulated
detector streams them, in a process of its own as the IOC is: one SWMR file,
``/entry/data/data`` growing a frame at a time in one-frame chunks (``HDF5Writer``), one datum per
trigger of ``frames_per_trigger`` frames. The documents of a delay scan (on/off pairs) go to
``LiveReduction`` as a RunEngine sends them, each event once its frames are in the file, so the
chain reads them through resource/datum while the file grows (frame read, integration, dI,
window signal, throttled refits, reduced and pump_probe runs composed).

- ``engine_fps``: ``integrate_many`` on the same frames in memory, same batch size, same process;
- ``live_chain_fps``: the chain's capacity, frames / the time its thread was busy (the time it
  waited for the detector excluded) while the frames were streamed at about 60 % of the engine's rate;
- ``latency_*``: raw event time (its frames in the file) -> its reduced event;
- ``backlog_max``: most documents waiting in the chain's queue;
- ``bound``: where the chain's time went (reading, integrating, the rest in Python).

EXAMPLE::

    .venv/bin/python benchmarks/live_chain_rate.py            # JSON on stdout
    .venv/bin/python benchmarks/live_chain_rate.py --quick
"""
from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from event_model import compose_run

from trxrd import datakeys as dk

C_MM_PER_PS = 299792458.0 * 1e-9
EXPOSURE_S = 0.1


class _Model:
    """The simulator's physics for a 2M with pooled noise; ``frame(delay, on)``, flux drawn."""

    def __init__(self):
        from trxrd.simulated_devices.physics import load_config
        from trxrd.simulated_devices.physics.beamline import BeamlineModel

        self.model = m = BeamlineModel(load_config("pilatus2m"), seed=1)
        m.jet.run = True
        m.jet.advance(10.0)
        m.waveplate_deg = m.cfg["laser"]["theta0_deg"]

    def frame(self, delay_ps: float, on: bool) -> tuple[np.ndarray, float]:
        m, d = self.model, self.model.cfg["delay"]
        m.stage_mm = d["stage_time_zero_mm"] + delay_ps * C_MM_PER_PS / d["n_passes"]
        m.shutter_open = on
        frame = m.waxs_frame(EXPOSURE_S)
        return frame, m.i0_current_a()


def _plan(delays):
    """(delay, role) of every trigger of an interleaved delay scan."""
    return [(t, role) for t in delays for role in (dk.ROLE_ON, dk.ROLE_OFF)]


def _stream(path: Path, triggers, n: int, send, period_s: float):
    """Write the triggers' frames as the simulated detector streams them and send each event's
    documents once its frames are in the file, one trigger every *period_s* at most (in a
    process of its own, as the detector IOC is)."""
    from trxrd.simulated_devices.iocs.area_detector import HDF5Writer

    model = _Model()
    rendered = [[model.frame(t, role == dk.ROLE_ON) for _ in range(n)] for t, role in triggers]   # before the clock
    del model
    keys = {"delay": "pump_delay", "fluence": "att_fluence", "excitations": "att_excitations", "i0": "i0",
            "shutter": "pump_shutter", "jet_flow": "jet_flow", "image": "pilatus_image"}
    run = compose_run(metadata={"plan_name": "delay_scan", dk.REFERENCE: "interleaved", dk.KEY_MAP: keys,
                                "num_points": len(triggers)})
    send("start", run.start_doc)
    shape = rendered[0][0][0].shape
    number = {"source": "bench", "dtype": "number", "shape": []}
    desc = run.compose_descriptor(name="primary", data_keys={
        "pilatus_image": {"source": "bench", "dtype": "array", "shape": [n, *shape], "external": "FILESTORE:"},
        dk.REQUESTED_DELAY: number, "pump_delay": number, "i0": number,
        dk.ROLE: {"source": "bench", "dtype": "string", "shape": []}})
    send("descriptor", desc.descriptor_doc)
    writer = HDF5Writer(str(path), shape, swmr=True)
    res = run.compose_resource(spec="AD_HDF5", root="/", resource_path=str(path).lstrip("/"),
                               resource_kwargs={"frame_per_point": n})
    send("resource", res.resource_doc)
    uid = 0
    try:
        for k, (t, role) in enumerate(triggers):
            t_trigger = time.perf_counter()
            fluxes = []
            for frame, i0 in rendered[k]:
                uid += 1
                writer.append(frame, uid, time.time())
                fluxes.append(i0)
            datum = res.compose_datum(datum_kwargs={"point_number": k})
            send("datum", datum)
            data = {"pilatus_image": datum["datum_id"], dk.REQUESTED_DELAY: t, "pump_delay": t,
                    "i0": float(np.mean(fluxes)), dk.ROLE: role}
            send("event", desc.compose_event(data=data, timestamps={key: time.time() for key in data}))
            left = period_s - (time.perf_counter() - t_trigger)
            if left > 0:
                time.sleep(left)          # the detector's own pace, not a wait in a test
    finally:
        writer.close()
    send("stop", run.compose_stop())


def _detector(path, triggers, n, period_s, queue):
    """The detector process: documents to *queue*, then None."""
    try:
        _stream(path, triggers, n, lambda name, doc: queue.put((name, doc)), period_s)
    finally:
        queue.put(None)


def _engine_rate(integ, frames, monitors, batch: int, seconds: float) -> float:
    """Frames/s of ``integrate_many`` alone on frames in memory, *batch* at a time."""
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        k = n % len(frames)
        stop = min(k + batch, len(frames))
        integ.integrate_many(frames[k:stop], monitors=monitors[k:stop])
        n += stop - k
    return n / (time.perf_counter() - t0)


def bench(quick: bool = False) -> dict:
    """Measure (see module); returns frames, engine_fps, live_chain_fps, ratio_vs_engine,
    latency_median_s, latency_max_s, backlog_max, bound."""
    from trxrd.acquisition.plans.delays import dense_then_log
    from trxrd.reduction.callbacks import LiveReduction
    from trxrd.reduction.integrate import AzimuthalIntegration
    from trxrd.reduction.settings import ReductionSettings
    from trxrd.simulated_devices.physics.beamline import window_for

    n = 4                                                    # frames per trigger
    delays = dense_then_log(-200, 200, 3, 5000, 1) if quick else dense_then_log(-200, 200, 7, 5000, 3)
    triggers = _plan(delays)
    model = _Model()
    batch = 16
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        poni, mask = model.model.waxs.write_calibration(tmp, "waxs")
        settings = ReductionSettings(poni, mask=mask, windows=[window_for("112", model.model.cfg)], model="biexp")
        integ = AzimuthalIntegration(poni, mask=mask)
        sample = [model.frame(t, on) for t, on in ((delays[0], True), (delays[0], False))] * (batch // 2)
        frames = np.array([f for f, _ in sample])
        monitors = np.array([m for _, m in sample])
        integ.integrate_many(frames, monitors=monitors)     # build the engine's maps before timing
        engine_fps = _engine_rate(integ, frames, monitors, batch, 3.0 if quick else 6.0)
        del frames

        reduced = []
        live = LiveReduction(settings, store=lambda name, doc: reduced.append(doc) if name == "event" else None,
                             max_queued=2000, batch_frames=batch)
        live.integrator.integration = integ                 # the engine built above (its maps cached)
        busy = {"s": 0.0}
        target = live.buffer.target

        class Timed:                                        # the chain's own thread: time spent working
            def __call__(self, name, doc):
                t0 = time.perf_counter()
                try:
                    return target(name, doc)
                finally:
                    busy["s"] += time.perf_counter() - t0

            def events(self, docs):
                t0 = time.perf_counter()
                try:
                    return target.events(docs)
                finally:
                    busy["s"] += time.perf_counter() - t0

        live.buffer.target = Timed()
        backlog = [0]
        watching = threading.Event()

        def watch():
            while not watching.wait(0.005):
                backlog.append(live.backlog)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue()
        detector = ctx.Process(target=_detector, args=(tmp / "stream.h5", triggers, n, n / (0.6 * engine_fps), queue))
        t0 = time.perf_counter()
        detector.start()
        for item in iter(queue.get, None):     # what a RunEngine does with each document: enqueue
            live(*item)
        detector.join(60)
        live.wait(600)
        t_end = time.perf_counter()
        watching.set()
        watcher.join()
        live.close()
        integrator = live.integrator
        frames_done = integrator.frames
        assert frames_done == n * len(triggers), (frames_done, n * len(triggers))
        latencies = np.array([d["data"]["latency"] for d in reduced if "latency" in d["data"]])
        chain_fps = frames_done / busy["s"]
        read, integrate = integrator.read_s, integrator.busy_s - integrator.read_s
        rest = busy["s"] - integrator.busy_s
        parts = {"file I/O (HDF5 chunk reads)": read, "integration (engine)": integrate,
                 "Python overhead (documents, dI, refits)": rest}
        main = max(parts, key=parts.get)
        bound = (f"{main}: {parts[main] / busy['s']:.0%} of the chain's busy time (read {read / frames_done * 1e3:.1f}, "
                 f"integrate {integrate / frames_done * 1e3:.1f}, rest {rest / frames_done * 1e3:.1f} ms/frame); "
                 f"streamed over {t_end - t0:.1f} s")
    return {"frames": int(frames_done), "engine_fps": round(engine_fps, 1), "live_chain_fps": round(chain_fps, 1),
            "ratio_vs_engine": round(chain_fps / engine_fps, 3),
            "latency_median_s": round(float(np.median(latencies)), 4), "latency_max_s": round(float(latencies.max()), 4),
            "backlog_max": int(max(max(backlog), live.buffer.max_backlog)), "bound": bound}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer delays (< 40 s)")
    print(json.dumps(bench(quick=parser.parse_args().quick), indent=1))
