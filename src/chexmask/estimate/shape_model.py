"""A statistical shape model of the expert landmark contours: how plausible a predicted shape is.

The model is fitted on expert landmark sets (the 911 of the Chest X-ray Landmark dataset:
JSRT, Montgomery, Shenzhen, PadChest) and scores a predicted contour set by how far it
lies from them, per organ group:

- **lungs**: both lung contours (94 nodes), aligned to the mean lung shape by a
  similarity transform (translation, scale, rotation: generalised Procrustes), so the
  image frame, the patient's size and a small tilt do not count;
- **heart**: the 26 heart nodes in the *lungs'* aligned frame, so a heart of the wrong
  shape, size or place relative to the lungs (below the lung bases, outside the
  mediastinum) scores as implausible.

Each group gets a principal-component model (the components that explain
:data:`EXPLAINED` of the variance). A shape's two scores are its Mahalanobis distance
inside the model (``mahalanobis``: root mean squared z-score of the components, about 1
for a typical expert shape) and its distance outside it (``residual``: root mean square
node distance to the model's reconstruction, in units of the expert shapes' median).

Written with numpy rather than scikit-learn's PCA because the shipped model is read at
run time as three arrays per group, with no dependency beyond numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chexmask.anatomy import N_NODES, organ_slices

__all__ = ["EXPLAINED", "GROUP_NODES", "ShapeModel", "fit_shape_model", "align_lungs"]

#: Fraction of the expert shapes' variance the kept components explain.
EXPLAINED = 0.95
_SLICES = organ_slices()
#: Node indices (of the CheXmask nodes) of each scored group.
GROUP_NODES: dict[str, np.ndarray] = {
    "lungs": np.r_[_SLICES["right_lung"], _SLICES["left_lung"]],
    "heart": np.arange(_SLICES["heart"].start, _SLICES["heart"].stop),
}
_LUNGS = GROUP_NODES["lungs"]


def _similarity(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Scale, rotation and translation that map ``src`` (N, 2) onto ``dst`` in least squares (Umeyama)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    u, s, vt = np.linalg.svd(b.T @ a)
    d = np.sign(np.linalg.det(u @ vt))
    rot = u @ np.diag([1.0, d]) @ vt
    scale = (s * [1.0, d]).sum() / max((a**2).sum(), 1e-12)
    return scale, rot, mu_d - scale * mu_s @ rot.T


def align_lungs(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """All nodes moved by the similarity that best maps the lung nodes onto ``reference`` (94, 2)."""
    scale, rot, shift = _similarity(points[_LUNGS], reference)
    return scale * points @ rot.T + shift


@dataclass(frozen=True)
class ShapeModel:
    """Principal-component models of the lungs and of the heart in the lungs' frame.

    Attributes
    ----------
    reference : (94, 2) ndarray
        Mean aligned lung shape (unit size: centred, root mean square radius 1).
    mean, components, variances : dict of group -> ndarray
        Each group's mean vector, kept components (k, d) and their variances (k,).
    residual_scale : dict of group -> float
        Median residual of the expert shapes the model was fitted on.
    """

    reference: np.ndarray
    mean: dict[str, np.ndarray]
    components: dict[str, np.ndarray]
    variances: dict[str, np.ndarray]
    residual_scale: dict[str, float]

    def scores(self, points: np.ndarray) -> dict[str, float]:
        """``{"lungs_mahalanobis", "lungs_residual", "heart_mahalanobis", "heart_residual"}`` of one (>= 120, 2) shape."""
        aligned = align_lungs(np.asarray(points, np.float64)[:N_NODES], self.reference)
        out = {}
        for group, nodes in GROUP_NODES.items():
            z, resid = self._project(group, aligned[nodes].reshape(1, -1))
            out[f"{group}_mahalanobis"] = float(np.sqrt(np.mean(z**2)))
            out[f"{group}_residual"] = float(resid[0] / self.residual_scale[group])
        return out

    def mean_shape(self, centre: tuple[float, float] = (512.0, 512.0), size: float = 300.0) -> np.ndarray:
        """The model's mean contours as ``(120, 2)`` landmarks: the lungs' aligned frame scaled by ``size`` and moved to ``centre``."""
        points = np.empty((N_NODES, 2))
        for group, nodes in GROUP_NODES.items():
            points[nodes] = self.mean[group].reshape(-1, 2)
        return points * size + np.asarray(centre)

    def _project(self, group: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        centred = x - self.mean[group]
        coef = centred @ self.components[group].T
        recon = coef @ self.components[group]
        resid = np.sqrt(((centred - recon) ** 2).reshape(len(x), -1, 2).sum(-1).mean(-1))
        return coef / np.sqrt(self.variances[group]), resid

    def save(self, path: str | Path) -> None:
        """Write the model as one ``.npz`` file."""
        arrays = {"reference": self.reference}
        for group in GROUP_NODES:
            arrays |= {f"{group}_mean": self.mean[group], f"{group}_components": self.components[group],
                       f"{group}_variances": self.variances[group], f"{group}_residual_scale": np.float64(self.residual_scale[group])}
        np.savez_compressed(path, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> ShapeModel:
        """Read a model written by :meth:`save`."""
        with np.load(path) as d:
            return cls(d["reference"], *({g: d[f"{g}_{k}"] for g in GROUP_NODES} for k in ("mean", "components", "variances")),
                       {g: float(d[f"{g}_residual_scale"]) for g in GROUP_NODES})


def fit_shape_model(shapes: np.ndarray, explained: float = EXPLAINED, iterations: int = 5) -> ShapeModel:
    """Fit a :class:`ShapeModel` on expert shapes ``(N, 120, 2)`` (CheXmask node order) (NaN where an organ is not annotated).

    Every shape must have both lungs; the heart model uses the shapes that have a heart.
    """
    shapes = np.asarray(shapes, np.float64)
    lungs_ok = np.isfinite(shapes[:, _LUNGS]).all(axis=(1, 2))
    shapes = shapes[lungs_ok]
    ref = shapes[0, _LUNGS] - shapes[0, _LUNGS].mean(0)
    for _ in range(iterations):  # generalised Procrustes: align all to the reference, re-estimate it
        aligned = np.stack([align_lungs(s, ref) for s in shapes])
        ref = aligned[:, _LUNGS].mean(0)
        ref = (ref - ref.mean(0)) / np.sqrt((ref - ref.mean(0)) ** 2).sum(-1).mean()
    aligned = np.stack([align_lungs(s, ref) for s in shapes])
    mean, comps, variances, scales = {}, {}, {}, {}
    for group, nodes in GROUP_NODES.items():
        x = aligned[:, nodes].reshape(len(aligned), -1)
        x = x[np.isfinite(x).all(1)]
        mean[group] = x.mean(0)
        _, s, vt = np.linalg.svd(x - mean[group], full_matrices=False)
        var = s**2 / (len(x) - 1)
        k = int(np.searchsorted(np.cumsum(var) / var.sum(), explained) + 1)
        comps[group], variances[group] = vt[:k], var[:k]
        model = ShapeModel(ref, mean, comps, variances, {g: 1.0 for g in GROUP_NODES})
        scales[group] = float(np.median(model._project(group, x)[1]))
    return ShapeModel(ref, mean, comps, variances, scales)
