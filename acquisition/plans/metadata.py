"""Run metadata: the sample under the beam and the plan's own arguments, validated before a plan
moves or exposes anything.

Every plan puts ``sample`` (name, size_nm, ligand, solvent, sigma_cm2), ``plan_name``,
``plan_args`` and ``hints`` in its start document. The sample comes from ``md["sample"]``; the
beamline session's plans fill it in from ``set_sample(...)``.

EXAMPLE::

    from trxrd.acquisition.plans.metadata import Sample, plan_md
    sample = Sample(name="CuInSe2 NCs", size_nm=7.0, ligand="oleylamine", solvent="dodecane",
                    sigma_cm2=4e-14)
    plan_md("delay_scan", {"delays_ps": [0, 100]}, {"sample": sample.as_dict()})["sample"]["name"]
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from ...validation import finite

__all__ = ["Sample", "sample_from", "plan_md"]


@dataclass(frozen=True)
class Sample:
    """What is in the jet / cell, checked when made.

    Parameters
    ----------
    name, ligand, solvent : str
        Non-empty descriptions.
    size_nm : float
        Nanocrystal diameter (nm).
    sigma_cm2 : float
        Absorption cross-section per nanocrystal at the pump wavelength (cm^2), which converts
        fluence into excitations per nanocrystal.

    EXAMPLE::

        Sample(name="CuInSe2 NCs", size_nm=7.0, ligand="oleylamine", solvent="dodecane", sigma_cm2=4e-14)
    """

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
        object.__setattr__(self, "size_nm", finite(self.size_nm, "sample size_nm", low=0.0, strict=True, unit="nm"))
        sigma = finite(self.sigma_cm2, "sample sigma_cm2", low=0.0, strict=True, unit="cm^2")
        if sigma > 1e-10:
            raise ValueError(f"sample sigma_cm2 = {sigma} cm^2 is not a cross-section per nanocrystal "
                             "(expected ~1e-16 .. 1e-12 cm^2); check the units")
        object.__setattr__(self, "sigma_cm2", sigma)

    def as_dict(self) -> dict:
        return asdict(self)


def sample_from(fields) -> Sample:
    """A :class:`Sample` from itself or from a dict with exactly its fields."""
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


def plan_md(plan_name: str, plan_args: dict, md: dict | None, *, hints: dict | None = None,
            **extra) -> dict:
    """Start-document metadata for *plan_name*: ``ValueError`` if ``md`` has no valid sample or
    holds something that cannot be stored (call it before the plan yields its first message)."""
    if md is not None and not isinstance(md, dict):
        raise ValueError(f"md must be a dict of metadata, got {type(md).__name__} {md!r:.80}")
    md = dict(md or {})
    reserved = sorted(RESERVED_KEYS & set(md))
    if reserved:
        raise ValueError(f"md must not set {reserved}: the RunEngine writes them")
    sample = md.pop("sample", None)
    if sample is None:
        raise ValueError("no sample declared: call set_sample(name=..., size_nm=..., ligand=..., "
                         "solvent=..., sigma_cm2=...) or pass md={'sample': {...}}")
    out = {"plan_name": plan_name, "plan_args": plan_args, "sample": sample_from(sample).as_dict(),
           **extra}
    if hints:
        out["hints"] = hints
    out.update(md)
    try:
        json.dumps(md, allow_nan=False)       # what a catalog stores: no NaN, str keys only
    except (TypeError, ValueError) as exc:
        raise ValueError(f"md must hold only finite numbers, strings, lists and dicts with string keys "
                         f"(it is stored with the run): {exc}") from None
    bad_keys = [k for k in _all_keys(md) if not isinstance(k, str)]
    if bad_keys:
        raise ValueError(f"md keys must be strings (it is stored with the run as JSON), got {bad_keys[0]!r}")
    return out


RESERVED_KEYS = frozenset({"uid", "time"})


def _all_keys(value):
    """Every dict key in *value*, nested dicts and lists included."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _all_keys(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _all_keys(item)
