"""Pump-probe plans against the simulated beamline: events, frames, reference modes,
suspenders and bad input."""
import math
import threading

import h5py
import numpy as np
import pytest

from conftest import true_delay_ps, wait_for
from trxrd.acquisition.plans.pump_probe import delay_scan

pytestmark = pytest.mark.ioc

SAMPLE = {"name": "CuInSe2 test", "size_nm": 7.0, "ligand": "oleylamine", "solvent": "dodecane",
          "sigma_cm2": 4e-14}


@pytest.fixture
def jet(bl):
    bl.jet.start().wait(20)
    yield bl.jet
    bl.jet.stop()


def _events(RE):
    return [d for n, d in RE.docs if n == "event"]


def _frames(RE, key="pilatus_image"):
    """The frames behind the events' datum ids, read from the HDF5 file."""
    res = {d["uid"]: d for n, d in RE.docs if n == "resource"}
    datums = {d["datum_id"]: d for n, d in RE.docs if n == "datum"}
    out = []
    for ev in _events(RE):
        datum = datums[ev["data"][key]]
        r = res[datum["resource"]]
        with h5py.File(r["root"] + "/" + r["resource_path"], "r", libver="latest", swmr=True) as f:
            out.append(f["/entry/data/data"][datum["datum_kwargs"]["point_number"]])
    return out


def test_interleaved_delay_scan(sim, bl, RE, jet):
    from trxrd.acquisition.plans.pump_probe import delay_scan
    from trxrd.reduction.integrate import AzimuthalIntegration
    from trxrd.reduction.peaks import window_integral
    from trxrd.simulated_devices.physics.beamline import BeamlineModel, window_for

    bl.att.waveplate.move(sim.cfg["laser"]["theta0_deg"], timeout=20)     # full power
    delays = [-200.0, 100.0, 2500.0]
    RE(delay_scan([bl.pilatus], delays, md={"sample": SAMPLE}, **bl.devices))
    events = _events(RE)
    assert len(events) == 6
    start = next(d for n, d in RE.docs if n == "start")
    assert start["plan_name"] == "delay_scan" and start["sample"]["name"] == SAMPLE["name"]
    laser = sim.cfg["laser"]
    assert start["num_points"] == 6 and start["spot_fwhm_um"] == [laser["spot_fwhm_x_um"], laser["spot_fwhm_y_um"]]
    assert start["trxrd_keys"] == {"delay": "pump_delay", "fluence": "att_fluence", "excitations": "att_excitations",
                                   "i0": "i0", "shutter": "pump_shutter", "jet_flow": "jet_flow",
                                   "image": "pilatus_image"}
    assert [e["data"]["role"] for e in events] == ["on", "off"] * 3
    from trxrd import datakeys as dk                  # every field of the contract, in every event
    keys = dk.key_map(start)
    assert all(keys[f] in e["data"] for f in dk.plan_fields("delay_scan") for e in events)
    assert [e["data"]["pump_shutter"] for e in events] == ["Open", "Closed"] * 3
    for e, t in zip(events, np.repeat(delays, 2)):
        assert e["data"]["requested_delay"] == t
        assert e["data"]["pump_delay"] == pytest.approx(t, abs=10.0)      # actual (generator: 10 ps steps)
        assert e["data"]["i0"] == pytest.approx(5e-9, rel=0.2)
        assert e["data"]["jet_flow"] == pytest.approx(8.0, abs=0.3)
        assert e["data"]["att_fluence"] == pytest.approx(bl.att.max_fluence(), rel=1e-3)
        assert e["data"]["att_excitations"] == pytest.approx(bl.att.max_fluence() * 80.5, rel=0.01)
    desc = next(d for n, d in RE.docs if n == "descriptor")
    assert desc["data_keys"]["pump_delay"]["units"] == "ps"
    assert desc["data_keys"]["requested_delay"]["units"] == "ps"
    assert desc["data_keys"]["pilatus_image"]["shape"][-2:] == [619, 487]
    assert bl.shutter.get() == "Closed"                                     # closed at the end

    # the frames carry the pump-probe signal of the model: loss of (112) after t0 only
    frames = _frames(RE)
    integ = AzimuthalIntegration(sim.waxs_dir / "waxs.poni", mask=sim.waxs_dir / "waxs_mask.edf", npt=1500)
    window = window_for("112", sim.cfg)
    area = [window_integral(*integ.integrate(f, monitor=e["data"]["i0"])[:2], *window)
            for f, e in zip(frames, events)]
    change = [(area[2 * k] - area[2 * k + 1]) / area[2 * k + 1] for k in range(3)]
    model = BeamlineModel(sim.cfg)
    model.jet.run = True
    model.jet.advance(10)
    model.waveplate_deg = sim.cfg["laser"]["theta0_deg"]
    # the model's delays are true delays: the device's axis is offset by its (uncalibrated) time zero
    offset = true_delay_ps(sim, 0.0, bl.delay.time_zero_mm.get())
    for measured, t in zip(change, delays):
        assert measured == pytest.approx(model.relative_area_change(*window, delay_ps=t + offset), abs=0.02)
    assert change[1] < -0.05 and abs(change[0]) < 0.02


def test_negative_delay_reference_repeats_shuffle(bl, RE, jet):
    from trxrd.acquisition.plans.pump_probe import delay_scan

    RE(delay_scan([bl.pilatus], [50.0, 300.0], reference="negative_delay", reference_delay_ps=-150,
                  repeats=2, shuffle=True, seed=3, md={"sample": SAMPLE}, **bl.devices))
    events = _events(RE)
    assert len(events) == 8
    roles = [e["data"]["role"] for e in events]
    assert roles == ["reference", "on"] * 4
    assert all(e["data"]["pump_shutter"] == "Open" for e in events)
    refs = [e["data"]["pump_delay"] for e in events if e["data"]["role"] == "reference"]
    assert refs == pytest.approx([-150.0] * 4, abs=0.01)
    start = next(d for n, d in RE.docs if n == "start")
    on = [(e["data"]["repeat"], e["data"]["delay_index"]) for e in events if e["data"]["role"] == "on"]
    assert on == [(r, i) for r, order in enumerate(start["delay_order"]) for i in order]
    assert sorted(on) == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_fluence_scan_records_fluence_and_excitations(bl, RE, jet):
    from trxrd.acquisition.plans.pump_probe import fluence_scan

    RE(fluence_scan([bl.pilatus], [0.5, 1.5], delay_ps=40.0, md={"sample": SAMPLE}, **bl.devices))
    events = _events(RE)
    assert len(events) == 4
    from trxrd import datakeys as dk
    start = next(d for n, d in RE.docs if n == "start")
    assert all(dk.key_map(start)[f] in e["data"] for f in dk.plan_fields("fluence_scan") for e in events)
    assert [e["data"]["requested_fluence"] for e in events] == [0.5, 0.5, 1.5, 1.5]
    assert [e["data"]["att_fluence"] for e in events] == pytest.approx([0.5, 0.5, 1.5, 1.5], rel=1e-3)
    n = [e["data"]["att_excitations"] for e in events]
    assert n[2] == pytest.approx(120.8, rel=0.01) and n[0] == pytest.approx(120.8 / 3, rel=0.01)
    assert all(e["data"]["pump_delay"] == pytest.approx(40.0, abs=0.01) for e in events)


def test_jet_lost_pauses_and_resumes_without_losing_a_point(sim, bl, RE, jet, ca):
    from trxrd.acquisition.plans.pump_probe import delay_scan

    delays = [-100.0, 0.0, 100.0, 200.0, 400.0, 800.0]
    seen = {"paused_events": None}

    def saboteur():
        wait_for(lambda: len(_events(RE)) >= 3, 30, what="3 events")
        ca.caput(sim.prefix + "JET:Run", 0, wait=True)
        wait_for(lambda: any(s.tripped for s in RE.suspenders), 10, what="suspender tripped")
        n = len(_events(RE))
        wait_for(lambda: bl.jet.flow.get() < 0.1, 10, what="jet fully stopped")
        seen["paused_events"] = (n, len(_events(RE)))        # nothing taken while paused
        ca.caput(sim.prefix + "JET:Run", 1, wait=True)

    thread = threading.Thread(target=saboteur, daemon=True)
    thread.start()
    RE(delay_scan([bl.pilatus], delays, md={"sample": SAMPLE}, **bl.devices))
    thread.join(5)
    n_before, n_after = seen["paused_events"]
    assert n_after == n_before
    events = _events(RE)
    pairs = sorted((e["data"]["delay_index"], e["data"]["role"]) for e in events if e["data"]["frame_valid"])
    # every frame once; a suspension landing between a save and the next checkpoint makes the
    # RunEngine replay that one step (one frame more)
    assert sorted(set(pairs)) == sorted((i, r) for i in range(len(delays)) for r in ("on", "off"))
    assert len(pairs) <= 2 * len(delays) + 1
    assert all(e["data"]["jet_flowing"] == 1 for e in events if e["data"]["frame_valid"])
    stop = next(d for n, d in RE.docs if n == "stop")
    assert stop["exit_status"] == "success" and stop["num_events"]["primary"] == len(events) <= 14


def test_shutter_closed_unexpectedly_pauses(sim, bl, RE, jet, ca):
    from trxrd.acquisition.plans.pump_probe import delay_scan

    def saboteur():
        wait_for(lambda: len(_events(RE)) >= 1 and bl.shutter.get() == "Open", 30, what="pump on")
        ca.caput(sim.prefix + "LSR:Shutter", 0, wait=True)
        wait_for(lambda: any(s.tripped for s in RE.suspenders), 10, what="shutter suspender tripped")
        ca.caput(sim.prefix + "LSR:Shutter", 1, wait=True)

    thread = threading.Thread(target=saboteur, daemon=True)
    thread.start()
    RE(delay_scan([bl.pilatus], [0.0, 100.0, 200.0, 300.0], md={"sample": SAMPLE}, **bl.devices))
    thread.join(5)
    events = [e for e in _events(RE) if e["data"]["frame_valid"]]
    assert len(events) == 8
    assert all(e["data"]["pump_shutter"] == ("Open" if e["data"]["role"] == "on" else "Closed")
               for e in events)


@pytest.mark.parametrize("call, match", [
    (lambda m, d: m.delay_scan([d["det"]], [0.0, -5000.0], **d["dev"]), "outside the reachable range"),
    (lambda m, d: m.delay_scan([d["det"]], [0.0, 2e7], **d["dev"]), "outside the reachable range"),
    (lambda m, d: m.delay_scan([d["det"]], [0.0, math.nan], **d["dev"]), "finite"),
    (lambda m, d: m.delay_scan([d["det"]], [0.0], reference="pump_off", **d["dev"]), "unknown reference mode"),
    (lambda m, d: m.delay_scan([d["det"]], [0.0], reference="negative_delay", reference_delay_ps=50,
                               **d["dev"]), "before time zero"),
    (lambda m, d: m.fluence_scan([d["det"]], [0.5, -0.1], delay_ps=40, **d["dev"]), "fluence"),
    (lambda m, d: m.fluence_scan([d["det"]], [99.0], delay_ps=40, **d["dev"]), "outside what the attenuator"),
    (lambda m, d: m.delay_scan([d["det"]], [0.0], frames_per_point=0, **d["dev"]), "frames_per_point"),
])
def test_bad_input_refused_before_anything_moves(bl, RE, jet, call, match):
    from trxrd.acquisition.plans import pump_probe

    positions = (bl.delay.optical.position, bl.att.waveplate.position, bl.shutter.get())
    with pytest.raises(ValueError, match=match):
        RE(call(pump_probe, {"det": bl.pilatus, "dev": dict(md={"sample": SAMPLE}, **bl.devices)}))
    assert RE.docs == []
    assert (bl.delay.optical.position, bl.att.waveplate.position, bl.shutter.get()) == positions


def test_stopped_jet_is_started_and_bad_sample_refused(bl, RE):
    from trxrd.acquisition.plans.metadata import Sample
    from trxrd.acquisition.plans.pump_probe import delay_scan

    bl.jet.stop()
    wait_for(lambda: bl.jet.flowing.get() == 0, 10, what="jet stopped")
    RE(delay_scan([bl.pilatus], [0.0], md={"sample": SAMPLE}, **bl.devices))
    assert [e["data"]["jet_flowing"] for e in _events(RE)] == [1, 1]
    assert bl.jet.stable()                      # still flowing after the run (RE's stop() keeps it)
    bl.jet.stop()
    with pytest.raises(ValueError, match="sigma_cm2"):
        Sample(**{**SAMPLE, "sigma_cm2": 4.0})          # cm^2 per NC, not a typo'd unit


def test_raster_scan_snakes_over_the_grid(sim, bl, RE, jet):
    from trxrd.acquisition.plans.raster import raster_scan

    stage = bl.stage
    RE(raster_scan([bl.pilatus], (-20, 20), (0, 10), 10.0, stage=stage, i0=bl.i0, md={"sample": SAMPLE}))
    events = _events(RE)
    assert len(events) == 10
    xy = [(round(e["data"]["sample_x"]), round(e["data"]["sample_y"])) for e in events]
    assert xy[:5] == [(-20, 0), (-10, 0), (0, 0), (10, 0), (20, 0)]
    assert xy[5:] == [(20, 10), (10, 10), (0, 10), (-10, 10), (-20, 10)]       # snake
    start = next(d for n, d in RE.docs if n == "start")
    assert start["plan_name"] == "raster_scan" and start["num_points"] == 10
    with pytest.raises(ValueError, match="stage limits"):
        raster_scan([bl.pilatus], (0, 6000), (0, 10), 10.0, stage=stage, i0=bl.i0, md={"sample": SAMPLE})
    with pytest.raises(ValueError, match="whole number"):
        raster_scan([bl.pilatus], (0, 15), (0, 10), 10.0, stage=stage, i0=bl.i0, md={"sample": SAMPLE})


def test_suspenders_trip_every_time_while_a_slow_live_reduction_runs(sim, bl, RE, jet, ca):
    """The live reduction runs behind its own queue: made deliberately slow (its catalog side
    holds the GIL 0.5 s per derived event, far slower than the scan), it still cannot keep the
    jet suspender from pausing the scan at every loss of flow, and it ends with every frame."""
    import time

    from trxrd.reduction.callbacks import LiveReduction
    from trxrd.reduction.settings import ReductionSettings
    from trxrd.simulated_devices.physics.beamline import window_for

    def slow_store(name, doc):
        if name == "event":
            t = time.perf_counter()
            while time.perf_counter() - t < 0.5:      # busy, holding the GIL
                pass

    settings = ReductionSettings(sim.waxs_dir / "waxs.poni", mask=sim.waxs_dir / "waxs_mask.edf",
                                 windows=[window_for("112", sim.cfg)])
    live = LiveReduction(settings, store=slow_store)
    RE.subscribe(live)
    suspensions = []
    request = RE.request_suspend

    def counting(*args, **kwargs):
        suspensions.append(len(_events(RE)))
        return request(*args, **kwargs)

    RE.request_suspend = counting
    stops, paused = 3, []

    def saboteur():
        for k in range(stops):
            wait_for(lambda: len(_events(RE)) >= 4 + 8 * k, 60, what=f"events before stop {k + 1}")
            ca.caput(sim.prefix + "JET:Run", 0, wait=True)
            wait_for(lambda: len(suspensions) == k + 1, 10, what=f"suspension {k + 1}")
            n = len(_events(RE))
            # jet fully stopped: an unsuspended scan would have taken frames meanwhile
            wait_for(lambda: bl.jet.flow.get() < 0.05, 10, what="jet stopped")
            paused.append((n, len(_events(RE))))
            ca.caput(sim.prefix + "JET:Run", 1, wait=True)

    thread = threading.Thread(target=saboteur, daemon=True)
    thread.start()
    delays = [float(t) for t in range(-100, 1400, 100)]
    RE(delay_scan([bl.pilatus], delays, md={"sample": SAMPLE}, **bl.devices))
    thread.join(10)
    live.wait(300)
    live.close()
    assert len(suspensions) == stops and len(paused) == stops
    assert all(before == after for before, after in paused)          # nothing taken while paused
    events = _events(RE)
    valid = [e for e in events if e["data"]["frame_valid"]]
    taken = {(e["data"]["delay_index"], e["data"]["role"]) for e in valid}
    assert taken == {(i, r) for i in range(len(delays)) for r in ("on", "off")}      # every frame
    assert len(valid) <= 2 * len(delays) + stops          # at most one replayed step per pause
    assert all(e["data"]["jet_flowing"] == 1 for e in valid)  # none taken without the jet counts
    assert live.integrator.frames == len(events)
    assert live.backlog == 0 and live.buffer.dropped == 0


def test_invalid_frame_is_kept_marked_and_taken_again(sim, bl, RE, jet, tmp_path, monkeypatch):
    """A frame whose own readings do not match its role is stored marked `frame_valid` False
    (its file frame keeps its event: the catalog reads every frame back in place), taken again,
    and skipped by the reduction."""
    from trxrd.acquisition.plans import pump_probe
    from trxrd.catalog import CatalogWriter, open_catalog
    from trxrd.reduction.callbacks import LiveReduction
    from trxrd.reduction.settings import ReductionSettings
    from trxrd.simulated_devices.physics.beamline import window_for

    checked = {"n": 0}
    real = pump_probe._Setup.problem

    def third_frame_bad(self, reading, shutter):       # as if the jet dropped out in frame 3
        checked["n"] += 1
        return "the liquid jet was not flowing" if checked["n"] == 3 else real(self, reading, shutter)

    monkeypatch.setattr(pump_probe._Setup, "problem", third_frame_bad)
    template = bl.pilatus.hdf5.write_path_template
    bl.pilatus.hdf5.write_path_template = f"{tmp_path}/frames/%Y/"
    cat = open_catalog(root=tmp_path)
    writer = CatalogWriter(cat, backup_directory=tmp_path / "spool")
    live = LiveReduction(ReductionSettings(sim.waxs_dir / "waxs.poni", mask=sim.waxs_dir / "waxs_mask.edf",
                                           windows=[window_for("112", sim.cfg)]), store=writer)
    RE.subscribe(writer)
    RE.subscribe(live)
    try:
        uid = RE(delay_scan([bl.pilatus], [0.0, 100.0, 200.0], md={"sample": SAMPLE}, **bl.devices)).run_start_uids[0]
        live.wait(120)
    finally:
        bl.pilatus.hdf5.write_path_template = template
        live.close()
    events = _events(RE)
    assert [(e["data"]["role"], e["data"]["frame_valid"]) for e in events] == [
        ("on", True), ("off", True), ("on", False), ("on", True), ("off", True), ("on", True), ("off", True)]
    frames = cat[uid]["primary"]["pilatus_image"].read()
    assert frames.shape[0] == len(events)
    for k, frame in enumerate(_frames(RE)):
        np.testing.assert_array_equal(frames[k], frame)
    result = live.result
    assert live.pump_probe.skipped == 1 and list(result.diff.n_pairs) == [1, 1, 1]
    writer.close()
