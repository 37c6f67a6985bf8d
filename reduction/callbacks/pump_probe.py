"""Live pump-probe reduction of the integrated frames of the pump-probe plans (delay scans,
fluence scans, fluence x delay grids), split the way bluesky splits LiveFit and LiveFitPlot:

- a :class:`~trxrd.reduction.accumulate.PumpProbeAccumulator` keeps per-point sums of
  pump-on minus reference (work per frame independent of the scan length);
- a :class:`RefitPolicy` decides when to refit: after enough new points (and a fraction more
  than at the last fit, so a night-long scan refits less and less often: the refits' total work
  grows like the last fit's, not like the scan), at most every ``min_interval_s``, and never more
  than ``max_duty`` of the reduction's time; the last fit is kept in between;
- :class:`LivePumpProbe` publishes the derived ``pump_probe`` run linked to the raw and reduced
  runs: stream ``fit`` (delay scan: kinetics; fluence scan: threshold; one event per refit,
  the last is the final fit), for a grid streams ``kinetics`` (one event per fluence per refit)
  and ``threshold`` (one per delay), and at the end stream ``difference`` (one event per point:
  point, x, signal, dI(q), errors, reference curve);
- the live figure is a separate callback (:class:`~trxrd.reduction.callbacks.plot.LivePumpProbePlot`).

Frames must say what they are: a missing or unknown ``role`` closes the derived run as failed,
with the reason (it is never counted as pumped). Frames the plan marked invalid
(``frame_valid`` False: no jet, wrong shutter state) are skipped.

EXAMPLE::

    from trxrd.reduction.callbacks.pump_probe import LivePumpProbe
    pump_probe = LivePumpProbe([(1.70, 2.05)], model="biexp")
    integrator.subscribe(pump_probe)          # fed with the reduced runs of a LiveIntegrator
    pump_probe.subscribe(writer)              # its own derived run goes to the catalog
    ...
    pump_probe.result.fit.summary()           # "biexp: tau1 = 151 +- 6 ps, ..."
"""
from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from ... import datakeys as dk
from ..accumulate import PumpProbeAccumulator
from ..pump_probe import PumpProbeResult, fit_delays, fit_fluences, fit_time_zero
from .base import DerivedRunPublisher

logger = logging.getLogger(__name__)

KINETICS_PARAMS = ("t0_ps", "irf_fwhm_ps", "a1", "tau1_ps", "a2", "tau2_ps")
THRESHOLD_FIELDS = ("threshold", "threshold_err", "threshold_low", "threshold_high")
MIN_POINTS = {"delay": 8, "fluence": 5}
RECENT_REFITS = 1_000            # refit durations kept (the most recent): memory flat over a night


def _number(units=None):
    out = {"source": "reduction", "dtype": "number", "shape": []}
    if units:
        out["units"] = units
    return out


class RefitPolicy:
    """When a live fit may run again.

    Parameters
    ----------
    min_interval_s : float
        At least this long (s) since the previous fit started.
    min_new_points : int
        At least this many pump-on frames paired since the previous fit.
    min_growth : float
        And at least this fraction more pairs than at the previous fit (0.02: after 10,000
        pairs, the next fit waits for 200 more).
    max_duty : float
        Fitting takes at most this fraction of the time: after a fit of d seconds the next
        waits at least d / max_duty.

    EXAMPLE::

        policy = RefitPolicy(min_interval_s=1.0, min_new_points=2)
        if policy.due(pairs, time.monotonic()): ...; policy.record(pairs, t_start, duration)
    """

    def __init__(self, min_interval_s: float = 1.0, min_new_points: int = 1, max_duty: float = 0.2,
                 min_growth: float = 0.02):
        if not (min_interval_s >= 0 and min_new_points >= 1 and 0 < max_duty <= 1 and 0 <= min_growth):
            raise ValueError("RefitPolicy needs min_interval_s >= 0, min_new_points >= 1, 0 < max_duty <= 1, "
                             "min_growth >= 0")
        self.min_interval_s, self.min_new_points, self.max_duty = min_interval_s, int(min_new_points), max_duty
        self.min_growth = float(min_growth)
        self.reset()

    def reset(self):
        self._last_pairs, self._next_time = 0, -math.inf

    def due(self, pairs: int, now: float) -> bool:
        new = pairs - self._last_pairs
        return new >= self.min_new_points and new >= self.min_growth * self._last_pairs and now >= self._next_time

    def record(self, pairs: int, started: float, duration_s: float) -> None:
        self._last_pairs = pairs
        self._next_time = started + max(self.min_interval_s, duration_s / self.max_duty)


@dataclass
class GridResult:
    """Results of a fluence x delay grid: a kinetics per fluence, a threshold per delay."""
    kinetics: dict = field(default_factory=dict)       # requested fluence -> PumpProbeResult (x: delay)
    thresholds: dict = field(default_factory=dict)     # requested delay -> PumpProbeResult (x: <N>)

    def as_dict(self) -> dict:
        return {"kinetics": {str(f): r.as_dict() for f, r in self.kinetics.items()},
                "thresholds": {str(t): r.as_dict("excitations") for t, r in self.thresholds.items()}}


class LivePumpProbe(DerivedRunPublisher):
    """Accumulates integrated frames, refits by its policy and publishes (see module).

    Parameters
    ----------
    windows : list of (qmin, qmax)
        q windows of the signal (A^-1).
    part : {"area", "negative", "positive"}
        Which part of dI the signal integrates.
    model : {"exp", "biexp", "auto"}
        Kinetics model; ``irf_fwhm_ps`` fixes the IRF (default fitted).
    threshold_model : {"saturating", "linear"}
    refit : RefitPolicy, optional
        When to refit while the scan runs (the final fit is always made).
    """

    PLAN = dk.PUMP_PROBE_PLAN                   # plan_name of the derived run
    KINDS = ("delay", "fluence", "grid")        # raw plan kinds reduced (dk.PLAN_KINDS)
    ONSET = True                                # also scans across time zero (dk.ONSET_PLANS)

    def __init__(self, windows, *, part: str = "area", model: str = "auto", irf_fwhm_ps: float | None = None,
                 threshold_model: str = "saturating", refit: RefitPolicy | None = None):
        super().__init__()
        if not windows:
            raise ValueError("give at least one q window, e.g. [(1.70, 2.05)] (A^-1)")
        self.windows = [tuple(map(float, w)) for w in windows]
        self.part = part
        self.model = model
        self.irf_fwhm_ps = irf_fwhm_ps
        self.threshold_model = threshold_model
        self.refit = refit or RefitPolicy()
        self.kind: str | None = None
        self.onset = False                      # a scan across time zero: the fit is the onset
        self.raw_uid = self.run_uid = None      # of the last run seen and of its pump_probe run
        self.result = None
        self.refit_s: deque = deque(maxlen=RECENT_REFITS)   # s, the most recent refits of this run
        self.refits = 0                         # refits of this run
        self.accumulator: PumpProbeAccumulator | None = None
        self.q = None
        self.skipped = 0                        # frames marked invalid by the plan (this run)

    # -- documents of the reduced run -----------------------------------------------------------
    def start(self, doc):
        self.result, self.q, self.skipped, self.refits = None, None, 0, 0
        self.refit_s.clear()
        self.refit.reset()
        self.kind = None
        if doc.get("plan_name") != dk.INTEGRATE_PLAN:
            return
        self.kind = dk.PLAN_KINDS.get(doc.get(dk.RAW_PLAN_NAME))
        self.onset = doc.get(dk.RAW_PLAN_NAME) in dk.ONSET_PLANS
        if self.kind not in self.KINDS or (self.onset and not self.ONSET):
            self.kind = None
            return
        self.mode = doc.get(dk.REFERENCE) or "interleaved"
        self.raw_uid = doc.get(dk.RAW_UID)
        md = {"plan_name": self.PLAN, "kind": self.kind, dk.RAW_UID: self.raw_uid,
              "reduced_uid": doc["uid"], dk.RAW_PLAN_NAME: doc.get(dk.RAW_PLAN_NAME),
              "sample": doc.get("sample"), dk.REFERENCE: self.mode, "signal_part": self.part,
              "windows_inv_angstrom": [list(w) for w in self.windows],
              "model": self.threshold_model if self.kind == "fluence" else "onset" if self.onset else self.model,
              "threshold_model": self.threshold_model if self.kind == "grid" else None,
              "irf_fwhm_ps_fixed": self.irf_fwhm_ps,
              "purpose": "pump-on minus reference, window signal and fits of the raw run"}
        md.update(self.extra_md())
        self.run_uid = self.open_derived({k: v for k, v in md.items() if v is not None},
                                         time=doc["time"])["uid"]
        self.accumulator = PumpProbeAccumulator(self.mode)   # refuses a mode it cannot pair live

    def event(self, doc):
        if self.kind is None:
            return
        data = doc["data"]
        if data.get(dk.FRAME_VALID) is False:      # kept for the record, taken again by the plan
            self.skipped += 1
            return
        if self.q is None:
            self.q = np.asarray(data[dk.Q], dtype=float)
        role = dk.check_role(data.get(dk.ROLE))
        key = self._key(data)
        x = {f: data[f] for f in ("delay", "excitations") if f in data}
        done = self.accumulator.add(data[dk.INTENSITY], data.get(dk.SIGMA), role=role, key=key, x=x)
        if done:
            self.completed(done)
        now = time.monotonic()
        if done and self.refit.due(self.accumulator.pairs, now):
            self.update(started=now)

    def _key(self, data) -> tuple:
        def need(name):
            if name not in data:
                raise ValueError(f"a {self.kind} frame without {name!r}: not written by a trxrd pump-probe plan")
            return float(data[name])
        if self.kind == "delay":
            return (None, need(dk.REQUESTED_DELAY))
        if self.kind == "fluence":
            return (None, need(dk.REQUESTED_FLUENCE))
        return (need(dk.REQUESTED_FLUENCE), need(dk.REQUESTED_DELAY))

    def stop(self, doc):
        if self.kind is None or self.derived_uid is None:
            return
        done = self.accumulator.finish()
        if done:
            self.completed(done)
        if self.accumulator.points:
            self.update(started=time.monotonic())
            self.publish_final()
        self.close_derived(doc.get("exit_status", "success"), doc.get("reason", ""))

    # -- hooks of reductions built on this one (``LiveReflections``) -----------------------------------
    def extra_md(self) -> dict:
        """More start metadata of the derived run."""
        return {}

    def completed(self, keys) -> None:
        """Points whose sums just changed (work on those points only)."""

    def publish_final(self) -> None:
        """The end-of-run streams of the derived run."""
        self._emit_points()

    # -- reduction ------------------------------------------------------------------------------
    def update(self, started: float) -> None:
        """Build the results from the sums, fit what has enough points, publish the fits."""
        t0 = time.perf_counter()
        if self.kind == "grid":
            self.result = self._grid()
        else:
            self.result = self._single(self.kind, None)
        self.refit_s.append(time.perf_counter() - t0)
        self.refits += 1
        self.refit.record(self.accumulator.pairs, started, self.refit_s[-1])

    def _single(self, kind, where) -> PumpProbeResult | None:
        acc = self.accumulator
        if kind == "delay":
            result = acc.result(self.q, self.windows, x_field="delay", part=self.part, where=where,
                                point=lambda k: k[1])
        else:
            result = acc.result(self.q, self.windows, x_field="excitations", part=self.part, where=where,
                                point=lambda k: k[0] if self.kind == "grid" else k[1])
        if result is None or len(result.points) < MIN_POINTS[kind]:
            return result
        try:
            if kind == "delay" and self.onset:
                result.fit = fit_time_zero(result, irf_fwhm_ps=self.irf_fwhm_ps)
            elif kind == "delay":
                result.fit = fit_delays(result, model=self.model, irf_fwhm_ps=self.irf_fwhm_ps)
            else:
                result.fit = fit_fluences(result, model=self.threshold_model)
        except ValueError as exc:                # not enough data for the model yet, or no <N>
            logger.info("no %s fit yet with %d points: %s", kind, len(result.points), exc)
        if result.fit is not None:
            self._emit_fit(kind, result, None if self.kind != "grid" else where.label)
        return result

    def _grid(self) -> GridResult:
        keys = list(self.accumulator.points)
        out = GridResult()
        for fluence in sorted({k[0] for k in keys}):
            out.kinetics[fluence] = self._single("delay", _Select(0, fluence))
        for delay in sorted({k[1] for k in keys}):
            out.thresholds[delay] = self._single("fluence", _Select(1, delay))
        return out

    def _emit_fit(self, kind, result, group):
        fit = result.fit
        data = {"model": fit.model, "n_points": len(result.points), "redchi": float(fit.redchi)}
        keys = {"model": {"source": "reduction", "dtype": "string", "shape": []},
                "n_points": {"source": "reduction", "dtype": "integer", "shape": []}, "redchi": _number()}
        if kind == "delay":
            for name in KINETICS_PARAMS:
                value, err = fit.params.get(name, (math.nan, None))
                units = "ps" if name.endswith("_ps") else None
                data[name], data[name + "_err"] = float(value), math.nan if err is None else float(err)
                keys[name] = keys[name + "_err"] = _number(units)
        else:
            lo, hi = fit.threshold_range
            data.update(threshold=float(fit.threshold), threshold_err=float(fit.threshold_err),
                        threshold_low=float(lo), threshold_high=float(hi))
            for name in THRESHOLD_FIELDS:
                keys[name] = _number(dk.FIELDS["excitations"].units)
        if group is None:
            stream = "fit"
        else:
            stream = "kinetics" if kind == "delay" else "threshold"
            name = dk.REQUESTED_FLUENCE if kind == "delay" else dk.REQUESTED_DELAY
            data[name] = float(group)
            keys[name] = _number(dk.FIELDS[name].units)
        self.emit_event(stream, data, keys)

    def _emit_points(self):
        acc = self.accumulator
        point_field = {"delay": ("ps", "delay"), "fluence": ("mJ/cm^2", "excitations")}
        nq = len(self.q)
        arrays = {name: {"source": "reduction", "dtype": "array", "shape": [nq],
                         "units": "A^-1" if name == "q" else "counts/monitor"}
                  for name in ("q", "d_intensity", "d_intensity_err", "reference")}
        groups = [(None, self.kind)] if self.kind != "grid" else [(f, "delay") for f in sorted({k[0] for k in acc.points})]
        for group, kind in groups:
            point_units, x_field = point_field[kind]
            r = acc.result(self.q, self.windows, x_field=x_field, part=self.part,
                           where=None if group is None else _Select(0, group), point=lambda k: k[1])
            keys = {"point": _number(point_units), "x": _number(dk.FIELDS[x_field].units), "signal": _number(),
                    "signal_err": _number(), "n_pairs": {"source": "reduction", "dtype": "integer", "shape": []},
                    **arrays}
            if group is not None:
                keys[dk.REQUESTED_FLUENCE] = _number(dk.FIELDS[dk.REQUESTED_FLUENCE].units)
            for k in range(len(r.points)):
                data = {"point": float(r.points[k]), "x": float(r.x[k]), "signal": float(r.signal[k]),
                        "signal_err": float(r.signal_err[k]), "n_pairs": int(r.diff.n_pairs[k]),
                        "q": r.q_inv_angstrom, "d_intensity": r.diff.d_intensity[k],
                        "d_intensity_err": r.diff.d_intensity_err[k], "reference": r.diff.reference[k]}
                if group is not None:
                    data[dk.REQUESTED_FLUENCE] = float(group)
                self.emit_event("difference", data, keys)


class _Select:
    """Points of a grid with one coordinate fixed (key[index] == value)."""

    def __init__(self, index: int, value: float):
        self.index, self.label = index, value

    def __call__(self, key) -> bool:
        return key[self.index] == self.label
