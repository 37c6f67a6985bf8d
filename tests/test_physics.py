"""The sample-physics model on its own: numbers that can be checked by hand."""
import math

import numpy as np
import pytest

from trxrd.simulated_devices.physics import load_config
from trxrd.simulated_devices.physics.crystal import reflection_q, scherrer_fwhm_q
from trxrd.simulated_devices.physics.laser import fluence_mj_cm2, spot_area_cm2, stage_delay_ps, transmission
from trxrd.reduction.kinetics import exp_irf, kinetics_model, step_irf
from trxrd.simulated_devices.physics.pump_probe import excitations, melted_fraction, photon_energy_mj, saturated_melt
from trxrd.simulated_devices.physics.response import convolve_irf, exponential, rise
from trxrd.simulated_devices.physics.synthesis import SynthesisModel
from trxrd.simulated_devices.physics.thermal import HeatingCellModel


@pytest.fixture(scope="module")
def cfg():
    return load_config()


def test_chalcopyrite_reflections():
    assert reflection_q((1, 1, 2), 5.78, 11.62) == pytest.approx(2 * math.pi / 3.3428, rel=1e-3)
    assert reflection_q((2, 2, 0), 5.78, 11.62) == pytest.approx(2 * math.pi * math.sqrt(8) / 5.78)
    assert scherrer_fwhm_q(7.0, 0.9) == pytest.approx(0.0808, abs=1e-4)


def test_delay_sign_and_scale():
    # 1 mm of stage travel with a retro-reflector (2 passes) = 6.671 ps, later probe = positive
    assert stage_delay_ps(76.0, 75.0, 2) == pytest.approx(6.671, abs=1e-3)
    assert stage_delay_ps(74.0, 75.0, 2) == pytest.approx(-6.671, abs=1e-3)


def test_malus_law_and_fluence(cfg):
    lc = cfg["laser"]
    assert transmission(lc["theta0_deg"], lc) == pytest.approx(lc["transmission_max"])
    assert transmission(lc["theta0_deg"] + 45, lc) == pytest.approx(lc["transmission_min"])
    assert transmission(lc["theta0_deg"] + 22.5, lc) == pytest.approx(
        (lc["transmission_max"] + lc["transmission_min"]) / 2)
    area = spot_area_cm2(lc)
    assert area == pytest.approx(math.pi / (4 * math.log(2)) * 0.0272 * 0.0331)      # 272 x 331 um
    # 10 mW at 10 kHz = 1 uJ per pulse
    assert fluence_mj_cm2(0.01, lc) == pytest.approx(1e-3 / area)


def test_excitations_and_threshold(cfg):
    assert photon_energy_mj(400.0) == pytest.approx(4.966e-16, rel=1e-3)
    assert excitations(1.0, 4e-14, 400.0) == pytest.approx(80.55, rel=1e-3)
    pp = cfg["pump_probe"]
    th = pp["threshold_excitations"]
    assert saturated_melt(th * 0.99, th, 100, 0.6) == 0.0
    assert saturated_melt(th + 100, th, 100, 0.6) == pytest.approx(0.6 * (1 - math.exp(-1)))


@pytest.mark.parametrize("tau_ps, irf_fwhm_ps", [(150.0, 79.0), (2500.0, 79.0), (20.0, 79.0), (3.0, 0.3)])
def test_numerical_convolution_agrees_with_the_fits_closed_form(tau_ps, irf_fwhm_ps):
    """The simulator convolves by quadrature, the fit uses erfc closed forms: independent
    computations of the same kinetics agree to 1e-6 of the peak signal."""
    t = np.concatenate([np.linspace(-20 * irf_fwhm_ps, 10 * tau_ps, 3001), np.geomspace(11 * tau_ps, 1e7, 40)])
    decay = convolve_irf(exponential(tau_ps), t, irf_fwhm_ps)
    closed = exp_irf(t, tau_ps, irf_fwhm_ps)
    assert np.max(np.abs(decay - closed)) < 1e-6 * closed.max()
    grow = convolve_irf(rise(tau_ps), t, irf_fwhm_ps)
    closed = step_irf(t, irf_fwhm_ps) - exp_irf(t, tau_ps, irf_fwhm_ps)
    assert np.max(np.abs(grow - closed)) < 1e-6 * closed.max()
    assert convolve_irf(exponential(tau_ps), [-1e3 * irf_fwhm_ps], irf_fwhm_ps)[0] == 0.0


def test_melted_fraction_is_the_biexponential_fit_model(cfg):
    pp = cfg["pump_probe"]
    n = 3 * pp["threshold_excitations"]
    t = np.linspace(-300, 10000, 500)
    f0 = saturated_melt(n, pp["threshold_excitations"], pp["saturation_excitations"], pp["max_melted_fraction"])
    closed = kinetics_model(t, t0_ps=0.0, irf_fwhm_ps=pp["irf_fwhm_ps"], amplitudes=[f0 * pp["a1"], f0 * (1 - pp["a1"])],
                            taus_ps=[pp["tau1_ps"], pp["tau2_ps"]])
    assert np.max(np.abs(melted_fraction(t, n, pp) - closed)) < 1e-6 * f0


def test_melted_fraction_kinetics(cfg):
    pp = cfg["pump_probe"]
    n = 3 * pp["threshold_excitations"]
    f_before = melted_fraction(-300.0, n, pp)
    f_peak = melted_fraction(60.0, n, pp)
    f_late = melted_fraction(20 * pp["tau2_ps"], n, pp)
    assert f_before < 1e-6 and f_late < 1e-3 * f_peak
    assert 0 < f_peak <= pp["max_melted_fraction"]
    # after the IRF, the recovery is the bi-exponential
    t = 1000.0
    expected = saturated_melt(n, pp["threshold_excitations"], pp["saturation_excitations"],
                              pp["max_melted_fraction"]) * (
        pp["a1"] * math.exp(-t / pp["tau1_ps"]) + (1 - pp["a1"]) * math.exp(-t / pp["tau2_ps"]))
    assert melted_fraction(t, n, pp) == pytest.approx(expected, rel=0.05)


def test_heating_cell_model_settles(cfg):
    hc = dict(cfg["heating_cell"], noise_c=0.0)
    cell = HeatingCellModel(hc)
    cell.setpoint_c, cell.enabled = 80.0, True
    temps = []
    for _ in range(1500):
        cell.advance(0.1)
        temps.append(cell.sensor_c)
    assert max(temps) > 80.0 + hc["settle_band_c"]
    assert abs(temps[-1] - 80.0) < 0.05


def test_synthesis_growth(cfg):
    sc = cfg["synthesis"]
    syn = SynthesisModel(sc)
    early = syn.state(1.0, sc["reference_temperature_c"], 1.0)
    late = syn.state(600.0, sc["reference_temperature_c"], 1.0)
    assert sc["r0_nm"] < early["radius_nm"] < late["radius_nm"] <= sc["r_final_nm"]
    assert late["concentration_um"] == pytest.approx(sc["concentration_final_um"], rel=1e-3)
    assert late["sigma_nm"] == pytest.approx(sc["sigma_final_nm"], rel=1e-3)
    # colder mantle: slower growth
    assert syn.state(30.0, sc["reference_temperature_c"] - 40, 1.0)["radius_nm"] < syn.state(
        30.0, sc["reference_temperature_c"], 1.0)["radius_nm"]
    # no injection: no particles, only background
    q = np.linspace(0.01, 0.4, 50)
    assert np.allclose(syn.intensity(q, None, 240.0, 0.0), sc["background_counts_per_s"])


def test_config_rejects_unknown_and_bad_values():
    with pytest.raises(ValueError, match="unknown key"):
        load_config(overrides={"pump_probe": {"tau_1": 100.0}})
    with pytest.raises(ValueError, match="finite"):
        load_config(overrides={"pump_probe": {"tau1_ps": float("nan")}})
    with pytest.raises(ValueError, match="must be float"):
        load_config(overrides={"pump_probe": {"tau1_ps": "fast"}})
    assert load_config(overrides={"pump_probe": {"tau1_ps": 120}})["pump_probe"]["tau1_ps"] == 120.0
