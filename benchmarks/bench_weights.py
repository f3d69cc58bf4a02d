"""Inference speed of one model's weights against another's, in one process, through the Segmenter.

Usage: python benchmarks/bench_weights.py WEIGHTS [--baseline NAME_OR_FILE] [--n 32] [--uncertainty 0 50]
       [--threads 2] [--repeats 3]

Both models segment the same ``--n`` JSRT images (read once, outside the timing) through
``Segmenter.segment_images`` on the default backend, without sampling and with each
``--uncertainty`` count; the best of ``--repeats`` runs is kept, alternating the two
models so that a change of machine load hits both. Prints images/s and the ratio of
``WEIGHTS`` to the baseline; the ratio is the figure to quote (absolute times depend on
the machine). For the cost of an architecture change, e.g. ``--refine-level`` stages.
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

import chexmask
from chexmask.io.read import read_image
from chexmask.model.default import DEFAULT_MODEL

SHARED = Path(__file__).resolve().parents[2] / "shared"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("weights")
    p.add_argument("--baseline", default=DEFAULT_MODEL)
    p.add_argument("--images", type=Path, default=SHARED / "data" / "jsrt" / "images")
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--uncertainty", type=int, nargs="+", default=[0, 50])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    images = [read_image(f) for f in sorted(args.images.glob("*.png"))[: args.n]]
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC  {platform.processor() or platform.machine()}  "
          f"threads {args.threads}  {len(images)} images  (load: check that nothing else runs)")
    for samples in args.uncertainty:
        segmenters = {w: chexmask.Segmenter(w, uncertainty=samples, batch_size=8) for w in (args.baseline, args.weights)}
        best = dict.fromkeys(segmenters, float("inf"))
        for _ in range(args.repeats):
            for name, seg in segmenters.items():
                t0 = time.perf_counter()
                seg.segment_images(images)
                best[name] = min(best[name], time.perf_counter() - t0)
        rate = {name: len(images) / t for name, t in best.items()}
        backend = segmenters[args.weights].backend
        print(f"uncertainty {samples:>3} ({backend}): baseline {rate[args.baseline]:6.1f} img/s, "
              f"weights {rate[args.weights]:6.1f} img/s, ratio {rate[args.weights] / rate[args.baseline]:.3f}")


if __name__ == "__main__":
    main()
