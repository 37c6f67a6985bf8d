"""Fluence calibration: scan the half-wave plate, read the power meter, fit the Malus law
and give the result to the attenuator (the beamline session saves it).

EXAMPLE::

    from trxrd.acquisition.plans.fluence import calibrate_fluence
    result = RE(calibrate_fluence(att, md={"sample": s}))   # p_min_w, p_max_w, theta0_deg (+ errors)
    att.max_fluence()                                        # mJ/cm^2
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from bluesky import plan_stubs as bps
from bluesky import preprocessors as bpp
from bluesky.utils import MsgGenerator
from scipy.optimize import curve_fit

from ..devices.fluence import malus_power_w
from ...validation import count, finite
from .metadata import plan_md


def fit_malus(theta_deg, power_w) -> dict:
    """Least-squares fit of P = Pmin + (Pmax - Pmin) cos^2(2 (theta - theta0)), with
    errors taken as 1 % of each reading (+ 1e-4 of the maximum).
    Returns values and 1-sigma errors; theta0 is folded into [-45, 45) deg."""
    theta = np.asarray(theta_deg, float)
    power = np.asarray(power_w, float)
    if theta.size < 5 or np.ptp(theta) < 45.0:
        raise ValueError("the calibration needs >= 5 angles spanning >= 45 deg")
    if not np.all(np.isfinite(power)):
        raise ValueError("power meter gave non-finite readings")
    guess = [max(power.min(), 0.0), max(power.max(), 1e-12), theta[np.argmax(power)]]
    # power meters err in proportion to the reading: weight so the minimum is fitted too
    sigma = 0.01 * np.abs(power) + 1e-4 * np.abs(power).max()
    # a power is never negative: a noisy minimum must not make P_min < 0
    popt, pcov = curve_fit(malus_power_w, theta, power, p0=guess, sigma=sigma,
                           bounds=([0.0, 0.0, -np.inf], [np.inf, np.inf, np.inf]))
    p_min, p_max, theta0 = popt
    if p_max < p_min:
        p_min, p_max, theta0 = p_max, p_min, theta0 + 45.0
    theta0 = (theta0 + 45.0) % 90.0 - 45.0
    err = np.sqrt(np.diag(pcov))
    resid = power - malus_power_w(theta, p_min, p_max, theta0)
    return {"p_min_w": float(p_min), "p_max_w": float(p_max), "theta0_deg": float(theta0),
            "p_min_w_err": float(err[0]), "p_max_w_err": float(err[1]), "theta0_deg_err": float(err[2]),
            "rms_residual_w": float(np.sqrt(np.mean(resid ** 2)))}


def calibrate_fluence(att, angles_deg: Iterable[float] | None = None, *, settle_s: float = 0.2,
                      readings: int = 1, md: dict | None = None) -> MsgGenerator[dict]:
    """Scan the waveplate, read the power meter, fit the Malus law and give the attenuator the
    calibration.

    Parameters
    ----------
    att : FluenceAttenuator
        The attenuator (waveplate + power meter).
    angles_deg : list of float, optional
        Waveplate angles (deg); default 0 .. 90 deg in 19 points.
    settle_s : float
        Wait after each move before reading (s).
    readings : int
        Power-meter readings (events) per angle.
    md : dict, optional
        Metadata for the start document; must hold ``sample``.

    Returns
    -------
    MsgGenerator
        The plan; it returns the fit (see ``fit_malus``). The run has the readings in
        ``primary`` and the result in the ``calibration`` stream. In a simulation
        (``summarize_plan``) nothing is fitted and the attenuator is left as it was.

    EXAMPLE::

        fit = RE(calibrate_fluence(att, md={"sample": s}))      # p_min_w, p_max_w, theta0_deg (+ errors)
    """
    if angles_deg is None:
        angles = np.linspace(0.0, 90.0, 19)
    elif isinstance(angles_deg, (str, bytes, dict)) or not np.iterable(angles_deg):
        raise ValueError(f"angles_deg must be a list of waveplate angles (deg), got {angles_deg!r:.60}")
    else:
        angles = list(angles_deg)
    angles = [finite(a, f"angles_deg[{i}] (waveplate angle)", unit="deg") for i, a in enumerate(angles)]
    if len(set(angles)) < 4:
        raise ValueError(f"angles_deg: the Malus-law fit (3 parameters) needs at least 4 different waveplate "
                         f"angles, got {angles}")
    for i, a in enumerate(angles):
        try:
            att.waveplate.check_value(a)
        except ValueError as exc:
            raise ValueError(f"angles_deg[{i}]: {exc}") from None
    settle_s = finite(settle_s, "settle_s", low=0.0, high=3600.0, unit="s")
    readings = count(readings, "readings")
    meta = plan_md("calibrate_fluence", {"angles_deg": angles, "settle_s": settle_s, "readings": readings},
                   md, hints={"dimensions": [([att.waveplate.name], "primary")]}, num_points=len(angles))

    result = {}

    def inner():
        theta, power = [], []
        for a in angles:
            yield from bps.checkpoint()
            yield from bps.mv(att.waveplate, a)
            yield from bps.sleep(settle_s)
            for _ in range(int(readings)):
                reading = yield from bps.trigger_and_read([att.waveplate, att.power])
                if reading:                        # empty in a simulation
                    theta.append(reading[att.waveplate.name]["value"])
                    power.append(reading[att.power.name]["value"])
                yield from bps.sleep(0.1)          # the meter updates at 10 Hz
        if not theta:
            return
        result.update(fit_malus(theta, power))
        att.set_calibration(result["p_min_w"], result["p_max_w"], result["theta0_deg"])
        yield from bps.trigger_and_read([att.p_min_w, att.p_max_w, att.theta0_deg], name="calibration")

    def outer():
        yield from bpp.run_wrapper(inner(), md=meta)
        return result

    return outer()
