"""Where trxrd keeps things: the EPICS prefix, the data directory and the small state that
must survive a restart of the session (time zero, fluence calibration).

Environment:
- ``TRXRD_PREFIX``: PV prefix of the beamline (default ``TRX:``, the simulator's).
- ``TRXRD_DATA``: data directory (default ``./data``): the catalog, the detector frames
  (``frames/``) and ``state.json``.

EXAMPLE::

    from acquisition.settings import data_dir, load_state, update_state
    update_state("delay", {"time_zero_mm": 150.02})
    load_state()["delay"]["time_zero_mm"]
"""
from __future__ import annotations

import json
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
