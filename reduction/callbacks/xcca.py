"""Live cross-correlation analysis of a nano-diffraction raster (``raster_scan``).

Each frame is read through the raw run's resource/datum documents, as ``LiveIntegrator`` does,
re-binned in (q, phi) on the two rings of the settings and analysed (``reduction.xcca``): grain
or not, orientation, misorientation psi, n-fold symmetry, the spots on each ring. The running
averages (the CCF of the patterns with both rings, the stacked AL Bragg peak) grow by constant
work per frame; the fits of the averages run once, at the end. Derived run ``xcca`` linked to the
raw run (``raw_uid``): stream ``primary`` one event per pattern (``frame``, ``x_um``, ``y_um``,
``has_grain``, ``both_rings``, ``orientation_deg``, ``psi_deg``, ``al_axis_deg`` (the AL ring's mirror axis),
``n_fold``, the spots' azimuths ``peaks_sl_deg`` / ``peaks_al_deg``, nan-padded to
``MAX_PEAKS``); stream ``summary`` at the end: the averaged CCF and its error, its peaks, beta
and c/a of the bct model, the averaged Bragg peak's widths and the disorder (``status`` says
why a value is missing).

EXAMPLE::

    from trxrd.reduction.callbacks.xcca import LiveXcca
    from trxrd.reduction.settings import XccaSettings
    xcca = LiveXcca(XccaSettings("waxs.poni", q1=1.833, q2=0.172, mask="waxs_mask.edf"))
    xcca.subscribe(writer)
    RE.subscribe(xcca)                   # or behind LiveXccaReduction's queue
    RE(raster_scan([pilatus], (-3, 3), (-4, 4), 0.4, stage=stage, i0=i0, md={"sample": s}))
    xcca.report["c_over_a"]
"""
from __future__ import annotations

import math

import numpy as np

from ... import datakeys as dk
from ..xcca import CRITERION, XccaAnalysis
from .integrator import DERIVED_TIME_OFFSET_S, LiveIntegrator
from .pump_probe import _number

MAX_PEAKS = 8


def _nan(v):
    return math.nan if v is None else float(v)


def _padded(peaks):
    out = np.full(MAX_PEAKS, np.nan)
    values = [p["phi_deg"] for p in peaks][:MAX_PEAKS]
    out[:len(values)] = values
    return out


class LiveXcca(LiveIntegrator):
    """Per-pattern XCCA of raster runs (see module); other runs are ignored."""

    def __init__(self, settings, *, root_map: dict | None = None):
        super().__init__(settings.poni, mask=settings.mask, npt=10, image_key=settings.image_key,
                         root_map=root_map)
        self.settings = settings
        self.analysis = self._analysis()        # checked now: rings on the detector, dq, nphi
        self.report: dict | None = None
        self.status = ""
        self.active = False

    def _analysis(self) -> XccaAnalysis:
        s = self.settings
        return XccaAnalysis(self.integration, s.q1, s.q2, dq=s.dq, nphi=s.nphi)

    def start(self, doc):
        self.active = False
        if doc.get("plan_name") not in dk.RASTER_PLANS:
            return
        self.analysis = self._analysis()
        self.report, self.status = None, ""
        super().start(doc)
        self.active = True

    def __call__(self, name, doc, validate=False):
        if name != "start" and not self.active:         # not a raster: nothing to read or publish
            return None
        return super().__call__(name, doc, validate)

    def describe(self, doc):
        if self.derived_uid is None:
            raw, s = self._raw_start, self.settings
            md = {key: raw[key] for key in ("sample", "num_points", "plan_args") if key in raw}
            md.update({dk.RAW_PLAN_NAME: raw.get("plan_name"), dk.RAW_UID: raw["uid"]},
                      raw_scan_id=raw.get("scan_id"), plan_name=dk.XCCA_PLAN,
                      purpose="cross-correlation analysis of the raster: grains, orientation, averaged CCF",
                      image_key=self._image, poni_file=str(self.poni),
                      mask_file=None if self.mask is None else str(self.mask),
                      q1=s.q1, q2=s.q2, dq=s.dq, nphi=s.nphi, q_unit="A^-1", criterion=CRITERION,
                      orientation="mirror axis of the spots on the lower-q (superlattice) ring, deg in [0, 180)",
                      psi="AL axis - SL axis, deg in [-45, 45)")
            self.open_derived(md, time=raw["time"] - DERIVED_TIME_OFFSET_S)
        keys = {k: _number("deg") for k in ("orientation_deg", "orientation_err", "al_axis_deg",
                                            "psi_deg", "psi_err")}
        keys.update({k: _number("um") for k in ("x_um", "y_um")})
        keys.update({k: {"source": "reduction", "dtype": "integer", "shape": []}
                     for k in ("frame", "n_fold", "n_peaks_sl", "n_peaks_al", dk.RAW_SEQ_NUM)})
        keys.update({k: {"source": "reduction", "dtype": "boolean", "shape": []} for k in ("has_grain", "both_rings")})
        keys.update({k: {"source": "reduction", "dtype": "array", "shape": [MAX_PEAKS], "units": "deg"}
                     for k in ("peaks_sl_deg", "peaks_al_deg")})
        self._data_keys = keys

    def reduce(self, frame, monitor, labels, doc):
        frame_index = int(doc["seq_num"]) - 1
        row = self.analysis.add(frame, monitor, frame=frame_index, x_um=_nan(labels.get("x_um")),
                                y_um=_nan(labels.get("y_um")))
        return {"frame": frame_index, dk.RAW_SEQ_NUM: doc["seq_num"], "x_um": row["x_um"], "y_um": row["y_um"],
                "has_grain": row["has_grain"], "both_rings": row["both_rings"],
                **{k: _nan(row[k]) for k in ("orientation_deg", "orientation_err", "al_axis_deg",
                                             "psi_deg", "psi_err")},
                "n_fold": row["n_fold"], "n_peaks_sl": len(row["peaks_sl"]), "n_peaks_al": len(row["peaks_al"]),
                "peaks_sl_deg": _padded(row["peaks_sl"]), "peaks_al_deg": _padded(row["peaks_al"])}

    def stop(self, doc):
        self.active = False
        if self.derived_uid is not None and self.analysis.rows:
            self.finish()
        super().stop(doc)

    @property
    def rows(self) -> list[dict]:
        """The patterns analysed so far in the current (or last) raster."""
        return self.analysis.rows

    @property
    def result(self):
        """This reduction once it has patterns (for the live figure); else None."""
        return self if self.rows else None

    def running_ccf(self):
        """(D, averaged CCF, error) of the patterns so far with both rings, or None."""
        if not self.analysis.n_used:
            return None
        return self.analysis.averaged_ccf()

    def finish(self):
        """The averages of the whole raster (once, at the end): summary stream."""
        try:
            self.report = self.analysis.report()
        except ValueError as exc:             # too few patterns with both rings: say so, keep the maps
            self.status = str(exc)
            self.report = None
        r = self.report or {}
        d, c, e = self.analysis.averaged_ccf()
        peaks = np.array(r.get("peaks_deg") or [], dtype=float)
        peak_err = np.array([p["stderr"] for p in r.get("peaks") or []], dtype=float)

        def value(key, part="value"):
            v = r.get(key)
            return _nan(v.get(part) if isinstance(v, dict) else v)

        data = {"delta_deg": d, "ccf": c, "ccf_err": e, "peaks_deg": peaks, "peaks_err_deg": peak_err,
                "beta_deg": value("beta_deg"), "beta_err_deg": value("beta_deg", "stderr"),
                "c_over_a": value("c_over_a"), "c_over_a_err": value("c_over_a", "stderr"),
                "disorder_deg": value("disorder_deg"), "disorder_err_deg": value("disorder_deg", "stderr"),
                "azimuthal_fwhm_deg": value("azimuthal_fwhm_deg"), "radial_fwhm": value("radial_fwhm"),
                "n_frames": len(self.analysis.rows), "n_frames_used": self.analysis.n_used,
                "n_frames_with_grain": sum(row["has_grain"] for row in self.analysis.rows),
                "status": self.status or "ok"}
        keys = {k: _number("deg" if k.endswith("deg") else None) for k in data}
        for k, n in (("delta_deg", len(d)), ("ccf", len(d)), ("ccf_err", len(d)), ("peaks_deg", len(peaks)),
                     ("peaks_err_deg", len(peaks))):
            keys[k] = {"source": "reduction", "dtype": "array", "shape": [n], **({"units": "deg"} if "deg" in k else {})}
        keys["radial_fwhm"]["units"] = "A^-1"
        for k in ("n_frames", "n_frames_used", "n_frames_with_grain"):
            keys[k] = {"source": "reduction", "dtype": "integer", "shape": []}
        keys["status"] = {"source": "reduction", "dtype": "string", "shape": []}
        self.emit_event("summary", data, keys)
