"""XCCA pure functions on synthetic rings and patches with known angles (no simulator): the CCF
by FFT equals the direct sum, a half-masked ring gives the same CCF peaks, the peaks of the
averaged CCF give beta and c/a, the stacked Bragg peak gives the disorder."""
import math

import numpy as np
import pytest

from trxrd.reduction.integrate import Polar
from trxrd.reduction.xcca import (
    THETA_DEG,
    BraggPeakStack,
    Ring,
    bct_from_peaks,
    bct_peaks_deg,
    ccf,
    ccf_direct,
    ccf_peaks,
    delta_deg,
    dominant_symmetry,
    mirror_axis,
    ring_peaks,
    ring_profile,
    wrap180,
)

NPHI = 180
PHI = -180.0 + (np.arange(NPHI) + 0.5) * 360.0 / NPHI


def spots(centres, fwhm, height, level):
    s = fwhm / 2.3548
    out = np.full(NPHI, float(level))
    for c in centres:
        out += height * np.exp(-0.5 * (wrap180(PHI - c) / s) ** 2)
    return out


def noisy_ring(expected, rng, pixels=40, q=1.0, valid=None):
    counts = rng.poisson(expected * pixels).astype(float)
    valid = np.ones(NPHI, bool) if valid is None else valid
    intensity = np.where(valid, counts / pixels, np.nan)
    sigma = np.where(valid, np.sqrt(np.maximum(counts, 1)) / pixels, np.nan)
    return Ring(q, 0.02, PHI.copy(), intensity, sigma, valid)


def al_sl_rings(rng, omega, beta, psi=0.0, valid_al=None, pixels=40):
    al = [omega + psi + s * (90 - THETA_DEG) + k for s in (1, -1) for k in (0, 180)]
    sl = [omega + s * beta + k for s in (1, -1) for k in (0, 180)]
    return (noisy_ring(spots(al, 10.0, 30.0, 20.0), rng, pixels, 1.833, valid_al),
            noisy_ring(spots(sl, 6.0, 60.0, 30.0), rng, pixels, 0.172))


def test_ccf_by_fft_equals_the_direct_sum():
    rng = np.random.default_rng(1)
    valid = np.ones(NPHI, bool)
    valid[20:50] = False                       # a module gap
    r1, r2 = al_sl_rings(rng, 30.0, 40.8, valid_al=valid)
    fft, direct = ccf(r1, r2), ccf_direct(r1, r2)
    assert np.array_equal(np.isnan(fft), np.isnan(direct))
    np.testing.assert_allclose(fft[np.isfinite(fft)], direct[np.isfinite(direct)], rtol=1e-9, atol=1e-12)


def test_ccf_of_ideal_rings_peaks_at_the_difference_of_their_angles():
    r1 = Ring(1.0, 0.02, PHI, spots([10.0], 6.0, 100.0, 10.0), np.ones(NPHI), np.ones(NPHI, bool))
    r2 = Ring(2.0, 0.02, PHI, spots([60.0], 6.0, 100.0, 10.0), np.ones(NPHI), np.ones(NPHI, bool))
    c = ccf(r1, r2)
    assert delta_deg(NPHI)[np.nanargmax(c)] == pytest.approx(50.0, abs=2.0)   # D = phi2 - phi1


def averaged(rng, n, beta, valid_al=None, psi_sd=0.0):
    acc, cnt = np.zeros(NPHI), np.zeros(NPHI)
    for _ in range(n):
        r1, r2 = al_sl_rings(rng, rng.uniform(0, 180), beta, rng.normal(0, psi_sd) if psi_sd else 0.0, valid_al)
        c = ccf(r1, r2)
        ok = np.isfinite(c)
        acc[ok] += c[ok]
        cnt[ok] += 1
    d = wrap180(delta_deg(NPHI))
    order = np.argsort(d)
    return d[order], (acc / cnt)[order]


@pytest.mark.parametrize("beta", [40.8, 30.0])
def test_averaged_ccf_peaks_and_beta_of_the_bct_model(beta):
    rng = np.random.default_rng(2)
    d, c = averaged(rng, 60, beta)
    peaks = ccf_peaks(d, c)
    truth = bct_peaks_deg(beta)
    assert len(peaks) == 8
    found = np.array([p.delta_deg for p in peaks])
    assert np.max(np.abs(wrap180(found - truth))) < 1.0
    bct = bct_from_peaks(peaks)
    assert bct["beta_deg"]["value"] == pytest.approx(beta, abs=0.5)
    assert bct["c_over_a"]["value"] == pytest.approx(math.sqrt(2) * math.tan(math.radians(beta)), rel=0.03)
    assert 0 < bct["beta_deg"]["stderr"] < 1.0


def test_a_half_masked_ring_gives_the_same_ccf_peaks():
    valid = np.ones(NPHI, bool)
    valid[:NPHI // 2] = False                   # half of the AL ring off the detector
    full = ccf_peaks(*averaged(np.random.default_rng(3), 60, 40.8))
    half = ccf_peaks(*averaged(np.random.default_rng(3), 60, 40.8, valid_al=valid))
    assert len(full) == len(half) == 8
    assert np.max(np.abs(wrap180(np.array([p.delta_deg for p in half]) - [p.delta_deg for p in full]))) < 1.0
    # zero-filling the masked half instead shifts the mean and distorts the CCF: not what ccf does
    r1, r2 = al_sl_rings(np.random.default_rng(4), 30.0, 40.8, valid_al=valid)
    assert np.isnan(r1.intensity[:NPHI // 2]).all() and np.isfinite(ccf(r1, r2)).all()


def test_ring_peaks_mirror_axis_and_symmetry():
    rng = np.random.default_rng(5)
    omega, beta = 123.0, 40.8
    r_al, r_sl = al_sl_rings(rng, omega, beta, psi=2.0)
    sl = ring_peaks(r_sl)
    al = ring_peaks(r_al)
    assert len(sl) == 4 and len(al) == 4
    assert all(p.significance >= 5 for p in sl + al)
    assert sorted(p.phi_deg % 360 for p in sl) == pytest.approx(
        sorted((omega + s * beta + k) % 360 for s in (1, -1) for k in (0, 180)), abs=1.0)
    assert np.mean([p.fwhm_deg for p in sl]) == pytest.approx(6.0, abs=1.0)
    axis, err = mirror_axis(sl)
    assert axis == pytest.approx(omega % 180, abs=1.0) and 0 < err < 1
    al_axis, _ = mirror_axis(al)           # the AL 111 short arc is centred on [1-10]: omega + psi + 90
    assert float(wrap180(2 * (al_axis - omega - 2.0 - 90.0)) / 2) == pytest.approx(0.0, abs=1.0)
    assert dominant_symmetry(ccf(r_sl, r_sl)) == 4
    flat = noisy_ring(np.full(NPHI, 30.0), rng)
    assert ring_peaks(flat) == [] and mirror_axis([]) is None
    one_pair = ring_peaks(noisy_ring(spots([omega + beta, omega + beta + 180], 6.0, 60.0, 30.0), rng))
    assert len(one_pair) == 2 and mirror_axis(one_pair) is None     # a spot and its Friedel mate: no mirror line


def test_ring_profile_excludes_masked_bins():
    nq = 5
    q = np.linspace(0.16, 0.18, nq)
    signal = np.full((NPHI, nq), 10.0)
    norm = np.full((NPHI, nq), 2.0)
    count = np.full((NPHI, nq), 3.0)
    count[10:20] = 0
    signal[10:20] = norm[10:20] = 0.0
    ring = ring_profile(Polar(q, PHI, signal, norm, count), 0.17, 0.01)
    assert not ring.valid[10:20].any() and ring.valid.sum() == NPHI - 10
    assert np.nanmean(ring.intensity) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="no q bin"):
        ring_profile(Polar(q, PHI, signal, norm, count), 0.5, 0.01)


@pytest.mark.parametrize("disorder", [10.0, 6.0])
def test_disorder_from_stacked_spots_with_a_known_spread(disorder):
    rng = np.random.default_rng(6)
    q0, fw_rad = 1.833, 0.094                  # Scherrer of ~6 nm crystals
    size_deg = math.degrees(fw_rad / q0)
    fw_az = math.hypot(size_deg, disorder)
    qs = np.linspace(q0 - 0.18, q0 + 0.18, 40)
    stack = BraggPeakStack(q0)
    for _ in range(80):
        centre = rng.uniform(-180, 180)
        ang = np.exp(-0.5 * (wrap180(PHI - centre) / (fw_az / 2.3548)) ** 2)[:, None]
        rad = np.exp(-0.5 * ((qs - q0) / (fw_rad / 2.3548)) ** 2)[None, :]
        norm = np.full((NPHI, qs.size), 8.0)
        expected = (3.0 + 25.0 * ang * rad) * norm
        signal = rng.poisson(expected).astype(float)
        polar = Polar(qs, PHI, signal, norm, np.ones_like(signal))
        ring = ring_profile(polar, q0, 0.02)
        peaks = ring_peaks(ring)
        assert len(peaks) == 1
        stack.add(polar, peaks[0])
    res = stack.result()
    assert res["spots"] == 80
    assert res["radial_fwhm"] == pytest.approx(fw_rad, rel=0.05)
    assert res["azimuthal_fwhm_deg"] == pytest.approx(fw_az, rel=0.05)
    assert res["disorder_deg"]["value"] == pytest.approx(disorder, rel=0.1)
    assert 0 < res["disorder_deg"]["stderr"] < 0.2 * disorder
