"""Detector files and frame tables from a beamtime, and the NeXus file of integrated data.

Frames: HDF5 files with ``/entry/data/data`` (frames along the first axis, the areaDetector /
NeXus layout) or one-frame image files fabio reads (CBF, TIFF, EDF). The frame table is a CSV
with one row per frame: ``frame`` (0-based index across all files in order), ``delay_ps``,
``pump`` (``on``/``off``), optionally ``i0`` and ``fluence_mj_cm2``.

EXAMPLE::

    from trxrd.reduction.io import load_frames, read_frame_table, write_nexus
    frames = load_frames(["scan_0001.h5"])           # (N, ny, nx)
    table = read_frame_table("scan_0001.csv", n_frames=len(frames))
    table["delay_ps"], table["pump_on"], table.get("i0")
"""
from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import numpy as np

HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".nxs")
HDF5_DATASET = "/entry/data/data"


BLOCK_FRAMES = 32       # frames read from an HDF5 stack at a time (a raster holds thousands)


CBF_BINARY_SECTION = b"--CIF-BINARY-FORMAT-SECTION--"
CBF_BINARY_START = b"\x0c\x1a\x04\xd5"


def check_cbf(path: Path) -> None:
    """ValueError unless a CBF file's binary section is complete: its start mark there and
    ``X-Binary-Size`` bytes after it (fabio reads forever on a file without the mark)."""
    path = Path(path)
    with open(path, "rb") as f:
        data = f.read()
    if path.suffix.lower() != ".cbf" and not data.startswith(b"###CBF"):
        return                                   # not a CBF file: fabio says what it is
    section = data.find(CBF_BINARY_SECTION)
    if section < 0:
        raise ValueError(f"{path}: CBF file without a binary section")
    start = data.find(CBF_BINARY_START, section)
    if start < 0:
        raise ValueError(f"{path}: CBF binary section without its start mark (truncated or corrupt header)")
    match = re.search(rb"X-Binary-Size:\s*(\d+)", data[section:start])
    if match is None:
        raise ValueError(f"{path}: CBF binary section without X-Binary-Size")
    if len(data) - (start + len(CBF_BINARY_START)) < int(match.group(1)):
        raise ValueError(f"{path}: CBF file truncated: X-Binary-Size {int(match.group(1))} bytes, "
                         f"{len(data) - start - len(CBF_BINARY_START)} present")


def _image_frame(path: Path) -> np.ndarray:
    import fabio

    check_cbf(path)
    try:
        data = fabio.open(str(path)).data
    except Exception as exc:    # fabio raises many kinds on a corrupt or unknown file
        raise ValueError(f"{path}: not a readable image file ({type(exc).__name__}: {exc})") from exc
    if data is None or data.ndim != 2:
        raise ValueError(f"{path}: expected one 2-D frame")
    return data[None]


def frame_files(paths) -> list[tuple[Path, int, tuple | None]]:
    """(file, frames in it, frame shape; None for a one-frame image, read later) for each of
    *paths*, checked: every file exists, HDF5 files hold the areaDetector dataset as (N, ny, nx) or
    (ny, nx), the stacks have one frame shape, there is at least one frame. Of an HDF5 stack only
    its shape is read here."""
    import h5py

    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no frame files given")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ValueError(f"frame file(s) not found: {', '.join(missing)}")
    files = []
    for path in paths:
        if path.suffix.lower() not in HDF5_SUFFIXES:
            files.append((path, 1, None))
            continue
        try:
            with h5py.File(path, "r") as f:
                data = f.get(HDF5_DATASET)
                if not isinstance(data, h5py.Dataset):
                    raise ValueError(f"{path}: no {HDF5_DATASET} dataset (areaDetector/NeXus layout expected)")
                shape = tuple(data.shape)
        except OSError as exc:
            raise ValueError(f"{path}: not a readable HDF5 file ({exc})") from exc
        if len(shape) not in (2, 3):
            raise ValueError(f"{path}: {HDF5_DATASET} has shape {shape}, expected (N, ny, nx)")
        files.append((path, 1 if len(shape) == 2 else shape[0], shape[-2:]))
    shapes = {s for _, _, s in files if s is not None}
    if len(shapes) > 1:
        raise ValueError(f"frames of different shapes: {sorted(shapes)}")
    if sum(n for _, n, _ in files) == 0:
        raise ValueError(f"no frames in {', '.join(str(p) for p in paths)}")
    return files


def iter_frames(files, block: int = BLOCK_FRAMES):
    """The frames of ``frame_files`` in order, one (ny, nx) array at a time, HDF5 stacks read
    *block* frames at a time; ``ValueError`` naming the file for a one-frame image of another shape."""
    import h5py

    shape = next((s for _, _, s in files if s is not None), None)
    for path, n, file_shape in files:
        if file_shape is None:
            frame = _image_frame(path)[0]
            if shape is not None and frame.shape != shape:
                raise ValueError(f"frames of different shapes: {path} is {frame.shape}, the others {shape}")
            shape = frame.shape
            yield frame
            continue
        try:
            with h5py.File(path, "r") as f:
                data = f[HDF5_DATASET]
                if data.ndim == 2:
                    yield data[()]
                    continue
                for start in range(0, n, block):
                    yield from data[start:start + block]
        except OSError as exc:
            raise ValueError(f"{path}: not a readable HDF5 file ({exc})") from exc


def load_frames(paths) -> np.ndarray:
    """All frames of *paths* in order, as one (N, ny, nx) array; every file must exist and
    all frames must have one shape (``frame_files``, ``iter_frames``)."""
    return np.array(list(iter_frames(frame_files(paths))))


def _number(row: dict, key: str, line: int, path: Path) -> float:
    text = (row.get(key) or "").strip()
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{path} line {line}: {key} = {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{path} line {line}: {key} is {text!r}; every value must be finite")
    if key in COLUMN_RANGES:
        low, high, unit = COLUMN_RANGES[key]
        if not low <= value <= high:
            raise ValueError(f"{path} line {line}: {key} = {text!r} is outside {low:g} .. {high:g} {unit} "
                             "(another unit?)")
    return value


# what a frame table's physical columns can hold: (low, high, unit); wider is another unit or a typo
COLUMN_RANGES = {"delay_ps": (-1e9, 1e9, "ps"), "time_s": (-1e8, 1e8, "s"), "temperature_c": (-273.15, 1e4, "C"),
                 "x_um": (-1e6, 1e6, "um"), "y_um": (-1e6, 1e6, "um"), "fluence_mj_cm2": (0.0, 1e6, "mJ/cm^2")}


def read_frame_table(path, n_frames: int, *, required=("frame", "delay_ps", "pump"), optional=(),
                     text=()) -> dict:
    """The frame table, checked against *n_frames*, sorted by frame index: arrays of the
    *required* columns (``pump`` becomes ``pump_on``, bool) and, when they exist, ``i0``,
    ``fluence_mj_cm2``, ``temperature_c`` and the numeric columns named in *optional*; the
    columns named in *text* (when they exist) as stripped strings.

    EXAMPLE::

        rows = read_frame_table("anneal.csv", 120, required=("frame",), optional=("time_s", "segment"),
                                text=("segment_kind",))
        rows.get("time_s"), rows.get("segment_kind")       # None where the table lacks the column
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"frame table not found: {path}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:     # -sig: spreadsheet CSVs
            reader = csv.DictReader(f)
            columns = [c.strip() for c in reader.fieldnames or []]
            reader.fieldnames = columns
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"frame table {path} is not a CSV text file ({exc})") from None
    missing = [c for c in required if c not in columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)} (have: {', '.join(columns)})")
    numbers = [c for c in required if c not in ("frame", "pump")]
    numbers += [c for c in ("i0", "fluence_mj_cm2", "temperature_c", *optional) if c in columns and c not in numbers]
    strings = [c for c in text if c in columns and c not in numbers and c != "frame"]
    out = {key: [] for key in ("frame", *numbers, *strings, *(("pump_on",) if "pump" in required else ()))}
    for line, row in enumerate(rows, start=2):
        frame = _number(row, "frame", line, path)
        if frame != int(frame) or not 0 <= frame < n_frames:
            raise ValueError(f"{path} line {line}: frame {row['frame']!r} is not an index of the "
                             f"{n_frames} frames given (0 .. {n_frames - 1})")
        out["frame"].append(int(frame))
        if "pump" in required:
            pump = (row.get("pump") or "").strip().lower()
            if pump not in ("on", "off"):
                raise ValueError(f"{path} line {line}: pump must be 'on' or 'off', got {row.get('pump')!r}")
            out["pump_on"].append(pump == "on")
        for key in numbers:
            out[key].append(_number(row, key, line, path))
        for key in strings:
            out[key].append((row.get(key) or "").strip())
    if "i0" in out and any(v <= 0 for v in out["i0"]):
        raise ValueError(f"{path}: i0 must be > 0 in every row")
    frames = out["frame"]
    if len(frames) != n_frames or len(set(frames)) != n_frames:
        dup = sorted({f for f in frames if frames.count(f) > 1})
        raise ValueError(f"{path}: {len(frames)} rows for {n_frames} frames"
                         + (f"; frame(s) listed twice: {dup[:10]}" if dup else "")
                         + " (one row per frame expected)")
    order = np.argsort(frames)
    return {key: np.asarray(values)[order] for key, values in out.items()}


def write_nexus(path, q_inv_angstrom, intensity, sigma, *, sources, program_notes: dict) -> Path:
    """Integrated frames as NeXus: ``/entry/reduced`` NXdata with ``I`` (frame, q), ``I_errors``
    and the axis ``q`` (1/angstrom); ``/entry/process`` NXprocess with the calibration notes."""
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        entry = f.create_group("entry")
        entry.attrs.update(NX_class="NXentry", default="reduced")
        data = entry.create_group("reduced")
        data.attrs.update(NX_class="NXdata", signal="I", axes=[".", "q"], q_indices=1)
        data.create_dataset("I", data=np.asarray(intensity, dtype=np.float64)).attrs["units"] = "counts/monitor"
        data.create_dataset("I_errors", data=np.asarray(sigma, dtype=np.float64)).attrs["units"] = "counts/monitor"
        data.create_dataset("q", data=np.asarray(q_inv_angstrom, dtype=np.float64)).attrs["units"] = "1/angstrom"
        process = entry.create_group("process")
        process.attrs["NX_class"] = "NXprocess"
        process.create_dataset("program", data="trxrd integrate (pyFAI geometry, trxrd engine)")
        process.create_dataset("sources", data=[str(s) for s in sources])
        for key, value in program_notes.items():
            process.create_dataset(key, data=str(value))
    return path
