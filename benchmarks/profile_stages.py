"""Where the time of ``chexmask segment`` goes: milliseconds per image for every stage, in one process.

Usage: python benchmarks/profile_stages.py /path/to/jsrt/images [--n 64] [--weights NAME] [--threads 2]

Each stage runs on its own over the same ``--n`` images (the stages of one image run in
sequence in the pipeline; workers overlap decode and rows with the model): decode
(``read_image``), preprocess (pad + resize to the model frame), model (encoder + z = mu
decoder, batch 8), sampling (the 50-sample decoder on top, batch 8), postprocess
(landmarks back to the original frame), mask runs (``landmarks_to_runs`` at the
original size: the masks' pixels without painting them), RLE (``runs_to_rle`` of the
three organs), measures (``measure_runs``), flag and row (the rest of
``segmentation_record``), IPC (pickling what a worker sends: the model-frame pixels and
geometry to the main process, the row back) and write (``TableWriter``, CSV). It prints
one table and, with ``--markdown``, the same as a Markdown table.
"""

from __future__ import annotations

import argparse
import pickle
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from chexmask.formats.records import TableWriter, part_schema, segmentation_record
from chexmask.inference.pipeline import plan_items
from chexmask.inference.segmenter import Segmenter
from chexmask.io.read import read_image
from chexmask.masks.fill import landmarks_to_runs
from chexmask.masks.rle import runs_to_rle
from chexmask.measures import measure_record, measure_runs
from chexmask.model.default import DEFAULT_MODEL
from chexmask.preprocess import pad_resize


def _ms(fn, n: int) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000 / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("images", help="Folder of images (e.g. shared/data/jsrt/images).")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--weights", default=DEFAULT_MODEL)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    paths = [it.path for it in plan_items([args.images])[: args.n]]
    n = len(paths)
    print(f"{n} images from {args.images}; weights {args.weights}; {platform.machine()} CPU, torch threads "
          f"{torch.get_num_threads()}; {datetime.now(timezone.utc).isoformat(timespec='minutes')}", file=sys.stderr)
    stages: dict[str, float] = {}
    images = [read_image(paths[0])]  # warm-up of the decoders
    stages["decode"] = _ms(lambda: images.__setitem__(slice(None), [read_image(q) for q in paths]), n)
    pre: list = []
    seg = Segmenter(args.weights, uncertainty=0, batch_size=8, micro_batch=8)
    size = seg.input_size
    stages["preprocess"] = _ms(lambda: pre.extend(pad_resize(im.pixels, size) for im in images), n)
    x = np.stack([q[0] for q in pre])
    seg.predict(x[:8])
    preds: list = []
    stages["model"] = _ms(lambda: preds.extend(seg.predict(x[i : i + 8]) for i in range(0, n, 8)), n)
    sampler = Segmenter(args.weights, uncertainty=50, batch_size=8, micro_batch=8)
    sampled: list = []
    stages["sampling (50, on top of model)"] = _ms(lambda: sampled.extend(sampler.predict(x[i : i + 8]) for i in range(0, n, 8)), n) - stages["model"]
    segs: list = []

    def post() -> None:
        for i, im in enumerate(images):
            segs.append(sampler.postprocess(sampled[i // 8], i % 8, im, pre[i][1], pre[i][0]))

    stages["postprocess"] = _ms(post, n)
    runs: list = []
    stages["mask runs"] = _ms(lambda: runs.extend(landmarks_to_runs(s.landmarks_int, s.height, s.width) for s in segs), n)
    stages["rle"] = _ms(lambda: [runs_to_rle(*r[o]) for r in runs for o in ("left_lung", "right_lung", "heart")], n)
    stages["measures"] = _ms(lambda: [measure_record(measure_runs(r, s.width)) for r, s in zip(runs, segs)], n)
    rows: list = []
    row_ms = _ms(lambda: rows.extend(segmentation_record(s) for s in segs), n)
    stages["flag, landmarks and arrays (rest of the row)"] = max(row_ms - stages["mask runs"] - stages["rle"] - stages["measures"], 0.0)
    stages["IPC (pickle: pixels in, row out)"] = _ms(
        lambda: [pickle.loads(pickle.dumps((q[0], q[1]))) and pickle.loads(pickle.dumps(r)) for q, r in zip(pre, rows)], n)
    import pyarrow as pa

    with tempfile.TemporaryDirectory() as tmp:
        for r, path in zip(rows, paths):
            r.update(_index=0, _path=path, _error=None, _reason=None)
        table = pa.Table.from_pylist(rows, schema=part_schema("Image ID"))
        writer = TableWriter(Path(tmp) / "out.csv", "csv", "Image ID", (args.weights, ""))
        stages["write (CSV)"] = _ms(lambda: writer.write(table), n)
        writer.close()
    total = sum(stages.values())
    width = max(map(len, stages))
    if args.markdown:
        print("| stage | ms per image | share |\n| --- | --- | --- |")
    for name, ms in stages.items():
        print(f"| {name} | {ms:.2f} | {ms / total:.0%} |" if args.markdown else f"{name:<{width}}  {ms:8.2f} ms  {ms / total:6.1%}")
    print(f"| total | {total:.2f} | |" if args.markdown else f"{'total':<{width}}  {total:8.2f} ms")


if __name__ == "__main__":
    main()
