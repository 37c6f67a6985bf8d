"""Reading areaDetector frames from the resource/datum documents of a run, while the detector
IOC is still writing the file (HDF5 SWMR), through event-model's Filler.

EXAMPLE::

    from event_model import Filler
    from trxrd.reduction.callbacks.handlers import HANDLERS
    filler = Filler(HANDLERS, inplace=False)
    for name, doc in documents:            # start, descriptor, resource, datum, event ...
        name, doc = filler(name, doc)      # events come back with the frames in place
"""
from __future__ import annotations

import time

import h5py
import numpy as np


class AreaDetectorHDF5Handler:
    """``AD_HDF5`` handler: frames of ``/entry/data/data`` by point number; the file is opened
    once in SWMR read mode and refreshed when a frame beyond the known length is asked for."""

    specs = {"AD_HDF5"}

    def __init__(self, filename, frame_per_point=1, wait_s: float = 5.0):
        self._filename = str(filename)
        self._frame_per_point = int(frame_per_point)
        self._wait_s = float(wait_s)
        self._file = None
        self._dataset = None

    def _open(self):
        if self._file is None:
            self._file = h5py.File(self._filename, "r", swmr=True, libver="latest")
            self._dataset = self._file["/entry/data/data"]
        return self._dataset

    def __call__(self, point_number):
        start = int(point_number) * self._frame_per_point
        stop = start + self._frame_per_point
        deadline = time.monotonic() + self._wait_s
        while True:
            try:
                dataset = self._open()
                if dataset.shape[0] < stop:       # not in the file as last seen: look again
                    dataset.refresh()
                if dataset.shape[0] >= stop:
                    frames = np.asarray(dataset[start:stop])
                    return frames[0] if self._frame_per_point == 1 else frames
            except OSError:        # the writer has not created or flushed the file yet
                if time.monotonic() > deadline:
                    raise
                self.close()
            if time.monotonic() > deadline:
                raise OSError(f"{self._filename}: frame {point_number} not written within "
                              f"{self._wait_s} s")
            time.sleep(0.01)

    def close(self):
        if self._file is not None:
            self._file.close()
        self._file = self._dataset = None


HANDLERS = {"AD_HDF5": AreaDetectorHDF5Handler}
