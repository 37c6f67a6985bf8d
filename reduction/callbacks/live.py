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

from ..settings import ReductionSettings
from .buffer import BufferedCallback
from .integrator import LiveIntegrator
from .plot import LivePumpProbePlot, LiveReflectionsPlot
from .pump_probe import LivePumpProbe, RefitPolicy
from .reflections import LiveReflections, LiveThermometer


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

    @property
    def result(self):
        """The pump-probe result of the last run reduced so far (does not wait)."""
        return self.pump_probe.result

    def close(self) -> None:
        """Reduce what is queued, then stop the thread."""
        self.buffer.close()
