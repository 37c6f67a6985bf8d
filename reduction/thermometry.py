"""Lattice thermometry: a static heating series calibrates a peak position (or a lattice
parameter) against temperature; inverting the calibration turns transient positions into
effective lattice temperatures (docs/science.md 8).

A hot lattice expands: peak positions in q fall with temperature (negative slope), lattice
parameters and d spacings rise (positive slope). The calibration is a weighted polynomial
position(T) = sum_k c_k (T - T_ref)^k, T_ref the lowest calibration temperature.

EXAMPLE::

    import numpy as np
    from trxrd.reduction.thermometry import calibrate_thermometer, lattice_temperature, temperature_rise
    t_c = np.linspace(25, 170, 12)                       # heating-cell set points, C
    q = 1.88 * (1 - 3.7e-5 * (t_c - 25))                 # (112) positions from pseudo-Voigt fits, A^-1
    cal = calibrate_thermometer(t_c, q, np.full(12, 1e-5))
    cal.expansion_per_k                                  # -3.7e-5 per K (relative shift of q)
    lattice_temperature(cal, [1.8752, 1.8740], 1e-5)     # ([~94.0, ~111.3] C, [~0.15, ~0.15] K)
    temperature_rise(cal, 1.8740, 1.8760, 1e-5)          # (~28.8 K, ~0.2 K): pump-on vs pump-off
    cal.as_dict()                                        # JSON-able, for the run's metadata
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

EXTRAPOLATION_FRACTION = 0.2     # inversion allowed this fraction of the span beyond the range
MONOTONIC_CHECK_POINTS = 201     # where the calibration's slope is checked for a sign change


def _array(name: str, values) -> np.ndarray:
    a = np.asarray(values, dtype=float)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} holds NaN or infinite values")
    return a


def _errors(name: str, err, shape) -> np.ndarray:
    """1-sigma errors broadcast to *shape* (0 when None); must be finite and >= 0."""
    if err is None:
        return np.zeros(shape)
    e = _array(name, np.broadcast_to(np.asarray(err, dtype=float), shape))
    if np.any(e < 0):
        raise ValueError(f"{name} must be >= 0")
    return e


@dataclass
class ThermometerCalibration:
    """position(T) = sum_k coefficients[k] (T - reference_temperature_c)^k with the
    coefficients' covariance; ``quantity`` names the position and its unit."""

    quantity: str
    coefficients: np.ndarray
    covariance: np.ndarray
    reference_temperature_c: float
    temperature_range_c: tuple
    redchi: float
    ndata: int
    weighted: bool
    sample: str | None = None         # the sample it was measured on (a thermometer is per sample)

    @property
    def degree(self) -> int:
        return self.coefficients.size - 1

    @property
    def extrapolation_limits_c(self) -> tuple:
        """Temperatures the inversion may reach: the calibrated range widened by 20 % of its
        span on each side."""
        lo, hi = self.temperature_range_c
        margin = EXTRAPOLATION_FRACTION * (hi - lo)
        return lo - margin, hi + margin

    def position(self, temperature_c):
        """Calibrated position at *temperature_c*."""
        x = np.asarray(temperature_c, dtype=float) - self.reference_temperature_c
        return np.polynomial.polynomial.polyval(x, self.coefficients)

    def slope(self, temperature_c):
        """d position / dT (per K) at *temperature_c*."""
        x = np.asarray(temperature_c, dtype=float) - self.reference_temperature_c
        return np.polynomial.polynomial.polyval(x, np.polynomial.polynomial.polyder(self.coefficients))

    @property
    def expansion_per_k(self) -> float:
        """Relative change per K at the reference temperature, (d position / dT) / position."""
        return float(self.coefficients[1] / self.coefficients[0])

    @property
    def expansion_per_k_err(self) -> float:
        c0, c1 = self.coefficients[:2]
        grad = np.array([-c1 / c0 ** 2, 1.0 / c0])
        return float(math.sqrt(grad @ self.covariance[:2, :2] @ grad))

    def _solve(self, position: np.ndarray) -> np.ndarray:
        """Temperatures whose calibrated position is *position* (the calibration is monotonic
        over the extrapolation limits, so the root is unique)."""
        t_lo, t_hi = self.extrapolation_limits_c
        p_lo, p_hi = float(self.position(t_lo)), float(self.position(t_hi))
        outside = (position < min(p_lo, p_hi)) | (position > max(p_lo, p_hi))
        if np.any(outside):
            raise ValueError(
                f"{self.quantity} {position[outside][:3].tolist()} lies beyond the calibration "
                f"extrapolated by {EXTRAPOLATION_FRACTION:.0%} ({self.quantity} {p_lo:.6g} .. {p_hi:.6g} "
                f"for {t_lo:.1f} .. {t_hi:.1f} C): extend the heating series")
        return np.array([brentq(lambda t: float(self.position(t)) - p, t_lo, t_hi, xtol=1e-9)
                         for p in position.ravel()]).reshape(position.shape)

    def _coefficient_gradient(self, temperature_c: np.ndarray) -> np.ndarray:
        """dT / dc_k = -(T - T_ref)^k / slope(T) at fixed position, shape (..., degree + 1)."""
        x = temperature_c - self.reference_temperature_c
        powers = x[..., None] ** np.arange(self.coefficients.size)
        return -powers / self.slope(temperature_c)[..., None]

    def temperature(self, position, position_err=None) -> tuple:
        """Invert the calibration: (temperature_c, err) for *position* (same shape; float for a
        scalar). err combines position_err (1 sigma) and the calibration covariance. Raises
        ValueError for positions more than 20 % of the calibrated span beyond its range."""
        p = _array(self.quantity, position)
        e = _errors("position_err", position_err, p.shape)
        t = self._solve(p)
        g = self._coefficient_gradient(t)
        var = (e / self.slope(t)) ** 2 + np.einsum("...i,ij,...j->...", g, self.covariance, g)
        err = np.sqrt(var)
        if t.ndim == 0:
            return float(t), float(err)
        return t, err

    def as_dict(self) -> dict:
        """JSON-able summary of the calibration."""
        return {"quantity": self.quantity, "degree": self.degree,
                "coefficients": self.coefficients.tolist(), "covariance": self.covariance.tolist(),
                "reference_temperature_c": self.reference_temperature_c,
                "temperature_range_c": list(self.temperature_range_c),
                "expansion_per_k": self.expansion_per_k, "expansion_per_k_err": self.expansion_per_k_err,
                "redchi": self.redchi, "ndata": self.ndata, "weighted": self.weighted, "sample": self.sample}

    @classmethod
    def from_dict(cls, values: dict) -> "ThermometerCalibration":
        """The calibration back from ``as_dict()`` (a saved thermometer)."""
        try:
            coef = _array("coefficients", values["coefficients"])
            cov = _array("covariance", values["covariance"])
            if coef.ndim != 1 or coef.size < 2 or cov.shape != (coef.size, coef.size):
                raise ValueError("coefficients / covariance of inconsistent shapes")
            lo, hi = (float(v) for v in values["temperature_range_c"])
            return cls(quantity=str(values["quantity"]), coefficients=coef, covariance=cov,
                       reference_temperature_c=float(values["reference_temperature_c"]),
                       temperature_range_c=(lo, hi), redchi=float(values["redchi"]), ndata=int(values["ndata"]),
                       weighted=bool(values["weighted"]), sample=values.get("sample"))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a thermometer calibration: {exc}") from None


def calibrate_thermometer(temperature_c, position, position_err=None, degree: int = 1,
                          quantity: str = "q_inv_angstrom") -> ThermometerCalibration:
    """Weighted least-squares polynomial of *position* (a peak's q, or a lattice parameter;
    *quantity* names it with its unit) vs *temperature_c* from a static heating series.

    With *position_err* (1 sigma) the covariance is absolute; without it the points weigh
    equally and the covariance is scaled by the reduced chi-square. Needs >= degree + 2
    points at >= degree + 1 distinct temperatures, and a calibration that is monotonic over
    the range widened by 20 % (so that it can be inverted).
    """
    if not isinstance(degree, (int, np.integer)) or degree < 1:
        raise ValueError(f"degree must be an integer >= 1, got {degree!r}")
    t = _array("temperature_c", temperature_c)
    p = _array(quantity, position)
    if t.ndim != 1 or p.shape != t.shape:
        raise ValueError(f"temperature_c {t.shape} and position {p.shape} must be 1-D of equal length")
    if t.size < degree + 2 or np.unique(t).size < degree + 1:
        raise ValueError(f"a degree-{degree} calibration needs >= {degree + 2} points at >= "
                         f"{degree + 1} distinct temperatures, got {t.size} at {np.unique(t).size}")
    if np.any(p <= 0):
        raise ValueError(f"{quantity} must be > 0")
    if position_err is None:
        w = np.ones_like(p)
    else:
        e = _errors("position_err", position_err, p.shape)
        if np.any(e == 0):
            raise ValueError("position_err must be > 0")
        w = 1.0 / e ** 2
    t_ref = float(t.min())
    design = np.vander(t - t_ref, degree + 1, increasing=True)
    cov = np.linalg.inv(design.T @ (w[:, None] * design))
    coef = cov @ (design.T @ (w * p))
    resid = p - design @ coef
    redchi = float(w @ (resid * resid)) / (t.size - degree - 1)
    if position_err is None:
        cov = cov * redchi
    cal = ThermometerCalibration(quantity=quantity, coefficients=coef, covariance=cov,
                                 reference_temperature_c=t_ref,
                                 temperature_range_c=(t_ref, float(t.max())), redchi=redchi,
                                 ndata=int(t.size), weighted=position_err is not None)
    slopes = cal.slope(np.linspace(*cal.extrapolation_limits_c, MONOTONIC_CHECK_POINTS))
    if not (np.all(slopes > 0) or np.all(slopes < 0)):
        raise ValueError(f"the degree-{degree} calibration is not monotonic over "
                         f"{cal.extrapolation_limits_c[0]:.1f} .. {cal.extrapolation_limits_c[1]:.1f} C "
                         "and cannot be inverted: use a lower degree or check the data")
    return cal


def lattice_temperature(calibration: ThermometerCalibration, position, position_err=None) -> tuple:
    """Effective lattice temperatures (C) of transient peak positions, with errors: arrays."""
    t, err = calibration.temperature(position, position_err)
    return np.atleast_1d(t), np.atleast_1d(err)


def temperature_rise(calibration: ThermometerCalibration, position_on, position_off, position_err=None) -> tuple:
    """Transient heating delta T (K) = T(pump-on position) - T(pump-off position), with its
    error. *position_err* is the 1-sigma error of each position (on and off alike). The
    calibration's offset cancels; its slope uncertainty is propagated. Floats in, floats out."""
    on = _array("position_on", position_on)
    off = _array("position_off", position_off)
    on, off = np.broadcast_arrays(on, off)
    e = _errors("position_err", position_err, on.shape)
    t_on, t_off = calibration._solve(on), calibration._solve(off)
    s_on, s_off = calibration.slope(t_on), calibration.slope(t_off)
    g = calibration._coefficient_gradient(t_on) - calibration._coefficient_gradient(t_off)
    var = e ** 2 * (1.0 / s_on ** 2 + 1.0 / s_off ** 2) + np.einsum("...i,ij,...j->...", g, calibration.covariance, g)
    rise, err = t_on - t_off, np.sqrt(var)
    if rise.ndim == 0:
        return float(rise), float(err)
    return rise, err
