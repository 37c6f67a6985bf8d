"""A callback on its own thread behind a bounded queue: the RunEngine only enqueues, so no
reduction, however slow, delays the RunEngine's loop (its suspenders must answer within 0.1 s).

bluesky's ``BufferingWrapper`` has the same idea, but its queue blocks the RunEngine when full
and offers no way to wait for the backlog; here a full queue never blocks: the run being
reduced is given up (its later documents are dropped and its stop document reaches the
reduction with ``exit_status="fail"`` and the reason, so the derived runs close as failed and
say how to re-reduce), and ``wait()`` returns once everything queued has been processed.

EXAMPLE::

    from trxrd.reduction.callbacks.buffer import BufferedCallback
    slow = BufferedCallback(my_reduction, max_queued=50_000)
    RE.subscribe(slow)
    RE(count([det], 100))
    slow.wait(60)           # everything reduced
    slow.backlog            # 0
    slow.close()
"""
from __future__ import annotations

import logging
import threading
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
    """

    def __init__(self, target, *, max_queued: int = 50_000, name: str = "reduction"):
        if max_queued < 10:
            raise ValueError(f"max_queued must be >= 10 documents, got {max_queued}")
        self.target = target
        self.max_queued = int(max_queued)
        self.name = name
        self._queue: deque = deque()
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
        return len(self._queue) + (1 if self._busy else 0)

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
                    self._queue.append((name, self._failed_stop(doc)))
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
            self._queue.append((name, doc))
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

    def _work(self) -> None:
        while True:
            with self._cond:
                self._busy = False
                self._cond.notify_all()
                self._cond.wait_for(lambda: self._queue or self._closed)
                if not self._queue:
                    return                            # closed and drained
                name, doc = self._queue.popleft()
                self._busy = True
            try:
                self.target(name, doc)
            except Exception:
                self.errors += 1
                logger.exception("%s failed on a %s document", self.name, name)
