"""Signals shared by the device modules."""
from __future__ import annotations

import math
import numbers
import threading

from ophyd import EpicsMotor, EpicsSignal, EpicsSignalRO, EpicsSignalWithRBV
from ophyd.status import Status
from ophyd.utils.errors import LimitError

from ...validation import finite


class UnitReadback(EpicsSignalRO):
    """Read-only PV whose ``describe()`` always carries units (also against an IOC that
    does not publish EGU)."""

    def __init__(self, *args, unit: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.unit = unit

    def describe(self):
        desc = super().describe()
        desc[self.name]["units"] = self.unit
        return desc


class SetpointRefused(ValueError):
    """The IOC refused or clipped a set point: after the write it reads something else."""


def ioc_limits(signal) -> tuple[float, float] | None:
    """The IOC's control limits of *signal* (DRVL/DRVH of an ``ao`` record), None if it
    publishes none (both 0)."""
    try:
        low, high = signal.limits
    except (KeyError, TypeError, AttributeError):
        return None
    if low is None or high is None or not low < high:
        return None
    return float(low), float(high)


def verify_setpoint(signal, requested, got, *, unit: str = "", rtol: float = 1e-6, atol: float = 1e-12) -> None:
    """Raise :class:`SetpointRefused` if *got* (what the IOC reads back after the write of
    *requested*) is not *requested*: the IOC refused or clipped it."""
    try:
        same = math.isclose(float(got), float(requested), rel_tol=rtol, abs_tol=atol)
    except (TypeError, ValueError):
        same = got == requested
    if not same:
        u = f" {unit}" if unit else ""
        limits = ioc_limits(signal)
        where = f"; the IOC's limits are {limits[0]:g} .. {limits[1]:g}{u}" if limits else ""
        raise SetpointRefused(f"{signal.name}: the IOC refused or clipped {requested!r}{u}: it reads "
                              f"{got!r}{u}{where}")


class _VerifiedSet:
    """``set()`` as a write the IOC must accept: the value is checked against the IOC's control
    limits (``limits=True``, DRVL/DRVH) before anything is written (``LimitError`` at once);
    after the write, the value is read back from the IOC and a refused or clipped one fails the
    status with :class:`SetpointRefused` (a plain ``EpicsSignal`` would wait for ever for a
    readback that never comes, or report success)."""

    unit = ""

    def __init__(self, *args, limits: bool = True, **kwargs):
        super().__init__(*args, limits=limits, **kwargs)

    def check_value(self, value):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ValueError(f"{self.name} must be a finite number, got {value!r}")
        super().check_value(value)

    def _read_back(self):
        return self.get(use_monitor=False)

    def set(self, value, *, timeout=None, settle_time=None, **kwargs):
        self.check_value(value)
        status = Status(self, timeout=timeout, settle_time=settle_time)
        write_timeout = timeout or self.write_timeout or 10.0

        def write():
            try:
                self.put(value, wait=True, timeout=write_timeout)
                verify_setpoint(self, value, self._read_back(), unit=self.unit)
            except Exception as exc:      # the status carries it to whoever waits
                status.set_exception(exc)
            else:
                status.set_finished()

        threading.Thread(target=write, daemon=True, name=f"{self.name} set").start()
        return status


class VerifiedSignal(_VerifiedSet, EpicsSignal):
    """A numeric set point whose ``set()`` fails when the IOC refuses or clips it (see
    ``_VerifiedSet``); the IOC's control limits are checked first.

    EXAMPLE::

        flow = VerifiedSignal("TRX:JET:FlowRate", name="flow"); flow.set(1e6)   # LimitError
    """


class VerifiedSignalWithRBV(_VerifiedSet, EpicsSignalWithRBV):
    """An areaDetector ``X`` / ``X_RBV`` pair whose ``set()`` fails when the IOC refuses or
    clips the value (the ``_RBV`` differs after the write); control limits checked first.

    EXAMPLE::

        cam_time = VerifiedSignalWithRBV("TRX:PIL:cam1:AcquireTime", name="t"); cam_time.set(0.1).wait(5)
    """


class CheckedSignal(_VerifiedSet, EpicsSignal):
    """A set point that refuses non-finite values and values outside [low, high] (the device's
    own bounds, narrowed to the IOC's control limits; ``unit`` for the messages and
    ``describe()``) in ``put()`` and ``set()`` before anything is sent to the IOC, and whose
    ``set()`` fails when the IOC still refuses or clips the value (see ``_VerifiedSet``).

    EXAMPLE::

        rate = CheckedSignal("TRX:TC:RampRate", name="ramp", low=0.0, high=600.0, unit="C/min")
    """

    def __init__(self, *args, low: float | None = None, high: float | None = None,
                 unit: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.low, self.high, self.unit = low, high, unit

    def allowed(self) -> tuple[float | None, float | None]:
        """(low, high): the device's bounds narrowed to the IOC's control limits (None: open)."""
        low, high = self.low, self.high
        ioc = ioc_limits(self) if self.connected else None
        if ioc is not None:
            low = ioc[0] if low is None else max(low, ioc[0])
            high = ioc[1] if high is None else min(high, ioc[1])
        return low, high

    def check_value(self, value):
        v = finite(value, self.name, unit=self.unit)
        low, high = self.allowed()
        if (low is not None and v < low) or (high is not None and v > high):
            raise LimitError(f"{self.name} = {v} {self.unit} is outside [{low}, {high}] {self.unit}")
        super().check_value(value)

    def describe(self):
        desc = super().describe()
        if self.unit:
            desc[self.name]["units"] = self.unit
        return desc


class CheckedMotor(EpicsMotor):
    """An ``EpicsMotor`` that refuses what is not a finite number (``True``, ``"1 mm"``,
    ``[1.0]``, NaN) with a ``ValueError`` naming the axis, before its soft limits (the motor
    record's HLM/LLM) are checked; ophyd's own check would move to ``True`` = 1.0.

    EXAMPLE::

        x = CheckedMotor("TRX:SMP:x", name="x"); x.set(True)      # ValueError
    """

    def check_value(self, pos):
        finite(pos, f"{self.name} position")
        super().check_value(pos)
