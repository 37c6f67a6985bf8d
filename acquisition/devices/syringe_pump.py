"""Syringe pump that injects the precursor into the hot flask. PVs ``{P}SYR:Rate``
(mL/min), ``Volume`` (mL to deliver), ``Infuse`` (write 1), ``Stop`` (write 1),
``Infusing_RBV`` and ``Delivered_RBV`` (mL since the pump started up).

``infuse(volume_ml, rate_ml_min)`` (also ``set(volume_ml, rate_ml_min=...)``, so
``bps.abs_set(syringe, 1.0, rate_ml_min=60)`` works in a plan) checks both numbers before
anything is written and returns an :class:`InfusionStatus` that is done when the pump has
delivered the volume. Note that ``set`` is not idempotent: every call delivers the volume
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

import threading
import time

from ophyd import Component as Cpt
from ophyd import Device, EpicsSignal, EpicsSignalRO
from ophyd.status import DeviceStatus

from ..plans.metadata import finite
from ._signals import CheckedSignal, UnitReadback

__all__ = ["SyringePump", "InfusionStatus", "InfusionStopped", "InfusionTimeoutError"]


class InfusionStopped(RuntimeError):
    """The pump stopped before delivering the requested volume."""


class InfusionTimeoutError(TimeoutError):
    """The infusion did not finish in time (the pump is then told to stop)."""


class InfusionStatus(DeviceStatus):
    """Done when ``volume_ml`` more than ``start_ml`` has been delivered and the pump
    stopped. Times are epoch seconds: ``commanded_at`` (client, just before the Infuse
    write), ``started_at`` (IOC time stamp of Infusing_RBV -> 1), ``finished_at``;
    ``delivered_ml`` is the volume delivered by this infusion so far."""

    def __init__(self, device, *, volume_ml, rate_ml_min, start_ml, timeout_s):
        super().__init__(device)
        self.volume_ml, self.rate_ml_min, self.timeout_s = volume_ml, rate_ml_min, timeout_s
        self.start_ml = start_ml
        self.target_ml = start_ml + volume_ml
        self.commanded_at: float | None = None
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.delivered_ml = 0.0
        self.subscriptions: list[tuple] = []
        self._lock = threading.Lock()
        self._closing = False                     # set once, by whoever completes the status
        self._progress = []
        self._timer = threading.Timer(timeout_s, self._on_timeout)
        self._timer.daemon = True
        self._timer.start()
        self.add_callback(self._cleanup)

    def on_delivered(self, value=None, **kwargs):
        if value is None:
            return
        with self._lock:
            if self.done or self.commanded_at is None:
                return
            self.delivered_ml = max(0.0, float(value) - self.start_ml)
        for func in list(self._progress):
            func(name=self.device.name, current=self.delivered_ml, initial=0.0, target=self.volume_ml,
                 unit="mL", precision=3, time_elapsed=time.time() - self.commanded_at)

    def on_infusing(self, value=None, timestamp=None, **kwargs):
        if value is None:
            return
        with self._lock:
            if self.done or self.commanded_at is None:
                return
            if value and self.started_at is None:
                self.started_at = timestamp if timestamp is not None else time.time()
                return
            if value or self.started_at is None or self._closing:
                return
            self._closing = True
            self.finished_at = timestamp if timestamp is not None else time.time()
            complete = self.delivered_ml >= self.volume_ml - 1e-6 * max(1.0, self.volume_ml)
        if complete:
            self.set_finished()
        else:
            self.set_exception(InfusionStopped(
                f"{self.device.name}: pump stopped after {self.delivered_ml:.4f} of {self.volume_ml} mL"))

    def _on_timeout(self):
        with self._lock:
            if self._closing:
                return
            self._closing = True
            what = ("never reported infusing (refused by the pump?)" if self.started_at is None
                    else f"delivered only {self.delivered_ml:.4f} of {self.volume_ml} mL; pump stopped")
        if self.started_at is not None:
            self.device.stop_cmd.put(1)       # something is wrong: do not leave it pumping
        self.set_exception(InfusionTimeoutError(
            f"{self.device.name}: infusion of {self.volume_ml} mL at {self.rate_ml_min} mL/min not "
            f"done after {self.timeout_s:.1f} s: {what}"))

    def _handle_failure(self):
        pass    # DeviceStatus would call device.stop(); the timeout handles the pump itself

    def _cleanup(self, status):
        self._timer.cancel()
        self.device._release(self)

    def watch(self, func):
        """Subscribe *func* to progress in mL (bluesky ``ProgressBar`` keywords)."""
        self._progress.append(func)
        func(name=self.device.name, current=self.delivered_ml, initial=0.0, target=self.volume_ml,
             unit="mL", precision=3)


class SyringePump(Device):
    """Syringe pump (see module). ``max_rate_ml_min`` and ``syringe_ml`` bound the requests;
    an infusion fails if not done ``timeout_margin_s`` after its nominal duration
    (volume / rate) plus 50 %."""

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
        self._pending: InfusionStatus | None = None
        self.last_status: InfusionStatus | None = None

    def check_infusion(self, volume_ml, rate_ml_min=None) -> tuple[float, float]:
        """(volume mL, rate mL/min) if both are allowed, else ``ValueError``; ``rate_ml_min``
        None means the pump's current rate."""
        volume = finite(volume_ml, f"{self.name} volume_ml", low=0.0, strict=True,
                        high=self.volume.high, unit="mL")
        if rate_ml_min is None:
            rate_ml_min = self.rate.get()
        rate = finite(rate_ml_min, f"{self.name} rate_ml_min", low=0.0, strict=True,
                      high=self.rate.high, unit="mL/min")
        return volume, rate

    def infuse(self, volume_ml, rate_ml_min=None) -> InfusionStatus:
        """Deliver *volume_ml* (mL) at *rate_ml_min* (mL/min; None: the current rate)."""
        volume, rate = self.check_infusion(volume_ml, rate_ml_min)
        if self.infusing.get():
            raise RuntimeError(f"{self.name}: already infusing; wait for it or call stop()")
        self.prepare(volume, rate)
        start = self.delivered.get()
        status = InfusionStatus(self, volume_ml=volume, rate_ml_min=rate, start_ml=start,
                                timeout_s=1.5 * volume / rate * 60.0 + self.timeout_margin_s)
        self._pending = self.last_status = status
        status.subscriptions = [(self.delivered, self.delivered.subscribe(status.on_delivered, run=False)),
                                (self.infusing, self.infusing.subscribe(status.on_infusing, run=False))]
        status.commanded_at = time.time()
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

    def _release(self, status: InfusionStatus) -> None:
        if self._pending is status:
            self._pending = None
        subs, status.subscriptions = status.subscriptions, []
        for sig, sub in subs:
            sig.unsubscribe(sub)

    def stop(self, *, success: bool | None = None) -> None:
        """Without argument: stop the pump now. From the RunEngine (``success=...``):
        nothing; a running injection goes on (see module)."""
        if success is None:
            self.stop_cmd.put(1, wait=True)
