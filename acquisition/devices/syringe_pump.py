"""Syringe pump that injects the precursor into the hot flask. PVs ``{P}SYR:Rate``
(mL/min), ``Volume`` (mL to deliver), ``Infuse`` (write 1), ``Stop`` (write 1),
``Infusing_RBV`` and ``Delivered_RBV`` (mL since the pump started up).

``infuse(volume_ml, rate_ml_min)`` (also ``set(volume_ml, rate_ml_min=...)``, so
``bps.abs_set(syringe, 1.0, rate_ml_min=60)`` works in a plan) checks both numbers before
anything is written and returns an :class:`InfusionStatus` (the settle status of
``trxrd.acquisition.devices.settle``) that is done when the pump has delivered the volume and
stopped. Note that ``set`` is not idempotent: every call delivers the volume
again. The status records when the pump reported the start (``started_at``, the IOC's time
stamp of ``Infusing_RBV`` going to 1: the first drop) and the end.

Stopping: ``stop()`` without argument stops the pump (a pending status then fails with how
much was delivered). The RunEngine calls ``stop(success=True)`` on everything it moved
when a plan ends, pauses or is suspended; that does NOT stop the pump: an injection, once
started, is part of the chemistry and runs to its volume (its status keeps tracking it).
Call ``syringe.stop()`` yourself to cut an injection short.

EXAMPLE::

    from trxrd.acquisition.devices.syringe_pump import SyringePump
    syringe = SyringePump("TRX:", name="syringe")
    syringe.wait_for_connection(timeout=10)
    st = syringe.infuse(1.0, rate_ml_min=60.0)     # 1 mL at 60 mL/min: done in ~1 s
    st.wait(10); st.started_at, st.delivered_ml
    RE(bps.abs_set(syringe, 0.5, rate_ml_min=30.0, wait=True))
"""
from __future__ import annotations

import time

from ophyd import Component as Cpt
from ophyd import Device, EpicsSignal, EpicsSignalRO

from ...validation import finite
from ._signals import CheckedSignal, UnitReadback
from .settle import SettleFailed, SettleMachine, SettleStatus, SettleTimeoutError

__all__ = ["SyringePump", "InfusionStatus", "InfusionStopped", "InfusionTimeoutError"]


class InfusionStopped(SettleFailed):
    """The pump stopped before delivering the requested volume."""


class InfusionTimeoutError(SettleTimeoutError):
    """The infusion did not finish in time (the pump is then told to stop)."""


class InfusionStatus(SettleStatus):
    """Done when ``volume_ml`` more than ``start_ml`` has been delivered and the pump stopped.
    Times are epoch seconds: ``commanded_at`` (client, just before the Infuse write),
    ``started_at`` (the pump's time stamp of Infusing_RBV -> 1: the first drop),
    ``finished_at`` (the pump's time stamp of the end); ``delivered_ml`` is the volume this
    infusion delivered so far."""

    timeout_error = InfusionTimeoutError
    failure_error = InfusionStopped

    def __init__(self, device, machine, *, volume_ml: float, rate_ml_min: float, start_ml: float, **kwargs):
        self.volume_ml, self.rate_ml_min, self.start_ml = volume_ml, rate_ml_min, start_ml
        self.commanded_at: float | None = None
        super().__init__(device, machine, **kwargs)

    @property
    def started_at(self) -> float | None:
        """The pump's time stamp of the first reading that shows it infusing."""
        return next((t for t, (infusing, _) in self.history if infusing and t >= self.machine.started_at), None)

    @property
    def delivered_ml(self) -> float:
        last = self.machine.last
        return 0.0 if last is None else max(0.0, last[1] - self.start_ml)


class SyringePump(Device):
    """Syringe pump (see module).

    Parameters
    ----------
    prefix : str
        PV prefix of the beamline (``SYR:...`` below it).
    name : str
        Device name (data keys ``<name>_delivered``, ``<name>_infusing``).
    max_rate_ml_min, syringe_ml : float
        Bounds of the requests (mL/min, mL).
    timeout_margin_s : float
        An infusion fails if not done this long after its nominal duration (volume / rate) plus 50 %.

    EXAMPLE::

        syringe = SyringePump("TRX:", name="syringe")
        syringe.infuse(1.0, rate_ml_min=60.0).wait(10)
    """

    delivered = Cpt(UnitReadback, "SYR:Delivered_RBV", unit="mL", kind="hinted", auto_monitor=True)
    infusing = Cpt(EpicsSignalRO, "SYR:Infusing_RBV", kind="normal", auto_monitor=True)
    rate = Cpt(CheckedSignal, "SYR:Rate", unit="mL/min", kind="config", auto_monitor=True, put_complete=True)
    volume = Cpt(CheckedSignal, "SYR:Volume", unit="mL", kind="config", auto_monitor=True, put_complete=True)
    infuse_cmd = Cpt(EpicsSignal, "SYR:Infuse", kind="omitted")
    stop_cmd = Cpt(EpicsSignal, "SYR:Stop", kind="omitted")

    def __init__(self, prefix="", *, name, max_rate_ml_min: float = 100.0, syringe_ml: float = 10.0,
                 timeout_margin_s: float = 10.0, **kwargs):
        super().__init__(prefix, name=name, **kwargs)
        self.rate.low, self.rate.high = 0.0, finite(max_rate_ml_min, f"{name} max_rate_ml_min", low=0.0,
                                                     strict=True, unit="mL/min")
        self.volume.low, self.volume.high = 0.0, finite(syringe_ml, f"{name} syringe_ml", low=0.0,
                                                         strict=True, unit="mL")
        self.timeout_margin_s = finite(timeout_margin_s, f"{name} timeout_margin_s", low=0.0, unit="s")
        self.last_status: InfusionStatus | None = None

    def check_infusion(self, volume_ml, rate_ml_min=None) -> tuple[float, float]:
        """(volume mL, rate mL/min) if both are allowed, else ``ValueError``; ``rate_ml_min``
        None means the pump's current rate."""
        volume = finite(volume_ml, f"{self.name} volume_ml", low=0.0, strict=True,
                        high=self.volume.allowed()[1], unit="mL")
        if rate_ml_min is None:
            rate_ml_min = self.rate.get()
        rate = finite(rate_ml_min, f"{self.name} rate_ml_min", low=0.0, strict=True,
                      high=self.rate.allowed()[1], unit="mL/min")
        return volume, rate

    def infuse(self, volume_ml, rate_ml_min=None) -> InfusionStatus:
        """Deliver *volume_ml* (mL) at *rate_ml_min* (mL/min; None: the current rate)."""
        volume, rate = self.check_infusion(volume_ml, rate_ml_min)
        if self.infusing.get():
            raise RuntimeError(f"{self.name}: already infusing; wait for it or call stop()")
        self.prepare(volume, rate)
        start = self.delivered.get()
        target = start + volume
        eps = 1e-6 * max(1.0, volume)
        started = []                                  # set once the pump reports infusing

        def failed(value):
            infusing, delivered = value
            if infusing:
                started.append(True)
            elif started and delivered < target - eps:
                return f"pump stopped after {delivered - start:.4f} of {volume} mL"
            return None

        def stop_pump():                              # something is wrong: do not leave it pumping
            if started:
                self.stop_cmd.put(1)

        commanded_at = time.time()
        machine = SettleMachine(lambda v: not v[0] and v[1] >= target - eps, settle_time_s=0.0,
                                timeout_s=1.5 * volume / rate * 60.0 + self.timeout_margin_s,
                                started_at=commanded_at, failed=failed)
        names = (self.infusing.name, self.delivered.name)
        status = InfusionStatus(
            self, machine, volume_ml=volume, rate_ml_min=rate, start_ml=start,
            signals=[self.infusing, self.delivered],
            value_of=lambda d: (bool(d[names[0]]), float(d[names[1]])),
            target=volume, initial=0.0, unit="mL", progress_value=lambda v: max(0.0, v[1] - start),
            on_timeout=stop_pump, what=f"done infusing {volume} mL at {rate} mL/min", waiting="infusing")
        status.commanded_at = commanded_at
        self.last_status = status
        self.infuse_cmd.put(1)
        return status

    def prepare(self, volume_ml, rate_ml_min) -> None:
        """Write volume (mL) and rate (mL/min) without starting, so that a later ``infuse``
        with the same numbers only has to write Infuse (~1 ms to the first drop)."""
        volume, rate = self.check_infusion(volume_ml, rate_ml_min)
        for sig, value in ((self.rate, rate), (self.volume, volume)):
            if sig.get() == value:           # monitored: costs nothing
                continue
            sig.put(value, wait=True)
            got = sig.get(use_monitor=False)
            if abs(got - value) > 1e-6 * max(1.0, value):
                raise RuntimeError(f"{self.name}: the pump refused {sig.name} = {value} (reads {got})")

    def set(self, volume_ml, *, rate_ml_min=None) -> InfusionStatus:
        """Same as :meth:`infuse` (delivers the volume again on every call)."""
        return self.infuse(volume_ml, rate_ml_min)

    def stop(self, *, success: bool | None = None) -> None:
        """Without argument: stop the pump now. From the RunEngine (``success=...``):
        nothing; a running injection goes on (see module)."""
        if success is None:
            self.stop_cmd.put(1, wait=True)
