"""Powder diffraction of the simulated nanocrystals: chalcopyrite CuInSe2 (tetragonal, I-42d),
rock-salt PbSe (cubic, Fm-3m), the latter with a response per reflection family, and
zinc-blende CdSe (cubic, F-43m).

EXAMPLE::

    from trxrd.simulated_devices.physics.crystal import reflection_q, family
    reflection_q((1, 1, 2), a_angstrom=5.78, c_angstrom=11.62)   # ~1.880 A^-1
    reflection_q((2, 0, 0), a_angstrom=6.12, c_angstrom=6.12)    # ~2.053 A^-1
    family((0, 2, 0))                                            # "200"
"""
from __future__ import annotations

import math

import numpy as np

# Reflections with relative integrated intensities of a CuInSe2 powder pattern
# (multiplicity and structure factor included). Overlapping pairs are listed apart,
# so a change of c/a splits them as it would in the real pattern.
CHALCOPYRITE_REFLECTIONS: dict[tuple[int, int, int], float] = {
    (1, 0, 1): 4.0,
    (1, 1, 2): 100.0,
    (1, 0, 3): 3.0,
    (2, 1, 1): 4.0,
    (2, 2, 0): 32.0,
    (2, 0, 4): 28.0,
    (3, 1, 2): 20.0,
    (1, 1, 6): 10.0,
    (4, 0, 0): 4.0,
    (0, 0, 8): 2.0,
    (3, 3, 2): 6.0,
    (3, 1, 6): 5.0,
}

# Rock-salt PbSe: approximate relative integrated intensities of a powder pattern (all-even
# reflections scatter with f_Pb + f_Se, all-odd with f_Pb - f_Se; multiplicity included).
ROCKSALT_REFLECTIONS: dict[tuple[int, int, int], float] = {
    (1, 1, 1): 20.0,
    (2, 0, 0): 100.0,
    (2, 2, 0): 65.0,
    (3, 1, 1): 15.0,
    (2, 2, 2): 22.0,
    (4, 0, 0): 9.0,
    (3, 3, 1): 6.0,
    (4, 2, 0): 17.0,
}

# Zinc-blende CdSe: approximate relative integrated intensities of a powder pattern, multiplicity
# included. All-odd reflections scatter with |f_Cd + i f_Se|, all-even ones with h + k + l = 4n
# with f_Cd + f_Se, those with h + k + l = 4n + 2 only with f_Cd - f_Se (weak: 200, 222, 420).
ZINCBLENDE_REFLECTIONS: dict[tuple[int, int, int], float] = {
    (1, 1, 1): 100.0,
    (2, 0, 0): 3.0,
    (2, 2, 0): 65.0,
    (3, 1, 1): 45.0,
    (2, 2, 2): 2.0,
    (4, 0, 0): 9.0,
    (3, 3, 1): 14.0,
    (4, 2, 0): 2.0,
    (4, 2, 2): 14.0,
    (5, 1, 1): 8.0,
}

# Named reflection groups a beamline user integrates over.
STRONG_GROUPS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "112": ((1, 1, 2),),
    "220/204": ((2, 2, 0), (2, 0, 4)),
    "116/312": ((1, 1, 6), (3, 1, 2)),
    "400/008": ((4, 0, 0), (0, 0, 8)),
    "332/316": ((3, 3, 2), (3, 1, 6)),
}


def reflection_q(hkl, a_angstrom: float, c_angstrom: float) -> float:
    """Scattering vector q = 2 pi / d (A^-1) of reflection hkl of a tetragonal cell."""
    h, k, l = hkl
    inv_d2 = (h * h + k * k) / a_angstrom**2 + (l * l) / c_angstrom**2
    return 2.0 * math.pi * math.sqrt(inv_d2)


def scherrer_fwhm_q(size_nm: float, k: float = 0.9) -> float:
    """Peak FWHM in q (A^-1) of a crystallite of *size_nm*: dq = 2 pi K / D."""
    return 2.0 * math.pi * k / (size_nm * 10.0)


def powder_profile(
    q_inv_angstrom: np.ndarray,
    a_angstrom: float,
    c_angstrom: float,
    fwhm_q: float,
    crystalline_fraction: float = 1.0,
    du2_angstrom2: float = 0.0,
) -> np.ndarray:
    """Sum of Gaussian Bragg peaks, normalised so the (112) peak maximum is 1.

    crystalline_fraction scales every peak (melted material gives no Bragg peaks);
    du2_angstrom2 is the extra mean-square displacement, I = I0 exp(-<du^2> q^2).
    """
    q = np.asarray(q_inv_angstrom, dtype=float)
    sigma = fwhm_q / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    out = np.zeros_like(q)
    ref = CHALCOPYRITE_REFLECTIONS[(1, 1, 2)]
    for hkl, intensity in CHALCOPYRITE_REFLECTIONS.items():
        q0 = reflection_q(hkl, a_angstrom, c_angstrom)
        window = np.abs(q - q0) < 8.0 * sigma
        if not window.any():
            continue
        dw = math.exp(-du2_angstrom2 * q0 * q0)
        out[window] += (intensity / ref) * dw * np.exp(-0.5 * ((q[window] - q0) / sigma) ** 2)
    return crystalline_fraction * out


def family(hkl) -> str:
    """Name of the reflection family {hkl} of a cubic lattice: indices sorted, "220"."""
    return "".join(str(i) for i in sorted((abs(int(i)) for i in hkl), reverse=True))


def rocksalt_profile(q_inv_angstrom: np.ndarray, a_angstrom: float, fwhm_q: float, du2_angstrom2: float = 0.0,
                     response: dict | None = None) -> np.ndarray:
    """Gaussian Bragg peaks of a rock-salt powder, normalised so that the (200) peak maximum
    is 1 at rest. *response* maps a family ("200") to {"expansion": -dq/q, "du2_a2": extra
    <du^2> along its normal, "broadening": relative FWHM increase}; integrated intensities
    follow exp(-<du^2> q^2), heights fall as the peaks broaden."""
    q = np.asarray(q_inv_angstrom, dtype=float)
    out = np.zeros_like(q)
    ref = ROCKSALT_REFLECTIONS[(2, 0, 0)]
    response = response or {}
    for hkl, intensity in ROCKSALT_REFLECTIONS.items():
        r = response.get(family(hkl), {})
        q0 = reflection_q(hkl, a_angstrom, a_angstrom) * (1.0 - r.get("expansion", 0.0))
        width = fwhm_q * (1.0 + r.get("broadening", 0.0))
        sigma = width / (2.0 * math.sqrt(2.0 * math.log(2.0)))
        window = np.abs(q - q0) < 8.0 * sigma
        if not window.any():
            continue
        dw = math.exp(-(du2_angstrom2 + r.get("du2_a2", 0.0)) * q0 * q0)
        out[window] += (intensity / ref) * dw * (fwhm_q / width) * np.exp(-0.5 * ((q[window] - q0) / sigma) ** 2)
    return out


def zincblende_profile(q_inv_angstrom: np.ndarray, a_angstrom: float, fwhm_q: float,
                       du2_angstrom2: float = 0.0) -> np.ndarray:
    """Gaussian Bragg peaks of a zinc-blende powder of lattice parameter *a_angstrom*,
    normalised so that the (111) peak maximum is 1 (at du2_angstrom2 = 0); integrated
    intensities follow exp(-<du^2> q^2)."""
    q = np.asarray(q_inv_angstrom, dtype=float)
    out = np.zeros_like(q)
    ref = ZINCBLENDE_REFLECTIONS[(1, 1, 1)]
    sigma = fwhm_q / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    for hkl, intensity in ZINCBLENDE_REFLECTIONS.items():
        q0 = reflection_q(hkl, a_angstrom, a_angstrom)
        window = np.abs(q - q0) < 8.0 * sigma
        if not window.any():
            continue
        dw = math.exp(-du2_angstrom2 * q0 * q0)
        out[window] += (intensity / ref) * dw * np.exp(-0.5 * ((q[window] - q0) / sigma) ** 2)
    return out
