"""Per-reflection observables on synthetic patterns made here (pseudo-Voigt peaks on a sloped
background with Poisson-like noise), independent of the simulator: known shifts, Debye-Waller
losses, broadening and rise times come back."""
import math

import numpy as np
import pytest

from trxrd.reduction.kinetics import exp_irf, step_irf
from trxrd.reduction.peaks import pseudo_voigt
from trxrd.reduction.reflections import (check_reflections, fit_reflection_kinetics, measure_point, measure_series,
                                         parse_reflection, reflection_q, reflections_for_lattice)

A = 6.05                    # a cubic lattice, not the simulator's PbSe
TRUTH = {"111": (1.2e-3, 3.0, 1.8e-3, 2.0), "200": (0.7e-3, 5.0, 1.2e-3, 1.5), "220": (1.0e-3, 2.0, 2.4e-3, 3.5),
         "222": (1.3e-3, 4.0, 2.8e-3, 2.5)}
FWHM = 0.06
Q = np.linspace(1.5, 3.8, 1150)


def _pattern(t_ps, irf=0.4):
    y = 40.0 + 12.0 * np.exp(-Q / 1.5)
    for label, (e, te, u, tu) in TRUTH.items():
        q0 = reflection_q(tuple(int(c) for c in label), A)
        grow = (lambda tau: step_irf(t_ps, irf) - exp_irf(t_ps, tau, irf)) if t_ps > -50 else (lambda tau: 0.0)
        y = y + pseudo_voigt(Q, q0 * (1 - e * grow(te)), FWHM * (1 + 0.02 * grow(te)),
                             4.0 * math.exp(-u * grow(tu) * q0 ** 2), 0.35)
    return y


def test_parse_and_check_reflections():
    r = parse_reflection("200:1.95:2.15")
    assert (r.hkl, r.q_min, r.q_max, r.label, r.family) == ((2, 0, 0), 1.95, 2.15, "200", "{200}")
    assert parse_reflection("1,1,10:3:3.2").label == "1,1,10"
    for bad, match in (("200", "HKL:QMIN:QMAX"), ("2x0:1:2", "three digits"), ("200:2:1", "QMIN < QMAX"),
                       ("000:1:2", "not a reflection"), ("200:a:2", "numbers")):
        with pytest.raises(ValueError, match=match):
            parse_reflection(bad)
    q = np.linspace(1.5, 3.0, 100)
    with pytest.raises(ValueError, match="outside the data"):
        check_reflections([parse_reflection("400:3.9:4.2")], q)
    with pytest.raises(ValueError, match="overlapping"):
        check_reflections([parse_reflection("200:1.9:2.1"), parse_reflection("111:1.7:1.95")], q)
    with pytest.raises(ValueError, match="twice"):
        check_reflections([parse_reflection("200:1.9:2.1"), parse_reflection("200:2.2:2.3")], q)
    assert [r.label for r in reflections_for_lattice(["200", "111"], 6.12, half_width=0.07)] == ["200", "111"]


def test_measure_point_recovers_shift_broadening_and_debye_waller():
    rng = np.random.default_rng(3)
    refl = reflections_for_lattice(list(TRUTH), A, half_width=2 * FWHM)
    ref, on = _pattern(-100.0), _pattern(1000.0)
    sigma = np.sqrt(ref) * 0.01                                        # counts ~ 1e4 per bin
    point = measure_point(Q, on + rng.normal(0, sigma), ref + rng.normal(0, sigma), sigma, sigma, refl)
    for label, (e, _, u, _) in TRUTH.items():
        p = point[label]
        assert p["shift"] == pytest.approx(-e, abs=4 * p["shift_err"] + 2e-5)
        assert p["du2_A2"] == pytest.approx(u, abs=4 * p["du2_err"] + 5e-5)
        assert p["fwhm_change"] == pytest.approx(0.02 * FWHM, abs=4 * p["fwhm_err"] + 2e-4)
        assert 0 < p["shift_err"] < 2e-4 and 0 < p["du2_err"] < 5e-4


def test_series_time_constants_per_reflection():
    rng = np.random.default_rng(5)
    delays = np.concatenate([np.arange(-2.0, 2.0, 0.4), np.geomspace(2.5, 40, 18)])
    refl = reflections_for_lattice(list(TRUTH), A, half_width=2 * FWHM)
    ref = _pattern(-100.0)
    sigma = np.sqrt(ref) * 0.01
    d = np.array([_pattern(t) + rng.normal(0, sigma) - ref - rng.normal(0, sigma) for t in delays])
    err = np.tile(sigma * math.sqrt(2), (delays.size, 1))
    series = fit_reflection_kinetics(measure_series(Q, delays, d, err, np.tile(ref, (delays.size, 1)), refl))
    assert series.common["t0_ps"] == pytest.approx(0.0, abs=0.3)
    for row in series.anisotropy():
        e, te, u, tu = TRUTH[row["hkl"]]
        assert row["tau_shift_ps"]["value"] == pytest.approx(te, rel=0.1), row
        assert row["shift_max"]["value"] == pytest.approx(-e, rel=0.05), row
        assert row["tau_du2_ps"]["value"] == pytest.approx(tu, rel=0.3), row
        assert row["du2_max_A2"]["value"] == pytest.approx(u, rel=0.15), row
    lattice = series.lattice[-1]
    assert lattice["a_angstrom_ref"]["value"] == pytest.approx(A, abs=2e-4)
    assert lattice["a_change"]["value"] > 0                                   # the lattice expands
    out = series.as_dict()
    assert [r["hkl"] for r in out["reflections"]] == ["111", "200", "220", "222"]
    assert set(out["reflections"][0]["points"][0]) >= {"delay_ps", "shift", "shift_err", "du2_A2", "du2_err",
                                                       "fwhm", "fwhm_err"}
    with pytest.raises(ValueError, match="too few"):
        fit_reflection_kinetics(measure_series(Q, delays[:4], d[:4], err[:4], np.tile(ref, (4, 1)), refl))
