"""The run catalog: a databroker v2 / Tiled catalog of Bluesky runs, and the RunEngine callback
that writes into it. Acquisition and reduction both store their runs through this module.

The catalog is *embedded* by default: an SQLite catalog (plus files) under a data root. A session
(and ``trxrd reduce``) starts a ``CatalogProcess`` for it: a child process that serves the
catalog as a Tiled server on 127.0.0.1 (a free port, a random API key given in its environment)
and writes every run. The RunEngine's process only journals the documents and hands them over in
batches (``CatalogWriter``), so the catalog's CPU (Tiled writing, SQL) is not taken from the
RunEngine: benchmarks/catalog_rate.py measures a 2,000-event scalar scan at 0.9-1.0x the
RunEngine alone when a second core is free (the in-process catalog: ~0.7x); the hand-off costs
the RunEngine's process ~1 % of its CPU. A facility's Tiled server (``http(s)://``)
goes through the same code: the child then writes to that server. The child stops when the
session closes, when its parent exits or dies.

``open_catalog(root=...)`` also opens the embedded catalog in this process, without a server
(``trxrd runs`` / ``show``, tests); ``CatalogWriter`` given such a client writes from this
process (a third of a CPU-bound RunEngine's rate).

Layout of an embedded catalog under ``root``::

    root/catalog/catalog.db      run metadata (SQLite)
    root/catalog/tables.db       event tables (SQLite)
    root/catalog/data/           other arrays written by Tiled
    root/catalog/process.log     the catalog process's log
    root/frames/<detector>/      detector HDF5 files (readable storage: all of root)
    root/spool/<uid8>.jsonl      the journal of a run being written; kept (its spool) when the
                                 catalog failed, until ``trxrd recover`` stores it

When the catalog fails (storage read-only or locked, disk full, the catalog process or a Tiled
server gone or restarting), acquisition goes on and nothing is lost: documents are *spooled*,
not buffered in memory (memory is lost with the process, a spool is not). The failing run's
documents, raw and derived alike (numpy values as JSON lists), go on to its journal, which stays
as its spool ``root/spool/<uid8>.jsonl``; the writer logs an error naming it and the command that
replays it; later runs are written again as soon as the catalog takes them (a Tiled server back
up), else spooled too. ``trxrd recover SPOOL...`` (``replay_spool``) writes spooled runs into the
catalog, idempotently: a part of the run already stored (no stop document) is replaced by the
whole run, a run stored completely is skipped; a spool is removed only once its run reads back
complete. ``trxrd runs`` marks runs without a stop document and names their spool, and a session
announces the spools left at its start (``announce_spools``). Only when the journal cannot be
written either (documents being lost) does the run stop, with ``CatalogWriteError``.

Only one process may *write* an embedded catalog at a time; any number may read it (SQLite
write-ahead log), e.g. ``trxrd runs`` while a scan is running. Several writers need a Tiled
server (PostgreSQL behind it).

EXAMPLE::

    from bluesky import RunEngine
    from bluesky.plans import count
    from ophyd import Signal
    from trxrd.catalog import CatalogProcess, CatalogWriter

    det = Signal(name="det", value=1.0)
    process = CatalogProcess(root="data")             # data/catalog, created on first use
    cat = process.catalog()                           # a client of the child's server
    RE = RunEngine({})
    writer = CatalogWriter(process, backup_directory="data/spool")
    RE.subscribe(writer)
    uid, = RE(count([det], 5))
    run = cat[uid]                                    # or cat[-1], cat[scan_id], cat["3f2a9"]
    run.start["plan_name"], run["primary"]["det"].read()
    writer.close(); process.close()
"""
from __future__ import annotations

import functools
import json
import logging
import math
import shutil
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from .validation import inside

logger = logging.getLogger(__name__)

RUNS_SPEC = {"name": "CatalogOfBlueskyRuns", "version": "3.0"}

# Batching. Every write to the catalog (a table append; for a detector also a data-source
# update) costs ~35 ms of CPU in the writing process, whatever the number of rows, and a reader
# sees events only once they are written. So the batch is chosen per run from
# the start document's `num_points`: about RUN_UPDATES writes per run (a 2000-point scan is
# written 100 events at a time, a 50-point pump-probe scan 3 at a time, a 10-point one event by
# event), at most MAX_BATCH_SIZE. Runs that do not announce `num_points` use
# DEFAULT_BATCH_SIZE. The rest of a run is written when its stop document arrives.
# Measured costs: benchmarks/catalog_rate.py.
RUN_UPDATES = 20
MAX_BATCH_SIZE = 500
DEFAULT_BATCH_SIZE = 25

# How long the stop document may wait for the writer thread to finish the run.
DEFAULT_STOP_TIMEOUT_S = 120.0


class CatalogWriteError(RuntimeError):
    """A run could not be written to the catalog completely (its documents are in the spool)."""


def catalog_dir(root: Path | str) -> Path:
    """Folder of the embedded catalog under the data *root*."""
    return Path(root).expanduser().resolve() / "catalog"


def open_catalog(uri: str | None = None, *, root: Path | str | None = None, api_key: str | None = None,
                 readable: Iterable[Path | str] = ()):
    """The catalog of runs: a Tiled ``CatalogOfBlueskyRuns`` client (``cat[-1]``, ``cat[uid]``,
    ``cat[scan_id]``, ``cat.search(...)``), ordered by start time.

    Parameters
    ----------
    uri : str, optional
        ``http(s)://host:port[/path]`` of a Tiled server. Without it, the embedded catalog under
        *root* is opened (and created on first use).
    root : path, optional
        Data root of the embedded catalog; it may read files anywhere under it and under the
        *readable* folders.
    api_key : str, optional
        Key for the Tiled server.

    EXAMPLE::

        from trxrd.catalog import open_catalog
        cat = open_catalog(root="/data/2026-11-beamtime")
        cat = open_catalog("http://tiled.example:8000", api_key="secret")
        run = cat[-1]
        run.start["sample"], run["primary"]["pilatus_image"].read().shape
    """
    if uri is None:
        if root is None:
            raise ValueError("open_catalog needs a Tiled server URI or the data root of an embedded catalog")
        return _open_embedded(root, readable)
    _check_uri(uri)
    from tiled.client import from_uri

    try:
        client = from_uri(uri, api_key=api_key)
    except Exception as exc:   # httpx errors, auth errors: one line for the user
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"cannot open the catalog at {uri}: {first_line}") from exc
    return _check_runs_catalog(client, uri)


def _check_uri(uri: str) -> None:
    parsed = urlparse(uri)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"catalog URI must be http(s)://host[:port][/path] of a Tiled server, "
                         f"got {uri!r} (leave it unset for the embedded catalog)")


def _open_embedded(root, readable):
    from tiled.client import Context, from_context

    app, database = _embedded_app(root, readable)
    return _check_runs_catalog(from_context(Context.from_app(app)), str(database))


def _embedded_app(root, readable, api_key: str | None = None):
    """The Tiled app of the embedded catalog under *root* (created on first use) and its
    database file; with *api_key*, every request (read or write) needs that key."""
    from tiled.catalog import from_uri as catalog_from_uri
    from tiled.config import Authentication
    from tiled.server.app import build_app

    root = Path(root).expanduser().resolve()
    folder = catalog_dir(root)
    (folder / "data").mkdir(parents=True, exist_ok=True)
    database = folder / "catalog.db"
    _write_ahead_log(folder / "tables.db")
    readable_storage = [str(root)] + [str(Path(p).expanduser().resolve()) for p in readable]
    adapter = catalog_from_uri(
        f"sqlite:///{database}",
        writable_storage=[str(folder / "data"), f"sqlite:///{folder / 'tables.db'}"],
        readable_storage=readable_storage,
        # `tiled catalog init` runs in a subprocess (seconds): only when there is no catalog yet.
        init_if_not_exists=not database.exists(),
        specs=[RUNS_SPEC],
    )
    authentication = None if api_key is None else Authentication(single_user_api_key=api_key,
                                                                  allow_anonymous_access=False)
    return build_app(adapter, authentication=authentication, serialization_registry=_serializers()), database


def _write_ahead_log(tables: Path) -> None:
    """Put the event tables *tables* in SQLite's write-ahead-log mode (kept in the file), as Tiled
    does for catalog.db: readers (``trxrd runs``, a second IPython, the session's own client)
    and the one writer then never block each other. In the default rollback mode a read that
    overlaps a write fails at once with "database is locked" (Tiled's ADBC reader does not wait).

    Through ADBC's SQLite, the one Tiled reads and writes the tables with: a second SQLite library
    in the process (Python's sqlite3) closing the file would drop the POSIX locks ADBC holds on it."""
    import adbc_driver_sqlite.dbapi

    db = adbc_driver_sqlite.dbapi.connect(str(tables), autocommit=True)
    try:
        cursor = db.cursor()
        try:
            cursor.execute("PRAGMA busy_timeout = 10000")
            cursor.execute("PRAGMA journal_mode = WAL")
            mode = cursor.fetchone()
        finally:
            cursor.close()
        if mode is None or str(mode[0]).lower() != "wal":
            logger.warning("event tables %s stay in %s mode: a read during a write may fail with "
                           "'database is locked'", tables, mode)
    except Exception as exc:     # noqa: BLE001 - another process is writing it in rollback mode now
        logger.warning("event tables %s stay in rollback mode for now (%s): a read during a write "
                       "may fail with 'database is locked'", tables, exc)
    finally:
        db.close()


def _serializers():
    """Tiled's default serializers plus a run's documents as JSON-seq (``run.documents()``),
    as a databroker server configures them."""
    import copy

    from bluesky_tiled_plugins.exporters import json_seq_exporter
    from tiled.media_type_registration import default_serialization_registry

    registry = copy.deepcopy(default_serialization_registry)
    registry.register("BlueskyRun", "application/json-seq", json_seq_exporter)
    return registry


def _check_runs_catalog(client, where: str):
    """The client, checked, ordered by start time: reduced runs (dated just before their raw
    run) list before it, so ``cat[-1]`` is the last acquisition."""
    if not any(spec.name == RUNS_SPEC["name"] for spec in client.specs):
        raise ValueError(f"{where} is not a catalog of Bluesky runs (specs: "
                         f"{[spec.name for spec in client.specs]})")
    return client.sort(("start.time", 1))


def events_written(run, stream: str = "primary", *, retry_s: float = 2.0) -> int:
    """Number of events of *stream* in the catalog now; also while the run is being written.

    Reads the stream's event table (not a column array: a column node fetched before a batch
    is appended fails to read afterwards). For the same reason, fetch a column node again
    (``cat[uid]["primary"]["i0"]``) right before reading it while its run is open. A rare
    "database is locked" from SQLite is retried for *retry_s*.

    EXAMPLE::

        from trxrd.catalog import events_written, open_catalog
        events_written(open_catalog(root="data")[-1])      # e.g. 120 of a 400-point scan in progress
    """
    deadline = time.monotonic() + retry_s
    while True:
        try:
            table = run[stream].base["internal"]
        except KeyError:     # no such stream, or nothing written to it yet
            return 0
        try:
            return len(table.read(["seq_num"]))
        except Exception as exc:
            if "database is locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# ---------------------------------------------------------------------------------------------
# Writing


def _one_frame_per_datum(resource: dict) -> dict:
    """TiledWriter patch for ophyd area-detector resources: ``frame_per_point == 1`` makes the
    writer add a length-1 axis, so frames would read back ``(N, 1, ny, nx)``. One frame per
    datum is the default meaning, so drop it; a streamed resource (``frame_per_point`` N > 1)
    takes its shape from the descriptor's ``(N, ny, nx)``, so it reads back ``(events, N, ny, nx)``.
    Either way chunk one frame per block, as the detector writes them, so a reader fetching one
    frame does not pull the whole scan.

    EXAMPLE::

        _one_frame_per_datum({"spec": "AD_HDF5", "resource_kwargs": {"frame_per_point": 10}})
        # {"spec": "AD_HDF5", "resource_kwargs": {"chunk_shape": [1]}}
    """
    kwargs = resource.get("resource_kwargs", {})
    n = kwargs.get("frame_per_point")
    if str(resource.get("spec", "")).upper().startswith("AD_") and isinstance(n, int) and n >= 1:
        # a copy: the RunEngine hands the same document to the live reduction, which needs N
        kwargs = {k: v for k, v in kwargs.items() if k != "frame_per_point"}
        kwargs.setdefault("chunk_shape", [1])
        resource = {**resource, "resource_kwargs": kwargs}
    return resource


def _jsonable(value):
    """numpy values (and anything else) in documents, for the JSONL spool."""
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    return str(value)


def _run_of(name: str, doc: dict, parents: dict) -> str | None:
    """Uid of the run a document belongs to; *parents* maps descriptor/resource uids to runs."""
    if name == "start":
        return doc["uid"]
    if name in ("stop", "descriptor", "resource", "stream_resource"):
        run = doc.get("run_start")
        if name != "stop":
            parents[doc["uid"]] = run
        return run
    if name in ("event", "event_page", "stream_datum"):
        return parents.get(doc.get("descriptor"))
    if name in ("datum", "datum_page"):
        return parents.get(doc.get("resource"))
    return None


def _failure(exc: BaseException) -> str:
    first_line = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__


@functools.cache
def _normalizer():
    """TiledWriter's RunNormalizer, checking every document against its schema but events and
    datums: each event's JSON-schema check cost more CPU than the rest of its writing (an event
    the writer cannot take still fails the run into its spool)."""
    from bluesky_tiled_plugins.writing.tiled_writer import RunNormalizer
    from event_model import schema_validators

    class Normalizer(RunNormalizer):
        def emit(self, name, doc):
            if getattr(name, "name", name) not in ("event", "datum"):     # a DocumentNames or a str
                schema_validators[name].validate(doc)
            self.dispatcher.process(name, doc)

    return Normalizer


class _Store:
    """The catalog side of writing: one ``TiledWriter`` per run on *client*. Failures are
    reported, never raised: ``report(run, failed, done)`` with *failed* the reason (or None)
    and *done* True once the run's stop document is written and the run read back with it.
    Runs in the CatalogWriter's thread (in-process catalog) or in the catalog process."""

    def __init__(self, client, report):
        self.client, self.report = client, report
        self._runs: dict[str, list] = {}          # run uid -> [TiledWriter, failure or None]

    def write(self, run: str, name: str, doc: dict, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        if name == "start":
            self._runs[run] = [None, None]
        state = self._runs.get(run)
        if state is None:
            self.report(run, f"the catalog got a {name!r} document of no known run ({run}); it was "
                             f"not stored", name == "stop")
            return
        if state[1] is None:
            try:
                if state[0] is None:
                    from bluesky_tiled_plugins import TiledWriter

                    # max_array_size=0: every array in events goes to an array node; the default puts arrays
                    # of up to 16 values into the event table, whose SQL storage refuses list columns
                    state[0] = TiledWriter(self.client, batch_size=batch_size, max_array_size=0,
                                           normalizer=_normalizer(), patches={"resource": _one_frame_per_datum})
                state[0](name, doc)
            except Exception as exc:     # any failure of the catalog: the run goes to the spool
                state[1] = f"catalog write failed on a {name!r} document ({_failure(exc)})"
                self.report(run, state[1], False)
        if name == "stop":
            del self._runs[run]
            if state[1] is None:
                state[1] = self._check_stored(run)
            self.report(run, state[1], True)

    def _check_stored(self, run: str) -> str | None:
        """After a stop document: the run must read back from the catalog with its stop document."""
        try:
            stored = self.client[run].metadata.get("stop")
        except Exception as exc:
            return f"not readable back after its stop document ({_failure(exc)})"
        return None if stored else "the catalog has no stop document for it"


class _Run:
    """What the writer thread keeps for one run: its journal and its failure."""

    def __init__(self, uid: str, journal_path: Path):
        self.uid, self.journal_path = uid, journal_path
        self.journal = None
        self.journal_error: str | None = None
        self.failed: str | None = None          # why the catalog did not take the run
        self.lost = False                       # documents of the run neither stored nor journaled
        self.stopped = False                    # its stop document is handed over
        self.waiters: list[threading.Event] = []   # set once the run is stored, or left in its spool


# The catalog process's API key travels in this environment variable, never on its command line.
KEY_ENV = "TRXRD_CATALOG_KEY"
DEFAULT_STARTUP_TIMEOUT_S = 120.0
_CHILD = "import sys; from trxrd.catalog import _catalog_process_main; sys.exit(_catalog_process_main(sys.argv[1]))"


class CatalogProcess:
    """The catalog's writing side in a child process, so the RunEngine's process only journals
    documents and hands them over in batches (the Tiled writing, its validation and SQL run
    elsewhere, on another core).

    With *root* (the default setup) the child also serves the embedded catalog (SQLite + files
    under ``root/catalog``) as a Tiled server on 127.0.0.1 at a free port, with a random API key
    (``api_key``) given to it in its environment: ``catalog()`` is a client of that server, and
    any other process with the key can read it while a scan runs. With *uri* the child writes to
    that Tiled server (a facility's) with *api_key*, through the same code. Documents go to the
    child on its stdin as JSON lines (no pickle); its replies come back on its stdout.

    The child stops when ``close()`` is called, when this process exits or dies (its stdin
    closes), or when it finds itself orphaned. Its log: ``log_path`` (default
    ``root/catalog/process.log``, or a temporary file for a *uri*).

    EXAMPLE::

        from bluesky import RunEngine
        from bluesky.plans import count
        from ophyd import Signal
        from trxrd.catalog import CatalogProcess, CatalogWriter

        with CatalogProcess(root="data") as process:       # a Tiled server on 127.0.0.1
            cat = process.catalog()                          # its client (the random key)
            RE = RunEngine({})
            writer = CatalogWriter(process, backup_directory="data/spool")
            RE.subscribe(writer)
            uid, = RE(count([Signal(name="det", value=1.0)], 5))
            cat[uid]["primary"]["det"].read()
            writer.close()
    """

    def __init__(self, root: Path | str | None = None, *, uri: str | None = None, api_key: str | None = None,
                 readable: Iterable[Path | str] = (), host: str = "127.0.0.1",
                 startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S, log_path: Path | str | None = None):
        import os
        import queue
        import secrets
        import subprocess
        import sys
        import tempfile

        if (root is None) == (uri is None):
            raise ValueError("CatalogProcess needs either the data root of an embedded catalog or a Tiled server URI")
        if uri is not None:
            _check_uri(uri)
        if not startup_timeout_s > 0:
            raise ValueError(f"startup_timeout_s must be > 0, got {startup_timeout_s}")
        self.api_key = secrets.token_hex(32) if uri is None else api_key
        self.root = None if root is None else Path(root).expanduser().resolve()
        if log_path is None:
            if self.root is not None:
                catalog_dir(self.root).mkdir(parents=True, exist_ok=True)
                log_path = catalog_dir(self.root) / "process.log"
            else:
                log_path = Path(tempfile.gettempdir()) / f"trxrd-catalog-{os.getpid()}-{id(self):x}.log"
        self.log_path = Path(log_path)
        config = {"root": None if self.root is None else str(self.root), "uri": uri, "host": host,
                  "readable": [str(Path(r).expanduser().resolve()) for r in readable]}
        env = dict(os.environ)
        env[KEY_ENV] = self.api_key or ""
        self._listener = None
        self._lines: queue.Queue = queue.Queue()
        self._closing = False
        self._send_lock = threading.Lock()
        with open(self.log_path, "ab") as log:
            # its own session: a Ctrl-C at the RunEngine's prompt does not stop the catalog mid-run
            self._proc = subprocess.Popen([sys.executable, "-c", _CHILD, json.dumps(config)], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=log, env=env, start_new_session=True)
        self._reader = threading.Thread(target=self._read, name="CatalogProcess replies", daemon=True)
        self._reader.start()
        try:
            first = self._lines.get(timeout=startup_timeout_s)
        except queue.Empty:
            self.close(timeout=5)
            raise RuntimeError(f"the catalog process did not come up within {startup_timeout_s:g} s "
                               f"(log: {self.log_path})") from None
        if "ready" not in first:
            self.close(timeout=5)
            why = first.get("error") or f"it exited with code {first.get('exited')}: {self._log_tail()}"
            raise RuntimeError(f"the catalog process did not start: {why} (log: {self.log_path})")
        self.uri: str = first["ready"]

    @property
    def pid(self) -> int:
        return self._proc.pid

    def catalog(self):
        """A client of the catalog (embedded: of the child's server, with its key)."""
        return open_catalog(self.uri, api_key=self.api_key)

    def alive(self) -> bool:
        return self._proc.poll() is None

    def attach(self, listener) -> None:
        """Send the child's replies to *listener* (one ``CatalogWriter`` at a time)."""
        if self._listener is not None:
            raise RuntimeError("this catalog process already has a writer (close that one first)")
        self._listener = listener

    def detach(self, listener) -> None:
        if self._listener == listener:
            self._listener = None

    def send(self, data: bytes) -> None:
        """Hand JSON lines to the child; ``OSError`` when it is gone."""
        with self._send_lock:
            self._proc.stdin.write(data)
            self._proc.stdin.flush()

    def close(self, timeout: float = DEFAULT_STOP_TIMEOUT_S) -> None:
        """Let the child finish what it was sent and stop (killed after *timeout*). Idempotent."""
        import subprocess

        self._closing = True
        try:
            with self._send_lock:
                self._proc.stdin.close()
        except OSError:
            pass
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.error("catalog process %d still busy after %g s: killed (log %s)", self.pid, timeout,
                         self.log_path)
            self._proc.kill()
            self._proc.wait(10)
        self._reader.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _read(self) -> None:
        for line in self._proc.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                logger.warning("catalog process: unreadable reply %r", line[:200])
                continue
            if self._listener is None:
                self._lines.put(message)
            else:
                self._listener(message)
        message = {"exited": self._proc.wait()}
        if self._listener is None:
            self._lines.put(message)
        else:
            self._listener(message)

    def _log_tail(self, n: int = 3) -> str:
        try:
            lines = [x for x in self.log_path.read_text(errors="replace").splitlines() if x.strip()]
        except OSError:
            return "no log"
        return " | ".join(lines[-n:]) or "empty log"


def _catalog_process_main(config_json: str) -> int:
    """The catalog process (see ``CatalogProcess``): serve the embedded catalog if asked, then
    write the documents read from stdin, replying on stdout."""
    import os
    import sys

    config = json.loads(config_json)
    key = os.environ.pop(KEY_ENV, "") or None
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())         # stray prints go to the log
    reply_lock = threading.Lock()

    def reply(message: dict) -> None:
        with reply_lock:
            replies.write(json.dumps(message).encode() + b"\n")
            replies.flush()

    parent = os.getppid()

    def orphaned():                     # the parent died and something else holds our stdin
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(3)

    threading.Thread(target=orphaned, name="orphan watch", daemon=True).start()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    server = None
    try:
        if config["root"] is not None:
            server, uri = _serve(config, key)
        else:
            uri = config["uri"]
        client = open_catalog(uri, api_key=key)
    except Exception as exc:
        logger.exception("catalog process: cannot start")
        reply({"error": _failure(exc)})
        return 1
    reply({"ready": uri})
    store = _Store(client, lambda run, failed, done: reply({"run": run, "failed": failed, "done": done}))
    for line in sys.stdin.buffer:
        message = json.loads(line)
        if "ping" in message:
            reply({"pong": message["ping"]})
            continue
        try:
            store.write(message["run"], message["name"], message["doc"], message.get("batch", DEFAULT_BATCH_SIZE))
        except Exception as exc:        # the store reports the catalog's failures; this is a bug
            logger.exception("catalog process: cannot take a %r document", message.get("name"))
            reply({"run": message.get("run"), "failed": f"the catalog process failed ({_failure(exc)})",
                   "done": message.get("name") == "stop"})
    if server is not None:
        server.should_exit = True
        server.thread.join(30)
    return 0


def _serve(config: dict, key: str | None, timeout_s: float = 60.0):
    """Serve the embedded catalog with uvicorn on ``config['host']`` at a free port, in a thread;
    the server and its URI once it accepts connections."""
    import socket

    import uvicorn

    app, _ = _embedded_app(config["root"], config["readable"], api_key=key)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((config["host"], 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    server.thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True)
    server.thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not server.thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the Tiled server did not start within {timeout_s:g} s")
        time.sleep(0.02)
    host, port = sock.getsockname()[:2]
    return server, f"http://{host}:{port}"


class CatalogWriter:
    """RunEngine callback that stores every document in the catalog from one background thread.

    ``__call__`` only queues the document, so the RunEngine does not wait on the catalog per
    event; on a run's ``stop`` document it waits until the whole run is written and checked,
    so when ``RE(...)`` returns, ``cat[uid]`` (and ``cat[-1]``) holds the complete run.

    *target* is where the documents go: a ``CatalogProcess`` (the default setup: this process
    only journals them and hands them to the child in batches) or a Tiled client (the writing
    happens in this thread, in this process: for narrow tests and comparisons; it costs a
    CPU-bound RunEngine about a third of its rate, see benchmarks/catalog_rate.py).

    Documents go to ``bluesky_tiled_plugins.TiledWriter`` (one per run), which turns ophyd
    ``AD_HDF5`` resource/datum documents into references to the HDF5 files: frames read back
    with ``run["primary"]["<det>_image"].read()`` as ``(N, ny, nx)``. Events are written in
    batches so that live readers see a run as it goes: ``batch_size=None`` picks it per run
    from ``num_points`` (see ``batch_size_for``), an int fixes it.

    Nothing is lost, and a catalog failure does not stop acquisition (the module docstring has
    the policy): every document of a run is first journaled to ``backup_directory/<uid8>.jsonl``;
    the journal is removed once the run is read back complete from the catalog. If the catalog
    fails (any exception from the writer, or the catalog process gone), the run's remaining
    documents go to the journal only, the journal stays as the spool of the run (``spooled``:
    uid -> spool), an error is logged with the ``trxrd recover`` command that replays it, and
    the run goes on. Only when the journal cannot be written either (documents being lost) does
    this callback raise ``CatalogWriteError`` on the run's next document. Several threads may feed
    one writer (the RunEngine, a live reduction); each gets the errors of its own runs.
    ``flush(timeout)`` waits until everything queued is handed over; ``close()`` flushes and stops
    the thread (not the catalog process).

    EXAMPLE::

        from trxrd.catalog import CatalogProcess, CatalogWriter
        process = CatalogProcess(root="data")
        cat = process.catalog()
        writer = CatalogWriter(process, backup_directory="data/spool")
        token = RE.subscribe(writer)
        RE(count([pilatus, i0], 10))
        cat[-1]["primary"]["pilatus_image"].read().shape    # (10, 619, 487)
        RE.unsubscribe(token); writer.close(); process.close()
    """

    def __init__(self, target, *, backup_directory: Path | str, batch_size: int | None = None,
                 stop_timeout_s: float = DEFAULT_STOP_TIMEOUT_S, max_latency_s: float = 0.5,
                 max_queued: int = 100_000):
        if batch_size is not None and (isinstance(batch_size, bool) or batch_size < 1):
            raise ValueError(f"batch_size must be >= 1 or None (per run), got {batch_size}")
        if not stop_timeout_s > 0:
            raise ValueError(f"stop_timeout_s must be > 0, got {stop_timeout_s}")
        self.backup_directory = Path(backup_directory).expanduser().resolve()
        self.backup_directory.mkdir(parents=True, exist_ok=True)
        self.batch_size = None if batch_size is None else int(batch_size)
        self.stop_timeout_s = float(stop_timeout_s)
        self.max_latency_s = float(max_latency_s)
        self._lock = threading.Lock()             # guards _parents, _errors, _runs, _pings, _gone
        self._gone: str | None = None              # why the catalog process is not there
        if isinstance(target, CatalogProcess):
            self.process, self.client, self._store = target, None, None
            if not target.alive():
                self._gone = f"the catalog process is not running (log {target.log_path})"
            target.attach(self._on_reply)
        else:
            self.process, self.client = None, target
            self._store = _Store(target, self._on_stored)
        # Hand-off: producers append; the writer thread is woken once per batch of documents (or
        # after max_latency_s, or by a stop document), not per document: with a CPU-bound
        # RunEngine every wake-up is a GIL hand-over that costs the RunEngine time.
        self._max_queued = int(max_queued)
        self._pending: deque = deque()
        self._cond = threading.Condition()
        self._wake = False
        self._parents: dict[str, str] = {}         # descriptor / resource uid -> run uid
        self._errors: dict[str | None, list[CatalogWriteError]] = {}   # run uid -> not yet raised
        self._runs: dict[str, _Run] = {}           # runs not finished yet
        self.spooled: dict[str, Path] = {}         # run uid -> its spool: runs the catalog did not take
        self._pings: dict[int, threading.Event] = {}
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="CatalogWriter", daemon=True)
        self._thread.start()

    def batch_size_for(self, start: dict) -> int:
        """Events per catalog write for the run of this start document."""
        if self.batch_size is not None:
            return self.batch_size
        num_points = start.get("num_points")
        if isinstance(num_points, int) and not isinstance(num_points, bool) and num_points > 0:
            return max(1, min(MAX_BATCH_SIZE, math.ceil(num_points / RUN_UPDATES)))
        return DEFAULT_BATCH_SIZE

    def spool_path(self, uid: str) -> Path:
        """The JSONL journal / spool of run *uid* (a name that stays in the spool folder,
        whatever the document's uid)."""
        from .validation import file_stem

        return self.backup_directory / f"{file_stem(str(uid).split('-')[0])}.jsonl"

    # -- producer side -------------------------------------------------------------------------

    def __call__(self, name: str, doc: dict) -> None:
        if self._closed:
            raise RuntimeError("CatalogWriter is closed")
        with self._lock:
            run = _run_of(name, doc, self._parents)
        self._put((run, name, doc), wake=name == "stop")     # queued first: an error never loses it
        if name == "stop":
            finished = self._enqueue_marker(run).wait(self.stop_timeout_s)
            with self._lock:
                self._parents = {k: v for k, v in self._parents.items() if v != run}
            if not finished:
                raise CatalogWriteError(
                    f"run {run}: the catalog writer did not finish within {self.stop_timeout_s} s "
                    f"of the stop document; it goes on in the background (journal {self.spool_path(run)})")
        self._raise_pending(run)

    def flush(self, timeout: float = DEFAULT_STOP_TIMEOUT_S) -> None:
        """Wait until every document queued so far is handed to TiledWriter (a run still open
        keeps its last partial batch until its stop document); raise any pending writer error."""
        if self._thread.is_alive() and not self._enqueue_marker().wait(timeout):
            raise TimeoutError(f"catalog writer still busy after {timeout} s "
                               f"({len(self._pending)} documents queued)")
        self._raise_pending(every_run=True)

    def close(self, timeout: float = DEFAULT_STOP_TIMEOUT_S) -> None:
        """Flush, stop the writer thread and raise a pending error. Idempotent."""
        if self._closed:
            return
        try:
            self.flush(timeout)
        finally:
            self._closed = True
            self._put(None, wake=True)
            self._thread.join(timeout)
            if self.process is not None:
                self.process.detach(self._on_reply)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _enqueue_marker(self, run: str | None = None) -> threading.Event:
        """An event set once everything queued before it is handed over; for a *run*, once that
        run is finished (stored and checked, or spooled)."""
        done = threading.Event()
        self._put(("marker", run, done), wake=True)
        return done

    def _put(self, item, wake: bool) -> None:
        with self._cond:
            while len(self._pending) >= self._max_queued and self._thread.is_alive():
                self._cond.wait(1.0)                 # back-pressure, never drop
            self._pending.append(item)
            if wake or len(self._pending) >= (self.batch_size or DEFAULT_BATCH_SIZE):
                self._wake = True
                self._cond.notify_all()

    def _raise_pending(self, run: str | None = None, *, every_run: bool = False) -> None:
        """Raise the first unraised error of *run* (or of any run); log the others."""
        with self._lock:
            keys = list(self._errors) if every_run else [k for k in (run, None) if k in self._errors]
            errors = [e for k in keys for e in self._errors.pop(k)]
        if not errors:
            return
        for extra in errors[1:]:
            logger.error("%s", extra)
        raise errors[0]

    # -- writer thread --------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._cond:
                if not self._wake:
                    self._cond.wait(self.max_latency_s)
                self._wake = False
                items = list(self._pending)
                self._pending.clear()
                self._cond.notify_all()              # room for a blocked producer
            out: list[bytes] = []
            for item in items:
                if item is None:
                    return
                if item[0] == "marker":
                    self._marker(item[1], item[2], out)
                else:
                    self._write(*item, out)
            with self._lock:
                journals = [state.journal for state in self._runs.values() if state.journal is not None]
            for journal in journals:                 # what is handed over is on disk too
                try:
                    journal.flush()
                except (OSError, ValueError):        # closed meanwhile
                    pass
            if out:
                self._send(b"".join(out))

    def _marker(self, run: str | None, done: threading.Event, out: list) -> None:
        with self._lock:
            state = self._runs.get(run) if run is not None else None
            if state is not None:                    # set when the run is finished
                state.waiters.append(done)
                return
            ping = None
            if run is None and self.process is not None and self._gone is None:
                ping = max(self._pings, default=0) + 1
                self._pings[ping] = done             # set by the child's answer
        if ping is None:
            done.set()
        else:
            out.append(json.dumps({"ping": ping}).encode() + b"\n")

    def _write(self, run: str | None, name: str, doc: dict, out: list) -> None:
        if name == "start":
            with self._lock:
                self._runs[run] = _Run(run, self.spool_path(run))
        with self._lock:
            state = self._runs.get(run)
        if state is None:
            self._record(run, f"catalog writer got a {name!r} document of no known run ({run}); "
                              f"it was not stored")
            return
        try:
            line = json.dumps({"name": name, "doc": doc}, default=_jsonable)
        except (TypeError, ValueError) as exc:
            line = None
            state.journal_error = state.journal_error or f"the document {name!r} is not JSON ({_failure(exc)})"
            self._fail(state, state.journal_error)
        if line is not None:
            self._journal(state, line)
        if name == "start" and self._gone is not None:
            self._fail(state, self._gone)
        if state.failed is None and line is not None:
            if self.process is None:
                self._store.write(run, name, doc, self.batch_size_for(doc) if name == "start" else 0)
            else:
                batch = f'"batch": {self.batch_size_for(doc)}, ' if name == "start" else ""
                out.append(f'{{"run": {json.dumps(run)}, {batch}{line[1:]}\n'.encode())
        if name == "stop":
            if state.journal is not None:
                try:
                    state.journal.close()
                except OSError as exc:
                    state.journal_error = state.journal_error or _failure(exc)
            state.stopped = True
            if state.failed is not None or self.process is None:
                self._finish(state)              # in-process: stored and checked already

    def _send(self, data: bytes) -> None:
        try:
            self.process.send(data)
        except (OSError, ValueError) as exc:     # the child is gone (broken pipe, closed)
            self._process_gone(f"the catalog process is gone ({_failure(exc)})")

    def _journal(self, state: _Run, line: str) -> None:
        if state.journal_error is not None:
            return
        try:
            if state.journal is None:
                state.journal = open(state.journal_path, "a")
            state.journal.write(line + "\n")
        except (OSError, ValueError) as exc:
            state.journal_error = _failure(exc)
            logger.warning("run %s: cannot journal to %s (%s); a catalog failure now would lose "
                           "documents", state.uid, state.journal_path, state.journal_error)
            self._check_lost(state)

    # -- results (writer thread for an in-process catalog, the reply thread for a process) -------

    def _on_stored(self, run: str, failed: str | None, done: bool) -> None:
        with self._lock:
            state = self._runs.get(run)
        if state is None:
            if failed is not None:
                self._record(run, failed)
            return
        if failed is not None:
            self._fail(state, failed)
        if done and self.process is not None:
            self._finish(state)

    def _on_reply(self, message: dict) -> None:
        if "pong" in message:
            with self._lock:
                done = self._pings.pop(message["pong"], None)
            if done is not None:
                done.set()
        elif "run" in message:
            self._on_stored(message["run"], message.get("failed"), bool(message.get("done")))
        elif "exited" in message:
            self._process_gone(f"the catalog process exited (code {message['exited']}; log "
                               f"{self.process.log_path})")

    def _process_gone(self, why: str) -> None:
        """Every open run is left in its spool; later runs go to the spool only."""
        with self._lock:
            if self._gone is not None:
                return
            self._gone = why
            states = list(self._runs.values())
            pings, self._pings = list(self._pings.values()), {}
        for state in states:
            self._fail(state, why)
            if state.stopped:                        # its stop document was handed over
                self._finish(state)
        for done in pings:
            done.set()

    def _fail(self, state: _Run, why: str) -> None:
        """The catalog does not take run *state* (any more): its documents go on to its journal
        only, which stays as its spool; acquisition goes on (see the module docstring)."""
        if state.failed is not None:
            return
        state.failed = why
        with self._lock:
            self.spooled[state.uid] = state.journal_path
        if not self._check_lost(state):
            logger.error("run %s: %s; acquisition goes on, every document of the run is journaled to %s: "
                         "replay it into the catalog with `trxrd recover %s`", state.uid, why,
                         state.journal_path, state.journal_path)

    def _check_lost(self, state: _Run) -> bool:
        """Neither the catalog nor the journal takes the run's documents: they are being lost,
        so the run must stop (``CatalogWriteError`` on its next document). Reported once."""
        if state.failed is None or state.journal_error is None or state.lost:
            return state.lost
        state.lost = True
        self._record(state.uid, f"run {state.uid}: the catalog failed ({state.failed}) and the journal "
                                f"{state.journal_path} could not be written ({state.journal_error}): "
                                f"documents of this run are LOST")
        return True

    def _finish(self, state: _Run) -> None:
        with self._lock:
            if self._runs.pop(state.uid, None) is None:
                return
            waiters = list(state.waiters)
        if state.failed is None:
            state.journal_path.unlink(missing_ok=True)     # complete in the catalog
        else:
            self._check_lost(state)
        for done in waiters:
            done.set()

    def _record(self, run: str | None, message: str, cause: BaseException | None = None) -> None:
        """Keep an error for the producer of *run* to raise."""
        error = CatalogWriteError(message)
        error.__cause__ = cause
        with self._lock:
            self._errors.setdefault(run, []).append(error)
        logger.error("%s", message)


# ---------------------------------------------------------------------------------------------
# Recovery: spools back into the catalog


@dataclass
class Replay:
    """What ``replay_spool`` did with one spool. *outcome*: ``stored`` (the run was not in the
    catalog), ``replaced`` (a part of it was: that part was deleted, the whole run written from
    the spool), ``complete`` (the catalog had it all already: nothing written), ``refused``
    (the spool is unreadable, holds no stop document, or disagrees with the catalog) or ``failed``
    (the catalog failed again). The spool is removed after ``stored``, ``replaced`` and
    ``complete``; it stays after ``refused`` and ``failed``."""

    spool: Path
    outcome: str
    uid: str | None = None
    documents: int = 0                  # documents in the spool
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome in ("stored", "replaced", "complete")

    def __str__(self) -> str:
        run = f"run {self.uid}" if self.uid else "no run"
        detail = f": {self.detail}" if self.detail else ""
        return f"{self.spool}: {run}, {self.documents} documents, {self.outcome}{detail}"


def announce_spools(directory: Path | str) -> str | None:
    """A line naming the spools left in *directory* (runs the catalog did not take, kept by an
    earlier session) and the command that replays them; also logged as a warning. None if none.
    A session announces them at its start rather than replaying them: a replay writes the catalog
    (deleting a partly stored run first) and is the operator's call, e.g. between scans."""
    spools = sorted(Path(directory).glob("*.jsonl"))
    if not spools:
        return None
    line = (f"spool: {len(spools)} run(s) not in the catalog ({', '.join(p.stem for p in spools[:5])}"
            f"{', ...' if len(spools) > 5 else ''}): replay with `trxrd recover {Path(directory)}`")
    logger.warning("%s", line)
    return line


def spool_files(paths: Iterable[Path | str]) -> list[Path]:
    """The spools named by *paths*: files as given, folders for the ``*.jsonl`` they hold."""
    out = []
    for path in map(Path, paths):
        if path.is_dir():
            out += sorted(path.glob("*.jsonl"))
        elif path.is_file():
            out.append(path)
        else:
            raise ValueError(f"no spool at {path}")
    return out


def read_spool(path: Path | str) -> list[tuple[str, dict]]:
    """The documents of a spool (a ``CatalogWriter`` journal), in order. A last line cut short
    (the writing process died in the middle of it) is dropped with a warning; any other line that
    is not a document is a ``ValueError``."""
    path = Path(path)
    lines = path.read_text().splitlines()
    docs = []
    for number, line in enumerate(lines, 1):
        try:
            entry = json.loads(line)
            docs.append((str(entry["name"]), dict(entry["doc"])))
        except (ValueError, KeyError, TypeError) as exc:
            if number == len(lines):
                logger.warning("%s: its last line is cut short (%s); dropped", path, _failure(exc))
                break
            raise ValueError(f"{path}: line {number} is not a document ({_failure(exc)})") from None
    return docs


def _stream_counts(docs: list[tuple[str, dict]]) -> dict[str, int]:
    """Events per stream name in *docs*."""
    streams, counts = {}, {}
    for name, doc in docs:
        if name == "descriptor":
            streams[doc["uid"]] = doc.get("name", "primary")
            counts.setdefault(streams[doc["uid"]], 0)
        elif name in ("event", "event_page"):
            stream = streams.get(doc.get("descriptor"), "?")
            counts[stream] = counts.get(stream, 0) + (len(doc["seq_num"]) if name == "event_page" else 1)
    return counts


def replay_spool(path: Path | str, client, *, close_incomplete: bool = False,
                 storage: Path | str | None = None) -> Replay:
    """Write the run held by the spool *path* into the catalog *client*, idempotently.

    What the catalog already holds of that uid decides: nothing -> the run is written from the
    spool; a part (no stop document: the catalog failed mid-run) -> that part is deleted (the
    detector files it references stay) and the whole run written from the spool, so no document
    is stored twice; the whole run (its stop document, which the catalog writes last) -> nothing
    is written. The spool is removed once the run reads back complete, and kept when
    anything fails (``Replay.outcome``). Never raises for a bad spool or a failing catalog.

    A spool without a stop document belongs to a run still being written, or to a process that
    died: it is refused, unless *close_incomplete*, which stores it closed with
    ``exit_status="fail"`` and a reason naming the spool.

    *storage* is the catalog's writable data folder, given where this process may clean it (the
    embedded catalog's ``root/catalog/data``, which ``trxrd recover`` passes; a facility server's
    on its own host). Tiled writes a node's files before its database row, so a server (or
    catalog process) killed in between leaves files under ``storage/<uid>`` that no node owns,
    and every later attempt to create that node fails ("An array exists in store", HTTP 500).
    Once the catalog holds no part of the run, such leftovers are removed before the run is
    written. Without *storage* that replay fails, and its detail says what to remove.

    Replay in a process of its own, as ``trxrd recover`` does, between scans (an embedded catalog
    takes one writer at a time). Seen with an embedded catalog: while the process that replaced
    a partly stored run is still alive, another process may read that run without its events
    ("no such table": Tiled drops an event table its delete empties, and re-creates it); once
    the replaying process has exited, every reader sees the whole run.

    EXAMPLE::

        from trxrd.catalog import open_catalog, replay_spool
        cat = open_catalog(root="data")
        print(replay_spool("data/spool/3f2a9c1e.jsonl", cat))
        # .../3f2a9c1e.jsonl: run 3f2a9c1e-..., 412 documents, replaced: 180 events were stored
    """
    import uuid

    path = Path(path)
    try:
        docs = read_spool(path)
    except (OSError, ValueError) as exc:
        return Replay(path, "refused", detail=_failure(exc))
    starts = [doc for name, doc in docs if name == "start"]
    if len(starts) != 1 or docs[0][0] != "start":
        return Replay(path, "refused", documents=len(docs),
                      detail=f"a spool holds one run from its start document; this one has {len(starts)}")
    uid = starts[0]["uid"]
    result = Replay(path, "refused", uid=uid, documents=len(docs))
    counts = _stream_counts(docs)
    stops = [doc for name, doc in docs if name == "stop"]
    if not stops:
        if not close_incomplete:
            result.detail = ("no stop document: the run is still being written, or its process died "
                             "(`trxrd recover --close-incomplete` stores it closed as failed)")
            return result
        last = max((doc.get("time", 0.0) for _, doc in docs), default=starts[0]["time"])
        stops = [{"uid": str(uuid.uuid4()), "run_start": uid, "time": last, "exit_status": "fail",
                  "reason": f"recovered from {path}: the run's stop document was never emitted",
                  "num_events": counts}]
        docs = docs + [("stop", stops[0])]
    try:
        stored = client[uid]
    except KeyError:
        stored = None
    except Exception as exc:
        result.outcome, result.detail = "failed", f"the catalog cannot be read ({_failure(exc)})"
        return result
    replaced = ""
    if stored is not None:
        try:
            stored_stop = stored.metadata.get("stop")
            if stored_stop:
                if stored_stop.get("uid") != stops[0]["uid"]:
                    result.detail = "the catalog holds this run with another stop document: nothing written"
                    return result
                path.unlink()     # the stop document is written last, after every event
                result.outcome, result.detail = "complete", "the catalog holds the whole run already"
                return result
            partial = {stream: events_written(stored, stream) for stream in stored}
            stored.delete(recursive=True, external_only=False)     # managed data only: frames stay
        except Exception as exc:
            result.outcome, result.detail = "failed", f"the catalog failed ({_failure(exc)})"
            return result
        replaced = f"{sum(partial.values())} events were stored, without a stop document"
    leftover = None if storage is None else inside(storage, uid, "run folder")
    if leftover is not None and leftover.exists():     # no node owns it now: a crash's leftovers
        try:
            shutil.rmtree(leftover)
        except OSError as exc:
            result.outcome, result.detail = "failed", f"cannot remove {leftover} ({_failure(exc)})"
            return result
        logger.warning("run %s: removed %s, files no catalog node owned (left by a crash)", uid, leftover)
    reports = []
    store = _Store(client, lambda run, failed, done: reports.append((failed, done)))
    try:
        for name, doc in docs:
            store.write(uid, name, doc, MAX_BATCH_SIZE if name == "start" else 0)
            if any(failed for failed, _ in reports):
                break
    except Exception as exc:      # _Store reports the catalog's failures; this is a bug
        reports.append((f"replay failed ({_failure(exc)})", False))
    failed = next((failed for failed, _ in reports if failed), None)
    if failed is not None or not any(done for _, done in reports):
        result.outcome = "failed"
        result.detail = f"{failed or 'the run was not finished'}; the spool stays, replay it again"
        if storage is None and failed is not None and ("500" in failed or "exists in store" in failed):
            result.detail += (f" (if the server was killed while writing this run, files it left under "
                              f"<its data folder>/{uid} block it: remove them, or replay where that "
                              f"folder is reachable with `trxrd recover --storage DATA`)")
        return result
    path.unlink()
    result.outcome, result.detail = ("replaced", replaced) if replaced else ("stored", "")
    return result


def run_thermometers(cat, run) -> dict:
    """The thermometers ({hkl: ThermometerCalibration}) of a ``thermometer`` run, or of the one
    made from a heating-series *run*; ``ValueError`` when there is none."""
    import json as _json

    from tiled.queries import Key

    from . import datakeys as dk
    from .reduction.thermometry import ThermometerCalibration

    if run.start.get("plan_name") != dk.THERMOMETER_PLAN:
        linked = list(cat.search(Key(dk.RAW_UID) == run.start["uid"]).search(
            Key("plan_name") == dk.THERMOMETER_PLAN).values())
        if not linked:
            raise ValueError(f"run {run.start['uid'][:8]} ({run.start.get('plan_name')}) has no thermometer: "
                             "a temperature_series reduced with reflections makes one")
        run = linked[-1]
    if "calibration" not in run:
        raise ValueError(f"thermometer run {run.start['uid'][:8]} has no calibration (it ended: "
                         f"{run.stop.get('exit_status') if run.stop else 'not closed'})")
    table = run["calibration"].read()
    return {str(h): ThermometerCalibration.from_dict(_json.loads(str(c)))
            for h, c in zip(table["hkl"].values, table["calibration"].values)}
