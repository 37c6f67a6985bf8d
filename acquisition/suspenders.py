"""Suspenders: pause a running plan when the sample or the pump is not what the data
assume, resume when it is back. The pump-probe plans install the jet and shutter ones
themselves, the temperature plans the temperature one; after a resume the plan repeats
only the frame that was interrupted (a checkpoint precedes every frame).

bluesky gives the RunEngine's event loop 0.1 s to answer a tripping suspender and otherwise
gives up ("Could not create the suspender event"): the plan then runs on. On a busy host (a
loaded CPU, a reduction thread holding the GIL) the loop can take longer; these suspenders
keep asking until it answers or the condition has cleared, so a loss of the jet is never
ignored.

A lost Channel Access connection (an IOC killed or cut off) is not something to wait out:
a restarted IOC has forgotten the staged detector's settings and its open file.
``SuspendConnectionLost`` fails the running plan at once with ``lost connection to <PV>`` as the
run's reason; the plan's cleanup (shutter, unstage) still runs, and the next plan works once
the IOC is back. ``beam_lost`` pauses while the I0 monitor reads no beam.

EXAMPLE::

    from trxrd.acquisition.suspenders import SuspendConnectionLost, SuspendShutterClosed, jet_lost
    RE.install_suspender(jet_lost(jet))      # or bpp.suspend_wrapper(plan, [...])
    RE.install_suspender(SuspendConnectionLost([pilatus, shutter, jet, i0, delay]))
"""
from __future__ import annotations

import logging
import threading
import time

from bluesky import plan_stubs as bps
from bluesky.suspenders import SuspenderBase, SuspendBoolLow, SuspendFloor
from ophyd.signal import EpicsSignalBase

from .devices.monitors import BEAM_FLOOR_A

logger = logging.getLogger(__name__)

RETRY_FOR_S = 60.0      # how long a tripped suspender keeps asking a busy RunEngine
REMIND_EVERY_S = 30.0   # a suspension that lasts says so again, with what to do, this often


class Persistent:
    """Mixin for a bluesky suspender: when the RunEngine's loop does not answer within bluesky's
    0.1 s, ask again from a thread of its own, with the signal's current value, until the
    suspension is requested or the condition has cleared."""

    remind_every_s = REMIND_EVERY_S

    def __init__(self, signal, *args, **kwargs):
        super().__init__(signal, *args, **kwargs)
        self.signal = signal
        self._retrying = threading.Lock()
        self._reminding = threading.Lock()
        self.reminders = 0

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
        finally:
            if self._waiting() and self._reminding.acquire(blocking=False):
                threading.Thread(target=self._remind, daemon=True, name=f"{type(self).__name__}-remind").start()

    def _waiting(self) -> bool:
        """Tripped while a plan runs (an idle RunEngine has nothing to remind about)."""
        RE = self.RE
        return self.tripped and RE is not None and RE.state != "idle"

    def _remind(self) -> None:
        """While a plan waits on this suspender: every ``remind_every_s`` log how long, why and what
        to do (a suspension is never silent; Ctrl-C twice, then ``RE.abort()``, gives up)."""
        try:
            started = time.monotonic()
            wake = threading.Event()
            while not wake.wait(self.remind_every_s) and self._waiting():
                self.reminders += 1
                logger.warning("suspended for %.0f s: %s (or Ctrl-C twice, then RE.abort(), to give up)",
                               time.monotonic() - started, self._get_justification() or self._tripped_message)
        finally:
            self._reminding.release()

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
        kwargs.setdefault("tripped_message", "pump shutter closed unexpectedly (interlock, laser fault or another "
                                             "client): clear the cause and reopen it (shutter.open()); the scan "
                                             "resumes with the frame it was taking")
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


class SuspendBeamLost(Persistent, SuspendFloor):
    """Pause while the I0 monitor reads below *floor_a* (A): no beam, no frame worth taking;
    resume once it has been back above *resume_a* for *sleep* s."""


def beam_lost(i0, floor_a: float | None = None, *, resume_a: float | None = None,
              sleep: float = 1.0) -> SuspendBeamLost:
    """Pause when the I0 current (A) drops below *floor_a* (default the monitor's
    ``beam_floor_a``, else 1e-12 A: beam dump, front-end shutter); resume once it has stayed
    above *resume_a* (default *floor_a*) for *sleep* s."""
    if floor_a is None:
        floor_a = getattr(i0, "beam_floor_a", BEAM_FLOOR_A)
    return SuspendBeamLost(i0, floor_a, resume_thresh=resume_a, sleep=sleep,
                           tripped_message="X-ray beam lost (I0 below the floor): the scan resumes once "
                                           "the beam is back")


class RunFault(RuntimeError):
    """A device fault whose message is the run's reason: ``connection_lost_wrapper`` re-raises
    it in place of the ``FailedStatus`` that carries it (whose text names only the status)."""


class ConnectionLostError(RuntimeError):
    """A PV of a device in use disconnected while a plan ran (IOC killed, network cut)."""


def _epics_signals(devices) -> list:
    """The EPICS signals of *devices* (devices or signals), each once."""
    out = {}
    for dev in devices:
        if isinstance(dev, EpicsSignalBase):
            out[id(dev)] = dev
        elif hasattr(dev, "walk_signals"):
            for item in dev.walk_signals():
                if isinstance(item.item, EpicsSignalBase):
                    out[id(item.item)] = item.item
    return list(out.values())


def _channels_connected(signal) -> bool:
    """Whether the Channel Access channels of *signal* are connected (the control layer's own
    view: ophyd's ``connected`` also waits for metadata)."""
    pvs = [getattr(signal, attr, None) for attr in ("_read_pv", "_write_pv")]
    pvs = [pv for pv in pvs if pv is not None and hasattr(pv, "connected")]
    return all(pv.connected for pv in pvs) if pvs else bool(signal.connected)


def _pv_name(signal) -> str:
    """The PV behind *signal* that is disconnected (the read PV when both are)."""
    states = getattr(signal, "_connection_states", {}) or {}
    down = [pv for pv, connected in states.items() if not connected]
    return down[0] if down else getattr(signal, "pvname", signal.name)


class SuspendConnectionLost:
    """Fail the running plan when a connected PV of *devices* disconnects (see module): the run
    closes with ``lost connection to <PV>`` within the time Channel Access takes to notice
    (at once for a killed IOC), instead of waiting forever on a status the IOC will never
    finish. Install it like a suspender (``RE.install_suspender`` or ``bpp.suspend_wrapper``).

    EXAMPLE::

        RE.install_suspender(SuspendConnectionLost(beamline.devices().values()))
    """

    def __init__(self, devices):
        self.signals = _epics_signals(devices)
        self.RE = None
        self.reason: str | None = None
        self._down = None
        self._lock = threading.Lock()

    def __repr__(self):
        return f"SuspendConnectionLost({len(self.signals)} PVs)"

    @property
    def tripped(self) -> bool:
        """Whether a PV was lost and is not back yet."""
        with self._lock:
            self._forget_if_back()
            return self.reason is not None

    def _forget_if_back(self):
        if self._down is not None and _channels_connected(self._down):
            self.reason = self._down = None

    def install(self, RE, *, event_type=None):
        with self._lock:
            self.RE = RE
            self.reason = self._down = None
        for sig in self.signals:
            sig.subscribe(self._meta, event_type=sig.SUB_META, run=False)

    def remove(self):
        for sig in self.signals:
            sig.clear_sub(self._meta)
        with self._lock:
            self.RE = None
            self.reason = self._down = None

    def get_futures(self):
        """Nothing to wait for before a plan starts: a PV still down fails the plan by itself."""
        return [], ""

    def _meta(self, *, obj=None, connected=True, **kwargs):
        with self._lock:
            self._forget_if_back()
            if connected:
                return
            if self.RE is None or self.reason is not None:
                return
            self.reason = reason = f"lost connection to {_pv_name(obj)}"
            self._down, RE = obj, self.RE
        logger.error("%s: failing the running plan", reason)
        if RE.state in ("running", "paused"):
            RE.request_suspend(_released, pre_plan=lambda: _fail(reason), justification=reason)


async def _released():
    """The future of a suspension that never waits (its pre-plan fails the plan)."""


def _fail(reason: str):
    raise ConnectionLostError(reason)
    yield  # a plan (generator) that fails when it starts


def disconnected(signals) -> list[str]:
    """The PVs of *signals* (EPICS signals) that were connected and are not now."""
    return [_pv_name(sig) for sig in signals
            if any(getattr(sig, "_received_first_metadata", {}).values()) and not sig.connected]


def connection_lost_wrapper(plan, devices, *, grace_s: float = 1.0):
    """*plan*, with a failure caused by a lost connection (a status failing because its IOC
    died, a timeout, a get that failed) re-raised as ``ConnectionLostError("lost connection to
    <PV>")``, so the run's reason names the PV rather than a device's status text (and a
    failed status carrying a :class:`RunFault` as that fault). Channel
    Access may report the disconnection a moment after the failure it caused: a failure is
    checked for up to *grace_s* s before it is passed on as it is."""
    signals = _epics_signals(devices)
    try:
        return (yield from plan)
    except GeneratorExit:
        raise
    except ConnectionLostError:
        raise
    except Exception as exc:
        down = disconnected(signals)
        for _ in range(0 if isinstance(exc.__cause__, RunFault) else int(grace_s / 0.1)):
            if down:
                break
            yield from bps.sleep(0.1)
            down = disconnected(signals)
        if down:
            raise ConnectionLostError(f"lost connection to {down[0]}") from exc
        if isinstance(exc.__cause__, RunFault):
            raise type(exc.__cause__)(str(exc.__cause__)) from exc
        raise
