"""Pump laser: half-wave plate + polariser attenuator, power, fluence, and pump-probe delay.

EXAMPLE::

    from trxrd.simulated_devices.physics import load_config
    from trxrd.simulated_devices.physics.laser import fluence_mj_cm2, transmission
    cfg = load_config()["laser"]
    fluence_mj_cm2(transmission(12.0, cfg) * cfg["power_before_waveplate_w"], cfg)
"""
from __future__ import annotations

import math

import numpy as np

from .pump_probe import LIGHT_M_S


def transmission(theta_deg, cfg: dict):
    """Malus law through the polariser: Tmin + (Tmax - Tmin) cos^2(2 (theta - theta0))."""
    th = np.radians(np.asarray(theta_deg, dtype=float) - cfg["theta0_deg"])
    return cfg["transmission_min"] + (cfg["transmission_max"] - cfg["transmission_min"]) * np.cos(2 * th) ** 2


def spot_area_cm2(cfg: dict) -> float:
    """Area of a Gaussian spot from its FWHMs: pi / (4 ln 2) * FWHMx * FWHMy."""
    return math.pi / (4 * math.log(2)) * cfg["spot_fwhm_x_um"] * cfg["spot_fwhm_y_um"] * 1e-8


def fluence_mj_cm2(power_w, cfg: dict):
    """Fluence (mJ/cm^2) = pulse energy / spot area, pulse energy = power / repetition rate."""
    pulse_mj = np.asarray(power_w, dtype=float) / cfg["rep_rate_hz"] * 1e3
    return pulse_mj / spot_area_cm2(cfg)


def stage_delay_ps(position_mm, time_zero_mm: float, n_passes: int):
    """Optical delay of the stage: n_passes * (x - x0) / c, in ps.

    Sign convention: moving the stage to larger positions delays the X-ray probe
    relative to the pump (positive delay = probe after pump).
    """
    return n_passes * (np.asarray(position_mm, dtype=float) - time_zero_mm) * 1e-3 / LIGHT_M_S * 1e12
