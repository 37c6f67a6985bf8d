"""Figures of a pump-probe reduction (matplotlib): the q-delay difference map, the kinetics
trace with its fit, and the melted fraction vs <N> with the threshold fit. The live plot and
the PNGs of ``trxrd demo`` / ``trxrd kinetics --plot`` draw the same figures.

EXAMPLE::

    from trxrd.reduction.plots import pump_probe_figure
    fig = pump_probe_figure(result, kind="delay")     # result: trxrd.reduction.pump_probe.PumpProbeResult
    fig.savefig("kinetics.png", dpi=120)
"""
from __future__ import annotations

import math
import textwrap

import numpy as np

DELAY_LINEAR_PS = 300.0     # symlog delay axes: linear within +-300 ps, logarithmic beyond


def _fit_label(fit) -> str:
    return "" if fit is None else textwrap.fill(fit.summary(), 80)


def plot_difference_map(ax, q_inv_angstrom, x, d_intensity, *, kind: str = "delay"):
    """dI(q, x) as a colour map (red: gain, blue: loss); x = delay (ps) or <N>."""
    d = np.asarray(d_intensity, dtype=float)
    lim = float(np.nanpercentile(np.abs(d), 99.5)) or 1.0
    mesh = ax.pcolormesh(q_inv_angstrom, x, d, shading="nearest", cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set_xlabel("q (A$^{-1}$)")
    if kind == "delay":
        ax.set_yscale("symlog", linthresh=DELAY_LINEAR_PS)
        ax.set_ylabel("delay (ps)")
    else:
        ax.set_ylabel("<N> excitations per NC")
    ax.set_title("dI = I(pump on) - I(reference)")
    ax.figure.colorbar(mesh, ax=ax, label="dI (counts/monitor)")
    return mesh


def plot_kinetics(ax, delay_ps, signal, signal_err=None, fit=None):
    """Window signal vs delay with the fitted model (symlog delay axis)."""
    ax.errorbar(delay_ps, signal, yerr=signal_err, fmt="o", ms=4, capsize=2, label="data")
    if fit is not None:
        t = np.linspace(min(np.min(delay_ps), -DELAY_LINEAR_PS), np.max(delay_ps), 2000)
        ax.plot(t, fit.evaluate(t), "-", label=fit.model)
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set_xscale("symlog", linthresh=DELAY_LINEAR_PS)
    ax.set_xlabel("delay (ps)")
    ax.set_ylabel("dA / A (window signal)")
    ax.set_title(_fit_label(fit), fontsize=8)
    ax.legend(loc="best", fontsize=8)


def plot_fluence(ax, excitations, fraction, fraction_err=None, fit=None):
    """Melted fraction vs <N> with the threshold fit and its range."""
    ax.errorbar(excitations, fraction, yerr=fraction_err, fmt="o", ms=4, capsize=2, label="data")
    if fit is not None:
        n = np.linspace(0.0, float(np.max(excitations)) * 1.05, 500)
        ax.plot(n, fit.evaluate(n), "-", label=f"{fit.model} fit")
        lo, hi = fit.threshold_range
        ax.axvspan(lo, hi, color="C1", alpha=0.2, label="threshold range")
    ax.set_xlabel("<N> excitations per NC")
    ax.set_ylabel("melted fraction (-dA/A in the window)")
    ax.set_title(_fit_label(fit), fontsize=8)
    ax.legend(loc="best", fontsize=8)


def draw_pump_probe(fig, result, kind: str = "delay"):
    """Draw a PumpProbeResult into *fig* (cleared first): map on the left, trace on the right."""
    from .fluence import melted_fraction

    fig.clf()
    ax_map, ax_trace = fig.subplots(1, 2)
    plot_difference_map(ax_map, result.q_inv_angstrom, result.x, result.diff.d_intensity, kind=kind)
    if kind == "delay":
        plot_kinetics(ax_trace, result.x, result.signal, result.signal_err, result.fit)
    else:
        fraction, err = melted_fraction(result.signal, result.signal_err)
        plot_fluence(ax_trace, result.x, fraction, err, result.fit)
    fig.tight_layout()
    return fig


def pump_probe_figure(result, kind: str = "delay"):
    """A new (non-interactive) figure of *result*, ready for ``savefig``."""
    from matplotlib.figure import Figure

    return draw_pump_probe(Figure(figsize=(11, 4.5)), result, kind)


def draw_grid(fig, grid):
    """Draw a fluence x delay grid (``GridResult``) into *fig*: the kinetics at every fluence on
    the left, the melted fraction vs <N> at every delay on the right, with their fits."""
    from .fluence import melted_fraction

    fig.clf()
    ax_k, ax_f = fig.subplots(1, 2)
    for fluence, r in grid.kinetics.items():
        if r is None:
            continue
        bars = ax_k.errorbar(r.x, r.signal, yerr=r.signal_err, fmt="o", ms=3, capsize=2,
                             label=f"{fluence:g} mJ/cm$^2$")
        if r.fit is not None:
            t = np.linspace(min(np.min(r.x), -DELAY_LINEAR_PS), np.max(r.x), 1000)
            ax_k.plot(t, r.fit.evaluate(t), "-", color=bars[0].get_color())
    ax_k.axhline(0.0, color="0.6", lw=0.8)
    ax_k.set_xscale("symlog", linthresh=DELAY_LINEAR_PS)
    ax_k.set_xlabel("delay (ps)")
    ax_k.set_ylabel("dA / A (window signal)")
    ax_k.set_title("kinetics per fluence", fontsize=9)
    for delay, r in grid.thresholds.items():
        if r is None:
            continue
        fraction, err = melted_fraction(r.signal, r.signal_err)
        bars = ax_f.errorbar(r.x, fraction, yerr=err, fmt="o", ms=3, capsize=2, label=f"{delay:g} ps")
        if r.fit is not None:
            n = np.linspace(0.0, float(np.nanmax(r.x)) * 1.05, 300)
            ax_f.plot(n, r.fit.evaluate(n), "-", color=bars[0].get_color())
    ax_f.set_xlabel("<N> excitations per NC")
    ax_f.set_ylabel("melted fraction")
    ax_f.set_title("threshold per delay", fontsize=9)
    for ax in (ax_k, ax_f):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize=7)
    fig.tight_layout()
    return fig


def draw_reflections(fig, series, *, x_label: str = "delay (ps)", truth: dict | None = None):
    """Per-reflection figure of a ``ReflectionSeries`` into *fig*: the relative shift dq/q and
    <du^2> per reflection with their fits (delay scans), the lattice temperature rise when the
    series has one (extrapolated points hollow, labelled), and the anisotropy bars (tau of the
    shift and of <du^2> per reflection; *truth*: {hkl: (tau_shift, tau_du2)} drawn as markers)."""
    fig.clear()
    with_t = series.temperature_rise is not None
    axes = fig.subplots(1, 3 + int(with_t))
    x = np.asarray(series.x, dtype=float)
    fine = np.linspace(x.min(), x.max(), 400) if x.size else x
    for ax, (value, err, key, label) in zip(axes, (("shift", "shift_err", "shift", "dq/q"),
                                                   ("du2_A2", "du2_err", "du2", "<du$^2$> (A$^2$)"))):
        for r in series.reflections:
            line = ax.errorbar(x, series.values(r.label, value), series.values(r.label, err), fmt="o", ms=3,
                               label=r.label)
            fit = series.fits.get(r.label, {}).get(key)
            if fit is not None:
                ax.plot(fine, fit.evaluate(fine), color=line[0].get_color(), lw=1)
        ax.set_xlabel(x_label)
        ax.set_ylabel(label)
        ax.axhline(0, color="0.7", lw=0.5)
    axes[0].legend(fontsize=7, title="hkl")
    if with_t:
        ax = axes[2]
        t = series.temperature_rise
        ok = np.array([p["value"] is not None for p in t])
        val = np.array([np.nan if p["value"] is None else p["value"] for p in t])
        err = np.array([np.nan if p["stderr"] is None else p["stderr"] for p in t])
        ext = np.array([bool(p["extrapolated"]) for p in t])
        ax.errorbar(x[ok & ~ext], val[ok & ~ext], err[ok & ~ext], fmt="o", color="C3", label="calibrated range")
        if np.any(ok & ext):
            ax.errorbar(x[ok & ext], val[ok & ext], err[ok & ext], fmt="o", mfc="none", color="C3",
                        label="extrapolated")
        ax.set_xlabel(x_label)
        ax.set_ylabel("lattice temperature rise dT (K)")
        ax.legend(fontsize=7)
    ax = axes[-1]
    rows = series.anisotropy()
    pos = np.arange(len(rows))
    for k, (name, color) in enumerate((("tau_shift_ps", "C0"), ("tau_du2_ps", "C1"))):
        v = [np.nan if r[name]["value"] is None else r[name]["value"] for r in rows]
        e = [np.nan if r[name]["stderr"] is None else r[name]["stderr"] for r in rows]
        ax.bar(pos + (k - 0.5) * 0.38, v, 0.38, yerr=e, color=color, capsize=2,
               label="tau shift" if k == 0 else "tau <du$^2$>")
        if truth:
            ax.plot(pos + (k - 0.5) * 0.38, [truth.get(r["hkl"], (np.nan, np.nan))[k] for r in rows], "k_", ms=14,
                    label="truth" if k == 0 else None)
    ax.set_xticks(pos, [r["hkl"] for r in rows])
    ax.set_ylabel("time constant (ps)")
    ax.set_title("anisotropy")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def draw_saxs(fig, rows, series: dict | None = None, last=None):
    """Synthesis figure into *fig* from per-frame rows ({"time_s", "fit": SphereFit or None}):
    r(t) and sigma/r(t) with error bars, relative concentration and yield vs time with their 98 %
    times (*series*, from ``saxs.saxs_series``), and I(q) of the last frame with its fit (*last*:
    (q A^-1, I - background, model)); the injection (t = 0) marked."""
    fig.clear()
    axes = fig.subplots(1, 4)
    ok = [r for r in rows if r.get("fit") is not None and r["fit"].particles]
    t = np.array([r["time_s"] for r in ok])
    r_mean = np.array([r["fit"].value("r_mean_nm") for r in ok])
    r_err = np.array([r["fit"].stderr("r_mean_nm") for r in ok])
    sig = np.array([r["fit"].value("sigma_nm") for r in ok])
    sig_err = np.array([r["fit"].stderr("sigma_nm") for r in ok])
    axes[0].errorbar(t, r_mean, r_err, fmt="o", ms=2, color="C0")
    axes[0].set_ylabel("mean radius r (nm)")
    rel = sig / r_mean if len(ok) else t
    axes[1].errorbar(t, 100 * rel, 100 * rel * np.hypot(sig_err / sig, r_err / r_mean) if len(ok) else t,
                     fmt="o", ms=2, color="C1")
    axes[1].set_ylabel("size dispersion sigma / r (%)")
    if series is not None:
        conc = [r.get("concentration_rel") for r in ok]
        yld = [r.get("yield_rel") for r in ok]
        axes[2].plot(t, [np.nan if v is None else v for v in conc], ".", ms=3, label="concentration")
        axes[2].plot(t, [np.nan if v is None else v for v in yld], ".", ms=3, label="yield (volume)")
        for key, color in (("t98_concentration_s", "C0"), ("t98_yield_s", "C1")):
            if series.get(key) is not None:
                axes[2].axvline(series[key], color=color, ls="--", lw=1, label=f"98 % at {series[key]:.1f} s")
        axes[2].axhline(0.98, color="0.6", lw=0.5)
        axes[2].legend(fontsize=7)
    axes[2].set_ylabel("relative to final")
    for ax in axes[:3]:
        ax.axvline(0, color="k", lw=0.8)
        ax.set_xlabel("time since injection (s)")
    axes[0].annotate(" injection", (0, 0.02), xycoords=("data", "axes fraction"), fontsize=7, va="bottom")
    ax = axes[3]
    if last is not None:
        from matplotlib.ticker import NullFormatter

        q, y, model = last[:3]
        shown = y > 0                                     # a log axis: bins at or below zero are left out
        ax.loglog(q[shown] * 10, y[shown], ".", ms=2, label="data - background")
        if model is not None:
            ax.loglog(q * 10, model, "-", color="C3", lw=1, label="sphere fit")
        ax.xaxis.set_minor_formatter(NullFormatter())     # decades only: the minor labels overlap
        ax.legend(fontsize=7)
    ax.set_xlabel("q (nm$^{-1}$)")
    ax.set_ylabel("I(q)")
    fig.tight_layout()
    return fig


def draw_stacking(fig, rows):
    """Anneal figure into *fig* from per-frame rows ({"time_s", "temperature_c", "fit":
    StackingFit}): the stacking period d vs temperature, and d and the temperature vs time."""
    fig.clear()
    ax_t, ax_d = fig.subplots(1, 2)
    ok = [r for r in rows if r["fit"].found]
    t = np.array([r["time_s"] for r in ok])
    temp = np.array([r["temperature_c"] for r in ok])
    d = np.array([r["fit"].d_nm[0] for r in ok])
    d_err = np.array([r["fit"].d_nm[1] for r in ok])
    ax_t.errorbar(temp, d, d_err, fmt="o", ms=2)
    ax_t.set_xlabel("temperature (C)")
    ax_t.set_ylabel("stacking period d (nm)")
    ax_d.errorbar(t, d, d_err, fmt="o", ms=2, color="C0")
    ax_d.set_xlabel("time (s)")
    ax_d.set_ylabel("stacking period d (nm)", color="C0")
    twin = ax_d.twinx()
    twin.plot([r["time_s"] for r in rows], [r["temperature_c"] for r in rows], "-", color="C3", lw=1)
    twin.set_ylabel("temperature (C)", color="C3")
    fig.tight_layout()
    return fig


def _raster_axis(values) -> tuple[np.ndarray, np.ndarray]:
    """The grid lines of raster positions along one axis: (centres, index of each value).
    Positions closer than half the smallest step are one line (encoder jitter); a step is a
    gap between sorted positions above a tenth of the largest one."""
    v = np.asarray(values, dtype=float)
    u = np.unique(v)
    if u.size == 1:
        return u, np.zeros(v.size, dtype=int)
    gaps = np.diff(u)
    step = gaps[gaps > 0.1 * gaps.max()].min()
    line = np.concatenate([[0], np.cumsum(gaps > 0.5 * step)])
    centres = np.bincount(line, u) / np.bincount(line)
    return centres, line[np.searchsorted(u, v)]


def _edges(centres, width: float) -> np.ndarray:
    """Cell edges around *centres* (midpoints; *width* for a single cell)."""
    if centres.size == 1:
        return np.array([centres[0] - width / 2, centres[0] + width / 2])
    mid = (centres[1:] + centres[:-1]) / 2
    return np.concatenate([[2 * centres[0] - mid[0]], mid, [2 * centres[-1] - mid[-1]]])


def raster_grid(rows):
    """Where each row of a raster goes in a map: (x edges, y edges, (iy, ix) per row, x label,
    y label). By ``x_um``, ``y_um`` when every row has them (a snake or any order draws right),
    else a strip of one row by frame index."""
    xs = [r.get("x_um") for r in rows]
    ys = [r.get("y_um") for r in rows]
    if rows and all(v is not None and math.isfinite(v) for v in xs + ys):
        (cx, ix), (cy, iy) = _raster_axis(xs), _raster_axis(ys)
        steps = [np.min(np.diff(c)) for c in (cx, cy) if c.size > 1]
        width = float(min(steps)) if steps else 1.0
        return _edges(cx, width), _edges(cy, width), (iy, ix), "x (um)", "y (um)"
    index = np.array([r.get("frame", k) for k, r in enumerate(rows)], dtype=float)
    cx, ix = _raster_axis(index) if len(rows) else (np.zeros(1), np.zeros(0, dtype=int))
    return _edges(cx, 1.0), np.array([-0.5, 0.5]), (np.zeros(len(rows), dtype=int), ix), "frame", ""


def _raster_map(fig, ax, grid, values, *, cmap, vmin, vmax, label, title, ticks=None):
    """One value per row as a colour map on the raster grid (a single pcolormesh); positions
    measured without a value (no grain) grey, positions not measured blank."""
    from matplotlib.colors import ListedColormap

    xe, ye, (iy, ix), xlabel, ylabel = grid
    image = np.full((ye.size - 1, xe.size - 1), np.nan)
    measured = np.zeros(image.shape, dtype=bool)
    measured[iy, ix] = True
    image[iy, ix] = values
    ax.pcolormesh(xe, ye, np.ma.masked_where(~measured, measured.astype(float)), cmap=ListedColormap(["0.8"]))
    mesh = ax.pcolormesh(xe, ye, np.ma.masked_invalid(image), cmap=cmap, vmin=vmin, vmax=vmax)
    fig.colorbar(mesh, ax=ax, label=label, ticks=ticks)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if ylabel:
        ax.set_aspect("equal")
    else:
        ax.set_yticks([])
    ax.set_title(title, fontsize=9)


def draw_xcca(fig, rows, report: dict | None = None, ccf=None):
    """XCCA figure of a raster into *fig* from per-pattern rows (``XccaAnalysis.add``:
    ``orientation_deg``, ``psi_deg``, ``n_fold``, placed by ``x_um``, ``y_um``, else by frame
    index): the grain orientation (cyclic, 0-180 deg), the misorientation psi (+-10 deg) and the
    n-fold symmetry of the SL ring per position (grey: no grain), and the averaged CCF vs D with its
    error band and its peaks (*report*: ``XccaAnalysis.report``), or a running CCF *ccf* = (D deg,
    C, error) during a scan. One mesh per map: cheap enough to redraw every few patterns.

    EXAMPLE::

        from matplotlib.figure import Figure
        fig = draw_xcca(Figure(figsize=(19, 4.4)), report["frames"], report)
        fig.savefig("xcca.png", dpi=110)
    """
    import matplotlib

    def column(key, none=np.nan):
        return np.array([none if r.get(key) is None else r[key] for r in rows], dtype=float)

    fig.clear()
    axes = fig.subplots(1, 4, gridspec_kw={"width_ratios": [1, 1, 1, 1.5]})
    grid = raster_grid(rows)
    n_fold = column("n_fold")
    _raster_map(fig, axes[0], grid, column("orientation_deg"), cmap=matplotlib.colormaps["twilight"], vmin=0.0,
                vmax=180.0, label="orientation (deg)", title="grain orientation (SL mirror axis)",
                ticks=[0, 45, 90, 135, 180])
    _raster_map(fig, axes[1], grid, column("psi_deg"), cmap=matplotlib.colormaps["RdBu_r"], vmin=-10.0, vmax=10.0,
                label="psi (deg)", title="misorientation psi = AL axis - SL axis")
    _raster_map(fig, axes[2], grid, np.where(n_fold > 0, n_fold, np.nan),
                cmap=matplotlib.colormaps["viridis"].resampled(6), vmin=1.0, vmax=13.0, label="n-fold",
                title="symmetry of the SL ring", ticks=[2, 4, 6, 8, 10, 12])
    ax = axes[3]
    peaks, title = [], "CCF (no pattern with both rings yet)"
    if report is not None:
        delta, c, err = (np.array([np.nan if v is None else v for v in report[k]], dtype=float)
                         for k in ("delta_deg", "ccf", "ccf_err"))
        peaks = np.asarray(report.get("peaks_deg") or [], dtype=float)
        title = f"averaged CCF of {report.get('n_frames_used')} patterns"
        beta, c_a = report.get("beta_deg"), report.get("c_over_a")
        if beta is not None and c_a is not None:
            title += f": beta {beta['value']:.2f} deg, c/a {c_a['value']:.3f}"
    elif ccf is not None:
        delta, c, err = (np.asarray(v, dtype=float) for v in ccf)
        title = "running CCF"
    else:
        delta = c = err = np.zeros(0)
    ok = np.isfinite(c)
    if ok.any():
        ax.plot(delta, c, "-", color="C0", lw=1, label="C(q1, q2, D)")
        e = np.where(np.isfinite(err), err, 0.0)
        ax.fill_between(delta, c - e, c + e, color="C0", alpha=0.3, lw=0, label="1 sigma")
        if len(peaks):
            ax.plot(peaks, np.interp(peaks, delta[ok], c[ok]), "v", color="C3", ms=6, label="peaks")
        ax.legend(fontsize=7, loc="best")
    if report is not None and report.get("q1") is not None:
        ax.text(0.01, 0.01, f"q1 {report['q1']:.4g}, q2 {report['q2']:.4g} A$^{{-1}}$", transform=ax.transAxes,
                fontsize=7)
    ax.axhline(0.0, color="0.6", lw=0.6)
    ax.set_xlim(-180, 180)
    ax.set_xticks(np.arange(-180, 181, 45))
    ax.set_xlabel("D (deg)")
    ax.set_ylabel("C(q1, q2, D) (relative to <I1> <I2>)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
