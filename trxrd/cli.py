"""``trxrd`` command line.

EXAMPLE::

    trxrd sim --prefix TRX: --data-dir /tmp/trx-data      # serve the simulated beamline
    trxrd sim --list-pvs                                   # every PV with its doc
    trxrd sim --print-config                               # the ground truth in force
    trxrd demo                                             # short pump-probe dry run
"""
from __future__ import annotations

import argparse
import logging
import sys


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

    return run_demo(out_dir=args.out, detector=args.detector)


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

    demo = sub.add_parser("demo", help="dry run: pump-probe frames at a few delays, reduced with pyFAI")
    demo.add_argument("--out", default="demo-output", help="folder for the demo's data")
    demo.add_argument("--detector", choices=("pilatus300k", "pilatus2m"), default="pilatus300k")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (ValueError, OSError) as exc:
        print(f"trxrd {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
