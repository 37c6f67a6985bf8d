"""The beamline session (what the IPython profile runs) against the simulated beamline,
with the embedded catalog: the issue's acceptance flow."""
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

pytestmark = pytest.mark.ioc

REPO = Path(__file__).resolve().parents[1]


def test_session_delay_scan_frames_from_catalog(sim, tmp_path, monkeypatch):
    from trxrd.acquisition.session import start_session

    monkeypatch.setenv("TRXRD_DATA", str(tmp_path))
    ns = start_session(sim.prefix, plots=False, verbose=False)
    ns["set_sample"](name="CuInSe2 NCs", size_nm=7.0, ligand="oleylamine", solvent="dodecane",
                     sigma_cm2=4e-14)
    RE, cat, pilatus = ns["RE"], ns["cat"], ns["pilatus"]
    pilatus.exposure_s = 0.02
    delays = ns["log_delays"](-100, 1000, 6)
    (uid,) = RE(ns["delay_scan"]([pilatus], delays))
    run = cat[-1]
    assert run.start["uid"] == uid and run.start["sample"]["name"] == "CuInSe2 NCs"
    assert run.stop["exit_status"] == "success"
    frames = run["primary"]["pilatus_image"].read()
    assert frames.shape == (12, 619, 487)
    roles = list(run["primary"]["role"].read())
    assert roles == ["on", "off"] * 6
    files = sorted((tmp_path / "frames" / "pilatus").rglob("*.h5"))
    assert len(files) == 1
    with h5py.File(files[0], "r") as f:
        np.testing.assert_array_equal(frames, f["/entry/data/data"][:])
    assert list(run["primary"]["requested_delay"].read()) == delays[:1] * 2 + [
        d for d in delays[1:] for _ in range(2)]
    # the sample is remembered for the next session
    from trxrd.acquisition.settings import load_state

    assert load_state()["sample"]["sigma_cm2"] == 4e-14
    ns["writer"].close()


@pytest.mark.slow
def test_profile_in_ipython_runs_the_acceptance_scan(sim, tmp_path):
    """`ipython --profile-dir=profiles/profile_trxrd` against the simulator: the issue's
    acceptance command, then cat[-1]'s frames."""
    env = dict(os.environ, TRXRD_PREFIX=sim.prefix, TRXRD_DATA=str(tmp_path), MPLBACKEND="Agg")
    env.pop("DISPLAY", None)
    code = ("set_sample(name='CuInSe2', size_nm=7.0, ligand='OLA', solvent='dodecane', sigma_cm2=4e-14); "
            "pilatus.exposure_s = 0.02; "
            "RE(delay_scan([pilatus], log_delays(-100, 5000, 20))); "
            "print('FRAMES', cat[-1]['primary']['pilatus_image'].read().shape)")
    out = subprocess.run([sys.executable, "-m", "IPython", "--profile-dir", str(REPO / "profiles/profile_trxrd"),
                          "--no-banner", "--colors=nocolor", "--HistoryManager.enabled=False", "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:] + out.stdout[-3000:]
    assert "FRAMES (40, 619, 487)" in out.stdout
    assert "trxrd session" in out.stdout and "delay_scan" in out.stderr + out.stdout   # banner, progress bar
