"""Reading areaDetector frames from the resource/datum documents of a run, while the detector
IOC is still writing the file (HDF5 SWMR), through event-model's Filler or in batches.

A datum references ``frame_per_point`` consecutive frames (1: one frame, an image ``(ny, nx)``;
N > 1, a streaming detector: ``(N, ny, nx)``). ``frames(first_point, n_points)`` reads the frames
of several consecutive datums in one go (the live integrator's batches). Frames stored one per
uncompressed chunk (what areaDetector and the simulator write) are copied chunk by chunk straight
into one array: an h5py slice across several 10 MB chunks goes through HDF5's 1 MB chunk cache
and costs tens of ms per Pilatus 2M frame, a direct chunk read about 1 ms.

EXAMPLE::

    from event_model import Filler
    from trxrd.reduction.callbacks.handlers import HANDLERS, AreaDetectorHDF5Handler
    filler = Filler(HANDLERS, inplace=False)
    for name, doc in documents:            # start, descriptor, resource, datum, event ...
        name, doc = filler(name, doc)      # events come back with the frames in place

    handler = AreaDetectorHDF5Handler("/data/frames/pilatus/2026/12/03/a1b2_000000.h5", frame_per_point=10)
    handler.frames(4, 3).shape             # datums 4, 5, 6: (30, ny, nx)
"""
from __future__ import annotations

import time

import h5py
import numpy as np


class AreaDetectorHDF5Handler:
    """``AD_HDF5`` handler: frames of ``/entry/data/data`` by point number; the file is opened
    once in SWMR read mode and refreshed when a frame beyond the known length is asked for."""

    specs = {"AD_HDF5"}

    def __init__(self, filename, frame_per_point=1, wait_s: float = 5.0, **kwargs):
        self._filename = str(filename)
        self._frame_per_point = int(frame_per_point)
        self._wait_s = float(wait_s)
        self._file = None
        self._dataset = None
        self._direct = False          # one frame per uncompressed chunk: read chunks directly

    def _open(self):
        if self._file is None:
            self._file = h5py.File(self._filename, "r", swmr=True, libver="latest")
            ds = self._dataset = self._file["/entry/data/data"]
            self._direct = (ds.chunks is not None and ds.ndim == 3 and ds.chunks == (1, *ds.shape[1:])
                            and ds.compression is None and not ds.scaleoffset and not ds.shuffle
                            and not ds.fletcher32 and ds.dtype.isnative)
        return self._dataset

    def __call__(self, point_number):
        frames = self.frames(point_number, 1)
        return frames[0] if self._frame_per_point == 1 else frames

    @property
    def frame_per_point(self) -> int:
        return self._frame_per_point

    def frames(self, first_point: int, n_points: int = 1, scratch: np.ndarray | None = None) -> np.ndarray:
        """The frames of datums ``first_point .. first_point + n_points - 1``:
        ``(n_points * frame_per_point, ny, nx)``; waits up to ``wait_s`` for frames not written yet.
        *scratch*: a flat ``uint8`` buffer to read into when it is large enough (the array returned
        is a view of it): fresh memory for every 10 MB frame costs page faults, on a virtual
        machine tens of ms a frame."""
        start = int(first_point) * self._frame_per_point
        stop = start + int(n_points) * self._frame_per_point
        deadline = time.monotonic() + self._wait_s
        while True:
            try:
                dataset = self._open()
                if dataset.shape[0] < stop:       # not in the file as last seen: look again
                    dataset.refresh()
                if dataset.shape[0] >= stop:
                    return self._read(dataset, start, stop, scratch)
            except OSError:        # the writer has not created or flushed the file yet
                if time.monotonic() > deadline:
                    raise
                self.close()
            if time.monotonic() > deadline:
                raise OSError(f"{self._filename}: frames {start}..{stop - 1} not written within "
                              f"{self._wait_s} s")
            time.sleep(0.01)

    def _read(self, dataset, start: int, stop: int, scratch=None) -> np.ndarray:
        shape = (stop - start, *dataset.shape[1:])
        nbytes = int(np.prod(shape)) * dataset.dtype.itemsize
        if scratch is not None and scratch.nbytes >= nbytes and scratch.dtype == np.uint8:
            out = scratch[:nbytes].view(dataset.dtype).reshape(shape)
        else:
            out = np.empty(shape, dtype=dataset.dtype)
        if not self._direct:
            for k in range(start, stop):            # one chunk at a time, never a multi-chunk slice
                dataset.read_direct(out, np.s_[k], np.s_[k - start])
            return out
        flat = out.reshape(stop - start, -1).view(np.uint8)
        zeros = (0,) * (dataset.ndim - 1)
        for k in range(start, stop):
            mask, _ = dataset.id.read_direct_chunk((k, *zeros), out=flat[k - start])
            if mask:                                # a filter skipped on this chunk: read it properly
                dataset.read_direct(out, np.s_[k], np.s_[k - start])
        return out

    def close(self):
        if self._file is not None:
            self._file.close()
        self._file = self._dataset = None


HANDLERS = {"AD_HDF5": AreaDetectorHDF5Handler}
