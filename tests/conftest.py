"""Fixtures: the simulated beamline as a child process on an isolated loopback CA port.

The EPICS environment is set here, at import, before pyepics or ophyd create a context.
"""
from __future__ import annotations

import math
import os
import time

import pytest

from simulated_devices.process import SimulatedBeamline, isolated_ca_env

os.environ.update(isolated_ca_env())
os.environ.setdefault("OPHYD_CONTROL_LAYER", "pyepics")

PREFIX = "TRXT:"
# Ground-truth overrides for the test beamline: faster heating so settling tests take seconds.
TEST_OVERRIDES = {"heating_cell": {"speedup": 10.0}}


def wait_for(predicate, timeout: float, period: float = 0.02, what: str = "condition"):
    """Poll *predicate* until it returns a truthy value; fail after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(period)


@pytest.fixture(scope="session")
def sim(tmp_path_factory):
    """The running simulated beamline (prefix TRXT:), its data folder and its sample file."""
    from simulated_devices.physics.config import load_config

    data = tmp_path_factory.mktemp("beamline")
    beamline = SimulatedBeamline(PREFIX, data_dir=data, overrides=TEST_OVERRIDES)
    beamline.start()
    beamline.cfg = load_config(overrides=TEST_OVERRIDES)
    yield beamline
    beamline.stop()


@pytest.fixture(scope="session")
def ca(sim):
    """pyepics, connected to the test beamline."""
    import epics

    return epics


@pytest.fixture
def jet_running(sim, ca):
    """Jet flowing (waits for the flow sensor), restored to stopped afterwards."""
    ca.caput(sim.prefix + "JET:Run", 1, wait=True)
    wait_for(lambda: ca.caget(sim.prefix + "JET:Flowing_RBV", use_monitor=False) == 1, 10,
             what="jet flowing")
    yield
    ca.caput(sim.prefix + "JET:Run", 0, wait=True)


def isclose(a, b, tol):
    return math.isclose(a, b, abs_tol=tol)
