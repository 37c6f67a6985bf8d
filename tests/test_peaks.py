"""Peak fits, lattice parameters, Scherrer size and Debye-Waller <du^2> on synthetic data."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from trxrd.reduction.peaks import (debye_waller_du2, fit_pseudo_voigt, lattice_parameters_tetragonal,
                             mean_du2, pseudo_voigt, reflection_q_tetragonal, scherrer_size_nm)

A_CISE, C_CISE = 5.78, 11.62
HKLS = [(1, 1, 2), (2, 2, 0), (2, 0, 4), (3, 1, 2), (1, 1, 6)]


@pytest.mark.parametrize("eta", [0.0, 0.3, 1.0])
def test_pseudo_voigt_half_maximum_at_half_fwhm(eta):
    center, fwhm = 1.88, 0.03
    peak = pseudo_voigt(np.array([center, center - fwhm / 2, center + fwhm / 2]), center, fwhm, 2.0, eta)
    assert peak[1] == pytest.approx(peak[0] / 2, rel=1e-12)
    assert peak[2] == pytest.approx(peak[0] / 2, rel=1e-12)


def test_pseudo_voigt_rejects_unphysical_shape():
    with pytest.raises(ValueError, match="fwhm > 0"):
        pseudo_voigt(1.88, 1.88, 0.0, 1.0, 0.5)
    with pytest.raises(ValueError, match="eta"):
        pseudo_voigt(1.88, 1.88, 0.03, 1.0, 1.5)


def test_pseudo_voigt_area():
    q = np.linspace(1.88 - 3.0, 1.88 + 3.0, 600001)
    assert np.trapezoid(pseudo_voigt(q, 1.88, 0.03, 2.0, 0.0), q) == pytest.approx(2.0, rel=1e-9)
    # the Lorentzian tails beyond +-3 A^-1 hold 2/pi * arctan-complement ~ 0.32 % of the area
    lorentz_inside = 2.0 / math.pi * math.atan(3.0 / 0.015)
    assert np.trapezoid(pseudo_voigt(q, 1.88, 0.03, 2.0, 1.0), q) == pytest.approx(2.0 * lorentz_inside, rel=1e-6)


def noisy_peak(seed=3, eta=0.4):
    rng = np.random.default_rng(seed)
    q = np.linspace(1.70, 2.05, 351)
    truth = 500.0 + 800.0 * (q - 1.88) + pseudo_voigt(q, 1.8815, 0.031, 200.0, eta)
    counts = rng.poisson(truth).astype(float)
    return q, counts, np.sqrt(counts)


def test_fit_pseudo_voigt_recovers_a_noisy_peak_on_a_linear_baseline():
    q, counts, sigma = noisy_peak()
    fit = fit_pseudo_voigt(q, counts, q_min=1.75, q_max=2.02, sigma=sigma)
    assert 0 < fit.center_err < 1e-3
    assert abs(fit.center - 1.8815) < 3 * fit.center_err
    assert abs(fit.center - 1.8815) < 1e-3
    assert fit.fwhm == pytest.approx(0.031, rel=0.05)
    assert fit.area == pytest.approx(200.0, rel=0.05)
    assert abs(fit.area - 200.0) < 4 * fit.area_err
    assert fit.params["baseline_slope"][0] == pytest.approx(800.0, abs=4 * fit.params["baseline_slope"][1])
    assert 0.7 < fit.redchi < 1.4        # Poisson errors given: chi-square per dof ~ 1
    for name in ("center", "fwhm", "area", "eta", "height", "baseline", "baseline_slope"):
        value, err = fit.params[name]
        assert math.isfinite(value) and math.isfinite(err) and err > 0, name
    height = pseudo_voigt(fit.center, fit.center, fit.fwhm, fit.area, fit.params["eta"][0])
    assert fit.params["height"][0] == pytest.approx(height, rel=1e-9)
    residual = (counts - fit.evaluate(q)) / sigma
    assert np.mean(residual[(q >= 1.75) & (q <= 2.02)] ** 2) == pytest.approx(fit.redchi, rel=0.05)
    doc = json.loads(json.dumps(fit.as_dict()))
    assert doc["params"]["center"]["value"] == fit.center and doc["baseline"] == "linear"


def test_fit_without_sigma_scales_errors_and_constant_baseline():
    rng = np.random.default_rng(7)
    q = np.linspace(1.70, 2.05, 351)
    intensity = 40.0 + pseudo_voigt(q, 1.90, 0.025, 3.0, 0.0) + rng.normal(0, 0.5, q.size)
    fit = fit_pseudo_voigt(q, intensity, q_min=1.8, q_max=2.0, baseline="constant")
    assert set(fit.params) == {"center", "fwhm", "area", "eta", "height", "baseline"}
    assert fit.redchi == pytest.approx(0.25, rel=0.3)       # unit weights: the noise variance
    assert abs(fit.center - 1.90) < 3 * fit.center_err
    assert fit.params["baseline"][0] == pytest.approx(40.0, abs=0.2)


def test_fit_without_baseline():
    q = np.linspace(1.7, 2.05, 351)
    fit = fit_pseudo_voigt(q, pseudo_voigt(q, 1.87, 0.02, 1.0, 0.6), q_min=1.75, q_max=2.0, baseline="none")
    assert (fit.center, fit.fwhm, fit.area, fit.params["eta"][0]) == pytest.approx((1.87, 0.02, 1.0, 0.6), rel=1e-6)


def test_fit_pseudo_voigt_bad_input():
    q, counts, sigma = noisy_peak()
    with pytest.raises(ValueError, match="NaN"):
        fit_pseudo_voigt(q, np.where(q > 1.9, np.nan, counts), q_min=1.75, q_max=2.0)
    with pytest.raises(ValueError, match="equal length"):
        fit_pseudo_voigt(q, counts[:-1], q_min=1.75, q_max=2.0)
    with pytest.raises(ValueError, match="baseline"):
        fit_pseudo_voigt(q, counts, q_min=1.75, q_max=2.0, baseline="cubic")
    with pytest.raises(ValueError, match="at least 8"):
        fit_pseudo_voigt(q, counts, q_min=1.88, q_max=1.885)
    with pytest.raises(ValueError, match="outside the data range"):
        fit_pseudo_voigt(q, counts, q_min=1.6, q_max=2.0)
    with pytest.raises(ValueError, match="sigma"):
        fit_pseudo_voigt(q, counts, q_min=1.75, q_max=2.0, sigma=np.zeros_like(q))


def test_lattice_parameters_from_five_reflections():
    q = reflection_q_tetragonal(HKLS, A_CISE, C_CISE)
    assert reflection_q_tetragonal((1, 1, 2), A_CISE, C_CISE) == pytest.approx(
        2 * math.pi * math.sqrt(2 / A_CISE ** 2 + 4 / C_CISE ** 2), rel=1e-15)
    fit = lattice_parameters_tetragonal(HKLS, q)
    assert fit["a_angstrom"]["value"] == pytest.approx(A_CISE, abs=1e-6)
    assert fit["c_angstrom"]["value"] == pytest.approx(C_CISE, abs=1e-6)
    assert fit["volume_angstrom3"]["value"] == pytest.approx(A_CISE ** 2 * C_CISE, abs=1e-6)
    assert fit["a_angstrom"]["stderr"] < 1e-9       # exact positions: residual-scaled errors ~ 0


def test_lattice_parameters_from_two_reflections_propagate_q_err_exactly():
    q = reflection_q_tetragonal(HKLS[:2], A_CISE, C_CISE)
    exact = lattice_parameters_tetragonal(HKLS[:2], q)
    assert exact["a_angstrom"]["value"] == pytest.approx(A_CISE, rel=1e-12)
    assert exact["c_angstrom"]["value"] == pytest.approx(C_CISE, rel=1e-12)
    assert math.isnan(exact["a_angstrom"]["stderr"])       # no redundancy, no q_err: no error
    q_err = np.array([2e-4, 3e-4])
    fit = lattice_parameters_tetragonal(HKLS[:2], q, q_err)
    # (220) fixes a alone: a = 2 pi sqrt(8) / q220, so da = a * dq220 / q220
    assert fit["a_angstrom"]["stderr"] == pytest.approx(A_CISE * 3e-4 / q[1], rel=1e-9)
    # c from (112): 4/c^2 = (q112 / 2 pi)^2 - 2/a^2, errors of both reflections propagated by hand
    x112, x220 = (q / (2 * math.pi)) ** 2
    inv_c2 = (x112 - x220 / 4) / 4
    dx = 2 * q * q_err / (2 * math.pi) ** 2
    d_inv_c2 = math.hypot(dx[0] / 4, dx[1] / 16)
    assert fit["c_angstrom"]["stderr"] == pytest.approx(0.5 * inv_c2 ** -1.5 * d_inv_c2, rel=1e-9)
    # volume: the same propagation by finite differences of V(q112, q220)
    def volume(qq):
        x112, x220 = (qq / (2 * math.pi)) ** 2
        inv_a2 = x220 / 8
        return inv_a2 ** -1.0 * ((x112 - 2 * inv_a2) / 4) ** -0.5
    grad = np.array([(volume(q + h) - volume(q - h)) / 2e-7 for h in np.eye(2) * 1e-7])
    assert fit["volume_angstrom3"]["stderr"] == pytest.approx(math.sqrt(np.sum((grad * q_err) ** 2)), rel=1e-5)


def test_lattice_parameters_weighted_errors_scale_with_q_err():
    q = reflection_q_tetragonal(HKLS, A_CISE, C_CISE)
    one = lattice_parameters_tetragonal(HKLS, q, 1e-4)
    two = lattice_parameters_tetragonal(HKLS, q, 2e-4)
    assert two["a_angstrom"]["stderr"] == pytest.approx(2 * one["a_angstrom"]["stderr"], rel=1e-9)
    assert 1e-5 < one["a_angstrom"]["stderr"] < 1e-3


def test_lattice_parameters_bad_input():
    q = reflection_q_tetragonal([(2, 2, 0), (4, 0, 0)], A_CISE, C_CISE)
    with pytest.raises(ValueError, match="independent"):
        lattice_parameters_tetragonal([(2, 2, 0), (4, 0, 0)], q)
    with pytest.raises(ValueError, match="independent"):
        lattice_parameters_tetragonal([(1, 1, 2)], q[:1])
    with pytest.raises(ValueError, match="q values"):
        lattice_parameters_tetragonal(HKLS, q)
    with pytest.raises(ValueError, match="NaN"):
        lattice_parameters_tetragonal(HKLS[:2], [1.88, np.nan])
    with pytest.raises(ValueError, match="> 0"):
        reflection_q_tetragonal((1, 1, 2), 0.0, C_CISE)


def test_scherrer_size():
    dq = 2 * math.pi * 0.9 / 70.0
    assert scherrer_size_nm(dq) == pytest.approx(7.0, rel=1e-12)
    inst = 0.01
    corrected = scherrer_size_nm(math.hypot(dq, inst), instrumental_fwhm_q_inv_angstrom=inst)
    assert corrected == pytest.approx(7.0, rel=1e-12)
    sizes = scherrer_size_nm(np.array([dq, dq / 2]), k=1.0)
    assert sizes == pytest.approx([7.0 / 0.9, 14.0 / 0.9], rel=1e-12)
    with pytest.raises(ValueError, match="instrumental"):
        scherrer_size_nm(0.005, instrumental_fwhm_q_inv_angstrom=0.01)
    with pytest.raises(ValueError, match="instrumental"):
        scherrer_size_nm(-0.01)


def test_debye_waller_recovers_du2():
    du2_true = 0.0123                                  # A^2
    q = reflection_q_tetragonal([(1, 1, 2), (2, 2, 0), (3, 1, 2), (4, 0, 0)], A_CISE, C_CISE)
    ref = np.array([1000.0, 600.0, 400.0, 150.0])
    hot = ref * np.exp(-du2_true * q ** 2)
    du2, err = debye_waller_du2(hot, ref, q)
    assert du2 == pytest.approx(np.full(4, du2_true), abs=1e-9)
    assert np.all(err == 0)
    assert mean_du2(du2, None)[0] == pytest.approx(du2_true, abs=1e-9)

    hot_err, ref_err = np.sqrt(hot), np.sqrt(ref)
    du2, err = debye_waller_du2(hot, ref, q, hot_err, ref_err)
    expected = np.sqrt((hot_err / hot) ** 2 + (ref_err / ref) ** 2) / q ** 2
    assert err == pytest.approx(expected, rel=1e-12)
    mean, mean_err = mean_du2(du2, err)
    assert mean == pytest.approx(du2_true, abs=1e-9)
    assert mean_err == pytest.approx(1 / math.sqrt(np.sum(1 / expected ** 2)), rel=1e-12)
    assert mean_err < err.min()


def test_debye_waller_bad_input():
    with pytest.raises(ValueError, match="> 0"):
        debye_waller_du2([0.0, 1.0], [1.0, 1.0], [1.9, 3.1])
    with pytest.raises(ValueError, match="equal length"):
        debye_waller_du2([1.0, 1.0], [1.0, 1.0], [1.9])
    with pytest.raises(ValueError, match="NaN"):
        debye_waller_du2([np.nan, 1.0], [1.0, 1.0], [1.9, 3.1])
    with pytest.raises(ValueError, match="err"):
        mean_du2([0.01, 0.02], [0.001, 0.0])
    with pytest.raises(ValueError, match="one reflection"):
        mean_du2([0.01])
