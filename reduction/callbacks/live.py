"""The live reduction chain, and the same chain behind a bounded queue on a thread of its own
for a RunEngine: the RunEngine only enqueues documents, so a slow reduction never delays its
loop, its suspenders or the acquisition (see ``buffer``).

The chain: ``LiveIntegrator`` (frames read through resource/datum -> I(q), reduced run; the
frames waiting in the queue are read and integrated together, up to ``batch_frames``) ->
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
    live.lag_frames, live.lag_s          # while it runs: frames waiting, age of the oldest (s)
    live.wait(120)                       # caught up with every document sent
    live.result.fit.summary()
    live.close()
"""
from __future__ import annotations

import numpy as np

from ... import datakeys as dk
from ..settings import ReductionSettings, SaxsSettings, XccaSettings
from .buffer import BufferedCallback
from .integrator import LiveIntegrator
from .plot import LivePumpProbePlot, LiveReflectionsPlot, LiveSaxsPlot, LiveStackingPlot, LiveXccaPlot
from .pump_probe import LivePumpProbe, RefitPolicy
from .reflections import LiveReflections, LiveThermometer
from .saxs import LiveSaxs, LiveStacking
from .xcca import LiveXcca


def live_reduction(settings: ReductionSettings, *, store=None, plot=False, refit: RefitPolicy | None = None,
                   batch_frames: int = 16):
    """The chain, in the caller's thread: (integrator, pump_probe). Feed the integrator with a
    run's documents (a replay, a 0MQ dispatcher); *store* receives both derived runs; *plot*:
    False, True (a new figure) or a matplotlib Figure; *batch_frames*: frames integrated together
    at most."""
    integrator = LiveIntegrator(settings.poni, mask=settings.mask, npt=settings.npt, image_key=settings.image_key,
                                max_batch_frames=batch_frames, engine=settings.engine)
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


class FrameCounter:
    """``weigh(name, doc)`` for ``BufferedCallback``: the frames of *integrator*'s image in each
    event (N for a streaming detector's ``(N, ny, nx)`` image, else 1; 0 for other documents).
    Called in the RunEngine's thread: a dict look-up per event.

    EXAMPLE::

        buffer = BufferedCallback(integrator, batch=16, weigh=FrameCounter(integrator))
    """

    def __init__(self, integrator: LiveIntegrator):
        self.integrator = integrator
        self._image: str | None = None
        self._frames: dict[str, int] = {}       # descriptor uid -> frames per event

    def __call__(self, name: str, doc: dict) -> int:
        if name == "event":
            return self._frames.get(doc["descriptor"], 0)
        if name == "start":
            try:
                keys = dk.key_map(doc)
            except ValueError:
                keys = {}
            self._image = keys.get(self.integrator.image_field) or self.integrator.image_key
            self._frames = {}
        elif name == "descriptor" and doc.get("name") == self.integrator.stream:
            key = doc.get("data_keys", {}).get(self._image)
            if key is not None:
                shape = key.get("shape") or []
                self._frames[doc["uid"]] = int(shape[0]) if len(shape) == 3 else 1
        return 0


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
    batch_frames : int
        Frames waiting in the queue read and integrated together at most.
    """

    def __init__(self, settings: ReductionSettings, *, store=None, plot=False, max_queued: int = 50_000,
                 refit: RefitPolicy | None = None, batch_frames: int = 16):
        self.settings = settings
        self.integrator, self.pump_probe = live_reduction(settings, store=store, plot=plot, refit=refit,
                                                          batch_frames=batch_frames)
        self.reflections, self.thermometer = reflection_reduction(settings, self.integrator, store=store,
                                                                  plot=bool(plot), refit=refit)
        self.buffer = BufferedCallback(self.integrator, max_queued=max_queued, name="live-reduction",
                                       batch=batch_frames, weigh=FrameCounter(self.integrator))

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
    def lag_frames(self) -> int:
        """Frames received and not reduced yet (0 for a chain that does not count them)."""
        return self.buffer.lag_frames

    @property
    def lag_s(self) -> float:
        """Age (s) of the oldest raw event not reduced yet; 0 when caught up."""
        return self.buffer.lag_s

    @property
    def latency_s(self) -> float:
        """Raw event to reduced event (s) of the last event reduced."""
        integrator = getattr(self, "integrator", None)
        return integrator.last_latency_s if integrator is not None else 0.0

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
        self.buffer = BufferedCallback(self.integrator, max_queued=max_queued, name="live-saxs", batch=16,
                                       weigh=FrameCounter(self.integrator))

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
