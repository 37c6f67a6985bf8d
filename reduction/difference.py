"""Pump-on minus pump-off differences of integrated frames, per delay (or fluence) point.

Each pump-on frame is paired with a reference by one of the three common modes:

- ``"interleaved"``: the adjacent pump-off frame (shutter closed) of an on/off pair; the one
  after the signal frame when both neighbours are references.
- ``"negative_delay"``: the most recent block of reference frames before it (pump on at a
  negative delay, i.e. probe before pump); the first block after it if none came before.
- ``"interpolate"``: the reference blocks before and after it, interpolated linearly in frame
  order, which removes a slow drift (jet thickness, beam) between references.

Repeats of a point are averaged. Errors are propagated from the per-bin sigma of the
integration (on and reference frames independent); without sigma, the scatter of the repeats
gives the standard error (NaN for a point measured once).

EXAMPLE::

    import numpy as np
    from trxrd.reduction.difference import differences
    q = np.linspace(1, 3, 5)
    off = np.ones((2, 5)); on = 0.9 * off
    intensity = np.stack([on[0], off[0], on[1], off[1]])             # on, off, on, off
    d = differences(intensity, points=[100, 100, 100, 100], is_reference=[0, 1, 0, 1])
    d.points, d.d_intensity[0, 0], d.n_pairs                          # [100.], -0.1, [2]
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

REFERENCE_MODES = ("interleaved", "negative_delay", "interpolate")


@dataclass
class Differences:
    """dI per point (sorted): mean difference, its 1-sigma error and the mean reference curve."""
    points: np.ndarray            # (n,) delay (ps) or fluence of each point
    d_intensity: np.ndarray       # (n, nq)
    d_intensity_err: np.ndarray   # (n, nq)
    reference: np.ndarray         # (n, nq) mean reference (pump-off) intensity of each point
    n_pairs: np.ndarray           # (n,) signal frames averaged into each point


def _blocks(is_reference: np.ndarray) -> list[np.ndarray]:
    """Frame indices of each contiguous run of reference frames."""
    idx = np.flatnonzero(is_reference)
    if idx.size == 0:
        return []
    return np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1)


def reference_for_frames(intensity, is_reference, *, mode: str = "interleaved", sigma=None):
    """For every signal frame (``is_reference`` False), its reference curve by *mode*.

    Returns (signal_indices, reference (n_signal, nq), reference_sigma or None).
    """
    intensity = np.asarray(intensity, dtype=float)
    is_reference = np.asarray(is_reference, dtype=bool)
    if mode not in REFERENCE_MODES:
        raise ValueError(f"unknown reference mode {mode!r}; choose one of {REFERENCE_MODES}")
    if intensity.ndim != 2 or is_reference.shape != (intensity.shape[0],):
        raise ValueError(f"need intensity (N, nq) and one reference flag per frame, got "
                         f"{intensity.shape} and {is_reference.shape}")
    signal = np.flatnonzero(~is_reference)
    if not is_reference.any():
        raise ValueError("no reference (pump-off) frames: cannot form differences")
    var = None if sigma is None else np.asarray(sigma, dtype=float) ** 2
    refs = np.empty((signal.size, intensity.shape[1]))
    ref_var = None if var is None else np.empty_like(refs)
    if mode == "interleaved":
        n = len(is_reference)
        for k, i in enumerate(signal):
            after, before = i + 1, i - 1
            j = after if after < n and is_reference[after] else before
            if j < 0 or not is_reference[j]:
                raise ValueError(f"frame {i} has no adjacent reference frame (interleaved pairs expected)")
            refs[k] = intensity[j]
            if var is not None:
                ref_var[k] = var[j]
        return signal, refs, None if var is None else np.sqrt(ref_var)
    blocks = _blocks(is_reference)
    centres = np.array([b.mean() for b in blocks])
    means = np.array([intensity[b].mean(axis=0) for b in blocks])
    mean_vars = None if var is None else np.array([var[b].sum(axis=0) / len(b) ** 2 for b in blocks])
    for k, i in enumerate(signal):
        before = np.flatnonzero(centres < i)
        after = np.flatnonzero(centres > i)
        if mode == "negative_delay" or before.size == 0 or after.size == 0:
            j = before[-1] if before.size else after[0]
            weights = {j: 1.0}
        else:
            lo, hi = before[-1], after[0]
            f = (i - centres[lo]) / (centres[hi] - centres[lo])
            weights = {lo: 1.0 - f, hi: f}
        refs[k] = sum(w * means[j] for j, w in weights.items())
        if var is not None:
            ref_var[k] = sum(w * w * mean_vars[j] for j, w in weights.items())
    return signal, refs, None if var is None else np.sqrt(ref_var)


def differences(intensity, points, is_reference, *, mode: str = "interleaved", sigma=None,
                decimals: int = 6) -> Differences:
    """Pump-on minus reference per point (delay or fluence, compared after rounding to
    *decimals*), repeats averaged; see the module docstring for modes and errors."""
    intensity = np.asarray(intensity, dtype=float)
    points = np.asarray(points, dtype=float)
    if points.shape != (intensity.shape[0],):
        raise ValueError(f"{points.size} point values for {intensity.shape[0]} frames")
    if not np.all(np.isfinite(points)):
        raise ValueError("point values (delays / fluences) contain NaN or inf")
    signal, refs, ref_sigma = reference_for_frames(intensity, is_reference, mode=mode, sigma=sigma)
    d = intensity[signal] - refs
    keys = np.round(points[signal], decimals)
    uniq = np.unique(keys)
    nq = intensity.shape[1]
    mean_d, err, mean_ref = (np.empty((uniq.size, nq)) for _ in range(3))
    counts = np.empty(uniq.size, int)
    for k, value in enumerate(uniq):
        sel = keys == value
        n = int(sel.sum())
        counts[k] = n
        mean_d[k] = d[sel].mean(axis=0)
        mean_ref[k] = refs[sel].mean(axis=0)
        if sigma is not None:
            on_var = np.asarray(sigma, dtype=float)[signal[sel]] ** 2
            err[k] = np.sqrt((on_var + ref_sigma[sel] ** 2).sum(axis=0)) / n
        elif n > 1:
            err[k] = d[sel].std(axis=0, ddof=1) / np.sqrt(n)
        else:
            err[k] = np.nan
    return Differences(uniq, mean_d, err, mean_ref, counts)
