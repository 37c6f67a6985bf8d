"""The fault matrix (issue 14, item 1): each fault injected during a delay scan with live
reduction on, against the simulated beamline and the session's catalog. For every run the
documents the RunEngine emitted and those the catalog stored are counted (they must be
equal), and the run's exit status and reason asserted; the session must take the next scan."""
from __future__ import annotations

import os
import signal
import threading
from collections import Counter

import pytest

from conftest import sim_session, wait_for

pytestmark = pytest.mark.ioc

KINDS = ("start", "descriptor", "event", "stop")


def _record(RE) -> list:
    docs = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    return docs


def _events(docs, uid=None) -> list:
    descriptors = {d["uid"] for n, d in docs if n == "descriptor" and (uid is None or d["run_start"] == uid)}
    return [d for n, d in docs if n == "event" and d["descriptor"] in descriptors]


def _stops(docs) -> list:
    return [d for n, d in docs if n == "stop"]


def _stored_as_emitted(session, docs, uid, *, derived: bool = True) -> dict:
    """The run *uid*'s documents the RunEngine emitted, counted by kind, equal to those the
    catalog stored (same events, by sequence number); with *derived*, the same for every run
    the session's live reduction derived from it (``_derived_docs``); the raw run's stop document."""
    if derived:
        session.reduction.wait()
        for start in [d for n, d in session.derived_docs if n == "start" and d.get("raw_uid") == uid]:
            _stored_as_emitted(session, session.derived_docs, start["uid"], derived=False)
    session.writer.flush()
    emitted = Counter()
    descriptors = set()
    for name, doc in docs:
        if name == "start" and doc["uid"] == uid or name in ("descriptor", "stop") and doc.get("run_start") == uid:
            emitted[name] += 1
            descriptors |= {doc["uid"]} if name == "descriptor" else set()
        elif name == "event" and doc["descriptor"] in descriptors:
            emitted[name] += 1
    stored_docs = [(n, d) for n, d in session.catalog[uid].documents() if n in KINDS]
    stored = Counter(n for n, _ in stored_docs)
    assert stored == emitted, f"emitted {dict(emitted)} but stored {dict(stored)}"
    assert sorted(d["seq_num"] for n, d in stored_docs if n == "event") == \
        sorted(e["seq_num"] for e in _events(docs, uid))
    assert emitted["start"] == emitted["stop"] == 1
    return next(d for n, d in stored_docs if n == "stop")


@pytest.fixture(scope="module")
def session(sim, tmp_path_factory):
    """One session for the module, live reduction on, the attenuator calibrated: the faults
    must leave it usable for the next test."""
    s = sim_session(sim, tmp_path_factory.mktemp("faults"))
    s.RE(s.plans["calibrate_fluence"]())
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _exposure(session):
    session.beamline.pilatus.exposure_s = 0.05


@pytest.fixture(autouse=True)
def _derived_docs(session):
    """The documents of the runs the session's live reduction derives during the test, in
    ``session.derived_docs``."""
    session.derived_docs = docs = []
    live = session.reduction.live
    callbacks = [live.integrator, live.pump_probe]
    record = lambda name, doc: docs.append((name, doc))      # noqa: E731
    for callback in callbacks:
        callback.subscribe(record)
    yield
    for callback in callbacks:
        callback._subscribers.remove(record)


def _restart_beamline(sim):
    """Restart the simulator on the same port and wait until every CA channel of this
    process that was connected is connected again (as tests/test_heating_plans.py does)."""
    import epics

    cache = getattr(epics.pv, "_PVcache_", {})
    pvs = [pv for pv in list(cache.values()) if pv.connected]
    sim.stop()
    sim.start()
    wait_for(lambda: all(pv.connected for pv in pvs), 60, period=0.1, what="CA channels reconnected")


# -- a. IOC killed and restarted ----------------------------------------------------------------------

@pytest.mark.slow
def test_ioc_killed_mid_scan_fails_the_run_with_the_lost_pv_and_the_next_scan_works(sim, session):
    """SIGKILL to the simulator mid delay scan: the run closes ('fail', "lost connection to
    <PV>") while the IOC is still down, nothing half-staged is left, every emitted document is
    in the catalog; after the IOC is restarted the same session takes the next scan."""
    from trxrd.acquisition.suspenders import ConnectionLostError

    RE, bl = session.RE, session.beamline
    docs = _record(RE)
    down = {}

    def killer():
        wait_for(lambda: len(_events(docs)) >= 5, 60, what="5 events")
        os.kill(sim.proc.pid, signal.SIGKILL)
        sim.proc.wait(10)
        down["stops_while_down"] = wait_for(lambda: _stops(docs), 60, what="the run closed while the IOC is down")

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    delays = [float(t) for t in range(-100, 2000, 100)]
    try:
        with pytest.raises(ConnectionLostError, match=f"lost connection to {sim.prefix}"):
            RE(session.plans["delay_scan"]([bl.pilatus], delays))
        thread.join(70)
        assert down["stops_while_down"]                  # failed without waiting for the IOC
    finally:
        thread.join(70)
        _restart_beamline(sim)
    (stop,) = _stops(docs)
    assert stop["exit_status"] == "fail" and stop["reason"].startswith(f"lost connection to {sim.prefix}")
    uid = stop["run_start"]
    assert _stored_as_emitted(session, docs, uid)["reason"] == stop["reason"]
    assert 5 <= len(_events(docs, uid)) < 2 * len(delays)
    assert bl.pilatus._staged.name == "no" and bl.pilatus.cam._staged.name == "no"
    # every channel of the session back (libca re-searches the lost ones), then nothing is tripped
    wait_for(lambda: not any(s.tripped for s in RE.suspenders), 60, period=0.2, what="every PV reconnected")

    # the same session, the IOC back (fresh: jet stopped, detector defaults): the next scan works
    bl.pilatus.exposure_s = 0.05
    (uid2,) = RE(session.plans["delay_scan"]([bl.pilatus], [0.0, 100.0]))
    stop2 = _stored_as_emitted(session, docs, uid2)
    assert stop2["exit_status"] == "success" and stop2["num_events"] == {"primary": 4}
    assert session.catalog[uid2]["primary"]["pilatus_image"].read().shape[0] == 4
    bl.jet.stop()


# -- f. Ctrl-C, pause, resume, abort at random points of every plan -----------------------------------

def _plans(session):
    """Short runs of the delay scan, the fluence scan and the raster scan, with the session's
    devices and sample."""
    bl, plans = session.beamline, session.plans
    return {
        "delay_scan": lambda: plans["delay_scan"]([bl.pilatus], [-100.0, 0.0, 100.0, 200.0]),
        "fluence_scan": lambda: plans["fluence_scan"]([bl.pilatus], [0.2, 0.4], delay_ps=40.0),
        "raster_scan": lambda: plans["raster_scan"]([bl.pilatus], (-20, 20), (0, 10), 10.0),
    }


def _at_message(RE, n: int, action) -> threading.Thread:
    """Run *action* from another thread once the RunEngine has processed *n* messages of this run."""
    seen = RE.seen_messages

    def go():
        wait_for(lambda: len(seen) >= n or RE.state == "idle" and len(seen) > 0, 120, what=f"message {n}")
        if RE.state != "idle":
            action()

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread


@pytest.mark.slow
@pytest.mark.parametrize("plan_name, seed", [("delay_scan", 1), ("fluence_scan", 2), ("raster_scan", 3)])
def test_ctrl_c_pause_resume_abort_at_random_points(session, plan_name, seed):
    """Ctrl-C (SIGINT: a deferred pause), ``request_pause``, ``resume`` and ``abort`` at random
    messages of the plan: no IllegalMessageSequence, every run closed with a stop document and
    stored as emitted, the detector unstaged, and the same plan then runs to success."""
    import random
    import time

    from bluesky.utils import RunEngineInterrupted

    rng = random.Random(seed)
    RE, bl = session.RE, session.beamline
    docs = _record(RE)
    RE.seen_messages = []
    RE.msg_hook = lambda msg: RE.seen_messages.append(msg.command)
    plan = _plans(session)[plan_name]

    n1 = rng.randint(5, 30)
    started = []
    RE.msg_hook = lambda msg: started.append(started or time.monotonic()) or RE.seen_messages.append(msg.command)

    def ctrl_c():         # bluesky ignores a SIGINT within 0.1 s of the call (not a human's)
        wait_for(lambda: time.monotonic() - started[0] > 0.2, 5, what="0.2 s into the plan")
        os.kill(os.getpid(), signal.SIGINT)

    thread = _at_message(RE, n1, ctrl_c)
    try:
        RE(plan())
        # Ctrl-C asks for a pause at the next checkpoint: none was left, so the plan ran to its end
        assert _stops(docs)[0]["exit_status"] == "success"
    except RunEngineInterrupted:
        thread.join(10)
        assert RE.state == "paused"
        n2 = len(RE.seen_messages) + rng.randint(10, 60)
        thread = _at_message(RE, n2, lambda: RE.request_pause(defer=False))           # pause now
        try:
            RE.resume()
        except RunEngineInterrupted:
            assert RE.state == "paused"
            RE.abort("aborted by the test")
    thread.join(10)
    assert RE.state == "idle"
    stops = _stops(docs)
    assert len(stops) == 1 and stops[0]["exit_status"] in ("abort", "success")
    _stored_as_emitted(session, docs, stops[0]["run_start"])
    assert bl.pilatus._staged.name == "no"
    assert bl.shutter.get() == "Closed"

    RE.msg_hook = None
    (uid,) = RE(plan())                                        # the next plan works
    stop = _stored_as_emitted(session, docs, uid)
    assert stop["exit_status"] == "success"
    bl.jet.stop()


# -- d. detector stalls, HDF5 file stops growing -----------------------------------------------------

def _fault_after(docs, n_events: int, inject) -> threading.Thread:
    def go():
        wait_for(lambda: len(_events(docs)) >= n_events, 60, what=f"{n_events} events")
        inject()

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread


def _next_scan_works(session, docs):
    """A short delay scan in the same session succeeds, every document stored, exposing as set."""
    bl = session.beamline
    (uid,) = session.RE(session.plans["delay_scan"]([bl.pilatus], [0.0, 100.0]))
    stop = _stored_as_emitted(session, docs, uid)
    assert stop["exit_status"] == "success" and stop["num_events"] == {"primary": 4}
    assert session.catalog[uid]["primary"]["pilatus_image"].read().shape[0] == 4
    desc = next(d for n, d in docs if n == "descriptor" and d["run_start"] == uid)
    assert desc["configuration"]["pilatus"]["data"]["pilatus_cam_acquire_time"] == 0.05


@pytest.mark.slow
def test_detector_stall_fails_the_run_with_the_reason_after_its_timeout(sim, ca, session):
    """AcquireTime 3600 s set from another client mid-scan: the trigger fails after the timeout
    derived from the staged exposure (x frames x factor + margin), the run closes 'fail' with
    the stall as its reason, the acquisition is stopped, and the next scan exposes 0.05 s."""
    from trxrd.acquisition.devices.detectors import DetectorStalled

    RE, bl = session.RE, session.beamline
    docs = _record(RE)
    margin = bl.pilatus.timeout_margin_s
    bl.pilatus.timeout_margin_s = 3.0
    thread = _fault_after(docs, 3, lambda: ca.caput(sim.prefix + "PIL:cam1:AcquireTime", 3600.0, wait=True))
    try:
        with pytest.raises(DetectorStalled, match="stalled"):
            RE(session.plans["delay_scan"]([bl.pilatus], [float(t) for t in range(0, 1000, 100)]))
    finally:
        thread.join(30)
        bl.pilatus.timeout_margin_s = margin
    (stop,) = _stops(docs)
    assert stop["exit_status"] == "fail" and "pilatus: no frame within 3.1 s" in stop["reason"]
    _stored_as_emitted(session, docs, stop["run_start"])
    wait_for(lambda: ca.caget(sim.prefix + "PIL:cam1:Acquire_RBV") == 0, 10, what="acquisition stopped")
    assert bl.pilatus._staged.name == "no"
    _next_scan_works(session, docs)


@pytest.mark.slow
def test_hdf5_capture_stopped_fails_the_raw_run_never_success(sim, ca, session):
    """Capture stopped from another client mid-scan: the next frame is missing from the file, the
    raw run closes 'fail' naming it; every stored event's frame reads back from the catalog."""
    from trxrd.acquisition.devices.detectors import FramesMissing

    RE, bl = session.RE, session.beamline
    docs = _record(RE)
    thread = _fault_after(docs, 3, lambda: ca.caput(sim.prefix + "PIL:HDF1:Capture", 0, wait=True))
    try:
        with pytest.raises(FramesMissing, match="missing"):
            RE(session.plans["delay_scan"]([bl.pilatus], [float(t) for t in range(0, 1000, 100)]))
    finally:
        thread.join(30)
    (stop,) = _stops(docs)
    assert stop["exit_status"] == "fail" and "capture stopped" in stop["reason"]
    uid = stop["run_start"]
    _stored_as_emitted(session, docs, uid)
    n = len(_events(docs, uid))
    assert n >= 3 and session.catalog[uid]["primary"]["pilatus_image"].read().shape[0] == n
    _next_scan_works(session, docs)


# -- b. jet, pump shutter, beam ----------------------------------------------------------------------

def test_beam_lost_suspender_pauses_and_resumes_and_is_a_session_default(session):
    """I0 below its floor pauses a plan (no events meanwhile), back above it resumes; the session
    installs it (and the connection-loss one) for every plan."""
    from bluesky import RunEngine
    from bluesky import plan_stubs as bps
    from ophyd import Signal

    from trxrd.acquisition.suspenders import SuspendBeamLost, SuspendConnectionLost, beam_lost

    kinds = {type(s) for s in session.RE.suspenders}
    assert {SuspendBeamLost, SuspendConnectionLost} <= kinds
    i0 = Signal(name="i0", value=5e-9)
    sus = beam_lost(i0, sleep=0.1)
    RE = RunEngine({})
    RE.install_suspender(sus)
    events, seen = [], []
    RE.subscribe(lambda name, doc: events.append(doc) if name == "event" else None)

    def driver():
        wait_for(lambda: len(events) >= 2, 10, what="2 events")
        i0.put(0.0)                                           # beam dump
        wait_for(lambda: sus.tripped, 5, what="beam suspender tripped")
        n = len(events)
        wait_for(lambda: threading.Event().wait(0.3) or True, 5)
        seen.append(len(events) - n)
        i0.put(5e-9)

    def plan():
        yield from bps.open_run()
        for _ in range(6):
            yield from bps.checkpoint()
            yield from bps.trigger_and_read([i0])
            yield from bps.checkpoint()
            yield from bps.sleep(0.05)
        yield from bps.close_run()

    thread = threading.Thread(target=driver, daemon=True)
    thread.start()
    RE(plan())
    thread.join(5)
    assert seen == [0]                                        # nothing taken without beam
    assert len([e for e in events if e["data"]["i0"] > 1e-12]) == 6


@pytest.mark.slow
def test_pump_shutter_held_shut_reminds_and_abort_closes_the_run(sim, ca, session, monkeypatch):
    """The pump shutter closed from another client (an interlock) and held: the scan suspends,
    says what to do again and again (never silently), and Ctrl-C Ctrl-C + RE.abort() ends it
    without IllegalMessageSequence: the run closed 'abort' and stored as emitted, the shutter
    closed, the detector unstaged, the next scan works."""
    from bluesky.utils import RunEngineInterrupted

    from trxrd.acquisition import suspenders

    monkeypatch.setattr(suspenders.Persistent, "remind_every_s", 0.5)
    RE, bl = session.RE, session.beamline
    docs = _record(RE)
    held = {}

    def interlock():
        wait_for(lambda: len(_events(docs)) >= 2 and bl.shutter.get() == "Open", 60, what="pump on")
        ca.caput(sim.prefix + "LSR:Shutter", 0, wait=True)
        sus = wait_for(lambda: [s for s in RE.suspenders if isinstance(s, suspenders.SuspendShutterClosed)
                                and s.tripped], 10, what="shutter suspender tripped")[0]
        n = len(_events(docs))
        wait_for(lambda: sus.reminders >= 2, 10, what="two reminders")
        held["events"] = (n, len(_events(docs)))
        os.kill(os.getpid(), signal.SIGINT)                  # Ctrl-C twice (bluesky counts presses
        threading.Event().wait(0.3)                          # >= 0.1 s apart): pause now
        os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=interlock, daemon=True)
    thread.start()
    with pytest.raises(RunEngineInterrupted):
        RE(session.plans["delay_scan"]([bl.pilatus], [float(t) for t in range(0, 1000, 100)]))
    thread.join(30)
    n_before, n_after = held["events"]
    assert n_before == n_after                               # nothing taken while held shut
    RE.abort("interlock held the pump shutter")
    assert RE.state == "idle"
    (stop,) = _stops(docs)
    assert stop["exit_status"] == "abort"
    _stored_as_emitted(session, docs, stop["run_start"])
    assert bl.shutter.get() == "Closed" and bl.pilatus._staged.name == "no"
    _next_scan_works(session, docs)


def _every_point_valid(session, docs, uid, n_delays: int) -> tuple[list, list]:
    """Run *uid* succeeded, stored as emitted with both derived runs, and every (delay, role)
    has a valid frame; (its events, the valid ones)."""
    stop = _stored_as_emitted(session, docs, uid)
    assert stop["exit_status"] == "success"
    assert sum(n == "start" and d["raw_uid"] == uid for n, d in session.derived_docs) == 2   # integrated, pump-probe
    events = _events(docs, uid)
    valid = [e for e in events if e["data"]["frame_valid"]]
    assert {(e["data"]["delay_index"], e["data"]["role"]) for e in valid} == \
        {(i, r) for i in range(n_delays) for r in ("on", "off")}
    return events, valid


def _count_suspensions(RE, docs) -> list:
    """The number of events emitted at each suspension *RE* requests from now on, until
    ``del RE.request_suspend``."""
    suspensions, request = [], RE.request_suspend

    def counting(*args, **kwargs):
        suspensions.append(len(_events(docs)))
        return request(*args, **kwargs)

    RE.request_suspend = counting
    return suspensions


@pytest.mark.slow
def test_jet_lost_twice_with_a_slow_live_reduction_suspends_every_time(sim, ca, session):
    """The jet stopped twice from another client while a deliberately slow live reduction (its
    store holds the GIL 0.3 s per derived event) runs beside the session's: every loss suspends
    the scan, no frame is taken while the jet is off, every valid frame has the flow, every
    (delay, role) is taken, and the catalog stores what was emitted."""
    import time

    from trxrd.reduction.callbacks import LiveReduction

    RE, bl = session.RE, session.beamline
    docs = _record(RE)

    def slow_store(name, doc):
        if name == "event":
            t = time.perf_counter()
            while time.perf_counter() - t < 0.3:     # busy, holding the GIL
                pass

    live = LiveReduction(session.reduction.settings, store=slow_store)
    token = RE.subscribe(live)
    suspensions, paused = _count_suspensions(RE, docs), []
    stops = 2

    def saboteur():
        for k in range(stops):
            wait_for(lambda: len(_events(docs)) >= 4 + 6 * k, 60, what=f"events before stop {k + 1}")
            ca.caput(sim.prefix + "JET:Run", 0, wait=True)
            wait_for(lambda: len(suspensions) == k + 1, 10, what=f"suspension {k + 1}")
            n = len(_events(docs))
            wait_for(lambda: ca.caget(sim.prefix + "JET:FlowRate_RBV") < 0.05, 10, what="jet stopped")
            paused.append((n, len(_events(docs))))
            ca.caput(sim.prefix + "JET:Run", 1, wait=True)

    thread = threading.Thread(target=saboteur, daemon=True)
    thread.start()
    delays = [float(t) for t in range(-100, 1000, 100)]
    try:
        (uid,) = RE(session.plans["delay_scan"]([bl.pilatus], delays))
    finally:
        thread.join(30)
        del RE.request_suspend
        RE.unsubscribe(token)
        live.wait(300)
        live.close()
    assert len(suspensions) == stops and all(before == after for before, after in paused)
    events, valid = _every_point_valid(session, docs, uid, len(delays))
    assert all(e["data"]["jet_flowing"] == 1 for e in valid)
    assert live.integrator.frames == len(events) and live.buffer.dropped == 0
    bl.jet.stop()


@pytest.mark.slow
def test_beam_dumped_mid_scan_suspends_and_no_dark_frame_is_stored_as_valid(sim, ca, session):
    """The X-ray beam dumped in the simulator (I0:BeamOn 0) during a delay scan and brought back:
    the session's beam suspender pauses the scan, no event is taken while the beam is off, a
    frame caught by the dump (I0 0) is stored marked invalid and taken again, every (delay, role)
    has a valid frame with beam, and the catalog stores what was emitted."""
    RE, bl = session.RE, session.beamline
    docs = _record(RE)
    suspensions, paused = _count_suspensions(RE, docs), []

    def dump():
        wait_for(lambda: len(_events(docs)) >= 4, 60, what="4 events")
        ca.caput(sim.prefix + "I0:BeamOn", 0, wait=True)
        wait_for(lambda: len(suspensions) == 1, 10, what="the beam suspender")
        n = len(_events(docs))
        wait_for(lambda: ca.caget(sim.prefix + "I0:Current_RBV") < bl.i0.beam_floor_a, 10, what="I0 at 0")
        paused.append((n, len(_events(docs))))
        ca.caput(sim.prefix + "I0:BeamOn", 1, wait=True)

    thread = threading.Thread(target=dump, daemon=True)
    thread.start()
    delays = [-100.0, 0.0, 100.0, 200.0, 400.0]
    try:
        (uid,) = RE(session.plans["delay_scan"]([bl.pilatus], delays))
    finally:
        thread.join(30)
        del RE.request_suspend
        ca.caput(sim.prefix + "I0:BeamOn", 1, wait=True)
    assert len(suspensions) == 1 and paused[0][0] == paused[0][1]
    events, valid = _every_point_valid(session, docs, uid, len(delays))
    assert all(e["data"][bl.i0.name] >= bl.i0.beam_floor_a for e in valid)
    assert all(not e["data"]["frame_valid"] for e in events if e["data"][bl.i0.name] < bl.i0.beam_floor_a)
    bl.jet.stop()


@pytest.mark.slow
def test_shutter_reopened_during_a_pump_off_frame_invalidates_it(sim, ca, session):
    """Another client reopens the pump shutter while a pump-off frame exposes: that frame's
    event records the shutter 'Open', is stored marked invalid and the frame is taken again;
    no stored valid frame contradicts its role."""
    RE, bl = session.RE, session.beamline
    docs = _record(RE)
    bl.pilatus.exposure_s = 0.5                 # time to reopen the shutter inside the exposure
    reopened = {}

    def reopen_once():
        wait_for(lambda: len(_events(docs)) >= 2, 60, what="2 events")
        # the next pump-off frame: commanded closed, reads closed, exposing
        wait_for(lambda: bl.shutter.expected == "Closed" and ca.caget(sim.prefix + "LSR:Shutter_RBV") == 0
                 and ca.caget(sim.prefix + "PIL:cam1:Acquire_RBV") == 1, 60, period=0.01, what="a pump-off exposure")
        ca.caput(sim.prefix + "LSR:Shutter", 1, wait=True)
        reopened["at_event"] = len(_events(docs))

    thread = threading.Thread(target=reopen_once, daemon=True)
    thread.start()
    delays = [0.0, 100.0, 200.0]
    try:
        (uid,) = RE(session.plans["delay_scan"]([bl.pilatus], delays))
    finally:
        thread.join(30)
    stop = _stored_as_emitted(session, docs, uid)
    assert stop["exit_status"] == "success" and "at_event" in reopened
    events = _events(docs, uid)
    bad = [e for e in events if not e["data"]["frame_valid"]]
    assert [(e["data"]["role"], e["data"]["pump_shutter"]) for e in bad] == [("off", "Open")]
    valid = [e for e in events if e["data"]["frame_valid"]]
    assert all(e["data"]["pump_shutter"] == ("Open" if e["data"]["role"] == "on" else "Closed") for e in valid)
    assert sorted((e["data"]["delay_index"], e["data"]["role"]) for e in valid) == \
        sorted((i, r) for i in range(len(delays)) for r in ("on", "off"))
    stored_valid = list(session.catalog[uid]["primary"]["frame_valid"].read())
    assert stored_valid == [e["data"]["frame_valid"] for e in sorted(events, key=lambda e: e["seq_num"])]
    bl.jet.stop()
