"""Settling, written once: "done after the reading stayed in band for ``settle_time_s``, re-armed
when it leaves, with an overall timeout", for the heating cell, the liquid jet and the syringe
pump.

:class:`SettleMachine` is the rule as a pure state machine fed with ``(timestamp, value)``
pairs, the timestamps being the IOC's own (EPICS time stamps, epoch seconds): the decision
depends on when the readings were taken, not on when this process got round to them, so a
busy client settles late but never wrongly. Readings that arrive out of order are put in
their place (an older excursion breaks the streak it falls into); a repeated reading is
ignored; readings from before the move started never count as time in band.

:class:`SettleStatus` is the one ophyd status around it: fed by monitor subscriptions to the
device's signals, it wakes at the machine's deadlines (timeout, end of equilibration, and the
end of a streak when the signal stays quiet), reports progress to bluesky's progress bar and
finishes or fails with a clear error.

EXAMPLE::

    from trxrd.acquisition.devices.settle import SettleMachine
    m = SettleMachine(lambda v: abs(v - 100.0) <= 0.5, settle_time_s=2.0, timeout_s=60.0, started_at=0.0)
    for t, v in [(0.0, 95.0), (1.0, 99.8), (2.0, 100.9), (3.0, 100.2), (4.0, 99.9), (5.1, 100.1)]:
        m.feed(t, v)
    m.state, m.in_band_since, m.settled_at        # "done", 3.0, 5.0
"""
from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Sequence

from ophyd.status import DeviceStatus

__all__ = ["SettleMachine", "SettleStatus", "PendingMove", "SettleTimeoutError", "SettleAbandoned", "SettleFailed"]

WAITING, SETTLING, EQUILIBRATING = "waiting", "settling", "equilibrating"
DONE, TIMED_OUT, FAILED, STOPPED = "done", "timed out", "failed", "stopped"
FINAL = (DONE, TIMED_OUT, FAILED, STOPPED)


class SettleTimeoutError(TimeoutError):
    """The reading did not stay inside the band long enough before the timeout."""


class SettleAbandoned(RuntimeError):
    """A pending settle status was given up (``stop()``, or a new set point)."""


class SettleFailed(RuntimeError):
    """The device reported a state the move cannot recover from (e.g. a pump stopped early)."""


class SettleMachine:
    """The settle rule (see module); no threads, no EPICS.

    Parameters
    ----------
    in_band : callable
        ``in_band(value) -> bool``: is this reading what the move asked for?
    settle_time_s : float
        Time the readings must stay in band without a break (s).
    timeout_s : float
        Fail as timed out if not settled this long after ``started_at`` (s); ``inf`` for never.
    started_at : float
        Time the move started (epoch s, the readings' clock).
    equilibrate_s : float
        Extra time after settling before done (s).
    failed : callable, optional
        ``failed(value) -> str | None``: a reason to fail now, or None.

    Attributes
    ----------
    state : str
        "waiting", "settling", "equilibrating", "done", "timed out", "failed" or "stopped".
    history : list of (t, value)
        Every reading, in time order.
    in_band_since, settled_at, finished_at : float or None
        Start of the current streak, end of the qualifying streak, end of the move.
    """

    def __init__(self, in_band: Callable, *, settle_time_s: float, timeout_s: float, started_at: float,
                 equilibrate_s: float = 0.0, failed: Callable | None = None):
        if not (settle_time_s >= 0 and equilibrate_s >= 0 and timeout_s > 0):
            raise ValueError("settle_time_s and equilibrate_s must be >= 0, timeout_s > 0")
        self.in_band, self.failed = in_band, failed
        self.settle_time_s, self.timeout_s = float(settle_time_s), float(timeout_s)
        self.equilibrate_s, self.started_at = float(equilibrate_s), float(started_at)
        self.state = WAITING
        self.history: list[tuple[float, object]] = []
        self._times: list[float] = []
        self.in_band_since: float | None = None
        self.settled_at: float | None = None
        self.finished_at: float | None = None
        self.reason = ""
        self.ignored = 0                     # repeated readings

    @property
    def done(self) -> bool:
        return self.state in FINAL

    @property
    def last(self):
        """The latest reading's value (None before the first)."""
        return self.history[-1][1] if self.history else None

    def feed(self, t: float, value) -> str:
        """A reading *value* taken at *t* (epoch s); returns the new state."""
        if self.done:
            return self.state
        i = bisect.bisect_right(self._times, t)
        if i and self._times[i - 1] == t and self.history[i - 1][1] == value:
            self.ignored += 1
            return self.state
        self._times.insert(i, t)
        self.history.insert(i, (t, value))
        if self.failed is not None:
            reason = self.failed(value)
            if reason:
                return self._finish(FAILED, max(t, self.started_at), reason)
        if self.settled_at is not None:          # equilibrating: readings are only logged
            return self.state
        if i == len(self.history) - 1:            # in order: update the streak incrementally
            if not self.in_band(value):
                self.in_band_since = None
            elif self.in_band_since is None:
                self.in_band_since = max(t, self.started_at)
        else:                                     # out of order: recompute the trailing streak
            self.in_band_since = self._streak_start()
        self.state = WAITING if self.in_band_since is None else SETTLING
        return self._check(self.history[-1][0])

    def tick(self, now: float, *, quiet: bool = False) -> str:
        """Time *now* (epoch s) has come: timeout and equilibration. With ``quiet`` (no new
        reading for a while: the value has not changed), the latest reading is taken to hold
        until *now*, which may complete a streak."""
        if self.done:
            return self.state
        if quiet and self.settled_at is None and self.in_band_since is not None:
            self._check(now)
        if self.settled_at is not None:
            if now >= self.settled_at + self.equilibrate_s:
                return self._finish(DONE, self.settled_at + self.equilibrate_s)
            return self.state
        if now >= self.started_at + self.timeout_s:
            return self._finish(TIMED_OUT, now, f"last reading {self.last!r}")
        return self.state

    def stop(self, now: float, reason: str = "") -> str:
        """Give up: the state becomes "stopped" (unless already final)."""
        if not self.done:
            self._finish(STOPPED, now, reason)
        return self.state

    def deadline(self) -> float | None:
        """The next time (epoch s) at which ``tick`` may change the state, or None."""
        if self.done:
            return None
        if self.settled_at is not None:
            return self.settled_at + self.equilibrate_s
        times = [self.started_at + self.timeout_s]
        if self.in_band_since is not None:
            times.append(self.in_band_since + self.settle_time_s)
        return min(times)

    def _check(self, until: float) -> str:
        """Settle if the streak reaches *until*; finish if no equilibration is asked for."""
        if self.in_band_since is not None and until - self.in_band_since >= self.settle_time_s:
            self.settled_at = self.in_band_since + self.settle_time_s
            self.state = EQUILIBRATING
            if self.equilibrate_s == 0:
                return self._finish(DONE, self.settled_at)
        return self.state

    def _streak_start(self) -> float | None:
        """Start of the trailing run of in-band readings (None if the latest is out of band)."""
        start = None
        for t, value in reversed(self.history):
            if not self.in_band(value):
                break
            start = t
        return None if start is None else max(start, self.started_at)

    def _finish(self, state: str, at: float, reason: str = "") -> str:
        self.state, self.finished_at, self.reason = state, at, reason
        return state


class SettleStatus(DeviceStatus):
    """An ophyd status that is done when its :class:`SettleMachine` is (see module).

    Parameters
    ----------
    device : ophyd Device
    machine : SettleMachine
    signals : list of ophyd signals
        Subscribed while the status is pending; every update is a reading.
    value_of : callable
        ``value_of({signal name: value})`` -> the value the machine judges (called once every
        signal has a value).
    target, initial : float
        For the progress bar: where the move goes and where it came from.
    unit : str
        For the progress bar.
    progress_value : callable, optional
        ``progress_value(value) -> float`` shown by the progress bar (default: the value).
    quiet_s : float
        A signal with no update for this long is taken to hold its value (see ``tick``).
    on_timeout : callable, optional
        Called (no arguments) when the move times out, before the status fails.
    what : str
        What the move is, for the error messages (e.g. "settled at 160.0 C").
    rule : str
        The settle rule in words, for the timeout message.
    waiting : str, optional
        Name of the phase before the first in-band reading (default "heating"/"cooling").
    """

    timeout_error = SettleTimeoutError
    failure_error = SettleFailed

    def __init__(self, device, machine: SettleMachine, *, signals: Sequence, value_of: Callable,
                 target: float, initial: float, unit: str, progress_value: Callable | None = None,
                 quiet_s: float = 1.0, on_timeout: Callable | None = None, what: str = "settled",
                 rule: str = "", waiting: str | None = None):
        super().__init__(device)
        self.waiting = waiting
        self.machine = machine
        self.target, self.initial, self.unit, self.what, self.rule = target, initial, unit, what, rule
        self._progress_value = progress_value or (lambda v: v)
        self._quiet_s = float(quiet_s)
        self._on_timeout = on_timeout
        self._lock = threading.RLock()
        self._latest: dict = {}
        self._last_arrival = time.monotonic()
        self._timer: threading.Timer | None = None
        self._progress: list = []
        self._subscriptions = []
        self._signals = list(signals)
        self._value_of = value_of
        self.add_callback(self._cleanup)
        with self._lock:
            for sig in self._signals:
                self._subscriptions.append((sig, sig.subscribe(self._on_update, run=False)))
            self._schedule()
        for sig in self._signals:                   # the current values: the first readings
            reading = sig.read()[sig.name]
            self._on_update(value=reading["value"], timestamp=reading["timestamp"], obj=sig, initial=True)

    # -- what the machine says, as attributes --------------------------------------------------
    @property
    def history(self) -> list:
        return self.machine.history

    @property
    def started_at(self) -> float:
        return self.machine.started_at

    @property
    def in_band_since(self):
        return self.machine.in_band_since

    @property
    def settled_at(self):
        return self.machine.settled_at

    @property
    def finished_at(self):
        return self.machine.finished_at

    @property
    def settled(self) -> bool:
        """Done by the rule (False when stopped, failed or timed out)."""
        return self.machine.state == DONE

    # -- inputs ---------------------------------------------------------------------------------
    def _on_update(self, value=None, timestamp=None, obj=None, initial=False, **kwargs):
        if value is None or obj is None:
            return
        with self._lock:
            if initial and obj.name in self._latest:
                # a monitor update came in between the subscription and this read: it is newer
                # (taking the read would keep a stale value for as long as the PV stays put)
                return
            self._latest[obj.name] = value
            self._last_arrival = time.monotonic()
            if len(self._latest) < len(self._signals) or self.machine.done:
                return
            t = timestamp if timestamp is not None else time.time()
            self.machine.feed(float(t), self._value_of(dict(self._latest)))
            self._act()
        self._notify()

    def _on_timer(self):
        with self._lock:
            self._timer = None
            quiet = time.monotonic() - self._last_arrival >= self._quiet_s
            self.machine.tick(time.time(), quiet=quiet)
            self._act()
        self._notify()

    def _act(self):
        """Finish the status if the machine is final, else re-arm the timer (lock held)."""
        state = self.machine.state
        if state not in FINAL:
            self._schedule()
            return
        if self.done or state == STOPPED:          # stop_waiting finishes it itself
            return
        if state == DONE:
            self.set_finished()
        elif state == TIMED_OUT:
            if self._on_timeout is not None:
                self._on_timeout()
            rule = f"rule: {self.rule}; " if self.rule else ""
            self.set_exception(self.timeout_error(f"{self.device.name}: not {self.what} within "
                                                  f"{self.machine.timeout_s:g} s ({rule}{self.machine.reason})"))
        else:
            self.set_exception(self.failure_error(f"{self.device.name}: {self.machine.reason}"))

    def _schedule(self):
        deadline = self.machine.deadline()
        if deadline is None:
            return
        delay = max(0.0, deadline - time.time())
        if self.machine.state == SETTLING and delay == 0.0:
            delay = self._quiet_s                   # the streak is due: wait for quiet or a reading
        if self._timer is not None:
            self._timer.cancel()
        self._timer = threading.Timer(delay, self._on_timer)
        self._timer.daemon = True
        self._timer.start()

    def stop_waiting(self, *, success: bool, why: str) -> None:
        """Finish now: as done but not settled (``success``) or failed with :class:`SettleAbandoned`."""
        with self._lock:
            if self.machine.done:
                return
            self.machine.stop(time.time(), why)
            if success:
                self.set_finished()
            else:
                self.set_exception(SettleAbandoned(f"{self.device.name}: {why}"))

    # -- plumbing ---------------------------------------------------------------------------------
    def _handle_failure(self):
        pass    # DeviceStatus would call device.stop(); what a device does on failure is its own

    def _cleanup(self, status) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            subs, self._subscriptions = self._subscriptions, []
        for sig, token in subs:
            sig.unsubscribe(token)
        self._notify()

    def watch(self, func):
        """Subscribe *func* to progress (bluesky ``ProgressBar`` keywords)."""
        self._progress.append(func)
        self._notify()

    def phase(self) -> str:
        """``heating``/``cooling`` (waiting), ``settling a/b s``, ``equilibrating a/b s``, ``done``, ..."""
        m = self.machine
        now = time.time()
        if m.state == WAITING:
            return self.waiting or ("heating" if self.target >= self.initial else "cooling")
        if m.state == SETTLING:
            return f"settling {max(0.0, now - m.in_band_since):.1f}/{m.settle_time_s:g} s"
        if m.state == EQUILIBRATING:
            return f"equilibrating {max(0.0, now - m.settled_at):.0f}/{m.equilibrate_s:g} s"
        return m.state

    def _notify(self) -> None:
        if not self._progress:
            return
        last = self.machine.last
        current = self.initial if last is None else self._progress_value(last)
        for func in list(self._progress):
            func(name=f"{self.device.name} {self.phase()}", current=current, initial=self.initial,
                 target=self.target, unit=self.unit, precision=2,
                 time_elapsed=time.time() - self.machine.started_at)


class PendingMove:
    """Mixin for a device whose ``set`` returns a :class:`SettleStatus`: remembers the pending
    status (``_track``) and the latest one (``last_status``), and gives the pending one up
    (``_abandon``) when a new move supersedes it or ``stop()`` is called."""

    _pending: SettleStatus | None = None
    last_status: SettleStatus | None = None

    def _track(self, status: SettleStatus) -> SettleStatus:
        self._pending = self.last_status = status
        status.add_callback(self._release)
        return status

    def _release(self, status: SettleStatus) -> None:
        if self._pending is status:
            self._pending = None

    def _abandon(self, *, success: bool, why: str) -> None:
        status = self._pending
        if status is not None:
            status.stop_waiting(success=success, why=why)
