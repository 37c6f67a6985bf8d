"""Area detectors: Pilatus-like WAXS and SAXS cameras with the areaDetector HDF5 file
plugin. Frames stay in HDF5 files on disk; each event carries a datum that points at one
frame (``AD_HDF5`` resource + datum documents), exactly as with a real areaDetector IOC.

One trigger = ``frames_per_trigger`` frames (default 1). With 1, the camera takes one frame per
trigger (``ImageMode`` Single, ``NumImages`` 1) and the image of an event is ``(ny, nx)``; with N > 1
the camera streams N frames per trigger (``ImageMode`` Multiple, ``NumImages`` N), as real
Pilatus/Eiger runs do, and the event's datum references N consecutive frames of the run's one
Stream-mode file (resource ``frame_per_point`` N): the image is ``(N, ny, nx)``. The files go to
``write_dir`` (created by the IOC, dated subfolders), which must be inside the catalog's readable
storage.

EXAMPLE::

    from trxrd.acquisition.devices.detectors import PilatusDetector
    pilatus = PilatusDetector("TRX:PIL:", name="pilatus", write_dir="/data/frames/pilatus")
    pilatus.wait_for_connection(timeout=10)
    pilatus.cam.acquire_time.put(0.1)          # s
    RE(bluesky.plans.count([pilatus], 3))
    pilatus.frames_per_trigger = 10            # stream: 10 frames per event, one datum each
    RE(bluesky.plans.count([pilatus], 3))      # 30 frames in one file; images (10, ny, nx)
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

from ophyd import Component as Cpt
from ophyd import EpicsSignalWithRBV
from ophyd.device import Staged
from ophyd.areadetector import PilatusDetector as _PilatusBase
from ophyd.areadetector import SingleTrigger
from ophyd.areadetector.base import ADComponent
from ophyd.areadetector.cam import PilatusDetectorCam
from ophyd.areadetector.filestore_mixins import FileStoreHDF5IterativeWrite
from ophyd.areadetector.plugins import HDF5Plugin

from ...validation import count, finite
from ._signals import VerifiedSignalWithRBV, ioc_limits

logger = logging.getLogger(__name__)


def _forget_staging(device) -> None:
    """Mark *device* and its children unstaged, dropping the values staging would restore."""
    device._staged = Staged.no
    device._original_vals.clear()
    if hasattr(device, "_locked_key_list"):          # the file store's run state
        device._locked_key_list = False
        device._resource_uid = None
    for attr in device._sub_devices:
        _forget_staging(getattr(device, attr))


class HDF5FileStore(HDF5Plugin, FileStoreHDF5IterativeWrite):
    """HDF5 plugin that emits resource/datum documents; the IOC creates missing folders."""

    create_directory = Cpt(EpicsSignalWithRBV, "CreateDirectory", kind="config")


class PilatusCam(PilatusDetectorCam):
    """The Pilatus driver, with the settings the plans rely on (exposure, period, frames)
    checked against the IOC's control limits and read back after each write: a value the
    IOC refuses or clips fails the write instead of silently keeping the old one."""

    acquire_time = ADComponent(VerifiedSignalWithRBV, "AcquireTime")
    acquire_period = ADComponent(VerifiedSignalWithRBV, "AcquirePeriod")
    num_images = ADComponent(VerifiedSignalWithRBV, "NumImages")


class PilatusDetector(SingleTrigger, _PilatusBase):
    """Pilatus camera + HDF5 file plugin; ``read()`` gives the frame's datum and the image
    key is ``<name>_image``.

    Parameters
    ----------
    prefix : str
        PV prefix of the detector (``cam1:`` and ``HDF1:`` below it).
    name : str
        Device name.
    write_dir : path
        Folder the IOC writes the HDF5 files into (dated subfolders); it must be inside the
        catalog's readable storage.
    exposure_s : float, optional
        Exposure per frame (s).
    geometry : {"waxs", "saxs"}
        Which scattering the detector records; plans name its image accordingly
        (``image`` or ``saxs_image`` in ``trxrd.datakeys``), so each live reduction takes its own.
    frames_per_trigger : int
        Frames per trigger (default 1); N > 1 streams N frames per event (see module). Settable
        between runs, not while staged.

    EXAMPLE::

        pilatus = PilatusDetector("TRX:PIL:", name="pilatus", write_dir="/data/frames/pilatus")
        pilatus.exposure_s = 0.1
        pilatus.frames_per_trigger = 20      # 20 frames of 0.1 s per event
        saxs = PilatusDetector("TRX:SAXS:", name="saxs", write_dir="/data/frames/saxs", geometry="saxs")
    """

    cam = Cpt(PilatusCam, "cam1:")
    hdf5 = Cpt(HDF5FileStore, "HDF1:", write_path_template="/", root="/")

    def __init__(self, prefix: str, *, name: str, write_dir: str | Path, exposure_s: float | None = None,
                 geometry: str = "waxs", frames_per_trigger: int = 1, **kwargs):
        if geometry not in ("waxs", "saxs"):
            raise ValueError(f"{name}: geometry must be 'waxs' or 'saxs', got {geometry!r}")
        kwargs.setdefault("read_attrs", ["hdf5"])
        super().__init__(prefix, name=name, **kwargs)
        self.geometry = geometry
        write_dir = Path(write_dir).resolve()
        self.hdf5.write_path_template = f"{write_dir}/%Y/%m/%d/"
        self.hdf5.reg_root = str(write_dir.anchor)
        self.hdf5.kind = "normal"
        self.hdf5.read_attrs = []
        self.cam.kind = "config"
        self.cam.configuration_attrs = ["acquire_time", "acquire_period", "num_exposures", "model"]
        self.stage_sigs.update({"cam.num_images": 1, "cam.image_mode": "Single",
                                "cam.trigger_mode": "Internal"})
        self.frames_per_trigger = frames_per_trigger
        if exposure_s is not None:
            self.exposure_s = exposure_s

    @property
    def frames_per_trigger(self) -> int:
        """Frames the camera takes per trigger (one datum references them all)."""
        return self._frames_per_trigger

    @frames_per_trigger.setter
    def frames_per_trigger(self, value: int) -> None:
        value = count(value, f"{self.name}: frames_per_trigger")
        if self._staged == Staged.yes:
            raise RuntimeError(f"{self.name}: frames_per_trigger cannot change while staged (inside a run)")
        self._frames_per_trigger = value
        self.stage_sigs.update({"cam.num_images": value, "cam.image_mode": "Single" if value == 1 else "Multiple"})

    def trigger(self):
        """One datum (``frames_per_trigger`` frames). Same as ``SingleTrigger.trigger`` but returns the status it made: with
        short exposures the frame can finish (and ophyd drop ``self._status``) before
        ``generate_datum`` returns."""
        if self._staged != Staged.yes:
            raise RuntimeError(f"{self.name} is not staged: use it inside a plan (stage() first)")
        status = self._status = self._status_type(self)
        self._acquisition_signal.put(1, wait=False)
        self.generate_datum(self._image_name, time.time(), {})
        return status

    def unstage(self):
        """Restore what staging changed. If the IOC cannot be reached (killed, restarting:
        it has forgotten those settings anyway), the detector is marked unstaged regardless and
        the failure logged, so the next plan can stage it again once the IOC is back."""
        try:
            return super().unstage()
        except Exception as exc:
            _forget_staging(self)
            if self.connected:
                raise
            logger.warning("%s: unstaged without restoring its settings, the IOC does not answer (%s)",
                           self.name, exc)
            return [self]

    @property
    def image_key(self) -> str:
        return f"{self.name}_image"

    @property
    def exposure_s(self) -> float:
        return self.cam.acquire_time.get()

    @exposure_s.setter
    def exposure_s(self, value: float) -> None:
        """Exposure per frame (s), inside the driver's limits (its AcquireTime DRVL/DRVH);
        written now and kept in ``stage_sigs``, so every run exposes this long even if
        another client changed AcquireTime in between. A value the IOC refuses or clips
        raises :class:`~._signals.SetpointRefused`."""
        limits = ioc_limits(self.cam.acquire_time)
        value = finite(value, f"{self.name}: exposure_s", low=0.0, strict=True,
                       high=limits[1] if limits else None, unit="s")
        if limits and value < limits[0]:
            raise ValueError(f"{self.name}: exposure_s = {value} s is below the detector's minimum {limits[0]} s")
        self.cam.acquire_time.set(value).wait(10)
        self.cam.acquire_period.set(0.0).wait(10)
        self.stage_sigs.update({"cam.acquire_time": value, "cam.acquire_period": 0.0})

    def describe(self):
        """Image key: ``shape`` ``(ny, nx)`` with one frame per trigger, ``(N, ny, nx)`` with N.

        ophyd declares ``(num_images, ny, nx)``; with one frame that leading 1 would make the
        catalog read frames back as ``(N, 1, ny, nx)``.
        """
        desc = super().describe()
        if self.image_key in desc:
            key = desc[self.image_key]
            key["units"] = "counts"
            shape = list(key.get("shape") or ())
            if len(shape) == 3:
                n = self.frames_per_trigger
                key["shape"] = shape[1:] if n == 1 else [n, *shape[1:]]
        return desc
