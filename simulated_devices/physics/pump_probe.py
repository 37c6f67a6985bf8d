"""Photo-excitation, melting and recovery of the nanocrystals after the pump pulse.

Kinetics follow docs/science.md 6 and 10: a bi-exponential recovery started at time zero (Heaviside)
and convolved with a Gaussian instrument response by numerical quadrature (``response``).

EXAMPLE::

    from trxrd.simulated_devices.physics.pump_probe import excitations, melted_fraction
    n = excitations(fluence_mj_cm2=2.0, sigma_cm2=4e-14, wavelength_nm=400.0)  # ~161
"""
from __future__ import annotations

import numpy as np

from .response import convolve_irf, exponential

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


def melted_fraction(t_ps, n_exc, cfg: dict):
    """Melted (disordered) fraction at delay t after time zero for <N> excitations.

    cfg is the sample file's ``pump_probe`` table.
    """
    f0 = saturated_melt(
        n_exc, cfg["threshold_excitations"], cfg["saturation_excitations"],
        cfg["max_melted_fraction"],
    )
    a1, tau1, tau2 = cfg["a1"], cfg["tau1_ps"], cfg["tau2_ps"]
    shape = convolve_irf(lambda u: a1 * np.exp(-u / tau1) + (1.0 - a1) * np.exp(-u / tau2), t_ps,
                         cfg["irf_fwhm_ps"])
    return f0 * shape


def lattice_heating_k(t_ps, n_exc, cfg: dict):
    """Transient lattice temperature rise (K): jumps with the IRF, cools with tau2."""
    return cfg["heating_k_per_excitation"] * np.asarray(n_exc, dtype=float) * convolve_irf(
        exponential(cfg["tau2_ps"]), t_ps, cfg["irf_fwhm_ps"])
