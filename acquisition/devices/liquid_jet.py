"""Liquid jet: peristaltic pump (``JET:Run``, ``JET:FlowRate`` mL/min), flow sensor
(``FlowRate_RBV``, ``Flowing_RBV``), reservoir (mL) and back pressure (bar).

``set(flow)`` / ``start()`` return a status that completes when the flow sensor reports a
jet and the flow has stayed within ``tolerance_ml_min`` of the set point for
``stable_s``. The RunEngine calls ``stop(success=...)`` on everything it moved when a plan
ends or pauses: that only abandons a pending status and the jet keeps flowing. Call
``jet.stop()`` yourself (no argument) to stop the pump.

EXAMPLE::

    from trxrd.acquisition.devices.liquid_jet import LiquidJet
    jet = LiquidJet("TRX:", name="jet")
    jet.start().wait(10)           # default set point
    RE(bps.mv(jet, 12.0))          # mL/min, done when stable
    jet.stop()
"""
from __future__ import annotations

import threading
import time

from ophyd import Component as Cpt
from ophyd import Device, EpicsSignal, EpicsSignalRO
from ophyd.status import DeviceStatus

from ..plans.metadata import finite


class LiquidJet(Device):
    flow = Cpt(EpicsSignalRO, "JET:FlowRate_RBV", kind="hinted")
    flow_setpoint = Cpt(EpicsSignal, "JET:FlowRate", kind="config")
    run = Cpt(EpicsSignal, "JET:Run", string=True, kind="config")
    flowing = Cpt(EpicsSignalRO, "JET:Flowing_RBV", kind="normal")
    reservoir = Cpt(EpicsSignalRO, "JET:Reservoir_RBV", kind="normal")
    pressure = Cpt(EpicsSignalRO, "JET:Pressure_RBV", kind="normal")

    def __init__(self, prefix="", *, name, tolerance_ml_min: float = 0.2, stable_s: float = 0.5,
                 timeout_s: float = 30.0, **kwargs):
        super().__init__(prefix, name=name, **kwargs)
        self.tolerance_ml_min = tolerance_ml_min
        self.stable_s = stable_s
        self.timeout_s = timeout_s
        self._pending: DeviceStatus | None = None

    @property
    def position(self) -> float:
        return self.flow.get()

    def stable(self) -> bool:
        """Jet flowing and the flow within tolerance of the set point right now."""
        return (self.flowing.get() == 1 and self.run.get() == "Run"
                and abs(self.flow.get() - self.flow_setpoint.get()) <= self.tolerance_ml_min)

    def set(self, flow_ml_min: float, **kwargs) -> DeviceStatus:
        """Run the pump at *flow_ml_min*; done when the flow is stable."""
        lo, hi = self.flow_setpoint.limits
        flow_ml_min = finite(flow_ml_min, f"{self.name} flow", low=0.0, strict=True,
                             high=hi if hi > lo else None, unit="mL/min")
        self._abandon()
        self.flow_setpoint.put(flow_ml_min, wait=True)
        self.run.put("Run", wait=True)
        status = self._pending = DeviceStatus(self, timeout=self.timeout_s)
        threading.Thread(target=self._wait_stable, args=(status,), daemon=True,
                         name=f"{self.name}-stable").start()
        return status

    def start(self) -> DeviceStatus:
        """Start the pump at the current set point."""
        return self.set(self.flow_setpoint.get())

    def stop(self, *, success: bool | None = None) -> None:
        """Without argument: stop the pump. From the RunEngine (``success=...``): only
        abandon a pending status; the jet keeps flowing."""
        self._abandon()
        if success is None:
            self.run.put("Stop", wait=True)

    def _abandon(self):
        status, self._pending = self._pending, None
        if status is not None and not status.done:
            status.set_exception(RuntimeError(f"{self.name}: waiting for stable flow abandoned"))

    def _wait_stable(self, status: DeviceStatus) -> None:
        since = None
        while not status.done:
            now = time.monotonic()
            if self.stable():
                since = since or now
                if now - since >= self.stable_s:
                    status.set_finished()
                    return
            else:
                since = None
            time.sleep(0.02)
