"""``trxrd xcca`` on a nano-diffraction raster painted here, independently of the project's
simulator: a Pilatus 300K geometry from pyFAI, per pattern a grain of a bct superlattice (c/a =
1.22) at a random orientation omega with its SL 112 spots, and in half of the patterns the AL 111
spots of its atomic lattice (orientational disorder 10 deg FWHM), on a flat background with Poisson
noise and the module gaps at -1; a snake raster of 6 x 5 positions. The JSON is compared with the
painted truth; every kind of bad input gives one error line and exit status 2."""
from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from trxrd.cli import main

SHAPE = (619, 487)                       # Pilatus 300K (rows, columns)
WAVELENGTH_M = 1.0597e-10
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
THETA_DEG = math.degrees(math.acos(math.sqrt(2.0 / 3.0)))    # 35.26: [111] vs [1-10]
AL_SPOT_DEG = 90.0 - THETA_DEG                                # 54.74: the AL 111 spots from the [001] axis
C_OVER_A = 1.22
BETA_DEG = math.degrees(math.atan(C_OVER_A / math.sqrt(2.0)))   # 40.79: the SL 112 spots from the [001] axis
Q_SL, SL_RADIAL_FWHM, SL_AZIMUTHAL_FWHM_DEG, SL_COUNTS = 0.172, 0.015, 4.0, 300.0      # A^-1, A^-1, deg, peak
Q_AL, AL_RADIAL_FWHM, AL_COUNTS = 1.833, 0.094, 60.0
SIZE_DEG = 2.9                           # a spot's azimuthal width from the crystal's size: ~ radial FWHM / q
DISORDER_DEG = 10.0                      # FWHM of the orientational disorder
AL_AZIMUTHAL_FWHM_DEG = math.hypot(SIZE_DEG, DISORDER_DEG)
BACKGROUND = 20.0                        # counts per pixel
NX, NY, STEP_UM = 6, 5, 0.5              # the snake raster
N_PATTERNS = NX * NY


def ccf_truth_deg() -> np.ndarray:
    """The eight D = +-(90 +- theta +- beta) of the AL 111 x SL 112 CCF, in [-180, 180)."""
    d = [s1 * (90.0 + s2 * THETA_DEG + s3 * BETA_DEG) for s1 in (1, -1) for s2 in (1, -1) for s3 in (1, -1)]
    return (np.array(d) + 180.0) % 360.0 - 180.0


def geometry(detector: str = "Pilatus300k"):
    import pyFAI
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator

    return AzimuthalIntegrator(dist=0.110, poni1=0.050, poni2=0.040, detector=pyFAI.detector_factory(detector),
                               wavelength=WAVELENGTH_M)


def write_mask(path: Path, mask: np.ndarray) -> str:
    import fabio

    fabio.edfimage.EdfImage(data=np.asarray(mask).astype(np.int8)).write(str(path))
    return str(path)


def write_h5(path: Path, frames) -> str:
    with h5py.File(path, "w") as f:
        f.create_dataset("entry/data/data", data=np.asarray(frames, dtype=np.int32))
    return str(path)


def write_table(path: Path, lines) -> str:
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def snake_positions():
    """(x_um, y_um) per pattern: rows along x, every other row backwards."""
    out = []
    for k in range(N_PATTERNS):
        iy, ix = divmod(k, NX)
        out.append(((NX - 1 - ix if iy % 2 else ix) * STEP_UM, iy * STEP_UM))
    return out


class Painter:
    """Patterns on the detector from the geometry's q (A^-1) and azimuth chi (deg, pyFAI's),
    counts as the detector sees them (solid angle and polarisation applied)."""

    def __init__(self, ai):
        self.q = ai.qArray() / 10.0                                          # nm^-1 -> A^-1
        self.chi = np.degrees(ai.center_array(unit="chi_rad"))             # = chiArray(), not deprecated
        seen = ai.solidAngleArray() * ai.polarization(factor=0.99)
        self.seen = seen / seen.max()
        self.gaps = ai.detector.mask.astype(bool)

    def spots(self, q0, radial_fwhm, azimuthal_fwhm_deg, centres_deg, height):
        radial = np.exp(-0.5 * ((self.q - q0) / (radial_fwhm / FWHM_PER_SIGMA)) ** 2)
        near = radial > 1e-4
        chi = self.chi[near]
        azimuthal = np.zeros(chi.size)
        for c in centres_deg:
            d = (chi - c + 180.0) % 360.0 - 180.0
            azimuthal += np.exp(-0.5 * (d / (azimuthal_fwhm_deg / FWHM_PER_SIGMA)) ** 2)
        out = np.zeros(self.q.shape)
        out[near] = height * radial[near] * azimuthal
        return out

    def pattern(self, omega_deg, with_al, rng):
        """A grain at orientation omega: SL spots at omega +- beta (and + 180), AL 111 spots at
        omega +- 54.74 (and + 180) when *with_al*; module gaps -1."""
        expected = BACKGROUND + self.spots(Q_SL, SL_RADIAL_FWHM, SL_AZIMUTHAL_FWHM_DEG,
                                           [omega_deg + s * BETA_DEG + h for s in (1, -1) for h in (0, 180)],
                                           SL_COUNTS)
        if with_al:
            expected += self.spots(Q_AL, AL_RADIAL_FWHM, AL_AZIMUTHAL_FWHM_DEG,
                                   [omega_deg + s * AL_SPOT_DEG + h for s in (1, -1) for h in (0, 180)], AL_COUNTS)
        frame = rng.poisson(expected * self.seen).astype(np.int32)
        frame[self.gaps] = -1
        return frame


@pytest.fixture(scope="module")
def raster(tmp_path_factory):
    """30 patterns in one HDF5 stack, their table (frame, x_um, y_um on a snake), the PONI, the
    gap mask and the truth (omega, AL spots or not)."""
    root = tmp_path_factory.mktemp("xcca")
    ai = geometry()
    poni = root / "waxs.poni"
    ai.write(str(poni))
    painter = Painter(ai)
    rng = np.random.default_rng(20261203)
    omegas = rng.uniform(0.0, 180.0, N_PATTERNS)
    with_al = np.zeros(N_PATTERNS, bool)
    with_al[rng.permutation(N_PATTERNS)[:N_PATTERNS // 2]] = True
    frames = [painter.pattern(w, a, rng) for w, a in zip(omegas, with_al)]
    positions = snake_positions()
    table = ["frame,x_um,y_um"] + [f"{k},{x:g},{y:g}" for k, (x, y) in enumerate(positions)]
    return {"root": root, "poni": str(poni), "mask": write_mask(root / "gaps.edf", painter.gaps),
            "h5": write_h5(root / "raster.h5", frames), "table_lines": table,
            "table": write_table(root / "raster.csv", table), "omegas": omegas, "with_al": with_al,
            "positions": positions, "frames": frames}


def run_cli(argv):
    """(exit status, stdout, stderr) of ``trxrd`` *argv*."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def base_argv(raster, **changes):
    opts = {"frames": [raster["h5"]], "--poni": raster["poni"], "--mask": raster["mask"], "--q1": "1.72nm-1",
            "--q2": "1.833", "--table": raster["table"], "--json": str(raster["root"] / "bad.json")}
    opts.update(changes)
    argv = ["xcca", *opts.pop("frames")]
    for key, value in opts.items():
        if value is not None:
            argv += [f"{key}={value}"]
    return argv


def strict_json(text: str) -> dict:
    def refuse(name):
        raise AssertionError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def analysed(raster):
    """``trxrd xcca`` on the raster, q1 in nm^-1, with --json and --plot (run once)."""
    out, png = raster["root"] / "xcca.json", raster["root"] / "xcca.png"
    argv = base_argv(raster, **{"--json": str(out), "--plot": str(png)})
    rc, stdout, stderr = run_cli(argv)
    assert rc == 0, stderr
    return {"doc": strict_json(out.read_text()), "stdout": stdout, "stderr": stderr, "png": png}


def test_xcca_writes_the_report_the_summary_and_the_figure(analysed, raster):
    doc = analysed["doc"]
    assert analysed["stderr"] == ""
    assert {"delta_deg", "ccf", "ccf_err", "peaks_deg", "n_frames_used", "azimuthal_fwhm_deg", "radial_fwhm",
            "disorder_deg", "frames", "beta_deg", "c_over_a", "sources"} <= set(doc)
    assert doc["q1"] == pytest.approx(Q_SL) and doc["q2"] == pytest.approx(Q_AL) and doc["dq"] == 0.02
    assert len(doc["delta_deg"]) == len(doc["ccf"]) == doc["nphi"] == 180
    assert doc["n_frames"] == N_PATTERNS and doc["n_frames_with_grain"] == N_PATTERNS
    assert doc["n_frames_used"] == int(raster["with_al"].sum())
    assert set(doc["disorder_deg"]) == {"value", "stderr"}
    text = analysed["stdout"]
    assert f"{N_PATTERNS} frames: {N_PATTERNS} with a grain, {int(raster['with_al'].sum())} with spots" in text
    for word in ("CCF peaks (deg)", "beta =", "c/a =", "orientational disorder", "result:", "figure:"):
        assert word in text, word
    png = analysed["png"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


def test_ccf_peaks_and_c_over_a_of_the_bct_superlattice(analysed):
    doc = analysed["doc"]
    found = np.array(doc["peaks_deg"])
    for d in ccf_truth_deg():
        assert np.min(np.abs((found - d + 180.0) % 360.0 - 180.0)) < 2.0, (d, found)
    assert doc["beta_deg"]["value"] == pytest.approx(BETA_DEG, abs=1.0)
    assert doc["c_over_a"]["value"] == pytest.approx(C_OVER_A, abs=0.05)
    assert 0 < doc["c_over_a"]["stderr"] < 0.05


def test_each_pattern_its_position_grain_and_orientation(analysed, raster):
    frames = analysed["doc"]["frames"]
    assert [f["frame"] for f in frames] == list(range(N_PATTERNS))
    assert [(f["x_um"], f["y_um"]) for f in frames] == raster["positions"]
    for f, omega, al in zip(frames, raster["omegas"], raster["with_al"]):
        assert f["has_grain"] is True and f["both_rings"] is bool(al), f["frame"]
        assert abs((f["orientation_deg"] - omega + 90.0) % 180.0 - 90.0) < 3.0, (f["frame"], omega)
        assert (f["psi_deg"] is not None) is bool(al)
        if al:
            assert abs(f["psi_deg"]) < 3.0                # AL and SL share the [001] axis
        assert f["n_fold"] in (2, 4, 6, 8, 10, 12)


def test_orientational_disorder_from_the_averaged_bragg_peak(analysed):
    doc = analysed["doc"]
    assert doc["disorder_deg"]["value"] == pytest.approx(DISORDER_DEG, rel=0.20)
    assert doc["radial_fwhm"] == pytest.approx(AL_RADIAL_FWHM, rel=0.20)
    assert doc["azimuthal_fwhm_deg"] == pytest.approx(AL_AZIMUTHAL_FWHM_DEG, rel=0.20)


def test_the_figure_draws_a_running_ccf_by_frame_index(analysed):
    """During a scan: rows without positions (a strip by frame index) and a running CCF."""
    from matplotlib.figure import Figure

    from trxrd.reduction.plots import draw_xcca

    doc = analysed["doc"]
    rows = [{k: v for k, v in f.items() if k not in ("x_um", "y_um")} for f in doc["frames"]]
    c = np.array([np.nan if v is None else v for v in doc["ccf"]])
    fig = draw_xcca(Figure(figsize=(19, 4.4)), rows, ccf=(np.array(doc["delta_deg"]), c, 0.1 * np.abs(c)))
    maps, curve = fig.axes[0], fig.axes[3]          # the three maps, the CCF, then the colour bars
    assert maps.get_xlabel() == "frame" and curve.get_xlabel() == "D (deg)"
    assert maps.collections[-1].get_array().shape == (1, N_PATTERNS)


def test_frames_are_read_in_order_a_block_at_a_time(tmp_path):
    """HDF5 stacks (longer than a block, and a single 2-D frame) and one-frame images, in the order given."""
    from trxrd.reduction.io import BLOCK_FRAMES, frame_files, iter_frames

    n = BLOCK_FRAMES + 5
    stack = np.arange(n * 12, dtype=np.int32).reshape(n, 3, 4)
    with h5py.File(tmp_path / "one.h5", "w") as f:
        f.create_dataset("entry/data/data", data=stack[0])
    paths = [str(tmp_path / "one.h5"), write_h5(tmp_path / "stack.h5", stack[1:-1]),
             write_mask(tmp_path / "last.edf", stack[-1] % 100)]
    files = frame_files(paths)
    assert [(k, s) for _, k, s in files] == [(1, (3, 4)), (n - 2, (3, 4)), (1, None)]
    frames = list(iter_frames(files))
    assert len(frames) == n
    assert all(np.array_equal(a, b) for a, b in zip(frames[:-1], stack[:-1]))
    assert np.array_equal(frames[-1], stack[-1] % 100)


# ---- bad input: one line on stderr, exit status 2 ---------------------------------------------------------
def _corrupt(raster, tmp_path):
    path = tmp_path / "corrupt.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 8)
    return {"frames": [str(path)]}


def _other_detector(raster, tmp_path):
    poni = tmp_path / "pilatus1m.poni"
    geometry("Pilatus1M").write(str(poni))
    return {"--poni": str(poni), "--mask": None}


def _mask_shape(raster, tmp_path):
    return {"--mask": write_mask(tmp_path / "small.edf", np.zeros((100, 100)))}


def _too_few(raster, tmp_path):
    """Three patterns, one with AL spots: fewer than three with spots on both rings."""
    k = [int(i) for i in np.flatnonzero(~raster["with_al"])[:2]] + [int(np.flatnonzero(raster["with_al"])[0])]
    lines = ["frame,x_um,y_um"] + [f"{j},{j},0" for j in range(3)]
    return {"frames": [write_h5(tmp_path / "few.h5", [raster["frames"][i] for i in k])],
            "--table": write_table(tmp_path / "few.csv", lines)}


def _table(edit):
    def build(raster, tmp_path):
        return {"--table": write_table(tmp_path / "table.csv", edit(list(raster["table_lines"])))}
    return build


BAD_XCCA = {
    "missing frame file": (lambda r, t: {"frames": [str(t / "nope.h5")]}, ["not found", "nope.h5"]),
    "corrupt frame file": (_corrupt, ["corrupt.h5", "not a readable HDF5 file"]),
    "PONI of another detector": (_other_detector, ["487 x 619", "981 x 1043", "PONI"]),
    "mask of the wrong shape": (_mask_shape, ["mask shape", "(100, 100)"]),
    "ring outside the detector": (lambda r, t: {"--q2": "4.5"}, ["q2", "not on the detector"]),
    "q1 == q2 without dq": (lambda r, t: {"--q2": "0.172"}, ["same ring", "distinct"]),
    "dq below a pixel": (lambda r, t: {"--dq": "0.002"}, ["dq = 0.002", "below one pixel"]),
    "q1 == q2 with dq": (lambda r, t: {"--q2": "0.172", "--dq": "0.01"}, ["overlap"]),
    "too few patterns with both rings": (_too_few, ["1 of 3 patterns", "both rings"]),
    "negative q": (lambda r, t: {"--q1": "-0.172"}, ["--q1", "positive"]),
    "NaN q": (lambda r, t: {"--q2": "nan"}, ["--q2", "positive"]),
    "negative dq": (lambda r, t: {"--dq": "-0.02"}, ["--dq", "positive"]),
    "nphi out of range": (lambda r, t: {"--nphi": "20"}, ["nphi", "36", "3600"]),
    "nphi odd": (lambda r, t: {"--nphi": "181"}, ["nphi", "even", "181"]),
    "nphi not an integer": (lambda r, t: {"--nphi": "90.5"}, ["--nphi", "'90.5'"]),
    "table row missing": (_table(lambda lines: lines[:-1]), ["29 rows for 30 frames"]),
    "table row extra": (_table(lambda lines: lines + ["30,0,0"]), ["frame '30'", "0 .. 29"]),
    "table row twice": (_table(lambda lines: lines[:-1] + [lines[5]]), ["listed twice", "[4]"]),
    "table NaN position": (_table(lambda lines: lines[:3] + ["2,nan,0.5"] + lines[4:]), ["x_um", "finite"]),
    "table text position": (_table(lambda lines: lines[:3] + ["2,1.0,left"] + lines[4:]), ["y_um", "not a number"]),
    "table without y_um": (_table(lambda lines: [",".join(x.split(",")[:2]) for x in lines]), ["missing", "y_um"]),
}


@pytest.mark.parametrize("case", list(BAD_XCCA))
def test_xcca_bad_input(case, raster, tmp_path):
    build, keywords = BAD_XCCA[case]
    rc, out, err = run_cli(base_argv(raster, **build(raster, tmp_path)))
    assert rc == 2, (out, err)
    assert "Traceback" not in err
    assert err.endswith("\n") and err.count("\n") == 1, repr(err)
    assert err.startswith("trxrd xcca: error: "), repr(err)
    for word in keywords:
        assert word in err, (word, err)
