"""The run catalog: a databroker v2 / Tiled catalog of Bluesky runs, and the RunEngine callback
that writes into it.

By default the catalog is *embedded*: an SQLite catalog under the data directory, served
in-process (no server to run). Point ``TRXRD_CATALOG`` (or ``uri=``) at a Tiled server to use a
shared one instead; the returned client is the same kind of object either way.

Layout of an embedded catalog under ``root`` (default ``$TRXRD_DATA``, ``./data``)::

    root/catalog/catalog.db      run metadata (SQLite)
    root/catalog/tables.db       event tables (SQLite)
    root/catalog/data/           other arrays written by Tiled
    root/frames/<detector>/      detector HDF5 files (readable storage: all of root)
    root/spool/<uid8>.jsonl      every document of a run the catalog failed to take

Only one process may *write* an embedded catalog at a time; any number may read it (SQLite
write-ahead log), e.g. ``trxrd runs`` while a scan is running. Several writers need a Tiled
server (PostgreSQL behind it).

EXAMPLE::

    from bluesky import RunEngine
    from bluesky.plans import count
    from ophyd import Signal
    from trxrd.acquisition.catalog import CatalogWriter, open_catalog

    det = Signal(name="det", value=1.0)

    cat = open_catalog()                    # ./data/catalog, or $TRXRD_CATALOG
    RE = RunEngine({})
    writer = CatalogWriter(cat)             # spools to ./data/spool if the catalog fails
    RE.subscribe(writer)
    uid, = RE(count([det], 5))
    run = cat[uid]                          # or cat[-1], cat[scan_id], cat["3f2a9"]
    run.start["plan_name"], run["primary"]["det"].read()
    writer.close()
"""
from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections import deque
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from urllib.parse import urlparse

from . import settings

logger = logging.getLogger(__name__)

RUNS_SPEC = {"name": "CatalogOfBlueskyRuns", "version": "3.0"}

# Batching. Every write to the catalog (a table append; for a detector also a data-source
# update) costs ~35 ms of CPU in this process with the embedded catalog, whatever the number of
# rows, and a reader sees events only once they are written. So the batch is chosen per run from
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


def catalog_dir(root: Path | str | None = None) -> Path:
    """Folder of the embedded catalog under *root* (default the data directory)."""
    return Path(root if root is not None else settings.data_dir()).expanduser().resolve() / "catalog"


def open_catalog(uri: str | None = None, *, api_key: str | None = None, root: Path | str | None = None,
                 readable: Iterable[Path | str] = ()):
    """The catalog of runs: a Tiled ``CatalogOfBlueskyRuns`` client (``cat[-1]``, ``cat[uid]``,
    ``cat[scan_id]``, ``cat.search(...)``).

    ``uri`` (default ``$TRXRD_CATALOG``) is ``http(s)://host:port[/path]`` of a Tiled server
    (API key from ``api_key`` or ``$TRXRD_API_KEY``); with neither set, the embedded catalog
    under ``root`` (default ``$TRXRD_DATA``) is opened, and created on first use. The embedded
    catalog may read files anywhere under ``root`` and the ``readable`` folders.

    EXAMPLE::

        from trxrd.acquisition.catalog import open_catalog
        cat = open_catalog()                                  # embedded, ./data/catalog
        cat = open_catalog(root="/data/2026-11-beamtime")     # embedded elsewhere
        cat = open_catalog("http://tiled.example:8000", api_key="secret")
        run = cat[-1]
        run.start["sample"], run["primary"]["pilatus_image"].read().shape
    """
    if uri is None:
        uri = os.environ.get("TRXRD_CATALOG") or None
    if uri is None:
        return _open_embedded(root, readable)
    parsed = urlparse(uri)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"catalog URI must be http(s)://host[:port][/path] of a Tiled server, "
                         f"got {uri!r} (leave it unset for the embedded catalog)")
    from tiled.client import from_uri

    api_key = api_key if api_key is not None else os.environ.get("TRXRD_API_KEY") or None
    try:
        client = from_uri(uri, api_key=api_key)
    except Exception as exc:   # httpx errors, auth errors: one line for the user
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"cannot open the catalog at {uri}: {first_line}") from exc
    return _check_runs_catalog(client, uri)


def _open_embedded(root, readable):
    from tiled.catalog import from_uri as catalog_from_uri
    from tiled.client import Context, from_context
    from tiled.server.app import build_app

    root = Path(root if root is not None else settings.data_dir()).expanduser().resolve()
    folder = catalog_dir(root)
    (folder / "data").mkdir(parents=True, exist_ok=True)
    database = folder / "catalog.db"
    readable_storage = [str(root)] + [str(Path(p).expanduser().resolve()) for p in readable]
    adapter = catalog_from_uri(
        f"sqlite:///{database}",
        writable_storage=[str(folder / "data"), f"sqlite:///{folder / 'tables.db'}"],
        readable_storage=readable_storage,
        # `tiled catalog init` runs in a subprocess (seconds): only when there is no catalog yet.
        init_if_not_exists=not database.exists(),
        specs=[RUNS_SPEC],
    )
    context = Context.from_app(build_app(adapter, serialization_registry=_serializers()))
    return _check_runs_catalog(from_context(context), str(database))


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


def events_written(run, stream: str = "primary") -> int:
    """Number of events of *stream* in the catalog now; also while the run is being written.

    Reads the stream's event table (not a column array: a column node fetched before a batch
    is appended fails to read afterwards, with HTTP 500 retried for a long time by the client).
    For the same reason, fetch a column node again (``cat[uid]["primary"]["i0"]``) right before
    reading it while its run is open.

    EXAMPLE::

        from trxrd.acquisition.catalog import events_written, open_catalog
        events_written(open_catalog()[-1])      # e.g. 120 of a 400-point scan in progress
    """
    try:
        table = run[stream].base["internal"]
    except KeyError:     # no such stream, or nothing written to it yet
        return 0
    return len(table.read(["seq_num"]))


# ---------------------------------------------------------------------------------------------
# Writing


def _one_frame_per_datum(resource: dict) -> dict:
    """TiledWriter patch for ophyd area-detector resources: ``frame_per_point == 1`` makes the
    writer add a length-1 axis, so frames would read back ``(N, 1, ny, nx)``. One frame per
    datum is the default meaning, so drop it; and chunk one frame per block, as the detector
    writes them, so a reader fetching one frame does not pull the whole scan."""
    kwargs = resource.get("resource_kwargs", {})
    if str(resource.get("spec", "")).upper().startswith("AD_") and kwargs.get("frame_per_point") == 1:
        kwargs.pop("frame_per_point")
        kwargs.setdefault("chunk_shape", [1])
    return resource


def _normalizer_class():
    from bluesky_tiled_plugins.writing.tiled_writer import RunNormalizer
    from event_model import DocumentNames, schema_validators

    class _Normalizer(RunNormalizer):
        """TiledWriter's normalizer without re-validating every event against the JSON schema
        (~0.4 ms each): event-model validated it when the RunEngine composed it, and the
        normalizer only drops keys from it. Every other document is still validated."""

        def emit(self, name, doc):
            if name not in (DocumentNames.event, "event"):
                schema_validators[name].validate(doc)
            self.dispatcher.process(name, doc)

    return _Normalizer


def _jsonable(value):
    """numpy values in documents, for the JSONL spool."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


_TILED_WRITER_LOGGER = "bluesky_tiled_plugins.writing.tiled_writer"


class _ErrorCapture(logging.Handler):
    """TiledWriter's backup wrapper logs (does not raise) an error and then routes the whole run
    to the JSONL spool: catch those log records from our writer thread."""

    def __init__(self, thread_ident_getter, sink):
        super().__init__(level=logging.ERROR)
        self._thread_ident = thread_ident_getter
        self._sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self._thread_ident() and record.exc_info:
            self._sink(record.exc_info[1], spooling=record.getMessage().startswith("Backup callback"))


class CatalogWriter:
    """RunEngine callback that stores every document in the catalog from one background thread.

    ``__call__`` only queues the document, so the RunEngine does not wait on the catalog per
    event; on a run's ``stop`` document it waits until the whole run is written and checked,
    so when ``RE(...)`` returns, ``cat[uid]`` (and ``cat[-1]``) holds the complete run.

    Documents go to ``bluesky_tiled_plugins.TiledWriter`` (one per run), which turns ophyd
    ``AD_HDF5`` resource/datum documents into references to the HDF5 files: frames read back
    with ``run["primary"]["<det>_image"].read()`` as ``(N, ny, nx)``. Events are written in
    batches so that live readers see a run as it goes: ``batch_size=None`` picks it per run
    from ``num_points`` (see ``batch_size_for``), an int fixes it.

    Nothing is lost silently: if the catalog fails, TiledWriter writes every document of the
    run to ``backup_directory/<uid8>.jsonl`` and this callback raises ``CatalogWriteError``
    (naming that file) on its next call, at the latest on the run's stop document.
    ``flush(timeout)`` waits until everything queued is handed over; ``close()`` flushes and
    stops the thread.

    EXAMPLE::

        from trxrd.acquisition.catalog import CatalogWriter, open_catalog
        cat = open_catalog()
        writer = CatalogWriter(cat)                 # spool: $TRXRD_DATA/spool
        token = RE.subscribe(writer)
        RE(count([pilatus, i0], 10))
        cat[-1]["primary"]["pilatus_image"].read().shape    # (10, 619, 487)
        RE.unsubscribe(token); writer.close()
    """

    def __init__(self, client, *, batch_size: int | None = None,
                 backup_directory: Path | str | None = None,
                 stop_timeout_s: float = DEFAULT_STOP_TIMEOUT_S, max_latency_s: float = 0.5,
                 max_queued: int = 100_000):
        from event_model import RunRouter

        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 or None (per run), got {batch_size}")
        if not stop_timeout_s > 0:
            raise ValueError(f"stop_timeout_s must be > 0, got {stop_timeout_s}")
        if backup_directory is None:
            backup_directory = settings.data_dir() / "spool"
        self.backup_directory = Path(backup_directory).expanduser().resolve()
        self.backup_directory.mkdir(parents=True, exist_ok=True)
        self.client = client
        self.batch_size = None if batch_size is None else int(batch_size)
        self.stop_timeout_s = float(stop_timeout_s)
        self.max_latency_s = float(max_latency_s)
        self._router = RunRouter([self._factory])      # used by the writer thread only
        self._writing_uid: str | None = None            # run of the document being written
        # Hand-off: the RunEngine appends; the writer thread is woken once per batch of
        # documents (or after max_latency_s, or by a stop document), not per document: with a
        # CPU-bound RunEngine every wake-up is a GIL hand-over that costs the RunEngine time.
        self._max_queued = int(max_queued)
        self._pending: deque = deque()
        self._cond = threading.Condition()
        self._wake = False
        self._lock = threading.Lock()
        self._errors: list[CatalogWriteError] = []      # not yet raised to the caller
        self._reported: set[tuple] = set()             # (uid, kind) of failures recorded
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="CatalogWriter", daemon=True)
        self._capture = _ErrorCapture(lambda: self._thread.ident, self._record_tiled_error)
        logging.getLogger(_TILED_WRITER_LOGGER).addHandler(self._capture)
        self._thread.start()

    def batch_size_for(self, start: dict) -> int:
        """Events per catalog write for the run of this start document."""
        if self.batch_size is not None:
            return self.batch_size
        num_points = start.get("num_points")
        if isinstance(num_points, int) and not isinstance(num_points, bool) and num_points > 0:
            return max(1, min(MAX_BATCH_SIZE, math.ceil(num_points / RUN_UPDATES)))
        return DEFAULT_BATCH_SIZE

    # -- RunEngine side ------------------------------------------------------------------------

    def __call__(self, name: str, doc: dict) -> None:
        if self._closed:
            raise RuntimeError("CatalogWriter is closed")
        self._put((name, doc), wake=name == "stop")     # queued first: an error never loses it
        if name == "stop":
            done = self._enqueue_marker()
            if not done.wait(self.stop_timeout_s):
                raise CatalogWriteError(
                    f"run {doc['run_start']}: the catalog writer did not finish within "
                    f"{self.stop_timeout_s} s of the stop document; it goes on in the background")
        self._raise_pending()

    def flush(self, timeout: float = DEFAULT_STOP_TIMEOUT_S) -> None:
        """Wait until every document queued so far is handed to TiledWriter (a run still open
        keeps its last partial batch until its stop document); raise a pending writer error."""
        if self._thread.is_alive() and not self._enqueue_marker().wait(timeout):
            raise TimeoutError(f"catalog writer still busy after {timeout} s "
                               f"({len(self._pending)} documents queued)")
        self._raise_pending()

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
            logging.getLogger(_TILED_WRITER_LOGGER).removeHandler(self._capture)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def spool_path(self, uid: str) -> Path:
        """The JSONL file a failed run is backed up to (TiledWriter names it by the uid)."""
        return self.backup_directory / f"{uid.split('-')[0]}.jsonl"

    def _enqueue_marker(self) -> threading.Event:
        done = threading.Event()
        self._put(done, wake=True)
        return done

    def _put(self, item, wake: bool) -> None:
        with self._cond:
            while len(self._pending) >= self._max_queued and self._thread.is_alive():
                self._cond.wait(1.0)                 # back-pressure, never drop
            self._pending.append(item)
            if wake or len(self._pending) >= (self.batch_size or DEFAULT_BATCH_SIZE):
                self._wake = True
                self._cond.notify_all()

    def _raise_pending(self) -> None:
        with self._lock:
            if not self._errors:
                return
            errors, self._errors = self._errors, []
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
            for item in items:
                if item is None:
                    return
                if isinstance(item, threading.Event):
                    item.set()
                    continue
                self._write(*item)

    def _factory(self, name: str, start: dict):
        from bluesky_tiled_plugins import TiledWriter

        writer = TiledWriter(self.client, batch_size=self.batch_size_for(start),
                             backup_directory=str(self.backup_directory),
                             patches={"resource": _one_frame_per_datum},
                             normalizer=_normalizer_class())
        uid = start["uid"]

        def write(name, doc):
            self._writing_uid = uid
            writer(name, doc)

        return [write], []

    def _write(self, name: str, doc: dict) -> None:
        try:
            self._router(name, doc)
            if name == "stop":
                self._check_stored(doc["run_start"])
        except Exception as exc:    # escaped TiledWriter's own backup: spool it ourselves
            self._spool_unwritten(name, doc, exc)

    def _record(self, uid: str | None, message: str, cause: BaseException | None = None,
                kind: str = "catalog") -> None:
        """Keep an error for the RunEngine side to raise; once per run and kind."""
        with self._lock:
            if uid is not None:
                if (uid, kind) in self._reported:
                    return
                self._reported.add((uid, kind))
            error = CatalogWriteError(message)
            error.__cause__ = cause
            self._errors.append(error)
        logger.error("%s", message)

    def _record_tiled_error(self, exc: BaseException, spooling: bool) -> None:
        uid = self._writing_uid or "?"
        if spooling:
            self._record(uid, f"run {uid}: writing the spool {self.spool_path(uid)} failed too "
                              f"({type(exc).__name__}: {exc}): documents of this run are LOST", exc,
                         kind="spool")
        else:
            self._record(uid, f"run {uid}: catalog write failed ({type(exc).__name__}: {exc}); "
                              f"every document of the run goes to {self.spool_path(uid)}", exc)

    def _check_stored(self, uid: str) -> None:
        """After a stop document: the run must be in the catalog with its stop document."""
        if (uid, "catalog") in self._reported:
            return
        spool = self.spool_path(uid)
        where = f"see {spool}" if spool.exists() else f"and there is no spool file {spool}"
        try:
            stored = self.client[uid].metadata.get("stop")
        except Exception as exc:
            self._record(uid, f"run {uid}: not readable back from the catalog after its stop "
                              f"document ({type(exc).__name__}: {exc}); {where}", exc)
            return
        if not stored:
            self._record(uid, f"run {uid}: the catalog has no stop document for it; the run is "
                              f"incomplete there; {where}")

    def _spool_unwritten(self, name: str, doc: dict, exc: Exception) -> None:
        path = self.backup_directory / f"unwritten-{datetime.now():%Y%m%d}.jsonl"
        try:
            with open(path, "a") as f:
                f.write(json.dumps({"name": name, "doc": doc}, default=_jsonable) + "\n")
            where = f"the document is in {path}"
        except (OSError, TypeError, ValueError) as spool_exc:
            where = f"and it could NOT be spooled to {path} ({spool_exc}): it is lost"
        uid = doc.get("run_start") or doc.get("uid") if name in ("start", "stop") else self._writing_uid
        self._record(uid, f"catalog writer failed on a {name!r} document of run {uid} "
                          f"({type(exc).__name__}: {exc}); {where}", exc, kind="unwritten")
