"""A benchmark of real model failures: predictions on images the model never saw, scored against experts.

The quality estimate (:mod:`chexmask.estimate`) is learnt and validated on real errors,
not on synthetic perturbations of expert masks. :func:`build_benchmark` makes them from
the JSRT-layout sources, never from a split the model trained on:

- ``hybridgnet-jsrt-256`` (trained on JSRT train only) on Montgomery and Shenzhen
  train + val, clean and under one realistic shift each (cycled through
  :data:`~chexmask.quality.realistic_shifts.SHIFTS`), and on JSRT val clean and under
  every shift: other hospitals' films, where it fails often;
- the model given (the default) on the val splits of every source, clean and under every
  shift.

Every row is one segmentation, in the shifted image's frame, with its true Dice (lungs =
both lungs; heart where the source annotates it) against the experts' masks, each
written (whole-pixel) node's distance to the expert's corresponding node, and what the product computes per
image (landmarks, per-node spread of the latent samples, the latent posterior), from
which :mod:`chexmask.quality.estimator_fit` derives the features. Images larger than
:data:`MAX_SIDE` are first downsized (area averaging), which changes nothing the model
sees at 256 px and keeps the mask scoring fast.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from chexmask.anatomy import N_NODES, ORGANS
from chexmask.io.layout import find_image, load_landmarks_npz, read_split
from chexmask.io.read import read_image
from chexmask.model.report import reference_masks
from chexmask.quality.metrics import dice
from chexmask.quality.realistic_shifts import SHIFTS, Shifted, apply_shift

__all__ = ["MAX_SIDE", "FAILURE_CUTS", "benchmark_plan", "build_benchmark", "failed"]

log = logging.getLogger(__name__)

#: Images are downsized to at most this many pixels a side before shifting and scoring.
MAX_SIDE = 1600
#: A row fails when an organ's true Dice is below its cut (the issue's definition).
FAILURE_CUTS = {"lungs": 0.90, "heart": 0.80}
_OTHER_MODEL = "hybridgnet-jsrt-256"


def failed(frame: pd.DataFrame) -> pd.Series:
    """True where lungs Dice < 0.90 or heart Dice < 0.80 (NaN heart counts as not failed)."""
    return (frame["dice_lungs"] < FAILURE_CUTS["lungs"]) | (frame["dice_heart"] < FAILURE_CUTS["heart"])


def benchmark_plan(sources: dict[str, Path], model: str, other_model: bool = True) -> list[tuple[str, str, str, str, str]]:
    """The rows to make: ``(model, source, split, image_id, shift)``; ``shift`` is ``"clean"`` or a :data:`SHIFTS` name.

    ``other_model=False`` leaves out ``hybridgnet-jsrt-256``'s rows (the given model's val rows only).
    """
    plan = []
    for name, folder in sources.items():
        for split in ("train", "val"):
            if name == "jsrt" and split == "train":
                continue  # both models trained on it
            for k, image_id in enumerate(read_split(folder, split)):
                if other_model:
                    plan.append((_OTHER_MODEL, name, split, image_id, "clean"))
                    if split == "val" or name == "jsrt":
                        plan += [(_OTHER_MODEL, name, split, image_id, s) for s in SHIFTS]
                    else:
                        plan.append((_OTHER_MODEL, name, split, image_id, SHIFTS[k % len(SHIFTS)]))
                if split == "val" and model != _OTHER_MODEL:
                    plan += [(model, name, split, image_id, s) for s in ("clean", *SHIFTS)]
    return plan


def _load(folder: Path, image_id: str) -> Shifted:
    pixels = read_image(find_image(folder, image_id)).pixels
    masks = reference_masks(folder, image_id)
    masks.pop("clavicles", None)
    points = load_landmarks_npz(folder / "landmarks" / f"{image_id}.npz", ORGANS)
    scale = MAX_SIDE / max(pixels.shape)
    if scale < 1:
        size = (round(pixels.shape[1] * scale), round(pixels.shape[0] * scale))
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
        masks = {k: cv2.resize(m.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0 for k, m in masks.items()}
        points = (points + 0.5) * scale - 0.5
    return Shifted(pixels, masks, points)


def _row(seg, truth: Shifted) -> dict:
    masks = seg.masks()
    row = {"height": seg.height, "width": seg.width,
           "dice_lungs": dice((masks["right_lung"] > 0) | (masks["left_lung"] > 0), truth.masks["lungs"]),
           "dice_heart": dice(masks["heart"] > 0, truth.masks["heart"]) if "heart" in truth.masks else np.nan}
    err = np.sqrt(((seg.landmarks_int[:N_NODES] - truth.landmarks) ** 2).sum(-1))
    row["node_error"] = err.astype(np.float32)
    row["node_std"] = seg.node_uncertainty[:N_NODES].astype(np.float32)
    row["landmarks"] = seg.landmarks[:N_NODES].reshape(-1).astype(np.float32)
    row["latent_sigma"] = float(np.mean(seg.latent_sigma))
    row["weak_lung_edges"] = seg.weak_lung_edges
    return row


def build_benchmark(sources: dict[str, str | Path], model: str, uncertainty: int = 50, limit: int | None = None,
                    progress: bool = True, other_model: bool = True) -> pd.DataFrame:
    """Segment and score every row of :func:`benchmark_plan` (``limit``: the first rows per model, for a quick look).

    Parameters
    ----------
    sources : dict of name -> folder
        JSRT-layout folders, e.g. ``{"jsrt": ..., "montgomery": ..., "shenzhen": ...}``.
    model : str
        The model benchmarked on the val splits (the default; a shipped name or a weights file).
    uncertainty : int
        Latent samples per image (the product's default, 50).
    other_model : bool
        Also run ``hybridgnet-jsrt-256`` on the other hospitals (False: ``model``'s val rows only).

    Returns
    -------
    DataFrame, one row per segmentation: ``model, source, split, image_id, shift, height,
    width, dice_lungs, dice_heart, node_error, node_std, landmarks, latent_sigma, weak_lung_edges`` (the
    arrays over the 120 nodes, original pixels of the shifted image; ``node_error`` NaN
    where the expert did not annotate the organ).
    """
    from tqdm.auto import tqdm

    from chexmask.inference.segmenter import Segmenter

    folders = {k: Path(v) for k, v in sources.items()}
    plan = pd.DataFrame(benchmark_plan(folders, model, other_model), columns=["model", "source", "split", "image_id", "shift"])
    if limit:
        plan = plan.groupby("model", sort=False).head(limit)
    rows = []
    for name, group in plan.groupby("model", sort=False):
        segmenter = Segmenter(name, uncertainty=uncertainty)
        rows.extend(tqdm(_segment(segmenter, folders, group), total=len(group), disable=not progress, desc=name))
    return pd.DataFrame(rows)


def _segment(segmenter, folders: dict[str, Path], plan: pd.DataFrame) -> Iterator[dict]:
    cache: tuple[tuple[str, str], Shifted] | None = None
    for k, (model, source, split, image_id, shift) in enumerate(plan.itertuples(index=False)):
        if cache is None or cache[0] != (source, image_id):
            cache = ((source, image_id), _load(folders[source], image_id))
        truth = cache[1] if shift == "clean" else apply_shift(shift, cache[1], sign=1 if k % 2 else -1)
        seg = segmenter.segment(truth.pixels, image_id=f"{image_id}:{shift}")
        yield {"model": model, "source": source, "split": split, "image_id": image_id, "shift": shift, **_row(seg, truth)}
