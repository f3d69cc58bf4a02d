"""Geometric warps that move an image and its landmarks (and masks) together.

Two users: the failure benchmark's realistic shifts (:mod:`chexmask.quality.realistic_shifts`),
which warp val images with their expert annotations, and training's failure-mode
augmentation (:func:`chexmask.model.data.failure_augment`), which warps training images
with their targets. One implementation, so the benchmark measures exactly the shifts
training can learn from.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["affine", "radial_magnify", "heart_centre"]


def affine(pixels: np.ndarray, points: np.ndarray, matrix: np.ndarray, size: tuple[int, int],
           border: int = cv2.BORDER_CONSTANT, masks: dict[str, np.ndarray] | None = None):
    """Warp by a 2 x 3 ``matrix`` into a ``size = (width, height)`` frame.

    Returns ``(pixels, points, masks)``: pixels bilinear, masks nearest neighbour (``{}``
    without ``masks``), points ``(n, 2)`` mapped exactly (NaN stays NaN).
    """
    w, h = size
    out = cv2.warpAffine(pixels, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=border)
    warped = {k: cv2.warpAffine(m.astype(np.uint8), matrix, (w, h), flags=cv2.INTER_NEAREST) > 0 for k, m in (masks or {}).items()}
    return out, points @ matrix[:, :2].T + matrix[:, 2], warped


def radial_magnify(pixels: np.ndarray, points: np.ndarray, centre: np.ndarray, sigma: float, gain: float,
                   masks: dict[str, np.ndarray] | None = None):
    """Smooth magnification around ``centre``: ``p' = c + (p - c)(1 + gain exp(-r^2 / 2 sigma^2))``.

    The AP projection's enlarged heart. The image is resampled through the inverse map
    (solved by fixed-point iteration, as no closed form exists); the points go through the
    forward map. Returns ``(pixels, points, masks)`` as :func:`affine`.
    """
    h, w = pixels.shape

    def scale(d: np.ndarray) -> np.ndarray:
        return 1 + gain * np.exp(-(d**2).sum(-1, keepdims=True) / (2 * sigma**2))

    target = np.stack(np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64)), -1)
    src = target.copy()
    for _ in range(8):  # solve forward(src) = target
        src = centre + (target - centre) / scale(src - centre)
    mx, my = src[..., 0].astype(np.float32), src[..., 1].astype(np.float32)
    out = cv2.remap(pixels, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    warped = {k: cv2.remap(m.astype(np.uint8), mx, my, cv2.INTER_NEAREST) > 0 for k, m in (masks or {}).items()}
    return out, centre + (points - centre) * scale(points - centre), warped


def heart_centre(lungs: np.ndarray, heart: np.ndarray) -> tuple[np.ndarray, float]:
    """The heart's centre and the thorax width, from the landmarks.

    Without heart nodes (a lungs-only annotation): the mediastinum's lower third,
    between the lungs.
    """
    width = float(np.nanmax(lungs[:, 0]) - np.nanmin(lungs[:, 0]))
    if np.isfinite(heart).all():
        return heart.mean(0), width
    return np.array([np.nanmean(lungs[:, 0]), np.nanpercentile(lungs[:, 1], 65)]), width
