"""Find time zero instead of assuming it: scan the delay axis across a window around the nominal
time zero (pump-on / pump-off pairs, as a delay scan), fit the onset of the pump-probe signal
(a step convolved with the Gaussian instrument response, allowed to decay), and move the delay
axis' time zero to the fitted onset, which the session saves for the next one.

The fit needs the reduced frames, which this layer does not make: the plan takes ``analyse``,
a callable ``analyse(q_windows, min_significance) -> dict`` (the beamline session passes its
live reduction's). The dict holds ``t0_ps``, ``t0_err_ps``, ``irf_fwhm_ps``, ``irf_fwhm_err_ps``,
``amplitude``, ``amplitude_err``, ``significance`` and ``problem`` (None, or why the fit must not
be used). The run records the fit, the old and new time zero and whether it was applied in
its ``time_zero`` stream. A fit that is not significant changes nothing: the run is kept, the
plan then raises ``TimeZeroNotFound`` with the reason.

EXAMPLE::

    RE(find_time_zero([pilatus], window_ps=300, step_ps=10, frames_per_point=2,
                      q_windows=[(1.70, 2.05)]))        # in `trxrd shell`: devices, analysis bound
    delay.time_zero_mm.get()                             # the fitted time zero (mm), saved
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from bluesky import plan_stubs as bps
from bluesky.utils import MsgGenerator

from ...validation import count, finite
from ..devices.delay import stage_position_mm
from ._labels import LabelSignal
from .pump_probe import _point, _Setup

MIN_POINTS = 7
MAX_POINTS = 10_000          # delays in one scan across time zero
RECORD = {"time_zero_old_mm": "mm", "time_zero_new_mm": "mm", "t0_ps": "ps", "t0_err_ps": "ps",
          "irf_fwhm_ps": "ps", "irf_fwhm_err_ps": "ps", "amplitude": "", "amplitude_err": "", "significance": ""}


class TimeZeroNotFound(RuntimeError):
    """The onset fit was not good enough to set time zero; nothing was changed."""


def _windows(q_windows) -> list[tuple[float, float]]:
    windows = [] if isinstance(q_windows, (str, bytes, dict)) or not hasattr(q_windows, "__iter__") \
        else list(q_windows)
    if not windows:
        raise ValueError("find_time_zero needs q_windows, a list such as [(1.70, 2.05)] (A^-1): where the signal "
                         f"is; got {q_windows!r:.60}")
    out = []
    for i, w in enumerate(windows):
        if isinstance(w, (str, bytes, dict)) or not hasattr(w, "__len__") or len(w) != 2:
            raise ValueError(f"q_windows[{i}] must be (qmin, qmax) in A^-1, got {w!r}")
        lo, hi = finite(w[0], f"q_windows[{i}] qmin", unit="A^-1"), finite(w[1], f"q_windows[{i}] qmax", unit="A^-1")
        if not 0 <= lo < hi:
            raise ValueError(f"q_windows[{i}]: need 0 <= qmin < qmax, got {lo} .. {hi} A^-1")
        out.append((lo, hi))
    return out


def find_time_zero(detectors: Sequence, *, delay, shutter, att, jet, i0, analyse: Callable,
                   q_windows: Sequence[tuple[float, float]], window_ps: float = 300.0, step_ps: float = 10.0, frames_per_point: int = 1,
                   center_ps: float = 0.0, min_significance: float = 5.0, frames_per_trigger: int | None = None,
                   md: dict | None = None) -> MsgGenerator[str]:
    """Scan across time zero, fit the onset, set time zero (see module).

    Parameters
    ----------
    detectors : list of area detectors
    delay, shutter, att, jet, i0 : devices
        As in ``delay_scan``; ``delay`` must be the optical delay stage (its time zero moves).
    analyse : callable
        ``analyse(q_windows, min_significance) -> dict`` (see module); the session binds it.
    q_windows : list of (qmin, qmax)
        q windows (A^-1) of the signal whose onset is fitted.
    window_ps, step_ps : float
        Full width of the delay window (ps) and the spacing of its points (ps): at least
        7 points; make the window several IRF widths wide.
    frames_per_point : int
        Pump-on / pump-off pairs per delay.
    center_ps : float
        Where the window is centred on the current delay axis (0: the nominal time zero).
    min_significance : float
        The fitted step must be this many standard errors from zero.
    frames_per_trigger : int, optional
        Frames each detector streams per event, as in ``delay_scan``.
    md : dict, optional
        Must hold ``sample`` (the session's plans add it).

    Returns
    -------
    MsgGenerator
        The plan, checked: every argument was validated when it was made. It raises
        ``TimeZeroNotFound`` after the run when the fit was not good enough (nothing changed).

    EXAMPLE::

        RE(find_time_zero([pilatus], q_windows=[(1.70, 2.05)], window_ps=300, step_ps=10))
    """
    setup = _Setup(detectors, delay=delay, shutter=shutter, att=att, jet=jet, i0=i0)
    if not hasattr(delay, "set_time_zero"):
        raise ValueError(f"{delay.name} has no time zero to set: give the optical delay stage")
    if not callable(analyse):
        raise ValueError("find_time_zero needs analyse(q_windows, min_significance): the session's live reduction")
    windows = _windows(q_windows)
    width = finite(window_ps, "window_ps", unit="ps")
    step = finite(step_ps, "step_ps", unit="ps")
    center = finite(center_ps, "center_ps", unit="ps")
    significance = finite(min_significance, "min_significance", low=0.0, strict=True, high=1000.0)
    if not (width > 0 and step > 0):
        raise ValueError(f"window_ps and step_ps must be > 0, got {width} and {step} ps")
    for label, t in (("center_ps - window_ps/2", center - width / 2), ("center_ps + window_ps/2", center + width / 2)):
        try:
            setup.check_delay(t)
        except ValueError as exc:
            raise ValueError(f"window_ps / center_ps: {label} = {t:g} ps: {exc}") from None
    n = int(math.floor(width / step + 1e-9)) + 1
    if n > MAX_POINTS:
        raise ValueError(f"a {width} ps window in {step} ps steps has {n} points, more than {MAX_POINTS}: "
                         "a narrower window_ps or a coarser step_ps")
    if n < MIN_POINTS:
        raise ValueError(f"window_ps / step_ps: a {width} ps window in {step} ps steps has {n} points; the onset "
                         f"fit needs at least {MIN_POINTS}: a wider window_ps or a finer step_ps")
    delays = [round(center - width / 2 + k * step, 6) for k in range(n)]
    for t in delays:
        setup.check_delay(t)
    frames = count(frames_per_point, "frames_per_point")
    setup.set_streaming(frames_per_trigger)
    old_mm, n_passes = float(delay.time_zero_mm.get()), int(delay.n_passes.get())
    args = dict(detectors=[d.name for d in setup.detectors], delays_ps=delays, reference="interleaved",
                frames_per_point=frames, repeats=1, window_ps=width, step_ps=step, center_ps=center,
                q_windows=[list(w) for w in windows], min_significance=significance,
                frames_per_trigger=setup.frames_per_trigger)
    md = setup.md("find_time_zero", args, md, dims=[([setup.delay.delay.name], "primary")],
                  num_points=n * 2 * frames, delay_order=[list(range(n))])
    record = {name: LabelSignal(name=name, value=math.nan, units=units) for name, units in RECORD.items()}
    applied = LabelSignal(name="applied", value=False)
    reason = LabelSignal(name="reason", value="")
    outcome = {}

    def inner():
        for i, t in enumerate(delays):
            yield from _point(setup, t, i, 0, frames, "interleaved", None)
        fit = analyse(windows, significance)
        problem = fit.get("problem")
        new_mm = old_mm if problem else stage_position_mm(fit["t0_ps"], old_mm, n_passes)
        values = {**{k: fit.get(k, math.nan) for k in RECORD}, "time_zero_old_mm": old_mm, "time_zero_new_mm": new_mm}
        for name, signal in record.items():
            signal.put(float(values[name]) if values[name] is not None else math.nan)
        applied.put(problem is None)
        reason.put(problem or f"onset at {fit['t0_ps']:+.2f} +- {fit['t0_err_ps']:.2f} ps of the old time zero")
        yield from bps.trigger_and_read([*record.values(), applied, reason], name="time_zero")
        if problem is None:
            delay.set_time_zero(new_mm)
        outcome.update(values, problem=problem)

    def plan():
        uid = yield from setup.wrap(inner(), md)
        if outcome.get("problem"):
            raise TimeZeroNotFound(f"time zero unchanged at {old_mm:.4f} mm: {outcome['problem']}")
        print(f"time zero {old_mm:.4f} mm -> {outcome['time_zero_new_mm']:.4f} mm (onset at "
              f"{outcome['t0_ps']:+.2f} +- {outcome['t0_err_ps']:.2f} ps of the old one, IRF "
              f"{outcome['irf_fwhm_ps']:.1f} ps FWHM); saved by the session")
        return uid

    return plan()
