"""The beamline's devices in one place, built from the PV prefix and connected. The beamline
session (``trxrd.session``) holds one and hands its devices to the plans.

EXAMPLE::

    from trxrd.acquisition.beamline import connect_beamline
    bl = connect_beamline("TRX:", frames_root="/data/2026-12-beamtime/frames")
    bl.delay, bl.att, bl.shutter, bl.jet, bl.pilatus
    bl.devices()["cell"]
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from ophyd.signal import EpicsSignalBase

from .devices.delay import PumpProbeDelay
from .devices.detectors import PilatusDetector
from .devices.fluence import FluenceAttenuator
from .devices.heating_cell import HeatingCell
from .devices.liquid_jet import LiquidJet
from .devices.monitors import I0Monitor
from .devices.shutter import PumpShutter
from .devices.stage import SampleStage
from .devices.syringe_pump import SyringePump

CONNECTION_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 10.0       # a read of a connected PV (ophyd's default, 2 s, failed a scan on a loaded host)


@dataclass
class Beamline:
    """Every device of the beamline, by the name the plans' arguments use."""

    delay: PumpProbeDelay
    att: FluenceAttenuator
    shutter: PumpShutter
    jet: LiquidJet
    cell: HeatingCell
    syringe: SyringePump
    stage: SampleStage
    i0: I0Monitor
    pilatus: PilatusDetector
    saxs: PilatusDetector

    def devices(self) -> dict:
        """{argument name: device}."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def connect_beamline(prefix: str, *, frames_root: Path | str, timeout: float = 15.0,
                     exposure_s: float = 0.1) -> Beamline:
    """Build every device under *prefix* and wait for the connections.

    Parameters
    ----------
    prefix : str
        PV prefix of the beamline (the simulator's is ``TRX:``).
    frames_root : path
        The area detectors write their HDF5 files to ``<frames_root>/<detector>/``.
    timeout : float
        Seconds to wait for every device to connect.
    exposure_s : float
        Initial exposure of both detectors (s).

    Returns
    -------
    Beamline

    EXAMPLE::

        bl = connect_beamline("TRX:", frames_root="data/frames")
    """
    # ophyd's defaults of 1 s to connect a signal that a device touches while it is built (the
    # area detector's trigger signal) and 2 s to read a connected one are too short for a busy IOC
    # host; longer ones, as facility profiles set. ophyd allows this only before its first EPICS
    # signal: later calls keep what is set.
    try:
        EpicsSignalBase.set_defaults(connection_timeout=CONNECTION_TIMEOUT_S, timeout=READ_TIMEOUT_S)
    except RuntimeError:
        pass
    frames_root = Path(frames_root)
    bl = Beamline(
        delay=PumpProbeDelay(prefix, name="pump"),
        att=FluenceAttenuator(prefix, name="att"),
        shutter=PumpShutter(prefix, name="pump_shutter"),
        jet=LiquidJet(prefix, name="jet"),
        cell=HeatingCell(prefix, name="cell"),
        syringe=SyringePump(prefix, name="syringe"),
        stage=SampleStage(prefix, name="sample"),
        i0=I0Monitor(prefix, name="i0"),
        pilatus=PilatusDetector(prefix + "PIL:", name="pilatus", write_dir=frames_root / "pilatus"),
        saxs=PilatusDetector(prefix + "SAXS:", name="saxs", write_dir=frames_root / "saxs", geometry="saxs"),
    )
    missing = []
    for name, dev in bl.devices().items():
        try:
            dev.wait_for_connection(timeout=timeout)
        except TimeoutError as exc:
            missing.append(f"{name}: {exc}")
    if missing:
        raise ConnectionError(f"cannot connect to the beamline under prefix {prefix!r} "
                              f"(is the IOC / `trxrd sim` running?): " + "; ".join(missing))
    for det in (bl.pilatus, bl.saxs):
        det.exposure_s = exposure_s
    return bl
