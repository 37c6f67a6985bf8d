"""``trxrd integrate`` and ``trxrd kinetics`` on detector files written by the simulator's
physics model (no IOC): NeXus output, kinetics recovered against the ground truth, CBF input,
shuffled tables, and one clear error line (no traceback) for each kind of bad input."""
from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from trxrd.simulated_devices.physics.beamline import BeamlineModel, window_for
from trxrd.cli import main

LIGHT_M_S = 299792458.0
EXPOSURE_S = 0.1
# ~40 delays: dense every 25 ps across time zero, then logarithmic out to 10 ns.
DELAYS_PS = [float(d) for d in np.arange(-200.0, 201.0, 25.0)] + [float(d) for d in np.geomspace(250.0, 10000.0, 24)]
CBF_DELAYS_PS = [-150.0, -50.0, 0.0, 25.0, 50.0, 100.0, 200.0, 400.0, 800.0, 1500.0, 3000.0, 6000.0]
SMALL_DELAYS_PS = [-100.0, 0.0, 50.0, 100.0, 300.0, 2000.0]
FIT_KEYS = {"biexp": {"t0_ps", "tau1_ps", "a1", "tau2_ps", "a2", "irf_fwhm_ps"},
            "exp": {"t0_ps", "tau1_ps", "a1", "irf_fwhm_ps"}}


# ---- simulated data ----------------------------------------------------------------------
def _set_delay(model: BeamlineModel, delay_ps: float) -> None:
    d = model.cfg["delay"]
    if abs(delay_ps) <= 1000.0:
        model.electronic_enabled, model.electronic_delay_s = False, 0.0
        model.stage_mm = d["stage_time_zero_mm"] + delay_ps * 1e-12 * LIGHT_M_S / d["n_passes"] * 1e3
    else:
        model.stage_mm = d["stage_time_zero_mm"]
        model.electronic_enabled, model.electronic_delay_s = True, delay_ps * 1e-12


def _acquire(model: BeamlineModel, delays_ps) -> tuple[np.ndarray, list[dict]]:
    """One pump-on then one pump-off frame per delay, in that order, with the table rows."""
    frames, rows = [], []
    for delay in delays_ps:
        _set_delay(model, delay)
        assert model.delay_ps() == pytest.approx(delay, abs=1e-6)
        for pump in ("on", "off"):
            model.shutter_open = pump == "on"
            frames.append(model.waxs_frame(exposure_s=EXPOSURE_S))
            rows.append({"frame": len(rows), "delay_ps": repr(delay), "pump": pump,
                         "i0": repr(model.i0_current_a()), "fluence_mj_cm2": repr(model.fluence_mj_cm2())})
    return np.stack(frames), rows


def write_table(path: Path, rows: list[dict], columns=("frame", "delay_ps", "pump", "i0", "fluence_mj_cm2")) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_h5(path: Path, frames: np.ndarray) -> Path:
    with h5py.File(path, "w") as f:
        f.create_dataset("/entry/data/data", data=np.asarray(frames, dtype=np.int32))
    return path


@pytest.fixture(scope="module")
def beam(tmp_path_factory):
    """The model (jet flowing, full pump transmission: <N> ~ 375), PONI + mask, (112) window."""
    model = BeamlineModel(seed=20240611)
    model.jet.run = True
    model.jet.advance(10.0)
    model.waveplate_deg = model.cfg["laser"]["theta0_deg"]
    assert model.sample_fraction() == pytest.approx(1.0)
    assert model.excitations() > 300.0     # well above the melting threshold (60)
    root = tmp_path_factory.mktemp("cli_reduction")
    poni, mask = model.waxs.write_calibration(root / "calib", "waxs")
    q_min, q_max = window_for("112", model.cfg)
    return {"model": model, "root": root, "poni": str(poni), "mask": str(mask),
            "window": f"{q_min:.4f}:{q_max:.4f}", "window_tuple": (q_min, q_max)}


@pytest.fixture(scope="module")
def scan(beam):
    """The delay scan as TWO HDF5 files (the stack split in the middle of an on/off pair) + table."""
    root = beam["root"] / "scan"
    root.mkdir()
    frames, rows = _acquire(beam["model"], DELAYS_PS)
    half = len(frames) // 2 + 1          # odd: the pair of one delay straddles the two files
    files = [str(write_h5(root / "scan_0001.h5", frames[:half])), str(write_h5(root / "scan_0002.h5", frames[half:]))]
    return {"files": files, "table": str(write_table(root / "scan.csv", rows)), "rows": rows,
            "n_frames": len(frames), "root": root}


@pytest.fixture(scope="module")
def cbf_scan(beam):
    """A smaller scan, one CBF file per frame."""
    root = beam["root"] / "cbf"
    root.mkdir()
    import fabio

    frames, rows = _acquire(beam["model"], CBF_DELAYS_PS)
    files = []
    for i, frame in enumerate(frames):
        path = root / f"frame_{i:05d}.cbf"
        fabio.cbfimage.CbfImage(data=frame).write(str(path))
        files.append(str(path))
    return {"files": files, "rows": rows, "root": root}


@pytest.fixture(scope="module")
def small(beam):
    """Twelve frames (six delays, on/off) in one HDF5 file, for integrate and the bad-input cases."""
    root = beam["root"] / "small"
    root.mkdir()
    frames, rows = _acquire(beam["model"], SMALL_DELAYS_PS)
    return {"file": str(write_h5(root / "small.h5", frames)), "frames": frames, "rows": rows,
            "table": str(write_table(root / "small.csv", rows)), "root": root}


def kinetics(beam, frames, table, *extra, mask=True):
    argv = ["kinetics", *frames, "--poni", beam["poni"], "--table", table, "--window", beam["window"], *extra]
    if mask:
        argv += ["--mask", beam["mask"]]
    return main(argv)


def run_ok(capsys, beam, frames, table, json_path, *extra) -> dict:
    rc = kinetics(beam, frames, table, "--json", str(json_path), *extra)
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "Traceback" not in err
    return json.loads(Path(json_path).read_text())


def check_fit_shape(doc: dict, model: str) -> None:
    assert {"model", "fit", "delays_ps", "signal", "signal_err"} <= set(doc)
    assert doc["model"] == model
    fit = doc["fit"]
    params = {k for k, v in fit.items() if isinstance(v, dict)}
    assert params == FIT_KEYS[model]
    for name in params:
        assert set(fit[name]) == {"value", "stderr"}
        assert isinstance(fit[name]["value"], float) and math.isfinite(fit[name]["value"])
    assert isinstance(fit["redchi"], float) and math.isfinite(fit["redchi"]) and fit["redchi"] > 0
    n = len(doc["delays_ps"])
    assert len(doc["signal"]) == len(doc["signal_err"]) == n
    assert all(isinstance(v, float) and math.isfinite(v) for v in doc["signal"] + doc["signal_err"])
    assert all(e > 0 for e in doc["signal_err"])


# ---- kinetics ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def biexp_run(beam, scan, tmp_path_factory):
    """kinetics --model biexp --json --plot on the two HDF5 files (run once, in-process)."""
    out = tmp_path_factory.mktemp("biexp")
    json_path, png = out / "fit.json", out / "fit.png"
    rc = kinetics(beam, scan["files"], scan["table"], "--model", "biexp", "--json", str(json_path),
                  "--plot", str(png))
    return rc, json_path, png


def test_biexp_recovers_the_truth(beam, scan, biexp_run):
    rc, json_path, png = biexp_run
    assert rc == 0
    doc = json.loads(json_path.read_text())
    check_fit_shape(doc, "biexp")
    truth = beam["model"].cfg["pump_probe"]
    fit = doc["fit"]
    assert fit["tau1_ps"]["value"] == pytest.approx(truth["tau1_ps"], rel=0.10)
    assert fit["tau2_ps"]["value"] == pytest.approx(truth["tau2_ps"], rel=0.25)
    assert abs(fit["t0_ps"]["value"] - 0.0) < 10.0       # the stage's time zero is the true t0
    assert fit["irf_fwhm_ps"]["value"] == pytest.approx(truth["irf_fwhm_ps"], rel=0.10)
    for name in ("tau1_ps", "tau2_ps", "t0_ps", "irf_fwhm_ps"):
        assert fit[name]["stderr"] is not None and 0 < fit[name]["stderr"] < abs(fit[name]["value"]) + 10
    # a melting signal: both amplitudes negative, the fast one the larger share (truth a1 = 0.7)
    a1, a2 = fit["a1"]["value"], fit["a2"]["value"]
    assert a1 < 0 and a2 < 0
    assert 0.5 < a1 / (a1 + a2) < 0.9
    # one point per delay, sorted, at the delays of the table
    assert doc["delays_ps"] == sorted(doc["delays_ps"])
    assert len(doc["delays_ps"]) == len(DELAYS_PS)
    np.testing.assert_allclose(doc["delays_ps"], sorted(DELAYS_PS), atol=1e-6)
    assert doc["n_pairs"] == [1] * len(DELAYS_PS)
    assert doc["signal_part"] == "area"
    np.testing.assert_allclose(doc["windows_inv_angstrom"], [[float(v) for v in beam["window"].split(":")]])
    # the signal is the relative area change of the window, I0-normalised: compare with the truth
    model, (q_min, q_max) = beam["model"], beam["window_tuple"]
    truth_signal = np.array([model.relative_area_change(q_min, q_max, d) for d in doc["delays_ps"]])
    signal, err = np.array(doc["signal"]), np.array(doc["signal_err"])
    assert signal.min() < -0.1                       # <N> ~ 375: well above the melting threshold
    assert np.all(np.abs(signal[np.array(doc["delays_ps"]) < -150]) < 0.006)   # nothing before t0
    assert np.max(np.abs(signal - truth_signal)) < 0.01
    assert np.median(np.abs(signal - truth_signal) / err) < 2.0     # and signal_err is its noise
    assert png.is_file() and png.stat().st_size > 10_000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_exp_with_fixed_irf(beam, scan, tmp_path, capsys):
    doc = run_ok(capsys, beam, scan["files"], scan["table"], tmp_path / "exp.json",
                 "--model", "exp", "--irf-fwhm", "79")
    check_fit_shape(doc, "exp")
    fit = doc["fit"]
    assert "tau2_ps" not in fit and "a2" not in fit
    assert fit["irf_fwhm_ps"]["value"] == 79.0
    assert fit["irf_fwhm_ps"]["stderr"] is None
    assert fit["tau1_ps"]["stderr"] is not None
    # one exponential through a 150 ps + 2500 ps recovery lands between the two (~700 ps)
    assert 400.0 < fit["tau1_ps"]["value"] < 1000.0
    assert abs(fit["t0_ps"]["value"]) < 30.0
    assert fit["a1"]["value"] < 0


def test_negative_signal(beam, scan, tmp_path, capsys):
    doc = run_ok(capsys, beam, scan["files"], scan["table"], tmp_path / "neg.json",
                 "--signal", "negative", "--model", "biexp")
    check_fit_shape(doc, "biexp")
    assert doc["signal_part"] == "negative"
    assert all(s <= 0 for s in doc["signal"])
    assert doc["fit"]["tau1_ps"]["value"] == pytest.approx(150.0, rel=0.20)


def test_cbf_frames_and_shuffled_table(beam, cbf_scan, tmp_path, capsys):
    table = write_table(tmp_path / "cbf.csv", cbf_scan["rows"])
    doc = run_ok(capsys, beam, cbf_scan["files"], str(table), tmp_path / "cbf.json", "--model", "exp")
    check_fit_shape(doc, "exp")
    tau1 = doc["fit"]["tau1_ps"]["value"]
    assert math.isfinite(tau1) and 300.0 < tau1 < 1000.0
    assert len(doc["delays_ps"]) == len(CBF_DELAYS_PS)
    np.testing.assert_allclose(doc["delays_ps"], CBF_DELAYS_PS, atol=1e-6)

    shuffled_rows = [cbf_scan["rows"][i] for i in np.random.default_rng(3).permutation(len(cbf_scan["rows"]))]
    assert [r["frame"] for r in shuffled_rows] != sorted(r["frame"] for r in shuffled_rows)
    shuffled = write_table(tmp_path / "shuffled.csv", shuffled_rows)
    doc2 = run_ok(capsys, beam, cbf_scan["files"], str(shuffled), tmp_path / "cbf2.json", "--model", "exp")
    assert doc2["delays_ps"] == doc["delays_ps"]
    np.testing.assert_allclose(doc2["signal"], doc["signal"], rtol=1e-12, atol=0)
    np.testing.assert_allclose(doc2["fit"]["tau1_ps"]["value"], tau1, rtol=1e-9)


# ---- integrate ---------------------------------------------------------------------------
def test_integrate_writes_nexus(beam, small, cbf_scan, tmp_path, capsys):
    out = tmp_path / "reduced.h5"
    frames = [small["file"], *cbf_scan["files"][:2]]       # HDF5 (12 frames) + two CBF frames
    rc = main(["integrate", *frames, "--poni", beam["poni"], "--mask", beam["mask"], "--npt", "600",
               "--out", str(out)])
    _, err = capsys.readouterr()
    assert rc == 0, err
    with h5py.File(out, "r") as f:
        assert f["/entry"].attrs["NX_class"] == "NXentry"
        data = f["/entry/reduced"]
        assert data.attrs["NX_class"] == "NXdata" and data.attrs["signal"] == "I"
        intensity, sigma, q = data["I"][()], data["I_errors"][()], data["q"][()]
        assert data["q"].attrs["units"] == "1/angstrom"
    assert intensity.shape == sigma.shape == (14, 600)
    assert q.shape == (600,)
    assert np.all(np.diff(q) > 0)
    assert 0.0 <= q[0] < 0.5 and 3.0 < q[-1] < 6.0          # A^-1, not nm^-1
    assert np.all(np.isfinite(intensity)) and np.all(sigma >= 0)
    # the (112) ring: the maximum of every pump-off curve, at 1.88 A^-1
    model = beam["model"]
    for k in (1, 3, 5, 7, 9, 11, 13):
        assert q[np.argmax(intensity[k])] == pytest.approx(1.88, abs=0.02)
    # corrected, unnormalised intensity of a pump-off frame = the simulator's profile x exposure x flux
    off_truth = model.waxs_profile(q, model.truth(delay_ps=0.0, pumped=False))
    flux = float(small["rows"][1]["i0"]) / model.cfg["beam"]["i0_nominal_a"]
    sel = (q > 1.0) & (q < 3.0)
    ratio = intensity[1][sel] / (off_truth[sel] * EXPOSURE_S * flux)
    assert np.median(ratio) == pytest.approx(1.0, abs=0.02)
    # frames in order: pump-on before pump-off in the HDF5 stack (melted at +50 and +100 ps) ...
    peak = (q > 1.85) & (q < 1.91)
    for on in (4, 6):
        assert intensity[on][peak].max() < 0.85 * intensity[on + 1][peak].max()
    # ... and the CBF files after it, in the order given
    alone = tmp_path / "alone.h5"
    assert main(["integrate", cbf_scan["files"][1], "--poni", beam["poni"], "--mask", beam["mask"],
                 "--npt", "600", "--out", str(alone)]) == 0
    with h5py.File(alone, "r") as f:
        np.testing.assert_array_equal(f["/entry/reduced/I"][()], intensity[13:14])
        np.testing.assert_array_equal(f["/entry/reduced/q"][()], q)
    assert not np.array_equal(intensity[12], intensity[13])


# ---- bad input: one line on stderr, exit code 2, no traceback -----------------------------
def _rows_table(small, tmp_path, edit, columns=("frame", "delay_ps", "pump", "i0", "fluence_mj_cm2")):
    rows = [dict(r) for r in small["rows"]]
    rows = edit(rows)
    return str(write_table(tmp_path / "bad.csv", rows, columns))


def _set(rows, index, key, value):
    rows[index][key] = value
    return rows


def _other_poni(tmp_path):
    import pyFAI
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator

    path = tmp_path / "pilatus100k.poni"
    AzimuthalIntegrator(dist=0.1, poni1=0.05, poni2=0.05, detector=pyFAI.detector_factory("Pilatus100k"),
                        wavelength=1.06e-10).write(str(path))
    return str(path)


def _corrupt(tmp_path):
    path = tmp_path / "corrupt.h5"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    return str(path)


def _no_dataset(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("/entry/instrument/detector/data", data=np.zeros((2, 4, 4), np.int32))
    return str(path)


# name: (how to build the arguments from (beam, small, tmp_path) as a dict of overrides, keywords)
BAD_KINETICS = {
    "missing_frame_file": (lambda b, s, t: {"frames": [s["file"], str(t / "nope.h5")]}, ["not found", "nope.h5"]),
    "table_row_missing": (lambda b, s, t: {"table": _rows_table(s, t, lambda r: r[:-1])}, ["11 rows for 12 frames"]),
    "table_duplicate_index": (lambda b, s, t: {"table": _rows_table(s, t, lambda r: r + [dict(r[3])])},
                              ["13 rows for 12 frames", "listed twice: [3]"]),
    "table_same_count_duplicate": (lambda b, s, t: {"table": _rows_table(s, t, lambda r: _set(r, 11, "frame", 6))},
                                   ["listed twice: [6]"]),
    "table_index_out_of_range": (lambda b, s, t: {"table": _rows_table(s, t, lambda r: _set(r, 11, "frame", 12))},
                                 ["line 13", "frame '12'", "0 .. 11"]),
    "table_negative_index": (lambda b, s, t: {"table": _rows_table(s, t, lambda r: _set(r, 0, "frame", -1))},
                             ["frame '-1'"]),
    "table_fractional_index": (lambda b, s, t: {"table": _rows_table(s, t, lambda r: _set(r, 2, "frame", "2.5"))},
                               ["frame '2.5'"]),
    "pump_maybe": (lambda b, s, t: {"table": _rows_table(s, t, lambda r: _set(r, 2, "pump", "maybe"))},
                   ["line 4", "pump", "'maybe'"]),
    "delay_nan": (lambda b, s, t: {"table": _rows_table(s, t, lambda r: _set(r, 1, "delay_ps", "nan"))},
                  ["line 3", "delay_ps", "finite"]),
    "delay_not_a_number": (lambda b, s, t: {"table": _rows_table(s, t, lambda r: _set(r, 1, "delay_ps", "12ps"))},
                           ["delay_ps", "not a number"]),
    "i0_nan": (lambda b, s, t: {"table": _rows_table(s, t, lambda r: _set(r, 4, "i0", "NaN"))}, ["i0", "finite"]),
    "i0_negative": (lambda b, s, t: {"table": _rows_table(s, t, lambda r: _set(r, 4, "i0", "-5e-9"))},
                    ["i0 must be > 0"]),
    "i0_zero": (lambda b, s, t: {"table": _rows_table(s, t, lambda r: _set(r, 5, "i0", "0"))}, ["i0 must be > 0"]),
    "missing_column": (lambda b, s, t: {"table": _rows_table(s, t, lambda r: r, ("frame", "delay_ps", "i0"))},
                       ["missing column(s) pump"]),
    "missing_table": (lambda b, s, t: {"table": str(t / "nope.csv")}, ["frame table not found"]),
    "poni_other_detector": (lambda b, s, t: {"poni": _other_poni(t), "mask": None}, ["619", "195", "detector"]),
    "poni_other_detector_with_mask": (lambda b, s, t: {"poni": _other_poni(t)}, ["mask shape", "detector"]),
    "window_outside_q_range": (lambda b, s, t: {"window": "9:10"}, ["outside the data range"]),
    "window_malformed": (lambda b, s, t: {"window": "abc"}, ["'abc'", "QMIN:QMAX"]),
    "window_three_numbers": (lambda b, s, t: {"window": "1.7:1.8:1.9"}, ["QMIN:QMAX"]),
    "window_reversed": (lambda b, s, t: {"window": "2.05:1.70"}, ["QMIN < QMAX"]),
    "window_empty": (lambda b, s, t: {"window": "1.8:1.8"}, ["QMIN < QMAX"]),
    "corrupt_hdf5": (lambda b, s, t: {"frames": [_corrupt(t)]}, ["corrupt.h5", "not a readable HDF5"]),
    "hdf5_without_dataset": (lambda b, s, t: {"frames": [_no_dataset(t)]}, ["no /entry/data/data"]),
    "missing_poni": (lambda b, s, t: {"poni": str(t / "nope.poni")}, ["PONI file not found"]),
    "missing_mask": (lambda b, s, t: {"mask": str(t / "nope.edf")}, ["mask file not found"]),
    "irf_negative": (lambda b, s, t: {"extra": ["--irf-fwhm", "-5"]}, ["--irf-fwhm", "positive"]),
    "irf_nan": (lambda b, s, t: {"extra": ["--irf-fwhm", "nan"]}, ["--irf-fwhm", "positive"]),
}


def _kinetics_argv(beam, small, overrides: dict) -> list[str]:
    args = {"frames": [small["file"]], "poni": beam["poni"], "mask": beam["mask"], "table": small["table"],
            "window": beam["window"], "extra": ["--model", "exp"]}
    args.update(overrides)
    argv = ["kinetics", *args["frames"], "--poni", args["poni"], "--table", args["table"],
            "--window", args["window"], *args["extra"]]
    if args["mask"] is not None:
        argv += ["--mask", args["mask"]]
    return argv


def assert_one_error_line(err: str, command: str, keywords) -> None:
    assert "Traceback" not in err
    assert err.endswith("\n") and err.count("\n") == 1, repr(err)
    assert err.startswith(f"trxrd {command}: error: "), repr(err)
    for word in keywords:
        assert word in err, (word, err)


@pytest.mark.parametrize("case", list(BAD_KINETICS))
def test_kinetics_bad_input(case, beam, small, tmp_path, capsys):
    build, keywords = BAD_KINETICS[case]
    argv = _kinetics_argv(beam, small, build(beam, small, tmp_path))
    capsys.readouterr()
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == 2
    assert_one_error_line(err, "kinetics", keywords)
    assert out == ""


def test_small_scan_is_good_input(beam, small, tmp_path, capsys):
    """The base of the bad-input cases runs: each failure above comes from its one change."""
    rc = main(_kinetics_argv(beam, small, {"extra": ["--model", "exp", "--json", str(tmp_path / "f.json")]}))
    _, err = capsys.readouterr()
    assert rc == 0, err
    assert len(json.loads((tmp_path / "f.json").read_text())["delays_ps"]) == len(SMALL_DELAYS_PS)


BAD_INTEGRATE = {
    "missing_frame_file": (lambda s, t: {"frames": [s["file"], str(t / "nope.h5")]}, ["not found"]),
    "corrupt_hdf5": (lambda s, t: {"frames": [_corrupt(t)]}, ["not a readable HDF5"]),
    "hdf5_without_dataset": (lambda s, t: {"frames": [_no_dataset(t)]}, ["no /entry/data/data"]),
    "poni_other_detector": (lambda s, t: {"poni": _other_poni(t), "mask": None}, ["619", "195"]),
    "missing_poni": (lambda s, t: {"poni": str(t / "nope.poni")}, ["PONI file not found"]),
    "npt_too_small": (lambda s, t: {"extra": ["--npt", "5"]}, ["--npt"]),
}


@pytest.mark.parametrize("case", list(BAD_INTEGRATE))
def test_integrate_bad_input(case, beam, small, tmp_path, capsys):
    build, keywords = BAD_INTEGRATE[case]
    args = {"frames": [small["file"]], "poni": beam["poni"], "mask": beam["mask"], "extra": []}
    args.update(build(small, tmp_path))
    out_file = tmp_path / "reduced.h5"
    argv = ["integrate", *args["frames"], "--poni", args["poni"], "--out", str(out_file), *args["extra"]]
    if args["mask"] is not None:
        argv += ["--mask", args["mask"]]
    capsys.readouterr()
    rc = main(argv)
    _, err = capsys.readouterr()
    assert rc == 2
    assert_one_error_line(err, "integrate", keywords)
    assert not out_file.exists()


def test_real_command_fails_cleanly(beam, small, tmp_path):
    """The installed command, in its own process: exit 2, one error line, no traceback."""
    script = Path(sys.executable).with_name("trxrd")
    cmd = [str(script)] if script.is_file() else [sys.executable, "-m", "trxrd.cli"]
    table = _rows_table(small, tmp_path, lambda r: _set(r, 2, "pump", "maybe"))
    r = subprocess.run([*cmd, *_kinetics_argv(beam, small, {"table": table})], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2
    assert_one_error_line(r.stderr, "kinetics", ["pump must be 'on' or 'off'", "'maybe'"])


# ---- more bad input ------------------------------------------------------------------------
def test_kinetics_hdf5_dataset_path_is_a_group(beam, small, tmp_path, capsys):
    path = tmp_path / "group.h5"
    with h5py.File(path, "w") as f:
        f.create_group("/entry/data/data")
    rc = main(_kinetics_argv(beam, small, {"frames": [str(path)]}))
    _, err = capsys.readouterr()
    assert rc == 2
    assert_one_error_line(err, "kinetics", ["/entry/data/data"])


@pytest.mark.parametrize("npt", ["0", "-5"])
def test_kinetics_npt_is_checked(npt, beam, small, capsys):
    rc = main(_kinetics_argv(beam, small, {"extra": ["--model", "exp", "--npt", npt]}))
    _, err = capsys.readouterr()
    assert rc == 2
    assert_one_error_line(err, "kinetics", ["--npt"])


def test_kinetics_table_with_utf8_bom(beam, small, tmp_path, capsys):
    table = tmp_path / "bom.csv"
    table.write_bytes(b"\xef\xbb\xbf" + Path(small["table"]).read_bytes())
    rc = main(_kinetics_argv(beam, small, {"table": str(table)}))
    _, err = capsys.readouterr()
    assert rc == 0, err


def test_kinetics_table_not_text_names_the_table(beam, small, capsys):
    rc = main(_kinetics_argv(beam, small, {"table": small["file"]}))
    _, err = capsys.readouterr()
    assert rc == 2
    assert_one_error_line(err, "kinetics", ["small.h5"])


def test_integrate_no_frames_is_an_error(beam, small, tmp_path, capsys):
    empty = write_h5(tmp_path / "empty.h5", np.zeros((0, *small["frames"].shape[1:]), np.int32))
    out = tmp_path / "reduced.h5"
    rc = main(["integrate", str(empty), "--poni", beam["poni"], "--out", str(out)])
    _, err = capsys.readouterr()
    assert rc == 2
    assert_one_error_line(err, "integrate", ["frame"])
