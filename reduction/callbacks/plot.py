"""The live figure of a pump-probe reduction, a callback of its own (as bluesky's LiveFitPlot is
apart from LiveFit): it listens to the documents a ``LivePumpProbe`` publishes and redraws from
its latest result whenever a fit is published (at most every ``redraw_s``) and at the end.
With a Qt figure the drawing is handed to the Qt thread, as bluesky's own plots do (the live
reduction itself runs on a thread of its own).

EXAMPLE::

    from trxrd.reduction.callbacks.plot import LivePumpProbePlot
    plot = LivePumpProbePlot(pump_probe)          # a new matplotlib figure
    pump_probe.subscribe(plot)
"""
from __future__ import annotations

import time

from bluesky.callbacks.mpl_plotting import QtAwareCallback

from ..plots import draw_grid, draw_pump_probe, draw_reflections, draw_saxs, draw_stacking, draw_xcca


class LivePumpProbePlot(QtAwareCallback):
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
        super().__init__()
        self.pump_probe = pump_probe
        self.figure = figure
        self.redraw_s = float(redraw_s)
        self._last = -float("inf")

    def event(self, doc):
        if time.monotonic() - self._last >= self.redraw_s:
            self._draw()

    def stop(self, doc):
        self._draw()

    TITLE, SIZE = "trxrd pump-probe", (11, 4.5)

    def _draw(self) -> None:
        result = self.pump_probe.result
        if result is None:
            return
        self._last = time.monotonic()
        if self.figure is None:
            import matplotlib.pyplot as plt

            self.figure = plt.figure(self.TITLE, figsize=self.SIZE)
        self.draw(result)
        self.figure.canvas.draw_idle()
        self.figure.canvas.flush_events()

    def draw(self, result) -> None:
        if self.pump_probe.kind == "grid":
            draw_grid(self.figure, result)
        else:
            draw_pump_probe(self.figure, result, self.pump_probe.kind)


class LiveReflectionsPlot(LivePumpProbePlot):
    """The live per-reflection figure of a ``LiveReflections``: shift and <du^2> per reflection
    with their fits, dT (extrapolated points hollow) and the anisotropy bars."""

    TITLE, SIZE = "trxrd reflections", (14, 4.5)

    def draw(self, result) -> None:
        draw_reflections(self.figure, result, x_label="delay (ps)" if self.pump_probe.kind == "delay"
                         else "<N> excitations per NC")


class LiveSaxsPlot(LivePumpProbePlot):
    """The live figure of a ``LiveSaxs``: r(t), sigma/r(t), concentration and yield with their 98 %
    times (recomputed at each redraw, at most every ``redraw_s``), I(q) of the latest frame with its fit."""

    TITLE, SIZE = "trxrd SAXS", (15, 4)

    def draw(self, saxs) -> None:
        from ..saxs import saxs_series

        rows = [r for r in saxs.rows if r["fit"] is not None]
        draw_saxs(self.figure, saxs.rows, saxs_series(rows) if len(rows) > 5 else None, saxs.last)


class LiveStackingPlot(LivePumpProbePlot):
    """The live figure of a ``LiveStacking``: d(T), and d(t) with the temperature trace."""

    TITLE, SIZE = "trxrd stacking", (11, 4)

    def draw(self, stacking) -> None:
        draw_stacking(self.figure, stacking.rows)


class LiveXccaPlot(LivePumpProbePlot):
    """The live figure of a ``LiveXcca``: orientation, psi and n-fold maps placed by the stage
    positions (snake rasters included) and the running averaged CCF; the CCF's peaks at the end."""

    TITLE, SIZE = "trxrd XCCA", (15, 4)

    def draw(self, xcca) -> None:
        draw_xcca(self.figure, xcca.rows, xcca.report, xcca.running_ccf())
