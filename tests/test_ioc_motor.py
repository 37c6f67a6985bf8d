"""Motor records of the simulated beamline, driven by pyepics (EPICS base's libca)."""
import time

import pytest

from conftest import wait_for

pytestmark = pytest.mark.ioc


def test_move_waits_on_dmov_and_reads_rbv(sim, ca):
    pv = sim.prefix + "DLY:m1"
    velo = ca.caget(pv + ".VELO")
    assert velo == pytest.approx(sim.cfg["delay"]["stage_velocity_mm_s"])
    assert ca.caget(pv + ".EGU", as_string=True) == "mm"
    start = ca.caget(pv + ".RBV", use_monitor=False)
    target = start + 20.0
    t0 = time.monotonic()
    ca.caput(pv, target)
    wait_for(lambda: ca.caget(pv + ".DMOV", use_monitor=False) == 0, 2, what="DMOV=0")
    assert ca.caget(pv + ".MOVN", use_monitor=False) == 1
    wait_for(lambda: ca.caget(pv + ".DMOV", use_monitor=False) == 1, 5, what="DMOV=1")
    elapsed = time.monotonic() - t0
    assert ca.caget(pv + ".RBV", use_monitor=False) == pytest.approx(target, abs=1e-6)
    assert ca.caget(pv + ".MOVN", use_monitor=False) == 0
    # velocity-limited: 20 mm at VELO takes 20/VELO s (plus CA round trips)
    assert elapsed >= 20.0 / velo * 0.9
    # a put with callback completes only when the move is done
    ca.caput(pv, start, wait=True, timeout=10)
    assert ca.caget(pv + ".RBV", use_monitor=False) == pytest.approx(start, abs=1e-6)


def test_soft_limits_refuse_out_of_range(sim, ca):
    pv = sim.prefix + "DLY:m1"
    hlm = ca.caget(pv + ".HLM")
    llm = ca.caget(pv + ".LLM")
    assert (llm, hlm) == (sim.cfg["delay"]["stage_low_mm"], sim.cfg["delay"]["stage_high_mm"])
    before = ca.caget(pv + ".RBV", use_monitor=False)
    ca.caput(pv, hlm + 10.0, wait=True, timeout=5)
    assert ca.caget(pv, use_monitor=False) == pytest.approx(before)
    assert ca.caget(pv + ".RBV", use_monitor=False) == pytest.approx(before)
    assert ca.caget(pv + ".DMOV", use_monitor=False) == 1
    # tightened soft limit is enforced as the new control limit of VAL
    ca.caput(pv + ".HLM", before + 1.0, wait=True)
    try:
        ca.caput(pv, before + 5.0, wait=True, timeout=5)
        assert ca.caget(pv + ".RBV", use_monitor=False) == pytest.approx(before)
    finally:
        ca.caput(pv + ".HLM", hlm, wait=True)


def test_readback_follows_an_axis_outside_its_soft_limits(sim, ca):
    """Soft limits narrowed past where the axis stands (HLM below it): a move back inside runs to
    its end and the readback follows the axis all the way (the readback is not held to the
    limits, or it would freeze outside them and the move never complete)."""
    pv = sim.prefix + "DLY:m1"
    hlm = ca.caget(pv + ".HLM")
    start = ca.caget(pv + ".RBV", use_monitor=False)
    ca.caput(pv + ".HLM", start - 5.0, wait=True)
    try:
        ca.caput(pv, start - 10.0, wait=True, timeout=10)
        assert ca.caget(pv + ".DMOV", use_monitor=False) == 1
        assert ca.caget(pv + ".RBV", use_monitor=False) == pytest.approx(start - 10.0, abs=1e-6)
    finally:
        ca.caput(pv + ".HLM", hlm, wait=True)
        ca.caput(pv, start, wait=True, timeout=10)


def test_stop_halts_motion(sim, ca):
    # DLY:m1, not a sample-stage axis: a channel opened first by this pyepics client and
    # only later by ophyd in the same process can miss ophyd's first monitor
    pv = sim.prefix + "DLY:m1"
    start = ca.caget(pv + ".RBV", use_monitor=False)
    target = start + 100.0 if start < 150 else start - 100.0     # 1 s at 100 mm/s
    ca.caput(pv, target)
    wait_for(lambda: abs(ca.caget(pv + ".RBV", use_monitor=False) - start) > 5, 3, what="motion")
    ca.caput(pv + ".STOP", 1, wait=True)
    wait_for(lambda: ca.caget(pv + ".DMOV", use_monitor=False) == 1, 2, what="DMOV after STOP")
    stopped = ca.caget(pv + ".RBV", use_monitor=False)
    assert 2.5 < abs(stopped - start) < 97.5
    assert ca.caget(pv, use_monitor=False) == pytest.approx(stopped)   # VAL follows, as the record does
    time.sleep(0.1)   # nothing should move after a stop: check it stays put
    assert ca.caget(pv + ".RBV", use_monitor=False) == pytest.approx(stopped)
    ca.caput(pv, start, wait=True, timeout=10)


def test_set_mode_redefines_position_without_moving(sim, ca):
    pv = sim.prefix + "WP:m1"
    dial = ca.caget(pv + ".DRBV", use_monitor=False)
    ca.caput(pv + ".SET", 1, wait=True)
    ca.caput(pv, 10.0, wait=True)
    ca.caput(pv + ".SET", 0, wait=True)
    assert ca.caget(pv + ".RBV", use_monitor=False) == pytest.approx(10.0)
    assert ca.caget(pv + ".DRBV", use_monitor=False) == pytest.approx(dial)
    assert ca.caget(pv + ".OFF", use_monitor=False) == pytest.approx(10.0 - dial)
    ca.caput(pv + ".OFF", 0.0, wait=True)
    assert ca.caget(pv + ".RBV", use_monitor=False) == pytest.approx(dial)
