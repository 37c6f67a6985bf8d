"""Heating cell (or heating mantle) temperature controller: PID on a thermocouple with a
ramped set point. PVs ``{P}TC:Setpoint``, ``Setpoint_RBV`` (working, ramped set point),
``Temperature_RBV``, ``RampRate`` (C/min, 0 = step), ``Output_RBV`` (%), ``Enable``.

``HeatingCell`` is a positioner in C: ``set(T)`` checks T (finite, inside ``limits``)
before anything is written, writes the set point, switches closed-loop control on and
returns a :class:`SettleStatus`. The status is done once the thermocouple reading has
stayed within ``tolerance_c`` of T for ``settle_time_s`` without a break (the clock
restarts whenever a reading leaves the band), plus ``equilibrate_s`` of extra waiting. It
fails with :class:`SettleTimeoutError` if the cell has not settled ``timeout_s`` after the
``set`` (plus the nominal ramp time |dT| / RampRate when ramping; equilibration not
counted). Its ``history`` holds every (epoch s, C) reading seen meanwhile
(``cell.temperature_history`` for the latest move). The ramp rate is a controller setting:
it stays as the last plan left it.

``stop()`` only abandons a pending status, like ``EpicsMotor``: the RunEngine calls
``stop(success=True)`` on every device it moved when a plan ends, pauses or is suspended;
the status then finishes as done with ``settled`` False (a failed status would turn a pause
into an abort), and the set point and the heater stay as they are. ``stop()`` without
argument fails the status with :class:`SettleAbandoned`. Switch the heater off explicitly
with ``heater_off()``.

EXAMPLE::

    from bluesky import RunEngine, plan_stubs as bps
    from bluesky.utils import ProgressBarManager
    from trxrd.acquisition.devices.heating_cell import HeatingCell
    cell = HeatingCell("TRX:", name="cell", settle_time_s=30.0, tolerance_c=0.5)
    cell.wait_for_connection(timeout=10)
    RE = RunEngine({}); RE.waiting_hook = ProgressBarManager()
    RE(bps.mv(cell.ramp_rate, 10.0))        # C/min; 0 = step
    RE(bps.mv(cell, 160))                    # returns once settled at 160 C
    cell.set(80.0, settle_time_s=5.0, equilibrate_s=60.0).wait()
    cell.last_status.settled_at              # when the 5 s in-band streak completed (epoch s)
"""
from __future__ import annotations

import threading
import time

from ophyd import Component as Cpt
from ophyd import Device, EpicsSignal
from ophyd.status import DeviceStatus
from ophyd.utils.errors import LimitError

from ..plans.metadata import finite
from ._signals import CheckedSignal, UnitReadback

__all__ = ["HeatingCell", "SettleStatus", "SettleTimeoutError", "SettleAbandoned"]


class SettleTimeoutError(TimeoutError):
    """The reading did not stay inside the tolerance band long enough before the timeout."""


class SettleAbandoned(RuntimeError):
    """A pending settle status was given up (``stop(success=False)`` or a new set point)."""


class SettleStatus(DeviceStatus):
    """Done when the reading has stayed within ``tolerance_c`` of ``target_c`` for
    ``settle_time_s`` continuously, then ``equilibrate_s`` later.

    Attributes (times are epoch seconds): ``history`` [(time, C)] of every reading seen,
    ``settled_at`` (end of the qualifying in-band streak), ``finished_at``, ``settled``
    (False when finished by ``stop``). ``watch()`` feeds bluesky's progress bar.
    """

    def __init__(self, device, *, target_c, initial_c, tolerance_c, settle_time_s, equilibrate_s,
                 timeout_s):
        super().__init__(device)
        self.target_c, self.initial_c = target_c, initial_c
        self.tolerance_c, self.settle_time_s = tolerance_c, settle_time_s
        self.equilibrate_s, self.timeout_s = equilibrate_s, timeout_s
        self.started_at = time.time()
        self.history: list[tuple[float, float]] = []
        self.in_band_since: float | None = None   # start of the current in-band streak
        self.settled_at: float | None = None
        self.finished_at: float | None = None
        self.settled = False
        self._streak = 0                          # bumped whenever a streak starts or breaks
        self._closing = False                     # set once, by whoever completes the status
        self._lock = threading.RLock()
        self._timers: list[threading.Timer] = []
        self._progress = []
        self.subscription = None                  # the device's temperature subscription id
        self._start_timer(timeout_s, self._on_timeout)
        self.add_callback(self._cleanup)

    # -- readings ------------------------------------------------------------------------
    def reading(self, value: float, timestamp: float) -> None:
        """A new thermocouple reading (called from the temperature monitor)."""
        with self._lock:
            if self._closing:
                return
            self.history.append((timestamp, value))
            inside = abs(value - self.target_c) <= self.tolerance_c
            if self.settled_at is not None:
                pass                                   # equilibrating: just log
            elif inside and self.in_band_since is None:
                self.in_band_since = time.time()
                self._streak += 1
                if self.settle_time_s == 0:
                    self._settle(self._streak)
                else:
                    self._start_timer(self.settle_time_s, self._settle, self._streak)
            elif not inside and self.in_band_since is not None:
                self.in_band_since = None
                self._streak += 1                      # the pending streak timer is void
        self._notify(value)

    def _settle(self, streak: int) -> None:
        with self._lock:
            if self._closing or streak != self._streak or self.settled_at is not None:
                return
            self.settled_at = time.time()
            if self.equilibrate_s > 0:
                self._start_timer(self.equilibrate_s, self._finish)
                return
        self._finish()

    def _finish(self) -> None:
        with self._lock:
            if self._closing:
                return
            self._closing = True
            self.settled = True
            self.finished_at = time.time()
        self.set_finished()

    def _on_timeout(self) -> None:
        with self._lock:
            if self._closing or self.settled_at is not None:
                return
            self._closing = True
            last = self.history[-1][1] if self.history else float("nan")
            exc = SettleTimeoutError(
                f"{self.device.name}: not settled at {self.target_c} C within {self.timeout_s} s "
                f"(rule: {self.settle_time_s} s continuously within +-{self.tolerance_c} C; "
                f"last reading {last:.2f} C)")
        self.set_exception(exc)

    def abandon(self, success: bool, why: str) -> None:
        """Finish now without waiting further: as done (``success``) or failed."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            self.finished_at = time.time()
        if success:
            self.set_finished()
        else:
            self.set_exception(SettleAbandoned(f"{self.device.name}: {why}"))

    # -- plumbing ------------------------------------------------------------------------
    def _handle_failure(self):
        pass    # DeviceStatus would call device.stop(); the heater stays as it is

    def _start_timer(self, delay_s, func, *args):
        timer = threading.Timer(delay_s, func, args)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def _cleanup(self, status) -> None:
        for timer in self._timers:
            timer.cancel()
        self.device._release(self)
        self._notify(self.history[-1][1] if self.history else self.initial_c)

    def watch(self, func):
        """Subscribe *func* to progress (bluesky ``ProgressBar`` keywords)."""
        self._progress.append(func)
        self._notify(self.history[-1][1] if self.history else self.initial_c)

    def phase(self) -> str:
        """``heating``/``cooling``, ``settling a/b s``, ``equilibrating a/b s`` or ``done``."""
        now = time.time()
        if self.done:
            return "done" if self.settled else "stopped"
        if self.settled_at is not None:
            return f"equilibrating {now - self.settled_at:.0f}/{self.equilibrate_s:g} s"
        if self.in_band_since is not None:
            return f"settling {now - self.in_band_since:.1f}/{self.settle_time_s:g} s"
        return "heating" if self.target_c >= self.initial_c else "cooling"

    def _notify(self, current: float) -> None:
        for func in list(self._progress):
            func(name=f"{self.device.name} {self.phase()}", current=current, initial=self.initial_c,
                 target=self.target_c, unit="C", precision=2,
                 time_elapsed=time.time() - self.started_at)


class HeatingCell(Device):
    """Temperature controller of the heating cell / mantle, a positioner in C (see module).

    ``limits_c``: allowed set points (C). ``max_ramp_c_min``: largest ramp rate (C/min).
    ``tolerance_c``, ``settle_time_s``, ``equilibrate_s``, ``timeout_s``: the default settle
    rule; ``set(T, settle_time_s=..., ...)`` overrides it for one move (bluesky passes the
    keywords of ``bps.abs_set(cell, T, settle_time_s=5)`` through).
    """

    temperature = Cpt(UnitReadback, "TC:Temperature_RBV", unit="C", kind="hinted", auto_monitor=True)
    setpoint = Cpt(CheckedSignal, "TC:Setpoint", unit="C", kind="normal", put_complete=True)
    working_setpoint = Cpt(UnitReadback, "TC:Setpoint_RBV", unit="C", kind="normal")
    output = Cpt(UnitReadback, "TC:Output_RBV", unit="%", kind="normal")
    ramp_rate = Cpt(CheckedSignal, "TC:RampRate", unit="C/min", low=0.0, kind="normal", put_complete=True)
    enable = Cpt(EpicsSignal, "TC:Enable", string=True, kind="config", put_complete=True)

    def __init__(self, prefix="", *, name, limits_c=(0.0, 350.0), max_ramp_c_min: float = 600.0,
                 tolerance_c: float = 0.5, settle_time_s: float = 30.0, equilibrate_s: float = 0.0,
                 timeout_s: float = 1800.0, **kwargs):
        super().__init__(prefix, name=name, **kwargs)
        low = finite(limits_c[0], f"{name} low limit", unit="C")
        high = finite(limits_c[1], f"{name} high limit", low=low, strict=True, unit="C")
        self.setpoint.low, self.setpoint.high = low, high
        self.ramp_rate.high = finite(max_ramp_c_min, f"{name} max_ramp_c_min", low=0.0, strict=True,
                                     unit="C/min")
        rule = self.settle_rule(tolerance_c, settle_time_s, equilibrate_s, timeout_s)
        self.tolerance_c, self.settle_time_s = rule["tolerance_c"], rule["settle_time_s"]
        self.equilibrate_s, self.timeout_s = rule["equilibrate_s"], rule["timeout_s"]
        self._pending: SettleStatus | None = None
        self.last_status: SettleStatus | None = None

    # -- positioner interface --------------------------------------------------------------
    @property
    def limits(self) -> tuple[float, float]:
        return (self.setpoint.low, self.setpoint.high)

    @property
    def egu(self) -> str:
        return "C"

    @property
    def position(self) -> float:
        return self.temperature.get()

    @property
    def temperature_history(self) -> list[tuple[float, float]]:
        """(epoch s, C) readings seen by the latest ``set`` (empty before the first)."""
        return list(self.last_status.history) if self.last_status else []

    def check_value(self, temperature_c) -> float:
        """*temperature_c* as a float if it is an allowed set point, else ``ValueError``."""
        t = finite(temperature_c, f"{self.name} set point", unit="C")
        low, high = self.limits
        if not low <= t <= high:
            raise LimitError(f"{self.name}: set point {t} C is outside the limits [{low}, {high}] C")
        return t

    def settle_rule(self, tolerance_c=None, settle_time_s=None, equilibrate_s=None, timeout_s=None) -> dict:
        """The settle rule (validated) with the device defaults for arguments left None."""
        n = self.name
        return dict(
            tolerance_c=finite(tolerance_c if tolerance_c is not None else self.tolerance_c,
                               f"{n} tolerance_c", low=0.0, strict=True, unit="C"),
            settle_time_s=finite(settle_time_s if settle_time_s is not None else self.settle_time_s,
                                 f"{n} settle_time_s", low=0.0, unit="s"),
            equilibrate_s=finite(equilibrate_s if equilibrate_s is not None else self.equilibrate_s,
                                 f"{n} equilibrate_s", low=0.0, unit="s"),
            timeout_s=finite(timeout_s if timeout_s is not None else self.timeout_s,
                             f"{n} timeout_s", low=0.0, strict=True, unit="s"))

    def set(self, temperature_c, *, tolerance_c=None, settle_time_s=None, equilibrate_s=None,
            timeout_s=None) -> SettleStatus:
        """Go to *temperature_c* (C) and return a :class:`SettleStatus`. Every argument is
        checked before anything is written; ``None`` keeps the device's default."""
        target = self.check_value(temperature_c)
        rule = self.settle_rule(tolerance_c, settle_time_s, equilibrate_s, timeout_s)
        self._abandon(success=False, why=f"superseded by a new set point {target} C")
        self.setpoint.put(target, wait=True)
        got = self.setpoint.get(use_monitor=False)
        if abs(got - target) > 1e-6 * max(1.0, abs(target)):
            raise RuntimeError(f"{self.name}: the controller refused set point {target} C (reads {got} C)")
        if self.enable.get(use_monitor=False) != "On":
            self.enable.put("On", wait=True)
        rate = self.ramp_rate.get()
        if rate > 0:    # the controller ramps: the timeout starts after the nominal ramp time
            rule["timeout_s"] += abs(target - self.working_setpoint.get()) / rate * 60.0
        status = SettleStatus(self, target_c=target, initial_c=self.temperature.get(), **rule)
        self._pending = self.last_status = status

        def on_reading(value=None, timestamp=None, **kwargs):
            if value is not None:
                status.reading(float(value), timestamp if timestamp is not None else time.time())

        status.subscription = self.temperature.subscribe(on_reading, run=True)
        if status.done:                           # settled on the very first reading
            self._release(status)
        return status

    def _release(self, status: SettleStatus) -> None:
        if self._pending is status:
            self._pending = None
        sub, status.subscription = status.subscription, None
        if sub is not None:
            self.temperature.unsubscribe(sub)

    def _abandon(self, *, success: bool, why: str) -> None:
        status = self._pending
        if status is not None:
            status.abandon(success, why)

    def stop(self, *, success: bool = False) -> None:
        """Abandon a pending settle status (as done if *success*, else failed with
        :class:`SettleAbandoned`); the set point and the heater stay as they are."""
        self._abandon(success=success, why="settling abandoned by stop()")

    def heater_off(self) -> None:
        """Abandon any pending status and switch closed-loop control off (the cell cools freely)."""
        self._abandon(success=False, why="heater switched off")
        self.enable.put("Off", wait=True)
