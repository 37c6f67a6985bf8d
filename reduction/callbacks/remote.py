"""Live reduction in a process of its own, fed with the RunEngine's documents over 0MQ:
bluesky's Publisher -> Proxy -> RemoteDispatcher, with documents as JSON (no pickle on the
socket) and every socket on loopback unless an address says otherwise.

EXAMPLE::

    # the session (RunEngine process)
    from trxrd.reduction.callbacks.remote import publish_documents
    publish_documents(RE, "127.0.0.1:5567")
    # a shell:   trxrd proxy --in 127.0.0.1:5567 --out 127.0.0.1:5568
    # another:   trxrd live --zmq 127.0.0.1:5568 --poni waxs.poni --mask waxs_mask.edf --window 1.72:2.04
"""
from __future__ import annotations

import ipaddress
import json
import logging
import re

import numpy as np

log = logging.getLogger(__name__)


def _jsonable(value):
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    raise TypeError(f"cannot send a {type(value).__name__} in a document")


def dumps(doc: dict) -> bytes:
    """A document as JSON bytes (numpy values as lists/numbers)."""
    return json.dumps(doc, default=_jsonable).encode()


def loads(data: bytes) -> dict:
    """A document from JSON bytes; ``ValueError`` for anything else (bad JSON, a pickle, not
    UTF-8, a JSON value that is not an object, nesting or integers too deep to parse)."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:      # JSONDecodeError, UnicodeDecodeError, huge ints
        raise ValueError(f"not a JSON document ({str(exc)[:200]})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"a document must be a JSON object, got {type(doc).__name__}")
    return doc


_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")


def _tcp(address: str) -> str:
    """``tcp://HOST:PORT`` of a ``HOST:PORT`` address; ``ValueError`` (one line) for a port
    outside 1..65535 or a host that is neither ``*``, an IP address nor a host name."""
    host, _, port = str(address).rpartition(":")
    if not host or not port:
        raise ValueError(f"0MQ address {address!r}: expected HOST:PORT, e.g. 127.0.0.1:5567")
    if not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535:
        raise ValueError(f"0MQ address {address!r}: the port must be a number in 1..65535, got {port!r}")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        if host != "*" and not _HOSTNAME.fullmatch(host):
            raise ValueError(f"0MQ address {address!r}: {host!r} is not an IP address or a host name") from None
    return f"tcp://{host}:{port}"


def publisher(address: str):
    """A bluesky Publisher sending JSON documents to the proxy's input *address*."""
    from bluesky.callbacks.zmq import Publisher

    return Publisher(_tcp(address), serializer=dumps)


def publish_documents(RE, address: str = "127.0.0.1:5567") -> int:
    """Subscribe a JSON Publisher to *RE*; returns the subscription token."""
    return RE.subscribe(publisher(address))


def run_proxy(in_address: str = "127.0.0.1:5567", out_address: str = "127.0.0.1:5568") -> None:
    """bluesky's 0MQ proxy on these addresses (runs until interrupted)."""
    from bluesky.callbacks.zmq import Proxy

    Proxy(in_address=_tcp(in_address), out_address=_tcp(out_address)).start()


# document name -> fields that must be non-empty strings
_ID_FIELDS = {"start": ("uid",), "descriptor": ("uid", "run_start"), "event": ("uid", "descriptor"),
              "stop": ("uid", "run_start"), "resource": ("uid",), "datum": ("datum_id", "resource"),
              "event_page": ("descriptor",), "datum_page": ("resource",)}
_ID_LENGTH = 256


class DocumentGate:
    """What a process fed over the network lets through to its callbacks: well-formed documents
    of runs it saw start, in order. ``check(message)`` returns (name, doc) or raises
    ``ValueError`` saying why the message is skipped; it keeps the open runs and their streams.

    EXAMPLE::

        gate = DocumentGate()
        gate.check(b" start " + dumps({"uid": "a1", "time": 0.0}))     # ('start', {...})
        gate.check(b" event {}")      # ValueError: event without 'uid'
    """

    def __init__(self, prefix: bytes = b""):
        self.prefix = prefix
        self.runs: set[str] = set()             # open runs (start seen, stop not yet)
        self.descriptors: dict[str, str] = {}   # descriptor uid -> its run

    def check(self, message: bytes) -> tuple[str, dict] | None:
        """(name, doc) of a well-formed document, None for another prefix's message."""
        from event_model import DocumentNames

        parts = bytes(message).split(b" ", 2)
        if len(parts) != 3:
            raise ValueError("a message is PREFIX NAME DOCUMENT")
        prefix, raw_name, payload = parts
        if self.prefix and prefix != self.prefix:
            return None
        name = raw_name.decode("ascii", errors="replace")
        if name not in DocumentNames.__members__:
            raise ValueError(f"unknown document name {name[:40]!r}")
        doc = loads(payload)
        for field in _ID_FIELDS.get(name, ()):
            value = doc.get(field)
            if not isinstance(value, str) or not value or len(value) > _ID_LENGTH:
                raise ValueError(f"{name} without a valid {field!r} ({str(value)[:40]!r})")
        if name == "start":
            self.runs.add(doc["uid"])
        elif name == "descriptor":
            if doc["run_start"] not in self.runs:
                raise ValueError(f"descriptor {doc['uid'][:8]} of a run that did not start")
            self.descriptors[doc["uid"]] = doc["run_start"]
        elif name in ("event", "event_page"):
            if doc["descriptor"] not in self.descriptors:
                raise ValueError(f"{name} before its descriptor {doc['descriptor'][:8]}")
            if not isinstance(doc.get("data"), dict):
                raise ValueError(f"{name} without a 'data' object")
        elif name == "stop":
            if doc["run_start"] not in self.runs:
                raise ValueError(f"stop of a run that did not start ({doc['run_start'][:8]})")
            self.runs.discard(doc["run_start"])
            self.descriptors = {k: v for k, v in self.descriptors.items() if v != doc["run_start"]}
        return name, doc


def dispatcher(address: str):
    """A RemoteDispatcher reading JSON documents from the proxy's output *address*;
    subscribe callbacks to it, then ``start()`` (blocks). A malformed or out-of-order message is
    logged and skipped (``DocumentGate``), and a callback that raises is logged, never stops it."""
    from bluesky.callbacks.zmq import RemoteDispatcher
    from event_model import DocumentNames

    class CheckedDispatcher(RemoteDispatcher):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.gate = DocumentGate(self._prefix)
            self.cb_registry.ignore_exceptions = True      # one failing callback: the others still run

        async def _poll(self):
            while True:
                message = await self._socket.recv()
                try:
                    checked = self.gate.check(message)
                except ValueError as exc:
                    log.warning("skipped a message from %s: %s", self.address, exc)
                    continue
                if checked is not None:
                    self.process(DocumentNames[checked[0]], checked[1])

        def process(self, name, doc):
            for exc, _ in self.cb_registry.process(name, name.name, doc):
                log.warning("a callback failed on a %s document (the document is skipped there): %r",
                            name.name, exc)

    return CheckedDispatcher(_tcp(address), deserializer=loads)
