"""Pump fluence: half-wave plate + polariser attenuator, power meter, laser repetition rate
and spot size, with pseudo axes ``fluence`` (mJ/cm^2) and ``excitations`` (<N>, absorbed
photons per nanocrystal).

    power(theta)  = P_min + (P_max - P_min) cos^2(2 (theta - theta0))   (Malus law, W)
    fluence       = power / rep_rate / spot_area,  spot_area = pi/(4 ln2) FWHM_x FWHM_y
    <N>           = sigma * fluence / (h c / lambda)

``P_min``, ``P_max`` and ``theta0`` come from ``calibrate_fluence`` (in
``trxrd.acquisition.plans.fluence``), which fits the power-meter readings of a waveplate scan.
The spot size is measured at the beamline (knife-edge scan) and given with ``set_spot``; there
is no default, so a fluence is never computed from an assumed spot. Requests above the
calibrated maximum, below the minimum, negative or NaN are refused before the waveplate moves.
The device keeps no files: calibration and spot changes are announced to
``subscribe(cb, event_type="calibration")`` subscribers (the beamline session saves them).

EXAMPLE::

    from trxrd.acquisition.devices.fluence import FluenceAttenuator
    att = FluenceAttenuator("TRX:", name="att", spot_fwhm_um=(270, 330), sigma_cm2=4e-14)
    att.wait_for_connection(timeout=10)
    RE(calibrate_fluence(att))
    RE(bps.mv(att.fluence, 1.5))          # mJ/cm^2
    RE(bps.mv(att.excitations, 100))      # <N>
"""
from __future__ import annotations

import math

import numpy as np
from ophyd import Component as Cpt
from ophyd import EpicsSignalRO, Signal
from ophyd.pseudopos import PseudoPositioner, PseudoSingle, pseudo_position_argument, real_position_argument

from ...validation import finite
from ._signals import CheckedMotor

H_C_J_NM = 6.62607015e-34 * 299792458.0 * 1e9      # h c in J nm


def malus_power_w(theta_deg, p_min_w, p_max_w, theta0_deg):
    """Power after the polariser at waveplate angle *theta_deg* (W)."""
    return p_min_w + (p_max_w - p_min_w) * np.cos(2 * np.radians(np.asarray(theta_deg) - theta0_deg)) ** 2


def spot_area_cm2(fwhm_x_um: float, fwhm_y_um: float) -> float:
    """Effective area of a Gaussian spot, pi / (4 ln 2) FWHM_x FWHM_y (cm^2)."""
    return math.pi / (4 * math.log(2)) * fwhm_x_um * fwhm_y_um * 1e-8


def excitations_per_fluence(sigma_cm2: float, wavelength_nm: float) -> float:
    """<N> per mJ/cm^2: sigma / (h c / lambda) * 1e-3."""
    return sigma_cm2 / (H_C_J_NM / wavelength_nm) * 1e-3


CALIBRATION_KEYS = ("p_min_w", "p_max_w", "theta0_deg", "spot_fwhm_x_um", "spot_fwhm_y_um")


class FluenceAttenuator(PseudoPositioner):
    """Waveplate attenuator with ``fluence`` (mJ/cm^2) and ``excitations`` (<N>) axes.

    Parameters
    ----------
    prefix : str
        PV prefix of the beamline (``WP:m1``, ``PM:Power_RBV``, ``LSR:RepRate_RBV`` below it).
    name : str
        Device name (data keys ``<name>_fluence``, ``<name>_excitations``, ...).
    spot_fwhm_um : (float, float), optional
        Measured pump spot, Gaussian FWHM x, y (um); required before any fluence is computed.
    wavelength_nm : float
        Pump wavelength (nm).
    sigma_cm2 : float, optional
        Absorption cross-section per nanocrystal (cm^2) for <N>; the plans set it from the sample.

    EXAMPLE::

        att = FluenceAttenuator("TRX:", name="att", spot_fwhm_um=(270, 330))
        att.set_calibration(1e-4, 0.0475, 12.0)      # W, W, deg (calibrate_fluence does this)
        att.max_fluence()                           # mJ/cm^2
    """

    fluence = Cpt(PseudoSingle, egu="mJ/cm^2", kind="hinted")
    excitations = Cpt(PseudoSingle, egu="<N>", kind="normal")
    waveplate = Cpt(CheckedMotor, "WP:m1", kind="normal")
    power = Cpt(EpicsSignalRO, "PM:Power_RBV", kind="normal")
    rep_rate = Cpt(EpicsSignalRO, "LSR:RepRate_RBV", kind="config")
    SUB_CALIBRATION = "calibration"
    spot_fwhm_x_um = Cpt(Signal, value=math.nan, kind="config")
    spot_fwhm_y_um = Cpt(Signal, value=math.nan, kind="config")
    wavelength_nm = Cpt(Signal, value=400.0, kind="config")
    sigma_cm2 = Cpt(Signal, value=math.nan, kind="config")
    p_min_w = Cpt(Signal, value=math.nan, kind="config")
    p_max_w = Cpt(Signal, value=math.nan, kind="config")
    theta0_deg = Cpt(Signal, value=math.nan, kind="config")

    def __init__(self, prefix="", *, name, spot_fwhm_um: tuple[float, float] | None = None,
                 wavelength_nm: float = 400.0, sigma_cm2: float = math.nan, **kwargs):
        super().__init__(prefix, name=name, **kwargs)
        if spot_fwhm_um is not None:
            self.set_spot(*spot_fwhm_um)
        self.wavelength_nm.put(finite(wavelength_nm, "pump wavelength", low=0, strict=True, unit="nm"))
        self.sigma_cm2.put(float(sigma_cm2))

    # -- configuration ---------------------------------------------------------------
    def set_spot(self, fwhm_x_um: float, fwhm_y_um: float) -> None:
        """Pump spot size on the sample, Gaussian FWHM (um), as measured (knife-edge scan)."""
        x = finite(fwhm_x_um, "spot FWHM x", low=0, strict=True, unit="um")
        y = finite(fwhm_y_um, "spot FWHM y", low=0, strict=True, unit="um")
        self.spot_fwhm_x_um.put(x)
        self.spot_fwhm_y_um.put(y)
        self._announce()

    def set_calibration(self, p_min_w: float, p_max_w: float, theta0_deg: float) -> None:
        """Malus-law calibration of the attenuator (W, W, deg)."""
        p_min_w = finite(p_min_w, "P_min", low=0.0, unit="W")
        p_max_w = finite(p_max_w, "P_max", low=p_min_w, strict=True, unit="W")
        theta0_deg = finite(theta0_deg, "theta0", unit="deg")
        for key, value in (("p_min_w", p_min_w), ("p_max_w", p_max_w), ("theta0_deg", theta0_deg)):
            getattr(self, key).put(value)
        self._announce()

    def calibration(self) -> dict:
        """Calibration and spot size now (NaN where not set)."""
        return {key: float(getattr(self, key).get()) for key in CALIBRATION_KEYS}

    def _announce(self) -> None:
        self._run_subs(sub_type=self.SUB_CALIBRATION, **self.calibration())

    @property
    def calibrated(self) -> bool:
        """Malus law fitted and spot size given."""
        return all(math.isfinite(v) for v in self.calibration().values())

    def spot_area_cm2(self) -> float:
        x, y = self.spot_fwhm_x_um.get(), self.spot_fwhm_y_um.get()
        if not (math.isfinite(x) and math.isfinite(y)):
            raise ValueError(f"{self.name}: pump spot size not set: {self.name}.set_spot(fwhm_x_um, fwhm_y_um) "
                             "with the measured FWHM (knife-edge scan)")
        return spot_area_cm2(x, y)

    def fluence_for_power(self, power_w):
        """Fluence (mJ/cm^2) of an average power (W)."""
        return np.asarray(power_w) / self.rep_rate.get() * 1e3 / self.spot_area_cm2()

    def power_for_fluence(self, fluence_mj_cm2):
        return np.asarray(fluence_mj_cm2) * self.spot_area_cm2() * self.rep_rate.get() * 1e-3

    def n_per_fluence(self) -> float:
        sigma = self.sigma_cm2.get()
        if not (math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"{self.name}: absorption cross-section sigma_cm2 not set "
                             "(att.sigma_cm2.put(4e-14) or set_sample(...) in a plan)")
        return excitations_per_fluence(sigma, self.wavelength_nm.get())

    def max_fluence(self) -> float:
        """Largest fluence the attenuator delivers (mJ/cm^2), from the calibration."""
        self._require_calibration()
        return float(self.fluence_for_power(self.p_max_w.get()))

    def measured_fluence(self) -> float:
        """Fluence from the power meter's current reading (mJ/cm^2)."""
        return float(self.fluence_for_power(self.power.get()))

    def _require_calibration(self):
        self.spot_area_cm2()
        if not all(math.isfinite(getattr(self, k).get()) for k in ("p_min_w", "p_max_w", "theta0_deg")):
            raise ValueError(f"{self.name}: fluence calibration missing: run RE(calibrate_fluence({self.name}))")

    # -- pseudo axes -----------------------------------------------------------------
    def move_single(self, pseudo, position, **kwargs):
        """Moving either axis moves both consistently (``excitations`` = fluence * sigma / h nu)."""
        if pseudo is self.excitations:
            position = finite(position, f"{self.name} excitations", low=0.0, unit="<N>") / self.n_per_fluence()
        return self.move(self._pair(position), **kwargs)

    def _pair(self, fluence):
        fluence = finite(fluence, f"{self.name} fluence", low=0.0, unit="mJ/cm^2")
        try:
            n = fluence * self.n_per_fluence()
        except ValueError:
            n = math.nan
        return self.PseudoPosition(fluence=fluence, excitations=n)

    def check_value(self, pseudo_pos):
        fluence = pseudo_pos[0] if isinstance(pseudo_pos, (tuple, list)) else pseudo_pos
        fluence = finite(fluence, f"{self.name} fluence", low=0.0, unit="mJ/cm^2")
        self._require_calibration()
        f_min = float(self.fluence_for_power(self.p_min_w.get()))
        f_max = self.max_fluence()
        if not f_min <= fluence <= f_max:
            raise ValueError(f"{self.name}: fluence {fluence:.4g} mJ/cm^2 is outside what the attenuator "
                             f"delivers, {f_min:.4g} .. {f_max:.4g} mJ/cm^2 (spot "
                             f"{self.spot_fwhm_x_um.get():g} x {self.spot_fwhm_y_um.get():g} um)")
        self.waveplate.check_value(self.forward(self._pair(fluence)).waveplate)

    @pseudo_position_argument
    def forward(self, pseudo_pos):
        self._require_calibration()
        p_min, p_max = self.p_min_w.get(), self.p_max_w.get()
        frac = (float(self.power_for_fluence(pseudo_pos.fluence)) - p_min) / (p_max - p_min)
        frac = min(max(frac, 0.0), 1.0)
        theta = self.theta0_deg.get() + 0.5 * math.degrees(math.acos(math.sqrt(frac)))
        return self.RealPosition(waveplate=theta)

    @real_position_argument
    def inverse(self, real_pos):
        if not self.calibrated:
            return self.PseudoPosition(fluence=math.nan, excitations=math.nan)
        power = malus_power_w(real_pos.waveplate, self.p_min_w.get(), self.p_max_w.get(), self.theta0_deg.get())
        fluence = float(self.fluence_for_power(power))
        sigma = self.sigma_cm2.get()
        n = fluence * excitations_per_fluence(sigma, self.wavelength_nm.get()) if sigma > 0 else math.nan
        return self.PseudoPosition(fluence=fluence, excitations=n)
