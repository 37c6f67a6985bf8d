"""Pilatus-like area detector: areaDetector camera (``cam1:``) and HDF5 file plugin
(``HDF1:``) records, with the semantics stock ophyd's ``PilatusDetectorCam``,
``SingleTrigger`` and HDF5 file-store mixins rely on.

Frames never travel over Channel Access: every acquired frame is written by the HDF5
plugin to ``/entry/data/data`` (frames along the first axis, one frame per chunk), in Single,
Capture or Stream mode, as the real plugin does. Streamed files are written with SWMR so they
can be read while open. ImageMode Multiple takes NumImages frames per Acquire (Continuous: until
stopped); the I0 ion chamber, gated by the acquisition, reports its mean flux after each frame.

EXAMPLE (pyepics against ``trxrd sim``)::

    import epics
    epics.caput("TRX:PIL:HDF1:FilePath", "/tmp/trx-data/waxs/")
    epics.caput("TRX:PIL:HDF1:FileName", "test"); epics.caput("TRX:PIL:HDF1:AutoSave", 1)
    epics.caput("TRX:PIL:HDF1:EnableCallbacks", 1); epics.caput("TRX:PIL:HDF1:FileWriteMode", 0)
    epics.caput("TRX:PIL:cam1:Acquire", 1, wait=True)
    epics.caget("TRX:PIL:HDF1:FullFileName_RBV", as_string=True)
"""
from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
from caproto import ChannelType
from caproto.server import PVGroup, SubGroup, pvproperty

from ._common import checked, long_string, pv_with_rbv

MAX_NUM_IMAGES = 1_000_000         # frames per acquisition the driver accepts
DATA_TYPES = ("Int8", "UInt8", "Int16", "UInt16", "Int32", "UInt32", "Int64", "UInt64",
              "Float32", "Float64")
DETECTOR_STATES = ("Idle", "Acquire", "Readout", "Correct", "Saving", "Aborting", "Error",
                   "Waiting", "Initializing", "Disconnected", "Aborted")


def _enum(name, strings, index, doc, **kw):
    return pv_with_rbv(name=name, dtype=ChannelType.ENUM, enum_strings=strings, value=strings[index],
                       doc=doc, **kw)


def _to_str(value) -> str:
    if isinstance(value, (bytes, bytearray)):
        value = value.decode(errors="replace")
    if not isinstance(value, str):  # char waveform as a list of codes
        value = bytes(int(v) for v in value).decode(errors="replace")
    return value.split("\x00", 1)[0]


def _padded(text: str) -> str:
    """A char-waveform value that always spans all 256 elements (NUL padded), as an
    areaDetector record does, so clients that size the array at connection never truncate."""
    return text[:255].ljust(256, "\x00")


class HDF5Writer:
    """One areaDetector-layout HDF5 file: /entry/data/data grows one frame at a time."""

    def __init__(self, path: str, shape: tuple[int, int], swmr: bool):
        self.path = path
        self.file = h5py.File(path, "w", libver="latest")
        entry = self.file.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        data = entry.create_group("data")
        data.attrs["NX_class"] = "NXdata"
        data.attrs["signal"] = "data"
        self.dset = data.create_dataset("data", shape=(0, *shape), maxshape=(None, *shape),
                                        chunks=(1, *shape), dtype="int32")
        attrs = entry.create_group("instrument").create_group("NDAttributes")
        attrs.attrs["NX_class"] = "NXcollection"
        self.stamps = attrs.create_dataset("NDArrayTimeStamp", shape=(0,), maxshape=(None,), dtype="f8")
        self.uids = attrs.create_dataset("NDArrayUniqueId", shape=(0,), maxshape=(None,), dtype="i4")
        if swmr:
            self.file.swmr_mode = True
        self.count = 0

    def append(self, frame: np.ndarray, uid: int, stamp: float) -> None:
        n = self.count + 1
        self.dset.resize(n, axis=0)
        self.dset[n - 1] = frame
        for ds, v in ((self.stamps, stamp), (self.uids, uid)):
            ds.resize(n, axis=0)
            ds[n - 1] = v
        self.file.flush()
        self.count = n

    def close(self) -> None:
        self.file.close()


class CamIOC(PVGroup):
    """The detector driver (``cam1:``)."""

    acquire = _enum("Acquire", ("Done", "Acquire"), 0, "Start/stop acquisition")
    # control limits (DRVL/DRVH) published as the PVs' metadata, so clients check before writing
    acquire_time = pv_with_rbv(name="AcquireTime", dtype=float, value=1.0, doc="Exposure time (s)",
                               lower_ctrl_limit=1e-6, upper_ctrl_limit=3600.0)
    acquire_period = pv_with_rbv(name="AcquirePeriod", dtype=float, value=1.0,
                                 doc="Time between frames (s)", lower_ctrl_limit=0.0, upper_ctrl_limit=3600.0)
    num_images = pv_with_rbv(name="NumImages", dtype=int, value=1, doc="Frames per acquisition",
                             lower_ctrl_limit=1, upper_ctrl_limit=MAX_NUM_IMAGES)
    num_exposures = pv_with_rbv(name="NumExposures", dtype=int, value=1, doc="Exposures per frame")
    image_mode = _enum("ImageMode", ("Single", "Multiple", "Continuous"), 0, "Acquisition mode")
    trigger_mode = _enum("TriggerMode", ("Internal", "Ext. Enable", "Ext. Trigger", "Mult. Trigger",
                                         "Alignment"), 0, "Trigger source")
    array_counter = pv_with_rbv(name="ArrayCounter", dtype=int, value=0, doc="Frames produced")
    array_callbacks = _enum("ArrayCallbacks", ("Disable", "Enable"), 1, "Pass frames to plugins")
    data_type = _enum("DataType", DATA_TYPES, 4, "Pixel data type", readback_kw=dict(record="mbbi"))
    array_size_x = pvproperty(name="ArraySizeX_RBV", value=0, read_only=True, doc="Frame width")
    array_size_y = pvproperty(name="ArraySizeY_RBV", value=0, read_only=True, doc="Frame height")
    array_size_z = pvproperty(name="ArraySizeZ_RBV", value=0, read_only=True, doc="Frame depth")
    array_size_bytes = pvproperty(name="ArraySize_RBV", value=0, read_only=True, doc="Frame bytes")
    max_size_x = pvproperty(name="MaxSizeX_RBV", value=0, read_only=True, doc="Sensor width")
    max_size_y = pvproperty(name="MaxSizeY_RBV", value=0, read_only=True, doc="Sensor height")
    manufacturer = pvproperty(name="Manufacturer_RBV", value="Dectris (simulated)", dtype=ChannelType.STRING, read_only=True, doc="Manufacturer")
    model_name = pvproperty(name="Model_RBV", value="Pilatus", dtype=ChannelType.STRING, read_only=True,
                            doc="Detector model")
    port_name = pvproperty(name="PortName_RBV", value="PIL", dtype=ChannelType.STRING, read_only=True,
                           doc="asyn port of the driver")
    detector_state = pvproperty(name="DetectorState_RBV", value="Idle", dtype=ChannelType.ENUM,
                                enum_strings=DETECTOR_STATES, read_only=True, doc="Driver state")
    num_images_counter = pvproperty(name="NumImagesCounter_RBV", value=0, read_only=True,
                                    doc="Frames of the current acquisition")
    status_message = pvproperty(name="StatusMessage_RBV", value="", dtype=ChannelType.STRING, read_only=True,
                                doc="Last status message")
    time_remaining = pvproperty(name="TimeRemaining_RBV", value=0.0, read_only=True,
                                doc="Time left in the acquisition (s)")
    array_rate = pvproperty(name="ArrayRate_RBV", value=0.0, read_only=True, doc="Frames/s")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._task: asyncio.Task | None = None

    @array_size_x.startup
    async def array_size_x(self, instance, async_lib):
        det: AreaDetectorIOC = self.parent
        ny, nx = det.shape
        hdf = det.hdf
        for pv, v in ((self.array_size_x, nx), (self.array_size_y, ny), (self.max_size_x, nx),
                      (self.max_size_y, ny), (self.array_size_bytes, nx * ny * 4),
                      (hdf.array_size0, nx), (hdf.array_size1, ny)):
            await pv.write(v)
        await self.model_name.write(det.model_label)
        os.makedirs(det.data_dir, exist_ok=True)
        path = det.data_dir.rstrip("/") + "/"
        await hdf.file_path.setpoint.write(_padded(path), verify_value=False)
        await hdf.file_path.readback.write(_padded(path))
        await hdf._check_path(path)

    @acquire_time.setpoint.putter
    async def acquire_time(obj, instance, value):
        value = checked(value, "AcquireTime", low=1e-6, high=3600.0, unit="s")
        await obj.readback.write(value)
        return value

    @acquire_period.setpoint.putter
    async def acquire_period(obj, instance, value):
        value = checked(value, "AcquirePeriod", low=0.0, high=3600.0, unit="s")
        await obj.readback.write(value)
        return value

    @num_images.setpoint.putter
    async def num_images(obj, instance, value):
        if not 1 <= value <= MAX_NUM_IMAGES:
            raise ValueError(f"NumImages must be 1 .. {MAX_NUM_IMAGES}, got {value}")
        await obj.readback.write(value)
        return value

    @acquire.setpoint.putter
    async def acquire(obj, instance, value):
        cam = obj.parent
        if value == "Acquire":
            if cam._task is None or cam._task.done():
                await obj.readback.write("Acquire")
                cam._task = asyncio.get_running_loop().create_task(cam._acquire())
                try:
                    await asyncio.shield(cam._task)   # put-callback completes when done
                except asyncio.CancelledError:
                    pass
        elif cam._task is not None and not cam._task.done():
            cam._task.cancel()
            try:
                await cam._task
            except asyncio.CancelledError:
                pass
        return value

    async def _acquire(self) -> None:
        det: AreaDetectorIOC = self.parent
        mode = self.image_mode.readback.value
        n_total = {"Single": 1, "Multiple": self.num_images.readback.value}.get(mode)
        loop = asyncio.get_running_loop()
        n = 0
        flux_sum = 0.0            # the I0 scaler is gated by the whole acquisition: its mean flux
        t_start = loop.time()
        try:
            await self.num_images_counter.write(0)
            while n_total is None or n < n_total:
                exposure = self.acquire_time.readback.value
                period = max(exposure, self.acquire_period.readback.value)
                t_frame = loop.time()
                await self.detector_state.write("Acquire")
                det.model.exposing = True
                await asyncio.sleep(exposure)
                frame = await loop.run_in_executor(None, det.render, exposure)
                n += 1
                flux_sum += det.model.flux
                uid = self.array_counter.readback.value + 1
                await det.deliver(frame, uid, flux_sum / n)   # I0 + plugins (file writing) before counters move
                det.model.exposing = False
                await self.array_counter.readback.write(uid)
                await self.array_counter.setpoint.write(uid, verify_value=False)
                await self.num_images_counter.write(n)
                await self.array_rate.write(n / max(loop.time() - t_start, 1e-9))
                left = period - (loop.time() - t_frame)
                if (n_total is None or n < n_total) and left > 0:
                    await self.detector_state.write("Waiting")
                    await asyncio.sleep(left)
        except asyncio.CancelledError:
            await self.status_message.write("Acquisition aborted")
        except Exception as exc:   # keep the IOC alive, report like the driver does
            await self.detector_state.write("Error")
            await self.status_message.write(str(exc)[:39])
        else:
            await self.status_message.write("Acquisition completed")
        finally:
            det.model.exposing = False
            if self.detector_state.value != "Error":
                await self.detector_state.write("Idle")
            await self.acquire.readback.write("Done")
            await self.acquire.setpoint.write("Done", verify_value=False)


class HDF5PluginIOC(PVGroup):
    """NDFileHDF5 plugin (``HDF1:``)."""

    enable = _enum("EnableCallbacks", ("Disable", "Enable"), 0, "Plugin receives frames")
    blocking = _enum("BlockingCallbacks", ("No", "Yes"), 0, "Process frames in the driver thread")
    array_counter = pv_with_rbv(name="ArrayCounter", dtype=int, value=0, doc="Frames received")
    nd_array_port = pv_with_rbv(name="NDArrayPort", dtype=ChannelType.STRING, value="PIL", doc="Source port")
    file_path = pv_with_rbv(name="FilePath", dtype=ChannelType.CHAR, max_length=256,
                            report_as_string=False, value=_padded(""), doc="Directory of the files")
    file_name = pv_with_rbv(name="FileName", dtype=ChannelType.CHAR, max_length=256,
                            report_as_string=False, value=_padded(""), doc="Base name of the files")
    file_template = pv_with_rbv(name="FileTemplate", dtype=ChannelType.CHAR, max_length=256,
                                report_as_string=False, value=_padded("%s%s_%6.6d.h5"),
                                doc="C format of path, name, number")
    file_number = pv_with_rbv(name="FileNumber", dtype=int, value=0, doc="Next file number")
    auto_increment = _enum("AutoIncrement", ("No", "Yes"), 1, "Increment FileNumber per file")
    auto_save = _enum("AutoSave", ("No", "Yes"), 0, "Write each frame in Single mode")
    file_write_mode = _enum("FileWriteMode", ("Single", "Capture", "Stream"), 0, "File write mode")
    capture = _enum("Capture", ("Done", "Capture"), 0, "Open a file and write frames into it")
    num_capture = pv_with_rbv(name="NumCapture", dtype=int, value=0,
                              doc="Frames per file in Capture/Stream (0 = unlimited)")
    create_directory = pv_with_rbv(name="CreateDirectory", dtype=int, value=0,
                                   doc="Create missing directories (non-zero = yes)")
    write_file = _enum("WriteFile", ("Done", "Write"), 0, "Write the captured frames now")
    num_captured = pvproperty(name="NumCaptured_RBV", value=0, read_only=True, doc="Frames in the open file")
    full_file_name = long_string("FullFileName_RBV", "Last file opened", read_only=True)
    file_path_exists = pvproperty(name="FilePathExists_RBV", value="No", dtype=ChannelType.ENUM,
                                  enum_strings=("No", "Yes"), read_only=True, doc="FilePath exists")
    write_status = pvproperty(name="WriteStatus", value="Write OK", dtype=ChannelType.ENUM,
                              enum_strings=("Write OK", "Write error"), read_only=True, doc="Last write")
    write_message = long_string("WriteMessage", "Last write error", read_only=True)
    plugin_type = pvproperty(name="PluginType_RBV", value="NDFileHDF5", dtype=ChannelType.STRING, read_only=True, doc="Plugin type")
    port_name = pvproperty(name="PortName_RBV", value="HDF1", dtype=ChannelType.STRING, read_only=True,
                           doc="asyn port of the plugin")
    array_size0 = pvproperty(name="ArraySize0_RBV", value=0, read_only=True, doc="Frame width")
    array_size1 = pvproperty(name="ArraySize1_RBV", value=0, read_only=True, doc="Frame height")
    array_size2 = pvproperty(name="ArraySize2_RBV", value=0, read_only=True, doc="Frame depth")
    ndimensions = pvproperty(name="NDimensions_RBV", value=2, read_only=True, doc="Frame dimensions")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.writer: HDF5Writer | None = None

    # -- path handling -----------------------------------------------------------------
    def _path(self) -> str:
        return _to_str(self.file_path.readback.value)

    async def _check_path(self, path: str) -> None:
        ok = bool(path) and os.path.isabs(path) and os.path.isdir(path)
        await self.file_path_exists.write("Yes" if ok else "No")

    def _outside(self, path: str) -> str | None:
        """Why *path* may not be written (not under the simulator's data directories, once
        ``..`` and symbolic links are resolved), or None: no CA client writes elsewhere."""
        roots = self.parent.write_roots
        real = os.path.realpath(path)
        if any(real == root or real.startswith(root.rstrip("/") + "/") for root in roots):
            return None
        return f"outside the simulator's data directories ({', '.join(roots)}): {path!r}"

    async def _refuse(self, what: str, why: str) -> None:
        """A put that would write outside the data directories: WriteStatus/WriteMessage say so
        and the put fails (the client sees a put error)."""
        exc = PermissionError(f"{what} refused, {why}")
        await self._fail(exc)
        raise exc

    @file_path.setpoint.putter
    async def file_path(obj, instance, value):
        plugin = obj.parent
        path = _to_str(value)
        if path and not path.endswith("/"):
            path += "/"
        if path and not os.path.isabs(path):
            await plugin.file_path_exists.write("No")
            raise ValueError(f"FilePath must be absolute, got {path!r}")
        if path and plugin._outside(path):
            await plugin.file_path_exists.write("No")
            await plugin._refuse("FilePath", plugin._outside(path))
        if path and plugin.create_directory.readback.value != 0 and not os.path.isdir(path):
            os.makedirs(path, exist_ok=True)
        await obj.readback.write(_padded(path))
        await plugin._check_path(path)
        return _padded(path)

    @file_name.setpoint.putter
    async def file_name(obj, instance, value):
        text = _to_str(value)
        if "/" in text:
            raise ValueError(f"FileName must not contain '/', got {text!r}")
        await obj.readback.write(_padded(text))
        return _padded(text)

    @file_template.setpoint.putter
    async def file_template(obj, instance, value):
        text = _to_str(value)
        try:
            text % ("/p/", "n", 1)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"FileTemplate {text!r} does not take (path, name, number): {exc}")
        plugin = obj.parent
        folder = plugin._path() or plugin.parent.data_dir.rstrip("/") + "/"
        example = text % (folder, _to_str(plugin.file_name.readback.value) or "n", 1)
        if plugin._outside(example):
            await plugin._refuse("FileTemplate", plugin._outside(example))
        await obj.readback.write(_padded(text))
        return _padded(text)

    @create_directory.setpoint.putter
    async def create_directory(obj, instance, value):
        await obj.readback.write(value)
        path = obj.parent._path()
        if value != 0 and path and os.path.isabs(path) and not os.path.isdir(path):
            if obj.parent._outside(path):
                await obj.parent._refuse("CreateDirectory", obj.parent._outside(path))
            os.makedirs(path, exist_ok=True)
            await obj.parent._check_path(path)
        return value

    @num_capture.setpoint.putter
    async def num_capture(obj, instance, value):
        if value < 0:
            raise ValueError(f"NumCapture must be >= 0, got {value}")
        await obj.readback.write(value)
        return value

    def _next_name(self) -> str:
        template = _to_str(self.file_template.readback.value)
        try:
            return template % (self._path(), _to_str(self.file_name.readback.value),
                               self.file_number.readback.value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"FileTemplate {template!r} does not take (path, name, number): {exc}")

    async def _open(self) -> None:
        path = self._path()
        await self._check_path(path)
        if self.file_path_exists.value != "Yes":
            raise OSError(f"FilePath {path!r} does not exist")
        name = self._next_name()
        if self._outside(name):
            raise PermissionError(f"file refused, {self._outside(name)}")
        det: AreaDetectorIOC = self.parent
        self.writer = HDF5Writer(name, det.shape, swmr=True)
        await self.full_file_name.write(_padded(name))
        await self.num_captured.write(0)
        if self.auto_increment.readback.value == "Yes":
            n = self.file_number.readback.value + 1
            await self.file_number.readback.write(n)
            await self.file_number.setpoint.write(n, verify_value=False)

    async def _close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        await self.capture.readback.write("Done")
        await self.capture.setpoint.write("Done", verify_value=False)

    async def _fail(self, exc: Exception) -> None:
        await self.write_status.write("Write error")
        await self.write_message.write(_padded(str(exc)))

    @capture.setpoint.putter
    async def capture(obj, instance, value):
        plugin = obj.parent
        if value == "Capture":
            if plugin.file_write_mode.readback.value == "Single":
                raise ValueError("Capture is for Capture/Stream mode; Single mode writes with AutoSave")
            if plugin.writer is None:
                try:
                    await plugin._open()   # FileNumber moves on before Capture_RBV reports 1
                except Exception as exc:
                    await plugin._fail(exc)
                    raise
                await plugin.write_status.write("Write OK")
            await obj.readback.write("Capture")
        else:
            await plugin._close()
        return value

    async def receive(self, frame: np.ndarray, uid: int) -> None:
        """A frame from the driver (only when callbacks are enabled)."""
        if self.enable.readback.value != "Enable":
            return
        count = self.array_counter.readback.value + 1
        await self.array_counter.readback.write(count)
        await self.array_counter.setpoint.write(count, verify_value=False)
        mode = self.file_write_mode.readback.value
        loop = asyncio.get_running_loop()
        try:
            if mode == "Single":
                if self.auto_save.readback.value == "Yes":
                    await self._open()
                    writer, self.writer = self.writer, None
                    await loop.run_in_executor(None, writer.append, frame, uid, time.time())
                    writer.close()
                    await self.num_captured.write(1)
            elif self.writer is not None:
                await loop.run_in_executor(None, self.writer.append, frame, uid, time.time())
                await self.num_captured.write(self.writer.count)
                limit = self.num_capture.readback.value
                if limit and self.writer.count >= limit:
                    await self._close()
        except Exception as exc:
            await self._fail(exc)
            raise


class AreaDetectorIOC(PVGroup):
    """A detector: driver + HDF5 plugin, rendering frames from the physics model."""

    cam = SubGroup(CamIOC, prefix="cam1:")
    hdf = SubGroup(HDF5PluginIOC, prefix="HDF1:")

    def __init__(self, *args, model, render: Callable[[float], np.ndarray], shape: tuple[int, int],
                 model_name: str, data_dir: str | Path, on_exposed=None,
                 write_roots: list[str | Path] | None = None, **kwargs):
        self.model = model
        self.render = render
        self.shape = tuple(shape)
        self.model_label = model_name
        self.data_dir = str(data_dir)
        # where CA clients may make the plugin write (FilePath, FileTemplate, CreateDirectory)
        self.write_roots = [os.path.realpath(r) for r in (data_dir, *(write_roots or ()))]
        self.on_exposed = on_exposed
        super().__init__(*args, **kwargs)

    async def deliver(self, frame: np.ndarray, uid: int, flux: float | None = None) -> None:
        """A frame to the I0 monitor (*flux*: the mean flux factor of the acquisition so far) and
        the plugins."""
        if self.on_exposed is not None:
            await self.on_exposed(flux)
        if self.cam.array_callbacks.readback.value == "Enable":
            await self.hdf.receive(frame, uid)
