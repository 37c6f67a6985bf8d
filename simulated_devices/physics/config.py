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


def _check(cfg: dict) -> None:
    """What one key cannot say alone: the structure, the SAXS model, the per-family lists of
    ``lattice_dynamics`` (one number per family, finite, time constants > 0) and the
    ligand-loss table of ``platelet_film``."""
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
