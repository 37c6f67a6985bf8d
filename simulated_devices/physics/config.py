"""The sample file: documented defaults (``simulated_devices/sample.toml``) merged with a
user's overrides.

EXAMPLE::

    from trxrd.simulated_devices.physics import load_config
    cfg = load_config(overrides={"pump_probe": {"tau1_ps": 120.0}})
    cfg["pump_probe"]["tau1_ps"]     # 120.0
"""
from __future__ import annotations

import copy
import math
import tomllib
from pathlib import Path

import tomli_w


def default_config_path() -> Path:
    """Path of the documented default sample file shipped with the package."""
    return Path(__file__).resolve().parent.parent / "sample.toml"


def _merge(base: dict, over: dict, where: str) -> None:
    for key, value in over.items():
        if key not in base:
            known = ", ".join(sorted(base))
            raise ValueError(f"unknown key {where}{key!r} in sample file (known: {known})")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise ValueError(f"{where}{key} must be a table")
            _merge(base[key], value, f"{where}{key}.")
            continue
        if isinstance(base[key], float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not type(base[key]):
            raise ValueError(
                f"{where}{key} must be {type(base[key]).__name__}, got {value!r}"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{where}{key} must be finite, got {value!r}")
        base[key] = value


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> dict:
    """Return the defaults merged with the TOML file at *path* (or a shipped sample's name, see
    ``sample_names``) and then *overrides*.

    Raises ValueError naming the key for unknown keys, wrong types and NaN/inf.
    """
    with open(default_config_path(), "rb") as f:
        cfg = tomllib.load(f)
    if path is not None:
        with open(resolve_sample(path), "rb") as f:
            _merge(cfg, tomllib.load(f), "")
    if overrides:
        _merge(cfg, copy.deepcopy(overrides), "")
    _check(cfg)
    return cfg


STRUCTURES = ("chalcopyrite", "rocksalt", "zincblende")
CUBIC_STRUCTURES = ("rocksalt", "zincblende")
HOLDERS = ("jet", "film")
SAXS_MODELS = ("synthesis", "stacked_platelets")
WAXS_MODELS = ("powder", "mesocrystal")
DYNAMICS_LISTS = ("expansion", "tau_expansion_ps", "du2_a2", "tau_du2_ps", "broadening")


# Physical parameters by sign: section -> keys (the unit is in the key's name).
POSITIVE = {
    "sample": ("a_angstrom", "c_angstrom", "size_nm", "scherrer_k", "sigma_cm2", "background_q0_inv_angstrom",
               "background_width_inv_angstrom"),
    "pump_probe": ("saturation_excitations", "tau1_ps", "tau2_ps", "irf_fwhm_ps"),
    "laser": ("wavelength_nm", "rep_rate_hz", "spot_fwhm_x_um", "spot_fwhm_y_um"),
    "delay": ("n_passes", "stage_velocity_mm_s", "electronic_max_s", "electronic_resolution_s"),
    "waveplate": ("velocity_deg_s",),
    "liquid_jet": ("max_flow_ml_min", "spin_up_s", "reservoir_ml", "jet_width_um"),
    "heating_cell": ("max_ramp_c_min", "heater_max_w", "heater_heat_capacity_j_k", "cell_heat_capacity_j_k",
                     "heater_to_cell_w_k", "thermocouple_lag_s", "settle_band_c", "speedup"),
    "syringe_pump": ("max_rate_ml_min", "syringe_ml"),
    "synthesis": ("nominal_injection_ml", "r0_nm", "r_final_nm", "sigma0_nm", "sigma_final_nm", "growth_time_s",
                  "nucleation_time_s", "focusing_time_s"),
    "beam": ("energy_kev", "i0_nominal_a"),
    "stage": ("velocity_um_s",),
    "waxs": ("distance_mm", "pilatus2m_distance_mm"),
    "saxs": ("distance_mm",),
}
NON_NEGATIVE = {
    "sample": ("du2_per_k_a2", "ring_counts_per_s", "background_counts_per_s", "liquid_scale"),
    "pump_probe": ("threshold_excitations", "heating_k_per_excitation"),
    "laser": ("power_before_waveplate_w", "power_noise_relative"),
    "liquid_jet": ("flow_rate_ml_min", "min_stable_flow_ml_min", "loss_ml_per_min", "pressure_bar_per_ml_min",
                   "jet_edge_um"),
    "heating_cell": ("cell_loss_w_k", "p", "i", "d", "noise_c"),
    "synthesis": ("activation_energy_kj_mol", "growth_exponent", "concentration_final_um", "counts_per_um_nm6",
                  "background_counts_per_s"),
    "beam": ("i0_fluctuation_relative",),
    "waxs": ("noise_pool",),
    "saxs": ("beamstop_radius_mm",),
}
FRACTIONS = {"pump_probe": ("a1", "max_melted_fraction"), "laser": ("transmission_min", "transmission_max"),
             "beam": ("polarization_factor",)}
# (section, low key, high key): low < high
ORDERED = (("delay", "stage_low_mm", "stage_high_mm"), ("waveplate", "low_deg", "high_deg"),
           ("stage", "x_low_um", "x_high_um"), ("stage", "y_low_um", "y_high_um"),
           ("laser", "transmission_min", "transmission_max"), ("heating_cell", "ambient_c", "max_setpoint_c"))
UNITS = (("_inv_angstrom", "A^-1"), ("_mm_s", "mm/s"), ("_deg_s", "deg/s"), ("_um_s", "um/s"),
         ("_ml_min", "mL/min"), ("_c_min", "C/min"), ("_j_k", "J/K"), ("_w_k", "W/K"), ("_angstrom", "A"),
         ("_ps", "ps"), ("_nm", "nm"), ("_um", "um"), ("_mm", "mm"), ("_kev", "keV"), ("_hz", "Hz"),
         ("_cm2", "cm^2"), ("_ml", "mL"), ("_w", "W"), ("_s", "s"), ("_a", "A"), ("_c", "C"), ("_deg", "deg"))
ABSOLUTE_ZERO_C = -273.15


def _unit(key: str) -> str:
    """' <unit>' from the key's suffix (tau1_ps -> ' ps'), '' for a plain number."""
    return next((f" {unit}" for suffix, unit in UNITS if key.endswith(suffix)), "")


def _check_physical(cfg: dict) -> None:
    """Signs and ranges of the physical parameters: ValueError naming the key and its unit."""
    for rule, table in (("> 0", POSITIVE), (">= 0", NON_NEGATIVE), ("in [0, 1]", FRACTIONS)):
        for section, keys in table.items():
            for key in keys:
                value = cfg[section][key]
                ok = {"> 0": value > 0, ">= 0": value >= 0, "in [0, 1]": 0 <= value <= 1}[rule]
                if not ok:
                    raise ValueError(f"{section}.{key} must be {rule}{_unit(key)}, got {value!r}")
    for section, low, high in ORDERED:
        lo, hi = cfg[section][low], cfg[section][high]
        if not lo < hi:
            raise ValueError(f"{section}.{low} ({lo!r}{_unit(low)}) must be below {section}.{high} "
                             f"({hi!r}{_unit(high)})")
    d = cfg["delay"]
    if not d["stage_low_mm"] <= d["stage_time_zero_mm"] <= d["stage_high_mm"]:
        raise ValueError(f"delay.stage_time_zero_mm must lie in the stage travel {d['stage_low_mm']!r} .. "
                         f"{d['stage_high_mm']!r} mm, got {d['stage_time_zero_mm']!r}")
    jet = cfg["liquid_jet"]
    if jet["flow_rate_ml_min"] > jet["max_flow_ml_min"]:
        raise ValueError(f"liquid_jet.flow_rate_ml_min must be <= liquid_jet.max_flow_ml_min "
                         f"({jet['max_flow_ml_min']!r} mL/min), got {jet['flow_rate_ml_min']!r}")
    for section, key in (("heating_cell", "ambient_c"), ("sample", "reference_temperature_c"),
                         ("synthesis", "reference_temperature_c")):
        if not cfg[section][key] > ABSOLUTE_ZERO_C:
            raise ValueError(f"{section}.{key} must be above absolute zero ({ABSOLUTE_ZERO_C} C), "
                             f"got {cfg[section][key]!r}")


def _check(cfg: dict) -> None:
    """What one key cannot say alone: the structure, the SAXS model, the per-family lists of
    ``lattice_dynamics`` (one number per family, finite, time constants > 0) and the
    ligand-loss table of ``platelet_film``; and the signs and ranges of the physical parameters."""
    _check_physical(cfg)
    s = cfg["sample"]
    if s["holder"] not in HOLDERS:
        raise ValueError(f"sample.holder must be one of {HOLDERS}, got {s['holder']!r}")
    if s["structure"] not in STRUCTURES:
        raise ValueError(f"sample.structure must be one of {STRUCTURES}, got {s['structure']!r}")
    if s["structure"] in CUBIC_STRUCTURES and s["c_angstrom"] != s["a_angstrom"]:
        raise ValueError(f"a {s['structure']} sample is cubic: set sample.c_angstrom equal to sample.a_angstrom")
    if cfg["saxs"]["model"] not in SAXS_MODELS:
        raise ValueError(f"saxs.model must be one of {SAXS_MODELS}, got {cfg['saxs']['model']!r}")
    _check_film(cfg["platelet_film"])
    _check_mesocrystal(cfg)
    lat = cfg["lattice_dynamics"]
    families = lat["families"]
    if len(set(families)) != len(families) or not all(isinstance(f, str) and f.isdigit() and len(f) == 3
                                                       for f in families):
        raise ValueError(f"lattice_dynamics.families must be distinct hkl strings like \"200\", got {families!r}")
    for key in DYNAMICS_LISTS:
        values = lat[key]
        if len(values) != len(families) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
                for v in values):
            raise ValueError(f"lattice_dynamics.{key} needs one finite number >= 0 per family "
                             f"({len(families)}), got {values!r}")
        if key.startswith("tau") and min(values) <= 0:
            raise ValueError(f"lattice_dynamics.{key}: time constants must be > 0 ps")
    if not lat["reference_excitations"] > 0:
        raise ValueError("lattice_dynamics.reference_excitations must be > 0")


def _check_film(film: dict) -> None:
    temps, dists = film["loss_temperatures_c"], film["stacking_distance_nm"]
    for key, values in (("loss_temperatures_c", temps), ("stacking_distance_nm", dists)):
        if len(values) < 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                      for v in values):
            raise ValueError(f"platelet_film.{key} needs at least two finite numbers, got {values!r}")
    if len(temps) != len(dists):
        raise ValueError(f"platelet_film: one stacking_distance_nm per loss temperature ({len(temps)}), got {dists!r}")
    if any(b <= a for a, b in zip(temps, temps[1:])):
        raise ValueError(f"platelet_film.loss_temperatures_c must increase, got {temps!r}")
    if min(dists) <= 0:
        raise ValueError(f"platelet_film.stacking_distance_nm must be > 0 nm, got {dists!r}")
    for key in ("thickness_nm", "form_counts_per_s", "n_stack", "loss_time_s", "fused_size_nm"):
        if not film[key] > 0:
            raise ValueError(f"platelet_film.{key} must be > 0, got {film[key]!r}")
    for key in ("thickness_spread_nm", "peak_height", "background_counts_per_s", "fusion_time_s"):
        if film[key] < 0:
            raise ValueError(f"platelet_film.{key} must be >= 0, got {film[key]!r}")


def _check_mesocrystal(cfg: dict) -> None:
    """The WAXS model, its beamstop and the [mesocrystal] table (checked whichever model is in
    force, so a sample file is refused before it is switched on)."""
    w, m = cfg["waxs"], cfg["mesocrystal"]
    if w["model"] not in WAXS_MODELS:
        raise ValueError(f"waxs.model must be one of {WAXS_MODELS}, got {w['model']!r}")
    if w["beamstop_radius_mm"] < 0:
        raise ValueError(f"waxs.beamstop_radius_mm must be >= 0 mm, got {w['beamstop_radius_mm']!r}")
    if w["model"] == "mesocrystal" and cfg["sample"]["structure"] != "rocksalt":
        raise ValueError(f"waxs.model = \"mesocrystal\" needs a rock-salt atomic lattice: set sample.structure "
                         f"= \"rocksalt\" (got {cfg['sample']['structure']!r})")
    ext = m["extent_um"]
    if len(ext) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                for v in ext):
        raise ValueError(f"mesocrystal.extent_um needs four finite numbers [x0, x1, y0, y1], got {ext!r}")
    if not (ext[0] < ext[1] and ext[2] < ext[3]):
        raise ValueError(f"mesocrystal.extent_um [x0, x1, y0, y1] needs x0 < x1 and y0 < y1, got {ext!r}")
    for key in ("empty_fraction", "al_visible_fraction"):
        if not 0.0 <= m[key] <= 1.0:
            raise ValueError(f"mesocrystal.{key} must be in [0, 1], got {m[key]!r}")
    if not 0.0 <= m["spot_height_variation"] < 1.0:
        raise ValueError(f"mesocrystal.spot_height_variation must be in [0, 1), got {m['spot_height_variation']!r}")
    for key in ("domain_area_um2", "sl_a_angstrom", "sl_c_over_a", "sl_radial_fwhm_inv_angstrom",
                "sl_azimuthal_fwhm_deg"):
        if not m[key] > 0:
            raise ValueError(f"mesocrystal.{key} must be > 0, got {m[key]!r}")
    for key in ("border_um", "psi_sd_deg", "disorder_fwhm_deg", "sl_counts_per_s", "sl_110_relative",
                "sl_002_relative", "al_counts_per_s", "al_200_relative", "al_powder_counts_per_s",
                "small_angle_counts_per_s", "background_counts_per_s"):
        if m[key] < 0:
            raise ValueError(f"mesocrystal.{key} must be >= 0, got {m[key]!r}")


def sample_names() -> list[str]:
    """The samples shipped with the simulator (``trxrd sim --config NAME``)."""
    return sorted(p.stem for p in (default_config_path().parent / "samples").glob("*.toml"))


def resolve_sample(name_or_path: str | Path) -> Path:
    """A sample file: a path, or the name of a shipped sample (``pbse-90k``)."""
    path = Path(name_or_path)
    if path.exists():
        return path
    shipped = default_config_path().parent / "samples" / f"{name_or_path}.toml"
    if shipped.exists():
        return shipped
    raise ValueError(f"no sample file {str(name_or_path)!r}: give a TOML path or one of {', '.join(sample_names())}")


def dump_config(cfg: dict) -> str:
    """The configuration as TOML text (what ``trxrd sim --print-config`` shows)."""
    return tomli_w.dumps(cfg)
