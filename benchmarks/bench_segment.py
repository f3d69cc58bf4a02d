"""`chexmask segment` throughput: model-only vs end-to-end vs a one-image-at-a-time loop.

Usage:
    python benchmarks/bench_segment.py IMAGES_DIR --weights NAME_OR_FILE [--n 32] [--uncertainty 0 50]
        [--batch-size 32] [--workers 1] [--device cpu] [--threads N] [--backends torch openvino]

For each uncertainty setting, on the same N images and in one process:

- model-only: ``Segmenter.predict`` on already decoded, preprocessed images held in
  memory (the limit any pipeline can reach);
- end-to-end: ``build_dataset`` (what ``chexmask segment`` runs) on the files (read, decode, preprocess in worker
  processes, predict, fill and RLE-encode the masks, write the CSV);
- loop: what the reference did, one image at a time (read, preprocess, predict batch 1,
  fill, encode).

It prints images/s and the ratios end-to-end / model-only (goal >= 0.8) and
end-to-end / loop, for each backend (:class:`~chexmask.Segmenter`'s ``backend``), and each
backend's end-to-end speed over the first one's. Absolute times on a shared machine are noisy; the ratios, measured
back to back in one process, are the figures to compare.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from chexmask.formats.records import segmentation_record
from chexmask.inference.pipeline import MICRO_BATCH, build_dataset, load_item, plan_items
from chexmask.inference.segmenter import Segmenter
from chexmask.io.read import read_image
from chexmask.model.default import DEFAULT_MODEL


def model_only(seg: Segmenter, items, n: int) -> float:
    loaded = [load_item(it.path, seg.input_size) for it in items]
    pixels = np.stack([p[1] for p in loaded])
    seg.predict(pixels[: seg.batch_size])  # warm-up
    t = time.perf_counter()
    for start in range(0, n, seg.batch_size):
        seg.predict(pixels[start : start + seg.batch_size])
    if seg.device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t)


def end_to_end(seg: Segmenter, args, items, workdir: Path) -> float:
    listing = workdir / f"list{seg.uncertainty}.txt"
    listing.write_text("".join(f"{it.path}\n" for it in items))
    t = time.perf_counter()  # the model is loaded already; worker start-up is included
    summary = build_dataset(seg, [listing], workdir / f"out{seg.uncertainty}.csv", workers=args.workers,
                            chunk_size=args.chunk_size, progress=False)
    seconds = time.perf_counter() - t
    assert summary.segmented == len(items), summary
    return len(items) / seconds


def loop(seg: Segmenter, items) -> float:
    t = time.perf_counter()
    for it in items:
        image = read_image(it.path)
        x, g = seg.preprocess(image)
        pred = seg.predict(x[None])
        segmentation_record(seg.postprocess(pred, 0, image, g, x))
    return len(items) / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("images", help="Folder of images (e.g. shared/data/jsrt/images).")
    p.add_argument("--weights", default=DEFAULT_MODEL)
    p.add_argument("--n", type=int, default=32, help="Images to use (the first N found).")
    p.add_argument("--uncertainty", type=int, nargs="+", default=[0, 50])
    p.add_argument("--n-sampled", type=int, default=32, help="Images to use with uncertainty > 0 (50 samples are slow on a CPU).")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--chunk-size", type=int, default=1000)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--backends", nargs="+", default=["torch", "openvino"], help="Backends to compare; the first is the baseline.")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    items = plan_items([args.images])[: args.n]
    device = torch.device(args.device)
    print(f"up to {len(items)} images from {args.images}; weights {args.weights}; device {device}"
          f"{' ' + torch.cuda.get_device_name(device) if device.type == 'cuda' else ''}; torch threads {torch.get_num_threads()}; "
          f"batch {args.batch_size}; workers {args.workers}")
    with tempfile.TemporaryDirectory() as tmp:
        for u in args.uncertainty:
            subset = items[: args.n_sampled] if u else items
            base = None
            for backend in args.backends:
                seg = Segmenter(args.weights, device=args.device, uncertainty=u, batch_size=args.batch_size, amp=True, backend=backend)
                seg.micro_batch = MICRO_BATCH.get(seg.device.type, 8)
                limit = model_only(seg, subset, len(subset))
                e2e = end_to_end(seg, args, subset, Path(tmp))
                single = Segmenter(args.weights, device=args.device, uncertainty=u, batch_size=1, backend=backend)
                one = loop(single, subset[: max(4, len(subset) // 4)])
                base = base or e2e
                print(f"{seg.backend}, uncertainty {u:>3}, {len(subset)} images: model-only {limit:8.2f} img/s | end-to-end {e2e:8.2f} img/s"
                      f" | loop {one:8.2f} img/s | e2e/model {e2e / limit:5.2f} | e2e/loop {e2e / one:5.2f} | e2e/{args.backends[0]} {e2e / base:5.2f}",
                      flush=True)
    print(f"model input {seg.input_size} px; end-to-end includes worker start-up, not the model load")


if __name__ == "__main__":
    main()
