"""Pump-probe plans: delay scans, fluence scans and fluence x delay grids.

Every frame is one event in ``primary`` with the detector's datum, the actual and requested
delay (``pump_delay``, ``pump_delay_setpoint``, ps), the shutter state (``pump_shutter``),
``role`` (``on``, ``off`` or ``reference``), I0 (A), the fluence (mJ/cm^2) and <N>, the jet
flow (mL/min), ``delay_index`` and ``repeat``; fluence plans add ``requested_fluence``.

Reference modes:
- ``"interleaved"``: at every delay, pump-on then pump-off frame pairs (shutter).
- ``"negative_delay"``: before every delay point, ``frames_per_point`` pump-on reference
  frames at ``reference_delay_ps`` (< 0), then the pump-on frames at the delay.

A stopped jet is started at its set point (and waited for) when the run opens. A
checkpoint precedes every frame: a scan paused by a suspender (jet lost, pump shutter
closed unexpectedly) redoes only the frame it was taking and loses none. All arguments are
checked before the first message, so bad input fails before anything moves.

EXAMPLE::

    from trxrd.acquisition.plans.pump_probe import delay_scan, fluence_scan
    from trxrd.acquisition.plans.delays import log_delays
    RE(delay_scan([pilatus], log_delays(-100, 5000, 20)))
    RE(fluence_scan([pilatus], [0.2, 0.5, 1.0, 2.0], delay_ps=40))
"""
from __future__ import annotations

import numpy as np
from bluesky import plan_stubs as bps
from bluesky import preprocessors as bpp

from ..beamline import current_beamline
from ..suspenders import SuspendShutterClosed, jet_lost
from ._labels import LabelSignal
from .metadata import finite, plan_md

REFERENCE_MODES = ("interleaved", "negative_delay")


class _Setup:
    """Devices and labels of one pump-probe plan, checked before it starts."""

    def __init__(self, detectors, devices):
        if not detectors:
            raise ValueError("give at least one detector, e.g. [pilatus]")
        bl = None
        for key in ("delay", "shutter", "att", "jet", "i0"):
            value = devices.get(key)
            if value is None:
                bl = bl or current_beamline()
                value = getattr(bl, key)
            setattr(self, key, value)
        self.detectors = list(detectors)
        self.shutter.expected = None         # forget commands of earlier plans
        self.role = LabelSignal(name="role", value="")
        self.requested = LabelSignal(name="requested_delay", value=0.0, units="ps")
        self.index = LabelSignal(name="delay_index", value=0)
        self.repeat = LabelSignal(name="repeat", value=0)
        self.readables = self.detectors + [self.delay, self.shutter, self.i0, self.att, self.jet,
                                           self.role, self.requested, self.index, self.repeat]
        if not self.jet.flow_setpoint.get() > 0:
            raise ValueError(f"the liquid jet's flow set point is {self.jet.flow_setpoint.get()} mL/min: "
                             "set one first, e.g. RE(bps.mv(jet, 8.0))")

    def add_fluence_label(self):
        """Fluence plans: the requested fluence (mJ/cm^2) goes into every event as well."""
        self.requested_fluence = LabelSignal(name="requested_fluence", value=0.0, units="mJ/cm^2")
        self.readables.append(self.requested_fluence)

    def check_delay(self, t):
        self.delay.check_value((t,))

    def frame(self, role, *, pump_open):
        """Checkpoint, shutter, one event."""
        yield from bps.checkpoint()
        yield from bps.mv(self.shutter, "Open" if pump_open else "Closed", self.role, role)
        yield from bps.trigger_and_read(self.readables)

    def move_delay(self, t, index, repeat):
        yield from bps.checkpoint()
        yield from bps.mv(self.delay.delay, t, self.requested, t, self.index, index, self.repeat, repeat)

    def ensure_jet(self):
        """Start the jet at its set point and wait for stable flow, if it is not flowing."""
        if not self.jet.stable():
            yield from bps.mv(self.jet, self.jet.flow_setpoint.get())

    def wrap(self, plan, md):
        """Stage the detectors, open/close the run, close the pump shutter at the end
        whatever happens; pause while the jet is lost or the shutter is closed unexpectedly."""
        plan = bpp.finalize_wrapper(plan, lambda: bps.mv(self.shutter, "Closed"))
        plan = bpp.stage_wrapper(bpp.run_wrapper(plan, md=md), self.detectors)
        plan = bpp.suspend_wrapper(plan, [jet_lost(self.jet), SuspendShutterClosed(self.shutter)])
        return bpp.pchain(self.ensure_jet(), plan)      # before the jet suspender is armed


def _count(value, what, low=1):
    if isinstance(value, bool) or int(value) != value or value < low:
        raise ValueError(f"{what} must be an integer >= {low}, got {value!r}")
    return int(value)


def _values(values, what, unit):
    values = list(values) if np.ndim(values) else [values]
    if not values:
        raise ValueError(f"{what}: the list is empty")
    return [finite(v, f"{what}[{i}]", unit=unit) for i, v in enumerate(values)]


def _orders(n, repeats, shuffle, seed):
    rng = np.random.default_rng(seed)
    return [[int(i) for i in (rng.permutation(n) if shuffle else range(n))] for _ in range(repeats)]


def _checked(setup, delays_ps, reference, reference_delay_ps, frames_per_point, repeats):
    """Delays (all reachable), reference mode, frames per point and repeats, checked."""
    delays = _values(delays_ps, "delays_ps", "ps")
    for t in delays:
        setup.check_delay(t)
    _check_reference(setup, reference, reference_delay_ps)
    return delays, _count(frames_per_point, "frames_per_point"), _count(repeats, "repeats")


def _check_reference(setup, reference, reference_delay_ps):
    if reference not in REFERENCE_MODES:
        raise ValueError(f"unknown reference mode {reference!r}; choose one of {REFERENCE_MODES}")
    if reference == "negative_delay":
        ref = finite(reference_delay_ps, "reference_delay_ps", unit="ps")
        if ref >= 0:
            raise ValueError(f"reference_delay_ps must be before time zero (< 0), got {ref} ps")
        setup.check_delay(ref)


def _point(setup, t, index, repeat, frames, reference, reference_delay_ps):
    """The frames of one delay point in the chosen reference mode."""
    if reference == "negative_delay":
        yield from setup.move_delay(reference_delay_ps, index, repeat)
        for _ in range(frames):
            yield from setup.frame("reference", pump_open=True)
    yield from setup.move_delay(t, index, repeat)
    for _ in range(frames):
        yield from setup.frame("on", pump_open=True)
        if reference == "interleaved":
            yield from setup.frame("off", pump_open=False)


def delay_scan(detectors, delays_ps, *, reference="interleaved", reference_delay_ps=-300.0,
               frames_per_point=1, repeats=1, shuffle=False, seed=None, md=None,
               delay=None, shutter=None, att=None, jet=None, i0=None):
    """Pump-probe frames at every delay of *delays_ps* (ps) with reference frames (see the
    module). ``repeats`` passes over the list, in random order with ``shuffle`` (``seed``
    makes the order reproducible; the order is in the start document). Devices default to
    the connected beamline's."""
    setup = _Setup(detectors, dict(delay=delay, shutter=shutter, att=att, jet=jet, i0=i0))
    delays, frames, repeats = _checked(setup, delays_ps, reference, reference_delay_ps, frames_per_point,
                                       repeats)
    orders = _orders(len(delays), repeats, bool(shuffle), seed)
    args = dict(detectors=[d.name for d in setup.detectors], delays_ps=delays, reference=reference,
                reference_delay_ps=reference_delay_ps, frames_per_point=frames, repeats=repeats,
                shuffle=bool(shuffle), seed=seed)
    md = plan_md("delay_scan", args, md, hints={"dimensions": [([setup.delay.delay.name], "primary")]},
                 num_points=len(delays) * repeats * 2 * frames, delay_order=orders, reference=reference)
    md.update(_laser_md(setup, md["sample"]))

    def inner():
        for r, order in enumerate(orders):
            for i in order:
                yield from _point(setup, delays[i], i, r, frames, reference, reference_delay_ps)

    return setup.wrap(inner(), md)


def _laser_md(setup, sample):
    """Laser/delay metadata; the attenuator takes the sample's cross-section for <N>."""
    att = setup.att
    att.sigma_cm2.put(sample["sigma_cm2"])
    return {"spot_fwhm_um": [att.spot_fwhm_x_um.get(), att.spot_fwhm_y_um.get()],
            "pump_wavelength_nm": att.wavelength_nm.get(),
            "time_zero_mm": setup.delay.time_zero_mm.get(), "n_passes": setup.delay.n_passes.get()}


def _fluences(setup, fluences):
    """Check fluences against the calibrated attenuator."""
    values = _values(fluences, "fluences", "mJ/cm^2")
    for f in values:
        setup.att.check_value((f,))
    return values


def fluence_scan(detectors, fluences, *, delay_ps, reference="interleaved", reference_delay_ps=-300.0,
                 frames_per_point=1, repeats=1, shuffle=False, seed=None, md=None,
                 delay=None, shutter=None, att=None, jet=None, i0=None):
    """Frames at each fluence (mJ/cm^2) of *fluences*, at one pump-probe delay *delay_ps*."""
    return fluence_delay_grid(detectors, fluences, [delay_ps], reference=reference,
                              reference_delay_ps=reference_delay_ps, frames_per_point=frames_per_point,
                              repeats=repeats, shuffle=shuffle, seed=seed, md=md, _plan_name="fluence_scan",
                              delay=delay, shutter=shutter, att=att, jet=jet, i0=i0)


def fluence_delay_grid(detectors, fluences, delays_ps, *, reference="interleaved",
                       reference_delay_ps=-300.0, frames_per_point=1, repeats=1, shuffle=False, seed=None,
                       md=None, _plan_name="fluence_delay_grid",
                       delay=None, shutter=None, att=None, jet=None, i0=None):
    """For every fluence (mJ/cm^2, outer loop) a delay scan over *delays_ps* (ps), in one run.
    ``shuffle`` randomises the delay order within each fluence."""
    setup = _Setup(detectors, dict(delay=delay, shutter=shutter, att=att, jet=jet, i0=i0))
    delays, frames, repeats = _checked(setup, delays_ps, reference, reference_delay_ps, frames_per_point,
                                       repeats)
    args = dict(detectors=[d.name for d in setup.detectors], fluences=None, delays_ps=delays,
                reference=reference, reference_delay_ps=reference_delay_ps, frames_per_point=frames,
                repeats=repeats, shuffle=bool(shuffle), seed=seed)
    fl = _fluences(setup, fluences)
    setup.add_fluence_label()
    args["fluences"] = fl
    orders = _orders(len(delays), repeats * len(fl), bool(shuffle), seed)
    dims = [([setup.att.fluence.name], "primary")]
    if _plan_name != "fluence_scan":
        dims.append(([setup.delay.delay.name], "primary"))
    md = plan_md(_plan_name, args, md, hints={"dimensions": dims},
                 num_points=len(fl) * len(delays) * repeats * 2 * frames, delay_order=orders,
                 reference=reference)
    md.update(_laser_md(setup, md["sample"]))

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
