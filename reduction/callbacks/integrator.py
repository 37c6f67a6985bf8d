"""Live azimuthal integration: every new frame of a run -> I(q), published as a reduced run.

The frame is read through the run's own resource/datum documents (the detector's HDF5 file,
as the catalog reads it); events that already carry the frame (a replay of a stored run) are
used as they are. For each raw run with the image, one reduced run is emitted to the
subscribers (catalog writer, live pump-probe): its start document links the raw run
(``raw_uid``) and records the calibration; its ``primary`` stream has one event per frame with
``q`` (A^-1), ``intensity``, ``sigma`` (Poisson, 1 sigma), the raw sequence number and the
pump-probe fields of the raw event (delay, role, I0, fluence, ...).

EXAMPLE::

    from trxrd.reduction.callbacks import LiveIntegrator
    integrator = LiveIntegrator("waxs.poni", mask="waxs_mask.edf", npt=1000)
    integrator.subscribe(writer)                # the catalog: reduced runs stored, linked
    RE.subscribe(integrator)
    RE(delay_scan([pilatus], log_delays(-100, 5000, 20)))
    reduced = cat.search({"raw_uid": cat[-2].start["uid"]})   # or cat[-1] right after
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from event_model import Filler

from ..integrate import AzimuthalIntegration
from .base import DerivedRunPublisher
from .handlers import HANDLERS

# Derived runs are dated this much before their raw run, so the catalog's newest run
# (``cat[-1]``) stays the last acquisition and its reductions sort just before it.
DERIVED_TIME_OFFSET_S = 1e-3
# Raw event fields copied into the reduced events (those present).
COPY_KEYS = ("pump_delay", "requested_delay", "requested_fluence", "role", "pump_shutter", "i0",
             "att_fluence", "att_excitations", "att_power", "jet_flow", "delay_index", "repeat")
# Raw start-document fields copied into the reduced start document.
COPY_START = ("sample", "reference", "reference_delay_ps", "num_points",
              "plan_args", "spot_fwhm_um", "pump_wavelength_nm", "time_zero_mm")


class LiveIntegrator(DerivedRunPublisher):
    """Integrates the frames of ``image_key`` and publishes I(q) as a reduced run (see module)."""

    def __init__(self, poni, mask=None, *, npt: int = 1000, image_key: str = "pilatus_image",
                 monitor_key: str | None = "i0", stream: str = "primary", root_map: dict | None = None):
        super().__init__()
        self.integration = AzimuthalIntegration(poni, mask=mask, npt=npt)
        self.poni = Path(poni).resolve()
        self.mask = None if mask is None or not isinstance(mask, (str, Path)) else Path(mask).resolve()
        self.image_key = image_key
        self.monitor_key = monitor_key
        self.stream = stream
        self._root_map = root_map
        self._filler: Filler | None = None
        self._handlers: dict = {}
        self._raw_start: dict | None = None
        self._descriptors: set[str] = set()
        self.frames = 0
        self.busy_s = 0.0        # time spent reading + integrating frames (this run)

    def start(self, doc):
        self._raw_start = doc
        self._descriptors = set()
        self.frames = 0
        self.busy_s = 0.0
        self._handlers = {}
        self._filler = Filler(HANDLERS, inplace=False, root_map=self._root_map, handler_cache=self._handlers)
        self._filler("start", doc)

    def descriptor(self, doc):
        self._filler("descriptor", doc)
        if doc.get("name") != self.stream or self.image_key not in doc["data_keys"]:
            return
        self._descriptors.add(doc["uid"])
        if self.derived_uid is None:
            raw = self._raw_start
            md = {key: raw[key] for key in COPY_START if key in raw}
            md.update(raw_plan_name=raw.get("plan_name"), raw_scan_id=raw.get("scan_id"), plan_name="integrate",
                      raw_uid=raw["uid"], purpose="azimuthal integration (I(q)) of the raw run",
                      image_key=self.image_key, monitor_key=self.monitor_key,
                      poni_file=str(self.poni), poni=self.poni.read_text(),
                      mask_file=None if self.mask is None else str(self.mask),
                      npt=self.integration.npt, q_unit="A^-1")
            self.open_derived(md, time=raw["time"] - DERIVED_TIME_OFFSET_S)
        self._data_keys = {
            "q": {"source": "reduction", "dtype": "array", "shape": [self.integration.npt], "units": "A^-1"},
            "intensity": {"source": "reduction", "dtype": "array", "shape": [self.integration.npt],
                          "units": "counts/monitor"},
            "sigma": {"source": "reduction", "dtype": "array", "shape": [self.integration.npt],
                      "units": "counts/monitor"},
            "raw_seq_num": {"source": "reduction", "dtype": "integer", "shape": []},
        }
        for key in COPY_KEYS:
            if key in doc["data_keys"]:
                self._data_keys[key] = {k: v for k, v in doc["data_keys"][key].items()
                                        if k in ("dtype", "shape", "units", "precision")}
                self._data_keys[key]["source"] = f"raw:{key}"

    def resource(self, doc):
        self._filler("resource", doc)

    def datum(self, doc):
        self._filler("datum", doc)

    def datum_page(self, doc):
        self._filler("datum_page", doc)

    def event(self, doc):
        if doc["descriptor"] not in self._descriptors:
            return
        t0 = time.perf_counter()
        frame = doc["data"][self.image_key]
        if isinstance(frame, str):                    # a datum id: read the frame from the file
            doc = {**doc, "filled": {**doc.get("filled", {}), self.image_key: False}}
            frame = self._filler("event", doc)[1]["data"][self.image_key]
        monitor = doc["data"].get(self.monitor_key) if self.monitor_key else None
        q, intensity, sigma = self.integration.integrate(np.asarray(frame), monitor=monitor)
        self.busy_s += time.perf_counter() - t0
        self.frames += 1
        data = {key: doc["data"][key] for key in COPY_KEYS if key in doc["data"]}
        data.update(q=q, intensity=intensity, sigma=sigma, raw_seq_num=doc["seq_num"])
        self.emit_event("primary", data, self._data_keys)

    def stop(self, doc):
        self.close_derived(doc.get("exit_status", "success"), doc.get("reason", ""))
        if self._filler is not None:
            self._filler("stop", doc)
            for handler in self._handlers.values():
                handler.close()
            self._handlers.clear()
