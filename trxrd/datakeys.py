"""The names in trxrd's documents, in one place: what the pump-probe plans write and the live and
offline reductions read, with units and meaning. Plans and reduction both import this module;
neither spells these strings itself.

Raw runs of the pump-probe plans (``delay_scan``, ``fluence_scan``, ``fluence_delay_grid``)
carry in every ``primary`` event:

- the plan's labels, under the fixed names below: ``role`` (one of :data:`ROLES`),
  ``requested_delay`` (ps), ``delay_index``, ``repeat``, ``frame_valid`` and, in fluence plans,
  ``requested_fluence`` (mJ/cm^2);
- the devices' readings, whose data keys depend on how the beamline named its devices. The
  start document therefore maps each :data:`FIELDS` name to the data key of this run under
  :data:`KEY_MAP` (e.g. ``{"delay": "pump_delay", "fluence": "att_fluence", ...}``);
  :func:`key_map` reads and checks it.

Reduced runs (``plan_name`` :data:`INTEGRATE_PLAN`) carry, per frame, ``q`` (A^-1),
``intensity`` and ``sigma`` (counts/monitor), ``raw_seq_num`` and the pump-probe fields under
their names here (``delay``, ``role``, ``i0``, ...). Every derived run links its raw run by
:data:`RAW_UID` in its start document.

EXAMPLE::

    from trxrd import datakeys as dk
    dk.PLAN_KINDS["fluence_delay_grid"]        # "grid"
    dk.FIELDS["delay"].units                    # "ps"
    dk.key_map(start_doc)["delay"]              # "pump_delay" with the beamline's device names
    dk.plan_fields("fluence_scan")              # every field a fluence scan's events carry
"""
from __future__ import annotations

from dataclasses import dataclass

# -- plans ---------------------------------------------------------------------------------------
#: pump-probe plan name -> kind of reduction: a kinetics vs delay, a threshold vs fluence, or both
PLAN_KINDS = {"delay_scan": "delay", "fluence_scan": "fluence", "fluence_delay_grid": "grid",
              "find_time_zero": "delay"}

#: delay plans whose live fit is the onset (time zero), not the kinetics
ONSET_PLANS = ("find_time_zero",)

#: start-document key: the reference mode of the run (one of REFERENCE_MODES)
REFERENCE = "reference"
REFERENCE_MODES = ("interleaved", "negative_delay")

#: start-document key: {field name: data key} of this run's device readings
KEY_MAP = "trxrd_keys"

# -- roles of the frames ---------------------------------------------------------------------------
ROLE = "role"
ROLE_ON = "on"                  # pump on, at the requested delay
ROLE_OFF = "off"                # pump shutter closed (interleaved reference)
ROLE_REFERENCE = "reference"    # pump on at a negative delay (negative_delay reference)
ROLES = (ROLE_ON, ROLE_OFF, ROLE_REFERENCE)

# -- fixed labels written by the plans ---------------------------------------------------------------
REQUESTED_DELAY = "requested_delay"
REQUESTED_FLUENCE = "requested_fluence"
DELAY_INDEX = "delay_index"
REPEAT = "repeat"
FRAME_VALID = "frame_valid"


@dataclass(frozen=True)
class Field:
    """One quantity in the events: its units ("" if none) and what it is."""
    units: str
    meaning: str


#: every pump-probe field, by its name in reduced runs (and in KEY_MAP for device readings)
FIELDS = {
    ROLE: Field("", "what the frame is: 'on' (pumped), 'off' (shutter closed) or 'reference' "
                    "(pumped before time zero)"),
    REQUESTED_DELAY: Field("ps", "delay asked for at this point (groups the frames of a point)"),
    REQUESTED_FLUENCE: Field("mJ/cm^2", "fluence asked for at this point (fluence plans)"),
    DELAY_INDEX: Field("", "index of the point in the plan's delay list"),
    REPEAT: Field("", "pass over the delay list (0-based)"),
    FRAME_VALID: Field("", "the frame's own readings match its role (jet flowing, pump shutter as the role "
                           "needs); invalid frames are kept for the record, never reduced, and taken again"),
    "delay": Field("ps", "actual pump-probe delay from the readbacks (probe after pump > 0)"),
    "fluence": Field("mJ/cm^2", "pump fluence from the calibrated attenuator"),
    "excitations": Field("excitations per NC", "mean absorbed photons per nanocrystal <N>"),
    "i0": Field("A", "incident X-ray flux of the frame (ion chamber)"),
    "shutter": Field("", "pump shutter state read back: 'Open' or 'Closed'"),
    "jet_flow": Field("mL/min", "liquid-jet flow"),
    "image": Field("counts", "the (WAXS) detector frame (a datum in raw runs)"),
    "temperature": Field("C", "heating-cell (or mantle) temperature read back"),
    "saxs_image": Field("counts", "the SAXS detector frame (a datum in raw runs)"),
    "reaction_time": Field("s", "time since the injection at mid-exposure (negative before it)"),
    "delivered": Field("mL", "volume delivered by the syringe pump"),
    "anneal_time": Field("s", "time since the anneal profile began, when the frame was taken"),
    "segment": Field("", "index of the anneal segment (ramp, hold or cool)"),
    "segment_kind": Field("", "kind of the anneal segment: 'ramp', 'hold' or 'cool'"),
    "x_um": Field("um", "sample-stage x read back (raster position)"),
    "y_um": Field("um", "sample-stage y read back (raster position)"),
}

#: fields whose data keys come from the devices (listed in KEY_MAP of the start document)
DEVICE_FIELDS = ("delay", "fluence", "excitations", "i0", "shutter", "jet_flow", "image")
#: fields written under their own name by every pump-probe plan
LABEL_FIELDS = (ROLE, REQUESTED_DELAY, DELAY_INDEX, REPEAT, FRAME_VALID)

# -- derived runs ---------------------------------------------------------------------------------------
RAW_UID = "raw_uid"
RAW_PLAN_NAME = "raw_plan_name"
INTEGRATE_PLAN = "integrate"         # plan_name of a reduced run (I(q) per frame)
PUMP_PROBE_PLAN = "pump_probe"       # plan_name of a pump-probe reduction (dI, signal, fits)
REFLECTIONS_PLAN = "reflections"     # plan_name of a per-reflection reduction (shifts, <du^2>, taus)
THERMOMETER_PLAN = "thermometer"     # plan_name of a thermometer calibration (static heating series)
SAXS_PLAN = "saxs"                   # plan_name of a SAXS sphere reduction (r, sigma, concentration per frame)
STACKING_PLAN = "stacking"           # plan_name of a stacking-peak reduction (platelet period per frame)
XCCA_PLAN = "xcca"                   # plan_name of a raster's cross-correlation analysis (maps, averaged CCF)
HEATING_PLANS = ("temperature_series",)
INJECTION_PLANS = ("injection_series",)
ANNEAL_PLANS = ("anneal_profile", "temperature_series")
RASTER_PLANS = ("raster_scan",)
Q, INTENSITY, SIGMA, RAW_SEQ_NUM, RAW_TIME = "q", "intensity", "sigma", "raw_seq_num", "raw_time"


def image_fields(detectors) -> dict[str, str]:
    """{"image": data key, "saxs_image": data key} of the first WAXS and the first SAXS
    detector among *detectors* (their ``geometry`` attribute), for KEY_MAP."""
    out = {}
    for det in detectors:
        if hasattr(det, "image_key"):
            out.setdefault("saxs_image" if getattr(det, "geometry", "waxs") == "saxs" else "image", det.image_key)
    return out


def plan_fields(plan_name: str) -> tuple[str, ...]:
    """Names of the fields every primary event of *plan_name* carries (see module)."""
    kind = PLAN_KINDS.get(plan_name)
    if kind is None:
        raise ValueError(f"{plan_name!r} is not a pump-probe plan ({', '.join(PLAN_KINDS)})")
    extra = (REQUESTED_FLUENCE,) if kind in ("fluence", "grid") else ()
    return LABEL_FIELDS + extra + DEVICE_FIELDS


def key_map(start: dict) -> dict[str, str]:
    """{field: data key} of a run, from its start document; ``ValueError`` naming what is
    missing when the run does not follow this contract (a pump-probe plan maps every device
    field; other plans, e.g. ``temperature_series``, map what they read)."""
    mapping = start.get(KEY_MAP)
    if not isinstance(mapping, dict):
        raise ValueError(f"run {str(start.get('uid', '?'))[:8]} ({start.get('plan_name')}) has no "
                         f"{KEY_MAP!r} map in its start document: not written by a trxrd pump-probe plan")
    unknown = [f for f in mapping if f not in FIELDS]
    if unknown:
        raise ValueError(f"run {str(start.get('uid', '?'))[:8]}: {KEY_MAP} has unknown fields {', '.join(unknown)}")
    required = DEVICE_FIELDS if start.get("plan_name") in PLAN_KINDS else ()
    missing = [f for f in required if f not in mapping]
    if missing:
        raise ValueError(f"run {str(start.get('uid', '?'))[:8]}: {KEY_MAP} lacks {', '.join(missing)}")
    return {**{f: f for f in LABEL_FIELDS + (REQUESTED_FLUENCE,)}, **mapping}


def check_role(value) -> str:
    """*value* if it is one of :data:`ROLES`, else ``ValueError`` (a frame of unknown role must
    never be counted as pumped or as reference)."""
    if value not in ROLES:
        raise ValueError(f"frame with {ROLE} = {value!r}: expected one of {', '.join(ROLES)}")
    return value
