"""The one settle rule, without EPICS: the pure state machine on recorded histories (including
out-of-order and repeated monitor updates), and its ophyd status fed by soft signals with
explicit time stamps."""
import math
import threading
import time

import pytest
from ophyd import Device, Signal

from trxrd.acquisition.devices.settle import (
    SettleAbandoned, SettleFailed, SettleMachine, SettleStatus, SettleTimeoutError)

from conftest import wait_for

BAND = 0.5
TARGET = 100.0


def machine(**kwargs):
    args = dict(settle_time_s=2.0, timeout_s=60.0, started_at=0.0)
    args.update(kwargs)
    return SettleMachine(lambda v: abs(v - TARGET) <= BAND, **args)


def feed(m, readings):
    for t, v in readings:
        m.feed(t, v)
    return m


# A heating cell overshooting: in band at 3, out at 5 (overshoot), in again from 6; readings
# every 0.5 s on the controller's clock.
OVERSHOOT = [(0.0, 80.0), (1.0, 95.0), (2.0, 99.0), (3.0, 99.8), (4.0, 100.4), (5.0, 100.7),
             (6.0, 100.3), (6.5, 100.1), (7.0, 100.0), (7.5, 99.9), (8.0, 100.0), (8.5, 100.1)]


def test_settles_one_settle_time_after_the_last_excursion():
    m = machine()
    for t, v in OVERSHOOT:
        m.feed(t, v)
        if t < 8.0:
            assert m.state in ("waiting", "settling"), t
    assert m.state == "done"
    assert m.in_band_since == 6.0                  # re-armed after the excursion at 5.0
    assert m.settled_at == m.finished_at == 8.0
    assert [v for _, v in m.history] == [v for _, v in OVERSHOOT[:-1]]   # stops listening when done


def test_out_of_order_excursion_breaks_the_streak_it_falls_into():
    readings = [r for r in OVERSHOOT if r[0] != 5.0]           # the excursion arrives late
    m = feed(machine(settle_time_s=4.5), readings[:7])         # up to t = 7.0
    assert m.in_band_since == 3.0 and m.state == "settling"
    m.feed(5.0, 100.7)
    assert m.in_band_since == 6.0 and m.state == "settling"
    feed(m, readings[7:] + [(9.5, 100.0), (10.6, 100.0)])
    assert m.settled_at == 10.5


def test_out_of_order_reading_inside_band_only_fills_in():
    m = feed(machine(), [(3.0, 99.8), (4.0, 100.1)])
    m.feed(3.5, 100.2)
    assert m.in_band_since == 3.0
    m.feed(5.0, 99.9)
    assert m.state == "done" and m.settled_at == 5.0


def test_repeated_and_pre_start_readings():
    m = machine(started_at=10.0)
    m.feed(2.0, 100.0)              # an old, unchanged reading: in band, but the move began at 10
    assert m.in_band_since == 10.0
    m.feed(2.0, 100.0)              # the same monitor update again
    assert m.ignored == 1 and len(m.history) == 1
    m.feed(11.0, 100.1)
    assert m.state == "settling"
    m.feed(12.0, 100.0)
    assert m.settled_at == 12.0


def test_quiet_signal_settles_on_tick_only_when_quiet():
    m = feed(machine(), [(1.0, 100.0)])
    assert m.deadline() == 3.0
    assert m.tick(3.5) == "settling"               # readings may still be on their way
    assert m.tick(3.5, quiet=True) == "done" and m.settled_at == 3.0


def test_timeout_and_equilibration():
    m = feed(machine(timeout_s=5.0), [(0.0, 90.0), (4.0, 99.0)])
    assert m.deadline() == 5.0
    assert m.tick(4.9) == "waiting"
    assert m.tick(5.0) == "timed out" and "99.0" in m.reason
    assert m.feed(6.0, 100.0) == "timed out"        # final
    e = feed(machine(equilibrate_s=10.0), [(1.0, 100.0), (3.0, 100.0), (4.0, 120.0)])
    assert e.state == "equilibrating" and e.settled_at == 3.0      # a drift while equilibrating is logged
    assert e.deadline() == 13.0 and e.tick(12.0) == "equilibrating"
    assert e.tick(13.5) == "done" and e.finished_at == 13.0
    assert machine(settle_time_s=0.0).feed(1.0, 100.0) == "done"


def test_failure_and_stop():
    m = SettleMachine(lambda v: v >= 1.0, settle_time_s=0.0, timeout_s=10.0, started_at=0.0,
                      failed=lambda v: "pump stopped early" if v < 0 else None)
    assert m.feed(1.0, -1.0) == "failed" and m.reason == "pump stopped early"
    s = machine()
    assert s.stop(4.0, "abandoned") == "stopped" and s.finished_at == 4.0
    with pytest.raises(ValueError):
        machine(timeout_s=0.0)



def status_for(sig, m, **kwargs):
    dev = Device(name="cell")
    return SettleStatus(dev, m, signals=[sig], value_of=lambda d: d[sig.name], target=TARGET,
                        initial=sig.get(), unit="C", **kwargs)


def test_status_follows_the_readings_time_stamps():
    """The status decides on the readings' own time stamps: late delivery changes when it
    finishes, not what it decides."""
    base = time.time()
    sig = Signal(name="t", value=80.0, timestamp=base)
    m = machine(started_at=base)
    status = status_for(sig, m, quiet_s=60.0)
    progress = []
    status.watch(lambda **kw: progress.append(kw))
    for t, v in OVERSHOOT:
        sig.put(v, timestamp=base + t)
    wait_for(lambda: status.done, 5, what="status done")
    assert status.success and status.settled and status.settled_at == base + 8.0
    assert status.history[0] == (base, 80.0)
    assert any(p["name"].startswith("cell settling") for p in progress)
    assert progress[-1]["name"] == "cell done" and progress[-1]["unit"] == "C"


def test_status_timeout_quiet_settle_and_stop():
    sig = Signal(name="t", value=100.0, timestamp=time.time() - 100)   # constant: no more updates
    status = status_for(sig, machine(settle_time_s=0.2, started_at=time.time()), quiet_s=0.1)
    status.wait(5)
    assert status.settled and status.settled_at - status.in_band_since == pytest.approx(0.2)

    sig2 = Signal(name="t2", value=50.0)
    timed_out = []
    status = status_for(sig2, machine(timeout_s=0.2, started_at=time.time()),
                        on_timeout=lambda: timed_out.append(1), what="settled at 100 C", rule="2 s within +-0.5 C")
    with pytest.raises(SettleTimeoutError, match=r"not settled at 100 C within 0.2 s \(rule: 2 s"):
        status.wait(5)
    assert timed_out == [1] and status.finished_at - status.started_at >= 0.2

    status = status_for(sig2, machine(started_at=time.time()))
    status.stop_waiting(success=True, why="paused")
    assert status.done and status.success and not status.settled
    status = status_for(sig2, machine(started_at=time.time()))
    status.stop_waiting(success=False, why="new set point")
    with pytest.raises(SettleAbandoned, match="new set point"):
        status.wait(1)


def test_status_failure_from_a_second_thread():
    sig = Signal(name="flow", value=0.0)
    m = SettleMachine(lambda v: v >= 1.0, settle_time_s=0.0, timeout_s=10.0, started_at=time.time(),
                      failed=lambda v: "jet lost" if math.isnan(v) else None)
    status = status_for(sig, m)
    threading.Thread(target=lambda: sig.put(float("nan"))).start()
    with pytest.raises(SettleFailed, match="jet lost"):
        status.wait(5)


class ChangingWhileRead(Signal):
    """A signal whose value changes while the status reads it: the monitor update (new value)
    is delivered before ``read()`` returns its older snapshot, as a CA monitor can be."""

    def read(self):
        old = super().read()
        if self.get() == 0:
            self.put(1, timestamp=time.time())
        return old


def test_status_keeps_a_monitor_update_newer_than_its_first_read():
    """The jet's flow sensor flipped to 1 between the status's subscription and its first read,
    while the flow goes on updating: the status must keep the update (1), not the older read (0),
    or every later flow reading is judged with a jet that never flows, until the timeout."""
    flowing = ChangingWhileRead(name="flowing", value=0, timestamp=time.time())
    flow = Signal(name="flow", value=7.9, timestamp=time.time())
    m = SettleMachine(lambda v: v[0] and abs(v[1] - 8.0) <= 0.2, settle_time_s=0.2, timeout_s=3.0,
                      started_at=time.time())
    status = SettleStatus(Device(name="jet"), m, signals=[flowing, flow],
                          value_of=lambda d: (d["flowing"] == 1, d["flow"]), target=8.0, initial=7.9,
                          unit="mL/min", progress_value=lambda v: v[1], quiet_s=60.0)
    for k in range(8):
        time.sleep(0.05)
        flow.put(8.0 + 0.01 * (k % 2), timestamp=time.time())
    status.wait(5)
    assert status.settled and flowing.get() == 1
