"""Delay and fluence devices against the simulated beamline."""
import math

import pytest

pytestmark = pytest.mark.ioc

C_MM_PER_PS = 299792458.0e-9


@pytest.fixture
def delay(sim, tmp_path):
    from trxrd.acquisition.devices.delay import PumpProbeDelay

    dev = PumpProbeDelay(sim.prefix, name="pump", state_root=tmp_path)
    dev.wait_for_connection(timeout=10)
    dev.optical.settle_time = 0.005
    yield dev
    dev.delay.move(-50.0, timeout=20)


@pytest.mark.parametrize("delay_ps, stage_mm, generator_s", [
    (0.0, 150.0, 0.0),
    (100.0, 150.0 + 100 * C_MM_PER_PS / 2, 0.0),
    (2500.0, 150.0, 2.5e-9),          # beyond the stage's reach (+1 ns): generator
    (3e6, 150.0, 3e-6),               # 3 us
])
def test_delay_axis_settings(delay, delay_ps, stage_mm, generator_s):
    delay.delay.move(delay_ps, timeout=20)
    assert delay.optical.position == pytest.approx(stage_mm, abs=2e-4)
    assert delay.generator.readback.get() == pytest.approx(generator_s, abs=6e-12)
    assert delay.delay.position == pytest.approx(delay_ps, abs=0.01 if generator_s == 0 else 10.0)


def test_sign_convention_and_reach(delay, sim):
    from trxrd.simulated_devices.physics.laser import stage_delay_ps

    delay.delay.move(100.0, timeout=20)
    assert delay.optical.position > delay.time_zero_mm.get()         # later probe = stage further out
    # the simulator's physics uses the same convention: its delay at this stage position
    d = sim.cfg["delay"]
    assert float(stage_delay_ps(delay.optical.position, d["stage_time_zero_mm"], d["n_passes"])) == \
        pytest.approx(100.0, abs=0.01)
    lo, hi = delay.reach_ps()
    assert lo == pytest.approx(-1000.7, abs=0.1) and hi == pytest.approx(1e7)


def test_delay_out_of_range_refused_before_motion(delay):
    before = delay.optical.position
    for bad in (-2000.0, 2e7, math.nan):
        with pytest.raises(ValueError, match="delay"):
            delay.delay.move(bad, timeout=5)
    assert delay.optical.position == before
    assert not delay.optical.moving


def test_time_zero_survives_restart(sim, delay, tmp_path):
    from trxrd.acquisition.devices.delay import PumpProbeDelay

    delay.optical.move(150.3, timeout=10)
    assert delay.set_time_zero() == pytest.approx(150.3, abs=2e-4)
    assert delay.delay.position == pytest.approx(0.0, abs=0.01)
    again = PumpProbeDelay(sim.prefix, name="pump2", state_root=tmp_path)
    again.wait_for_connection(timeout=10)
    assert again.time_zero_mm.get() == pytest.approx(150.3, abs=2e-4)
    assert again.delay.position == pytest.approx(0.0, abs=0.01)
    delay.set_time_zero(150.0)


@pytest.fixture
def att(sim, tmp_path):
    from trxrd.acquisition.devices.fluence import FluenceAttenuator

    dev = FluenceAttenuator(sim.prefix, name="att", sigma_cm2=4e-14, state_root=tmp_path)
    dev.wait_for_connection(timeout=10)
    dev.waveplate.settle_time = 0.005
    return dev


def test_fluence_calibration_and_request(sim, att, tmp_path):
    from bluesky import RunEngine

    from trxrd.acquisition.devices.fluence import FluenceAttenuator
    from trxrd.acquisition.plans.fluence import calibrate_fluence

    with pytest.raises(ValueError, match="calibration missing"):
        att.fluence.move(1.0)
    RE = RunEngine({}, call_returns_result=True)
    md = {"sample": {"name": "test", "size_nm": 7.0, "ligand": "OLA", "solvent": "dodecane",
                     "sigma_cm2": 4e-14}}
    fit = RE(calibrate_fluence(att, md=md)).plan_result
    laser = sim.cfg["laser"]
    p0 = laser["power_before_waveplate_w"]
    assert fit["p_max_w"] == pytest.approx(laser["transmission_max"] * p0, rel=0.05)
    assert fit["p_min_w"] == pytest.approx(laser["transmission_min"] * p0, rel=0.05)
    assert fit["theta0_deg"] == pytest.approx(laser["theta0_deg"], rel=0.05)

    att.fluence.move(1.5, timeout=20)
    area = math.pi / (4 * math.log(2)) * 300e-4 * 300e-4
    expected_w = 1.5e-3 * area * laser["rep_rate_hz"]
    from conftest import wait_for
    wait_for(lambda: abs(att.power.get() / expected_w - 1) < 0.03, 3, what="power meter at 1.5 mJ/cm^2")
    assert att.fluence.position == pytest.approx(1.5, rel=1e-3)
    # <N> = sigma F / h nu: 4e-14 * 1.5e-3 / (6.626e-34 * 2.998e8 / 400e-9)
    assert att.excitations.position == pytest.approx(120.8, rel=0.01)
    att.excitations.move(60.0, timeout=20)
    assert att.fluence.position == pytest.approx(60.0 / 120.8 * 1.5, rel=0.01)

    # refused before motion: above the maximum, negative, NaN
    angle = att.waveplate.position
    for bad in (att.max_fluence() * 1.01, -0.1, math.nan):
        with pytest.raises(ValueError, match="fluence"):
            att.fluence.move(bad)
    assert att.waveplate.position == angle

    restarted = FluenceAttenuator(sim.prefix, name="att2", state_root=tmp_path)
    restarted.wait_for_connection(timeout=10)
    assert restarted.calibrated and restarted.p_max_w.get() == pytest.approx(fit["p_max_w"])
