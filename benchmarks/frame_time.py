"""Time per WAXS frame, acquire -> file closed, for the Pilatus 300K and 2M shapes.

For each shape: start ``trxrd sim``, then time N single-frame acquisitions in Single
file mode (pyepics put-with-callback on Acquire returns after the HDF5 file is closed).
The baseline in the same run is writing the same frame with h5py directly, so the ratio
shows the IOC's overhead over the bare file write.

EXAMPLE::

    .venv/bin/python benchmarks/frame_time.py --frames 20
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np


def bench(detector: str, frames: int, exposure: float, ca_env: dict) -> dict:
    import epics
    import h5py

    from trxrd.simulated_devices.process import SimulatedBeamline

    with tempfile.TemporaryDirectory() as tmp, SimulatedBeamline(f"B{detector[7:].upper()}:", data_dir=tmp,
                                                                    detector=detector, ca_env=ca_env) as sim:
        p = sim.prefix
        for pv, v in (("JET:Run", 1), ("PIL:HDF1:EnableCallbacks", 1), ("PIL:HDF1:FileWriteMode", 0),
                      ("PIL:HDF1:AutoSave", 1), ("PIL:HDF1:FileName", "bench"),
                      ("PIL:cam1:ImageMode", 0), ("PIL:cam1:AcquireTime", exposure),
                      ("PIL:cam1:AcquirePeriod", 0.0)):
            epics.caput(p + pv, v, wait=True)
        epics.caput(p + "PIL:cam1:Acquire", 1, wait=True, timeout=60)   # warm caches
        times = []
        for _ in range(frames):
            t0 = time.perf_counter()
            epics.caput(p + "PIL:cam1:Acquire", 1, wait=True, timeout=60)
            times.append(time.perf_counter() - t0)
        fname = epics.caget(p + "PIL:HDF1:FullFileName_RBV", as_string=True, use_monitor=False)
        with h5py.File(fname, "r") as f:
            frame = f["/entry/data/data"][0]
        base = []
        for k in range(frames):
            t0 = time.perf_counter()
            with h5py.File(os.path.join(tmp, f"base_{k}.h5"), "w", libver="latest") as f:
                f.create_dataset("/entry/data/data", data=frame[None], chunks=(1, *frame.shape))
            base.append(time.perf_counter() - t0)
    t = np.median(times)
    return {"detector": detector, "shape": frame.shape, "median_s": t, "overhead_s": t - exposure,
            "h5py_write_s": float(np.median(base)), "ratio_vs_h5py": (t - exposure) / np.median(base)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--exposure", type=float, default=0.01, help="AcquireTime (s)")
    args = parser.parse_args()
    from trxrd.simulated_devices.process import isolated_ca_env

    env = isolated_ca_env()
    os.environ.update(env)                  # this process's CA client, before pyepics connects
    print(f"{'detector':12s} {'shape':>12s} {'acquire->closed':>16s} {'minus exposure':>15s} "
          f"{'h5py write':>11s} {'ratio':>6s}")
    for det in ("pilatus300k", "pilatus2m"):
        r = bench(det, args.frames, args.exposure, env)
        print(f"{r['detector']:12s} {str(r['shape']):>12s} {r['median_s'] * 1e3:13.1f} ms "
              f"{r['overhead_s'] * 1e3:12.1f} ms {r['h5py_write_s'] * 1e3:8.1f} ms {r['ratio_vs_h5py']:6.1f}")


if __name__ == "__main__":
    main()
