"""Validate RCA: does the estimate track the true Dice on held-out images with masks of varied quality?

Reproduces the reference system's check (CheXmask: Pearson r 0.94 for RCA mean, 0.93 for
max). On the JSRT test split (never in the atlas, which is built from the train split),
each image gets several mask sets:

- the expert SCR masks (true Dice 1);
- the model's prediction (``--weights``);
- ``--variants`` perturbed copies of the expert masks, cycling through erosion/dilation
  (up to 80 px at 1024), shift (150 px), rotation (40 degrees), scaling (40 %), a smooth
  elastic deformation (displacements up to about 100 px), a milder mix of these with each
  organ perturbed independently, and "other": another test patient's expert masks (a
  plausible shape in the wrong place). Strengths are drawn from ``--seed``.

True Dice is computed against the SCR masks in the original 1024-px frame (lungs =
right | left; overall = mean of lungs and heart); RCA runs as users run it. Every
``--config`` (``EMBEDDING:METHOD``) is scored on the same masks. Writes per-mask rows
(``rca_validation.csv``), a summary (``rca_validation.json``) and a scatter plot
(``rca_validation.png``) to ``--out``.

Usage::

    python benchmarks/validate_rca.py /path/to/jsrt --weights MODEL --out docs/ \\
        --config latent:affine+dis --config image:affine+dis --config latent:affine

A benchmark script, not a CLI command: it needs the JSRT test split with expert masks,
which users do not have for their own data, and it is run to choose and document the
method, not in production.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from chexmask.inference.segmenter import Segmenter
from chexmask.io.read import read_image
from chexmask.model.data import read_split
from chexmask.quality.metrics import dice
from chexmask.quality.rca import RCAScorer, build_atlas
from chexmask.model.default import DEFAULT_MODEL

ORGANS = ("right_lung", "left_lung", "heart")
KINDS = ("erode_dilate", "shift", "rotate", "scale", "elastic", "mix", "other")


def _affine(mask: np.ndarray, m: np.ndarray) -> np.ndarray:
    h, w = mask.shape
    return cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_NEAREST, borderValue=0)


def _centroid(mask: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    return float(xs.mean()), float(ys.mean())


def perturb(masks: dict[str, np.ndarray], kind: str, rng: np.random.Generator, others: list[dict]) -> dict[str, np.ndarray]:
    """One perturbed copy of ``{organ: (H, W) uint8 0/255}`` masks (strengths in 1024-px pixels).

    ``others``: expert masks of other images of the same size, for ``kind="other"``.
    """
    h, w = masks["heart"].shape
    out = {}
    if kind == "other":
        return others[int(rng.integers(len(others)))]
    if kind == "elastic":
        amp = rng.uniform(10, 100)
        grid = rng.normal(0, amp, (2, 5, 5)).astype(np.float32)
        dx, dy = (cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC) for g in grid)
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        return {o: cv2.remap(m, xs + dx, ys + dy, cv2.INTER_NEAREST, borderValue=0) for o, m in masks.items()}
    for organ, m in masks.items():
        k = rng.choice(KINDS[:4]) if kind == "mix" else kind
        mild = 0.5 if kind == "mix" else 1.0
        cx, cy = _centroid(m)
        if k == "erode_dilate":
            r = int(round(rng.uniform(-80, 80) * mild))
            ker = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(r) + 1, 2 * abs(r) + 1))
            m = cv2.dilate(m, ker) if r > 0 else cv2.erode(m, ker)
        elif k == "shift":
            m = _affine(m, np.float32([[1, 0, rng.uniform(-150, 150) * mild], [0, 1, rng.uniform(-150, 150) * mild]]))
        elif k == "rotate":
            m = _affine(m, cv2.getRotationMatrix2D((cx, cy), rng.uniform(-40, 40) * mild, 1.0))
        elif k == "scale":
            m = _affine(m, cv2.getRotationMatrix2D((cx, cy), 0.0, 1 + rng.uniform(-0.4, 0.4) * mild))
        if not m.any():  # a perturbation that erased the organ: keep a sliver so RCA can score it
            m = masks[organ].copy()
            m[: int(cy)] = 0
        out[organ] = m
    return out


def true_dice(masks: dict[str, np.ndarray], truth: dict[str, np.ndarray]) -> tuple[float, float]:
    lungs = dice(np.logical_or(masks["right_lung"], masks["left_lung"]), np.logical_or(truth["right_lung"], truth["left_lung"]))
    return lungs, dice(masks["heart"], truth["heart"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("jsrt_dir", type=Path)
    p.add_argument("--weights", default=DEFAULT_MODEL)
    p.add_argument("--config", action="append", help="EMBEDDING:METHOD (repeatable); default latent:affine+dis")
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--variants", type=int, default=14, help="perturbed mask sets per image")
    p.add_argument("--limit", type=int, default=None, help="first N test images only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("."))
    p.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads (1: as production runs one process per core)")
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    configs = args.config or ["latent:affine+dis"]
    rng = np.random.default_rng(args.seed)
    seg = Segmenter(args.weights, batch_size=1)
    t0 = time.perf_counter()
    atlas = build_atlas(args.jsrt_dir, seg, split="train")
    print(f"atlas: {len(atlas)} references at {atlas.size} px in {time.perf_counter() - t0:.0f} s", flush=True)
    scorers = {c: RCAScorer(atlas, args.k, seg, *c.split(":")) for c in configs}

    rows, seconds = [], dict.fromkeys(configs, 0.0)
    test_ids = read_split(args.jsrt_dir, "test")[: args.limit]
    experts = {}
    for image_id in test_ids:
        with np.load(args.jsrt_dir / "scr_masks" / f"{image_id}.npz") as d:
            experts[image_id] = {o: d[o].astype(np.uint8) * 255 for o in ORGANS}
    for image_id in test_ids:
        image = read_image(args.jsrt_dir / "images" / f"{image_id}.png")
        truth = experts[image_id]
        others = [m for i, m in experts.items() if i != image_id and m["heart"].shape == truth["heart"].shape]
        pred = seg.segment(image)
        sets = [("expert", truth), ("model", pred.masks())]
        sets += [(KINDS[i % len(KINDS)], perturb(truth, KINDS[i % len(KINDS)], rng, others)) for i in range(args.variants)]
        base = [{"image_id": image_id, "variant": name, "true_lungs": tl, "true_heart": th, "true": (tl + th) / 2}
                for name, m in sets for tl, th in [true_dice(m, truth)]]
        for c, scorer in scorers.items():
            t = time.perf_counter()
            results = scorer.score_many(image, [m for _, m in sets], latent=pred.latent_mu)
            seconds[c] += time.perf_counter() - t
            for row, r in zip(base, results):
                row.update({f"{c} mean": r.mean, f"{c} max": r.max,
                            f"{c} lungs mean": r.per_organ["lungs"]["mean"], f"{c} heart mean": r.per_organ["heart"]["mean"]})
        rows += base
        print(f"{image_id}: true {base[1]['true']:.3f} (model)", flush=True)
    df = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out / "rca_validation.csv", index=False, float_format="%.4f")

    summary = {"n_images": int(df.image_id.nunique()), "n_masks": len(df), "k": args.k, "weights": seg.info["sha256"][:12], "threads": args.threads,
               "true_dice_range": [float(df.true.min()), float(df.true.max())], "configs": {}}
    for c in configs:
        s = {"seconds_per_image_all_masks": seconds[c] / df.image_id.nunique()}
        for stat in ("mean", "max"):
            est = df[f"{c} {stat}"]
            s[f"pearson_{stat}"] = float(np.corrcoef(df.true, est)[0, 1])
            s[f"bias_{stat}"] = float((est - df.true).mean())
            s[f"mae_{stat}"] = float((est - df.true).abs().mean())
        for organ in ("lungs", "heart"):
            s[f"pearson_{organ}_mean"] = float(np.corrcoef(df[f"true_{organ}"], df[f"{c} {organ} mean"])[0, 1])
        bad, flagged = df.true < 0.7, df[f"{c} mean"] < 0.7
        s["threshold_0.7_mean"] = {"sensitivity": float((bad & flagged).sum() / max(bad.sum(), 1)),
                                   "specificity": float((~bad & ~flagged).sum() / max((~bad).sum(), 1))}
        summary["configs"][c] = s
        print(c, json.dumps(s, indent=1), flush=True)
    (args.out / "rca_validation.json").write_text(json.dumps(summary, indent=1))
    plot(df, configs[0], args.out / "rca_validation.png")


def plot(df: pd.DataFrame, config: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.3), sharey=True)
    for ax, stat in zip(axes, ("mean", "max")):
        est = df[f"{config} {stat}"]
        for name, group in df.groupby(df.variant.where(df.variant.isin(["expert", "model"]), "perturbed")):
            ax.scatter(group.true, est[group.index], s=7, alpha=0.6, label=name)
        r = np.corrcoef(df.true, est)[0, 1]
        ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        ax.axhline(0.7, color="grey", lw=0.6, ls=":")
        ax.set(xlim=(0, 1.02), ylim=(0, 1.02), xlabel="true Dice (vs SCR)", title=f"RCA {stat}: r = {r:.3f}")
    axes[0].set_ylabel("RCA estimate")
    axes[0].legend(loc="upper left", fontsize=8)
    fig.suptitle(f"RCA on the JSRT test split ({df.image_id.nunique()} images, {len(df)} masks; {config})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


if __name__ == "__main__":
    main()
