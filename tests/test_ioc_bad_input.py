"""Bad values are refused with a clear error; the IOC keeps serving."""
import math

import pytest
from caproto import CaprotoError
from caproto.sync.client import read, write

pytestmark = pytest.mark.ioc

CASES = [
    ("TC:Setpoint", 5000.0),          # beyond the controller's maximum
    ("TC:Setpoint", math.nan),
    ("TC:RampRate", -5.0),
    ("JET:FlowRate", -1.0),
    ("JET:FlowRate", math.nan),
    ("SYR:Rate", -2.0),
    ("SYR:Volume", 1e3),              # more than the syringe holds
    ("DG:Delay", 2e-5),               # beyond the generator's 10 us
    ("DG:Delay", -1e-9),
    ("DLY:m1", math.nan),             # NaN motor target
    ("DLY:m1.VELO", -3.0),
    ("PIL:cam1:AcquireTime", -0.1),
    ("PIL:cam1:NumImages", 0),
    ("PIL:HDF1:FilePath", "relative/path"),
]


@pytest.mark.parametrize("suffix,value", CASES)
def test_refused_and_ioc_alive(sim, suffix, value):
    pv = sim.prefix + suffix
    before = read(pv, timeout=5, repeater=False).data
    with pytest.raises(CaprotoError):
        write(pv, [value] if not isinstance(value, str) else value, notify=True, timeout=5, repeater=False)
    after = read(pv, timeout=5, repeater=False).data
    assert list(after) == list(before)
    assert sim.running()
    assert read(sim.prefix + "I0:Current_RBV", timeout=5, repeater=False).data[0] > 0
