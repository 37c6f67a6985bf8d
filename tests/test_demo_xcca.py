"""`trxrd demo --experiment xcca` as a user runs it, on a simulator of its own: a raster over
the PbS mesocrystal with live XCCA, against the sample file (orientation map vs grain map, the
averaged CCF's peaks, c/a, the disorder) and the catalog (the xcca run linked to its raster)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest


@pytest.mark.slow
@pytest.mark.ioc
@pytest.mark.timeout(900)
def test_xcca_demo_recovers_the_grain_map_ccf_and_disorder(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPICS_")}    # its own simulator and port
    env["MPLBACKEND"] = "Agg"
    run = subprocess.run([sys.executable, "-m", "trxrd.cli", "demo", "--experiment", "xcca", "--out", str(tmp_path)],
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert "c/a of the SL" in run.stdout and (tmp_path / "xcca.png").stat().st_size > 10_000
    truth, report, omap = summary["truth"], summary["report"], summary["orientation_map"]
    assert report["n_frames"] == summary["timing"]["patterns"] == 16 * 21
    assert omap["positions_with_grain"] > 100 and omap["fraction"] > 0.9
    assert omap["grain_reported_where_none"] <= 5
    assert max(summary["ccf_peak_offsets_deg"]) < 2.0
    assert report["c_over_a"]["value"] == pytest.approx(truth["sl_c_over_a"], abs=0.05)
    assert report["disorder_deg"]["value"] == pytest.approx(truth["disorder_fwhm_deg"], rel=0.2)
    assert report["n_frames_used"] >= 20

    from trxrd.catalog import open_catalog

    cat = open_catalog(root=tmp_path / "data")
    raw = cat[summary["raw_runs"][0]]
    derived = [cat[uid] for uid in cat.search({"raw_uid": raw.start["uid"]})]
    xcca = [r for r in derived if r.start["plan_name"] == "xcca"]
    assert len(xcca) == 1 and xcca[0].stop["exit_status"] == "success"
    stored = xcca[0]["summary"].read()
    assert float(np.asarray(stored["c_over_a"])[0]) == pytest.approx(report["c_over_a"]["value"])
    assert len(xcca[0]["primary"].read()["orientation_deg"]) == 16 * 21
