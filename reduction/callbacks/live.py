"""The live reduction chain, and the same chain behind a bounded queue on a thread of its own
for a RunEngine: the RunEngine only enqueues documents, so a slow reduction never delays its
loop, its suspenders or the acquisition (see ``buffer``).

The chain: ``LiveIntegrator`` (frames read through resource/datum -> I(q), reduced run) ->
``LivePumpProbe`` (dI, window signal, throttled fits, ``pump_probe`` run) [-> ``LivePumpProbePlot``],
and with reflections in the settings ``LiveReflections`` (``reflections`` run) and ``LiveThermometer``
(``thermometer`` run of heating series); the derived runs go to *store* (e.g. the session's
``CatalogWriter``).

EXAMPLE::

    from trxrd.reduction.callbacks.live import LiveReduction
    from trxrd.reduction.settings import ReductionSettings
    live = LiveReduction(ReductionSettings("waxs.poni", mask="waxs_mask.edf", windows=[(1.70, 2.05)]),
                         store=writer)
    RE.subscribe(live)
    RE(delay_scan([pilatus], delays, **devices, md={"sample": sample}))
    live.wait(120)                       # caught up with every document sent
    live.result.fit.summary()
    live.close()
"""
from __future__ import annotations

import numpy as np

from ..settings import ReductionSettings, SaxsSettings, XccaSettings
from .buffer import BufferedCallback
from .integrator import LiveIntegrator
from .plot import LivePumpProbePlot, LiveReflectionsPlot, LiveSaxsPlot, LiveStackingPlot, LiveXccaPlot
from .pump_probe import LivePumpProbe, RefitPolicy
from .reflections import LiveReflections, LiveThermometer
from .saxs import LiveSaxs, LiveStacking
from .xcca import LiveXcca


def live_reduction(settings: ReductionSettings, *, store=None, plot=False, refit: RefitPolicy | None = None):
    """The chain, in the caller's thread: (integrator, pump_probe). Feed the integrator with a
    run's documents (a replay, a 0MQ dispatcher); *store* receives both derived runs; *plot*:
    False, True (a new figure) or a matplotlib Figure."""
    integrator = LiveIntegrator(settings.poni, mask=settings.mask, npt=settings.npt, image_key=settings.image_key)
    pump_probe = LivePumpProbe(settings.windows, part=settings.part, model=settings.model,
                               irf_fwhm_ps=settings.irf_fwhm_ps, threshold_model=settings.threshold_model,
                               refit=refit)
    if store is not None:
        integrator.subscribe(store)
        pump_probe.subscribe(store)
    integrator.subscribe(pump_probe)
    if plot:
        pump_probe.subscribe(LivePumpProbePlot(pump_probe, None if plot is True else plot))
    return integrator, pump_probe


def reflection_reduction(settings: ReductionSettings, integrator, *, store=None, plot=False,
                         refit: RefitPolicy | None = None):
    """With reflections in *settings*: (LiveReflections, LiveThermometer) fed by *integrator*,
    their derived runs to *store*, *plot* as in ``live_reduction`` (a figure of its own); else
    (None, None)."""
    if not settings.reflections:
        return None, None
    reflections = LiveReflections(settings.parsed_reflections, structure=settings.structure,
                                  thermometer=settings.thermometer_calibration, irf_fwhm_ps=settings.irf_fwhm_ps,
                                  refit=refit)
    thermometer = LiveThermometer(settings.parsed_reflections)
    for callback in (reflections, thermometer):
        integrator.subscribe(callback)
        if store is not None:
            callback.subscribe(store)
    if plot:
        reflections.subscribe(LiveReflectionsPlot(reflections, None if plot is True else plot))
    return reflections, thermometer


class LiveReduction:
    """The chain behind a bounded queue on its own thread (see module).

    Parameters
    ----------
    settings : ReductionSettings
    store : callable, optional
        Receives the derived runs' documents (a ``CatalogWriter``).
    plot : bool or Figure
        Live figure.
    max_queued : int
        Documents that may wait before the reduction gives up the current run.
    refit : RefitPolicy, optional
        When the fits run while a scan goes on.
    """

    def __init__(self, settings: ReductionSettings, *, store=None, plot=False, max_queued: int = 50_000,
                 refit: RefitPolicy | None = None):
        self.settings = settings
        self.integrator, self.pump_probe = live_reduction(settings, store=store, plot=plot, refit=refit)
        self.reflections, self.thermometer = reflection_reduction(settings, self.integrator, store=store,
                                                                  plot=bool(plot), refit=refit)
        self.buffer = BufferedCallback(self.integrator, max_queued=max_queued, name="live-reduction")

    def __call__(self, name: str, doc: dict) -> None:
        self.buffer(name, doc)

    def wait(self, timeout: float | None = 300.0) -> None:
        """Block until every document sent so far is reduced (``TimeoutError`` if not in time)."""
        self.buffer.wait(timeout)

    @property
    def backlog(self) -> int:
        """Documents received and not reduced yet."""
        return self.buffer.backlog

    def close(self) -> None:
        """Reduce what is queued, then stop the thread."""
        self.buffer.close()

    @property
    def result(self):
        """The pump-probe result of the last run reduced so far (does not wait)."""
        return self.pump_probe.result


def saxs_background(settings: SaxsSettings, integrator: LiveIntegrator):
    """(q, I, sigma) of the background file of *settings* (the mean of its frames, divided by
    ``background_i0`` when given), or None for "auto"."""
    if settings.background == "auto":
        return None
    from ..io import load_frames

    frames = load_frames([settings.background])
    q, intensity, sigma = integrator.integration.integrate_many(
        frames, monitors=None if settings.background_i0 is None else [settings.background_i0] * len(frames))
    return q, intensity.mean(axis=0), np.sqrt((sigma**2).sum(axis=0)) / len(frames)


def saxs_reduction(settings: SaxsSettings, *, store=None, plot=False):
    """The SAXS chain in the caller's thread: (integrator, saxs, stacking); *stacking* is None
    without ``stacking_q``. *store* receives the derived runs; *plot* as in ``live_reduction``."""
    integrator = LiveIntegrator(settings.poni, mask=settings.mask, npt=settings.npt, image_key=settings.image_key,
                                image_field="saxs_image")
    saxs = LiveSaxs(settings, background=saxs_background(settings, integrator))
    stacking = LiveStacking(settings) if settings.stacking_q else None
    for callback in (integrator, saxs, stacking):
        if callback is not None and store is not None:
            callback.subscribe(store)
    for callback, figure in ((saxs, LiveSaxsPlot), (stacking, LiveStackingPlot)):
        if callback is not None:
            integrator.subscribe(callback)
            if plot:
                callback.subscribe(figure(callback, None if plot is True else plot))
    return integrator, saxs, stacking


class LiveSaxsReduction(LiveReduction):
    """The SAXS chain behind a bounded queue on its own thread, like ``LiveReduction``.

    EXAMPLE::

        live = LiveSaxsReduction(SaxsSettings("saxs.poni", mask="saxs_mask.edf", stacking_q=(0.1, 0.8)),
                                 store=writer)
        RE.subscribe(live)
        RE(injection_series(saxs, ...))
        live.wait(60); live.saxs.report["t98_concentration_s"]
    """

    def __init__(self, settings: SaxsSettings, *, store=None, plot=False, max_queued: int = 50_000):
        self.settings = settings
        self.integrator, self.saxs, self.stacking = saxs_reduction(settings, store=store, plot=plot)
        self.buffer = BufferedCallback(self.integrator, max_queued=max_queued, name="live-saxs")

    @property
    def result(self):
        """The report of the last injection series reduced so far (does not wait)."""
        return self.saxs.report


def xcca_reduction(settings: XccaSettings, *, store=None, plot=False) -> LiveXcca:
    """The XCCA of raster runs in the caller's thread; *store* receives the ``xcca`` runs, *plot*
    as in ``live_reduction``."""
    xcca = LiveXcca(settings)
    if store is not None:
        xcca.subscribe(store)
    if plot:
        xcca.subscribe(LiveXccaPlot(xcca, None if plot is True else plot))
    return xcca


class LiveXccaReduction(LiveReduction):
    """The XCCA of raster runs behind a bounded queue on its own thread, like ``LiveReduction``.

    EXAMPLE::

        live = LiveXccaReduction(XccaSettings("waxs.poni", q1=1.833, q2=0.172, mask="waxs_mask.edf"),
                                 store=writer)
        RE.subscribe(live)
        RE(raster_scan([pilatus], (-3, 3), (-4, 4), 0.4))
        live.wait(60); live.xcca.report["c_over_a"]
    """

    def __init__(self, settings: XccaSettings, *, store=None, plot=False, max_queued: int = 50_000):
        self.settings = settings
        self.xcca = xcca_reduction(settings, store=store, plot=plot)
        self.buffer = BufferedCallback(self.xcca, max_queued=max_queued, name="live-xcca")

    @property
    def result(self):
        """The report of the last raster reduced so far (does not wait)."""
        return self.xcca.report
