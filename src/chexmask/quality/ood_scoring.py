"""The OOD scores of a segmentation and their AUROC: which uncertainty separates OOD inputs?

Each image gets these scores (higher = more suspicious; the direction is fixed in
advance, so an AUROC below 0.5 means the score moves the wrong way):

- ``latent_sigma``: mean of the encoder's posterior std over the latent dimensions;
- ``predictive_px``: mean node std of the decoded samples (1024 frame), CheXmask-U's
  image-level uncertainty;
- ``mahalanobis_mu``: Mahalanobis distance of the posterior mean from the Gaussian
  fitted to reference (training) images' posterior means;
- ``mahalanobis_logsigma``: the same for the log posterior std vector;
- ``shape``: Mahalanobis distance of the predicted landmarks (in units of the image's
  longer side) from the reference images' predicted landmarks;
- ``dice_shortfall``: ``1 - min(Estimated Dice Lungs, Estimated Dice Heart)``, the shipped
  quality estimate (:mod:`chexmask.estimate`) the Quality Flag rests on.

The reference Gaussians use a covariance shrunk towards its mean variance (there are
fewer reference images than landmark coordinates). AUROC is the probability that an
OOD image scores higher than an in-distribution one (ties count half).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from chexmask._errors import ChexmaskError
from chexmask.preprocess import to_1024_frame

__all__ = ["SCORES", "Reference", "fit_reference", "ood_scores"]

#: The scores, in the order of their columns (higher = more suspicious).
SCORES = ("latent_sigma", "predictive_px", "mahalanobis_mu", "mahalanobis_logsigma", "shape", "dice_shortfall")



@dataclass
class Reference:
    """Gaussians of in-distribution latents and shapes (means and precision matrices)."""

    mu_mean: np.ndarray
    mu_precision: np.ndarray
    logsigma_mean: np.ndarray
    logsigma_precision: np.ndarray
    shape_mean: np.ndarray
    shape_precision: np.ndarray
    n: int


def _gaussian(x: np.ndarray, shrink: float) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(0)
    cov = np.cov(x, rowvar=False) if len(x) > 1 else np.zeros((x.shape[1], x.shape[1]))
    target = max(float(np.trace(cov)) / cov.shape[0], 1e-12)
    cov = (1 - shrink) * cov + shrink * target * np.eye(cov.shape[0])
    return mean, np.linalg.inv(cov)


def _shape_vector(seg) -> np.ndarray:
    return (np.asarray(seg.landmarks, np.float64) / max(seg.height, seg.width)).ravel()


def fit_reference(segmentations: Sequence, shrink: float = 0.1) -> Reference:
    """Fit the reference Gaussians to in-distribution (training) segmentations.

    Raises
    ------
    ChexmaskError
        With fewer than 2 segmentations.
    """
    if len(segmentations) < 2:
        raise ChexmaskError(f"the OOD reference needs at least 2 images, got {len(segmentations)}")
    mu = np.stack([s.latent_mu for s in segmentations]).astype(np.float64)
    ls = np.log(np.stack([s.latent_sigma for s in segmentations]).astype(np.float64))
    shapes = np.stack([_shape_vector(s) for s in segmentations])
    return Reference(*_gaussian(mu, shrink), *_gaussian(ls, shrink), *_gaussian(shapes, shrink), n=len(segmentations))


def _mahalanobis(x: np.ndarray, mean: np.ndarray, precision: np.ndarray) -> float:
    d = x - mean
    return float(np.sqrt(max(d @ precision @ d, 0.0)))


def ood_scores(segmentations: Sequence, reference: Reference | None = None) -> pd.DataFrame:
    """One row of :data:`SCORES` per segmentation (``image_id`` first, then the scores, then ``flagged``: the
    Quality Flag says review); Mahalanobis scores NaN without a reference."""
    rows = []
    for s in segmentations:
        row = {"image_id": s.image_id, "latent_sigma": float(np.mean(s.latent_sigma)),
               "predictive_px": np.nan if s.uncertainty is None else to_1024_frame(s.uncertainty, s.height, s.width)}
        if reference is None:
            row.update(mahalanobis_mu=np.nan, mahalanobis_logsigma=np.nan, shape=np.nan)
        else:
            row["mahalanobis_mu"] = _mahalanobis(np.asarray(s.latent_mu, np.float64), reference.mu_mean, reference.mu_precision)
            row["mahalanobis_logsigma"] = _mahalanobis(np.log(np.asarray(s.latent_sigma, np.float64)),
                                                       reference.logsigma_mean, reference.logsigma_precision)
            row["shape"] = _mahalanobis(_shape_vector(s), reference.shape_mean, reference.shape_precision)
        estimate = s.quality_estimate()
        row["dice_shortfall"] = 1.0 - min(estimate.dice.values())
        row["flagged"] = estimate.flag().flag == "review"
        rows.append(row)
    return pd.DataFrame(rows, columns=["image_id", *SCORES, "flagged"])
