"""The beamline's devices in one place: built from the PV prefix, connected, and registered
as the session's defaults, so plans can be called as ``delay_scan([pilatus], delays)``.

EXAMPLE::

    from trxrd.acquisition.beamline import connect_beamline
    bl = connect_beamline("TRX:")        # TRXRD_PREFIX / TRXRD_DATA by default
    bl.delay, bl.att, bl.shutter, bl.jet, bl.pilatus
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from ophyd.signal import EpicsSignalBase

from . import settings
from .devices.delay import PumpProbeDelay
from .devices.detectors import PilatusDetector
from .devices.fluence import FluenceAttenuator
from .devices.heating_cell import HeatingCell
from .devices.liquid_jet import LiquidJet
from .devices.monitors import I0Monitor
from .devices.shutter import PumpShutter
from .devices.stage import SampleStage
from .devices.syringe_pump import SyringePump


@dataclass
class Beamline:
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
        return {f.name: getattr(self, f.name) for f in fields(self)}


_current: Beamline | None = None


CONNECTION_TIMEOUT_S = 5.0


def connect_beamline(prefix: str | None = None, *, root: Path | None = None, timeout: float = 15.0,
                     spot_fwhm_um=(300.0, 300.0), exposure_s: float = 0.1, register: bool = True) -> Beamline:
    """Build every device under *prefix*, wait for the connections and (``register``) make
    them the defaults of the plans. Frames go to ``<root>/frames/<detector>/``; the state
    (time zero, fluence calibration) lives in ``<root>/state.json``."""
    prefix = settings.prefix() if prefix is None else prefix
    root = settings.data_dir() if root is None else Path(root)
    # ophyd's default of 1 s for a signal that a device touches while it is built (the area
    # detector's trigger signal) is too short for a busy IOC host; as facility profiles do.
    # ophyd allows this only before its first EPICS signal: later calls keep what is set.
    try:
        EpicsSignalBase.set_defaults(connection_timeout=CONNECTION_TIMEOUT_S)
    except RuntimeError:
        pass
    bl = Beamline(
        delay=PumpProbeDelay(prefix, name="pump", state_root=root),
        att=FluenceAttenuator(prefix, name="att", spot_fwhm_um=spot_fwhm_um, state_root=root),
        shutter=PumpShutter(prefix, name="pump_shutter"),
        jet=LiquidJet(prefix, name="jet"),
        cell=HeatingCell(prefix, name="cell"),
        syringe=SyringePump(prefix, name="syringe"),
        stage=SampleStage(prefix, name="sample"),
        i0=I0Monitor(prefix, name="i0"),
        pilatus=PilatusDetector(prefix + "PIL:", name="pilatus",
                                write_dir=settings.frames_dir("pilatus", root)),
        saxs=PilatusDetector(prefix + "SAXS:", name="saxs", write_dir=settings.frames_dir("saxs", root)),
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
    if register:
        use_beamline(bl)
    return bl


def use_beamline(bl: Beamline | None) -> None:
    """Make *bl* the devices plans use when none are passed."""
    global _current
    _current = bl


def current_beamline() -> Beamline:
    if _current is None:
        raise RuntimeError("no beamline connected: call connect_beamline() (the profile does) "
                           "or pass the devices to the plan")
    return _current
