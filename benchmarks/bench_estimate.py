"""Cost of the quality estimate (edge evidence, Estimated Dice, Node Error Radius, flag) in what ``segment`` does per image.

Usage: python benchmarks/bench_estimate.py [--n 32] [--uncertainty 50] [--threads 2] [--repeats 3]

Segments ``--n`` JSRT images (read once, outside the timing) with the default model and
builds their table rows (:func:`chexmask.formats.records.segmentation_record`: masks,
RLE, measures, estimate, flag), as ``chexmask segment`` does without worker processes.
The baseline run is the same with the estimate replaced by a precomputed one and the
edge evidence at the lung contours (measured in every segmentation's postprocess) by a
constant (so the rows keep their shape); the best of ``--repeats`` alternating runs is
kept. Prints images/s of both and their ratio, and the milliseconds per image of the
estimate and of the edge evidence alone.
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import datetime, timezone
from pathlib import Path
from unittest import mock

import torch

import chexmask
from chexmask.formats.records import segmentation_record
from chexmask.estimate.contour_contrast import weak_lung_edges
from chexmask.inference.segmenter import Segmentation
from chexmask.io.model_frame import model_frame
from chexmask.preprocess import to_model_frame
from chexmask.io.read import read_image

SHARED = Path(__file__).resolve().parents[2] / "shared"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=Path, default=SHARED / "data" / "jsrt" / "images")
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--uncertainty", type=int, default=50)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    images = [read_image(f) for f in sorted(args.images.glob("*.png"))[: args.n]]
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC  {platform.processor() or platform.machine()}  "
          f"threads {args.threads}  {len(images)} images  uncertainty {args.uncertainty}  (load: check that nothing else runs)")
    seg = chexmask.Segmenter(uncertainty=args.uncertainty, batch_size=8)
    fixed = seg.segment_images(images[:1])[0].quality_estimate()

    def run() -> float:
        t0 = time.perf_counter()
        for s in seg.segment_images(images):
            segmentation_record(s)
        return time.perf_counter() - t0

    best = {"with estimate": float("inf"), "baseline": float("inf")}
    for _ in range(args.repeats):
        best["with estimate"] = min(best["with estimate"], run())
        with mock.patch.object(Segmentation, "quality_estimate", lambda self: fixed), \
                mock.patch("chexmask.inference.segmenter.weak_lung_edges", lambda pixels, points: 0.05):
            best["baseline"] = min(best["baseline"], run())
    segs = seg.segment_images(images)
    t0 = time.perf_counter()
    for s in segs:
        s.quality_estimate()
    own = (time.perf_counter() - t0) / len(segs)
    frames = [(model_frame(im, seg.input_size), s) for im, s in zip(images, segs)]
    probes = [(f, to_model_frame(s.landmarks, g)) for (f, g), s in frames]
    t0 = time.perf_counter()
    for f, points in probes:
        weak_lung_edges(f, points)
    edges = (time.perf_counter() - t0) / len(probes)
    rate = {k: len(images) / t for k, t in best.items()}
    print(f"segment + rows: baseline {rate['baseline']:.2f} img/s, with the estimate {rate['with estimate']:.2f} img/s, "
          f"ratio {rate['with estimate'] / rate['baseline']:.3f}; the estimate alone {own * 1e3:.2f} ms per image, "
          f"the edge evidence alone {edges * 1e3:.2f} ms per image")


if __name__ == "__main__":
    main()
