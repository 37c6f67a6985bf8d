"""A callback on its own thread behind a bounded queue: the RunEngine only enqueues, so no
reduction, however slow, delays the RunEngine's loop (its suspenders must answer within 0.1 s).

bluesky's ``BufferingWrapper`` has the same idea, but its queue blocks the RunEngine when full
and offers no way to wait for the backlog; here a full queue never blocks: the run being
reduced is given up (its later documents are dropped and its stop document reaches the
reduction with ``exit_status="fail"`` and the reason, so the derived runs close as failed and
say how to re-reduce), and ``wait()`` returns once everything queued has been processed.

Batches: a target with an ``events(docs)`` method (``LiveIntegrator``) is handed the datum and
event documents waiting together, up to ``batch`` frames, in one call (read and integrated as one
batch); others get one document per call. Lag: ``weigh(name, doc)`` counts the frames a document
holds (0 for most); ``lag_frames`` is the frames queued and not processed yet, ``lag_s`` the age of
the oldest event not processed yet (from its ``time``), ``max_backlog`` the most documents that
ever waited.

EXAMPLE::

    from trxrd.reduction.callbacks.buffer import BufferedCallback
    slow = BufferedCallback(my_reduction, max_queued=50_000)
    RE.subscribe(slow)
    RE(count([det], 100))
    slow.wait(60)           # everything reduced
    slow.backlog            # 0
    slow.close()

    frames = BufferedCallback(integrator, batch=16, weigh=lambda name, doc: name == "event")
    frames.lag_frames, frames.lag_s        # frames waiting, age of the oldest (s)
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque

logger = logging.getLogger(__name__)


class BufferedCallback:
    """Calls ``target(name, doc)`` from a worker thread, in order (see module).

    Parameters
    ----------
    target : callable
        The callback to run off the caller's thread.
    max_queued : int
        Documents that may wait; beyond that the current run is given up.
    name : str
        Name of the worker thread (and in log messages).
    batch : int
        Frames (by *weigh*) handed over together to a target with ``events(docs)``; 1: none.
    weigh : callable, optional
        ``weigh(name, doc) -> int``, the frames in a document (called in the caller's thread);
        default: none counted.
    """

    BATCHED = ("datum", "datum_page", "event")

    def __init__(self, target, *, max_queued: int = 50_000, name: str = "reduction", batch: int = 1,
                 weigh=None):
        if max_queued < 10:
            raise ValueError(f"max_queued must be >= 10 documents, got {max_queued}")
        if int(batch) < 1:
            raise ValueError(f"batch must be >= 1 frame, got {batch}")
        self.target = target
        self.max_queued = int(max_queued)
        self.name = name
        self.batch = int(batch) if callable(getattr(target, "events", None)) else 1
        self._weigh = weigh
        self._queue: deque = deque()           # (name, doc, frames)
        self._queued_frames = 0
        self._working: list = []               # the documents being processed
        self._working_frames = 0
        self.max_backlog = 0                   # most documents waiting at once
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self._dropping: str | None = None          # uid of the run given up
        self._dropped_start = False                 # ... before its start document was queued
        self._current_run: str | None = None
        self.dropped = 0                            # documents dropped, all runs
        self.errors = 0                             # exceptions raised by the target
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    @property
    def backlog(self) -> int:
        """Documents queued and not yet processed."""
        return len(self._queue) + len(self._working)

    @property
    def lag_frames(self) -> int:
        """Frames (by *weigh*) queued or being processed."""
        return self._queued_frames + self._working_frames

    @property
    def lag_s(self) -> float:
        """Age (s) of the oldest event not processed yet (its ``time`` to now); 0 when caught up."""
        with self._cond:
            oldest = next((d["time"] for n, d in self._working if n == "event"), None)
            if oldest is None:
                oldest = next((d["time"] for n, d, _ in self._queue if n == "event"), None)
        return 0.0 if oldest is None else max(0.0, time.time() - oldest)

    def __call__(self, name: str, doc: dict) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError(f"{self.name}: closed, cannot take documents")
            if self._dropping is not None:
                if name == "stop" and doc.get("run_start") == self._dropping:
                    self._dropping = None
                    if self._dropped_start:
                        self.dropped += 1
                        return
                    self._queue.append((name, self._failed_stop(doc), 0))
                    self._cond.notify_all()
                    return
                if name != "start":           # a new run: reduce it if there is room again
                    self.dropped += 1
                    return
                self._dropping = None
            if len(self._queue) >= self.max_queued and name != "stop":
                self._dropped_start = name == "start"
                self._dropping = doc.get("uid") if name == "start" else self._current_run
                self.dropped += 1
                logger.error("%s: %d documents waiting: the reduction cannot keep up; it gives up run %s "
                             "(the raw run is stored complete; re-reduce it with `trxrd reduce`)",
                             self.name, len(self._queue), self._dropping)
                return
            if name == "start":
                self._current_run = doc.get("uid")
            frames = int(self._weigh(name, doc)) if self._weigh is not None else 0
            self._queue.append((name, doc, frames))
            self._queued_frames += frames
            self.max_backlog = max(self.max_backlog, self.backlog)
            self._cond.notify_all()

    def _failed_stop(self, doc: dict) -> dict:
        return {**doc, "exit_status": "fail",
                "reason": (f"live reduction fell behind by more than {self.max_queued} documents and "
                           f"gave up this run ({self.dropped} documents skipped); the raw run "
                           f"{doc.get('run_start')} is complete in the catalog: re-reduce it with "
                           f"`trxrd reduce {str(doc.get('run_start'))[:8]}`")}

    def wait(self, timeout: float | None = None) -> None:
        """Block until every document queued so far is processed; ``TimeoutError`` if not in time."""
        with self._cond:
            if not self._cond.wait_for(lambda: not self._queue and not self._busy, timeout):
                raise TimeoutError(f"{self.name}: {self.backlog} documents still to reduce after {timeout} s")

    def close(self, timeout: float | None = 300.0) -> None:
        """Process what is queued, then stop the thread. Idempotent."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _take(self) -> list:
        """The next document, or (batches) the datums and events waiting behind it up to
        ``batch`` frames; under the lock."""
        name, doc, frames = self._queue.popleft()
        docs, total = [(name, doc)], frames
        if self.batch > 1 and name in self.BATCHED:
            while self._queue and self._queue[0][0] in self.BATCHED and total + self._queue[0][2] <= self.batch:
                name, doc, frames = self._queue.popleft()
                docs.append((name, doc))
                total += frames
        self._queued_frames -= total
        self._working_frames = total
        return docs

    def _work(self) -> None:
        while True:
            with self._cond:
                self._working, self._working_frames = [], 0
                self._busy = False
                self._cond.notify_all()
                self._cond.wait_for(lambda: self._queue or self._closed)
                if not self._queue:
                    return                            # closed and drained
                docs = self._working = self._take()
                self._busy = True
            try:
                if len(docs) > 1 or (self.batch > 1 and docs[0][0] == "event"):
                    self.target.events(docs)
                else:
                    self.target(*docs[0])
            except Exception:
                self.errors += 1
                logger.exception("%s failed on %s", self.name, ", ".join(sorted({n for n, _ in docs})))
