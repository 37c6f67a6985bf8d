"""Security: every server on loopback unless configured (the sockets the processes really open,
from Linux /proc), no pickle on any socket, 0MQ addresses checked, names from documents that
become file names never leave their folder, hostile documents on the 0MQ path logged and skipped
(``trxrd live`` keeps reducing), the simulated detector writes only under its data folders, and
read-only PVs refuse writes."""
from __future__ import annotations

import json
import os
import pickle
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import descendants, listening, wait_for

CLI = [sys.executable, "-m", "trxrd.cli"]
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def calibration(folder: Path) -> tuple[Path, Path]:
    """A Pilatus 300K PONI file and mask (the simulator's geometry code)."""
    from trxrd.simulated_devices.physics.detector import DetectorGeometry

    return DetectorGeometry("pilatus300k", 70, 53, 5, 11.7).write_calibration(folder, "waxs")


class Lines:
    """The lines a child process prints, read on a thread, searchable while it runs."""

    def __init__(self, stream):
        self.seen: list[str] = []
        self._q: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [self._q.put(line) for line in stream], daemon=True).start()

    def has(self, text: str) -> bool:
        try:
            while True:
                self.seen.append(self._q.get_nowait())
        except queue.Empty:
            pass
        return any(text in line for line in self.seen)

    def count(self, text: str) -> int:
        self.has(text)
        return sum(text in line for line in self.seen)


def stop(*procs) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# -- 1. servers bind to loopback ---------------------------------------------------------------------

@pytest.mark.ioc
def test_simulator_and_its_repeater_listen_on_loopback_only(sim):
    """The test simulator (`trxrd sim` child) and the CA repeater it starts: TCP and UDP on
    127.0.0.1 only (caproto's repeater command binds 0.0.0.0; ours does not)."""
    port = int(sim.env["EPICS_CA_SERVER_PORT"])
    server = listening(sim.proc.pid, udp=True)
    assert (LOOPBACK, port) in server                      # TCP circuit and UDP search port
    assert {host for host, _ in server} == {LOOPBACK}, server
    repeater = listening(sim.repeater.pid, udp=True)
    assert repeater == [(LOOPBACK, int(sim.env["EPICS_CA_REPEATER_PORT"]))]


@pytest.mark.ioc
def test_trxrd_sim_without_epics_settings_serves_loopback(tmp_path):
    """`trxrd sim` as a user starts it, with no EPICS_CAS_INTF_ADDR_LIST: loopback only."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPICS_")}
    env["EPICS_CA_SERVER_PORT"] = str(port)          # a free port, not the site's 5064
    proc = subprocess.Popen([*CLI, "sim", "--prefix", "SEC:", "--data-dir", str(tmp_path)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        opened = wait_for(lambda: proc.poll() is None and len(listening(proc.pid, udp=True)) >= 2 and
                          listening(proc.pid, udp=True), 120, period=0.2, what="trxrd sim to serve")
        assert (LOOPBACK, port) in opened
        assert {host for host, _ in opened} == {LOOPBACK}, opened
    finally:
        stop(proc)


def test_proxy_and_live_listen_on_loopback_only(tmp_path):
    """`trxrd proxy` binds its two ports on 127.0.0.1 (its defaults too); `trxrd live` only
    connects: it listens on nothing."""
    from trxrd.cli import build_parser

    proxy_args = build_parser().parse_args(["proxy"])
    assert proxy_args.in_address.startswith(LOOPBACK + ":") and proxy_args.out_address.startswith(LOOPBACK + ":")
    assert build_parser().parse_args(["live"]).zmq.startswith(LOOPBACK + ":")
    port_in, port_out = free_port(), free_port()
    poni, mask = calibration(tmp_path)
    proxy = subprocess.Popen([*CLI, "proxy", "--in", f"{LOOPBACK}:{port_in}", "--out", f"{LOOPBACK}:{port_out}"],
                             stdout=subprocess.DEVNULL)
    live = subprocess.Popen([*CLI, "live", "--zmq", f"{LOOPBACK}:{port_out}", "--poni", str(poni), "--mask", str(mask),
                             "--window", "1.0:2.0"], stdout=subprocess.PIPE, text=True)
    lines = Lines(live.stdout)
    try:
        opened = wait_for(lambda: len(listening(proxy.pid, udp=True)) == 2 and listening(proxy.pid, udp=True),
                          120, period=0.2, what="the proxy's two ports")
        assert sorted(opened) == sorted([(LOOPBACK, port_in), (LOOPBACK, port_out)])
        wait_for(lambda: lines.has("reducing the documents"), 120, period=0.2, what="trxrd live to start")
        assert live.poll() is None
        assert listening(live.pid, udp=True) == []
    finally:
        stop(live, proxy)


@pytest.mark.ioc
@pytest.mark.slow
def test_trxrd_shell_sim_opens_servers_on_loopback_only(tmp_path):
    """`trxrd shell --sim`, run with -c: the session's process and every process it started
    (simulator, CA repeater, catalog server) listen on 127.0.0.1 only; the simulator's and the
    repeater's UDP ports too. (The session's own CA client sockets are clients: only its TCP
    listening sockets are counted there.)"""
    env = dict(os.environ, IPYTHONDIR=str(tmp_path / "ipython"), TRXRD_DATA=str(tmp_path / "data"),
               MPLBACKEND="Agg")
    for key in [k for k in env if k.startswith(("EPICS_", "TRXRD_PREFIX"))]:
        env.pop(key)
    env.pop("DISPLAY", None)
    code = "import os, sys; print('SHELL-PID', os.getpid(), flush=True); sys.stdin.readline()"
    shell = subprocess.Popen([*CLI, "shell", "--sim", "--no-banner", "--colors=nocolor",
                              "--HistoryManager.enabled=False", "-c", code], cwd=tmp_path, env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = Lines(shell.stdout)
    try:
        wait_for(lambda: lines.has("SHELL-PID") or shell.poll() is not None, 300, period=0.5,
                 what="the shell's session to open")
        assert shell.poll() is None, shell.stderr.read()[-3000:]
        children = [p for p in descendants(shell.pid) if p != shell.pid]
        assert len(children) >= 2                       # at least the simulator and its repeater
        opened = {pid: listening(pid, udp=True) for pid in children}
        opened[shell.pid] = listening(shell.pid)
        everything = [address for found in opened.values() for address in found]
        assert len(everything) >= 3, opened            # CA TCP + UDP + repeater at least
        assert {host for host, _ in everything} == {LOOPBACK}, opened
    finally:
        if shell.poll() is None:
            shell.stdin.write("\n")
            shell.stdin.flush()
            try:
                shell.wait(120)
            except subprocess.TimeoutExpired:
                stop(shell)


# -- 2. no pickle on any socket ------------------------------------------------------------------------

class _Payload:
    """Unpickling this creates *marker*: what a pickle on a socket could do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_zero_mq_documents_are_json_and_a_pickle_is_refused(tmp_path):
    from trxrd.reduction.callbacks.remote import DocumentGate, dispatcher, dumps, loads, publisher

    doc = {"uid": "a1", "time": 1.5, "data": {"x": np.float32(2.5), "img": np.arange(4).reshape(2, 2)}}
    wire = dumps(doc)
    assert json.loads(wire) == {"uid": "a1", "time": 1.5, "data": {"x": 2.5, "img": [[0, 1], [2, 3]]}}
    assert loads(wire)["data"]["img"] == [[0, 1], [2, 3]]
    with pytest.raises(TypeError, match="cannot send a object"):
        dumps({"x": object()})
    marker = tmp_path / "unpickled"
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises(ValueError, match="not a JSON document"):
            loads(pickle.dumps(_Payload(marker), protocol=protocol))
        with pytest.raises(ValueError, match="not a JSON document"):
            DocumentGate().check(b" start " + pickle.dumps(_Payload(marker), protocol=protocol))
    assert not marker.exists()
    # both ends of the 0MQ path use these, not bluesky's pickle defaults
    pub, sub = publisher(f"{LOOPBACK}:{free_port()}"), dispatcher(f"{LOOPBACK}:{free_port()}")
    try:
        assert pub._serializer is dumps and sub._deserializer is loads
    finally:
        pub.close()
        sub.loop.close()


def test_what_the_publisher_puts_on_the_socket_is_json():
    """A real 0MQ socket: the bytes the session's Publisher sends are PREFIX NAME JSON."""
    import zmq

    from trxrd.reduction.callbacks.remote import publisher

    port = free_port()
    context = zmq.Context()
    receiver = context.socket(zmq.SUB)
    receiver.bind(f"tcp://{LOOPBACK}:{port}")
    receiver.setsockopt(zmq.SUBSCRIBE, b"")
    pub = publisher(f"{LOOPBACK}:{port}")
    try:
        def received():
            pub("start", {"uid": "u1", "time": 0.0, "value": np.float64(3.0)})
            return receiver.poll(200) and receiver.recv()

        message = wait_for(received, 60, what="the publisher's message")
        prefix, name, payload = message.split(b" ", 2)
        assert (prefix, name) == (b"", b"start")
        assert not payload.startswith(b"\x80")             # pickle protocols 2+ start with \x80
        assert json.loads(payload) == {"uid": "u1", "time": 0.0, "value": 3.0}
    finally:
        pub.close()
        receiver.close(0)
        context.term()


def test_no_pickle_in_the_package():
    """No module of the suite imports pickle (multiprocessing pipes aside, nothing would need it)."""
    repo = Path(__file__).resolve().parents[1]
    offenders = [str(path.relative_to(repo))
                 for folder in ("trxrd", "acquisition", "reduction", "simulated_devices")
                 for path in (repo / folder).rglob("*.py")
                 if "import pickle" in path.read_text() or "pickle.load" in path.read_text()]
    assert offenders == []


# -- 3. 0MQ addresses --------------------------------------------------------------------------------

@pytest.mark.parametrize("argv,what", [
    (["proxy", "--in", "127.0.0.1:99999"], "1..65535"),
    (["proxy", "--out", "127.0.0.1:0"], "1..65535"),
    (["proxy", "--in", "127.0.0.1:-5"], "1..65535"),
    (["proxy", "--in", "bad host:5567"], "not an IP address or a host name"),
    (["proxy", "--in", "127.0.0.1"], "expected HOST:PORT"),
    (["proxy", "--in", "127.0.0.1:"], "expected HOST:PORT"),
    (["live", "--zmq", "127.0.0.1:65536"], "1..65535"),
    (["live", "--zmq", "a/b:5568"], "not an IP address or a host name"),
])
def test_bad_0mq_addresses_are_refused_in_one_line(argv, what, capsys):
    from trxrd.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert what in err and err.count("\n") == 1 and "Traceback" not in err, err


def test_trxrd_proxy_with_an_impossible_port_exits_instead_of_running_silently():
    run = subprocess.run([*CLI, "proxy", "--in", "127.0.0.1:99999"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr == "trxrd proxy: error: 0MQ address '127.0.0.1:99999': the port must be a number " \
                         "in 1..65535, got '99999'\n"


def test_good_addresses_pass():
    from trxrd.reduction.callbacks.remote import _tcp

    assert _tcp("127.0.0.1:5567") == "tcp://127.0.0.1:5567"
    assert _tcp("*:1") == "tcp://*:1"
    assert _tcp("beamline-ws.example.org:65535") == "tcp://beamline-ws.example.org:65535"
    assert _tcp("[::1]:5568") == "tcp://[::1]:5568"


# -- 4. names that become paths ----------------------------------------------------------------------

@pytest.mark.parametrize("text,stem", [
    ("3f2a9c1e", "3f2a9c1e"), ("../../zz", "______zz"), ("/etc/passwd", "_etc_passwd"), ("..", "__"),
    ("a\\b", "a_b"), ("x\x00y", "x_y"), ("", "_"), ("CuInSe2 NCs #3", "CuInSe2_NCs__3"), (12345, "12345"),
])
def test_file_stem_never_leaves_the_folder(text, stem, tmp_path):
    from trxrd.validation import file_stem, inside

    assert file_stem(text) == stem
    assert inside(tmp_path, f"{file_stem(text)}.json").parent == tmp_path.resolve()


def test_inside_refuses_paths_that_escape(tmp_path):
    from trxrd.validation import inside

    outside = tmp_path / "outside"
    outside.mkdir()
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "link").symlink_to(outside)
    assert inside(folder, "run.json") == folder.resolve() / "run.json"
    for name in ("../x.json", "/etc/passwd", ".", "a/../../x", "link/x.json", "x\x00.json"):
        with pytest.raises(ValueError, match="outside|NUL"):
            inside(folder, name, "result file")


def test_catalog_spool_names_stay_in_the_spool_folder(tmp_path):
    from trxrd.catalog import CatalogWriter

    writer = SimpleNamespace(backup_directory=tmp_path)
    assert CatalogWriter.spool_path(writer, "3f2a9c1e-aaaa-bbbb") == tmp_path / "3f2a9c1e.jsonl"
    for uid in ("../../zz", "/etc/cron.d/x", "..", "a/b-c"):
        path = CatalogWriter.spool_path(writer, uid)
        assert path.parent == tmp_path and path.name not in ("..", ".jsonl"), path


# -- 5. hostile documents on the 0MQ path ------------------------------------------------------------

def synthetic_delay_scan(shape, uid=None, frames_per_role=4):
    """A delay scan's documents with the frames inline (Poisson noise), as a replay sends them."""
    from event_model import compose_run

    rng = np.random.default_rng(1)
    keys = {"delay": "pump_delay", "fluence": "att_fluence", "excitations": "att_excitations", "i0": "i0",
            "shutter": "pump_shutter", "jet_flow": "jet_flow", "image": "pilatus_image"}
    run = compose_run(uid=uid, metadata={"plan_name": "delay_scan", "sample": {"name": "synthetic"},
                                         "trxrd_keys": keys})
    number = {"source": "sim", "dtype": "number", "shape": []}
    desc = run.compose_descriptor(name="primary", data_keys={
        "pilatus_image": {"source": "sim", "dtype": "array", "shape": list(shape)},
        "pump_delay": number, "att_fluence": number, "att_excitations": number, "jet_flow": number, "i0": number,
        "pump_shutter": {"source": "sim", "dtype": "string", "shape": []},
        "role": {"source": "plan", "dtype": "string", "shape": []},
        "requested_delay": number, "delay_index": {"source": "plan", "dtype": "integer", "shape": []}})
    docs = [("start", run.start_doc), ("descriptor", desc.descriptor_doc)]
    for k, delay in enumerate([-10.0, 0.0, 10.0, 100.0][:frames_per_role]):
        for role in ("on", "off"):
            data = {"pilatus_image": rng.poisson(100.0, size=shape).astype(np.int32), "role": role,
                    "requested_delay": delay, "delay_index": k, "i0": 1.0, "pump_delay": delay, "att_fluence": 1.0,
                    "att_excitations": 1.0, "jet_flow": 8.0, "pump_shutter": "Open" if role == "on" else "Closed"}
            docs.append(("event", desc.compose_event(data=data, timestamps={key: 0.0 for key in data})))
    docs.append(("stop", run.compose_stop()))
    return docs


def hostile_messages(marker: Path) -> tuple[list[bytes], list[bytes]]:
    """(messages the gate refuses, messages it passes that break the reduction's callbacks)."""
    refused = [
        b"no-spaces-at-all",
        b"\xff\xfe start {}",
        b" start not json",
        b" start [1, 2]",
        b' start "a string"',
        b" start " + pickle.dumps(_Payload(marker)),
        b" start {}",                                             # no uid
        b' start {"uid": 5, "time": 0}',
        b' start {"uid": "' + b"u" * 1000 + b'", "time": 0}',
        b" frobnicate {}",
        b' event {"uid": "e1", "descriptor": "nowhere", "data": {}, "timestamps": {}}',   # before its descriptor
        b' descriptor {"uid": "d1", "run_start": "nowhere", "data_keys": {}}',
        b' stop {"uid": "s1", "run_start": "nowhere"}',
        b' start {"uid": "big", "n": 1' + b"0" * 5000 + b"}",    # more digits than Python parses
        b" start " + b"[" * 100_000 + b"]" * 100_000,             # deeper than the parser goes
    ]
    passed = [                                                    # well-formed, hostile values
        b' start {"uid": "inf-run", "time": 1e999, "plan_name": "delay_scan", "trxrd_keys": "not a map", '
        b'"scan_id": 1e308}',
        b' descriptor {"uid": "inf-desc", "run_start": "inf-run", "time": 0, "name": "primary", '
        b'"data_keys": {"pilatus_image": {"source": "x", "dtype": "array", "shape": [1e999]}}}',
        b' event {"uid": "inf-ev", "descriptor": "inf-desc", "time": -1e999, "seq_num": 1' + b"0" * 400 +
        b', "data": {"pilatus_image": [[1e999, -1e999]]}, "timestamps": {}}',
        b' stop {"uid": "inf-stop", "run_start": "inf-run", "time": 0, "exit_status": "success"}',
    ]
    return refused, passed


def test_hostile_documents_are_logged_and_skipped_and_live_goes_on(tmp_path):
    """Garbage and hostile documents through a real proxy to `trxrd live --json-dir`: each is
    skipped with a log line, the process stays up, the next valid run (whose uid is
    ``../../zz``) is still reduced, and its result file lands inside the folder."""
    import zmq

    from trxrd.reduction.callbacks.remote import dumps

    poni, mask = calibration(tmp_path)
    out = tmp_path / "a" / "b" / "results"
    marker = tmp_path / "unpickled"
    port_in, port_out = free_port(), free_port()
    proxy = subprocess.Popen([*CLI, "proxy", "--in", f"{LOOPBACK}:{port_in}", "--out", f"{LOOPBACK}:{port_out}"],
                             stdout=subprocess.DEVNULL)
    live = subprocess.Popen([*CLI, "live", "--zmq", f"{LOOPBACK}:{port_out}", "--poni", str(poni), "--mask", str(mask),
                             "--window", "1.0:2.0", "--json-dir", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines, errors = Lines(live.stdout), Lines(live.stderr)
    context = zmq.Context()
    sock = context.socket(zmq.PUB)
    sock.connect(f"tcp://{LOOPBACK}:{port_in}")

    def send(name, doc):
        sock.send(b" ".join([b"", name.encode(), dumps(doc)]))

    try:
        def ping_seen():        # 0MQ subscriptions take a moment: ping until the reduction hears
            from event_model import compose_run

            ping = compose_run(metadata={"plan_name": "ping"})
            send("start", ping.start_doc)
            send("stop", ping.compose_stop())
            return _seen(lines, "ping", 0.5)

        wait_for(ping_seen, 120, period=0.1, what="trxrd live to receive documents")
        refused, passed = hostile_messages(marker)
        for message in refused + passed:
            sock.send(message)
        # every refused message is logged as skipped, and the process is still there
        wait_for(lambda: errors.count("skipped a message") >= len(refused) or live.poll() is not None, 120,
                 period=0.2, what="the skipped-message log lines")
        assert live.poll() is None, "".join(errors.seen)[-3000:]
        assert errors.count("skipped a message") == len(refused), "".join(errors.seen)
        assert lines.has("run inf-run")                 # the well-formed hostile run got through, and failed there
        assert not marker.exists()
        # a valid run after all that, with a uid that would be a path
        for name, doc in synthetic_delay_scan((619, 487), uid="../../zz"):
            send(name, doc)
        result = out / "______zz.json"
        wait_for(lambda: result.exists() or live.poll() is not None, 180, period=0.2,
                 what="the valid run's result file")
        assert live.poll() is None, "".join(errors.seen)[-3000:]
        assert lines.has("run ../../zz delay_scan")
        assert len(json.loads(result.read_text())["signal"]) > 0
        written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
        assert written == sorted(["waxs.poni", "waxs_mask.edf", "a/b/results/______zz.json"]), written
    finally:
        sock.close(0)
        context.term()
        stop(live, proxy)


def _seen(lines: Lines, text: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lines.has(text):
            return True
        time.sleep(0.05)
    return lines.has(text)


@pytest.mark.parametrize("message", hostile_messages(Path("/nonexistent/unpickled"))[0])
def test_the_gate_refuses_each_malformed_message(message):
    from trxrd.reduction.callbacks.remote import DocumentGate

    with pytest.raises(ValueError):
        DocumentGate().check(message)


def test_the_gate_keeps_runs_in_order():
    from trxrd.reduction.callbacks.remote import DocumentGate, dumps

    gate = DocumentGate()
    assert gate.check(b" start " + dumps({"uid": "r1", "time": 0}))[0] == "start"
    with pytest.raises(ValueError, match="before its descriptor"):
        gate.check(b" event " + dumps({"uid": "e1", "descriptor": "d1", "data": {}}))
    assert gate.check(b" descriptor " + dumps({"uid": "d1", "run_start": "r1"}))[0] == "descriptor"
    with pytest.raises(ValueError, match="'data' object"):
        gate.check(b" event " + dumps({"uid": "e1", "descriptor": "d1", "data": [1]}))
    assert gate.check(b" event " + dumps({"uid": "e1", "descriptor": "d1", "data": {}}))[0] == "event"
    assert gate.check(b" stop " + dumps({"uid": "s1", "run_start": "r1"}))[0] == "stop"
    assert gate.runs == set() and gate.descriptors == {}          # nothing kept after the stop
    with pytest.raises(ValueError, match="before its descriptor"):
        gate.check(b" event " + dumps({"uid": "e2", "descriptor": "d1", "data": {}}))
    assert DocumentGate(prefix=b"mine").check(b"other start {}") is None      # another prefix's message


# -- 6. the simulated detector writes only under its data folders ------------------------------------

@pytest.mark.ioc
def test_detector_file_settings_outside_the_data_folders_are_refused(sim, ca, tmp_path_factory):
    """FilePath, FileTemplate and CreateDirectory that would write outside the simulator's data
    folders: the put fails, WriteStatus/WriteMessage say why, nothing is created there, the
    settings stay as they were; inside, the same puts work."""
    import tempfile

    from caproto import CaprotoError
    from caproto.sync.client import write

    hdf = sim.prefix + "PIL:HDF1:"

    def text(pv):
        return ca.caget(hdf + pv, as_string=True, use_monitor=False)

    before = {pv: text(pv) for pv in ("FilePath", "FileTemplate", "FilePath_RBV")}
    outside = Path(tempfile.mkdtemp(prefix="trxrd-outside-"))     # not under the test folders
    link = Path(sim.data_dir) / "escape-link"
    link.symlink_to(outside)
    try:
        ca.caput(hdf + "CreateDirectory", 1, wait=True)
        bad_paths = [f"{outside}/made/", f"{sim.data_dir}/../../../../../../../../{outside}/dotdot/",
                     f"{link}/via-link/", "/etc/"]
        for path in bad_paths:
            with pytest.raises(CaprotoError):
                write(hdf + "FilePath", path, notify=True, timeout=10, repeater=False)
            assert text("FilePath_RBV") == before["FilePath_RBV"]
            assert text("WriteStatus") == "Write error"
            assert "outside the simulator's data directories" in text("WriteMessage")
        for template in (f"{outside}/%s%s_%d.h5", "%s" + "../" * 30 + f"{outside}/%s_%d.h5"):
            with pytest.raises(CaprotoError):
                write(hdf + "FileTemplate", template, notify=True, timeout=10, repeater=False)
            assert text("FileTemplate") == before["FileTemplate"]
            assert "outside the simulator's data directories" in text("WriteMessage")
        assert list(outside.iterdir()) == []
        # inside the data folder the same puts work
        inside = Path(sim.data_dir) / "security-inside"
        ca.caput(hdf + "FilePath", f"{inside}/", wait=True)
        wait_for(lambda: text("FilePath_RBV") == f"{inside}/", 10, what="FilePath_RBV inside")
        assert inside.is_dir() and text("FilePathExists_RBV") == "Yes"
    finally:
        ca.caput(hdf + "FilePath", before["FilePath"], wait=True)
        ca.caput(hdf + "FileTemplate", before["FileTemplate"], wait=True)
        ca.caput(hdf + "CreateDirectory", 0, wait=True)
        link.unlink()
        outside.rmdir()
    assert sim.running()


def test_detector_plugin_never_opens_a_file_outside(tmp_path):
    """The last gate, in the plugin itself: a file name that resolves outside is refused at open."""
    import asyncio

    from trxrd.simulated_devices.iocs.area_detector import AreaDetectorIOC

    data = tmp_path / "data"
    data.mkdir()
    det = AreaDetectorIOC(prefix="SEC:PIL:", model=None, render=lambda t: None, shape=(4, 4), model_name="test",
                          data_dir=data)
    plugin = det.hdf
    assert plugin._outside(f"{data}/frame_000001.h5") is None
    assert "outside" in plugin._outside(f"{data}/../frame.h5")
    assert "outside" in plugin._outside(str(tmp_path / "elsewhere.h5"))
    plugin.file_path.readback._data["value"] = f"{data}/../"     # as if set before this check existed

    async def open_it():
        await plugin._open()

    with pytest.raises(PermissionError, match="outside the simulator's data directories"):
        asyncio.run(open_it())
    assert list(tmp_path.glob("*.h5")) == []


# -- 7. read-only PVs ----------------------------------------------------------------------------------

@pytest.mark.ioc
def test_read_only_pvs_refuse_writes(sim, tmp_path):
    """Every read-only PV of the simulator (one detector's worth, every other instrument) refuses
    a write from a CA client and keeps its value."""
    from caproto import CaprotoError
    from caproto.sync.client import read, write

    from trxrd.simulated_devices.iocs.launcher import build_beamline

    _, _, pvdb = build_beamline(sim.prefix, data_dir=tmp_path)
    names = [name for name, pv in pvdb.items() if type(pv).__name__.endswith("RO") and ":SAXS:" not in name]
    assert len(names) > 50
    refused = []
    for name in names:
        before = read(name, timeout=10, repeater=False).data
        value = "x" if isinstance(before[0], (bytes, str)) else [1]
        try:
            write(name, value, notify=True, timeout=10, repeater=False)
        except (CaprotoError, PermissionError, TimeoutError, ValueError):
            refused.append(name)
        after = read(name, timeout=10, repeater=False).data
        if not name.endswith(("Current_RBV", "Power_RBV", "Temperature_RBV", "Output_RBV", "Pressure_RBV",
                              "TimeRemaining_RBV", "ArrayRate_RBV", "Delivered_RBV", "FlowRate_RBV")):
            assert list(after) == list(before), name          # live readings move on their own
    assert refused == names
