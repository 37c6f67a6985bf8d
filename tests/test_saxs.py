"""SAXS reduction: the polydisperse-sphere intensities against sasmodels (the field's reference),
fit recovery on Poisson-noised patterns, the "no particles" criterion, t98 and the growth law,
the stacking peak, the settings, and the live callback's documents (fed directly)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from event_model import compose_run

from trxrd import datakeys as dk
from trxrd.reduction.saxs import (
    SphereTable,
    fit_growth_law,
    fit_spheres,
    fit_stacking_peak,
    growth_rate,
    guinier_radius_nm,
    parse_q,
    stacking_segments,
    time_to_fraction,
)

Q = np.linspace(0.02, 0.40, 400)      # A^-1, what the simulated Pilatus 300K at 1 m sees


def _sasmodels(q, radius_nm, sigma_nm, kind):
    """sasmodels' sphere with polydispersity, converted to <V^2 F^2> in nm^6: its intensity is
    scale / <V> * sum w V^2 F^2 * drho^2 * 1e-4 (V in A^3, drho in 1e-6 A^-2)."""
    from sasmodels.core import load_model
    from sasmodels.direct_model import call_kernel

    kernel = load_model("sphere").make_kernel([q])
    pars = dict(radius=10 * radius_nm, radius_pd=sigma_nm / radius_nm, radius_pd_n=400, radius_pd_nsigma=8,
                radius_pd_type=kind, sld=1.0, sld_solvent=0.0, scale=1.0, background=0.0)
    return call_kernel(kernel, pars)


@pytest.mark.parametrize("kind", ["schulz", "gaussian"])
@pytest.mark.parametrize("radius_nm,sigma_nm", [(1.5, 0.18), (2.2, 0.12), (4.0, 0.6)])
def test_sphere_intensity_matches_sasmodels(kind, radius_nm, sigma_nm):
    table = SphereTable(Q, distribution=kind)
    ours = table.form(radius_nm, sigma_nm)                        # nm^6
    ref = _sasmodels(Q, radius_nm, sigma_nm, kind)                 # cm^-1 per unit volume fraction
    # sasmodels normalises by the mean volume: ours / ref is <V> (A^3) / 1e-4 in nm^6 units
    ratio = ours / ref
    assert np.ptp(ratio) / ratio.mean() < 1e-3
    expected = table.mean_volume_nm3(radius_nm, sigma_nm) * 1e3 / 1e-4 / 1e6
    assert ratio.mean() == pytest.approx(expected, rel=1e-3)


def _pattern(rng, radius_nm, sigma_nm, kind="schulz", peak_counts=3e4, background=500.0):
    """Counts per q bin as an integrated frame gives them (~100 counts/pixel x ~300 pixels at low q)."""
    table = SphereTable(Q, distribution=kind)
    form = table.form(radius_nm, sigma_nm)
    expected = peak_counts * form / form[0] + background
    counts = rng.poisson(expected).astype(float)
    return counts - background, np.sqrt(np.maximum(counts, 1.0))


@pytest.mark.parametrize("kind", ["schulz", "gaussian"])
def test_fit_recovers_radius_and_dispersion_from_noisy_patterns(kind):
    rng = np.random.default_rng(11)
    table = SphereTable(Q, distribution=kind)
    seed = None
    for radius, sigma in ((1.6, 0.17), (1.9, 0.14), (2.2, 0.12)):     # a growing synthesis, 6-11 %
        y, s = _pattern(rng, radius, sigma, kind)
        fit = fit_spheres(Q, y, s, table=table, seed=seed)
        assert fit.particles, fit.reason
        assert fit.value("r_mean_nm") == pytest.approx(radius, rel=0.02)
        assert fit.value("sigma_nm") == pytest.approx(sigma, rel=0.10)
        assert 0.7 < fit.redchi < 1.4
        # the errors describe the scatter: within 4 standard errors
        assert abs(fit.value("r_mean_nm") - radius) < 4 * fit.stderr("r_mean_nm") + 1e-3
        seed = fit


def test_first_frame_starts_from_guinier():
    table = SphereTable(Q)
    form = table.form(2.0, 0.1)
    assert guinier_radius_nm(Q, form) == pytest.approx(2.0, rel=0.1)
    fit = fit_spheres(Q, 1e3 * form / form[0], None, table=table)          # no seed
    assert fit.value("r_mean_nm") == pytest.approx(2.0, rel=1e-3)


def test_no_particles_is_reported_not_fitted_wildly():
    rng = np.random.default_rng(3)
    table = SphereTable(Q)
    counts = rng.poisson(np.full(Q.shape, 20.0)).astype(float)
    fit = fit_spheres(Q, counts - 20.0, np.sqrt(counts), table=table)
    assert not fit.particles
    assert "no particles" in fit.reason and fit.significance < 5
    out = fit.as_dict()
    assert out["r_mean_nm"] == {"value": None, "stderr": None} and out["background"]["value"] is not None
    # the same background with a faint but real particle signal: detected
    y, s = _pattern(rng, 2.0, 0.15, peak_counts=40.0, background=20.0)
    assert fit_spheres(Q, y, s, table=table).particles


def test_t98_and_growth_law_on_a_known_series():
    t = np.arange(0.0, 60.0, 0.1)
    conc = 1.0 - np.exp(-t / 4.0)
    rng = np.random.default_rng(5)
    assert time_to_fraction(t, conc * (1 + rng.normal(0, 0.003, t.size))) == pytest.approx(4 * math.log(50), rel=0.05)
    # r(t) of dr/dt = k / r^2 exactly: r^3 = r0^3 + 3 k t
    k, n, r0 = 0.05, 2.0, 1.5
    r = (r0**3 + 3 * k * t) ** (1 / 3)
    rates = growth_rate(t, r + rng.normal(0, 0.002, t.size), np.full(t.size, 0.002), window_s=3.0)
    law = fit_growth_law(rates["r_nm"], rates["drdt_nm_s"], rates["drdt_err_nm_s"])
    assert law["n"]["value"] == pytest.approx(n, abs=3 * law["n"]["stderr"] + 0.05)
    assert law["k"]["value"] == pytest.approx(k, rel=0.1)


def _stacking(q, d_nm, rng):
    q_star, fwhm = 2 * math.pi / (10 * d_nm), 2 * math.pi / (10 * 12 * d_nm)
    g = fwhm / 2
    expected = 50.0 * q**-2 * (1 + 5.0 * g**2 / ((q - q_star) ** 2 + g**2)) + 100.0
    counts = rng.poisson(expected).astype(float)
    return counts, np.sqrt(np.maximum(counts, 1.0))


def test_stacking_peak_gives_the_period():
    rng = np.random.default_rng(9)
    q = np.linspace(0.06, 0.8, 600)
    seed = None
    for d in (3.8, 2.5, 1.5, 1.0):
        y, s = _stacking(q, d, rng)
        fit = fit_stacking_peak(q, y, s, q_range=(0.08, 0.8), seed=seed)
        assert fit.found, fit.reason
        assert fit.d_nm[0] == pytest.approx(d, abs=0.02)
        assert fit.xi_nm[0] == pytest.approx(12 * d, rel=0.25)
        seed = fit
    flat = rng.poisson(50.0 * q**-2 + 100.0).astype(float)
    assert not fit_stacking_peak(q, flat, np.sqrt(flat), q_range=(0.08, 0.8)).found


def test_segments_report_the_settled_distance():
    class Fit:
        def __init__(self, d):
            self.found, self.d_nm = True, (d, 0.01)

    frames = [{"segment": 0, "segment_kind": "ramp", "time_s": t, "temperature_c": 25 + t, "fit": Fit(3.8 - 0.02 * t)}
              for t in range(10)]
    frames += [{"segment": 1, "segment_kind": "hold", "time_s": 10 + t, "temperature_c": 80.0,
                "fit": Fit(2.5 + 1.0 * math.exp(-t))} for t in range(30)]
    segs = stacking_segments(frames)
    assert [s["kind"] for s in segs] == ["ramp", "hold"]
    assert segs[1]["d_end_nm"]["value"] == pytest.approx(2.5, abs=1e-3)
    assert len(segs[1]["trajectory"]) == 30


def test_q_units_and_settings_refuse_bad_input(tmp_path):
    from trxrd.reduction.settings import SaxsSettings

    assert parse_q("0.02") == 0.02 and parse_q("0.2nm-1") == pytest.approx(0.02) and parse_q("0.3/A") == 0.3
    for bad in ("nan", "-1", "0.2 furlongs", ""):
        with pytest.raises(ValueError, match="q"):
            parse_q(bad)
    poni = tmp_path / "saxs.poni"
    poni.write_text("poni_version: 2\n")
    assert SaxsSettings(poni, q_min="0.3nm-1", q_max=0.3).q_min == pytest.approx(0.03)
    for kwargs, match in (({"q_min": 0.3, "q_max": 0.1}, "below"), ({"distribution": "lognormal"}, "distribution"),
                          ({"background": tmp_path / "missing.h5"}, "background"), ({"npt": 3}, "npt"),
                          ({"stacking_q": (0.5, 0.1)}, "stacking_q"), ({"contrast_cm2": float("nan")}, "contrast"),
                          ({"background_i0": 1e-9}, "background_i0")):
        with pytest.raises(ValueError, match=match):
            SaxsSettings(poni, **kwargs)
    with pytest.raises(ValueError, match="PONI file not found"):
        SaxsSettings(tmp_path / "none.poni")


# -- the live callback, fed with a reduced run's documents -------------------------------------------------
def _reduced_run(times, rng, radius=2.0, sigma=0.15):
    """Documents of a reduced (integrated) injection_series run: I(q) per frame, 30 counts of
    flat background, particles after t = 0."""
    table = SphereTable(Q)
    form = table.form(radius, sigma)
    run = compose_run(metadata={"plan_name": dk.INTEGRATE_PLAN, dk.RAW_PLAN_NAME: "injection_series",
                                dk.RAW_UID: "raw-uid"})
    yield "start", run.start_doc
    keys = {k: {"source": "test", "dtype": "array", "shape": [len(Q)]} for k in (dk.Q, dk.INTENSITY, dk.SIGMA)}
    keys.update({k: {"source": "test", "dtype": "number", "shape": []}
                 for k in (dk.RAW_SEQ_NUM, "reaction_time", "temperature")})
    desc = run.compose_descriptor(name="primary", data_keys=keys)
    yield "descriptor", desc.descriptor_doc
    for k, t in enumerate(times):
        expected = 300.0 + (1e4 * form / form[0] * (1 - math.exp(-t / 4.0)) if t > 0 else np.zeros(Q.shape))
        counts = rng.poisson(expected).astype(float)
        data = {dk.Q: Q, dk.INTENSITY: counts, dk.SIGMA: np.sqrt(np.maximum(counts, 1.0)), dk.RAW_SEQ_NUM: k + 1,
                "reaction_time": t, "temperature": 240.0}
        yield "event", desc.compose_event(data=data, timestamps={key: 0.0 for key in data})
    yield "stop", run.compose_stop()


def _live(tmp_path, **settings):
    from trxrd.reduction.callbacks.saxs import LiveSaxs
    from trxrd.reduction.settings import SaxsSettings

    poni = tmp_path / "saxs.poni"
    poni.write_text("poni_version: 2\n")
    live = LiveSaxs(SaxsSettings(poni, **settings))
    docs = []
    live.subscribe(lambda name, doc: docs.append((name, doc)))
    return live, docs


def test_live_saxs_publishes_frames_and_summary(tmp_path):
    live, docs = _live(tmp_path)
    times = np.concatenate([np.arange(-2.0, 0.0, 0.5), np.arange(0.05, 40.0, 0.1)])     # 10 frames/s
    for name, doc in _reduced_run(times, np.random.default_rng(2)):
        live(name, doc)
    start = next(d for n, d in docs if n == "start")
    assert start["plan_name"] == dk.SAXS_PLAN and start[dk.RAW_UID] == "raw-uid" and "sigma" in start["criterion"]
    frames = [d["data"] for n, d in docs if n == "event" and d["data"].get("frame") is not None
              and "r_mean_nm" in d["data"]]
    assert len(frames) == len(times)
    assert not any(f["particles"] for f in frames[:4])                       # the background frames
    late = [f for f in frames if f["time_s"] > 5]
    assert all(f["particles"] for f in late)
    assert np.median([f["r_mean_nm"] for f in late]) == pytest.approx(2.0, rel=0.01)
    (summary,) = [d["data"] for n, d in docs if n == "event" and "t98_concentration_s" in d["data"]]
    assert summary["t98_concentration_s"] == pytest.approx(4 * math.log(50), rel=0.1)
    assert live.report["frames"][0] == {"frame": 0, "time_s": -2.0, "particles": False,
                                        "reason": "before injection (background)"}
    assert docs[-1][0] == "stop" and docs[-1][1]["exit_status"] == "success"


def test_live_saxs_without_pre_injection_frames_closes_the_run_as_failed(tmp_path):
    live, docs = _live(tmp_path)
    for name, doc in _reduced_run(np.arange(0.25, 5.0, 0.5), np.random.default_rng(2)):
        live(name, doc)
    stop = docs[-1][1]
    assert docs[-1][0] == "stop" and stop["exit_status"] == "fail"
    assert "no pre-injection frames" in stop["reason"]


def test_live_saxs_refuses_a_fit_range_outside_the_detector(tmp_path):
    live, docs = _live(tmp_path, q_min=0.01, q_max=0.9)
    for name, doc in _reduced_run(np.arange(-1.0, 2.0, 0.5), np.random.default_rng(2)):
        live(name, doc)
    assert docs[-1][1]["exit_status"] == "fail" and "outside this detector" in docs[-1][1]["reason"]


def test_a_frame_that_fails_closes_the_run_once_and_the_stop_goes_through(tmp_path):
    live, docs = _live(tmp_path)
    run = list(_reduced_run(np.array([-1.0, 0.5, 1.0]), np.random.default_rng(2)))
    bad = run[4][1]
    del bad["data"][dk.SIGMA]                     # the second frame lacks its errors
    for name, doc in run:
        live(name, doc)                           # nothing raised to the caller
    stops = [d for n, d in docs if n == "stop"]
    assert len(stops) == 1 and stops[0]["exit_status"] == "fail" and "sigma" in stops[0]["reason"]


def test_t98_of_a_falling_series_is_none_and_stacking_ranges_are_checked(tmp_path):
    from trxrd.reduction.settings import SaxsSettings

    t = np.arange(0.0, 30.0, 0.1)
    assert time_to_fraction(t, 1.0 + np.exp(-t / 3.0)) is None          # ripening: the number falls
    poni = tmp_path / "saxs.poni"
    poni.write_text("poni_version: 2\n")
    assert SaxsSettings(poni, stacking_q="0.08:0.8").stacking_q == (0.08, 0.8)
    for bad in ("0.1", "0.1:0.5:0.8", (0.1,), 0.3):
        with pytest.raises(ValueError, match="QMIN:QMAX"):
            SaxsSettings(poni, stacking_q=bad)


def test_a_negative_sphere_term_says_so():
    table = SphereTable(Q)
    form = table.form(2.0, 0.15)
    y = 100.0 - 1e4 * form / form[0]                   # a background subtracted twice over
    fit = fit_spheres(Q, y, np.full(Q.shape, 3.0), table=table)
    assert not fit.particles and "negative" in fit.reason


def test_a_fused_film_has_no_stacking_peak_even_with_form_factor_humps():
    """Platelets of 1.2 nm with a thickness spread: the form factor alone has a broad hump; a
    stack of 12 periods adds a narrow peak. Only the latter is a stacking peak (d within 0.5 %)."""
    q = np.linspace(0.06, 0.8, 700)
    q_nm = 10 * q
    t, spread = 1.2, 0.25
    form = 2 * q_nm**-4 * (1 - np.cos(q_nm * t) * np.exp(-(q_nm * spread) ** 2 / 2))
    rng = np.random.default_rng(4)
    fused = rng.poisson(1e5 * form + 100).astype(float)
    fit = fit_stacking_peak(q, fused, np.sqrt(np.maximum(fused, 1)), q_range=(0.08, 0.8))
    assert not fit.found and "no stacking peak" in fit.reason
    for d in (3.8, 1.0):
        g = math.pi / (12 * d)
        stacked = rng.poisson(1e5 * form * (1 + 6 * g**2 / ((q_nm - 2 * math.pi / d) ** 2 + g**2)) + 100).astype(float)
        fit = fit_stacking_peak(q, stacked, np.sqrt(np.maximum(stacked, 1)), q_range=(0.08, 0.8))
        assert fit.found and fit.d_nm[0] == pytest.approx(d, rel=0.005)
