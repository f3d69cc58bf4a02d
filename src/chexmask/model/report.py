"""Accuracy of a model on a JSRT split, against the SCR expert masks and landmarks.

This is how the model card's numbers are made: the model segments each image of the
split through the same path users run (read -> preprocess -> predict -> fill at the
original 1024 frame), and the masks are scored against the SCR manual
segmentations; lungs are the right and left lung together, as the reference reports.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from chexmask.io.read import read_image
from chexmask.model.data import load_landmarks_npz, read_split
from chexmask.quality.metrics import landmark_sq_errors, mask_scores

__all__ = ["score_split", "summarise"]


def score_split(segmenter, jsrt_dir: str | Path, split: str = "test") -> pd.DataFrame:
    """Per-image Dice, HD, HD95 (lungs, heart) and landmark MSE of a JSRT split.

    Parameters
    ----------
    segmenter : chexmask.Segmenter
    jsrt_dir : path
        Folder with images/, landmarks/, scr_masks/ and splits/.
    split : {"train", "val", "test"}

    Returns
    -------
    DataFrame with one row per image: ``image_id``, ``{lungs,heart}_{dice,hd,hd95}``,
    ``landmark_mse`` (pixels^2 per node, x and y summed) and ``landmark_mse_heart``.
    """
    jsrt_dir = Path(jsrt_dir)
    ids = read_split(jsrt_dir, split)
    rows = []
    for start in range(0, len(ids), segmenter.batch_size):
        chunk = [read_image(jsrt_dir / "images" / f"{i}.png") for i in ids[start : start + segmenter.batch_size]]
        for seg in segmenter.segment_images(chunk):
            masks = seg.masks()
            with np.load(jsrt_dir / "scr_masks" / f"{seg.image_id}.npz") as ref:
                ref_lungs, ref_heart = ref["right_lung"] | ref["left_lung"], ref["heart"]
            lungs = mask_scores((masks["right_lung"] > 0) | (masks["left_lung"] > 0), ref_lungs)
            heart = mask_scores(masks["heart"] > 0, ref_heart)
            err = landmark_sq_errors(seg.landmarks, load_landmarks_npz(jsrt_dir / "landmarks" / f"{seg.image_id}.npz"))
            row = {"image_id": seg.image_id}
            row.update({f"lungs_{k}": v for k, v in lungs._asdict().items()})
            row.update({f"heart_{k}": v for k, v in heart._asdict().items()})
            row.update(landmark_mse=float(np.nanmean(err)), landmark_mse_heart=float(np.nanmean(err[94:])))
            if seg.uncertainty is not None:
                row["uncertainty"] = seg.uncertainty
            rows.append(row)
    return pd.DataFrame(rows)


def summarise(per_image: pd.DataFrame) -> pd.DataFrame:
    """Mean and std of every metric column (one row per metric)."""
    numeric = per_image.drop(columns=["image_id"])
    return pd.DataFrame({"mean": numeric.mean(), "std": numeric.std(), "n": numeric.count()})
