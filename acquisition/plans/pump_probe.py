"""Pump-probe plans: delay scans, fluence scans and fluence x delay grids.

Every trigger is one event in ``primary`` with the detector's datum, the fields of
``trxrd.datakeys`` (``role``: ``on``, ``off`` or ``reference``; ``requested_delay`` in ps;
``delay_index``; ``repeat``; fluence plans add ``requested_fluence`` in mJ/cm^2) and the
devices' readings: actual delay (ps), shutter state, I0 (A), fluence (mJ/cm^2) and <N>, jet
flow (mL/min). The start document maps each reading to its data key (``trxrd_keys``), so the
reduction never guesses device names.

Reference modes:
- ``"interleaved"``: at every delay, pump-on then pump-off frame pairs (shutter).
- ``"negative_delay"``: before every delay point, ``frames_per_point`` pump-on reference
  frames at ``reference_delay_ps`` (< 0), then the pump-on frames at the delay.

A stopped jet is started at its set point (and waited for) when the run opens. Checkpoints
surround every frame: a scan paused by a suspender (jet lost, pump shutter closed
unexpectedly) redoes only the frame it was taking and loses none. Every event says whether its
own readings show the jet flowing, the shutter as its role needs and the X-ray beam on (I0 at
or above the monitor's ``beam_floor_a``) (``frame_valid``); a frame
that does not is kept for the record, marked invalid (the reduction skips it) and taken again,
so a frame taken without the jet or with the wrong shutter state is never stored as good,
even before a suspender has paused the plan. All arguments are checked before the first
message, so bad input fails before anything moves.

Streaming: ``frames_per_trigger=N`` makes each detector take N frames per event (one datum for
the N consecutive frames of the run's file; ``PilatusDetector.frames_per_trigger``), set for the
run and restored after it; ``frames_per_point`` stays the number of events (pump-on frames, each
with its reference) per point. The start document records it (``frames_per_trigger``).

The devices are arguments, as in bluesky's own plans; the beamline session's plans pass its
devices (``delay_scan([pilatus], delays)`` in ``trxrd shell``).

EXAMPLE::

    from trxrd.acquisition.plans.pump_probe import delay_scan, fluence_scan
    from trxrd.acquisition.plans.delays import log_delays
    devices = dict(delay=delay, shutter=shutter, att=att, jet=jet, i0=i0)
    RE(delay_scan([pilatus], log_delays(-100, 5000, 20), md={"sample": sample}, **devices))
    RE(fluence_scan([pilatus], [0.2, 0.5, 1.0, 2.0], delay_ps=40, md={"sample": sample}, **devices))
    RE(delay_scan([pilatus], log_delays(-100, 5000, 20), frames_per_trigger=10, md={"sample": sample},
                  **devices))                          # 10 frames streamed per event
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence

import numpy as np
from bluesky import plan_stubs as bps
from bluesky import preprocessors as bpp
from bluesky.protocols import Readable, Triggerable
from bluesky.utils import MsgGenerator, separate_devices, short_uid

from ... import datakeys as dk
from ...validation import count, finite, flag, readables
from ...validation import seed as check_seed
from ..suspenders import SuspendShutterClosed, connection_lost_wrapper, jet_lost
from ._labels import LabelSignal
from .metadata import plan_md

REFERENCE_MODES = dk.REFERENCE_MODES
MAX_RETAKES = 20          # a frame invalid this often in a row stops the plan with the reason
RETAKE_WAIT_S = 0.5       # before retaking an invalid frame (a suspender pauses the plan meanwhile)

logger = logging.getLogger(__name__)


def checked_event(devices: Sequence[Readable], problem: Callable[[dict], str | None], valid,
                  name: str = "primary") -> MsgGenerator[str | None]:
    """Trigger and read *devices* into one event, as ``bps.trigger_and_read`` does, plus the
    signal *valid*, set to whether ``problem(reading)`` found nothing. Every frame a detector
    took has its event (the files and the catalog stay aligned). Returns the problem or None."""
    devices = separate_devices(devices)
    group = short_uid("trigger")
    triggered = False
    for obj in devices:
        if isinstance(obj, Triggerable):
            triggered = True
            yield from bps.trigger(obj, group=group)
    if triggered:
        yield from bps.wait(group=group)
    yield from bps.create(name)
    reading = {}
    try:
        for obj in devices:
            reading.update((yield from bps.read(obj)) or {})
        reason = problem(reading)
        yield from bps.abs_set(valid, reason is None, wait=True)
        yield from bps.read(valid)
    except BaseException:
        yield from bps.drop()
        raise
    yield from bps.save()
    return reason


class _Setup:
    """Devices and labels of one pump-probe plan, checked before it starts."""

    def __init__(self, detectors, *, delay, shutter, att, jet, i0):
        self.detectors = readables(detectors, "detectors")
        self.delay, self.shutter, self.att, self.jet, self.i0 = delay, shutter, att, jet, i0
        self.frames_per_trigger: int | None = None      # None: the detectors' own (set_streaming)
        self.shutter.expected = None         # forget commands of earlier plans
        self.role = LabelSignal(name=dk.ROLE, value="")
        self.requested = LabelSignal(name=dk.REQUESTED_DELAY, value=0.0, units=dk.FIELDS[dk.REQUESTED_DELAY].units)
        self.index = LabelSignal(name=dk.DELAY_INDEX, value=0)
        self.repeat = LabelSignal(name=dk.REPEAT, value=0)
        self.valid = LabelSignal(name=dk.FRAME_VALID, value=True)
        self.readables = self.detectors + [self.delay, self.shutter, self.i0, self.att, self.jet,
                                           self.role, self.requested, self.index, self.repeat]
        if not self.jet.flow_setpoint.get() > 0:
            raise ValueError(f"the liquid jet's flow set point is {self.jet.flow_setpoint.get()} mL/min: "
                             "set one first, e.g. RE(bps.mv(jet, 8.0))")

    def key_map(self) -> dict:
        """{field: data key} of the device readings (``trxrd.datakeys``)."""
        images = [d.image_key for d in self.detectors if hasattr(d, "image_key")]
        return {"delay": self.delay.delay.name, "fluence": self.att.fluence.name,
                "excitations": self.att.excitations.name, "i0": self.i0.name, "shutter": self.shutter.name,
                "jet_flow": self.jet.flow.name, "image": images[0] if images else None}

    def add_fluence_label(self):
        """Fluence plans: the requested fluence (mJ/cm^2) goes into every event as well."""
        self.requested_fluence = LabelSignal(name=dk.REQUESTED_FLUENCE, value=0.0,
                                             units=dk.FIELDS[dk.REQUESTED_FLUENCE].units)
        self.readables.append(self.requested_fluence)

    def set_streaming(self, frames_per_trigger):
        """Check *frames_per_trigger* (None: each detector's own) against the detectors; the
        frames per trigger of the run."""
        if frames_per_trigger is None:
            self.frames_per_trigger = None
            return
        n = count(frames_per_trigger, "frames_per_trigger")
        for det in self.detectors:
            if not hasattr(det, "frames_per_trigger"):
                raise ValueError(f"frames_per_trigger: detector {det.name!r} cannot take several frames per "
                                 "trigger (no frames_per_trigger attribute)")
        self.frames_per_trigger = n

    def streaming(self, plan):
        """*plan* with the detectors set to the run's frames per trigger before they are staged,
        restored after the run whatever happens."""
        n = self.frames_per_trigger
        if n is None:
            return plan
        dets = [d for d in self.detectors if hasattr(d, "frames_per_trigger")]
        before = {d.name: d.frames_per_trigger for d in dets}

        def apply(values):
            for det in dets:
                det.frames_per_trigger = values[det.name]
            yield from bps.null()

        return bpp.finalize_wrapper(bpp.pchain(apply({d.name: n for d in dets}), plan), lambda: apply(before))

    def check_delay(self, t):
        self.delay.check_value((t,))

    def frame(self, role, *, pump_open):
        """Checkpoint, shutter, one event, checkpoint; taken again while invalid (see module)."""
        want = "Open" if pump_open else "Closed"
        for _ in range(MAX_RETAKES):
            yield from bps.checkpoint()
            yield from bps.mv(self.shutter, want, self.role, role)
            reason = yield from checked_event(self.readables, lambda reading: self.problem(reading, want),
                                              self.valid)
            yield from bps.checkpoint()
            if reason is None:
                return
            logger.warning("%s frame marked invalid and taken again: %s", role, reason)
            yield from bps.sleep(RETAKE_WAIT_S)
        raise RuntimeError(f"a {role} frame was invalid {MAX_RETAKES} times in a row: {reason}")

    def problem(self, reading: dict, shutter: str) -> str | None:
        """Why a frame with this *reading* is not what its role needs (None: it is)."""
        flowing = reading.get(self.jet.flowing.name)
        if flowing is not None and flowing["value"] != 1:
            return "the liquid jet was not flowing"
        state = reading.get(self.shutter.name)
        if state is not None and state["value"] != shutter:
            return f"the pump shutter read {state['value']!r} in a frame that needs it {shutter!r}"
        i0, floor = reading.get(self.i0.name), getattr(self.i0, "beam_floor_a", None)
        if i0 is not None and floor is not None and not i0["value"] >= floor:
            return f"no X-ray beam (I0 {i0['value']:.3g} A, below {floor:.3g} A)"
        return None

    def move_delay(self, t, index, repeat):
        yield from bps.checkpoint()
        yield from bps.mv(self.delay.delay, t, self.requested, t, self.index, index, self.repeat, repeat)

    def ensure_jet(self):
        """Start the jet at its set point and wait for stable flow, if it is not flowing."""
        if not self.jet.stable():
            yield from bps.mv(self.jet, self.jet.flow_setpoint.get())

    def md(self, plan_name, args, md, *, dims, num_points, **extra):
        """Start document: plan metadata, the key map and the laser/delay configuration; the
        attenuator takes the sample's cross-section for <N>."""
        out = plan_md(plan_name, args, md, hints={"dimensions": dims}, num_points=num_points, **extra)
        att = self.att
        att.sigma_cm2.put(out["sample"]["sigma_cm2"])
        out.update({dk.KEY_MAP: self.key_map(), dk.REFERENCE: args["reference"],
                    "spot_fwhm_um": [att.spot_fwhm_x_um.get(), att.spot_fwhm_y_um.get()],
                    "pump_wavelength_nm": att.wavelength_nm.get(),
                    "time_zero_mm": self.delay.time_zero_mm.get(), "n_passes": self.delay.n_passes.get()})
        return out

    def shutter_closed_after(self, plan):
        """*plan*, then the pump shutter closed whatever happens. When *plan* failed and the
        shutter does not answer (its IOC gone), that is logged, not raised: the run keeps the
        reason it failed for (a failed status would replace it)."""
        try:
            ret = yield from plan
        except GeneratorExit:
            raise
        except BaseException:
            if self.shutter.connected:
                yield from bps.mv(self.shutter, "Closed")
            else:
                logger.error("cannot close the pump shutter after the plan failed: %s does not answer",
                             self.shutter.setpoint_pvname)
            raise
        yield from bps.mv(self.shutter, "Closed")
        return ret

    def wrap(self, plan, md):
        """Stage the detectors, open/close the run, close the pump shutter at the end
        whatever happens; pause while the jet is lost or the shutter is closed unexpectedly."""
        plan = connection_lost_wrapper(self.shutter_closed_after(plan), self.readables)
        plan = self.streaming(bpp.stage_wrapper(bpp.run_wrapper(plan, md=md), self.detectors))
        plan = connection_lost_wrapper(plan, self.readables)     # the reason, also from unstaging
        plan = bpp.suspend_wrapper(plan, [jet_lost(self.jet), SuspendShutterClosed(self.shutter)])
        return bpp.pchain(self.ensure_jet(), plan)      # before the jet suspender is armed


def _values(values, what, unit):
    if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__iter__") \
            or (isinstance(values, np.ndarray) and values.ndim != 1):
        raise ValueError(f"{what} must be a list of numbers ({unit}), got {values!r:.60}")
    values = list(values)
    if not values:
        raise ValueError(f"{what}: the list is empty")
    return [finite(v, f"{what}[{i}]", unit=unit) for i, v in enumerate(values)]


def _orders(n, repeats, shuffle, seed):
    rng = np.random.default_rng(check_seed(seed))
    shuffle = flag(shuffle, "shuffle")
    return [[int(i) for i in (rng.permutation(n) if shuffle else range(n))] for _ in range(repeats)]


def _checked(setup, delays_ps, reference, reference_delay_ps, frames_per_point, repeats, frames_per_trigger):
    """Delays (all reachable), reference mode, frames per point, repeats and frames per trigger,
    checked."""
    delays = _values(delays_ps, "delays_ps", "ps")
    for t in delays:
        setup.check_delay(t)
    _check_reference(setup, reference, reference_delay_ps)
    setup.set_streaming(frames_per_trigger)
    return delays, count(frames_per_point, "frames_per_point"), count(repeats, "repeats")


def _check_reference(setup, reference, reference_delay_ps):
    if not isinstance(reference, str) or reference not in REFERENCE_MODES:
        raise ValueError(f"unknown reference mode {reference!r}; choose one of {REFERENCE_MODES}")
    ref = finite(reference_delay_ps, "reference_delay_ps", unit="ps")     # checked even where unused
    if ref >= 0:
        raise ValueError(f"reference_delay_ps must be before time zero (< 0), got {ref} ps")
    try:
        setup.check_delay(ref)
    except ValueError as exc:
        raise ValueError(f"reference_delay_ps: {exc}") from None


def _point(setup, t, index, repeat, frames, reference, reference_delay_ps):
    """The frames of one delay point in the chosen reference mode."""
    if reference == "negative_delay":
        yield from setup.move_delay(reference_delay_ps, index, repeat)
        for _ in range(frames):
            yield from setup.frame(dk.ROLE_REFERENCE, pump_open=True)
    yield from setup.move_delay(t, index, repeat)
    for _ in range(frames):
        yield from setup.frame(dk.ROLE_ON, pump_open=True)
        if reference == "interleaved":
            yield from setup.frame(dk.ROLE_OFF, pump_open=False)


def delay_scan(detectors: Sequence[Readable], delays_ps: Iterable[float], *, delay, shutter, att, jet, i0,
               reference: str = "interleaved", reference_delay_ps: float = -300.0,
               frames_per_point: int = 1, repeats: int = 1, shuffle: bool = False, seed: int | None = None,
               frames_per_trigger: int | None = None, md: dict | None = None) -> MsgGenerator[str]:
    """Pump-probe frames at every delay, with reference frames (see the module).

    Parameters
    ----------
    detectors : list of area detectors
        Exposed at every frame.
    delays_ps : list of float
        Delays (ps), each reachable by the delay axis.
    delay, shutter, att, jet, i0 : devices
        Pump-probe delay axis, pump shutter, fluence attenuator, liquid jet and I0 monitor.
    reference : {"interleaved", "negative_delay"}
        How reference frames are taken.
    reference_delay_ps : float
        Delay of the reference frames in "negative_delay" mode (< 0 ps).
    frames_per_point : int
        Pump-on frames (each with its reference) per delay.
    repeats : int
        Passes over the list.
    shuffle : bool
        Random order in every pass (``seed`` makes it reproducible; the order is in the start
        document as ``delay_order``).
    frames_per_trigger : int, optional
        Frames each detector streams per event (integer >= 1; default: the detector's own
        setting); set for the run, restored after it (see module).
    md : dict, optional
        Metadata for the start document; must hold ``sample`` (the session's plans add it).

    Returns
    -------
    MsgGenerator
        The plan, checked: every argument was validated when it was made.

    EXAMPLE::

        RE(delay_scan([pilatus], log_delays(-100, 5000, 20), repeats=2, **devices, md={"sample": s}))
    """
    setup = _Setup(detectors, delay=delay, shutter=shutter, att=att, jet=jet, i0=i0)
    delays, frames, repeats = _checked(setup, delays_ps, reference, reference_delay_ps, frames_per_point,
                                       repeats, frames_per_trigger)
    orders = _orders(len(delays), repeats, shuffle, seed)
    args = dict(detectors=[d.name for d in setup.detectors], delays_ps=delays, reference=reference,
                reference_delay_ps=reference_delay_ps, frames_per_point=frames, repeats=repeats,
                shuffle=bool(shuffle), seed=seed, frames_per_trigger=setup.frames_per_trigger)
    md = setup.md("delay_scan", args, md, dims=[([setup.delay.delay.name], "primary")],
                  num_points=len(delays) * repeats * 2 * frames, delay_order=orders)

    def inner():
        for r, order in enumerate(orders):
            for i in order:
                yield from _point(setup, delays[i], i, r, frames, reference, reference_delay_ps)

    return setup.wrap(inner(), md)


def _fluences(setup, fluences):
    """Check fluences against the calibrated attenuator."""
    values = _values(fluences, "fluences", "mJ/cm^2")
    for f in values:
        setup.att.check_value((f,))
    return values


def fluence_scan(detectors: Sequence[Readable], fluences: Iterable[float], *, delay_ps: float, delay, shutter,
                 att, jet, i0, reference: str = "interleaved", reference_delay_ps: float = -300.0,
                 frames_per_point: int = 1, repeats: int = 1, shuffle: bool = False, seed: int | None = None,
                 frames_per_trigger: int | None = None, md: dict | None = None) -> MsgGenerator[str]:
    """Frames at each fluence, at one pump-probe delay: the melted fraction vs <N>.

    Parameters
    ----------
    detectors : list of area detectors
    fluences : list of float
        Pump fluences (mJ/cm^2) within what the calibrated attenuator delivers.
    delay_ps : float
        The pump-probe delay of every frame (ps).
    delay, shutter, att, jet, i0, reference, reference_delay_ps, frames_per_point, repeats, shuffle, seed,
    frames_per_trigger, md
        As in :func:`delay_scan`.

    Returns
    -------
    MsgGenerator
        The plan, checked: every argument was validated when it was made.

    EXAMPLE::

        RE(fluence_scan([pilatus], [0.2, 0.5, 1.0, 2.0], delay_ps=40, **devices, md={"sample": s}))
    """
    return _grid("fluence_scan", detectors, fluences, [delay_ps], reference=reference,
                 reference_delay_ps=reference_delay_ps, frames_per_point=frames_per_point,
                 repeats=repeats, shuffle=shuffle, seed=seed, frames_per_trigger=frames_per_trigger, md=md,
                 delay=delay, shutter=shutter, att=att, jet=jet, i0=i0)


def fluence_delay_grid(detectors: Sequence[Readable], fluences: Iterable[float], delays_ps: Iterable[float], *,
                       delay, shutter, att, jet, i0, reference: str = "interleaved",
                       reference_delay_ps: float = -300.0, frames_per_point: int = 1, repeats: int = 1,
                       shuffle: bool = False, seed: int | None = None, frames_per_trigger: int | None = None,
                       md: dict | None = None) -> MsgGenerator[str]:
    """For every fluence (outer loop) a delay scan over *delays_ps*, in one run: a kinetics per
    fluence and a melting threshold per delay.

    Parameters
    ----------
    detectors : list of area detectors
    fluences : list of float
        Pump fluences (mJ/cm^2).
    delays_ps : list of float
        Delays (ps); ``shuffle`` randomises their order within each fluence.
    delay, shutter, att, jet, i0, reference, reference_delay_ps, frames_per_point, repeats, shuffle, seed,
    frames_per_trigger, md
        As in :func:`delay_scan`.

    Returns
    -------
    MsgGenerator
        The plan, checked: every argument was validated when it was made.

    EXAMPLE::

        RE(fluence_delay_grid([pilatus], [0.5, 1.0, 2.0], [-100, 0, 50, 100, 500], **devices, md={"sample": s}))
    """
    return _grid("fluence_delay_grid", detectors, fluences, delays_ps, reference=reference,
                 reference_delay_ps=reference_delay_ps, frames_per_point=frames_per_point,
                 repeats=repeats, shuffle=shuffle, seed=seed, frames_per_trigger=frames_per_trigger, md=md,
                 delay=delay, shutter=shutter, att=att, jet=jet, i0=i0)


def _grid(plan_name, detectors, fluences, delays_ps, *, reference, reference_delay_ps, frames_per_point,
          repeats, shuffle, seed, frames_per_trigger, md, **devices):
    setup = _Setup(detectors, **devices)
    delays, frames, repeats = _checked(setup, delays_ps, reference, reference_delay_ps, frames_per_point,
                                       repeats, frames_per_trigger)
    fl = _fluences(setup, fluences)
    setup.add_fluence_label()
    args = dict(detectors=[d.name for d in setup.detectors], fluences=fl, delays_ps=delays,
                reference=reference, reference_delay_ps=reference_delay_ps, frames_per_point=frames,
                repeats=repeats, shuffle=bool(shuffle), seed=seed, frames_per_trigger=setup.frames_per_trigger)
    orders = _orders(len(delays), repeats * len(fl), shuffle, seed)
    dims = [([setup.att.fluence.name], "primary")]
    if plan_name != "fluence_scan":
        dims.append(([setup.delay.delay.name], "primary"))
    md = setup.md(plan_name, args, md, dims=dims, num_points=len(fl) * len(delays) * repeats * 2 * frames,
                  delay_order=orders)

    def inner():
        k = 0
        for r in range(repeats):
            for f in fl:
                yield from bps.checkpoint()
                yield from bps.mv(setup.att.fluence, f, setup.requested_fluence, f)
                for i in orders[k]:
                    yield from _point(setup, delays[i], i, r, frames, reference, reference_delay_ps)
                k += 1

    return setup.wrap(inner(), md)
