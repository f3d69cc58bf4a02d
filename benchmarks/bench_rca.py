"""RCA speed and registration accuracy on this machine.

Usage: python benchmarks/bench_rca.py JSRT_DIR [--weights MODEL] [--n 12] [--sitk] [--threads 1]

1. Registration methods: each of ``--n`` JSRT test images is registered to its 5
   nearest train images (thumbnail embedding); the test image's *expert* masks are
   warped and scored against the reference's expert masks. The mean Dice is the
   ceiling RCA can reach for a perfect segmentation (higher = better registration).
   ``--sitk`` adds SimpleITK (affine by Mattes mutual information, then diffeomorphic
   demons) when it is installed; it is not a dependency of chexmask.
2. End to end: ``RCAScorer.score`` with k = 5 on the same images (latent and image
   embeddings), images/s, and the cost of the 657,566 images of CheXmask.

Absolute times on shared machines are noisy: compare methods within one run.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from chexmask.io.read import read_image
from chexmask.model.data import read_split
from chexmask.quality.metrics import dice
from chexmask.quality.rca import RCAScorer, build_atlas
from chexmask.quality.registration import METHODS, Warp, prepare, register, warp_mask
from chexmask.model.default import DEFAULT_MODEL

CHEXMASK_IMAGES = 657_566


def sitk_register(fixed: np.ndarray, moving: np.ndarray) -> Warp:
    """SimpleITK affine (Mattes MI, 3-level pyramid) + fast symmetric forces demons; a dense map like :func:`register`."""
    import SimpleITK as sitk

    f = sitk.GetImageFromArray(fixed.astype(np.float32))
    m = sitk.GetImageFromArray(moving.astype(np.float32))
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(0.2, seed=0)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(1.0, 1e-4, 100)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([4, 2, 1])
    reg.SetSmoothingSigmasPerLevel([2, 1, 0])
    init = sitk.CenteredTransformInitializer(f, m, sitk.AffineTransform(2), sitk.CenteredTransformInitializerFilter.GEOMETRY)
    reg.SetInitialTransform(init, inPlace=False)
    affine = reg.Execute(f, m)
    moved = sitk.Resample(m, f, affine, sitk.sitkLinear, 0.0)
    demons = sitk.FastSymmetricForcesDemonsRegistrationFilter()
    demons.SetNumberOfIterations(50)
    demons.SetStandardDeviations(2.0)
    field = demons.Execute(f, sitk.HistogramMatching(moved, f))
    total = sitk.CompositeTransform([affine, sitk.DisplacementFieldTransform(sitk.Cast(field, sitk.sitkVectorFloat64))])
    grid = sitk.TransformToDisplacementField(total, sitk.sitkVectorFloat64, f.GetSize(), f.GetOrigin(), f.GetSpacing(), f.GetDirection())
    disp = sitk.GetArrayFromImage(grid).astype(np.float32)
    ys, xs = np.mgrid[0 : fixed.shape[0], 0 : fixed.shape[1]].astype(np.float32)
    return Warp(xs + disp[..., 0], ys + disp[..., 1], np.eye(2, 3))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("jsrt_dir", type=Path)
    p.add_argument("--weights", default=DEFAULT_MODEL)
    p.add_argument("--n", type=int, default=12, help="test images")
    p.add_argument("--sitk", action="store_true", help="also time SimpleITK affine + demons")
    p.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads (1: one process per core scales best)")
    args = p.parse_args()
    import cv2
    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    from chexmask.inference.segmenter import Segmenter

    atlas = build_atlas(args.jsrt_dir)
    thumbs = RCAScorer(atlas, k=5, embedding="image")
    ids = read_split(args.jsrt_dir, "test")[: args.n]
    images = [read_image(args.jsrt_dir / "images" / f"{i}.png") for i in ids]
    truths = []
    for i in ids:
        with np.load(args.jsrt_dir / "scr_masks" / f"{i}.npz") as d:
            truths.append({k: d[k].astype(np.uint8) * 255 for k in ("right_lung", "left_lung", "heart")})

    from chexmask.preprocess import pad_resize
    from chexmask.quality.rca import _resize_mask

    methods = [*METHODS, "sitk-affine+demons"] if args.sitk else list(METHODS)
    print(f"registration onto 5 references, {atlas.size} px, {len(ids)} test images (expert masks warped):")
    for method in methods:
        dl, dh, t = [], [], 0.0
        for image, truth in zip(images, truths):
            query = pad_resize(image.pixels, atlas.size)[0]
            lungs = _resize_mask(truth["right_lung"] | truth["left_lung"], atlas.size)
            heart = _resize_mask(truth["heart"], atlas.size)
            moving = prepare(query)
            for r in thumbs.references(query):
                start = time.perf_counter()
                if method.startswith("sitk"):
                    warp = sitk_register(prepare(atlas.images[r]), moving)
                else:
                    warp = register(prepare(atlas.images[r]), moving, method, prepared=True)
                t += time.perf_counter() - start
                dl.append(dice(warp_mask(lungs, warp), atlas.lungs[r]))
                dh.append(dice(warp_mask(heart, warp), atlas.heart[r]))
        print(f"  {method:20s} lungs {np.mean(dl):.3f}  heart {np.mean(dh):.3f}  {1000 * t / len(dl):6.1f} ms/pair", flush=True)

    seg = Segmenter(args.weights)
    for embedding in ("latent", "image"):
        scorer = RCAScorer(atlas, k=5, segmenter=seg, embedding=embedding)
        scorer.score(images[0], truths[0])  # warm-up: prepares references, loads kernels
        start = time.perf_counter()
        for image, truth in zip(images, truths):
            scorer.score(image, truth)
        ips = len(images) / (time.perf_counter() - start)
        hours = CHEXMASK_IMAGES / ips / 3600
        print(f"RCA k=5, {embedding:6s} embedding: {ips:5.2f} images/s per process ({args.threads} thread) -> 657k images: {hours:5.1f} process-hours")


if __name__ == "__main__":
    main()
