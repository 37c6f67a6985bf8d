"""``trxrd saxs`` and ``trxrd stacking`` on detector frames made here, independently of the
project's simulator and of ``reduction/saxs.py``: 1-D profiles from sasmodels (polydisperse
Schulz spheres) or a Lorentzian stacking peak, mapped onto a Pilatus 300K by pyFAI
(``calcfrom1d``), with a solvent background, a beamstop and the module gaps, a flux drift
recorded as ``i0`` and Poisson noise. The JSON is compared with the model's truth; every kind
of bad input gives one error line and exit status 2."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
from sasmodels import core as sasmodels_core
from sasmodels.direct_model import call_kernel

from test_cli_reduction import assert_one_error_line
from trxrd.cli import main

pytestmark = pytest.mark.slow

HC_KEV_ANGSTROM = 12.398419843320026
ENERGY_KEV = 11.7
PIXEL_M = 172e-6
SHAPE = (619, 487)                      # Pilatus 300K (rows, columns)
COUNTS_PER_CM = 300.0                   # counts per pixel per cm^-1 at the nominal flux (1 s frames)
I0_NOMINAL = 2.0e5                      # ion-chamber counts per frame

# the synthesis: 5 frames of solvent, then 60 s at one frame per second
TIMES_S = [float(t) for t in range(-5, 60)]
R0_NM, R_END_NM, T_END_S = 1.5, 2.2, 59.0
GROWTH_N = 2.0                          # dr/dt = k / r^2: r^3 = r0^3 + 3 k t
GROWTH_K = (R_END_NM**3 - R0_NM**3) / (3.0 * T_END_S)      # nm^3 / s
SIGMA0_NM, SIGMA_END_NM = 0.18, 0.12
TAU_NUCLEATION_S = 4.0                  # number concentration 1 - exp(-t / 4 s): t98 = 4 ln 50 = 15.6 s
AVOGADRO = 6.02214076e23
PHI_END = 1.0e-3                        # final volume fraction of nanocrystals
SLD_NC, SLD_SOLVENT = 40.0, 8.0         # 1e-6 A^-2 (X-ray SLDs of a II-VI nanocrystal and toluene)
CONTRAST_CM2 = (SLD_NC - SLD_SOLVENT) * 1e-6 * 1e16      # A^-2 -> cm^-2
SOLVENT_CM = 0.05                       # flat solvent scattering (cm^-1)
PARASITIC_CM = 2e-5                     # slit / window scattering ~ q^-3 (cm^-1 at q = 1 nm^-1)


def r_true_nm(t):
    return (R0_NM**3 + 3.0 * GROWTH_K * np.asarray(t, dtype=float)) ** (1.0 / 3.0)


def sigma_true_nm(t):
    return SIGMA0_NM + (SIGMA_END_NM - SIGMA0_NM) * np.asarray(t, dtype=float) / T_END_S


def number_rel(t):
    return 1.0 - np.exp(-np.asarray(t, dtype=float) / TAU_NUCLEATION_S)


def schulz_mean_volume_nm3(r_nm, sigma_nm):
    """<4/3 pi r^3> of a Schulz (gamma) distribution with mean r and standard deviation sigma."""
    k = (r_nm / sigma_nm) ** 2
    return 4.0 / 3.0 * math.pi * r_nm**3 * (k + 1.0) * (k + 2.0) / k**2


N_END = PHI_END / schulz_mean_volume_nm3(R_END_NM, SIGMA_END_NM)     # particles per nm^3 at the end


# ---- frames -------------------------------------------------------------------------------------
def integrator(dist_m: float, beam_row: float = 0.55, beam_col: float = 0.48):
    import pyFAI
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator

    return AzimuthalIntegrator(dist=dist_m, poni1=beam_row * SHAPE[0] * PIXEL_M, poni2=beam_col * SHAPE[1] * PIXEL_M,
                               detector=pyFAI.detector_factory("Pilatus300k"),
                               wavelength=HC_KEV_ANGSTROM / ENERGY_KEV * 1e-10)


def beamstop_mask(ai, radius_px: float = 20.0) -> np.ndarray:
    """Beamstop disc and its arm (straight up) around the direct beam."""
    rows, cols = np.indices(SHAPE)
    r0, c0 = ai.poni1 / PIXEL_M, ai.poni2 / PIXEL_M
    disc = (rows - r0) ** 2 + (cols - c0) ** 2 < radius_px**2
    arm = (np.abs(cols - c0) < 4) & (rows < r0)
    return disc | arm


def to_frame(ai, q_nm, profile_counts, rng) -> np.ndarray:
    """The 1-D profile (counts per pixel, solid-angle corrected) on the detector, Poisson
    noise, module gaps at -1 as the Pilatus writes them."""
    image = ai.calcfrom1d(q_nm, profile_counts, dim1_unit="q_nm^-1", correctSolidAngle=True,
                          polarization_factor=0.99)
    frame = rng.poisson(np.clip(image, 0, None)).astype(np.int32)
    frame[ai.detector.mask.astype(bool)] = -1
    return frame


def write_h5(path: Path, frames) -> str:
    with h5py.File(path, "w") as f:
        f.create_dataset("/entry/data/data", data=np.asarray(frames, dtype=np.int32))
    return str(path)


def write_table(path: Path, rows: list[dict], columns) -> str:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


def write_mask(path: Path, mask: np.ndarray) -> str:
    import fabio

    fabio.edfimage.EdfImage(data=mask.astype(np.int8)).write(str(path))
    return str(path)


@pytest.fixture(scope="module")
def synthesis(tmp_path_factory):
    """The synthesis series in two HDF5 files (split after frame 30), its table (frame, time_s,
    i0), the SAXS PONI (1 m, 11.7 keV) and the beamstop mask; a background file of 3 solvent
    frames at a constant flux."""
    root = tmp_path_factory.mktemp("saxs")
    ai = integrator(1.0)
    poni = root / "saxs.poni"
    ai.write(str(poni))
    mask = beamstop_mask(ai)
    q_nm = np.linspace(0.05, 1.02 * float(ai.qArray().max()), 1500)
    kernel = sasmodels_core.load_model("sphere").make_kernel([q_nm / 10.0])          # sasmodels: q in A^-1
    solvent = SOLVENT_CM + PARASITIC_CM / q_nm**3

    def spheres_cm(t):
        r, s = float(r_true_nm(t)), float(sigma_true_nm(t))
        phi = N_END * number_rel(t) * schulz_mean_volume_nm3(r, s)                    # volume fraction
        return call_kernel(kernel, dict(radius=10.0 * r, radius_pd=s / r, radius_pd_type="schulz", radius_pd_n=80,
                                        radius_pd_nsigma=8, sld=SLD_NC, sld_solvent=SLD_SOLVENT, scale=phi,
                                        background=0.0))

    rng = np.random.default_rng(20261203)
    frames, rows = [], []
    for k, t in enumerate(TIMES_S):
        flux = 1.0 - 0.03 * k / len(TIMES_S) + 0.005 * math.sin(k / 3.0)                # drift + wobble
        cm = solvent + (spheres_cm(t) if t >= 0 else 0.0)
        frames.append(to_frame(ai, q_nm, cm * COUNTS_PER_CM * flux, rng))
        rows.append({"frame": k, "time_s": repr(t), "i0": repr(I0_NOMINAL * flux)})
    files = [write_h5(root / "synthesis_0001.h5", frames[:31]), write_h5(root / "synthesis_0002.h5", frames[31:])]
    background = write_h5(root / "solvent.h5", [to_frame(ai, q_nm, solvent * COUNTS_PER_CM, rng) for _ in range(3)])
    return {"root": root, "files": files, "frames": frames, "rows": rows, "poni": str(poni),
            "mask": write_mask(root / "beamstop.edf", mask),
            "table": write_table(root / "synthesis.csv", rows, ("frame", "time_s", "i0")),
            "background": background, "q_nm": q_nm}


@pytest.fixture(scope="module")
def saxs_run(synthesis):
    """``trxrd saxs`` on the series with --background auto, --json and --plot (run once)."""
    out, png = synthesis["root"] / "saxs.json", synthesis["root"] / "saxs.png"
    argv = ["saxs", *synthesis["files"], "--poni", synthesis["poni"], "--mask", synthesis["mask"],
            "--table", synthesis["table"], "--json", str(out), "--plot", str(png),
            "--contrast", repr(CONTRAST_CM2), "--absolute-factor", repr(I0_NOMINAL / COUNTS_PER_CM)]
    return argv, out, png


def test_saxs_series_recovers_the_synthesis(saxs_run, capsys):
    argv, out, png = saxs_run
    rc = main(argv)
    text = capsys.readouterr()
    assert rc == 0, text.err
    assert "t98" in text.out and "growth law" in text.out and text.err == ""
    doc = json.loads(out.read_text())
    assert {"frames", "t98_concentration_s", "t98_yield_s", "growth_law", "criterion", "q_range_inv_angstrom",
            "distribution"} <= set(doc)
    assert doc["distribution"] == "schulz" and doc["contrast_cm2"] == CONTRAST_CM2
    assert "flat background" in doc["criterion"]
    lo, hi = doc["q_range_inv_angstrom"]
    assert 0.015 < lo < 0.03 and 0.35 < hi < 0.5              # beamstop edge .. detector corner (A^-1)
    frames = doc["frames"]
    assert [f["frame"] for f in frames] == list(range(len(TIMES_S)))
    assert [f["time_s"] for f in frames] == TIMES_S
    for f in frames[:5]:                                      # the solvent frames
        assert f["particles"] is False and f["reason"] == "before injection (background)"
        assert f.get("r_mean_nm") is None and f.get("concentration_rel") is None
    for f in frames[5:]:
        assert {"frame", "time_s", "particles", "r_mean_nm", "sigma_nm", "scale", "background", "redchi",
                "concentration_rel", "yield_rel"} <= set(f)
        for name in ("r_mean_nm", "sigma_nm", "scale", "background"):
            assert set(f[name]) == {"value", "stderr"}
    assert frames[5]["particles"] is False and "no particles" in frames[5]["reason"]      # t = 0: none yet
    late = [f for f in frames if f["time_s"] >= 3.0]
    assert all(f["particles"] for f in late)
    for f in late:
        t = f["time_s"]
        assert f["r_mean_nm"]["value"] == pytest.approx(float(r_true_nm(t)), rel=0.02), t
        assert f["sigma_nm"]["value"] == pytest.approx(float(sigma_true_nm(t)), rel=0.10), t
        assert 0 < f["r_mean_nm"]["stderr"] < 0.02 * f["r_mean_nm"]["value"]
        assert f["concentration_rel"] == pytest.approx(float(number_rel(t) / number_rel(TIMES_S[-1])), abs=0.03), t
        assert 0.5 < f["redchi"] < 2.0
        # absolute: counts / i0 x i0_nominal / counts-per-cm^-1 is in cm^-1, so the number density is
        n_um = N_END * number_rel(t) * 1e21 * 1e3 / AVOGADRO * 1e6          # nm^-3 -> cm^-3 -> mol/L -> uM
        assert f["concentration_um"] == pytest.approx(n_um, rel=0.03), t
    # t98 of the number concentration: 4 s x ln 50 = 15.6 s
    assert doc["t98_concentration_s"] == pytest.approx(TAU_NUCLEATION_S * math.log(50.0), rel=0.10)
    # of the yield (n <V>): where the model's yield first reaches 98 % of its median over the last 10 % of the times
    t = np.array([f["time_s"] for f in late])
    yield_true = number_rel(t) * np.array([schulz_mean_volume_nm3(r_true_nm(x), sigma_true_nm(x)) for x in t])
    final = np.median(yield_true[t >= t[-1] - 0.1 * (t[-1] - t[0])])
    assert doc["t98_yield_s"] == pytest.approx(float(t[np.argmax(yield_true >= 0.98 * final)]), rel=0.10)
    # the growth law of the model: dr/dt = k / r^2
    law = doc["growth_law"]
    assert law["n"]["value"] == pytest.approx(GROWTH_N, abs=0.3)
    assert law["k"]["value"] == pytest.approx(GROWTH_K, rel=0.3)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


def test_saxs_background_files_and_q_units(synthesis, tmp_path, capsys):
    """Background from solvent files (monitor given), fit range in nm^-1 and A^-1, Gaussian radii."""
    out = tmp_path / "bg.json"
    rows = synthesis["rows"][5:25]
    files = [write_h5(tmp_path / "after.h5", synthesis["frames"][5:25])]
    table = write_table(tmp_path / "after.csv", [{**r, "frame": k} for k, r in enumerate(rows)],
                        ("frame", "time_s", "i0"))
    rc = main(["saxs", *files, "--poni", synthesis["poni"], "--mask", synthesis["mask"], "--table", table,
               "--background", synthesis["background"], "--background-i0", repr(I0_NOMINAL),
               "--qmin", "0.3nm-1", "--qmax", "0.38", "--distribution", "gaussian", "--json", str(out)])
    err = capsys.readouterr().err
    assert rc == 0, err
    doc = json.loads(out.read_text())
    assert doc["q_range_inv_angstrom"] == pytest.approx([0.03, 0.38])
    assert doc["distribution"] == "gaussian" and "solvent.h5" in doc["background"]
    for f in doc["frames"]:
        if f["time_s"] >= 3.0:
            assert f["r_mean_nm"]["value"] == pytest.approx(float(r_true_nm(f["time_s"])), rel=0.02)
            assert f["sigma_nm"]["value"] == pytest.approx(float(sigma_true_nm(f["time_s"])), rel=0.15)


# ---- stacking --------------------------------------------------------------------------------------
D_NM = (3.8, 2.5, 1.5)
XI_NM = 25.0


@pytest.fixture(scope="module")
def anneal(tmp_path_factory):
    """Two frames per period d (3.8, 2.5, 1.5 nm): a Lorentzian at q* = 2 pi / d (FWHM 2 pi / xi)
    on a q^-2 background, at 0.4 m so that q* = 0.42 A^-1 lies on full rings."""
    root = tmp_path_factory.mktemp("stacking")
    ai = integrator(0.4, 0.5, 0.5)
    poni = root / "short.poni"
    ai.write(str(poni))
    q_nm = np.linspace(0.2, 1.02 * float(ai.qArray().max()), 3000)
    rng = np.random.default_rng(11)
    frames, rows = [], []
    for seg, d in enumerate(D_NM):
        q_star, half_width = 2 * math.pi / d, math.pi / XI_NM
        peak = 800.0 * half_width**2 / ((q_nm - q_star) ** 2 + half_width**2)
        profile = 40.0 * (q_nm / 1.0) ** -2 + 5.0 + peak
        for k in range(2):
            frames.append(to_frame(ai, q_nm, profile, rng))
            rows.append({"frame": len(rows), "time_s": repr(60.0 * len(rows)), "temperature_c": repr(100.0 + 50 * seg),
                         "segment": seg, "segment_kind": "hold"})
    return {"root": root, "poni": str(poni), "mask": write_mask(root / "beamstop.edf", beamstop_mask(ai, 12.0)),
            "file": write_h5(root / "anneal.h5", frames), "rows": rows,
            "table": write_table(root / "anneal.csv", rows, ("frame", "time_s", "temperature_c", "segment",
                                                               "segment_kind"))}


def test_stacking_periods(anneal, tmp_path, capsys):
    out, png = tmp_path / "d.json", tmp_path / "d.png"
    rc = main(["stacking", anneal["file"], "--poni", anneal["poni"], "--mask", anneal["mask"], "--table",
               anneal["table"], "--qmin", "0.1", "--qmax", "6nm-1", "--json", str(out), "--plot", str(png)])
    text = capsys.readouterr()
    assert rc == 0, text.err
    doc = json.loads(out.read_text())
    assert doc["q_range_inv_angstrom"] == pytest.approx([0.1, 0.6])
    assert len(doc["frames"]) == 2 * len(D_NM)
    for f, d in zip(doc["frames"], np.repeat(D_NM, 2)):
        assert {"frame", "time_s", "temperature_c", "found", "d_nm", "q_star", "fwhm", "xi_nm", "area"} <= set(f)
        assert f["found"] is True
        assert f["d_nm"]["value"] == pytest.approx(d, abs=0.05)
        assert 0 < f["d_nm"]["stderr"] < 0.05
        assert f["q_star"]["value"] == pytest.approx(2 * math.pi / (10 * d), rel=0.02)
    assert [s["segment"] for s in doc["segments"]] == [0, 1, 2]
    for seg, d in zip(doc["segments"], D_NM):
        assert seg["kind"] == "hold" and seg["frames"] == 2
        assert seg["d_end_nm"]["value"] == pytest.approx(d, abs=0.05)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_stacking_with_temperature_only(anneal, tmp_path, capsys):
    table = write_table(tmp_path / "t.csv", anneal["rows"], ("frame", "temperature_c"))
    out, png = tmp_path / "t.json", tmp_path / "t.png"
    rc = main(["stacking", anneal["file"], "--poni", anneal["poni"], "--mask", anneal["mask"], "--table", table,
               "--qmin", "0.1", "--qmax", "0.6", "--json", str(out), "--plot", str(png)])
    assert rc == 0, capsys.readouterr().err
    doc = json.loads(out.read_text())
    assert doc["segments"] == [] and "time_s" not in doc["frames"][0]
    assert doc["frames"][-1]["d_nm"]["value"] == pytest.approx(D_NM[-1], abs=0.05)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---- bad input: one line on stderr, exit status 2 ---------------------------------------------------
@pytest.fixture(scope="module")
def small(synthesis):
    """Frames 0-11 of the series (5 solvent, 7 with particles) in one file, with their table."""
    root = synthesis["root"] / "small"
    root.mkdir()
    return {"file": write_h5(root / "small.h5", synthesis["frames"][:12]), "rows": synthesis["rows"][:12],
            "root": root}


def _table(small, tmp_path, edit=None, columns=("frame", "time_s", "i0")) -> str:
    rows = [dict(r) for r in small["rows"]]
    return write_table(tmp_path / ("bad.csv" if edit else "good.csv"), edit(rows) if edit else rows, columns)


def _set(rows, index, key, value):
    rows[index][key] = value
    return rows


def _waxs_poni(tmp_path, beam_on_detector: bool) -> str:
    """A WAXS geometry of the same detector: 10 cm, the beam 3 cm off its edge (q from ~1.4
    A^-1), or on the detector (q from 0 to ~3 A^-1, bins too coarse for SAXS)."""
    ai = integrator(0.1, 0.5, 0.5) if beam_on_detector else integrator(0.1, -30e-3 / (SHAPE[0] * PIXEL_M), 0.5)
    path = tmp_path / "waxs.poni"
    ai.write(str(path))
    return str(path)


def _other_shape(tmp_path) -> str:
    return write_h5(tmp_path / "bg_small.h5", np.zeros((2, 195, 487), np.int32))


def _corrupt(tmp_path) -> str:
    path = tmp_path / "corrupt.h5"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    return str(path)


# name: (overrides from (synthesis, small, tmp_path), keywords in the message)
BAD_SAXS = {
    "table_frames_mismatch": (lambda s, m, t: {"table": _table(m, t, lambda r: r[:-1])}, ["11 rows for 12 frames"]),
    "missing_time_s": (lambda s, m, t: {"table": _table(m, t, lambda r: r, ("frame", "i0"))},
                       ["missing column(s) time_s"]),
    "time_nan": (lambda s, m, t: {"table": _table(m, t, lambda r: _set(r, 3, "time_s", "nan"))},
                 ["line 5", "time_s", "finite"]),
    "i0_nan": (lambda s, m, t: {"table": _table(m, t, lambda r: _set(r, 7, "i0", "NaN"))}, ["i0", "finite"]),
    "corrupt_frame_file": (lambda s, m, t: {"frames": [_corrupt(t)]}, ["corrupt.h5", "not a readable HDF5"]),
    "qmin_below_detector": (lambda s, m, t: {"extra": ["--qmin", "0.005", "--qmax", "0.3"]},
                            ["outside the q range of this PONI"]),
    "qmax_above_detector": (lambda s, m, t: {"extra": ["--qmax", "2"]}, ["outside the q range of this PONI"]),
    "qmin_not_below_qmax": (lambda s, m, t: {"extra": ["--qmin", "0.3", "--qmax", "0.1"]}, ["QMIN < QMAX"]),
    "q_not_a_number": (lambda s, m, t: {"extra": ["--qmin", "abc"]}, ["--qmin", "'abc'", "positive q"]),
    "no_pre_injection": (lambda s, m, t: {"table": _table(m, t, lambda r: [{**x, "time_s": repr(k + 0.5)}
                                                                           for k, x in enumerate(r)])},
                         ["no pre-injection frames (time_s < 0) for --background auto"]),
    "background_other_shape": (lambda s, m, t: {"extra": ["--background", _other_shape(t), "--background-i0", "2e5"]},
                               ["background frames are 487 x 195 pixels", "487 x 619"]),
    "background_without_monitor": (lambda s, m, t: {"extra": ["--background", s["background"]]},
                                   ["--background-i0", "i0"]),
    "unknown_distribution": (lambda s, m, t: {"extra": ["--distribution", "lognormal"]},
                             ["unknown radius distribution 'lognormal'", "schulz, gaussian"]),
    "waxs_poni": (lambda s, m, t: {"poni": _waxs_poni(t, False), "mask": None},
                  ["this PONI is a WAXS geometry (q from 1.", "SAXS needs q down to"]),
    "waxs_poni_coarse_bins": (lambda s, m, t: {"poni": _waxs_poni(t, True), "mask": None,
                                               "extra": ["--qmin", "0.02", "--qmax", "0.05"]},
                              ["holds", "q bins", "WAXS geometry", "SAXS needs"]),
    "too_few_bins": (lambda s, m, t: {"extra": ["--npt", "20", "--qmin", "0.03", "--qmax", "0.06"]},
                     ["q bins of this PONI", "raise --npt"]),
    "absolute_factor_without_contrast": (lambda s, m, t: {"extra": ["--absolute-factor", "2"]}, ["--contrast"]),
    "contrast_nan": (lambda s, m, t: {"extra": ["--contrast", "nan"]}, ["--contrast"]),
    "missing_poni": (lambda s, m, t: {"poni": str(t / "nope.poni")}, ["PONI file not found"]),
}


def _saxs_argv(synthesis, small, tmp_path, overrides) -> list[str]:
    args = {"frames": [small["file"]], "poni": synthesis["poni"], "mask": synthesis["mask"],
            "table": _table(small, tmp_path), "extra": []}
    args.update(overrides)
    argv = ["saxs", *args["frames"], "--poni", args["poni"], "--table", args["table"],
            "--json", str(tmp_path / "out.json"), *args["extra"]]
    return argv + (["--mask", args["mask"]] if args["mask"] else [])


@pytest.mark.parametrize("case", list(BAD_SAXS))
def test_saxs_bad_input(case, synthesis, small, tmp_path, capsys):
    build, keywords = BAD_SAXS[case]
    argv = _saxs_argv(synthesis, small, tmp_path, build(synthesis, small, tmp_path))
    capsys.readouterr()
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == 2
    assert_one_error_line(err, "saxs", keywords)
    assert out == "" and not (tmp_path / "out.json").exists()


def test_small_series_is_good_input(synthesis, small, tmp_path, capsys):
    """The base of the bad-input cases runs: each failure above comes from its one change."""
    rc = main(_saxs_argv(synthesis, small, tmp_path, {}))
    assert rc == 0, capsys.readouterr().err
    doc = json.loads((tmp_path / "out.json").read_text())
    assert [f["particles"] for f in doc["frames"]][:5] == [False] * 5 and doc["frames"][-1]["particles"]


BAD_STACKING = {
    "no_time_or_temperature": (lambda a, t: {"table": write_table(t / "b.csv", a["rows"], ("frame", "segment"))},
                               ["time_s and/or a temperature_c"]),
    "segment_without_time": (lambda a, t: {"table": write_table(t / "b.csv", a["rows"],
                                                                ("frame", "temperature_c", "segment"))},
                             ["segment column needs both"]),
    "temperature_nan": (lambda a, t: {"table": write_table(t / "b.csv",
                                                           [{**r, "temperature_c": "nan"} for r in a["rows"]],
                                                           ("frame", "temperature_c"))}, ["temperature_c", "finite"]),
    "qmin_not_below_qmax": (lambda a, t: {"extra": ["--qmin", "0.5", "--qmax", "0.5"]}, ["QMIN < QMAX"]),
    "q_outside": (lambda a, t: {"extra": ["--qmin", "0.1", "--qmax", "3"]}, ["outside the q range of this PONI"]),
    "table_frames_mismatch": (lambda a, t: {"table": write_table(t / "b.csv", a["rows"][:-1], ("frame", "time_s"))},
                              ["5 rows for 6 frames"]),
}


@pytest.mark.parametrize("case", list(BAD_STACKING))
def test_stacking_bad_input(case, anneal, tmp_path, capsys):
    build, keywords = BAD_STACKING[case]
    args = {"table": anneal["table"], "extra": ["--qmin", "0.1", "--qmax", "0.6"]}
    args.update(build(anneal, tmp_path))
    capsys.readouterr()
    rc = main(["stacking", anneal["file"], "--poni", anneal["poni"], "--table", args["table"],
               "--json", str(tmp_path / "out.json"), *args["extra"]])
    _, err = capsys.readouterr()
    assert rc == 2
    assert_one_error_line(err, "stacking", keywords)


def _raw_injection_run(synthesis):
    """The documents of an injection_series that recorded the synthesis frames: start with the
    key map, the frames through AD_HDF5 resource/datum documents (the two files), reaction time
    and I0 in the events."""
    from event_model import compose_run

    from trxrd import datakeys as dk

    run = compose_run(metadata={"plan_name": "injection_series", "sample": {"name": "CdSe"},
                                dk.KEY_MAP: {"saxs_image": "saxs_image", "reaction_time": "reaction_time_s",
                                             "i0": "i0"}})
    yield "start", run.start_doc
    desc = run.compose_descriptor(name="primary", data_keys={
        "saxs_image": {"source": "test", "dtype": "array", "shape": list(SHAPE), "external": "FILESTORE:"},
        "reaction_time_s": {"source": "test", "dtype": "number", "shape": []},
        "i0": {"source": "test", "dtype": "number", "shape": []}})
    yield "descriptor", desc.descriptor_doc
    k = 0
    for path in synthesis["files"]:
        res = run.compose_resource(spec="AD_HDF5", root="/", resource_path=str(Path(path).relative_to("/")),
                                   resource_kwargs={"frame_per_point": 1})
        yield "resource", res.resource_doc
        with h5py.File(path) as f:
            n = f["/entry/data/data"].shape[0]
        for point in range(n):
            datum = res.compose_datum(datum_kwargs={"point_number": point})
            yield "datum", datum
            row = synthesis["rows"][k]
            data = {"saxs_image": datum["datum_id"], "reaction_time_s": float(row["time_s"]), "i0": float(row["i0"])}
            yield "event", desc.compose_event(data=data, timestamps={key: 0.0 for key in data},
                                              filled={"saxs_image": False})
            k += 1
    yield "stop", run.compose_stop()


@pytest.mark.slow
def test_live_saxs_in_its_own_process_equals_offline(synthesis, saxs_run, tmp_path):
    """The RunEngine's documents over 0MQ (JSON) to `trxrd live --saxs-poni` in another process:
    frames read through resource/datum there, background from the pre-injection frames, spheres
    per frame: the same report as `trxrd saxs` on the files."""
    import os

    from conftest import remote_reduction

    argv, out, _ = saxs_run
    if not out.exists():
        assert main(argv) == 0
    offline = json.loads(out.read_text())
    env = {**os.environ, "TRXRD_DATA": str(tmp_path / "data")}
    files = lambda: list(tmp_path.glob("*-saxs.json"))      # noqa: E731
    remote_reduction(["--saxs-poni", synthesis["poni"], "--saxs-mask", synthesis["mask"], "--json-dir", str(tmp_path)],
                     _raw_injection_run(synthesis), files, env=env)
    remote = json.loads(files()[0].read_text())
    assert len(remote["frames"]) == len(offline["frames"]) == len(TIMES_S)
    for a, b in zip(remote["frames"], offline["frames"]):
        assert a["particles"] == b["particles"]
        if a["particles"]:
            assert a["r_mean_nm"]["value"] == pytest.approx(b["r_mean_nm"]["value"], rel=1e-6)
            assert a["sigma_nm"]["value"] == pytest.approx(b["sigma_nm"]["value"], rel=1e-6)
    assert remote["t98_concentration_s"] == pytest.approx(offline["t98_concentration_s"], rel=1e-6)
