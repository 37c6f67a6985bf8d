"""The integration engine: pyFAI's geometry, corrections and pixel -> bin assignment, applied
to frames by compiled multithreaded kernels that read the detector's integer frames as they are.

pyFAI builds the sparse matrix once per (calibration, mask, bins, unit, splitting); the engine
keeps it compactly and caches it on disk keyed by the content of all of these, so a new process
does not rebuild it:

- no splitting: one bin index per pixel (uint16 where the bins allow) and the per-pixel
  normalisation (solid angle x polarisation, float32) for the rare pixel that is invalid in one
  frame only; the per-bin normalisation of the statically valid pixels is summed once;
- bbox splitting: per pixel its first bin and K coefficients (float32, zero-padded; K = the most
  bins a pixel spreads over, at most ``MAX_SPLIT``), so the kernel runs without a branch on a
  pixel's count;
- otherwise (2D with splitting, a restriction to some bins): pyFAI's CSR matrix, bin by bin.

One pass over the frame gives, per bin, the summed counts, the Poisson variance (pyFAI's
``error_model="poisson"``: each pixel's counts, minimum 1), the normalisation and the number of
valid pixels. Negative and NaN pixels (module gaps, bad pixels) and the mask are invalid inside
the kernel; no float copy of the frame is made (integer frames without splitting take one packed
int64 add per pixel: counts and zero-count pixels). Frames of a batch are shared out among threads
(numba kernels release the GIL); one frame is split among them.

pyFAI stays the reference (``tests/test_engine.py``: equal to pyFAI within 1e-3 on every bin with
counts, 1D and 2D, no splitting and bbox) and the fallback (``AzimuthalIntegration(engine="pyfai")``).

EXAMPLE::

    import numpy as np, pyFAI
    from trxrd.reduction.engine import IntegrationEngine
    ai = pyFAI.load("/tmp/trx-data/waxs/waxs.poni")
    engine = IntegrationEngine.for_1d(ai, npt=1000, mask=None, split="no")   # cached on disk
    sums = engine.sums(frame)                     # BinSums: signal, variance, norm, count per bin
    q, i, sigma = engine.radial, *engine.intensity(sums, monitor=1.0)
    batch = engine.sums_many(frames)              # (N, nbins) each
"""
from __future__ import annotations

import functools
import hashlib
import itertools
import json
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np

log = logging.getLogger(__name__)

# Bumped when the cached maps' layout or meaning changes.
CACHE_VERSION = 5
# Below this much work (pixels x bins each pixel adds to) a frame is not split among threads
# (the join costs more).
MIN_PIXELS_PER_THREAD = 200_000
# A frame is cut into this many pieces per worker thread, each at least MIN_PIXELS_PER_PIECE of
# work: every piece costs a kernel call under the interpreter lock (~20 us), which many small
# pieces on a many-core host would serialise.
PIECES_PER_WORKER = 8
MIN_PIXELS_PER_PIECE = 100_000
# Most bins one split pixel may spread over in the pixel-by-pixel layout (more: bin by bin).
MAX_SPLIT = 4
# Split coefficients (0..1) are stored as uint16 multiples of 1 / COEF_SCALE.
COEF_SCALE = 65535.0
# Accumulator lanes of the pixel-by-pixel kernels (a power of 2).
LANES = 4
# Bits of the counts in the packed accumulators of integer frames (the zero pixels above).
PACK_BITS = 40


def cache_dir() -> Path:
    """Where the pixel -> bin maps are cached: ``$XDG_CACHE_HOME/trxrd/integration`` (default
    ``~/.cache/trxrd/integration``)."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "trxrd" / "integration"


def cores() -> int:
    """The cores this process may run on: the kernels' threads unless told fewer."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def check_threads(value) -> int | None:
    """*value* threads (None: all cores), checked."""
    if value is None:
        return None
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"threads must be an integer >= 1, got {value!r}")
    return int(value)


# ---------------------------------------------------------------------------------------------
# Kernels (numba, compiled on first use and cached next to this file)


def _compile():
    from numba import njit

    opts = dict(nogil=True, cache=True, fastmath=False)

    @njit(**opts)
    def pixel_kernel(frame, bins, factor, start, stop, acc, miss):
        """No splitting, any frame type: pixel ``i`` adds to bin ``bins[i]`` (signal and variance
        side by side in ``acc``); ``bins[i] == nbins``: no bin. Pixel ``i`` adds to lane
        ``i % LANES`` of the accumulators, so that neighbouring pixels of one bin do not wait on
        each other's add. Unsigned indices: no negative-index wrap-around checks in the loop."""
        nbins = miss.shape[1] - 1
        i0 = np.uint64(start)
        end = np.uint64(stop)
        while i0 < end:
            n = min(np.uint64(LANES), end - i0)
            for lane in range(LANES):        # a constant count: unrolled by the compiler
                if lane < n:
                    i = i0 + np.uint64(lane)
                    v = np.float64(frame[i])
                    b = np.uint64(bins[i])
                    if v >= 0:
                        acc[lane, np.uint64(2) * b] += v
                        acc[lane, np.uint64(2) * b + np.uint64(1)] += v if v > 1 else 1.0
                    elif b < nbins:          # negative or NaN in a bin: invalid in this frame only
                        miss[0, b] += factor[i]
                        miss[1, b] += 1.0
            i0 += np.uint64(LANES)

    @njit(**opts)
    def counts_kernel(frame, bins, factor, start, stop, packed, miss):
        """No splitting, integer frames: one int64 add per pixel, counts in the low ``PACK_BITS``
        bits and zero-count pixels above them (Poisson variance = counts + zero pixels). Returns
        the largest value seen, so the caller can tell that no sum overflowed its bits."""
        zero = np.int64(1) << PACK_BITS
        nbins = packed.shape[1] - 1
        top = np.int64(0)
        i0 = np.uint64(start)
        end = np.uint64(stop)
        while i0 < end:
            n = min(np.uint64(LANES), end - i0)
            for lane in range(LANES):
                if lane < n:
                    i = i0 + np.uint64(lane)
                    v = np.int64(frame[i])
                    b = bins[i]
                    if v > 0:
                        packed[lane, b] += v
                        top = max(top, v)
                    elif v == 0:
                        packed[lane, b] += zero
                    elif b < nbins:              # an invalid pixel of a bin (gaps have none)
                        miss[0, b] += factor[i]
                        miss[1, b] += 1.0
            i0 += np.uint64(LANES)
        return top

    @njit(**opts)
    def split_kernel(frame, first, coef, factor, start, stop, acc, miss):
        """Split pixels, pixel by pixel: pixel ``i`` spreads over the bins ``first[i] + j`` with
        the coefficients ``coef[i * K + j] / COEF_SCALE``, ``j < K`` (the same K for every
        pixel, zero-padded: no branch on a pixel's count); ``first[i] == nbins``: no bin.
        ``acc[lane]`` holds signal and variance side by side per bin."""
        k = coef.shape[0] // first.shape[0]
        nbins = miss.shape[1] - k
        scale = 1.0 / COEF_SCALE
        for p in range(start, stop):
            i = np.uint64(p)
            v = np.float64(frame[i])
            b = np.uint64(first[i])
            lane = p & (LANES - 1)
            base = i * np.uint64(k)
            if v >= 0:
                w = v if v > 1 else 1.0
                for j in range(MAX_SPLIT):           # a constant count, unrolled; j < k taken alike
                    if j < k:
                        c = coef[base + np.uint64(j)] * scale
                        at = np.uint64(2) * (b + np.uint64(j))
                        acc[lane, at] += c * v
                        acc[lane, at + np.uint64(1)] += c * c * w
            elif b < nbins:
                f = factor[i]
                for j in range(k):
                    c = coef[base + np.uint64(j)] * scale
                    miss[0, b + np.uint64(j)] += c * f
                    miss[1, b + np.uint64(j)] += c

    @njit(**opts)
    def csr_kernel(frame, indptr, indices, coef, factor, rows, start, stop, acc, miss):
        """Any map, bin by bin: bin ``rows[r]`` sums its CSR row (coefficient x pixel)."""
        for r in range(start, stop):
            b = rows[r]
            s = 0.0
            va = 0.0
            mn = 0.0
            mc = 0.0
            for k in range(indptr[b], indptr[b + 1]):
                p = indices[k]
                c = coef[k]
                v = frame[p]
                if v >= 0:
                    s += c * v
                    va += c * c * (v if v > 1 else 1.0)
                else:
                    mn += c * factor[p]
                    mc += c
            acc[0, 2 * b] = s
            acc[0, 2 * b + 1] = va
            miss[0, b] = mn
            miss[1, b] = mc

    return pixel_kernel, counts_kernel, split_kernel, csr_kernel


@functools.cache
def kernels():
    """The compiled kernels (compiled once per process, then loaded from numba's cache)."""
    return _compile()


@functools.cache
def _executor() -> ThreadPoolExecutor:
    """The kernels' worker threads, one per core (made on first use)."""
    return ThreadPoolExecutor(max_workers=cores(), thread_name_prefix="trxrd-integrate")


# ---------------------------------------------------------------------------------------------


class BinSums(NamedTuple):
    """Per bin (last axis; frames first for a batch): summed counts, Poisson variance, the
    normalisation (solid angle x polarisation, monitor not applied) and the valid pixels."""
    signal: np.ndarray
    variance: np.ndarray
    norm: np.ndarray
    count: np.ndarray


class IntegrationEngine:
    """A pixel -> bin map from pyFAI and the kernels that apply it (see module).

    Build with ``for_1d`` / ``for_2d`` (cached on disk); ``sums``/``sums_many`` reduce frames.
    Bins are pyFAI's: ``radial`` (and ``azimuthal`` for 2D) are its bin centres; 2D sums come
    flat, ``(nazim, nrad)`` through ``as_grid``.
    """

    def __init__(self, arrays: dict, meta: dict):
        self.meta = meta
        self.shape = tuple(meta["shape"])
        self.npixels = int(np.prod(self.shape))
        self.radial = arrays["radial"]
        self.azimuthal = arrays.get("azimuthal")
        self.factor = arrays["factor"]
        self.norm_static = arrays["norm_static"]
        self.count_static = arrays["count_static"]
        self.nbins = len(self.norm_static)
        self.arrays = arrays
        if "bins" in arrays:
            self.layout = "pixel"          # no splitting: one bin per pixel
        elif "first" in arrays:
            self.layout = "split"          # split pixels over consecutive bins, pixel by pixel
        else:
            self.layout = "csr"            # bin by bin
        self.rows = np.arange(self.nbins, dtype=np.int64)
        self.kept = None
        self.max_bin_pixels = int(np.ceil(self.count_static.max(initial=0)))
        self.threads: int | None = None       # None: all cores
        self.grid = tuple(meta.get("grid") or (self.nbins,))
        kernels()

    def as_grid(self, values: np.ndarray) -> np.ndarray:
        """Per-bin values of a 2D engine as pyFAI returns them, ``(..., npt_azim, npt_rad)``."""
        if len(self.grid) == 1:
            return values
        nrad, nazim = self.grid
        return np.swapaxes(values.reshape(values.shape[:-1] + (nrad, nazim)), -1, -2)

    # -- construction --------------------------------------------------------------------
    @classmethod
    def for_1d(cls, ai, npt: int, *, mask=None, split: str = "no", unit: str = "q_A^-1",
               polarization_factor: float = 0.99, radial_range=None) -> "IntegrationEngine":
        """The engine of ``ai.integrate1d(..., npt, unit, method=(split, "csr", ...))``."""
        spec = dict(dim=1, npt=int(npt), split=split, unit=unit, pol=polarization_factor,
                    radial_range=None if radial_range is None else [float(v) for v in radial_range])
        return cls._cached(ai, mask, spec)

    @classmethod
    def for_2d(cls, ai, npt_rad: int, npt_azim: int, *, mask=None, split: str = "no", unit: str = "q_A^-1",
               polarization_factor: float = 0.99, radial_range=None,
               azimuth_range=(-180.0, 180.0)) -> "IntegrationEngine":
        """The engine of ``ai.integrate2d_ng(..., npt_rad, npt_azim, ...)``: sums of shape
        ``(npt_azim, npt_rad)`` through ``engine.as_grid``."""
        spec = dict(dim=2, npt=[int(npt_rad), int(npt_azim)], split=split, unit=unit,
                    pol=polarization_factor,
                    radial_range=None if radial_range is None else [float(v) for v in radial_range],
                    azimuth_range=[float(v) for v in azimuth_range])
        return cls._cached(ai, mask, spec)

    @classmethod
    def _cached(cls, ai, mask, spec: dict) -> "IntegrationEngine":
        import pyFAI

        if spec["split"] not in ("no", "bbox"):
            raise ValueError(f"splitting must be 'no' or 'bbox', got {spec['split']!r}")
        shape = tuple(int(v) for v in ai.detector.shape)
        mask = np.zeros(shape, bool) if mask is None else np.asarray(mask, bool)
        if mask.shape != shape:
            raise ValueError(f"mask shape {mask.shape} does not match the detector {shape}")
        geometry = {k: (float(v) if isinstance(v, (float, np.floating)) else v)
                    for k, v in sorted(ai.get_config().items()) if k != "detector_config"}
        geometry["detector_config"] = ai.detector.get_config()
        digest = hashlib.sha256()
        digest.update(json.dumps([CACHE_VERSION, pyFAI.version, spec, geometry, shape],
                                 sort_keys=True, default=str).encode())
        digest.update(np.packbits(mask).tobytes())
        key = digest.hexdigest()[:32]
        path = cache_dir() / f"{key}.npz"
        if path.is_file():
            try:
                return cls.load(path)
            except Exception as exc:     # a truncated or foreign file: rebuild it
                log.warning("integration map cache %s unreadable (%s): rebuilding", path, exc)
        arrays, meta = _build(ai, mask, spec, shape)
        meta["key"] = key
        engine = cls(arrays, meta)
        try:
            engine.save(path)
        except OSError as exc:          # a read-only home: work without the cache
            log.warning("cannot cache the integration map in %s: %s", path.parent, exc)
        return engine

    @classmethod
    def load(cls, path: Path | str) -> "IntegrationEngine":
        """The engine saved in *path* (``save``; the cache's files), without pyFAI."""
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files if k != "meta"}
            meta = json.loads(str(data["meta"]))
        return cls(arrays, meta)

    def save(self, path: Path | str) -> None:
        """Write the map to *path* (.npz), atomically: a reader never sees half a file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, meta=np.array(json.dumps(self.meta)), **self.arrays)
        os.replace(tmp, path)

    def restricted(self, keep: np.ndarray) -> "IntegrationEngine":
        """The same bins, computing only those where *keep* (bool per bin) is true: the kernel
        reads only their pixels (the others come back as empty bins)."""
        keep = np.asarray(keep, bool)
        if keep.shape != (self.nbins,):
            raise ValueError(f"keep must have one value per bin ({self.nbins}), got {keep.shape}")
        engine = object.__new__(IntegrationEngine)
        engine.__dict__.update(self.__dict__)
        engine.arrays = dict(self.arrays, **self._csr())
        engine.layout = "csr"
        engine.rows = np.flatnonzero(keep).astype(np.int64)
        engine.kept = keep
        return engine

    def _csr(self) -> dict:
        """The map bin by bin (indptr, indices, coef)."""
        a = self.arrays
        if self.layout == "csr":
            return {k: a[k] for k in ("indptr", "indices", "coef")}
        if self.layout == "pixel":
            pixel = np.flatnonzero(a["bins"] < self.nbins).astype(np.int32)
            row, coef = a["bins"][pixel].astype(np.int64), np.ones(len(pixel), np.float32)
        else:
            k = len(a["coef"]) // self.npixels
            pixel = np.repeat(np.arange(self.npixels, dtype=np.int32), k)
            row = np.repeat(a["first"].astype(np.int64), k) + np.tile(np.arange(k), self.npixels)
            keep = (a["coef"] != 0) & (row < self.nbins)
            pixel, row, coef = pixel[keep], row[keep], (a["coef"][keep] / COEF_SCALE).astype(np.float32)
        order = np.argsort(row, kind="stable")
        indptr = np.zeros(self.nbins + 1, np.int64)
        np.cumsum(np.bincount(row, minlength=self.nbins), out=indptr[1:])
        return dict(indptr=indptr, indices=pixel[order], coef=coef[order])

    # -- reduction -----------------------------------------------------------------------
    def _flat(self, frame: np.ndarray) -> np.ndarray:
        frame = np.asarray(frame)
        if frame.shape != self.shape:
            raise ValueError(f"frame shape {frame.shape} does not match the detector {self.shape}")
        if frame.dtype.kind not in "iuf":
            raise ValueError(f"frame must hold numbers, got dtype {frame.dtype}")
        if frame.dtype.kind == "u" and frame.dtype.itemsize == 8:
            frame = frame.astype(np.int64)
        return np.ascontiguousarray(frame).reshape(-1)

    def _run(self, flat: np.ndarray, workers: int) -> np.ndarray:
        """(signal, variance, missing norm, missing count) per bin of one flat frame. With more
        than one worker the frame is cut into ``PIECES_PER_WORKER`` pieces per worker, taken in
        turn by whichever worker is free (this thread included), so a worker the OS holds back
        on a busy host delays nothing; each worker adds into its own accumulators."""
        if self.layout == "pixel" and flat.dtype.kind in "iu" and flat.dtype.itemsize <= 4 \
                and self.max_bin_pixels < 2 ** (62 - PACK_BITS):
            packed, miss, top = self._pieces(flat, workers, packed=True)
            if top * self.max_bin_pixels < 2 ** PACK_BITS:     # no lane's counts reached the zero field
                low = np.int64(2 ** PACK_BITS - 1)
                signal = (packed & low).astype(np.float64)   # lanes summed: no carry below the bound
                zeros = (packed >> PACK_BITS).astype(np.float64)
                return np.stack([signal, signal + zeros, miss[0], miss[1]])[:, : self.nbins]
        signal, variance, miss = self._pieces(flat, workers)
        return np.stack([signal, variance, miss[0], miss[1]])[:, : self.nbins]

    def _pieces(self, flat: np.ndarray, workers: int, packed: bool = False):
        """Run the layout's kernel over the frame's pieces; the accumulators summed over workers."""
        pixel_kernel, counts_kernel, split_kernel, csr_kernel = kernels()
        a = self.arrays
        n = len(self.rows) if self.layout == "csr" else self.npixels
        pieces = 1 if workers == 1 else min(workers * PIECES_PER_WORKER,
                                            max(workers, self._work() // MIN_PIXELS_PER_PIECE))
        edges = np.unique(np.linspace(0, n, pieces + 1).astype(np.int64))
        pieces = len(edges) - 1
        lanes = 1 if self.layout == "csr" else LANES
        shared = self.layout == "csr"          # disjoint bins: one output for all pieces
        slots = 1 if shared else workers
        # spare columns past the bins: the pixels of no bin (and split padding) add there
        width = self.nbins + self._split_width()
        if packed:
            acc = np.zeros((slots, lanes, width), np.int64)
        else:                                  # signal and variance side by side per bin
            acc = np.zeros((slots, lanes, 2 * width))
        miss = np.zeros((slots, 2, width))
        tops = [0] * slots
        turns = itertools.count()

        def work(w):
            o, m = acc[0 if shared else w], miss[0 if shared else w]
            while (k := next(turns)) < pieces:
                lo, hi = edges[k], edges[k + 1]
                if packed:
                    tops[w] = max(tops[w], counts_kernel(flat, a["bins"], self.factor, lo, hi, o, m))
                elif self.layout == "pixel":
                    pixel_kernel(flat, a["bins"], self.factor, lo, hi, o, m)
                elif self.layout == "split":
                    split_kernel(flat, a["first"], a["coef"], self.factor, lo, hi, o, m)
                else:
                    csr_kernel(flat, a["indptr"], a["indices"], a["coef"], self.factor, self.rows, lo, hi, o, m)

        others = [_executor().submit(work, w) for w in range(1, workers)]
        work(0)
        for future in others:
            future.result()
        acc, miss = acc.sum(axis=(0, 1)), miss.sum(axis=0)
        if packed:
            return acc, miss, max(tops)
        return acc[0::2], acc[1::2], miss

    def _split_width(self) -> int:
        """Bins each pixel adds to in the kernel (K of the split layout, else 1)."""
        return len(self.arrays["coef"]) // self.npixels if self.layout == "split" else 1

    def _work(self) -> int:
        """A frame's work: pixels x the bins each adds to."""
        return self.npixels * self._split_width()

    def _frame_workers(self) -> int:
        """Threads one frame is split among (none below MIN_PIXELS_PER_THREAD of work each)."""
        return max(1, min(self.threads or cores(), self._work() // MIN_PIXELS_PER_THREAD))

    def _finish(self, raw: np.ndarray) -> BinSums:
        signal, variance, miss_norm, miss_count = raw
        norm = self.norm_static - miss_norm
        count = self.count_static - miss_count
        empty = count <= 1e-9
        if self.kept is not None:
            empty |= ~self.kept
        for values in (signal, variance, norm, count):
            values[empty] = 0.0
        return BinSums(signal, variance, norm, count)

    def sums(self, frame: np.ndarray) -> BinSums:
        """Per-bin sums of one frame (flat over the bins), split among the threads."""
        return self._finish(self._run(self._flat(frame), self._frame_workers()))

    def sums_many(self, frames) -> BinSums:
        """Per-bin sums of a stack of frames ``(N, ny, nx)``: arrays of shape ``(N, nbins)``;
        the frames are shared out among the threads (fewer frames than threads: one frame at a
        time, split among them, so a many-core host is used by the small batches of a stream)."""
        frames = np.asarray(frames)
        if frames.ndim != 3:
            raise ValueError(f"expected a stack of frames (N, ny, nx), got shape {frames.shape}")
        flats = [self._flat(f) for f in frames]
        threads = self.threads or cores()
        if threads == 1:
            results = [self._finish(self._run(f, 1)) for f in flats]
        elif len(flats) < threads:           # fewer frames than threads: each frame split among them
            results = [self._finish(self._run(f, self._frame_workers())) for f in flats]
        else:
            results = list(_executor().map(lambda f: self._finish(self._run(f, 1)), flats))
        return BinSums(*(np.array([r[k] for r in results]) for k in range(4)))

    @staticmethod
    def intensity(sums: BinSums, monitor: float | np.ndarray | None = None):
        """(intensity, sigma) = signal / (norm x monitor), sqrt(variance) / (norm x monitor);
        0 where a bin has no valid pixel (pyFAI's ``empty``)."""
        norm = sums.norm
        if monitor is not None:
            monitor = np.asarray(monitor, float)
            norm = norm * (monitor.reshape(-1, 1) if monitor.ndim == 1 and norm.ndim == 2 else monitor)
        with np.errstate(divide="ignore", invalid="ignore"):
            intensity = np.where(norm > 0, sums.signal / norm, 0.0)
            sigma = np.where(norm > 0, np.sqrt(sums.variance) / norm, 0.0)
        return intensity, sigma


def _build(ai, mask: np.ndarray, spec: dict, shape: tuple) -> tuple[dict, dict]:
    """Let pyFAI build its CSR matrix for *spec* and take it, with its per-pixel corrections."""
    import copy

    ai = copy.deepcopy(ai)          # pyFAI keeps one engine per integrator: leave the caller's alone
    zero = np.zeros(shape, np.float32)
    method = (spec["split"], "csr", "cython")
    if spec["dim"] == 1:
        res = ai.integrate1d(zero, spec["npt"], mask=mask, unit=spec["unit"], method=method,
                             correctSolidAngle=True, polarization_factor=spec["pol"],
                             radial_range=spec["radial_range"])
    else:
        nrad, nazim = spec["npt"]
        res = ai.integrate2d_ng(zero, nrad, nazim, mask=mask, unit=spec["unit"], method=method,
                                correctSolidAngle=True, polarization_factor=spec["pol"],
                                radial_range=spec["radial_range"], azimuth_range=spec["azimuth_range"])
    engine = next(e.engine for k, e in ai.engines.items() if k.split_lower == spec["split"]
                  and k.algo_lower == "csr" and k.dimension == spec["dim"])
    solid = np.asarray(ai.solidAngleArray(shape), np.float64)
    pol = ai.polarization(shape, spec["pol"])
    pol = np.asarray(pol[0] if isinstance(pol, tuple) else pol, np.float64)
    return from_matrix(engine.indptr, engine.indices, engine.data, (solid * pol).reshape(-1), mask, spec,
                       radial=res.radial, azimuthal=res.azimuthal if spec["dim"] == 2 else None)


def from_matrix(indptr, indices, coef, factor, mask: np.ndarray, spec: dict, *, radial,
                azimuthal=None) -> tuple[dict, dict]:
    """The engine's arrays and meta from a CSR pixel -> bin matrix (bins x pixels, pyFAI's
    layout: rows radial-major for 2D), the per-pixel normalisation *factor* (solid angle x
    polarisation) and the *mask* (True = masked) of the detector's shape. pyFAI's matrix in
    ``_build``; any matrix (a test's) here: ``IntegrationEngine(*from_matrix(...))``."""
    shape = tuple(mask.shape)
    indptr = np.asarray(indptr, np.int64)
    indices = np.asarray(indices, np.int32)
    coef = np.asarray(coef, np.float32)
    factor = np.asarray(factor, np.float64).astype(np.float32).reshape(-1)
    valid = ~mask.reshape(-1)
    nbins = len(indptr) - 1
    row = np.repeat(np.arange(nbins), np.diff(indptr))
    keep = valid[indices]                 # pyFAI's matrix may hold masked pixels: they never count
    if spec["split"] != "no" and coef.max(initial=0) <= 1.0:
        # split coefficients (fractions of a pixel) in 16-bit fixed point, here and in the norms,
        # so the per-pixel layout holds 2 bytes per coefficient (relative effect < 1e-4)
        coef = (np.round(coef.astype(np.float64) * COEF_SCALE) / COEF_SCALE).astype(np.float32)
    norm_static = np.bincount(row[keep], weights=(coef[keep] * factor[indices[keep]]).astype(np.float64),
                              minlength=nbins)
    count_static = np.bincount(row[keep], weights=coef[keep].astype(np.float64), minlength=nbins)
    indices, coef, counts = indices[keep], coef[keep], np.bincount(row[keep], minlength=nbins)
    indptr = np.zeros(nbins + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    arrays = dict(factor=factor, norm_static=norm_static, count_static=count_static,
                  radial=np.asarray(radial, np.float64))
    meta = dict(shape=list(shape), spec=spec)
    if spec["dim"] == 2:
        arrays["azimuthal"] = np.asarray(azimuthal, np.float64)
        meta["grid"] = [spec["npt"][0], spec["npt"][1]]       # CSR rows: radial-major
    layout = _pixel_major(indptr, indices, coef, nbins, int(np.prod(shape)))
    arrays.update(layout if layout is not None else dict(indptr=indptr, indices=indices, coef=coef))
    return arrays, meta


def _pixel_major(indptr, indices, coef, nbins: int, npixels: int) -> dict | None:
    """The map pixel by pixel where each pixel's bins are consecutive (always for 1D, and 2D
    without splitting): a bin per pixel without splitting, else first bin + count + coefficients.
    None where a pixel spreads over bins that are not consecutive (2D with splitting)."""
    from scipy import sparse

    csc = sparse.csr_matrix((coef, indices, indptr), shape=(nbins, npixels)).tocsc()
    csc.sort_indices()
    nsplit = np.diff(csc.indptr)
    k = int(nsplit.max(initial=0))
    if k > MAX_SPLIT:
        return None
    first_of = np.repeat(np.arange(npixels), nsplit)
    start = np.repeat(csc.indptr[:-1], nsplit)
    first = np.full(npixels, nbins, np.int64)                # no bin: the spare column
    first[nsplit > 0] = csc.indices[csc.indptr[:-1][nsplit > 0]]
    slot = np.arange(len(first_of)) - start
    if np.any(csc.indices != first[first_of] + slot):
        return None
    dtype = np.uint16 if nbins + MAX_SPLIT < 65535 else np.uint32
    if k <= 1 and np.all(csc.data == 1.0):
        return dict(bins=first.astype(dtype))
    if csc.data.max(initial=0) > 1.0:
        return None
    padded = np.zeros((npixels, k), np.uint16)               # K coefficients per pixel, zero-padded
    padded[first_of, slot] = np.round(csc.data.astype(np.float64) * COEF_SCALE).astype(np.uint16)
    return dict(first=first.astype(dtype), coef=padded.reshape(-1))
