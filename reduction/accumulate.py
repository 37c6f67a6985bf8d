"""Pump-on minus reference, accumulated frame by frame: the live form of
``trxrd.reduction.difference``. Each new integrated frame costs O(q bins), however many frames
came before; the per-point means, errors and window signals are built from running sums only
when asked for (a refit, a plot, the end of the run). The numbers equal those of
``differences`` / ``pump_probe_signal`` on the same frames (tests check it).

Frames pair with references as in ``trxrd.reduction.difference``:

- ``"interleaved"``: a pump-on frame takes the reference frame right after it, else the one
  right before it (a pump-on frame with neither is an error);
- ``"negative_delay"``: a pump-on frame takes the mean of the most recent block of reference
  frames before it, else of the first block after it.

Points are keyed by ``(group, point)``: ``(None, requested delay)`` in a delay scan,
``(None, requested fluence)`` in a fluence scan, ``(fluence, delay)`` in a fluence x delay grid.

EXAMPLE::

    import numpy as np
    from trxrd.reduction.accumulate import PumpProbeAccumulator
    acc = PumpProbeAccumulator("interleaved")
    off = np.ones(5); on = 0.9 * off
    for role, curve in (("on", on), ("off", off), ("on", on), ("off", off)):
        acc.add(curve, 0.01 * np.ones(5), role=role, key=(None, 100.0), x={"delay": 100.2})
    acc.finish()
    r = acc.result(np.linspace(1, 3, 5), [(1.0, 3.0)], x_field="delay")
    r.points, r.diff.n_pairs, r.signal           # [100.], [2], [-0.1]
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .difference import Differences
from .peaks import window_signal
from .pump_probe import PumpProbeResult

LIVE_MODES = ("interleaved", "negative_delay")
KEY_DECIMALS = 6


class _Sums:
    """Running sums of one point."""

    __slots__ = ("n", "d", "var", "d2", "ref", "x")

    def __init__(self, nq: int):
        self.n = 0
        self.d = np.zeros(nq)
        self.var = np.zeros(nq)
        self.d2 = np.zeros(nq)
        self.ref = np.zeros(nq)
        self.x: dict[str, float] = {}


class PumpProbeAccumulator:
    """Per-point sums of dI = I(on) - I(reference), updated with each frame (see module).

    Parameters
    ----------
    mode : {"interleaved", "negative_delay"}
        How pump-on frames find their reference.
    """

    def __init__(self, mode: str = "interleaved"):
        if mode not in LIVE_MODES:
            raise ValueError(f"live reduction pairs frames {' or '.join(LIVE_MODES)}, not {mode!r}")
        self.mode = mode
        self.points: dict[tuple, _Sums] = {}
        self.frames = 0                  # frames added
        self.pairs = 0                   # pump-on frames paired with their reference
        self.with_sigma: bool | None = None
        # pairing state
        self._prev_ref = None            # the frame just before, if it was a reference
        self._pending = None             # interleaved: (on frame, reference right before it or None)
        self._block = None               # negative_delay: [sum, sum_var, n] of the open reference block
        self._last_block = None          # (mean, variance of the mean) of the last closed block
        self._waiting: list = []         # negative_delay: pump-on frames before any block

    # -- frames ---------------------------------------------------------------------------------------
    def add(self, intensity, sigma=None, *, role: str, key: tuple, x: dict | None = None) -> list[tuple]:
        """One integrated frame; returns the keys of the points it completed (often none).

        Parameters
        ----------
        intensity, sigma : array (nq,)
            I(q) and its 1-sigma error (None: errors from the scatter of repeats).
        role : {"on", "off", "reference"}
        key : tuple
            ``(group, point)`` of the frame (see module).
        x : dict
            Values averaged per point over the pump-on frames (e.g. actual delay, <N>).
        """
        if role not in ("on", "off", "reference"):
            raise ValueError(f"frame {self.frames}: role {role!r} is not on, off or reference")
        has_sigma = sigma is not None
        if self.with_sigma is None:
            self.with_sigma = has_sigma
        elif has_sigma != self.with_sigma:
            raise ValueError("every frame needs sigma, or none")
        curve = np.asarray(intensity, dtype=float)
        var = None if sigma is None else np.asarray(sigma, dtype=float) ** 2
        frame = (curve, var, tuple(None if k is None else round(float(k), KEY_DECIMALS) for k in key),
                 dict(x or {}))
        self.frames += 1
        if self.mode == "interleaved":
            return self._interleaved(frame, role == "on")
        return self._negative_delay(frame, role == "on")

    def finish(self) -> list[tuple]:
        """End of the run: pair what waited for a later frame; returns the keys completed."""
        done = []
        if self.mode == "interleaved" and self._pending is not None:
            done += self._resolve_before(*self._pending)
            self._pending = None
        if self.mode == "negative_delay":
            self._close_block()
            if self._waiting:
                if self._last_block is None:
                    raise ValueError("no reference frames in the run: cannot form differences")
                done += [self._pair(f, *self._last_block) for f in self._waiting]
                self._waiting = []
        return done

    def _interleaved(self, frame, is_on):
        done = []
        if is_on:
            if self._pending is not None:              # on, on: the first takes the one before it
                done += self._resolve_before(*self._pending)
            self._pending = (frame, self._prev_ref)
            self._prev_ref = None
        else:
            if self._pending is not None:              # the reference right after takes precedence
                done.append(self._pair(self._pending[0], frame[0], frame[1]))
                self._pending = None
            self._prev_ref = frame
        return done

    def _resolve_before(self, on, before):
        if before is None:
            raise ValueError(f"a pump-on frame has no adjacent reference frame (interleaved pairs "
                             f"expected; frame {self.frames})")
        return [self._pair(on, before[0], before[1])]

    def _negative_delay(self, frame, is_on):
        if not is_on:
            curve, var = frame[0], frame[1]
            if self._block is None:
                self._block = [curve.copy(), None if var is None else var.copy(), 1]
            else:
                self._block[0] += curve
                if var is not None:
                    self._block[1] += var
                self._block[2] += 1
            return []
        done = []
        if self._close_block() and self._waiting:
            done += [self._pair(f, *self._last_block) for f in self._waiting]
            self._waiting = []
        if self._last_block is None:
            self._waiting.append(frame)
        else:
            done.append(self._pair(frame, *self._last_block))
        return done

    def _close_block(self) -> bool:
        if self._block is None:
            return False
        total, var, n = self._block
        self._last_block = (total / n, None if var is None else var / n ** 2)
        self._block = None
        return True

    def _pair(self, on, ref, ref_var) -> tuple:
        curve, var, key, x = on
        sums = self.points.get(key)
        if sums is None:
            sums = self.points[key] = _Sums(curve.size)
        d = curve - ref
        self.pairs += 1
        sums.n += 1
        sums.d += d
        sums.d2 += d * d
        sums.ref += ref
        if var is not None:
            sums.var += var + ref_var
        for name, value in x.items():
            sums.x[name] = sums.x.get(name, 0.0) + float(value)
        return key

    # -- results -----------------------------------------------------------------------------------------
    def mean(self, key) -> tuple:
        """One point: (mean dI, its 1-sigma error, mean reference curve, pairs). Without sigma
        the error is the scatter of the pairs (NaN for one pair)."""
        s = self.points[key]
        d, ref = s.d / s.n, s.ref / s.n
        if self.with_sigma:
            err = np.sqrt(s.var) / s.n
        elif s.n > 1:
            err = np.sqrt(np.clip((s.d2 - s.n * d * d) / (s.n - 1), 0, None) / s.n)
        else:
            err = np.full_like(d, np.nan)
        return d, err, ref, s.n

    def result(self, q_inv_angstrom, windows, *, x_field: str, part: str = "area",
               where: Callable[[tuple], bool] | None = None,
               point: Callable[[tuple], float] = lambda key: key[-1]) -> PumpProbeResult | None:
        """The points so far (those with ``where(key)``), sorted by ``point(key)``, as a
        ``PumpProbeResult`` with x = the mean of *x_field*; None when there is no point."""
        keys = [k for k in self.points if where is None or where(k)]
        if not keys:
            return None
        keys.sort(key=point)
        d, err, ref, n = (np.array(v) for v in zip(*(self.mean(k) for k in keys)))
        signal, signal_err = window_signal(q_inv_angstrom, d, ref, windows, part=part, d_intensity_err=err)
        x = np.array([self.points[k].x.get(x_field, np.nan) for k in keys]) / n
        points = np.array([point(k) for k in keys], dtype=float)
        diff = Differences(points, d, err, ref, n)
        return PumpProbeResult(np.asarray(q_inv_angstrom), points, x, np.atleast_1d(signal),
                               np.atleast_1d(signal_err), diff, [tuple(w) for w in windows], part)
