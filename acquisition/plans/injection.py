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
of the frame relative to time zero, negative before the injection, from the client clock at
the trigger plus half the exposure), the mantle temperature (C) and the delivered volume
(mL). One ``injection`` stream event at the end records what happened, all in epoch s:
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
import time

from bluesky import plan_stubs as bps
from bluesky import preprocessors as bpp

from ._labels import LabelSignal
from ...validation import finite
from .metadata import plan_md

__all__ = ["injection_series"]


def injection_series(saxs_detector, *, cell, syringe, mantle_temp_c, inject_ml, rate_ml_min,
                     frame_period_s=0.1, duration_s, pre_injection_s=5.0, exposure_s=None,
                     settle_time_s=None, md=None):
    """SAXS frames every *frame_period_s* (s) from *pre_injection_s* (s) before to
    *duration_s* (s) after injecting *inject_ml* (mL) at *rate_ml_min* (mL/min) into the
    mantle held at *mantle_temp_c* (C); see the module for the data. ``exposure_s``: per
    frame, default half the period. ``settle_time_s``: the mantle's settle rule (default:
    the cell's). The cell and the syringe are the connected beamline's when not given.

    EXAMPLE::

        RE(injection_series(saxs, mantle_temp_c=240.0, inject_ml=1.0, rate_ml_min=60.0,
                            duration_s=120.0))
    """
    if not hasattr(saxs_detector, "trigger") or not hasattr(saxs_detector, "cam"):
        raise ValueError(f"saxs_detector must be an area detector, got {saxs_detector!r}")
    mantle = cell.check_value(mantle_temp_c)
    rule = cell.settle_rule(settle_time_s=settle_time_s)
    volume, rate = syringe.check_infusion(inject_ml, rate_ml_min)
    period = finite(frame_period_s, "frame_period_s", low=0.0, strict=True, unit="s")
    exposure = period / 2 if exposure_s is None else finite(exposure_s, "exposure_s", low=0.0, strict=True,
                                                            high=period, unit="s")
    duration = finite(duration_s, "duration_s", low=0.0, strict=True, unit="s")
    pre = finite(pre_injection_s, "pre_injection_s", low=0.0, unit="s")
    infusion_s = volume / rate * 60.0
    if infusion_s > duration:
        raise ValueError(f"the injection takes {infusion_s:.1f} s ({volume} mL at {rate} mL/min), longer "
                         f"than duration_s = {duration} s: record longer or inject faster")
    args = dict(saxs_detector=saxs_detector.name, cell=cell.name, syringe=syringe.name, mantle_temp_c=mantle,
                inject_ml=volume, rate_ml_min=rate, frame_period_s=period, duration_s=duration,
                pre_injection_s=pre, exposure_s=exposure, settle_rule=rule)

    reaction = LabelSignal(name="reaction_time_s", value=math.nan, units="s")
    readables = [saxs_detector, reaction, cell.temperature, syringe.delivered]
    stamps = {key: LabelSignal(name=f"injection_{key}", value=math.nan, units=unit)
              for key, unit in (("time_zero", "s"), ("command_time", "s"), ("pump_start_time", "s"),
                                ("end_time", "s"), ("delivered_ml", "mL"))}

    def frames(t0):
        yield from bps.clear_checkpoint()             # a synthesis cannot be rewound
        injection, injected = None, False
        frame_s = exposure + 0.02                     # learnt from the frames taken
        next_start = time.time()
        first = True                                  # its read also builds the descriptor
        while True:
            now = time.time()
            if not injected and now + frame_s > t0:
                if now < t0:                          # a frame now would still expose at t0
                    yield from bps.sleep(t0 - now)
                injection = yield from bps.abs_set(syringe, volume, rate_ml_min=rate, group="injection")
                injected = True
                next_start = time.time()
                continue
            if injected and now >= t0 + duration:
                break
            if now < next_start:
                yield from bps.sleep(next_start - now)
            t_start = time.time()
            yield from bps.trigger(saxs_detector, group="frame", wait=True)
            reaction.put(t_start + exposure / 2 - t0)
            yield from bps.create("primary")
            for obj in readables:
                yield from bps.read(obj)
            yield from bps.save()
            done = time.time()
            if not first:
                frame_s = max(0.8 * frame_s + 0.2 * (done - t_start), done - t_start)
            first = False
            next_start = max(next_start + period, done)      # on the grid, no catch-up burst
        yield from bps.wait(group="injection")
        for key, attr in (("command_time", "commanded_at"), ("pump_start_time", "started_at"),
                          ("end_time", "finished_at"), ("delivered_ml", "delivered_ml")):
            value = getattr(injection, attr, None)    # no status in a simulated (dry) run
            stamps[key].put(math.nan if value is None else value)
        yield from bps.create("injection")
        for sig in stamps.values():
            yield from bps.read(sig)
        yield from bps.save()

    def inner():
        yield from bps.abs_set(cell, mantle, wait=True, **rule)
        yield from bps.mv(saxs_detector.cam.acquire_time, exposure, saxs_detector.cam.acquire_period, 0.0,
                          syringe.rate, rate, syringe.volume, volume)  # so Infuse alone starts it
        yield from bps.stage(saxs_detector)
        t0 = time.time() + pre
        stamps["time_zero"].put(t0)
        run_md = plan_md("injection_series", args, md, hints={"dimensions": [([reaction.name], "primary")]},
                         reaction_time_zero=t0)
        yield from bpp.run_wrapper(frames(t0), md=run_md)

    plan_md("injection_series", args, md)             # sample check now, before any message
    return bpp.finalize_wrapper(inner(), bps.unstage(saxs_detector))
