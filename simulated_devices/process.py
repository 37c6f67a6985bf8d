"""Start ``trxrd sim`` in a child process on an isolated Channel Access port (loopback only)
and wait until it answers. Used by the tests, the demo and the benchmarks.

EXAMPLE::

    import os
    from trxrd.simulated_devices.process import SimulatedBeamline, isolated_ca_env
    env = isolated_ca_env()
    os.environ.update(env)                        # this process's CA client, before pyepics connects
    with SimulatedBeamline(data_dir="/tmp/trx-data", ca_env=env) as sim:
        import epics
        epics.caget(sim.prefix + "TC:Temperature_RBV")
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import tomli_w

from .physics.config import load_config, resolve_sample


# caproto's CA repeater bound to 127.0.0.1 (its command line always binds 0.0.0.0); quiet below WARNING
REPEATER_ON_LOOPBACK = ("import logging; logging.getLogger('caproto').setLevel(logging.WARNING); "
                        "from caproto.sync.repeater import run; run(host='127.0.0.1')")


def _free_port() -> int:
    """A port free for both UDP and TCP on loopback."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise OSError("no free loopback port for Channel Access")


def isolated_ca_env(server_port: int | None = None) -> dict[str, str]:
    """EPICS environment that keeps clients and the simulator on loopback, on their own ports."""
    server_port = server_port or _free_port()
    repeater = _free_port()
    return {
        "EPICS_CA_AUTO_ADDR_LIST": "NO",
        "EPICS_CA_ADDR_LIST": f"127.0.0.1:{server_port}",
        "EPICS_CA_SERVER_PORT": str(server_port),
        "EPICS_CA_REPEATER_PORT": str(repeater),
        "EPICS_CAS_INTF_ADDR_LIST": "127.0.0.1",
        "EPICS_CAS_BEACON_PORT": str(repeater),      # beacons go to our repeater
        "EPICS_CAS_AUTO_BEACON_ADDR_LIST": "NO",
        "EPICS_CAS_BEACON_ADDR_LIST": "127.0.0.1",
    }


def _listening(port: int, timeout: float) -> bool:
    """Whether a server accepts TCP connections on loopback *port* (the CA server's circuit port)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


class SimulatedBeamline:
    """``trxrd sim`` as a child process, serving Channel Access with the variables *ca_env*
    (default: a fresh isolated set from ``isolated_ca_env``; clients of the caller's process
    need the same variables in their environment before they connect)."""

    def __init__(self, prefix: str = "TRX:", data_dir: str | Path | None = None,
                 overrides: dict | None = None, detector: str | None = None,
                 start_timeout: float = 60.0, log_path: str | Path | None = None,
                 ca_env: dict[str, str] | None = None, sample: str | None = None,
                 write_roots: list[str | Path] | None = None):
        self.prefix = prefix
        self.write_roots = [Path(r).resolve() for r in (write_roots or ())]   # detector files also here
        self.sample = sample
        self._tmp = None
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="trxrd-sim-")
            data_dir = self._tmp.name
        self.data_dir = Path(data_dir).resolve()
        self.overrides = overrides or {}
        self.detector = detector
        self.start_timeout = start_timeout
        self.log_path = Path(log_path) if log_path else self.data_dir / "sim.log"
        self.env = dict(ca_env) if ca_env is not None else isolated_ca_env()
        self.proc: subprocess.Popen | None = None
        self.repeater: subprocess.Popen | None = None

    def _sample_file(self) -> dict:
        """The sample file given to ``trxrd sim``: the named sample with the overrides on top."""
        out = {}
        if self.sample:
            with open(resolve_sample(self.sample), "rb") as f:
                out = tomllib.load(f)
        for table, values in self.overrides.items():
            out[table] = {**out.get(table, {}), **values} if isinstance(values, dict) else values
        return out

    def config(self) -> dict:
        """The simulator's ground truth: defaults, the sample, the overrides."""
        return load_config(overrides=self._sample_file())

    @property
    def waxs_dir(self) -> Path:
        return self.data_dir / "waxs"

    @property
    def saxs_dir(self) -> Path:
        return self.data_dir / "saxs"

    def start(self) -> "SimulatedBeamline":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "trxrd.cli", "sim", "--prefix", self.prefix,
               "--data-dir", str(self.data_dir)]
        if self.overrides or self.sample:
            cfg = self.data_dir / "sample-overrides.toml"
            cfg.write_text(tomli_w.dumps(self._sample_file()))
            cmd += ["--config", str(cfg)]
        if self.detector:
            cmd += ["--detector", self.detector]
        for root in self.write_roots:
            cmd += ["--write-root", str(root)]
        env = {**os.environ, **self.env}
        self._log = open(self.log_path, "w")
        # a CA repeater on the isolated port, on loopback (caproto's command binds 0.0.0.0):
        # receives the server's beacons, serves clients
        self.repeater = subprocess.Popen(
            [sys.executable, "-c", REPEATER_ON_LOOPBACK], env=env,
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"trxrd sim exited with {self.proc.returncode}: "
                                   f"{self.log_path.read_text()[-2000:]}")
            if _listening(int(self.env["EPICS_CA_SERVER_PORT"]), timeout=1.0):
                return self
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"trxrd sim did not answer within {self.start_timeout} s "
                           f"(log: {self.log_path})")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if getattr(self, "repeater", None) is not None:
            self.repeater.terminate()
            self.repeater.wait(10)
            self.repeater = None
        if getattr(self, "_log", None):
            self._log.close()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> "SimulatedBeamline":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
