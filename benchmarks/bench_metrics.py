"""Benchmark: images/s for Dice + HD + HD95 (lungs and heart) on 1024 x 1024 masks.

Compares chexmask's cropped distance transforms with the naive full-frame computation
(same code, ``crop=False``) in the same process, and checks both give the same numbers.

Masks come from the shared CANDID-PTX rows (prediction vs physician "julia") when
``../shared/data/chexmask-format`` exists, else from synthetic ellipses.

Usage: ``python benchmarks/bench_metrics.py [--images 20] [--shared PATH]``
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from skimage.draw import ellipse

from chexmask.quality.metrics import mask_scores

SIZE = 1024
DEFAULT_SHARED = Path(os.environ.get("CHEXMASK_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def _shared_pairs(folder: Path, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from chexmask.formats.tables import read_table
    from chexmask.masks.rle import decode_rle

    pred = read_table(folder / "CANDID-PTX.csv").set_index("ImageID")
    ref = read_table(folder / "CANDID-PTX_julia_annotations.csv").set_index("ImageID")
    pairs = []
    for image_id in ref.index[:n]:
        p, r = pred.loc[image_id], ref.loc[image_id]
        lungs = [decode_rle(row["Right Lung"], SIZE, SIZE) | decode_rle(row["Left Lung"], SIZE, SIZE) for row in (p, r)]
        heart = [decode_rle(row["Heart"], SIZE, SIZE) for row in (p, r)]
        pairs += [tuple(lungs), tuple(heart)]
    return pairs


def _synthetic_pairs(n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(n):
        for centres, radii in ((((500, 300), (500, 720)), (330, 150)), (((620, 540),), (150, 200))):
            masks = []
            for _ in range(2):
                m = np.zeros((SIZE, SIZE), bool)
                for cy, cx in centres:
                    r, c = ellipse(cy + rng.normal(0, 8), cx + rng.normal(0, 8), radii[0] + rng.normal(0, 8), radii[1] + rng.normal(0, 8), shape=m.shape)
                    m[r, c] = True
                masks.append(m)
            pairs.append(tuple(masks))
    return pairs


def _rate(pairs, crop: bool, repeat: int) -> tuple[float, list]:
    best, scores = np.inf, []
    for _ in range(repeat):
        t0 = time.perf_counter()
        scores = [mask_scores(a, b, crop=crop) for a, b in pairs]
        best = min(best, time.perf_counter() - t0)
    return (len(pairs) / 2) / best, scores  # two organ pairs (lungs, heart) per image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20, help="Images (each: lungs and heart pairs).")
    parser.add_argument("--repeat", type=int, default=3, help="Timing repeats; the best is kept.")
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED / "data" / "chexmask-format")
    args = parser.parse_args()
    if (args.shared / "CANDID-PTX.csv").exists():
        pairs, source = _shared_pairs(args.shared, args.images), f"CANDID-PTX rows in {args.shared}"
    else:
        pairs, source = _synthetic_pairs(args.images), "synthetic ellipses"
    fast, fast_scores = _rate(pairs, crop=True, repeat=args.repeat)
    naive, naive_scores = _rate(pairs, crop=False, repeat=args.repeat)
    same = all(np.allclose(f, n, equal_nan=True) for f, n in zip(fast_scores, naive_scores))
    print(f"masks: {len(pairs) // 2} images at {SIZE}x{SIZE} ({source}); Dice+HD+HD95 for lungs and heart")
    print(f"chexmask (cropped EDT): {fast:8.1f} images/s")
    print(f"naive full-frame EDT  : {naive:8.1f} images/s")
    print(f"speed-up: {fast / naive:.1f}x; identical results: {same}")


if __name__ == "__main__":
    main()
