"""Live SAXS reductions, fed with the reduced runs (I(q) per frame) of a SAXS ``LiveIntegrator``:

- :class:`LiveSaxs` (``injection_series``): the pre-injection frames make the background
  (``background="auto"``, or a given background I(q)); every later frame is fitted with
  polydisperse spheres, seeded by the previous frame's fit (a Guinier start for the first).
  Derived run ``saxs`` linked to the raw run: stream ``primary``, one event per frame
  (``time_s``, ``particles``, ``r_mean_nm``, ``sigma_nm``, ``scale``, ``background`` with their
  errors, ``concentration`` (uM with a contrast, else the scale), ``volume`` (scale x <V>: the
  scattered volume, a.u.), ``redchi``, ``significance``); at the end stream ``summary``: t98 of
  the concentration and of the yield, the growth-law fit and the relative series.
- :class:`LiveStacking` (``anneal_profile``, ``temperature_series``): the stacking peak of a
  platelet film per frame (``d_nm``, ``q_star``, ``fwhm``, ``xi_nm``, ``area`` with errors,
  temperature, time, segment); derived run ``stacking``, at the end stream ``segments`` (one
  event per anneal segment: its kind, times, temperatures and the period at its end).

Work per frame is one fit (a few ms); the series are computed once, at the end.

EXAMPLE::

    from trxrd.reduction.callbacks.saxs import LiveSaxs
    from trxrd.reduction.settings import SaxsSettings
    saxs = LiveSaxs(SaxsSettings("saxs.poni", mask="saxs_mask.edf"))
    integrator.subscribe(saxs)         # a LiveIntegrator(..., image_field="saxs_image")
    saxs.subscribe(writer)
    saxs.report["t98_concentration_s"]
"""
from __future__ import annotations

import math
import time

import numpy as np

from ... import datakeys as dk
from ..saxs import (
    BEFORE_INJECTION,
    CRITERION,
    SphereTable,
    fit_spheres,
    fit_stacking_peak,
    saxs_report,
    saxs_series,
    stacking_segments,
    subtract_background,
)
from .base import DerivedRunPublisher
from .pump_probe import _number



def _err(value):
    return math.nan if value is None else float(value)


class _SaxsBase(DerivedRunPublisher):
    """Opens one derived run per reduced run of PLANS (see module)."""

    PLANS: tuple = ()
    PLAN = ""

    def __init__(self, settings):
        super().__init__()
        self.settings = settings
        self.active = False
        self.fit_s: list[float] = []       # time per frame fit (s), this run
        self.rows: list[dict] = []

    def start(self, doc):
        self.active = doc.get("plan_name") == dk.INTEGRATE_PLAN and doc.get(dk.RAW_PLAN_NAME) in self.PLANS
        if not self.active:
            return
        self.rows, self.fit_s = [], []
        self._reduced = doc
        self.reset(doc)
        md = {key: doc[key] for key in ("sample", dk.RAW_PLAN_NAME, dk.RAW_UID, "raw_scan_id", "poni_file",
                                        "mask_file", "npt") if key in doc}
        md.update(plan_name=self.PLAN, reduced_uid=doc["uid"], q_unit="A^-1", **self.metadata())
        self.open_derived(md, time=doc["time"])

    def event(self, doc):
        if not self.active:
            return
        t0 = time.perf_counter()
        self.frame(doc["data"], doc["time"])
        self.fit_s.append(time.perf_counter() - t0)

    def stop(self, doc):
        if not self.active:
            return
        self.active = False
        if self.derived_uid is None:            # closed already, as failed: nothing more to publish
            return
        if self.rows:
            self.finish()
        self.close_derived(doc.get("exit_status", "success"), doc.get("reason", ""))

    def reset(self, doc): ...

    @property
    def result(self):
        """This reduction (its ``rows``) once it has frames, for the live figure; else None."""
        return self if self.rows else None

    def metadata(self) -> dict:
        return {}


class LiveSaxs(_SaxsBase):
    """Spheres per frame of an injection series (see module)."""

    PLANS = dk.INJECTION_PLANS
    PLAN = dk.SAXS_PLAN

    def __init__(self, settings, *, background=None):
        super().__init__(settings)
        self.fixed_background = background      # (q, I, sigma) of a given background, or None
        self.report: dict | None = None

    def metadata(self):
        s = self.settings
        return {"distribution": s.distribution, "background": s.background, "criterion": CRITERION,
                "q_range": [s.q_min, s.q_max], "contrast_cm2": s.contrast_cm2, "absolute_factor": s.absolute_factor}

    def reset(self, doc):
        self.table = None
        self._sel = None
        self._bg_sum = self._bg_var = None
        self._bg_n = 0
        self._seed = None
        self.report = None
        self.last = None                        # (q, I - background, model) of the last fitted frame

    def _prepare(self, q):
        s = self.settings
        lo = q.min() if s.q_min is None else s.q_min
        hi = q.max() if s.q_max is None else s.q_max
        if lo < q.min() * 0.999 or hi > q.max() * 1.001:
            raise ValueError(f"the SAXS fit range {lo:.4f}-{hi:.4f} A^-1 lies outside this detector's "
                             f"{q.min():.4f}-{q.max():.4f} A^-1")
        self._sel = (q >= lo) & (q <= hi)
        if self._sel.sum() < 8:
            raise ValueError(f"the SAXS fit range {lo:.4f}-{hi:.4f} A^-1 holds fewer than 8 q bins")
        self.table = SphereTable(q[self._sel], distribution=s.distribution)

    def frame(self, data, when):
        q = np.asarray(data[dk.Q], dtype=float)
        intensity = np.asarray(data[dk.INTENSITY], dtype=float)
        sigma = np.asarray(data[dk.SIGMA], dtype=float)
        t = float(data.get("reaction_time", math.nan))
        if self.table is None:
            self._prepare(q)
        row = {"frame": int(data[dk.RAW_SEQ_NUM]) - 1, "time_s": t,
               "temperature_c": float(data.get("temperature", math.nan)), "fit": None}
        if self.fixed_background is None and t < 0:          # before the injection: the background
            self._bg_sum = intensity if self._bg_sum is None else self._bg_sum + intensity
            self._bg_var = sigma**2 if self._bg_var is None else self._bg_var + sigma**2
            self._bg_n += 1
            self.rows.append({**row, "reason": BEFORE_INJECTION})
            return self._emit(row, None)
        if self.fixed_background is not None:
            if ("i0" in data) != (self.settings.background_i0 is not None):
                raise ValueError("the frames are normalised by I0 but the background has no background_i0"
                                 if "i0" in data else "background_i0 is set but the run records no I0")
            bg, bg_sigma = self.fixed_background[1], self.fixed_background[2]
        elif self._bg_n:
            bg, bg_sigma = self._bg_sum / self._bg_n, np.sqrt(self._bg_var) / self._bg_n
        else:
            raise ValueError("no pre-injection frames (reaction_time < 0) for background 'auto': record before "
                             "the injection (pre_injection_s > 0) or give a background file")
        y, s = subtract_background(intensity, sigma, bg, bg_sigma)
        sel = self._sel & np.isfinite(y) & (s > 0)
        if sel.sum() < self._sel.sum():               # masked bins this frame: a table for these bins
            table = SphereTable(q[sel], distribution=self.settings.distribution)
        else:
            table = self.table
        fit = fit_spheres(q[sel], y[sel], s[sel], table=table, seed=self._seed)
        if fit.particles:
            self._seed = fit
        row["fit"] = fit
        self.rows.append(row)
        self.last = (q[sel], y[sel], fit.model, t)
        self._emit(row, fit)

    def _emit(self, row, fit):
        ok = fit is not None and fit.particles
        data = {"frame": row["frame"], "time_s": row["time_s"], "temperature_c": row["temperature_c"],
                "particles": bool(ok), "redchi": fit.redchi if fit else math.nan,
                "significance": fit.significance if fit else math.nan}
        for name in ("r_mean_nm", "sigma_nm", "scale", "background"):
            value, err = fit.params[name] if fit else (math.nan, math.nan)
            keep = ok or (fit is not None and name == "background")
            data[name], data[f"{name}_err"] = (value, err) if keep else (math.nan, math.nan)
        data["volume"] = fit.volume if ok else math.nan
        data["concentration"] = self._concentration(data["scale"])
        keys = {k: _number() for k in data}
        keys["particles"] = {"source": "reduction", "dtype": "boolean", "shape": []}
        keys["frame"] = {"source": "reduction", "dtype": "integer", "shape": []}
        for k, unit in (("time_s", "s"), ("temperature_c", "C"), ("r_mean_nm", "nm"), ("r_mean_nm_err", "nm"),
                        ("sigma_nm", "nm"), ("sigma_nm_err", "nm"), ("volume", "a.u."),
                        ("concentration", "uM" if self.settings.contrast_cm2 else "a.u. (scale)")):
            keys[k]["units"] = unit
        self.emit_event("primary", data, keys)

    def _concentration(self, scale):
        s = self.settings
        if s.contrast_cm2 is None or not np.isfinite(scale):
            return scale
        from ..saxs import absolute_concentration_um

        return float(absolute_concentration_um(scale, contrast_cm2=s.contrast_cm2, absolute_factor=s.absolute_factor))

    def finish(self):
        """The series of the whole run (once, at the end): t98s, growth law, relative series."""
        frames = [r for r in self.rows if r["fit"] is not None]
        series = saxs_series(frames, contrast_cm2=self.settings.contrast_cm2,
                             absolute_factor=self.settings.absolute_factor)
        self.report = {**saxs_report(self.rows, series), "distribution": self.settings.distribution}
        law = series["growth_law"] or {}
        data = {"t98_concentration_s": _err(series["t98_concentration_s"]),
                "t98_yield_s": _err(series["t98_yield_s"]),
                "growth_n": _err(law.get("n", {}).get("value")), "growth_n_err": _err(law.get("n", {}).get("stderr")),
                "growth_k": _err(law.get("k", {}).get("value")), "growth_k_err": _err(law.get("k", {}).get("stderr")),
                "frames_with_particles": series["frames_with_particles"],
                "time_s": np.array([f["time_s"] for f in frames], dtype=float),
                "concentration_rel": np.array([_err(f["concentration_rel"]) for f in frames]),
                "yield_rel": np.array([_err(f["yield_rel"]) for f in frames])}
        keys = {k: _number("s" if k.startswith("t98") else None) for k in data}
        keys["frames_with_particles"] = {"source": "reduction", "dtype": "integer", "shape": []}
        for k in ("time_s", "concentration_rel", "yield_rel"):
            keys[k] = {"source": "reduction", "dtype": "array", "shape": [len(frames)]}
        keys["time_s"]["units"] = "s"
        self.emit_event("summary", data, keys)


class LiveStacking(_SaxsBase):
    """The stacking peak per frame of an anneal or heating series (see module)."""

    PLANS = dk.ANNEAL_PLANS
    PLAN = dk.STACKING_PLAN

    def __init__(self, settings):
        super().__init__(settings)
        self.segments: list[dict] = []

    def metadata(self):
        return {"stacking_q": list(self.settings.stacking_q),
                "d_definition": "d = 2 pi / q*; correlation length xi = 2 pi / FWHM"}

    def reset(self, doc):
        self._seed = None
        self._t0 = None
        self.segments: list[dict] = []

    def frame(self, data, when):
        q = np.asarray(data[dk.Q], dtype=float)
        fit = fit_stacking_peak(q, data[dk.INTENSITY], data[dk.SIGMA], q_range=self.settings.stacking_q,
                                seed=self._seed)
        if fit.found:
            self._seed = fit
        when = data.get(dk.RAW_TIME, when)                 # the frame's own time
        if self._t0 is None:
            self._t0 = when
        t = data.get("anneal_time", when - self._t0)      # a heating series: since its first frame
        row = {"frame": int(data[dk.RAW_SEQ_NUM]) - 1, "time_s": float(t),
               "temperature_c": float(data.get("temperature", math.nan)), "segment": int(data.get("segment", 0)),
               "segment_kind": str(data.get("segment_kind", "")), "fit": fit}
        self.rows.append(row)
        out = {k: row[k] for k in ("frame", "time_s", "temperature_c", "segment", "segment_kind")}
        out["found"] = bool(fit.found)
        for name in ("d_nm", "q_star", "fwhm", "xi_nm", "area"):
            value, err = getattr(fit, name) if fit.found else (math.nan, math.nan)
            out[name], out[f"{name}_err"] = value, err
        keys = {k: _number() for k in out}
        keys["found"] = {"source": "reduction", "dtype": "boolean", "shape": []}
        keys["segment_kind"] = {"source": "reduction", "dtype": "string", "shape": []}
        for k in ("frame", "segment"):
            keys[k] = {"source": "reduction", "dtype": "integer", "shape": []}
        for k, unit in (("time_s", "s"), ("temperature_c", "C"), ("d_nm", "nm"), ("d_nm_err", "nm"),
                        ("xi_nm", "nm"), ("xi_nm_err", "nm"), ("q_star", "A^-1"), ("q_star_err", "A^-1"),
                        ("fwhm", "A^-1"), ("fwhm_err", "A^-1")):
            keys[k]["units"] = unit
        self.emit_event("primary", out, keys)

    def finish(self):
        self.segments = stacking_segments(self.rows)
        for seg in self.segments:
            data = {"segment": seg["segment"], "kind": seg["kind"], "time_start_s": seg["time_s"][0],
                    "time_end_s": seg["time_s"][1], "temperature_start_c": seg["temperature_c"][0],
                    "temperature_end_c": seg["temperature_c"][1], "frames_with_peak": seg["frames_with_peak"],
                    "d_end_nm": _err(seg["d_end_nm"]["value"]), "d_end_err_nm": _err(seg["d_end_nm"]["stderr"])}
            keys = {k: _number() for k in data}
            keys["kind"] = {"source": "reduction", "dtype": "string", "shape": []}
            for k in ("segment", "frames_with_peak"):
                keys[k] = {"source": "reduction", "dtype": "integer", "shape": []}
            self.emit_event("segments", data, keys)
