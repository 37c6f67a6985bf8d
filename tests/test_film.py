"""The nanoplatelet film on the heating cell: ligand loss, fusion, the SAXS stacking peak, the
zinc-blende WAXS rings and the SAXS geometry of the shipped sample (no IOCs)."""
import math
import time

import numpy as np
import pytest

from trxrd.simulated_devices.physics import load_config
from trxrd.simulated_devices.physics.beamline import BeamlineModel
from trxrd.simulated_devices.physics.config import sample_names
from trxrd.simulated_devices.physics.crystal import ZINCBLENDE_REFLECTIONS, reflection_q, zincblende_profile
from trxrd.simulated_devices.physics.film import PlateletFilmModel


@pytest.fixture(scope="module")
def cfg():
    return load_config("cdse-npl-film")


@pytest.fixture
def film(cfg):
    return PlateletFilmModel(cfg["platelet_film"])


def test_the_sample_file_is_shipped(cfg):
    assert "cdse-npl-film" in sample_names()
    assert cfg["sample"]["structure"] == "zincblende"
    assert cfg["sample"]["a_angstrom"] == cfg["sample"]["c_angstrom"] == 6.05
    assert cfg["saxs"]["model"] == "stacked_platelets"
    assert cfg["heating_cell"]["max_setpoint_c"] >= 350.0
    assert load_config()["saxs"]["model"] == "synthesis"


@pytest.mark.parametrize("overrides, match", [
    ({"saxs": {"model": "spheres"}}, "saxs.model"),
    ({"sample": {"structure": "zincblende", "a_angstrom": 6.05, "c_angstrom": 6.1}}, "cubic"),
    ({"platelet_film": {"loss_temperatures_c": [25.0, 80.0, 300.0], "stacking_distance_nm": [3.8, 2.5]}},
     "per loss temperature"),
    ({"platelet_film": {"loss_temperatures_c": [80.0, 25.0], "stacking_distance_nm": [3.8, 2.5]}}, "increase"),
    ({"platelet_film": {"stacking_distance_nm": [3.8, 3.8, 2.5, 2.5, 1.5, 0.0]}}, "> 0 nm"),
    ({"platelet_film": {"loss_time_s": 0.0}}, "loss_time_s"),
])
def test_config_refuses_bad_film_settings(overrides, match):
    with pytest.raises(ValueError, match=match):
        load_config(overrides=overrides)


def test_equilibrium_distance_is_the_table(film, cfg):
    fc = cfg["platelet_film"]
    for t_c, d_nm in zip(fc["loss_temperatures_c"], fc["stacking_distance_nm"]):
        assert film.equilibrium_distance_nm(t_c) == pytest.approx(d_nm, abs=1e-12)
    assert film.equilibrium_distance_nm(70.0) == pytest.approx(3.15)          # half-way 60 -> 80 C
    assert film.equilibrium_distance_nm(320.0) == pytest.approx(1.25)         # half-way 300 -> 340 C
    assert film.equilibrium_distance_nm(-50.0) == 3.8                         # constant beyond the ends
    assert film.equilibrium_distance_nm(400.0) == 1.0
    assert film.state() == {"stacking_nm": 3.8, "fused": False, "equilibrium_nm": 3.8}


def test_ligand_loss_is_exponential_and_irreversible(film, cfg):
    tau = cfg["platelet_film"]["loss_time_s"]
    film.advance(tau, 80.0)
    assert film.stacking_nm == pytest.approx(2.5 + 1.3 * math.exp(-1.0), abs=1e-12)
    film.advance(9 * tau, 80.0)
    assert abs(film.stacking_nm - 2.5) < 1e-3
    assert film.state()["equilibrium_nm"] == 2.5
    film.advance(100 * tau, 25.0)                       # cooling does not bring the ligands back
    assert film.state() == {"stacking_nm": pytest.approx(2.5, abs=1e-3), "fused": False, "equilibrium_nm": 3.8}
    film.advance(10 * tau, 300.0)
    assert abs(film.stacking_nm - 1.5) < 1e-3
    film.advance(100 * tau, 250.0)
    assert abs(film.stacking_nm - 1.5) < 1e-3
    assert not film.fused


def test_small_steps_integrate_like_one_step(cfg):
    one, many = PlateletFilmModel(cfg["platelet_film"]), PlateletFilmModel(cfg["platelet_film"])
    one.advance(90.0, 300.0)
    for _ in range(900):
        many.advance(0.1, 300.0)
    assert many.stacking_nm == pytest.approx(one.stacking_nm, abs=1e-12)


def test_fusion_after_fusion_time_and_not_before(film, cfg):
    fc = cfg["platelet_film"]
    q = np.linspace(0.05, 0.8, 400)
    film.advance(1000.0, fc["fusion_c"] - 0.1)          # just below: never fuses
    assert not film.fused and film.structure_factor(q).max() > 1.0 + 0.9 * fc["peak_height"]
    film.advance(0.6 * fc["fusion_time_s"], fc["fusion_c"] + 5.0)
    film.advance(100.0, 300.0)                          # the time above fusion_c adds up
    film.advance(0.3 * fc["fusion_time_s"], fc["fusion_c"])
    assert not film.fused and film.structure_factor(q).max() > 1.0 + 0.9 * fc["peak_height"]
    film.advance(0.11 * fc["fusion_time_s"], fc["fusion_c"])
    assert film.fused
    assert np.all(film.structure_factor(q) == 1.0)
    assert np.allclose(film.saxs_intensity(q), fc["background_counts_per_s"] + film.form_intensity(q), rtol=1e-12)
    film.advance(1e4, 25.0)
    assert film.fused                                   # for good


def test_form_factor_is_sinc_squared_without_spread(cfg):
    fc = dict(cfg["platelet_film"], thickness_spread_nm=0.0)
    film = PlateletFilmModel(fc)
    q = np.linspace(0.01, 0.8, 200)                    # A^-1
    x = q * 10.0 * fc["thickness_nm"] / 2
    expected = fc["form_counts_per_s"] * (q * 10.0) ** -2 * (np.sin(x) / x) ** 2 / (
        math.sin(fc["thickness_nm"] / 2) / (fc["thickness_nm"] / 2)) ** 2
    assert np.allclose(film.form_intensity(q), expected, rtol=1e-9)
    assert film.form_intensity(0.01) == pytest.approx(fc["form_counts_per_s"] * 100.0 * (
        math.sin(0.05 * fc["thickness_nm"]) / (0.05 * fc["thickness_nm"])) ** 2 / (
        math.sin(fc["thickness_nm"] / 2) / (fc["thickness_nm"] / 2)) ** 2, rel=1e-9)
    # q -> 0 is guarded: finite, the same as at the floor
    assert np.isfinite(film.form_intensity(np.array([0.0, 1e-9]))).all()
    assert film.form_intensity(0.0) == film.form_intensity(0.001)


@pytest.mark.parametrize("d_nm", [3.8, 2.5, 2.0, 1.5, 1.2, 1.0])
def test_saxs_peak_sits_at_two_pi_over_d(cfg, d_nm):
    model = BeamlineModel(cfg, seed=0)
    film = model.film
    film.stacking_nm = d_nm
    q = np.linspace(0.05, 0.8, 3001)
    step = q[1] - q[0]
    s_q = (film.saxs_intensity(q) - cfg["platelet_film"]["background_counts_per_s"]) / film.form_intensity(q)
    assert abs(q[np.argmax(s_q)] - 2 * math.pi / (d_nm * 10.0)) <= step
    assert s_q.max() == pytest.approx(1.0 + cfg["platelet_film"]["peak_height"], rel=1e-3)
    # the stacking peak stands out of the measured curve: several times the continuum, and a local
    # maximum within 2 % of q* above the dip on its low-q side
    fc = cfg["platelet_film"]
    q_star = film.stacking_q_inv_angstrom()
    continuum = fc["background_counts_per_s"] + film.form_intensity(q_star)
    assert film.saxs_intensity(q_star) / continuum > 5.0
    i_q = film.saxs_intensity(q)
    maxima = [i for i in range(1, len(q) - 1) if i_q[i - 1] < i_q[i] > i_q[i + 1] and abs(q[i] / q_star - 1) < 0.02]
    assert len(maxima) == 1
    low = (q > 0.8 * q_star) & (q < q[maxima[0]])
    assert i_q[maxima[0]] / i_q[low].min() > 1.5


def test_saxs_frames_and_truth_follow_the_film(cfg):
    model = BeamlineModel(cfg, seed=1)
    tr = model.saxs_truth()
    assert tr == {"stacking_nm": 3.8, "fused": False, "equilibrium_nm": 3.8,
                  "cell_temperature_c": cfg["heating_cell"]["ambient_c"]}
    as_cast = model.saxs_frame(0.5)
    ring = np.abs(model.saxs.q - 2 * math.pi / 38.0) < 0.004
    valid = ring & ~model.saxs.mask
    assert valid.sum() > 500
    model.film.stacking_nm = 1.0
    model.film.fused = True
    fused = model.saxs_frame(0.5)
    # the cache is keyed on the film: the 3.8 nm stacking ring is gone after fusion
    assert as_cast[valid].mean() > 4.0 * fused[valid].mean()


def test_film_follows_the_heating_cell(cfg):
    model = BeamlineModel(load_config("cdse-npl-film", overrides={"heating_cell": {"noise_c": 0.0}}), seed=2)
    t0 = time.monotonic()
    model.advance(t0)
    model.cell.setpoint_c, model.cell.enabled = 80.0, True
    model.advance(t0 + 30.0)
    mid = model.saxs_truth()
    assert 2.5 < mid["stacking_nm"] < 3.8 and mid["cell_temperature_c"] > 60.0
    model.advance(t0 + 900.0)
    tr = model.saxs_truth()
    assert abs(tr["cell_temperature_c"] - 80.0) < 0.5
    assert tr["equilibrium_nm"] == pytest.approx(2.5, abs=1e-3)
    assert abs(tr["stacking_nm"] - 2.5) < 1e-3 and tr["fused"] is False
    model.cell.enabled = False                         # cool down: the period stays
    model.advance(t0 + 4000.0)
    tr = model.saxs_truth()
    assert tr["cell_temperature_c"] < 40.0 and tr["equilibrium_nm"] == 3.8
    assert abs(tr["stacking_nm"] - 2.5) < 1e-3


def test_one_long_advance_follows_the_cell_temperature(cfg):
    """A long dt is integrated along the cell's temperature, not at the end temperature."""
    cfg0 = load_config("cdse-npl-film", overrides={"heating_cell": {"noise_c": 0.0, "speedup": 10.0}})
    one, many = BeamlineModel(cfg0, seed=3), BeamlineModel(cfg0, seed=3)
    t0 = time.monotonic()
    for m in (one, many):
        m.advance(t0)
        m.cell.setpoint_c, m.cell.enabled, m.cell.ramp_c_min = 300.0, True, 120.0
    one.advance(t0 + 9.0)                              # 90 model seconds of a 2 C/s ramp
    for k in range(1, 91):
        many.advance(t0 + 0.1 * k)
    assert one.cell.cell_c == pytest.approx(many.cell.cell_c, abs=0.05)
    assert one.saxs_truth()["stacking_nm"] == pytest.approx(many.saxs_truth()["stacking_nm"], abs=2e-3)
    # at the end temperature alone the film would have lost more
    end_only = PlateletFilmModel(cfg0["platelet_film"])
    end_only.advance(90.0, one.cell.cell_c)
    assert one.saxs_truth()["stacking_nm"] > end_only.stacking_nm + 0.05


def test_fusion_in_the_cell_sharpens_the_zincblende_rings(cfg):
    model = BeamlineModel(load_config("cdse-npl-film", overrides={"heating_cell": {"noise_c": 0.0, "speedup": 20.0}}),
                          seed=4)
    fc, s = model.cfg["platelet_film"], model.cfg["sample"]
    assert model.truth()["crystallite_size_nm"] == s["size_nm"] and not model.truth()["film_fused"]
    model.jet.run = True
    model.jet.advance(5.0)
    q111 = reflection_q((1, 1, 1), s["a_angstrom"], s["a_angstrom"])
    q = np.linspace(q111 - 0.3, q111 + 0.3, 601)
    before = model.waxs_profile(q, model.truth())
    model.waxs_frame(0.1)
    assert model._cache["waxs"][0][-1] is False
    t0 = time.monotonic()
    model.advance(t0)
    model.cell.setpoint_c, model.cell.enabled = 350.0, True
    model.advance(t0 + 30.0)                          # 600 model seconds (speed-up 20), most at 350 C
    assert model.saxs_truth()["fused"] and abs(model.saxs_truth()["stacking_nm"] - 1.0) < 1e-3
    tr = model.truth()
    assert tr["film_fused"] and tr["crystallite_size_nm"] == fc["fused_size_nm"]
    after = model.waxs_profile(q, tr)

    def points_above_half(i_q):
        return np.count_nonzero(i_q - i_q.min() > 0.5 * (i_q.max() - i_q.min()))

    assert points_above_half(after) < 0.5 * points_above_half(before)
    model.waxs_frame(0.1)
    assert model._cache["waxs"][0][-1] is True          # the WAXS cache is keyed on the fused state


def test_zincblende_pattern(cfg):
    a = cfg["sample"]["a_angstrom"]
    assert reflection_q((1, 1, 1), a, a) == pytest.approx(2 * math.pi * math.sqrt(3) / a)
    fwhm = 0.05
    q = np.linspace(1.0, 5.5, 20001)
    i_q = zincblende_profile(q, a, fwhm)

    def at(hkl):
        return i_q[np.argmin(np.abs(q - reflection_q(hkl, a, a)))]

    assert i_q.max() == pytest.approx(1.0, abs=1e-3)
    assert q[np.argmax(i_q)] == pytest.approx(2 * math.pi * math.sqrt(3) / a, abs=q[1] - q[0])
    assert at((2, 2, 0)) > at((3, 1, 1)) > at((3, 3, 1)) > at((4, 0, 0)) > at((2, 0, 0))
    assert at((2, 0, 0)) < 0.05 and at((4, 2, 0)) < 0.05 and at((2, 2, 0)) > 0.5
    assert max(ZINCBLENDE_REFLECTIONS, key=ZINCBLENDE_REFLECTIONS.get) == (1, 1, 1)
    # a BeamlineModel with the film puts its strongest ring there, following the static expansion only
    model = BeamlineModel(cfg, seed=5)
    model.jet.run = True
    model.jet.advance(5.0)
    model.shutter_open = True
    tr = model.truth(delay_ps=50.0, pumped=True)
    assert tr["a_angstrom"] == a and tr["reflections"] == {}
    qq = np.linspace(1.5, 2.2, 7001)
    assert qq[np.argmax(model.waxs_profile(qq, tr))] == pytest.approx(2 * math.pi * math.sqrt(3) / a, abs=2e-4)


def test_saxs_geometry_covers_the_stacking_peaks(cfg, tmp_path):
    """The PONI written for the film's SAXS detector puts q* of 3.8 nm outside the beamstop and
    q* of 1.0 nm, with its peak, on full rings."""
    import pyFAI

    model = BeamlineModel(cfg, seed=6)
    poni, _ = model.saxs.write_calibration(tmp_path, "saxs")
    ai = pyFAI.load(str(poni))
    rows, cols = model.saxs.shape
    full_ring_m = min(ai.poni1, rows * ai.detector.pixel1 - ai.poni1, ai.poni2, cols * ai.detector.pixel2 - ai.poni2)
    def q_at(r_m):
        return 4 * math.pi / (ai.wavelength * 1e10) * math.sin(0.5 * math.atan(r_m / ai.dist))

    def width(d_nm):                                   # FWHM of the stacking peak, A^-1
        return 2 * math.pi / (cfg["platelet_film"]["n_stack"] * d_nm * 10.0)

    q_full, q_stop = q_at(full_ring_m), q_at(cfg["saxs"]["beamstop_radius_mm"] * 1e-3)
    assert q_stop < 2 * math.pi / 38.0 - 3 * width(3.8)
    assert 2 * math.pi / 10.0 + 3 * width(1.0) < q_full
    assert q_full == pytest.approx(0.8195, abs=1e-3)
    # the pixels agree with the PONI
    on_edge = np.concatenate([model.saxs.q[0], model.saxs.q[-1], model.saxs.q[:, 0], model.saxs.q[:, -1]])
    assert on_edge.min() == pytest.approx(q_full, rel=5e-3)


def test_a_film_is_in_the_beam_without_the_jet():
    film = BeamlineModel(load_config("cdse-npl-film"), seed=1)
    jet = BeamlineModel(load_config(), seed=1)
    assert not film.jet.flowing and film.sample_fraction() == 1.0
    assert jet.sample_fraction() == 0.0
    with pytest.raises(ValueError, match="holder"):
        load_config(overrides={"sample": {"holder": "cuvette"}})
