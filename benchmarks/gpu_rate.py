"""GPU integration rate (``engine="cuda"``): Pilatus 2M frames from host memory through trxrd's
map on an NVIDIA GPU, against the CPU engine on the same host and against the host-to-GPU copy
of the same frames (the floor of any GPU path fed from host memory), in the same run.

Frames: int32 Poisson counts (mean 10), -1 in the module gaps, batches of ``BATCH``; 1000 q
bins, no splitting and bbox (the maps of ``integrate_rate``). Per figure the median of repeated
calls (frames/s):

- ``gpu``: ``CudaEngine.sums_many`` on frames in ordinary (pageable) host memory: copy to the
  GPU, kernel, per-bin sums back, corrections on the host;
- ``gpu_pinned``: the same from page-locked host memory (where a reader would put frames);
- ``gpu_kernel``: the kernel alone on frames already on the GPU;
- ``h2d_floor`` / ``h2d_pinned_floor``: the copy of the same frames alone;
- ``cpu``: the CPU engine on the same host, one frame at a time and in batches (all cores).

Without CuPy or a CUDA GPU the section says so (``measured: false``) and measures nothing. The
maps come from pyFAI, or on a GPU host without pyFAI from files ``--save-maps DIR`` wrote on a
host with it (``--maps DIR``). Run by ``make bench`` (``benchmarks/run.py``).

EXAMPLE::

    .venv/bin/python benchmarks/gpu_rate.py --save-maps /tmp/maps     # here: pyFAI builds them
    python3 benchmarks/gpu_rate.py --maps /tmp/maps                   # on the GPU host
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from integrate_rate import NPT, frame_for, median_rate

SPLITS = ("no", "bbox")
BATCH = 16


def maps(directory: Path | None):
    """({split: IntegrationEngine}, gap mask) of the Pilatus 2M: from *directory* or from pyFAI."""
    from trxrd.reduction.engine import IntegrationEngine

    if directory is not None:
        engines = {split: IntegrationEngine.load(directory / f"pilatus2m_{split}.npz") for split in SPLITS}
        with np.load(directory / "pilatus2m_gaps.npz") as data:
            gaps = np.unpackbits(data["bits"])[: int(np.prod(data["shape"]))].reshape(data["shape"]).astype(bool)
        return engines, gaps
    ai, _, gaps = frame_for("Pilatus2M")
    return {split: IntegrationEngine.for_1d(ai, NPT, mask=gaps, split=split) for split in SPLITS}, gaps


def save_maps(directory: Path) -> None:
    engines, gaps = maps(None)
    directory.mkdir(parents=True, exist_ok=True)
    for split, engine in engines.items():
        engine.save(directory / f"pilatus2m_{split}.npz")
    np.savez(directory / "pilatus2m_gaps.npz", bits=np.packbits(gaps.reshape(-1)), shape=np.array(gaps.shape))


def bench(quick: bool = False, map_dir: Path | None = None) -> dict:
    from trxrd.reduction.engine import cores
    from trxrd.reduction.gpu import CudaEngine, cupy

    try:
        cp = cupy()
    except RuntimeError as exc:
        return {"measured": False, "why": str(exc)}
    import cupyx

    seconds = 0.4 if quick else 1.5
    engines, gaps = maps(map_dir)
    rng = np.random.default_rng(0)
    frames = rng.poisson(10.0, (BATCH,) + gaps.shape).astype(np.int32)
    frames[:, gaps] = -1
    pinned = cupyx.empty_pinned(frames.shape, frames.dtype)
    pinned[...] = frames
    sync = cp.cuda.Stream.null.synchronize
    props = cp.cuda.runtime.getDeviceProperties(0)
    out = {"measured": True, "device": props["name"].decode(), "batch": BATCH, "cpu_threads": cores(),
           "frame_mb": round(frames[0].nbytes / 2**20, 2),
           "h2d_floor": round(median_rate(lambda: (cp.asarray(frames), sync()), seconds) * BATCH, 1),
           "h2d_pinned_floor": round(median_rate(lambda: (cp.asarray(pinned), sync()), seconds) * BATCH, 1),
           "cpu_memory_floor": round(median_rate(lambda: frames[0].sum(), seconds, 20), 1)}
    on_gpu = cp.asarray(frames)
    for split, engine in engines.items():
        gpu = CudaEngine(engine, batch=BATCH)
        ours, ref = gpu.sums_many(frames), engine.sums_many(frames)
        ok = ref.signal > 0
        out[f"pilatus2m_{'nosplit' if split == 'no' else split}"] = {
            "gpu": round(median_rate(lambda: gpu.sums_many(frames), seconds) * BATCH, 1),
            "gpu_pinned": round(median_rate(lambda: gpu.sums_many(pinned), seconds) * BATCH, 1),
            "gpu_kernel": round(median_rate(lambda: (gpu.launch(on_gpu), sync()), seconds) * BATCH, 1),
            "cpu": round(median_rate(lambda: engine.sums(frames[0]), seconds), 1),
            "cpu_batch": round(median_rate(lambda: engine.sums_many(frames), seconds) * BATCH, 1),
            "max_rel_diff_vs_cpu": float(max(np.max(np.abs(a[ok] / b[ok] - 1)) for a, b in
                                             ((ours.signal, ref.signal), (ours.variance, ref.variance),
                                              (ours.norm, ref.norm)))),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter timing windows")
    parser.add_argument("--maps", type=Path, help="folder of maps saved by --save-maps (no pyFAI needed)")
    parser.add_argument("--save-maps", type=Path, metavar="DIR", help="build the maps with pyFAI, save them, exit")
    args = parser.parse_args()
    if args.save_maps:
        save_maps(args.save_maps)
        print(f"maps saved in {args.save_maps}: {sorted(os.listdir(args.save_maps))}")
        return
    print(json.dumps(bench(args.quick, args.maps), indent=1))


if __name__ == "__main__":
    main()
