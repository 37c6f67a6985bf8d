"""`trxrd demo --experiment ued` as a user runs it: PbSe QDs at 90 K on a simulator of their own,
time zero found, a delay scan with every reflection fitted per point; the anisotropy table it
reports is checked against the sample file (simulated_devices/samples/pbse-90k.toml)."""
import pytest

from conftest import run_demo

TOLERANCE = 0.15


@pytest.mark.slow
@pytest.mark.ioc
@pytest.mark.timeout(900)
def test_ued_demo_recovers_the_per_reflection_dynamics(tmp_path):
    stdout, summary = run_demo("ued", tmp_path)
    assert "anisotropy table" in stdout and (tmp_path / "reflections.png").stat().st_size > 10_000
    assert abs(summary["time_zero"]["fine"]["error_ps"]) < 4.0        # an onset a few ps wide: coarse, late
    for row in summary["anisotropy"]:
        truth = row["truth"]
        for key in ("tau_shift_ps", "shift_max", "du2_max_A2"):
            assert row[key]["value"] == pytest.approx(truth[key], rel=TOLERANCE), (row["hkl"], key, row[key], truth)
        tau, err = row["tau_du2_ps"]["value"], row["tau_du2_ps"]["stderr"]
        # a <du^2> rise of a few ps is a change of 0.5-3 % of a peak's area: its time constant is
        # resolved to its error only (the closing note of the issue lists them): 15 % + 2.5 errors
        allowed = TOLERANCE * truth["tau_du2_ps"] + 2.5 * err
        assert abs(tau - truth["tau_du2_ps"]) < allowed, (row["hkl"], tau, err, truth["tau_du2_ps"])
