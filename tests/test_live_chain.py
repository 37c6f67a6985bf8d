"""The live pump-probe chain without EPICS: per-point sums equal the offline functions, every
pump-probe plan kind is reduced (a fluence x delay grid too), frames of unknown role fail the
derived run with the reason, and the bounded queue in front of the chain never blocks."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from event_model import compose_run

from trxrd import datakeys as dk
from trxrd.reduction.accumulate import PumpProbeAccumulator
from trxrd.reduction.pump_probe import pump_probe_signal

Q = np.linspace(1.5, 2.3, 81)
PEAK = 100.0 * np.exp(-0.5 * ((Q - 1.88) / 0.04) ** 2) + 5.0
WINDOW = [(1.7, 2.05)]


def _frames(rng, roles, points, x):
    intensity = PEAK * (1 + 0.01 * rng.standard_normal((len(roles), Q.size)))
    intensity[np.array(roles) == "on"] *= 0.9
    sigma = np.sqrt(intensity) * 0.01
    return intensity, sigma


@pytest.mark.parametrize("mode, roles", [
    ("interleaved", ["on", "off"] * 6 + ["on"]),                     # a trailing pump-on frame
    ("interleaved", ["off", "on", "on", "off", "on", "off"]),          # on, on: the first looks back
    ("negative_delay", ["on", "reference", "reference", "on", "on", "reference", "on", "reference"]),
])
@pytest.mark.parametrize("with_sigma", [True, False])
def test_accumulator_equals_the_offline_chain(mode, roles, with_sigma):
    rng = np.random.default_rng(7)
    n = len(roles)
    points = np.array([100.0, 100.0, 200.0, 200.0, 100.0, 100.0, 300.0, 300.0, 200.0, 200.0, 300.0, 300.0,
                       100.0][:n])
    x = points + rng.normal(0, 0.5, n)
    intensity, sigma = _frames(rng, roles, points, x)
    if not with_sigma:
        sigma = None
    acc = PumpProbeAccumulator(mode)
    for k in range(n):
        acc.add(intensity[k], None if sigma is None else sigma[k], role=roles[k], key=(None, points[k]),
                x={"delay": x[k]})
    acc.finish()
    live = acc.result(Q, WINDOW, x_field="delay")
    offline = pump_probe_signal(Q, intensity, points, [r != "on" for r in roles], WINDOW, sigma=sigma, x=x,
                                mode=mode)
    np.testing.assert_allclose(live.points, offline.points)
    np.testing.assert_array_equal(live.diff.n_pairs, offline.diff.n_pairs)
    np.testing.assert_allclose(live.diff.d_intensity, offline.diff.d_intensity, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(live.diff.reference, offline.diff.reference, rtol=1e-12)
    np.testing.assert_allclose(live.diff.d_intensity_err, offline.diff.d_intensity_err, rtol=1e-8, equal_nan=True)
    np.testing.assert_allclose(live.signal, offline.signal, rtol=1e-10)
    np.testing.assert_allclose(live.x, offline.x, rtol=1e-12)
    assert acc.frames == n


def test_accumulator_refuses_what_it_cannot_pair():
    acc = PumpProbeAccumulator("interleaved")
    acc.add(PEAK, None, role="on", key=(None, 1.0))
    with pytest.raises(ValueError, match="no adjacent reference"):
        acc.add(PEAK, None, role="on", key=(None, 1.0))
    with pytest.raises(ValueError, match="interleaved or negative_delay"):
        PumpProbeAccumulator("interpolate")
    with pytest.raises(ValueError, match="role"):
        PumpProbeAccumulator().add(PEAK, None, role="pumped", key=(None, 1.0))


def _reduced_run(plan_name, frames, reference="interleaved"):
    """Documents of a reduced (integrate) run: frames are dicts of reduced-event fields."""
    run = compose_run(metadata={"plan_name": dk.INTEGRATE_PLAN, dk.RAW_PLAN_NAME: plan_name,
                                dk.RAW_UID: "raw-1", dk.REFERENCE: reference})
    keys = {k: {"source": "t", "dtype": "array", "shape": [Q.size]} for k in (dk.Q, dk.INTENSITY, dk.SIGMA)}
    for k in frames[0]:
        if k not in keys:
            keys[k] = {"source": "t", "dtype": "string" if k == dk.ROLE else "number", "shape": []}
    desc = run.compose_descriptor(name="primary", data_keys=keys)
    yield "start", run.start_doc
    yield "descriptor", desc.descriptor_doc
    for frame in frames:
        data = {dk.Q: Q, dk.SIGMA: np.full(Q.size, 1e-3), **frame}
        yield "event", desc.compose_event(data=data, timestamps={k: 0 for k in data})
    yield "stop", run.compose_stop()


def _grid_frames(fluences, delays, threshold=40.0):
    from trxrd.reduction.fluence import excitations_per_nc
    from trxrd.reduction.kinetics import kinetics_model

    frames = []
    for f in fluences:
        n = excitations_per_nc(f, 4e-14)
        depth = 0.5 * (1 - np.exp(-max(n - threshold, 0.0) / 60.0))
        shape = kinetics_model(np.array(delays), t0_ps=0, irf_fwhm_ps=79, amplitudes=[-1.0], taus_ps=[150])
        for t, s in zip(delays, depth * shape):
            for role, scale in ((dk.ROLE_ON, 1 + s), (dk.ROLE_OFF, 1.0)):
                frames.append({dk.INTENSITY: scale * PEAK, dk.ROLE: role, dk.REQUESTED_DELAY: t, "delay": t,
                               dk.REQUESTED_FLUENCE: f, "fluence": f, "excitations": n})
    return frames


def test_fluence_delay_grid_gives_a_kinetics_per_fluence_and_a_threshold_per_delay():
    from trxrd.reduction.callbacks import LivePumpProbe

    fluences = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    delays = [-300.0, -100.0, 0.0, 50.0, 100.0, 200.0, 400.0, 800.0, 1600.0]
    live = LivePumpProbe(WINDOW, model="exp")
    out = []
    live.subscribe(lambda name, doc: out.append((name, doc)))
    for name, doc in _reduced_run("fluence_delay_grid", _grid_frames(fluences, delays)):
        live(name, doc)
    grid = live.result
    assert sorted(grid.kinetics) == fluences and sorted(grid.thresholds) == delays
    strong = grid.kinetics[3.0]
    assert strong.fit is not None and strong.fit.value("tau1_ps") == pytest.approx(150, rel=0.02)
    at_100 = grid.thresholds[100.0]
    assert at_100.fit is not None and at_100.fit.threshold == pytest.approx(40.0, rel=0.1)
    streams = {}
    descriptors = {d["uid"]: d["name"] for n, d in out if n == "descriptor"}
    for name, doc in out:
        if name == "event":
            streams.setdefault(descriptors[doc["descriptor"]], []).append(doc["data"])
    assert {e[dk.REQUESTED_FLUENCE] for e in streams["kinetics"]} >= {3.0}
    assert {e[dk.REQUESTED_DELAY] for e in streams["threshold"]} >= {100.0}
    assert len(streams["difference"]) == len(fluences) * len(delays)
    assert out[-1][0] == "stop" and out[-1][1]["exit_status"] == "success"
    assert out[0][1]["kind"] == "grid"


@pytest.mark.parametrize("role, reason", [(None, "role = None"), ("pumped", "role = 'pumped'")])
def test_frame_of_unknown_role_fails_the_derived_run(role, reason):
    """A frame that does not say what it is, or says something unknown, is never counted as
    pumped: the derived run closes as failed with the reason."""
    from trxrd.reduction.callbacks import LivePumpProbe

    good = {dk.INTENSITY: PEAK, dk.ROLE: "on", dk.REQUESTED_DELAY: 0.0, "delay": 0.0}
    name_doc = list(_reduced_run("delay_scan", [good, good]))
    bad_event = dict(name_doc[3][1], data=dict(name_doc[3][1]["data"]))      # the second frame
    if role is None:
        del bad_event["data"][dk.ROLE]
    else:
        bad_event["data"][dk.ROLE] = role
    name_doc[3] = ("event", bad_event)
    live = LivePumpProbe(WINDOW)
    out = []
    live.subscribe(lambda name, doc: out.append((name, doc)))
    for name, doc in name_doc:
        live(name, doc)
    stops = [d for n, d in out if n == "stop"]
    assert len(stops) == 1 and stops[0]["exit_status"] == "fail"
    assert reason in stops[0]["reason"]


def test_buffered_callback_never_blocks_and_gives_up_a_run_it_cannot_keep_up_with():
    from trxrd.reduction.callbacks.buffer import BufferedCallback

    seen, gate = [], threading.Event()

    def slow(name, doc):
        gate.wait(10)
        seen.append((name, doc))

    buffered = BufferedCallback(slow, max_queued=10)
    run = compose_run()
    desc = run.compose_descriptor(name="primary", data_keys={"x": {"source": "t", "dtype": "number", "shape": []}})
    t0 = time.monotonic()
    buffered("start", run.start_doc)
    buffered("descriptor", desc.descriptor_doc)
    for k in range(50):                    # far more than the queue holds: dropped, never blocking
        buffered("event", desc.compose_event(data={"x": k}, timestamps={"x": 0}))
    buffered("stop", run.compose_stop())
    assert time.monotonic() - t0 < 5.0     # generous: the point is that nothing waited on `slow`
    gate.set()
    buffered.wait(10)
    assert buffered.backlog == 0 and buffered.dropped > 0
    names = [n for n, _ in seen]
    assert names[:2] == ["start", "descriptor"] and names[-1] == "stop"
    stop = seen[-1][1]
    assert stop["exit_status"] == "fail" and "fell behind" in stop["reason"] and "trxrd reduce" in stop["reason"]
    # the next run is reduced in full
    seen.clear()
    run2 = compose_run()
    buffered("start", run2.start_doc)
    buffered("stop", run2.compose_stop())
    buffered.wait(10)
    assert [n for n, _ in seen] == ["start", "stop"] and seen[-1][1]["exit_status"] == "success"
    buffered.close()
    with pytest.raises(RuntimeError, match="closed"):
        buffered("start", compose_run().start_doc)


def test_failure_at_the_end_of_a_run_still_closes_the_derived_run():
    """A run without any reference frame: the differences fail when the run ends, and the derived
    run is closed as failed with the reason (never left open in the catalog)."""
    from trxrd.reduction.callbacks import LivePumpProbe

    frames = [{dk.INTENSITY: PEAK, dk.ROLE: dk.ROLE_ON, dk.REQUESTED_DELAY: t, "delay": t} for t in (0.0, 100.0)]
    live = LivePumpProbe(WINDOW)
    out = []
    live.subscribe(lambda name, doc: out.append((name, doc)))
    for name, doc in _reduced_run("delay_scan", frames, reference="negative_delay"):
        live(name, doc)
    assert [n for n, _ in out] == ["start", "stop"]
    assert out[-1][1]["exit_status"] == "fail" and "no reference frames" in out[-1][1]["reason"]
