"""The beamline session (what the IPython profile runs) against the simulated beamline,
with the embedded catalog: the issue's acceptance flow."""
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

pytestmark = pytest.mark.ioc

REPO = Path(__file__).resolve().parents[1]


def test_session_delay_scan_frames_from_catalog(sim, tmp_path):
    from trxrd.session import SessionConfig, open_session

    session = open_session(SessionConfig(prefix=sim.prefix, data_root=tmp_path), verbose=False)
    ns = session.namespace()
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
    # time zero, calibration and sample are remembered for the next session, by the session
    delay, att = session.beamline.delay, session.beamline.att
    delay.set_time_zero(151.25)
    att.set_calibration(1e-4, 0.05, 11.0)
    att.set_spot(250.0, 310.0)
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["sample"]["sigma_cm2"] == 4e-14 and state["delay"]["time_zero_mm"] == 151.25
    assert state["fluence"] == {"p_min_w": 1e-4, "p_max_w": 0.05, "theta0_deg": 11.0,
                                "spot_fwhm_x_um": 250.0, "spot_fwhm_y_um": 310.0}
    session.close()
    again = open_session(SessionConfig(prefix=sim.prefix, data_root=tmp_path), verbose=False)
    try:
        assert again.sample.name == "CuInSe2 NCs"
        assert again.beamline.delay.time_zero_mm.get() == 151.25
        assert again.beamline.att.calibration() == state["fluence"]
        assert again.RE.md["scan_id"] == run.start["scan_id"]                # numbering goes on
        # the session's plans take its devices; the plain plans need them
        plan = again.plans["delay_scan"]
        assert inspect.signature(plan).parameters["delay"].default is again.beamline.delay
        from trxrd.acquisition.plans.pump_probe import delay_scan
        with pytest.raises(TypeError, match="delay"):
            delay_scan([again.beamline.pilatus], [0.0])
    finally:
        again.beamline.delay.set_time_zero(150.0)
        again.close()


def test_saxs_and_xcca_settings_are_kept_for_the_next_session(sim, tmp_path, capsys):
    import shutil

    from trxrd.session import SessionConfig, open_session

    calib = tmp_path / "calib"
    calib.mkdir()
    for d in (sim.waxs_dir, sim.saxs_dir):
        for f in d.glob("*.poni"):
            shutil.copy(f, calib)
        for f in d.glob("*_mask.edf"):
            shutil.copy(f, calib)
    session = open_session(SessionConfig(prefix=sim.prefix, data_root=tmp_path), verbose=False)
    ns = session.namespace()
    with pytest.raises(ValueError, match="set_xcca needs"):
        ns["set_xcca"](q1=1.83)
    with pytest.raises(ValueError, match="two rings"):
        ns["set_xcca"](calib / "waxs.poni")
    with pytest.raises(ValueError, match="not on the detector"):                # checked before any raster
        ns["set_xcca"](calib / "waxs.poni", q1=1.83, q2=9.0)
    with pytest.raises(ValueError, match="overlap"):
        ns["set_xcca"](calib / "waxs.poni", q1=1.83, q2=1.84)
    with pytest.raises(ValueError, match="even"):
        ns["set_xcca"](calib / "waxs.poni", q1=1.83, q2=0.5, nphi=181)
    assert session.xcca_reduction.settings is None              # a refused setting installs nothing
    ns["set_xcca"](calib / "waxs.poni", mask=calib / "waxs_mask.edf", q1=1.833, q2="5nm-1")
    ns["set_xcca"](dq=0.03)                                       # the rest kept
    ns["set_saxs"](calib / "saxs.poni", stacking_q=(0.1, 0.8))
    assert "rings 1.833 and 0.5 A^-1 (dq 0.03)" in repr(ns["xcca_reduction"])
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["xcca"]["q2"] == pytest.approx(0.5) and state["xcca"]["dq"] == 0.03
    assert state["saxs"]["stacking_q"] == [0.1, 0.8]
    session.close()
    again = open_session(SessionConfig(prefix=sim.prefix, data_root=tmp_path), verbose=True)
    try:
        assert again.xcca_reduction.settings.dq == 0.03 and again.xcca_reduction.live is not None
        assert again.saxs_reduction.settings.stacking_q == (0.1, 0.8)
        assert "live XCCA of rasters" in capsys.readouterr().out
        again.xcca_reduction.set(dq=None)                          # back to its default
        assert again.xcca_reduction.settings.dq == 0.02
    finally:
        again.close()
    (calib / "waxs.poni").unlink()                                 # a moved calibration never stops a session
    third = open_session(SessionConfig(prefix=sim.prefix, data_root=tmp_path), verbose=True)
    try:
        assert third.xcca_reduction.live is None and third.saxs_reduction.live is not None
        assert "live XCCA: OFF, the saved settings fail (PONI file not found" in capsys.readouterr().out
    finally:
        third.close()


def test_config_from_environment_only_at_entry(tmp_path):
    """The environment is read by SessionConfig.from_environ (entry points), nowhere else."""
    from trxrd.session import SessionConfig

    sample = tmp_path / "sample.json"
    sample.write_text(json.dumps({"name": "x", "size_nm": 5.0, "ligand": "OLA", "solvent": "hexane",
                                  "sigma_cm2": 1e-14}))
    config = SessionConfig.from_environ({"TRXRD_PREFIX": "BL:", "TRXRD_DATA": str(tmp_path),
                                         "TRXRD_SAMPLE": str(sample), "TRXRD_PONI": "/x.poni",
                                         "TRXRD_WINDOWS": "1.7:2.0,2.5:2.6", "TRXRD_SPOT_UM": "270x330"})
    assert config.prefix == "BL:" and config.data_root == tmp_path and config.sample["name"] == "x"
    assert config.reduction["windows"] == [(1.7, 2.0), (2.5, 2.6)] and config.spot_fwhm_um == (270.0, 330.0)
    assert SessionConfig.from_environ({}).prefix == "TRX:"
    for bad in ({"TRXRD_SPOT_UM": "300"}, {"TRXRD_WINDOWS": "2:1", "TRXRD_PONI": "x"},
                {"TRXRD_SAMPLE": str(tmp_path / "missing.json")}):
        with pytest.raises(ValueError):
            SessionConfig.from_environ(bad)


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


def test_every_plan_dry_runs_and_documents_itself(sim, tmp_path, capsys):
    """bluesky's simulators walk every session plan (no wall clock, no progress bar inside a
    plan); every public plan has type hints and a numpydoc docstring with an EXAMPLE."""
    from bluesky.simulators import check_limits, summarize_plan

    from trxrd.acquisition.plans.time_zero import TimeZeroNotFound
    from trxrd.session import PLANS, SessionConfig, open_session

    session = open_session(SessionConfig(prefix=sim.prefix, data_root=tmp_path,
                                         spot_fwhm_um=(272.0, 331.0)), verbose=False)
    try:
        bl, p = session.beamline, session.plans
        session.set_sample(name="dry run", size_nm=7.0, ligand="OLA", solvent="dodecane", sigma_cm2=4e-14)
        bl.att.set_calibration(2e-4, 0.04, 30.0)            # any calibration: nothing moves
        calls = {
            "delay_scan": lambda: p["delay_scan"]([bl.pilatus], p["log_delays"](-100, 1000, 5)),
            "fluence_scan": lambda: p["fluence_scan"]([bl.pilatus], [0.1, 0.2], delay_ps=40),
            "fluence_delay_grid": lambda: p["fluence_delay_grid"]([bl.pilatus], [0.1, 0.2], [0.0, 100.0]),
            "calibrate_fluence": lambda: p["calibrate_fluence"](),
            "temperature_series": lambda: p["temperature_series"]([bl.pilatus], [30.0, 40.0]),
            "anneal_profile": lambda: p["anneal_profile"]([("ramp", 80, 600.0), ("hold", 80, 20.0),
                                                           ("cool", 30, 600.0)], period_s=2.0),
            "injection_series": lambda: p["injection_series"](bl.saxs, mantle_temp_c=240.0, inject_ml=1.0,
                                                              rate_ml_min=60.0, duration_s=5.0, pre_injection_s=1.0),
            "raster_scan": lambda: p["raster_scan"]([bl.pilatus], (-10, 10), (0, 10), 10.0),
            "find_time_zero": lambda: p["find_time_zero"]([bl.pilatus], q_windows=[(1.7, 2.05)], window_ps=60,
                                                          step_ps=10, analyse=lambda w, s: {"problem": "dry run"}),
        }
        assert set(calls) == set(PLANS)
        for name, make in calls.items():
            try:
                summarize_plan(make())
            except TimeZeroNotFound:            # a dry run has no signal: nothing set, the run recorded
                assert name == "find_time_zero"
            out = capsys.readouterr().out
            assert "Open Run" in out and "  Read [" in out and "Close Run" in out, (name, out[-500:])
            if name != "find_time_zero":
                check_limits(make())
        for name, plan in PLANS.items():
            doc = plan.__doc__ or ""
            assert "Parameters" in doc and ("Returns" in doc or "Yields" in doc) and "EXAMPLE" in doc, name
            hints = inspect.signature(plan).parameters
            assert inspect.signature(plan).return_annotation is not inspect.Signature.empty, name
            unannotated = [n for n, prm in hints.items() if prm.annotation is inspect.Parameter.empty
                           and n not in ("delay", "shutter", "att", "jet", "i0", "cell", "syringe", "stage",
                                         "saxs_detector")]
            assert not unannotated, (name, unannotated)
    finally:
        session.close()


def test_every_device_documents_itself():
    """Every device class of the beamline has a numpydoc docstring with an EXAMPLE."""
    import typing

    from trxrd.acquisition.beamline import Beamline
    from trxrd.acquisition.devices.clock import PlanClock
    from trxrd.acquisition.devices.delay import DelayStage, ElectronicDelay

    classes = set(typing.get_type_hints(Beamline).values()) | {PlanClock, DelayStage, ElectronicDelay}
    assert len(classes) == 12
    for cls in classes:
        doc = cls.__doc__ or ""
        assert "Parameters" in doc and "EXAMPLE" in doc, cls.__name__


@pytest.mark.slow
def test_trxrd_shell_sim_uses_the_packaged_profile(tmp_path):
    """`trxrd shell --sim`: the profile comes from the package (copied into IPython's profile
    folder), the simulator's sample, spot and calibration are the session's starting points."""
    env = dict(os.environ, IPYTHONDIR=str(tmp_path / "ipython"), TRXRD_DATA=str(tmp_path / "data"),
               MPLBACKEND="Agg")
    for key in [k for k in env if k.startswith(("EPICS_", "TRXRD_PREFIX"))]:
        env.pop(key)                                   # its own simulator, its own port
    env.pop("DISPLAY", None)
    code = ("RE(calibrate_fluence()); pilatus.exposure_s = 0.02; "
            "RE(delay_scan([pilatus], [0.0, 100.0])); reduction.wait(120); "
            "print('SAMPLE', session.sample.name, 'SPOT', att.spot_fwhm_x_um.get(), "
            "'FRAMES', cat[-1]['primary']['pilatus_image'].read().shape, 'REDUCED', reduction.live.integrator.frames)")
    out = subprocess.run([sys.executable, "-m", "trxrd.cli", "shell", "--sim", "--no-banner", "--colors=nocolor",
                          "--HistoryManager.enabled=False", "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:] + out.stdout[-3000:]
    assert "SPOT 272.0 FRAMES (4, 619, 487) REDUCED 4" in out.stdout
    assert "SAMPLE CuInSe2" in out.stdout and "the simulator's sample file" in out.stdout
    startup = tmp_path / "ipython" / "profile_trxrd" / "startup" / "00-trxrd.py"
    assert startup.read_text() == (REPO / "profiles/profile_trxrd/startup/00-trxrd.py").read_text()
