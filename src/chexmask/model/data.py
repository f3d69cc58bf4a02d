"""Training data: images with landmark targets, and landmark-consistent augmentation.

Images are decoded once and cached at the training resolution (decoding 1024-px
PNGs every step would cost more than the network on a 2-core CPU). Targets are
``(120, 2)`` node positions normalised to [0, 1] of the square model frame, with NaN
where an organ is not annotated; the loss masks those nodes out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from chexmask.anatomy import ORGANS
from chexmask.preprocess import pad_resize, to_model_frame

__all__ = ["LandmarkDataset", "load_jsrt", "augment"]

_NPZ_KEYS = {"right_lung": "RL", "left_lung": "LL", "heart": "H"}


@dataclass
class LandmarkDataset:
    """Images and targets held in memory.

    Attributes
    ----------
    ids : list of str
    images : (N, S, S) uint8 ndarray
    targets : (N, 120, 2) float32 ndarray, normalised to [0, 1]; NaN for missing organs.
    """

    ids: list[str]
    images: np.ndarray
    targets: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


def read_split(jsrt_dir: Path, split: str) -> list[str]:
    """Image ids of a JSRT split (``train``, ``val`` or ``test``)."""
    path = Path(jsrt_dir) / "splits" / f"{split}.txt"
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def load_landmarks_npz(path: Path) -> np.ndarray:
    """Read a JSRT landmark file into a ``(120, 2)`` array (NaN for missing organs)."""
    with np.load(path) as d:
        parts = [d[_NPZ_KEYS[o]] if _NPZ_KEYS[o] in d.files else np.full((n, 2), np.nan) for o, n in zip(ORGANS, (44, 50, 26))]
    return np.concatenate(parts).astype(np.float64)


def load_jsrt(jsrt_dir: Path, split: str, size: int, limit: int | None = None) -> LandmarkDataset:
    """Load a JSRT split at ``size`` px (its first ``limit`` images), landmarks mapped through the same preprocessing."""
    from chexmask.io.read import read_image

    jsrt_dir = Path(jsrt_dir)
    ids = read_split(jsrt_dir, split)[:limit]
    images = np.empty((len(ids), size, size), np.uint8)
    targets = np.empty((len(ids), 120, 2), np.float32)
    for i, image_id in enumerate(ids):
        img = read_image(jsrt_dir / "images" / f"{image_id}.png")
        images[i], geom = pad_resize(img.pixels, size)
        targets[i] = to_model_frame(load_landmarks_npz(jsrt_dir / "landmarks" / f"{image_id}.npz"), geom) / size
    return LandmarkDataset(ids, images, targets)


def augment(image: np.ndarray, target: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random small affine (rotation, scale, shift) and intensity/gamma change.

    Parameters
    ----------
    image : (S, S) uint8 ndarray
    target : (120, 2) ndarray, normalised (x, y)
    rng : numpy Generator

    Returns
    -------
    image : (S, S) float32 ndarray in [0, 1]
    target : (120, 2) float32 ndarray, transformed the same way.
    """
    s = image.shape[0]
    angle = rng.uniform(-8, 8)
    scale = rng.uniform(0.92, 1.08)
    shift = rng.uniform(-0.04, 0.04, size=2) * s
    m = cv2.getRotationMatrix2D((s / 2, s / 2), angle, scale)
    m[:, 2] += shift
    out = cv2.warpAffine(image, m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    pts = target * s
    pts = pts @ m[:, :2].T + m[:, 2]
    x = out.astype(np.float32) / 255.0
    x = np.clip(x * rng.uniform(0.85, 1.15) + rng.uniform(-0.08, 0.08), 0.0, 1.0) ** rng.uniform(0.7, 1.4)
    return x.astype(np.float32), (pts / s).astype(np.float32)
