"""The one sample-physics model behind every simulated IOC.

Each IOC writes its instrument's state here (stage position, waveplate angle, shutter,
jet, cell temperature, syringe, sample stage); the detectors ask it for frames. Nothing
here knows about EPICS.

EXAMPLE::

    from trxrd.simulated_devices.physics.beamline import BeamlineModel
    model = BeamlineModel()                       # defaults of sample.toml
    model.jet.run = True; model.jet.advance(5.0)
    model.shutter_open = True
    model.stage_mm = model.cfg["delay"]["stage_time_zero_mm"] + 15.0   # ~ +100 ps
    model.truth()["melted_fraction"]
    frame = model.waxs_frame(exposure_s=0.1)     # int32 image, gaps = -1

    from trxrd.simulated_devices.physics import load_config
    mesocrystal = BeamlineModel(load_config("pbs-mesocrystal"))   # [waxs] model = "mesocrystal"
    mesocrystal.stage_x_um, mesocrystal.stage_y_um = 1.0, 1.0
    mesocrystal.mesocrystal_truth()              # {..., "has_grain": True, "grain": 28, "al_visible": True, ...}
    frame = mesocrystal.waxs_frame(exposure_s=0.1)   # SL and AL spots of the grain under the beam
"""
from __future__ import annotations

import math
import time

import numpy as np

from . import crystal, laser, pump_probe
from .config import load_config
from .detector import DetectorGeometry, PoissonPool
from .film import PlateletFilmModel
from .jet import JetModel
from .mesocrystal import MesocrystalModel
from .response import convolve_irf, rise
from .synthesis import SynthesisModel
from .thermal import HeatingCellModel


class BeamlineModel:
    """State of every simulated instrument plus the sample, and the frames it produces."""

    FILM_CHUNK_S = 1.0      # model seconds: the platelet film follows the cell at least this finely

    def __init__(self, cfg: dict | None = None, waxs_detector: str | None = None, seed: int | None = None):
        self.cfg = cfg or load_config()
        self.rng = np.random.default_rng(seed)
        d = self.cfg["delay"]
        self.stage_mm = d["stage_time_zero_mm"] - 15.0   # parked before time zero
        self.electronic_delay_s = 0.0
        self.electronic_enabled = False
        self.waveplate_deg = self.cfg["laser"]["theta0_deg"] + 45.0   # minimum transmission
        self.shutter_open = False
        self.stage_x_um = 0.0
        self.stage_y_um = 0.0
        self.jet = JetModel(self.cfg["liquid_jet"])
        self.cell = HeatingCellModel(self.cfg["heating_cell"], self.rng)
        self.synthesis = SynthesisModel(self.cfg["synthesis"])
        self.film = PlateletFilmModel(self.cfg["platelet_film"], cell_c=self.cell.cell_c)
        self.film_on_cell = self.cfg["saxs"]["model"] == "stacked_platelets"
        self.injected_ml = 0.0
        self.injection_start: float | None = None   # wall-clock time of the first infused drop
        self.flux = 1.0
        self.beam_on = True                           # False: beam dump (I0:BeamOn), no X-rays
        self.exposing = False                         # a detector is integrating
        self._last_advance = time.monotonic()
        self.waxs = self._waxs_geometry(waxs_detector or self.cfg["waxs"]["detector"])
        pool = self.cfg["waxs"]["noise_pool"]
        self.waxs_pool = PoissonPool(pool) if pool else None     # [waxs] noise_pool: frames from pooled noise
        s = self.cfg["saxs"]
        self.saxs = DetectorGeometry(s["detector"], s["distance_mm"], s["poni1_mm"], s["poni2_mm"],
                                     self.cfg["beam"]["energy_kev"],
                                     self.cfg["beam"]["polarization_factor"], s["beamstop_radius_mm"])
        self._q_fine = np.linspace(0.0, max(self.waxs.q_max, self.saxs.q_max) * 1.01, 6000)
        self._cache: dict[str, tuple] = {}
        self.mesocrystal: MesocrystalModel | None = None
        if self.cfg["waxs"]["model"] == "mesocrystal":
            self.mesocrystal = MesocrystalModel(self.cfg["mesocrystal"], self.cfg["sample"])
            self._mesocrystal_pixels = self.mesocrystal.prepare(
                self.waxs.q, np.degrees(self.waxs.ai.center_array(unit="chi_rad")))
            factor = self.waxs.geometry_factor.copy()
            factor[self.waxs.beamstop] *= np.float32(1e-3)
            self._mesocrystal_factor = factor      # solid angle x polarisation, beamstop as in expected_image

    def _waxs_geometry(self, name: str) -> DetectorGeometry:
        w = self.cfg["waxs"]
        if name == "pilatus2m":
            dist, p1, p2 = w["pilatus2m_distance_mm"], w["pilatus2m_poni1_mm"], w["pilatus2m_poni2_mm"]
        else:
            dist, p1, p2 = w["distance_mm"], w["poni1_mm"], w["poni2_mm"]
        return DetectorGeometry(name, dist, p1, p2, self.cfg["beam"]["energy_kev"],
                                self.cfg["beam"]["polarization_factor"], w["beamstop_radius_mm"])

    # ---- time evolution -------------------------------------------------------------
    def advance(self, now: float | None = None) -> None:
        """Advance the jet and the heating cell (and a platelet film on it) to wall-clock time
        *now* (monotonic)."""
        now = time.monotonic() if now is None else now
        dt = max(0.0, now - self._last_advance)
        self._last_advance = now
        if dt > 0:
            self.jet.advance(dt)
            if self.film_on_cell:
                self._advance_cell_and_film(dt)
            else:
                self.cell.advance(dt)

    def _advance_cell_and_film(self, wall_dt_s: float) -> None:
        """The cell and the film in chunks of at most FILM_CHUNK_S model seconds, the film held at
        the cell's mean temperature over each chunk."""
        model_dt_s = wall_dt_s * self.cfg["heating_cell"]["speedup"]
        n = max(1, math.ceil(model_dt_s / self.FILM_CHUNK_S))
        for _ in range(n):
            before_c = self.cell.cell_c
            self.cell.advance(wall_dt_s / n)
            self.film.advance(model_dt_s / n, 0.5 * (before_c + self.cell.cell_c))

    def film_fused(self) -> bool:
        """Whether a platelet film on the cell ([saxs] model = "stacked_platelets") has fused."""
        return self.film_on_cell and self.film.fused

    # ---- derived state ---------------------------------------------------------------
    def delay_ps(self) -> float:
        d = self.cfg["delay"]
        t = float(laser.stage_delay_ps(self.stage_mm, d["stage_time_zero_mm"], d["n_passes"]))
        if self.electronic_enabled:
            t += self.electronic_delay_s * 1e12
        return t

    def power_w(self) -> float:
        lc = self.cfg["laser"]
        return float(laser.transmission(self.waveplate_deg, lc)) * lc["power_before_waveplate_w"]

    def fluence_mj_cm2(self) -> float:
        return float(laser.fluence_mj_cm2(self.power_w(), self.cfg["laser"]))

    def excitations(self) -> float:
        return float(pump_probe.excitations(self.fluence_mj_cm2(), self.cfg["sample"]["sigma_cm2"],
                                            self.cfg["laser"]["wavelength_nm"]))

    def sample_fraction(self) -> float:
        """How much sample the X-rays see: a film (``sample.holder = "film"``) all of it; a jet
        sample nothing when the jet is not flowing or is off-beam."""
        if self.cfg["sample"]["holder"] == "film":
            return 1.0
        if not self.jet.flowing:
            return 0.0
        return self.jet.illuminated_fraction(self.stage_x_um)

    def pumped(self) -> bool:
        return self.shutter_open and self.sample_fraction() > 0

    def reaction_time_s(self, now: float | None = None) -> float | None:
        if self.injection_start is None:
            return None
        return (time.time() if now is None else now) - self.injection_start

    def truth(self, delay_ps: float | None = None, pumped: bool | None = None) -> dict:
        """Ground truth of the WAXS sample state now (or at another delay / pump state)."""
        s, pp = self.cfg["sample"], self.cfg["pump_probe"]
        t = self.delay_ps() if delay_ps is None else delay_ps
        pumped = self.pumped() if pumped is None else pumped
        n_exc = self.excitations()
        melt = float(pump_probe.melted_fraction(t, n_exc, pp)) if pumped else 0.0
        heat = float(pump_probe.lattice_heating_k(t, n_exc, pp)) if pumped else 0.0
        dt_static = self.cell.cell_c - s["reference_temperature_c"]
        rocksalt = s["structure"] == "rocksalt"
        cubic = s["structure"] in ("rocksalt", "zincblende")
        fused = s["structure"] == "zincblende" and self.film_fused()
        if cubic:               # rock salt responds per reflection family (reflections), zinc blende not at all
            a = c = s["a_angstrom"] * (1 + s["alpha_a_per_k"] * dt_static)
        else:
            a = s["a_angstrom"] * (1 + s["alpha_a_per_k"] * (dt_static + heat))
            c = s["c_angstrom"] * (1 + s["alpha_c_per_k"] * (dt_static + heat))
        return {
            "delay_ps": t, "pumped": pumped, "power_w": self.power_w(),
            "fluence_mj_cm2": self.fluence_mj_cm2(), "excitations": n_exc,
            "melted_fraction": melt, "lattice_heating_k": heat,
            "cell_temperature_c": self.cell.cell_c, "a_angstrom": a, "c_angstrom": c,
            "du2_angstrom2": s["du2_per_k_a2"] * max(dt_static + (0.0 if cubic else heat), 0.0),
            "sample_fraction": self.sample_fraction(),
            "film_fused": fused,
            "crystallite_size_nm": self.cfg["platelet_film"]["fused_size_nm"] if fused else s["size_nm"],
            "reflections": self.reflection_response(t, n_exc if pumped else 0.0) if rocksalt else {},
        }

    def reflection_response(self, delay_ps: float, n_exc: float) -> dict:
        """Per reflection family of a rock-salt sample: expansion (-dq/q), extra <du^2> (A^2)
        and relative broadening at *delay_ps* for <N> = *n_exc* (sample file [lattice_dynamics]),
        each rise convolved with the IRF numerically."""
        lat, irf = self.cfg["lattice_dynamics"], self.cfg["pump_probe"]["irf_fwhm_ps"]
        scale = n_exc / lat["reference_excitations"]
        out = {}
        for k, fam in enumerate(lat["families"]):
            grow = float(convolve_irf(rise(lat["tau_expansion_ps"][k]), delay_ps, irf))
            out[fam] = {"expansion": scale * lat["expansion"][k] * grow,
                        "du2_a2": scale * lat["du2_a2"][k] * float(convolve_irf(rise(lat["tau_du2_ps"][k]),
                                                                                delay_ps, irf)),
                        "broadening": scale * lat["broadening"][k] * grow}
        return out

    # ---- WAXS ------------------------------------------------------------------------
    def waxs_profile(self, q: np.ndarray, truth: dict) -> np.ndarray:
        """I(q) in counts/s/pixel at nominal flux (before solid angle and polarisation)."""
        s = self.cfg["sample"]
        fwhm = crystal.scherrer_fwhm_q(truth.get("crystallite_size_nm", s["size_nm"]), s["scherrer_k"])
        sample = truth["sample_fraction"]
        melt = truth["melted_fraction"]
        if s["structure"] == "rocksalt":
            bragg = (1.0 - melt) * crystal.rocksalt_profile(q, truth["a_angstrom"], fwhm, truth["du2_angstrom2"],
                                                            truth["reflections"])
        elif s["structure"] == "zincblende":
            bragg = (1.0 - melt) * crystal.zincblende_profile(q, truth["a_angstrom"], fwhm, truth["du2_angstrom2"])
        else:
            bragg = crystal.powder_profile(q, truth["a_angstrom"], truth["c_angstrom"], fwhm,
                                           1.0 - melt, truth["du2_angstrom2"])
        q0, w = s["background_q0_inv_angstrom"], s["background_width_inv_angstrom"]
        hump = np.exp(-0.5 * ((q - q0) / w) ** 2)
        liquid = s["liquid_scale"] * melt * np.exp(-0.5 * ((q - 2.0) / 0.45) ** 2)
        air = 0.2 * s["background_counts_per_s"] * np.exp(-q / 4.0)
        return air + sample * (0.8 * s["background_counts_per_s"] * hump
                               + s["ring_counts_per_s"] * (bragg + liquid))

    def relative_area_change(self, q_min: float, q_max: float, delay_ps: float | None = None) -> float:
        """Truth of (A_on - A_off) / A_off of I(q) integrated over [q_min, q_max] (A^-1)."""
        q = np.linspace(q_min, q_max, 2001)
        on = self.waxs_profile(q, self.truth(delay_ps, pumped=True))
        off = self.waxs_profile(q, self.truth(delay_ps, pumped=False))
        return float(np.trapezoid(on - off, q) / np.trapezoid(off, q))

    def _expected(self, which: str, key: tuple, make) -> np.ndarray:
        hit = self._cache.get(which)
        if hit is not None and hit[0] == key:
            return hit[1]
        img = make()
        self._cache[which] = (key, img)
        return img

    def draw_flux(self) -> float:
        """New X-ray flux factor for an exposure (the I0 chamber integrates the same)."""
        if not self.beam_on:
            self.flux = 0.0
            return self.flux
        self.flux = max(0.0, 1.0 + self.rng.normal(0.0, self.cfg["beam"]["i0_fluctuation_relative"]))
        return self.flux

    def i0_current_a(self) -> float:
        return self.cfg["beam"]["i0_nominal_a"] * self.flux

    def waxs_frame(self, exposure_s: float) -> np.ndarray:
        """One WAXS frame for the current state, flux drawn anew (Poisson counts)."""
        self.advance()
        if self.mesocrystal is not None:
            return self._mesocrystal_frame(exposure_s)
        tr = self.truth()
        key = tuple(round(float(tr[k]), 6) for k in (
            "melted_fraction", "a_angstrom", "c_angstrom", "du2_angstrom2", "sample_fraction")) + tuple(
            round(v, 9) for r in tr["reflections"].values() for v in r.values()) + (tr["film_fused"],)
        expected = self._expected("waxs", key, lambda: self.waxs.expected_image(
            self._q_fine, self.waxs_profile(self._q_fine, tr)))
        return self._waxs_noisy(key, expected, exposure_s)

    def _waxs_noisy(self, key, expected: np.ndarray, exposure_s: float) -> np.ndarray:
        """Poisson counts of *expected* (counts/s) over *exposure_s*, flux drawn anew: each frame
        drawn, or with ``[waxs] noise_pool`` from the state's pool of halves (``PoissonPool``)."""
        if self.waxs_pool is None or not self.beam_on:
            return self.waxs.noisy_frame(expected * np.float32(exposure_s * self.draw_flux()), self.rng)
        counts, self.flux = self.waxs_pool.frame((key, float(exposure_s)), lambda: expected * np.float32(exposure_s),
                                                 self.cfg["beam"]["i0_fluctuation_relative"], self.rng)
        counts[self.waxs.gaps] = -1
        return counts

    # ---- mesocrystal raster ([waxs] model = "mesocrystal") ------------------------------
    def mesocrystal_truth(self) -> dict:
        """What the beam sees of the mesocrystal film at the sample stage's x, y (see
        ``MesocrystalModel.truth_at``), with the position."""
        if self.mesocrystal is None:
            raise RuntimeError('no mesocrystal sample: [waxs] model is not "mesocrystal"')
        return {"x_um": self.stage_x_um, "y_um": self.stage_y_um,
                **self.mesocrystal.truth_at(self.stage_x_um, self.stage_y_um)}

    def _mesocrystal_frame(self, exposure_s: float) -> np.ndarray:
        x, y = self.stage_x_um, self.stage_y_um
        key = ("mesocrystal",) + self.mesocrystal.position_key(x, y)
        expected = self._expected("waxs", key, lambda: self.mesocrystal.expected_image(
            x, y, self._mesocrystal_pixels) * self._mesocrystal_factor)
        return self._waxs_noisy(key, expected, exposure_s)

    # ---- SAXS ------------------------------------------------------------------------
    def saxs_truth(self, now: float | None = None) -> dict:
        """Ground truth of what SAXS sees: the platelet film's stacking (model
        "stacked_platelets") or the synthesis after injection."""
        if self.film_on_cell:
            return {**self.film.state(self.cell.cell_c), "cell_temperature_c": self.cell.cell_c}
        t = self.reaction_time_s(now)
        st = self.synthesis.state(t, self.cell.cell_c, self.injected_ml)
        return {"reaction_time_s": t, "mantle_temperature_c": self.cell.cell_c,
                "injected_ml": self.injected_ml, **st}

    def saxs_frame(self, exposure_s: float) -> np.ndarray:
        self.advance()
        tr = self.saxs_truth()
        if self.film_on_cell:
            key = ("stacked_platelets", round(tr["stacking_nm"], 5), tr["fused"])
            expected = self._expected("saxs", key, lambda: self.saxs.expected_image(
                self._q_fine, self.film.saxs_intensity(self._q_fine)))
            return self.saxs.noisy_frame(expected * np.float32(exposure_s * self.draw_flux()), self.rng)
        key = tuple(round(float(tr[k]), 5) for k in ("radius_nm", "sigma_nm", "concentration_um"))
        q = self._q_fine
        expected = self._expected("saxs", key, lambda: self.saxs.expected_image(
            q, self.synthesis.intensity(np.maximum(q, 1e-4), tr["reaction_time_s"],
                                        tr["mantle_temperature_c"], tr["injected_ml"])))
        return self.saxs.noisy_frame(expected * np.float32(exposure_s * self.draw_flux()), self.rng)


def window_for(group: str, cfg: dict, half_widths: float = 2.0) -> tuple[float, float]:
    """q window (A^-1) around a named reflection group at the configured lattice:
    from the lowest to the highest member, widened by half_widths Scherrer FWHMs."""
    s = cfg["sample"]
    qs = [crystal.reflection_q(hkl, s["a_angstrom"], s["c_angstrom"]) for hkl in crystal.STRONG_GROUPS[group]]
    fwhm = crystal.scherrer_fwhm_q(s["size_nm"], s["scherrer_k"])
    return (min(qs) - half_widths * fwhm, max(qs) + half_widths * fwhm)
