"""The shipped quality estimate: an estimated Dice per organ and a per-node error radius.

A postprocess of one result, like :mod:`chexmask.measures` and :mod:`chexmask.flag`: a
pure function of the result (its landmarks, node spread, frame and the edge evidence
``weak_lung_edges`` measured when it was made), so ``segment`` (every engine), the API,
the demo and the overlays give the same numbers. The parameters are fitted on the failure
benchmark by :mod:`chexmask.quality.estimator_fit` and ship as
``weights/quality-estimator.json`` (card: ``weights/quality-estimator.md``), next to
the shape model ``weights/shape-model.npz``.

**Estimated Dice** of an organ group (lungs = both lungs; heart)::

    log(1 - Dice) ~ intercept + sum_k weight_k * (feature_k - mean_k) / scale_k,  weight_k >= 0

so every feature (:data:`chexmask.estimate.features.FEATURES`, each larger when the
segmentation is less trustworthy) can only lower the estimate: a small, monotone,
inspectable model. Two variants ship: ``full`` (the node-spread features too) for the
models it was fitted on, with latent sampling; ``shape`` (shape-model, frame and
lung-edge features, none of which depends on the network's sampling) for other weights
and for runs without sampling.

**Node Error Radius** (per node, original pixels): the radius within which the
expert's node lies with 90 % probability, ``q * exp(a_node + b log(node std) + c
log(1 - Estimated Dice of its organ))`` rescaled from the 1024 frame, with ``q`` a
split-conformal quantile; only with sampling and the ``full`` variant.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np

from chexmask.anatomy import N_NODES
from chexmask.estimate.features import image_features
from chexmask.estimate.shape_model import GROUP_NODES, ShapeModel
from chexmask.flag import QualityFlag, quality_flag
from chexmask.preprocess import to_1024_frame

__all__ = ["ESTIMATE_COLUMNS", "QualityEstimate", "Estimator", "load_estimator", "estimate_quality", "estimator_sha256"]

#: Columns of both outputs.
ESTIMATE_COLUMNS: list[str] = ["Estimated Dice Lungs", "Estimated Dice Heart"]
_GROUPS = ("lungs", "heart")


@dataclass(frozen=True)
class QualityEstimate:
    """The estimate of one segmentation.

    Attributes
    ----------
    dice : dict
        ``{"lungs": float, "heart": float}`` estimated Dice in [0, 1].
    variant : {"full", "shape"}
        Which fitted model made it.
    node_radius : (120,) ndarray or None
        Node Error Radius in original pixels (None without sampling or for other weights).
    uncertainty_px : float or None
        Mean node uncertainty of the CheXmask nodes in the 1024 frame (None without sampling).
    """

    dice: dict[str, float]
    variant: str
    node_radius: np.ndarray | None
    uncertainty_px: float | None = None

    def flag(self, rca=None) -> QualityFlag:
        """The Quality Flag of this estimate (:func:`chexmask.flag.quality_flag`), with RCA when given."""
        return quality_flag(self.dice, rca, uncertainty_px=self.uncertainty_px)

    def columns(self) -> dict[str, float]:
        """``{"Estimated Dice Lungs": ..., "Estimated Dice Heart": ...}`` (:data:`ESTIMATE_COLUMNS`)."""
        return dict(zip(ESTIMATE_COLUMNS, (self.dice[g] for g in _GROUPS)))


@dataclass(frozen=True)
class Estimator:
    """Fitted parameters (the JSON of :mod:`chexmask.quality.estimator_fit`) and the shape model."""

    params: dict
    shape_model: ShapeModel

    def variant_for(self, model_sha256: str | None, sampled: bool) -> str:
        """``full`` for a model the full variant was fitted on, with sampling; else ``shape``."""
        return "full" if sampled and model_sha256 in self.params["full_models"] else "shape"

    def log_one_minus_group(self, features: dict[str, float], variant: str, group: str, model_sha256: str | None) -> float:
        """The linear predictor ``log(1 - Dice)`` of one organ group (at most 0: 1 - Dice <= 1)."""
        model = self.params["variants"][variant][group]
        total = model["intercepts"][model_sha256] if "intercepts" in model else model["intercept"]
        for name, term in model["features"].items():
            value = features[name]
            if not math.isfinite(value):
                raise ValueError(f"feature {name} is {value}; variant {variant!r} needs it")
            total += term["weight"] * (value - term["mean"]) / term["scale"]
        return min(total, 0.0)

    def log_one_minus_dice(self, features: dict[str, float], variant: str, model_sha256: str | None) -> dict[str, float]:
        """:meth:`log_one_minus_group` of each organ group."""
        return {group: self.log_one_minus_group(features, variant, group, model_sha256) for group in _GROUPS}

    def node_radius(self, node_std_1024: np.ndarray, log_err: dict[str, float]) -> np.ndarray:
        """Node Error Radius in the 1024 frame for per-node std ``(120,)`` (1024 frame)."""
        r = self.params["radius"]
        organ_term = np.empty(len(node_std_1024))
        for group in _GROUPS:
            organ_term[GROUP_NODES[group]] = log_err[group]
        log_scale = np.asarray(r["node_intercept"]) + r["weight_std"] * np.log(np.maximum(node_std_1024, 1e-3)) + r["weight_organ"] * organ_term
        return r["quantile"] * np.exp(log_scale)


@cache
def load_estimator() -> Estimator:
    """The shipped estimator (read once per process)."""
    folder = resources.files("chexmask") / "weights"
    params = json.loads((folder / "quality-estimator.json").read_text())
    with resources.as_file(folder / "shape-model.npz") as path:
        return Estimator(params, ShapeModel.load(path))


@cache
def estimator_sha256() -> str:
    """SHA256 of what makes the shipped estimate and flag: the fitted parameters, the shape
    model and the flag's thresholds. A resumable ``segment`` run keeps it in its identity, so
    parts written under another estimate are never mixed with new rows."""
    from chexmask.flag import DEFAULT_MAX_UNCERTAINTY_PX, DEFAULT_MIN_DICE, DEFAULT_MIN_RCA

    h = hashlib.sha256()
    folder = resources.files("chexmask") / "weights"
    for name in ("quality-estimator.json", "shape-model.npz"):
        h.update((folder / name).read_bytes())
    h.update(json.dumps([DEFAULT_MIN_DICE, DEFAULT_MIN_RCA, DEFAULT_MAX_UNCERTAINTY_PX], sort_keys=True).encode())
    return h.hexdigest()


def estimate_quality(segmentation, model_sha256: str | None, estimator: Estimator | None = None) -> QualityEstimate:
    """Estimated Dice per organ group and Node Error Radius of one segmentation.

    Parameters
    ----------
    segmentation : chexmask.inference.segmenter.Segmentation
        A result in the original frame (``node_std`` None without sampling).
    model_sha256 : str or None
        SHA256 of the weights that made it (chooses the variant).
    estimator : Estimator, optional
        Defaults to the shipped one.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> typical = load_estimator().shape_model.mean_shape()   # the expert shapes' mean, 1024 x 1024 frame
    >>> result = SimpleNamespace(landmarks=typical, node_std=None, height=1024, width=1024, weak_lung_edges=0.05)
    >>> est = estimate_quality(result, None)
    >>> est.variant, est.dice["lungs"] > 0.93, est.node_radius is None
    ('shape', True, True)
    """
    est = estimator or load_estimator()
    # the per-node spread sqrt(std_x^2 + std_y^2), as Segmentation.node_uncertainty, from the
    # duck-typed result's node_std
    spread = None if segmentation.node_std is None else np.sqrt((np.asarray(segmentation.node_std, np.float64)[:N_NODES] ** 2).sum(-1))
    variant = est.variant_for(model_sha256, spread is not None)
    h, w = segmentation.height, segmentation.width
    feats = image_features(segmentation.landmarks, spread, h, w, est.shape_model, getattr(segmentation, "weak_lung_edges", None))
    log_err = est.log_one_minus_dice(feats, variant, model_sha256)
    dice = {g: float(1.0 - math.exp(v)) for g, v in log_err.items()}
    radius = uncertainty = None
    if spread is not None:
        std = to_1024_frame(spread, h, w)
        uncertainty = float(std.mean())
        if variant == "full":
            radius = est.node_radius(std, log_err) * max(h, w) / 1024.0
    return QualityEstimate(dice, variant, radius, uncertainty)

