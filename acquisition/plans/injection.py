"""In-situ SAXS of a hot-injection synthesis: heat the mantle, record SAXS frames
continuously, inject the precursor with the syringe pump at a scheduled time zero and keep
recording.

Sequence: the mantle goes to ``mantle_temp_c`` and settles (before the run opens); the
detector is staged; the run opens with the scheduled time zero ``reaction_time_zero``
(epoch s) = now + ``pre_injection_s`` in the start document; frames follow one every
``frame_period_s`` (software-timed triggers, one frame each); no frame is started that
would still be exposing at time zero, the infusion is commanded at time zero and the next
frame starts right after it; frames go on until ``duration_s`` after time zero.

Every ``primary`` event: the SAXS frame (datum), ``reaction_time_s`` (s; mid-exposure time
of the frame relative to time zero, negative before the injection, from the plan's clock at
the trigger plus half the exposure), the mantle temperature (C), the delivered volume
(mL) and, with an ``i0`` monitor, the frame's incident flux. The start document maps these
to their ``trxrd.datakeys`` names (``saxs_image``, ``reaction_time``, ``temperature``,
``delivered``, ``i0``) for the live SAXS reduction.
One ``injection`` stream event at the end records what happened, all in epoch s:
``injection_time_zero`` (the reference of ``reaction_time_s``), ``injection_command_time``
(Infuse written), ``injection_pump_start_time`` (the pump's time stamp of the first drop),
``injection_end_time``, and ``injection_delivered_ml``.

Measured against ``trxrd sim`` (SAXS frames 619 x 487, one CPU-bound simulator process):
a frame costs its exposure + ~40 ms (trigger, rendering, HDF5 write, CA round trips, the
event), so the shortest period is ~0.048 s (exposure <= 0.01 s). Requested periods are
kept: median 0.1004 s for 0.1 s (exposure 0.05 s), 0.0505 s for 0.05 s (0.025 s); about
one frame in ten comes up to ~15 ms late and the next one is back on the grid. The first
frame takes ~0.5 s more (its descriptor is built). The Infuse write goes out within ~2-6 ms
of time zero and the pump reports the first drop ~1 ms after it.

Pausing: heating is resumable, the recording is not (the chemistry cannot rewind): a pause
once the run is open can only be followed by ``RE.stop()`` / ``RE.abort()``, and the
injection, once commanded, runs to its volume (the RunEngine's ``stop(success=True)`` does
not stop the pump); ``syringe.stop()`` cuts it short.

All arguments are checked before the first message, so bad input fails before anything moves.

EXAMPLE::

    from trxrd.acquisition.plans.injection import injection_series
    RE(injection_series(saxs, cell=cell, syringe=syringe, mantle_temp_c=240.0, inject_ml=1.0,
                        rate_ml_min=60.0, frame_period_s=0.1, duration_s=120.0,
                        pre_injection_s=5.0))
"""
from __future__ import annotations

import math

from bluesky import plan_stubs as bps
from bluesky import preprocessors as bpp
from bluesky.utils import MsgGenerator

from ... import datakeys as dk
from ...validation import finite
from ..devices.clock import PlanClock
from ._labels import LabelSignal
from .metadata import plan_md

__all__ = ["injection_series"]

FRAME_OVERHEAD_S = 0.02      # first guess of a frame's time beyond its exposure; learnt as it goes


def injection_series(saxs_detector, *, cell, syringe, mantle_temp_c: float, inject_ml: float,
                     rate_ml_min: float, frame_period_s: float = 0.1, duration_s: float,
                     pre_injection_s: float = 5.0, exposure_s: float | None = None,
                     settle_time_s: float | None = None, i0=None, md: dict | None = None) -> MsgGenerator[str]:
    """SAXS frames before and after a hot injection (see the module for the data).

    Parameters
    ----------
    saxs_detector : area detector
        Takes one frame per event.
    cell, syringe : HeatingCell, SyringePump
        The mantle's controller and the precursor's pump.
    mantle_temp_c : float
        Mantle temperature (C), reached and settled before the run opens.
    inject_ml, rate_ml_min : float
        Volume (mL) and rate (mL/min) of the injection.
    frame_period_s : float
        Time between frame starts (s).
    duration_s : float
        Recording after the injection (s); must be longer than the injection itself.
    pre_injection_s : float
        Recording before the injection (s).
    exposure_s : float, optional
        Per frame (s); default half the period.
    settle_time_s : float, optional
        The mantle's settle rule (default: the cell's).
    i0 : readable, optional
        Incident-flux monitor read with every frame (the SAXS reduction normalises by it).
    md : dict, optional
        Metadata for the start document; must hold ``sample``.

    Returns
    -------
    MsgGenerator
        The plan, checked. Time is kept by a ``PlanClock`` device (``reaction_time_s`` of every
        frame, the injection at time zero), so bluesky's simulators can walk it.

    EXAMPLE::

        RE(injection_series(saxs, cell=cell, syringe=syringe, mantle_temp_c=240.0, inject_ml=1.0,
                            rate_ml_min=60.0, duration_s=120.0, md={"sample": s}))
    """
    if not hasattr(saxs_detector, "trigger") or not hasattr(saxs_detector, "cam"):
        raise ValueError(f"saxs_detector must be an area detector, got {saxs_detector!r}")
    mantle = cell.check_value(mantle_temp_c)
    rule = cell.settle_rule(settle_time_s=settle_time_s)
    volume, rate = syringe.check_infusion(inject_ml, rate_ml_min)
    period = finite(frame_period_s, "frame_period_s", low=0.0, strict=True, high=3600.0, unit="s")
    exposure = period / 2 if exposure_s is None else finite(exposure_s, "exposure_s", low=0.0, strict=True,
                                                            high=period, unit="s")
    try:
        saxs_detector.cam.acquire_time.check_value(exposure)      # the driver's own limits
    except ValueError as exc:
        raise ValueError(f"exposure_s = {exposure} s: {exc}") from None
    duration = finite(duration_s, "duration_s", low=0.0, strict=True, high=86400.0, unit="s")
    pre = finite(pre_injection_s, "pre_injection_s", low=0.0, high=3600.0, unit="s")
    infusion_s = volume / rate * 60.0
    if infusion_s > duration:
        raise ValueError(f"the injection takes {infusion_s:.1f} s ({volume} mL at {rate} mL/min), longer "
                         f"than duration_s = {duration} s: record longer or inject faster")
    args = dict(saxs_detector=saxs_detector.name, cell=cell.name, syringe=syringe.name, mantle_temp_c=mantle,
                inject_ml=volume, rate_ml_min=rate, frame_period_s=period, duration_s=duration,
                pre_injection_s=pre, exposure_s=exposure, settle_rule=rule, i0=None if i0 is None else i0.name)
    plan_md("injection_series", args, md)             # sample and md checked now, before any message

    clock = PlanClock(name="injection_clock")
    reaction = LabelSignal(name="reaction_time_s", value=math.nan, units="s")
    readables = [saxs_detector, reaction, cell.temperature, syringe.delivered] + ([i0] if i0 is not None else [])
    keys = {"saxs_image": saxs_detector.image_key, "reaction_time": reaction.name, "temperature": cell.temperature.name,
            "delivered": syringe.delivered.name, **({"i0": i0.name} if i0 is not None else {})}
    stamps = {key: LabelSignal(name=f"injection_{key}", value=math.nan, units=unit)
              for key, unit in (("time_zero", "s"), ("command_time", "s"), ("pump_start_time", "s"),
                                ("end_time", "s"), ("delivered_ml", "mL"))}

    def now():
        return (yield from bps.rd(clock.elapsed))     # clock s; 0 in a simulation

    def frames(t0):
        """Frames on the period grid from clock time 0; the injection at clock time t0."""
        yield from bps.clear_checkpoint()             # a synthesis cannot be rewound
        injection, injected = None, False
        frame_s = exposure + FRAME_OVERHEAD_S         # learnt from the frames taken
        next_start = 0.0
        first = True                                  # its read also builds the descriptor
        while True:
            if not injected and next_start + frame_s > t0:   # a frame then would still expose at t0
                yield from bps.mv(clock, t0)
                injection = yield from bps.abs_set(syringe, volume, rate_ml_min=rate, group="injection")
                injected = True
                next_start = max(t0, (yield from now()))
                continue
            if injected and next_start >= t0 + duration:
                break
            yield from bps.mv(clock, next_start)
            t_start = max(next_start, (yield from now()))
            yield from bps.trigger(saxs_detector, group="frame", wait=True)
            yield from bps.mv(reaction, t_start + exposure / 2 - t0)
            yield from bps.create("primary")
            for obj in readables:
                yield from bps.read(obj)
            yield from bps.save()
            done = max(t_start, (yield from now()))
            if not first:
                frame_s = max(0.8 * frame_s + 0.2 * (done - t_start), done - t_start)
            first = False
            next_start = max(next_start + period, done)      # on the grid, no catch-up burst
        yield from bps.wait(group="injection")
        for key, attr in (("command_time", "commanded_at"), ("pump_start_time", "started_at"),
                          ("end_time", "finished_at"), ("delivered_ml", "delivered_ml")):
            value = getattr(injection, attr, None)    # no status in a simulated (dry) run
            yield from bps.mv(stamps[key], math.nan if value is None else value)
        yield from bps.create("injection")
        for sig in stamps.values():
            yield from bps.read(sig)
        yield from bps.save()

    def inner():
        yield from bps.abs_set(cell, mantle, wait=True, **rule)
        yield from bps.mv(syringe.rate, rate, syringe.volume, volume)  # so Infuse alone starts it
        yield from bps.stage(saxs_detector)           # its stage_sigs first, then this plan's exposure
        yield from bps.mv(saxs_detector.cam.acquire_time, exposure, saxs_detector.cam.acquire_period, 0.0)
        yield from bps.stage(clock)
        t0 = pre                                       # clock time of the injection
        zero_epoch = yield from bps.rd(clock.zero_epoch)
        yield from bps.mv(stamps["time_zero"], zero_epoch + t0)
        run_md = plan_md("injection_series", args, md, hints={"dimensions": [([reaction.name], "primary")]},
                         reaction_time_zero=zero_epoch + t0, **{dk.KEY_MAP: keys})
        yield from bpp.run_wrapper(frames(t0), md=run_md)

    def cleanup():
        yield from bps.unstage(clock)
        yield from bps.unstage(saxs_detector)

    return bpp.finalize_wrapper(inner(), cleanup())
