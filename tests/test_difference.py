"""Pump-on minus reference by the three reference modes, repeats, errors, window signals and
the live pump-probe callback on synthetic integrated frames."""
import numpy as np
import pytest

from trxrd.reduction.difference import differences, reference_for_frames
from trxrd.reduction.peaks import window_signal

Q = np.linspace(1.0, 3.0, 201)
PEAK = np.exp(-0.5 * ((Q - 1.88) / 0.034) ** 2) + 0.1


def test_interleaved_pairs_each_on_frame_with_its_off_frame():
    # on, off, on, off at two delays; the second pair's off frame is brighter (drift)
    frames = np.stack([0.8 * PEAK, PEAK, 0.9 * 1.1 * PEAK, 1.1 * PEAK])
    d = differences(frames, [100, 100, 500, 500], [0, 1, 0, 1])
    np.testing.assert_allclose(d.points, [100, 500])
    np.testing.assert_allclose(d.d_intensity[0], -0.2 * PEAK)
    np.testing.assert_allclose(d.d_intensity[1], -0.1 * 1.1 * PEAK)
    np.testing.assert_allclose(d.reference[1], 1.1 * PEAK)
    signal, _ = window_signal(Q, d.d_intensity, d.reference, [(1.7, 2.05)])
    np.testing.assert_allclose(signal, [-0.2, -0.1])


def test_negative_delay_uses_the_last_reference_block_and_interpolate_removes_drift():
    # reference block (pump at -300 ps), two on frames, reference block; intensity drifts linearly
    drift = np.array([1.0, 1.1, 1.2, 1.3])[:, None]
    is_ref = [1, 0, 0, 1]
    frames = drift * np.stack([PEAK, 0.7 * PEAK, 0.7 * PEAK, PEAK])
    _, ref, _ = reference_for_frames(frames, is_ref, mode="negative_delay")
    np.testing.assert_allclose(ref, [PEAK, PEAK])
    _, ref, _ = reference_for_frames(frames, is_ref, mode="interpolate")
    np.testing.assert_allclose(ref, [1.1 * PEAK, 1.2 * PEAK])           # the drift, not the pump
    d = differences(frames, [0, 40, 40, 0], is_ref, mode="interpolate")
    np.testing.assert_allclose(d.d_intensity[0], -0.3 * 1.15 * PEAK)


def test_repeats_average_and_errors_propagate():
    rng = np.random.default_rng(3)
    off = np.tile(PEAK, (6, 1))
    on = 0.9 * off + rng.normal(0, 0.01, off.shape)
    frames = np.empty((12, Q.size))
    frames[0::2], frames[1::2] = on, off
    points = np.repeat([50.0, 50.0, 50.0, 80.0, 80.0, 80.0], 2)
    sigma = np.full(frames.shape, 0.01)
    d = differences(frames, points, np.tile([0, 1], 6), sigma=sigma)
    np.testing.assert_array_equal(d.n_pairs, [3, 3])
    np.testing.assert_allclose(d.d_intensity_err, np.sqrt(2) * 0.01 / np.sqrt(3))
    np.testing.assert_allclose(d.d_intensity[0], (on[:3] - off[:3]).mean(axis=0))
    scatter = differences(frames, points, np.tile([0, 1], 6))      # no sigma: standard error of the repeats
    assert 0.002 < np.median(scatter.d_intensity_err) < 0.009
    single = differences(frames[:2], points[:2], [0, 1])
    assert np.isnan(single.d_intensity_err).all()                    # one pair, no sigma: unknown


def test_window_signal_parts_and_error():
    d = np.gradient(PEAK) - 0.05 * PEAK                  # a shift (derivative) plus a loss
    area, _ = window_signal(Q, d, PEAK, [(1.6, 2.2)])
    negative, _ = window_signal(Q, d, PEAK, [(1.6, 2.2)], part="negative")
    positive, _ = window_signal(Q, d, PEAK, [(1.6, 2.2)], part="positive")
    assert area == pytest.approx(negative + positive)
    assert negative < area < 0 < positive
    _, err = window_signal(Q, d, PEAK, [(1.6, 2.2)], d_intensity_err=np.full(Q.size, 0.01))
    sel = (Q >= 1.6) & (Q <= 2.2)
    w = np.full(sel.sum(), Q[1] - Q[0])
    w[[0, -1]] /= 2
    assert err == pytest.approx(0.01 * np.sqrt((w ** 2).sum()) / np.trapezoid(PEAK[sel], Q[sel]))


@pytest.mark.parametrize("bad, match", [
    (dict(mode="sideways"), "unknown reference mode"),
    (dict(is_reference=[0, 0, 0, 0]), "no reference"),
    (dict(is_reference=[0, 0, 1, 1]), "no adjacent reference"),
    (dict(points=[0, 1, np.nan, 3]), "NaN"),
    (dict(points=[0, 1]), "point values for 4 frames"),
])
def test_bad_input(bad, match):
    args = dict(intensity=np.tile(PEAK, (4, 1)), points=[0, 0, 1, 1], is_reference=[0, 1, 0, 1])
    args.update(bad)
    with pytest.raises(ValueError, match=match):
        differences(**args)
    with pytest.raises(ValueError, match="outside the data range"):
        window_signal(Q, PEAK, PEAK, [(0.5, 2.0)])


def _reduced_run(delays, kinetics):
    """Documents of an integrated delay scan: on/off pairs whose (112) area follows *kinetics*."""
    from event_model import compose_run

    run = compose_run(metadata={"plan_name": "integrate", "raw_plan_name": "delay_scan",
                                "raw_uid": "raw-1", "reference": "interleaved"})
    keys = {k: {"source": "t", "dtype": "array", "shape": [Q.size]} for k in ("q", "intensity", "sigma")}
    keys.update({k: {"source": "t", "dtype": "number", "shape": []} for k in ("requested_delay", "delay")})
    keys["role"] = {"source": "t", "dtype": "string", "shape": []}
    desc = run.compose_descriptor(name="primary", data_keys=keys)
    yield "start", run.start_doc
    yield "descriptor", desc.descriptor_doc
    for t, s in zip(delays, kinetics):
        for role, scale in (("on", 1 + s), ("off", 1.0)):
            data = {"q": Q, "intensity": scale * PEAK, "sigma": np.full(Q.size, 1e-4), "requested_delay": t,
                    "delay": t, "role": role}
            yield "event", desc.compose_event(data=data, timestamps={k: 0 for k in data})
    yield "stop", run.compose_stop()


def test_live_pump_probe_refits_after_each_point_and_draws():
    """With a policy that allows it, a refit per completed point; the figure is a separate callback."""
    from matplotlib.figure import Figure

    from trxrd.reduction.callbacks import LivePumpProbe, LivePumpProbePlot, RefitPolicy
    from trxrd.reduction.kinetics import kinetics_model

    delays = np.concatenate([np.linspace(-200, 200, 17), np.geomspace(300, 10000, 20)])
    truth = kinetics_model(delays, t0_ps=0, irf_fwhm_ps=79, amplitudes=[-0.2, -0.1], taus_ps=[150, 2500])
    fig = Figure()
    live = LivePumpProbe([(1.7, 2.05)], model="biexp",
                         refit=RefitPolicy(min_interval_s=0.0, min_new_points=1, max_duty=1.0))
    live.subscribe(LivePumpProbePlot(live, fig, redraw_s=0.0))
    out = []
    live.subscribe(lambda name, doc: out.append((name, doc)))
    for name, doc in _reduced_run(delays, truth):
        live(name, doc)
    np.testing.assert_allclose(live.result.signal, truth, atol=1e-6)
    assert live.result.fit.value("tau1_ps") == pytest.approx(150, rel=0.01)
    fits = [d for n, d in out if n == "event" and "tau1_ps" in d["data"]]
    assert len(fits) == len(delays) - 7 + 1             # a refit per point from the 8th on, and the final
    points = [d for n, d in out if n == "event" and "d_intensity" in d["data"]]
    assert len(points) == len(delays)
    assert out[0][1]["raw_uid"] == "raw-1" and out[-1][0] == "stop"
    assert len(fig.axes) >= 2 and "biexp" in fig.axes[1].get_title()
