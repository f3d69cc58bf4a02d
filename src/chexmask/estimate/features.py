"""What the product can compute per image to judge its own segmentation, without ground truth.

:func:`image_features` turns one result (landmarks, per-node spread of the latent
samples, the image size, the edge evidence at its lung contours measured by
:mod:`chexmask.estimate.contour_contrast`) into the named numbers of
:data:`FEATURES`. Each is oriented so that a larger value means a less trustworthy
segmentation, which lets :mod:`chexmask.estimate.estimator` keep its model monotone.
Lengths count relative to the thorax (the lungs' bounding box), as Dice does, so
images of every size and framing are comparable.
"""

from __future__ import annotations

import math

import numpy as np

from chexmask.anatomy import N_NODES
from chexmask.estimate.shape_model import GROUP_NODES, ShapeModel

__all__ = ["FEATURES", "SAMPLING_FEATURES", "image_features"]

#: Feature name -> meaning (the card, ``weights/quality-estimator.md``, tabulates their weights).
FEATURES: dict[str, str] = {
    "log_uncertainty_lungs": "log of the mean node std of the lung nodes over the latent samples, relative to the thorax size",
    "log_uncertainty_heart": "log of the mean node std of the heart nodes over the latent samples, relative to the thorax size",
    "lungs_mahalanobis": "shape model: root mean squared z-score of the aligned lung contours' principal components",
    "lungs_residual": "shape model: lung contours' distance outside the principal subspace, in expert medians",
    "heart_mahalanobis": "shape model: the heart's z-score in the lungs' aligned frame (shape, size and place)",
    "heart_residual": "shape model: the heart's distance outside its principal subspace, in expert medians",
    "thorax_small": "max(0, log(0.55 / (area of the lungs' bounding box / image area))): a thorax smaller in the frame than on a typical film",
    "weak_lung_edges": "fraction of lung contour nodes with no dark-to-bright edge across the contour in the model frame (chexmask.estimate.contour_contrast)",
}
#: The features that need latent sampling (``uncertainty`` > 0).
SAMPLING_FEATURES = ("log_uncertainty_lungs", "log_uncertainty_heart")
#: Typical fraction of the image the lungs' bounding box covers (the median of the clean
#: benchmark images of the three sources is 0.52-0.62).
_TYPICAL_LUNG_FRACTION = 0.55


def image_features(landmarks: np.ndarray, node_spread: np.ndarray | None, height: int, width: int,
                   shape_model: ShapeModel, weak_edges: float | None = None) -> dict[str, float]:
    """The :data:`FEATURES` of one segmentation (NaN for the sampling features without samples,
    and for ``weak_lung_edges`` when it was not measured).

    Parameters
    ----------
    landmarks : (>= 120, 2) ndarray
        (x, y) nodes in the original frame (the clavicles, if any, are ignored).
    node_spread : (>= 120,) ndarray or None
        Per-node predictive std ``sqrt(std_x^2 + std_y^2)`` of the latent samples (original
        pixels, :attr:`~chexmask.inference.segmenter.Segmentation.node_uncertainty`); None
        without sampling.
    height, width : int
        The original frame.
    weak_edges : float, optional
        :func:`chexmask.estimate.contour_contrast.weak_lung_edges` of the result
        (``Segmentation.weak_lung_edges``); None when the pixels were not at hand.
    """
    points = np.asarray(landmarks, np.float64)[:N_NODES]
    out = dict.fromkeys(FEATURES, math.nan)
    box = np.clip(np.ptp(points[GROUP_NODES["lungs"]], axis=0), 1.0, None)
    thorax = math.sqrt(box[0] * box[1])  # Dice is scale-free: the spread counts relative to the organs' size
    if node_spread is not None:
        spread = np.asarray(node_spread, np.float64)[:N_NODES]
        for group in ("lungs", "heart"):
            out[f"log_uncertainty_{group}"] = math.log(max(float(spread[GROUP_NODES[group]].mean()) / thorax, 1e-6))
    out.update(shape_model.scores(points))
    out["thorax_small"] = max(0.0, math.log(_TYPICAL_LUNG_FRACTION * height * width / (box[0] * box[1])))
    if weak_edges is not None:
        out["weak_lung_edges"] = float(weak_edges)
    return out
