"""Azimuthal integration with pyFAI from a beamline calibration (PONI file + mask).

Negative pixel values (Pilatus module gaps, bad pixels) are treated as invalid; the
integrated intensity is corrected for solid angle and polarisation and can be normalised
by a monitor (I0). q is in A^-1.

EXAMPLE::

    from trxrd.reduction.integrate import AzimuthalIntegration
    integ = AzimuthalIntegration("/tmp/trx-data/waxs/waxs.poni", mask="/tmp/trx-data/waxs/waxs_mask.edf")
    q, i, sigma = integ.integrate(frame, monitor=5e-9)      # q in A^-1, sigma: Poisson 1-sigma
    (polar,) = integ.polars(frame, [((1.7, 1.95), 25, 180)])  # I(q, phi) sums, for XCCA
    curves = integ.integrate_many(frames, monitors=i0s)      # (N, npt) intensities and sigmas
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

import numpy as np

logging.getLogger("silx.opencl.common").setLevel(logging.ERROR)


def load_mask(mask) -> np.ndarray | None:
    """A mask from an array or an image file readable by fabio (non-zero = masked)."""
    if mask is None:
        return None
    if isinstance(mask, (str, Path)):
        import fabio

        path = Path(mask)
        if not path.is_file():
            raise FileNotFoundError(f"mask file not found: {path}")
        try:
            mask = fabio.open(str(path)).data
        except Exception as exc:    # fabio raises many kinds on a corrupt file
            raise ValueError(f"mask file {path} is not a readable image ({exc})") from exc
    return np.asarray(mask) != 0


class Pattern(NamedTuple):
    """One integrated frame: q (A^-1), intensity and its Poisson 1-sigma error per bin."""
    q_inv_angstrom: np.ndarray
    intensity: np.ndarray
    sigma: np.ndarray


class Polar(NamedTuple):
    """One frame re-binned in (phi, q): per bin the summed counts, the summed normalisation
    (solid angle x polarisation x monitor) and the number of valid pixels. A bin is valid where
    ``count > 0``; its intensity is ``signal / norm`` and its Poisson 1-sigma ``sqrt(signal) / norm``.
    phi is pyFAI's azimuth chi (deg, bin centres from -180 to 180), q in A^-1."""
    q_inv_angstrom: np.ndarray      # (nq,)
    phi_deg: np.ndarray             # (nphi,)
    signal: np.ndarray              # (nphi, nq)
    norm: np.ndarray
    count: np.ndarray


class AzimuthalIntegration:
    """One pyFAI integrator per geometry, built once and reused for every frame."""

    def __init__(self, poni: str | Path, mask=None, npt: int = 1000,
                 polarization_factor: float = 0.99, method=("no", "csr", "cython")):
        import pyFAI

        poni = Path(poni)
        if not poni.is_file():
            raise FileNotFoundError(f"PONI file not found: {poni}")
        self.poni = poni
        try:
            self.ai = pyFAI.load(str(poni))
        except Exception as exc:    # pyFAI raises many kinds on a malformed file
            raise ValueError(f"cannot read the PONI file {poni}: {exc}") from exc
        if not self.ai.wavelength:
            raise ValueError(f"the PONI file {poni} has no wavelength: q cannot be computed")
        self.shape = tuple(self.ai.detector.shape) if self.ai.detector.shape else None
        self.mask = load_mask(mask)
        if self.mask is not None and self.shape and self.mask.shape != self.shape:
            raise ValueError(f"mask shape {self.mask.shape} does not match the detector {self.shape}")
        self.npt = int(npt)
        self.polarization_factor = polarization_factor
        self.method = method
        self._polar: dict = {}

    def _prepare(self, frame, monitor):
        """(data as float32 with invalid pixels 0, invalid-pixel mask), after the checks."""
        frame = np.asarray(frame)
        if self.shape and frame.shape != self.shape:
            raise ValueError(f"frame shape {frame.shape} does not match the detector {self.shape} "
                             f"of the PONI file {self.poni}")
        data = frame.astype(np.float32)
        invalid = ~np.isfinite(data) | (data < 0)
        if self.mask is not None:
            invalid |= self.mask
        data[invalid] = 0.0
        if monitor is not None and not (np.isfinite(monitor) and monitor > 0):
            raise ValueError(f"monitor (I0) must be a positive number, got {monitor}")
        return data, invalid

    def integrate(self, frame: np.ndarray, monitor: float | None = None,
                  dark: np.ndarray | None = None) -> Pattern:
        """Integrate one frame: (q_inv_angstrom, intensity, sigma), divided by *monitor*."""
        data, invalid = self._prepare(frame, monitor)
        res = self.ai.integrate1d(data, self.npt, mask=invalid, unit="q_A^-1",
                                  correctSolidAngle=True, polarization_factor=self.polarization_factor,
                                  method=self.method, normalization_factor=monitor or 1.0,
                                  dark=None if dark is None else np.asarray(dark, dtype=np.float32),
                                  error_model="poisson")
        return Pattern(res.radial, res.intensity, res.sigma)

    def polars(self, frame: np.ndarray, binnings, monitor: float | None = None) -> list[Polar]:
        """One frame re-binned onto each of *binnings* ``[(q_range, nq, nphi), ...]``: *nq* q bins
        over *q_range* (A^-1) x *nphi* azimuth bins over the full circle (pyFAI's 2D integration,
        same corrections and invalid pixels as ``integrate``; the frame is prepared once)."""
        data, invalid = self._prepare(frame, monitor)
        out = []
        for q_range, nq, nphi in binnings:
            key = (tuple(q_range), int(nq), int(nphi))
            ai = self._polar.get(key)
            if ai is None:       # one integrator per binning: pyFAI keeps one sparse matrix per integrator
                import copy

                ai = self._polar[key] = copy.deepcopy(self.ai)
            res = ai.integrate2d_ng(data, int(nq), int(nphi), unit="q_A^-1", radial_range=tuple(q_range),
                                    azimuth_range=(-180.0, 180.0), mask=invalid, correctSolidAngle=True,
                                    polarization_factor=self.polarization_factor, method=self.method,
                                    normalization_factor=monitor or 1.0)
            out.append(Polar(res.radial, res.azimuthal, np.asarray(res.sum_signal, dtype=float),
                             np.asarray(res.sum_normalization, dtype=float), np.asarray(res.count, dtype=float)))
        return out

    def integrate_many(self, frames, monitors=None, dark: np.ndarray | None = None) -> Pattern:
        """Integrate a stack of frames (N, ny, nx): q (npt,), intensity and sigma (N, npt)."""
        frames = np.asarray(frames)
        if frames.ndim != 3:
            raise ValueError(f"expected a stack of frames (N, ny, nx), got shape {frames.shape}")
        if monitors is None:
            monitors = [None] * len(frames)
        if len(monitors) != len(frames):
            raise ValueError(f"{len(monitors)} monitor values for {len(frames)} frames")
        patterns = [self.integrate(f, m, dark) for f, m in zip(frames, monitors)]
        q = patterns[0].q_inv_angstrom if patterns else np.zeros(0)
        return Pattern(q, np.array([p.intensity for p in patterns]), np.array([p.sigma for p in patterns]))
