"""``trxrd`` command line.

EXAMPLE::

    trxrd sim --prefix TRX: --data-dir /tmp/trx-data      # serve the simulated beamline
    trxrd sim --list-pvs                                   # every PV with its doc
    trxrd sim --print-config                               # the ground truth in force
    trxrd demo                                             # short pump-probe dry run
    trxrd runs --limit 10                                  # recent runs, newest first
    trxrd show -1                                          # last run: metadata and streams
    trxrd show 3f2a9c1e --catalog http://tiled:8000        # by uid prefix (or scan_id)
    trxrd shell [--sim]                                    # IPython beamline session (dry run)
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from datetime import datetime
from pathlib import Path


def _sim(args: argparse.Namespace) -> int:
    from simulated_devices.iocs.launcher import build_beamline, list_pvs, serve
    from simulated_devices.physics.config import dump_config

    model, groups, pvdb = build_beamline(args.prefix, args.config, args.data_dir, args.detector)
    if args.print_config:
        print(dump_config(model.cfg))
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

    return run_demo(out_dir=args.out, detector=args.detector, json_path=args.json)


def _catalog(args: argparse.Namespace):
    """The catalog for a read-only command: the embedded one must exist already."""
    from acquisition.catalog import catalog_dir, open_catalog

    if not args.verbose:   # the embedded server's start-up chatter
        import tiled.server.app   # noqa: F401  (sets its logger to INFO on import)

        logging.getLogger("tiled.server.app").setLevel(logging.WARNING)
        warnings.filterwarnings("ignore", message=".*starlette.testclient.*")
    if args.catalog is None and not os.environ.get("TRXRD_CATALOG"):
        database = catalog_dir() / "catalog.db"
        if not database.exists():
            raise ValueError(f"no catalog at {database} (set TRXRD_DATA or --catalog)")
    return open_catalog(args.catalog)


def _sample_name(start: dict) -> str:
    sample = start.get("sample")
    if isinstance(sample, dict):
        sample = sample.get("name")
    return str(sample) if sample not in (None, "") else "-"


def _stream_events(run, stream: str) -> int:
    """Events in *stream*: from the stop document, else (run still open) the rows written."""
    from acquisition.catalog import events_written

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
    rows = []
    for run in cat.values()[-1:-(args.limit + 1):-1]:
        start, stop = run.metadata.get("start", {}), run.metadata.get("stop") or {}
        when = datetime.fromtimestamp(start["time"]).strftime("%Y-%m-%d %H:%M:%S") if "time" in start else "-"
        rows.append((when, start.get("uid", "?")[:8], str(start.get("plan_name", "-")),
                     _sample_name(start), stop.get("exit_status", "running"), str(_event_count(run))))
    if not rows:
        print("no runs in the catalog")
        return 0
    header = ("start", "uid", "plan", "sample", "exit", "events")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(f"{cell:>{w}}" if i == 5 else f"{cell:<{w}}"
                        for i, (cell, w) in enumerate(zip(row, widths))).rstrip())
    return 0


def _lookup(cat, key: str):
    try:
        if key.lstrip("-").isdigit():
            return cat[int(key)]       # -1: last run; 12: scan_id 12
        return cat[key]                # uid or uid prefix (5 characters at least)
    except (KeyError, IndexError):
        raise ValueError(f"no run matches {key!r}") from None


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
          f"{stop.get('exit_status', 'running')}")
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


def _shell(args) -> int:
    profile = Path(__file__).resolve().parents[1] / "profiles" / "profile_trxrd"
    if not (profile / "startup").is_dir():
        raise OSError(f"IPython profile not found at {profile}")
    argv = ["--profile-dir", str(profile), *args.ipython_args]

    import IPython

    if not args.sim:
        IPython.start_ipython(argv=argv)
        return 0
    from acquisition.settings import DEFAULT_PREFIX, data_dir
    from simulated_devices.process import SimulatedBeamline, isolated_ca_env

    from simulated_devices.physics.config import load_config

    os.environ.update(isolated_ca_env())          # its own loopback port: no clash with others
    os.environ["TRXRD_PREFIX"] = DEFAULT_PREFIX
    s = load_config()["sample"]                   # the simulated sample, unless one was saved
    sample_file = data_dir() / "sim-sample.json"
    sample_file.write_text(json.dumps({k: s[k] for k in ("name", "size_nm", "ligand", "solvent", "sigma_cm2")}))
    os.environ.setdefault("TRXRD_SAMPLE", str(sample_file))
    with SimulatedBeamline(DEFAULT_PREFIX, data_dir=data_dir() / "sim"):
        IPython.start_ipython(argv=argv)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trxrd", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser("sim", help="run the simulated beamline IOCs until Ctrl-C")
    sim.add_argument("--prefix", default="TRX:", help="PV prefix (default TRX:)")
    sim.add_argument("--config", help="sample file (TOML) overriding the documented defaults")
    sim.add_argument("--data-dir", default="./data/detectors",
                     help="where detector files, PONI files and masks are written")
    sim.add_argument("--detector", choices=("pilatus300k", "pilatus2m"),
                     help="WAXS detector shape (default from the sample file: pilatus300k)")
    sim.add_argument("--list-pvs", action="store_true", help="print every PV with its doc and exit")
    sim.add_argument("--print-config", action="store_true", help="print the sample file in force and exit")
    sim.set_defaults(func=_sim)

    demo = sub.add_parser("demo", help="dry-run campaign: fluence calibration, fluence scan, delay scan, "
                                       "live reduction, fits vs the simulator's truth")
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

    show = sub.add_parser("show", help="one run: start metadata, streams, data keys")
    show.add_argument("run", metavar="UID", help="uid or its first characters (5 at least), "
                      "scan_id, or -1 for the last run")
    show.add_argument("--catalog", metavar="URI", help=catalog_help)
    show.set_defaults(func=_show)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "shell":
        args.ipython_args = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (ValueError, OSError) as exc:
        print(f"trxrd {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
