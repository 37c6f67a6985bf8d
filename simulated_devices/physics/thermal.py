"""Heating cell (or heating mantle) with a PID controller, a heater block, the cell and a
K-type thermocouple that lags the cell. The ramped working set point moves at the ramp
rate, so the controller ramps like a real one; heater lag gives overshoot and settling.

EXAMPLE::

    from trxrd.simulated_devices.physics import load_config
    from trxrd.simulated_devices.physics.thermal import HeatingCellModel
    cell = HeatingCellModel(load_config()["heating_cell"])
    cell.setpoint_c = 80.0; cell.enabled = True
    for _ in range(600): cell.advance(0.1)
    round(cell.sensor_c)                          # 80
"""
from __future__ import annotations

import math

import numpy as np


class HeatingCellModel:
    """Lumped two-body thermal model under PID control (times in model seconds)."""

    STEP_S = 0.02

    def __init__(self, cfg: dict, rng: np.random.Generator | None = None):
        self.cfg = cfg
        self.rng = rng or np.random.default_rng()
        amb = cfg["ambient_c"]
        self.heater_c = self.cell_c = self.sensor_c = amb
        self.setpoint_c = amb
        self.working_setpoint_c = amb
        self.ramp_c_min = 0.0       # 0 means jump straight to the set point
        self.enabled = False
        self.p, self.i, self.d = cfg["p"], cfg["i"], cfg["d"]
        self.output = 0.0
        self._integral = 0.0
        self._last_error = None

    def _step(self, dt: float) -> None:
        cfg = self.cfg
        # ramped working set point
        if self.ramp_c_min > 0:
            step = self.ramp_c_min / 60.0 * dt
            diff = self.setpoint_c - self.working_setpoint_c
            self.working_setpoint_c += math.copysign(min(abs(diff), step), diff)
        else:
            self.working_setpoint_c = self.setpoint_c
        # PID on the thermocouple reading
        if self.enabled:
            err = self.working_setpoint_c - self.sensor_c
            deriv = 0.0 if self._last_error is None else (err - self._last_error) / dt
            self._last_error = err
            trial = self.p * err + self.i * (self._integral + err * dt) + self.d * deriv
            if 0.0 < trial < 1.0 or (trial >= 1.0 and err < 0) or (trial <= 0.0 and err > 0):
                self._integral += err * dt  # anti-windup: integrate only when not saturated
            u = self.p * err + self.i * self._integral + self.d * deriv
            self.output = min(1.0, max(0.0, u))
        else:
            self.output = 0.0
            self._integral = 0.0
            self._last_error = None
        # plant
        q_in = self.output * cfg["heater_max_w"]
        q_hc = cfg["heater_to_cell_w_k"] * (self.heater_c - self.cell_c)
        q_loss = cfg["cell_loss_w_k"] * (self.cell_c - cfg["ambient_c"])
        self.heater_c += (q_in - q_hc) / cfg["heater_heat_capacity_j_k"] * dt
        self.cell_c += (q_hc - q_loss) / cfg["cell_heat_capacity_j_k"] * dt
        self.sensor_c += (self.cell_c - self.sensor_c) * (1.0 - math.exp(-dt / cfg["thermocouple_lag_s"]))

    def advance(self, wall_dt_s: float) -> None:
        """Advance by wall_dt_s of wall-clock time (times the configured speed-up)."""
        remaining = wall_dt_s * self.cfg["speedup"]
        while remaining > 1e-12:
            dt = min(self.STEP_S, remaining)
            self._step(dt)
            remaining -= dt

    def reading_c(self) -> float:
        """Thermocouple reading with noise."""
        return self.sensor_c + self.rng.normal(0.0, self.cfg["noise_c"])
