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


def _stored_as_emitted(session, docs, uid) -> dict:
    """The run *uid*'s documents the RunEngine emitted, counted by kind, equal to those the
    catalog stored (same events, by sequence number); its stop document."""
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


@pytest.fixture
def session(sim, tmp_path):
    s = sim_session(sim, tmp_path / "session")
    s.beamline.pilatus.exposure_s = 0.05
    yield s
    s.close()


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
