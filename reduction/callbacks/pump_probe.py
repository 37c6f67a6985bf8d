"""Live pump-probe reduction of the integrated frames of a delay or fluence scan.

Fed with the reduced runs of ``LiveIntegrator``: after every completed point (a pump-on frame
with its reference) it updates dI(q, point) and the window signal, refits the kinetics (delay
scans) or the melting threshold (fluence scans) and redraws the live figure. It publishes a
``pump_probe`` run linked to the raw and reduced runs: stream ``fit`` (one event per refit,
the last is the final fit) and, at the end, stream ``difference`` (one event per point:
delay or fluence, x, signal, dI(q), errors, reference curve).

EXAMPLE::

    from trxrd.reduction.callbacks import live_reduction
    integrator, pump_probe = live_reduction("waxs.poni", mask="waxs_mask.edf",
                                            windows=[(1.70, 2.05)], store=writer, plot=True)
    RE.subscribe(integrator)
    RE(delay_scan([pilatus], dense_then_log(-200, 10000, 40)))
    pump_probe.result.fit.summary()      # "biexp: tau1 = 151 +- 6 ps, ..."
"""
from __future__ import annotations

import logging
import math
import time

import numpy as np

from ..pump_probe import fit_delays, fit_fluences, pump_probe_signal
from .base import DerivedRunPublisher
from .integrator import LiveIntegrator

logger = logging.getLogger(__name__)

KINDS = {"delay_scan": "delay", "fluence_scan": "fluence"}
KINETICS_PARAMS = ("t0_ps", "irf_fwhm_ps", "a1", "tau1_ps", "a2", "tau2_ps")
MIN_POINTS = {"delay": 8, "fluence": 5}


def _number(data_key_units=None):
    out = {"source": "reduction", "dtype": "number", "shape": []}
    if data_key_units:
        out["units"] = data_key_units
    return out


class LivePumpProbe(DerivedRunPublisher):
    """Accumulates integrated frames, refits after every point, publishes and plots (see module).

    windows: q windows (A^-1) of the signal; part: "area", "negative" or "positive";
    model: "exp", "biexp" or "auto"; irf_fwhm_ps fixes the IRF (default fitted);
    plot: False, True (a new matplotlib figure) or a Figure to draw into.
    """

    def __init__(self, windows, *, part: str = "area", model: str = "auto", irf_fwhm_ps: float | None = None,
                 threshold_model: str = "saturating", plot=False, redraw_s: float = 1.0):
        super().__init__()
        if not windows:
            raise ValueError("give at least one q window, e.g. [(1.70, 2.05)] (A^-1)")
        self.windows = [tuple(map(float, w)) for w in windows]
        self.part = part
        self.model = model
        self.irf_fwhm_ps = irf_fwhm_ps
        self.threshold_model = threshold_model
        self.redraw_s = float(redraw_s)
        self._figure = plot
        self._last_draw = 0.0
        self.kind: str | None = None
        self.raw_uid = self.run_uid = None      # of the last run seen and of its pump_probe run
        self.result = None
        self.refit_s: list[float] = []
        self._reset()

    def _reset(self):
        self.q = None
        self._intensity, self._sigma, self._points, self._x, self._is_ref = [], [], [], [], []
        self._done: set = set()
        self._complete = 0          # frames usable (every signal frame has its reference)

    # -- documents of the reduced run -----------------------------------------------------------
    def start(self, doc):
        self._reset()
        self.result = None
        self.refit_s = []
        self.kind = KINDS.get(doc.get("raw_plan_name")) if doc.get("plan_name") == "integrate" else None
        if self.kind is None:
            return
        self.mode = doc.get("reference") or "interleaved"
        self.raw_uid = doc.get("raw_uid")
        md = {"plan_name": "pump_probe", "kind": self.kind, "raw_uid": doc.get("raw_uid"),
              "reduced_uid": doc["uid"], "raw_plan_name": doc.get("raw_plan_name"),
              "sample": doc.get("sample"), "reference": self.mode, "signal_part": self.part,
              "windows_inv_angstrom": [list(w) for w in self.windows],
              "model": self.model if self.kind == "delay" else self.threshold_model,
              "irf_fwhm_ps_fixed": self.irf_fwhm_ps,
              "purpose": "pump-on minus reference, window signal and fit of the raw run"}
        self.run_uid = self.open_derived({k: v for k, v in md.items() if v is not None},
                                         time=doc["time"])["uid"]

    def event(self, doc):
        if self.kind is None:
            return
        data = doc["data"]
        if self.q is None:
            self.q = np.asarray(data["q"], dtype=float)
        role = data.get("role", "on")
        self._intensity.append(np.asarray(data["intensity"], dtype=float))
        self._sigma.append(np.asarray(data["sigma"], dtype=float))
        self._is_ref.append(role != "on")
        if self.kind == "delay":
            self._points.append(float(data.get("requested_delay", data.get("pump_delay"))))
            self._x.append(float(data.get("pump_delay", self._points[-1])))
        else:
            self._points.append(float(data.get("requested_fluence", data.get("att_fluence"))))
            self._x.append(float(data.get("att_excitations", math.nan)))
        n = len(self._is_ref)
        if self.mode == "interleaved" and not self._is_ref[-1]:
            return                                   # its pump-off partner comes next
        if not any(self._is_ref) or all(self._is_ref):
            return
        self._complete = n
        key = (self._points[-1], data.get("repeat", 0))
        if key not in self._done:
            self._done.add(key)
            self.update()

    def stop(self, doc):
        if self.kind is None or self.derived_uid is None:
            return
        if self._complete:
            self.update(final=True)
            self._emit_points()
        self.close_derived(doc.get("exit_status", "success"), doc.get("reason", ""))

    # -- reduction ------------------------------------------------------------------------------
    def update(self, final: bool = False):
        """Recompute dI and the signal over the frames so far, refit, publish, redraw."""
        n = self._complete
        result = pump_probe_signal(self.q, np.array(self._intensity[:n]), self._points[:n], self._is_ref[:n],
                                   self.windows, sigma=np.array(self._sigma[:n]), x=self._x[:n],
                                   part=self.part, mode=self.mode)
        if len(result.points) >= MIN_POINTS[self.kind]:
            t0 = time.perf_counter()
            try:
                if self.kind == "delay":
                    result.fit = fit_delays(result, model=self.model, irf_fwhm_ps=self.irf_fwhm_ps)
                else:
                    result.fit = fit_fluences(result, model=self.threshold_model)
            except ValueError as exc:                # not enough data for the model yet
                logger.info("no fit yet after %d points: %s", len(result.points), exc)
            self.refit_s.append(time.perf_counter() - t0)
        self.result = result
        if result.fit is not None:
            self._emit_fit(result)
        self._draw(final)

    def _emit_fit(self, result):
        fit = result.fit
        data, keys = {"model": fit.model, "n_points": len(result.points), "redchi": float(fit.redchi)}, {
            "model": {"source": "reduction", "dtype": "string", "shape": []},
            "n_points": {"source": "reduction", "dtype": "integer", "shape": []},
            "redchi": _number()}
        if self.kind == "delay":
            for name in KINETICS_PARAMS:
                value, err = fit.params.get(name, (math.nan, None))
                units = "ps" if name.endswith("_ps") else None
                data[name], data[name + "_err"] = float(value), math.nan if err is None else float(err)
                keys[name] = keys[name + "_err"] = _number(units)
        else:
            lo, hi = fit.threshold_range
            data.update(threshold=float(fit.threshold), threshold_err=float(fit.threshold_err),
                        threshold_low=float(lo), threshold_high=float(hi))
            for name in ("threshold", "threshold_err", "threshold_low", "threshold_high"):
                keys[name] = _number("excitations per NC")
        self.emit_event("fit", data, keys)

    def _emit_points(self):
        r = self.result
        nq = len(r.q_inv_angstrom)
        point_units, x_units = ("ps", "ps") if self.kind == "delay" else ("mJ/cm^2", "excitations per NC")
        keys = {"point": _number(point_units), "x": _number(x_units), "signal": _number(),
                "signal_err": _number(), "n_pairs": {"source": "reduction", "dtype": "integer", "shape": []}}
        for name in ("q", "d_intensity", "d_intensity_err", "reference"):
            keys[name] = {"source": "reduction", "dtype": "array", "shape": [nq],
                          "units": "A^-1" if name == "q" else "counts/monitor"}
        for k in range(len(r.points)):
            self.emit_event("difference", {
                "point": float(r.points[k]), "x": float(r.x[k]), "signal": float(r.signal[k]),
                "signal_err": float(r.signal_err[k]), "n_pairs": int(r.diff.n_pairs[k]),
                "q": r.q_inv_angstrom, "d_intensity": r.diff.d_intensity[k],
                "d_intensity_err": r.diff.d_intensity_err[k], "reference": r.diff.reference[k]}, keys)

    def _draw(self, final: bool):
        if self._figure is False or self._figure is None:
            return
        now = time.monotonic()
        if not final and now - self._last_draw < self.redraw_s:
            return
        self._last_draw = now
        from ..plots import draw_pump_probe

        if self._figure is True:
            import matplotlib.pyplot as plt

            self._figure = plt.figure("trxrd pump-probe", figsize=(11, 4.5))
        draw_pump_probe(self._figure, self.result, self.kind)
        self._figure.canvas.draw_idle()
        self._figure.canvas.flush_events()


def live_reduction(poni, *, mask=None, windows, npt: int = 1000, image_key: str = "pilatus_image",
                   store=None, **pump_probe_options):
    """The live chain: a LiveIntegrator feeding a LivePumpProbe; *store* (e.g. a CatalogWriter)
    receives both derived runs. Subscribe the returned integrator to the RunEngine (or to a
    document stream in another process)."""
    integrator = LiveIntegrator(poni, mask=mask, npt=npt, image_key=image_key)
    pump_probe = LivePumpProbe(windows, **pump_probe_options)
    if store is not None:
        integrator.subscribe(store)
        pump_probe.subscribe(store)
    integrator.subscribe(pump_probe)
    return integrator, pump_probe
