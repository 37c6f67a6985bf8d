"""Suspenders: pause a running plan when the sample or the pump is not what the data
assume, resume when it is back. The pump-probe plans install the jet and shutter ones
themselves, the temperature plans the temperature one; after a resume the plan repeats
only the frame that was interrupted (a checkpoint precedes every frame).

EXAMPLE::

    from trxrd.acquisition.suspenders import jet_lost, shutter_closed
    RE.install_suspender(jet_lost(jet))      # or bpp.suspend_wrapper(plan, [...])
"""
from __future__ import annotations

from bluesky.suspenders import SuspenderBase, SuspendBoolLow


def jet_lost(jet) -> SuspendBoolLow:
    """Pause when the flow sensor loses the jet; resume once it has flowed ``jet.stable_s``."""
    return SuspendBoolLow(jet.flowing, sleep=jet.stable_s,
                          tripped_message="liquid jet lost: restart the pump (jet.start()); "
                                          "the scan resumes once the flow is stable")


class SuspendShutterClosed(SuspenderBase):
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


class SuspendTemperatureOutOfBand(SuspenderBase):
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
