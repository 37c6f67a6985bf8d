"""Suspender logic with soft signals (the IOC-level pause/resume is in test_plans_pump_probe)."""
import threading
from types import SimpleNamespace

from bluesky import RunEngine
from bluesky import plan_stubs as bps
from ophyd import Signal

from conftest import wait_for


def _run_with(suspender, trip, untrip):
    RE = RunEngine({})
    RE.install_suspender(suspender)
    events = []
    RE.subscribe(lambda name, doc: events.append(name) if name == "event" else None)
    readable = Signal(name="x", value=0)

    def driver():
        wait_for(lambda: len(events) >= 2, 10, what="2 events")
        trip()
        wait_for(lambda: suspender.tripped, 5, what="suspender tripped")
        n = len(events)
        threading.Event().wait(0.3)           # paused: no events in this time
        seen.append(len(events) - n)
        untrip()

    seen = []
    t = threading.Thread(target=driver, daemon=True)
    t.start()
    RE(_plan(readable, 6, 0.05))
    t.join(5)
    return seen, events


def _plan(readable, n: int, sleep_s: float):
    """*n* events, with checkpoints around every event as in the pump-probe plans."""
    yield from bps.open_run()
    for _ in range(n):
        yield from bps.checkpoint()
        yield from bps.trigger_and_read([readable])
        yield from bps.checkpoint()
        yield from bps.sleep(sleep_s)
    yield from bps.close_run()


def test_temperature_out_of_band_pauses_only_when_settled():
    from trxrd.acquisition.suspenders import SuspendTemperatureOutOfBand

    cell = SimpleNamespace(name="cell", temperature=Signal(name="T", value=100.0),
                           setpoint=Signal(name="sp", value=100.0),
                           last_status=SimpleNamespace(done=True, settled=True))
    sus = SuspendTemperatureOutOfBand(cell, 0.5)
    assert not sus._should_suspend(100.4) and sus._should_suspend(100.6)
    cell.last_status = SimpleNamespace(done=False, settled=False)     # heating: never trips
    assert not sus._should_suspend(60.0)
    cell.last_status = SimpleNamespace(done=True, settled=True)
    seen, events = _run_with(sus, lambda: cell.temperature.put(101.0), lambda: cell.temperature.put(100.1))
    assert seen == [0] and len(events) == 6


def test_shutter_suspender_ignores_commanded_closure():
    from trxrd.acquisition.suspenders import SuspendShutterClosed

    shutter = Signal(name="pump_shutter", value="Open")
    shutter.expected = "Closed"
    sus = SuspendShutterClosed(shutter)
    assert not sus._should_suspend("Closed")          # the plan closed it (pump-off frame)
    shutter.expected = "Open"
    assert sus._should_suspend("Closed") and sus._should_resume("Open")
    seen, events = _run_with(sus, lambda: shutter.put("Closed"), lambda: shutter.put("Open"))
    assert seen == [0] and len(events) == 6


def _blocked_loop_run(suspender, signal):
    """A scan during which the RunEngine's loop is blocked for 0.4 s (a busy host, a thread
    holding the GIL) exactly when *signal* trips *suspender*; whether the scan paused."""
    import time

    RE = RunEngine({})
    RE.install_suspender(suspender)
    events = []
    RE.subscribe(lambda name, doc: events.append(time.monotonic()) if name == "event" else None)
    readable = Signal(name="x", value=0)
    requested = []
    request = RE.request_suspend

    def counting(*args, **kwargs):
        requested.append(time.monotonic())
        return request(*args, **kwargs)

    RE.request_suspend = counting

    def driver():
        wait_for(lambda: len(events) >= 3, 10, what="3 events")
        blocked = threading.Event()

        def block():                                         # the loop cannot answer for 0.4 s
            blocked.set()
            time.sleep(0.4)

        RE._loop.call_soon_threadsafe(block)
        blocked.wait(5)
        signal.put(0)                                        # jet lost
        t = time.monotonic()
        while time.monotonic() - t < 1.0 and not requested:  # give the suspender its chance
            time.sleep(0.01)
        signal.put(1)

    thread = threading.Thread(target=driver, daemon=True)
    thread.start()
    RE(_plan(readable, 30, 0.02))
    thread.join(5)
    return bool(requested), len(events)


def test_jet_suspender_keeps_asking_a_busy_run_engine():
    from bluesky.suspenders import SuspendBoolLow

    from trxrd.acquisition.suspenders import SuspendJetLost

    flowing = Signal(name="jet_flowing", value=1)
    requested, events = _blocked_loop_run(SuspendJetLost(flowing, sleep=0.05), flowing)
    # suspended; nothing lost (a suspension that lands between a save and the next checkpoint
    # makes the RunEngine replay that one step: one event more)
    assert requested and 30 <= events <= 31
    plain = Signal(name="jet_flowing", value=1)
    assert _blocked_loop_run(SuspendBoolLow(plain, sleep=0.05), plain)[0] is False   # bluesky alone gives up
