"""Heating cell (or heating mantle) temperature controller: PID on a thermocouple with a
ramped set point. PVs ``{P}TC:Setpoint``, ``Setpoint_RBV`` (working, ramped set point),
``Temperature_RBV``, ``RampRate`` (C/min, 0 = step), ``Output_RBV`` (%), ``Enable``.

``HeatingCell`` is a positioner in C: ``set(T)`` checks T (finite, inside ``limits``)
before anything is written, writes the set point, switches closed-loop control on and
returns a :class:`~trxrd.acquisition.devices.settle.SettleStatus`. The status is done once the
thermocouple reading has stayed within ``tolerance_c`` of T for ``settle_time_s`` without a
break (the clock restarts whenever a reading leaves the band), plus ``equilibrate_s`` of extra
waiting; the times are the controller's own time stamps (``settled_at``, ``finished_at``), so
a busy client may see the status finish late, never early. It fails with
:class:`SettleTimeoutError` if the cell has not settled ``timeout_s`` after the ``set`` (plus
the nominal ramp time |dT| / RampRate when ramping; equilibration not counted). Its
``history`` holds every (epoch s, C) reading (``cell.temperature_history`` for the latest
move). The ramp rate is a controller setting: it stays as the last plan left it.

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
    cell.last_status.settled_at              # when the 5 s in-band streak completed (IOC epoch s)
"""
from __future__ import annotations

import time

from ophyd import Component as Cpt
from ophyd import Device, EpicsSignal
from ophyd.utils.errors import LimitError

from ...validation import finite
from ._signals import CheckedSignal, UnitReadback
from .settle import PendingMove, SettleAbandoned, SettleMachine, SettleStatus, SettleTimeoutError

MAX_WAIT_S = 86400.0          # settle, equilibration and timeout: longer than a day is a typo
MAX_TOLERANCE_C = 50.0        # a wider band does not say the cell has settled

__all__ = ["HeatingCell", "SettleStatus", "SettleTimeoutError", "SettleAbandoned"]


class HeatingCell(PendingMove, Device):
    """Temperature controller of the heating cell / mantle, a positioner in C (see module).

    Parameters
    ----------
    prefix : str
        PV prefix of the beamline (``TC:...`` below it).
    name : str
        Device name (data keys ``<name>_temperature``, ``<name>_setpoint``, ...).
    limits_c : (float, float)
        Allowed set points (C).
    max_ramp_c_min : float
        Largest ramp rate (C/min).
    tolerance_c, settle_time_s, equilibrate_s, timeout_s : float
        The default settle rule (C, s, s, s); ``set(T, settle_time_s=..., ...)`` overrides it for
        one move (bluesky passes the keywords of ``bps.abs_set(cell, T, settle_time_s=5)`` through).

    EXAMPLE::

        cell = HeatingCell("TRX:", name="cell", settle_time_s=30.0, tolerance_c=0.5)
        RE(bps.mv(cell, 160))                    # returns once settled at 160 C
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

    # -- positioner interface --------------------------------------------------------------
    @property
    def limits(self) -> tuple[float, float]:
        """Allowed set points (C): ``limits_c`` narrowed to the controller's own (DRVL/DRVH)."""
        return self.setpoint.allowed()

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
                               f"{n} tolerance_c", low=0.0, strict=True, high=MAX_TOLERANCE_C, unit="C"),
            settle_time_s=finite(settle_time_s if settle_time_s is not None else self.settle_time_s,
                                 f"{n} settle_time_s", low=0.0, high=MAX_WAIT_S, unit="s"),
            equilibrate_s=finite(equilibrate_s if equilibrate_s is not None else self.equilibrate_s,
                                 f"{n} equilibrate_s", low=0.0, high=MAX_WAIT_S, unit="s"),
            timeout_s=finite(timeout_s if timeout_s is not None else self.timeout_s,
                             f"{n} timeout_s", low=0.0, strict=True, high=MAX_WAIT_S, unit="s"))

    def set(self, temperature_c, *, tolerance_c=None, settle_time_s=None, equilibrate_s=None,
            timeout_s=None) -> SettleStatus:
        """Go to *temperature_c* (C) and return a settle status. Every argument is checked
        before anything is written; ``None`` keeps the device's default."""
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
        tol = rule["tolerance_c"]
        machine = SettleMachine(lambda value: abs(value - target) <= tol, settle_time_s=rule["settle_time_s"],
                                timeout_s=rule["timeout_s"], equilibrate_s=rule["equilibrate_s"],
                                started_at=time.time())
        key = self.temperature.name
        status = SettleStatus(self, machine, signals=[self.temperature], value_of=lambda values: float(values[key]),
                              target=target, initial=self.temperature.get(), unit="C",
                              what=f"settled at {target} C",
                              rule=f"{rule['settle_time_s']:g} s continuously within +-{tol:g} C")
        return self._track(status)

    def stop(self, *, success: bool = False) -> None:
        """Abandon a pending settle status (as done if *success*, else failed with
        :class:`SettleAbandoned`); the set point and the heater stay as they are."""
        self._abandon(success=success, why="settling abandoned by stop()")

    def heater_off(self) -> None:
        """Abandon any pending status and switch closed-loop control off (the cell cools freely)."""
        self._abandon(success=False, why="heater switched off")
        self.enable.put("Off", wait=True)
