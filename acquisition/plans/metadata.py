"""Run metadata: the sample under the beam and the plan's own arguments, validated before
a plan moves or exposes anything.

Every plan puts ``sample`` (name, size_nm, ligand, solvent, sigma_cm2), ``plan_name``,
``plan_args`` and ``hints`` in its start document. The sample comes from ``md["sample"]``
when given, else from the session's ``set_sample(...)``.

EXAMPLE::

    from trxrd.acquisition.plans.metadata import set_sample
    set_sample(name="CuInSe2 NCs", size_nm=7.0, ligand="oleylamine", solvent="dodecane",
               sigma_cm2=4e-14)
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

__all__ = ["Sample", "set_sample", "current_sample", "plan_md", "finite"]


@dataclass(frozen=True)
class Sample:
    """What is in the jet / cell. ``sigma_cm2``: absorption cross-section at the pump
    wavelength (cm^2), used to convert fluence into excitations per nanocrystal."""

    name: str
    size_nm: float
    ligand: str
    solvent: str
    sigma_cm2: float

    def __post_init__(self):
        for key in ("name", "ligand", "solvent"):
            value = getattr(self, key)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"sample {key} must be a non-empty string, got {value!r}")
        finite(self.size_nm, "sample size_nm", low=0.0, strict=True)
        finite(self.sigma_cm2, "sample sigma_cm2", low=0.0, strict=True)
        if self.sigma_cm2 > 1e-10:
            raise ValueError(f"sample sigma_cm2 = {self.sigma_cm2} cm^2 is not a cross-section "
                             "per nanocrystal (expected ~1e-16 .. 1e-12 cm^2); check the units")

    def as_dict(self) -> dict:
        return asdict(self)


_current: Sample | None = None


def set_sample(**fields) -> Sample:
    """Declare the sample for the following runs (validated now)."""
    global _current
    _current = _sample_from(fields)
    return _current


def current_sample() -> Sample | None:
    return _current


def _sample_from(fields) -> Sample:
    if isinstance(fields, Sample):
        return fields
    if not isinstance(fields, dict):
        raise ValueError(f"sample must be a dict of {list(Sample.__dataclass_fields__)}, got {fields!r}")
    missing = set(Sample.__dataclass_fields__) - set(fields)
    extra = set(fields) - set(Sample.__dataclass_fields__)
    if missing or extra:
        raise ValueError(f"sample needs exactly {sorted(Sample.__dataclass_fields__)}; "
                         f"missing {sorted(missing)}, unknown {sorted(extra)}")
    return Sample(**fields)


def finite(value, what: str, *, low: float | None = None, high: float | None = None,
           strict: bool = False, unit: str = "") -> float:
    """*value* as a float, refusing NaN/inf, non-numbers and values outside [low, high]
    (``strict``: low excluded)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {value!r}") from None
    u = f" {unit}" if unit else ""
    if not math.isfinite(v):
        raise ValueError(f"{what} must be finite, got {value!r}")
    if low is not None and (v <= low if strict else v < low):
        raise ValueError(f"{what} = {v}{u} must be {'>' if strict else '>='} {low}{u}")
    if high is not None and v > high:
        raise ValueError(f"{what} = {v}{u} must be <= {high}{u}")
    return v


def plan_md(plan_name: str, plan_args: dict, md: dict | None, *, hints: dict | None = None,
            **extra) -> dict:
    """Start-document metadata for *plan_name*; raises ``ValueError`` if there is no valid
    sample (call before the plan yields its first message)."""
    md = dict(md or {})
    sample = md.pop("sample", None) or current_sample()
    if sample is None:
        raise ValueError("no sample declared: call set_sample(name=..., size_nm=..., ligand=..., "
                         "solvent=..., sigma_cm2=...) or pass md={'sample': {...}}")
    out = {"plan_name": plan_name, "plan_args": plan_args, "sample": _sample_from(sample).as_dict(),
           **extra}
    if hints:
        out["hints"] = hints
    out.update(md)
    return out
