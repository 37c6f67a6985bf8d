"""The beamline session behind the IPython profile: a RunEngine writing every document to
the catalog, with the BestEffortCallback, progress bars and the connected devices and
plans, for the real beamline and for dry runs against ``trxrd sim`` alike.

Environment: ``TRXRD_PREFIX`` (PV prefix, default ``TRX:``, the simulator's),
``TRXRD_DATA`` (data directory, default ``./data``), ``TRXRD_CATALOG`` / ``TRXRD_API_KEY``
(a Tiled server instead of the embedded catalog), ``TRXRD_SAMPLE`` (JSON file with the
sample's name, size_nm, ligand, solvent, sigma_cm2, used when none was saved).

EXAMPLE::

    from trxrd.acquisition.session import start_session
    ns = start_session()
    RE, cat, pilatus = ns["RE"], ns["cat"], ns["pilatus"]
    RE(ns["delay_scan"]([pilatus], ns["log_delays"](-100, 5000, 20)))
    cat[-1]["primary"]["pilatus_image"].read().shape
"""
from __future__ import annotations

import atexit
import json
import os
from pathlib import Path

from bluesky import RunEngine
from bluesky import plan_stubs as bps
from bluesky import plans as bp
from bluesky import preprocessors as bpp
from bluesky.callbacks.best_effort import BestEffortCallback

from . import settings
from .beamline import connect_beamline
from .catalog import CatalogWriter, open_catalog
from .plans import metadata
from .plans.delays import dense_then_log, linear_delays, log_delays
from .plans.fluence import calibrate_fluence
from .plans.injection import injection_series
from .plans.pump_probe import delay_scan, fluence_delay_grid, fluence_scan
from .plans.raster import raster_scan
from .plans.temperature import anneal_profile, temperature_series
from .progress import install_progress

PLANS = dict(delay_scan=delay_scan, fluence_scan=fluence_scan, fluence_delay_grid=fluence_delay_grid,
             calibrate_fluence=calibrate_fluence, temperature_series=temperature_series,
             anneal_profile=anneal_profile, injection_series=injection_series, raster_scan=raster_scan,
             log_delays=log_delays, linear_delays=linear_delays, dense_then_log=dense_then_log)


def set_sample(**fields):
    """Declare the sample for the following runs and remember it for the next session.

    EXAMPLE::

        set_sample(name="CuInSe2 NCs", size_nm=7.0, ligand="oleylamine", solvent="dodecane",
                   sigma_cm2=4e-14)
    """
    sample = metadata.set_sample(**fields)
    settings.update_state("sample", sample.as_dict())
    return sample


def _restore_sample() -> str:
    """The saved sample, else the one in the JSON file ``$TRXRD_SAMPLE`` (e.g. the
    proposal's sample sheet, or the simulator's for ``trxrd shell --sim``)."""
    saved = settings.load_state().get("sample")
    origin = "saved"
    if not saved and os.environ.get("TRXRD_SAMPLE"):
        path = Path(os.environ["TRXRD_SAMPLE"])
        try:
            saved = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"TRXRD_SAMPLE={path}: cannot read the sample ({exc})") from exc
        origin = f"from {path}"
    if saved:
        metadata.set_sample(**saved)
        return f"sample: {saved['name']} ({origin}; set_sample(...) to change)"
    return "sample: none declared; call set_sample(name=..., size_nm=..., ligand=..., solvent=..., sigma_cm2=...)"


class LiveReduction:
    """The session's live reduction (frames -> I(q) -> dI -> fits, stored linked to each raw run),
    configured with ``set_reduction``; ``reduction.result`` is the last result.

    EXAMPLE::

        set_reduction("/data/calib/waxs.poni", mask="/data/calib/waxs_mask.edf",
                      windows=[(1.70, 2.05)], model="biexp")     # saved for the next session
        RE(delay_scan([pilatus], dense_then_log(-200, 200, 17, 10000, 24)))
        reduction.result.fit.summary()
    """

    def __init__(self, ns: dict, root: Path, plot: bool):
        self._ns, self._root, self._plot = ns, root, plot
        self.integrator = self.pump_probe = None

    def set(self, poni, *, mask=None, windows, npt: int = 1000, part: str = "area", model: str = "auto",
            irf_fwhm_ps: float | None = None, save: bool = True):
        """(Re)install live reduction with this calibration and these q windows (A^-1)."""
        from trxrd.reduction.callbacks import live_reduction

        windows = [tuple(float(v) for v in w) for w in windows]
        integrator, pump_probe = live_reduction(poni, mask=mask, windows=windows, npt=npt,
                                                store=self._ns["writer"], part=part, model=model,
                                                irf_fwhm_ps=irf_fwhm_ps, plot=self._plot)
        RE, tokens = self._ns["RE"], self._ns["tokens"]
        if "reduction" in tokens:
            RE.unsubscribe(tokens.pop("reduction"))
        tokens["reduction"] = RE.subscribe(integrator)
        self.integrator, self.pump_probe = integrator, pump_probe
        if save:
            settings.update_state("reduction", dict(
                poni=str(Path(poni).resolve()), mask=None if mask is None else str(Path(mask).resolve()),
                windows=[list(w) for w in windows], npt=npt, part=part, model=model,
                irf_fwhm_ps=irf_fwhm_ps), self._root)
        return self

    @property
    def result(self):
        return None if self.pump_probe is None else self.pump_probe.result

    def __repr__(self):
        if self.integrator is None:
            return "live reduction off: set_reduction(poni, mask=..., windows=[(qmin, qmax)])"
        return (f"live reduction: {self.integrator.poni}, windows {self.pump_probe.windows} A^-1, "
                f"model {self.pump_probe.model}")


def start_session(prefix: str | None = None, *, root: Path | None = None, catalog_uri: str | None = None,
                  plots: bool | None = None, verbose: bool = True) -> dict:
    """Connect everything and return the session namespace (``RE``, ``cat``, ``bec``,
    ``writer``, ``tokens`` (RE subscription tokens by name), devices by name, plans,
    ``bps``/``bp``/``bpp``, ``set_sample``, ``set_reduction`` and ``trxrd.reduction``: live reduction,
    on when settings were saved or ``TRXRD_PONI`` + ``TRXRD_WINDOWS`` are set)."""
    prefix = settings.prefix() if prefix is None else prefix
    root = settings.data_dir() if root is None else Path(root)
    cat = open_catalog(catalog_uri, root=root)
    RE = RunEngine({})
    if len(cat):
        RE.md["scan_id"] = cat[-1].start.get("scan_id", 0)      # scan numbers continue
    writer = CatalogWriter(cat, backup_directory=root / "spool")
    tokens = {"catalog": RE.subscribe(writer)}
    atexit.register(writer.close)
    bec = BestEffortCallback()
    if plots is False or (plots is None and not os.environ.get("DISPLAY")):
        bec.disable_plots()
    tokens["bec"] = RE.subscribe(bec)
    install_progress(RE)
    bl = connect_beamline(prefix, root=root)
    sample_line = _restore_sample()
    ns = dict(RE=RE, cat=cat, bec=bec, writer=writer, tokens=tokens, beamline=bl, set_sample=set_sample,
              bps=bps, bp=bp, bpp=bpp, **bl.devices(), **PLANS)
    live = LiveReduction(ns, root, plot=bec._plots_enabled)
    ns.update(set_reduction=live.set, reduction=live)
    saved = settings.reduction_settings(root)
    reduction_line = "live reduction: off (set_reduction(poni, mask=..., windows=[(qmin, qmax)]))"
    if saved and saved.get("windows"):
        try:
            live.set(**saved, save=False)
            reduction_line = f"live reduction: {saved['poni']}, windows {saved['windows']} A^-1"
        except (ValueError, OSError) as exc:    # a moved calibration must not stop the session
            reduction_line = f"live reduction: OFF, the saved settings fail ({exc}); set_reduction(...)"
    if verbose:
        print(f"trxrd session: prefix {prefix!r}, data {root}, catalog "
              f"{catalog_uri or os.environ.get('TRXRD_CATALOG') or root / 'catalog'}\n"
              f"  devices: {', '.join(bl.devices())}\n"
              f"  plans:   {', '.join(PLANS)}\n"
              f"  {sample_line}\n"
              f"  {reduction_line}\n"
              f"  fluence calibration: {'loaded' if bl.att.calibrated else 'missing: RE(calibrate_fluence())'}; "
              f"time zero {bl.delay.time_zero_mm.get():.4f} mm")
    return ns
