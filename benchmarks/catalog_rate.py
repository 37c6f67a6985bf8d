"""Scalar events per second with the catalog writer subscribed, against the RunEngine alone.

``bench()`` (and ``--json``): a 2,000-event ``count`` of 3 soft Signals, side by side in one
run, medians over a few interleaved repeats: the RunEngine alone, the RunEngine + the old
in-process embedded catalog (``CatalogWriter`` on an in-process Tiled app: the writing, its
validation and SQL share the RunEngine's interpreter) and the RunEngine + the default setup
(``CatalogWriter`` on a ``CatalogProcess``: a Tiled server child process on 127.0.0.1 that
writes; the RunEngine's process only journals and hands over documents). Every written run is
checked to hold all its events and ``RE(...)`` returns only once the run is complete.

The table (default): one embedded catalog in a temporary folder, measured several ways: the
RunEngine alone (baseline), with ``CatalogWriter`` to the catalog process, with
``CatalogWriter`` in-process, and with a plain synchronous ``TiledWriter`` at the same batch
size. "run" is the wall time of ``RE(...)``; "events done" is when the last event document was
emitted, i.e. what the RunEngine felt before the stop document.

EXAMPLE::

    .venv/bin/python benchmarks/catalog_rate.py --json            # bench(): the ratios, < 2 min
    .venv/bin/python benchmarks/catalog_rate.py --json --quick    # < 40 s
    .venv/bin/python -c "from benchmarks.catalog_rate import bench; print(bench(quick=True))"
    .venv/bin/python benchmarks/catalog_rate.py --events 2000
    .venv/bin/python benchmarks/catalog_rate.py --events 2000 --batch-sizes 1 5 25 100
    .venv/bin/python benchmarks/catalog_rate.py --events 300 --exposure-ms 20   # detector-paced
    TRXRD_API_KEY=secret .venv/bin/python benchmarks/catalog_rate.py --catalog http://localhost:8000
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))     # trxrd from this checkout


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


def _process_cpu_s(pid: int, thread: int | None = None) -> float:
    """User + system CPU seconds of process *pid* (or of its *thread*) so far (Linux /proc)."""
    stat = Path(f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat")
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench(quick: bool = False) -> dict:
    """RunEngine alone vs + the in-process embedded catalog vs + the catalog server process, for
    a 2,000-event scalar scan (events/s, medians of 1 (quick) or 3 interleaved repeats).

    EXAMPLE::

        from benchmarks.catalog_rate import bench
        bench(quick=True)
        # {'events': 2000, 'runengine_alone': 560.0, 'embedded_catalog': 380.0,
        #  'tiled_server_process': 540.0, 'ratio_embedded': 0.68, 'ratio_server': 0.96, 'bound': '...'}
    """
    from bluesky import RunEngine
    from bluesky.plans import count

    from trxrd.catalog import CatalogProcess, CatalogWriter, open_catalog

    events, repeats = 2000, 1 if quick else 3
    signals = _signals(3)
    rates: dict[str, list] = {"alone": [], "embedded": [], "process": []}
    cpu: dict[str, list] = {"alone": [], "process": [], "child": [], "handoff": []}
    with tempfile.TemporaryDirectory() as tmp:
        import threading

        root = Path(tmp)
        started: dict = {}        # the child starts (and creates the catalog) while this process imports
        starter = threading.Thread(target=lambda: started.update(process=CatalogProcess(root=root)))
        starter.start()
        import tiled.server.app  # noqa: F401

        starter.join()
        process = started["process"]
        try:
            embedded = open_catalog(root=root)       # the same catalog, in-process (one writer at a time)
            served = process.catalog()
            RE = RunEngine({})
            RE(count(signals, 10))                                     # warm up
            process_writer = CatalogWriter(process, backup_directory=root / "spool")
            handoff_threads = (process_writer._thread.native_id, process._reader.native_id)

            def handoff_cpu_s():     # the writer thread (journal, hand-off) and the reply reader
                return sum(_process_cpu_s(os.getpid(), t) for t in handoff_threads)
            for _ in range(repeats):
                for config in ("alone", "embedded", "process"):
                    writer = {"alone": None, "process": process_writer,
                              "embedded": None}[config]
                    if config == "embedded":
                        writer = CatalogWriter(embedded, backup_directory=root / "spool")
                    token = RE.subscribe(writer) if writer else None
                    cpu0, child0, hand0 = time.process_time(), _process_cpu_s(process.pid), handoff_cpu_s()
                    row = _run(RE, signals, events, config,
                               {"alone": None, "embedded": embedded, "process": served}[config])
                    if config in cpu:
                        cpu[config].append(time.process_time() - cpu0)
                    if config == "process":
                        cpu["child"].append(_process_cpu_s(process.pid) - child0)
                        cpu["handoff"].append(handoff_cpu_s() - hand0)
                    if token is not None:
                        RE.unsubscribe(token)
                    if config == "embedded":
                        writer.close()
                    rates[config].append(row["rate"])
            process_writer.close()
        finally:
            process.close()
    alone, inproc, proc = (statistics.median(rates[k]) for k in ("alone", "embedded", "process"))
    per_event_ms = {k: 1000 * statistics.median(v) / events for k, v in cpu.items()}
    bound = (f"CPU share: the RunEngine needs {per_event_ms['alone']:.2f} ms CPU/event (one core), the hand-off "
             f"in its process {per_event_ms['handoff']:.3f} ms/event, the catalog process "
             f"{per_event_ms['child']:.2f} ms/event on another core, which comes out of the RunEngine's share "
             f"when the {os.cpu_count()} CPUs are busy (load {os.getloadavg()[0]:.1f}); embedded_catalog = the old "
             f"in-process writer (CatalogWriter on open_catalog(root=...)), all of it on the RunEngine's core")
    return {"events": events, "runengine_alone": round(alone, 1), "embedded_catalog": round(inproc, 1),
            "tiled_server_process": round(proc, 1), "ratio_embedded": round(inproc / alone, 3),
            "ratio_server": round(proc / alone, 3), "bound": bound}


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
    parser.add_argument("--json", action="store_true", help="print bench() as JSON (2000 events, 3 repeats)")
    parser.add_argument("--quick", action="store_true", help="with --json: one repeat (< 40 s)")
    args = parser.parse_args()
    if args.json:
        print(json.dumps(bench(quick=args.quick), indent=1))
        return

    from bluesky import RunEngine
    from bluesky_tiled_plugins import TiledWriter

    from trxrd.catalog import CatalogProcess, CatalogWriter, open_catalog

    signals = _signals(args.signals, args.exposure_ms / 1000)
    process = None
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cat = open_catalog(args.catalog, root=root,       # embedded in `tmp` unless --catalog
                           api_key=os.environ.get("TRXRD_API_KEY") or None)
        configs = [("RunEngine alone", None)]
        if args.catalog is None:
            process = CatalogProcess(root=root / "served")
            configs.append(("CatalogWriter -> process", lambda: CatalogWriter(
                process, backup_directory=root / "spool")))
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
        served = process.catalog() if process else None
        RE = RunEngine({})
        RE(__import__("bluesky.plans", fromlist=["count"]).count(signals, 10))   # warm up
        rows = []
        for label, make in configs:
            best = None
            for _ in range(args.repeat):
                writer = make() if make else None
                token = RE.subscribe(writer) if writer else None
                check = None if writer is None else served if label.endswith("process") else cat
                row = _run(RE, signals, args.events, label, check)
                if token is not None:
                    RE.unsubscribe(token)
                if isinstance(writer, CatalogWriter):
                    writer.close()
                best = row if best is None or row["run_s"] < best["run_s"] else best
            rows.append(best)
        if process is not None:
            process.close()
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
