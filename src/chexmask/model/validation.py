"""Validation during training: per source, the score ``chexmask validate`` reports.

Every val image keeps its geometry and its expert masks at the original size (packed
bits). After an epoch the predicted nodes (z = mu) go back to the original frame, are
rounded to whole pixels and filled there (:func:`chexmask.masks.fill.landmarks_to_masks`),
as a segmentation's masks are, and compared with the expert masks by Dice
(:func:`chexmask.quality.metrics.dice`): the numbers of ``chexmask validate`` on the same
split, up to the backend (OpenVINO there, torch here; they agree within 2e-5 px).
Folder sources compare with their expert masks (``scr_masks/`` or ``masks/``); table
sources with the masks of their rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from chexmask.anatomy import ORGAN_GROUPS, organ_slices
from chexmask.masks.fill import landmarks_to_masks
from chexmask.preprocess import Geometry, to_original
from chexmask.quality.metrics import dice, landmark_sq_errors

__all__ = ["Reference", "pack_groups", "predict_points", "landmark_mse", "validation_scores", "selection_score"]


@dataclass(frozen=True)
class Reference:
    """What a val image is scored against: its frame and its expert masks per organ group (packed bits)."""

    geometry: Geometry
    groups: dict[str, np.ndarray]

    def mask(self, group: str) -> np.ndarray:
        """The expert mask of ``group`` at the original size, boolean."""
        g = self.geometry
        return np.unpackbits(self.groups[group], count=g.height * g.width).reshape(g.height, g.width).astype(bool)


def pack_groups(masks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``{group: bool (H, W)}`` as packed bits (8 pixels a byte: a 3000-px mask holds 1 MB)."""
    return {g: np.packbits(np.asarray(m, bool).ravel()) for g, m in masks.items()}


@torch.no_grad()
def predict_points(model, images: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """Deterministic (z = mu) node positions, normalised, for ``(N, S, S)`` uint8 images."""
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = torch.from_numpy(images[i : i + batch_size]).float().div_(255.0)[:, None]
        out.append(model(x).points.numpy())
    return np.concatenate(out)


def landmark_mse(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean squared landmark error in pixels^2 of the 1024 frame, over annotated nodes.

    Both arrays are normalised to [0, 1]; NaN targets are ignored.
    """
    pred, target = (np.asarray(a, np.float64).reshape(-1, 2) * 1024.0 for a in (pred, target))
    return float(np.nanmean(landmark_sq_errors(pred, target)))


def _image_dice(points: np.ndarray, ref: Reference, organs: tuple[str, ...]) -> dict[str, float]:
    """Dice per organ group of one image's predicted nodes (normalised) against its expert masks."""
    g = ref.geometry
    original = np.rint(to_original(points * g.size, g)).astype(np.int64)
    masks = landmarks_to_masks(original, g.height, g.width)
    out = {}
    for group, members in ORGAN_GROUPS.items():
        if group in ref.groups and all(o in masks for o in members) and all(o in organs for o in members):
            out[group] = dice(np.logical_or.reduce([masks[o] > 0 for o in members]), ref.mask(group))
    return out


def validation_scores(pred: np.ndarray, data, organs: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Per-source validation: landmark MSE (px^2, 1024 frame) and mean Dice per organ group.

    ``data`` is a :class:`chexmask.model.data.LandmarkDataset` with ``references``. Each
    source also gets ``score``: the mean of its lungs and heart Dice (those annotated).
    """
    slices = organ_slices(organs=organs)
    heart = slices["heart"]
    out = {}
    for name in data.source_names():
        idx = [i for i, s in enumerate(data.sources) if s == name]
        row = {"mse_px2": landmark_mse(pred[idx], data.targets[idx])}
        per_image = [_image_dice(pred[i], data.references[i], organs) for i in idx
                     if np.isfinite(data.targets[i][: heart.stop]).any()]
        for group in ORGAN_GROUPS:
            scores = [d[group] for d in per_image if group in d]
            if scores:
                row[f"{group}_dice"] = float(np.mean(scores))
        row["score"] = float(np.mean([row[k] for k in ("lungs_dice", "heart_dice") if k in row]))
        out[name] = row
    return out


def selection_score(per_source: dict[str, dict[str, float]]) -> float:
    """The model-selection criterion: the mean of the sources' scores (higher is better)."""
    return float(np.mean([row["score"] for row in per_source.values()]))
