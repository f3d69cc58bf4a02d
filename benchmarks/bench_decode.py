"""Decoding cost: full-resolution decode (what ``chexmask`` does) vs JPEG's reduced-resolution decode.

Usage: python benchmarks/bench_decode.py [--images FOLDER] [--n 40]

JPEG can be decoded at 1/2, 1/4 or 1/8 scale (libjpeg scales in the DCT), which issue 15
proposed for the 256-px model. This measures, in one process, milliseconds per image and
the ratio against the full decode for:

- the bundled sample JPEG (2000 x 2000),
- JPEGs at the sizes of the target datasets (CheXpert about 2320 x 2828, MIMIC-CXR-JPG
  about 2544 x 3056), made by resizing JSRT images and encoding them at quality 95,
- the JSRT PNGs as stored (PNG has no reduced decode), for scale.

Each figure is the full read a pipeline does: decode plus the area resize to the 1024
frame's 256-px model input.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

SAMPLE = Path(__file__).resolve().parents[1] / "src" / "chexmask" / "samples" / "00cfd1c1.jpg"
FLAGS = {"full": cv2.IMREAD_GRAYSCALE, "1/2": cv2.IMREAD_REDUCED_GRAYSCALE_2,
         "1/4": cv2.IMREAD_REDUCED_GRAYSCALE_4, "1/8": cv2.IMREAD_REDUCED_GRAYSCALE_8}


def _ms(blobs: list[np.ndarray], flag: int, size: int = 256) -> float:
    def once() -> None:
        for blob in blobs:
            image = cv2.imdecode(blob, flag)
            side = max(image.shape)
            cv2.resize(image, (image.shape[1] * size // side, image.shape[0] * size // side), interpolation=cv2.INTER_AREA)

    once()
    t0, n = time.perf_counter(), 0
    while time.perf_counter() - t0 < 2.0 or n == 0:
        once()
        n += 1
    return (time.perf_counter() - t0) / n / len(blobs) * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "jsrt" / "images")
    p.add_argument("--n", type=int, default=20)
    args = p.parse_args()
    cv2.setNumThreads(1)
    pngs = sorted(args.images.glob("*.png"))[: args.n]
    print(f"decode + resize to 256 px, 1 thread; {platform.machine()} CPU, {os.cpu_count()} cores; "
          f"{datetime.now(timezone.utc).isoformat(timespec='minutes')}; load {os.getloadavg()[0]:.2f}; OpenCV {cv2.__version__}")
    sets = {"bundled sample JPEG 2000x2000": [np.fromfile(SAMPLE, np.uint8)]}
    for name, (w, h) in {"CheXpert-size JPEG 2320x2828": (2320, 2828), "MIMIC-size JPEG 2544x3056": (2544, 3056)}.items():
        sets[name] = [cv2.imencode(".jpg", cv2.resize(cv2.imread(str(f), 0), (w, h)), [cv2.IMWRITE_JPEG_QUALITY, 95])[1] for f in pngs]
    for name, blobs in sets.items():
        ms = {scale: _ms(blobs, flag) for scale, flag in FLAGS.items()}
        cells = [f"{scale} {t:6.1f} ms (x{ms['full'] / t:.2f})" for scale, t in ms.items() if scale != "full"]
        print(f"{name:<32} full {ms['full']:6.1f} ms | " + " | ".join(cells))
    if pngs:
        print(f"{'JSRT PNG 1024x1024 (stored)':<32} full {_ms([np.fromfile(f, np.uint8) for f in pngs], cv2.IMREAD_GRAYSCALE):6.1f} ms")


if __name__ == "__main__":
    main()
