"""Streaming detector against the simulated beamline: a delay scan with several frames per
trigger (ImageMode Multiple, one Stream-mode file, one datum per N frames) stores every frame,
the catalog reads them back, the live reduction reduces every frame in batches with a bounded
backlog and reports its lag; bad frames_per_trigger is refused before anything moves. Also the
simulator's pooled Poisson noise and the batched reads, without EPICS."""
import h5py
import numpy as np
import pytest

from trxrd.acquisition.plans.pump_probe import delay_scan

SAMPLE = {"name": "CuInSe2 streaming test", "size_nm": 7.0, "ligand": "oleylamine", "solvent": "dodecane",
          "sigma_cm2": 4e-14}
N = 3                   # frames per trigger
MAX_QUEUED = 200        # documents the live reduction may hold


@pytest.mark.ioc
def test_streamed_delay_scan_stores_and_reduces_every_frame(sim, bl, RE, tmp_path):
    from trxrd.catalog import CatalogWriter, open_catalog
    from trxrd.reduction.callbacks import LiveReduction
    from trxrd.reduction.callbacks.integrator import LATENCY, N_FRAMES
    from trxrd.reduction.settings import ReductionSettings
    from trxrd.simulated_devices.physics.beamline import window_for

    template = bl.pilatus.hdf5.write_path_template
    bl.pilatus.hdf5.write_path_template = f"{tmp_path}/frames/%Y/"
    cat = open_catalog(root=tmp_path)
    writer = CatalogWriter(cat, backup_directory=tmp_path / "spool")
    reduced = []
    live = LiveReduction(ReductionSettings(sim.waxs_dir / "waxs.poni", mask=sim.waxs_dir / "waxs_mask.edf",
                                           windows=[window_for("112", sim.cfg)]),
                         store=lambda name, doc: (writer(name, doc), reduced.append((name, doc))),
                         max_queued=MAX_QUEUED, batch_frames=8)
    backlog, lag = [], []
    RE.subscribe(writer)
    RE.subscribe(live)
    RE.subscribe(lambda name, doc: (backlog.append(live.backlog), lag.append(live.lag_frames)))
    bl.jet.start().wait(20)
    try:
        uid = RE(delay_scan([bl.pilatus], [0.0, 100.0, 300.0], frames_per_trigger=N, md={"sample": SAMPLE},
                            **bl.devices)).run_start_uids[0]
        live.wait(120)
        writer.flush()
    finally:
        bl.jet.stop()
        bl.pilatus.hdf5.write_path_template = template
        live.close()
    assert bl.pilatus.frames_per_trigger == 1 and bl.pilatus.stage_sigs["cam.image_mode"] == "Single"  # restored
    docs = RE.docs
    start = next(d for n, d in docs if n == "start")
    events = [d for n, d in docs if n == "event"]
    resources = [d for n, d in docs if n == "resource"]
    descriptor = next(d for n, d in docs if n == "descriptor" and d["name"] == "primary")
    assert start["plan_args"]["frames_per_trigger"] == N
    assert len(resources) == 1 and resources[0]["resource_kwargs"]["frame_per_point"] == N
    assert descriptor["data_keys"]["pilatus_image"]["shape"] == [N, 619, 487]
    n_frames = N * len(events)
    path = resources[0]["root"] + "/" + resources[0]["resource_path"]
    with h5py.File(path, "r", libver="latest", swmr=True) as f:
        in_file = f["/entry/data/data"][()]
    assert in_file.shape == (n_frames, 619, 487)                 # every frame, in one file
    stored = np.asarray(cat[uid]["primary"]["pilatus_image"].read())
    assert stored.shape == (len(events), N, 619, 487)            # the catalog reads them all back, per event
    np.testing.assert_array_equal(stored[[0, -1]].reshape(-1, 619, 487), in_file[[0, 1, 2, -3, -2, -1]])
    # the live reduction: every frame reduced, one reduced event per raw event (their mean)
    assert live.integrator.frames == n_frames and live.buffer.dropped == 0
    out = [d for n, d in reduced if n == "event" and N_FRAMES in d["data"]]
    assert len(out) == len(events) and all(d["data"][N_FRAMES] == N for d in out)
    assert all(0 <= d["data"][LATENCY] < 60 for d in out)
    assert max(backlog) < MAX_QUEUED and max(lag) <= N * MAX_QUEUED
    assert live.backlog == 0 and live.lag_frames == 0 and live.lag_s == 0.0
    assert live.buffer.max_backlog <= MAX_QUEUED
    # the event's pattern is the mean of its frames, each normalised by the event's I0
    first = next(d for d in out if d["data"]["raw_seq_num"] == events[0]["seq_num"])
    i0 = events[0]["data"][start["trxrd_keys"]["i0"]]
    curves = live.integrator.integration.integrate_many(in_file[:N], monitors=[i0] * N)
    np.testing.assert_allclose(first["data"]["intensity"], curves.intensity.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(first["data"]["sigma"], np.sqrt((curves.sigma ** 2).sum(axis=0)) / N, rtol=1e-5)
    assert live.result is not None and list(live.result.diff.n_pairs) == [1, 1, 1]


@pytest.mark.ioc
@pytest.mark.parametrize("value", [0, -2, 2.5, "3", True, float("nan")])
def test_bad_frames_per_trigger_refused_before_anything_moves(bl, value):
    position = bl.delay.delay.position
    with pytest.raises(ValueError, match="frames_per_trigger"):
        delay_scan([bl.pilatus], [0.0, 100.0], frames_per_trigger=value, md={"sample": SAMPLE}, **bl.devices)
    with pytest.raises(ValueError, match="frames_per_trigger"):
        bl.pilatus.frames_per_trigger = value
    assert bl.pilatus.frames_per_trigger == 1 and bl.delay.delay.position == position


def test_pooled_poisson_frames_keep_counting_statistics():
    """Every pooled frame is Poisson: mean = variance = expected x its flux; the flux spread is
    the beam's; pairs of halves give distinct frames."""
    from trxrd.simulated_devices.physics.detector import PoissonPool

    rng = np.random.default_rng(3)
    expected = np.full(200_000, 4.0, dtype=np.float32)
    pool = PoissonPool(size=12)
    frames, fluxes = zip(*(pool.frame("state", lambda: expected, 0.03, rng) for _ in range(300)))
    frames = np.array(frames, dtype=float)
    fluxes = np.array(fluxes)
    scaled = frames / fluxes[:, None]
    np.testing.assert_allclose(scaled.mean(axis=1), 4.0, rtol=0.01)
    np.testing.assert_allclose(frames.var(axis=1) / fluxes, 4.0, rtol=0.03)     # Poisson: var = mean
    assert 0.015 < fluxes.std() < 0.045
    assert len({f.tobytes() for f in frames[:, :64]}) > 50                       # not one frame repeated
    with pytest.raises(ValueError, match="noise pool"):
        PoissonPool(size=1)


def test_batched_reads_of_a_stream_file_match_frame_by_frame(tmp_path):
    """One direct read of several datums equals frame-by-frame h5py reads, for one and N frames
    per datum, and for a compressed file (no direct chunk reads)."""
    from trxrd.reduction.callbacks.handlers import AreaDetectorHDF5Handler

    frames = np.random.default_rng(0).poisson(5, size=(12, 17, 11)).astype(np.int32)
    for name, kw in (("plain.h5", {}), ("gzip.h5", {"compression": "gzip"})):
        path = tmp_path / name
        with h5py.File(path, "w", libver="latest") as f:
            f.create_dataset("/entry/data/data", data=frames, chunks=(1, 17, 11), **kw)
        one = AreaDetectorHDF5Handler(path)
        np.testing.assert_array_equal(one(4), frames[4])
        np.testing.assert_array_equal(one.frames(2, 5), frames[2:7])
        three = AreaDetectorHDF5Handler(path, frame_per_point=3)
        np.testing.assert_array_equal(three(1), frames[3:6])
        np.testing.assert_array_equal(three.frames(1, 3), frames[3:12])
        with pytest.raises(OSError, match="not written"):
            AreaDetectorHDF5Handler(path, frame_per_point=3, wait_s=0.05)(4)
        one.close(), three.close()
