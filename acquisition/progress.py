"""Progress bars, from the documents (plans never drive a bar themselves, so bluesky's
simulators can walk them): one over the events of a scan that declares ``num_points``, one
over the segments of an anneal profile; and bluesky's ProgressBarManager for moves and long
settles.

EXAMPLE::

    from trxrd.acquisition.progress import install_progress
    install_progress(RE)
"""
from __future__ import annotations

import sys

from bluesky.callbacks.core import CallbackBase
from bluesky.utils import ProgressBarManager
from tqdm import tqdm

from .plans.temperature import ANNEAL_KEYS


class ScanProgress(CallbackBase):
    """tqdm bar over the primary events of each run that declares ``num_points``, or over the
    segments of an ``anneal_profile`` run (fraction of the ramp or hold done, temperature)."""

    def __init__(self, file=None):
        super().__init__()
        self.file = file or sys.stderr
        self.bar = None
        self._primary = None
        self._anneal = None          # segments, data keys and where the current segment began

    def start(self, doc):
        self._anneal = None
        desc = f"{doc.get('plan_name', 'run')} #{doc.get('scan_id', '')}"
        if doc.get("segments") and doc.get(ANNEAL_KEYS):
            self._anneal = {"segments": doc["segments"], "keys": doc[ANNEAL_KEYS], "index": -1, "first": None}
            self.bar = tqdm(total=len(doc["segments"]), desc=desc, unit="segment", file=self.file, leave=True,
                            dynamic_ncols=True, bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.2f}/{total} "
                                                          "segments [{elapsed}<{remaining}{postfix}]")
            return
        self.bar = tqdm(total=doc.get("num_points"), desc=desc, unit="ev", file=self.file, leave=True,
                        dynamic_ncols=True)

    def descriptor(self, doc):
        if doc.get("name") == "primary":
            self._primary = doc["uid"]

    def event(self, doc):
        if self.bar is None or doc["descriptor"] != self._primary:
            return
        if self._anneal is None:
            self.bar.update(1)
            return
        a, data = self._anneal, doc["data"]
        i = int(data.get("anneal_segment", 0))
        seg = a["segments"][i]
        wsp = data.get(a["keys"]["working_setpoint"])
        if i != a["index"]:
            a["index"], a["first"] = i, (data.get("anneal_time_s", 0.0), wsp)
        if seg["kind"] == "hold":
            frac = (data.get("anneal_time_s", 0.0) - a["first"][0]) / seg["duration_s"]
        else:
            span = seg["target_c"] - a["first"][1] if wsp is not None else 0.0
            frac = 1.0 if span == 0 else (wsp - a["first"][1]) / span
        self.bar.n = round(i + min(max(frac, 0.0), 1.0), 3)
        temperature = data.get(a["keys"]["temperature"])
        if temperature is not None:
            self.bar.set_postfix_str(f"{seg['kind']} {temperature:.1f} C", refresh=False)
        self.bar.refresh()

    def stop(self, doc):
        if self.bar is not None:
            if self._anneal is not None and doc.get("exit_status") == "success":
                self.bar.n = self.bar.total
            self.bar.set_postfix_str(doc.get("exit_status", ""))
            self.bar.close()
        self.bar = self._primary = self._anneal = None


def install_progress(RE) -> ScanProgress:
    """Subscribe a ScanProgress to *RE* and show move/settle progress while it waits."""
    progress = ScanProgress()
    RE.subscribe(progress)
    RE.waiting_hook = ProgressBarManager()
    return progress
