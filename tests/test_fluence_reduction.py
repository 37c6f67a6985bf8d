"""Excitations per NC, melted fraction and melting-threshold fits on synthetic fluence series."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from trxrd.reduction.fluence import excitations_per_nc, fit_threshold, melted_fraction, photon_energy_mj

N_TH, N_SAT, F_MAX, NOISE = 60.0, 150.0, 0.6, 0.005


def saturating(n):
    return np.where(n > N_TH, F_MAX * (1 - np.exp(-(n - N_TH) / N_SAT)), 0.0)


def test_photon_energy_and_excitations():
    assert photon_energy_mj(400.0) == pytest.approx(4.9661e-16, rel=1e-4)       # 3.0996 eV
    assert excitations_per_nc(1.0, 4e-14) == pytest.approx(80.55, abs=0.01)
    assert excitations_per_nc(np.array([0.0, 2.0]), 4e-14, wavelength_nm=800.0) == pytest.approx([0.0, 322.2], abs=0.1)
    with pytest.raises(ValueError, match="wavelength"):
        photon_energy_mj(0.0)
    with pytest.raises(ValueError, match="sigma"):
        excitations_per_nc(1.0, -4e-14)
    with pytest.raises(ValueError, match="fluence"):
        excitations_per_nc([1.0, np.nan], 4e-14)


def test_melted_fraction_is_minus_the_relative_area_change():
    assert melted_fraction(-0.25, 0.01) == (0.25, 0.01)
    frac, err = melted_fraction(np.array([-0.1, 0.02]))
    assert frac == pytest.approx([0.1, -0.02]) and np.all(err == 0)
    frac, err = melted_fraction([-0.1, -0.2], [np.nan, 0.01])        # NaN error: unknown, kept
    assert np.isnan(err[0]) and err[1] == 0.01
    with pytest.raises(ValueError, match="NaN"):
        melted_fraction([np.nan])
    with pytest.raises(ValueError, match=">= 0"):
        melted_fraction([-0.1], [-0.01])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_saturating_threshold_recovered(seed):
    n = np.linspace(0.0, 300.0, 12)
    f = saturating(n) + np.random.default_rng(seed).normal(0, NOISE, n.size)
    fit = fit_threshold(n, f, np.full(n.size, NOISE))
    assert fit.threshold == pytest.approx(N_TH, rel=0.10)
    lo, hi = fit.threshold_range
    assert lo < fit.threshold < hi
    assert lo <= N_TH <= hi or abs(fit.threshold - N_TH) < 3 * fit.threshold_err
    # the profile range and the covariance error agree to a factor of ~2 for this well-posed case
    assert 0.5 < (hi - lo) / (2 * fit.threshold_err) < 2.0
    assert fit.params["f_max"][0] == pytest.approx(F_MAX, abs=3 * fit.params["f_max"][1])
    assert fit.params["n_sat"][0] == pytest.approx(N_SAT, rel=0.3)
    assert 0.2 < fit.redchi < 3.0
    assert fit.evaluate(n[:2]) == pytest.approx([0.0, 0.0])


def test_unweighted_fit_scales_by_redchi():
    n = np.linspace(0.0, 300.0, 12)
    f = saturating(n) + np.random.default_rng(4).normal(0, NOISE, n.size)
    weighted = fit_threshold(n, f, np.full(n.size, NOISE))
    unweighted = fit_threshold(n, f)
    assert unweighted.threshold == pytest.approx(weighted.threshold, rel=1e-6)
    # unit weights scaled by redchi == true errors scaled by their redchi
    ratio = math.sqrt(weighted.redchi)
    assert unweighted.threshold_err == pytest.approx(weighted.threshold_err * ratio, rel=1e-3)
    assert not unweighted.weighted


def test_summary_and_as_dict():
    n = np.linspace(0.0, 300.0, 12)
    f = saturating(n) + np.random.default_rng(0).normal(0, NOISE, n.size)
    fit = fit_threshold(n, f, NOISE)
    value, err = fit.params["n_th"]
    lo, hi = fit.threshold_range
    assert fit.summary() == (f"threshold <N>_th = {value:.0f} +- {err:.0f} ({lo:.0f} .. {hi:.0f}), "
                             f"f_max {fit.params['f_max'][0]:.2f} +- {fit.params['f_max'][1]:.2f}")
    doc = json.loads(json.dumps(fit.as_dict()))
    assert doc["model"] == "saturating" and doc["threshold"] == fit.threshold
    assert doc["threshold_range"] == [lo, hi] and set(doc["params"]) == {"n_th", "f_max", "n_sat"}


def test_linear_model_below_saturation():
    n = np.linspace(0.0, 120.0, 12)
    rng = np.random.default_rng(5)
    # truly linear data: the threshold and slope come back within their errors
    f_lin = np.where(n > N_TH, 0.004 * (n - N_TH), 0.0) + rng.normal(0, NOISE, n.size)
    fit = fit_threshold(n, f_lin, NOISE, model="linear")
    assert set(fit.params) == {"n_th", "slope"}
    assert abs(fit.threshold - N_TH) < 3 * fit.threshold_err
    assert fit.params["slope"][0] == pytest.approx(0.004, abs=3 * fit.params["slope"][1])
    assert fit.summary().startswith("threshold <N>_th = ") and ", slope " in fit.summary()
    # the saturating series cut below 120: its curvature biases the linear threshold by < 10 %
    f_sat = saturating(n) + rng.normal(0, NOISE, n.size)
    assert fit_threshold(n, f_sat, NOISE, model="linear").threshold == pytest.approx(N_TH, rel=0.10)


def test_threshold_bad_input():
    n = np.linspace(0.0, 300.0, 12)
    f = saturating(n)
    with pytest.raises(ValueError, match="at least 4"):
        fit_threshold(n[:3], f[:3])
    with pytest.raises(ValueError, match="NaN"):
        fit_threshold(n, np.where(n > 200, np.nan, f))
    with pytest.raises(ValueError, match="equal length"):
        fit_threshold(n, f[:-1])
    with pytest.raises(ValueError, match="model"):
        fit_threshold(n, f, model="cubic")
    with pytest.raises(ValueError, match="fraction_err"):
        fit_threshold(n, f, np.zeros_like(f))
    with pytest.raises(ValueError, match=">= 0"):
        fit_threshold(n - 10.0, f)
    flat = np.random.default_rng(0).normal(0, NOISE, n.size)
    with pytest.raises(ValueError, match="no significant rise"):
        fit_threshold(n, flat, NOISE)
    with pytest.raises(ValueError, match="no significant rise"):
        fit_threshold(n, flat)
