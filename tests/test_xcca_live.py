"""Live XCCA of a raster against the simulator's mesocrystal (its physics, no IOCs): the
orientation map against the grain map, the averaged CCF's peaks, c/a and the disorder against the
sample file, the derived run's documents, and a failure that closes the derived run only."""
import math

import numpy as np
import pytest
from event_model import compose_run

from trxrd import datakeys as dk
from matplotlib.figure import Figure

from trxrd.reduction.callbacks.plot import LiveXccaPlot
from trxrd.reduction.callbacks.xcca import LiveXcca
from trxrd.reduction.settings import XccaSettings
from trxrd.reduction.xcca import wrap180
from trxrd.simulated_devices.physics import load_config
from trxrd.simulated_devices.physics.beamline import BeamlineModel

# the rings from the literature (PbS a = 5.936 A; the published q_4 of the superlattice), not the simulator
Q1, Q2 = 2 * math.pi * math.sqrt(3) / 5.936, "1.72nm-1"
STEP = 0.4
XS = np.round(np.arange(-2.4, 2.4 + 1e-9, STEP), 6)
YS = np.round(np.arange(-3.2, 3.2 + 1e-9, STEP), 6)


def raster_documents(model, frames=None, plan_name="raster_scan"):
    """The documents of a snake raster with the frames in the events (as a replay carries them)."""
    bundle = compose_run(metadata={"plan_name": plan_name, "sample": {"name": "PbS mesocrystal"},
                                   dk.KEY_MAP: {"image": "pilatus_image", "x_um": "sample_x", "y_um": "sample_y",
                                                "i0": "i0"}})
    yield "start", bundle.start_doc
    shape = list(model.waxs.shape)
    desc = bundle.compose_descriptor(name="primary", data_keys={
        "pilatus_image": {"source": "sim", "dtype": "array", "shape": shape},
        "sample_x": {"source": "sim", "dtype": "number", "shape": []},
        "sample_y": {"source": "sim", "dtype": "number", "shape": []},
        "i0": {"source": "sim", "dtype": "number", "shape": []}})
    yield "descriptor", desc.descriptor_doc
    k = 0
    for j, y in enumerate(YS):
        for x in (XS if j % 2 == 0 else XS[::-1]):
            model.stage_x_um, model.stage_y_um = float(x), float(y)
            frame = model.waxs_frame(0.1) if frames is None else frames(k)
            yield "event", desc.compose_event(data={"pilatus_image": frame, "sample_x": float(x), "sample_y": float(y),
                                                   "i0": model.i0_current_a()},
                                             timestamps={key: 0.0 for key in ("pilatus_image", "sample_x",
                                                                              "sample_y", "i0")})
            k += 1
    yield "stop", bundle.compose_stop()


@pytest.fixture(scope="module")
def reduced(tmp_path_factory):
    cfg = load_config("pbs-mesocrystal")
    model = BeamlineModel(cfg, seed=11)
    poni, mask = model.waxs.write_calibration(tmp_path_factory.mktemp("xcca"), "waxs")
    xcca = LiveXcca(XccaSettings(poni, q1=Q1, q2=Q2, mask=mask))
    docs = []
    xcca.subscribe(lambda name, doc: docs.append((name, doc)))
    figure = Figure()
    xcca.subscribe(LiveXccaPlot(xcca, figure, redraw_s=3600.0))       # drawn at the first pattern and the end
    for name, doc in raster_documents(model):
        xcca(name, doc)
    return model, xcca, docs, figure


def test_orientation_map_matches_the_grain_map(reduced):
    model, xcca, _, _ = reduced
    grains = hits = spurious = 0
    for row in xcca.rows:
        truth = model.mesocrystal.truth_at(row["x_um"], row["y_um"])
        if truth["has_grain"]:
            grains += 1
            hits += row["orientation_deg"] is not None and abs(
                float(wrap180(2 * (row["orientation_deg"] - truth["orientation_deg"])))) / 2 <= 5.0
        else:
            spurious += row["has_grain"]
    assert len(xcca.rows) == XS.size * YS.size
    assert grains > 50
    assert hits / grains > 0.9
    assert spurious <= 0.05 * (len(xcca.rows) - grains)


def test_averaged_ccf_beta_and_disorder_against_the_sample_file(reduced):
    model, xcca, _, _ = reduced
    truth = model.mesocrystal.truth()
    report = xcca.report
    assert report["n_frames_used"] >= 20
    found = np.array(report["peaks_deg"])
    for peak in truth["ccf_peaks_deg"]:
        assert np.min(np.abs(wrap180(found - peak))) < 2.0, (peak, found)
    assert report["c_over_a"]["value"] == pytest.approx(truth["sl_c_over_a"], abs=0.05)
    assert report["beta_deg"]["value"] == pytest.approx(truth["beta_deg"], abs=2.0)
    assert report["disorder_deg"]["value"] == pytest.approx(truth["disorder_fwhm_deg"], rel=0.2)
    assert report["disorder_deg"]["stderr"] > 0


def test_derived_run_documents(reduced):
    _, xcca, docs, figure = reduced
    names = [n for n, _ in docs]
    assert names[0] == "start" and names[-1] == "stop" and docs[-1][1]["exit_status"] == "success"
    start = docs[0][1]
    assert start["plan_name"] == dk.XCCA_PLAN and start[dk.RAW_UID]
    assert start["q1"] == pytest.approx(Q1) and start["q2"] == pytest.approx(0.172)
    streams = {d["uid"]: d["name"] for n, d in docs if n == "descriptor"}
    events = [d for n, d in docs if n == "event"]
    primary = [e for e in events if streams[e["descriptor"]] == "primary"]
    summary = [e for e in events if streams[e["descriptor"]] == "summary"]
    assert len(primary) == XS.size * YS.size and len(summary) == 1
    first = primary[0]["data"]
    assert first["x_um"] == XS[0] and first["y_um"] == YS[0] and first["peaks_sl_deg"].shape == (8,)
    s = summary[0]["data"]
    assert s["status"] == "ok" and s["c_over_a"] == pytest.approx(xcca.report["c_over_a"]["value"])
    assert len(s["ccf"]) == 180 and s["n_frames_used"] == xcca.report["n_frames_used"]
    # the live figure: three maps on the raster's grid (snake order placed by position) and the CCF
    maps, curve = figure.axes[0], figure.axes[3]
    assert maps.collections[-1].get_array().shape == (YS.size, XS.size)
    assert curve.get_xlabel() == "D (deg)" and "c/a" in curve.get_title()


def test_a_failure_closes_the_derived_run_and_other_runs_are_ignored(tmp_path):
    cfg = load_config("pbs-mesocrystal")
    model = BeamlineModel(cfg, seed=2)
    poni, mask = model.waxs.write_calibration(tmp_path, "waxs")
    xcca = LiveXcca(XccaSettings(poni, q1=Q1, q2=Q2, mask=mask))
    docs = []
    xcca.subscribe(lambda name, doc: docs.append((name, doc)))
    bad = np.zeros((10, 10), np.int32)
    for name, doc in raster_documents(model, frames=lambda k: bad):
        xcca(name, doc)                                  # never raises into the RunEngine
    assert docs[-1][0] == "stop" and docs[-1][1]["exit_status"] == "fail"
    assert "shape" in docs[-1][1]["reason"]
    docs.clear()
    for name, doc in raster_documents(model, frames=lambda k: bad, plan_name="delay_scan"):
        xcca(name, doc)
    assert docs == []
