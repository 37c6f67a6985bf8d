"""Suspenders: pause a running plan when the sample or the pump is not what the data
assume, resume when it is back. The pump-probe plans install the jet and shutter ones
themselves, the temperature plans the temperature one; after a resume the plan repeats
only the frame that was interrupted (a checkpoint precedes every frame).

bluesky gives the RunEngine's event loop 0.1 s to answer a tripping suspender and otherwise
gives up ("Could not create the suspender event"): the plan then runs on. On a busy host (a
loaded CPU, a reduction thread holding the GIL) the loop can take longer; these suspenders
keep asking until it answers or the condition has cleared, so a loss of the jet is never
ignored.

EXAMPLE::

    from trxrd.acquisition.suspenders import SuspendShutterClosed, jet_lost
    RE.install_suspender(jet_lost(jet))      # or bpp.suspend_wrapper(plan, [...])
"""
from __future__ import annotations

import logging
import threading
import time

from bluesky.suspenders import SuspenderBase, SuspendBoolLow

logger = logging.getLogger(__name__)

RETRY_FOR_S = 60.0      # how long a tripped suspender keeps asking a busy RunEngine


class Persistent:
    """Mixin for a bluesky suspender: when the RunEngine's loop does not answer within bluesky's
    0.1 s, ask again from a thread of its own, with the signal's current value, until the
    suspension is requested or the condition has cleared."""

    def __init__(self, signal, *args, **kwargs):
        super().__init__(signal, *args, **kwargs)
        self.signal = signal
        self._retrying = threading.Lock()

    def __call__(self, value=None, **kwargs):
        try:
            return super().__call__(value, **kwargs)
        except RuntimeError as exc:
            if "suspender event" not in str(exc):
                raise
            logger.warning("%s tripped but the RunEngine did not answer within 0.1 s: asking again",
                           type(self).__name__)
            if self._retrying.acquire(blocking=False):
                threading.Thread(target=self._retry, daemon=True, name=f"{type(self).__name__}-retry").start()

    def _retry(self) -> None:
        try:
            deadline = time.monotonic() + RETRY_FOR_S
            while self.tripped and self.RE is not None and time.monotonic() < deadline:
                try:
                    super().__call__(self.signal.get())
                    return
                except RuntimeError as exc:
                    if "suspender event" not in str(exc):
                        raise
        finally:
            self._retrying.release()


class SuspendJetLost(Persistent, SuspendBoolLow):
    """Pause while the flow sensor reports no jet (``jet.flowing`` 0); resume once it has
    flowed for *sleep* s."""


def jet_lost(jet) -> SuspendJetLost:
    """Pause when the flow sensor loses the jet; resume once it has flowed ``jet.stable_s``."""
    return SuspendJetLost(jet.flowing, sleep=jet.stable_s,
                          tripped_message="liquid jet lost: restart the pump (jet.start()); "
                                          "the scan resumes once the flow is stable")


class SuspendShutterClosed(Persistent, SuspenderBase):
    """Pause when the pump shutter reads closed while the plan last commanded it open
    (interlock, laser fault, someone else's caput); resume when it reads open again."""

    def __init__(self, shutter, *, sleep: float = 0.2, **kwargs):
        kwargs.setdefault("tripped_message", "pump shutter closed unexpectedly: reopen it to resume")
        super().__init__(shutter, sleep=sleep, **kwargs)
        self.shutter = shutter

    def _should_suspend(self, value):
        return self.shutter.expected == "Open" and value != "Open"

    def _should_resume(self, value):
        return value == "Open" or self.shutter.expected != "Open"

    def _get_justification(self):
        if not self.tripped:
            return ""
        return f"{self.shutter.name} reads closed while commanded open: {self._tripped_message}"


class SuspendTemperatureOutOfBand(Persistent, SuspenderBase):
    """Pause when the cell, once settled at its set point, drifts out of the band
    (set point +- ``tolerance_c``); resume after it has been back for ``sleep`` s. Moves
    in progress (heating, ramps) never trip it."""

    def __init__(self, cell, tolerance_c: float, *, sleep: float = 0.0, **kwargs):
        kwargs.setdefault("tripped_message", "temperature left the band around the set point")
        super().__init__(cell.temperature, sleep=sleep, **kwargs)
        self.cell = cell
        self.tolerance_c = tolerance_c

    def _off_by(self, value) -> float:
        return abs(value - self.cell.setpoint.get())

    def _should_suspend(self, value):
        status = self.cell.last_status
        holding = status is not None and status.done and getattr(status, "settled", False)
        return holding and self._off_by(value) > self.tolerance_c

    def _should_resume(self, value):
        return self._off_by(value) <= self.tolerance_c

    def _get_justification(self):
        if not self.tripped:
            return ""
        return (f"{self.cell.name}: {self.cell.temperature.get():.2f} C is more than {self.tolerance_c} C "
                f"from the set point {self.cell.setpoint.get():.2f} C: {self._tripped_message}")
