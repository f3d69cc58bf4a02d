"""Training data: images with landmark targets, and landmark-consistent augmentation.

Images are decoded once and cached at the training resolution (decoding 1024-px
PNGs every step would cost more than the network on a 2-core CPU). Targets are
``(n_nodes, 2)`` node positions normalised to [0, 1] of the square model frame, with NaN
where an organ is not annotated; the loss masks those nodes out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from chexmask._errors import ChexmaskError
from chexmask.anatomy import ORGANS, n_nodes, organ_slices
from chexmask.io.layout import find_image, load_landmarks_npz, read_split
from chexmask.preprocess import pad_resize, to_model_frame
from chexmask.warps import affine, heart_centre, radial_magnify

__all__ = ["LandmarkDataset", "load_source", "load_sources", "concat_sources", "augment", "failure_augment", "FAILURE_MODES"]

#: The failure modes of :func:`failure_augment`: the families of the failure benchmark's shifts.
FAILURE_MODES: tuple[str, ...] = ("narrow", "squat", "zoom-out", "heart-magnified", "dark", "rotated")

@dataclass
class LandmarkDataset:
    """Images and targets held in memory.

    Attributes
    ----------
    ids : list of str
    images : (N, S, S) uint8 ndarray
    targets : (N, n_nodes, 2) float32 ndarray, normalised to [0, 1]; NaN for organs
        the source does not annotate.
    sources : list of str
        The source folder's name of every image (``jsrt``, ``montgomery``, ...).
    references : list of chexmask.model.validation.Reference or None
        Each image's frame and expert masks at the original size (val splits), else None.
    """

    ids: list[str]
    images: np.ndarray
    targets: np.ndarray
    sources: list[str] = field(default_factory=list)
    references: list | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def source_names(self) -> list[str]:
        """The distinct sources, in order of first appearance."""
        return list(dict.fromkeys(self.sources))

    def subset(self, source: str) -> "LandmarkDataset":
        """The images of one source."""
        idx = [i for i, s in enumerate(self.sources) if s == source]
        refs = None if self.references is None else [self.references[i] for i in idx]
        return LandmarkDataset([self.ids[i] for i in idx], self.images[idx], self.targets[idx], [source] * len(idx), refs)


def load_source(folder: Path, split: str, size: int, limit: int | None = None, organs: tuple[str, ...] = ORGANS,
                references: bool = False) -> LandmarkDataset:
    """Load a split of one JSRT-layout source at ``size`` px (its first ``limit`` images).

    Landmarks (in each stored image's own frame) are mapped through the same padding
    and resizing as the image; organs the source does not annotate are NaN. With
    ``references``, every image's geometry and expert masks (``scr_masks/`` or
    ``masks/``, as ``chexmask validate`` reads them) are kept for validation.
    """
    from chexmask.io.read import read_image
    from chexmask.model.report import reference_masks
    from chexmask.model.validation import Reference, pack_groups

    folder = Path(folder)
    ids = read_split(folder, split)[:limit]
    images = np.empty((len(ids), size, size), np.uint8)
    targets = np.empty((len(ids), n_nodes(organs), 2), np.float32)
    refs = [] if references else None
    for i, image_id in enumerate(ids):
        img = read_image(find_image(folder, image_id))
        images[i], geom = pad_resize(img.pixels, size)
        targets[i] = to_model_frame(load_landmarks_npz(folder / "landmarks" / f"{image_id}.npz", organs), geom) / size
        if refs is not None:
            refs.append(Reference(geom, pack_groups(reference_masks(folder, image_id))))
    return LandmarkDataset(ids, images, targets, [folder.resolve().name] * len(ids), refs)


def load_sources(folders, split: str, size: int, limit: int | None = None, organs: tuple[str, ...] = ORGANS,
                 references: bool = False) -> LandmarkDataset:
    """Load one split of several sources into one dataset (``sources`` tells them apart)."""
    return concat_sources([load_source(Path(f), split, size, limit, organs, references) for f in folders],
                          [Path(f).resolve().name for f in folders])


def concat_sources(parts: list[LandmarkDataset], names: list[str]) -> LandmarkDataset:
    """One dataset of several sources' parts; ``names`` (one per part) must differ."""
    if len(set(names)) != len(names):
        raise ChexmaskError(f"two training sources share a name: {names}; give each source (folder or table file) its own name")
    return LandmarkDataset(
        [i for p in parts for i in p.ids],
        np.concatenate([p.images for p in parts]),
        np.concatenate([p.targets for p in parts]),
        [s for p in parts for s in p.sources],
        None if any(p.references is None for p in parts) else [r for p in parts for r in p.references],
    )


def augment(image: np.ndarray, target: np.ndarray, rng: np.random.Generator, robust: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Random geometry and appearance change, landmarks moved with the image.

    ``robust=False`` is the JSRT-only recipe of ``hybridgnet-jsrt-256``: rotation +-8 deg,
    scale 0.92-1.08, shift +-4 %, brightness/contrast, gamma 0.7-1.4. ``robust=True``
    (the default) widens it towards the target datasets (portable AP films, other
    scanners): rotation +-15 deg, zoom 0.75-1.15 (zoom-out leaves black borders), shift
    +-8 %, contrast 0.6-1.5, brightness +-0.12, gamma 0.55-1.8, and each with its own probability a cut
    frame below the lung bases (costophrenic angles cropped), Gaussian noise, blur, burnt-in
    text and wire-like curves.

    Parameters
    ----------
    image : (S, S) uint8 ndarray
    target : (n, 2) ndarray, normalised (x, y); NaN rows stay NaN.
    rng : numpy Generator

    Returns
    -------
    image : (S, S) float32 ndarray in [0, 1]
    target : (n, 2) float32 ndarray, transformed the same way.
    """
    s = image.shape[0]
    rot, zoom, move = (15, (0.75, 1.15), 0.08) if robust else (8, (0.92, 1.08), 0.04)
    m = cv2.getRotationMatrix2D((s / 2, s / 2), rng.uniform(-rot, rot), rng.uniform(*zoom))
    m[:, 2] += rng.uniform(-move, move, size=2) * s
    x = cv2.warpAffine(image, m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    pts = (target * s) @ m[:, :2].T + m[:, 2]
    if robust:
        x = _appearance(_overlays(x, pts, rng), rng)
        gain, offset, gamma = rng.uniform(0.6, 1.5), rng.uniform(-0.12, 0.12), np.exp(rng.uniform(np.log(0.55), np.log(1.8)))
    else:
        x = x.astype(np.float32) / 255.0
        gain, offset, gamma = rng.uniform(0.85, 1.15), rng.uniform(-0.08, 0.08), rng.uniform(0.7, 1.4)
    x = np.clip(x * gain + offset, 0.0, 1.0) ** gamma
    return x.astype(np.float32), (pts / s).astype(np.float32)


def failure_augment(image: np.ndarray, target: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """With probability ``p``, one failure mode of other hospitals' films, drawn at random with a random strength.

    The modes (:data:`FAILURE_MODES`) are the families of the failure benchmark's shifts
    (:mod:`chexmask.quality.realistic_shifts`), through the same warps, with their
    strength drawn up to the benchmark's: ``narrow`` / ``squat``, the width to 75-100 % /
    the height to 80-100 % (an image resized to a square from another aspect; a short AP
    thorax, elevated diaphragm); ``zoom-out`` to 65-90 % with the border reflected (arms,
    shoulders, abdomen in frame); ``heart-magnified`` by up to 10-30 % (AP projection);
    ``dark``, contrast 35-70 % around the mean and gamma 1.2-1.8 (dark, flat films);
    ``rotated`` by 8-15 degrees either way. Applied before :func:`augment`.

    Parameters
    ----------
    image : (S, S) uint8 ndarray
    target : (n, 2) ndarray, normalised (x, y); NaN rows stay NaN.

    Returns
    -------
    image : (S, S) uint8 ndarray
    target : (n, 2) float32 ndarray
    """
    if rng.random() >= p:
        return image, target
    s = image.shape[0]
    pts = np.asarray(target, np.float64) * s
    mode = FAILURE_MODES[rng.integers(len(FAILURE_MODES))]
    c = np.array([s / 2, s / 2])
    if mode == "dark":
        x = image.astype(np.float32)
        flat = (x - x.mean()) * rng.uniform(0.35, 0.7) + x.mean()
        out = 255.0 * (np.clip(flat, 0, 255) / 255.0) ** rng.uniform(1.2, 1.8)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8), target
    if mode == "heart-magnified":
        slices = organ_slices(organs=ORGANS)
        centre, width = heart_centre(pts[: slices["heart"].start], pts[slices["heart"]])
        warped, pts, _ = radial_magnify(image, pts, centre, 0.18 * width, rng.uniform(0.1, 0.3))
        return warped, (pts / s).astype(np.float32)
    if mode in ("narrow", "squat"):
        k = rng.uniform(0.75, 1.0) if mode == "narrow" else rng.uniform(0.8, 1.0)
        sx, sy = (k, 1.0) if mode == "narrow" else (1.0, k)
        m = np.array([[sx, 0, (1 - sx) * c[0]], [0, sy, (1 - sy) * c[1]]])
        border = cv2.BORDER_CONSTANT
    elif mode == "zoom-out":
        m, border = cv2.getRotationMatrix2D(tuple(c), 0, rng.uniform(0.65, 0.9)), cv2.BORDER_REFLECT_101
    else:  # rotated
        m, border = cv2.getRotationMatrix2D(tuple(c), rng.choice([-1, 1]) * rng.uniform(8, 15), 1.0), cv2.BORDER_REPLICATE
    warped, pts, _ = affine(image, pts, m, (s, s), border)
    return warped, (pts / s).astype(np.float32)


def _overlays(x: np.ndarray, pts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A cut frame, burnt-in text and wires on a uint8 image (OpenCV draws text on 8 bit only)."""
    s = x.shape[0]
    lung_y = pts[: organ_slices()["heart"].start, 1]  # the lungs come first in the node order
    lung_bottom = np.nanmax(lung_y) if np.isfinite(lung_y).any() else s
    if rng.random() < 0.15:  # frame cut at or above the costophrenic angles
        cut = int(np.clip(lung_bottom - rng.uniform(0.0, 0.12) * s, s * 0.5, s))
        x[cut:] = 0
    if rng.random() < 0.3:  # burnt-in text (markers, dates)
        for _ in range(rng.integers(1, 4)):
            text = "".join(rng.choice(list("ABCDEFGHLPRT0123456789:/ "), rng.integers(1, 9)))
            org = (int(rng.uniform(0, 0.8) * s), int(rng.uniform(0.05, 1.0) * s))
            cv2.putText(x, text, org, cv2.FONT_HERSHEY_SIMPLEX, rng.uniform(0.2, 0.8) * s / 256, int(rng.integers(180, 256)), 1)
    if rng.random() < 0.3:  # wires, tubes and lines: smooth random curves
        for _ in range(rng.integers(1, 4)):
            t = np.linspace(0, 1, 40)[:, None]
            a, b, c = rng.uniform(0, s, (3, 2))
            curve = ((1 - t) ** 2 * a + 2 * (1 - t) * t * b + t**2 * c).astype(np.int32)
            cv2.polylines(x, [curve], False, int(rng.choice([rng.integers(0, 50), rng.integers(200, 256)])), int(rng.integers(1, 3)))
    return x


def _appearance(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blur and noise, each with its own probability; uint8 in, float32 [0, 1] out."""
    x = image.astype(np.float32) / 255.0
    if rng.random() < 0.2:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.5, 1.5))
    if rng.random() < 0.3:
        x = x + rng.normal(0.0, rng.uniform(0.01, 0.06), x.shape).astype(np.float32)
    return np.clip(x, 0.0, 1.0)
