"""Validate RCA: does the estimate track the true Dice on held-out images with masks of varied quality?

One command, rerun whenever the model or the method changes (a few minutes on a CPU)::

    python benchmarks/validate_rca.py --split val --weights hybridgnet-jsrt-256 --out OUT/
    python benchmarks/validate_rca.py --split test --source jsrt --atlas jsrt --atlas multi --out OUT/

Held-out images come from ``--split`` of each ``--source`` (JSRT: right lung, left lung
and heart against the SCR masks; Montgomery and Shenzhen: the two lungs against their
filled expert landmarks; those two sources have no test split here). Each image gets
several mask sets:

- the expert masks (true Dice 1) and the model's prediction (``--weights``);
- ``--variants`` perturbed copies of the expert masks, cycling through erosion/dilation
  (up to 80 px at 1024), shift (150 px), rotation (40 degrees), scaling (40 %), a smooth
  elastic deformation (displacements up to about 100 px), a milder mix of these with each
  organ perturbed independently, and "other": another patient's expert masks (a
  plausible shape in the wrong place). Strengths are drawn from ``--seed``.

Lungs-only sources keep the model's heart in every set (RCA needs one) and are scored on
the lungs. The true Dice is computed in the original frame: for JSRT the mean over the
three organs (what ``Dice RCA (Mean)`` estimates), for lungs-only sources the mean of the
two lungs (``Dice RCA Lungs (Mean)``). Each ``--atlas`` (``jsrt``: JSRT train;
``multi``: JSRT, Montgomery and Shenzhen train) and ``--config`` (``EMBEDDING:METHOD``)
scores the same masks; atlases come from the cache (:func:`chexmask.quality.atlas.open_atlas`).

Writes ``rca_validation_<split>.csv`` (per mask), ``.json`` (Pearson r, bias, MAE,
precision and recall of "true Dice < 0.7" flagged by "RCA < 0.7", per source, atlas and
config) and ``.png`` (scatter plots) to ``--out``.

A benchmark script, not a CLI command: it needs expert masks of held-out images, which
users do not have for their own data. Select and tune on ``val``; report ``test`` once.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from chexmask.inference.segmenter import Segmenter
from chexmask.io.read import read_image
from chexmask.io.layout import find_image, read_split
from chexmask.model.default import DEFAULT_MODEL
from chexmask.quality.atlas import open_atlas
from chexmask.quality.metrics import dice
from chexmask.quality.rca import MIN_NCC, RCAScorer

ORGANS = ("right_lung", "left_lung", "heart")
KINDS = ("erode_dilate", "shift", "rotate", "scale", "elastic", "mix", "other")
SOURCES = ("jsrt", "montgomery", "shenzhen")
ATLASES = {"jsrt": ("jsrt",), "multi": SOURCES}
SHARED = Path(os.environ.get("CHEXMASK_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def _affine(mask: np.ndarray, m: np.ndarray) -> np.ndarray:
    h, w = mask.shape
    return cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_NEAREST, borderValue=0)


def _centroid(mask: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    return float(xs.mean()), float(ys.mean())


def perturb(masks: dict[str, np.ndarray], kind: str, rng: np.random.Generator, others: list[dict]) -> dict[str, np.ndarray]:
    """One perturbed copy of ``{organ: (H, W) uint8 0/255}`` masks (strengths in 1024-px pixels).

    ``others``: expert masks of other images, for ``kind="other"`` (resized to this image).
    """
    h, w = next(iter(masks.values())).shape
    scale = max(h, w) / 1024
    if kind == "other":
        other = others[int(rng.integers(len(others)))]
        return {o: cv2.resize(other[o], (w, h), interpolation=cv2.INTER_NEAREST) for o in masks}
    if kind == "elastic":
        amp = rng.uniform(10, 100) * scale
        grid = rng.normal(0, amp, (2, 5, 5)).astype(np.float32)
        dx, dy = (cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC) for g in grid)
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        out = {o: cv2.remap(m, xs + dx, ys + dy, cv2.INTER_NEAREST, borderValue=0) for o, m in masks.items()}
        return {o: m if m.any() else masks[o] for o, m in out.items()}
    out = {}
    for organ, m in masks.items():
        k = rng.choice(KINDS[:4]) if kind == "mix" else kind
        mild = (0.5 if kind == "mix" else 1.0) * scale
        cx, cy = _centroid(m)
        if k == "erode_dilate":
            r = int(round(rng.uniform(-80, 80) * mild))
            ker = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(r) + 1, 2 * abs(r) + 1))
            m = cv2.dilate(m, ker) if r > 0 else cv2.erode(m, ker)
        elif k == "shift":
            m = _affine(m, np.float32([[1, 0, rng.uniform(-150, 150) * mild], [0, 1, rng.uniform(-150, 150) * mild]]))
        elif k == "rotate":
            m = _affine(m, cv2.getRotationMatrix2D((cx, cy), rng.uniform(-40, 40) * mild / scale, 1.0))
        elif k == "scale":
            m = _affine(m, cv2.getRotationMatrix2D((cx, cy), 0.0, 1 + rng.uniform(-0.4, 0.4) * mild / scale))
        if not m.any():  # a perturbation that erased the organ: keep a sliver so RCA can score it
            m = masks[organ].copy()
            m[: int(cy)] = 0
        out[organ] = m
    return out


def expert_masks(folder: Path, image_id: str, height: int, width: int) -> dict[str, np.ndarray]:
    """Truth as uint8 0/255: SCR masks (JSRT) or the filled expert landmarks (lungs only)."""
    scr = folder / "scr_masks" / f"{image_id}.npz"
    if scr.is_file():
        with np.load(scr) as d:
            return {o: d[o].astype(np.uint8) * 255 for o in ORGANS}
    from chexmask.masks.fill import landmarks_to_masks
    from chexmask.io.layout import load_landmarks_npz

    masks = landmarks_to_masks(load_landmarks_npz(folder / "landmarks" / f"{image_id}.npz"), height, width)
    return {o: masks[o] for o in ORGANS[:2]}


def score_source(name: str, folder: Path, split: str, args, seg: Segmenter, scorers: dict, rng: np.random.Generator) -> tuple[list[dict], dict]:
    """Per-mask rows of one source and the seconds each scorer spent."""
    ids = read_split(folder, split)[: args.limit]
    images = {i: read_image(find_image(folder, i)) for i in ids}
    experts = {i: expert_masks(folder, i, im.height, im.width) for i, im in images.items()}
    rows, seconds = [], dict.fromkeys(scorers, 0.0)
    for image_id in ids:
        image, truth = images[image_id], experts[image_id]
        organs = list(truth)
        others = [m for i, m in experts.items() if i != image_id]
        pred = seg.segment(image)
        model = pred.masks()
        sets = [("expert", truth), ("model", {o: model[o] for o in organs})]
        sets += [(KINDS[v % len(KINDS)], perturb(truth, KINDS[v % len(KINDS)], rng, others)) for v in range(args.variants)]
        base = []
        for variant, m in sets:
            row = {"source": name, "image_id": image_id, "variant": variant}
            row.update({f"true_{o}": dice(m[o] > 0, truth[o] > 0) for o in organs})
            row["true_lungs"] = (row["true_right_lung"] + row["true_left_lung"]) / 2
            row["true"] = float(np.mean([row[f"true_{o}"] for o in organs]))
            base.append(row)
        full = [{**{o: model[o] for o in ORGANS}, **m} for _, m in sets]  # lungs-only: the model's heart
        for key, scorer in scorers.items():
            t = time.perf_counter()
            results = scorer.score_many(image, full, latent=pred.latent_mu)
            seconds[key] += time.perf_counter() - t
            for row, r in zip(base, results):
                row.update({f"{key} mean": r.mean, f"{key} max": r.max, f"{key} lungs mean": r.per_organ["lungs"]["mean"],
                            f"{key} lungs max": r.per_organ["lungs"]["max"], f"{key} heart mean": r.per_organ["heart"]["mean"],
                            f"{key} rejected": int(np.isnan(r.dice[:, 0]).sum())})
        rows += base
        print(f"{name} {image_id}: true {base[1]['true']:.3f} (model)", flush=True)
    return rows, seconds


def summarise(df: pd.DataFrame, key: str, seconds: float) -> dict:
    """Pearson r, bias, MAE and the 0.7 threshold's precision/recall for one scorer on one source."""
    lungs_only = df["true_heart"].isna().all() if "true_heart" in df else True
    pairs = {"mean": ("true", f"{key} lungs mean" if lungs_only else f"{key} mean"),
             "max": ("true", f"{key} lungs max" if lungs_only else f"{key} max"),
             "lungs_mean": ("true_lungs", f"{key} lungs mean"), "lungs_max": ("true_lungs", f"{key} lungs max")}
    if not lungs_only:
        pairs["heart_mean"] = ("true_heart", f"{key} heart mean")
    s = {"n_images": int(df.image_id.nunique()), "n_masks": len(df), "scored_as": "lungs" if lungs_only else "mean of 3 organs",
         "true_dice_range": [round(float(df.true.min()), 3), round(float(df.true.max()), 3)],
         "seconds_per_image_all_masks": round(seconds / df.image_id.nunique(), 3),
         "rejected_registrations_per_mask": round(float(df[f"{key} rejected"].mean()), 3)}
    for stat, (truth, est) in pairs.items():
        s[f"pearson_{stat}"] = round(float(np.corrcoef(df[truth], df[est])[0, 1]), 4)
    for stat in ("mean", "max"):
        truth, est = pairs[stat]
        s[f"bias_{stat}"] = round(float((df[est] - df[truth]).mean()), 4)
        s[f"mae_{stat}"] = round(float((df[est] - df[truth]).abs().mean()), 4)
    bad, flagged = df.true < 0.7, df[pairs["mean"][1]] < 0.7
    s["threshold_0.7"] = {"true_below": int(bad.sum()), "flagged": int(flagged.sum()),
                          "precision": round(float((bad & flagged).sum() / max(flagged.sum(), 1)), 4),
                          "recall": round(float((bad & flagged).sum() / max(bad.sum(), 1)), 4)}
    return s


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--split", default="val", choices=("train", "val", "test"))
    p.add_argument("--weights", default=DEFAULT_MODEL)
    p.add_argument("--data", type=Path, default=SHARED / "data", help="folder holding jsrt/, montgomery/, shenzhen/")
    p.add_argument("--source", action="append", choices=SOURCES, help="held-out images (repeatable) [default: jsrt; all three for val]")
    p.add_argument("--atlas", action="append", choices=sorted(ATLASES), help="references (repeatable) [default: multi]")
    p.add_argument("--config", action="append", help="EMBEDDING:METHOD (repeatable) [default: latent:affine+dis]")
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--min-ncc", type=float, default=MIN_NCC, help="registrations below this are left out (-1: keep all)")
    p.add_argument("--variants", type=int, default=14, help="perturbed mask sets per image")
    p.add_argument("--limit", type=int, default=None, help="first N images of each source only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("."))
    p.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads (1: as production runs one process per core)")
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    sources = args.source or (list(SOURCES) if args.split == "val" else ["jsrt"])
    seg = Segmenter(args.weights, uncertainty=0, batch_size=1)
    scorers = {}
    for name in args.atlas or ["multi"]:
        t0 = time.perf_counter()
        atlas = open_atlas([args.data / s for s in ATLASES[name]], seg, progress=True)
        print(f"atlas {name}: {len(atlas)} references in {time.perf_counter() - t0:.1f} s", flush=True)
        for config in args.config or ["latent:affine+dis"]:
            scorers[f"{name}|{config}"] = RCAScorer(atlas, args.k, seg, *config.split(":"), min_ncc=args.min_ncc)
    rng = np.random.default_rng(args.seed)
    rows, summary = [], {"split": args.split, "k": args.k, "min_ncc": args.min_ncc, "variants": args.variants, "seed": args.seed,
                         "weights": args.weights, "weights_sha256": seg.info["sha256"][:12], "threads": args.threads, "results": {}}
    for name in sources:
        got, seconds = score_source(name, args.data / name, args.split, args, seg, scorers, rng)
        df = pd.DataFrame(got)
        rows.append(df)
        summary["results"][name] = {key: summarise(df, key, seconds[key]) for key in scorers}
        print(name, json.dumps(summary["results"][name], indent=1), flush=True)
    df = pd.concat(rows, ignore_index=True)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"rca_validation_{args.split}"
    df.to_csv(stem.with_suffix(".csv"), index=False, float_format="%.4f")
    stem.with_suffix(".json").write_text(json.dumps(summary, indent=1) + "\n")
    plot(df, next(iter(scorers)), stem.with_suffix(".png"), args.split)


def plot(df: pd.DataFrame, key: str, path: Path, split: str) -> None:
    """RCA mean and max against the true Dice, one panel per source and statistic."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sources = list(dict.fromkeys(df.source))
    fig, axes = plt.subplots(2, len(sources), figsize=(3.6 * len(sources), 6.6), squeeze=False, sharex=True, sharey=True)
    for col, source in enumerate(sources):
        d = df[df.source == source]
        lungs_only = d["true_heart"].isna().all() if "true_heart" in d else True
        for row, stat in enumerate(("mean", "max")):
            ax, est = axes[row, col], d[f"{key} lungs {stat}" if lungs_only else f"{key} {stat}"]
            for name, group in d.groupby(d.variant.where(d.variant.isin(["expert", "model"]), "perturbed")):
                ax.scatter(group.true, est[group.index], s=6, alpha=0.6, label=name)
            r = np.corrcoef(d.true, est)[0, 1]
            ax.plot([0, 1], [0, 1], "k--", lw=0.8)
            ax.axhline(0.7, color="grey", lw=0.6, ls=":")
            ax.axvline(0.7, color="grey", lw=0.6, ls=":")
            what = "lungs" if lungs_only else "3 organs"
            ax.set(xlim=(0.2, 1.02), ylim=(0.2, 1.02), title=f"{source} ({what}), RCA {stat}: r = {r:.3f}")
            if row == 1:
                ax.set_xlabel("true Dice")
        axes[0, col].legend(loc="upper left", fontsize=7) if col == 0 else None
    axes[0, 0].set_ylabel("RCA mean")
    axes[1, 0].set_ylabel("RCA max")
    fig.suptitle(f"RCA on the {split} split ({key}; {len(df)} masks)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


if __name__ == "__main__":
    main()
