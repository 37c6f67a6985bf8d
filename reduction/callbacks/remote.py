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

import json

import numpy as np


def _jsonable(value):
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    raise TypeError(f"cannot send a {type(value).__name__} in a document")


def dumps(doc: dict) -> bytes:
    """A document as JSON bytes (numpy values as lists/numbers)."""
    return json.dumps(doc, default=_jsonable).encode()


def loads(data: bytes) -> dict:
    return json.loads(data)


def _tcp(address: str) -> str:
    host, _, port = str(address).rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"0MQ address {address!r}: expected HOST:PORT, e.g. 127.0.0.1:5567")
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


def dispatcher(address: str):
    """A RemoteDispatcher reading JSON documents from the proxy's output *address*;
    subscribe callbacks to it, then ``start()`` (blocks)."""
    from bluesky.callbacks.zmq import RemoteDispatcher

    return RemoteDispatcher(_tcp(address), deserializer=loads)
