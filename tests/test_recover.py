"""The catalog unwritable, or its server gone, in the middle of a run (issue 14, fault 1e):
acquisition goes on, every document (raw and derived, numpy values included) is spooled,
``trxrd runs`` marks the incomplete runs and names their spools, ``trxrd recover`` (``replay_spool``)
writes the spools into the catalog idempotently, and then every document the RunEngine and the
reduction emitted is in the catalog exactly once."""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections import Counter, defaultdict

import numpy as np
import pytest

from conftest import exposing_signal, recording_run_engine, tables_held, tables_locked_after, wait_for

from trxrd.reduction.callbacks.base import DerivedRunPublisher

CURVE_POINTS = 64
DERIVED_KEYS = {
    "curve": {"source": "reduced_curve", "dtype": "array", "shape": [CURVE_POINTS]},
    "peak": {"source": "reduced_curve", "dtype": "number", "shape": []},
    "n": {"source": "reduced_curve", "dtype": "integer", "shape": []},
}


class ReducedCurve(DerivedRunPublisher):
    """A derived run per raw run, as the live reduction emits them: per raw event a numpy curve,
    a numpy float32 and a numpy int64."""

    def start(self, doc):
        self.open_derived({"plan_name": "reduced_curve", "raw_uid": doc["uid"]}, time=doc["time"] - 1e-3)

    def event(self, doc):
        k = doc["seq_num"]
        self.emit_event("primary", {"curve": np.linspace(0.0, 1.0, CURVE_POINTS) * k,
                                    "peak": np.float32(k) / 2, "n": np.int64(k)}, DERIVED_KEYS)

    def stop(self, doc):
        self.close_derived()


def acquisition(writer):
    """A recording RunEngine (``RE.docs``) feeding *writer* and a ``ReducedCurve`` whose derived
    documents go to *writer* too; and the list the derived documents are recorded in."""
    derived = []
    reduced = ReducedCurve()
    reduced.subscribe(lambda name, doc: derived.append((name, doc)))    # recorded before the writer sees it
    reduced.subscribe(writer)
    return recording_run_engine(writer, reduced), derived


def runs_of(docs):
    """{run uid: its documents} of a stream of documents of several runs."""
    runs, owner = defaultdict(list), {}
    for name, doc in docs:
        if name == "start":
            uid = doc["uid"]
        elif name in ("stop", "descriptor"):
            uid = doc["run_start"]
            owner[doc["uid"]] = uid
        else:
            uid = owner[doc["descriptor"]]
        runs[uid].append((name, doc))
    return dict(runs)


def events_by_stream(docs):
    """[(stream, seq_num, data)] of the events in *docs*, sorted."""
    streams = {doc["uid"]: doc["name"] for name, doc in docs if name == "descriptor"}
    return sorted(((streams[doc["descriptor"]], doc["seq_num"], doc["data"]) for name, doc in docs if name == "event"),
                  key=lambda e: e[:2])


def assert_stored_once(cat, emitted):
    """Every run among the *emitted* documents reads back from *cat* with each of its documents
    exactly once: its start and stop, its descriptors, and every event (stream, seq_num, data)."""
    for uid, docs in runs_of(emitted).items():
        stored = list(cat[uid].documents())
        names = Counter(name for name, _ in stored)
        assert names["start"] == names["stop"] == 1, (uid, names)
        assert dict(stored[0][1])["uid"] == uid
        assert dict(stored[-1][1])["uid"] == docs[-1][1]["uid"] and docs[-1][0] == "stop"
        assert sorted(d["uid"] for n, d in stored if n == "descriptor") == \
            sorted(d["uid"] for n, d in docs if n == "descriptor")
        sent, kept = events_by_stream(docs), events_by_stream(stored)
        assert [e[:2] for e in kept] == [e[:2] for e in sent], f"run {uid}: events stored != emitted"
        for (_, _, sent_data), (_, _, kept_data) in zip(sent, kept):
            assert set(kept_data) == set(sent_data)
            for key, value in sent_data.items():
                np.testing.assert_array_equal(np.asarray(kept_data[key]), np.asarray(value))


def spool_errors(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "trxrd.catalog" and r.levelno == logging.ERROR]


def test_embedded_catalog_locked_mid_run_then_recovered_once(tmp_path, caplog):
    """Another process locks the event tables after 12 events of a 40-point scan with a derived
    run: the scan goes on to its end (exit success), both runs are spooled and stay in the
    catalog without a stop document; a replay replaces them by the whole runs, a second replay
    stores nothing; every document emitted is then stored exactly once."""
    from bluesky.plans import count

    from trxrd.catalog import CatalogWriter, open_catalog, replay_spool

    cat = open_catalog(root=tmp_path)
    writer = CatalogWriter(cat, backup_directory=tmp_path / "spool", batch_size=5, max_latency_s=0.05)
    RE, derived = acquisition(writer)
    with tables_locked_after(RE.docs, 12, tmp_path / "catalog" / "tables.db"):
        (uid,) = RE(count([exposing_signal()], 40), sample={"name": "locked catalog"})
        derived_uid = derived[0][1]["uid"]
        # still locked: the run went on to its end, into its spool
        assert writer.spooled == {uid: writer.spool_path(uid), derived_uid: writer.spool_path(derived_uid)}
    writer.close()
    stop = RE.docs[-1][1]
    assert RE.docs[-1][0] == "stop" and stop["exit_status"] == "success" and stop["num_events"] == {"primary": 40}
    assert derived[-1][0] == "stop" and derived[-1][1]["exit_status"] == "success"
    assert sum(n == "event" for n, _ in derived) == 40
    errors = spool_errors(caplog)
    assert any(str(writer.spool_path(uid)) in e and "trxrd recover" in e and "acquisition goes on" in e
               for e in errors), errors
    for run in (uid, derived_uid):
        assert cat[run].metadata.get("stop") is None          # partly stored, no stop document
        assert writer.spool_path(run).is_file()
    copies = []
    for run in (uid, derived_uid):
        copies.append(tmp_path / f"copy-{run[:8]}.jsonl")
        shutil.copy(writer.spool_path(run), copies[-1])

    results = [replay_spool(writer.spool_path(run), cat) for run in (uid, derived_uid)]
    assert results[0].outcome == "replaced" and results[0].ok, results[0]
    assert results[1].ok and results[1].outcome in ("replaced", "stored"), results[1]
    assert not any(writer.spool_path(run).exists() for run in (uid, derived_uid))
    assert_stored_once(cat, RE.docs + derived)

    again = [replay_spool(copy, cat) for copy in copies]      # the same spools again: nothing written
    assert [r.outcome for r in again] == ["complete", "complete"], [str(r) for r in again]
    assert not any(copy.exists() for copy in copies)
    assert_stored_once(cat, RE.docs + derived)


POINTS = 150     # 20 ms each: the catalog process stores a part of the scan before it is killed


def test_catalog_process_killed_mid_run_then_recovered_with_the_cli(tmp_path, monkeypatch, capsys, caplog):
    """The catalog process (the Tiled server of the embedded catalog) is killed once it holds a
    part of a scan:
    the scan goes on to its end and the next scan runs too, all four runs (raw and derived)
    spooled; ``trxrd runs`` marks the two stored in part and names their spools; the next session
    would announce the spools; ``trxrd recover`` stores them; a restarted catalog process serves
    every document emitted, each once."""
    from bluesky.plans import count

    from trxrd.catalog import CatalogProcess, CatalogWriter, announce_spools, events_written
    from trxrd.cli import main

    process = CatalogProcess(root=tmp_path)
    writer = CatalogWriter(process, backup_directory=tmp_path / "spool", batch_size=5, max_latency_s=0.05)
    RE, derived = acquisition(writer)

    served = process.catalog()
    killed_at = []

    def stored_events():
        try:
            return events_written(served[RE.docs[0][1]["uid"]])
        except (IndexError, KeyError):      # no run yet, or not in the catalog yet
            return 0

    def kill_it():        # once the catalog holds a part of the run
        wait_for(lambda: stored_events() >= 5, 60, period=0.05, what="5 events in the catalog")
        os.kill(process.pid, signal.SIGKILL)
        killed_at.append(sum(n == "event" for n, _ in RE.docs))

    killer = threading.Thread(target=kill_it, daemon=True)
    killer.start()
    try:
        (uid,) = RE(count([exposing_signal()], POINTS), sample={"name": "killed server"})
        killer.join(60)
        (later,) = RE(count([exposing_signal()], 5), sample={"name": "after the kill"})
    finally:
        writer.close()
        process.close(timeout=10)
    assert killed_at and killed_at[0] < POINTS            # killed mid-run
    raw = [uid, later]
    reduced = [d["uid"] for n, d in derived if n == "start"]
    assert [d["exit_status"] for n, d in RE.docs if n == "stop"] == ["success", "success"]
    assert [d["num_events"] for n, d in RE.docs if n == "stop"] == [{"primary": POINTS}, {"primary": 5}]
    assert set(writer.spooled) == set(raw + reduced)
    assert any("catalog process" in e and "trxrd recover" in e for e in spool_errors(caplog))
    spool_dir = tmp_path / "spool"
    line = announce_spools(spool_dir)
    assert line.startswith("spool: 4 run(s) not in the catalog") and f"trxrd recover {spool_dir}" in line

    monkeypatch.setenv("TRXRD_DATA", str(tmp_path))
    monkeypatch.delenv("TRXRD_CATALOG", raising=False)
    capsys.readouterr()
    assert main(["runs"]) == 0
    out = capsys.readouterr().out.splitlines()
    row = next((x for x in out if x.split()[2:3] == [uid[:8]]), out)
    assert isinstance(row, str) and row.split()[-2] == "incomplete", row
    spool = writer.spool_path(uid)
    assert any(x.split()[:3] == [uid[:8], "spool", f"{spool}:"] and f"trxrd recover {spool}" in x for x in out), out
    assert not any(later[:8] in x for x in out)                  # never reached the catalog

    capsys.readouterr()
    assert main(["recover", str(spool_dir), "--storage", str(tmp_path / "nowhere")]) == 2
    assert "--storage" in capsys.readouterr().err and len(list(spool_dir.glob("*.jsonl"))) == 4   # nothing replayed
    recover = subprocess.run([sys.executable, "-m", "trxrd.cli", "recover", str(spool_dir)], capture_output=True,
                             text=True, timeout=600)                # as the operator runs it
    assert recover.returncode == 0, recover.stderr[-3000:]
    out = recover.stdout
    assert out.splitlines()[-1] == "4 of 4 spools in the catalog"
    assert f"run {uid}" in out and "replaced" in out and f"run {later}" in out and "stored" in out
    assert not list(spool_dir.glob("*.jsonl"))
    assert announce_spools(spool_dir) is None
    assert main(["recover", str(spool_dir)]) == 2               # nothing left to replay: one clear line
    assert "no spool" in capsys.readouterr().err

    with CatalogProcess(root=tmp_path) as restarted:             # the catalog's server, restarted
        cat = restarted.catalog()
        assert_stored_once(cat, RE.docs + derived)
        assert {r.start["uid"] for r in cat.values()} == set(raw + reduced)
    assert main(["runs"]) == 0
    out = capsys.readouterr().out
    assert "incomplete" not in out
    assert next(x for x in out.splitlines() if uid[:8] in x).split()[-2:] == ["success", str(POINTS)]


def test_spool_without_stop_is_refused_a_failed_replay_keeps_it(tmp_path):
    """A spool without a stop document (a run still being written, or its process died; its last
    line cut short) is refused unless closed as failed; a replay the catalog fails keeps the spool."""
    from event_model import compose_run

    from trxrd.catalog import open_catalog, replay_spool

    bundle = compose_run(metadata={"plan_name": "died"})
    desc = bundle.compose_descriptor(name="primary", data_keys=DERIVED_KEYS)
    docs = [("start", bundle.start_doc), ("descriptor", desc.descriptor_doc)]
    docs += [("event", desc.compose_event(data={"curve": list(np.arange(CURVE_POINTS) * 0.5 * k), "peak": k / 2, "n": k},
                                          timestamps={key: 0.0 for key in DERIVED_KEYS})) for k in (1, 2, 3)]
    spool = tmp_path / "spool" / "died.jsonl"
    spool.parent.mkdir()
    spool.write_text("".join(json.dumps({"name": n, "doc": d}) + "\n" for n, d in docs) + '{"name": "ev')
    uid = bundle.start_doc["uid"]

    cat = open_catalog(root=tmp_path)
    refused = replay_spool(spool, cat)
    assert refused.outcome == "refused" and "no stop document" in refused.detail and "--close-incomplete" in refused.detail
    assert spool.is_file() and refused.documents == 5
    with pytest.raises(KeyError):
        cat[uid]

    with tables_held(tmp_path / "catalog" / "tables.db"):          # the catalog fails during the replay
        failed = replay_spool(spool, cat, close_incomplete=True)
    assert failed.outcome == "failed" and not failed.ok and "the spool stays" in failed.detail, failed
    assert "database is locked" in failed.detail
    assert spool.is_file()

    stored = replay_spool(spool, cat, close_incomplete=True)
    assert stored.outcome == "replaced", stored                 # what the failed replay left is replaced
    assert not spool.exists()
    run = cat[uid]
    assert run.stop["exit_status"] == "fail" and str(spool) in run.stop["reason"]
    assert run.stop["num_events"] == {"primary": 3}
    np.testing.assert_array_equal(run["primary"]["curve"].read(), [d["data"]["curve"] for n, d in docs[2:]])
    assert list(run["primary"]["n"].read()) == [1, 2, 3]


def test_files_a_crash_left_are_removed_before_a_replay(tmp_path):
    """Tiled writes a node's files before its database row: a catalog killed in between leaves
    files under data/<uid> that no node owns, and creating the node again fails. A replay without
    the storage folder fails, says what to remove and keeps the spool; with it (``trxrd recover``
    passes the embedded catalog's), the leftovers go and the run is stored once."""
    from bluesky.plans import count

    from trxrd.catalog import CatalogWriter, open_catalog, replay_spool

    cat = open_catalog(root=tmp_path)
    writer = CatalogWriter(cat, backup_directory=tmp_path / "spool", batch_size=5, max_latency_s=0.05)
    RE, derived = acquisition(writer)
    RE(count([exposing_signal()], 5), sample={"name": "crashed catalog"})
    writer.close()
    run = derived[0][1]["uid"]
    data = tmp_path / "catalog" / "data"
    shutil.copytree(data / run, tmp_path / "left")
    cat[run].delete(recursive=True, external_only=False)
    shutil.rmtree(data / run, ignore_errors=True)
    shutil.copytree(tmp_path / "left", data / run)       # what the crash left: files, no node
    spool = tmp_path / "spool" / f"{run[:8]}.jsonl"
    spool.write_text("".join(json.dumps({"name": n, "doc": d}, default=lambda o: o.tolist()) + "\n"
                             for n, d in derived))

    blocked = replay_spool(spool, cat)
    assert blocked.outcome == "failed" and f"/{run}" in blocked.detail and "--storage" in blocked.detail, blocked
    assert spool.is_file() and not cat[run].metadata.get("stop")        # a part, no stop document
    done = replay_spool(spool, cat, storage=data)
    assert done.outcome == "replaced", done
    assert not spool.exists()
    assert_stored_once(cat, derived)


@pytest.mark.slow
def test_tiled_server_restarted_mid_run(tmp_path, caplog):
    """A facility's Tiled server (written through a CatalogProcess) is restarted while it holds a
    part of a scan: the scan goes on to its end; the next scan is written once the server is back;
    whatever the writer could not hand over is spooled, and once replayed every document emitted
    (raw and derived) is in the catalog exactly once."""
    import socket

    from bluesky.plans import count

    from test_catalog import SERVER_CONFIG, tiled_server
    from trxrd.catalog import CatalogProcess, CatalogWriter, events_written, open_catalog, replay_spool

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "data").mkdir()
    config = tmp_path / "tiled.yml"
    config.write_text(SERVER_CONFIG.format(d=tmp_path, key="trxrdtestkey"))
    uri = f"http://127.0.0.1:{port}"
    servers = [tiled_server(config, port)]
    try:
        cat = open_catalog(uri, api_key="trxrdtestkey")
        process = CatalogProcess(uri=uri, api_key="trxrdtestkey", log_path=tmp_path / "process.log")
        writer = CatalogWriter(process, backup_directory=tmp_path / "spool", batch_size=5, max_latency_s=0.05)
        RE, derived = acquisition(writer)
        restarted_at = []

        def stored_events():
            try:
                return events_written(cat[RE.docs[0][1]["uid"]])
            except Exception:          # no run yet, not in the catalog yet
                return 0

        def restart():                 # once the server holds a part of the run
            wait_for(lambda: stored_events() >= 5, 60, period=0.05, what="5 events in the catalog")
            servers[0].kill()
            servers[0].communicate(timeout=30)
            restarted_at.append(sum(n == "event" for n, _ in RE.docs))
            servers.append(tiled_server(config, port))

        restarter = threading.Thread(target=restart, daemon=True)
        restarter.start()
        try:
            (uid,) = RE(count([exposing_signal()], POINTS), sample={"name": "server restarted"})
            restarter.join(180)
            assert len(servers) == 2 and restarted_at and restarted_at[0] < POINTS
            (later,) = RE(count([exposing_signal()], 5), sample={"name": "server back"})
        finally:
            writer.close()
            process.close(timeout=30)
        assert [d["exit_status"] for n, d in RE.docs if n == "stop"] == ["success", "success"]
        reduced = [d["uid"] for n, d in derived if n == "start"]
        assert later not in writer.spooled and reduced[1] not in writer.spooled   # the server is back
        assert set(writer.spooled) <= {uid, reduced[0]}
        # the test owns the server's storage, as its operator would: what a kill in the middle of
        # creating a node left there is removed (see test_files_a_crash_left_are_removed...)
        results = [replay_spool(spool, cat, storage=tmp_path / "data") for spool in writer.spooled.values()]
        assert all(r.ok for r in results), [str(r) for r in results]
        assert_stored_once(cat, RE.docs + derived)
    finally:
        for server in servers:
            if server.poll() is None:
                server.kill()
                server.communicate(timeout=30)


def test_catalog_and_journal_both_failing_stops_the_run(tmp_path):
    """The one case that stops a run: the catalog fails and the journal cannot be written either
    (documents are being lost): CatalogWriteError says so."""
    from event_model import compose_run

    from trxrd.catalog import CatalogWriteError, CatalogWriter, open_catalog

    cat = open_catalog(root=tmp_path)
    writer = CatalogWriter(cat, backup_directory=tmp_path / "spool", batch_size=1, max_latency_s=0.05)
    bundle = compose_run(metadata={"plan_name": "lost"})
    writer.spool_path(bundle.start_doc["uid"]).mkdir()            # its journal cannot be opened
    desc = bundle.compose_descriptor(name="primary", data_keys={"x": {"source": "t", "dtype": "number", "shape": []}})
    try:
        with tables_held(tmp_path / "catalog" / "tables.db"):
            writer("start", bundle.start_doc)
            writer("descriptor", desc.descriptor_doc)
            for k in range(3):
                writer("event", desc.compose_event(data={"x": float(k)}, timestamps={"x": 0.0}))
            with pytest.raises(CatalogWriteError, match="LOST") as info:
                writer.flush(60)
        assert str(writer.spool_path(bundle.start_doc["uid"])) in str(info.value)
        writer("stop", bundle.compose_stop())
    finally:
        writer.close()
