"""Kinetics refit time: one bi-exponential fit with the instrument response (free t0 and IRF
width) to 60 delay points, as the live pump-probe chain refits while a delay scan runs.

The points: two decays convolved with a Gaussian IRF on a delay grid denser near time zero,
with Gaussian noise of 2 % of the peak (not the simulator's model or values). Median over
repeats of ``reduction.kinetics.fit_kinetics``. Run by ``make bench`` (``benchmarks/run.py``).

EXAMPLE::

    .venv/bin/python benchmarks/kinetics_rate.py          # a few seconds; JSON on stdout
"""
from __future__ import annotations

import json
import time

import numpy as np


def bench(quick: bool = False) -> dict:
    from trxrd.reduction.kinetics import fit_kinetics, kinetics_model

    rng = np.random.default_rng(3)
    delay = np.concatenate([np.linspace(-150, 150, 25), np.geomspace(170, 2500, 35)])
    truth = kinetics_model(delay, t0_ps=12.0, irf_fwhm_ps=65.0, amplitudes=[-1.0, -0.4], taus_ps=[45.0, 700.0])
    err = np.full(delay.size, 0.02)
    signal = truth + rng.normal(0.0, err)
    times, fit = [], None
    for _ in range(3 if quick else 7):
        t0 = time.perf_counter()
        fit = fit_kinetics(delay, signal, err, n_components=2)
        times.append(time.perf_counter() - t0)
    return {"kinetics_refit_ms": round(1e3 * float(np.median(times)), 1), "points": int(delay.size),
            "taus_ps": [round(fit.value(f"tau{k}_ps"), 1) for k in (1, 2)], "bound": "Python/lmfit per model call"}


if __name__ == "__main__":
    print(json.dumps(bench(), indent=1))
