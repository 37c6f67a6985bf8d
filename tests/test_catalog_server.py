"""The default catalog setup: a Tiled server child process (``CatalogProcess``) that serves the
embedded catalog on 127.0.0.1 and writes every run; the RunEngine's process only journals and
hands documents over. One server for the module's tests; the session test and the lifetime
tests start their own."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from conftest import exposing_signal, listening, recording_run_engine, tables_held, tables_locked_after, wait_for

REPO = Path(__file__).resolve().parents[1]


def gone(pid: int) -> bool:
    """No such process, or a zombie no one reaped yet (it runs nothing)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(the catalog process, its client, its data root)."""
    from trxrd.catalog import CatalogProcess

    root = tmp_path_factory.mktemp("served")
    process = CatalogProcess(root=root)
    yield process, process.catalog(), root
    process.close()


@pytest.fixture
def writer(served):
    from trxrd.catalog import CatalogWriter

    process, _, root = served
    w = CatalogWriter(process, backup_directory=root / "spool")
    yield w
    w.close()


def test_scan_documents_all_stored_through_the_server(served, writer):
    """Every document of a scan (scalars and short arrays) is in the catalog when RE(...)
    returns, read back through the server; the journal is gone."""
    from bluesky import RunEngine
    from bluesky.plans import count
    from ophyd import Signal

    _, cat, root = served
    RE = RunEngine({})
    docs = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    RE.subscribe(writer)
    det = Signal(name="det", value=2.5)
    peaks = Signal(name="peaks", value=np.array([1.5, 3.0, np.nan]))
    (uid,) = RE(count([det, peaks], 120), sample={"name": "served"})
    run = cat[uid]                                       # no waiting: complete on return
    assert run.stop["exit_status"] == "success" and run.stop["num_events"] == {"primary": 120}
    sent = [d for n, d in docs if n == "event"]
    stored = run["primary"].read()
    np.testing.assert_array_equal(np.asarray(stored["det"]), [e["data"]["det"] for e in sent])
    np.testing.assert_array_equal(np.asarray(stored["peaks"]), np.array([e["data"]["peaks"] for e in sent]))
    kept = [d for n, d in run.documents() if n == "event"]
    assert [e["seq_num"] for e in kept] == list(range(1, 121))
    assert [e["time"] for e in kept] == pytest.approx([e["time"] for e in sent], abs=1e-6)
    assert Counter(n for n, _ in run.documents()) == {"start": 1, "descriptor": 1, "event": 120, "stop": 1}
    assert run.start["sample"] == {"name": "served"}
    assert not writer.spool_path(uid).exists()
    assert cat[-1].start["uid"] == uid


def test_another_process_reads_while_a_scan_is_written(served):
    """A second client in another process (a user's second IPython, ``trxrd runs``) reads the
    embedded catalog's event tables while the catalog process writes a scan event by event, and
    while a writer holds the tables in the middle of a commit: no read fails with SQLite's
    "database is locked" (the tables are in write-ahead-log mode)."""
    import threading

    from bluesky.plans import count

    from trxrd.catalog import CatalogWriter, open_catalog

    process, _, root = served
    writer = CatalogWriter(process, backup_directory=root / "spool", batch_size=1)
    RE = recording_run_engine(writer)
    det = exposing_signal("det", exposure_s=0.005)
    (earlier,) = RE(count([det], 20))
    reader = open_catalog(root=root)                     # this process: a second SQLite client
    reads, errors, done = [], [], threading.Event()

    def read():
        while not done.is_set():
            try:
                reads.append(len(reader[earlier]["primary"].read()["det"]))
            except Exception as exc:     # noqa: BLE001 - every failure is the finding
                errors.append(str(exc).splitlines()[0])

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    try:
        (uid,) = RE(count([det], 150))
    finally:
        done.set()
        thread.join(60)
        writer.close()
    assert errors == []
    assert len(reads) >= 10 and set(reads) == {20}
    assert reader[uid].stop["num_events"] == {"primary": 150}
    tables = root / "catalog" / "tables.db"
    with tables_held(tables):
        assert len(reader[uid]["primary"].read()["det"]) == 150
    mode = subprocess.run([sys.executable, "-c", "import sqlite3, sys; print(sqlite3.connect(sys.argv[1])"
                           ".execute('PRAGMA journal_mode').fetchone()[0])", str(tables)],
                          capture_output=True, text=True, timeout=60)
    assert mode.stdout.strip() == "wal", mode.stderr          # another process: one SQLite library per process


def test_server_listens_only_on_loopback(served):
    process, _, _ = served
    assert process.uri.startswith("http://127.0.0.1:")
    port = int(process.uri.rsplit(":", 1)[1])
    assert listening(process.pid) == [("127.0.0.1", port)]


def test_requests_without_the_key_are_refused(served):
    """The random key is needed to write (and to read); it is not on the child's command line."""
    import httpx

    from trxrd.catalog import open_catalog

    process, _, _ = served
    body = {"data": {"type": "container", "attributes": {
        "metadata": {}, "structure_family": "container", "specs": [], "data_sources": []}}}
    for headers in ({}, {"Authorization": "Apikey wrongkey0123"}):
        write = httpx.post(f"{process.uri}/api/v1/metadata/", json=body, headers=headers, timeout=10)
        assert write.status_code in (401, 403), write.text
        read = httpx.get(f"{process.uri}/api/v1/metadata/", headers=headers, timeout=10)
        assert read.status_code in (401, 403), read.text
    with pytest.raises(ValueError, match="cannot open the catalog"):
        open_catalog(process.uri, api_key="wrongkey0123")
    ok = httpx.get(f"{process.uri}/api/v1/metadata/", headers={"Authorization": f"Apikey {process.api_key}"},
                   timeout=10)
    assert ok.status_code == 200
    cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes()
    assert process.api_key.encode() not in cmdline
    assert len(process.api_key) >= 32


def test_catalog_process_killed_mid_run_spools_every_document(tmp_path, caplog):
    """The catalog process dies in the middle of a run: the run goes on to its end, its spool
    (named in the error logged) holds every document the run emitted, in order
    (tests/test_recover.py replays it)."""
    import threading

    from bluesky.plans import count
    from ophyd import Signal

    from trxrd.catalog import CatalogProcess, CatalogWriter

    process = CatalogProcess(root=tmp_path)
    writer = CatalogWriter(process, backup_directory=tmp_path / "spool", batch_size=5, max_latency_s=0.05)
    RE = recording_run_engine(writer)
    docs = RE.docs

    def kill_it():
        wait_for(lambda: sum(n == "event" for n, _ in docs) >= 12, 30, what="12 events")
        os.kill(process.pid, signal.SIGKILL)

    thread = threading.Thread(target=kill_it, daemon=True)
    thread.start()
    try:
        (uid,) = RE(count([exposing_signal()], 200))
    finally:
        thread.join(30)
        process.close(timeout=10)
    spool = writer.spool_path(uid)
    assert writer.spooled == {uid: spool}
    assert any(str(spool) in r.getMessage() and uid in r.getMessage() and "catalog process" in r.getMessage()
               for r in caplog.records if r.levelname == "ERROR")
    assert docs[-1][0] == "stop" and docs[-1][1]["exit_status"] == "success"
    assert sum(n == "event" for n, _ in docs) == 200
    spooled = [json.loads(line) for line in spool.read_text().splitlines()]
    assert [(d["name"], d["doc"]["uid"]) for d in spooled] == [(n, d["uid"]) for n, d in docs]
    assert [d["doc"]["data"] for d in spooled if d["name"] == "event"] == \
        [d["data"] for n, d in docs if n == "event"]
    # The next run goes straight to its spool, and says so.
    (later,) = RE(count([Signal(name="x", value=1.0)], 2))
    assert set(writer.spooled) == {uid, later} and writer.spool_path(later).is_file()
    writer.close()


PARENT = textwrap.dedent("""
    import os, sys
    from trxrd.catalog import CatalogProcess
    process = CatalogProcess(root=sys.argv[1])
    print(process.pid, flush=True)
    sys.stdin.read()          # until the test kills this process
""")


def test_no_orphan_server_when_the_parent_dies(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(tmp_path)], cwd=REPO, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert not gone(child)
        parent.kill()                           # no close(), no atexit
        parent.wait(10)
        wait_for(lambda: gone(child), 30, what="the catalog process to exit after its parent died")
    finally:
        parent.kill()
        parent.wait(10)


def test_startup_timeout_is_one_clear_error(tmp_path):
    from trxrd.catalog import CatalogProcess

    with pytest.raises(RuntimeError, match=r"did not come up within 0.01 s \(log: .*process.log\)"):
        CatalogProcess(root=tmp_path, startup_timeout_s=0.01)
    with pytest.raises(ValueError, match="either"):
        CatalogProcess()
    with pytest.raises(ValueError, match="http"):
        CatalogProcess(uri="ftp://x")


def test_unreachable_facility_server_is_a_clear_error(tmp_path):
    """A URI where no Tiled server answers: the process says why it did not start."""
    import socket

    from trxrd.catalog import CatalogProcess

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RuntimeError, match=f"did not start: .*127.0.0.1:{port}"):
        CatalogProcess(uri=f"http://127.0.0.1:{port}", api_key="x", log_path=tmp_path / "log")


@pytest.mark.ioc
def test_session_writes_through_the_catalog_process_and_stops_it(sim, tmp_path, monkeypatch, capsys, caplog):
    """The session's default: the catalog process serves and writes the embedded catalog;
    session.close() stops it; a later ``trxrd runs`` reads what it wrote. A spool an earlier
    session left is announced at the start, with the command that replays it."""
    from bluesky.plans import count

    from trxrd.cli import main
    from trxrd.session import SessionConfig, open_session

    (tmp_path / "spool").mkdir()
    (tmp_path / "spool" / "0badc0de.jsonl").write_text("")
    session = open_session(SessionConfig(prefix=sim.prefix, data_root=tmp_path), verbose=False)
    assert any("0badc0de" in r.getMessage() and f"trxrd recover {tmp_path / 'spool'}" in r.getMessage()
               for r in caplog.records if r.levelname == "WARNING")
    process = session.catalog_process
    try:
        assert process is not None and process.root == tmp_path.resolve()
        assert session.catalog.uri.startswith(process.uri)
        (uid,) = session.RE(count([session.beamline.i0], 7), sample={"name": "session"})
        assert session.catalog[uid].stop["num_events"] == {"primary": 7}
        assert len(session.catalog[uid]["primary"]["i0"].read()) == 7
    finally:
        session.close()
    assert process._proc.returncode == 0 and gone(process.pid)
    monkeypatch.setenv("TRXRD_DATA", str(tmp_path))
    monkeypatch.delenv("TRXRD_CATALOG", raising=False)
    capsys.readouterr()
    assert main(["runs"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if uid[:8] in x)
    assert line.split()[-3:] == ["session", "success", "7"]


def test_server_failing_mid_run_spools_every_document(tmp_path, caplog):
    """The served catalog's storage stops taking writes mid-run (another process holds an
    exclusive lock on its event tables): the run goes on to its end, its spool (named in the
    error logged) holds every document the run emitted, in order; the process stays up for the
    next run."""

    from bluesky.plans import count
    from ophyd import Signal

    from trxrd.catalog import CatalogProcess, CatalogWriter

    process = CatalogProcess(root=tmp_path)
    writer = CatalogWriter(process, backup_directory=tmp_path / "spool", batch_size=5, max_latency_s=0.05)
    RE = recording_run_engine(writer)
    docs = RE.docs
    with tables_locked_after(docs, 12, tmp_path / "catalog" / "tables.db"):
        (uid,) = RE(count([exposing_signal()], 200))
    spool = writer.spool_path(uid)
    assert writer.spooled == {uid: spool}
    assert any(str(spool) in r.getMessage() and uid in r.getMessage() for r in caplog.records
               if r.levelname == "ERROR")
    assert docs[-1][0] == "stop" and sum(n == "event" for n, _ in docs) == 200
    spooled = [json.loads(line) for line in spool.read_text().splitlines()]
    assert [(d["name"], d["doc"]["uid"]) for d in spooled] == [(n, d["uid"]) for n, d in docs]
    assert [d["doc"]["data"] for d in spooled if d["name"] == "event"] == \
        [d["data"] for n, d in docs if n == "event"]
    try:
        assert process.alive()
        (again,) = RE(count([Signal(name="x", value=1.0)], 3))        # the lock is gone: stored
        assert process.catalog()[again].stop["num_events"] == {"primary": 3}
    finally:
        writer.close()
        process.close()
