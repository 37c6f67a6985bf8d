"""trxrd's integration engine against pyFAI, the reference: same geometry, corrections, mask and
splitting give the same intensities and Poisson sigmas (max relative difference < 1e-3 on every
bin with counts), 1D and the 2D (q, chi) re-binning of XCCA, no splitting and bbox, for the frame
types detectors write. Plus the on-disk cache of the pixel -> bin maps and the bad inputs.

The geometry is a tilted Pilatus 300K of pyFAI's own detector list, not the simulator's."""
import logging

import numpy as np
import pytest

from trxrd.reduction.engine import IntegrationEngine
from trxrd.reduction.integrate import AzimuthalIntegration

TOL = 1e-3


@pytest.fixture(scope="module")
def geometry(tmp_path_factory):
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator

    ai = AzimuthalIntegrator(dist=0.18, poni1=0.035, poni2=0.021, rot1=0.05, rot2=-0.03,
                             detector="Pilatus300k", wavelength=0.9e-10)
    root = tmp_path_factory.mktemp("engine")
    poni = root / "tilted.poni"
    ai.save(str(poni))
    shape = ai.detector.shape
    mask = np.zeros(shape, bool)
    mask[100:140, 200:260] = True                     # a beamstop arm
    mask[:, :3] = True                                # a dead edge
    return poni, mask, ai.detector.mask.astype(bool)


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def frame_of(dtype, gaps, rng):
    """A beamline frame: Poisson counts on a sloping background with rings, -1 in the module
    gaps, a few dead (-2) pixels that are not in any mask, NaN for float frames."""
    ny, nx = gaps.shape
    y, x = np.mgrid[:ny, :nx]
    r = np.hypot(y - 250, x - 150)
    expected = 3 + 40 * np.exp(-0.5 * ((r % 120 - 60) / 4) ** 2) + 0.01 * x
    frame = rng.poisson(expected).astype(np.float64)
    frame[gaps] = -1
    dead = rng.random(gaps.shape) < 5e-4
    if np.dtype(dtype).kind == "f":
        frame[dead] = np.nan
    elif np.dtype(dtype).kind == "i":
        frame[dead] = -2
    else:                          # unsigned: gaps are masked by the detector's own mask instead
        frame[frame < 0] = 0
    return frame.astype(dtype)


def rel(a, b, ok):
    return float(np.max(np.abs(a[ok] - b[ok]) / np.abs(b[ok])))


@pytest.mark.parametrize("split", ["no", "bbox"])
@pytest.mark.parametrize("dtype", ["int32", "uint16", "float32"])
def test_1d_equals_pyfai(geometry, split, dtype):
    poni, mask, gaps = geometry
    rng = np.random.default_rng(7)
    frame = frame_of(dtype, gaps, rng)
    full_mask = mask | (gaps if dtype == "uint16" else False)
    ours = AzimuthalIntegration(poni, mask=full_mask, npt=800, method=(split, "csr", "cython"))
    ref = AzimuthalIntegration(poni, mask=full_mask, npt=800, method=(split, "csr", "cython"), engine="pyfai")
    q, i, s = ours.integrate(frame, monitor=3.0)
    q_ref, i_ref, s_ref = ref.integrate(frame, monitor=3.0)
    ok = i_ref > 0
    assert ok.sum() > 700
    assert np.array_equal(q, q_ref)
    assert rel(i, i_ref, ok) < TOL
    assert rel(s, s_ref, ok) < TOL
    assert np.all(i[~ok] == 0)


@pytest.mark.parametrize("split", ["no", "bbox"])
def test_polar_equals_pyfai(geometry, split):
    poni, mask, gaps = geometry
    frame = frame_of("int32", gaps, np.random.default_rng(3))
    binning = [((1.2, 1.9), 30, 90)]
    ours = AzimuthalIntegration(poni, mask=mask, method=(split, "csr", "cython"))
    ref = AzimuthalIntegration(poni, mask=mask, method=(split, "csr", "cython"), engine="pyfai")
    (p,) = ours.polars(frame, binning, monitor=2.0)
    (r,) = ref.polars(frame, binning, monitor=2.0)
    assert p.signal.shape == r.signal.shape == (90, 30)
    assert np.array_equal(p.phi_deg, r.phi_deg) and np.array_equal(p.q_inv_angstrom, r.q_inv_angstrom)
    ok = r.count > 0
    assert ok.sum() > 1000
    for ours_v, ref_v in ((p.signal, r.signal), (p.norm, r.norm), (p.count, r.count)):
        assert rel(ours_v, ref_v, ok & (ref_v > 0)) < TOL
    assert np.all(p.count[~ok] == 0)


def test_batch_and_threads_equal_single(geometry):
    poni, mask, gaps = geometry
    rng = np.random.default_rng(11)
    frames = np.stack([frame_of("int32", gaps, rng) for _ in range(5)])
    monitors = [1.0, 2.0, 0.5, 4.0, 1.5]
    integ = AzimuthalIntegration(poni, mask=mask)
    batch = integ.integrate_many(frames, monitors=monitors)
    for k, (f, m) in enumerate(zip(frames, monitors)):
        single = integ.integrate(f, m)
        np.testing.assert_allclose(batch.intensity[k], single.intensity, rtol=1e-12)
        np.testing.assert_allclose(batch.sigma[k], single.sigma, rtol=1e-12)
    one = AzimuthalIntegration(poni, mask=mask, threads=1)     # the same sums, in another order
    np.testing.assert_allclose(one.integrate(frames[0], 1.0).intensity, batch.intensity[0], rtol=1e-12)
    np.testing.assert_allclose(one.integrate_many(frames, monitors).intensity, batch.intensity, rtol=1e-12)


def test_q_windows_compute_only_their_bins(geometry):
    poni, mask, gaps = geometry
    frame = frame_of("int32", gaps, np.random.default_rng(5))
    full = AzimuthalIntegration(poni, mask=mask).integrate(frame)
    part = AzimuthalIntegration(poni, mask=mask, q_windows=[(1.5, 1.6), (2.5, 2.55)]).integrate(frame)
    inside = ((full.q_inv_angstrom > 1.5) & (full.q_inv_angstrom < 1.6)) | \
             ((full.q_inv_angstrom > 2.5) & (full.q_inv_angstrom < 2.55))
    computed = part.intensity > 0
    assert inside.sum() > 10 and np.all(computed[inside])
    assert computed.sum() <= inside.sum() + 4           # at most a bin each side of each window
    np.testing.assert_allclose(part.intensity[computed], full.intensity[computed], rtol=1e-12)


def test_map_cached_on_disk_and_keyed_by_content(geometry, tmp_path, caplog):
    poni, mask, _ = geometry
    import pyFAI

    ai = pyFAI.load(str(poni))
    cache = tmp_path / "cache" / "trxrd" / "integration"
    first = IntegrationEngine.for_1d(ai, 500, mask=mask)
    files = sorted(cache.glob("*.npz"))
    assert len(files) == 1 and first.meta["key"] in files[0].name
    again = IntegrationEngine.for_1d(ai, 500, mask=mask)          # read back, not rebuilt
    assert again.meta["key"] == first.meta["key"] and len(list(cache.glob("*.npz"))) == 1
    other_mask = mask.copy()
    other_mask[0, 100] = True
    IntegrationEngine.for_1d(ai, 500, mask=other_mask)             # one pixel more: another map
    IntegrationEngine.for_1d(ai, 501, mask=mask)                   # another binning: another map
    assert len(list(cache.glob("*.npz"))) == 3
    files[0].write_bytes(b"truncated")                           # a corrupt cache file is rebuilt
    with caplog.at_level(logging.WARNING, logger="trxrd.reduction.engine"):
        rebuilt = IntegrationEngine.for_1d(ai, 500, mask=mask)
    assert "rebuilding" in caplog.text
    frame = np.ones(ai.detector.shape, np.int32)
    np.testing.assert_array_equal(rebuilt.sums(frame).signal, first.sums(frame).signal)


def test_bad_input_is_refused(geometry):
    poni, mask, _ = geometry
    integ = AzimuthalIntegration(poni, mask=mask)
    with pytest.raises(ValueError, match="does not match the detector"):
        integ.integrate(np.zeros((10, 10), np.int32))
    with pytest.raises(ValueError, match="monitor"):
        integ.integrate(np.zeros(integ.shape, np.int32), monitor=float("nan"))
    with pytest.raises(ValueError, match="hold numbers"):
        integ.integrate(np.zeros(integ.shape, bool))
    with pytest.raises(ValueError, match="engine must be one of"):
        AzimuthalIntegration(poni, engine="gpu")
    with pytest.raises(ValueError, match="splitting"):
        AzimuthalIntegration(poni, method=("full", "csr", "cython"))
    with pytest.raises(ValueError, match="q window"):
        AzimuthalIntegration(poni, q_windows=[(2.0, 1.0)])
    with pytest.raises(ValueError, match="npt"):
        AzimuthalIntegration(poni, npt=0)
    for threads in (0, 1.5, True):
        with pytest.raises(ValueError, match="threads must be an integer"):
            AzimuthalIntegration(poni, threads=threads)


def test_opencl_without_gpu_says_so(geometry):
    poni, _, _ = geometry
    try:
        from pyFAI.opencl import ocl
        has_gpu = ocl is not None and ocl.select_device(type="GPU") is not None
    except Exception:
        has_gpu = False
    if has_gpu:
        AzimuthalIntegration(poni, engine="opencl")
    else:
        with pytest.raises(RuntimeError, match="OpenCL GPU"):
            AzimuthalIntegration(poni, engine="opencl")


def test_cuda_engine_on_pyfai_geometry(geometry):
    """``engine="cuda"``: without CuPy or a GPU, a clear error when the integrator is made; with
    one, the same pattern as the CPU engine (tests/test_engine_gpu.py has the kernel's checks)."""
    from trxrd.reduction.gpu import cupy

    poni, mask, gaps = geometry
    try:
        cupy()
    except RuntimeError:
        with pytest.raises(RuntimeError, match="NVIDIA GPU"):
            AzimuthalIntegration(poni, engine="cuda")
        return
    frame = frame_of("int32", gaps, np.random.default_rng(4))
    ours = AzimuthalIntegration(poni, mask=mask, engine="cuda").integrate(frame)
    ref = AzimuthalIntegration(poni, mask=mask, engine="pyfai").integrate(frame)
    ok = ref.intensity > 0
    assert rel(ours.intensity, ref.intensity, ok) < TOL and rel(ours.sigma, ref.sigma, ok) < TOL


def test_huge_counts_are_summed_exactly(geometry):
    """Integer frames are summed in packed 64-bit accumulators; counts that could overflow them
    (saturated or hot pixels of a 32-bit detector) take the float kernel: same sums as pyFAI."""
    poni, mask, gaps = geometry
    frame = frame_of("int32", gaps, np.random.default_rng(9))
    frame[300:330, 250:300] = 2_000_000_000                     # hot region, 1500 pixels
    ours = AzimuthalIntegration(poni, mask=mask).integrate(frame)
    ref = AzimuthalIntegration(poni, mask=mask, engine="pyfai").integrate(frame)
    ok = ref.intensity > 0
    assert ours.intensity.max() > 1e8
    assert rel(ours.intensity, ref.intensity, ok) < TOL
    assert rel(ours.sigma, ref.sigma, ok) < TOL


def test_live_settings_choose_the_engine(tmp_path):
    """``set_reduction(engine=...)``: trxrd's CPU engine by default; "cuda" only where a GPU is
    (refused before any frame elsewhere, as a ValueError a saved state can fall back from)."""
    from trxrd.reduction.gpu import cupy
    from trxrd.reduction.settings import ReductionSettings

    poni = tmp_path / "x.poni"
    poni.write_text("")
    assert ReductionSettings(poni, windows=[(1, 2)]).engine == "trxrd"
    with pytest.raises(ValueError, match="unknown engine 'gpu'"):
        ReductionSettings(poni, windows=[(1, 2)], engine="gpu")
    try:
        cupy()
    except RuntimeError:
        with pytest.raises(ValueError, match="NVIDIA GPU"):
            ReductionSettings(poni, windows=[(1, 2)], engine="cuda")
        return
    assert ReductionSettings(poni, windows=[(1, 2)], engine="cuda").as_dict()["engine"] == "cuda"
