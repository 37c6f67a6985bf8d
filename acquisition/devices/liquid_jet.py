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

import time

from ophyd import Component as Cpt
from ophyd import Device, EpicsSignal, EpicsSignalRO

from ophyd.status import DeviceStatus

from ...validation import finite
from ._signals import SetpointRefused, VerifiedSignal, ioc_limits, verify_setpoint
from .settle import PendingMove, SettleAbandoned, SettleMachine, SettleStatus, SettleTimeoutError

__all__ = ["LiquidJet", "SettleAbandoned", "SettleTimeoutError"]


class LiquidJet(PendingMove, Device):
    """Liquid jet: peristaltic pump, flow sensor, reservoir and back pressure (see module).

    Parameters
    ----------
    prefix : str
        PV prefix of the beamline (``JET:...`` below it).
    name : str
        Device name (data keys ``<name>_flow``, ``<name>_flowing``, ...).
    tolerance_ml_min : float
        Band around the set point in which the flow counts as stable (mL/min).
    stable_s : float
        Time the flow must stay in band, the sensor reporting a jet (s).
    timeout_s : float
        ``set`` fails if the flow is not stable this long after it (s).

    EXAMPLE::

        jet = LiquidJet("TRX:", name="jet", stable_s=0.5)
        RE(bps.mv(jet, 8.0))          # mL/min, done when stable
    """

    flow = Cpt(EpicsSignalRO, "JET:FlowRate_RBV", kind="hinted")
    flow_setpoint = Cpt(VerifiedSignal, "JET:FlowRate", kind="config")
    run = Cpt(EpicsSignal, "JET:Run", string=True, kind="config")
    flowing = Cpt(EpicsSignalRO, "JET:Flowing_RBV", kind="normal")
    reservoir = Cpt(EpicsSignalRO, "JET:Reservoir_RBV", kind="normal")
    pressure = Cpt(EpicsSignalRO, "JET:Pressure_RBV", kind="normal")

    def __init__(self, prefix="", *, name, tolerance_ml_min: float = 0.2, stable_s: float = 0.5,
                 timeout_s: float = 30.0, **kwargs):
        super().__init__(prefix, name=name, **kwargs)
        self.tolerance_ml_min = finite(tolerance_ml_min, f"{name} tolerance_ml_min", low=0, strict=True,
                                       unit="mL/min")
        self.stable_s = finite(stable_s, f"{name} stable_s", low=0, unit="s")
        self.timeout_s = finite(timeout_s, f"{name} timeout_s", low=0, strict=True, unit="s")

    @property
    def position(self) -> float:
        return self.flow.get()

    def stable(self) -> bool:
        """Jet flowing and the flow within tolerance of the set point right now."""
        return (self.flowing.get() == 1 and self.run.get() == "Run"
                and abs(self.flow.get() - self.flow_setpoint.get()) <= self.tolerance_ml_min)

    def set(self, flow_ml_min: float, **kwargs) -> SettleStatus:
        """Run the pump at *flow_ml_min* (mL/min); the status is done when the flow sensor
        reports a jet and the flow has stayed within ``tolerance_ml_min`` for ``stable_s``.

        A flow outside the pump's limits (the IOC's DRVL/DRVH) raises ``ValueError`` before
        anything is written; one the pump still refuses or clips gives a failed status
        (:class:`SetpointRefused`) and the pump is not started."""
        limits = ioc_limits(self.flow_setpoint)
        target = finite(flow_ml_min, f"{self.name} flow", low=0.0, strict=True,
                        high=limits[1] if limits else None, unit="mL/min")
        self._abandon(success=False, why=f"superseded by a new flow {target} mL/min")
        try:
            self.flow_setpoint.put(target, wait=True)
            verify_setpoint(self.flow_setpoint, target, self.flow_setpoint.get(use_monitor=False), unit="mL/min")
        except SetpointRefused as exc:
            refused = DeviceStatus(self)
            refused.set_exception(exc)
            return refused
        self.run.put("Run", wait=True)
        tol = self.tolerance_ml_min
        machine = SettleMachine(lambda v: v[0] and v[1] and abs(v[2] - target) <= tol, settle_time_s=self.stable_s,
                                timeout_s=self.timeout_s, started_at=time.time())
        names = (self.flowing.name, self.run.name, self.flow.name)
        status = SettleStatus(
            self, machine, signals=[self.flowing, self.run, self.flow],
            value_of=lambda d: (int(d[names[0]]) == 1, d[names[1]] in ("Run", 1), float(d[names[2]])),
            target=target, initial=self.flow.get(), unit="mL/min", progress_value=lambda v: v[2],
            what=f"flowing stably at {target} mL/min",
            rule=f"jet reported and flow within +-{tol:g} mL/min for {self.stable_s:g} s", waiting="spinning up")
        return self._track(status)

    def start(self) -> SettleStatus:
        """Start the pump at the current set point."""
        return self.set(self.flow_setpoint.get())

    def stop(self, *, success: bool | None = None) -> None:
        """Without argument: stop the pump. From the RunEngine (``success=...``, at the end of a
        plan or a pause): only give up waiting for a pending status; the jet keeps flowing."""
        self._abandon(success=bool(success), why="waiting for stable flow abandoned")
        if success is None:
            self.run.put("Stop", wait=True)
