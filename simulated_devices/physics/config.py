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
    """Return the defaults merged with the TOML file at *path* and then *overrides*.

    Raises ValueError naming the key for unknown keys, wrong types and NaN/inf.
    """
    with open(default_config_path(), "rb") as f:
        cfg = tomllib.load(f)
    if path is not None:
        with open(path, "rb") as f:
            _merge(cfg, tomllib.load(f), "")
    if overrides:
        _merge(cfg, copy.deepcopy(overrides), "")
    return cfg


def dump_config(cfg: dict) -> str:
    """The configuration as TOML text (what ``trxrd sim --print-config`` shows)."""
    return tomli_w.dumps(cfg)
