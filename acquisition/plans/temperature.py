"""Heating-cell plans: a static temperature series (calibration of lattice parameters
against temperature) and ramp / hold / cool annealing profiles logged all the way.

``temperature_series``: at each temperature the cell settles (reading inside
``tolerance_c`` for ``settle_time_s`` without a break, then ``equilibrate_s`` more), then
``frames`` events are taken, each with the detectors and the cell's temperature, set point,
working set point and heater output. A checkpoint precedes every move and every frame.

``anneal_profile``: a list of segments, each a tuple or a dataclass of this module:

- ``("ramp", target_c, rate_c_min)`` / ``Ramp(target_c, rate_c_min)``: the controller's set
  point ramps at rate_c_min (C/min) to target_c. The segment ends at the first event that
  shows the working set point at the target (up to one period late; the controller sits at
  the target meanwhile). The reading may lag behind a fast ramp.
- ``("hold", temperature_c, duration_s)`` / ``Hold(...)``: keep the set point for duration_s
  (s), counted from the end of the previous segment, whose target must be temperature_c.
- ``("cool", target_c, rate_c_min)`` / ``Cool(...)``: a controlled ramp down (target below
  the previous segment's); the heater can only slow the natural cooling, not speed it up.

The first segment must be a ramp or a cool (from wherever the cell is). One event every
``period_s`` for the whole profile (detectors, cell readings, its ramp rate, the labels
``anneal_segment`` (index) and ``anneal_segment_kind``, ``anneal_time_s``, the time the event
was planned for, and ``anneal_clock_elapsed``, when it was taken, both in s since the profile
began), plus one at the very end; a period that overruns (slow detector) is
followed at once by the next event, with no catch-up burst. The session's progress callback
shows the segments.

All arguments are checked before the first message, so bad input fails before anything moves.

EXAMPLE::

    from trxrd.acquisition.plans.temperature import temperature_series, anneal_profile
    RE(temperature_series([pilatus], [25, 60, 100, 130, 160], cell=cell,
                          settle_time_s=60, equilibrate_s=600, frames=3))
    RE(anneal_profile([("ramp", 250, 10.0), ("hold", 250, 1800), ("cool", 25, 2.0)],
                      cell=cell, detectors=[pilatus], period_s=10.0))
    summarize_plan(anneal_profile(...))                 # bluesky.simulators: a dry run
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from bluesky import plan_stubs as bps
from bluesky import preprocessors as bpp
from bluesky.protocols import Readable
from bluesky.utils import MsgGenerator

from ... import datakeys as dk
from ...validation import count, finite, readables
from ..devices.clock import PlanClock
from ..suspenders import SuspendTemperatureOutOfBand
from ._labels import LabelSignal
from .metadata import plan_md

__all__ = ["temperature_series", "anneal_profile", "Ramp", "Hold", "Cool", "segments_from"]


def _detectors(detectors) -> list:
    detectors = readables(detectors, "detectors", empty_ok=True)
    for i, det in enumerate(detectors):
        if not hasattr(det, "trigger"):
            raise ValueError(f"detectors[{i}] {det!r:.60} is not a detector (needs read() and trigger())")
    return detectors


# -- temperature series ---------------------------------------------------------------------
def temperature_series(detectors: Sequence[Readable], temperatures_c: Iterable[float], *, cell,
                       settle_time_s: float | None = None, tolerance_c: float | None = None,
                       equilibrate_s: float = 0.0, timeout_s: float | None = None, frames: int = 1,
                       md: dict | None = None) -> MsgGenerator[str]:
    """Settle at each temperature in turn and take *frames* events there.

    A drift out of the band once settled pauses the plan until the cell is back (and has
    stayed ``settle_time_s``); the interrupted frame is retaken. The heater stays on at the
    last temperature.

    Parameters
    ----------
    detectors : list of detectors
    temperatures_c : list of float
        Set points (C), each within the cell's limits.
    cell : HeatingCell
    settle_time_s, tolerance_c, timeout_s : float, optional
        The settle rule (s, C, s); default: the cell's own.
    equilibrate_s : float
        Extra waiting after the settle (s; docs/science.md: 600 s per point for the static
        calibration).
    frames : int
        Events per temperature (labelled ``temperature_index`` and ``frame``).
    md : dict, optional
        Metadata for the start document; must hold ``sample``.

    Returns
    -------
    MsgGenerator
        The plan, checked.

    EXAMPLE::

        RE(temperature_series([pilatus], [25, 60, 100, 130, 160], cell=cell, settle_time_s=60,
                              equilibrate_s=600, frames=3, md={"sample": s}))
    """
    detectors = _detectors(detectors)
    if isinstance(temperatures_c, (str, bytes, dict)) or not hasattr(temperatures_c, "__iter__") \
            or (isinstance(temperatures_c, np.ndarray) and temperatures_c.ndim != 1):
        raise ValueError(f"temperatures_c must be a list of set points (C), got {temperatures_c!r:.60}")
    temps = list(temperatures_c)
    if not temps:
        raise ValueError("temperatures_c: the list is empty")
    temps = [cell.check_value(t) for t in temps]
    rule = cell.settle_rule(tolerance_c=tolerance_c, settle_time_s=settle_time_s,
                            equilibrate_s=equilibrate_s, timeout_s=timeout_s)
    frames = count(frames, "frames")
    args = dict(detectors=[d.name for d in detectors], temperatures_c=temps, cell=cell.name,
                frames=frames, **rule)
    md = plan_md("temperature_series", args, md,
                 hints={"dimensions": [([cell.setpoint.name], "primary")]},
                 num_points=len(temps) * frames, settle_rule=rule,
                 **{dk.KEY_MAP: {"temperature": cell.temperature.name, "segment": "temperature_index",
                                 **dk.image_fields(detectors)}})
    index = LabelSignal(name="temperature_index", value=0)
    frame = LabelSignal(name="frame", value=0)
    readables = detectors + [cell, index, frame]

    def inner():
        for i, t in enumerate(temps):
            yield from bps.checkpoint()
            yield from bps.abs_set(cell, t, wait=True, **rule)
            for k in range(frames):
                yield from bps.checkpoint()
                yield from bps.mv(index, i, frame, k)
                yield from bps.trigger_and_read(readables)

    drift = SuspendTemperatureOutOfBand(cell, rule["tolerance_c"], sleep=rule["settle_time_s"])
    return bpp.suspend_wrapper(bpp.stage_wrapper(bpp.run_wrapper(inner(), md=md), detectors), [drift])


# -- anneal profile -------------------------------------------------------------------------
@dataclass(frozen=True)
class Ramp:
    """Ramp the set point to ``target_c`` (C) at ``rate_c_min`` (C/min)."""
    target_c: float
    rate_c_min: float
    kind = "ramp"


@dataclass(frozen=True)
class Hold:
    """Keep the set point at ``temperature_c`` (C) for ``duration_s`` (s)."""
    temperature_c: float
    duration_s: float
    kind = "hold"


@dataclass(frozen=True)
class Cool:
    """Ramp the set point down to ``target_c`` (C) at ``rate_c_min`` (C/min)."""
    target_c: float
    rate_c_min: float
    kind = "cool"


_KINDS = {"ramp": Ramp, "hold": Hold, "cool": Cool}


def segments_from(steps, cell) -> list:
    """*steps* (tuples or dataclasses, see module) as checked ``Ramp``/``Hold``/``Cool``."""
    if isinstance(steps, (str, bytes)) or not np.iterable(steps):
        raise ValueError(f"steps must be a list of segments, got {steps!r}")
    steps = list(steps)
    if not steps:
        raise ValueError("steps: the list is empty")
    out, previous = [], None
    max_rate = cell.ramp_rate.allowed()[1]
    for i, step in enumerate(steps):
        where = f"steps[{i}]"
        if isinstance(step, (Ramp, Hold, Cool)):
            seg = step
        else:
            if isinstance(step, (str, bytes)) or not np.iterable(step) or len(step) != 3 \
                    or step[0] not in _KINDS:
                raise ValueError(f"{where} = {step!r}: expected (kind, temperature_c, rate_c_min or "
                                 f"duration_s) with kind one of {sorted(_KINDS)}")
            seg = _KINDS[step[0]](*step[1:])
        try:
            seg, temp = _segment(seg, where, cell, max_rate, previous)
        except ValueError as exc:
            text = str(exc)
            raise ValueError(text if text.startswith(where) else f"{where}: {text}") from None
        out.append(seg)
        previous = temp
    return out


def _segment(seg, where, cell, max_rate, previous):
    """(checked segment, temperature it ends at)."""
    if isinstance(seg, Hold):
        temp = cell.check_value(seg.temperature_c)
        duration = finite(seg.duration_s, f"{where} hold duration_s", low=0.0, strict=True, high=MAX_HOLD_S,
                          unit="s")
        if previous is None:
            raise ValueError(f"{where}: a profile starts with a ramp or a cool, not a hold")
        if abs(temp - previous) > 1e-9:
            raise ValueError(f"{where}: hold at {temp} C follows a segment ending at {previous} C; "
                             "ramp there first")
        return Hold(temp, duration), temp
    target = cell.check_value(seg.target_c)
    rate = finite(seg.rate_c_min, f"{where} {seg.kind} rate_c_min", low=0.0, strict=True,
                  high=max_rate, unit="C/min")
    if isinstance(seg, Cool) and previous is not None and target >= previous:
        raise ValueError(f"{where}: cool to {target} C must end below the previous "
                         f"{previous} C (use a ramp to go up)")
    return type(seg)(target, rate), target


MAX_HOLD_S = 7 * 86400.0       # a hold longer than a week is a typo


ANNEAL_KEYS = "anneal_keys"        # start document: data keys of the cell's readings


def anneal_profile(steps: Sequence, *, cell, detectors: Sequence[Readable] = (), period_s: float = 1.0,
                   md: dict | None = None) -> MsgGenerator[str]:
    """Run the ramp / hold / cool *steps* on the cell, logging one event every *period_s*.

    Parameters
    ----------
    steps : list of segments
        ``("ramp", target_c, rate_c_min)``, ``("hold", temperature_c, duration_s)``,
        ``("cool", target_c, rate_c_min)`` or the dataclasses ``Ramp``, ``Hold``, ``Cool``
        (see the module).
    cell : HeatingCell
        The temperature controller.
    detectors : list of detectors
        Exposed at every event, with the cell's readings.
    period_s : float
        Time between events (s); a period that overruns is followed at once by the next
        event, with no catch-up burst.
    md : dict, optional
        Metadata for the start document; must hold ``sample``.

    Returns
    -------
    MsgGenerator
        The plan, checked. Time is kept by a ``PlanClock`` device, so bluesky's simulators
        can walk it; progress is reported by the session's progress callback from the events.

    EXAMPLE::

        RE(anneal_profile([("ramp", 250, 10.0), ("hold", 250, 1800), ("cool", 25, 2.0)],
                          cell=cell, detectors=[pilatus], period_s=10.0, md={"sample": s}))
    """
    detectors = _detectors(detectors)
    segments = segments_from(steps, cell)
    period = finite(period_s, "period_s", low=0.0, strict=True, high=3600.0, unit="s")
    seg_list = [{"kind": s.kind, **asdict(s)} for s in segments]
    args = dict(steps=seg_list, cell=cell.name, detectors=[d.name for d in detectors], period_s=period)
    wsp_key = cell.working_setpoint.name
    seg_index = LabelSignal(name="anneal_segment", value=0)
    seg_kind = LabelSignal(name="anneal_segment_kind", value="")
    planned = LabelSignal(name="anneal_time_s", value=0.0, units="s")
    clock = PlanClock(name="anneal_clock")
    md = plan_md("anneal_profile", args, md, hints={"dimensions": [(["time"], "primary")]},
                 segments=seg_list, **{ANNEAL_KEYS: {"working_setpoint": wsp_key,
                                                     "temperature": cell.temperature.name},
                                       dk.KEY_MAP: {"temperature": cell.temperature.name,
                                                    "anneal_time": clock.elapsed.name, "segment": seg_index.name,
                                                    "segment_kind": seg_kind.name, **dk.image_fields(detectors)}})
    readables = detectors + [cell, seg_index, seg_kind, planned, clock]
    schedule = {"next": 0.0}                 # clock time (s) of the next event

    def tick():
        """Wait for the next event's time, take it, plan the one after; the reading."""
        yield from bps.mv(clock, schedule["next"], planned, schedule["next"])
        reading = yield from bps.trigger_and_read(readables)
        now = yield from bps.rd(clock.elapsed)          # 0 in a simulation: the schedule goes on
        schedule["next"] = max(schedule["next"] + period, now)
        return reading

    def start(i, seg):
        yield from bps.mv(seg_index, i, seg_kind, seg.kind)
        if isinstance(seg, Hold):
            return None
        yield from bps.mv(cell.ramp_rate, seg.rate_c_min)
        yield from bps.mv(cell.setpoint, seg.target_c)
        yield from bps.mv(cell.enable, "On")
        return (yield from bps.rd(cell.working_setpoint))

    def inner():
        for i, seg in enumerate(segments):
            from_c = yield from start(i, seg)
            t_seg = schedule["next"] = max(schedule["next"], (yield from bps.rd(clock.elapsed)))
            if isinstance(seg, Hold):
                while schedule["next"] < t_seg + seg.duration_s:
                    yield from tick()
                continue
            nominal_s = abs(seg.target_c - from_c) / seg.rate_c_min * 60.0
            limit_s = 2.0 * nominal_s + 60.0             # generous: the controller may lag
            while True:
                reading = yield from tick()
                if wsp_key not in reading:                # a simulation: follow the nominal ramp
                    if schedule["next"] - t_seg >= nominal_s:
                        break
                    continue
                wsp = reading[wsp_key]["value"]
                if abs(wsp - seg.target_c) <= 1e-6 * max(1.0, abs(seg.target_c)):
                    break
                if schedule["next"] - t_seg > limit_s:
                    raise RuntimeError(
                        f"anneal segment {i} ({seg.kind} to {seg.target_c} C at {seg.rate_c_min} C/min): "
                        f"working set point still {wsp:.2f} C after {limit_s:.0f} s")
        yield from bps.mv(clock, schedule["next"], planned, schedule["next"])
        yield from bps.trigger_and_read(readables)      # the state at the very end

    return bpp.stage_wrapper(bpp.run_wrapper(inner(), md=md), detectors + [clock])
