"""The live figure of a pump-probe reduction, a callback of its own (as bluesky's LiveFitPlot is
apart from LiveFit): it listens to the documents a ``LivePumpProbe`` publishes and redraws from
its latest result whenever a fit is published (at most every ``redraw_s``) and at the end.

EXAMPLE::

    from trxrd.reduction.callbacks.plot import LivePumpProbePlot
    plot = LivePumpProbePlot(pump_probe)          # a new matplotlib figure
    pump_probe.subscribe(plot)
"""
from __future__ import annotations

import time

from ..plots import draw_grid, draw_pump_probe


class LivePumpProbePlot:
    """Redraws *pump_probe*'s result into *figure* (None: a new pyplot figure).

    Parameters
    ----------
    pump_probe : LivePumpProbe
        The reduction to draw.
    figure : matplotlib Figure, optional
    redraw_s : float
        Shortest time between two redraws while the run goes on (s).
    """

    def __init__(self, pump_probe, figure=None, *, redraw_s: float = 1.0):
        self.pump_probe = pump_probe
        self.figure = figure
        self.redraw_s = float(redraw_s)
        self._last = -float("inf")

    def __call__(self, name: str, doc: dict) -> None:
        if name not in ("event", "stop"):
            return
        now = time.monotonic()
        if name == "event" and now - self._last < self.redraw_s:
            return
        result = self.pump_probe.result
        if result is None:
            return
        self._last = now
        if self.figure is None:
            import matplotlib.pyplot as plt

            self.figure = plt.figure("trxrd pump-probe", figsize=(11, 4.5))
        if self.pump_probe.kind == "grid":
            draw_grid(self.figure, result)
        else:
            draw_pump_probe(self.figure, result, self.pump_probe.kind)
        self.figure.canvas.draw_idle()
        self.figure.canvas.flush_events()
