"""Scalar events per second with the catalog writer subscribed, against the RunEngine alone.

One embedded catalog in a temporary folder; ``count`` of a few ophyd soft Signals, measured
three ways in the same run: the RunEngine alone (baseline), with ``CatalogWriter`` (background
thread, returns once the run is complete in the catalog) and with a plain synchronous
``TiledWriter`` at the same batch size. "run" is the wall time of ``RE(...)``; "events done" is
when the last event document was emitted, i.e. what the RunEngine felt before the stop
document. Every written run is checked to hold all its events.

EXAMPLE::

    .venv/bin/python benchmarks/catalog_rate.py --events 2000
    .venv/bin/python benchmarks/catalog_rate.py --events 2000 --batch-sizes 1 5 25 100
    .venv/bin/python benchmarks/catalog_rate.py --events 300 --exposure-ms 20   # detector-paced
    TRXRD_API_KEY=secret .venv/bin/python benchmarks/catalog_rate.py --catalog http://localhost:8000
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def _signals(n: int, exposure_s: float = 0.0):
    """``n`` soft Signals; with ``exposure_s`` the first one triggers like a detector: the
    RunEngine waits that long (in another thread's timer, GIL free) for its status."""
    import threading

    from ophyd import Signal
    from ophyd.status import Status

    class Exposing(Signal):
        def trigger(self):
            status = Status(obj=self)
            threading.Timer(exposure_s, status.set_finished).start()
            return status

    return [(Exposing if k == 0 and exposure_s > 0 else Signal)(name=f"s{k}", value=float(k))
            for k in range(n)]


def _run(RE, signals, events: int, writer_name: str, cat=None) -> dict:
    from bluesky.plans import count

    last_event = {}

    def stamp(name, doc):
        if name == "event":
            last_event["t"] = time.perf_counter()

    token = RE.subscribe(stamp)
    t0 = time.perf_counter()
    (uid,) = RE(count(signals, events))
    t_run = time.perf_counter() - t0
    RE.unsubscribe(token)
    if cat is not None:
        stored = len(cat[uid]["primary"]["s0"].read())
        if stored != events:
            raise RuntimeError(f"{writer_name}: {stored} events in the catalog, expected {events}")
    return {"writer": writer_name, "run_s": t_run, "events_done_s": last_event["t"] - t0,
            "rate": events / t_run}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--signals", type=int, default=3, help="soft Signals per event")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=None,
                        help="fixed batch sizes to compare (default: CatalogWriter's choice per run)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per configuration (best kept)")
    parser.add_argument("--catalog", metavar="URI", default=None,
                        help="a Tiled server (key from $TRXRD_API_KEY) instead of an embedded catalog")
    parser.add_argument("--exposure-ms", type=float, default=0.0,
                        help="make the first Signal wait this long per trigger, like a detector")
    args = parser.parse_args()

    from bluesky import RunEngine
    from bluesky_tiled_plugins import TiledWriter

    from trxrd.catalog import CatalogWriter, open_catalog

    signals = _signals(args.signals, args.exposure_ms / 1000)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cat = open_catalog(args.catalog, root=root,       # embedded in `tmp` unless --catalog
                           api_key=os.environ.get("TRXRD_API_KEY") or None)
        configs = [("RunEngine alone", None)]
        if args.batch_sizes is None:
            probe = CatalogWriter(cat, backup_directory=root / "spool")
            chosen = probe.batch_size_for({"num_points": args.events})
            probe.close()
            configs.append((f"CatalogWriter (batch {chosen})", lambda: CatalogWriter(
                cat, backup_directory=root / "spool")))
        batch_sizes = args.batch_sizes or [chosen]
        for b in args.batch_sizes or []:
            configs.append((f"CatalogWriter batch={b}", lambda b=b: CatalogWriter(
                cat, batch_size=b, backup_directory=root / "spool")))
        for b in batch_sizes + ([] if args.batch_sizes else [10_000]):
            configs.append((f"TiledWriter sync batch={b}", lambda b=b: TiledWriter(
                cat, batch_size=b, backup_directory=str(root / "spool"))))
        RE = RunEngine({})
        RE(__import__("bluesky.plans", fromlist=["count"]).count(signals, 10))   # warm up
        rows = []
        for label, make in configs:
            best = None
            for _ in range(args.repeat):
                writer = make() if make else None
                token = RE.subscribe(writer) if writer else None
                row = _run(RE, signals, args.events, label, cat if writer else None)
                if token is not None:
                    RE.unsubscribe(token)
                if isinstance(writer, CatalogWriter):
                    writer.close()
                best = row if best is None or row["run_s"] < best["run_s"] else best
            rows.append(best)
    base = rows[0]["rate"]
    what = f", {args.exposure_ms:g} ms trigger" if args.exposure_ms else ""
    where = args.catalog or "embedded catalog"
    print(f"count({args.signals} soft Signals{what}, {args.events}) into {where} — best of {args.repeat}")
    print(f"{'configuration':<28} {'run (s)':>8} {'events done (s)':>16} {'events/s':>9} {'vs alone':>9}")
    for r in rows:
        print(f"{r['writer']:<28} {r['run_s']:>8.2f} {r['events_done_s']:>16.2f} {r['rate']:>9.0f} "
              f"{r['rate'] / base:>9.2f}")


if __name__ == "__main__":
    main()
