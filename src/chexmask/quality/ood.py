"""Out-of-distribution experiment: which uncertainty score separates OOD inputs?

In-distribution images (e.g. the JSRT test split) and out-of-distribution sets
(:mod:`chexmask.quality.ood_sets`) are segmented with latent sampling, each image gets
the scores of :mod:`chexmask.quality.ood_scoring`, and every score's AUROC is computed
per OOD set and over all of them; :func:`write_ood_report` writes the report.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from chexmask._errors import ChexmaskError
from chexmask.io.read import XrayImage
from chexmask.model.default import DEFAULT_MODEL
from chexmask.quality.metrics import auroc
from chexmask.quality.ood_scoring import SCORES, fit_reference, ood_scores
from chexmask.quality.ood_sets import non_chest_images, synthetic_ood

__all__ = [
    "OODResult",
    "run_ood",
    "write_ood_report",
    "ood_experiment",
]

log = logging.getLogger(__name__)


@dataclass
class OODResult:
    """``scores``: one row per image with its ``set`` (``"in"`` or an OOD set name) and
    :data:`~chexmask.quality.ood_scoring.SCORES`; ``aurocs``: one row per score, one
    column per OOD set plus ``all``."""

    scores: pd.DataFrame
    aurocs: pd.DataFrame


def run_ood(
    in_images: Sequence[XrayImage],
    ood_sets: Mapping[str, Sequence[XrayImage]],
    segmenter,
    reference_images: Sequence[XrayImage] | None = None,
) -> OODResult:
    """Score in-distribution and OOD images and compute the AUROC of every score.

    Parameters
    ----------
    in_images : sequence of XrayImage
    ood_sets : mapping of set name to sequence of XrayImage
    segmenter : chexmask.Segmenter
        With ``uncertainty >= 2`` for the predictive score.
    reference_images : sequence of XrayImage, optional
        In-distribution images NOT in `in_images` (the training split) for the
        Mahalanobis and shape scores; segmented without sampling.

    Raises
    ------
    ChexmaskError
        If `in_images` or every OOD set is empty.
    """
    import copy

    if not in_images:
        raise ChexmaskError("the OOD experiment needs in-distribution images")
    if not any(len(v) for v in ood_sets.values()):
        raise ChexmaskError("the OOD experiment needs at least one out-of-distribution image")
    reference = None
    if reference_images:
        deterministic = copy.copy(segmenter)  # shares the model; no sampling needed for mu and sigma
        deterministic.uncertainty = 0
        reference = fit_reference(deterministic.segment_images(list(reference_images)))
    frames = [ood_scores(segmenter.segment_images(list(in_images)), reference).assign(set="in")]
    for name, images in ood_sets.items():
        if images:
            frames.append(ood_scores(segmenter.segment_images(list(images)), reference).assign(set=name))
            log.info("OOD set %s: %d images", name, len(images))
    scores = pd.concat(frames, ignore_index=True)
    inside = scores[scores["set"] == "in"]
    outside = scores[scores["set"] != "in"]
    table = {name: {s: auroc(inside[s], g[s]) for s in SCORES} for name, g in outside.groupby("set", sort=False)}
    table["all"] = {s: auroc(inside[s], outside[s]) for s in SCORES}
    return OODResult(scores, pd.DataFrame(table).rename_axis("score").reset_index())


def _roc(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ok = np.isfinite(scores)
    scores, positive = scores[ok], positive[ok]
    order = np.argsort(-scores, kind="stable")
    tp = np.concatenate([[0], np.cumsum(positive[order])])
    fp = np.concatenate([[0], np.cumsum(~positive[order])])
    return fp / max(fp[-1], 1), tp / max(tp[-1], 1)


def _figure(result: OODResult, path: Path) -> Path:
    from matplotlib.figure import Figure

    sets = list(dict.fromkeys(result.scores["set"]))
    fig = Figure(figsize=(15, 6.5), layout="constrained")
    axes = fig.subplots(2, 4).ravel()
    axes[len(SCORES)].set_visible(False)
    is_out = (result.scores["set"] != "in").to_numpy()
    for score in SCORES:
        fpr, tpr = _roc(result.scores[score].to_numpy(float), is_out)
        axes[-1].plot(fpr, tpr, label=score)
    axes[-1].plot([0, 1], [0, 1], "k:", lw=0.8)
    axes[-1].set(xlabel="false positive rate (in-distribution)", ylabel="true positive rate (OOD)", title="ROC, all OOD sets")
    axes[-1].legend(fontsize=7)
    for ax, score in zip(axes, SCORES):
        data = [result.scores.loc[result.scores["set"] == s, score].dropna() for s in sets]
        ax.boxplot(data, showfliers=False)
        for i, d in enumerate(data):
            ax.scatter(np.full(len(d), i + 1) + np.random.default_rng(i).uniform(-0.15, 0.15, len(d)), d, s=6, alpha=0.6)
        ax.set_xticks(range(1, len(sets) + 1), sets, rotation=45, fontsize=8)
        ax.set_yscale("log")
        ax.set_title(f"{score} (AUROC all {float(result.aurocs.set_index('score').loc[score, 'all']):.2f})", fontsize=9)
    fig.savefig(path, dpi=80)
    return path


def write_ood_report(result: OODResult, out_dir: str | os.PathLike[str], meta: dict | None = None) -> Path:
    """Write ``scores.csv``, ``auroc.csv``, ``auroc.json``, ``summary.md`` and ``ood_scores.png``.

    ``summary.md`` also gives the fraction of each set the Quality Flag sends to review.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result.scores.to_csv(out / "scores.csv", index=False, float_format="%.5f")
    result.aurocs.to_csv(out / "auroc.csv", index=False, float_format="%.4f")
    figure = _figure(result, out / "ood_scores.png")
    scores = result.scores
    (out / "auroc.json").write_text(json.dumps({**(meta or {}), "auroc": result.aurocs.set_index("score").to_dict()}, indent=2))
    counts = scores.groupby("set", sort=False).agg(n=("image_id", "size"), flagged=("flagged", "mean"),
                                                   predictive_px=("predictive_px", "median"), dice_shortfall=("dice_shortfall", "median"))
    lines = ["# Out-of-distribution experiment", ""] + [f"- {k}: {v}" for k, v in (meta or {}).items()]
    lines += ["", "AUROC (OOD = positive; higher score = more OOD):", "", "```",
              result.aurocs.to_string(index=False, float_format=lambda v: f"{v:.3f}"), "```", "",
              "Images per set; fraction the Quality Flag sends to review (Estimated Dice under its thresholds); "
              "median predictive uncertainty (px) and median 1 - min(Estimated Dice):",
              "", "```", counts.to_string(float_format=lambda v: f"{v:.2f}"), "```", "", f"![ood scores]({figure.name})"]
    path = out / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _reference_paths(source: Path) -> list[Path]:
    from chexmask.io.discover import find_images
    from chexmask.io.layout import read_split

    if (source / "splits" / "train.txt").is_file():  # JSRT layout: the training split only
        return [source / "images" / f"{i}.png" for i in read_split(source, "train")]
    return find_images(source)


def ood_experiment(
    in_inputs: Sequence[str | os.PathLike[str]],
    out_inputs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    weights: str = DEFAULT_MODEL,
    split: str | None = None,
    limit: int | None = None,
    synthetic: bool = True,
    non_chest: bool = True,
    max_synthetic: int = 20,
    reference: str | os.PathLike[str] | None = None,
    samples: int = 20,
    seed: int = 0,
    device: str = "auto",
    batch_size: int = 8,
    save_images: bool = False,
) -> OODResult:
    """The ``chexmask experiment ood`` command: read, generate, score, write the report.

    Parameters
    ----------
    in_inputs, out_inputs : sequence of path
        In-distribution and OOD images: files, folders or path lists. `out_inputs`
        may be empty when synthetic or non-chest sets are made. JSRT-layout folders
        with `split`: see :func:`chexmask.quality.experiment_inputs.resolve_images`.
    out_dir : path
        Report folder.
    split : str, optional
        Split of JSRT-layout in-distribution inputs to use.
    limit : int, optional
        Use the first `limit` in-distribution images only.
    synthetic : bool, optional
        Make :data:`~chexmask.quality.ood_sets.TRANSFORMS` sets from the first `max_synthetic`
        in-distribution images.
    non_chest : bool, optional
        Add :func:`~chexmask.quality.ood_sets.non_chest_images`.
    reference : path, optional
        Training images for the Mahalanobis and shape scores: a JSRT-layout folder
        (its train split is used) or any folder/list of images.
    samples, seed, device, batch_size
        See :class:`chexmask.Segmenter`.
    save_images : bool, optional
        Also write every generated OOD image to ``out_dir/images/<set>/`` as PNG.

    Raises
    ------
    ChexmaskError
        On unreadable inputs or no OOD images.
    ValueError
        With fewer than 2 samples.
    """
    import cv2

    from chexmask.inference.segmenter import Segmenter
    from chexmask.io.read import read_image
    from chexmask.quality.experiment_inputs import resolve_images

    if samples < 2:
        raise ValueError(f"--uncertainty must be >= 2 to estimate a spread, got {samples}")
    in_images = [read_image(p) for p in resolve_images(in_inputs, split, limit)]
    sets: dict[str, list[XrayImage]] = {}
    if out_inputs:
        sets["given"] = [read_image(p) for p in resolve_images(out_inputs)]
    if synthetic:
        sets.update(synthetic_ood(in_images[:max_synthetic], seed=seed))
    if non_chest:
        sets.update(non_chest_images())
    ref_images = None
    if reference is not None:
        ref_paths = _reference_paths(Path(reference))
        if not ref_paths:
            raise ChexmaskError(f"--reference {reference}: no images found")
        ref_images = [read_image(p) for p in ref_paths]
    segmenter = Segmenter(weights, device=device, uncertainty=samples, seed=seed, batch_size=batch_size)
    result = run_ood(in_images, sets, segmenter, ref_images)
    info = getattr(segmenter, "info", {}) or {}
    meta = {"weights": str(weights), "weights_sha256": info.get("sha256", ""), "samples": samples, "seed": seed,
            "in_images": len(in_images), "reference_images": 0 if ref_images is None else len(ref_images),
            "ood_sets": {k: len(v) for k, v in sets.items()}}
    write_ood_report(result, out_dir, meta)
    if save_images:
        for name, images in sets.items():
            folder = Path(out_dir) / "images" / name
            folder.mkdir(parents=True, exist_ok=True)
            for img in images:
                cv2.imwrite(str(folder / f"{img.image_id.split('/')[-1]}.png"), img.pixels)
    return result
