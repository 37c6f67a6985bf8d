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
``period_s`` for the whole profile (detectors, cell readings, its ramp rate and the labels
``anneal_segment`` (index) and ``anneal_segment_kind``), plus one at the very end; a
period that overruns (slow detector) is followed at once by the next event, with no
catch-up burst. A tqdm progress bar counts segments.

All arguments are checked before the first message, so bad input fails before anything moves.

EXAMPLE::

    from trxrd.acquisition.plans.temperature import temperature_series, anneal_profile
    RE(temperature_series([pilatus], [25, 60, 100, 130, 160], cell=cell,
                          settle_time_s=60, equilibrate_s=600, frames=3))
    RE(anneal_profile([("ramp", 250, 10.0), ("hold", 250, 1800), ("cool", 25, 2.0)],
                      cell=cell, detectors=[pilatus], period_s=10.0))
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
from bluesky import plan_stubs as bps
from bluesky import preprocessors as bpp
from tqdm.auto import tqdm

from ..suspenders import SuspendTemperatureOutOfBand
from ._labels import LabelSignal
from ...validation import count, finite
from .metadata import plan_md

__all__ = ["temperature_series", "anneal_profile", "Ramp", "Hold", "Cool", "segments_from"]


def _detectors(detectors) -> list:
    detectors = list(detectors or [])
    for det in detectors:
        if not hasattr(det, "read") or not hasattr(det, "trigger"):
            raise ValueError(f"{det!r} is not a detector (needs read() and trigger())")
    return detectors


# -- temperature series ---------------------------------------------------------------------
def temperature_series(detectors, temperatures_c, *, cell, settle_time_s=None, tolerance_c=None,
                       equilibrate_s=0.0, timeout_s=None, frames=1, md=None):
    """Settle at each of *temperatures_c* (C) in turn and take *frames* events there. A
    drift out of the band once settled pauses the plan until the cell is back (and has
    stayed ``settle_time_s``); the interrupted frame is retaken.

    ``settle_time_s``, ``tolerance_c`` and ``timeout_s`` default to the cell's own rule;
    ``equilibrate_s`` (s) is extra waiting after the settle (SCIENCE: 600 s per point for the
    static calibration). Events carry ``temperature_index`` and ``frame``; the cell is the
    connected beamline's when not given. The heater stays on at the last temperature.

    EXAMPLE::

        RE(temperature_series([pilatus], [25, 60, 100, 130, 160], settle_time_s=60,
                              equilibrate_s=600, frames=3))
    """
    detectors = _detectors(detectors)
    temps = list(temperatures_c) if np.ndim(temperatures_c) else [temperatures_c]
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
                 num_points=len(temps) * frames, settle_rule=rule)
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
    max_rate = cell.ramp_rate.high
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
        if isinstance(seg, Hold):
            temp = cell.check_value(seg.temperature_c)
            duration = finite(seg.duration_s, f"{where} hold duration_s", low=0.0, strict=True, unit="s")
            if previous is None:
                raise ValueError(f"{where}: a profile starts with a ramp or a cool, not a hold")
            if abs(temp - previous) > 1e-9:
                raise ValueError(f"{where}: hold at {temp} C follows a segment ending at {previous} C; "
                                 "ramp there first")
            seg = Hold(temp, duration)
        else:
            target = cell.check_value(seg.target_c)
            rate = finite(seg.rate_c_min, f"{where} {seg.kind} rate_c_min", low=0.0, strict=True,
                          high=max_rate, unit="C/min")
            if isinstance(seg, Cool) and previous is not None and target >= previous:
                raise ValueError(f"{where}: cool to {target} C must end below the previous "
                                 f"{previous} C (use a ramp to go up)")
            seg = type(seg)(target, rate)
            temp = target
        out.append(seg)
        previous = temp
    return out


def anneal_profile(steps, *, cell, detectors=(), period_s=1.0, progress=True, md=None):
    """Run the ramp / hold / cool *steps* (see module) on the cell, one event every
    *period_s* (s) with the cell readings and the *detectors*. ``progress``: tqdm bar.

    EXAMPLE::

        RE(anneal_profile([("ramp", 250, 10.0), ("hold", 250, 1800), ("cool", 25, 2.0)],
                          detectors=[pilatus], period_s=10.0))
    """
    detectors = _detectors(detectors)
    segments = segments_from(steps, cell)
    period = finite(period_s, "period_s", low=0.0, strict=True, unit="s")
    seg_list = [{"kind": s.kind, **asdict(s)} for s in segments]
    args = dict(steps=seg_list, cell=cell.name, detectors=[d.name for d in detectors], period_s=period)
    md = plan_md("anneal_profile", args, md, hints={"dimensions": [(["time"], "primary")]},
                 segments=seg_list)
    seg_index = LabelSignal(name="anneal_segment", value=0)
    seg_kind = LabelSignal(name="anneal_segment_kind", value="")
    readables = detectors + [cell, seg_index, seg_kind]
    wsp_key = cell.working_setpoint.name

    def start(i, seg):
        yield from bps.mv(seg_index, i, seg_kind, seg.kind)
        if isinstance(seg, Hold):
            return None
        yield from bps.mv(cell.ramp_rate, seg.rate_c_min)
        yield from bps.mv(cell.setpoint, seg.target_c)
        yield from bps.mv(cell.enable, "On")
        return (yield from bps.rd(cell.working_setpoint))

    def inner(bar):
        t_tick = time.monotonic()
        last = None                        # the latest event's reading
        for i, seg in enumerate(segments):
            from_c = yield from start(i, seg)
            t_seg = time.monotonic()
            if from_c is not None:         # ramp/cool: generous limit from the nominal duration
                limit_s = 2.0 * abs(seg.target_c - from_c) / seg.rate_c_min * 60.0 + 60.0
            while True:
                now = time.monotonic()
                if isinstance(seg, Hold):
                    frac = (now - t_seg) / seg.duration_s
                    if frac >= 1.0:
                        break
                if now >= t_tick:
                    last = yield from bps.trigger_and_read(readables)
                    t_tick = max(t_tick + period, time.monotonic())
                    if from_c is not None:
                        wsp = last[wsp_key]["value"]
                        span = abs(seg.target_c - from_c)
                        frac = 1.0 - abs(seg.target_c - wsp) / span if span > 0 else 1.0
                        if abs(wsp - seg.target_c) <= 1e-6 * max(1.0, abs(seg.target_c)):
                            bar.n = i + 1
                            bar.refresh()
                            break
                        if time.monotonic() - t_seg > limit_s:
                            raise RuntimeError(
                                f"anneal segment {i} ({seg.kind} to {seg.target_c} C at {seg.rate_c_min} "
                                f"C/min): working set point still {wsp:.2f} C after {limit_s:.0f} s")
                    bar.n = round(i + min(max(frac, 0.0), 1.0), 3)
                    bar.set_postfix_str(f"{seg.kind} {last[cell.temperature.name]['value']:.1f} C",
                                        refresh=False)
                    bar.refresh()
                wake = t_tick if from_c is not None else min(t_tick, t_seg + seg.duration_s)
                yield from bps.sleep(max(0.0, wake - time.monotonic()))
        yield from bps.trigger_and_read(readables)     # the state at the very end
        bar.n = len(segments)
        bar.refresh()

    def with_bar():
        bar = tqdm(total=len(segments), unit="segment", desc="anneal", disable=not progress,
                   bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.2f}/{total} segments "
                              "[{elapsed}<{remaining}{postfix}]")
        try:
            return (yield from inner(bar))
        finally:
            bar.close()

    return bpp.stage_wrapper(bpp.run_wrapper(with_bar(), md=md), detectors)
