"""Lattice thermometry: calibration of peak position vs temperature and its inversion."""
from __future__ import annotations

import json

import numpy as np
import pytest

from trxrd.reduction.thermometry import calibrate_thermometer, lattice_temperature, temperature_rise

Q0, ALPHA, NOISE = 1.88, 3.7e-5, 1e-5          # A^-1, 1/K, A^-1
T_C = np.linspace(25.0, 170.0, 12)


def q_of_t(t_c):
    return Q0 * (1 - ALPHA * (np.asarray(t_c) - 25.0))


@pytest.fixture
def calibration():
    q = q_of_t(T_C) + np.random.default_rng(11).normal(0, NOISE, T_C.size)
    return calibrate_thermometer(T_C, q, np.full(T_C.size, NOISE))


def test_calibration_slope_and_expansion(calibration):
    assert calibration.coefficients[1] == pytest.approx(-Q0 * ALPHA, rel=0.05)
    assert calibration.slope(100.0) == pytest.approx(-Q0 * ALPHA, rel=0.05)
    assert calibration.expansion_per_k == pytest.approx(-ALPHA, rel=0.05)
    assert 0 < calibration.expansion_per_k_err < 0.05 * ALPHA
    assert abs(calibration.expansion_per_k + ALPHA) < 3 * calibration.expansion_per_k_err
    assert calibration.reference_temperature_c == 25.0
    assert calibration.temperature_range_c == (25.0, 170.0)
    doc = json.loads(json.dumps(calibration.as_dict()))
    assert doc["quantity"] == "q_inv_angstrom" and doc["degree"] == 1 and len(doc["covariance"]) == 2


def test_inversion_at_100_c(calibration):
    t, err = calibration.temperature(q_of_t(100.0), NOISE)
    assert t == pytest.approx(100.0, abs=3.0)
    assert abs(t - 100.0) < 3 * err
    # error: the position noise over the slope, plus a little from the calibration
    assert NOISE / (Q0 * ALPHA) < err < 1.5 * NOISE / (Q0 * ALPHA)
    temps, errs = lattice_temperature(calibration, q_of_t([40.0, 100.0, 160.0]))
    assert temps == pytest.approx([40.0, 100.0, 160.0], abs=3.0)
    assert temps.shape == errs.shape == (3,)
    assert np.all(errs > 0)          # the calibration's own uncertainty remains without position_err
    assert lattice_temperature(calibration, q_of_t(60.0))[0].shape == (1,)


def test_temperature_rise_of_40_k(calibration):
    rng = np.random.default_rng(2)
    off = q_of_t(30.0) + rng.normal(0, NOISE)
    on = q_of_t(70.0) + rng.normal(0, NOISE)
    rise, err = temperature_rise(calibration, on, off, NOISE)
    assert rise == pytest.approx(40.0, abs=3.0)
    assert abs(rise - 40.0) < 3 * err
    rises, errs = temperature_rise(calibration, q_of_t([70.0, 95.0]), q_of_t([30.0, 25.0]))
    assert rises == pytest.approx([40.0, 70.0], abs=3.0)
    # without position errors only the slope uncertainty remains: ~rise * relative slope error
    rel_slope_err = np.sqrt(calibration.covariance[1, 1]) / abs(calibration.coefficients[1])
    assert errs == pytest.approx(rises * rel_slope_err, rel=1e-6)


def test_lattice_parameter_has_positive_slope_and_degree_2_inverts():
    a_c = 5.78 * (1 + 1.0e-5 * (T_C - 25.0) + 4e-8 * (T_C - 25.0) ** 2)
    cal = calibrate_thermometer(T_C, a_c, degree=2, quantity="a_angstrom")
    assert cal.degree == 2 and cal.slope(25.0) > 0
    assert cal.coefficients == pytest.approx([5.78, 5.78e-5, 5.78 * 4e-8], rel=1e-6)
    t, _ = cal.temperature(5.78 * (1 + 1.0e-5 * 110.0 + 4e-8 * 110.0 ** 2))
    assert t == pytest.approx(135.0, abs=1e-6)


def test_extrapolation_limit(calibration):
    # 20 % of the 145 K span: down to -4 C and up to 199 C
    assert calibration.extrapolation_limits_c == pytest.approx((-4.0, 199.0))
    assert calibration.temperature(q_of_t(195.0))[0] == pytest.approx(195.0, abs=3.0)
    with pytest.raises(ValueError, match="beyond the calibration"):
        calibration.temperature(q_of_t(205.0))
    with pytest.raises(ValueError, match="beyond the calibration"):
        lattice_temperature(calibration, q_of_t([100.0, -10.0]))


def test_bad_input(calibration):
    q = q_of_t(T_C)
    with pytest.raises(ValueError, match="NaN"):
        calibrate_thermometer(T_C, np.where(T_C > 100, np.nan, q))
    with pytest.raises(ValueError, match="equal length"):
        calibrate_thermometer(T_C, q[:-1])
    with pytest.raises(ValueError, match="needs >= 3 points"):
        calibrate_thermometer(T_C[:2], q[:2])
    with pytest.raises(ValueError, match="degree"):
        calibrate_thermometer(T_C, q, degree=0)
    with pytest.raises(ValueError, match="> 0"):
        calibrate_thermometer(T_C, q, np.zeros_like(q))
    with pytest.raises(ValueError, match="not monotonic"):
        calibrate_thermometer(T_C, 1.88 + 1e-6 * (T_C - 100.0) ** 2, degree=2)
    with pytest.raises(ValueError, match="NaN"):
        calibration.temperature([np.nan])
    with pytest.raises(ValueError, match="position_err"):
        temperature_rise(calibration, 1.875, 1.88, -1e-5)
