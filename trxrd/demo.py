"""The dry-run campaign (``make demo`` / ``trxrd demo``): the simulated beamline, the profile's
devices and plans, and live reduction, end to end.

1. Start ``trxrd sim`` on an isolated loopback port and open a beamline session on it
   (catalog, RunEngine, devices) with live reduction: frames -> I(q) -> dI -> fits.
2. Calibrate the fluence attenuator (Malus-law fit of the power meter).
3. Fluence scan at +40 ps: melted fraction vs <N> and the melting threshold.
4. Delay scan from -200 ps to 10 ns (dense near time zero, logarithmic after) well above
   the threshold: bi-exponential recovery with the instrument response, t0 free.
5. Print fitted tau1, tau2, t0 and threshold next to the simulator's truth; write PNGs
   (difference map, kinetics with fit, fluence curve) and ``summary.json`` (``truth``, ``fit``)
   into the output folder. Every run stays in the catalog under ``<out>/data``.

EXAMPLE::

    trxrd demo --out demo-output --json demo-output/summary.json
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np
from bluesky import plan_stubs as bps

FLUENCE_DELAY_PS = 40.0
EXPOSURE_S = 0.1
NUM_FLUENCES = 12
DENSE = (-200.0, 200.0, 17)             # start, stop (ps), points: every 25 ps around t0
LOG_TAIL = (10_000.0, 24)               # stop (ps), points after the dense part
REPEATS = 2
# The (112) reflection of chalcopyrite CuInSe2 from the literature lattice (a, c in A), not the
# simulator's: the q window of the signal is the reflection +- 2 Scherrer FWHM of the nominal size.
NOMINAL_LATTICE = (5.78, 11.62)


def window_112(size_nm: float) -> tuple[float, float]:
    """q window (A^-1) of the (112) reflection of CuInSe2 NCs of *size_nm*."""
    from .reduction.peaks import reflection_q_tetragonal

    q = reflection_q_tetragonal((1, 1, 2), *NOMINAL_LATTICE)
    fwhm = 2 * np.pi * 0.9 / (size_nm * 10.0)
    return (round(q - 2 * fwhm, 3), round(q + 2 * fwhm, 3))


def _truth(cfg: dict, time_zero_mm: float) -> dict:
    """The simulator's ground truth in the units of the fit (t0 on the delay axis of the session,
    whose time zero is *time_zero_mm*)."""
    from .simulated_devices.physics import laser

    d, pp = cfg["delay"], cfg["pump_probe"]
    t0 = 0.0 - float(laser.stage_delay_ps(time_zero_mm, d["stage_time_zero_mm"], d["n_passes"]))
    return {"tau1_ps": pp["tau1_ps"], "tau2_ps": pp["tau2_ps"], "t0_ps": t0, "irf_fwhm_ps": pp["irf_fwhm_ps"],
            "threshold_excitations": pp["threshold_excitations"], "a1_share": pp["a1"],
            "time_zero_mm": d["stage_time_zero_mm"]}


def _row(name, fit_value, err, truth, unit, fmt="{:.1f}"):
    fitted = "-" if fit_value is None else fmt.format(fit_value)
    error = "" if err is None else fmt.format(err)
    return f"  {name:<22} {fitted:>10} {('+- ' + error) if error else '':>12} {fmt.format(truth):>10}  {unit}"


def _save_figures(out: Path, delay_result, fluence_result) -> list[Path]:
    from matplotlib.figure import Figure

    from .reduction.fluence import melted_fraction
    from .reduction.plots import plot_difference_map, plot_fluence, plot_kinetics

    paths = []
    for name, draw in (
        ("difference_map.png", lambda ax: plot_difference_map(
            ax, delay_result.q_inv_angstrom, delay_result.x, delay_result.diff.d_intensity)),
        ("kinetics.png", lambda ax: plot_kinetics(
            ax, delay_result.x, delay_result.signal, delay_result.signal_err, delay_result.fit)),
        ("fluence.png", lambda ax: plot_fluence(
            ax, fluence_result.x, *melted_fraction(fluence_result.signal, fluence_result.signal_err),
            fluence_result.fit)),
    ):
        fig = Figure(figsize=(7, 4.5))
        draw(fig.add_subplot())
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        paths.append(out / name)
    return paths


def run_demo(out_dir: str | Path = "demo-output", detector: str = "pilatus300k",
             json_path: str | Path | None = None) -> int:
    """The campaign (see module); returns the exit status. An entry point: it sets this
    process's Channel Access variables for the simulator it starts."""
    from .simulated_devices.physics.config import load_config
    from .simulated_devices.process import SimulatedBeamline, isolated_ca_env

    env = isolated_ca_env()
    os.environ.update(env)                        # before pyepics / ophyd connect
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    root = out / "data"
    t_start = time.monotonic()
    cfg = load_config()
    print(f"trxrd demo: simulated beamline ({detector}), data and catalog in {root}", flush=True)
    with SimulatedBeamline("TRX:", data_dir=out / "sim", detector=detector, ca_env=env) as sim:
        return _campaign(sim, cfg, out, root, t_start, json_path)


def _campaign(sim, cfg, out, root, t_start, json_path) -> int:
    from .acquisition.plans.delays import dense_then_log
    from .session import SessionConfig, open_session

    logging.getLogger("tiled").setLevel(logging.WARNING)
    s, laser = cfg["sample"], cfg["laser"]
    session = open_session(SessionConfig(prefix=sim.prefix, data_root=root, plots=False,
                                         spot_fwhm_um=(laser["spot_fwhm_x_um"], laser["spot_fwhm_y_um"])),
                           verbose=False)
    RE, cat, bl, plans = session.RE, session.catalog, session.beamline, session.plans
    RE.unsubscribe(session.tokens["bec"])                 # the progress bars and this log suffice
    session.set_sample(name=s["name"], size_nm=s["size_nm"], ligand=s["ligand"], solvent=s["solvent"],
                       sigma_cm2=s["sigma_cm2"])
    bl.pilatus.exposure_s = EXPOSURE_S
    window = window_112(s["size_nm"])
    session.reduction.set(sim.waxs_dir / "waxs.poni", mask=sim.waxs_dir / "waxs_mask.edf",
                          windows=[window], model="biexp")      # saved: `trxrd reduce` uses it
    live = session.reduction.live
    integrator, pump_probe = live.integrator, live.pump_probe
    time_zero_mm = bl.delay.time_zero_mm.get()
    truth = _truth(cfg, time_zero_mm)
    print(f"live reduction: (112) window {window[0]:.3f}-{window[1]:.3f} A^-1, PONI {sim.waxs_dir / 'waxs.poni'}")
    print(f"pump spot {bl.att.spot_fwhm_x_um.get():g} x {bl.att.spot_fwhm_y_um.get():g} um (the simulator's "
          f"sample file plays the knife-edge measurement)")
    print(f"time zero used: {time_zero_mm:.4f} mm (the device's default, not calibrated); the simulator's "
          f"true time zero ({truth['time_zero_mm']:.4f} mm) is at {truth['t0_ps']:+.1f} ps on this axis, "
          f"and the fit's t0 should find it")
    timing = {}

    print("\n1/3 fluence calibration (waveplate scan, power meter)", flush=True)
    t = time.monotonic()
    uids = list(RE(plans["calibrate_fluence"]()))
    timing["calibration_s"] = time.monotonic() - t
    att = bl.att
    att.sigma_cm2.put(s["sigma_cm2"])
    max_fluence = att.max_fluence()
    print(f"    max fluence {max_fluence:.2f} mJ/cm^2 = <N> {att.n_per_fluence() * max_fluence:.0f}")

    print(f"\n2/3 fluence scan at +{FLUENCE_DELAY_PS:.0f} ps", flush=True)
    t = time.monotonic()
    fluences = [round(float(f), 4) for f in np.linspace(0.04, 0.92, NUM_FLUENCES) * max_fluence]
    uids += RE(plans["fluence_scan"]([bl.pilatus], fluences, delay_ps=FLUENCE_DELAY_PS))
    fluence_result = session.reduction.result          # waits until the reduction caught up
    timing["fluence_scan_s"] = time.monotonic() - t
    threshold = fluence_result.fit
    print(f"    {threshold.summary()}")

    n_pump = min(4.0 * threshold.threshold, 0.9 * att.n_per_fluence() * max_fluence)
    pump_fluence = round(n_pump / att.n_per_fluence(), 4)
    delays = dense_then_log(DENSE[0], DENSE[1], DENSE[2], LOG_TAIL[0], LOG_TAIL[1])
    print(f"\n3/3 delay scan: {len(delays)} delays -200 ps .. 10 ns x {REPEATS} repeats, on/off pairs, "
          f"at {pump_fluence:.3f} mJ/cm^2 (<N> = {n_pump:.0f})", flush=True)
    RE(bps.mv(att.fluence, pump_fluence))
    t = time.monotonic()
    uids += RE(plans["delay_scan"]([bl.pilatus], delays, repeats=REPEATS))
    timing["delay_scan_s"] = time.monotonic() - t
    delay_result = session.reduction.result
    timing["reduction_caught_up_s"] = time.monotonic() - t - timing["delay_scan_s"]
    kinetics = delay_result.fit
    timing["delay_scan_frames"] = integrator.frames
    timing["integration_frames_per_s"] = integrator.frames / integrator.busy_s
    timing["delay_scan_frames_per_s"] = integrator.frames / timing["delay_scan_s"]
    timing["kinetics_refits"] = len(pump_probe.refit_s)
    timing["kinetics_refit_s"] = float(np.median(pump_probe.refit_s))

    fit = {**kinetics.as_dict(), "model": kinetics.model, "threshold_excitations": {
        "value": float(threshold.threshold), "stderr": float(threshold.threshold_err),
        "range": [float(v) for v in threshold.threshold_range]}}
    print(f"\nresults (simulator truth from its sample file; t0 on the session's delay axis, time zero "
          f"{time_zero_mm:.4f} mm)\n  {'':<22} {'fitted':>10} {'':>12} {'truth':>10}")
    for name, key, unit in (("tau1 (recrystallise)", "tau1_ps", "ps"), ("tau2 (cool)", "tau2_ps", "ps"),
                            ("t0", "t0_ps", "ps"), ("IRF FWHM", "irf_fwhm_ps", "ps")):
        print(_row(name, *kinetics.params.get(key, (None, None)), truth[key], unit))
    print(_row("melting threshold <N>", threshold.threshold, threshold.threshold_err,
               truth["threshold_excitations"], "excitations per NC"))
    figures = _save_figures(out, delay_result, fluence_result)
    summary = {"truth": truth, "fit": fit, "timing": timing, "time_zero_mm_used": time_zero_mm,
               "raw_runs": uids,
               "kinetics": delay_result.as_dict(), "fluence": fluence_result.as_dict("excitations")}
    json_path = Path(json_path) if json_path else out / "summary.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(summary, indent=2))
    print(f"\nlive integration {timing['integration_frames_per_s']:.0f} frames/s of CPU "
          f"({timing['delay_scan_frames']} frames in {timing['delay_scan_s']:.0f} s of delay scan, "
          f"{timing['delay_scan_frames_per_s']:.1f} frames/s end to end; reduction caught up "
          f"{timing['reduction_caught_up_s']:.1f} s after the scan); {timing['kinetics_refits']} kinetics "
          f"refits, median {timing['kinetics_refit_s'] * 1e3:.0f} ms")
    print(f"figures: {', '.join(str(p) for p in figures)}\nsummary: {json_path}\n"
          f"catalog: {root / 'catalog'} ({len(cat)} runs; TRXRD_DATA={root} trxrd runs)\n"
          f"done in {time.monotonic() - t_start:.0f} s")
    session.close()
    return 0
