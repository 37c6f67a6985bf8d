"""End-to-end frame throughput of a WAXS delay scan: the session's RunEngine driving the
simulated beamline through ophyd (delay axis, shutter, Pilatus + HDF5 plugin, I0,
attenuator, jet), with and without the catalog writer subscribed.

Baseline in the same run: ``count([pilatus], N)`` with the same detector (no delay moves,
no shutter), so the ratio shows what the pump-probe bookkeeping costs per frame.

EXAMPLE::

    .venv/bin/python benchmarks/delay_scan_rate.py --delays 20 --exposure 0.01
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--delays", type=int, default=20)
    ap.add_argument("--exposure", type=float, default=0.01, help="s per frame")
    args = ap.parse_args()

    from trxrd.simulated_devices.process import SimulatedBeamline, isolated_ca_env

    env = isolated_ca_env()
    os.environ.update(env)                  # this process's CA client, before pyepics connects
    with tempfile.TemporaryDirectory() as tmp, SimulatedBeamline("BD:", data_dir=f"{tmp}/sim", ca_env=env,
                                                                       write_roots=[tmp]):
        from bluesky.plans import count

        from trxrd.session import SessionConfig, open_session

        session = open_session(SessionConfig(prefix="BD:", data_root=f"{tmp}/data", plots=False,
                                             spot_fwhm_um=(272.0, 331.0)), verbose=False)
        RE, bl, plans = session.RE, session.beamline, session.plans
        RE.unsubscribe(session.tokens["bec"])       # its table would time stdout
        session.set_sample(name="bench", size_nm=7.0, ligand="OLA", solvent="dodecane", sigma_cm2=4e-14)
        pilatus = bl.pilatus
        pilatus.exposure_s = args.exposure
        delays = plans["log_delays"](-100, 900, args.delays)     # stage only (no generator)
        bl.jet.start().wait(30)
        RE(count([pilatus], 3))                 # warm up: file plugin, connections, catalog

        rows = []
        for label, plan, frames in (
                ("count([pilatus]) + catalog", lambda: count([pilatus], 2 * args.delays), 2 * args.delays),
                ("delay_scan + catalog", lambda: plans["delay_scan"]([pilatus], delays), 2 * args.delays)):
            t0 = time.perf_counter()
            RE(plan())
            rows.append((label, frames / (time.perf_counter() - t0)))
        RE.unsubscribe(session.tokens["catalog"])
        t0 = time.perf_counter()
        RE(plans["delay_scan"]([pilatus], delays))
        rows.append(("delay_scan, no catalog", 2 * args.delays / (time.perf_counter() - t0)))
        session.close()

    print(f"{2 * args.delays} frames per run, exposure {args.exposure * 1e3:.0f} ms, Pilatus 300K shape")
    for label, fps in rows:
        print(f"  {label:32s} {fps:6.1f} frames/s   ({fps / rows[0][1]:.2f} x count)")


if __name__ == "__main__":
    main()
