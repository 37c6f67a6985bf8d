"""Re-reduction of a stored run: its documents replayed from the catalog, the frames filled in
from the catalog's array, through the same callbacks as live (``trxrd reduce UID``).

EXAMPLE::

    from trxrd.reduction.callbacks import live_reduction
    from trxrd.reduction.callbacks.replay import replay_run
    from trxrd.reduction.settings import ReductionSettings
    settings = ReductionSettings("waxs.poni", mask="waxs_mask.edf", windows=[(1.70, 2.05)])
    integrator, pump_probe = live_reduction(settings, store=writer)
    for name, doc in replay_run(cat["3f2a9c1e"]):
        integrator(name, doc)
    pump_probe.result.fit.summary()
"""
from __future__ import annotations

import numpy as np

from ... import datakeys as dk

FRAMES_PER_READ = 16


def replay_run(run, *, image_key: str = "pilatus_image", stream: str = "primary"):
    """(name, doc) of a stored run: start, the stream's descriptor, one event per row with the
    frame as an array (read in blocks from the catalog), stop. The image is the one the run's
    plan names (``trxrd.datakeys.KEY_MAP``), else *image_key*."""
    start = dict(run.metadata["start"])
    stop = run.metadata.get("stop")
    image_key = (start.get(dk.KEY_MAP) or {}).get("image") or image_key
    if stream not in run:
        raise ValueError(f"run {start['uid'][:8]} has no {stream!r} stream")
    events = run[stream]
    descriptor = dict(events.descriptors[0])
    keys = dict(descriptor["data_keys"])
    if image_key not in keys:
        raise ValueError(f"run {start['uid'][:8]} has no {image_key!r} in {stream!r} (has: {', '.join(keys)})")
    keys[image_key] = {k: v for k, v in keys[image_key].items() if k != "external"}   # filled here
    descriptor["data_keys"] = keys
    yield "start", start
    yield "descriptor", descriptor
    scalars = [k for k in keys if k != image_key]
    table = events.read(variables=scalars + ["seq_num", "time"]) if scalars else None
    images = events[image_key]
    n = int(images.shape[0])
    for first in range(0, n, FRAMES_PER_READ):
        block = np.asarray(images[first:first + FRAMES_PER_READ])
        for k, frame in enumerate(block):
            i = first + k
            data = {key: table[key].values[i].item() for key in scalars}
            data[image_key] = frame
            now = float(table["time"].values[i])
            yield "event", {"uid": f"{descriptor['uid']}-{i}", "descriptor": descriptor["uid"],
                            "seq_num": int(table["seq_num"].values[i]), "time": now,
                            "data": data, "timestamps": {key: now for key in data}, "filled": {}}
    if stop:
        yield "stop", dict(stop)
