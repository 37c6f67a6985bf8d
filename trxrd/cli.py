"""``trxrd`` command line.

EXAMPLE::

    trxrd sim --prefix TRX: --data-dir /tmp/trx-data      # serve the simulated beamline
    trxrd sim --list-pvs                                   # every PV with its doc
    trxrd sim --print-config                               # the ground truth in force
    trxrd sim --config pbs-mesocrystal --print-truth       # grains and XCCA peaks of a mesocrystal (JSON)
    trxrd demo                                             # short pump-probe dry run
    trxrd runs --limit 10                                  # recent runs, newest first
    trxrd show -1                                          # last run: metadata and streams
    trxrd show 3f2a9c1e --catalog http://tiled:8000        # by uid prefix (or scan_id)
    trxrd shell [--sim]                                    # IPython beamline session (dry run)
    trxrd integrate scan.h5 --poni waxs.poni --mask mask.edf --out reduced.h5
    trxrd kinetics scan.h5 --poni waxs.poni --table scan.csv --window 1.70:2.05 --json fit.json
    trxrd saxs synthesis.h5 --poni saxs.poni --table synthesis.csv --json saxs.json --plot saxs.png
    trxrd stacking anneal.h5 --poni saxs.poni --table anneal.csv --qmin 0.1 --qmax 0.6 --json d.json
    trxrd xcca raster.h5 --poni waxs.poni --q1 0.172 --q2 1.833 --table raster.csv --json xcca.json --plot xcca.png
    trxrd reduce -1 --window 1.70:2.05                     # re-reduce the last run, stored linked
    trxrd proxy & trxrd live --window 1.70:2.05            # live reduction in its own process (0MQ)
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import sys
import warnings
from datetime import datetime
from pathlib import Path


def _sim(args: argparse.Namespace) -> int:
    from .simulated_devices.iocs.launcher import build_beamline, list_pvs, serve
    from .simulated_devices.physics.config import dump_config

    model, groups, pvdb = build_beamline(args.prefix, args.config, args.data_dir, args.detector,
                                         write_roots=args.write_root or [_data_root()])
    if args.print_config:
        print(dump_config(model.cfg))
        return 0
    if args.print_truth:
        if model.mesocrystal is None:
            raise ValueError('--print-truth needs a mesocrystal sample ([waxs] model = "mesocrystal"), '
                             'e.g. --config pbs-mesocrystal')
        print(json.dumps(model.mesocrystal.truth(), indent=1))
        return 0
    if args.list_pvs:
        print(list_pvs(pvdb))
        return 0
    print(f"trxrd sim: {len(pvdb)} PVs under {args.prefix!r}; WAXS {model.waxs.name} "
          f"{model.waxs.shape[1]}x{model.waxs.shape[0]}; frames and PONI files in "
          f"{groups['waxs'].data_dir} and {groups['saxs'].data_dir}. Ctrl-C stops.", flush=True)
    serve(pvdb, groups)   # until Ctrl-C or SIGTERM; open detector files are closed
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(out_dir=args.out, detector=args.detector, json_path=args.json, experiment=args.experiment)


def _data_root() -> Path:
    """The data root of this process: ``TRXRD_DATA`` (default ``./data``)."""
    return Path(os.environ.get("TRXRD_DATA", "data")).expanduser().resolve()


def _catalog(args: argparse.Namespace):
    """The catalog for a command: ``--catalog``, else ``TRXRD_CATALOG``, else the embedded one
    under the data root, which must exist already."""
    from .catalog import catalog_dir, open_catalog

    if not args.verbose:   # the embedded server's start-up chatter
        import tiled.server.app   # noqa: F401  (sets its logger to INFO on import)

        logging.getLogger("tiled.server.app").setLevel(logging.WARNING)
        warnings.filterwarnings("ignore", message=".*starlette.testclient.*")
    uri = args.catalog or os.environ.get("TRXRD_CATALOG") or None
    if uri is None:
        database = catalog_dir(_data_root()) / "catalog.db"
        if not database.exists():
            raise ValueError(f"no catalog at {database} (set TRXRD_DATA or --catalog)")
    with contextlib.redirect_stderr(io.StringIO()):     # Tiled's "Retrying…" line: the error says it
        client = open_catalog(uri, root=_data_root(), api_key=os.environ.get("TRXRD_API_KEY") or None)
    closing = getattr(args, "closing", None)
    if closing is not None:       # main() closes it when the command ends (an embedded one holds 2 threads)
        closing.callback(client.context.close)
    return client


def _catalog_process(args: argparse.Namespace):
    """The catalog process that writes for a command: to ``--catalog`` / ``TRXRD_CATALOG``, else
    serving the embedded catalog under the data root. Close it when done."""
    from .catalog import CatalogProcess

    uri = getattr(args, "catalog", None) or os.environ.get("TRXRD_CATALOG") or None
    if uri is None:
        return CatalogProcess(root=_data_root())
    return CatalogProcess(uri=uri, api_key=os.environ.get("TRXRD_API_KEY") or None)


def _sample_name(start: dict) -> str:
    sample = start.get("sample")
    if isinstance(sample, dict):
        sample = sample.get("name")
    return str(sample) if sample not in (None, "") else "-"


def _stream_events(run, stream: str) -> int:
    """Events in *stream*: from the stop document, else (run still open) the rows written."""
    from .catalog import events_written

    stop = run.metadata.get("stop") or {}
    if stream in (stop.get("num_events") or {}):
        return int(stop["num_events"][stream])
    return events_written(run, stream)


def _event_count(run) -> int:
    streams = list(run)
    if "primary" in streams:
        return _stream_events(run, "primary")
    return sum(_stream_events(run, s) for s in streams)


def _runs(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    cat = _catalog(args)
    rows, incomplete = [], []
    for run in _newest(cat, args.limit):
        start, stop = run.metadata.get("start", {}), run.metadata.get("stop") or {}
        when = datetime.fromtimestamp(start["time"]).strftime("%Y-%m-%d %H:%M:%S") if "time" in start else "-"
        rows.append((when, start.get("uid", "?")[:8], str(start.get("plan_name", "-")),
                     _sample_name(start), stop.get("exit_status", "incomplete"), str(_event_count(run))))
        if not stop:
            incomplete.append(rows[-1][1])
    if not rows:
        print("no runs in the catalog")
        return 0
    header = ("start", "uid", "plan", "sample", "exit", "events")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(f"{cell:>{w}}" if i == 5 else f"{cell:<{w}}"
                        for i, (cell, w) in enumerate(zip(row, widths))).rstrip())
    if incomplete:
        print("incomplete: no stop document in the catalog (running now, or the catalog failed during the run)")
    for uid8 in incomplete:
        spool = _data_root() / "spool" / f"{uid8}.jsonl"
        print(f"  {uid8}  spool {spool}: `trxrd recover {spool}` once the run has ended" if spool.is_file()
              else f"  {uid8}  no spool under {spool.parent}")
    return 0


def _recover(args: argparse.Namespace) -> int:
    """Replay spools into the catalog; exit 1 when any stays (refused or failed again)."""
    from .catalog import catalog_dir, replay_spool, spool_files

    spools = spool_files(args.spool)
    if not spools:
        raise ValueError(f"no spool (*.jsonl) in {' '.join(args.spool)}")
    if args.storage is not None and not args.storage.is_dir():
        raise ValueError(f"--storage {args.storage}: no such folder")
    cat = _catalog(args)
    storage = args.storage
    if storage is None and not (args.catalog or os.environ.get("TRXRD_CATALOG")):
        storage = catalog_dir(_data_root()) / "data"        # the embedded catalog's own files
    results = [replay_spool(path, cat, close_incomplete=args.close_incomplete, storage=storage)
               for path in spools]
    for result in results:
        print(result)
    left = [r for r in results if not r.ok]
    print(f"{len(results) - len(left)} of {len(results)} spools in the catalog"
          + (f"; {len(left)} kept" if left else ""))
    return 1 if left else 0


TILED_PAGE_MAX = 300      # entries in one page of a Tiled search, at most


def _newest(cat, limit: int):
    """The *limit* newest runs of *cat*, newest first, fetched a page at a time."""
    done = 0
    while done < limit:
        n = min(TILED_PAGE_MAX, limit - done, len(cat) - done)
        if n <= 0:
            return
        yield from cat.values()[-(done + 1):-(done + n + 1):-1]
        done += n


def _lookup(cat, key: str):
    """-1: the last run; 12: scan_id 12; else a uid or its first characters (5 at least). A
    prefix of digits only ("08201906", one uid in 40) is a uid prefix when no scan_id matches."""
    candidates = [int(key)] if key.lstrip("-").isdigit() and abs(int(key)) < 2 ** 63 else []   # SQLite's integers
    if len(key) >= 5 and not key.startswith("-"):
        candidates.append(key)
    for candidate in candidates:
        try:
            return cat[candidate]
        except (KeyError, IndexError):
            continue
    raise ValueError(f"no run matches {key!r}")


def _flatten(md: dict, prefix: str = "") -> list[tuple[str, object]]:
    out = []
    for key in sorted(md):
        value = md[key]
        if isinstance(value, dict) and value:
            out.extend(_flatten(value, f"{prefix}{key}."))
        else:
            out.append((f"{prefix}{key}", value))
    return out


def _dtype(key: dict) -> str:
    import numpy as np

    dtype = key.get("dtype_numpy")
    if isinstance(dtype, str) and dtype:
        try:
            return np.dtype(dtype).name
        except TypeError:
            return dtype
    return str(key.get("dtype", "?"))


def _show(args: argparse.Namespace) -> int:
    run = _lookup(_catalog(args), args.run)
    start, stop = run.metadata.get("start", {}), run.metadata.get("stop") or {}
    when = datetime.fromtimestamp(start["time"]).strftime("%Y-%m-%d %H:%M:%S") if "time" in start else "-"
    print(f"run {start.get('uid')}  scan_id {start.get('scan_id', '-')}  {when}  "
          f"{stop.get('exit_status', 'incomplete (no stop document: running now, or the catalog failed during the run)')}")
    print("start:")
    for key, value in _flatten(start):
        print(f"  {key}: {value!r}" if isinstance(value, str) else f"  {key}: {value}")
    print("streams:")
    for stream in run:
        descriptor = run[stream].descriptors[0]
        print(f"  {stream}: {_stream_events(run, stream)} events")
        keys = descriptor.get("data_keys", {})
        rows = [(name, str(tuple(key.get("shape") or ())), _dtype(key), str(key.get("units") or "-"),
                 "file" if "external" in key else "")
                for name, key in sorted(keys.items())]
        if not rows:
            continue
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        for row in rows:
            print("    " + "  ".join(f"{c:<{w}}" for c, w in zip(row, widths)).rstrip())
    return 0


def _integrate(args) -> int:
    from .reduction.offline import integrate_files

    out = integrate_files(args.frames, args.poni, mask=args.mask, npt=args.npt, out=args.out)
    print(f"{out}: I(q) of the frames of {len(args.frames)} file(s), NXdata /entry/reduced")
    return 0


def _kinetics(args) -> int:
    from .reduction.offline import kinetics_files
    from .reduction.settings import parse_window

    windows = [parse_window(w) for w in args.window]
    result = kinetics_files(args.frames, args.poni, args.table, windows, mask=args.mask, npt=args.npt,
                            part=args.signal, model=args.model, irf_fwhm_ps=args.irf_fwhm,
                            reference=args.reference)
    print(f"{len(result.points)} delays, {int(result.diff.n_pairs.sum())} pump-on frames; {result.fit.summary()}")
    undetermined = result.fit.undetermined()
    if undetermined:
        raise ValueError(f"the {result.fit.model} fit is not determined by these data: "
                         + ", ".join(f"{name} ({why})" for name, why in undetermined.items())
                         + f"; {len(result.points)} delays from {min(result.points):g} to {max(result.points):g} ps "
                         "(a scan across time zero and out past the decay, or --model exp / --irf-fwhm); "
                         "nothing written")
    if args.json:
        Path(args.json).write_text(json.dumps(result.as_dict(), indent=2))
        print(f"fit: {args.json}")
    if args.plot:
        from .reduction.plots import pump_probe_figure

        pump_probe_figure(result).savefig(args.plot, dpi=110)
        print(f"figure: {args.plot}")
    return 0


def _parse_reflections(texts):
    from .reduction.reflections import parse_reflection

    return [parse_reflection(t) for t in texts]


def _load_thermometer(args) -> dict:
    """``--thermometer``: a file (``trxrd thermometer --out``) or a thermometer / heating-series run."""
    from .catalog import run_thermometers
    from .reduction.reflections import load_thermometers

    source = args.thermometer
    if Path(source).suffix == ".json" or Path(source).exists():
        return load_thermometers(source)
    cat = _catalog(args)
    return run_thermometers(cat, _lookup(cat, source))


def _reflections(args) -> int:
    from .reduction.offline import reflections_files
    from .reduction.reflections import thermometer_reflection

    reflections = _parse_reflections(args.reflection)
    thermometer = None
    if args.thermometer:
        calibrations = _load_thermometer(args)
        labels = {r.label for r in reflections}
        usable = [c for h, c in calibrations.items() if h in labels]
        if not usable:
            raise ValueError(f"the thermometer is for reflection(s) {', '.join(calibrations)}, none of which is "
                             f"given with --reflection ({', '.join(sorted(labels))})")
        thermometer = usable[0]
        print(f"thermometer: reflection {thermometer_reflection(thermometer)}, "
              f"{thermometer.temperature_range_c[0]:g} .. {thermometer.temperature_range_c[1]:g} C")
    series = reflections_files(args.frames, args.poni, args.table, reflections, mask=args.mask, npt=args.npt,
                               structure=args.structure, thermometer=thermometer, irf_fwhm_ps=args.irf_fwhm,
                               reference=args.reference, sample=args.sample)
    print(f"{series.x.size} delays; shared t0 {series.common['t0_ps']:+.3g} ps, IRF {series.common['irf_fwhm_ps']:.3g} ps")
    print(f"  {'hkl':>5} {'tau shift (ps)':>18} {'dq/q max':>22} {'tau <du2> (ps)':>18} {'<du2> max (A^2)':>24}")
    for row in series.anisotropy():
        cells = [f"{_pm(row[k])}" for k in ("tau_shift_ps", "shift_max", "tau_du2_ps", "du2_max_A2")]
        print(f"  {row['hkl']:>5} {cells[0]:>18} {cells[1]:>22} {cells[2]:>18} {cells[3]:>24}")
    if args.json:
        Path(args.json).write_text(json.dumps(series.as_dict(), indent=2))
        print(f"result: {args.json}")
    if args.plot:
        from matplotlib.figure import Figure

        from .reduction.plots import draw_reflections

        fig = Figure(figsize=(14, 4.5))
        draw_reflections(fig, series)
        fig.savefig(args.plot, dpi=110)
        print(f"figure: {args.plot}")
    return 0


def _pm(d) -> str:
    if d["value"] is None:
        return "-"
    return f"{d['value']:.4g}" + ("" if d["stderr"] is None else f" +- {d['stderr']:.2g}")


def _thermometer(args) -> int:
    from .reduction.offline import thermometer_files

    calibrations, points = thermometer_files(args.frames, args.poni, args.table, _parse_reflections(args.reflection),
                                             mask=args.mask, npt=args.npt, degree=args.degree, sample=args.sample)
    for h, cal in calibrations.items():
        print(f"{h}: d ln q / dT = {cal.expansion_per_k:.4g} +- {cal.expansion_per_k_err:.2g} per K over "
              f"{cal.temperature_range_c[0]:g} .. {cal.temperature_range_c[1]:g} C, redchi {cal.redchi:.3g}")
    out = {"calibrations": {h: c.as_dict() for h, c in calibrations.items()}, "points": points}
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"thermometer: {args.out} (trxrd reflections --thermometer {args.out}; set_thermometer('{args.out}'))")
    return 0


def _q_option(text, name):
    from .reduction.saxs import parse_q

    return None if text is None else parse_q(text, name)


def _saxs(args) -> int:
    from .reduction.offline import saxs_files
    from .reduction.saxs import BEFORE_INJECTION

    if args.absolute_factor is not None and args.contrast is None:
        raise ValueError("--absolute-factor scales the concentration from --contrast: give --contrast too")
    result = saxs_files(args.frames, args.poni, args.table, mask=args.mask, npt=args.npt, background=args.background,
                        background_i0=args.background_i0, distribution=args.distribution,
                        q_min=_q_option(args.qmin, "--qmin"), q_max=_q_option(args.qmax, "--qmax"),
                        contrast_cm2=args.contrast,
                        absolute_factor=1.0 if args.absolute_factor is None else args.absolute_factor)
    doc = result.as_dict()
    frames = doc["frames"]
    after = [f for f in frames if f.get("reason") != BEFORE_INJECTION]
    with_p = [f for f in after if f["particles"]]
    lo, hi = doc["q_range_inv_angstrom"]
    print(f"{len(frames)} frames: {len(frames) - len(after)} before injection (background), {len(with_p)} with "
          f"particles, {len(after) - len(with_p)} without; q {lo:.4g}-{hi:.4g} A^-1, {doc['distribution']} spheres")
    print(f"  {'time (s)':>9} {'r (nm)':>18} {'sigma (nm)':>18} {'conc. rel':>10}")
    for i in sorted({round(k * (len(with_p) - 1) / 7) for k in range(8)}) if with_p else []:     # 8 times
        f = with_p[i]
        conc = "-" if f["concentration_rel"] is None else f"{f['concentration_rel']:.3f}"
        print(f"  {f['time_s']:>9.4g} {_pm(f['r_mean_nm']):>18} {_pm(f['sigma_nm']):>18} {conc:>10}")
    t98 = [("concentration", doc["t98_concentration_s"]), ("yield", doc["t98_yield_s"])]
    print("t98: " + ", ".join(f"{k} {'not reached' if v is None else f'{v:.4g} s'}" for k, v in t98))
    law = doc["growth_law"]
    print("growth law dr/dt = k / r^n: " + (f"n = {_pm(law['n'])}, k = {_pm(law['k'])} nm^(n+1)/s"
                                             if law else "not determined (too few windows of growth)"))
    from .reduction.offline import saxs_figure

    return _json_and_plot(args, doc, lambda: saxs_figure(result))


def _stacking(args) -> int:
    from .reduction.offline import stacking_files

    result = stacking_files(args.frames, args.poni, args.table, mask=args.mask, npt=args.npt,
                            q_min=_q_option(args.qmin, "--qmin"), q_max=_q_option(args.qmax, "--qmax"))
    doc = result.as_dict()
    found = sum(f["found"] for f in doc["frames"])
    print(f"{len(doc['frames'])} frames, {found} with a stacking peak (q {doc['q_range_inv_angstrom'][0]:.4g}-"
          f"{doc['q_range_inv_angstrom'][1]:.4g} A^-1)")
    for f in (doc["frames"][0], doc["frames"][-1]):
        where = ", ".join(f"{k} {f[k]:g}" for k in ("time_s", "temperature_c") if k in f)
        print(f"  frame {f['frame']} ({where}): d = {_pm(f['d_nm'])} nm, xi = {_pm(f['xi_nm'])} nm")
    for seg in doc["segments"]:
        print(f"  segment {seg['segment']} {seg['kind']}: {seg['frames']} frames, "
              f"d at its end {_pm(seg['d_end_nm'])} nm")
    from .reduction.offline import stacking_figure

    return _json_and_plot(args, doc, lambda: stacking_figure(result))


def _xcca(args) -> int:
    from .reduction.offline import xcca_figure, xcca_files
    from .reduction.xcca import NPHI_RANGE

    try:
        nphi = int(args.nphi)
    except ValueError:
        raise ValueError(f"--nphi must be an even number of azimuth bins from {NPHI_RANGE[0]} to "
                         f"{NPHI_RANGE[1]}, got {args.nphi!r}") from None
    result = xcca_files(args.frames, args.poni, mask=args.mask, q1=_q_option(args.q1, "--q1"),
                        q2=_q_option(args.q2, "--q2"), dq=_q_option(args.dq, "--dq"), nphi=nphi, table=args.table)
    doc = result.as_dict()
    print(f"{doc['n_frames']} frames: {doc['n_frames_with_grain']} with a grain, {doc['n_frames_used']} with spots "
          f"on both rings (used for the CCF); q1 {doc['q1']:.4g}, q2 {doc['q2']:.4g}, dq {doc['dq']:.4g} A^-1, "
          f"{doc['nphi']} azimuth bins")
    print("CCF peaks (deg): " + (" ".join(f"{d:+.1f}" for d in doc["peaks_deg"]) or "none"))
    bct = (f"beta = {_pm(doc['beta_deg'])} deg, c/a = {_pm(doc['c_over_a'])}" if doc["c_over_a"] is not None
           else "beta, c/a not determined (fewer than two CCF peaks on the bct model)")
    print(f"bct superlattice: {bct}")
    bragg = doc["bragg_peak"]
    print("averaged AL Bragg peak: " + (
        f"{bragg['spots']} spots, azimuthal FWHM {doc['azimuthal_fwhm_deg']:.3g} deg, radial FWHM "
        f"{doc['radial_fwhm']:.3g} A^-1; orientational disorder {_pm(doc['disorder_deg'])} deg"
        if bragg is not None else "no fit (no spots on the AL ring)"))
    return _json_and_plot(args, doc, lambda: xcca_figure(result))


def _json_and_plot(args, doc: dict, figure) -> int:
    """Write *doc* to ``--json`` and, with ``--plot``, the figure *figure()* makes."""
    Path(args.json).write_text(json.dumps(doc, indent=2))
    print(f"result: {args.json}")
    if args.plot:
        figure().savefig(args.plot, dpi=110)
        print(f"figure: {args.plot}")
    return 0


def _reduction_settings(args):
    """Reduction settings: those saved by set_reduction (the data root's state.json), else
    TRXRD_PONI / TRXRD_MASK / TRXRD_WINDOWS, overridden by the arguments; checked."""
    from .reduction.settings import ReductionSettings, parse_window
    from .state import StateFile

    saved = StateFile(_data_root() / "state.json").section("reduction")
    if not saved and os.environ.get("TRXRD_PONI"):
        from .session import SessionConfig     # only then: it loads ophyd, whose CA client opens sockets

        saved = SessionConfig.from_environ().reduction
    settings = dict(saved or {})
    for key in ("poni", "mask", "npt", "model"):
        if getattr(args, key):
            settings[key] = getattr(args, key)
    if args.window:
        settings["windows"] = [parse_window(w) for w in args.window]
    if args.reflection:
        settings["reflections"] = args.reflection
    if not settings.get("poni"):
        raise ValueError("no calibration: give --poni (and --mask), or save one with set_reduction(...) "
                         "in the session, or set TRXRD_PONI")
    if not settings.get("windows"):
        raise ValueError("no q window: give --window QMIN:QMAX (A^-1) or save windows with set_reduction(...)")
    return ReductionSettings.from_dict(settings)


def _reduce(args) -> int:
    from .catalog import CatalogWriter
    from .reduction.callbacks.live import live_reduction, reflection_reduction
    from .reduction.callbacks.replay import replay_run

    settings = _reduction_settings(args)
    cat = _catalog(args)
    run = _lookup(cat, args.run)
    process = _catalog_process(args)
    failed = []       # reasons of the reduced runs closed as failed

    def store(name, doc):
        if name == "stop" and doc.get("exit_status") != "success":
            failed.append(doc.get("reason") or doc.get("exit_status"))
        writer(name, doc)

    try:
        writer = CatalogWriter(process, backup_directory=_data_root() / "spool")
        integrator, pump_probe = live_reduction(settings, store=store)
        reflection_reduction(settings, integrator, store=store)
        try:
            with _quiet_unless(args.verbose, "trxrd.reduction.callbacks"):   # the failure is reported below
                for name, doc in replay_run(run, image_key=settings.image_key):
                    integrator(name, doc)
        finally:
            writer.close()
    finally:
        process.close()
    raw = run.start["uid"]
    print(f"run {raw[:8]} ({run.start.get('plan_name')}): {integrator.frames} frames integrated")
    if failed:
        raise ValueError(f"the reduction of run {raw[:8]} failed: {failed[0]} (stored as failed, linked by "
                         f"raw_uid {raw})")
    if pump_probe.result is not None and pump_probe.result.fit is not None:
        print(f"  {pump_probe.result.fit.summary()}")
    if writer.spooled:              # the catalog failed: kept in spools, not stored
        for uid, spool in writer.spooled.items():
            print(f"  run {uid[:8]} NOT stored: the catalog failed; kept in {spool} (`trxrd recover {spool}`)")
        return 1
    print(f"  stored, linked by raw_uid: {raw}")
    return 0


@contextlib.contextmanager
def _quiet_unless(verbose: bool, name: str):
    """Logger *name* silent below CRITICAL inside the block, unless *verbose*."""
    logger = logging.getLogger(name)
    level = logger.level
    if not verbose:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _proxy(args) -> int:
    from .reduction.callbacks.remote import run_proxy

    print(f"trxrd proxy: RunEngines publish to {args.in_address}, reductions subscribe to "
          f"{args.out_address}. Ctrl-C stops.", flush=True)
    run_proxy(args.in_address, args.out_address)
    return 0


def _saxs_settings(args):
    """SAXS settings for ``trxrd live``: those saved by set_saxs, overridden by --saxs-poni,
    --saxs-mask, --stacking; None when there are none."""
    from .reduction.settings import SaxsSettings
    from .state import StateFile

    values = dict(StateFile(_data_root() / "state.json").section("saxs") or {})
    for key, arg in (("poni", "saxs_poni"), ("mask", "saxs_mask"), ("stacking_q", "stacking")):
        if getattr(args, arg):
            values[key] = getattr(args, arg)
    if not values.get("poni"):
        if args.saxs_mask or args.stacking:
            raise ValueError("--saxs-mask and --stacking go with the SAXS calibration: give --saxs-poni too")
        return None
    return SaxsSettings.from_dict(values)


def _live(args) -> int:
    from . import datakeys as dk
    from .reduction.callbacks.live import live_reduction, reflection_reduction, saxs_reduction
    from .reduction.callbacks.remote import dispatcher
    from .validation import file_stem, inside

    source = dispatcher(args.zmq)        # a bad address: one line before anything else
    saxs_settings = _saxs_settings(args)
    try:
        settings = _reduction_settings(args)
    except ValueError as exc:
        if saxs_settings is None or args.poni or args.window:
            raise
        print(f"trxrd live: no WAXS reduction ({exc}); SAXS only", flush=True)
        settings = None
    store = None
    if args.catalog:
        from .catalog import CatalogWriter, open_catalog

        open_catalog(args.catalog, api_key=os.environ.get("TRXRD_API_KEY") or None).context.close()  # a wrong URI or key: one line
        store = CatalogWriter(_catalog_process(args), backup_directory=_data_root() / "spool")
    out = Path(args.json_dir) if args.json_dir else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    pump_probe = None
    if settings is not None:
        integrator, pump_probe = live_reduction(settings, store=store, plot=args.plot)
        reflection_reduction(settings, integrator, store=store, plot=args.plot)
        source.subscribe(integrator)
    if saxs_settings is not None:
        saxs_integrator, saxs, stacking = saxs_reduction(saxs_settings, store=store, plot=args.plot)
        source.subscribe(saxs_integrator)

        def saxs_report(callback, what):
            raw = {}

            def on_document(name, doc):
                if name == "start":
                    raw["uid"] = doc.get(dk.RAW_UID, doc["uid"])
                elif name == "stop" and doc.get("exit_status") == "success":
                    result = callback.report if what == "saxs" else {"segments": callback.segments}
                    if what == "saxs":
                        print(f"  SAXS: t98 concentration {result['t98_concentration_s']} s, yield "
                              f"{result['t98_yield_s']} s", flush=True)
                    if out:
                        _write_json(inside(out, f"{file_stem(raw['uid'][:8])}-{what}.json"), result)
            return on_document

        saxs.subscribe(saxs_report(saxs, "saxs"))
        if stacking is not None:
            stacking.subscribe(saxs_report(stacking, "stacking"))

    def report(name, doc):
        if name == "start":
            print(f"run {doc['uid'][:8]} {doc.get('plan_name')}", flush=True)
        elif (name == "stop" and pump_probe is not None and pump_probe.result is not None
              and doc["run_start"] == pump_probe.run_uid):
            fit = pump_probe.result.fit
            print(f"  {integrator.frames} frames; {fit.summary() if fit else 'no fit'}", flush=True)
            if out:
                _write_json(inside(out, f"{file_stem(pump_probe.raw_uid[:8])}.json"), pump_probe.result.as_dict())

    source.subscribe(report)
    if pump_probe is not None:
        pump_probe.subscribe(report)
    what = [] if settings is None else [f"{settings.poni}, windows {[list(w) for w in settings.windows]} A^-1"]
    what += [] if saxs_settings is None else [f"SAXS {saxs_settings.poni}"]
    print(f"trxrd live: reducing the documents from {args.zmq} ({'; '.join(what)}). Ctrl-C stops.", flush=True)
    try:
        source.start()
    finally:
        if store is not None:
            try:
                store.close()
            finally:
                store.process.close()
    return 0


def _write_json(path: Path, doc: dict) -> None:
    """Complete or absent, for whoever watches the folder."""
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(doc, indent=2, default=float))
    partial.replace(path)


def install_profile() -> Path:
    """The packaged beamline profile's startup files, copied into IPython's profile folder
    ``profile_trxrd`` (under ``$IPYTHONDIR``, default ``~/.ipython``: IPython keeps history and
    runtime files there). Startup files of the user's own next to them are kept."""
    from importlib.resources import files

    from IPython.paths import get_ipython_dir

    source = files("trxrd.profiles") / "profile_trxrd" / "startup"
    target = Path(get_ipython_dir()) / "profile_trxrd"
    (target / "startup").mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.name.endswith(".py"):
            (target / "startup" / item.name).write_text(item.read_text())
    return target


def _sim_config(config, sim):
    """The session configuration of a dry run: the simulator's prefix and, unless saved, its
    sample, its calibration with the (112) window and its pump spot (in a dry run the sample
    file plays the beamline's knife-edge measurement)."""
    import dataclasses

    from .demo import window_112
    from .simulated_devices.physics.config import load_config

    cfg = load_config()
    s, laser = cfg["sample"], cfg["laser"]
    return dataclasses.replace(
        config, prefix=sim.prefix,
        sample=config.sample or {k: s[k] for k in ("name", "size_nm", "ligand", "solvent", "sigma_cm2")},
        reduction=config.reduction or {"poni": str(sim.waxs_dir / "waxs.poni"),
                                       "mask": str(sim.waxs_dir / "waxs_mask.edf"),
                                       "windows": [window_112(s["size_nm"])]},
        spot_fwhm_um=config.spot_fwhm_um or (laser["spot_fwhm_x_um"], laser["spot_fwhm_y_um"]),
        note="the simulator's sample file")


def _shell(args) -> int:
    import IPython

    from .session import SessionConfig

    argv = ["--profile-dir", str(install_profile()), *args.ipython_args]
    config = SessionConfig.from_environ()
    if not args.sim:
        IPython.start_ipython(argv=argv, user_ns={"trxrd_config": config})
        return 0
    from .simulated_devices.process import SimulatedBeamline, isolated_ca_env

    env = isolated_ca_env()              # its own loopback port: no clash with other simulators
    os.environ.update(env)               # for this process's Channel Access client (libca)
    with SimulatedBeamline(config.prefix, data_dir=Path(config.data_root) / "sim", ca_env=env,
                           write_roots=[config.data_root]) as sim:
        IPython.start_ipython(argv=argv, user_ns={"trxrd_config": _sim_config(config, sim)})
    return 0


def _frame_options(parser, npt: int = 1000) -> None:
    """Detector files and their calibration, for the commands that read frames."""
    parser.add_argument("frames", nargs="+", metavar="FRAMES",
                        help="HDF5 (/entry/data/data, N frames) or CBF/TIFF/EDF files (one frame each)")
    parser.add_argument("--poni", required=True, help="pyFAI calibration (PONI file)")
    parser.add_argument("--mask", help="mask image (non-zero = masked); negative pixels are always masked")
    parser.add_argument("--npt", type=_npt, default=npt, help=f"q bins (default {npt})")


def _reduction_options(parser) -> None:
    """Options of the commands that run the live chain; defaults from the saved settings."""
    parser.add_argument("--poni", help="calibration (default: the saved reduction settings / $TRXRD_PONI)")
    parser.add_argument("--mask", help="mask image (default: the saved settings / $TRXRD_MASK)")
    parser.add_argument("--window", action="append", metavar="QMIN:QMAX", help="q window (A^-1), repeatable")
    parser.add_argument("--reflection", action="append", metavar="HKL:QMIN:QMAX",
                        help="reflection fitted per point (default: the saved settings), repeatable")
    parser.add_argument("--npt", type=_npt, help="q bins (default: saved settings, else 1000)")
    parser.add_argument("--model", choices=("exp", "biexp", "auto"), help="kinetics model (default: saved, else auto)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="trxrd", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser("sim", help="run the simulated beamline IOCs until Ctrl-C")
    sim.add_argument("--prefix", default="TRX:", help="PV prefix (default TRX:)")
    sim.add_argument("--config", help="sample file (TOML) overriding the documented defaults, or a shipped "
                     "sample: pbse-90k, pbse-300k (rock-salt PbSe QDs for per-reflection dynamics)")
    sim.add_argument("--data-dir", default="./data/detectors",
                     help="where detector files, PONI files and masks are written")
    sim.add_argument("--write-root", action="append", metavar="DIR",
                     help="another folder where Channel Access clients may have the detectors write files, "
                          "repeatable (default: the session's data folder, $TRXRD_DATA or ./data); "
                          "FilePath/FileTemplate anywhere else are refused")
    sim.add_argument("--detector", choices=("pilatus300k", "pilatus2m"),
                     help="WAXS detector shape (default from the sample file: pilatus300k)")
    sim.add_argument("--list-pvs", action="store_true", help="print every PV with its doc and exit")
    sim.add_argument("--print-config", action="store_true", help="print the sample file in force and exit")
    sim.add_argument("--print-truth", action="store_true",
                     help="print the mesocrystal's truth (grains, rings, cross-correlation peaks) as JSON and exit")
    sim.set_defaults(func=_sim)

    demo = sub.add_parser("demo", help="dry-run campaign: time zero, heating calibration, fluence and delay "
                                       "scans, live reduction, fits vs the simulator's truth")
    demo.add_argument("--experiment", choices=("trxrd", "ued", "saxs", "anneal", "xcca"), default="trxrd",
                      help="trxrd: CuInSe2 NCs in a liquid jet (default); ued: per-reflection dynamics of "
                           "PbSe QDs at 90 K; saxs: in-situ SAXS of a hot-injection synthesis; anneal: SAXS of "
                           "an annealed nanoplatelet film; xcca: nano-diffraction raster of a PbS mesocrystal")
    demo.add_argument("--out", default="demo-output", help="folder for figures, summary and data")
    demo.add_argument("--json", help="write the summary JSON here (default OUT/summary.json)")
    demo.add_argument("--detector", choices=("pilatus300k", "pilatus2m"), default="pilatus300k")
    demo.set_defaults(func=_demo)

    shell = sub.add_parser("shell", help="IPython with the beamline profile: RE, cat, devices, plans",
                           epilog="Other arguments go to IPython, e.g. -c 'RE(calibrate_fluence())'.")
    shell.add_argument("--sim", action="store_true",
                       help="dry run: start the simulated beamline first (own loopback port), stop it on exit")
    shell.set_defaults(func=_shell)

    catalog_help = "Tiled server http(s)://host:port (default $TRXRD_CATALOG, else the embedded " \
                   "catalog under $TRXRD_DATA)"
    runs = sub.add_parser("runs", help="recent runs in the catalog, newest first")
    runs.add_argument("--limit", type=int, default=20, help="how many runs (default 20)")
    runs.add_argument("--catalog", metavar="URI", help=catalog_help)
    runs.set_defaults(func=_runs)

    recover = sub.add_parser("recover", help="replay spooled runs (data/spool/*.jsonl) into the catalog, "
                                             "idempotently")
    recover.add_argument("spool", nargs="+", metavar="SPOOL", help="spool file, or a folder of them")
    recover.add_argument("--close-incomplete", action="store_true",
                         help="store a spool without a stop document (its process died) closed as failed")
    recover.add_argument("--catalog", metavar="URI", help=catalog_help)
    recover.add_argument("--storage", metavar="DATA", type=Path,
                         help="the Tiled server's writable data folder, where files a crash left for a "
                              "run are removed before it is replayed (default: the embedded catalog's)")
    recover.set_defaults(func=_recover)

    integ = sub.add_parser("integrate", help="azimuthal integration of detector files to NeXus I(q)")
    _frame_options(integ)
    integ.add_argument("--out", required=True, help="NeXus file to write (e.g. reduced.h5)")
    integ.set_defaults(func=_integrate)

    kin = sub.add_parser("kinetics", help="pump-probe kinetics from detector files + a frame table")
    _frame_options(kin)
    kin.add_argument("--table", required=True,
                     help="CSV, one row per frame: frame,delay_ps,pump(on/off)[,i0][,fluence_mj_cm2]")
    kin.add_argument("--window", action="append", required=True, metavar="QMIN:QMAX",
                     help="q window in A^-1 (repeat for several; the signal sums them)")
    kin.add_argument("--signal", choices=("area", "negative"), default="area",
                     help="integral of dI (area) or of its negative part only")
    kin.add_argument("--model", choices=("exp", "biexp", "auto"), default="auto",
                     help="exponentials convolved with the Gaussian IRF; auto chooses by AIC")
    kin.add_argument("--irf-fwhm", type=float, metavar="PS", help="fix the IRF FWHM (ps); default fitted")
    kin.add_argument("--reference", choices=("interleaved", "negative_delay", "interpolate"),
                     default="interleaved", help="how pump-on frames pair with pump-off frames")
    kin.add_argument("--json", metavar="OUT", help="write the fit and the signal as JSON")
    kin.add_argument("--plot", metavar="OUT.png", help="write the difference map and the fitted trace")
    kin.set_defaults(func=_kinetics)

    refl = sub.add_parser("reflections", help="per-reflection shifts, <du^2>, widths and time constants from "
                                              "detector files + a frame table")
    _frame_options(refl)
    refl.add_argument("--table", required=True, help="CSV, one row per frame: frame,delay_ps,pump(on/off)[,i0]")
    refl.add_argument("--reflection", action="append", required=True, metavar="HKL:QMIN:QMAX",
                      help="reflection and its q window in A^-1, e.g. 200:1.98:2.12 (repeat)")
    refl.add_argument("--structure", choices=("cubic", "tetragonal"), default="cubic",
                      help="lattice parameters per delay: cubic a, or tetragonal a, c, V")
    refl.add_argument("--thermometer", metavar="FILE|UID",
                      help="thermometer (trxrd thermometer --out, or a heating-series run): adds dT")
    refl.add_argument("--sample", help="the sample's name: a thermometer measured on another is refused")
    refl.add_argument("--catalog", metavar="URI", help=catalog_help)
    refl.add_argument("--irf-fwhm", type=float, metavar="PS", help="fix the IRF FWHM (ps); default fitted")
    refl.add_argument("--reference", choices=("interleaved", "negative_delay", "interpolate"),
                      default="interleaved", help="how pump-on frames pair with pump-off frames")
    refl.add_argument("--json", metavar="OUT", help="write the per-reflection result as JSON")
    refl.add_argument("--plot", metavar="OUT.png", help="write the per-reflection figure")
    refl.set_defaults(func=_reflections)

    therm = sub.add_parser("thermometer", help="a lattice thermometer from the frames of a static heating series")
    _frame_options(therm)
    therm.add_argument("--table", required=True, help="CSV, one row per frame: frame,temperature_c[,i0]")
    therm.add_argument("--reflection", action="append", required=True, metavar="HKL:QMIN:QMAX",
                       help="reflection and its q window in A^-1 (repeat)")
    therm.add_argument("--degree", type=int, default=1, help="polynomial degree of position vs T (default 1)")
    therm.add_argument("--sample", help="the sample's name, stored with the thermometer")
    therm.add_argument("--out", required=True, metavar="thermometer.json", help="where to write the thermometer")
    therm.set_defaults(func=_thermometer)

    q_help = "(A^-1, or with a unit: 0.2nm-1 = 0.02)"
    saxs = sub.add_parser("saxs", help="in-situ SAXS of a synthesis: polydisperse spheres per frame, relative "
                                       "concentration and yield with their t98, the growth law",
                          epilog="Frames before injection (time_s < 0) are the solvent: no particles are fitted "
                                 "there. Give the frame files first, then the options.")
    _frame_options(saxs, npt=500)
    saxs.add_argument("--table", required=True,
                      help="CSV, one row per frame: frame,time_s[,i0] (time_s: s since injection, negative "
                           "before; with i0 every frame is divided by it)")
    saxs.add_argument("--background", nargs="+", default=["auto"], metavar="FRAMES|auto",
                      help="auto (default): the mean I(q) of the frames with time_s < 0; or background frame files "
                           "(their mean), taken as they are: with i0 in the table give --background-i0, else "
                           "they must have the frames' exposure and flux")
    saxs.add_argument("--background-i0", type=float, metavar="I0",
                      help="the monitor of the background files, when the table has i0 (normalised the same way)")
    saxs.add_argument("--distribution", default="schulz", metavar="schulz|gaussian",
                      help="number distribution of the radii (default schulz)")
    saxs.add_argument("--qmin", metavar="Q", help=f"low end of the fit range {q_help}; default the detector's")
    saxs.add_argument("--qmax", metavar="Q", help=f"high end of the fit range {q_help}; default the detector's")
    saxs.add_argument("--contrast", type=float, metavar="DRHO_CM2",
                      help="scattering-length-density difference particle - solvent (cm^-2): adds the "
                           "concentration in uM (intensities in cm^-1 after --absolute-factor)")
    saxs.add_argument("--absolute-factor", type=float, metavar="F",
                      help="factor from the normalised intensity to cm^-1 (default 1), with --contrast")
    saxs.add_argument("--json", required=True, metavar="OUT", help="write the per-frame fits and the series")
    saxs.add_argument("--plot", metavar="OUT.png",
                      help="r(t), sigma/r(t), concentration and yield with the 98 %% times, I(q) of the last frame")
    saxs.set_defaults(func=_saxs)

    stack = sub.add_parser("stacking", help="stacking period d = 2 pi / q* of a platelet film per frame of an anneal")
    _frame_options(stack)
    stack.add_argument("--table", required=True,
                       help="CSV, one row per frame: frame and temperature_c and/or time_s [,i0][,segment "
                            "(integer),segment_kind (text)]; segments need both time_s and temperature_c")
    stack.add_argument("--qmin", metavar="Q", help=f"low end of the peak search {q_help}; default the detector's")
    stack.add_argument("--qmax", metavar="Q", help=f"high end of the peak search {q_help}; default the detector's")
    stack.add_argument("--json", required=True, metavar="OUT", help="write d, xi, q*, FWHM, area per frame, segments")
    stack.add_argument("--plot", metavar="OUT.png", help="d and xi per frame, I q^2 of the first and last frame")
    stack.set_defaults(func=_stacking)

    xcca = sub.add_parser("xcca", help="X-ray cross-correlation analysis of a nano-diffraction raster: grain "
                                       "orientation per pattern, averaged CCF, its peaks, beta and c/a, disorder",
                          epilog="The lower ring is the superlattice one (grains, orientation), the higher the "
                                 "atomic-lattice one (misorientation, averaged Bragg peak).")
    xcca.add_argument("frames", nargs="+", metavar="FRAMES",
                      help="HDF5 (/entry/data/data, N frames) or CBF/TIFF/EDF files (one frame each), in raster order")
    xcca.add_argument("--poni", required=True, help="pyFAI calibration (PONI file)")
    xcca.add_argument("--mask", help="mask image (non-zero = masked); negative pixels are always masked")
    xcca.add_argument("--q1", required=True, metavar="Q", help=f"first ring {q_help}")
    xcca.add_argument("--q2", required=True, metavar="Q", help=f"second ring {q_help}")
    xcca.add_argument("--dq", metavar="W", help=f"width of each ring {q_help}; default 0.02")
    xcca.add_argument("--nphi", default="180", metavar="N", help="azimuth bins over 360 deg, 36-3600 (default 180)")
    xcca.add_argument("--table", help="CSV, one row per frame: frame,x_um,y_um[,i0] (beam position; the maps use it)")
    xcca.add_argument("--json", required=True, metavar="OUT", help="write the CCF, its peaks, beta, c/a, disorder and "
                                                                   "one row per pattern")
    xcca.add_argument("--plot", metavar="OUT.png", help="orientation, psi and symmetry maps, the averaged CCF")
    xcca.set_defaults(func=_xcca)

    red = sub.add_parser("reduce", help="re-reduce a stored run; the result is stored linked to it")
    red.add_argument("run", metavar="UID", help="uid (or 5+ first characters), scan_id, or -1")
    _reduction_options(red)
    red.add_argument("--catalog", metavar="URI", help=catalog_help)
    red.set_defaults(func=_reduce)

    prox = sub.add_parser("proxy", help="0MQ proxy between RunEngines and live-reduction processes")
    prox.add_argument("--in", dest="in_address", default="127.0.0.1:5567", help="where RunEngines publish")
    prox.add_argument("--out", dest="out_address", default="127.0.0.1:5568", help="where reductions subscribe")
    prox.set_defaults(func=_proxy)

    live = sub.add_parser("live", help="live reduction in its own process, fed with documents over 0MQ")
    live.add_argument("--zmq", default="127.0.0.1:5568", help="the proxy's output HOST:PORT")
    _reduction_options(live)
    live.add_argument("--saxs-poni", help="SAXS calibration: also reduce SAXS frames (injection series: spheres per "
                                          "frame; default: the settings saved by set_saxs)")
    live.add_argument("--saxs-mask", help="SAXS mask image")
    live.add_argument("--stacking", metavar="QMIN:QMAX", help="also fit the stacking peak of anneals in this q range (A^-1)")
    live.add_argument("--catalog", metavar="URI", help="store the reduced runs in this Tiled server")
    live.add_argument("--json-dir", help="write each run's result (signal, fit) as JSON here")
    live.add_argument("--plot", action="store_true", help="live matplotlib figure")
    live.set_defaults(func=_live)

    show = sub.add_parser("show", help="one run: start metadata, streams, data keys")
    show.add_argument("run", metavar="UID", help="uid or its first characters (5 at least), "
                      "scan_id, or -1 for the last run")
    show.add_argument("--catalog", metavar="URI", help=catalog_help)
    show.set_defaults(func=_show)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
    except SystemExit as exc:       # -h, or an argument refused (one line on stderr): its status
        return exc.code
    if args.command == "shell":
        args.ipython_args = extra
    elif extra:
        print(f"trxrd {args.command}: error: unrecognized arguments: {' '.join(extra)} "
              f"(trxrd {args.command} -h shows the usage)", file=sys.stderr)
        return 2
    handler = logging.StreamHandler()
    handler.setFormatter((logging.Formatter if args.verbose else _BriefFormatter)(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, handlers=[handler])
    args.closing = contextlib.ExitStack()       # what the command opened (catalogs), closed at its end
    try:
        with args.closing:
            return args.func(args)
    except (ValueError, OSError, KeyError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"trxrd {args.command}: error: {message}", file=sys.stderr)
        return 2
    except Exception as exc:       # a bug: still one line; -v shows the traceback
        if args.verbose:
            raise
        message = str(exc).splitlines()[0] if str(exc) else ""
        print(f"trxrd {args.command}: error: internal error ({type(exc).__name__}: {message}); "
              f"trxrd -v {args.command} ... shows the traceback", file=sys.stderr)
        return 1


class _BriefFormatter(logging.Formatter):
    """Log lines without tracebacks (``trxrd -v`` keeps them)."""

    def format(self, record):
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info = record.exc_text = record.stack_info = None
        try:
            return super().format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved


class _Parser(argparse.ArgumentParser):
    """argparse's parser with its errors on one line (``trxrd CMD: error: ...``), exit status 2."""

    def error(self, message):
        first = message.splitlines()[0] if message else "bad arguments"
        self.exit(2, f"{self.prog}: error: {first} ({self.prog} -h shows the usage)\n")


MAX_NPT = 100_000     # q bins


def _npt(text: str) -> int:
    """``--npt``: an integer number of q bins, 1 .. MAX_NPT."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer number of q bins, got {text!r}") from None
    if not 1 <= n <= MAX_NPT:
        raise argparse.ArgumentTypeError(f"q bins must be from 1 to {MAX_NPT}, got {text}")
    return n


if __name__ == "__main__":
    sys.exit(main())
