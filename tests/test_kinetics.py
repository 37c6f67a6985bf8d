"""Pump-probe kinetics model and fits (trxrd.reduction.kinetics): closed forms checked against
numerical convolution, and parameter recovery from noisy simulated delay scans."""
import json
import warnings

import numpy as np
import pytest

from trxrd.reduction.kinetics import (MODEL_NAMES, KineticsFit, exp_irf, fit_kinetics, fit_kinetics_auto,
                                kinetics_model, step_irf)

SEED = 20240611
NOISE = 0.003
# A typical delay scan: dense across time zero, then logarithmic out to 10 ns (50 points).
DELAY_PS = np.concatenate([np.linspace(-200, 200, 12), np.geomspace(250, 10_000, 38)])
BIEXP_TRUTH = dict(t0_ps=5.0, irf_fwhm_ps=79.0, amplitudes=[-0.28, -0.12], taus_ps=[150.0, 2500.0])
EXP_TRUTH = dict(t0_ps=-3.0, irf_fwhm_ps=79.0, amplitudes=[-0.3], taus_ps=[600.0])


def noisy(truth: dict, seed_offset: int) -> np.ndarray:
    """The model curve at DELAY_PS plus Gaussian noise of NOISE (reproducible)."""
    rng = np.random.default_rng(SEED + seed_offset)
    return kinetics_model(DELAY_PS, **truth) + rng.normal(0.0, NOISE, DELAY_PS.size)


ERR = np.full(DELAY_PS.size, NOISE)


@pytest.fixture(scope="module")
def biexp_signal():
    return noisy(BIEXP_TRUTH, 0)


@pytest.fixture(scope="module")
def exp_signal():
    return noisy(EXP_TRUTH, 1)


@pytest.fixture(scope="module")
def biexp_fit(biexp_signal):
    return fit_kinetics(DELAY_PS, biexp_signal, ERR, n_components=2)


# --- closed forms ------------------------------------------------------------------------

def test_exp_irf_matches_numerical_convolution():
    dt = 0.0625  # exact in binary, so t0 = 7 ps falls exactly on a grid point
    t = np.arange(-3200, 9601) * dt  # -200 .. 600 ps
    tau, fwhm, t0 = 30.0, 20.0, 7.0
    shifted = t - t0
    # H * exp sampled with H(0) = 1/2 (the midpoint value) so the step costs no O(dt) error
    decay = np.where(shifted > 0, np.exp(-np.clip(shifted, 0, None) / tau), 0.0)
    decay[shifted == 0] = 0.5
    sigma = fwhm / (2 * np.sqrt(2 * np.log(2)))
    kt = np.arange(-int(8 * sigma / dt), int(8 * sigma / dt) + 1) * dt
    kernel = np.exp(-0.5 * (kt / sigma) ** 2)
    kernel /= kernel.sum()
    numeric = np.convolve(decay, kernel, mode="same")
    inside = (t > -150) & (t < 500)
    np.testing.assert_allclose(exp_irf(t[inside], tau, fwhm, t0), numeric[inside], rtol=0, atol=1e-3)


def test_exp_irf_without_irf_is_step_exponential():
    t = np.array([-10.0, -1e-9, 0.0, 5.0, 50.0])
    np.testing.assert_allclose(exp_irf(t, 20.0, 0.0), [0, 0, 1, np.exp(-0.25), np.exp(-2.5)], rtol=1e-12)
    np.testing.assert_array_equal(step_irf(t, 0.0), [0, 0, 1, 1, 1])


def test_exp_irf_stable_far_from_time_zero():
    t = np.array([-1e5, -50.0, 0.0, 3.0, 50.0, 1e6])
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        narrow = exp_irf(t, 10.0, 1.0)
        short_tau = exp_irf(t, 0.01, 100.0)  # tau far below the IRF: large s / tau
    for values in (narrow, short_tau):
        assert np.all(np.isfinite(values))
        assert np.all((values >= 0) & (values <= 1))
    assert narrow[0] == pytest.approx(0.0, abs=1e-300)
    assert narrow[-1] == pytest.approx(0.0, abs=1e-300)
    assert narrow[4] == pytest.approx(np.exp(-5.0) * np.exp(0.5 * (1 / 2.3548 / 10) ** 2), rel=1e-3)


def test_exp_irf_integrates_to_tau():
    tau, fwhm = 50.0, 30.0
    t = np.arange(-500.0, 5000.0, 0.25)
    assert np.trapezoid(exp_irf(t, tau, fwhm, 12.0), t) == pytest.approx(tau, rel=1e-6)


def test_step_irf_is_long_tau_limit_and_half_at_t0():
    t = np.linspace(-300, 300, 61)
    np.testing.assert_allclose(step_irf(t, 80.0, 10.0), exp_irf(t, 1e12, 80.0, 10.0), rtol=0, atol=1e-9)
    assert step_irf(10.0, 80.0, 10.0) == pytest.approx(0.5, abs=1e-15)


def test_kinetics_model_sums_components():
    t = np.linspace(-100, 1000, 23)
    expected = (-0.2 * exp_irf(t, 50, 30, 4) + 0.1 * exp_irf(t, 400, 30, 4) - 0.05 * step_irf(t, 30, 4))
    got = kinetics_model(t, t0_ps=4, irf_fwhm_ps=30, amplitudes=[-0.2, 0.1], taus_ps=[50, 400], offset=-0.05)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="amplitudes"):
        kinetics_model(t, t0_ps=0, irf_fwhm_ps=30, amplitudes=[1, 2], taus_ps=[10])


# --- fits --------------------------------------------------------------------------------

def test_biexp_recovery(biexp_fit):
    fit = biexp_fit
    assert isinstance(fit, KineticsFit)
    assert fit.success and fit.model == "biexp" and fit.n_components == 2
    assert fit.ndata == DELAY_PS.size and fit.nvarys == 6
    assert fit.value("tau1_ps") == pytest.approx(150.0, rel=0.10)
    assert fit.value("tau2_ps") == pytest.approx(2500.0, rel=0.25)
    assert fit.value("t0_ps") == pytest.approx(5.0, abs=10.0)
    assert fit.value("irf_fwhm_ps") == pytest.approx(79.0, rel=0.30)
    for name, truth in (("tau1_ps", 150.0), ("t0_ps", 5.0)):
        assert abs(fit.value(name) - truth) < 3 * fit.stderr(name), name
    for name in ("a1", "a2", "tau1_ps", "tau2_ps", "t0_ps", "irf_fwhm_ps"):
        assert fit.stderr(name) is not None and 0 < fit.stderr(name) < np.inf, name
    assert fit.value("tau1_ps") < fit.value("tau2_ps")
    assert 0.5 < fit.redchi < 1.6


def test_fit_result_outputs(biexp_fit, biexp_signal):
    fit = biexp_fit
    d = fit.as_dict()
    assert list(d) == ["t0_ps", "tau1_ps", "a1", "tau2_ps", "a2", "irf_fwhm_ps",
                       "redchi", "aic", "bic", "ndata"]
    assert d["tau2_ps"]["value"] == fit.value("tau2_ps") and d["tau2_ps"]["stderr"] == fit.stderr("tau2_ps")
    json.dumps(d)
    assert fit.summary().startswith("biexp: tau1 = ")
    assert "tau2 = " in fit.summary() and "IRF " in fit.summary() and "redchi " in fit.summary()
    residual = (biexp_signal - fit.evaluate(DELAY_PS)) / NOISE
    assert np.sum(residual ** 2) == pytest.approx(fit.chisqr, rel=1e-9)


def test_fixed_irf_reports_no_stderr(exp_signal):
    fit = fit_kinetics(DELAY_PS, exp_signal, ERR, n_components=1, irf_fwhm_ps=75.0)
    assert fit.model == "exp" and fit.nvarys == 3
    assert fit.value("irf_fwhm_ps") == 75.0
    assert fit.stderr("irf_fwhm_ps") is None
    assert fit.as_dict()["irf_fwhm_ps"] == {"value": 75.0, "stderr": None}
    assert "null" in json.dumps(fit.as_dict())
    assert fit.value("tau1_ps") == pytest.approx(600.0, rel=0.05)


def test_fixed_t0_and_free_irf_guess(exp_signal):
    fit = fit_kinetics(DELAY_PS, exp_signal, ERR, n_components=1, t0_ps=-3.0, vary_t0=False,
                       irf_fwhm_ps=40.0, vary_irf=True)
    assert fit.value("t0_ps") == -3.0 and fit.stderr("t0_ps") is None
    assert fit.stderr("irf_fwhm_ps") is not None
    assert fit.value("irf_fwhm_ps") == pytest.approx(79.0, rel=0.30)


def test_unweighted_fit(exp_signal):
    fit = fit_kinetics(DELAY_PS, exp_signal, n_components=1)
    assert fit.value("tau1_ps") == pytest.approx(600.0, rel=0.05)
    assert fit.redchi == pytest.approx(NOISE ** 2, rel=0.5)  # unweighted: mean squared residual


def test_offset_recovered():
    truth = dict(t0_ps=0.0, irf_fwhm_ps=79.0, amplitudes=[-0.25], taus_ps=[300.0], offset=-0.05)
    fit = fit_kinetics(DELAY_PS, noisy(truth, 2), ERR, n_components=1, offset=True)
    assert fit.value("offset") == pytest.approx(-0.05, abs=0.005)
    assert abs(fit.value("offset") + 0.05) < 3 * fit.stderr("offset")
    assert fit.value("tau1_ps") == pytest.approx(300.0, rel=0.10)
    assert "offset" in fit.as_dict() and "offset = " in fit.summary()


def test_auto_picks_exp_for_single_exponential(exp_signal):
    fit = fit_kinetics_auto(DELAY_PS, exp_signal, ERR)
    assert fit.model == "exp"
    assert [row["model"] for row in fit.comparison] == ["exp", "biexp"]
    assert set(fit.comparison[0]) == {"model", "redchi", "aic", "bic"}


def test_auto_picks_biexp_for_biexponential(biexp_signal):
    fit = fit_kinetics_auto(DELAY_PS, biexp_signal, ERR)
    assert fit.model == "biexp"
    assert fit.comparison[1]["aic"] < fit.comparison[0]["aic"] - 10
    assert fit.value("tau1_ps") == pytest.approx(150.0, rel=0.10)


def test_model_names():
    assert MODEL_NAMES == {1: "exp", 2: "biexp", 3: "triexp"}


@pytest.mark.parametrize("change, match", [
    (dict(signal=np.zeros(49)), "signal has 49"),
    (dict(delay_ps=np.r_[np.nan, DELAY_PS[1:]]), "delay_ps contains NaN"),
    (dict(signal=np.r_[np.inf, np.zeros(49)]), "signal contains NaN or inf"),
    (dict(signal_err=np.r_[np.nan, ERR[1:]]), "signal_err contains NaN"),
    (dict(signal_err=np.r_[0.0, ERR[1:]]), "signal_err must be > 0"),
    (dict(signal_err=-ERR), "signal_err must be > 0"),
    (dict(signal_err=ERR[:10]), "signal_err has 10 points"),
    (dict(n_components=0), "n_components must be an integer >= 1"),
    (dict(irf_fwhm_ps=-5.0), "irf_fwhm_ps must be finite and >= 0"),
    (dict(delay_ps=DELAY_PS[:6], signal=np.zeros(6), signal_err=ERR[:6]), "too few"),
    (dict(vary_t0=False), "vary_t0=False needs"),
])
def test_bad_input_raises(change, match):
    args = dict(delay_ps=DELAY_PS, signal=np.zeros(DELAY_PS.size), signal_err=ERR, n_components=2)
    args.update(change)
    with pytest.raises(ValueError, match=match):
        fit_kinetics(args.pop("delay_ps"), args.pop("signal"), args.pop("signal_err"), **args)


def test_fit_onset_finds_time_zero_and_refuses_a_flat_signal():
    from trxrd.reduction.kinetics import fit_onset, onset_problem

    rng = np.random.default_rng(7)
    t = np.arange(-150.0, 151.0, 10.0) + 12.0
    errors = []
    for _ in range(10):
        y = kinetics_model(t, t0_ps=20.0, irf_fwhm_ps=79.0, amplitudes=[-0.21, -0.09], taus_ps=[150.0, 2500.0])
        fit = fit_onset(t, y + rng.normal(0, 0.003, t.size), np.full(t.size, 0.003))
        assert onset_problem(fit, t) is None and fit.params["significance"][0] > 20
        errors.append(fit.value("t0_ps") - 20.0)
        assert fit.value("irf_fwhm_ps") == pytest.approx(79.0, rel=0.15)
    assert abs(np.mean(errors)) < 1.5 and np.std(errors) < 1.5        # early by ~1 ps: the documented bias
    flat = fit_onset(t, rng.normal(0, 0.003, t.size), np.full(t.size, 0.003))
    assert "no significant onset" in onset_problem(flat, t)
    edge = kinetics_model(t, t0_ps=160.0, irf_fwhm_ps=20.0, amplitudes=[-0.3], taus_ps=[1000.0])
    problem = onset_problem(fit_onset(t, edge + rng.normal(0, 0.003, t.size), np.full(t.size, 0.003)), t)
    assert problem is not None
