"""The PbS nanocrystal mesocrystal of the simulator: config refusals, the [110]-zone geometry and
cross-correlation peaks, the Voronoi grain map, the rendered spots as pyFAI sees them, and the
powder samples left as they were (no IOCs)."""
import json
import math

import numpy as np
import pytest

from trxrd.cli import main
from trxrd.simulated_devices.physics import load_config
from trxrd.simulated_devices.physics.beamline import BeamlineModel
from trxrd.simulated_devices.physics.config import sample_names
from trxrd.simulated_devices.physics.detector import DetectorGeometry
from trxrd.simulated_devices.physics.mesocrystal import MesocrystalModel, wrap_deg

SAMPLE = "pbs-mesocrystal"


@pytest.fixture(scope="module")
def cfg():
    return load_config(SAMPLE)


@pytest.fixture(scope="module")
def beamline(cfg):
    return BeamlineModel(cfg, seed=7)


@pytest.fixture(scope="module")
def meso(beamline):
    return beamline.mesocrystal


@pytest.fixture(scope="module")
def large():
    """The default film widened to 80 x 80 um (about 900 domains) for the statistics."""
    cfg = load_config(SAMPLE, overrides={"mesocrystal": {"extent_um": [-40.0, 40.0, -40.0, 40.0]}})
    return MesocrystalModel(cfg["mesocrystal"], cfg["sample"])


def _positions(meso, want, step_um=0.31):
    """Stage positions over [-6, 6] um whose truth has every key: value of *want*."""
    grid = np.arange(-6.0, 6.0, step_um)
    for x in grid:
        for y in grid:
            t = meso.truth_at(float(x), float(y))
            if all(t[k] == v for k, v in want.items()):
                yield float(x), float(y), t


def _first(meso, **want):
    return next(_positions(meso, want))


# ---- sample file and config ------------------------------------------------------------------
def test_the_sample_file_is_shipped(cfg):
    assert SAMPLE in sample_names()
    s, w = cfg["sample"], cfg["waxs"]
    assert s["structure"] == "rocksalt" and s["a_angstrom"] == s["c_angstrom"] == 5.950
    assert s["holder"] == "film"
    assert w["model"] == "mesocrystal" and w["detector"] == "pilatus300k" and w["beamstop_radius_mm"] > 0
    x0, x1, y0, y1 = cfg["mesocrystal"]["extent_um"]
    assert x0 <= -6 and x1 >= 6 and y0 <= -6 and y1 >= 6
    default = load_config()
    assert default["waxs"]["model"] == "powder" and default["waxs"]["beamstop_radius_mm"] == 0.0


@pytest.mark.parametrize("overrides, match", [
    ({"waxs": {"model": "single_crystal"}}, "waxs.model"),
    ({"waxs": {"model": "mesocrystal"}}, "sample.structure"),          # the default sample is chalcopyrite
    ({"waxs": {"beamstop_radius_mm": -1.0}}, "waxs.beamstop_radius_mm"),
    ({"mesocrystal": {"extent_um": [5.0, -5.0, -5.0, 5.0]}}, "mesocrystal.extent_um"),
    ({"mesocrystal": {"extent_um": [-5.0, 5.0, 5.0, 5.0]}}, "mesocrystal.extent_um"),
    ({"mesocrystal": {"extent_um": [-5.0, 5.0, -5.0]}}, "mesocrystal.extent_um"),
    ({"mesocrystal": {"empty_fraction": 1.5}}, "mesocrystal.empty_fraction"),
    ({"mesocrystal": {"al_visible_fraction": -0.1}}, "mesocrystal.al_visible_fraction"),
    ({"mesocrystal": {"spot_height_variation": 1.0}}, "mesocrystal.spot_height_variation"),
    ({"mesocrystal": {"sl_radial_fwhm_inv_angstrom": 0.0}}, "mesocrystal.sl_radial_fwhm_inv_angstrom"),
    ({"mesocrystal": {"sl_azimuthal_fwhm_deg": -8.0}}, "mesocrystal.sl_azimuthal_fwhm_deg"),
    ({"mesocrystal": {"sl_c_over_a": 0.0}}, "mesocrystal.sl_c_over_a"),
    ({"mesocrystal": {"domain_area_um2": 0.0}}, "mesocrystal.domain_area_um2"),
    ({"mesocrystal": {"border_um": -0.5}}, "mesocrystal.border_um"),
    ({"mesocrystal": {"disorder_fwhm_deg": -1.0}}, "mesocrystal.disorder_fwhm_deg"),
])
def test_config_refuses_bad_mesocrystal_settings(overrides, match):
    with pytest.raises(ValueError, match=match):
        load_config(overrides=overrides)


def test_a_mesocrystal_needs_rock_salt():
    with pytest.raises(ValueError, match="rock-salt"):
        load_config(SAMPLE, overrides={"sample": {"structure": "zincblende"}})


# ---- geometry of the [110] zone --------------------------------------------------------------
def test_angles_rings_and_ccf_peaks(meso, cfg):
    t = meso.truth()
    json.dumps(t)
    assert t["sl_c_over_a"] == 1.22
    assert t["sl_c_angstrom"] == pytest.approx(1.22 * t["sl_a_angstrom"])
    assert t["beta_deg"] == pytest.approx(40.8, abs=0.05)
    assert t["theta_deg"] == pytest.approx(35.26, abs=0.01)
    q = t["q_inv_angstrom"]
    a_sl, c_sl, a_al = t["sl_a_angstrom"], t["sl_c_angstrom"], t["al_a_angstrom"]
    assert q["sl_112"] == pytest.approx(2 * math.pi * math.sqrt(2 / a_sl**2 + 4 / c_sl**2))
    assert q["sl_112"] == pytest.approx(0.172, rel=0.01)                     # near the published q_4
    assert q["al_111"] == pytest.approx(2 * math.pi * math.sqrt(3) / a_al)
    assert q["al_200"] == pytest.approx(4 * math.pi / a_al)
    assert q["sl_110"] == pytest.approx(2 * math.pi * math.sqrt(2) / t["sl_a_angstrom"])
    assert q["sl_002"] == pytest.approx(4 * math.pi / t["sl_c_angstrom"])
    expected = [-166.0, -95.4, -84.5, -14.0, 14.0, 84.5, 95.4, 166.0]
    assert t["ccf_peaks_deg"] == sorted(t["ccf_peaks_deg"])
    assert np.allclose(t["ccf_peaks_deg"], expected, atol=0.2)
    # the AL azimuthal width: Scherrer of 6 nm at q(111) in quadrature with the disorder
    scherrer_deg = math.degrees(2 * math.pi * 0.9 / 60.0 / q["al_111"])
    assert t["azimuthal_fwhm_deg"]["al_111"] == pytest.approx(math.hypot(scherrer_deg, 10.0))
    assert len(t["grains"]) == len(meso.seeds_um)


def _in_plane_azimuth_deg(g_hkl, metric):
    """Azimuth from [001] of a reciprocal vector of the [110] zone: its components along the
    in-plane unit vectors [001] and [1-10], from the reciprocal metric (diag 1/a^2, 1/a^2, 1/c^2)."""
    g = np.asarray(g_hkl, float) * np.sqrt(np.diag(metric))      # Cartesian (tetragonal axes)
    along_001, along_1m10 = g[2], (g[0] - g[1]) / math.sqrt(2)
    assert abs(g[0] + g[1]) < 1e-12                               # in the zone: g . [110] = 0
    return math.degrees(math.atan2(along_1m10, along_001)), 2 * math.pi * float(np.linalg.norm(g))


def test_spot_azimuths_are_the_zone_geometry(meso):
    """The offsets from omega and the ring q follow from the reciprocal vectors themselves."""
    a, c, a_al = meso.sl_a_angstrom, meso.sl_c_angstrom, meso.al_a_angstrom
    sl, al = np.diag([a ** -2, a ** -2, c ** -2]), np.diag([a_al ** -2] * 3)
    checks = [("sl_112", (1, -1, 2), sl), ("sl_112", (1, -1, -2), sl), ("sl_110", (1, -1, 0), sl),
              ("sl_002", (0, 0, 2), sl), ("al_111", (1, -1, 1), al), ("al_111", (-1, 1, 1), al),
              ("al_200", (0, 0, 2), al)]
    for ring, hkl, metric in checks:
        az, q = _in_plane_azimuth_deg(hkl, metric)
        offsets = np.asarray(meso.offsets_deg[ring])
        assert np.min(np.abs(wrap_deg(offsets - az))) < 1e-9, (ring, hkl, az)
        assert q == pytest.approx(meso.q[ring])


def test_ccf_peaks_for_another_c_over_a():
    cfg = load_config(SAMPLE, overrides={"mesocrystal": {"sl_c_over_a": 1.0}})
    t = MesocrystalModel(cfg["mesocrystal"], cfg["sample"]).truth()
    theta = math.degrees(math.atan(1 / math.sqrt(2)))
    assert t["beta_deg"] == pytest.approx(theta)             # c = a: (1,-1,2) parallel to AL (1,-1,1)
    peaks = sorted([-(90 + 2 * theta), -90, -90, -(90 - 2 * theta), 90 - 2 * theta, 90, 90, 90 + 2 * theta])
    assert np.allclose(t["ccf_peaks_deg"], peaks, atol=1e-9)


# ---- grain map -------------------------------------------------------------------------------
def test_grain_map_is_deterministic(cfg, meso):
    again = MesocrystalModel(cfg["mesocrystal"], cfg["sample"])
    assert again.truth() == meso.truth()
    for x, y in ((1.2, -0.4), (-3.3, 4.1), (5.0, 5.0)):
        assert again.truth_at(x, y) == meso.truth_at(x, y) == meso.truth_at(x + 1e-7, y - 1e-7)
        assert again.spots_at(x, y) == meso.spots_at(x + 1e-7, y)
    other = load_config(SAMPLE, overrides={"mesocrystal": {"grain_seed": 2}})
    assert MesocrystalModel(other["mesocrystal"], other["sample"]).truth()["grains"] != meso.truth()["grains"]


def test_domain_areas_and_fractions(large):
    """Poisson-Voronoi: mean cell area 1 / density, coefficient of variation 0.53; holes take
    empty_fraction of the domains; borders take about L_A * border of the area, with the boundary
    length per area L_A = 2 sqrt(density)."""
    c = large.cfg
    step = 0.1
    g = np.arange(-40.0 + step / 2, 40.0, step)
    xx, yy = np.meshgrid(g, g)
    m = large.domain_map(xx, yy)
    assert m["on_film"].all()
    inner = (np.abs(large.seeds_um) < 30.0).all(axis=1)          # cells well inside the film
    areas = np.bincount(m["domain"].ravel(), minlength=len(large.seeds_um))[inner] * step ** 2
    assert areas.mean() == pytest.approx(c["domain_area_um2"], rel=0.08)
    assert 0.45 < areas.std() / areas.mean() < 0.62
    in_film = np.unique(m["domain"])
    assert large.empty[in_film].mean() == pytest.approx(c["empty_fraction"], abs=0.035)
    assert m["empty"].mean() == pytest.approx(c["empty_fraction"], abs=0.04)
    band = 2.0 * math.sqrt(1.0 / c["domain_area_um2"]) * c["border_um"]
    assert m["border"].mean() == pytest.approx((1 - c["empty_fraction"]) * band, rel=0.15)
    assert not (m["border"] & m["empty"]).any()
    assert (m["has_grain"] == (~m["border"] & ~m["empty"])).all()


def test_border_is_within_half_the_border_width_of_the_boundary(large):
    """A position is border exactly when another seed lies within border_um of its nearest
    seed's bisector: brute force over all seeds."""
    rng = np.random.default_rng(5)
    pts = rng.uniform(-20, 20, size=(2000, 2))
    m = large.domain_map(pts[:, 0], pts[:, 1])
    s = large.seeds_um
    d2 = ((pts[:, None, :] - s[None, :, :]) ** 2).sum(axis=2)
    near = d2.argmin(axis=1)
    sep = np.linalg.norm(s[None, :, :] - s[near][:, None, :], axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        to_bisector = (d2 - d2[np.arange(len(pts)), near][:, None]) / (2 * sep)
    to_bisector[np.arange(len(pts)), near] = np.inf
    border = (to_bisector.min(axis=1) < large.cfg["border_um"] / 2) & ~large.empty[near]
    assert (m["domain"] == near).all()
    assert (m["border"] == border).all()


def test_truth_at_positions(meso, cfg):
    fraction = cfg["mesocrystal"]["al_visible_fraction"]
    grains = list(_positions(meso, {"has_grain": True}, step_um=0.23))
    assert len(grains) > 500
    visible = np.mean([t["al_visible"] for _, _, t in grains])
    assert visible == pytest.approx(fraction, abs=0.05)
    for x, y, t in grains[:50]:
        d = t["grain"]
        assert t["domain"] == d and not t["border"] and not t["empty"] and t["on_film"]
        assert t["orientation_deg"] == pytest.approx(meso.orientation_deg[d] % 180)
        assert t["psi_deg"] == pytest.approx(meso.psi_deg[d])
        assert t["al_orientation_deg"] == pytest.approx((t["orientation_deg"] + t["psi_deg"]) % 180)
    for want in ({"border": True}, {"empty": True}):
        _, _, t = _first(meso, **want)
        assert not t["has_grain"] and t["grain"] is None and t["orientation_deg"] is None
        assert not t["al_visible"] and t["psi_deg"] is None
    off = meso.truth_at(500.0, 0.0)
    assert off["on_film"] is False and off["domain"] is None and not off["has_grain"]
    psis = np.array([g["psi_deg"] for g in meso.truth()["grains"]])
    assert abs(psis.mean() - cfg["mesocrystal"]["psi_mean_deg"]) < 4 * 2.5 / math.sqrt(len(psis))


# ---- rendered images -------------------------------------------------------------------------
def _expected(beamline, x, y):
    """The noiseless frame (counts/s/pixel at nominal flux, with solid angle) at a position."""
    beamline.stage_x_um, beamline.stage_y_um = x, y
    beamline.waxs_frame(0.1)
    key, img = beamline._cache["waxs"]
    assert key == ("mesocrystal",) + beamline.mesocrystal.position_key(x, y)
    return img


def _azimuthal_profile(beamline, img, q0, half_width):
    res = beamline.waxs.ai.integrate2d(img, 40, 360, unit="q_A^-1", radial_range=(q0 - half_width, q0 + half_width),
                                       mask=beamline.waxs.mask, polarization_factor=0.99,
                                       method=("bbox", "csr", "cython"), dummy=np.nan)
    intensity = np.asarray(res.intensity, dtype=float)
    filled = intensity > 0                        # empty bins read 0 (the background is > 0 everywhere)
    n = filled.sum(axis=1)
    profile = np.where(n > 0, np.where(filled, intensity, 0.0).sum(axis=1) / np.maximum(n, 1), np.nan)
    return np.asarray(res.azimuthal), profile


def _peak_azimuths(az, profile, expected_deg, window_deg):
    """Centroid above the ring's median within *window_deg* of each expected azimuth."""
    base = np.nanmedian(profile)
    found = []
    for e in expected_deg:
        d = wrap_deg(az - e)
        w = np.abs(d) < window_deg
        p = np.clip(np.nan_to_num(profile[w] - base), 0, None)
        found.append(e + float(np.sum(p * d[w]) / np.sum(p)))
    return np.array(found)


@pytest.mark.parametrize("al_visible", [True, False])
def test_spots_sit_where_the_truth_says(beamline, meso, al_visible):
    t = meso.truth()
    x, y, at = _first(meso, has_grain=True, al_visible=al_visible)
    img = _expected(beamline, x, y)
    for ring, lattice, half, window in (("sl_112", "orientation_deg", 0.012, 12.0),
                                        ("sl_110", "orientation_deg", 0.012, 12.0),
                                        ("sl_002", "orientation_deg", 0.012, 12.0),
                                        ("al_111", "al_orientation_deg", 0.06, 15.0)):
        az, prof = _azimuthal_profile(beamline, img, t["q_inv_angstrom"][ring], half)
        expected = wrap_deg(at[lattice] + np.asarray(t["spot_offsets_deg"][ring]))
        if ring == "al_111" and not al_visible:
            assert np.nanmax(prof) / np.nanmedian(prof) < 1.1          # the powder ring alone
            continue
        assert np.nanmax(prof) / np.nanmedian(prof) > 2.0
        found = _peak_azimuths(az, prof, expected, window)
        assert np.abs(wrap_deg(found - expected)).max() < 2.0, (ring, expected, found)
    # the SL 112 spots, one by one, are in the profile as 4 maxima (and no more)
    az, prof = _azimuthal_profile(beamline, img, t["q_inv_angstrom"]["sl_112"], 0.012)
    peaks = [az[i] for i in range(len(prof)) if prof[i] > 2 * np.nanmedian(prof)
             and prof[i] == np.nanmax(prof[np.abs(wrap_deg(az - az[i])) < 20])]
    assert len(peaks) == 4


def test_no_spots_on_a_border_or_in_a_hole(beamline, meso):
    pixels = beamline._mesocrystal_pixels
    for want, base in (({"border": True}, pixels.film), ({"empty": True}, pixels.air)):
        x, y, _ = _first(meso, **want)
        assert meso.spots_at(x, y) == []
        assert np.array_equal(meso.expected_image(x, y, pixels), base)
    assert np.array_equal(meso.expected_image(300.0, -300.0, pixels), pixels.air)
    x, y, _ = _first(meso, border=True)
    _, prof = _azimuthal_profile(beamline, _expected(beamline, x, y), meso.q["sl_112"], 0.012)
    assert np.nanmax(prof) / np.nanmin(prof) < 1.1


def test_frame_counts_and_levels(beamline, meso):
    """At 0.1 s: SL 112 spots near 100 counts at their peak pixel, AL 111 spots 15-25 (within the
    +-25 % per position), gaps -1, the beamstop's shadow dark."""
    x, y, _ = _first(meso, has_grain=True, al_visible=True)
    img = _expected(beamline, x, y) * 0.1
    q = beamline.waxs.q
    for ring, low, high in (("sl_112", 60.0, 160.0), ("al_111", 12.0, 32.0)):
        band = np.abs(q - meso.q[ring]) < 0.01
        assert low < img[band].max() < high, ring
        assert np.median(img[band]) < 0.25 * img[band].max()
    frame = beamline.waxs_frame(0.1)
    geo = beamline.waxs
    assert frame.dtype == np.int32 and frame.shape == geo.shape
    assert (frame[geo.gaps] == -1).all() and (frame[~geo.gaps] >= 0).all()
    assert geo.beamstop.any() and geo.mask[geo.beamstop].all()
    assert img[geo.beamstop & ~geo.gaps].max() < 1.0


def test_mesocrystal_truth_follows_the_stage(beamline, meso):
    x, y, t = _first(meso, has_grain=True)
    beamline.stage_x_um, beamline.stage_y_um = x, y
    assert beamline.mesocrystal_truth() == {"x_um": x, "y_um": y, **t}
    beamline.stage_x_um = 1000.0
    assert beamline.mesocrystal_truth()["on_film"] is False


# ---- powder samples untouched ----------------------------------------------------------------
@pytest.mark.parametrize("sample", [None, "pbse-90k"])
def test_powder_samples_render_as_before(sample):
    """[waxs] model defaults to "powder": no mesocrystal, no WAXS beamstop, and the frame is the
    powder profile on a geometry built without one."""
    cfg = load_config(sample)
    model = BeamlineModel(cfg, seed=3)
    assert cfg["waxs"]["model"] == "powder" and model.mesocrystal is None
    with pytest.raises(RuntimeError, match="mesocrystal"):
        model.mesocrystal_truth()
    assert not model.waxs.beamstop.any() and np.array_equal(model.waxs.mask, model.waxs.gaps)
    model.jet.run = True
    model.jet.advance(5.0)
    model.advance()
    frame = model.waxs_frame(0.1)
    w, b = cfg["waxs"], cfg["beam"]
    geo = DetectorGeometry(w["detector"], w["distance_mm"], w["poni1_mm"], w["poni2_mm"], b["energy_kev"],
                           b["polarization_factor"])
    truth = model.truth()
    expected = geo.expected_image(model._q_fine, model.waxs_profile(model._q_fine, truth))
    assert np.array_equal(model._cache["waxs"][1], expected)
    assert frame.dtype == np.int32 and (frame[geo.gaps] == -1).all()


# ---- command line ----------------------------------------------------------------------------
def test_cli_prints_the_truth(tmp_path, capsys):
    assert main(["sim", "--config", SAMPLE, "--print-truth", "--data-dir", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert np.allclose(out["ccf_peaks_deg"], [-166.0, -95.4, -84.5, -14.0, 14.0, 84.5, 95.4, 166.0], atol=0.2)
    assert out["grains"] and {"id", "x_um", "y_um", "orientation_deg", "psi_deg", "empty"} <= set(out["grains"][0])
    assert main(["sim", "--print-truth", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--print-truth" in err[0] and "mesocrystal" in err[0]
