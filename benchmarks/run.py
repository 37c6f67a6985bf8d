"""``make bench``: every benchmark of this folder in one run, each in its own process (so each
peak memory is its own), the figures side by side in ``benchmarks/results.json`` and a table.

Sections (module: what it measures):

- ``integrate_rate``: ``integrate_fps``: trxrd's engine vs pyFAI's methods vs the memory-read floor,
  Pilatus 2M and 300K, no splitting and bbox;
- ``live_chain_rate``: ``live_chain``: streamed Pilatus 2M frames through the live chain vs the
  bare engine, frame-to-result latency, backlog;
- ``catalog_rate``: ``ingest_events_per_s``: a 2,000-event scalar scan, RunEngine alone vs with
  the catalog (embedded and Tiled server process);
- ``kinetics_rate``: ``kinetics_refit_ms``; ``saxs_fit_rate``, ``xcca_rate``: per-frame times;
- ``gpu_rate``: ``integrate_gpu_fps``: ``engine="cuda"`` on Pilatus 2M frames from host memory vs
  the CPU engine and the host-to-GPU copy, where CuPy sees a CUDA GPU (else "not measured").

Targets are printed next to the figures, never asserted; a section that fails is recorded with
its error and the run exits 1 after writing everything else.

EXAMPLE::

    make bench                                     # < 10 min
    .venv/bin/python benchmarks/run.py --quick     # shorter windows, ~3 min
    .venv/bin/python benchmarks/run.py --only integrate_rate kinetics_rate
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SECTIONS = ("integrate_rate", "live_chain_rate", "catalog_rate", "kinetics_rate", "saxs_fit_rate", "xcca_rate",
            "gpu_rate")
KEYS = {"integrate_rate": "integrate_fps", "live_chain_rate": "live_chain", "catalog_rate": "ingest_events_per_s",
        "kinetics_rate": "kinetics", "saxs_fit_rate": "saxs", "xcca_rate": "xcca", "gpu_rate": "integrate_gpu_fps"}
MARK = "BENCH-JSON "
# The child reports its own peak RSS (servers it starts are not counted).
CHILD = ("import json, resource, sys; import {0} as m; r = m.bench(quick=sys.argv[1] == '1'); "
         "r['_peak_rss_mib'] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1); "
         f"print({MARK!r} + json.dumps(r))")
TIMEOUT_S = 300


def machine() -> dict:
    import numpy

    info = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "numpy": numpy.__version__, "load_avg_at_start": [round(v, 2) for v in os.getloadavg()]}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        info["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (OSError, ValueError):
        pass
    from importlib import metadata

    for name in ("pyFAI", "numba", "bluesky", "tiled", "h5py"):
        try:
            info[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            info[name] = None
    return info


def run_section(module: str, quick: bool) -> dict:
    """One benchmark in a child process: its figures, wall time and peak RSS (MiB, Linux KiB)."""
    with tempfile.TemporaryFile("w+") as err:
        t0 = time.monotonic()
        child = subprocess.Popen([sys.executable, "-c", CHILD.format(module), "1" if quick else "0"], cwd=HERE,
                                 stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            out, _ = child.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            return {"error": f"did not finish within {TIMEOUT_S} s"}
        wall = time.monotonic() - t0
        err.seek(0)
        tail = err.read()[-2000:]
    line = next((ln for ln in reversed(out.splitlines()) if ln.startswith(MARK)), None)
    if child.returncode != 0 or line is None:
        return {"error": f"exit {child.returncode}: {tail.strip().splitlines()[-1] if tail.strip() else 'no output'}"}
    result = json.loads(line[len(MARK):])
    result["_wall_s"] = round(wall, 1)
    return result


def table(results: dict) -> list[str]:
    lines = []
    integ = results.get("integrate_fps", {})
    if integ and "error" not in integ:
        lines.append(f"{'integrate (frames/s)':<26}{'trxrd':>9}{'pyFAI best':>12}{'method':>22}{'floor':>9}"
                     f"{'x pyFAI':>9}{'of floor':>10}")
        for key, v in integ.items():
            if isinstance(v, dict):
                lines.append(f"{key:<26}{v['trxrd']:>9.1f}{v['pyfai_best']:>12.1f}{v['pyfai_method']:>22}"
                             f"{v['floor']:>9.0f}{v['ratio_vs_pyfai']:>9.2f}{100 * v['fraction_of_floor']:>9.1f}%")
    for key in ("live_chain", "ingest_events_per_s", "kinetics", "saxs", "xcca", "integrate_gpu_fps"):
        v = results.get(key)
        if v is not None:
            shown = {k: x for k, x in v.items() if not isinstance(x, (dict, list))}
            lines.append(f"{key:<26}" + ", ".join(f"{k} {x}" for k, x in shown.items()))
            lines += [f"{'  ' + k:<26}" + ", ".join(f"{n} {x}" for n, x in d.items())
                      for k, d in v.items() if key == "integrate_gpu_fps" and isinstance(d, dict)]
    return lines


def targets(results: dict) -> list[str]:
    """The issue's targets against the figures (printed, never asserted)."""
    out = []

    def say(what, ok):
        out.append(f"  {'met    ' if ok else 'NOT met'}  {what}")

    integ = results.get("integrate_fps", {})
    two = integ.get("pilatus2m_nosplit")
    if isinstance(two, dict):
        say(f"2M no split >= 10x pyFAI ({two['ratio_vs_pyfai']}x)", two["ratio_vs_pyfai"] >= 10)
        say(f"2M no split >= 50 % of the floor ({100 * two['fraction_of_floor']:.0f} %)", two["fraction_of_floor"] >= 0.5)
    bbox = integ.get("pilatus2m_bbox")
    if isinstance(bbox, dict):
        say(f"2M bbox >= 5x pyFAI's bbox ({bbox['ratio_vs_pyfai']}x)", bbox["ratio_vs_pyfai"] >= 5)
    live = results.get("live_chain", {})
    if "ratio_vs_engine" in live:
        say(f"live chain >= 0.7x the bare engine ({live['ratio_vs_engine']}x)", live["ratio_vs_engine"] >= 0.7)
        say(f"live chain median latency < 1 s ({live['latency_median_s']} s)", live["latency_median_s"] < 1.0)
    ingest = results.get("ingest_events_per_s", {})
    for key in ("ratio_embedded", "ratio_server"):
        if key in ingest:
            say(f"ingest {key} >= 0.9 ({ingest[key]})", ingest[key] >= 0.9)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter timing windows (a smoke run)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--out", type=Path, default=HERE / "results.json", help="JSON output")
    args = parser.parse_args()
    results: dict = {"machine": machine(), "quick": args.quick}
    t_start = time.monotonic()
    for module in args.only or SECTIONS:
        print(f"[bench] {module} ...", flush=True)
        section = run_section(module, args.quick)
        key = KEYS[module]
        if key == "kinetics" and "kinetics_refit_ms" in section:
            results["kinetics_refit_ms"] = section["kinetics_refit_ms"]
        results[key] = section
        print(f"[bench] {module}: {'ERROR ' + section['error'] if 'error' in section else 'done'} "
              f"({section.get('_wall_s', '?')} s)", flush=True)
    results["total_s"] = round(time.monotonic() - t_start, 1)
    args.out.write_text(json.dumps(results, indent=1))
    print("\n".join(table(results)))
    print("targets:")
    print("\n".join(targets(results)))
    print(f"written {args.out} in {results['total_s']} s")
    return 1 if any(isinstance(v, dict) and "error" in v for v in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
