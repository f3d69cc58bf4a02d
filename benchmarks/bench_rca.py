"""RCA registration accuracy, its failures, and speed on this machine.

Usage: python benchmarks/bench_rca.py [--split val] [--n 21] [--weights MODEL] [--sitk]
       [--figure docs/figures/rca_registration.png] [--threads 1]

1. Registration: each of ``--n`` JSRT ``--split`` images is registered onto its 5
   references (latent embedding, JSRT train atlas); the query's *expert* masks are warped
   and scored against the reference's expert masks (right lung, left lung, heart). That
   Dice is the ceiling RCA reaches for a perfect segmentation, and a pair far below it is
   a failed registration. The default is compared with the registration of earlier
   versions (CLAHE only, ECC up to 256 px, DIS medium preset), ``--methods all`` adds
   the other methods.
   ``--sitk`` adds SimpleITK (affine by Mattes mutual information, then diffeomorphic
   demons) when it is installed; it is not a dependency of chexmask.
2. ``--figure``: why the mean over references was noisier than the max (failed pairs,
   their NCC, a washed-out film before and after normalisation).
3. Speed: ``RCAScorer.score`` with k = 5 on the same images' model masks (multi-source
   atlas; latent supplied as the segment pipeline does, recomputed, or thumbnails),
   images/s per process and the cost of the 657,566 images of CheXmask. The load average
   is printed with it: absolute times on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from chexmask.io.read import read_image
from chexmask.io.layout import read_split
from chexmask.model.default import DEFAULT_MODEL
from chexmask.preprocess import pad_resize
from chexmask.quality.atlas import ORGANS, latent_mean, open_atlas, resize_mask
from chexmask.quality.metrics import dice
from chexmask.quality.rca import MIN_NCC, RCAScorer
from chexmask.quality.registration import METHODS, Warp, prepare, register, warp_mask

CHEXMASK_IMAGES = 657_566
_NOW, _BEFORE = "affine+dis", "affine+dis before issue 16"
SHARED = Path(os.environ.get("CHEXMASK_SHARED", Path(__file__).resolve().parents[2] / "shared"))


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


def legacy_register(fixed: np.ndarray, moving: np.ndarray) -> Warp:
    """The registration of chexmask before issue 16: CLAHE only, ECC at 64/128/256 px, DIS medium preset."""
    import cv2

    from chexmask.quality.registration import _affine_grid, _ncc, register_affine

    fixed, moving = prepare(fixed, stretch=False), prepare(moving, stretch=False)
    affine = register_affine(fixed, moving, levels=3, finest=fixed.shape[0])
    moved = cv2.warpAffine(moving, affine, fixed.shape[::-1], flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    flow = cv2.GaussianBlur(cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(fixed, moved, None), (0, 0), fixed.shape[0] / 64)
    map_x, map_y = _affine_grid(affine, fixed.shape, flow)
    return Warp(map_x, map_y, affine, _ncc(fixed, cv2.remap(moving, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)))


def registration_pairs(atlas, scorer, queries, methods: dict) -> pd.DataFrame:
    """Expert masks of each query warped onto its references: one row per (query, reference, method)."""
    rows = []
    for image_id, image, truth, latent in queries:
        query = pad_resize(image.pixels, atlas.size)[0]
        working = [resize_mask(truth[o], atlas.size) for o in ORGANS]
        spread = np.subtract(*np.percentile(query, (99, 1)))
        for rank, r in enumerate(scorer.references(query, latent)):
            for method, run in methods.items():
                start = time.perf_counter()
                warp = run(atlas.images[r], query)
                ms = 1000 * (time.perf_counter() - start)
                d = [dice(warp_mask(m, warp), atlas.masks[r, o]) for o, m in enumerate(working)]
                ref_spread = np.subtract(*np.percentile(atlas.images[r], (99, 1)))
                rows.append({"query": image_id, "reference": atlas.ids[r], "rank": rank, "method": method,
                             "right_lung": d[0], "left_lung": d[1], "heart": d[2], "mean3": float(np.mean(d)), "ncc": warp.ncc,
                             "ms": ms, "min_spread": float(min(spread, ref_spread))})
    return pd.DataFrame(rows)


def plot_failures(pairs: pd.DataFrame, atlas, path: Path) -> None:
    """The figure of docs/rca.md: failed pairs, per-image mean vs max, NCC, and a washed-out film."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = pairs.pivot_table(index=["query", "reference"], columns="method", values=["mean3", "ncc", "min_spread"])
    before, now = d["mean3"][_BEFORE], d["mean3"][_NOW]
    washed = d["min_spread"][_BEFORE] < 60
    fig, ax = plt.subplots(1, 4, figsize=(16, 4))
    ax[0].scatter(before[~washed], now[~washed], s=9, alpha=0.6, label="both films with contrast")
    ax[0].scatter(before[washed], now[washed], s=14, c="C3", label="a washed-out film (1-99 % range < 60)")
    ax[0].plot([0, 1], [0, 1], "k--", lw=0.7)
    ax[0].set(xlabel="Dice of warped expert masks, before", ylabel="... now (percentile stretch, cheaper ECC + DIS)",
              title=f"{len(before)} query-reference pairs", xlim=(-0.02, 1), ylim=(-0.02, 1))
    ax[0].legend(fontsize=7, loc="lower right")
    per_image = before.groupby(level="query").agg(["mean", "max"]).sort_values("mean")
    per_now = now.groupby(level="query").agg(["mean", "max"]).loc[per_image.index]
    x = np.arange(len(per_image))
    ax[1].plot(x, per_image["max"], "^", c="C1", ms=4, label="max of 5, before")
    ax[1].plot(x, per_image["mean"], "o", c="C3", ms=4, label="mean of 5, before")
    ax[1].plot(x, per_now["mean"], "o", c="C0", ms=4, mfc="none", label="mean of 5, now")
    ax[1].set(xlabel="query image (sorted by mean before)", ylabel="RCA of the expert masks (truth = 1)",
              title="one failed pair drags the mean, not the max", ylim=(0, 1))
    ax[1].legend(fontsize=7, loc="lower right")
    ax[2].scatter(d["ncc"][_BEFORE], before, s=9, alpha=0.6, c="C3", label="before")
    ax[2].scatter(d["ncc"][_NOW], now, s=9, alpha=0.6, c="C0", label="now")
    ax[2].axvline(MIN_NCC, color="grey", ls=":", lw=0.8)
    ax[2].set(xlabel="NCC of the registration (Warp.ncc)", ylabel="Dice of warped expert masks", title=f"failures have a low NCC (< {MIN_NCC}: left out)")
    ax[2].legend(fontsize=7)
    spread = [np.subtract(*np.percentile(im, (99, 1))) for im in atlas.images]
    i = int(np.argmin(spread))
    ax[3].imshow(np.hstack([prepare(atlas.images[i], False), prepare(atlas.images[i])]), cmap="gray", vmin=0, vmax=255)
    ax[3].set(title=f"{atlas.ids[i]}: CLAHE only | stretch + CLAHE", xticks=[], yticks=[])
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=SHARED / "data", help="folder holding jsrt/, montgomery/, shenzhen/")
    p.add_argument("--weights", default=DEFAULT_MODEL)
    p.add_argument("--split", default="val", help="query images (JSRT split)")
    p.add_argument("--n", type=int, default=21, help="query images")
    p.add_argument("--speed-n", type=int, default=21, help="images timed end to end")
    p.add_argument("--methods", default="default", choices=("default", "all"), help="all: every registration method")
    p.add_argument("--sitk", action="store_true", help="also time SimpleITK affine + demons")
    p.add_argument("--figure", type=Path, help="write the failure-analysis figure here")
    p.add_argument("--pairs", type=Path, help="write the per-pair registration table (CSV) here")
    p.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads (1: one process per core scales best)")
    args = p.parse_args()
    import cv2
    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    from chexmask.inference.segmenter import Segmenter

    seg = Segmenter(args.weights, uncertainty=0)
    jsrt = args.data / "jsrt"
    atlas = open_atlas(jsrt, seg, progress=True)
    scorer = RCAScorer(atlas, k=5, segmenter=seg)
    queries = []
    for image_id in read_split(jsrt, args.split)[: max(args.n, args.speed_n)]:
        image = read_image(jsrt / "images" / f"{image_id}.png")
        with np.load(jsrt / "scr_masks" / f"{image_id}.npz") as d:
            queries.append((image_id, image, {o: d[o] for o in ORGANS}, latent_mean(seg, image.pixels)))

    methods = {_NOW: lambda f, m: register(f, m, "affine+dis"), _BEFORE: legacy_register}
    if args.methods == "all":
        methods.update({m: (lambda f, m, _m=m: register(f, m, _m)) for m in METHODS if m != "affine+dis"})
    if args.sitk:
        methods["sitk-affine+demons"] = lambda f, m: sitk_register(prepare(f), prepare(m))
    pairs = registration_pairs(atlas, scorer, queries[: args.n], methods)
    print(f"registration onto 5 references, {atlas.size} px, {args.n} JSRT {args.split} images (expert masks warped):")
    summary = pairs.groupby("method").agg(
        right_lung=("right_lung", "mean"), left_lung=("left_lung", "mean"), heart=("heart", "mean"), mean3=("mean3", "mean"),
        failed=("mean3", lambda v: int((v < 0.5).sum())), low_ncc=("ncc", lambda v: int((v < MIN_NCC).sum())), ms_per_pair=("ms", "mean"))
    print(summary.round(3).to_string(), flush=True)
    if args.pairs:
        pairs.to_csv(args.pairs, index=False, float_format="%.4f")
    if args.figure:
        plot_failures(pairs, atlas, args.figure)

    multi = open_atlas([args.data / s for s in ("jsrt", "montgomery", "shenzhen")], seg, progress=True)
    timed = queries[: args.speed_n]
    predictions = [seg.segment(image) for _, image, _, _ in timed]
    print(f"end to end, k=5, multi-source atlas ({len(multi)} references), {len(timed)} JSRT images (1024 px), "
          f"{args.threads} thread, load average {os.getloadavg()[0]:.1f} at start:")
    for label, embedding, reuse in (("latent from the pipeline", "latent", True), ("latent recomputed", "latent", False), ("thumbnails", "image", False)):
        s = RCAScorer(multi, k=5, segmenter=seg, embedding=embedding)
        s.score(timed[0][1], predictions[0].masks(), latent=predictions[0].latent_mu)  # warm-up
        start = time.perf_counter()
        for (_, image, _, _), pred in zip(timed, predictions):
            s.score(image, pred.masks(), latent=pred.latent_mu if reuse else None)
        ips = len(timed) / (time.perf_counter() - start)
        hours = CHEXMASK_IMAGES / ips / 3600
        print(f"  {label:26s} {ips:5.1f} images/s per process -> 657,566 images: {hours:5.1f} process-hours", flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
