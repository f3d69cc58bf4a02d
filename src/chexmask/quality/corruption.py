"""Corruption experiment: does predictive uncertainty rise with corruption and track error?

Each image is segmented clean and under every
:class:`~chexmask.quality.image_corruptions.Corruption` (Gaussian noise of several
strengths, black occluding blocks of several sizes and positions). Per node and per
image the experiment records the predictive uncertainty (CheXmask-U std over latent
samples) and, where reference landmarks exist, the landmark error; it then summarises
per corruption level and reports Spearman correlations between uncertainty and error.

Lengths are pixels of a 1024 frame (``* 1024 / max(H, W)``) so images of every size
pool. A corrupted copy keeps its image id, so its latent samples use the same noise
as the clean image (paired comparison).

References
----------
Gaggion et al., "CheXmask-U": node-level uncertainty for landmark-based segmentation.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from chexmask._errors import ChexmaskError, InputError
from chexmask.anatomy import ORGANS, organ_slices
from chexmask.io.read import XrayImage
from chexmask.model.default import DEFAULT_MODEL
from chexmask.preprocess import to_1024_frame
from chexmask.quality.experiment_inputs import resolve_images
from chexmask.quality.image_corruptions import (
    KINDS,
    Corruption,
    default_corruptions,
)

__all__ = [
    "CorruptionResult",
    "run_corruption",
    "corruption_experiment",
]

log = logging.getLogger(__name__)


@dataclass
class CorruptionResult:
    """Tables of a corruption experiment.

    Attributes
    ----------
    per_node : DataFrame
        One row per image, corruption and node: ``image_id, corruption, kind, level,
        position, node, organ, uncertainty_px, std_x_px, std_y_px, error_px``.
    per_image : DataFrame
        One row per image and corruption: the mean node ``uncertainty_px``, per organ
        ``uncertainty_<organ>``, ``latent_sigma`` (mean), ``error_px`` (mean Euclidean
        node error), ``mse_px2`` and per organ ``error_<organ>``.
    summary : DataFrame
        Means of ``per_image`` per corruption (in experiment order).
    correlations : dict
        Spearman rho and p-values, see :func:`_correlations`.
    meta : dict
        How the run was made (weights, samples, images, seed), for the report's header;
        empty from :func:`run_corruption`, filled by :func:`corruption_experiment`.
    """

    per_node: pd.DataFrame
    per_image: pd.DataFrame
    summary: pd.DataFrame
    correlations: dict
    meta: dict = field(default_factory=dict)


def run_corruption(
    images: Sequence[XrayImage],
    segmenter,
    *,
    landmarks: Mapping[str, np.ndarray] | None = None,
    corruptions: Sequence[Corruption] | None = None,
    seed: int = 0,
) -> CorruptionResult:
    """Segment every image under every corruption and tabulate uncertainty and error.

    Parameters
    ----------
    images : sequence of XrayImage
        Images with distinct ids.
    segmenter : chexmask.Segmenter
        Must sample (``uncertainty >= 2``).
    landmarks : mapping of str to (120, 2) ndarray, optional
        Reference landmarks (x, y) in each image's original frame, by image id; error
        columns are NaN for images without one.
    corruptions : sequence of Corruption, optional
        Default: :func:`~chexmask.quality.image_corruptions.default_corruptions`.
    seed : int, optional
        Seed of the noise (each image and corruption get their own stream).

    Returns
    -------
    CorruptionResult

    Raises
    ------
    ChexmaskError
        If there are no images or the segmenter does not sample.
    """
    if not images:
        raise ChexmaskError("the corruption experiment needs at least one image")
    if getattr(segmenter, "uncertainty", 0) < 2:
        raise ChexmaskError("the corruption experiment needs uncertainty sampling: use --uncertainty 2 or more")
    corruptions = list(corruptions or default_corruptions())
    landmarks = landmarks or {}
    node_rows, image_rows = [], []
    slices = organ_slices()
    for ci, corruption in enumerate(corruptions):
        batch = [
            img.with_pixels(corruption.apply(img.pixels, np.random.default_rng([seed, ci, i])))
            for i, img in enumerate(images)
        ]
        for img, seg in zip(batch, segmenter.segment_images(batch)):
            node_u = to_1024_frame(seg.node_uncertainty, img.height, img.width)
            ref = landmarks.get(img.image_id)
            err = (np.full(len(node_u), np.nan) if ref is None
                   else to_1024_frame(np.sqrt(((seg.landmarks - ref) ** 2).sum(-1)), img.height, img.width))
            tags = {"image_id": img.image_id, "corruption": corruption.name, "kind": corruption.kind,
                    "level": corruption.level, "position": corruption.position or ""}
            organ = np.empty(len(node_u), object)
            for name, part in slices.items():
                organ[part] = name
            node_rows.append(pd.DataFrame({
                **tags, "node": np.arange(len(node_u)), "organ": organ, "uncertainty_px": node_u,
                "std_x_px": to_1024_frame(seg.node_std[:, 0], img.height, img.width),
                "std_y_px": to_1024_frame(seg.node_std[:, 1], img.height, img.width), "error_px": err,
            }))
            row = {**tags, "uncertainty_px": float(node_u.mean()), "latent_sigma": float(seg.latent_sigma.mean())}
            row.update({f"uncertainty_{o}": float(node_u[slices[o]].mean()) for o in ORGANS})
            row["error_px"] = float(np.nanmean(err)) if ref is not None else np.nan
            row["mse_px2"] = float(np.nanmean(err**2)) if ref is not None else np.nan
            row.update({f"error_{o}": float(np.nanmean(err[slices[o]])) if ref is not None else np.nan for o in ORGANS})
            image_rows.append(row)
        log.info("corruption %s: %d images", corruption.name, len(batch))
    per_node = pd.concat(node_rows, ignore_index=True)
    per_image = pd.DataFrame(image_rows)
    order = {c.name: i for i, c in enumerate(corruptions)}
    numeric = per_image.drop(columns=["image_id", "position"]).groupby(["corruption", "kind", "level"], sort=False)
    summary = numeric.mean().reset_index()
    summary.insert(3, "n_images", numeric.size().to_numpy())
    summary = summary.sort_values("corruption", key=lambda s: s.map(order)).reset_index(drop=True)
    return CorruptionResult(per_node, per_image, summary, _correlations(per_image, per_node))


def _spearman(x: pd.Series, y: pd.Series) -> dict:
    ok = np.isfinite(x.to_numpy(float)) & np.isfinite(y.to_numpy(float))
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return {"rho": None, "p": None, "n": int(ok.sum())}
    rho, p = spearmanr(x[ok], y[ok])
    return {"rho": float(rho), "p": float(p), "n": int(ok.sum())}


def _correlations(per_image: pd.DataFrame, per_node: pd.DataFrame) -> dict:
    """Spearman rho of uncertainty vs landmark error.

    ``per_image``: over image x corruption rows (all, and by kind); ``per_node_pooled``:
    over every node of every row; ``per_node_by_index``: for each of the 120 nodes
    across rows, summarised by median and quartiles; ``per_node_within_image``: for
    each row across its 120 nodes (does the model know WHICH nodes are off?), median.
    """
    out = {"per_image": {"all": _spearman(per_image["uncertainty_px"], per_image["error_px"])}}
    for kind in KINDS:
        sel = per_image[per_image["kind"] == kind]
        out["per_image"][kind] = _spearman(sel["uncertainty_px"], sel["error_px"])
    out["per_image_latent_sigma"] = _spearman(per_image["latent_sigma"], per_image["error_px"])
    out["per_node_pooled"] = _spearman(per_node["uncertainty_px"], per_node["error_px"])
    for key, by in (("per_node_by_index", "node"), ("per_node_within_image", ["image_id", "corruption"])):
        rhos = np.array([r for r in (_spearman(g["uncertainty_px"], g["error_px"])["rho"]
                                     for _, g in per_node.groupby(by, sort=False)) if r is not None])
        out[key] = ({"median": float(np.median(rhos)), "q25": float(np.quantile(rhos, 0.25)),
                     "q75": float(np.quantile(rhos, 0.75)), "n": int(rhos.size)} if rhos.size else {"median": None, "n": 0})
    return out


def corruption_experiment(
    images: Sequence[str | os.PathLike[str]],
    *,
    weights: str = DEFAULT_MODEL,
    landmarks_dir: str | os.PathLike[str] | None = None,
    split: str | None = None,
    limit: int | None = None,
    samples: int = 20,
    corruptions: Sequence[Corruption] | None = None,
    seed: int = 0,
    device: str = "auto",
    batch_size: int = 8,
) -> CorruptionResult:
    """The ``chexmask experiment corruption`` command's run: read the inputs, segment, tabulate.

    :func:`chexmask.reports.uncertainty_report.write_corruption_report` writes the report.

    Parameters
    ----------
    images : sequence of path
        Image files, folders or path lists, or JSRT-layout folders with `split` (see
        :func:`chexmask.quality.experiment_inputs.resolve_images`).
    weights : str, optional
        Shipped model name or ``.safetensors`` file.
    landmarks_dir : path, optional
        Folder of ``<image id>.npz`` reference landmarks in the JSRT layout
        (``RL``, ``LL``, ``H`` arrays, original frame). Default with `split`: the
        JSRT-layout input's ``landmarks/``.
    split : str, optional
        Split of JSRT-layout inputs to use.
    limit : int, optional
        Use the first `limit` images only.
    samples : int, optional
        Latent samples per image.
    corruptions, seed, device, batch_size
        See :func:`run_corruption` and :class:`chexmask.Segmenter`.

    Returns
    -------
    CorruptionResult
        With ``meta``.

    Raises
    ------
    InputError
        On unreadable inputs or a missing landmark folder.
    ValueError
        With fewer than 2 samples.
    """
    from chexmask.inference.segmenter import Segmenter
    from chexmask.io.layout import load_landmarks_npz
    from chexmask.io.read import read_image

    if samples < 2:
        raise ValueError(f"--uncertainty must be >= 2 to estimate a spread, got {samples}")
    read = [read_image(p) for p in resolve_images(images, split, limit)]
    if landmarks_dir is None and split is not None:  # a JSRT-layout input brings its landmarks
        landmarks_dir = next((Path(i) / "landmarks" for i in images if (Path(i) / "landmarks").is_dir()), None)
    refs: dict[str, np.ndarray] = {}
    if landmarks_dir is not None:
        folder = Path(landmarks_dir)
        if not folder.is_dir():
            raise InputError(f"--landmarks {folder}", "not a folder")
        for img in read:
            npz = folder / f"{img.image_id}.npz"
            if npz.is_file():
                refs[img.image_id] = load_landmarks_npz(npz)
            else:
                log.warning("no reference landmarks %s: error is NaN for this image", npz)
    segmenter = Segmenter(weights, device=device, uncertainty=samples, seed=seed, batch_size=batch_size)
    result = run_corruption(read, segmenter, landmarks=refs, corruptions=corruptions, seed=seed)
    info = getattr(segmenter, "info", {}) or {}
    meta = {"weights": str(weights), "weights_sha256": info.get("sha256", ""), "samples": samples,
            "images": len(read), "with_landmarks": len(refs), "seed": seed}
    return replace(result, meta=meta)
