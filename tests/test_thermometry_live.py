"""Lattice thermometry as a workflow against the simulated beamline: a static heating series
reduced live becomes a thermometer (a derived run), the session makes it its own, and a delay
scan then reports the lattice temperature rise, checked against the simulator's lattice."""
import math

import numpy as np
import pytest
from bluesky import plan_stubs as bps

from conftest import SAMPLE, sim_session

pytestmark = [pytest.mark.ioc, pytest.mark.hot]        # leaves the cell at 90 C, cooling on its own

REFLECTION = "112:1.78:1.98"     # (112) of CuInSe2 +- 1.2 Scherrer FWHM of 7 nm, from the literature lattice


@pytest.fixture
def session(sim, tmp_path):
    session = sim_session(sim, tmp_path, reflections=[REFLECTION], structure="tetragonal")
    session.beamline.pilatus.exposure_s = 0.1
    yield session
    session.beamline.cell.setpoint.put(sim.cfg["heating_cell"]["ambient_c"])     # cools on its own
    session.beamline.jet.stop()
    session.close()


@pytest.mark.slow
def test_heating_series_thermometer_then_temperature_rise(sim, session):
    from trxrd.simulated_devices.physics.pump_probe import lattice_heating_k

    bl, RE, p = session.beamline, session.RE, session.plans
    RE(bps.mv(bl.jet, 8.0))                                       # the sample flows through the cell
    RE(p["temperature_series"]([bl.pilatus], [30.0, 50.0, 70.0, 90.0], frames=2, tolerance_c=1.0,
                               settle_time_s=1.0))
    session.reduction.set_thermometer(-1)
    cal = session.reduction.settings.thermometer_calibration
    s = sim.cfg["sample"]
    # the (112) position falls by the weighted expansion of a and c: (2/a^2 alpha_a + 4/c^2 alpha_c) / (2/a^2 + 4/c^2)
    wa, wc = 2 / s["a_angstrom"] ** 2, 4 / s["c_angstrom"] ** 2
    alpha = (wa * s["alpha_a_per_k"] + wc * s["alpha_c_per_k"]) / (wa + wc)
    assert cal.expansion_per_k == pytest.approx(-alpha, rel=0.1)
    assert cal.sample == SAMPLE["name"] and session.state.section("reduction")["thermometer"] == cal.as_dict()

    RE(p["calibrate_fluence"]())
    d = sim.cfg["delay"]
    bl.delay.set_time_zero(d["stage_time_zero_mm"])               # as find_time_zero leaves it
    n = 240.0
    RE(bps.mv(bl.att.fluence, n / bl.att.n_per_fluence()))
    RE(p["delay_scan"]([bl.pilatus], [-100.0, 40.0, 400.0, 3000.0], frames_per_point=2))
    series = session.reduction.reflections
    rise = series.temperature_rise
    assert rise[0]["value"] == pytest.approx(0.0, abs=3 * rise[0]["stderr"] + 1.0)        # before time zero
    true_40 = float(lattice_heating_k(40.0, n, sim.cfg["pump_probe"]))
    assert rise[1]["value"] == pytest.approx(true_40, rel=0.15), (rise[1], true_40)
    # the cell stayed at 90 C, the top of the calibration: the pump-on lattice is hotter, which is flagged
    assert rise[1]["stderr"] < 0.1 * true_40 and rise[1]["extrapolated"] and rise[1]["temperature_c"] > 150
    assert rise[3]["value"] < 0.5 * rise[1]["value"]                   # it cools (tau2 2.5 ns): at 3 ns
    run = [r for r in session.catalog.values() if r.start.get("plan_name") == "reflections"][-1]
    points = run["points"].read()
    assert np.allclose(points["temperature_rise_k"].values, [r["value"] for r in rise])
    assert all(math.isfinite(v) for v in points["shift_112"].values)
