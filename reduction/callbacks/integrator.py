"""Live azimuthal integration: every new frame of a run -> I(q), published as a reduced run.

The frames are read through the run's own resource/datum documents (the detector's HDF5 file,
as the catalog reads it, while the detector still writes it: SWMR); events that already carry
the frame (a replay of a stored run) are used as they are.

Batches: frames are integrated in batches (``AzimuthalIntegration.integrate_many``): the frames of
one event (a streaming detector's datum references N frames) and of the events waiting behind it
(``events``: ``BufferedCallback`` hands over what is queued, up to ``max_batch_frames`` frames) are
read in one go from the file and integrated together; the work per frame stays constant.

Streamed events (an image of N frames): every frame is integrated (normalised by the event's I0,
which the detector gates over the N frames) and the event's pattern is their mean, with the
Poisson sigma of the mean ``sqrt(sum sigma_k^2) / N``: one reduced event per raw event, in the
same units as a single frame's, so the pump-probe chain pairs events as before; ``n_frames``
says how many frames the event holds.

Lag: every reduced event records ``latency`` (s), from the raw event's time (its frames are in the
file) to its result; ``latencies`` keeps the last ``RECENT_LATENCIES``, ``frames_total`` counts every frame
reduced since the integrator was made. Which image to reduce: the one the run's plan names in its start document
(``trxrd.datakeys.KEY_MAP``) under *image_field* (``image``: WAXS, ``saxs_image``: SAXS), else
``image_key``. For each raw run with that image, one
reduced run is emitted to the subscribers (catalog writer, live pump-probe): its start document
links the raw run (``raw_uid``) and records the calibration; its ``primary`` stream has one event
per frame with ``q`` (A^-1), ``intensity``, ``sigma`` (Poisson, 1 sigma), the raw sequence number and time
and the pump-probe fields of the raw event under their ``trxrd.datakeys`` names (``delay``,
``role``, ``i0``, ``fluence``, ...), ``n_frames`` and ``latency``. I0 normalises the frame when the
run records it.

EXAMPLE::

    from trxrd.reduction.callbacks import LiveIntegrator
    integrator = LiveIntegrator("waxs.poni", mask="waxs_mask.edf", npt=1000)
    integrator.subscribe(writer)                # the catalog: reduced runs stored, linked
    for name, doc in documents:                 # of a run (live: through LiveReduction's thread)
        integrator(name, doc)
    reduced = cat.search(Key("raw_uid") == raw_uid)
"""
from __future__ import annotations

import logging
import os
import time
from collections import deque
from pathlib import Path

import numpy as np

from ... import datakeys as dk
from ..integrate import AzimuthalIntegration
from .base import DerivedRunPublisher
from .handlers import HANDLERS

logger = logging.getLogger(__name__)

# Derived runs are dated this much before their raw run, so the catalog's newest run
# (``cat[-1]``) stays the last acquisition and its reductions sort just before it.
DERIVED_TIME_OFFSET_S = 1e-3
# Raw start-document fields copied into the reduced start document.
# Fields of the reduced events beside trxrd.datakeys' (this module writes them, the benchmarks read them).
N_FRAMES = "n_frames"          # frames integrated into the event (a streaming detector's N)
LATENCY = "latency"            # s from the raw event's time to its result
RECENT_LATENCIES = 1_000       # latencies kept (the most recent events): memory flat over a night
COPY_START = ("sample", dk.REFERENCE, "reference_delay_ps", "num_points", "plan_args", "spot_fwhm_um",
              "pump_wavelength_nm", "time_zero_mm", dk.KEY_MAP)


class LiveIntegrator(DerivedRunPublisher):
    """Integrates the frames of ``image_key`` and publishes I(q) as a reduced run (see module).

    Parameters
    ----------
    poni, mask, npt
        The calibration (``AzimuthalIntegration``).
    engine : {"trxrd", "cuda"}
        Who integrates: trxrd's engine on the CPU cores, or on an NVIDIA GPU (CuPy).
    image_key : str
        The image of runs that do not name theirs in ``trxrd_keys``.
    image_field : {"image", "saxs_image"}
        Which image of the run's key map.
    stream : str
        The raw stream reduced.
    root_map : dict, optional
        Resource roots moved since the run (as event-model's Filler takes it).
    max_batch_frames : int
        Frames integrated together at most (memory: 10 MB a Pilatus 2M frame, twice).
    """

    def __init__(self, poni, mask=None, *, npt: int = 1000, image_key: str = "pilatus_image",
                 image_field: str = "image", stream: str = "primary", root_map: dict | None = None,
                 max_batch_frames: int = 16, engine: str = "trxrd"):
        super().__init__()
        self.integration = AzimuthalIntegration(poni, mask=mask, npt=npt, engine=engine)
        self.poni = Path(poni).resolve()
        self.mask = None if mask is None or not isinstance(mask, (str, Path)) else Path(mask).resolve()
        self.image_key = image_key          # for runs that do not name their image
        self.image_field = image_field      # which image of the run's KEY_MAP
        self.stream = stream
        if int(max_batch_frames) < 1:
            raise ValueError(f"max_batch_frames must be >= 1, got {max_batch_frames}")
        self.max_batch_frames = int(max_batch_frames)
        self._keys: dict[str, str] = {}     # field -> raw data key, of the current run
        self._image: str | None = None
        self._root_map = root_map or {}
        self._resources: dict[str, dict] = {}
        self._datums: dict[str, tuple[str, dict]] = {}     # datum id -> (resource uid, datum kwargs)
        self._handlers: dict = {}                           # resource uid -> handler
        self._raw_start: dict | None = None
        self._descriptors: set[str] = set()
        self.frames = 0          # frames reduced (this run)
        self.frames_total = 0    # frames reduced since made
        self.busy_s = 0.0        # time spent reading + integrating frames (this run)
        self.read_s = 0.0        # of which reading frames from the files (this run)
        self._scratch: np.ndarray | None = None             # reused read buffer (bytes), see _scratch_left
        self._scratch_used = 0
        self.latencies: deque = deque(maxlen=RECENT_LATENCIES)  # s, raw event time -> result, recent events
        self.last_latency_s = 0.0

    def start(self, doc):
        self._close_handlers()
        self._raw_start = doc
        try:
            self._keys = dk.key_map(doc)
        except ValueError:              # not a pump-probe run: integrate its frames only
            self._keys = {}
        self._image = self._keys.get(self.image_field) or self.image_key
        self._descriptors = set()
        self.frames = 0
        self.busy_s = self.read_s = 0.0
        self._resources, self._datums = {}, {}

    def descriptor(self, doc):
        if doc.get("name") != self.stream or self._image is None or self._image not in doc["data_keys"]:
            return
        self._descriptors.add(doc["uid"])
        self._copy = {f: key for f, key in self._keys.items()
                      if f not in ("image", "saxs_image") and key in doc["data_keys"]}
        self.describe(doc)

    def describe(self, doc):
        """Open the derived run (first descriptor with the image) and set its data keys."""
        if self.derived_uid is None:
            raw = self._raw_start
            md = {key: raw[key] for key in COPY_START if key in raw}
            md.update({dk.RAW_PLAN_NAME: raw.get("plan_name"), dk.RAW_UID: raw["uid"]},
                      raw_scan_id=raw.get("scan_id"), plan_name=dk.INTEGRATE_PLAN,
                      purpose="azimuthal integration (I(q)) of the raw run",
                      image_key=self._image, monitor_key=self._keys.get("i0"),
                      poni_file=str(self.poni), poni=self.poni.read_text(),
                      mask_file=None if self.mask is None else str(self.mask),
                      npt=self.integration.npt, q_unit="A^-1")
            self.open_derived(md, time=raw["time"] - DERIVED_TIME_OFFSET_S)
        npt = [self.integration.npt]
        self._data_keys = {
            dk.Q: {"source": "reduction", "dtype": "array", "shape": npt, "units": "A^-1"},
            dk.INTENSITY: {"source": "reduction", "dtype": "array", "shape": npt, "units": "counts/monitor"},
            dk.SIGMA: {"source": "reduction", "dtype": "array", "shape": npt, "units": "counts/monitor"},
            dk.RAW_SEQ_NUM: {"source": "reduction", "dtype": "integer", "shape": []},
            dk.RAW_TIME: {"source": "reduction", "dtype": "number", "shape": [], "units": "s"},
            N_FRAMES: {"source": "reduction", "dtype": "integer", "shape": []},
            LATENCY: {"source": "reduction", "dtype": "number", "shape": [], "units": "s"},
        }
        for f, key in self._copy.items():
            self._data_keys[f] = {k: v for k, v in doc["data_keys"][key].items()
                                  if k in ("dtype", "shape", "precision")}
            self._data_keys[f]["source"] = f"raw:{key}"
            if dk.FIELDS[f].units:
                self._data_keys[f]["units"] = dk.FIELDS[f].units

    def resource(self, doc):
        self._resources[doc["uid"]] = doc

    def datum(self, doc):
        self._datums[doc["datum_id"]] = (doc["resource"], doc.get("datum_kwargs") or {})

    def datum_page(self, doc):
        kwargs = doc.get("datum_kwargs") or {}
        for k, datum_id in enumerate(doc["datum_id"]):
            self._datums[datum_id] = (doc["resource"], {key: values[k] for key, values in kwargs.items()})

    def event(self, doc):
        self.reduce_events([doc])

    def events(self, docs) -> None:
        """Documents queued together (``BufferedCallback`` with a batch): datums are registered,
        the events reduced as one batch, each with the guard of ``__call__`` (a failure closes the
        derived run as failed and never reaches the caller)."""
        batch = []
        for name, doc in docs:
            if name == "event":
                batch.append(doc)
                continue
            if batch:
                self._guarded(self.reduce_events, batch)
                batch = []
            self(name, doc)
        if batch:
            self._guarded(self.reduce_events, batch)

    def _guarded(self, reduce, batch) -> None:
        if self._failed is not None:
            return
        try:
            reduce(batch)
        except Exception as exc:          # as DerivedRunPublisher.__call__ does for one document
            if self._bundle is None:
                raise
            self._failed = f"{type(exc).__name__}: {exc}"
            logger.exception("%s failed on a batch of %d events; the derived run %s is closed as failed "
                             "and the acquisition goes on", type(self).__name__, len(batch),
                             self._bundle.start_doc["uid"])
            self.close_derived("fail", self._failed)

    def reduce_events(self, docs) -> None:
        """Read the frames of *docs* (events, in order) in as few reads as possible, integrate
        them ``max_batch_frames`` at a time and emit one reduced event per raw event."""
        docs = [d for d in docs if d["descriptor"] in self._descriptors]
        t0 = time.perf_counter()
        pending: list = []          # (doc, frames (n, ny, nx)) not integrated yet
        n_pending = 0
        for doc, frames in self._frames_of(docs):
            pending.append((doc, frames))
            n_pending += len(frames)
            if n_pending >= self.max_batch_frames:
                t0 = self._integrate(pending, t0)
                pending, n_pending = [], 0
        if pending:
            self._integrate(pending, t0)

    def _frames_of(self, docs):
        """(event, its frames (n, ny, nx)) in order; consecutive datums of one resource are read
        with one call."""
        run: list = []              # events whose datums are consecutive points of one resource
        for doc in docs:
            image = doc["data"][self._image]
            ref = self._datums.get(image) if isinstance(image, str) else None
            if ref is not None and set(ref[1]) == {"point_number"}:
                if run:
                    first_resource, first_kwargs = self._datums[run[0]["data"][self._image]]
                    if ref[0] != first_resource or ref[1]["point_number"] != first_kwargs["point_number"] + len(run):
                        yield from self._read_run(run)
                        run = []
                run.append(doc)
                continue
            yield from self._read_run(run)
            run = []
            if isinstance(image, str):                     # another kind of datum: its handler
                resource, kwargs = self._datum(image)
                frames = self._handler(resource)(**kwargs)
                self._datums.pop(image, None)               # read: a datum serves one event
            else:                                           # filled already (a replay)
                frames = image
            frames = np.asarray(frames)
            yield doc, frames[None] if frames.ndim == 2 else frames
        yield from self._read_run(run)

    def _read_run(self, run):
        if not run:
            return
        resource, kwargs = self._datum(run[0]["data"][self._image])
        handler = self._handler(resource)
        t0 = time.perf_counter()
        if hasattr(handler, "frames"):
            frames = handler.frames(kwargs["point_number"], len(run), scratch=self._scratch_left())
            self._scratch_used += frames.nbytes if self._in_scratch(frames) else 0
        else:
            frames = np.concatenate([np.asarray(handler(**self._datums[d["data"][self._image]][1])).reshape(
                -1, *self.integration.shape) for d in run])
        self.read_s += time.perf_counter() - t0
        for doc in run:                     # read: a datum serves one event (memory flat over a long run)
            self._datums.pop(doc["data"][self._image], None)
        n = len(frames) // len(run)
        for k, doc in enumerate(run):
            yield doc, frames[k * n:(k + 1) * n]

    def _scratch_left(self) -> np.ndarray | None:
        """What is free of the reusable read buffer (frames of the batch being gathered are in
        front); grown to ``max_batch_frames`` frames of the detector when the batch starts."""
        if self._scratch_used == 0 and self.integration.shape:
            need = (self.max_batch_frames + 1) * int(np.prod(self.integration.shape)) * 4
            if self._scratch is None or self._scratch.nbytes < need:
                self._scratch = np.empty(need, dtype=np.uint8)
        return None if self._scratch is None else self._scratch[self._scratch_used:]

    def _in_scratch(self, frames) -> bool:
        return self._scratch is not None and np.shares_memory(frames, self._scratch)

    def _stacked(self, pending) -> np.ndarray:
        """The frames of *pending* as one array: a view when they lie one after the other in the
        read buffer (no copy), else concatenated."""
        if len(pending) == 1:
            return pending[0][1]
        arrays = [f for _, f in pending]
        first = arrays[0]
        address = first.__array_interface__["data"][0]
        for a in arrays:
            if (a.dtype != first.dtype or a.shape[1:] != first.shape[1:] or not a.flags.c_contiguous
                    or a.__array_interface__["data"][0] != address or not self._in_scratch(a)):
                return np.concatenate(arrays)
            address += a.nbytes
        total = sum(len(a) for a in arrays)
        return np.lib.stride_tricks.as_strided(first, shape=(total, *first.shape[1:]), writeable=False)

    def _datum(self, datum_id):
        try:
            resource, kwargs = self._datums[datum_id]
        except KeyError:
            raise ValueError(f"event references datum {datum_id!r}, which no datum document announced") from None
        return resource, kwargs

    def _handler(self, resource_uid):
        handler = self._handlers.get(resource_uid)
        if handler is None:
            try:
                resource = self._resources[resource_uid]
            except KeyError:
                raise ValueError(f"datum of resource {resource_uid!r}, which no resource document announced") from None
            cls = HANDLERS.get(resource["spec"])
            if cls is None:
                raise ValueError(f"resource {resource_uid} has spec {resource['spec']!r}; readable: {sorted(HANDLERS)}")
            root = resource.get("root", "")
            root = self._root_map.get(root, root)
            path = os.path.join(root, resource["resource_path"]) if root else resource["resource_path"]
            handler = self._handlers[resource_uid] = cls(path, **resource.get("resource_kwargs", {}))
        return handler

    def _integrate(self, pending, t0: float) -> float:
        """Reduce the frames of *pending* events, emit their reduced events; the time after."""
        if type(self).reduce is not LiveIntegrator.reduce:      # a subclass reducing event by event
            rows = [self.reduce(frames[0] if len(frames) == 1 else frames, self._monitor(doc), self._labels(doc),
                                doc) for doc, frames in pending]
        else:
            rows = self.reduce_many(pending)
        self._scratch_used = 0                  # the batch is integrated: its buffer is free again
        self.busy_s += time.perf_counter() - t0
        for (doc, frames), data in zip(pending, rows):
            self.frames += len(frames)
            self.frames_total += len(frames)
            latency = time.time() - doc["time"]
            self.latencies.append(latency)
            self.last_latency_s = latency
            if LATENCY in self._data_keys:
                data[LATENCY] = latency
            self.emit_event("primary", data, self._data_keys)
        return time.perf_counter()

    def reduce_many(self, pending) -> list[dict]:
        """Events and their frames ``[(doc, (n, ny, nx)), ...]`` -> the data of their reduced
        events: all frames integrated together, each event the mean of its frames (see module)."""
        counts = [len(frames) for _, frames in pending]
        frames = self._stacked(pending)
        monitors = [self._monitor(doc) for doc, _ in pending]
        if all(m is None for m in monitors):
            monitors = None
        elif any(m is None for m in monitors):
            raise ValueError(f"some frames of the run have no I0 ({self._copy.get('i0')}): cannot normalise them alike")
        else:
            monitors = np.repeat(np.asarray(monitors, dtype=float), counts)
        q, intensity, sigma = self.integration.integrate_many(frames, monitors=monitors)
        rows, start = [], 0
        for (doc, _), n in zip(pending, counts):
            part = slice(start, start + n)
            start += n
            if n == 1:
                i, s = intensity[part][0], sigma[part][0]
            else:
                i, s = intensity[part].mean(axis=0), np.sqrt((sigma[part] ** 2).sum(axis=0)) / n
            rows.append({**self._labels(doc), dk.Q: q, dk.INTENSITY: i, dk.SIGMA: s, dk.RAW_SEQ_NUM: doc["seq_num"],
                         dk.RAW_TIME: doc["time"], N_FRAMES: n})
        return rows

    def reduce(self, frame: np.ndarray, monitor, labels: dict, doc: dict) -> dict:
        """One event's frame(s) -> the data of its reduced event (*labels*: the raw event's mapped
        fields). Subclasses that override it reduce event by event instead of in batches."""
        frames = np.asarray(frame)
        return self.reduce_many([(doc, frames[None] if frames.ndim == 2 else frames)])[0]

    def _labels(self, doc) -> dict:
        return {f: doc["data"][key] for f, key in self._copy.items() if key in doc["data"]}

    def _monitor(self, doc):
        return doc["data"].get(self._copy["i0"]) if "i0" in self._copy else None

    def stop(self, doc):
        self.close_derived(doc.get("exit_status", "success"), doc.get("reason", ""))
        self._close_handlers()

    def _close_handlers(self):
        for handler in self._handlers.values():
            handler.close()
        self._handlers.clear()
