"""Fixtures: the simulated beamline as a child process on an isolated loopback CA port.

The EPICS environment is set here, at import, before pyepics or ophyd create a context; so is
the C compiler of sasmodels (the SAXS reference intensities): the machine's ``cc``, else zig's
(``ziglang``, which ``make`` installs where there is no ``cc``).
"""
from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import sys
import time

from pathlib import Path

import pytest

from trxrd.simulated_devices.process import SimulatedBeamline, isolated_ca_env

if shutil.which(shlex.split(os.environ.get("CC", "cc"))[0]) is None:
    try:
        import ziglang  # noqa: F401  (a C compiler in a wheel)

        os.environ["CC"] = f"{sys.executable} -m ziglang cc"
    except ImportError:
        pass                         # sasmodels then says what it misses

CA_ENV = isolated_ca_env()
os.environ.update(CA_ENV)            # this process's CA clients, before pyepics / ophyd load
os.environ.setdefault("OPHYD_CONTROL_LAYER", "pyepics")

PREFIX = "TRXT:"
# Ground-truth overrides for the test beamline: faster heating so settling tests take seconds.
TEST_OVERRIDES = {"heating_cell": {"speedup": 10.0}}


def pytest_collection_modifyitems(session, config, items):
    """Tests that heat the simulated cell run last: it cools over minutes, and the WAXS rings
    of every other test assume the sample at ambient."""
    items.sort(key=lambda item: item.get_closest_marker("hot") is not None)


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


def recording_run_engine(*subscribers, **kwargs):
    """A RunEngine that keeps every document it emits in ``RE.docs`` and sends them to *subscribers*."""
    from bluesky import RunEngine

    engine = RunEngine({}, **kwargs)
    engine.docs = []
    engine.subscribe(lambda name, doc: engine.docs.append((name, doc)))
    for subscriber in subscribers:
        engine.subscribe(subscriber)
    return engine


def exposing_signal(name: str = "slow", exposure_s: float = 0.02):
    """An ophyd soft Signal whose trigger completes after *exposure_s*, like a detector's exposure."""
    import threading

    from ophyd import Signal
    from ophyd.status import Status

    class Exposing(Signal):
        def trigger(self):
            status = Status(obj=self)
            threading.Timer(exposure_s, status.set_finished).start()
            return status

    return Exposing(name=name, value=1.0)


@contextlib.contextmanager
def tables_held(db: Path):
    """Another process (SQLite locks are per process) holds the catalog's tables *db* in an
    exclusive write transaction until the block ends."""
    locker = ("import sqlite3, sys; db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10); "
              "db.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-c", locker, str(db)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield
    finally:
        proc.communicate("", timeout=30)


@contextlib.contextmanager
def tables_locked_after(docs: list, events: int, db: Path):
    """Once *docs* hold *events* events, another process holds the catalog's tables *db* locked
    (``tables_held``), until the block ends."""
    import threading

    held = contextlib.ExitStack()

    def take_the_tables():
        wait_for(lambda: sum(n == "event" for n, _ in docs) >= events, 30, what=f"{events} events")
        held.enter_context(tables_held(db))

    thread = threading.Thread(target=take_the_tables, daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join(30)
        held.close()


@pytest.fixture
def RE():
    return recording_run_engine(call_returns_result=True)


def true_delay_ps(sim, delay_ps: float, time_zero_mm: float) -> float:
    """The simulator's true delay where a device with time zero *time_zero_mm* reads *delay_ps*
    (the stage position is what both share)."""
    from trxrd.acquisition.devices.delay import stage_position_mm
    from trxrd.simulated_devices.physics.laser import stage_delay_ps

    d = sim.cfg["delay"]
    stage = stage_position_mm(delay_ps, time_zero_mm, d["n_passes"])
    return float(stage_delay_ps(stage, d["stage_time_zero_mm"], d["n_passes"]))


@pytest.fixture(scope="session")
def sim(tmp_path_factory):
    """The running simulated beamline (prefix TRXT:), its data folder and its sample file."""
    from trxrd.simulated_devices.physics.config import load_config

    data = tmp_path_factory.mktemp("beamline")
    beamline = SimulatedBeamline(PREFIX, data_dir=data, overrides=TEST_OVERRIDES, ca_env=CA_ENV,
                                 write_roots=[tmp_path_factory.getbasetemp()])   # the tests' frame folders
    beamline.start()
    beamline.cfg = load_config(overrides=TEST_OVERRIDES)
    yield beamline
    beamline.stop()


class PyepicsClient:
    """caget/caput/camonitor through pyepics PV objects of their own (form 'ctrl'), so they
    never share pyepics' PV cache with ophyd's signals (form 'time') in the same process."""

    def __init__(self):
        import epics

        self.epics = epics
        self._pvs = {}
        self._monitors = []

    def pv(self, name):
        if name not in self._pvs:
            pv = self.epics.PV(name, form="ctrl", auto_monitor=False)
            if not pv.wait_for_connection(timeout=10):
                raise TimeoutError(f"cannot connect to {name}")
            self._pvs[name] = pv
        return self._pvs[name]

    def caget(self, name, as_string=False, use_monitor=False, timeout=5.0):
        return self.pv(name).get(as_string=as_string, use_monitor=False, timeout=timeout)

    def caput(self, name, value, wait=False, timeout=30.0):
        return self.pv(name).put(value, wait=wait, timeout=timeout)

    def camonitor(self, name, callback):
        pv = self.epics.PV(name, form="ctrl", auto_monitor=True, callback=callback)
        pv.wait_for_connection(timeout=10)
        self._monitors.append(pv)
        return pv


@pytest.fixture(scope="session")
def ca(sim):
    """A pyepics (EPICS base libca) client connected to the test beamline."""
    return PyepicsClient()


@pytest.fixture
def jet_running(sim, ca):
    """Jet flowing (waits for the flow sensor), restored to stopped afterwards."""
    ca.caput(sim.prefix + "JET:Run", 1, wait=True)
    wait_for(lambda: ca.caget(sim.prefix + "JET:Flowing_RBV", use_monitor=False) == 1, 10,
             what="jet flowing")
    yield
    ca.caput(sim.prefix + "JET:Run", 0, wait=True)


SAMPLE = {"name": "CuInSe2 test NCs", "size_nm": 7.0, "ligand": "oleylamine", "solvent": "dodecane",
          "sigma_cm2": 4e-14}


@pytest.fixture(scope="session")
def bl(sim, tmp_path_factory):
    """Pump-probe devices (not the heating cell / syringe) built like the session does, once for
    the session: every set of ophyd devices adds monitor callbacks the later timing tests share.
    The attenuator is calibrated by `calibrate_fluence` against the simulator (never from its
    sample file); the spot size is the beamline's measurement, which in a dry run is the
    simulator's."""
    from types import SimpleNamespace

    from bluesky import RunEngine

    from trxrd.acquisition.devices.delay import PumpProbeDelay
    from trxrd.acquisition.devices.detectors import PilatusDetector
    from trxrd.acquisition.devices.fluence import FluenceAttenuator
    from trxrd.acquisition.devices.liquid_jet import LiquidJet
    from trxrd.acquisition.devices.monitors import I0Monitor
    from trxrd.acquisition.devices.shutter import PumpShutter
    from trxrd.acquisition.devices.stage import SampleStage
    from trxrd.acquisition.plans.fluence import calibrate_fluence

    root = tmp_path_factory.mktemp("pp")
    p = sim.prefix
    laser = sim.cfg["laser"]
    ns = SimpleNamespace(
        delay=PumpProbeDelay(p, name="pump"),
        att=FluenceAttenuator(p, name="att", spot_fwhm_um=(laser["spot_fwhm_x_um"], laser["spot_fwhm_y_um"])),
        shutter=PumpShutter(p, name="pump_shutter"), jet=LiquidJet(p, name="jet"),
        i0=I0Monitor(p, name="i0"), stage=SampleStage(p, name="sample"),
        pilatus=PilatusDetector(p + "PIL:", name="pilatus", write_dir=root / "frames" / "pilatus"))
    for dev in vars(ns).values():
        dev.wait_for_connection(timeout=30)
    ns.delay.optical.settle_time = ns.att.waveplate.settle_time = 0.005
    ns.calibration = RunEngine({}, call_returns_result=True)(
        calibrate_fluence(ns.att, md={"sample": SAMPLE})).plan_result
    ns.pilatus.exposure_s = 0.05
    ns.devices = dict(delay=ns.delay, shutter=ns.shutter, att=ns.att, jet=ns.jet, i0=ns.i0)
    return ns


def sim_session(sim, data_root, **reduction):
    """A beamline session on the test simulator (its spot, the test sample) with live reduction
    on the simulator's calibration and the (112) window; *reduction* adds settings. Its catalog
    is written in-process (no catalog process to start per test: the reduction tests do not
    need one; tests/test_catalog_server.py tests the session's default)."""
    from trxrd.session import SessionConfig, open_session
    from trxrd.simulated_devices.physics.beamline import window_for

    laser = sim.cfg["laser"]
    session = open_session(SessionConfig(prefix=sim.prefix, data_root=data_root, catalog_process=False,
                                         spot_fwhm_um=(laser["spot_fwhm_x_um"], laser["spot_fwhm_y_um"])),
                           verbose=False)
    session.set_sample(**SAMPLE)
    session.window = window_for("112", sim.cfg)
    session.reduction.set(sim.waxs_dir / "waxs.poni", mask=sim.waxs_dir / "waxs_mask.edf",
                          windows=[session.window], **reduction)
    return session


def run_demo(experiment: str, out) -> tuple[str, dict]:
    """``trxrd demo --experiment EXPERIMENT --out OUT`` as a user runs it, on a simulator of its
    own (no EPICS variables passed on): (its stdout, its summary.json); fails the test with the end
    of its stderr if it exits non-zero."""
    import json
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("EPICS_")}    # its own simulator and port
    env["MPLBACKEND"] = "Agg"
    run = subprocess.run([sys.executable, "-m", "trxrd.cli", "demo", "--experiment", experiment, "--out", str(out)],
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout, json.loads((out / "summary.json").read_text())


def remote_reduction(live_args: list, docs, result, *, env: dict | None = None, timeout: float = 120.0):
    """`trxrd proxy` and `trxrd live *live_args*` on free loopback ports: ping until the live
    process hears, publish *docs* (name, doc) as a RunEngine would, wait until ``result()`` gives
    something (e.g. the result file it writes) and return that, then stop both processes."""
    import queue
    import socket
    import subprocess
    import threading

    from event_model import compose_run

    from trxrd.reduction.callbacks.remote import publisher

    def free_port():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    port_in, port_out = free_port(), free_port()
    cli = [sys.executable, "-m", "trxrd.cli"]
    proxy = subprocess.Popen([*cli, "proxy", "--in", f"127.0.0.1:{port_in}", "--out", f"127.0.0.1:{port_out}"],
                             stdout=subprocess.DEVNULL, env=env)
    live = subprocess.Popen([*cli, "live", "--zmq", f"127.0.0.1:{port_out}", *live_args], stdout=subprocess.PIPE,
                            text=True, env=env)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in live.stdout], daemon=True).start()
    try:
        pub = publisher(f"127.0.0.1:{port_in}")

        def ping_seen():       # 0MQ subscriptions take a moment: ping until the reduction hears
            ping = compose_run(metadata={"plan_name": "ping"})
            pub("start", ping.start_doc)
            pub("stop", ping.compose_stop())
            try:
                while True:
                    if "ping" in lines.get(timeout=0.2):
                        return True
            except queue.Empty:
                return False

        wait_for(ping_seen, timeout=60, what="the live-reduction process to receive documents")
        for name, doc in docs:
            pub(name, doc)
        wait_for(result, timeout=timeout, what="the remote reduction's result")
        return result()
    finally:
        live.terminate()
        proxy.terminate()
        live.wait(10)
        proxy.wait(10)


def listening(pid: int, udp: bool = False) -> list[tuple[str, int]]:
    """(address, port) of the TCP sockets process *pid* listens on and, with *udp*, of its UDP
    sockets that take datagrams from anyone (bound, not connected) (Linux /proc: the socket
    inodes among its open files, looked up in its network namespace's tables)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    tables = [("tcp", "0A"), ("tcp6", "0A")] + ([("udp", "07"), ("udp6", "07")] if udp else [])
    out = []
    for table, state in tables:          # 0A: TCP LISTEN; 07: UDP unconnected
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == state and fields[9] in inodes:
                address, port = fields[1].split(":")
                raw = bytes.fromhex(address)
                if len(raw) == 4:
                    host = ".".join(str(b) for b in raw[::-1])
                else:
                    host = ":".join(raw[i:i + 4][::-1].hex() for i in range(0, 16, 4))
                out.append((host, int(port, 16)))
    return out


def descendants(pid: int) -> list[int]:
    """*pid* and every process below it (Linux /proc children lists)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return out
