"""Azimuthal integration with pyFAI from a beamline calibration (PONI file + mask).

Negative pixel values (Pilatus module gaps, bad pixels) are treated as invalid; the
integrated intensity is corrected for solid angle and polarisation and can be normalised
by a monitor (I0). q is in A^-1.

EXAMPLE::

    from reduction.integrate import AzimuthalIntegration
    integ = AzimuthalIntegration("/tmp/trx-data/waxs/waxs.poni", mask="/tmp/trx-data/waxs/waxs_mask.edf")
    q, i = integ.integrate(frame, monitor=5e-9)      # q in A^-1
"""
from __future__ import annotations

import logging
from pathlib import Path

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
        mask = fabio.open(str(path)).data
    return np.asarray(mask) != 0


class AzimuthalIntegration:
    """One pyFAI integrator per geometry, built once and reused for every frame."""

    def __init__(self, poni: str | Path, mask=None, npt: int = 1000,
                 polarization_factor: float = 0.99, method=("no", "csr", "cython")):
        import pyFAI

        poni = Path(poni)
        if not poni.is_file():
            raise FileNotFoundError(f"PONI file not found: {poni}")
        self.ai = pyFAI.load(str(poni))
        self.shape = tuple(self.ai.detector.shape) if self.ai.detector.shape else None
        self.mask = load_mask(mask)
        if self.mask is not None and self.shape and self.mask.shape != self.shape:
            raise ValueError(f"mask shape {self.mask.shape} does not match the detector {self.shape}")
        self.npt = int(npt)
        self.polarization_factor = polarization_factor
        self.method = method

    def integrate(self, frame: np.ndarray, monitor: float | None = None, dark: np.ndarray | None = None):
        """Return (q_inv_angstrom, intensity) of one frame."""
        frame = np.asarray(frame)
        if self.shape and frame.shape != self.shape:
            raise ValueError(f"frame shape {frame.shape} does not match the calibration {self.shape}")
        invalid = frame < 0
        if self.mask is not None:
            invalid = invalid | self.mask
        data = frame.astype(np.float32)
        if dark is not None:
            data = data - np.asarray(dark, dtype=np.float32)
        if monitor is not None:
            if not np.isfinite(monitor) or monitor <= 0:
                raise ValueError(f"monitor must be a positive number, got {monitor}")
        res = self.ai.integrate1d(data, self.npt, mask=invalid, unit="q_A^-1",
                                  correctSolidAngle=True, polarization_factor=self.polarization_factor,
                                  method=self.method, normalization_factor=monitor or 1.0)
        return res.radial, res.intensity
