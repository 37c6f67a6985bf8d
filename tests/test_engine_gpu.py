"""trxrd's integration engine on maps that are not pyFAI's, against a plain sparse-matrix
reference: on the CPU kernels (always) and on the GPU (``engine="cuda"``, where CuPy sees one).

The maps are made here (no pyFAI): a ring geometry binned without splitting, with pixels split
over neighbouring bins, the 2D (q, chi) binning and a restriction to q windows; the frames are
int32 with module gaps (-1) and dead pixels (-2), uint16, and float32 with NaN. The reference is
the matrix product the engine stands for. Self-contained (``--noconftest`` runs it on a GPU host
that has numpy, scipy, numba and CuPy only)."""
import numpy as np
import pytest
from scipy import sparse

from trxrd.reduction.engine import COEF_SCALE, IntegrationEngine, from_matrix

SHAPE = (240, 320)
CENTRE = (110.0, 150.0)
NBINS = 120
NPHI = 24
TOL = 1e-6


def ring_map(kind: str):
    """(engine, matrix bins x pixels, mask) of a ring geometry; *kind*: no, bbox, 2d, window."""
    ny, nx = SHAPE
    y, x = np.mgrid[:ny, :nx]
    r = np.hypot(y - CENTRE[0], x - CENTRE[1]).reshape(-1)
    phi = np.degrees(np.arctan2(y - CENTRE[0], x - CENTRE[1])).reshape(-1)
    dr = r.max() / NBINS * 1.0001
    pixel = np.arange(r.size)
    if kind == "bbox":               # each pixel covers [r - 0.5, r + 0.5]: split over <= 2 bins
        lo, hi = r - 0.5, r + 0.5
        b0 = np.clip((lo // dr).astype(int), 0, NBINS - 1)
        b1 = np.clip((hi // dr).astype(int), 0, NBINS - 1)
        frac = np.where(b1 > b0, np.clip(((b0 + 1) * dr - lo) / (hi - lo), 0, 1), 1.0)
        frac = np.round(frac * COEF_SCALE) / COEF_SCALE
        rows = np.concatenate([b0, b1[b1 > b0]])
        cols = np.concatenate([pixel, pixel[b1 > b0]])
        coef = np.concatenate([frac, 1.0 - frac[b1 > b0]])
        nrows = NBINS
    else:
        rows = np.minimum((r // dr).astype(int), NBINS - 1)
        cols, coef, nrows = pixel, np.ones(r.size), NBINS
        if kind == "2d":             # rows radial-major, as pyFAI's 2D CSR
            rows = rows * NPHI + np.minimum(((phi + 180.0) // (360.0 / NPHI)).astype(int), NPHI - 1)
            nrows = NBINS * NPHI
    matrix = sparse.csr_matrix((coef, (rows, cols)), shape=(nrows, r.size))
    matrix.sort_indices()
    factor = 1.0 / (1.0 + (r / 400.0) ** 2) ** 1.5
    mask = np.zeros(SHAPE, bool)
    mask[100:120, :140] = True                       # a beamstop arm
    dim = 2 if kind == "2d" else 1
    spec = dict(dim=dim, npt=[NBINS, NPHI] if dim == 2 else NBINS, split="bbox" if kind == "bbox" else "no")
    radial = (np.arange(NBINS) + 0.5) * dr
    azimuthal = -180.0 + (np.arange(NPHI) + 0.5) * 360.0 / NPHI if dim == 2 else None
    engine = IntegrationEngine(*from_matrix(matrix.indptr, matrix.indices, matrix.data, factor, mask, spec,
                                            radial=radial, azimuthal=azimuthal))
    if kind == "window":
        keep = np.zeros(NBINS, bool)
        keep[30:45] = keep[80:90] = True
        engine = engine.restricted(keep)
    return engine, matrix, mask


def frames_of(dtype, n: int, seed: int = 0) -> np.ndarray:
    """*n* frames: Poisson counts on rings, -1 in two module gaps, dead pixels (-2, or NaN)."""
    rng = np.random.default_rng(seed)
    ny, nx = SHAPE
    y, x = np.mgrid[:ny, :nx]
    r = np.hypot(y - CENTRE[0], x - CENTRE[1])
    expected = 2 + 30 * np.exp(-0.5 * ((r % 50 - 25) / 3) ** 2)
    out = []
    for _ in range(n):
        frame = rng.poisson(expected).astype(np.float64)
        frame[:, 200:207] = -1
        frame[60:64, :] = -1
        dead = rng.random(SHAPE) < 1e-3
        frame[dead] = np.nan if np.dtype(dtype).kind == "f" else -2
        if np.dtype(dtype).kind == "u":
            frame[~(frame >= 0)] = 0
        out.append(frame.astype(dtype))
    return np.array(out)


def reference(matrix, mask, engine, frame):
    """(signal, variance, norm, count) per bin: the matrix product the engine computes."""
    valid_static = ~mask.reshape(-1)
    m = matrix @ sparse.diags(valid_static.astype(float))
    v = frame.reshape(-1).astype(np.float64)
    valid = v >= 0                                   # NaN is False
    counts = np.where(valid, v, 0.0)
    signal = m @ counts
    variance = m.power(2) @ np.where(valid, np.maximum(v, 1.0), 0.0)
    norm = m @ (engine.factor.astype(np.float64) * valid)
    count = m @ valid.astype(float)
    empty = count <= 1e-9
    if engine.kept is not None:
        empty |= ~engine.kept
    return [np.where(empty, 0.0, a) for a in (signal, variance, norm, count)]


def assert_sums(sums, expected, what):
    for name, got, want in zip(("signal", "variance", "norm", "count"), sums, expected):
        scale = np.maximum(np.abs(want), 1e-12)
        err = float(np.max(np.abs(got - want) / scale))
        assert err < TOL, f"{what}: {name} differs by {err:.2e} (relative)"


@pytest.mark.parametrize("kind", ["no", "bbox", "2d", "window"])
@pytest.mark.parametrize("dtype", ["int32", "uint16", "float32"])
def test_cpu_engine_matches_the_matrix(kind, dtype):
    engine, matrix, mask = ring_map(kind)
    assert engine.layout == {"no": "pixel", "bbox": "split", "2d": "pixel", "window": "csr"}[kind]
    frames = frames_of(dtype, 3)
    batch = engine.sums_many(frames)
    for k, frame in enumerate(frames):
        want = reference(matrix, mask, engine, frame)
        assert want[0].sum() > 0
        assert_sums(engine.sums(frame), want, f"{kind} {dtype} frame {k}")
        assert_sums([v[k] for v in batch], want, f"{kind} {dtype} batch frame {k}")


def gpu_or_none():
    """CuPy when it sees a CUDA GPU, else None."""
    try:
        from trxrd.reduction.gpu import cupy

        return cupy()
    except RuntimeError:
        return None


@pytest.mark.parametrize("kind", ["no", "bbox", "2d", "window"])
@pytest.mark.parametrize("dtype", ["int32", "uint16", "float32"])
def test_cuda_engine_matches_the_matrix(kind, dtype):
    if gpu_or_none() is None:
        pytest.skip("no CUDA GPU here (test_cuda_without_gpu_says_so covers this host)")
    from trxrd.reduction.gpu import BATCH, CudaEngine

    engine, matrix, mask = ring_map(kind)
    gpu = CudaEngine(engine)
    frames = frames_of(dtype, BATCH + 3, seed=1)      # more than one batch
    batch = gpu.sums_many(frames)
    assert batch.signal.shape == (len(frames), engine.nbins)
    for k, frame in enumerate(frames):
        want = reference(matrix, mask, engine, frame)
        assert_sums([v[k] for v in batch], want, f"cuda {kind} {dtype} frame {k}")
    assert_sums(gpu.sums(frames[0]), engine.sums(frames[0]), f"cuda vs cpu {kind} {dtype}")


def test_cuda_without_gpu_says_so():
    from trxrd.reduction.gpu import CudaEngine

    engine, _, _ = ring_map("no")
    if gpu_or_none() is not None:
        with pytest.raises(ValueError, match="batch"):
            CudaEngine(engine, batch=0)
        return
    with pytest.raises(RuntimeError, match="NVIDIA GPU"):
        CudaEngine(engine)
