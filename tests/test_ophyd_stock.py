"""Stock ophyd classes against the simulated IOCs (what the beamline code will use)."""
import threading

import h5py
import numpy as np
import pytest

from conftest import wait_for

pytestmark = pytest.mark.ioc


@pytest.fixture(scope="module")
def motor(sim):
    from ophyd import EpicsMotor

    m = EpicsMotor(sim.prefix + "SMP:y", name="sample_y")
    m.wait_for_connection(timeout=10)
    m.settle_time = 0.005
    return m


def test_epics_motor_limits_move_and_done(sim, motor):
    lo, hi = motor.limits
    assert (lo, hi) == (sim.cfg["stage"]["y_low_um"], sim.cfg["stage"]["y_high_um"])
    assert motor.egu == "um"
    status = motor.set(150.0)
    status.wait(10)
    assert status.success
    assert motor.position == pytest.approx(150.0, abs=0.01)
    from ophyd.utils import LimitError

    with pytest.raises(LimitError):
        motor.set(hi + 1.0)
    assert motor.position == pytest.approx(150.0, abs=0.01)
    motor.set(0.0).wait(10)


def test_epics_motor_stop(sim, motor):
    start = motor.position
    status = motor.set(start + 4000.0)
    wait_for(lambda: abs(motor.position - start) > 100, 3, what="motion")
    motor.stop()
    wait_for(lambda: status.done, 3, what="status done after stop")
    assert motor.motor_done_move.get() == 1
    assert start + 50 < motor.position < start + 3900
    motor.set(0.0).wait(10)


def test_single_trigger_pilatus_hdf5_emits_resource_and_datum(sim, jet_running):
    from bluesky import RunEngine
    from bluesky.plans import count
    from ophyd import Component as Cpt
    from ophyd.areadetector import PilatusDetector, SingleTrigger
    from ophyd.areadetector.filestore_mixins import FileStoreHDF5IterativeWrite
    from ophyd.areadetector.plugins import HDF5Plugin

    class HDF5(HDF5Plugin, FileStoreHDF5IterativeWrite):
        pass

    class Pilatus(SingleTrigger, PilatusDetector):
        hdf5 = Cpt(HDF5, "HDF1:", write_path_template=str(sim.waxs_dir) + "/",
                   root=str(sim.data_dir))

    det = Pilatus(sim.prefix + "PIL:", name="pilatus", read_attrs=["hdf5"])
    det.wait_for_connection(timeout=15)
    det.stage_sigs["cam.num_images"] = 1          # one frame per trigger, whatever was left set
    det.cam.acquire_time.put(0.05)
    det.cam.acquire_period.put(0.0)
    docs = []
    threads = threading.active_count()
    RE = RunEngine({}, call_returns_result=True)
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    RE(count([det], num=3))
    names = [n for n, _ in docs]
    assert names.count("event") == 3
    assert names.count("resource") == 1
    assert names.count("datum") == 3
    resource = next(d for n, d in docs if n == "resource")
    assert resource["spec"] == "AD_HDF5"
    path = resource["root"] + "/" + resource["resource_path"]
    with h5py.File(path, "r", libver="latest", swmr=True) as f:
        data = f["/entry/data/data"][:]
    assert data.shape == (3, 619, 487)
    points = [d["datum_kwargs"]["point_number"] for n, d in docs if n == "datum"]
    assert points == [0, 1, 2]
    assert np.all(data.max(axis=(1, 2)) > 10)
    assert threading.active_count() - threads < 20         # the stock detector spawns no runaway threads
