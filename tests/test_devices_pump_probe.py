"""Delay and fluence devices against the simulated beamline."""
import math

import pytest

pytestmark = pytest.mark.ioc

C_MM_PER_PS = 299792458.0e-9


@pytest.fixture
def delay(sim, tmp_path):
    from trxrd.acquisition.devices.delay import PumpProbeDelay

    dev = PumpProbeDelay(sim.prefix, name="pump")
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

    d = sim.cfg["delay"]
    true_delays = []
    for t in (100.0, 300.0):
        delay.delay.move(t, timeout=20)
        assert delay.optical.position > delay.time_zero_mm.get()     # later probe = stage further out
        true_delays.append(float(stage_delay_ps(delay.optical.position, d["stage_time_zero_mm"], d["n_passes"])))
    # the simulator's physics uses the same convention: 200 ps more on the axis is 200 ps more there,
    # whatever the offset between the device's time zero and the simulator's true one
    assert true_delays[1] - true_delays[0] == pytest.approx(200.0, abs=0.01)
    lo, hi = delay.reach_ps()
    assert lo == pytest.approx(-1000.7, abs=0.1) and hi == pytest.approx(1e7)


def test_delay_out_of_range_refused_before_motion(delay):
    before = delay.optical.position
    for bad in (-2000.0, 2e7, math.nan):
        with pytest.raises(ValueError, match="delay"):
            delay.delay.move(bad, timeout=5)
    assert delay.optical.position == before
    assert not delay.optical.moving


def test_set_time_zero_announces_and_checks(delay):
    """The device keeps no file: subscribers hear of a new time zero (the session saves it);
    a time zero outside the stage's travel is refused and changes nothing."""
    heard = []
    delay.subscribe(lambda **kw: heard.append((kw["time_zero_mm"], kw["n_passes"])),
                    event_type=delay.SUB_TIME_ZERO, run=False)
    delay.optical.move(150.3, timeout=10)
    assert delay.set_time_zero() == pytest.approx(150.3, abs=2e-4)
    assert delay.delay.position == pytest.approx(0.0, abs=0.01)
    assert heard == [(pytest.approx(150.3, abs=2e-4), 2)]
    for bad in (1e9, -5.0, math.nan):
        with pytest.raises(ValueError, match="time"):
            delay.set_time_zero(bad)
    assert delay.time_zero_mm.get() == pytest.approx(150.3, abs=2e-4) and len(heard) == 1
    delay.set_time_zero(150.0)


@pytest.fixture
def att(sim, tmp_path):
    from trxrd.acquisition.devices.fluence import FluenceAttenuator

    laser = sim.cfg["laser"]
    dev = FluenceAttenuator(sim.prefix, name="att", sigma_cm2=4e-14,
                            spot_fwhm_um=(laser["spot_fwhm_x_um"], laser["spot_fwhm_y_um"]))
    dev.wait_for_connection(timeout=10)
    dev.waveplate.settle_time = 0.005
    return dev


def test_fluence_calibration_and_request(sim, att, tmp_path):
    from bluesky import RunEngine

    from trxrd.acquisition.devices.fluence import FluenceAttenuator
    from trxrd.acquisition.plans.fluence import calibrate_fluence

    with pytest.raises(ValueError, match="calibration missing"):
        att.fluence.move(1.0)
    heard = []
    att.subscribe(lambda **kw: heard.append(kw), event_type=att.SUB_CALIBRATION, run=False)
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
    area = math.pi / (4 * math.log(2)) * laser["spot_fwhm_x_um"] * 1e-4 * laser["spot_fwhm_y_um"] * 1e-4
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

    # the calibration was announced (the session saves it); without a spot size no fluence at all
    assert heard[-1]["p_max_w"] == pytest.approx(fit["p_max_w"]) and att.calibrated
    unmeasured = FluenceAttenuator(sim.prefix, name="att2")
    unmeasured.wait_for_connection(timeout=10)
    unmeasured.set_calibration(fit["p_min_w"], fit["p_max_w"], fit["theta0_deg"])
    assert not unmeasured.calibrated
    with pytest.raises(ValueError, match="spot size not set"):
        unmeasured.fluence.move(0.5)
