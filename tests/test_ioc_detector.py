"""Area detector IOC: frames land in HDF5 files and show the physics of the sample."""
import h5py
import numpy as np
import pytest

from conftest import wait_for
from trxrd.reduction.integrate import AzimuthalIntegration
from trxrd.reduction.peaks import window_integral
from trxrd.simulated_devices.physics.beamline import BeamlineModel, window_for
from trxrd.simulated_devices.physics.crystal import CHALCOPYRITE_REFLECTIONS, STRONG_GROUPS, reflection_q

pytestmark = pytest.mark.ioc


def acquire_single(ca, prefix, det="PIL:", name="frame", exposure=0.2):
    """Acquire one frame in Single file mode; return (file name, frame, I0 of the exposure)."""
    cam, hdf = prefix + det + "cam1:", prefix + det + "HDF1:"
    ca.caput(hdf + "EnableCallbacks", 1, wait=True)
    ca.caput(hdf + "FileWriteMode", 0, wait=True)
    ca.caput(hdf + "AutoSave", 1, wait=True)
    ca.caput(hdf + "FileName", name, wait=True)
    ca.caput(cam + "ImageMode", 0, wait=True)
    ca.caput(cam + "AcquireTime", exposure, wait=True)
    ca.caput(cam + "AcquirePeriod", 0.0, wait=True)
    ca.caput(cam + "Acquire", 1, wait=True, timeout=30)
    fname = ca.caget(hdf + "FullFileName_RBV", as_string=True, use_monitor=False)
    i0 = ca.caget(prefix + "I0:Current_RBV", use_monitor=False)
    with h5py.File(fname, "r") as f:
        frame = f["/entry/data/data"][-1]
    return fname, frame, i0


@pytest.fixture(scope="module")
def waxs_integrator(sim):
    return AzimuthalIntegration(sim.waxs_dir / "waxs.poni", mask=sim.waxs_dir / "waxs_mask.edf", npt=1500)


def test_frame_file_and_rings_at_predicted_q(sim, ca, jet_running, waxs_integrator):
    fname, frame, i0 = acquire_single(ca, sim.prefix, name="rings")
    folder = ca.caget(sim.prefix + "PIL:HDF1:FilePath_RBV", as_string=True, use_monitor=False)
    assert fname.startswith(folder) and fname.endswith(".h5")     # wherever the plugin was told
    assert frame.shape == (619, 487) and frame.dtype == np.int32
    assert (frame == -1).sum() > 0                      # Pilatus module gaps
    q, i, _ = waxs_integrator.integrate(frame, monitor=i0)
    bin_width = q[1] - q[0]
    s = sim.cfg["sample"]
    for group in ("112", "220/204", "116/312"):
        members = STRONG_GROUPS[group]
        weights = [CHALCOPYRITE_REFLECTIONS[hkl] for hkl in members]
        q_expect = np.average([reflection_q(hkl, s["a_angstrom"], s["c_angstrom"]) for hkl in members],
                              weights=weights)
        lo, hi = window_for(group, sim.cfg, half_widths=1.0)
        sel = (q > lo) & (q < hi)
        top = i[sel] - i[sel].min()
        half = top > 0.5 * top.max()
        q_peak = np.average(q[sel][half], weights=top[half])    # centroid above half maximum
        assert abs(q_peak - q_expect) <= bin_width, group
        # a ring, not noise: peak well above the background between rings
        assert i[sel].max() > 3 * np.median(i[(q > 2.3) & (q < 2.6)])


def test_stream_mode_appends_frames_to_one_file(sim, ca, jet_running):
    cam, hdf = sim.prefix + "PIL:cam1:", sim.prefix + "PIL:HDF1:"
    ca.caput(hdf + "EnableCallbacks", 1, wait=True)
    ca.caput(hdf + "FileWriteMode", 2, wait=True)
    ca.caput(hdf + "FileName", "stream", wait=True)
    ca.caput(hdf + "NumCapture", 0, wait=True)
    n0 = ca.caget(hdf + "FileNumber", use_monitor=False)
    ca.caput(hdf + "Capture", 1, wait=True)
    assert ca.caget(hdf + "FileNumber_RBV", use_monitor=False) == n0 + 1   # bumped on open
    ca.caput(cam + "ImageMode", 1, wait=True)
    ca.caput(cam + "NumImages", 3, wait=True)
    ca.caput(cam + "AcquireTime", 0.05, wait=True)
    ca.caput(cam + "Acquire", 1, wait=True, timeout=30)
    assert ca.caget(hdf + "NumCaptured_RBV", use_monitor=False) == 3
    fname = ca.caget(hdf + "FullFileName_RBV", as_string=True, use_monitor=False)
    with h5py.File(fname, "r", libver="latest", swmr=True) as f:   # readable while open
        assert f["/entry/data/data"].shape == (3, 619, 487)
    ca.caput(hdf + "Capture", 0, wait=True)
    with h5py.File(fname, "r") as f:
        assert f["/entry/data/data"].shape == (3, 619, 487)
        assert list(f["/entry/instrument/NDAttributes/NDArrayUniqueId"][:]) == sorted(
            f["/entry/instrument/NDAttributes/NDArrayUniqueId"][:])


def _relative_change(ca, sim, integ, window, delay_ps, frames=3):
    """Pump-on minus pump-off, I0-normalised, relative to pump-off, in a q window."""
    d = sim.cfg["delay"]
    stage = d["stage_time_zero_mm"] + delay_ps * 1e-12 * 299792458.0 / d["n_passes"] * 1e3
    ca.caput(sim.prefix + "DLY:m1", stage, wait=True, timeout=30)
    areas = {}
    for state in (0, 1):
        ca.caput(sim.prefix + "LSR:Shutter", state, wait=True)
        acc = 0.0
        for k in range(frames):
            _, frame, i0 = acquire_single(ca, sim.prefix, name=f"pp_{delay_ps}_{state}_{k}", exposure=0.1)
            q, i, _ = integ.integrate(frame, monitor=i0)
            acc += window_integral(q, i, *window)
        areas[state] = acc / frames
    ca.caput(sim.prefix + "LSR:Shutter", 0, wait=True)
    return (areas[1] - areas[0]) / areas[0]


def test_pump_probe_difference_matches_model(sim, ca, jet_running, waxs_integrator):
    ca.caput(sim.prefix + "WP:m1", sim.cfg["laser"]["theta0_deg"], wait=True, timeout=30)  # full power
    model = BeamlineModel(sim.cfg)
    model.jet.run = True
    model.jet.advance(10)
    model.waveplate_deg = sim.cfg["laser"]["theta0_deg"]
    assert model.excitations() > 2 * sim.cfg["pump_probe"]["threshold_excitations"]
    window = window_for("112", sim.cfg)
    truth = model.relative_area_change(*window, delay_ps=100.0)
    measured = _relative_change(ca, sim, waxs_integrator, window, 100.0)
    assert truth < -0.05
    assert measured == pytest.approx(truth, abs=0.01)        # noise of 3 frame pairs ~ 0.003
    before_t0 = _relative_change(ca, sim, waxs_integrator, window, -200.0)
    assert abs(before_t0) < 0.01


def test_jet_stopped_rings_vanish(sim, ca, waxs_integrator):
    ca.caput(sim.prefix + "JET:Run", 0, wait=True)
    wait_for(lambda: ca.caget(sim.prefix + "JET:Flowing_RBV", use_monitor=False) == 0, 10, what="jet stopped")
    _, frame, i0 = acquire_single(ca, sim.prefix, name="nojet")
    q, i, _ = waxs_integrator.integrate(frame, monitor=i0)
    lo, hi = window_for("112", sim.cfg, half_widths=1.0)
    peak = i[(q > lo) & (q < hi)].max()
    base = np.median(i[(q > 2.3) & (q < 2.6)])
    assert peak < 1.5 * base          # no ring above the air scattering
