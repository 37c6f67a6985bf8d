"""Thin bluesky callbacks around the reduction functions: the live integrator (frames -> I(q),
published as a reduced run linked to the raw run), the live pump-probe reduction (dI(q, point),
window signals, throttled kinetics / threshold fits), its live figure, and ``LiveReduction``,
which runs the chain on its own thread for a RunEngine.

EXAMPLE::

    from trxrd.reduction.callbacks import LiveReduction
    from trxrd.reduction.settings import ReductionSettings
    live = LiveReduction(ReductionSettings("waxs.poni", mask="waxs_mask.edf", windows=[(1.70, 2.05)]),
                         store=writer)
    RE.subscribe(live)
"""
from .integrator import LiveIntegrator
from .live import LiveReduction, live_reduction
from .plot import LivePumpProbePlot
from .pump_probe import LivePumpProbe, RefitPolicy

__all__ = ["LiveIntegrator", "LivePumpProbe", "LivePumpProbePlot", "LiveReduction", "RefitPolicy",
           "live_reduction"]
