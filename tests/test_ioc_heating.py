"""Heating-cell controller: ramps at RampRate, overshoots, settles inside the band."""
import time

import numpy as np
import pytest

from conftest import wait_for

pytestmark = [pytest.mark.ioc, pytest.mark.slow, pytest.mark.hot]


def test_setpoint_step_of_55_c_ramps_overshoots_and_settles(sim, ca):
    """From wherever the cell is (other tests may have left it warm) to 55 C above."""
    tc = sim.prefix + "TC:"
    hc = sim.cfg["heating_cell"]
    speedup, band = hc["speedup"], hc["settle_band_c"]
    ramp = 300.0                                    # C/min of model time
    t0 = ca.caget(tc + "Temperature_RBV", use_monitor=False)
    target = t0 + 55.0
    history = []
    ca.camonitor(tc + "Temperature_RBV", callback=lambda value=None, **kw: history.append((time.monotonic(), value)))
    sp_history = []
    ca.camonitor(tc + "Setpoint_RBV", callback=lambda value=None, **kw: sp_history.append((time.monotonic(), value)))
    try:
        ca.caput(tc + "RampRate", ramp, wait=True)
        ca.caput(tc + "Setpoint", target, wait=True)
        ca.caput(tc + "Enable", 1, wait=True)
        # the working set point ramps at RampRate (model time runs speedup x wall time)
        wait_for(lambda: sp_history and sp_history[-1][1] >= target, 60, what="ramp to reach the target")
        t, sp = np.array(sp_history).T
        mid = (sp > t0 + 10) & (sp < t0 + 45)
        slope_c_per_min = np.polyfit(t[mid], sp[mid], 1)[0] * 60.0 / speedup
        assert slope_c_per_min == pytest.approx(ramp, rel=0.1)
        # ... and the reading follows: overshoot above the band, then settled inside it
        def settled():
            recent = [v for (tt, v) in history if tt > time.monotonic() - 15.0 / speedup]
            return len(recent) > 10 and max(abs(v - target) for v in recent) < band
        wait_for(settled, 90, period=0.2, what="temperature settled at the target")
        temps = np.array([v for _, v in history])
        assert temps.max() > target + band        # real overshoot, not noise
        assert temps.max() < target + 10.0
        assert abs(ca.caget(tc + "Temperature_RBV", use_monitor=False) - target) < band
        assert 0 < ca.caget(tc + "Output_RBV", use_monitor=False) < 100
    finally:
        ca.caput(tc + "Enable", 0, wait=True)
        ca.caput(tc + "Setpoint", 25.0, wait=True)
        ca.caput(tc + "RampRate", 0.0, wait=True)
