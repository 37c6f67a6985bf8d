"""Live azimuthal integration: every new frame of a run -> I(q), published as a reduced run.

The frame is read through the run's own resource/datum documents (the detector's HDF5 file,
as the catalog reads it); events that already carry the frame (a replay of a stored run) are
used as they are. Which image to reduce: the one the run's plan names in its start document
(``trxrd.datakeys.KEY_MAP``) under *image_field* (``image``: WAXS, ``saxs_image``: SAXS), else
``image_key``. For each raw run with that image, one
reduced run is emitted to the subscribers (catalog writer, live pump-probe): its start document
links the raw run (``raw_uid``) and records the calibration; its ``primary`` stream has one event
per frame with ``q`` (A^-1), ``intensity``, ``sigma`` (Poisson, 1 sigma), the raw sequence number and time
and the pump-probe fields of the raw event under their ``trxrd.datakeys`` names (``delay``,
``role``, ``i0``, ``fluence``, ...). I0 normalises the frame when the run records it.

EXAMPLE::

    from trxrd.reduction.callbacks import LiveIntegrator
    integrator = LiveIntegrator("waxs.poni", mask="waxs_mask.edf", npt=1000)
    integrator.subscribe(writer)                # the catalog: reduced runs stored, linked
    for name, doc in documents:                 # of a run (live: through LiveReduction's thread)
        integrator(name, doc)
    reduced = cat.search(Key("raw_uid") == raw_uid)
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from event_model import Filler

from ... import datakeys as dk
from ..integrate import AzimuthalIntegration
from .base import DerivedRunPublisher
from .handlers import HANDLERS

# Derived runs are dated this much before their raw run, so the catalog's newest run
# (``cat[-1]``) stays the last acquisition and its reductions sort just before it.
DERIVED_TIME_OFFSET_S = 1e-3
# Raw start-document fields copied into the reduced start document.
COPY_START = ("sample", dk.REFERENCE, "reference_delay_ps", "num_points", "plan_args", "spot_fwhm_um",
              "pump_wavelength_nm", "time_zero_mm", dk.KEY_MAP)


class LiveIntegrator(DerivedRunPublisher):
    """Integrates the frames of ``image_key`` and publishes I(q) as a reduced run (see module)."""

    def __init__(self, poni, mask=None, *, npt: int = 1000, image_key: str = "pilatus_image",
                 image_field: str = "image", stream: str = "primary", root_map: dict | None = None):
        super().__init__()
        self.integration = AzimuthalIntegration(poni, mask=mask, npt=npt)
        self.poni = Path(poni).resolve()
        self.mask = None if mask is None or not isinstance(mask, (str, Path)) else Path(mask).resolve()
        self.image_key = image_key          # for runs that do not name their image
        self.image_field = image_field      # which image of the run's KEY_MAP
        self.stream = stream
        self._keys: dict[str, str] = {}     # field -> raw data key, of the current run
        self._image: str | None = None
        self._root_map = root_map
        self._filler: Filler | None = None
        self._handlers: dict = {}
        self._raw_start: dict | None = None
        self._descriptors: set[str] = set()
        self.frames = 0
        self.busy_s = 0.0        # time spent reading + integrating frames (this run)

    def start(self, doc):
        self._raw_start = doc
        try:
            self._keys = dk.key_map(doc)
        except ValueError:              # not a pump-probe run: integrate its frames only
            self._keys = {}
        self._image = self._keys.get(self.image_field) or self.image_key
        self._descriptors = set()
        self.frames = 0
        self.busy_s = 0.0
        self._handlers = {}
        self._filler = Filler(HANDLERS, inplace=False, root_map=self._root_map, handler_cache=self._handlers)
        self._filler("start", doc)

    def descriptor(self, doc):
        self._filler("descriptor", doc)
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
        }
        for f, key in self._copy.items():
            self._data_keys[f] = {k: v for k, v in doc["data_keys"][key].items()
                                  if k in ("dtype", "shape", "precision")}
            self._data_keys[f]["source"] = f"raw:{key}"
            if dk.FIELDS[f].units:
                self._data_keys[f]["units"] = dk.FIELDS[f].units

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
        frame = doc["data"][self._image]
        if isinstance(frame, str):                    # a datum id: read the frame from the file
            doc = {**doc, "filled": {**doc.get("filled", {}), self._image: False}}
            frame = self._filler("event", doc)[1]["data"][self._image]
        monitor = doc["data"].get(self._copy["i0"]) if "i0" in self._copy else None
        labels = {f: doc["data"][key] for f, key in self._copy.items() if key in doc["data"]}
        data = self.reduce(np.asarray(frame), monitor, labels, doc)
        self.busy_s += time.perf_counter() - t0
        self.frames += 1
        self.emit_event("primary", data, self._data_keys)

    def reduce(self, frame: np.ndarray, monitor, labels: dict, doc: dict) -> dict:
        """One frame -> the data of its event in the derived run (*labels*: the raw event's
        mapped fields)."""
        q, intensity, sigma = self.integration.integrate(frame, monitor=monitor)
        return {**labels, dk.Q: q, dk.INTENSITY: intensity, dk.SIGMA: sigma, dk.RAW_SEQ_NUM: doc["seq_num"],
                dk.RAW_TIME: doc["time"]}

    def stop(self, doc):
        self.close_derived(doc.get("exit_status", "success"), doc.get("reason", ""))
        if self._filler is not None:
            self._filler("stop", doc)
            for handler in self._handlers.values():
                handler.close()
            self._handlers.clear()
