"""Hot-injection synthesis seen by SAXS: polydisperse spheres whose mean radius, width and
number concentration evolve after the syringe pump injects the precursor.

EXAMPLE::

    import numpy as np
    from trxrd.simulated_devices.physics import load_config
    from trxrd.simulated_devices.physics.synthesis import SynthesisModel
    syn = SynthesisModel(load_config()["synthesis"])
    syn.state(t_s=60.0, mantle_c=240.0, injected_ml=1.0)   # radius, sigma, concentration
    syn.intensity(np.linspace(0.01, 0.5, 200), 60.0, 240.0, 1.0)
"""
from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaln

GAS_J_MOL_K = 8.314462618


def sphere_form_factor(qr: np.ndarray) -> np.ndarray:
    """Normalised sphere amplitude 3 (sin x - x cos x) / x^3 (1 at x -> 0)."""
    x = np.asarray(qr, dtype=float)
    out = np.ones_like(x)
    big = x > 1e-3
    xb = x[big]
    out[big] = 3.0 * (np.sin(xb) - xb * np.cos(xb)) / xb**3
    return out


def radius_distribution(r_nm: np.ndarray, mean_nm: float, sigma_nm: float, kind: str) -> np.ndarray:
    """Number distribution of radii (normalised to unit area on the given grid)."""
    r = np.asarray(r_nm, dtype=float)
    if kind == "gaussian":
        p = np.exp(-0.5 * ((r - mean_nm) / sigma_nm) ** 2)
    elif kind == "schulz":
        z = (mean_nm / sigma_nm) ** 2 - 1.0
        logp = (z * np.log(np.clip(r, 1e-12, None) * (z + 1) / mean_nm) - r * (z + 1) / mean_nm
                - gammaln(z + 1))
        p = np.exp(logp - logp.max())
    else:
        raise ValueError(f"unknown radius distribution {kind!r} (use 'schulz' or 'gaussian')")
    return p / np.trapezoid(p, r)


class SynthesisModel:
    """Nucleation and growth after injection; rates scale with the mantle temperature
    (Arrhenius about the reference temperature). Before injection there are no particles."""

    def __init__(self, cfg: dict):
        self.cfg = cfg
        # growth law dr/dt = k / r^n (1 - (r/r_f)^3), integrated once on a reduced time grid
        n = cfg["growth_exponent"]
        r0, rf = cfg["r0_nm"], cfg["r_final_nm"]
        k = (rf ** (n + 1) - r0 ** (n + 1)) / ((n + 1) * cfg["growth_time_s"])
        self._tau = np.linspace(0.0, 40.0 * cfg["growth_time_s"], 8001)
        r = np.empty_like(self._tau)
        r[0] = r0
        dt = self._tau[1] - self._tau[0]
        for i in range(1, len(r)):
            ri = r[i - 1]
            r[i] = min(rf, ri + dt * k / ri**n * (1.0 - (ri / rf) ** 3))
        self._r = r

    def rate_factor(self, mantle_c: float) -> float:
        ea = self.cfg["activation_energy_kj_mol"] * 1e3
        t_ref = self.cfg["reference_temperature_c"] + 273.15
        return math.exp(-ea / GAS_J_MOL_K * (1.0 / (mantle_c + 273.15) - 1.0 / t_ref))

    def state(self, t_s: float, mantle_c: float, injected_ml: float) -> dict:
        """Mean radius (nm), width (nm) and number concentration (uM) t_s after injection."""
        cfg = self.cfg
        if t_s is None or t_s < 0 or injected_ml <= 0:
            return {"radius_nm": cfg["r0_nm"], "sigma_nm": cfg["sigma0_nm"], "concentration_um": 0.0}
        tr = t_s * self.rate_factor(mantle_c)
        radius = float(np.interp(tr, self._tau, self._r))
        sigma = cfg["sigma_final_nm"] + (cfg["sigma0_nm"] - cfg["sigma_final_nm"]) * math.exp(-tr / cfg["focusing_time_s"])
        conc = (cfg["concentration_final_um"] * min(injected_ml / cfg["nominal_injection_ml"], 1.0)
                * (1.0 - math.exp(-tr / cfg["nucleation_time_s"])))
        return {"radius_nm": radius, "sigma_nm": sigma, "concentration_um": conc}

    def intensity(self, q_inv_angstrom, t_s, mantle_c, injected_ml) -> np.ndarray:
        """SAXS intensity (counts/s/pixel at nominal flux, before solid angle) on q (A^-1)."""
        st = self.state(t_s, mantle_c, injected_ml)
        q_nm = np.asarray(q_inv_angstrom, dtype=float) * 10.0
        bg = np.full_like(q_nm, self.cfg["background_counts_per_s"])
        if st["concentration_um"] <= 0:
            return bg
        mean, sig = st["radius_nm"], st["sigma_nm"]
        r = np.linspace(max(mean - 5 * sig, 0.05), mean + 6 * sig, 80)
        p = radius_distribution(r, mean, sig, self.cfg["distribution"])
        vol = 4.0 / 3.0 * math.pi * r**3
        amp = sphere_form_factor(np.outer(q_nm, r))
        i_q = np.trapezoid(p * vol**2 * amp**2, r, axis=1)
        return bg + self.cfg["counts_per_um_nm6"] * st["concentration_um"] * i_q
