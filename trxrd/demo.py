"""The dry-run campaigns (``make demo`` / ``trxrd demo``): the simulated beamline, the profile's
devices and plans, and live reduction, end to end.

``--experiment trxrd`` (default), CuInSe2 NCs in a liquid jet:

1. Start ``trxrd sim`` on an isolated loopback port (its heating cell runs ``HEATING_SPEEDUP``
   times faster than real time) and open a beamline session on it with live reduction:
   frames -> I(q) -> dI -> fits, and the (112) reflection fitted per point.
2. Calibrate the fluence attenuator (Malus-law fit of the power meter).
3. Find time zero: the session starts from the delay stage's default, which is wrong; a scan
   across the onset finds it (old, found and true value printed).
4. Static heating series 25 -> 170 C with the heating cell: the (112) position vs temperature
   becomes the session's thermometer; the cell cools back to 25 C.
5. Fluence scan at +40 ps: melted fraction vs <N>, the melting threshold and the lattice
   temperature rise dT vs <N>.
6. Delay scan from -200 ps to 10 ns: bi-exponential recovery with the instrument response, dT(t),
   and from tau2 the interfacial thermal conductance G (``reduction.heat``).
7. Print fitted values next to the simulator's truth; write PNGs and ``summary.json``.

``--experiment ued``, PbSe QDs at 90 K (``trxrd sim --config pbse-90k``): fluence calibration,
a coarse time-zero scan, then a delay scan from -3 to 40 ps with every reflection fitted per
point: the anisotropy table (tau and amplitude of the shift and of <du^2> per reflection family)
next to the sample file's values, and the per-reflection figure.

``--experiment saxs`` and ``--experiment anneal``: see ``_saxs_campaign`` and ``_anneal_campaign``.

``--experiment xcca``, a PbS nanocrystal mesocrystal film (``trxrd sim --config pbs-mesocrystal``):
a 6 x 8 um nano-diffraction raster in 0.4 um steps with live cross-correlation analysis (grain,
orientation, psi and n-fold maps, the running CCF), then the averaged CCF's peaks, beta, c/a and
the orientational disorder next to the sample file's values, and the orientation map against
the simulator's grain map.

Every run stays in the catalog under ``<out>/data``.

EXAMPLE::

    trxrd demo --out demo-output --json demo-output/summary.json
    trxrd demo --experiment ued --out demo-ued
"""
from __future__ import annotations

import json
import logging
import math
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
HEATING_SPEEDUP = 50.0                  # the simulated heating cell runs this much faster than real time
HEATING_SERIES_C = (25.0, 60.0, 95.0, 130.0, 170.0)
TIME_ZERO_WINDOW = (300.0, 10.0)        # window, step (ps) of the time-zero scan
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
             json_path: str | Path | None = None, experiment: str = "trxrd") -> int:
    """One campaign (see module); returns the exit status. An entry point: it sets this
    process's Channel Access variables for the simulator it starts."""
    from .simulated_devices.process import SimulatedBeamline, isolated_ca_env

    if experiment not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {experiment!r}: {', '.join(EXPERIMENTS)}")
    env = isolated_ca_env()
    os.environ.update(env)                        # before pyepics / ophyd connect
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    root = out / "data"
    t_start = time.monotonic()
    sample = {"ued": UED_SAMPLE, "anneal": ANNEAL_SAMPLE, "xcca": XCCA_SAMPLE}.get(experiment)
    overrides = {"heating_cell": {"speedup": HEATING_SPEEDUP}}
    if experiment == "saxs":
        overrides["synthesis"] = dict(SAXS_CHEMISTRY)
    print(f"trxrd demo ({experiment}): simulated beamline ({detector}, sample {sample or 'default'}), data and "
          f"catalog in {root}", flush=True)
    with SimulatedBeamline("TRX:", data_dir=out / "sim", detector=detector, ca_env=env, sample=sample,
                           overrides=overrides, write_roots=[root]) as sim:
        cfg = sim.config()
        campaign = {"trxrd": _campaign, "ued": _ued_campaign, "saxs": _saxs_campaign,
                    "anneal": _anneal_campaign, "xcca": _xcca_campaign}[experiment]
        summary = campaign(sim, cfg, out, root)
    summary["timing"]["total_s"] = time.monotonic() - t_start
    json_path = Path(json_path) if json_path else out / "summary.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(summary, indent=2, default=float))
    print(f"summary: {json_path}\ncatalog: {root / 'catalog'} (TRXRD_DATA={root} trxrd runs)\n"
          f"done in {summary['timing']['total_s']:.0f} s")
    return 0


def _open(sim, cfg, root, **reduction):
    """The beamline session on the simulator, with the sample and live reduction."""
    from .session import SessionConfig, open_session

    logging.getLogger("tiled").setLevel(logging.WARNING)
    s, laser = cfg["sample"], cfg["laser"]
    session = open_session(SessionConfig(prefix=sim.prefix, data_root=root, plots=False,
                                         spot_fwhm_um=(laser["spot_fwhm_x_um"], laser["spot_fwhm_y_um"])),
                           verbose=False)
    session.RE.unsubscribe(session.tokens["bec"])                 # the progress bars and this log suffice
    session.set_sample(name=s["name"], size_nm=s["size_nm"], ligand=s["ligand"], solvent=s["solvent"],
                       sigma_cm2=s["sigma_cm2"])
    session.beamline.pilatus.exposure_s = EXPOSURE_S
    session.reduction.set(sim.waxs_dir / "waxs.poni", mask=sim.waxs_dir / "waxs_mask.edf", **reduction)
    print(f"pump spot {session.beamline.att.spot_fwhm_x_um.get():g} x {session.beamline.att.spot_fwhm_y_um.get():g} "
          f"um (the simulator's sample file plays the knife-edge measurement)")
    return session


def _find_time_zero(session, cfg, windows, step_ps=None, window_ps=None, frames=1) -> dict:
    """Run find_time_zero from the session's (wrong) time zero; print old, found and true."""
    from .simulated_devices.physics import laser

    bl, d = session.beamline, cfg["delay"]
    old = bl.delay.time_zero_mm.get()
    width, step = window_ps or TIME_ZERO_WINDOW[0], step_ps or TIME_ZERO_WINDOW[1]
    true_offset = float(laser.stage_delay_ps(old, d["stage_time_zero_mm"], d["n_passes"]))
    print(f"    starting from time zero {old:.4f} mm: the true onset is at "
          f"{-true_offset:+.1f} ps on this axis; scanning {width:g} ps in {step:g} ps steps", flush=True)
    session.RE(session.plans["find_time_zero"]([bl.pilatus], q_windows=windows, window_ps=width, step_ps=step,
                                               center_ps=0.0, frames_per_point=frames))
    new = bl.delay.time_zero_mm.get()
    error_ps = float(laser.stage_delay_ps(new, d["stage_time_zero_mm"], d["n_passes"]))
    print(f"    time zero: old {old:.4f} mm, found {new:.4f} mm, true {d['stage_time_zero_mm']:.4f} mm "
          f"(found - true = {error_ps:+.2f} ps)")
    return {"old_mm": old, "found_mm": new, "true_mm": d["stage_time_zero_mm"], "error_ps": error_ps}


def _campaign(sim, cfg, out, root) -> dict:
    from .acquisition.plans.delays import dense_then_log
    from .reduction.heat import MATERIALS, SOLVENT_CONDUCTIVITY, interface_conductance
    from .reduction.plots import draw_reflections
    from .simulated_devices.physics import pump_probe

    s = cfg["sample"]
    window = window_112(s["size_nm"])
    session = _open(sim, cfg, root, windows=[window], model="biexp", reflections=[f"112:{window[0]}:{window[1]}"],
                    structure="tetragonal")
    try:
        RE, bl, plans = session.RE, session.beamline, session.plans
        live = session.reduction.live
        print(f"live reduction: (112) window {window[0]:.3f}-{window[1]:.3f} A^-1 (signal and per-reflection fits), "
              f"PONI {sim.waxs_dir / 'waxs.poni'}")
        timing = {}

        print("\n1/5 fluence calibration (waveplate scan, power meter)", flush=True)
        t = time.monotonic()
        uids = list(RE(plans["calibrate_fluence"]()))
        timing["calibration_s"] = time.monotonic() - t
        att = bl.att
        max_fluence = att.max_fluence()
        print(f"    max fluence {max_fluence:.2f} mJ/cm^2 = <N> {att.n_per_fluence() * max_fluence:.0f}")
        RE(bps.mv(att.fluence, round(240.0 / att.n_per_fluence(), 4)))      # well above any melting threshold

        print("\n2/5 find time zero", flush=True)
        t = time.monotonic()
        time_zero = _find_time_zero(session, cfg, [window])
        timing["time_zero_s"] = time.monotonic() - t
        time_zero_mm = bl.delay.time_zero_mm.get()

        print(f"\n3/5 static heating series {', '.join(f'{v:g}' for v in HEATING_SERIES_C)} C (the simulated cell "
              f"runs {HEATING_SPEEDUP:g}x faster than real time): the (112) position becomes the thermometer", flush=True)
        t = time.monotonic()
        RE(bps.mv(bl.jet, cfg["liquid_jet"]["flow_rate_ml_min"]))
        uids += RE(plans["temperature_series"]([bl.pilatus], list(HEATING_SERIES_C), frames=2, tolerance_c=1.0,
                                               settle_time_s=1.0))
        session.reduction.set_thermometer(-1)
        cal = session.reduction.settings.thermometer_calibration
        print(f"    thermometer: d ln q(112) / dT = {cal.expansion_per_k:.3e} +- {cal.expansion_per_k_err:.1e} per K "
              f"(simulator: a {s['alpha_a_per_k']:.2e}, c {s['alpha_c_per_k']:.2e} per K); cooling back to 25 C")
        RE(bps.abs_set(bl.cell, cfg["heating_cell"]["ambient_c"], wait=True, tolerance_c=3.0, settle_time_s=1.0))
        live = session.reduction.live                 # set_thermometer installed the reduction anew
        timing["heating_series_s"] = time.monotonic() - t

        print(f"\n4/5 fluence scan at +{FLUENCE_DELAY_PS:.0f} ps", flush=True)
        t = time.monotonic()
        fluences = [round(float(f), 4) for f in np.linspace(0.04, 0.92, NUM_FLUENCES) * max_fluence]
        uids += RE(plans["fluence_scan"]([bl.pilatus], fluences, delay_ps=FLUENCE_DELAY_PS))
        fluence_result = session.reduction.result          # waits until the reduction caught up
        fluence_lattice = session.reduction.reflections
        timing["fluence_scan_s"] = time.monotonic() - t
        threshold = fluence_result.fit
        print(f"    {threshold.summary()}")

        n_pump = min(4.0 * threshold.threshold, 0.9 * att.n_per_fluence() * max_fluence)
        pump_fluence = round(n_pump / att.n_per_fluence(), 4)
        delays = dense_then_log(DENSE[0], DENSE[1], DENSE[2], LOG_TAIL[0], LOG_TAIL[1])
        print(f"\n5/5 delay scan: {len(delays)} delays -200 ps .. 10 ns x {REPEATS} repeats, on/off pairs, "
              f"at {pump_fluence:.3f} mJ/cm^2 (<N> = {n_pump:.0f})", flush=True)
        RE(bps.mv(att.fluence, pump_fluence))
        integrator, pump_probe_live = live.integrator, live.pump_probe
        t = time.monotonic()
        uids += RE(plans["delay_scan"]([bl.pilatus], delays, repeats=REPEATS))
        timing["delay_scan_s"] = time.monotonic() - t
        delay_result = session.reduction.result
        delay_lattice = session.reduction.reflections
        timing["reduction_caught_up_s"] = time.monotonic() - t - timing["delay_scan_s"]
        kinetics = delay_result.fit
        timing.update(delay_scan_frames=integrator.frames, integration_frames_per_s=integrator.frames / integrator.busy_s,
                      delay_scan_frames_per_s=integrator.frames / timing["delay_scan_s"],
                      kinetics_refits=pump_probe_live.refits,
                      kinetics_refit_s=float(np.median(pump_probe_live.refit_s)),
                      reflection_update_s=float(np.median(live.reflections.update_s)))

        truth = _truth(cfg, time_zero_mm)
        pp = cfg["pump_probe"]
        tau2, tau2_err = kinetics.params["tau2_ps"]
        material, kappa = MATERIALS["CuInSe2"], SOLVENT_CONDUCTIVITY[s["solvent"]]
        radius = s["size_nm"] / 2
        g, g_err = interface_conductance(tau2, tau2_err, radius, solvent_conductivity_w_mk=kappa, **material)
        g_true, _ = interface_conductance(pp["tau2_ps"], None, radius, solvent_conductivity_w_mk=kappa, **material)
        fit = {**kinetics.as_dict(), "model": kinetics.model, "threshold_excitations": {
            "value": float(threshold.threshold), "stderr": float(threshold.threshold_err),
            "range": [float(v) for v in threshold.threshold_range]},
            "interface_conductance_w_m2k": {"value": g, "stderr": g_err}}
        print(f"\nresults (simulator truth from its sample file; t0 on the session's delay axis, time zero "
              f"{time_zero_mm:.4f} mm as found)\n  {'':<22} {'fitted':>10} {'':>12} {'truth':>10}")
        for name, key, unit in (("tau1 (recrystallise)", "tau1_ps", "ps"), ("tau2 (cool)", "tau2_ps", "ps"),
                                ("t0", "t0_ps", "ps"), ("IRF FWHM", "irf_fwhm_ps", "ps")):
            print(_row(name, *kinetics.params.get(key, (None, None)), truth[key], unit))
        print(_row("melting threshold <N>", threshold.threshold, threshold.threshold_err,
                   truth["threshold_excitations"], "excitations per NC"))
        print(_row("G (interface)", g / 1e6, None if g_err is None else g_err / 1e6, g_true / 1e6, "MW m^-2 K^-1",
                   "{:.3f}"))
        print(f"  (G: sphere of R = {radius:g} nm, CuInSe2 rho c, {s['solvent']} kappa = {kappa} W/m/K; the truth is "
              f"G of the simulator's tau2 through the same model, docs/science.md 12)")

        delay_truth = [float(pump_probe.lattice_heating_k(x - truth["t0_ps"], att.n_per_fluence() * pump_fluence, pp))
                       for x in delay_lattice.x]
        print(f"\nlattice temperature rise dT(t) at <N> = {n_pump:.0f} (thermometer: (112) position; * = extrapolated)\n"
              f"  {'delay (ps)':>12} {'dT (K)':>10} {'':>8} {'truth (K)':>10}")
        rows_t = []
        for x, r, tr in zip(delay_lattice.x, delay_lattice.temperature_rise, delay_truth):
            rows_t.append({"delay_ps": float(x), **r, "truth_k": tr})
        for row in rows_t:
            if row["delay_ps"] in (min(rows_t, key=lambda r: abs(r["delay_ps"] - v))["delay_ps"]
                                   for v in (-100.0, 0.0, 40.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0)):
                print(_row_t(row["delay_ps"], row, row["truth_k"]))
        fluence_truth = [float(pump_probe.lattice_heating_k(FLUENCE_DELAY_PS - truth["t0_ps"], n, pp))
                         for n in fluence_lattice.x]
        print(f"\ndT at +{FLUENCE_DELAY_PS:.0f} ps vs <N>\n  {'<N>':>12} {'dT (K)':>10} {'':>8} {'truth (K)':>10}")
        rows_f = [{"excitations": float(n), **r, "truth_k": tr}
                  for n, r, tr in zip(fluence_lattice.x, fluence_lattice.temperature_rise, fluence_truth)]
        for row in rows_f[::2]:
            print(_row_t(row["excitations"], row, row["truth_k"]))

        figures = _save_figures(out, delay_result, fluence_result)
        for name, series, label in (("temperature_delay.png", delay_lattice, "delay (ps)"),
                                    ("temperature_fluence.png", fluence_lattice, "<N> excitations per NC")):
            figures.append(_save(out / name, lambda fig, series=series, label=label: draw_reflections(
                fig, series, x_label=label), size=(14, 4)))
        print(f"\nlive integration {timing['integration_frames_per_s']:.0f} frames/s of CPU "
              f"({timing['delay_scan_frames']} frames in {timing['delay_scan_s']:.0f} s of delay scan, "
              f"{timing['delay_scan_frames_per_s']:.1f} frames/s end to end; reduction caught up "
              f"{timing['reduction_caught_up_s']:.1f} s after the scan); {timing['kinetics_refits']} kinetics "
              f"refits, median {timing['kinetics_refit_s'] * 1e3:.0f} ms; per-reflection update "
              f"{timing['reflection_update_s'] * 1e3:.0f} ms per point\nfigures: {', '.join(str(p) for p in figures)}")
        summary = {"experiment": "trxrd", "truth": {**truth, "interface_conductance_w_m2k": g_true}, "fit": fit,
                   "time_zero": time_zero, "timing": timing, "time_zero_mm_used": time_zero_mm, "raw_runs": uids,
                   "thermometer": cal.as_dict(), "temperature_rise_delay": rows_t, "temperature_rise_fluence": rows_f,
                   "kinetics": delay_result.as_dict(), "fluence": fluence_result.as_dict("excitations")}
        return summary
    finally:
        session.close()


def _row_t(x, row, truth) -> str:
    value = "-" if row["value"] is None else f"{row['value']:.1f}"
    err = "" if row["stderr"] is None else f"+- {row['stderr']:.1f}"
    return f"  {x:>12.1f} {value:>10}{'*' if row['extrapolated'] else ' '} {err:>8} {truth:>10.1f}"


def _save(path: Path, draw, size=(7, 4.5)) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    draw(fig)
    fig.savefig(path, dpi=110)
    return path


EXPERIMENTS = ("trxrd", "ued", "saxs", "anneal", "xcca")
UED_SAMPLE = "pbse-90k"
UED_REFLECTIONS = ("111", "200", "220", "311", "222", "400")
UED_REPEATS = 3
UED_LITERATURE_A = 6.12                 # PbSe at 300 K (A): the windows do not use the simulator's lattice
UED_DELAYS = (np.linspace(-10.0, -4.5, 4), np.arange(-4.0, 6.01, 0.5), np.geomspace(7.0, 40.0, 10))


def _ued_campaign(sim, cfg, out, root) -> dict:
    from .reduction.plots import draw_reflections
    from .reduction.reflections import reflections_for_lattice

    s, lat = cfg["sample"], cfg["lattice_dynamics"]
    fwhm = 2 * np.pi * 0.9 / (s["size_nm"] * 10.0)
    refl = reflections_for_lattice(UED_REFLECTIONS, UED_LITERATURE_A, half_width=round(1.25 * fwhm, 3))
    strongest = next(r for r in refl if r.label == "200")
    session = _open(sim, cfg, root, windows=[(strongest.q_min, strongest.q_max)], model="exp",
                    reflections=[f"{r.label}:{r.q_min}:{r.q_max}" for r in refl], structure="cubic")
    try:
        RE, bl, plans = session.RE, session.beamline, session.plans
        print(f"base temperature {bl.cell.temperature.get():.1f} C ({bl.cell.temperature.get() + 273.15:.0f} K); "
              f"reflections {', '.join(f'{r.label} {r.q_min}-{r.q_max}' for r in refl)} A^-1 (nominal a = "
              f"{UED_LITERATURE_A} A, +-1.25 Scherrer FWHM of {s['size_nm']:g} nm)")
        timing = {}
        print("\n1/3 fluence calibration", flush=True)
        uids = list(RE(plans["calibrate_fluence"]()))
        n_pump = lat["reference_excitations"]
        RE(bps.mv(bl.att.fluence, round(n_pump / bl.att.n_per_fluence(), 4)))
        print(f"    pump at <N> = {n_pump:g} ({bl.att.fluence.position:.3f} mJ/cm^2)")
        print("\n2/3 time zero from the intensity of every reflection, coarse then fine; the lattice responds within a few ps, "
              "so the onset found lies a little late: the per-reflection fits refine it", flush=True)
        t = time.monotonic()
        windows = [(r.q_min, r.q_max) for r in refl]         # the Debye-Waller loss of every reflection
        time_zero = _find_time_zero(session, cfg, windows, step_ps=4.0, window_ps=120.0)
        time_zero["fine"] = _find_time_zero(session, cfg, windows, step_ps=1.0, window_ps=24.0)
        timing["time_zero_s"] = time.monotonic() - t
        delays = sorted({round(float(v), 3) for part in UED_DELAYS for v in part})
        print(f"\n3/3 delay scan: {len(delays)} delays {delays[0]:g} .. {delays[-1]:g} ps x {UED_REPEATS} repeats",
              flush=True)
        t = time.monotonic()
        uids += RE(plans["delay_scan"]([bl.pilatus], delays, repeats=UED_REPEATS))
        timing["delay_scan_s"] = time.monotonic() - t
        series = session.reduction.reflections
        timing["reduction_caught_up_s"] = time.monotonic() - t - timing["delay_scan_s"]
        timing["reflection_update_s"] = float(np.median(session.reduction.live.reflections.update_s))
        scale = n_pump / lat["reference_excitations"]
        truth = {}
        for k, fam in enumerate(lat["families"]):
            truth[fam] = {"tau_shift_ps": lat["tau_expansion_ps"][k], "shift_max": -scale * lat["expansion"][k],
                          "tau_du2_ps": lat["tau_du2_ps"][k], "du2_max_A2": scale * lat["du2_a2"][k]}
        print(f"\nanisotropy table (fit +- error | simulator truth; shared t0 {series.common['t0_ps']:+.2f} ps, IRF "
              f"{series.common['irf_fwhm_ps']:.2f} ps (truth {cfg['pump_probe']['irf_fwhm_ps']:g}))")
        print(f"  {'hkl':>4} {'tau shift (ps)':>22} {'dq/q max (1e-3)':>24} {'tau <du2> (ps)':>22} {'<du2> max (1e-3 A^2)':>26}")
        rows = []
        for row in series.anisotropy():
            tr = truth[row["hkl"]]
            cells = []
            for key, scale_out in (("tau_shift_ps", 1), ("shift_max", 1e3), ("tau_du2_ps", 1), ("du2_max_A2", 1e3)):
                v, e = row[key]["value"], row[key]["stderr"]
                cells.append(f"{'-' if v is None else f'{v * scale_out:.2f}'} +- {'-' if e is None else f'{e * scale_out:.2f}'}"
                             f" | {tr[key] * scale_out:.2f}")
            print(f"  {row['hkl']:>4} {cells[0]:>22} {cells[1]:>24} {cells[2]:>22} {cells[3]:>26}")
            rows.append({**row, "truth": tr})
        figure = _save(out / "reflections.png", lambda fig: draw_reflections(
            fig, series, truth={h: (v["tau_shift_ps"], v["tau_du2_ps"]) for h, v in truth.items()}), size=(14, 4.5))
        print(f"\nper-reflection update {timing['reflection_update_s'] * 1e3:.0f} ms per point ({len(refl)} reflections); "
              f"reduction caught up {timing['reduction_caught_up_s']:.1f} s after the scan\nfigure: {figure}")
        summary = {"experiment": "ued", "sample": s["name"], "time_zero": time_zero, "timing": timing,
                   "raw_runs": uids, "anisotropy": rows, "reflections": series.as_dict(), "common": series.common}
        return summary
    finally:
        session.close()


# -- in-situ SAXS of a hot injection ---------------------------------------------------------------------
# The simulated chemistry runs about 4x faster than the sample file's defaults, so ~60 s of recording
# covers nucleation, growth and size focusing (published: minutes).
SAXS_CHEMISTRY = {"growth_time_s": 8.0, "nucleation_time_s": 2.5, "focusing_time_s": 10.0}
SAXS_RUN = {"mantle_temp_c": 240.0, "inject_ml": 1.0, "rate_ml_min": 60.0, "frame_period_s": 0.1,
            "duration_s": 60.0, "pre_injection_s": 3.0, "exposure_s": 0.05, "settle_time_s": 3.0}
SAXS_REPORT_TIMES_S = (1.0, 2.0, 5.0, 10.0, 20.0, 40.0, 58.0)


def _open_plain(sim, root, sample: dict):
    """A beamline session on the simulator with the sample and no live reduction yet."""
    from .session import SessionConfig, open_session

    logging.getLogger("tiled").setLevel(logging.WARNING)
    session = open_session(SessionConfig(prefix=sim.prefix, data_root=root, plots=False), verbose=False)
    session.RE.unsubscribe(session.tokens["bec"])
    session.set_sample(**sample)
    return session


def _open_saxs(sim, root, sample: dict, **saxs):
    """A beamline session on the simulator with live SAXS reduction only."""
    session = _open_plain(sim, root, sample)
    session.saxs_reduction.set(sim.saxs_dir / "saxs.poni", mask=sim.saxs_dir / "saxs_mask.edf", **saxs)
    return session


def saxs_truth(cfg: dict, times_s, mantle_c: float, rate_ml_min: float, inject_ml: float) -> dict:
    """The simulator's synthesis at *times_s* after the injection (mean radius, sigma, number
    concentration, scattered volume conc x <V>), and t98 of concentration and volume against
    their values over the last 10 % of *times_s* (as the reduction defines them)."""
    from .simulated_devices.physics.synthesis import SynthesisModel, radius_distribution

    model = SynthesisModel(cfg["synthesis"])
    t = np.asarray(times_s, dtype=float)
    rows = [model.state(x, mantle_c, min(inject_ml, rate_ml_min / 60.0 * max(x, 0.0))) for x in t]

    def mean_volume(st):
        r = np.linspace(max(st["radius_nm"] - 8 * st["sigma_nm"], 0.01), st["radius_nm"] + 10 * st["sigma_nm"], 801)
        p = radius_distribution(r, st["radius_nm"], st["sigma_nm"], cfg["synthesis"]["distribution"])
        return float(np.trapezoid(p * 4 / 3 * np.pi * r**3, r))

    conc = np.array([st["concentration_um"] for st in rows])
    volume = conc * np.array([mean_volume(st) for st in rows])
    tail = t >= t.max() - 0.1 * (t.max() - t.min())

    def t98(v):
        final = float(np.median(v[tail]))
        below = np.flatnonzero(v < 0.98 * final)
        return float(t[below[-1] + 1]) if len(below) and below[-1] + 1 < len(t) else float(t[0])

    return {"time_s": t, "radius_nm": np.array([st["radius_nm"] for st in rows]),
            "sigma_nm": np.array([st["sigma_nm"] for st in rows]), "concentration_um": conc,
            "t98_concentration_s": t98(conc), "t98_yield_s": t98(volume)}


def _saxs_campaign(sim, cfg, out, root) -> dict:
    from matplotlib.figure import Figure

    from .reduction.plots import draw_saxs
    from .reduction.saxs import fit_growth_law, growth_rate

    syn = cfg["synthesis"]
    sample = {"name": "CdSe NCs, hot injection (oleic acid, octadecene)", "size_nm": 2 * syn["r_final_nm"],
              "ligand": "oleic acid", "solvent": "octadecene", "sigma_cm2": 1e-15}
    session = _open_saxs(sim, root, sample)
    try:
        RE, bl, plans = session.RE, session.beamline, session.plans
        live = session.saxs_reduction.live
        run = SAXS_RUN
        print(f"live SAXS reduction: {session.saxs_reduction!r}\nthe simulated chemistry is accelerated "
              f"(growth time {syn['growth_time_s']:g} s, nucleation {syn['nucleation_time_s']:g} s, focusing "
              f"{syn['focusing_time_s']:g} s) and the mantle heats {HEATING_SPEEDUP:g}x faster than real time", flush=True)
        print(f"\n1/1 injection_series: mantle {run['mantle_temp_c']:g} C, {run['inject_ml']:g} mL at "
              f"{run['rate_ml_min']:g} mL/min, a SAXS frame every {run['frame_period_s']:g} s for "
              f"{run['pre_injection_s']:g} s before and {run['duration_s']:g} s after the injection", flush=True)
        t = time.monotonic()
        uids = list(RE(plans["injection_series"](bl.saxs, **run)))
        timing = {"acquisition_s": time.monotonic() - t}
        report = session.saxs_reduction.report
        timing["reduction_caught_up_s"] = time.monotonic() - t - timing["acquisition_s"]
        frames = report["frames"]
        fit_s = live.saxs.fit_s
        span = frames[-1]["time_s"] - frames[0]["time_s"]
        session.writer.flush()
        raw_frames = len(session.catalog[uids[0]]["primary"]["reaction_time_s"].read())
        timing.update(frames=len(frames), raw_frames=raw_frames, frames_per_s=(len(frames) - 1) / span,
                      fit_ms_median=1e3 * float(np.median(fit_s)),
                      chain_frames_per_s=len(frames) / (live.integrator.busy_s + float(np.sum(fit_s))))
        mantle = float(np.nanmedian([r["temperature_c"] for r in live.saxs.rows if r["time_s"] >= 0]))
        times = [f["time_s"] for f in frames if f["time_s"] >= 0]
        truth = saxs_truth(cfg, times, mantle, run["rate_ml_min"], run["inject_ml"])
        print(f"\nresults (fit +- error | simulator truth; mantle {mantle:.1f} C)\n"
              f"  {'t (s)':>6} {'r (nm)':>20} {'sigma (nm)':>20} {'conc (rel.)':>12} {'conc truth (uM)':>16}")
        rows = []
        by_time = [f for f in frames if f["time_s"] >= 0]
        for target in SAXS_REPORT_TIMES_S:
            k = int(np.argmin(np.abs(np.array(times) - target)))
            f = by_time[k]
            tr = {key: float(truth[key][k]) for key in ("radius_nm", "sigma_nm", "concentration_um")}
            rows.append({**f, "truth": tr})
            if not f["particles"]:
                print(f"  {f['time_s']:>6.1f}   no particles ({f.get('reason', '')})")
                continue
            r, sg = f["r_mean_nm"], f["sigma_nm"]
            print(f"  {f['time_s']:>6.1f} {r['value']:>8.3f} +- {r['stderr']:.3f} | {tr['radius_nm']:.3f} "
                  f"{sg['value']:>6.3f} +- {sg['stderr']:.3f} | {tr['sigma_nm']:.3f} "
                  f"{f['concentration_rel'] if f['concentration_rel'] is not None else float('nan'):>12.3f} "
                  f"{tr['concentration_um']:>16.2f}")
        law = report["growth_law"]
        print(f"\n  t98 concentration {report['t98_concentration_s']} s (truth {truth['t98_concentration_s']:.1f} s), "
              f"t98 yield {report['t98_yield_s']} s (truth {truth['t98_yield_s']:.1f} s)")
        rates = growth_rate(truth["time_s"], truth["radius_nm"], np.full(len(times), 1e-3))
        law_truth = fit_growth_law(rates["r_nm"], rates["drdt_nm_s"], rates["drdt_err_nm_s"])
        truth["growth_n"] = None if law_truth is None else law_truth["n"]["value"]
        if law:
            print(f"  growth law dr/dt = k / r^n: n = {law['n']['value']:.2f} +- {law['n']['stderr']:.2f}, "
                  f"k = {law['k']['value']:.3g} +- {law['k']['stderr']:.2g} nm^(n+1)/s; the same fit of the simulator's "
                  f"noise-free r(t): n = {truth['growth_n']:.2f} (its law is k / r^{syn['growth_exponent']:g} x "
                  f"(1 - (r / {syn['r_final_nm']:g} nm)^3): the depletion term steepens the apparent n)")
        fig = Figure(figsize=(15, 4))
        draw_saxs(fig, live.saxs.rows, report, live.saxs.last)
        fig.savefig(out / "saxs.png", dpi=110)
        print(f"\n{timing['frames']} frames, {timing['frames_per_s']:.1f} frames/s during the run; the live SAXS chain "
              f"(read, integrate, fit) takes {1e3 / timing['chain_frames_per_s']:.1f} ms of CPU per frame "
              f"({timing['chain_frames_per_s']:.0f} frames/s; fit median {timing['fit_ms_median']:.1f} ms) and caught up "
              f"{timing['reduction_caught_up_s']:.1f} s after the run\nfigure: {out / 'saxs.png'}")
        return {"experiment": "saxs", "raw_runs": uids, "timing": timing, "report": report, "rows": rows,
                "truth": {"t98_concentration_s": truth["t98_concentration_s"], "t98_yield_s": truth["t98_yield_s"],
                          "growth_n": truth["growth_n"],
                          "time_s": truth["time_s"].tolist(), "radius_nm": truth["radius_nm"].tolist(),
                          "sigma_nm": truth["sigma_nm"].tolist(), "concentration_um": truth["concentration_um"].tolist()}}
    finally:
        session.close()


ANNEAL_SAMPLE = "cdse-npl-film"
# Holds of the published anneal, each ANNEAL_HOLD_S of wall time: with the cell HEATING_SPEEDUP x faster
# than real time that is ~8 ligand-loss times of the sample file (a 30 min hold at the beamline).
ANNEAL_HOLDS_C = (80.0, 250.0, 300.0, 340.0, 350.0)
ANNEAL_HOLD_S = 10.0
ANNEAL_RATE_C_MIN = 20.0
ANNEAL_PERIOD_S = 0.5
ANNEAL_STACKING_Q = (0.08, 0.8)          # A^-1: periods from 7.9 nm down to 0.8 nm


def film_truth(cfg: dict, times_s, temperatures_c) -> np.ndarray:
    """The simulator's stacking period (nm; NaN once fused) replayed on a recorded temperature trace
    (wall s; the cell's model time is speedup x wall time)."""
    from .simulated_devices.physics.film import PlateletFilmModel

    film = PlateletFilmModel(cfg["platelet_film"], cell_c=float(temperatures_c[0]))
    speedup = cfg["heating_cell"]["speedup"]
    out, last = [], float(times_s[0])
    for t, temp in zip(times_s, temperatures_c):
        film.advance((float(t) - last) * speedup, float(temp))
        last = float(t)
        out.append(math.nan if film.fused else film.stacking_nm)
    return np.array(out)


def _waxs_111_at_holds(session, sim, cfg, uid, rows, segments) -> list[dict]:
    """The zinc-blende (111) ring in the last WAXS frame of each hold, read back from the catalog:
    position, FWHM and Scherrer size (the rings sharpen when the platelets fuse); printed."""
    from .reduction.integrate import AzimuthalIntegration
    from .reduction.peaks import fit_pseudo_voigt, scherrer_size_nm

    session.writer.flush()
    images = session.catalog[uid]["primary"]["pilatus_image"]
    integ = AzimuthalIntegration(sim.waxs_dir / "waxs.poni", mask=sim.waxs_dir / "waxs_mask.edf", npt=1000)
    q111 = 2 * math.pi * math.sqrt(3) / cfg["sample"]["a_angstrom"]          # ~1.80 A^-1 for CdSe
    out = []
    print(f"\nWAXS: the zinc-blende (111) ring at the end of each hold\n  {'hold (C)':>9} {'q (A^-1)':>9} "
          f"{'FWHM (A^-1)':>12} {'Scherrer (nm)':>14}")
    for seg in segments:
        if seg["kind"] != "hold":
            continue
        last = max(r["frame"] for r in rows if r["segment"] == seg["segment"])
        q, i, sigma = integ.integrate(np.asarray(images[last]))
        fit = fit_pseudo_voigt(q, i, q_min=q111 - 0.25, q_max=q111 + 0.25, sigma=sigma)
        size = float(scherrer_size_nm(fit.fwhm))
        out.append({"q": fit.center, "fwhm": fit.fwhm, "scherrer_nm": size})
        print(f"  {seg['temperature_c'][1]:>9.1f} {fit.center:>9.4f} {fit.fwhm:>12.4f} {size:>14.1f}")
    return out


def _anneal_campaign(sim, cfg, out, root) -> dict:
    from matplotlib.figure import Figure

    from .reduction.plots import draw_stacking

    s = cfg["sample"]
    sample = {"name": s["name"], "size_nm": s["size_nm"], "ligand": s["ligand"], "solvent": s["solvent"],
              "sigma_cm2": s["sigma_cm2"]}
    session = _open_saxs(sim, root, sample, stacking_q=ANNEAL_STACKING_Q)
    try:
        RE, bl, plans = session.RE, session.beamline, session.plans
        live = session.saxs_reduction.live
        steps = []
        for temp in ANNEAL_HOLDS_C:
            steps += [("ramp", temp, ANNEAL_RATE_C_MIN), ("hold", temp, ANNEAL_HOLD_S)]
        steps.append(("cool", cfg["heating_cell"]["ambient_c"] + 35.0, ANNEAL_RATE_C_MIN))
        bl.saxs.exposure_s = 0.2
        print(f"live SAXS reduction: {session.saxs_reduction!r}\nthe simulated cell runs {HEATING_SPEEDUP:g}x faster "
              f"than real time: each {ANNEAL_HOLD_S:g} s hold is {ANNEAL_HOLD_S * HEATING_SPEEDUP / 60:.0f} min of the "
              f"film's time ({cfg['platelet_film']['loss_time_s']:g} s ligand-loss time)", flush=True)
        print(f"\n1/1 anneal_profile: ramps at {ANNEAL_RATE_C_MIN:g} C/min to holds at "
              f"{', '.join(f'{t:g}' for t in ANNEAL_HOLDS_C)} C, then cool; a SAXS frame every {ANNEAL_PERIOD_S:g} s",
              flush=True)
        t = time.monotonic()
        uids = list(RE(plans["anneal_profile"](steps, detectors=[bl.saxs, bl.pilatus], period_s=ANNEAL_PERIOD_S)))
        timing = {"acquisition_s": time.monotonic() - t}
        segments = session.saxs_reduction.segments
        rows = live.stacking.rows
        truth = film_truth(cfg, [r["time_s"] for r in rows], [r["temperature_c"] for r in rows])
        timing.update(frames=len(rows), fit_ms_median=1e3 * float(np.median(live.stacking.fit_s)))
        print(f"\nstacking period at the end of each hold (fit +- error | simulator truth, the film model replayed "
              f"on the recorded temperatures)\n  {'hold (C)':>9} {'d (nm)':>18} {'truth (nm)':>11}  frames with a peak")
        holds = []
        for seg in segments:
            if seg["kind"] != "hold":
                continue
            end = max(k for k, r in enumerate(rows) if r["segment"] == seg["segment"])
            tr = truth[end]
            d = seg["d_end_nm"]
            holds.append({**{k: v for k, v in seg.items() if k != "trajectory"}, "truth_nm": None if np.isnan(tr) else float(tr)})
            value = "no peak (fused)" if d["value"] is None else f"{d['value']:.3f} +- {d['stderr']:.4f}"
            print(f"  {seg['temperature_c'][1]:>9.1f} {value:>18} {'fused' if np.isnan(tr) else f'{tr:.3f}':>11}  "
                  f"{seg['frames_with_peak']}/{seg['frames']}")
        waxs = _waxs_111_at_holds(session, sim, cfg, uids[0], rows, segments)
        for hold, w in zip(holds, waxs):
            hold["waxs_111"] = w
        fig = Figure(figsize=(11, 4))
        draw_stacking(fig, rows)
        fig.savefig(out / "stacking.png", dpi=110)
        print(f"\n{timing['frames']} frames in {timing['acquisition_s']:.0f} s; stacking fit median "
              f"{timing['fit_ms_median']:.1f} ms per frame\nfigure: {out / 'stacking.png'}")
        return {"experiment": "anneal", "raw_runs": uids, "timing": timing, "holds": holds,
                "segments": segments}
    finally:
        session.close()


XCCA_SAMPLE = "pbs-mesocrystal"
XCCA_RASTER = {"x_range": (-3.0, 3.0), "y_range": (-4.0, 4.0), "step_um": 0.4}
# The rings, from the literature and not from the simulator: PbS rock salt (a = 5.936 A) 111, and
# the superlattice ring q_4 ~ 1.72 nm^-1 reported for PbS mesocrystals.
XCCA_Q1 = 2 * math.pi * math.sqrt(3) / 5.936
XCCA_Q2 = "1.72nm-1"
XCCA_ORIENTATION_TOLERANCE_DEG = 5.0


def _xcca_campaign(sim, cfg, out, root) -> dict:
    from matplotlib.figure import Figure

    from .reduction.plots import draw_xcca
    from .reduction.xcca import wrap180
    from .simulated_devices.physics.mesocrystal import MesocrystalModel

    s = cfg["sample"]
    session = _open_plain(sim, root, {k: s[k] for k in ("name", "size_nm", "ligand", "solvent", "sigma_cm2")})
    try:
        session.xcca_reduction.set(sim.waxs_dir / "waxs.poni", mask=sim.waxs_dir / "waxs_mask.edf",
                                   q1=XCCA_Q1, q2=XCCA_Q2)
        RE, bl, plans = session.RE, session.beamline, session.plans
        bl.pilatus.exposure_s = EXPOSURE_S
        r = XCCA_RASTER
        print(f"{session.xcca_reduction!r}\n\n1/1 raster_scan: {r['x_range']} x {r['y_range']} um in {r['step_um']:g} um "
              f"steps, snaking, {EXPOSURE_S:g} s per pattern", flush=True)
        t = time.monotonic()
        uids = list(RE(plans["raster_scan"]([bl.pilatus], r["x_range"], r["y_range"], r["step_um"])))
        timing = {"acquisition_s": time.monotonic() - t}
        report = session.xcca_reduction.report
        timing["caught_up_after_s"] = time.monotonic() - t - timing["acquisition_s"]
        live = session.xcca_reduction.live.xcca
        rows = live.rows
        timing.update(patterns=len(rows), reduction_ms_per_pattern=1e3 * live.busy_s / max(len(rows), 1))
        model = MesocrystalModel(cfg["mesocrystal"], s)
        truth = model.truth()
        summary = {"experiment": "xcca", "raw_runs": uids, "timing": timing,
                   "truth": {k: truth[k] for k in ("sl_c_over_a", "beta_deg", "theta_deg", "ccf_peaks_deg",
                                                    "disorder_fwhm_deg", "psi_mean_deg", "psi_sd_deg")}}
        # the orientation map against the simulator's grain map, position by position
        hits = grains = false_grains = 0
        psi_truth = []
        for row in rows:
            tr = model.truth_at(row["x_um"], row["y_um"])
            if tr["has_grain"]:
                grains += 1
                ok = row["orientation_deg"] is not None and abs(float(wrap180(
                    2 * (row["orientation_deg"] - tr["orientation_deg"])))) / 2 <= XCCA_ORIENTATION_TOLERANCE_DEG
                hits += ok
                if row["psi_deg"] is not None:
                    psi_truth.append(tr["psi_deg"])
            elif row["has_grain"]:
                false_grains += 1
        summary["orientation_map"] = {"positions_with_grain": grains, "within_tolerance": hits,
                                      "fraction": hits / grains if grains else None,
                                      "tolerance_deg": XCCA_ORIENTATION_TOLERANCE_DEG,
                                      "grain_reported_where_none": false_grains}
        figure = Figure(figsize=(15, 4))
        draw_xcca(figure, rows, report, live.running_ccf())
        figure.savefig(out / "xcca.png", dpi=110)
        if report is None:
            summary["status"] = live.failure or live.status
            print(f"\nno averaged CCF: {summary['status']}")
            return summary
        summary["report"] = {k: report[k] for k in ("peaks_deg", "beta_deg", "c_over_a", "disorder_deg",
                                                    "azimuthal_fwhm_deg", "radial_fwhm", "n_frames",
                                                    "n_frames_with_grain", "n_frames_used", "psi_deg")}
        true_peaks = np.array(truth["ccf_peaks_deg"])
        found = np.array(report["peaks_deg"])
        offsets = [float(np.min(np.abs(wrap180(found - p)))) if found.size else None for p in true_peaks]
        summary["ccf_peak_offsets_deg"] = offsets
        print(f"\n{len(rows)} patterns in {timing['acquisition_s']:.0f} s ({len(rows) / timing['acquisition_s']:.1f}/s); "
              f"live XCCA {timing['reduction_ms_per_pattern']:.1f} ms per pattern, caught up "
              f"{timing['caught_up_after_s']:.1f} s after the raster")
        print(f"grains: {report['n_frames_with_grain']} patterns, {report['n_frames_used']} with both rings (averaged CCF); "
              f"orientation within {XCCA_ORIENTATION_TOLERANCE_DEG:g} deg of the grain map at {hits}/{grains} positions "
              f"with a grain; a grain reported at {false_grains} positions without one")
        print(f"\n  {'':24} {'fit +- error':>20} {'truth':>10}")
        for p, off in zip(true_peaks, offsets):
            near = found[np.argmin(np.abs(wrap180(found - p)))] if found.size else math.nan
            print(f"  {'CCF peak (deg)':24} {near:>20.1f} {p:>10.1f}   ({off:.1f} deg apart)")
        for name, key, true in (("beta (deg)", "beta_deg", truth["beta_deg"]),
                                ("c/a of the SL", "c_over_a", truth["sl_c_over_a"]),
                                ("disorder FWHM (deg)", "disorder_deg", truth["disorder_fwhm_deg"])):
            v = report[key]
            text = "not determined" if v is None else f"{v['value']:.3f} +- " + (
                "?" if v["stderr"] is None else f"{v['stderr']:.3f}")
            print(f"  {name:24} {text:>20} {true:>10.3f}")
        psi = report["psi_deg"]
        if psi:
            print(f"  {'psi mean, sd (deg)':24} {psi['mean']:>9.2f}, {psi['sd'] or 0:>8.2f} "
                  f"{float(np.mean(psi_truth)):>6.2f}, {float(np.std(psi_truth, ddof=1)) if len(psi_truth) > 1 else 0:.2f}"
                  f"   (truth: the grains under those patterns)")
        print(f"figure: {out / 'xcca.png'}")
        return summary
    finally:
        session.close()
