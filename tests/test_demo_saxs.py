"""`trxrd demo --experiment saxs` and `--experiment anneal` as a user runs them, each on a
simulator of its own: the hot injection with live sphere fits (radius, size dispersion and t98
against the simulator's synthesis), and the nanoplatelet-film anneal with the live stacking
peak (the period at each hold against the film model replayed on the recorded temperatures)."""
import numpy as np
import pytest

from conftest import run_demo


@pytest.mark.slow
@pytest.mark.ioc
@pytest.mark.timeout(900)
def test_saxs_demo_recovers_size_dispersion_and_t98(tmp_path):
    stdout, summary = run_demo("saxs", tmp_path)
    assert "t98 concentration" in stdout and (tmp_path / "saxs.png").stat().st_size > 10_000
    truth, frames = summary["truth"], [f for f in summary["report"]["frames"] if f["time_s"] >= 0]
    assert [f["time_s"] for f in frames] == pytest.approx(truth["time_s"])
    before = [f for f in summary["report"]["frames"] if f["time_s"] < 0]
    assert len(before) >= 10 and not any(f["particles"] for f in before)
    # after nucleation (concentration above 20 % of its final value): every frame has particles,
    # r within 3 % and sigma within 15 % of the simulator's
    conc = np.array(truth["concentration_um"])
    after = [(f, k) for k, f in enumerate(frames) if conc[k] > 0.2 * conc.max()]
    assert len(after) >= max(50, 0.9 * len(frames)) and all(f["particles"] for f, _ in after)
    r_dev = np.array([f["r_mean_nm"]["value"] / truth["radius_nm"][k] - 1 for f, k in after])
    s_dev = np.array([f["sigma_nm"]["value"] / truth["sigma_nm"][k] - 1 for f, k in after])
    assert np.abs(r_dev).max() < 0.03, np.abs(r_dev).max()
    assert np.abs(s_dev).max() < 0.15, np.abs(s_dev).max()
    for key in ("t98_concentration_s", "t98_yield_s"):
        assert summary["report"][key] == pytest.approx(truth[key], rel=0.10), key
    # the live chain reduced every frame the run recorded
    assert len(summary["report"]["frames"]) == summary["timing"]["frames"] == summary["timing"]["raw_frames"]


@pytest.mark.slow
@pytest.mark.ioc
@pytest.mark.timeout(900)
def test_anneal_demo_recovers_the_stacking_period_at_each_hold(tmp_path):
    stdout, summary = run_demo("anneal", tmp_path)
    assert "stacking period at the end of each hold" in stdout and (tmp_path / "stacking.png").stat().st_size > 10_000
    holds = summary["holds"]
    assert [h["temperature_c"][1] for h in holds] == pytest.approx([80, 250, 300, 340, 350], abs=3)
    for hold in holds[:-1]:
        assert hold["d_end_nm"]["value"] == pytest.approx(hold["truth_nm"], abs=0.1), hold
    # the film fused during the last hold: no stacking peak there
    assert holds[-1]["truth_nm"] is None and holds[-1]["d_end_nm"]["value"] is None
