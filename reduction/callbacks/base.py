"""Base of the reduction callbacks: a DocumentRouter that publishes a derived run.

A failure inside a reduction callback must never abort the acquisition it watches: the error
is logged once, the derived run is closed with ``exit_status="fail"`` and its reason, and the
callback waits for the next raw run.

EXAMPLE::

    from trxrd.reduction.callbacks.base import DerivedRunPublisher

    class CountFrames(DerivedRunPublisher):          # one derived run per raw run
        def start(self, doc):
            self.open_derived({"plan_name": "count_frames", "raw_uid": doc["uid"]})
        def event(self, doc):
            self.emit_event("primary", {"seq": doc["seq_num"]},
                            {"seq": {"source": "count_frames", "dtype": "integer", "shape": []}})
        def stop(self, doc):
            self.close_derived()
"""
from __future__ import annotations

import logging
import time

from event_model import DocumentRouter, compose_run

logger = logging.getLogger(__name__)


class DerivedRunPublisher(DocumentRouter):
    """Routes incoming documents to ``start``/``descriptor``/``event``/``stop`` (subclasses)
    and emits the documents of one derived run per incoming run to its subscribers."""

    def __init__(self):
        super().__init__()
        self._subscribers: list = []
        self._bundle = None           # ComposeRunBundle of the derived run being published
        self._streams: dict = {}      # stream name -> ComposeDescriptorBundle
        self._failed: str | None = None

    def subscribe(self, callback):
        """Send every derived document to *callback(name, doc)*; returns the callback."""
        self._subscribers.append(callback)
        return callback

    def emit(self, name: str, doc: dict) -> None:
        for callback in self._subscribers:
            callback(name, doc)

    def __call__(self, name, doc, validate=False):
        if name == "start":
            self._failed = None
        elif self._failed is not None and name != "stop":
            return None
        try:
            return super().__call__(name, doc, validate)
        except Exception as exc:
            if self._bundle is None:          # nothing of ours to close: the caller hears of it
                raise
            self._failed = f"{type(exc).__name__}: {exc}"
            logger.exception("%s failed on a %s document; the derived run %s is closed as failed "
                             "and the acquisition goes on", type(self).__name__, name,
                             self._bundle.start_doc["uid"])
            try:
                self.close_derived("fail", self._failed)
            except Exception:
                logger.exception("closing the failed derived run failed too")
            return None

    # -- derived run ---------------------------------------------------------------------------
    def open_derived(self, metadata: dict, *, time: float | None = None) -> dict:
        """Emit the start document of a new derived run. Dated by default just before the
        raw run's start (*time*), so the catalog lists it before its raw run and ``cat[-1]``
        stays the last acquisition."""
        self._bundle = compose_run(metadata=metadata, time=time)
        self._streams = {}
        self.emit("start", self._bundle.start_doc)
        return self._bundle.start_doc

    def emit_event(self, stream: str, data: dict, data_keys: dict) -> None:
        """Emit one event in *stream* (its descriptor is emitted first, from *data_keys*, and
        validated; the events are not, their keys come from that descriptor)."""
        if stream not in self._streams:
            self._streams[stream] = self._bundle.compose_descriptor(name=stream, data_keys=data_keys)
            self.emit("descriptor", self._streams[stream].descriptor_doc)
        now = time.time()
        # not validated against the JSON schema: it walks every array element (ms per event)
        self.emit("event", self._streams[stream].compose_event(
            data=data, timestamps={key: now for key in data}, validate=False))

    def close_derived(self, exit_status: str = "success", reason: str = "") -> None:
        """Emit the stop document of the derived run (once)."""
        if self._bundle is None:
            return
        bundle, self._bundle = self._bundle, None
        self.emit("stop", bundle.compose_stop(exit_status=exit_status, reason=reason))

    @property
    def failure(self) -> str | None:
        """Why the current (or last) derived run was closed as failed; None if it was not."""
        return self._failed

    @property
    def derived_uid(self) -> str | None:
        return None if self._bundle is None else self._bundle.start_doc["uid"]
