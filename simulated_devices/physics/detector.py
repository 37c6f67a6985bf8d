"""Area-detector geometry and image formation for the simulator.

The geometry is a pyFAI one, written as a PONI file + mask next to the data, exactly what
pyFAI-calib2 gives a beamline; images are an I(q) profile mapped onto the pixels with the
solid-angle and polarisation factors, then Poisson noise. Module gaps read -1, as on a
Pilatus.

EXAMPLE::

    from trxrd.simulated_devices.physics.detector import DetectorGeometry
    geo = DetectorGeometry("pilatus300k", distance_mm=70, poni1_mm=53, poni2_mm=5, energy_kev=11.7)
    geo.shape                                  # (619, 487)
    geo.write_calibration("/tmp/waxs", "waxs")  # /tmp/waxs/waxs.poni, /tmp/waxs/waxs_mask.edf

    pool = PoissonPool(size=12)                 # streaming a Pilatus 2M: ~1 ms a frame, not ~90 ms
    frame, flux = pool.frame(("state", 0.1), lambda: expected_counts, 0.03, rng)
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path

import numpy as np

logging.getLogger("silx.opencl.common").setLevel(logging.ERROR)   # no GPU here: not news

DETECTORS = {"pilatus300k": "Pilatus300k", "pilatus2m": "Pilatus2m"}
HC_KEV_ANGSTROM = 12.398419843320026


class DetectorGeometry:
    """A Pilatus-like detector at a pyFAI geometry, with per-pixel q (A^-1) precomputed."""

    def __init__(self, detector: str, distance_mm: float, poni1_mm: float, poni2_mm: float,
                 energy_kev: float, polarization_factor: float = 0.99,
                 beamstop_radius_mm: float = 0.0):
        import pyFAI
        from pyFAI.integrator.azimuthal import AzimuthalIntegrator

        if detector not in DETECTORS:
            raise ValueError(f"unknown detector {detector!r}; choose one of {sorted(DETECTORS)}")
        self.name = detector
        self.detector = pyFAI.detector_factory(DETECTORS[detector])
        self.wavelength_angstrom = HC_KEV_ANGSTROM / energy_kev
        self.ai = AzimuthalIntegrator(
            dist=distance_mm * 1e-3, poni1=poni1_mm * 1e-3, poni2=poni2_mm * 1e-3,
            detector=self.detector, wavelength=self.wavelength_angstrom * 1e-10,
        )
        self.shape = tuple(self.detector.shape)
        self.q = (self.ai.qArray() / 10.0).astype(np.float32)          # nm^-1 -> A^-1
        self.geometry_factor = (self.ai.solidAngleArray()
                                * self.ai.polarization(factor=polarization_factor)).astype(np.float32)
        gaps = self.detector.mask
        self.gaps = np.zeros(self.shape, bool) if gaps is None else gaps.astype(bool)
        self.mask = self.gaps.copy()
        if beamstop_radius_mm > 0:
            y, x = np.indices(self.shape)
            r2 = ((y + 0.5) * self.detector.pixel1 - poni1_mm * 1e-3) ** 2 + (
                (x + 0.5) * self.detector.pixel2 - poni2_mm * 1e-3) ** 2
            self.beamstop = r2 < (beamstop_radius_mm * 1e-3) ** 2
            self.mask |= self.beamstop
        else:
            self.beamstop = np.zeros(self.shape, bool)
        self.q_max = float(self.q.max())

    def expected_image(self, q_grid: np.ndarray, profile: np.ndarray) -> np.ndarray:
        """Noiseless counts per second: profile(q) interpolated per pixel x geometry factor."""
        img = np.interp(self.q, q_grid, profile).astype(np.float32)
        img *= self.geometry_factor
        img[self.beamstop] *= np.float32(1e-3)
        return img

    def noisy_frame(self, expected: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Poisson counts as int32, gaps set to -1 like a Pilatus."""
        frame = rng.poisson(expected).astype(np.int32)
        frame[self.gaps] = -1
        return frame

    def write_calibration(self, directory: str | Path, name: str) -> tuple[Path, Path]:
        """Write ``<name>.poni`` and ``<name>_mask.edf`` (1 = masked) into *directory*."""
        import fabio

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        poni = directory / f"{name}.poni"
        if poni.exists():
            poni.unlink()  # pyFAI appends to an existing file
        self.ai.write(str(poni))
        mask_path = directory / f"{name}_mask.edf"
        fabio.edfimage.EdfImage(data=self.mask.astype(np.int8)).write(str(mask_path))
        return poni, mask_path


class PoissonPool:
    """Poisson frames of a noise-free pattern at a fraction of the cost of drawing each one.

    Per physics state (a hashable *key*) the pool holds *size* independent Poisson realisations
    of half the expected counts, each at its own flux factor g_k (drawn ~ N(1, sigma sqrt 2)); a
    frame is the sum of two distinct halves a, b: every pixel is exactly Poisson with mean
    ``expected (g_a + g_b) / 2``, and the frame's flux (what I0 reports) is ``(g_a + g_b) / 2``
    (relative spread *sigma*). The halves are drawn as frames of the state are asked for (one
    per frame until the pool is full; the first frame draws two), after which a frame costs one
    integer addition. The price: frames of one state share their noise among *size* halves
    (size (size - 1) / 2 distinct frames), so a mean of many frames of one state is noisier than
    its Poisson sigma says; ``size`` 0 draws every frame anew (independent frames).
    The *states* most recent states keep their pools (a delay scan alternates pump-on and off).

    EXAMPLE::

        pool = PoissonPool(size=12)
        frame, flux = pool.frame(key, lambda: geo.expected_image(q, profile) * 0.1, 0.03, rng)
    """

    def __init__(self, size: int = 12, states: int = 3):
        if size == 1 or size < 0:
            raise ValueError(f"a noise pool needs 0 (no pool) or >= 2 halves, got {size}")
        self.size, self.states = int(size), int(states)
        self._pools: OrderedDict = OrderedDict()        # key -> (half expected counts, [(half, g)])

    def frame(self, key, expected, flux_sigma: float, rng: np.random.Generator) -> tuple[np.ndarray, float]:
        """(int64 or int32 counts, flux factor) of a frame of state *key*; *expected()* gives the
        expected counts at flux 1 (called once per state)."""
        if self.size == 0:
            flux = max(0.0, 1.0 + rng.normal(0.0, flux_sigma))
            return rng.poisson(expected() * np.float32(flux)), flux
        entry = self._pools.get(key)
        if entry is None:
            entry = self._pools[key] = (expected() * np.float32(0.5), [])
            while len(self._pools) > self.states:
                self._pools.popitem(last=False)
        else:
            self._pools.move_to_end(key)
        half, halves = entry
        sigma = flux_sigma * np.sqrt(2.0)
        fresh = None
        while len(halves) < 2 or (fresh is None and len(halves) < self.size):
            g = max(0.0, 1.0 + rng.normal(0.0, sigma))
            halves.append((rng.poisson(half * np.float32(g)).astype(np.int32), g))
            fresh = len(halves) - 1
        if fresh is None:
            a, b = rng.choice(len(halves), size=2, replace=False)
        else:                                   # filling: the new half with one of the others
            a, b = fresh, int(rng.integers(0, fresh))
        return np.add(halves[a][0], halves[b][0]), 0.5 * (halves[a][1] + halves[b][1])
