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
import threading
import time
from pathlib import Path

from ophyd import Component as Cpt
from ophyd import EpicsSignalWithRBV
from ophyd.device import Staged
from ophyd.status import DeviceStatus
from ophyd.areadetector import PilatusDetector as _PilatusBase
from ophyd.areadetector import SingleTrigger
from ophyd.areadetector.base import ADComponent
from ophyd.areadetector.cam import PilatusDetectorCam
from ophyd.areadetector.filestore_mixins import FileStoreHDF5IterativeWrite
from ophyd.areadetector.plugins import HDF5Plugin

from ...validation import count, finite
from ..suspenders import RunFault
from ._signals import VerifiedSignalWithRBV, ioc_limits

logger = logging.getLogger(__name__)


class DetectorStalled(RunFault):
    """A trigger did not finish within the time its frames take plus the margin."""


class FramesMissing(RunFault):
    """The HDF5 file does not hold every frame the detector took (file writing stopped)."""


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

    TIMEOUT_FACTOR = 2.0        # a trigger may take this many times its frames' time, ...
    TIMEOUT_MARGIN_S = 10.0     # ... plus this (s; readout, file writing, a loaded host)
    FILE_WAIT_S = 2.0           # how long the file may lag the acquisition (s)

    def __init__(self, prefix: str, *, name: str, write_dir: str | Path, exposure_s: float | None = None,
                 geometry: str = "waxs", frames_per_trigger: int = 1, timeout_factor: float = TIMEOUT_FACTOR,
                 timeout_margin_s: float = TIMEOUT_MARGIN_S, **kwargs):
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
        self.timeout_factor = finite(timeout_factor, f"{name}: timeout_factor", low=1.0, unit="")
        self.timeout_margin_s = finite(timeout_margin_s, f"{name}: timeout_margin_s", low=0.0, strict=True, unit="s")
        self._frame_s = None            # per frame, as staged (an outside change must not stretch it)
        self._frames_taken = 0          # frames this staging took: the file must hold as many
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

    def stage(self):
        """Stage (``stage_sigs``, the file opened); remember the time a frame takes as staged."""
        out = super().stage()
        self._frame_s = max(self.cam.acquire_time.get(), self.cam.acquire_period.get())
        self._frames_taken = 0
        return out

    def trigger_timeout_s(self) -> float:
        """How long one trigger may take (s): its frames' time (exposure or period, as staged,
        x ``frames_per_trigger``) x ``timeout_factor`` + ``timeout_margin_s``."""
        frame_s = self._frame_s if self._frame_s is not None else self.cam.acquire_time.get()
        return frame_s * self.frames_per_trigger * self.timeout_factor + self.timeout_margin_s

    def trigger(self):
        """One datum (``frames_per_trigger`` frames). As ``SingleTrigger.trigger``, plus: the
        status fails with :class:`DetectorStalled` (and the acquisition is stopped) if the frames
        do not come within ``trigger_timeout_s()``, and with :class:`FramesMissing` if the HDF5
        file does not then hold every frame taken since staging (capture stopped, disk full)."""
        if self._staged != Staged.yes:
            raise RuntimeError(f"{self.name} is not staged: use it inside a plan (stage() first)")
        acquiring = self._status = self._status_type(self)
        status = DeviceStatus(self)
        timeout = self.trigger_timeout_s()
        self._frames_taken += self.frames_per_trigger
        expected = self._frames_taken
        lock = threading.Lock()

        def finish(exc=None):
            with lock:
                if status.done:
                    return
                if exc is None:
                    status.set_finished()
                else:
                    status.set_exception(exc)

        def stalled():
            if status.done:
                return
            finish(DetectorStalled(
                f"{self.name}: no frame within {timeout:.1f} s ({self.frames_per_trigger} x {self._frame_s:g} s "
                f"as staged, x {self.timeout_factor:g} + {self.timeout_margin_s:g} s): the detector stalled "
                f"(AcquireTime now {self.cam.acquire_time.get():g} s); acquisition stopped"))
            try:
                self.cam.acquire.put(0, wait=False)
            except Exception as exc:                 # stopping is a courtesy; the reason is the stall
                logger.warning("%s: could not stop the stalled acquisition: %s", self.name, exc)

        timer = threading.Timer(timeout, stalled)
        timer.daemon = True

        def acquired(st):
            timer.cancel()
            if not st.success:
                finish(st.exception() or RuntimeError(f"{self.name}: acquisition failed"))
                return
            threading.Thread(target=lambda: finish(self._file_problem(expected)), daemon=True,
                             name=f"{self.name}-file-check").start()

        timer.start()
        self._acquisition_signal.put(1, wait=False)
        self.generate_datum(self._image_name, time.time(), {})
        acquiring.add_callback(acquired)
        return status

    def _file_problem(self, expected: int) -> FramesMissing | None:
        """None once the HDF5 file holds *expected* frames (waiting up to ``FILE_WAIT_S``), else why not."""
        deadline = time.monotonic() + self.FILE_WAIT_S
        while True:
            try:
                got = int(self.hdf5.num_captured.get(use_monitor=False))
                capturing = self.hdf5.capture.get(use_monitor=False)
            except Exception as exc:
                return FramesMissing(f"{self.name}: cannot read the HDF5 plugin's frame count ({exc})")
            if got >= expected:
                return None
            if time.monotonic() > deadline:
                state = "capture stopped" if capturing in (0, "Done") else "the file stopped growing"
                return FramesMissing(f"{self.name}: the HDF5 file holds {got} of the {expected} frames taken "
                                     f"({state}): frames are missing from the run's file")
            time.sleep(0.05)

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
