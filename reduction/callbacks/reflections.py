"""Live per-reflection reduction and lattice thermometry, thin callbacks around
``reduction.reflections``:

- :class:`LiveReflections` (fed with reduced runs, like ``LivePumpProbe``, whose pairing and
  per-point sums it shares): when a frame completes a point, only that point's reflections are
  fitted again (constant work per frame); the per-reflection kinetics (delay scans) are refitted
  by the same throttling policy. Derived run ``reflections`` linked to the raw and reduced runs:
  stream ``fit`` (one event per refit: tau and amplitude of the shift and of <du^2> per
  reflection, shared t0 and IRF), at the end stream ``points`` (one event per delay or fluence:
  shift, FWHM change, I/I0, <du^2> per reflection, mean <du^2>, lattice parameters and, with a
  thermometer, the lattice temperature rise dT).
- :class:`LiveThermometer`: a ``temperature_series`` run's frames fitted per reflection; at the
  end a position-vs-temperature calibration per reflection, published as a ``thermometer``
  derived run (stream ``positions`` per frame, stream ``calibration`` per reflection with the
  calibration as JSON, which ``set_thermometer(uid)`` loads).

EXAMPLE::

    from trxrd.reduction.callbacks.reflections import LiveReflections
    from trxrd.reduction.reflections import parse_reflection
    refl = LiveReflections([parse_reflection(r) for r in ("200:1.98:2.12", "220:2.84:2.98")])
    integrator.subscribe(refl)              # the reduced runs of a LiveIntegrator
    refl.subscribe(writer)                  # its derived run goes to the catalog
    ...
    refl.series.anisotropy()                # tau and amplitude per reflection
"""
from __future__ import annotations

import json
import logging
import math
import time
from collections import deque

import numpy as np

from ... import datakeys as dk
from ..peaks import fit_pseudo_voigt
from ..reflections import (MIN_FIT_POINTS, ReflectionSeries, calibrate_reflection_thermometer, check_reflections,
                           fit_reflection_kinetics, lattice_point, measure_point, temperature_rise_series)
from ..thermometry import ThermometerCalibration
from .base import DerivedRunPublisher
from .pump_probe import RECENT_REFITS, LivePumpProbe, RefitPolicy

logger = logging.getLogger(__name__)


def _number(units=None):
    out = {"source": "reduction", "dtype": "number", "shape": []}
    if units:
        out["units"] = units
    return out


def _value(d: dict | None, key: str = "value") -> float:
    v = None if d is None else d.get(key)
    return math.nan if v is None else float(v)


class LiveReflections(LivePumpProbe):
    """Per-reflection observables of delay and fluence scans, live (see module).

    Parameters
    ----------
    reflections : list of Reflection
        hkl and q window of each reflection (``reduction.reflections.parse_reflection``).
    structure : {"cubic", "tetragonal"}
        Lattice parameters per point: cubic a, or tetragonal a, c and V.
    thermometer : ThermometerCalibration, optional
        Adds the lattice temperature rise dT per point (its reflection must be listed).
    irf_fwhm_ps : float, optional
        Fixes the instrument response of the per-reflection fits (else shared from the shifts).
    refit : RefitPolicy, optional
    """

    PLAN = dk.REFLECTIONS_PLAN
    KINDS = ("delay", "fluence")
    ONSET = False

    def __init__(self, reflections, *, structure: str = "cubic", thermometer: ThermometerCalibration | None = None,
                 irf_fwhm_ps: float | None = None, refit: RefitPolicy | None = None):
        reflections = list(reflections)
        if not reflections:
            raise ValueError("give at least one reflection, e.g. 200:1.98:2.12")
        super().__init__([(r.q_min, r.q_max) for r in reflections], irf_fwhm_ps=irf_fwhm_ps, refit=refit)
        self.reflections = reflections
        self.structure = structure
        self.thermometer = thermometer
        self.measured: dict = {}
        self.series: ReflectionSeries | None = None
        self.update_s: deque = deque(maxlen=RECENT_REFITS)   # time per completed point, the most recent

    def extra_md(self) -> dict:
        self.measured, self.series = {}, None
        self.update_s.clear()
        return {"reflections": [{"hkl": r.label, "q_min": r.q_min, "q_max": r.q_max} for r in self.reflections],
                "structure": self.structure, "purpose": "per-reflection shift, width, intensity and <du^2>, "
                "lattice parameters and their time constants",
                "thermometer": None if self.thermometer is None else self.thermometer.as_dict()}

    def completed(self, keys) -> None:
        if self.q is not None and not self.measured:
            self.reflections = check_reflections(self.reflections, self.q)   # bad windows fail this run
        for key in keys:
            t0 = time.perf_counter()
            d, err, ref, _ = self.accumulator.mean(key)
            sigma = err / math.sqrt(2.0) if np.all(np.isfinite(err)) and np.all(err > 0) else None
            point = measure_point(self.q, ref + d, ref, sigma, sigma, self.reflections)
            self.measured[key] = (point, lattice_point(point, self.reflections, self.structure))
            self.update_s.append(time.perf_counter() - t0)

    def _build(self) -> ReflectionSeries | None:
        if not self.measured:
            return None
        keys = sorted(self.measured, key=lambda k: k[1])
        field = "delay" if self.kind == "delay" else "excitations"
        sums = self.accumulator.points
        x = np.array([sums[k].x.get(field, np.nan) / sums[k].n for k in keys])
        return ReflectionSeries(self.reflections, x, [self.measured[k][0] for k in keys],
                                [self.measured[k][1] for k in keys])

    def update(self, started: float) -> None:
        t0 = time.perf_counter()
        self.series = series = self._build()
        if series is not None and self.kind == "delay" and series.x.size >= MIN_FIT_POINTS:
            try:
                fit_reflection_kinetics(series, irf_fwhm_ps=self.irf_fwhm_ps)
                self._emit_fits(series)
            except ValueError as exc:
                logger.info("no per-reflection fit yet with %d points: %s", series.x.size, exc)
        if series is not None and self.thermometer is not None:
            temperature_rise_series(series, self.thermometer)       # after the fits: their error scale
        self.result = series
        self.refit_s.append(time.perf_counter() - t0)
        self.refits += 1
        self.refit.record(self.accumulator.pairs, started, self.refit_s[-1])

    def _emit_fits(self, series) -> None:
        data = {"n_points": int(series.x.size), "t0_ps": series.common["t0_ps"],
                "irf_fwhm_ps": series.common["irf_fwhm_ps"]}
        keys = {"n_points": {"source": "reduction", "dtype": "integer", "shape": []},
                "t0_ps": _number("ps"), "irf_fwhm_ps": _number("ps")}
        for row in series.anisotropy():
            h = row["hkl"]
            for name, units in (("tau_shift_ps", "ps"), ("shift_max", ""), ("tau_du2_ps", "ps"),
                                ("du2_max_A2", "A^2")):
                data[f"{name}_{h}"], data[f"{name}_{h}_err"] = _value(row[name]), _value(row[name], "stderr")
                keys[f"{name}_{h}"] = keys[f"{name}_{h}_err"] = _number(units)
        self.emit_event("fit", data, keys)

    def publish_final(self) -> None:
        series = self.series
        if series is None:
            return
        x_units = "ps" if self.kind == "delay" else dk.FIELDS["excitations"].units
        mean = series.mean_du2()
        for k, point in enumerate(series.points):
            data = {"x": float(series.x[k]), "mean_du2_A2": mean[k]["value"], "mean_du2_err": mean[k]["stderr"]}
            keys = {"x": _number(x_units), "mean_du2_A2": _number("A^2"), "mean_du2_err": _number("A^2")}
            for r in series.reflections:
                for name, units in (("shift", ""), ("shift_err", ""), ("q_on", "A^-1"), ("fwhm_change", "A^-1"),
                                    ("fwhm_err", "A^-1"), ("ratio", ""), ("ratio_err", ""), ("du2_A2", "A^2"),
                                    ("du2_err", "A^2")):
                    data[f"{name}_{r.label}"] = float(point[r.label][name])
                    keys[f"{name}_{r.label}"] = _number(units)
            for name, value in series.lattice[k].items():
                if isinstance(value, dict):
                    data[name], data[name + "_err"] = value["value"], value["stderr"]
                    keys[name] = keys[name + "_err"] = _number("A" if "angstrom" in name else "")
            if series.temperature_rise is not None:
                t = series.temperature_rise[k]
                data.update(temperature_rise_k=_value(t), temperature_rise_err=_value(t, "stderr"),
                            extrapolated=bool(t["extrapolated"]))
                keys.update(temperature_rise_k=_number("K"), temperature_rise_err=_number("K"),
                            extrapolated={"source": "reduction", "dtype": "boolean", "shape": []})
            self.emit_event("points", data, keys)


class LiveThermometer(DerivedRunPublisher):
    """Thermometer calibrations from the frames of a static heating series (see module).

    Parameters
    ----------
    reflections : list of Reflection
        Each gets its position-vs-temperature calibration.
    degree : int
        Polynomial degree of the calibrations.
    """

    def __init__(self, reflections, *, degree: int = 1):
        super().__init__()
        self.reflections = list(reflections)
        self.degree = degree
        self.calibrations: dict[str, ThermometerCalibration] = {}
        self._rows: list | None = None

    def start(self, doc):
        self._rows = None
        if doc.get("plan_name") != dk.INTEGRATE_PLAN or doc.get(dk.RAW_PLAN_NAME) not in dk.HEATING_PLANS:
            return
        self._rows = []
        self.calibrations = {}
        self._sample = (doc.get("sample") or {}).get("name")
        self.open_derived({"plan_name": dk.THERMOMETER_PLAN, dk.RAW_UID: doc.get(dk.RAW_UID),
                           "reduced_uid": doc["uid"], dk.RAW_PLAN_NAME: doc.get(dk.RAW_PLAN_NAME),
                           "sample": doc.get("sample"), "degree": self.degree,
                           "reflections": [{"hkl": r.label, "q_min": r.q_min, "q_max": r.q_max}
                                           for r in self.reflections],
                           "purpose": "peak positions vs heating-cell temperature: a lattice thermometer"},
                          time=doc["time"])

    def event(self, doc):
        if self._rows is None:
            return
        data = doc["data"]
        if "temperature" not in data:
            raise ValueError("a heating-series frame without the cell temperature (no trxrd_keys map?)")
        q = np.asarray(data[dk.Q], dtype=float)
        if not self._rows:
            self.reflections = check_reflections(self.reflections, q)
        sigma = data.get(dk.SIGMA)
        row = {"temperature_c": float(data["temperature"])}
        for r in self.reflections:
            fit = fit_pseudo_voigt(q, data[dk.INTENSITY], q_min=r.q_min, q_max=r.q_max, sigma=sigma)
            row[f"q_{r.label}"], row[f"q_{r.label}_err"] = fit.center, fit.center_err
        self._rows.append(row)
        keys = {name: _number("C" if name.startswith("temperature") else "A^-1") for name in row}
        self.emit_event("positions", row, keys)

    def stop(self, doc):
        if self._rows is None or self.derived_uid is None:
            return
        t = np.array([row["temperature_c"] for row in self._rows])
        for r in self.reflections:
            q = np.array([row[f"q_{r.label}"] for row in self._rows])
            e = np.array([row[f"q_{r.label}_err"] for row in self._rows])
            cal = calibrate_reflection_thermometer(t, q, e if np.all(np.isfinite(e) & (e > 0)) else None, r.label,
                                                   degree=self.degree, sample=self._sample)
            self.calibrations[r.label] = cal
            self.emit_event("calibration", {
                "hkl": r.label, "expansion_per_k": cal.expansion_per_k, "expansion_per_k_err": cal.expansion_per_k_err,
                "redchi": cal.redchi, "calibration": json.dumps(cal.as_dict())},
                {"hkl": {"source": "reduction", "dtype": "string", "shape": []},
                 "expansion_per_k": _number("1/K"), "expansion_per_k_err": _number("1/K"), "redchi": _number(),
                 "calibration": {"source": "reduction", "dtype": "string", "shape": []}})
        self.close_derived(doc.get("exit_status", "success"), doc.get("reason", ""))
