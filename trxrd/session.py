"""The beamline session: one object that holds the RunEngine, the catalog, the beamline's devices,
the sample, the live-reduction settings and the data root, built once by the IPython profile,
``trxrd shell``, the demo or a test, and passed on. Nothing reaches plans or callbacks through
module globals: the session's plans are the plain plans with the session's devices and sample
filled in.

Configuration comes from a :class:`SessionConfig`; only process entry points (the profile's
startup file, the ``trxrd`` command) read it from the environment, with
:meth:`SessionConfig.from_environ`:

- ``TRXRD_PREFIX``: PV prefix (default ``TRX:``, the simulator's);
- ``TRXRD_DATA``: data root (default ``./data``): catalog, frames, spool and ``state.json``;
- ``TRXRD_CATALOG`` / ``TRXRD_API_KEY``: a Tiled server instead of the embedded catalog;
- ``TRXRD_CATALOG_PROCESS=0``: write the catalog from this process, not from a catalog process;
- ``TRXRD_SAMPLE``: JSON file with the sample (name, size_nm, ligand, solvent, sigma_cm2),
  used when none was saved;
- ``TRXRD_PONI``, ``TRXRD_MASK``, ``TRXRD_WINDOWS`` ("QMIN:QMAX[,QMIN:QMAX]" in A^-1): live
  reduction when none was saved;
- ``TRXRD_SPOT_UM`` ("FWHMxFWHM", um): the measured pump spot when none was saved.

What must survive a restart (time zero, fluence calibration and spot, sample, reduction
settings) is saved in ``<data root>/state.json`` by the session, never by the devices.

EXAMPLE::

    from trxrd.session import SessionConfig, open_session
    session = open_session(SessionConfig(prefix="TRX:", data_root="/data/2026-12-beamtime"))
    session.set_sample(name="CuInSe2 NCs", size_nm=7.0, ligand="oleylamine", solvent="dodecane",
                       sigma_cm2=4e-14)
    RE, plans, bl = session.RE, session.plans, session.beamline
    RE(plans["delay_scan"]([bl.pilatus], plans["log_delays"](-100, 5000, 20)))
    session.catalog[-1]["primary"]["pilatus_image"].read().shape
    session.close()
"""
from __future__ import annotations

import functools
import inspect
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from bluesky import RunEngine
from bluesky import plan_stubs as bps
from bluesky import plans as bp
from bluesky import preprocessors as bpp
from bluesky.callbacks.best_effort import BestEffortCallback
from bluesky.simulators import check_limits, summarize_plan

from .acquisition.beamline import Beamline, connect_beamline
from .acquisition.plans.delays import dense_then_log, linear_delays, log_delays
from .acquisition.plans.fluence import calibrate_fluence
from .acquisition.plans.injection import injection_series
from .acquisition.plans.metadata import Sample, sample_from
from .acquisition.plans.pump_probe import delay_scan, fluence_delay_grid, fluence_scan
from .acquisition.plans.raster import raster_scan
from .acquisition.plans.temperature import anneal_profile, temperature_series
from .acquisition.plans.time_zero import find_time_zero
from .acquisition.progress import install_progress
from .acquisition.suspenders import SuspendConnectionLost, beam_lost
from .catalog import CatalogProcess, CatalogWriter, announce_spools, open_catalog, run_thermometers
from .reduction.callbacks.live import LiveReduction, LiveSaxsReduction, LiveXccaReduction
from .reduction.kinetics import onset_problem
from .reduction.pump_probe import fit_time_zero
from .reduction.reflections import load_thermometers
from .reduction.settings import ReductionSettings, SaxsSettings, XccaSettings, check_q_coverage, parse_window
from .state import StateFile
from .validation import finite

DEFAULT_PREFIX = "TRX:"

PLANS = dict(delay_scan=delay_scan, fluence_scan=fluence_scan, fluence_delay_grid=fluence_delay_grid,
             calibrate_fluence=calibrate_fluence, temperature_series=temperature_series,
             anneal_profile=anneal_profile, injection_series=injection_series, raster_scan=raster_scan,
             find_time_zero=find_time_zero)
DELAY_LISTS = dict(log_delays=log_delays, linear_delays=linear_delays, dense_then_log=dense_then_log)


def parse_spot(text: str) -> tuple[float, float]:
    """A pump spot "FWHMxFWHM" (um) as two floats, e.g. "270x330"."""
    try:
        x, y = (float(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise ValueError(f"spot size {text!r}: expected FWHM_XxFWHM_Y in um, e.g. 270x330") from None
    return (finite(x, "spot FWHM x", low=0, strict=True, unit="um"),
            finite(y, "spot FWHM y", low=0, strict=True, unit="um"))


@dataclass
class SessionConfig:
    """How to open a session. Values the session finds saved in ``state.json`` win over
    ``sample``, ``reduction`` and ``spot_fwhm_um``, which are only starting points.

    Parameters
    ----------
    prefix : str
        PV prefix of the beamline.
    data_root : path
        Catalog (embedded), frames, spool and ``state.json``.
    catalog_uri, api_key : str, optional
        A Tiled server instead of the embedded catalog.
    catalog_process : bool
        True (default): the catalog is written by a child process (``CatalogProcess``; for the
        embedded catalog it also serves it on 127.0.0.1), so the RunEngine's process only hands
        documents over. False: written from this process (narrow tests; it costs a CPU-bound
        RunEngine about a third of its rate).
    sample : dict, optional
        The sample when none was saved.
    reduction : dict, optional
        Live-reduction settings (see ``ReductionSettings``) when none were saved.
    spot_fwhm_um : (float, float), optional
        Measured pump spot (um) when none was saved.
    plots : bool, optional
        BestEffortCallback and live figures; default: only with a display.
    note : str
        Where the starting points come from, for the banner (e.g. "the simulator's sample file").

    EXAMPLE::

        SessionConfig(prefix="BL12:", data_root="/data/2026-12", spot_fwhm_um=(270, 330))
    """

    prefix: str = DEFAULT_PREFIX
    data_root: Path = Path("data")
    catalog_uri: str | None = None
    api_key: str | None = None
    catalog_process: bool = True
    sample: dict | None = None
    reduction: dict | None = None
    spot_fwhm_um: tuple[float, float] | None = None
    plots: bool | None = None
    note: str = ""

    @classmethod
    def from_environ(cls, environ=None) -> "SessionConfig":
        """The configuration from ``TRXRD_*`` variables (see the module); for entry points only."""
        env = os.environ if environ is None else environ
        sample = None
        if env.get("TRXRD_SAMPLE"):
            path = Path(env["TRXRD_SAMPLE"])
            try:
                sample = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise ValueError(f"TRXRD_SAMPLE={path}: cannot read the sample ({exc})") from exc
        reduction = None
        if env.get("TRXRD_PONI"):
            reduction = {"poni": env["TRXRD_PONI"], "mask": env.get("TRXRD_MASK") or None,
                         "windows": [parse_window(w) for w in env.get("TRXRD_WINDOWS", "").split(",") if w.strip()]}
        return cls(prefix=env.get("TRXRD_PREFIX", DEFAULT_PREFIX),
                   data_root=Path(env.get("TRXRD_DATA", "data")),
                   catalog_uri=env.get("TRXRD_CATALOG") or None, api_key=env.get("TRXRD_API_KEY") or None,
                   catalog_process=env.get("TRXRD_CATALOG_PROCESS", "1").strip().lower() not in ("0", "no", "false"),
                   sample=sample, reduction=reduction,
                   spot_fwhm_um=parse_spot(env["TRXRD_SPOT_UM"]) if env.get("TRXRD_SPOT_UM") else None,
                   plots=bool(env.get("DISPLAY")))


class _SessionChain:
    """A live chain of the session (LIVE), subscribed to its RunEngine, settings saved in the
    state file under STATE_KEY."""

    LIVE = LiveReduction
    STATE_KEY = "reduction"
    SETTINGS = ReductionSettings
    LABEL = "live reduction"

    def __init__(self, session: "Session"):
        self._session = session
        self.settings = None
        self.live = None
        self._token = None

    def install(self, settings, *, save: bool = True):
        """Start reducing with *settings* (checked already), replacing what ran before."""
        s = self._session
        live = self.LIVE(settings, store=s.writer, plot=s.plots)
        self.off()
        self.settings, self.live = settings, live
        self._token = s.RE.subscribe(live)
        if save:
            s.state.update(self.STATE_KEY, settings.as_dict())
        return self

    def off(self) -> None:
        """Stop reducing new runs (what is queued is finished first)."""
        if self._token is not None:
            self._session.RE.unsubscribe(self._token)
            self._token = None
        if self.live is not None:
            self.live.close()
            self.live = None

    def wait(self, timeout: float = 300.0) -> None:
        """Wait until every document sent so far is reduced (``TimeoutError`` if not in time)."""
        if self.live is not None:
            self.live.wait(timeout)

    NEEDS = ""          # what set() says without a calibration

    def _caught_up(self, read, default=None):
        """``read(live)`` once the chain has reduced every document sent so far; *default* when off."""
        if self.live is None:
            return default
        self.wait()
        return read(self.live)

    def set(self, poni=None, *, save: bool = True, **options):
        """(Re)install the reduction; options as in its settings class (checked now, saved for
        the next session). Options not given keep their current values; an option given as None
        goes back to its default."""
        if poni is None and self.settings is None:
            raise ValueError(self.NEEDS)
        values = self.settings.as_dict() if self.settings is not None else {}
        values.update(options)
        if poni is not None:
            values["poni"] = poni
        return self.install(self.SETTINGS.from_dict(values), save=save)


class SessionReduction(_SessionChain):
    """The session's live reduction (frames -> I(q) -> dI -> fits, stored linked to each raw
    run), on its own thread behind a bounded queue: the RunEngine only enqueues documents.
    ``set_reduction(...)`` configures it; ``reduction.result`` is the latest result once the
    reduction has caught up with the documents sent so far.

    EXAMPLE::

        set_reduction("/data/calib/waxs.poni", mask="/data/calib/waxs_mask.edf",
                      windows=[(1.70, 2.05)], model="biexp")     # saved for the next session
        RE(delay_scan([pilatus], dense_then_log(-200, 200, 17, 10000, 24)))
        reduction.result.fit.summary()
        reduction.lag                                           # documents not yet reduced
    """

    def set(self, poni=None, *, mask=None, windows=None, save: bool = True, **options) -> "SessionReduction":
        """(Re)install live reduction with this calibration and these q windows (A^-1); other
        options (``npt``, ``part``, ``model``, ``threshold_model``, ``irf_fwhm_ps``,
        ``image_key``, ``engine="cuda"`` on a GPU host) as in ``ReductionSettings``. Every value
        is checked now."""
        if poni is None and self.settings is None:
            raise ValueError("set_reduction needs the detector calibration: set_reduction(poni, mask=..., "
                             "windows=[(qmin, qmax)])")
        if self.settings is not None:
            settings = self.settings.replace(poni=poni, mask=mask, windows=windows, **options)
        else:
            settings = ReductionSettings(poni, mask=mask, windows=tuple(windows or ()), **options)
        check_q_coverage(settings)          # every window and reflection on the detector
        bl = self._session.beamline
        keys = {det.image_key for det in (bl.pilatus, bl.saxs) if det.geometry == "waxs"}
        if settings.image_key not in keys:
            raise ValueError(f"image_key {settings.image_key!r} is no WAXS detector's image of this beamline; "
                             f"choose one of {', '.join(sorted(keys))}")
        return self.install(settings, save=save)

    @property
    def result(self):
        """The latest pump-probe result, after catching up (at most 300 s)."""
        if self.live is None:
            return None
        self.wait()
        return self.live.result

    def onset_analysis(self):
        """What ``find_time_zero`` calls when its frames are taken (``ValueError`` now if the
        live reduction is off, before anything moves)."""
        if self.live is None:
            raise ValueError("find_time_zero fits the live reduction's signal: set_reduction(poni, mask=..., "
                             "windows=[(qmin, qmax)]) first")
        return self._analyse_onset

    def _analyse_onset(self, q_windows, min_significance: float) -> dict:
        """Onset fit of the scan across time zero reduced so far, in *q_windows*."""
        self.wait()
        pp = self.live.pump_probe
        if not pp.onset or pp.accumulator is None or pp.q is None:
            return {"problem": "the live reduction has no frames of this scan (was it replaced meanwhile?)"}
        result = pp.accumulator.result(pp.q, q_windows, x_field="delay", part=pp.part, point=lambda k: k[1])
        try:
            fit = fit_time_zero(result, irf_fwhm_ps=self.settings.irf_fwhm_ps)
        except ValueError as exc:
            return {"problem": f"no onset fit: {exc}"}
        out = {"t0_ps": fit.value("t0_ps"), "t0_err_ps": fit.stderr("t0_ps"),
               "irf_fwhm_ps": fit.value("irf_fwhm_ps"), "irf_fwhm_err_ps": fit.stderr("irf_fwhm_ps"),
               "amplitude": fit.value("step"), "amplitude_err": fit.stderr("step"),
               "significance": fit.value("significance"), "problem": onset_problem(fit, result.x, min_significance)}
        return out

    @property
    def reflections(self):
        """The per-reflection result of the last delay or fluence scan (``ReflectionSeries``),
        after catching up; None without reflections in the settings."""
        if self.live is None or self.live.reflections is None:
            return None
        self.wait()
        return self.live.reflections.series

    def set_thermometer(self, source, hkl: str | None = None) -> "SessionReduction":
        """Make a thermometer the session's: the uid (or scan_id) of a ``temperature_series`` run
        or of its ``thermometer`` run in the catalog, or a JSON file written by ``trxrd thermometer``.
        *hkl* picks the reflection when the calibration has several (default: the first). Delay
        and fluence scans then report the lattice temperature rise; saved for the next session.

        EXAMPLE::

            RE(temperature_series([pilatus], [25, 55, 85, 115, 145, 170], frames=2))
            set_thermometer(-1)                  # the heating series just taken
        """
        if self.settings is None or not self.settings.reflections:
            raise ValueError("set_reduction(..., reflections=['HKL:QMIN:QMAX', ...]) first: the thermometer "
                             "reads a reflection's position")
        calibrations = self._thermometers(source)
        if hkl is None:
            cal = next(iter(calibrations.values()))
        elif str(hkl) in calibrations:
            cal = calibrations[str(hkl)]
        else:
            raise ValueError(f"the thermometer has reflections {', '.join(calibrations)}, not {hkl}")
        sample = self._session.sample
        if sample is not None and cal.sample is not None and cal.sample != sample.name:
            raise ValueError(f"the thermometer was measured on {cal.sample!r}, the session's sample is {sample.name!r}")
        return self.set(thermometer=cal.as_dict())

    def _thermometers(self, source) -> dict:
        if isinstance(source, (str, Path)) and (Path(source).suffix == ".json" or Path(source).is_file()):
            return load_thermometers(source)
        self.wait()                            # the heating series reduced and stored first
        self._session.writer.flush()
        return run_thermometers(self._session.catalog, self._session.catalog[source])

    @property
    def lag(self) -> int:
        """Documents received but not reduced yet."""
        return 0 if self.live is None else self.live.backlog

    def __repr__(self):
        if self.settings is None:
            return "live reduction off: set_reduction(poni, mask=..., windows=[(qmin, qmax)])"
        s = self.settings
        return f"live reduction: {s.poni}, windows {[list(w) for w in s.windows]} A^-1, model {s.model}"


class SessionSaxs(_SessionChain):
    """The session's live SAXS reduction (SAXS frames -> I(q) -> spheres per frame during an
    ``injection_series``; the stacking peak during ``anneal_profile`` / ``temperature_series``),
    on its own thread like the pump-probe chain, stored linked to each raw run. ``set_saxs(...)``
    configures it (saved for the next session).

    EXAMPLE::

        set_saxs("/data/calib/saxs.poni", mask="/data/calib/saxs_mask.edf", q_min=0.03, q_max=0.35,
                 stacking_q=(0.12, 0.8))
        RE(injection_series(saxs, mantle_temp_c=240, inject_ml=1.0, rate_ml_min=60, duration_s=60))
        saxs_reduction.report["t98_concentration_s"]
    """

    LIVE = LiveSaxsReduction
    STATE_KEY = "saxs"
    SETTINGS = SaxsSettings
    LABEL = "live SAXS reduction"
    NEEDS = "set_saxs needs the SAXS detector's calibration: set_saxs(poni, mask=...)"

    @property
    def report(self) -> dict | None:
        """The last injection series' result (the JSON of ``trxrd saxs``), after catching up."""
        return self._caught_up(lambda live: live.saxs.report)

    @property
    def segments(self) -> list | None:
        """The last anneal's stacking period per segment, after catching up."""
        return self._caught_up(lambda live: None if live.stacking is None else live.stacking.segments)

    def __repr__(self):
        if self.settings is None:
            return "live SAXS reduction off: set_saxs(poni, mask=...)"
        s = self.settings
        return (f"live SAXS reduction: {s.poni}, {s.distribution} spheres, background {s.background}"
                + (f", stacking peak in {s.stacking_q[0]:g}-{s.stacking_q[1]:g} A^-1" if s.stacking_q else ""))


class SessionXcca(_SessionChain):
    """The session's live cross-correlation analysis of ``raster_scan`` runs (grain,
    orientation, psi and n-fold maps, the averaged CCF, beta, c/a and the disorder), on its own
    thread like the other chains, stored as ``xcca`` runs linked to each raster. ``set_xcca(...)``
    configures it (saved for the next session).

    EXAMPLE::

        set_xcca("/data/calib/waxs.poni", mask="/data/calib/waxs_mask.edf", q1=1.833, q2=0.172, dq=0.02)
        RE(raster_scan([pilatus], (-3, 3), (-4, 4), 0.4))
        xcca_reduction.report["c_over_a"], xcca_reduction.report["disorder_deg"]
    """

    LIVE = LiveXccaReduction
    STATE_KEY = "xcca"
    SETTINGS = XccaSettings
    LABEL = "live XCCA"
    NEEDS = "set_xcca needs the detector's calibration and two rings: set_xcca(poni, q1=..., q2=..., mask=...)"

    @property
    def report(self) -> dict | None:
        """The last raster's averages (the JSON of ``trxrd xcca``), after catching up."""
        return self._caught_up(lambda live: live.xcca.report)

    @property
    def rows(self) -> list:
        """The last raster's patterns (grain, orientation, psi, n-fold, spots), after catching up."""
        return self._caught_up(lambda live: live.xcca.rows, [])

    def __repr__(self):
        if self.settings is None:
            return "live XCCA off: set_xcca(poni, q1=..., q2=..., mask=...)"
        s = self.settings
        return f"live XCCA of rasters: {s.poni}, rings {s.q1:g} and {s.q2:g} A^-1 (dq {s.dq:g}), {s.nphi} azimuth bins"


@dataclass
class Session:
    """One beamline session (see module): use :func:`open_session` to make one."""

    RE: RunEngine
    catalog: object
    beamline: Beamline
    data_root: Path
    writer: CatalogWriter
    state: StateFile
    bec: BestEffortCallback
    plots: bool = False
    sample: Sample | None = None
    reduction: SessionReduction = field(init=False)
    saxs_reduction: SessionSaxs = field(init=False)
    xcca_reduction: SessionXcca = field(init=False)
    tokens: dict = field(default_factory=dict)
    catalog_process: CatalogProcess | None = None

    def __post_init__(self):
        self.reduction = SessionReduction(self)
        self.saxs_reduction = SessionSaxs(self)
        self.xcca_reduction = SessionXcca(self)

    # -- sample and metadata ------------------------------------------------------------------------
    def set_sample(self, **fields) -> Sample:
        """Declare the sample for the following runs and remember it for the next session.

        EXAMPLE::

            set_sample(name="CuInSe2 NCs", size_nm=7.0, ligand="oleylamine", solvent="dodecane",
                       sigma_cm2=4e-14)
        """
        self.sample = sample_from(fields)
        self.state.update("sample", self.sample.as_dict())
        self.beamline.att.sigma_cm2.put(self.sample.sigma_cm2)     # fluence <-> <N> from now on
        return self.sample

    def run_md(self, md: dict | None) -> dict:
        """*md* with the session's sample (a sample in *md* wins)."""
        if md is not None and not isinstance(md, dict):
            raise ValueError(f"md must be a dict of metadata, got {type(md).__name__} {md!r:.80}")
        out = {} if self.sample is None else {"sample": self.sample.as_dict()}
        out.update(md or {})
        return out

    # -- plans ----------------------------------------------------------------------------------------
    def bind(self, plan):
        """*plan* with the session's devices for the device arguments not given, and the
        session's sample in ``md``."""
        sig = inspect.signature(plan)
        devices = self.beamline.devices()
        fill = [name for name in sig.parameters if name in devices]
        takes_md = "md" in sig.parameters
        if takes_md and sig.parameters["md"].kind is not inspect.Parameter.KEYWORD_ONLY:
            raise TypeError(f"{plan.__name__}: md must be keyword-only to be bound to a session")

        @functools.wraps(plan)
        def session_plan(*args, **kwargs):
            given = sig.bind_partial(*args, **kwargs).arguments
            for name in fill:
                if name not in given:
                    kwargs[name] = devices[name]
            if "analyse" in sig.parameters and "analyse" not in given:
                kwargs["analyse"] = self.reduction.onset_analysis()
            if takes_md:
                kwargs["md"] = self.run_md(kwargs.get("md"))
            return plan(*args, **kwargs)

        session_plan.__signature__ = sig.replace(parameters=[
            p.replace(default=devices[p.name]) if p.name in fill else p for p in sig.parameters.values()])
        return session_plan

    @functools.cached_property
    def plans(self) -> dict:
        """The plans with this session's devices and sample, plus the delay-list helpers."""
        return {**{name: self.bind(plan) for name, plan in PLANS.items()}, **DELAY_LISTS}

    def namespace(self) -> dict:
        """What the IPython profile puts in the user's namespace."""
        return dict(session=self, RE=self.RE, cat=self.catalog, bec=self.bec, beamline=self.beamline,
                    set_sample=self.set_sample, set_reduction=self.reduction.set, reduction=self.reduction,
                    set_thermometer=self.reduction.set_thermometer, set_saxs=self.saxs_reduction.set,
                    saxs_reduction=self.saxs_reduction, set_xcca=self.xcca_reduction.set,
                    xcca_reduction=self.xcca_reduction,
                    bps=bps, bp=bp, bpp=bpp, summarize_plan=summarize_plan, check_limits=check_limits,
                    **self.beamline.devices(), **self.plans)

    def close(self) -> None:
        """Finish the live reduction, flush the catalog writer (raises a pending catalog error),
        stop the catalog process and close the session's catalog client."""
        try:
            self.reduction.off()
            self.saxs_reduction.off()
            self.xcca_reduction.off()
            self.writer.close()
        finally:
            if self.catalog_process is not None:
                self.catalog_process.close()
            self.catalog.context.close()      # an embedded catalog's client holds two threads


def _open_catalog(config: SessionConfig, root: Path):
    """(the catalog's client, what the writer writes to, the catalog process or None)."""
    if not config.catalog_process:
        cat = open_catalog(config.catalog_uri, root=root, api_key=config.api_key)
        return cat, cat, None
    if config.catalog_uri is not None:
        cat = open_catalog(config.catalog_uri, api_key=config.api_key)     # a wrong URI or key fails here
        process = CatalogProcess(uri=config.catalog_uri, api_key=config.api_key)
        return cat, process, process
    process = CatalogProcess(root=root)
    try:
        return process.catalog(), process, process
    except BaseException:
        process.close()
        raise


def _restore_chain(chain: _SessionChain, values: dict | None, call: str) -> str:
    """Install *chain* from its saved settings *values*, if any; the line the session prints about it."""
    if values:
        try:
            chain.install(chain.SETTINGS.from_dict(values), save=False)
        except (ValueError, TypeError, OSError) as exc:    # a moved calibration must not stop the session
            return f"{chain.LABEL}: OFF, the saved settings fail ({exc}); {call}(...)"
    return repr(chain)


def _persist_devices(bl: Beamline, state: StateFile) -> None:
    """Time zero and the fluence calibration: saved whenever the devices announce a change."""
    def time_zero(time_zero_mm, n_passes, **kwargs):
        state.update("delay", {"time_zero_mm": time_zero_mm, "n_passes": n_passes})

    def calibration(**values):
        state.update("fluence", {k: values[k] for k in ("p_min_w", "p_max_w", "theta0_deg",
                                                         "spot_fwhm_x_um", "spot_fwhm_y_um")
                                 if math.isfinite(values[k])})

    bl.delay.subscribe(time_zero, event_type=bl.delay.SUB_TIME_ZERO, run=False)
    bl.att.subscribe(calibration, event_type=bl.att.SUB_CALIBRATION, run=False)


def _restore_devices(bl: Beamline, state: StateFile, config: SessionConfig) -> list[str]:
    """Saved time zero, calibration and spot into the devices; lines for the banner."""
    lines = []
    delay = state.section("delay")
    saved_mm = delay.get("time_zero_mm")
    lo, hi = bl.delay.optical.limits
    if saved_mm is not None and not (hi > lo and lo <= finite(saved_mm, "saved time_zero_mm", unit="mm") <= hi):
        lines.append(f"saved time zero {saved_mm} mm is outside the stage's travel {lo} .. {hi} mm: not used; "
                     f"delay.set_time_zero() to calibrate it again")
        delay = {}
    if "time_zero_mm" in delay:
        bl.delay.time_zero_mm.put(finite(delay["time_zero_mm"], "saved time_zero_mm", unit="mm"))
        bl.delay.n_passes.put(int(delay.get("n_passes", bl.delay.n_passes.get())))
        lines.append(f"time zero {bl.delay.time_zero_mm.get():.4f} mm (saved)")
    else:
        lines.append(f"time zero {bl.delay.time_zero_mm.get():.4f} mm (device default: not calibrated; "
                     f"delay.set_time_zero())")
    fluence = state.section("fluence")
    if all(k in fluence for k in ("p_min_w", "p_max_w", "theta0_deg")):
        bl.att.set_calibration(fluence["p_min_w"], fluence["p_max_w"], fluence["theta0_deg"])
        lines.append("fluence calibration loaded")
    else:
        lines.append("fluence calibration missing: RE(calibrate_fluence())")
    if "spot_fwhm_x_um" in fluence and "spot_fwhm_y_um" in fluence:
        bl.att.set_spot(fluence["spot_fwhm_x_um"], fluence["spot_fwhm_y_um"])
        lines.append(f"pump spot {fluence['spot_fwhm_x_um']:g} x {fluence['spot_fwhm_y_um']:g} um (saved)")
    elif config.spot_fwhm_um is not None:
        bl.att.set_spot(*config.spot_fwhm_um)
        lines.append(f"pump spot {config.spot_fwhm_um[0]:g} x {config.spot_fwhm_um[1]:g} um "
                     f"({config.note or 'configured'})")
    else:
        lines.append("pump spot not set: att.set_spot(fwhm_x_um, fwhm_y_um) (knife-edge scan)")
    return lines


def default_suspenders(bl: Beamline) -> list:
    """What every plan of the session is guarded by: a lost PV connection fails the plan with
    ``lost connection to <PV>``; a lost X-ray beam (I0 below its floor) pauses it. The pump-probe
    plans add the jet and pump-shutter suspenders, the temperature plans the temperature one."""
    return [SuspendConnectionLost(bl.devices().values()), beam_lost(bl.i0)]


def open_session(config: SessionConfig | None = None, *, verbose: bool = True) -> Session:
    """Open the catalog, make the RunEngine, connect the beamline and restore what was saved.

    Parameters
    ----------
    config : SessionConfig, optional
        Default: ``SessionConfig()`` (simulator prefix, ``./data``); entry points pass
        ``SessionConfig.from_environ()``.
    verbose : bool
        Print a banner of what the session holds.

    Returns
    -------
    Session

    EXAMPLE::

        session = open_session(SessionConfig(data_root="/data/2026-12"))
        globals().update(session.namespace())      # what the IPython profile does
    """
    config = config or SessionConfig()
    root = Path(config.data_root).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    state = StateFile(root / "state.json")
    saved = state.load()                                  # a corrupt state file fails first
    spool_line = announce_spools(root / "spool")       # before this session's writer journals
    cat, target, process = _open_catalog(config, root)
    try:
        RE = RunEngine({})
        if len(cat):
            RE.md["scan_id"] = cat[-1].start.get("scan_id", 0)      # scan numbers continue
        writer = CatalogWriter(target, backup_directory=root / "spool")
    except BaseException:
        if process is not None:
            process.close()
        raise
    tokens = {"catalog": RE.subscribe(writer)}
    try:
        bl = connect_beamline(config.prefix, frames_root=root / "frames")
    except Exception:
        writer.close()
        if process is not None:
            process.close()
        raise
    plots = bool(config.plots)
    bec = BestEffortCallback()
    if not plots:
        bec.disable_plots()
    tokens["bec"] = RE.subscribe(bec)
    install_progress(RE)
    for suspender in default_suspenders(bl):
        RE.install_suspender(suspender)
    device_lines = _restore_devices(bl, state, config)
    _persist_devices(bl, state)
    session = Session(RE=RE, catalog=cat, beamline=bl, data_root=root, writer=writer, state=state, bec=bec,
                      plots=plots, tokens=tokens, catalog_process=process)
    sample = saved.get("sample") or config.sample
    origin = "saved" if saved.get("sample") else config.note or "configured"
    if sample:
        session.sample = sample_from(sample)
        bl.att.sigma_cm2.put(session.sample.sigma_cm2)
        sample_line = f"sample: {session.sample.name} ({origin}; set_sample(...) to change)"
    else:
        sample_line = ("sample: none declared; call set_sample(name=..., size_nm=..., ligand=..., solvent=..., "
                       "sigma_cm2=...)")
    reduction = saved.get("reduction") or config.reduction
    chain_lines = [_restore_chain(session.reduction, reduction if reduction and reduction.get("windows") else None,
                                  "set_reduction")]
    chain_lines += [_restore_chain(chain, saved.get(chain.STATE_KEY), call)
                    for chain, call in ((session.saxs_reduction, "set_saxs"), (session.xcca_reduction, "set_xcca"))]
    if verbose:
        served = f" (served at {process.uri})" if process is not None and config.catalog_uri is None else ""
        print(f"trxrd session: prefix {config.prefix!r}, data {root}, catalog "
              f"{config.catalog_uri or root / 'catalog'}{served}\n"
              f"  devices: {', '.join(bl.devices())}\n"
              f"  plans:   {', '.join(session.plans)}\n"
              f"  {sample_line}\n"
              + "".join(f"  {line}\n" for line in chain_lines + ([spool_line] if spool_line else [])) +
              f"  {'; '.join(device_lines)}")
    return session
