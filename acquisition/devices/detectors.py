"""Area detectors: Pilatus-like WAXS and SAXS cameras with the areaDetector HDF5 file
plugin. Frames stay in HDF5 files on disk; each event carries a datum that points at one
frame (``AD_HDF5`` resource + datum documents), exactly as with a real areaDetector IOC.

One trigger = one frame (``cam.num_images`` is forced to 1 while staged). The files go to
``write_dir`` (created by the IOC, dated subfolders), which must be inside the catalog's
readable storage.

EXAMPLE::

    from trxrd.acquisition.devices.detectors import PilatusDetector
    pilatus = PilatusDetector("TRX:PIL:", name="pilatus", write_dir="/data/frames/pilatus")
    pilatus.wait_for_connection(timeout=10)
    pilatus.cam.acquire_time.put(0.1)          # s
    RE(bluesky.plans.count([pilatus], 3))
"""
from __future__ import annotations

import time
from pathlib import Path

from ophyd import Component as Cpt
from ophyd import EpicsSignalWithRBV
from ophyd.device import Staged
from ophyd.areadetector import PilatusDetector as _PilatusBase
from ophyd.areadetector import SingleTrigger
from ophyd.areadetector.filestore_mixins import FileStoreHDF5IterativeWrite
from ophyd.areadetector.plugins import HDF5Plugin


class HDF5FileStore(HDF5Plugin, FileStoreHDF5IterativeWrite):
    """HDF5 plugin that emits resource/datum documents; the IOC creates missing folders."""

    create_directory = Cpt(EpicsSignalWithRBV, "CreateDirectory", kind="config")


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

    EXAMPLE::

        pilatus = PilatusDetector("TRX:PIL:", name="pilatus", write_dir="/data/frames/pilatus")
        pilatus.exposure_s = 0.1
        saxs = PilatusDetector("TRX:SAXS:", name="saxs", write_dir="/data/frames/saxs", geometry="saxs")
    """

    hdf5 = Cpt(HDF5FileStore, "HDF1:", write_path_template="/", root="/")

    def __init__(self, prefix: str, *, name: str, write_dir: str | Path, exposure_s: float | None = None,
                 geometry: str = "waxs", **kwargs):
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
        if exposure_s is not None:
            self.exposure_s = exposure_s

    def trigger(self):
        """One frame. Same as ``SingleTrigger.trigger`` but returns the status it made: with
        short exposures the frame can finish (and ophyd drop ``self._status``) before
        ``generate_datum`` returns."""
        if self._staged != Staged.yes:
            raise RuntimeError(f"{self.name} is not staged: use it inside a plan (stage() first)")
        status = self._status = self._status_type(self)
        self._acquisition_signal.put(1, wait=False)
        self.generate_datum(self._image_name, time.time(), {})
        return status

    @property
    def image_key(self) -> str:
        return f"{self.name}_image"

    @property
    def exposure_s(self) -> float:
        return self.cam.acquire_time.get()

    @exposure_s.setter
    def exposure_s(self, value: float) -> None:
        value = float(value)
        if not value > 0:
            raise ValueError(f"{self.name}: exposure must be > 0 s, got {value}")
        self.cam.acquire_time.put(value, wait=True)
        self.cam.acquire_period.put(0.0, wait=True)

    def describe(self):
        """Image key: one frame per event, ``shape`` ``(ny, nx)``.

        ophyd declares ``(num_images, ny, nx)``; with ``num_images`` forced to 1 while staged
        that leading 1 would make the catalog read frames back as ``(N, 1, ny, nx)``.
        """
        desc = super().describe()
        if self.image_key in desc:
            key = desc[self.image_key]
            key["units"] = "counts"
            shape = tuple(key.get("shape") or ())
            if len(shape) == 3 and shape[0] == 1:
                key["shape"] = list(shape[1:])
        return desc
