"""Settings of the pump-probe reduction, live and offline: the detector calibration (PONI file
and mask), the q windows of the signal, the number of q bins and the fit models. Checked when
made, so bad settings are refused at ``set_reduction(...)`` and not in the middle of a run.

EXAMPLE::

    from trxrd.reduction.settings import ReductionSettings, parse_window
    settings = ReductionSettings("waxs.poni", mask="waxs_mask.edf", windows=[parse_window("1.70:2.05")])
    settings.as_dict()                  # JSON-able, what the session saves
    ReductionSettings.from_dict(settings.as_dict()) == settings
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path

from .fluence import THRESHOLD_MODELS
from .peaks import SIGNAL_PARTS
from .pump_probe import KINETICS_MODELS
from .reflections import STRUCTURES, parse_reflection, thermometer_reflection
from .thermometry import ThermometerCalibration
from .xcca import DQ_DEFAULT

MIN_NPT = 10
MAX_NPT = 100_000               # q bins: far more than any detector has radial pixels
MAX_IRF_FWHM_PS = 1e6           # an instrument response longer than 1 us is not a pump-probe IRF
LIVE_ENGINES = ("trxrd", "cuda")   # who integrates live (see AzimuthalIntegration)


def parse_window(text: str) -> tuple[float, float]:
    """A q window "QMIN:QMAX" (A^-1) as two floats, QMIN < QMAX."""
    try:
        low, high = (float(v) for v in str(text).split(":"))
    except ValueError:
        raise ValueError(f"q window {text!r}: expected QMIN:QMAX in A^-1, e.g. 1.70:2.05") from None
    return _window((low, high), text)


def _window(window, label) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in window)
    except (TypeError, ValueError):
        raise ValueError(f"q window {label!r}: expected (QMIN, QMAX) in A^-1") from None
    if not (math.isfinite(low) and math.isfinite(high)) or not 0 <= low < high:
        raise ValueError(f"q window {label!r}: need finite 0 <= QMIN < QMAX (A^-1)")
    return low, high


@dataclass(frozen=True)
class ReductionSettings:
    """What the reduction needs; every value is checked when the object is made.

    Parameters
    ----------
    poni : path
        pyFAI calibration of the detector (PONI file).
    mask : path, optional
        Mask image (non-zero = masked); negative pixels are always masked.
    windows : list of (qmin, qmax)
        q windows of the pump-probe signal, A^-1.
    npt : int
        q bins of the integration.
    part : {"area", "negative", "positive"}
        Which part of dI the signal integrates.
    model : {"exp", "biexp", "auto"}
        Kinetics model of delay scans.
    threshold_model : {"saturating", "linear"}
        Melting-threshold model of fluence scans.
    irf_fwhm_ps : float, optional
        Fixes the instrument response (ps FWHM); fitted when None.
    image_key : str
        Detector image of runs that do not name theirs (pump-probe plans name it).
    reflections : list of str
        "HKL:QMIN:QMAX" (A^-1) of the reflections fitted one by one (per-reflection shifts,
        <du^2>, time constants; heating series make thermometers of them). Empty: none.
    structure : {"cubic", "tetragonal"}
        Lattice parameters from the reflections: cubic a, or tetragonal a, c and V.
    thermometer : dict, optional
        A thermometer calibration (``ThermometerCalibration.as_dict()``) on one of the
        reflections: delay and fluence scans add the lattice temperature rise.
    engine : {"trxrd", "cuda"}
        Who integrates the frames: trxrd's engine on the CPU cores (default), or the same map
        on an NVIDIA GPU (needs CuPy; refused here on a host without one).

    EXAMPLE::

        ReductionSettings("waxs.poni", windows=[(1.70, 2.05)], model="biexp")
    """

    poni: Path
    windows: tuple = ()
    mask: Path | None = None
    npt: int = 1000
    part: str = "area"
    model: str = "auto"
    threshold_model: str = "saturating"
    irf_fwhm_ps: float | None = None
    image_key: str = "pilatus_image"
    reflections: tuple = ()
    structure: str = "cubic"
    thermometer: dict | None = None
    engine: str = "trxrd"

    def __post_init__(self):
        poni = Path(self.poni).expanduser().resolve()
        if not poni.is_file():
            raise ValueError(f"PONI file not found: {poni}")
        object.__setattr__(self, "poni", poni)
        if self.mask is not None:
            mask = Path(self.mask).expanduser().resolve()
            if not mask.is_file():
                raise ValueError(f"mask file not found: {mask}")
            object.__setattr__(self, "mask", mask)
        if isinstance(self.windows, (str, bytes)) or not self.windows:
            raise ValueError("give at least one q window, e.g. windows=[(1.70, 2.05)] (A^-1)")
        object.__setattr__(self, "windows", tuple(_window(w, w) for w in self.windows))
        _check_npt(self.npt)
        if len(set(self.windows)) != len(self.windows):
            raise ValueError(f"a q window is listed twice: {[list(w) for w in self.windows]}")
        for name, allowed in (("part", SIGNAL_PARTS), ("model", KINETICS_MODELS),
                              ("threshold_model", tuple(THRESHOLD_MODELS))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; choose one of {', '.join(allowed)}")
        if self.irf_fwhm_ps is not None:
            irf = self.irf_fwhm_ps
            if isinstance(irf, bool) or not isinstance(irf, (int, float)) or not (math.isfinite(irf) and irf > 0) \
                    or irf > MAX_IRF_FWHM_PS:
                raise ValueError(f"irf_fwhm_ps must be a positive number of ps up to {MAX_IRF_FWHM_PS:g} ps, "
                                 f"or None, got {irf!r}")
            object.__setattr__(self, "irf_fwhm_ps", float(irf))
        if not (isinstance(self.image_key, str) and self.image_key):
            raise ValueError(f"image_key must be a data key name, got {self.image_key!r}")
        if isinstance(self.reflections, (str, bytes)):
            raise ValueError("reflections must be a list of HKL:QMIN:QMAX strings")
        parsed = [parse_reflection(r) for r in self.reflections]
        object.__setattr__(self, "reflections", tuple(f"{r.label}:{r.q_min:g}:{r.q_max:g}" for r in parsed))
        if len({r.label for r in parsed}) != len(parsed):
            raise ValueError(f"a reflection is listed twice: {list(self.reflections)}")
        if self.structure not in STRUCTURES:
            raise ValueError(f"unknown structure {self.structure!r}; choose one of {', '.join(STRUCTURES)}")
        if self.engine not in LIVE_ENGINES:
            raise ValueError(f"unknown engine {self.engine!r}; choose one of {', '.join(LIVE_ENGINES)}")
        if self.engine == "cuda":
            from .gpu import cupy

            try:
                cupy()
            except RuntimeError as exc:          # before any frame: a clear refusal
                raise ValueError(str(exc)) from None
        if self.thermometer is not None:
            label = thermometer_reflection(ThermometerCalibration.from_dict(self.thermometer))
            if label not in {r.label for r in parsed}:
                raise ValueError(f"the thermometer is for reflection {label}: list it in reflections "
                                 f"(e.g. {label}:QMIN:QMAX)")

    @property
    def parsed_reflections(self) -> list:
        """The reflections as ``Reflection`` objects."""
        return [parse_reflection(r) for r in self.reflections]

    @property
    def thermometer_calibration(self) -> ThermometerCalibration | None:
        return None if self.thermometer is None else ThermometerCalibration.from_dict(self.thermometer)

    def as_dict(self) -> dict:
        """JSON-able form (paths as strings, windows as lists)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["poni"] = str(self.poni)
        out["mask"] = None if self.mask is None else str(self.mask)
        out["windows"] = [list(w) for w in self.windows]
        out["reflections"] = list(self.reflections)
        return out

    @classmethod
    def from_dict(cls, values: dict) -> "ReductionSettings":
        """Settings from a dict (e.g. the saved state); unknown keys are refused."""
        return _from_dict(cls, values, "reduction", "reduction settings need a PONI file (poni=...)")

    def replace(self, **changes) -> "ReductionSettings":
        """A copy with *changes* (None values are ignored), checked again."""
        values = self.as_dict()
        values.update({k: v for k, v in changes.items() if v is not None})
        return ReductionSettings.from_dict(values)



@dataclass(frozen=True)
class SaxsSettings:
    """What the live SAXS reduction needs (injection series: spheres per frame; anneals:
    the stacking peak); every value is checked when the object is made.

    Parameters
    ----------
    poni : path
        pyFAI calibration of the SAXS detector.
    mask : path, optional
        Mask image (non-zero = masked).
    npt : int
        q bins of the integration.
    q_min, q_max : float, optional
        Range of the sphere fit (A^-1; ``parse_q`` strings such as "0.2nm-1" accepted); default
        the whole detector.
    distribution : {"schulz", "gaussian"}
        Number distribution of radii.
    background : "auto" or path
        "auto": the mean of the frames before the injection; or an image / HDF5 file of
        background frames (their mean, integrated with this calibration; normalised by I0 the
        same way when the runs record it, so take it with the same monitor).
    background_i0 : float, optional
        I0 of the background frames (A), needed when the runs record I0 (their frames are
        divided by it; so is the background then).
    contrast_cm2, absolute_factor : float, optional
        With a contrast (SLD difference, cm^-2) the concentration is also given in uM, the
        intensity times *absolute_factor* being in cm^-1.
    stacking_q : (qmin, qmax), optional
        Range searched for the stacking peak of a platelet film during anneals (A^-1); None:
        anneals are not reduced.
    image_key : str
        SAXS image of runs that do not name theirs.

    EXAMPLE::

        SaxsSettings("saxs.poni", mask="saxs_mask.edf", q_min="0.2nm-1", q_max=0.35, distribution="schulz")
    """

    poni: Path
    mask: Path | None = None
    npt: int = 500
    q_min: float | None = None
    q_max: float | None = None
    distribution: str = "schulz"
    background: str = "auto"
    background_i0: float | None = None
    contrast_cm2: float | None = None
    absolute_factor: float = 1.0
    stacking_q: tuple | None = None
    image_key: str = "saxs_image"

    def __post_init__(self):
        from .saxs import DISTRIBUTIONS, parse_q

        _resolve_calibration(self)
        _check_npt(self.npt)
        for name in ("q_min", "q_max"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, parse_q(getattr(self, name), name))
        if self.q_min is not None and self.q_max is not None and not self.q_min < self.q_max:
            raise ValueError(f"q_min {self.q_min} must be below q_max {self.q_max} (A^-1)")
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(f"unknown distribution {self.distribution!r}; choose one of {', '.join(DISTRIBUTIONS)}")
        if self.background != "auto":
            path = Path(self.background).expanduser().resolve()
            if not path.is_file():
                raise ValueError(f"background must be 'auto' or a file of background frames; not found: {path}")
            object.__setattr__(self, "background", str(path))
        if self.background_i0 is not None:
            b = self.background_i0
            if isinstance(b, bool) or not isinstance(b, (int, float)) or not (math.isfinite(b) and b > 0):
                raise ValueError(f"background_i0 must be a positive I0 (A), got {b!r}")
            if self.background == "auto":
                raise ValueError("background_i0 goes with a background file, not with background='auto'")
        if self.contrast_cm2 is not None:
            c = self.contrast_cm2
            if isinstance(c, bool) or not isinstance(c, (int, float)) or not (math.isfinite(c) and c != 0):
                raise ValueError(f"contrast_cm2 must be a non-zero SLD difference in cm^-2, got {c!r}")
        a = self.absolute_factor
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not (math.isfinite(a) and a > 0):
            raise ValueError(f"absolute_factor must be a positive number, got {a!r}")
        if self.stacking_q is not None:
            values = self.stacking_q.split(":") if isinstance(self.stacking_q, str) else self.stacking_q
            if isinstance(values, (int, float)) or len(values) != 2:
                raise ValueError(f"stacking_q {self.stacking_q!r}: give QMIN:QMAX or (QMIN, QMAX) in A^-1")
            low, high = (parse_q(v, "stacking_q") for v in values)
            if not low < high:
                raise ValueError(f"stacking_q {self.stacking_q}: need QMIN < QMAX (A^-1)")
            object.__setattr__(self, "stacking_q", (low, high))

    def as_dict(self) -> dict:
        return {**_as_dict(self), "stacking_q": None if self.stacking_q is None else list(self.stacking_q)}

    @classmethod
    def from_dict(cls, values: dict) -> "SaxsSettings":
        """Settings from a dict (e.g. the saved state); unknown keys are refused."""
        return _from_dict(cls, values, "SAXS", "SAXS settings need the SAXS detector's PONI file (poni=...)")


@dataclass(frozen=True)
class XccaSettings:
    """Settings of the cross-correlation analysis of a nano-diffraction raster (``raster_scan``).

    Parameters
    ----------
    poni : path
        Calibration of the detector that sees both rings.
    mask : path, optional
    q1, q2 : float or str
        The two rings (A^-1, or strings such as "1.72nm-1"); C(q1, q2, D). The lower is the
        superlattice ring (grains, orientation), the higher the atomic-lattice ring.
    dq : float or str
        Width of each ring (A^-1).
    nphi : int
        Azimuth bins over 360 deg.
    image_key : str
        Image of runs that do not name theirs.

    EXAMPLE::

        XccaSettings("waxs.poni", q1=1.833, q2="1.72nm-1", mask="waxs_mask.edf", dq=0.02)
    """

    poni: Path
    q1: float | None = None
    q2: float | None = None
    mask: Path | None = None
    dq: float = DQ_DEFAULT
    nphi: int = 180
    image_key: str = "pilatus_image"

    def __post_init__(self):
        from .saxs import parse_q
        from .xcca import check_nphi, check_rings

        _resolve_calibration(self)
        if self.q1 is None or self.q2 is None:
            raise ValueError("XCCA needs two rings: q1 and q2 (A^-1, or strings such as \"1.72nm-1\")")
        rings = check_rings(*(parse_q(getattr(self, name), name) for name in ("q1", "q2", "dq")))
        for name, value in zip(("q1", "q2", "dq"), rings):
            object.__setattr__(self, name, value)
        check_nphi(self.nphi)

    def as_dict(self) -> dict:
        return _as_dict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "XccaSettings":
        """Settings from a dict (e.g. the saved state); unknown keys are refused."""
        return _from_dict(cls, values, "XCCA", "XCCA settings need the detector's PONI file (poni=...)")


def _check_npt(npt) -> None:
    if isinstance(npt, bool) or not isinstance(npt, int) or not MIN_NPT <= npt <= MAX_NPT:
        raise ValueError(f"npt must be an integer of q bins, {MIN_NPT} .. {MAX_NPT}, got {npt!r}")


def detector_q_range(poni) -> tuple[float, float]:
    """(q_min, q_max) the detector of the PONI file *poni* sees (A^-1, pixel centres)."""
    import pyFAI

    try:
        ai = pyFAI.load(str(poni))
        shape = ai.detector.shape
        q = ai.qArray(shape) / 10.0               # nm^-1 -> A^-1
    except Exception as exc:    # pyFAI raises many kinds on a malformed file
        raise ValueError(f"cannot read the PONI file {poni}: {exc}") from exc
    return float(q.min()), float(q.max())


def check_q_coverage(settings: ReductionSettings) -> None:
    """``ValueError`` if a q window or reflection of *settings* lies wholly outside what the
    detector of its PONI file sees: it would integrate nothing, run after run."""
    low, high = detector_q_range(settings.poni)
    ranges = [(f"q window {w[0]:g}:{w[1]:g}", w) for w in settings.windows]
    ranges += [(f"reflection {r.label}:{r.q_min:g}:{r.q_max:g}", (r.q_min, r.q_max))
               for r in settings.parsed_reflections]
    for what, (q_min, q_max) in ranges:
        if q_max <= low or q_min >= high:
            raise ValueError(f"{what} (A^-1) is outside what the detector sees, {low:.3g} .. {high:.3g} A^-1 "
                             f"(PONI {settings.poni.name})")


def _resolve_calibration(settings) -> None:
    """Turn the ``poni`` and ``mask`` of frozen *settings* into absolute paths of existing files;
    check its ``image_key``."""
    for name in ("poni", "mask"):
        value = getattr(settings, name)
        if value is None:
            continue
        path = Path(value).expanduser().resolve()
        if not path.is_file():
            raise ValueError(f"{'PONI' if name == 'poni' else 'mask'} file not found: {path}")
        object.__setattr__(settings, name, path)
    if not (isinstance(settings.image_key, str) and settings.image_key):
        raise ValueError(f"image_key must be a data key name, got {settings.image_key!r}")


def _as_dict(settings) -> dict:
    """The fields of *settings*, JSON-able (paths as strings)."""
    out = {f.name: getattr(settings, f.name) for f in fields(settings)}
    out["poni"] = str(settings.poni)
    out["mask"] = None if settings.mask is None else str(settings.mask)
    return out


def _from_dict(cls, values: dict, what: str, no_poni: str):
    """*cls* from *values*: unknown keys refused, a PONI file required, None values left to the defaults."""
    known = {f.name for f in fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown {what} setting(s) {sorted(unknown)}; known: {sorted(known)}")
    if not values.get("poni"):
        raise ValueError(no_poni)
    return cls(**{k: v for k, v in values.items() if v is not None})
