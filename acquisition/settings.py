"""Where trxrd keeps things: the EPICS prefix, the data directory and the small state that
must survive a restart of the session (time zero, fluence calibration).

Environment:
- ``TRXRD_PREFIX``: PV prefix of the beamline (default ``TRX:``, the simulator's).
- ``TRXRD_DATA``: data directory (default ``./data``): the catalog, the detector frames
  (``frames/``) and ``state.json``.
- ``TRXRD_PONI``, ``TRXRD_MASK``, ``TRXRD_WINDOWS``: the WAXS calibration and q windows of the
  live reduction when none were saved with ``set_reduction``.

EXAMPLE::

    from trxrd.acquisition.settings import data_dir, load_state, update_state
    update_state("delay", {"time_zero_mm": 150.02})
    load_state()["delay"]["time_zero_mm"]
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

DEFAULT_PREFIX = "TRX:"


def prefix() -> str:
    """PV prefix from ``TRXRD_PREFIX`` (default ``TRX:``)."""
    return os.environ.get("TRXRD_PREFIX", DEFAULT_PREFIX)


def data_dir(create: bool = True) -> Path:
    """Data directory from ``TRXRD_DATA`` (default ``./data``), as an absolute path."""
    path = Path(os.environ.get("TRXRD_DATA", "data")).expanduser().resolve()
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def frames_dir(detector: str, root: Path | None = None) -> Path:
    """Folder the area detector ``detector`` writes its HDF5 files into."""
    return (root or data_dir()) / "frames" / detector


def state_path(root: Path | None = None) -> Path:
    return (root or data_dir()) / "state.json"


def load_state(root: Path | None = None) -> dict:
    """The persisted state, ``{}`` when none was saved yet."""
    path = state_path(root)
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); fix or remove it") from exc


def update_state(section: str, values: dict, root: Path | None = None) -> dict:
    """Merge *values* into *section* of the state file, atomically (write + rename)."""
    path = state_path(root)
    state = load_state(root)
    state.setdefault(section, {}).update(values)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".state-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(state, f, indent=2, sort_keys=True)
    os.replace(tmp, path)
    return state


def parse_window(text: str) -> tuple[float, float]:
    """A q window "QMIN:QMAX" (A^-1) as two floats, QMIN < QMAX."""
    try:
        low, high = (float(v) for v in str(text).split(":"))
    except ValueError:
        raise ValueError(f"q window {text!r}: expected QMIN:QMAX in A^-1, e.g. 1.70:2.05") from None
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise ValueError(f"q window {text!r}: need finite QMIN < QMAX (A^-1)")
    return low, high


def reduction_settings(root: Path | None = None) -> dict | None:
    """The live/offline reduction settings: those saved by ``set_reduction`` (state file,
    section "reduction"), else ``TRXRD_PONI`` [+ ``TRXRD_MASK``, ``TRXRD_WINDOWS`` as
    "QMIN:QMAX[,QMIN:QMAX]"]; None when no calibration is known."""
    saved = load_state(root).get("reduction")
    if saved:
        return saved
    poni = os.environ.get("TRXRD_PONI")
    if not poni:
        return None
    windows = [parse_window(w) for w in os.environ.get("TRXRD_WINDOWS", "").split(",") if w.strip()]
    return {"poni": poni, "mask": os.environ.get("TRXRD_MASK") or None, "windows": windows}
