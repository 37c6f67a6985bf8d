"""Heating-cell controller: ramps at RampRate, overshoots, settles inside the band."""
import time

import numpy as np
import pytest

from conftest import wait_for

pytestmark = [pytest.mark.ioc, pytest.mark.slow]


def test_setpoint_25_to_80_ramps_overshoots_and_settles(sim, ca):
    tc = sim.prefix + "TC:"
    hc = sim.cfg["heating_cell"]
    speedup, band = hc["speedup"], hc["settle_band_c"]
    ramp = 300.0                                    # C/min of model time
    assert abs(ca.caget(tc + "Temperature_RBV", use_monitor=False) - 25.0) < 0.5
    history = []
    ca.camonitor(tc + "Temperature_RBV", callback=lambda value=None, **kw: history.append((time.monotonic(), value)))
    sp_history = []
    ca.camonitor(tc + "Setpoint_RBV", callback=lambda value=None, **kw: sp_history.append((time.monotonic(), value)))
    try:
        ca.caput(tc + "RampRate", ramp, wait=True)
        ca.caput(tc + "Setpoint", 80.0, wait=True)
        ca.caput(tc + "Enable", 1, wait=True)
        # the working set point ramps at RampRate (model time runs speedup x wall time)
        wait_for(lambda: sp_history and sp_history[-1][1] >= 80.0, 60, what="ramp to reach 80 C")
        t, sp = np.array(sp_history).T
        mid = (sp > 35) & (sp < 70)
        slope_c_per_min = np.polyfit(t[mid], sp[mid], 1)[0] * 60.0 / speedup
        assert slope_c_per_min == pytest.approx(ramp, rel=0.1)
        # ... and the reading follows: overshoot above the band, then settled inside it
        def settled():
            recent = [v for (tt, v) in history if tt > time.monotonic() - 15.0 / speedup]
            return len(recent) > 10 and max(abs(v - 80.0) for v in recent) < band
        wait_for(settled, 90, period=0.2, what="temperature settled at 80 C")
        temps = np.array([v for _, v in history])
        assert temps.max() > 80.0 + band          # real overshoot, not noise
        assert temps.max() < 80.0 + 10.0
        assert abs(ca.caget(tc + "Temperature_RBV", use_monitor=False) - 80.0) < band
        assert 0 < ca.caget(tc + "Output_RBV", use_monitor=False) < 100
    finally:
        ca.caput(tc + "Enable", 0, wait=True)
        ca.caput(tc + "Setpoint", 25.0, wait=True)
        ca.caput(tc + "RampRate", 0.0, wait=True)
