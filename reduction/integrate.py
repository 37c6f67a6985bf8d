"""Azimuthal integration from a beamline calibration (PONI file + mask): pyFAI's geometry and
corrections, applied by trxrd's integration engine (``reduction.engine``: compiled, multithreaded,
its pixel -> bin maps cached on disk) or by pyFAI itself (``engine="pyfai"``, the reference; or
``engine="opencl"``, pyFAI's OpenCL kernels on a GPU).

Negative and NaN pixel values (Pilatus module gaps, bad pixels) are treated as invalid; the
integrated intensity is corrected for solid angle and polarisation and can be normalised
by a monitor (I0). q is in A^-1.

EXAMPLE::

    from trxrd.reduction.integrate import AzimuthalIntegration
    integ = AzimuthalIntegration("/tmp/trx-data/waxs/waxs.poni", mask="/tmp/trx-data/waxs/waxs_mask.edf")
    q, i, sigma = integ.integrate(frame, monitor=5e-9)      # q in A^-1, sigma: Poisson 1-sigma
    (polar,) = integ.polars(frame, [((1.7, 1.95), 25, 180)])  # I(q, phi) sums, for XCCA
    curves = integ.integrate_many(frames, monitors=i0s)      # (N, npt) intensities and sigmas
    windows = AzimuthalIntegration(poni, mask=mask, q_windows=[(1.8, 1.9)])   # only those bins
"""
from __future__ import annotations

import contextlib
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
        from .io import check_cbf

        check_cbf(path)
        try:
            image = fabio.open(str(path))
            frames, mask = int(getattr(image, "nframes", 1) or 1), image.data
        except Exception as exc:    # fabio raises many kinds on a corrupt file
            raise ValueError(f"mask file {path} is not a readable image ({exc})") from exc
        if frames > 1:
            raise ValueError(f"mask file {path} holds {frames} images: expected one mask image")
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"a mask must be one 2-D image, got shape {mask.shape}")
    return mask != 0


@contextlib.contextmanager
def _quiet(name: str):
    """Log records of logger *name* below CRITICAL dropped inside the block."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _check_geometry(ai, poni) -> None:
    """The PONI's distance and wavelength finite and > 0, its positions and rotations finite."""
    for name, value, unit in (("Distance", ai.dist, "m"), ("Wavelength", ai.wavelength, "m")):
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"the PONI file {poni}: {name} must be a positive number of {unit}, got {value}")
    for name, value in (("Poni1", ai.poni1), ("Poni2", ai.poni2), ("Rot1", ai.rot1), ("Rot2", ai.rot2),
                        ("Rot3", ai.rot3)):
        if not np.isfinite(value):
            raise ValueError(f"the PONI file {poni}: {name} must be finite, got {value}")


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


ENGINES = ("trxrd", "cuda", "pyfai", "opencl")
OWN_ENGINES = ("trxrd", "cuda")          # trxrd's map: kernels on the CPU cores or on an NVIDIA GPU


class AzimuthalIntegration:
    """One calibration's integrator: its engines are built once (and cached on disk) and reused
    for every frame.

    Parameters
    ----------
    poni : path
        pyFAI calibration (must give the wavelength).
    mask : path or array, optional
        Non-zero = masked (fabio-readable image or array of the detector's shape).
    npt : int
        q bins of the 1D pattern.
    polarization_factor : float
    method : tuple
        pyFAI's (splitting, algorithm, implementation); trxrd's engine takes the splitting
        ("no" or "bbox") and pyFAI's pixel -> bin assignment for it.
    engine : {"trxrd", "cuda", "pyfai", "opencl"}
        Who applies the map: trxrd's kernels on the CPU cores (default) or on an NVIDIA GPU
        (``cuda``: needs CuPy, see ``trxrd.reduction.gpu``), pyFAI's Cython (the reference) or
        pyFAI's OpenCL (needs pyopencl and a GPU).
    q_windows : list of (q_min, q_max), optional
        Only the 1D bins overlapping these windows (A^-1) are computed; the rest come back empty.
    threads : int, optional
        Threads of trxrd's engine (default: the cores this process may run on).
    """

    def __init__(self, poni: str | Path, mask=None, npt: int = 1000,
                 polarization_factor: float = 0.99, method=("no", "csr", "cython"), engine: str = "trxrd",
                 q_windows=None, threads: int | None = None):
        import pyFAI

        poni = Path(poni)
        if not poni.is_file():
            raise FileNotFoundError(f"PONI file not found: {poni}")
        self.poni = poni
        try:
            with _quiet("pyFAI"):    # pyFAI logs a traceback before raising; the error below says it
                self.ai = pyFAI.load(str(poni))
        except Exception as exc:    # pyFAI raises many kinds on a malformed file
            raise ValueError(f"cannot read the PONI file {poni}: {exc}") from exc
        if not self.ai.wavelength:
            raise ValueError(f"the PONI file {poni} has no wavelength: q cannot be computed")
        _check_geometry(self.ai, poni)
        self.shape = tuple(self.ai.detector.shape) if self.ai.detector.shape else None
        if self.shape is None:
            raise ValueError(f"the PONI file {poni} names no detector shape: the pixels cannot be mapped")
        self.mask = load_mask(mask)
        if self.mask is not None and self.mask.shape != self.shape:
            raise ValueError(f"mask shape {self.mask.shape} does not match the detector {self.shape}")
        if self.mask is not None and self.mask.all():
            raise ValueError(f"the mask {mask if isinstance(mask, (str, Path)) else ''} masks every pixel "
                             "(non-zero = masked): nothing to integrate")
        self.npt = int(npt)
        if self.npt < 1:
            raise ValueError(f"npt (q bins) must be >= 1, got {npt}")
        self.polarization_factor = polarization_factor
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
        self.engine = engine
        self.method = tuple(method)
        if self.method[0] not in ("no", "bbox"):
            raise ValueError(f"splitting must be 'no' or 'bbox', got {self.method[0]!r}")
        if engine == "opencl":
            self.method = (self.method[0], "csr", "opencl")
            _check_opencl()
        if engine == "cuda":
            from .gpu import cupy

            cupy()                           # a clear error now, not at the first frame
        self.q_windows = None if q_windows is None else [tuple(map(float, w)) for w in q_windows]
        for window in self.q_windows or ():
            if len(window) != 2 or not (np.all(np.isfinite(window)) and window[0] < window[1]):
                raise ValueError(f"q window must be (q_min, q_max) with q_min < q_max, got {window}")
        from .engine import check_threads

        self.threads = check_threads(threads)
        self._engines: dict = {}

    # -- engines ---------------------------------------------------------------------------
    def _engine(self, key):
        """trxrd's engine for the 1D pattern (``key=None``) or a polar binning."""
        engine = self._engines.get(key)
        if engine is None:
            from .engine import IntegrationEngine

            split = self.method[0]
            if key is None:
                engine = IntegrationEngine.for_1d(self.ai, self.npt, mask=self.mask, split=split,
                                                  polarization_factor=self.polarization_factor)
                if self.q_windows:
                    width = np.diff(engine.radial).mean() / 2 if len(engine.radial) > 1 else np.inf
                    keep = np.zeros(engine.nbins, bool)
                    for lo, hi in self.q_windows:
                        keep |= (engine.radial + width >= lo) & (engine.radial - width <= hi)
                    engine = engine.restricted(keep)
            else:
                q_range, nq, nphi = key
                engine = IntegrationEngine.for_2d(self.ai, nq, nphi, mask=self.mask, split=split,
                                                  polarization_factor=self.polarization_factor,
                                                  radial_range=q_range)
            engine.threads = self.threads
            if self.engine == "cuda":
                from .gpu import CudaEngine

                engine = CudaEngine(engine)
            self._engines[key] = engine
        return engine

    def _check(self, frame, monitor) -> np.ndarray:
        frame = np.asarray(frame)
        if frame.shape != self.shape:
            raise ValueError(f"frame shape {frame.shape} does not match the detector {self.shape} "
                             f"of the PONI file {self.poni}")
        _check_monitor(monitor)
        return frame

    def _prepare(self, frame):
        """pyFAI's input: data as float32 with invalid pixels 0, and the invalid-pixel mask."""
        data = frame.astype(np.float32)
        invalid = ~np.isfinite(data) | (data < 0)
        if self.mask is not None:
            invalid |= self.mask
        data[invalid] = 0.0
        return data, invalid

    # -- integration ---------------------------------------------------------------------------
    def integrate(self, frame: np.ndarray, monitor: float | None = None,
                  dark: np.ndarray | None = None) -> Pattern:
        """Integrate one frame: (q_inv_angstrom, intensity, sigma), divided by *monitor*. A dark
        frame is subtracted by pyFAI (the reference path)."""
        frame = self._check(frame, monitor)
        if self.engine in OWN_ENGINES and dark is None:
            engine = self._engine(None)
            intensity, sigma = engine.intensity(engine.sums(frame), monitor)
            return Pattern(engine.radial, intensity, sigma)
        data, invalid = self._prepare(frame)
        res = self.ai.integrate1d(data, self.npt, mask=invalid, unit="q_A^-1",
                                  correctSolidAngle=True, polarization_factor=self.polarization_factor,
                                  method=self.method, normalization_factor=monitor or 1.0,
                                  dark=None if dark is None else np.asarray(dark, dtype=np.float32),
                                  error_model="poisson")
        return Pattern(res.radial, res.intensity, res.sigma)

    def polars(self, frame: np.ndarray, binnings, monitor: float | None = None) -> list[Polar]:
        """One frame re-binned onto each of *binnings* ``[(q_range, nq, nphi), ...]``: *nq* q bins
        over *q_range* (A^-1) x *nphi* azimuth bins over the full circle (pyFAI's 2D binning,
        same corrections and invalid pixels as ``integrate``)."""
        frame = self._check(frame, monitor)
        out = []
        data = invalid = None               # pyFAI's input, prepared once for all binnings
        for q_range, nq, nphi in binnings:
            key = (tuple(float(v) for v in q_range), int(nq), int(nphi))
            if self.engine in OWN_ENGINES:
                engine = self._engine(key)
                sums = engine.sums(frame)
                signal, norm, count = (engine.as_grid(v) for v in (sums.signal, sums.norm, sums.count))
                out.append(Polar(engine.radial, engine.azimuthal, signal, norm * (monitor or 1.0), count))
                continue
            if data is None:
                data, invalid = self._prepare(frame)
            res = self.ai.integrate2d_ng(data, int(nq), int(nphi), unit="q_A^-1", radial_range=key[0],
                                         azimuth_range=(-180.0, 180.0), mask=invalid, correctSolidAngle=True,
                                         polarization_factor=self.polarization_factor, method=self.method,
                                         normalization_factor=monitor or 1.0)
            out.append(Polar(res.radial, res.azimuthal, np.asarray(res.sum_signal, dtype=float),
                             np.asarray(res.sum_normalization, dtype=float), np.asarray(res.count, dtype=float)))
        return out

    def integrate_many(self, frames, monitors=None, dark: np.ndarray | None = None) -> Pattern:
        """Integrate a stack of frames (N, ny, nx): q (npt,), intensity and sigma (N, npt). The
        frames are shared out among the engine's threads."""
        frames = np.asarray(frames)
        if frames.ndim != 3:
            raise ValueError(f"expected a stack of frames (N, ny, nx), got shape {frames.shape}")
        if monitors is None:
            monitors = [None] * len(frames)
        if len(monitors) != len(frames):
            raise ValueError(f"{len(monitors)} monitor values for {len(frames)} frames")
        if len(frames):
            self._check(frames[0], None)
        for m in monitors:
            _check_monitor(m)
        if self.engine in OWN_ENGINES and dark is None and len(frames):
            engine = self._engine(None)
            values = np.array([1.0 if m is None else float(m) for m in monitors])
            intensity, sigma = engine.intensity(engine.sums_many(frames), values)
            return Pattern(engine.radial, intensity, sigma)
        patterns = [self.integrate(f, m, dark) for f, m in zip(frames, monitors)]
        q = patterns[0].q_inv_angstrom if patterns else np.zeros(0)
        return Pattern(q, np.array([p.intensity for p in patterns]), np.array([p.sigma for p in patterns]))


def _check_monitor(monitor) -> None:
    if monitor is not None and not (np.isfinite(monitor) and monitor > 0):
        raise ValueError(f"monitor (I0) must be a positive number, got {monitor}")


def _check_opencl() -> None:
    """pyFAI's OpenCL kernels need pyopencl and a GPU: a clear error where there is none."""
    try:
        from pyFAI.opencl import ocl
    except Exception as exc:     # pyopencl missing or broken
        raise RuntimeError(f"engine='opencl' needs pyopencl and an OpenCL GPU: {exc}") from exc
    if ocl is None or ocl.select_device(type="GPU") is None:
        raise RuntimeError("engine='opencl' needs an OpenCL GPU; none found (use engine='trxrd')")
