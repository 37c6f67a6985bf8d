"""Soak: a night's worth of documents through the session's callbacks with flat memory.

100,000 scalar events go through a RunEngine with the session's subscribers (the catalog writer
and its catalog process, BestEffortCallback, the scan progress bar, the live reduction, which
takes scalar runs and reduces nothing of them); 20,000 frames of a delay scan go through the
live reduction (``LiveReduction``: the real ``LiveIntegrator`` reading them through
resource/datum from an HDF5 file, ``LivePumpProbe`` with its refits) and the catalog writer,
raw and derived runs alike. The frames are small (a 48 x 40 pixel detector) so that the soak
measures what the callbacks keep per frame, not the cost of integrating a large one.

After a warm-up (the first run of the scalar soak; the first 2,000 frames of the delay scan,
50 passes over its delays: every point exists, the chain's buffers, caches and first fits are
made), the process's resident memory, and the catalog process's, may grow by less than 10 % to
the end; open files and threads may not grow at all. The figures are printed (``-s``).

Run time: ~4 min per test on two cores shared with other work (2026-12: 245 s and 211 s at a
load of ~15); the RunEngine's own CPU per event is most of the scalar soak's.

EXAMPLE (with the figures printed)::

    .venv/bin/python -m pytest -q -s -p no:cacheprovider tests/test_soak.py
"""
from __future__ import annotations

import gc
import math
import os
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from trxrd import datakeys as dk

SCALAR_EVENTS = 100_000
SCALAR_RUNS = 4                  # the first is the warm-up
FRAMES = 20_000
FRAME_WARMUP = 2_000             # 50 passes over the delays: every point exists and has been fitted
DELAYS_PS = (-200.0, -50.0, 0.0, 25.0, 50.0, 75.0, 100.0, 150.0, 200.0, 300.0,
             400.0, 500.0, 700.0, 1000.0, 1400.0, 2000.0, 3000.0, 4000.0, 6000.0, 8000.0)
PASSES_IN_FILE = 8               # noise realisations written per (delay, role); the scan cycles through them
SHAPE = (48, 40)                 # pixels
PIXEL_M = 172e-6
MAX_GROWTH = 0.10                # of the resident memory after the warm-up
TAU_PS = 300.0


def rss(pid: int | str = "self") -> int:
    """Resident memory (bytes) of process *pid*."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


def resources(catalog_pid: int | None = None) -> dict:
    """Resident memory (bytes), open files, threads of this process (and the catalog process's
    resident memory)."""
    gc.collect()
    out = {"rss": rss(), "fds": len(os.listdir("/proc/self/fd")), "threads": threading.active_count()}
    if catalog_pid is not None:
        out["catalog_rss"] = rss(catalog_pid)
    return out


def check_flat(label: str, warm: dict, end: dict, items: int, unit: str) -> str:
    growth = (end["rss"] - warm["rss"]) / warm["rss"]
    figures = (f"{label}: RSS {warm['rss'] / 2**20:.1f} MiB after warm-up -> {end['rss'] / 2**20:.1f} MiB at the end "
               f"({100 * growth:+.1f} %, {(end['rss'] - warm['rss']) / 1024 / items:+.3f} KiB per {unit}); "
               f"fds {warm['fds']} -> {end['fds']}; threads {warm['threads']} -> {end['threads']}")
    if "catalog_rss" in warm:
        figures += (f"; catalog process RSS {warm['catalog_rss'] / 2**20:.1f} -> {end['catalog_rss'] / 2**20:.1f} MiB "
                    f"({(end['catalog_rss'] - warm['catalog_rss']) / 1024 / items:+.3f} KiB per {unit})")
    print(figures)
    assert growth < MAX_GROWTH, figures
    if "catalog_rss" in warm:
        assert end["catalog_rss"] < (1 + MAX_GROWTH) * warm["catalog_rss"], figures
    assert end["fds"] <= warm["fds"], figures
    assert end["threads"] <= warm["threads"], figures
    return figures


# -- a small detector and its frames -------------------------------------------------------------------
def write_calibration(directory: Path) -> Path:
    """A PONI file of a 48 x 40 pixel detector (172 um pixels, 20 mm away, 11.7 keV)."""
    from pyFAI.detectors import Detector
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator

    poni = directory / "small.poni"
    poni.unlink(missing_ok=True)              # pyFAI appends to an existing file
    ai = AzimuthalIntegrator(dist=0.02, poni1=-0.001, poni2=-0.001, wavelength=1.0597e-10,
                             detector=Detector(pixel1=PIXEL_M, pixel2=PIXEL_M, max_shape=SHAPE))
    ai.write(str(poni))
    return poni


def write_frames(poni: Path, path: Path) -> None:
    """``PASSES_IN_FILE`` passes of a delay scan (per delay an ``on`` then an ``off`` frame) in an
    areaDetector-like HDF5 file: a ring at 1.85 A^-1 whose pumped intensity drops by 20 % x
    exp(-t / TAU_PS) after time zero; Poisson counts, one frame per chunk."""
    import pyFAI

    q = pyFAI.load(str(poni)).qArray() / 10.0                      # nm^-1 -> A^-1
    ring = 200.0 + 2000.0 * np.exp(-0.5 * ((q - 1.85) / 0.08) ** 2)
    rng = np.random.default_rng(14)
    frames = []
    for _ in range(PASSES_IN_FILE):
        for delay in DELAYS_PS:
            drop = 0.2 * np.exp(-delay / TAU_PS) if delay >= 0 else 0.0
            frames += [rng.poisson(ring * (1 - drop * (ring > 400))), rng.poisson(ring)]
    with h5py.File(path, "w", libver="latest") as f:
        f.create_dataset("/entry/data/data", data=np.array(frames, dtype=np.int32), chunks=(1, *SHAPE))


def delay_scan_documents(path: Path, frames: int):
    """The documents of a raw delay scan of *frames* frames (interleaved on/off) read from *path*
    (see ``write_frames``), as the plan and the detector write them."""
    from event_model import compose_run

    keys = {"delay": "delay", "fluence": "att_fluence", "excitations": "att_excitations", "i0": "i0",
            "shutter": "shutter", "jet_flow": "jet_flow", "image": "small_image"}
    run = compose_run(metadata={"plan_name": "delay_scan", dk.KEY_MAP: keys, dk.REFERENCE: "interleaved",
                                "num_points": frames, "sample": "soak"})
    yield "start", run.start_doc
    number = {"source": "soak", "dtype": "number", "shape": []}
    data_keys = {"small_image": {"source": "soak", "dtype": "array", "shape": list(SHAPE), "external": "FILESTORE:"},
                 "delay": number, "att_fluence": number, "att_excitations": number, "i0": number,
                 "jet_flow": number, dk.REQUESTED_DELAY: number,
                 "shutter": {"source": "soak", "dtype": "string", "shape": []},
                 dk.ROLE: {"source": "soak", "dtype": "string", "shape": []},
                 dk.DELAY_INDEX: {"source": "soak", "dtype": "integer", "shape": []},
                 dk.REPEAT: {"source": "soak", "dtype": "integer", "shape": []},
                 dk.FRAME_VALID: {"source": "soak", "dtype": "boolean", "shape": []}}
    desc = run.compose_descriptor(name="primary", data_keys=data_keys)
    yield "descriptor", desc.descriptor_doc
    resource = run.compose_resource(spec="AD_HDF5", root=str(path.parent), resource_path=path.name,
                                    resource_kwargs={"frame_per_point": 1})
    yield "resource", resource.resource_doc
    per_pass = 2 * len(DELAYS_PS)
    for seq in range(frames):
        point = seq % (per_pass * PASSES_IN_FILE)
        index, on = (point % per_pass) // 2, point % 2 == 0
        datum = resource.compose_datum(datum_kwargs={"point_number": point})
        yield "datum", datum
        now = time.time()
        data = {"small_image": datum["datum_id"], "delay": DELAYS_PS[index] + 0.01, "att_fluence": 2.0,
                "att_excitations": 1.5, "i0": 1.0, "jet_flow": 8.0, dk.REQUESTED_DELAY: DELAYS_PS[index],
                "shutter": "Open" if on else "Closed", dk.ROLE: dk.ROLE_ON if on else dk.ROLE_OFF,
                dk.DELAY_INDEX: index, dk.REPEAT: seq // per_pass, dk.FRAME_VALID: True}
        yield "event", desc.compose_event(data=data, timestamps={k: now for k in data}, filled={"small_image": False})
    yield "stop", run.compose_stop()


# -- the two soaks -------------------------------------------------------------------------------------------
def soak_frames(root: Path, frames: int = FRAMES, warmup: int = FRAME_WARMUP, *, every: int = 500) -> dict:
    """*frames* frames of one delay scan through the catalog writer and the live reduction (with
    the catalog as its store); resources after *warmup* frames, before the stop document and
    after it. Like a detector at the chain's pace, the feeder waits for the chain and the catalog
    every *every* frames (a backlog is not a leak)."""
    from trxrd.catalog import CatalogProcess, CatalogWriter, events_written
    from trxrd.reduction.callbacks.live import LiveReduction
    from trxrd.reduction.settings import ReductionSettings

    poni = write_calibration(root)
    path = root / "frames" / "soak.h5"
    path.parent.mkdir()
    write_frames(poni, path)
    out = {"series": []}
    with CatalogProcess(root=root) as process:
        writer = CatalogWriter(process, backup_directory=root / "spool")
        live = LiveReduction(ReductionSettings(poni, windows=[(1.75, 1.95)], npt=100, model="exp",
                                               image_key="small_image"), store=writer)
        t0 = time.monotonic()
        for name, doc in delay_scan_documents(path, frames):
            if name == "stop":
                live.wait(600)
                writer.flush(600)
                out["before_stop"] = resources(process.pid)
            writer(name, doc)
            live(name, doc)
            if name == "event" and doc["seq_num"] % every == 0:
                live.wait(600)
                writer.flush(600)
                out["series"].append((doc["seq_num"], rss()))
                if doc["seq_num"] == warmup:
                    out["warm"] = resources(process.pid)
                    out["warm_refits"] = live.pump_probe.refits
        live.wait(600)
        writer.flush(600)
        out["end"] = resources(process.pid)
        out["seconds"] = time.monotonic() - t0
        out["refits"] = live.pump_probe.refits
        out["refit_s"] = float(np.median(live.pump_probe.refit_s))
        out["result"] = live.result
        out["integrated"] = live.integrator.frames
        live.close()
        writer.close()
        cat = process.catalog()
        out["stored"] = {run.start["plan_name"]: ((run.stop or {}).get("exit_status"), events_written(run))
                         for run in cat.values()}
    return out


def scalar_run(detector, events: int):
    """A run of *events* readings of *detector*: create, read, save per event (``count`` without
    its per-event checkpoint, trigger and wait, which cost the RunEngine three times the CPU)."""
    from bluesky import plan_stubs as bps
    from bluesky import preprocessors as bpp

    @bpp.run_decorator(md={"plan_name": "soak_scalars", "num_points": events, "detectors": [detector.name]})
    def inner():
        for _ in range(events):
            yield from bps.create("primary")
            yield from bps.read(detector)
            yield from bps.save()

    return (yield from inner())


def soak_scalars(root: Path, events: int = SCALAR_EVENTS, runs: int = SCALAR_RUNS) -> dict:
    """*events* scalar events in *runs* runs through a RunEngine with the session's subscribers;
    resources after the first run and after the last."""
    from bluesky import RunEngine
    from bluesky.callbacks.best_effort import BestEffortCallback
    from ophyd import Signal

    from trxrd.acquisition.progress import install_progress
    from trxrd.catalog import CatalogProcess, CatalogWriter, events_written
    from trxrd.reduction.callbacks.live import LiveReduction
    from trxrd.reduction.settings import ReductionSettings

    poni = write_calibration(root)
    detector = Signal(name="diode", value=1.0)
    out = {"uids": []}
    with CatalogProcess(root=root) as process:
        RE = RunEngine({})
        writer = CatalogWriter(process, backup_directory=root / "spool")
        RE.subscribe(writer)
        bec = BestEffortCallback()
        bec.disable_plots()
        RE.subscribe(bec)
        install_progress(RE)
        live = LiveReduction(ReductionSettings(poni, windows=[(1.75, 1.95)], npt=100, image_key="small_image"),
                             store=writer)
        RE.subscribe(live)
        t0 = time.monotonic()
        for k in range(runs):
            detector.put(float(k))
            out["uids"] += RE(scalar_run(detector, events // runs))
            live.wait(600)
            writer.flush(600)
            if k == 0:
                out["warm"] = resources(process.pid)
        out["end"] = resources(process.pid)
        out["seconds"] = time.monotonic() - t0
        live.close()
        writer.close()
        cat = process.catalog()
        out["stored"] = [events_written(cat[uid]) for uid in out["uids"]]
    return out


@pytest.mark.slow
def test_a_hundred_thousand_scalar_events_keep_memory_files_and_threads_flat(tmp_path):
    out = soak_scalars(tmp_path)
    assert out["stored"] == [SCALAR_EVENTS // SCALAR_RUNS] * SCALAR_RUNS
    print(f"{SCALAR_EVENTS} scalar events in {out['seconds']:.0f} s")
    check_flat("scalar events", out["warm"], out["end"], SCALAR_EVENTS - SCALAR_EVENTS // SCALAR_RUNS, "event")


@pytest.mark.slow
def test_twenty_thousand_frames_through_live_reduction_keep_memory_files_and_threads_flat(tmp_path):
    from trxrd.reduction.callbacks.pump_probe import RefitPolicy

    out = soak_frames(tmp_path)
    assert out["integrated"] == FRAMES
    assert {plan: stored[0] for plan, stored in out["stored"].items()} == {
        "delay_scan": "success", dk.INTEGRATE_PLAN: "success", dk.PUMP_PROBE_PLAN: "success"}
    assert out["stored"]["delay_scan"][1] == out["stored"][dk.INTEGRATE_PLAN][1] == FRAMES
    assert out["result"].fit.value("tau1_ps") == pytest.approx(TAU_PS, rel=0.1)
    # refits grow like the log of the scan: each waits for min_growth more pairs than the last
    growth = 1 + RefitPolicy().min_growth
    assert out["refits"] - out["warm_refits"] <= math.log(FRAMES / FRAME_WARMUP) / math.log(growth) + 2
    print(f"{FRAMES} frames in {out['seconds']:.0f} s; {out['refits']} refits ({out['warm_refits']} in the "
          f"warm-up), median {1e3 * out['refit_s']:.0f} ms")
    check_flat("frames (before the stop document)", out["warm"], out["before_stop"], FRAMES - FRAME_WARMUP, "frame")
    check_flat("frames (after the run)", out["warm"], out["end"], FRAMES - FRAME_WARMUP, "frame")
