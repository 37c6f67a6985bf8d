"""Thin bluesky callbacks around the reduction functions: the live integrator (frames -> I(q),
published as a reduced run linked to the raw run) and the live pump-probe reduction
(dI(q, delay), window signals, kinetics or fluence-threshold fits, live plot).

EXAMPLE::

    from trxrd.reduction.callbacks import live_reduction
    integrator, pump_probe = live_reduction("waxs.poni", mask="waxs_mask.edf",
                                            windows=[(1.70, 2.05)], store=writer)
    RE.subscribe(integrator)
"""
from .integrator import LiveIntegrator
from .pump_probe import LivePumpProbe, live_reduction

__all__ = ["LiveIntegrator", "LivePumpProbe", "live_reduction"]
