"""Dry-run demo of the simulated beamline (driven with pyepics, reduced with pyFAI).

Starts ``trxrd sim`` on an isolated loopback port, starts the jet, opens the attenuator,
and at a few pump-probe delays takes pump-off / pump-on frames (I0-normalised), integrates
them with pyFAI from the detector's PONI file and mask, and prints the relative change of
the (112) peak area next to the model's truth.

EXAMPLE::

    trxrd demo --out demo-output
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

DELAYS_PS = (-200.0, -50.0, 0.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 3000.0)
PAIRS_PER_DELAY = 2
EXPOSURE_S = 0.1


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def run_demo(out_dir: str | Path = "demo-output", detector: str = "pilatus300k") -> int:
    from simulated_devices.process import SimulatedBeamline, isolated_ca_env

    os.environ.update(isolated_ca_env())          # before pyepics creates its context
    import epics
    import h5py

    from reduction.integrate import AzimuthalIntegration
    from reduction.peaks import window_integral
    from simulated_devices.physics.beamline import BeamlineModel, window_for
    from simulated_devices.physics.config import load_config

    out = Path(out_dir).resolve()
    t_start = time.monotonic()
    print(f"starting the simulated beamline (data in {out}) ...", flush=True)
    with SimulatedBeamline("TRX:", data_dir=out, detector=detector) as sim:
        p = sim.prefix
        cfg = load_config()
        d = cfg["delay"]

        def caput(pv, value, timeout=30.0):
            if not epics.caput(p + pv, value, wait=True, timeout=timeout):
                raise RuntimeError(f"put to {p + pv} did not complete")

        def acquire():
            caput("PIL:cam1:Acquire", 1)
            fname = epics.caget(p + "PIL:HDF1:FullFileName_RBV", as_string=True, use_monitor=False)
            i0 = epics.caget(p + "I0:Current_RBV", use_monitor=False)
            with h5py.File(fname, "r") as f:
                return f["/entry/data/data"][-1], i0

        print("jet on, attenuator to full transmission, detector to single-file mode", flush=True)
        caput("JET:Run", 1)
        _wait(lambda: epics.caget(p + "JET:Flowing_RBV", use_monitor=False) == 1, 10, "jet flow")
        caput("WP:m1", cfg["laser"]["theta0_deg"])
        for pv, v in (("PIL:HDF1:EnableCallbacks", 1), ("PIL:HDF1:FileWriteMode", 0),
                      ("PIL:HDF1:AutoSave", 1), ("PIL:HDF1:FileName", "demo"),
                      ("PIL:cam1:ImageMode", 0), ("PIL:cam1:AcquireTime", EXPOSURE_S),
                      ("PIL:cam1:AcquirePeriod", 0.0)):
            caput(pv, v)
        power = epics.caget(p + "PM:Power_RBV", use_monitor=False)
        integ = AzimuthalIntegration(sim.waxs_dir / "waxs.poni", mask=sim.waxs_dir / "waxs_mask.edf", npt=1000)
        window = window_for("112", cfg)

        model = BeamlineModel(cfg, waxs_detector=detector)   # the truth, from the same sample file
        model.jet.run = True
        model.jet.advance(10.0)
        model.waveplate_deg = cfg["laser"]["theta0_deg"]
        print(f"power {power * 1e3:.1f} mW -> fluence {model.fluence_mj_cm2():.2f} mJ/cm^2, "
              f"<N> = {model.excitations():.0f} (threshold {cfg['pump_probe']['threshold_excitations']:.0f})")
        print(f"(112) window {window[0]:.3f}-{window[1]:.3f} A^-1; {PAIRS_PER_DELAY} pump-off/pump-on pairs "
              f"of {EXPOSURE_S} s per delay\n")
        print(f"{'delay (ps)':>10}  {'dA/A measured':>14}  {'+-':>6}  {'dA/A model':>11}")
        rows = []
        stage_reach_ps = 2 * (d["stage_high_mm"] - d["stage_time_zero_mm"]) * 1e-3 / 299792458.0 * 1e12
        n_frames = 0
        for delay in DELAYS_PS:
            optical = min(delay, 0.9 * stage_reach_ps)
            electronic = (delay - optical) * 1e-12
            caput("DG:Delay", max(electronic, 0.0))
            caput("DG:Enable", 1 if electronic > 0 else 0)
            caput("DLY:m1", d["stage_time_zero_mm"] + optical * 1e-12 * 299792458.0 / d["n_passes"] * 1e3)
            ratios = []
            for k in range(PAIRS_PER_DELAY):
                areas = []
                for shutter in (0, 1):
                    caput("LSR:Shutter", shutter)
                    frame, i0 = acquire()
                    q, i = integ.integrate(frame, monitor=i0)
                    areas.append(window_integral(q, i, *window))
                    n_frames += 1
                ratios.append((areas[1] - areas[0]) / areas[0])
            caput("LSR:Shutter", 0)
            truth = model.relative_area_change(*window, delay_ps=delay)
            mean, err = float(np.mean(ratios)), float(np.std(ratios, ddof=1) / np.sqrt(len(ratios)))
            rows.append((delay, mean, err, truth))
            print(f"{delay:10.0f}  {mean:14.4f}  {err:6.4f}  {truth:11.4f}", flush=True)
        caput("JET:Run", 0)
    worst = max(abs(m - t) for _, m, _, t in rows)
    print(f"\n{n_frames} frames in {time.monotonic() - t_start:.1f} s; largest |measured - model| = {worst:.4f}")
    return 0
