"""Recirculating liquid jet fed by a peristaltic pump from a small reservoir.

EXAMPLE::

    from trxrd.simulated_devices.physics import load_config
    from trxrd.simulated_devices.physics.jet import JetModel
    jet = JetModel(load_config()["liquid_jet"])
    jet.run = True; jet.advance(2.0); jet.flowing   # True
"""
from __future__ import annotations

import math


class JetModel:
    """Flow follows the pump set point with a first-order spin-up; the reservoir loses
    liquid while the pump runs, and an empty reservoir stops the flow."""

    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.setpoint_ml_min = cfg["flow_rate_ml_min"]
        self.run = False
        self.flow_ml_min = 0.0
        self.reservoir_ml = cfg["reservoir_ml"]

    def advance(self, dt_s: float) -> None:
        target = self.setpoint_ml_min if (self.run and self.reservoir_ml > 0) else 0.0
        k = 1.0 - math.exp(-dt_s / self.cfg["spin_up_s"])
        self.flow_ml_min += (target - self.flow_ml_min) * k
        if self.run:
            self.reservoir_ml = max(0.0, self.reservoir_ml - self.cfg["loss_ml_per_min"] * dt_s / 60.0)

    @property
    def flowing(self) -> bool:
        """What the flow sensor reports: a stable jet above the minimum flow."""
        return self.flow_ml_min >= self.cfg["min_stable_flow_ml_min"]

    @property
    def pressure_bar(self) -> float:
        return self.cfg["pressure_bar_per_ml_min"] * self.flow_ml_min

    def illuminated_fraction(self, x_um: float) -> float:
        """Fraction of the beam that crosses the jet when the sample stage is at x_um."""
        w, e = self.cfg["jet_width_um"] / 2.0, self.cfg["jet_edge_um"]
        return 0.5 * (math.erf((x_um + w) / e) - math.erf((x_um - w) / e))
