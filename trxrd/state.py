"""The small state a beamline session keeps between restarts: time zero, the fluence
calibration and spot size, the sample and the live-reduction settings, as one JSON file
(``<data root>/state.json``). Only the session reads and writes it; devices never do.

EXAMPLE::

    from trxrd.state import StateFile
    state = StateFile("/data/2026-12-beamtime/state.json")
    state.update("delay", {"time_zero_mm": 143.2817})
    state.load()["delay"]["time_zero_mm"]       # 143.2817
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


class StateFile:
    """A JSON file of sections (dicts), written atomically (write + rename)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def load(self) -> dict:
        """The saved state; ``{}`` when none was saved yet."""
        if not self.path.exists():
            return {}
        try:
            state = json.loads(self.path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{self.path} is not valid JSON ({exc}); fix or remove it") from exc
        if not isinstance(state, dict):
            raise ValueError(f"{self.path} must hold a JSON object of sections; fix or remove it")
        return state

    def section(self, name: str) -> dict:
        """One section (``{}`` if absent)."""
        value = self.load().get(name) or {}
        if not isinstance(value, dict):
            raise ValueError(f"{self.path}: section {name!r} must be a JSON object")
        return value

    def update(self, section: str, values: dict) -> dict:
        """Merge *values* into *section*; returns the whole new state."""
        state = self.load()
        state.setdefault(section, {}).update(values)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".state-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(state, f, indent=2, sort_keys=True)
        os.replace(tmp, self.path)
        return state
