"""Generated bad input (hypothesis) for every ``trxrd`` command and option that takes user input,
and for its input files: truncated or corrupt HDF5, CBF with a wrong header, a PONI for another
detector, masks of the wrong shape, frame tables with missing / extra / duplicate rows, NaN / inf,
huge integers and numbers with units, catalog keys, sample files. Each case must end with one
error line ``trxrd COMMAND: error: ...`` on stderr, no traceback (printed or logged) and exit
status 2. The CLI runs in this process (``trxrd.cli.main``); examples are derandomized, so CI
runs the same cases every time."""
from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from trxrd.cli import main

SETTINGS = dict(deadline=None, derandomize=True, database=None, phases=(Phase.explicit, Phase.generate),   # no shrinking
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.filter_too_much])
N_FRAMES = 8
RING_Q = 1.88                       # A^-1: the one ring painted on the frames
FRAME_COMMANDS = ("integrate", "kinetics", "reflections", "thermometer", "saxs", "stacking", "xcca")


# ---- running the command ---------------------------------------------------------------------
def run_cli(argv, capsys, caplog):
    """(exit status, stdout, stderr) of ``trxrd argv`` in this process; argparse's exit included."""
    capsys.readouterr()
    caplog.clear()
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


def assert_clean_error(argv, result, caplog, command=None):
    rc, out, err = result
    command = command or argv[0]
    assert "Traceback" not in err, (argv, err)
    logged = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not logged, (argv, [r.getMessage() for r in logged])
    assert rc == 2, (argv, rc, out, err)
    lines = err.splitlines()
    assert len(lines) == 1, (argv, err)
    assert lines[0].startswith(f"trxrd {command}: error: "), (argv, err)
    assert "internal error" not in lines[0], (argv, err)     # main()'s last resort: a bug to fix


# ---- input files -------------------------------------------------------------------------------
def _geometry(detector="Pilatus300k", dist=0.070):
    import pyFAI
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator

    return AzimuthalIntegrator(dist=dist, poni1=0.053, poni2=0.005, detector=pyFAI.detector_factory(detector),
                               wavelength=1.0597e-10)


def write_poni(path: Path, ai) -> str:
    if path.exists():
        path.unlink()                  # pyFAI appends to an existing file
    ai.write(str(path))
    return str(path)


def write_mask(path: Path, mask) -> str:
    import fabio

    fabio.edfimage.EdfImage(data=np.asarray(mask).astype(np.int8)).write(str(path))
    return str(path)


def write_h5(path: Path, frames, dataset="entry/data/data", dtype=np.int32) -> str:
    with h5py.File(path, "w") as f:
        f.create_dataset(dataset, data=np.asarray(frames, dtype=dtype))
    return str(path)


def write_csv(path: Path, header, rows) -> str:
    path.write_text("\n".join([",".join(header)] + [",".join(str(c) for c in r) for r in rows]) + "\n")
    return str(path)


# base tables: (header, rows) per command, one row per frame
def _tables():
    delays = [-100.0, -100.0, 0.0, 0.0, 100.0, 100.0, 1000.0, 1000.0]
    pump = ["on", "off"] * (N_FRAMES // 2)
    return {
        "kinetics": (["frame", "delay_ps", "pump", "i0"], [[k, delays[k], pump[k], 5e-9] for k in range(N_FRAMES)]),
        "reflections": (["frame", "delay_ps", "pump", "i0"],
                        [[k, delays[k], pump[k], 5e-9] for k in range(N_FRAMES)]),
        "thermometer": (["frame", "temperature_c", "i0"], [[k, 25.0 + 20 * k, 5e-9] for k in range(N_FRAMES)]),
        "saxs": (["frame", "time_s", "i0"], [[k, -2.0 + k, 5e-9] for k in range(N_FRAMES)]),
        "stacking": (["frame", "time_s", "temperature_c"], [[k, 10.0 * k, 25.0 + 10 * k] for k in range(N_FRAMES)]),
        "xcca": (["frame", "x_um", "y_um", "i0"], [[k, 0.5 * (k % 4), 0.5 * (k // 4), 5e-9] for k in range(N_FRAMES)]),
    }


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A Pilatus 300K geometry, its mask, 8 frames with one ring (HDF5 and 2 CBF), a table per
    command, a thermometer file; and a PONI of another detector."""
    import fabio

    root = tmp_path_factory.mktemp("bad_input_cli")
    ai = _geometry()
    q = ai.qArray() / 10.0                                    # A^-1
    rng = np.random.default_rng(14)
    mean = 50.0 + 2000.0 * np.exp(-0.5 * ((q - RING_Q) / 0.01) ** 2) + 200.0 * np.exp(-q / 0.05)
    frames = rng.poisson(mean, (N_FRAMES, *q.shape)).astype(np.int32)
    out = {"root": root, "shape": q.shape,
           "poni": write_poni(root / "waxs.poni", ai),
           "mask": write_mask(root / "mask.edf", np.zeros(q.shape)),
           "h5": write_h5(root / "frames.h5", frames),
           "other_poni": write_poni(root / "p100k.poni", _geometry("Pilatus100k"))}
    cbfs = []
    for k in range(2):
        path = root / f"frame_{k}.cbf"
        fabio.cbfimage.CbfImage(data=frames[k]).write(str(path))
        cbfs.append(str(path))
    out["cbf"] = cbfs
    out["tables"] = {}
    for command, (header, rows) in _tables().items():
        out["tables"][command] = write_csv(root / f"{command}.csv", header, rows)
    thermo = {"calibrations": {"112": {"hkl": "112", "q_min": 1.8, "q_max": 1.95}}, "points": []}
    out["thermometer_json"] = str(root / "thermometer.json")
    Path(out["thermometer_json"]).write_text(json.dumps(thermo))
    return out


def base_argv(command: str, f: dict, work: Path, frames=None) -> list:
    """A well-formed command line for *command*; a case changes one thing in it."""
    frames = [f["h5"]] if frames is None else frames
    common = [*frames, "--poni", f["poni"], "--mask", f["mask"]]
    table = ["--table", f["tables"].get(command, "")]
    return {
        "integrate": ["integrate", *common, "--npt", "300", "--out", work / "reduced.h5"],
        "kinetics": ["kinetics", *common, *table, "--window", "1.85:1.91", "--model", "exp", "--npt", "300"],
        "reflections": ["reflections", *common, *table, "--reflection", "112:1.80:1.95", "--npt", "300"],
        "thermometer": ["thermometer", *common, *table, "--reflection", "112:1.80:1.95", "--npt", "300",
                        "--out", work / "thermometer.json"],
        "saxs": ["saxs", *common, *table, "--json", work / "saxs.json", "--npt", "300"],
        "stacking": ["stacking", *common, *table, "--json", work / "stacking.json", "--npt", "300"],
        "xcca": ["xcca", *common, *table, "--q1", "0.5", "--q2", str(RING_Q), "--json", work / "xcca.json"],
    }[command]


def replace_option(argv: list, option: str, value) -> list:
    """*argv* with *option*'s value replaced (or the option added, as OPTION=VALUE so that a
    value starting with '-' is taken as one); value None drops it."""
    argv = list(argv)
    if option in argv:
        i = argv.index(option)
        del argv[i:i + 2]
    if value is not None:
        argv.append(f"{option}={value}")
    return argv


# ---- strategies -------------------------------------------------------------------------------
finite_or_not = st.sampled_from(["nan", "NaN", "inf", "-inf", "1e400", "-1e400"])
huge_ints = st.integers(min_value=10 ** 19, max_value=10 ** 40).map(str)
garbage_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                       min_size=0, max_size=12)
with_units = st.builds(lambda v, u: f"{v:g}{u}", st.floats(-1e3, 1e3, allow_nan=False),
                       st.sampled_from(["ps", " ps", "fs", "s", "nm", "A", "mm", "K", "%", "um", " furlong"]))
bad_number = st.one_of(finite_or_not, huge_ints, with_units, garbage_text.filter(lambda s: not _is_number(s)))


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def frame_file_case():
    """(kind, parameter) of a bad frame file."""
    return st.one_of(
        st.tuples(st.just("missing"), st.sampled_from(["nope.h5", "nope.cbf", "dir/"])),
        st.tuples(st.just("random_bytes"), st.binary(min_size=0, max_size=2048)),
        st.tuples(st.just("truncated_h5"), st.floats(0.0, 0.95)),
        st.tuples(st.just("hdf5_signature_then_junk"), st.binary(min_size=0, max_size=512)),
        st.tuples(st.just("wrong_dataset"), st.sampled_from(["entry/data/frames", "entry/instrument/detector/data",
                                                             "data"])),
        st.tuples(st.just("wrong_ndim"), st.sampled_from([(5,), (3, 4, 5, 6), ()])),
        st.tuples(st.just("wrong_shape"), st.tuples(st.integers(1, 3), st.integers(1, 64), st.integers(1, 64))),
        st.tuples(st.just("strings"), st.just(None)),
        st.tuples(st.just("zero_frames"), st.just(None)),
        st.tuples(st.just("cbf_bad_header"), st.sampled_from(["size", "binary", "magic", "truncate"])),
        st.tuples(st.just("cbf_other_shape"), st.tuples(st.integers(2, 40), st.integers(2, 40))),
        st.tuples(st.just("text_file"), garbage_text),
        st.tuples(st.just("directory"), st.just(None)),
    )


def make_frame_file(case, f: dict, work: Path) -> list:
    """The frame paths for a bad-frame *case* (the good HDF5 file first where the case adds one)."""
    import fabio

    kind, p = case
    path = work / "bad.h5"
    if kind == "missing":
        return [f["h5"], str(work / p)]
    if kind == "random_bytes":
        path.write_bytes(p)
    elif kind == "truncated_h5":
        data = Path(f["h5"]).read_bytes()
        path.write_bytes(data[:int(len(data) * p)])
    elif kind == "hdf5_signature_then_junk":
        path.write_bytes(b"\x89HDF\r\n\x1a\n" + p)
    elif kind == "wrong_dataset":
        write_h5(path, np.zeros((2, 8, 8)), dataset=p)
    elif kind == "wrong_ndim":
        write_h5(path, np.zeros(p))
    elif kind == "wrong_shape":
        write_h5(path, np.ones(p))
    elif kind == "strings":
        with h5py.File(path, "w") as h:
            h.create_dataset("entry/data/data", data=np.array([b"a", b"b"]))
    elif kind == "zero_frames":
        write_h5(path, np.zeros((0, *f["shape"])))
    elif kind == "cbf_bad_header":
        path = work / "bad.cbf"
        data = Path(f["cbf"][0]).read_bytes()
        if p == "size":
            data = data.replace(b"X-Binary-Size-Fastest-Dimension: 487", b"X-Binary-Size-Fastest-Dimension: 999")
        elif p == "binary":
            data = data.replace(b"X-Binary-Size:", b"X-Binary-Size: 12\r\nX-Old:", 1)
        elif p == "magic":
            data = data.replace(b"\x0c\x1a\x04\xd5", b"\x00\x00\x00\x00")
        else:
            data = data[:len(data) // 2]
        path.write_bytes(data)
    elif kind == "cbf_other_shape":
        path = work / "other.cbf"
        fabio.cbfimage.CbfImage(data=np.ones(p, np.int32)).write(str(path))
    elif kind == "text_file":
        path = work / "frames.tif"
        path.write_text(p)
    elif kind == "directory":
        path = work / "adir.h5"
        path.mkdir()
    return [f["h5"], str(path)] if kind in ("cbf_bad_header", "cbf_other_shape", "wrong_shape") else [str(path)]


def calibration_case():
    """(option, kind, parameter) of a bad PONI or mask."""
    return st.one_of(
        st.tuples(st.just("--poni"), st.just("other_detector"), st.just(None)),
        st.tuples(st.just("--poni"), st.just("missing"), st.just(None)),
        st.tuples(st.just("--poni"), st.just("text"), garbage_text),
        st.tuples(st.just("--poni"), st.just("field"),
                  st.one_of(st.tuples(st.sampled_from(["Distance", "Wavelength"]),
                                      finite_or_not | st.sampled_from(["-0.07", "0", "abc", ""])),
                            st.tuples(st.sampled_from(["Poni1", "Poni2", "Rot1", "Rot3"]),
                                      finite_or_not | st.sampled_from(["abc", "1,2"])),
                            st.tuples(st.just("Detector"), st.sampled_from(["Pilatus9M", "", "Pilatus100k"])),
                            st.tuples(st.just("Detector_config"), st.sampled_from(["abc", "{", "[]"])))),
        st.tuples(st.just("--mask"), st.just("shape"), st.tuples(st.integers(1, 700), st.integers(1, 700))),
        st.tuples(st.just("--mask"), st.just("missing"), st.just(None)),
        st.tuples(st.just("--mask"), st.just("bytes"), st.binary(max_size=512)),
        st.tuples(st.just("--mask"), st.just("h5"), st.just(None)),
    )


def make_calibration(case, f: dict, work: Path) -> tuple[str, str | None]:
    option, kind, p = case
    if option == "--poni":
        if kind == "other_detector":
            return option, f["other_poni"]
        if kind == "missing":
            return option, str(work / "nope.poni")
        path = work / "bad.poni"
        if kind == "text":
            path.write_text(p)
        else:
            key, value = p
            lines = Path(f["poni"]).read_text().splitlines()
            lines = [f"{key}: {value}" if line.startswith(f"{key}:") else line for line in lines]
            path.write_text("\n".join(lines) + "\n")
        return option, str(path)
    if kind == "shape":
        if tuple(p) == tuple(f["shape"]):
            p = (p[0] + 1, p[1])
        return option, write_mask(work / "bad_mask.edf", np.zeros(p))
    if kind == "missing":
        return option, str(work / "nope.edf")
    if kind == "h5":
        return option, f["h5"]
    path = work / "bad_mask.edf"
    path.write_bytes(p)
    return option, str(path)


def table_case(command: str):
    """(kind, parameter) of a bad frame table for *command*."""
    header, _ = _tables()[command]
    numeric = [c for c in header if c not in ("frame", "pump")]
    return st.one_of(
        st.tuples(st.just("drop_rows"), st.lists(st.integers(0, N_FRAMES - 1), min_size=1, max_size=3, unique=True)),
        st.tuples(st.just("extra_rows"), st.integers(1, 3)),
        st.tuples(st.just("duplicate_row"), st.tuples(st.integers(0, N_FRAMES - 1), st.integers(0, N_FRAMES - 1))),
        st.tuples(st.just("bad_value"), st.tuples(st.sampled_from([c for c in numeric if c != "i0"]),
                                                  st.integers(0, N_FRAMES - 1), bad_number)),
        *([st.tuples(st.just("bad_value"), st.tuples(st.just("i0"), st.integers(0, N_FRAMES - 1),
                                                     bad_number.filter(lambda v: not v.isdigit()) |
                                                     st.sampled_from(["0", "-5e-9", "-0"])))]
          if "i0" in numeric else []),
        st.tuples(st.just("bad_frame"), st.tuples(st.integers(0, N_FRAMES - 1),
                                                  st.one_of(huge_ints, st.sampled_from(["-1", "8", "2.5", "", "x",
                                                                                        "nan", "1e3"])))),
        st.tuples(st.just("drop_column"), st.sampled_from(["frame", header[1]])),
        st.tuples(st.just("text"), garbage_text),
        st.tuples(st.just("bytes"), st.binary(min_size=1, max_size=256)),
        st.tuples(st.just("header_only"), st.just(None)),
        st.tuples(st.just("missing"), st.just(None)),
        *([st.tuples(st.just("pump"), st.tuples(st.integers(0, N_FRAMES - 1),
                                                st.sampled_from(["maybe", "", "1", "ON ", "yes"])))]
          if "pump" in header else []),
    )


def make_table(command: str, case, work: Path) -> str:
    header, rows = _tables()[command]
    rows = [list(r) for r in rows]
    kind, p = case
    path = work / "bad.csv"
    if kind == "drop_rows":
        rows = [r for k, r in enumerate(rows) if k not in p]
    elif kind == "extra_rows":
        rows += [[N_FRAMES + k, *rows[-1][1:]] for k in range(p)]
    elif kind == "duplicate_row":
        src, dst = p
        rows[dst] = list(rows[src]) if src != dst else rows[dst]
        if src == dst:
            rows.append(list(rows[src]))
    elif kind == "bad_value":
        column, k, value = p
        rows[k][header.index(column)] = value.replace(",", ";").replace("\n", " ").replace("\r", " ")
    elif kind == "bad_frame":
        k, value = p
        rows[k][0] = value
    elif kind == "drop_column":
        i = header.index(p)
        header = [h for h in header if h != p]
        rows = [r[:i] + r[i + 1:] for r in rows]
    elif kind == "pump":
        k, value = p
        rows[k][header.index("pump")] = value
    if kind == "text":
        path.write_text(p)
    elif kind == "bytes":
        path.write_bytes(p)
    elif kind == "header_only":
        write_csv(path, header, [])
    elif kind == "missing":
        return str(work / "nope.csv")
    else:
        write_csv(path, header, rows)
    return str(path)


# ---- frame files, calibrations, tables: every command that reads frames -------------------------
@pytest.mark.parametrize("command", FRAME_COMMANDS)
@settings(max_examples=14, **SETTINGS)
@given(case=frame_file_case())
def test_bad_frame_files(command, case, files, capsys, caplog):
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        argv = base_argv(command, files, work, frames=make_frame_file(case, files, work))
        assert_clean_error(argv, run_cli(argv, capsys, caplog), caplog)


@pytest.mark.parametrize("command", FRAME_COMMANDS)
@settings(max_examples=8, **SETTINGS)
@given(case=calibration_case())
def test_bad_calibration(command, case, files, capsys, caplog):
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        option, value = make_calibration(case, files, work)
        argv = replace_option(base_argv(command, files, work), option, value)
        assert_clean_error(argv, run_cli(argv, capsys, caplog), caplog)


@pytest.mark.parametrize("command", [c for c in FRAME_COMMANDS if c != "integrate"])
@settings(max_examples=12, **SETTINGS)
@given(data=st.data())
def test_bad_frame_table(command, data, files, capsys, caplog):
    case = data.draw(table_case(command))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        argv = replace_option(base_argv(command, files, work), "--table", make_table(command, case, work))
        assert_clean_error(argv, run_cli(argv, capsys, caplog), caplog)


# ---- options ------------------------------------------------------------------------------------
positive_int_bad = st.one_of(st.integers(-10 ** 6, 0).map(str), huge_ints, bad_number,
                             st.sampled_from(["1.5", "1e3", "0x10", "", " "]))
positive_float_bad = st.one_of(st.floats(max_value=0.0, allow_nan=False, allow_infinity=False).map(repr),
                               finite_or_not, huge_ints.map(lambda s: "-" + s), with_units, garbage_text)
q_bad = st.one_of(positive_float_bad, st.sampled_from(["0.2 furlong", "0.2nm", "2/Hz", "1e-300", "50", "0.2A-2"]))
window_bad = st.one_of(
    garbage_text,
    st.builds(lambda a, b: f"{a}:{b}", bad_number, st.floats(0.1, 5)),
    st.builds(lambda a, b: f"{a:g}:{b:g}", st.floats(0.0, 5.0), st.floats(0.0, 5.0)).filter(
        lambda s: not float(s.split(":")[0]) < float(s.split(":")[1])),
    st.sampled_from(["50:60", "1:2:3", ":", "1.85:", "-1:2", "0.001:0.002", "1.8e0:nan", "1.85A-1:1.91A-1"]),
)
reflection_bad = st.one_of(
    garbage_text,
    st.builds(lambda h, w: f"{h}:{w}", st.sampled_from(["112", "abc", "1-12", "", "1234", "000", "11"]), window_bad),
    st.sampled_from(["112:50:60", "112:1.8", "112:1.95:1.80", "xyz:1.8:1.9", "112:nan:1.9", "112:0:1.9"]),
)
bad_output = st.sampled_from(["", ".", "/", "{file}/out.json", "{dir}"])   # under a file, a folder


def option_cases(command: str, f: dict, work: Path):
    """(option, strategy of bad values) for *command*; None as a value drops the option."""
    out = [] if command == "xcca" else [("--npt", positive_int_bad | st.sampled_from(["1", "2", "4"]))]
    if command == "integrate":
        out += [("--out", bad_output)]
    if command == "kinetics":
        out += [("--window", window_bad), ("--irf-fwhm", positive_float_bad), ("--json", bad_output),
                ("--plot", bad_output), ("--model", garbage_text), ("--reference", garbage_text),
                ("--signal", garbage_text)]
    if command == "reflections":
        out += [("--reflection", reflection_bad), ("--irf-fwhm", positive_float_bad), ("--json", bad_output),
                ("--structure", garbage_text),
                ("--thermometer", st.sampled_from([str(work / "nope.json"), f["h5"], f["tables"]["kinetics"],
                                                   f["thermometer_json"], "zzzzzzzz", "99999999999999999999"]))]
    if command == "thermometer":
        out += [("--reflection", reflection_bad), ("--out", bad_output),
                ("--degree", st.one_of(st.integers(-5, 0).map(str), huge_ints, st.sampled_from(["7", "50", "x"])))]
    if command in ("saxs", "stacking"):
        out += [("--qmin", q_bad), ("--qmax", q_bad), ("--json", bad_output),
                ("--qmax", st.sampled_from(["0.001", "0.0001A-1"]))]
    if command == "saxs":
        out += [("--background-i0", positive_float_bad), ("--distribution", garbage_text),
                ("--contrast", st.one_of(finite_or_not, st.sampled_from(["0", "-1e10", "x"]))),
                ("--absolute-factor", st.one_of(positive_float_bad, st.sampled_from(["2"]))),
                ("--background", st.sampled_from([str(work / "nope.h5"), f["poni"], f["tables"]["saxs"]]))]
    if command == "xcca":
        out += [("--q1", q_bad), ("--q2", q_bad), ("--dq", q_bad), ("--json", bad_output),
                ("--nphi", st.one_of(positive_int_bad, st.sampled_from(["35", "3601", "181", "37"]))),
                ("--q2", st.just("0.5")), ("--dq", st.sampled_from(["5", "2"]))]
    return out


@pytest.mark.parametrize("command", FRAME_COMMANDS)
@settings(max_examples=16, **SETTINGS)
@given(data=st.data())
def test_bad_option_values(command, data, files, capsys, caplog):
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cases = option_cases(command, files, work)
        option, values = cases[data.draw(st.integers(0, len(cases) - 1), label="option")]
        value = data.draw(values, label=option)
        if isinstance(value, str):
            value = value.replace("{file}", files["poni"]).replace("{dir}", str(work))
        argv = replace_option(base_argv(command, files, work), option, value)
        if option == "--absolute-factor":
            argv = replace_option(argv, "--contrast", None)     # without --contrast: refused
        assert_clean_error(argv, run_cli(argv, capsys, caplog), caplog)


# ---- the catalog: runs, show, reduce -------------------------------------------------------------
@pytest.fixture(scope="module")
def catalog(files, tmp_path_factory):
    """An embedded catalog under its own data root with one delay scan: 4 frames (on, off) and
    the plan's labels, written in this process."""
    from event_model import compose_run

    from trxrd.catalog import CatalogWriter, open_catalog

    root = tmp_path_factory.mktemp("bad_input_catalog")
    cat = open_catalog(root=root)
    writer = CatalogWriter(cat, backup_directory=root / "spool")
    run = compose_run(metadata={"scan_id": 7, "plan_name": "delay_scan", "sample": {"name": "CdSe/ZnS ../x"}})
    writer("start", run.start_doc)
    shape = list(files["shape"])
    desc = run.compose_descriptor(name="primary", data_keys={
        "pilatus_image": {"source": "sim", "dtype": "array", "shape": shape, "dtype_numpy": "<i4"},
        "delay_ps": {"source": "sim", "dtype": "number", "shape": [], "units": "ps"},
        "role": {"source": "plan", "dtype": "string", "shape": []}})
    writer("descriptor", desc.descriptor_doc)
    with h5py.File(files["h5"], "r") as h:
        frames = h["entry/data/data"][:4]
    for k, frame in enumerate(frames):
        data = {"pilatus_image": frame, "delay_ps": 100.0 * (k // 2), "role": ("on", "off")[k % 2]}
        writer("event", desc.compose_event(data=data, timestamps={key: 0.0 for key in data}))
    writer("stop", run.compose_stop())
    writer.close()
    return {"root": root, "uid": run.start_doc["uid"]}


@pytest.fixture
def data_root(catalog, monkeypatch):
    monkeypatch.setenv("TRXRD_DATA", str(catalog["root"]))
    for name in ("TRXRD_CATALOG", "TRXRD_PONI", "TRXRD_MASK", "TRXRD_WINDOWS", "TRXRD_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return catalog["root"]


run_keys = st.one_of(
    huge_ints, huge_ints.map(lambda s: "-" + s), st.integers(-10 ** 6, 10 ** 6).map(str), garbage_text,
    st.text(alphabet="0123456789abcdef-", max_size=40),
    st.sampled_from(["../../etc/passwd", "%00", "*", "", " ", "-0", "1e3", "0x10", "7.0", "a/b", "..", "?x=1"]))


@settings(max_examples=30, **SETTINGS)
@given(key=run_keys)
def test_show_any_key(key, data_root, catalog, capsys, caplog):
    """A run key is found (exit 0) or refused in one line (exit 2), never a traceback."""
    argv = ["show", "--", key]
    rc, out, err = run_cli(argv, capsys, caplog)
    if rc == 0:
        assert f"run {catalog['uid']}" in out and err == ""
    else:
        assert_clean_error(argv, (rc, out, err), caplog)


@settings(max_examples=16, **SETTINGS)
@given(limit=st.one_of(st.integers(-10 ** 30, 10 ** 30).map(str), garbage_text, st.sampled_from(["301", "1e3"])))
def test_runs_any_limit(limit, data_root, catalog, capsys, caplog):
    argv = ["runs", f"--limit={limit}"]
    rc, out, err = run_cli(argv, capsys, caplog)
    if rc == 0:
        assert catalog["uid"][:8] in out and err == "", (limit, err)
    else:
        assert_clean_error(argv, (rc, out, err), caplog)


def test_newest_pages_past_tiled_limit():
    """trxrd runs --limit above Tiled's 300 per page: asked for page by page."""
    from trxrd.cli import TILED_PAGE_MAX, _newest

    asked = []

    class Values(list):
        def __getitem__(self, item):
            asked.append(item)
            assert abs(item.stop - item.start) <= TILED_PAGE_MAX
            return list.__getitem__(self, item)

    class Cat:
        def __len__(self):
            return 700

        def values(self):
            return Values(range(700))

    assert list(_newest(Cat(), 650)) == list(range(699, 49, -1))
    assert list(_newest(Cat(), 10 ** 30)) == list(range(699, -1, -1))
    assert len(asked) == 3 + 3


def reduce_cases(f, work):
    return st.one_of(
        st.tuples(st.just("run"), run_keys.filter(lambda k: k not in ("-1", "7") and not k.startswith("-0"))),
        st.tuples(st.just("--window"), window_bad),
        st.tuples(st.just("--reflection"), reflection_bad),
        st.tuples(st.just("--npt"), positive_int_bad),
        st.tuples(st.just("--model"), garbage_text),
        st.tuples(st.just("--poni"), st.sampled_from([str(work / "nope.poni"), f["mask"], f["tables"]["kinetics"]])),
        st.tuples(st.just("--mask"), st.sampled_from([str(work / "nope.edf"), f["poni"]])),
        st.tuples(st.just("--catalog"), st.sampled_from(["ftp://x", "http://127.0.0.1:1", "not a uri", ""])),
    )


@settings(max_examples=30, **SETTINGS)
@given(data=st.data())
def test_reduce_bad_input(data, files, data_root, capsys, caplog):
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        option, value = data.draw(reduce_cases(files, work))
        argv = ["reduce", "-1", "--poni", files["poni"], "--mask", files["mask"], "--window", "1.85:1.91"]
        if option == "run":
            argv = ["reduce", *argv[2:], "--", value]
        else:
            argv = replace_option(argv, option, value)
        assert_clean_error(argv, run_cli(argv, capsys, caplog), caplog)


def test_reduce_window_outside_the_data_fails(files, data_root, catalog, capsys, caplog):
    """The issue's case: a window outside the data range, the reduced run fails: one line, exit 2
    (was a traceback and exit 0, 'stored')."""
    argv = ["reduce", "-1", "--poni", files["poni"], "--mask", files["mask"], "--window", "50:60"]
    rc, out, err = run_cli(argv, capsys, caplog)
    assert_clean_error(argv, (rc, out, err), caplog)
    assert f"the reduction of run {catalog['uid'][:8]} failed" in err
    assert "stored, linked" not in out


# ---- trxrd sim --config --------------------------------------------------------------------------
def _defaults():
    from trxrd.simulated_devices.physics.config import load_config

    return load_config()


DEFAULTS = _defaults()


def _bad_config_values(section: str, key: str):
    """Values *section.key* cannot take: the wrong type, NaN/inf, and out of range for a
    physical parameter (from the config's own rules)."""
    from trxrd.simulated_devices.physics import config as c

    value = DEFAULTS[section][key]
    out = [st.sampled_from(['"text"', "[1, 2]", "{a = 1}", "true"])]
    if isinstance(value, float):
        out.append(st.sampled_from(["nan", "inf", "-inf"]))
        if key in c.POSITIVE.get(section, ()):
            out.append(st.floats(max_value=0.0, allow_nan=False, allow_infinity=False).map(repr))
        if key in c.NON_NEGATIVE.get(section, ()):
            out.append(st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False).map(repr))
        if key in c.FRACTIONS.get(section, ()):
            out.append(st.floats(min_value=1.0001, max_value=1e300).map(repr))
    if isinstance(value, str):
        out = [st.sampled_from(["1", "[]", "1.5"])]
    return st.one_of(out)


config_keys = [(s, k) for s, table in DEFAULTS.items() if isinstance(table, dict) for k, v in table.items()
               if isinstance(v, (float, str)) and not (s, k) in {("sample", "name"), ("sample", "ligand"),
                                                                 ("sample", "solvent")}]


@settings(max_examples=40, **SETTINGS)
@given(data=st.data())
def test_sim_bad_sample_file(data, tmp_path, capsys, caplog):
    kind = data.draw(st.sampled_from(["value", "value", "value", "unknown", "syntax", "table"]))
    if kind == "value":
        section, key = data.draw(st.sampled_from(config_keys))
        text = f"[{section}]\n{key} = {data.draw(_bad_config_values(section, key))}\n"
    elif kind == "unknown":
        text = f"[{data.draw(st.sampled_from(sorted(DEFAULTS)))}]\n{data.draw(st.from_regex(r'[a-z_]{1,12}', fullmatch=True))}x = 1\n"
    elif kind == "table":
        text = f"{data.draw(st.sampled_from(sorted(DEFAULTS)))} = 1\n"
    else:
        text = data.draw(st.sampled_from(["[pump_probe\n", "tau1_ps = = 1", "[pump_probe]\ntau1_ps = 1ps\n",
                                          "\x00", "[a]\n[a]\n"]))
    path = tmp_path / "sample.toml"
    path.write_text(text)
    argv = ["sim", "--print-config", "--config", path, "--data-dir", tmp_path / "data"]
    assert_clean_error(argv, run_cli(argv, capsys, caplog), caplog)


def test_sim_negative_tau1_names_the_key_and_unit(tmp_path, capsys, caplog):
    path = tmp_path / "sample.toml"
    path.write_text("[pump_probe]\ntau1_ps = -150.0\n")
    argv = ["sim", "--print-config", "--config", path, "--data-dir", tmp_path / "data"]
    result = run_cli(argv, capsys, caplog)
    assert_clean_error(argv, result, caplog)
    assert "pump_probe.tau1_ps must be > 0 ps, got -150.0" in result[2]


# ---- an under-determined fit ------------------------------------------------------------------------
def test_kinetics_without_negative_delays_is_not_determined(tmp_path, capsys, caplog):
    """The issue's case: --reference negative_delay on a scan without negative delays gave tau1 =
    2 +- 9334 ps and exit 0; now 'not determined', exit 2, nothing written."""
    from trxrd.simulated_devices.physics.beamline import BeamlineModel

    model = BeamlineModel(seed=3)
    model.jet.run = True
    model.jet.advance(10.0)
    model.waveplate_deg = model.cfg["laser"]["theta0_deg"]
    d = model.cfg["delay"]
    frames, rows = [], []
    for delay in (300.0, 500.0, 800.0, 1200.0, 2000.0, 3000.0, 5000.0, 8000.0):   # none across time zero
        model.stage_mm = d["stage_time_zero_mm"]
        model.electronic_enabled, model.electronic_delay_s = True, delay * 1e-12
        for pump in ("on", "off"):
            model.shutter_open = pump == "on"
            frames.append(model.waxs_frame(exposure_s=0.1))
            rows.append([len(rows), delay, pump])
    poni, mask = model.waxs.write_calibration(tmp_path, "waxs")
    argv = ["kinetics", write_h5(tmp_path / "scan.h5", np.stack(frames)), "--poni", poni, "--mask", mask,
            "--table", write_csv(tmp_path / "scan.csv", ["frame", "delay_ps", "pump"], rows),
            "--window", "1.80:1.95", "--reference", "negative_delay", "--json", tmp_path / "fit.json"]
    rc, out, err = run_cli(argv, capsys, caplog)
    assert_clean_error(argv, (rc, out, err), caplog)
    assert "not determined" in err and "not determined" in out
    assert not (tmp_path / "fit.json").exists()
