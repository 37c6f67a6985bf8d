"""Compose every simulated instrument under one prefix and serve them on Channel Access.

All groups share one ``BeamlineModel``; one process serves them all, so CA discovery needs
a single UDP port. The standard ``EPICS_CA_SERVER_PORT`` / ``EPICS_CAS_INTF_ADDR_LIST``
variables choose port and interface; the default interface is loopback.

EXAMPLE::

    from trxrd.simulated_devices.iocs.launcher import build_beamline
    model, groups, pvdb = build_beamline("TRX:", data_dir="/tmp/trx-data")
    sorted(pvdb)[:3]
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from ..physics.beamline import BeamlineModel
from ..physics.config import load_config
from .area_detector import AreaDetectorIOC
from .delay import DelayGeneratorIOC, DelayStageIOC
from .heating_cell import HeatingCellIOC
from .laser import PowerMeterIOC, PumpLaserIOC, WaveplateIOC
from .liquid_jet import LiquidJetIOC
from .monitors import IonChamberIOC
from .stage import SampleStageIOC
from .syringe_pump import SyringePumpIOC

log = logging.getLogger(__name__)

# instrument section -> (PV prefix, PVGroup)
SIMPLE_GROUPS = {
    "delay_stage": ("DLY:", DelayStageIOC),
    "delay_generator": ("DG:", DelayGeneratorIOC),
    "waveplate": ("WP:", WaveplateIOC),
    "power_meter": ("PM:", PowerMeterIOC),
    "pump_laser": ("LSR:", PumpLaserIOC),
    "liquid_jet": ("JET:", LiquidJetIOC),
    "heating_cell": ("TC:", HeatingCellIOC),
    "syringe_pump": ("SYR:", SyringePumpIOC),
    "sample_stage": ("SMP:", SampleStageIOC),
    "i0": ("I0:", IonChamberIOC),
}
DETECTOR_LABELS = {"pilatus300k": "Pilatus 300K (simulated)", "pilatus2m": "Pilatus 2M (simulated)"}


def build_beamline(prefix: str = "TRX:", config: str | Path | None = None,
                   data_dir: str | Path = "./data/detectors", detector: str | None = None,
                   overrides: dict | None = None, seed: int | None = None,
                   write_roots: list[str | Path] | None = None):
    """Build the model and every PVGroup. Returns (model, groups, pvdb).

    Writes each detector's PONI file and mask into ``<data_dir>/waxs`` and
    ``<data_dir>/saxs``, where its frames go. The detectors write files only under *data_dir*
    and the folders *write_roots* (where the beamline session keeps its frames).
    """
    cfg = load_config(config, overrides)
    model = BeamlineModel(cfg, waxs_detector=detector, seed=seed)
    data_dir = Path(data_dir).resolve()
    groups = {name: cls(prefix=prefix + sub, model=model) for name, (sub, cls) in SIMPLE_GROUPS.items()}
    i0 = groups["i0"]
    for name, sub, geo, render in (("waxs", "PIL:", model.waxs, model.waxs_frame),
                                   ("saxs", "SAXS:", model.saxs, model.saxs_frame)):
        folder = data_dir / name
        geo.write_calibration(folder, name)
        groups[name] = AreaDetectorIOC(prefix=prefix + sub, model=model, render=render,
                                       shape=geo.shape, model_name=DETECTOR_LABELS[geo.name],
                                       data_dir=folder, on_exposed=i0.publish,
                                       write_roots=[data_dir, *(write_roots or ())])
    pvdb = {}
    for group in groups.values():
        pvdb.update(group.pvdb)
    return model, groups, pvdb


def list_pvs(pvdb: dict) -> str:
    """One line per PV: name, type and doc."""
    lines = []
    for name in sorted(pvdb):
        inst = pvdb[name]
        doc = (getattr(inst, "__doc__", None) or "").strip().splitlines()
        kind = type(inst).__name__.replace("Pvproperty", "")
        lines.append(f"{name:44s} {kind:14s} {doc[0] if doc else ''}")
    return "\n".join(lines)


def serve(pvdb: dict, groups: dict | None = None, interfaces: list[str] | None = None) -> None:
    """Serve the PVs until SIGINT/SIGTERM, then close any detector file still open."""
    import asyncio
    import signal

    from caproto.asyncio.server import Context

    if interfaces is None:
        env = os.environ.get("EPICS_CAS_INTF_ADDR_LIST", "").split()
        interfaces = env or ["127.0.0.1"]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        server = asyncio.create_task(Context(pvdb, interfaces).run(log_pv_names=False))
        done, _ = await asyncio.wait({server, asyncio.create_task(stop.wait())},
                                     return_when=asyncio.FIRST_COMPLETED)
        server.cancel()
        await asyncio.gather(server, return_exceptions=True)
        for group in (groups or {}).values():
            hdf = getattr(group, "hdf", None)
            if hdf is not None and hdf.writer is not None:
                log.info("closing %s", hdf.writer.path)
                hdf.writer.close()
        if server in done and server.exception() is not None:
            raise server.exception()

    asyncio.run(main())
