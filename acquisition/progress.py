"""Progress bars: one over the events of a scan (from the start document's ``num_points``)
and bluesky's ProgressBarManager for moves and long settles.

EXAMPLE::

    from trxrd.acquisition.progress import install_progress
    install_progress(RE)
"""
from __future__ import annotations

import sys

from bluesky.callbacks.core import CallbackBase
from bluesky.utils import ProgressBarManager
from tqdm import tqdm


class ScanProgress(CallbackBase):
    """tqdm bar over the primary events of each run that declares ``num_points``."""

    def __init__(self, file=None):
        super().__init__()
        self.file = file or sys.stderr
        self.bar = None
        self._primary = None

    def start(self, doc):
        total = doc.get("num_points")
        self.bar = tqdm(total=total, desc=f"{doc.get('plan_name', 'run')} #{doc.get('scan_id', '')}",
                        unit="ev", file=self.file, leave=True, dynamic_ncols=True)

    def descriptor(self, doc):
        if doc.get("name") == "primary":
            self._primary = doc["uid"]

    def event(self, doc):
        if self.bar is not None and doc["descriptor"] == self._primary:
            self.bar.update(1)

    def stop(self, doc):
        if self.bar is not None:
            self.bar.set_postfix_str(doc.get("exit_status", ""))
            self.bar.close()
        self.bar = self._primary = None


def install_progress(RE) -> ScanProgress:
    """Subscribe a ScanProgress to *RE* and show move/settle progress while it waits."""
    progress = ScanProgress()
    RE.subscribe(progress)
    RE.waiting_hook = ProgressBarManager()
    return progress
