"""A wall clock for plans that keep time (anneal profiles, timed frame series), as a device, so
the plans themselves never call ``time.time()``: they wait with ``bps.mv(clock, t)`` (done when
``t`` seconds have passed since the clock was staged, at once if they have) and read the time
with ``bps.rd(clock.elapsed)``. bluesky's simulators (``summarize_plan``, ``check_limits``) can
then walk such plans: there, waits are skipped and the clock reads 0, so a plan that follows
its own schedule still ends.

EXAMPLE::

    from bluesky import plan_stubs as bps
    from trxrd.acquisition.devices.clock import PlanClock

    def every_second(detectors, n):
        clock = PlanClock(name="clock")
        yield from bps.stage(clock)                    # t = 0 s
        for k in range(n):
            yield from bps.mv(clock, float(k))         # wait for t = k s
            yield from bps.trigger_and_read(detectors)
        yield from bps.unstage(clock)
"""
from __future__ import annotations

import math
import threading
import time

from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.status import Status

from ...validation import finite


class _Elapsed(Signal):
    """Seconds since the clock was staged (monotonic), read fresh every time."""

    def get(self, **kwargs):
        zero = self.parent._zero
        return math.nan if zero is None else time.monotonic() - zero

    def read(self):
        return {self.name: {"value": self.get(), "timestamp": time.time()}}


class PlanClock(Device):
    """Seconds since staging: ``set(t)`` waits for *t*, ``elapsed`` reads the time, and
    ``zero_epoch`` is the epoch time of t = 0 (see module).

    Parameters
    ----------
    name : str
        Device name.

    EXAMPLE::

        clock = PlanClock(name="clock"); clock.stage(); clock.set(0.5).wait(); clock.elapsed.get()
    """

    elapsed = Cpt(_Elapsed, kind="hinted")
    zero_epoch = Cpt(Signal, value=math.nan, kind="config")

    def __init__(self, *, name: str = "clock", **kwargs):
        super().__init__("", name=name, **kwargs)
        self._zero: float | None = None
        self._timers: list[threading.Timer] = []

    def stage(self):
        self._zero = time.monotonic()
        self.zero_epoch.put(time.time())
        return super().stage()

    def unstage(self):
        self.stop()
        return super().unstage()

    def set(self, t_s: float) -> Status:
        """Done when *t_s* seconds have passed since staging (at once if they have)."""
        if self._zero is None:
            raise RuntimeError(f"{self.name}: stage the clock before waiting on it")
        t = finite(t_s, f"{self.name} time", unit="s")
        status = Status(obj=self)
        delay = self._zero + t - time.monotonic()
        if delay <= 0:
            status.set_finished()
            return status
        timer = threading.Timer(delay, status.set_finished)
        timer.daemon = True
        self._timers = [t for t in self._timers if t.is_alive()] + [timer]
        timer.start()
        return status

    def stop(self, *, success: bool = False) -> None:
        """Forget pending waits (their statuses never finish: the plan is stopping)."""
        timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()
