"""Photo-excitation, melting and recovery of the nanocrystals after the pump pulse.

Kinetics follow docs/science.md 6 and 10: a bi-exponential recovery started at time zero (Heaviside)
and convolved with a Gaussian instrument response, in closed (erfc) form.

EXAMPLE::

    from trxrd.simulated_devices.physics.pump_probe import excitations, melted_fraction
    n = excitations(fluence_mj_cm2=2.0, sigma_cm2=4e-14, wavelength_nm=400.0)  # ~161
"""
from __future__ import annotations

import math

import numpy as np
from scipy.special import erfc, erfcx

PLANCK_J_S = 6.62607015e-34
LIGHT_M_S = 299792458.0


def photon_energy_mj(wavelength_nm: float) -> float:
    """Energy of one pump photon in mJ."""
    return PLANCK_J_S * LIGHT_M_S / (wavelength_nm * 1e-9) * 1e3


def excitations(fluence_mj_cm2, sigma_cm2: float, wavelength_nm: float):
    """Mean number of absorbed photons per NC, <N> = sigma * j / (h nu)."""
    return sigma_cm2 * np.asarray(fluence_mj_cm2, dtype=float) / photon_energy_mj(wavelength_nm)


def saturated_melt(n_exc, threshold: float, saturation: float, max_fraction: float):
    """Melted fraction reached right after the pump: zero below the threshold <N>_th,
    rising as max_fraction * (1 - exp(-(<N> - <N>_th) / saturation)) above it."""
    over = np.clip(np.asarray(n_exc, dtype=float) - threshold, 0.0, None)
    return max_fraction * (1.0 - np.exp(-over / saturation))


def exp_conv_gauss(t_ps, tau_ps: float, irf_fwhm_ps: float):
    """H(t) exp(-t / tau) convolved with a unit-area Gaussian of FWHM irf_fwhm_ps."""
    t = np.asarray(t_ps, dtype=float)
    s = irf_fwhm_ps / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    if s <= 0:
        return np.where(t >= 0, np.exp(-np.clip(t, 0, None) / tau_ps), 0.0)
    x = (s / tau_ps - t / s) / math.sqrt(2.0)
    out = np.empty_like(t)
    pos = x >= 0  # before/at the rise: scaled complementary error function is stable
    out[pos] = 0.5 * np.exp(-0.5 * (t[pos] / s) ** 2) * erfcx(x[pos])
    neg = ~pos  # long after the rise: plain form, the exponent is negative
    out[neg] = 0.5 * np.exp(0.5 * (s / tau_ps) ** 2 - t[neg] / tau_ps) * erfc(x[neg])
    return out


def melted_fraction(t_ps, n_exc, cfg: dict):
    """Melted (disordered) fraction at delay t after time zero for <N> excitations.

    cfg is the sample file's ``pump_probe`` table.
    """
    f0 = saturated_melt(
        n_exc, cfg["threshold_excitations"], cfg["saturation_excitations"],
        cfg["max_melted_fraction"],
    )
    a1 = cfg["a1"]
    shape = a1 * exp_conv_gauss(t_ps, cfg["tau1_ps"], cfg["irf_fwhm_ps"]) + (1.0 - a1) * exp_conv_gauss(
        t_ps, cfg["tau2_ps"], cfg["irf_fwhm_ps"]
    )
    return f0 * shape


def lattice_heating_k(t_ps, n_exc, cfg: dict):
    """Transient lattice temperature rise (K): jumps with the IRF, cools with tau2."""
    return cfg["heating_k_per_excitation"] * np.asarray(n_exc, dtype=float) * exp_conv_gauss(
        t_ps, cfg["tau2_ps"], cfg["irf_fwhm_ps"]
    )
