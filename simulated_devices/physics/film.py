"""A drop-cast film of stacked nanoplatelets seen by SAXS while the heating cell anneals it.

The ligand shell between the platelets decomposes with temperature: the stacking period d
relaxes (with ``loss_time_s``) toward an equilibrium d_eq(T) tabulated in the sample file, and
only downward, since lost ligands do not come back on cooling. After ``fusion_time_s`` (model
seconds, cumulative) at or above ``fusion_c`` the platelets fuse and the stacking peak is gone
for good. SAXS sees the platelets' form factor times a structure factor with a Lorentzian
stacking peak at q* = 2 pi / d.

EXAMPLE::

    import numpy as np
    from trxrd.simulated_devices.physics import load_config
    from trxrd.simulated_devices.physics.film import PlateletFilmModel
    film = PlateletFilmModel(load_config("cdse-npl-film")["platelet_film"])
    film.advance(600.0, cell_c=80.0)              # 10 min at 80 C
    film.state()                                  # {'stacking_nm': 2.50..., 'fused': False, ...}
    film.saxs_intensity(np.linspace(0.05, 0.8, 300))   # counts/s/pixel, peak at 2 pi / 2.5 nm
"""
from __future__ import annotations

import math

import numpy as np

Q_FLOOR_INV_NM = 0.05        # the q^-2 form factor is evaluated no closer to q = 0 than this


class PlateletFilmModel:
    """Stacking period and fusion of a nanoplatelet film (times in model seconds, d in nm)."""

    def __init__(self, cfg: dict, cell_c: float = 25.0):
        self.cfg = cfg
        self._table_c = np.asarray(cfg["loss_temperatures_c"], dtype=float)
        self._table_nm = np.asarray(cfg["stacking_distance_nm"], dtype=float)
        self.stacking_nm = float(self._table_nm[0])     # the as-cast film
        self.fused = False
        self.hot_s = 0.0                                # model seconds spent at or above fusion_c
        self.cell_c = float(cell_c)                     # cell temperature of the last advance

    def equilibrium_distance_nm(self, temperature_c: float) -> float:
        """Stacking period the film relaxes toward at *temperature_c* (piecewise linear in the
        table, constant beyond its ends)."""
        return float(np.interp(temperature_c, self._table_c, self._table_nm))

    def advance(self, model_dt_s: float, cell_c: float) -> None:
        """Hold the film at *cell_c* for *model_dt_s* (exact for a constant temperature)."""
        self.cell_c = float(cell_c)
        if model_dt_s <= 0:
            return
        d_eq = self.equilibrium_distance_nm(cell_c)
        if self.stacking_nm > d_eq:          # ligand loss is irreversible: d never grows back
            self.stacking_nm = d_eq + (self.stacking_nm - d_eq) * math.exp(-model_dt_s / self.cfg["loss_time_s"])
        if cell_c >= self.cfg["fusion_c"]:
            self.hot_s += model_dt_s
            if self.hot_s >= self.cfg["fusion_time_s"]:
                self.fused = True

    def state(self, cell_c: float | None = None) -> dict:
        """Stacking period (nm), fused or not, and the equilibrium period at *cell_c* (default:
        the temperature of the last advance)."""
        t = self.cell_c if cell_c is None else cell_c
        return {"stacking_nm": self.stacking_nm, "fused": self.fused,
                "equilibrium_nm": self.equilibrium_distance_nm(t)}

    def stacking_q_inv_angstrom(self) -> float:
        """Centre of the stacking peak q* = 2 pi / d, in A^-1."""
        return 2.0 * math.pi / self.stacking_nm / 10.0

    def form_intensity(self, q_inv_angstrom) -> np.ndarray:
        """Form factor of platelets of thickness t, in counts/s/pixel at nominal flux:
        ``form_counts_per_s`` at q = 1 nm^-1 (0.1 A^-1). A thin plate, orientation-averaged,
        scatters q^-2 t^2 sinc^2(q t / 2) = 2 q^-4 (1 - cos q t); averaged over a Gaussian spread
        of thicknesses (``thickness_spread_nm``) that is 2 q^-4 (1 - cos(q t) exp(-q^2 s^2 / 2)),
        which fills the zeros at q = 2 pi n / t (and is q^-2 sinc^2(q t / 2) at s = 0)."""
        cfg = self.cfg
        q_nm = np.maximum(np.asarray(q_inv_angstrom, dtype=float) * 10.0, Q_FLOOR_INV_NM)
        return cfg["form_counts_per_s"] * self._plates(q_nm) / self._plates(np.float64(1.0))

    def _plates(self, q_nm: np.ndarray) -> np.ndarray:
        t, s = self.cfg["thickness_nm"], self.cfg["thickness_spread_nm"]
        y = 0.5 * (q_nm * s) ** 2
        # 1 - cos(q t) exp(-y), written to stay accurate as q -> 0
        return (-np.expm1(-y) + 2.0 * np.exp(-y) * np.sin(0.5 * q_nm * t) ** 2) / q_nm**4

    def structure_factor(self, q_inv_angstrom) -> np.ndarray:
        """S(q) = 1 + h L(q): a Lorentzian at q* = 2 pi / d of FWHM 2 pi / (n_stack d) and height h
        (``peak_height``); S = 1 once the platelets have fused."""
        q_nm = np.asarray(q_inv_angstrom, dtype=float) * 10.0
        if self.fused:
            return np.ones_like(q_nm)
        d = self.stacking_nm
        half_width = math.pi / (self.cfg["n_stack"] * d)
        return 1.0 + self.cfg["peak_height"] / (1.0 + ((q_nm - 2.0 * math.pi / d) / half_width) ** 2)

    def saxs_intensity(self, q_inv_angstrom) -> np.ndarray:
        """SAXS intensity (counts/s/pixel at nominal flux, before solid angle) on q (A^-1):
        flat background + form factor x structure factor."""
        return (self.cfg["background_counts_per_s"]
                + self.form_intensity(q_inv_angstrom) * self.structure_factor(q_inv_angstrom))
