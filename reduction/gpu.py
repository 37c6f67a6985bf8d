"""The integration engine on an NVIDIA GPU: the same pyFAI map as ``IntegrationEngine`` (built,
cached and checked against pyFAI on the CPU), applied by a CUDA kernel through CuPy.

Frames go to the GPU as they are (int32, uint16, float32, ...: no float copy on the host), a
batch at a time; one thread block per (bin, frame) sums that bin's CSR row: counts, Poisson
variance (each pixel's counts, minimum 1), and the normalisation and pixel count of the pixels
that are invalid in this frame only (negative or NaN), exactly as the CPU kernels do. Only the
four per-bin sums come back; the corrections are applied on the host by the CPU engine's own
``_finish``, so both engines give the same ``BinSums``.

Without CuPy or a GPU, ``CudaEngine`` (and ``AzimuthalIntegration(engine="cuda")``) raises a
clear ``RuntimeError``; the test suite runs without one (``tests/test_engine_gpu.py`` compares
GPU and CPU sums where a GPU is present).

EXAMPLE::

    from trxrd.reduction.integrate import AzimuthalIntegration
    integ = AzimuthalIntegration("/tmp/trx-data/waxs/waxs.poni", engine="cuda")
    pattern = integ.integrate(frame)                 # as engine="trxrd", on the GPU
    patterns = integ.integrate_many(frames)          # (N, ny, nx) in batches
"""
from __future__ import annotations

import functools

import numpy as np

from .engine import BinSums, IntegrationEngine

# Threads per block: each block sums one bin of one frame.
BLOCK = 256
# Frames sent to the GPU in one transfer and one kernel launch.
BATCH = 16

_SOURCE = r"""
__device__ double warp_sum(double v)      // the sum over the warp, in lane 0
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_down_sync(0xffffffff, v, o);
    return v;
}

template <typename T>
__global__ void bin_sums(const T* __restrict__ frames, const long long npixels,
                         const long long* __restrict__ indptr, const int* __restrict__ indices,
                         const float* __restrict__ coef, const float* __restrict__ factor,
                         const long long* __restrict__ rows, const int nrows, double* __restrict__ out)
{
    const int r = blockIdx.x;
    const long long f = blockIdx.y;
    const long long b = rows[r];
    const T* frame = frames + f * npixels;
    double s = 0.0, va = 0.0, mn = 0.0, mc = 0.0;
    for (long long k = indptr[b] + threadIdx.x; k < indptr[b + 1]; k += blockDim.x) {
        const int p = indices[k];
        const double c = coef[k];
        const double v = (double)frame[p];
        if (v >= 0.0) {                   // NaN compares false: invalid, like a negative pixel
            s += c * v;
            va += c * c * (v > 1.0 ? v : 1.0);
        } else {
            mn += c * factor[p];
            mc += c;
        }
    }
    __shared__ double part[4][32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    s = warp_sum(s); va = warp_sum(va); mn = warp_sum(mn); mc = warp_sum(mc);
    if (lane == 0) {
        part[0][warp] = s; part[1][warp] = va; part[2][warp] = mn; part[3][warp] = mc;
    }
    __syncthreads();
    if (warp == 0) {
        const int warps = blockDim.x >> 5;
        s = lane < warps ? part[0][lane] : 0.0;
        va = lane < warps ? part[1][lane] : 0.0;
        mn = lane < warps ? part[2][lane] : 0.0;
        mc = lane < warps ? part[3][lane] : 0.0;
        s = warp_sum(s); va = warp_sum(va); mn = warp_sum(mn); mc = warp_sum(mc);
        if (lane == 0) {
            double* o = out + f * 4 * nrows;
            o[r] = s; o[nrows + r] = va; o[2 * nrows + r] = mn; o[3 * nrows + r] = mc;
        }
    }
}
"""

# numpy dtype of a frame -> the kernel's C type
C_TYPES = {"int8": "signed char", "uint8": "unsigned char", "int16": "short", "uint16": "unsigned short",
           "int32": "int", "uint32": "unsigned int", "int64": "long long", "float32": "float",
           "float64": "double"}


@functools.cache
def cupy():
    """CuPy, once it is known to see a CUDA GPU; else a ``RuntimeError`` saying what is missing."""
    try:
        import cupy as cp
    except Exception as exc:     # not installed, or its CUDA libraries missing
        raise RuntimeError(f"engine='cuda' needs CuPy and an NVIDIA GPU (use engine='trxrd'): {exc}") from exc
    try:
        count = cp.cuda.runtime.getDeviceCount()
    except Exception as exc:     # no driver
        raise RuntimeError(f"engine='cuda' needs an NVIDIA GPU; CUDA found none ({exc}); use engine='trxrd'") from exc
    if count < 1:
        raise RuntimeError("engine='cuda' needs an NVIDIA GPU; none found (use engine='trxrd')")
    return cp


@functools.cache
def _kernels():
    """The compiled kernel per frame type (compiled once per process)."""
    cp = cupy()
    names = {dtype: f"bin_sums<{c}>" for dtype, c in C_TYPES.items()}
    module = cp.RawModule(code=_SOURCE, options=("-std=c++14",), name_expressions=list(names.values()))
    return {dtype: module.get_function(name) for dtype, name in names.items()}


class CudaEngine:
    """An ``IntegrationEngine``'s map on the GPU (its CSR form, uploaded once); ``sums`` and
    ``sums_many`` give the CPU engine's ``BinSums`` (see module).

    EXAMPLE::

        gpu = CudaEngine(IntegrationEngine.for_1d(ai, 1000))
        sums = gpu.sums_many(frames)          # BinSums of shape (N, 1000)
    """

    def __init__(self, engine: IntegrationEngine, batch: int = BATCH):
        cp = cupy()
        if int(batch) < 1:
            raise ValueError(f"batch must be >= 1 frame, got {batch}")
        self.cpu, self.batch = engine, int(batch)
        csr = engine._csr()
        self._rows = cp.asarray(engine.rows, dtype=cp.int64)
        self._indptr = cp.asarray(csr["indptr"], dtype=cp.int64)
        self._indices = cp.asarray(csr["indices"], dtype=cp.int32)
        self._coef = cp.asarray(csr["coef"], dtype=cp.float32)
        self._factor = cp.asarray(engine.factor, dtype=cp.float32)
        self.kernels = _kernels()

    def __getattr__(self, name):          # radial, azimuthal, nbins, shape, as_grid, intensity
        return getattr(self.cpu, name)

    def launch(self, frames):
        """The kernel on frames already on the GPU ``(n, ny, nx)`` (a CuPy array of one of the
        ``C_TYPES``): the raw per-bin sums ``(n, 4, len(rows))`` on the GPU, not yet finished."""
        cp = cupy()
        nrows = len(self.cpu.rows)
        out = cp.empty((len(frames), 4, nrows), dtype=cp.float64)
        self.kernels[frames.dtype.name]((nrows, len(frames)), (BLOCK,),
                                        (frames, np.int64(self.cpu.npixels), self._indptr, self._indices,
                                         self._coef, self._factor, self._rows, np.int32(nrows), out))
        return out

    def sums(self, frame: np.ndarray) -> BinSums:
        """Per-bin sums of one frame."""
        return BinSums(*(v[0] for v in self.sums_many(np.asarray(frame)[None])))

    def sums_many(self, frames) -> BinSums:
        """Per-bin sums of a stack ``(N, ny, nx)``: arrays ``(N, nbins)``, ``batch`` frames per
        transfer and launch."""
        cp = cupy()
        frames = np.asarray(frames)
        if frames.ndim != 3:
            raise ValueError(f"expected a stack of frames (N, ny, nx), got shape {frames.shape}")
        if len(frames):
            self.cpu._flat(frames[0])           # shape and type checks, as on the CPU
        if frames.dtype.name not in C_TYPES:
            frames = frames.astype(np.int64 if frames.dtype.kind in "iu" else np.float64)
        engine, results = self.cpu, []
        for lo in range(0, len(frames), self.batch):
            for sums in self.launch(cp.asarray(np.ascontiguousarray(frames[lo:lo + self.batch]))).get():
                raw = np.zeros((4, engine.nbins))
                raw[:, engine.rows] = sums
                results.append(engine._finish(raw))
        if not results:
            return BinSums(*(np.zeros((0, engine.nbins)) for _ in range(4)))
        return BinSums(*(np.array([r[k] for r in results]) for k in range(4)))
