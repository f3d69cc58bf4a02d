"""Accuracy of a model on a split of a JSRT-layout source, against its expert masks and landmarks.

This is how the model card's numbers are made: the model segments each image of the
split through the same path users run (read -> preprocess -> predict -> fill at the
image's own frame), and the masks are scored against the source's manual segmentations:

- JSRT: the SCR masks ``scr_masks/<ID>.npz`` (lungs, heart and, for a model that
  predicts them, clavicles);
- lungs-only sources (Montgomery, Shenzhen): the manual mask of both lungs
  ``masks/<ID>.png``; only lungs are scored there.

Lungs are the right and left lung together, as the reference reports.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from chexmask.anatomy import ORGAN_GROUPS, organ_slices
from chexmask.io.layout import expert_masks, find_image, load_landmarks_npz, read_split
from chexmask.io.read import read_image
from chexmask.formats.landmarks import node_uncertainty
from chexmask.preprocess import to_1024_frame
from chexmask.quality.metrics import landmark_sq_errors, mask_scores, node_rank_figures

__all__ = ["segment_split", "score_split", "score_segmentations", "node_uncertainty_ranking", "summarise", "reference_masks"]


def reference_masks(folder: Path, image_id: str) -> dict[str, np.ndarray]:
    """The expert masks of one image per organ group: ``{"lungs", "heart", "clavicles"}`` (those annotated), boolean."""
    masks = expert_masks(Path(folder), image_id)
    if "lungs" in masks:  # a lungs-only source's one mask
        return {"lungs": masks["lungs"]}
    return {g: np.logical_or.reduce([masks[o] for o in organs]) for g, organs in ORGAN_GROUPS.items() if all(o in masks for o in organs)}


def segment_split(segmenter, folder: str | Path, split: str, limit: int | None = None):
    """Segment the images of a split of a JSRT-layout folder, ``segmenter.batch_size`` at a time.

    Yields
    ------
    (image_id, XrayImage, Segmentation)
        In split order; ``limit`` keeps the first images only.
    """
    folder = Path(folder)
    ids = read_split(folder, split)[:limit]
    for start in range(0, len(ids), segmenter.batch_size):
        chunk = ids[start : start + segmenter.batch_size]
        images = [read_image(find_image(folder, i)) for i in chunk]
        yield from zip(chunk, images, segmenter.segment_images(images))


def score_split(segmenter, folder: str | Path, split: str = "test", limit: int | None = None) -> pd.DataFrame:
    """Per-image Dice, HD, HD95 per organ group and landmark MSE of a split.

    Parameters
    ----------
    segmenter : chexmask.Segmenter
        With ``clavicles=True`` the clavicles are scored too (where the source has masks).
    folder : path
        JSRT-layout folder: images/, landmarks/, splits/, and scr_masks/ or masks/.
    split : {"train", "val", "test"}
    limit : int, optional
        Only the first ``limit`` images of the split.

    Returns
    -------
    DataFrame with one row per image: ``image_id``, ``{group}_{dice,hd,hd95}`` for the
    groups the source annotates, ``landmark_mse`` (pixels^2 per node, x and y summed, in
    the image's own frame) and ``landmark_mse_heart`` where the heart is annotated.
    """
    return score_segmentations(folder, segment_split(segmenter, folder, split, limit))


def score_segmentations(folder: str | Path, segmented) -> pd.DataFrame:
    """:func:`score_split`'s table of already segmented images: ``(image_id, XrayImage, Segmentation)`` of ``folder``."""
    folder = Path(folder)
    heart = organ_slices()["heart"]
    rows = []
    for image_id, _, seg in segmented:
        masks = seg.masks()
        row = {"image_id": image_id}
        for group, ref in reference_masks(folder, image_id).items():
            if all(o in masks for o in ORGAN_GROUPS[group]):
                pred = np.logical_or.reduce([masks[o] > 0 for o in ORGAN_GROUPS[group]])
                row.update({f"{group}_{k}": v for k, v in mask_scores(pred, ref)._asdict().items()})
        expert = load_landmarks_npz(folder / "landmarks" / f"{image_id}.npz", seg.organs)
        err = landmark_sq_errors(seg.landmarks, expert)
        row["landmark_mse"] = float(np.nanmean(err[: heart.stop]))
        if np.isfinite(err[heart]).any():
            row["landmark_mse_heart"] = float(np.nanmean(err[heart]))
        if seg.uncertainty is not None:
            row["uncertainty"] = seg.uncertainty
        rows.append(row)
    return pd.DataFrame(rows)


def node_uncertainty_ranking(folder: str | Path, segmented) -> dict[str, float]:
    """How well the node uncertainty ranks the node errors against the experts' landmarks.

    The ship rule's node-level Spearman (issue 26; CheXmask-U's "uncertainty tracks node
    error"): each CheXmask node's uncertainty (:func:`chexmask.formats.landmarks.node_uncertainty`
    of the latent samples' std) against its distance to the expert's node, both in the
    1024 frame so that images of different sizes pool; organs the source does not
    annotate are left out, and so are the clavicles.

    Parameters
    ----------
    folder : path
        The JSRT-layout source of the images (its ``landmarks/``).
    segmented : iterable of (image_id, XrayImage, Segmentation)
        Segmented with latent samples (``Segmenter(uncertainty=N)``, N > 0).

    Returns
    -------
    dict
        :func:`chexmask.quality.metrics.node_rank_figures`.
    """
    folder = Path(folder)
    n = organ_slices()["heart"].stop  # the CheXmask nodes
    stds, errors = [], []
    for image_id, image, seg in segmented:
        if seg.node_std is None:
            raise ValueError(f"{image_id}: segmented without latent samples; node uncertainty needs uncertainty > 0")
        expert = load_landmarks_npz(folder / "landmarks" / f"{image_id}.npz", seg.organs)[:n]
        error = np.linalg.norm(seg.landmarks[:n] - expert, axis=1)
        stds.append(to_1024_frame(node_uncertainty(seg.node_std)[:n], image.height, image.width))
        errors.append(to_1024_frame(error, image.height, image.width))
    return node_rank_figures(stds, errors)


def summarise(per_image: pd.DataFrame) -> pd.DataFrame:
    """Mean and std of every metric column (one row per metric)."""
    numeric = per_image.drop(columns=["image_id"])
    return pd.DataFrame({"mean": numeric.mean(), "std": numeric.std(), "n": numeric.count()})
