"""Reversible preprocessing: pad to square, resize, and the exact inverse.

The reference pads the short side symmetrically with zeros (the extra pixel of an
odd difference goes to the end), then resizes the square to ``size`` x ``size``.
:class:`Geometry` records what was done so landmarks and masks map back exactly.

Coordinates are (x, y) = (column, row) in pixels, as in the CheXmask tables; note
this is not scikit-image's (row, col) order.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["Geometry", "FRAME_1024", "to_1024_frame", "pad_resize", "pad_resize_reduced", "to_original", "to_model_frame",
           "mask_to_original"]

#: Side of the reference frame in which lengths (uncertainty, errors) are compared across
#: image sizes: the published CheXmask model frame.
FRAME_1024 = 1024


def to_1024_frame(length, height: int, width: int):
    """A length in original pixels of an ``height x width`` image, in pixels of the 1024 frame.

    The one home of ``length * 1024 / max(H, W)``: node uncertainties and landmark errors
    of images of every size are compared (and thresholded) on this scale.

    Parameters
    ----------
    length : float or ndarray
        Length(s) in original pixels.
    height, width : int
        Original image size.

    Returns
    -------
    float or ndarray
        ``length * 1024 / max(height, width)``, same shape as `length`.

    Raises
    ------
    ValueError
        If the size is not positive.

    Examples
    --------
    >>> to_1024_frame(2.0, 2048, 1500)
    1.0
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got height={height}, width={width}")
    return length * FRAME_1024 / max(height, width)


@dataclass(frozen=True)
class Geometry:
    """How an original image maps to the model's square frame.

    Attributes
    ----------
    height, width : int
        Original image size.
    pad_top, pad_left : int
        Zero rows/columns added before the image (the extra one of an odd
        difference goes after it).
    side : int
        Side of the padded square, ``max(height, width)``.
    size : int
        Side of the model frame the square was resized to.
    """

    height: int
    width: int
    pad_top: int
    pad_left: int
    side: int
    size: int

    @property
    def scale(self) -> float:
        """Model-frame pixels per original pixel."""
        return self.size / self.side

    @classmethod
    def for_shape(cls, height: int, width: int, size: int = 1024) -> "Geometry":
        """Geometry of an image of the given shape."""
        if height < 1 or width < 1:
            raise ValueError(f"image shape must be positive, got {height}x{width}")
        if size < 1:
            raise ValueError(f"size must be positive, got {size}")
        side = max(height, width)
        return cls(height, width, (side - height) // 2, (side - width) // 2, side, size)


def pad_resize(image: np.ndarray, size: int = 1024) -> tuple[np.ndarray, Geometry]:
    """Pad a grayscale image to a square and resize it to ``size`` x ``size``.

    Parameters
    ----------
    image : (H, W) ndarray
        Grayscale image, any dtype OpenCV resizes (uint8, uint16, float32).
    size : int
        Side of the output square.

    Returns
    -------
    out : (size, size) ndarray
        Same dtype as ``image``.
    geometry : Geometry
        What to pass to :func:`to_original` / :func:`mask_to_original`.

    Examples
    --------
    >>> out, g = pad_resize(np.ones((100, 50), np.uint8), size=64)
    >>> out.shape, g.pad_left, g.pad_top
    ((64, 64), 25, 0)
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D (H, W) grayscale, got shape {image.shape}")
    g = Geometry.for_shape(image.shape[0], image.shape[1], size)
    padded = np.zeros((g.side, g.side), dtype=image.dtype)
    padded[g.pad_top : g.pad_top + g.height, g.pad_left : g.pad_left + g.width] = image
    if g.side == size:
        return padded, g
    interp = cv2.INTER_AREA if g.side > size else cv2.INTER_LINEAR
    return cv2.resize(padded, (size, size), interpolation=interp), g


def pad_resize_reduced(reduced: np.ndarray, factor: int, height: int, width: int, size: int) -> tuple[np.ndarray, Geometry]:
    """:func:`pad_resize` of an image decoded at ``1 / factor`` of its size, with the geometry of the original.

    A JPEG decoded at 1/2, 1/4 or 1/8 scale has ``ceil(height / factor)`` rows, and its
    pixel ``u`` covers original pixels ``[factor * u, factor * (u + 1))``. It is padded
    and resized in its own pixels; the returned geometry states the same in original
    pixels (pads and side times ``factor``), so :func:`to_original` maps the model frame
    back to the original frame exactly (to within the last, partial block).

    Examples
    --------
    >>> square, g = pad_resize_reduced(np.ones((250, 100), np.uint8), 8, 2000, 800, 256)
    >>> square.shape, (g.height, g.width, g.side, g.pad_left)
    ((256, 256), (2000, 800, 2000, 600))
    """
    expected = (-(-height // factor), -(-width // factor))
    if reduced.shape != expected:
        raise ValueError(f"a {height}x{width} image at 1/{factor} has shape {expected}, got {reduced.shape}")
    square, g = pad_resize(reduced, size)
    return square, Geometry(height, width, g.pad_top * factor, g.pad_left * factor, g.side * factor, size)


def to_original(points_xy: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Map (x, y) points from the model frame to the original image frame.

    Parameters
    ----------
    points_xy : (..., 2) ndarray
        Points in model-frame pixels.
    geometry : Geometry

    Returns
    -------
    (..., 2) float64 ndarray in original pixels.
    """
    p = np.asarray(points_xy, dtype=np.float64) / geometry.scale
    return p - np.array([geometry.pad_left, geometry.pad_top], dtype=np.float64)


def to_model_frame(points_xy: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Inverse of :func:`to_original`: original pixels to model-frame pixels."""
    p = np.asarray(points_xy, dtype=np.float64) + np.array([geometry.pad_left, geometry.pad_top])
    return p * geometry.scale


def mask_to_original(mask: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Map a model-frame mask back to the original frame (resize, then crop the padding).

    Parameters
    ----------
    mask : (size, size) ndarray
        Binary mask (bool or {0, 255} uint8).

    Returns
    -------
    (height, width) uint8 ndarray with values {0, 255}.
    """
    m = (np.asarray(mask) > 0).astype(np.uint8) * 255
    if m.shape != (geometry.size, geometry.size):
        raise ValueError(f"mask must have shape ({geometry.size}, {geometry.size}), got {m.shape}")
    if geometry.side != geometry.size:
        m = cv2.resize(m, (geometry.side, geometry.side), interpolation=cv2.INTER_NEAREST)
    m = m[geometry.pad_top : geometry.pad_top + geometry.height, geometry.pad_left : geometry.pad_left + geometry.width]
    return np.ascontiguousarray(m)
