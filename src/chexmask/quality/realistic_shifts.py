"""Realistic acquisition shifts of a chest X-ray, applied to its pixels, expert masks and landmarks together.

The failure benchmark (:mod:`chexmask.quality.failure_benchmark`) segments val images
under these shifts to see the model fail the way it fails on other hospitals' films:

- ``zoom-out``: the thorax shrunk to 70 % of the frame, the border filled by reflecting
  the image's own edges (more shoulders, arms and abdomen in frame);
- ``narrow`` / ``squat``: anisotropic resize to 75 % of the width / 80 % of the height
  (an image resized to a square from another aspect; a short, wide, AP-like thorax with
  elevated diaphragm);
- ``heart-magnified``: a smooth radial magnification (up to 30 %) around the heart, as
  the AP projection enlarges it;
- ``low-contrast``: grey levels compressed to 35 % around their mean and darkened
  (gamma 1.8): a dark, flat film;
- ``rotated``: the patient turned 12 degrees (sign by image);
- ``crop-bottom`` / ``zoom-in``: the lowest 15 % cut off (lung bases out of frame) /
  the central 80 % enlarged to the frame (apices and sides cut).

Every geometric shift maps pixels, masks (nearest neighbour) and landmarks with the same
transform (:mod:`chexmask.warps`, shared with training's failure-mode augmentation), so
the expert annotations stay exact for the shifted image.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from chexmask.estimate.shape_model import GROUP_NODES
from chexmask.warps import affine, heart_centre, radial_magnify

__all__ = ["SHIFTS", "Shifted", "apply_shift"]

SHIFTS: tuple[str, ...] = ("zoom-out", "narrow", "squat", "heart-magnified", "low-contrast", "rotated", "crop-bottom", "zoom-in")


@dataclass(frozen=True)
class Shifted:
    """An image and its expert annotations after a shift (landmarks NaN where not annotated)."""

    pixels: np.ndarray
    masks: dict[str, np.ndarray]
    landmarks: np.ndarray


def _affine(image: Shifted, matrix: np.ndarray, size: tuple[int, int], border: int = cv2.BORDER_CONSTANT) -> Shifted:
    pixels, points, masks = affine(image.pixels, image.landmarks, matrix, size, border, image.masks)
    return Shifted(pixels, masks, points)


def apply_shift(name: str, image: Shifted, sign: int = 1) -> Shifted:
    """The shifted image; ``sign`` (+1 or -1) chooses the rotation's direction."""
    h, w = image.pixels.shape
    c = np.array([w / 2, h / 2])
    if name == "zoom-out":
        return _affine(image, cv2.getRotationMatrix2D(tuple(c), 0, 0.7), (w, h), cv2.BORDER_REFLECT_101)
    if name == "narrow":
        return _affine(image, np.array([[0.75, 0, 0], [0, 1, 0]]), (round(0.75 * w), h))
    if name == "squat":
        return _affine(image, np.array([[1, 0, 0], [0, 0.8, 0]]), (w, round(0.8 * h)))
    if name == "rotated":
        return _affine(image, cv2.getRotationMatrix2D(tuple(c), 12 * sign, 1.0), (w, h), cv2.BORDER_REPLICATE)
    if name == "crop-bottom":
        return _affine(image, np.array([[1.0, 0, 0], [0, 1, 0]]), (w, round(0.85 * h)))
    if name == "zoom-in":
        return _affine(image, cv2.getRotationMatrix2D(tuple(c), 0, 1.25), (w, h))
    if name == "low-contrast":
        p = image.pixels.astype(np.float32)
        flat = (p - p.mean()) * 0.35 + p.mean()
        dark = 255.0 * (np.clip(flat, 0, 255) / 255.0) ** 1.8
        return Shifted(np.clip(np.rint(dark), 0, 255).astype(np.uint8), image.masks, image.landmarks)
    if name == "heart-magnified":
        centre, width = heart_centre(image.landmarks[GROUP_NODES["lungs"]], image.landmarks[GROUP_NODES["heart"]])
        pixels, points, masks = radial_magnify(image.pixels, image.landmarks, centre, 0.18 * width, 0.3, image.masks)
        return Shifted(pixels, masks, points)
    raise ValueError(f"unknown shift {name!r}; expected one of {list(SHIFTS)}")
