"""The run catalog against the simulated beamline: every document stored, frames read back from
the detector's HDF5 files, writer failures surfaced, and the ``trxrd runs`` / ``show`` commands
(also while another process writes the same embedded catalog)."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import exposing_signal, recording_run_engine, tables_locked_after, wait_for

pytestmark = pytest.mark.ioc

REPO = Path(__file__).resolve().parents[1]
EXPOSURE_S = 0.01   # s: frames end before trigger() returns; the detector must cope


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("catalog-root")


@pytest.fixture(scope="module")
def cat(root):
    from trxrd.catalog import open_catalog

    return open_catalog(root=root)


@pytest.fixture(scope="module")
def writer(cat, root):
    from trxrd.catalog import CatalogWriter

    w = CatalogWriter(cat, backup_directory=root / "spool")
    yield w
    w.close()


@pytest.fixture(scope="module")
def run_engine(writer):
    """RunEngine with the catalog writer, and the list of every document it emitted."""
    from bluesky import RunEngine

    RE = RunEngine({})
    docs = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    RE.subscribe(writer)
    return RE, docs


@pytest.fixture(scope="module")
def pilatus(sim, root):
    from trxrd.acquisition.devices.detectors import PilatusDetector

    det = PilatusDetector(sim.prefix + "PIL:", name="pilatus", write_dir=root / "frames" / "pilatus")
    det.wait_for_connection(timeout=15)
    det.exposure_s = EXPOSURE_S
    return det


@pytest.fixture(scope="module")
def i0(sim):
    from trxrd.acquisition.devices.monitors import I0Monitor

    sig = I0Monitor(sim.prefix, name="i0")
    sig.wait_for_connection(timeout=10)
    return sig


@pytest.fixture(scope="module")
def sample_y(sim):
    from ophyd import EpicsMotor

    m = EpicsMotor(sim.prefix + "SMP:y", name="sample_y")
    m.wait_for_connection(timeout=10)
    m.settle_time = 0.005
    return m


@pytest.fixture(scope="module")
def frames_run(sim, ca, run_engine, pilatus, i0):
    """count([pilatus, i0], 5) with the jet flowing (rings on the frames): (uid, its documents)."""
    from bluesky.plans import count

    RE, docs = run_engine
    ca.caput(sim.prefix + "JET:Run", 1, wait=True)
    try:
        wait_for(lambda: ca.caget(sim.prefix + "JET:Flowing_RBV") == 1, 10, what="jet flowing")
        (uid,) = RE(count([pilatus, i0], 5), sample={"name": "CsPbBr3 NC"})
    finally:
        ca.caput(sim.prefix + "JET:Run", 0, wait=True)
    return uid, _emitted(docs, uid)


def _emitted(docs, uid):
    """The documents of run *uid* among everything the RunEngine emitted."""
    out, descriptors, resources = [], set(), set()
    for name, doc in docs:
        if name == "start" and doc["uid"] == uid:
            out.append((name, doc))
        elif name in ("descriptor", "resource", "stop") and doc.get("run_start") == uid:
            (descriptors if name == "descriptor" else resources).add(doc["uid"])
            out.append((name, doc))
        elif (name == "event" and doc["descriptor"] in descriptors) or \
                (name == "datum" and doc["resource"] in resources):
            out.append((name, doc))
    return out


# -- open_catalog and batching, no data ---------------------------------------------------------

@pytest.mark.parametrize("uri", ["ftp://host/x", "localhost:8000", "http://", "/data/catalog.db"])
def test_bad_uri_is_one_clear_line(uri):
    from trxrd.catalog import open_catalog

    with pytest.raises(ValueError, match="http") as info:
        open_catalog(uri)
    assert "\n" not in str(info.value)


def test_embedded_layout_and_lookups(cat, root):
    assert (root / "catalog" / "catalog.db").is_file()
    assert (root / "catalog" / "data").is_dir()
    assert any(spec.name == "CatalogOfBlueskyRuns" and spec.version == "3.0" for spec in cat.specs)


def test_batch_size_per_run(cat, root):
    from trxrd.catalog import DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE, CatalogWriter

    w = CatalogWriter(cat, backup_directory=root / "spool")
    try:
        assert w.batch_size_for({"num_points": 2000}) == 100
        assert w.batch_size_for({"num_points": 50}) == 3
        assert w.batch_size_for({"num_points": 10}) == 1
        assert w.batch_size_for({"num_points": 10**7}) == MAX_BATCH_SIZE
        assert w.batch_size_for({}) == DEFAULT_BATCH_SIZE
        assert w.batch_size_for({"num_points": True}) == DEFAULT_BATCH_SIZE
    finally:
        w.close()
    fixed = CatalogWriter(cat, batch_size=7, backup_directory=root / "spool")
    assert fixed.batch_size_for({"num_points": 2000}) == 7
    fixed.close()
    with pytest.raises(ValueError, match="batch_size"):
        CatalogWriter(cat, batch_size=0, backup_directory=root / "spool")


def test_short_arrays_in_events_are_stored(cat, writer):
    """Arrays of a few values (the spots of a pattern, a CCF's peaks) read back as written: the
    event table's SQL storage takes no list columns, so they go to array nodes."""
    from event_model import compose_run

    bundle = compose_run(metadata={"plan_name": "short_arrays"})
    desc = bundle.compose_descriptor(name="primary", data_keys={
        "peaks": {"source": "test", "dtype": "array", "shape": [8]},
        "n": {"source": "test", "dtype": "integer", "shape": []}})
    writer("start", bundle.start_doc)
    writer("descriptor", desc.descriptor_doc)
    rows = [np.where(np.arange(8) < k, np.arange(8) * 1.5 + k, np.nan) for k in range(3)]
    for k, row in enumerate(rows):
        writer("event", desc.compose_event(data={"peaks": row, "n": k}, timestamps={"peaks": 0.0, "n": 0.0}))
    writer("stop", bundle.compose_stop())
    writer.flush()
    stored = cat[bundle.start_doc["uid"]]["primary"].read()
    np.testing.assert_array_equal(np.asarray(stored["peaks"]), np.array(rows))
    assert list(stored["n"]) == [0, 1, 2]


# -- runs against the IOCs ------------------------------------------------------------------------

def test_count_with_frames_stores_every_document(root, cat, frames_run):
    uid, emitted = frames_run
    assert Counter(n for n, _ in emitted) == {"start": 1, "descriptor": 1, "resource": 1,
                                              "datum": 5, "event": 5, "stop": 1}
    # RE(...) returned, so the run is complete in the catalog already: no waiting.
    run = cat[uid]
    assert cat.uid[uid[:8]].start["uid"] == uid
    assert cat[run.start["scan_id"]].start["uid"] == uid
    stored = list(run.documents())
    kinds = Counter(n for n, _ in stored)
    assert kinds == {"start": 1, "descriptor": 1, "event": 5, "stream_resource": 1,
                     "stream_datum": 1, "stop": 1}

    by_name = {n: d for n, d in emitted}
    start, stop = dict(stored[0][1]), dict(stored[-1][1])
    assert {k: start[k] for k in by_name["start"]} == json.loads(json.dumps(by_name["start"]))
    assert stop["uid"] == by_name["stop"]["uid"]
    assert stop["exit_status"] == "success" and stop["num_events"] == {"primary": 5}
    # Events: same seq_nums, times and scalar readings as emitted.
    sent = [d for n, d in emitted if n == "event"]
    kept = [d for n, d in stored if n == "event"]
    assert [e["seq_num"] for e in kept] == [e["seq_num"] for e in sent] == [1, 2, 3, 4, 5]
    assert [e["data"]["i0"] for e in kept] == [e["data"]["i0"] for e in sent]
    assert [e["time"] for e in kept] == pytest.approx([e["time"] for e in sent], abs=1e-6)
    # Resource + 5 datums became one stream resource (same file) and one stream datum of 5 frames.
    resource = by_name["resource"]
    path = Path(resource["root"]) / resource["resource_path"]
    sres = next(d for n, d in stored if n == "stream_resource")
    sdatum = next(d for n, d in stored if n == "stream_datum")
    assert sres["uri"].endswith(str(path)) and sres["data_key"] == "pilatus_image"
    assert (sdatum["indices"]["start"], sdatum["indices"]["stop"]) == (0, 5)
    assert [d["datum_kwargs"]["point_number"] for n, d in emitted if n == "datum"] == [0, 1, 2, 3, 4]
    assert path.is_relative_to(root / "frames" / "pilatus")

    frames = run["primary"]["pilatus_image"].read()
    with h5py.File(path, "r", libver="latest", swmr=True) as f:
        on_disk = f["/entry/data/data"][:]
    assert frames.shape == (5, 619, 487) == on_disk.shape
    assert frames.dtype == on_disk.dtype == np.int32
    np.testing.assert_array_equal(frames, on_disk)
    assert frames.max() > 10                       # the jet's rings, not an empty frame
    key = run["primary"].descriptors[0]["data_keys"]["pilatus_image"]
    assert tuple(key["shape"]) == (619, 487) and key["units"] == "counts"
    assert run.start["sample"]["name"] == "CsPbBr3 NC"


def test_scalar_scan_stored(cat, run_engine, sample_y, i0):
    from bluesky.plans import scan

    RE, docs = run_engine
    (uid,) = RE(scan([i0], sample_y, 0.0, 40.0, 5))
    sent = [d for n, d in _emitted(docs, uid) if n == "event"]
    assert len(sent) == 5
    primary = cat[uid]["primary"]
    np.testing.assert_allclose(primary["sample_y"].read(), [e["data"]["sample_y"] for e in sent])
    np.testing.assert_allclose(primary["sample_y"].read(), [0, 10, 20, 30, 40], atol=0.05)
    np.testing.assert_array_equal(primary["i0"].read(), [e["data"]["i0"] for e in sent])
    assert cat[uid].stop["num_events"] == {"primary": 5}
    sample_y.set(0.0).wait(10)


def test_live_reader_sees_events_before_stop(cat, run_engine, i0):
    """40 announced points -> batches of 2: after 20 events the catalog shows all 20 while the
    run is still open (the writer thread hands documents over within max_latency_s)."""
    import bluesky.plan_stubs as bps

    from trxrd.catalog import events_written

    RE, _ = run_engine
    seen = {}

    def rows(uid):
        try:
            return events_written(cat[uid])
        except KeyError:        # start document not handed over yet
            return 0

    def plan():
        uid = yield from bps.open_run(md={"num_points": 40})
        for _ in range(20):
            yield from bps.trigger_and_read([i0])
        seen["rows"] = wait_for(lambda: rows(uid) >= 20 and rows(uid), 30, what="20 rows visible")
        seen["stop"] = cat[uid].metadata.get("stop")
        for _ in range(20):
            yield from bps.trigger_and_read([i0])
        yield from bps.close_run()
        return uid

    (uid,) = RE(plan())
    assert seen == {"rows": 20, "stop": None}
    assert cat[-1].start["uid"] == uid                  # the newest run
    assert len(cat[-1]["primary"]["i0"].read()) == 40


def test_writer_failure_spools_every_document(tmp_path, i0, caplog):
    """A catalog that fails (here: its client closed) does not stop the run: the error logged
    names the JSONL spool, which holds every document of the run."""
    from bluesky import RunEngine
    from bluesky.plans import count
    from event_model import unpack_datum_page, unpack_event_page

    from trxrd.catalog import CatalogWriter, open_catalog

    broken = open_catalog(root=tmp_path)
    broken.context.close()
    writer = CatalogWriter(broken, backup_directory=tmp_path / "spool")
    RE = RunEngine({})
    docs = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    RE.subscribe(writer)
    (uid,) = RE(count([i0], 3))
    spool = writer.spool_path(uid)
    assert writer.spooled == {uid: spool}
    assert any(str(spool) in r.getMessage() and uid in r.getMessage() and "trxrd recover" in r.getMessage()
               for r in caplog.records if r.levelname == "ERROR")
    assert docs[-1][0] == "stop" and docs[-1][1]["exit_status"] == "success"
    wait_for(lambda: spool.is_file() and len(spool.read_text().splitlines()) == len(docs), 10,
             what="every document in the spool")
    spooled = []      # TiledWriter's router spools each event as a one-event event_page
    for line in spool.read_text().splitlines():
        name, doc = json.loads(line).values()
        pages = {"event_page": unpack_event_page, "datum_page": unpack_datum_page}
        spooled += [(name.removesuffix("_page"), d) for d in pages[name](doc)] if name in pages \
            else [(name, doc)]
    assert [n for n, _ in spooled] == [n for n, _ in docs]
    assert [d["uid"] for _, d in spooled] == [d["uid"] for _, d in docs]
    assert [d["data"] for n, d in spooled if n == "event"] == [d["data"] for n, d in docs if n == "event"]
    # Reported once: the writer is usable (and quiet) afterwards.
    writer.flush(10)
    writer.close()


def test_catalog_failing_mid_run_spools_every_document(tmp_path, caplog):
    """The catalog's storage stops taking writes in the middle of a run (another process holds
    an exclusive lock on its event tables, as a second writer of an embedded catalog would):
    the run goes on to its end; the error logged names the spool, which holds every document
    the run emitted, in order; nothing is lost (tests/test_recover.py replays it)."""

    from bluesky.plans import count

    from trxrd.catalog import CatalogWriter, open_catalog

    cat = open_catalog(root=tmp_path)
    writer = CatalogWriter(cat, backup_directory=tmp_path / "spool", batch_size=5, max_latency_s=0.05)
    RE = recording_run_engine(writer)
    docs = RE.docs
    with tables_locked_after(docs, 12, tmp_path / "catalog" / "tables.db"):
        (uid,) = RE(count([exposing_signal()], 200), sample={"name": "read-only catalog"})
    spool = writer.spool_path(uid)
    assert writer.spooled == {uid: spool}
    message = next(r.getMessage() for r in caplog.records if r.levelname == "ERROR" and str(spool) in r.getMessage())
    assert uid in message and "database is locked" in message
    assert docs[-1][0] == "stop" and sum(n == "event" for n, _ in docs) == 200
    spooled = [json.loads(line) for line in spool.read_text().splitlines()]
    assert [(d["name"], d["doc"]["uid"] if "uid" in d["doc"] else d["doc"]["datum_id"]) for d in spooled] == \
        [(n, d["uid"] if "uid" in d else d["datum_id"]) for n, d in docs]
    assert [d["doc"]["data"] for d in spooled if d["name"] == "event"] == \
        [d["data"] for n, d in docs if n == "event"]
    writer.close()


# -- CLI --------------------------------------------------------------------------------------

@pytest.fixture
def cli_env(monkeypatch, root):
    monkeypatch.setenv("TRXRD_DATA", str(root))
    monkeypatch.delenv("TRXRD_CATALOG", raising=False)


def test_cli_runs_lists_newest_first(cli_env, cat, frames_run, capsys):
    from trxrd.cli import main

    uids = [r.start["uid"] for r in cat.values()[-1:-4:-1]]
    assert main(["runs", "--limit", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["start", "uid", "plan", "sample", "exit", "events"]
    assert [line.split()[2] for line in out[1:]] == [u[:8] for u in uids]
    assert main(["runs", "--limit", "100"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if frames_run[0][:8] in x)
    assert line.split()[3:] == ["count", "CsPbBr3", "NC", "success", "5"]


def test_cli_show_by_prefix_scan_id_and_last(cli_env, cat, frames_run, capsys):
    from trxrd.cli import main

    uid = frames_run[0]
    run = cat[uid]
    assert main(["show", uid[:8]]) == 0
    out = capsys.readouterr().out
    assert f"run {uid}" in out and "success" in out
    assert "  plan_name: 'count'" in out and "  sample.name: 'CsPbBr3 NC'" in out
    assert "  primary: 5 events" in out
    image = next(x for x in out.splitlines() if "pilatus_image" in x).split()
    assert image == ["pilatus_image", "(619,", "487)", "int32", "counts", "file"]
    i0_line = next(x for x in out.splitlines() if x.strip().startswith("i0 ")).split()
    assert i0_line[:2] == ["i0", "()"]
    assert main(["show", str(run.start["scan_id"])]) == 0
    assert f"run {uid}" in capsys.readouterr().out
    assert main(["show", "-1"]) == 0
    assert f"run {cat[-1].start['uid']}" in capsys.readouterr().out


def test_cli_errors_are_one_line(cli_env, capsys, tmp_path, monkeypatch):
    from trxrd.cli import main

    assert main(["show", "zzzzzzzz"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("trxrd show: error: no run matches 'zzzzzzzz'") and err.count("\n") == 1
    assert main(["runs", "--catalog", "ftp://x"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    monkeypatch.setenv("TRXRD_DATA", str(tmp_path / "empty"))
    assert main(["runs"]) == 2
    assert "no catalog at" in capsys.readouterr().err
    assert not (tmp_path / "empty" / "catalog" / "catalog.db").exists()


WRITER_SCRIPT = textwrap.dedent("""
    import sys, threading
    from pathlib import Path
    from bluesky import RunEngine
    from bluesky.plans import count
    from ophyd import Signal
    from ophyd.status import Status
    from trxrd.catalog import CatalogWriter, open_catalog

    class Slow(Signal):                       # 20 ms per trigger, like an exposure
        def trigger(self):
            st = Status(obj=self)
            threading.Timer(0.02, st.set_finished).start()
            return st

    root = Path(sys.argv[1])
    cat = open_catalog(root=root)
    RE = RunEngine({})
    RE.subscribe(CatalogWriter(cat, backup_directory=root / "spool"))
    RE(count([Slow(name="slow", value=1.0)], 300), sample={"name": "writer-process"})
""")


@pytest.mark.slow
def test_cli_reads_while_another_process_writes(tmp_path, monkeypatch, capsys):
    """SQLite write-ahead log: `trxrd runs` works on a catalog another process is writing."""
    from trxrd.cli import main

    from trxrd.catalog import open_catalog

    open_catalog(root=tmp_path)      # create it here, so both processes open an existing one
    monkeypatch.setenv("TRXRD_DATA", str(tmp_path))
    monkeypatch.delenv("TRXRD_CATALOG", raising=False)
    proc = subprocess.Popen([sys.executable, "-c", WRITER_SCRIPT, str(tmp_path)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def running_line():
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert main(["runs"]) == 0, capsys.readouterr().err
            lines = [x for x in capsys.readouterr().out.splitlines() if "writer-process" in x]
            return lines and lines[0].split()[-2] == "incomplete" and int(lines[0].split()[-1]) > 0 \
                and lines[0]
        line = wait_for(running_line, 60, period=0.2, what="the run in progress, with events")
        assert 0 < int(line.split()[-1]) < 300
        assert main(["show", "-1"]) == 0
        assert "running" in capsys.readouterr().out.splitlines()[0]
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert main(["runs"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "writer-process" in x)
    assert line.split()[-2:] == ["success", "300"]


SERVER_CONFIG = """
trees:
  - path: /
    tree: catalog
    args:
      uri: "sqlite:///{d}/catalog.db"
      writable_storage: ["{d}/data", "sqlite:///{d}/tables.db"]
      readable_storage: ["{d}"]
      init_if_not_exists: true
      specs: [{{name: CatalogOfBlueskyRuns, version: "3.0"}}]
authentication:
  single_user_api_key: {key}
media_types:
  BlueskyRun:
    application/json-seq: bluesky_tiled_plugins.exporters:json_seq_exporter
"""


def tiled_server(config, port: int):
    """``tiled serve config CONFIG`` on 127.0.0.1:*port*, once it answers. Its output goes to
    ``CONFIG.log`` (appended: a restarted server adds to it); never to a pipe nobody reads,
    where a few logged tracebacks would fill the pipe and hang the server."""
    import httpx

    tiled = Path(sys.executable).with_name("tiled")
    log_path = Path(config).with_suffix(".log")
    with open(log_path, "a") as log:
        proc = subprocess.Popen([str(tiled), "serve", "config", str(config), "--host", "127.0.0.1", "--port", str(port)],
                                stdout=log, stderr=subprocess.STDOUT)

    def healthy():
        assert proc.poll() is None, log_path.read_text()[-3000:]
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(healthy, 120, period=0.2, what="tiled server up")
    return proc


@pytest.mark.slow
def test_tiled_server_uri(tmp_path, monkeypatch, capsys):
    """A facility's Tiled server: open_catalog(http URI), CatalogWriter through a CatalogProcess
    writing to that URI (the same code as the embedded default), the CLI."""
    import socket

    from bluesky import RunEngine
    from bluesky.plans import count
    from ophyd import Signal

    from trxrd.catalog import CatalogProcess, CatalogWriter, open_catalog
    from trxrd.cli import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "data").mkdir()
    config = tmp_path / "tiled.yml"
    config.write_text(SERVER_CONFIG.format(d=tmp_path, key="trxrdtestkey"))
    proc = tiled_server(config, port)
    uri = f"http://127.0.0.1:{port}"
    try:
        with pytest.raises(ValueError, match="cannot open the catalog") as info:
            open_catalog(uri, api_key="wrongkey")
        assert "\n" not in str(info.value)
        with pytest.raises(RuntimeError, match="did not start: .*cannot open the catalog"):
            CatalogProcess(uri=uri, api_key="wrongkey", log_path=tmp_path / "refused.log")
        cat = open_catalog(uri, api_key="trxrdtestkey")
        RE = RunEngine({})
        process = CatalogProcess(uri=uri, api_key="trxrdtestkey", log_path=tmp_path / "process.log")
        writer = CatalogWriter(process, backup_directory=tmp_path / "spool")
        RE.subscribe(writer)
        signal = Signal(name="signal", value=2.5)
        (uid,) = RE(count([signal], 30), sample={"name": "over http"})
        writer.close()
        process.close()
        assert process._proc.returncode == 0
        assert cat[-1].start["uid"] == uid
        np.testing.assert_array_equal(cat[uid]["primary"]["signal"].read(), np.full(30, 2.5))
        monkeypatch.setenv("TRXRD_API_KEY", "trxrdtestkey")
        assert main(["runs", "--catalog", uri]) == 0
        line = next(x for x in capsys.readouterr().out.splitlines() if uid[:8] in x)
        assert line.split()[3:] == ["count", "over", "http", "success", "30"]
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_cli_finds_a_uid_prefix_of_digits(tmp_path, monkeypatch, capsys):
    """A uid prefix made of digits only (one uid in 40) is still found, after scan_ids."""
    from event_model import compose_run

    from trxrd.catalog import CatalogWriter, open_catalog
    from trxrd.cli import main

    cat = open_catalog(root=tmp_path)
    writer = CatalogWriter(cat, backup_directory=tmp_path / "spool")
    run = compose_run(uid="08201906-1111-2222-3333-444455556666", metadata={"scan_id": 3})
    writer("start", run.start_doc)
    writer("stop", run.compose_stop())
    writer.close()
    monkeypatch.setenv("TRXRD_DATA", str(tmp_path))
    monkeypatch.delenv("TRXRD_CATALOG", raising=False)
    for key in ("08201906", "3", "-1"):
        assert main(["show", key]) == 0, capsys.readouterr().err
        assert "run 08201906-1111" in capsys.readouterr().out
    assert main(["show", "99"]) == 2 and "no run matches '99'" in capsys.readouterr().err
