"""`trxrd demo --experiment xcca` as a user runs it, on a simulator of its own: a raster over
the PbS mesocrystal with live XCCA, against the sample file (orientation map vs grain map, the
averaged CCF's peaks, c/a, the disorder) and the catalog (the xcca run linked to its raster)."""
import numpy as np
import pytest

from conftest import run_demo


@pytest.mark.slow
@pytest.mark.ioc
@pytest.mark.timeout(900)
def test_xcca_demo_recovers_the_grain_map_ccf_and_disorder(tmp_path):
    stdout, summary = run_demo("xcca", tmp_path)
    assert "c/a of the SL" in stdout and (tmp_path / "xcca.png").stat().st_size > 10_000
    truth, report, omap = summary["truth"], summary["report"], summary["orientation_map"]
    assert report["n_frames"] == summary["timing"]["patterns"] == 16 * 21
    assert omap["positions_with_grain"] > 100 and omap["fraction"] > 0.9
    assert omap["grain_reported_where_none"] <= 5
    assert max(summary["ccf_peak_offsets_deg"]) < 2.0
    assert report["c_over_a"]["value"] == pytest.approx(truth["sl_c_over_a"], abs=0.05)
    assert report["disorder_deg"]["value"] == pytest.approx(truth["disorder_fwhm_deg"], rel=0.2)
    assert report["n_frames_used"] >= 20

    from tiled.queries import Key

    from trxrd.catalog import open_catalog

    cat = open_catalog(root=tmp_path / "data")
    xcca = list(cat.search(Key("raw_uid") == summary["raw_runs"][0]).search(Key("plan_name") == "xcca").values())
    assert len(xcca) == 1 and xcca[0].stop["exit_status"] == "success"
    stored = xcca[0]["summary"].read()
    assert float(np.asarray(stored["c_over_a"])[0]) == pytest.approx(report["c_over_a"]["value"])
    assert len(xcca[0]["primary"].read()["orientation_deg"]) == 16 * 21
