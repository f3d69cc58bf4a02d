"""A table row's landmarks in its image's own frame: the one check that a row and its image agree.

A row's landmarks are pixels of its ``Height`` x ``Width``. A table without those columns
(the physician layout) is in the documented 1024 frame of the preprocessed image
(:data:`~chexmask.formats.tables.PHYSICIAN_SIZE`), which is mapped back to the image's own
size (the reverse of the reference's preprocessing, :func:`chexmask.preprocess.to_original`).
Any other mismatch between a row's frame and its image, and landmarks that reach far
outside the image, are an :class:`~chexmask.InputError` naming the row: never guessed.
Training from tables (:mod:`chexmask.model.table_data`) and overlays of tables
(:mod:`chexmask.reports.table_overlays`) both ask this module.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from chexmask._errors import InputError
from chexmask.formats.landmark_columns import row_landmarks
from chexmask.formats.tables import PHYSICIAN_SIZE, mask_size
from chexmask.preprocess import Geometry, to_original

__all__ = ["OUTSIDE_MARGIN", "row_points_in_image"]

#: How far (fraction of the image's long side) landmarks may reach outside the image.
OUTSIDE_MARGIN = 0.05


def row_points_in_image(row: Mapping[str, object], image_shape: tuple[int, int], *, stated_frame: bool,
                        source: str = "row") -> tuple[np.ndarray, float]:
    """A row's (120, 2) landmarks in its image's frame, and the factor from the row's pixels to the image's.

    Parameters
    ----------
    row : mapping
        The row's columns: ``Landmarks`` (or CheXmask-U's ``Landmarks (Mean)``) and, when
        the table states its frame, ``Height`` and ``Width``.
    image_shape : (int, int)
        ``(height, width)`` of the row's image.
    stated_frame : bool
        Whether the table has ``Height`` and ``Width`` columns. Without them a row is in
        the 1024 frame and is mapped to the image.
    source : str
        What the row is, for error messages (``"table.csv row 12"``).

    Returns
    -------
    points : (120, 2) float64 ndarray
        (x, y) in the image's pixels; NaN rows for organs the row does not carry.
    scale : float
        Lengths of the row's frame times this are lengths in the image (1.0 when the
        frames agree; ``max(H, W) / 1024`` when mapped from the 1024 frame), e.g. for the
        per-node standard deviations.

    Raises
    ------
    InputError
        No landmarks, landmarks that annotate no organ, a frame that is not the image's
        (other than the physician layout's 1024 frame), or landmarks more than
        :data:`OUTSIDE_MARGIN` of the image outside it.

    Examples
    --------
    >>> row = {"Landmarks": ",".join(["10,20"] * 120), "Height": 100, "Width": 50}
    >>> points, scale = row_points_in_image(row, (100, 50), stated_frame=True)
    >>> points[0].tolist(), scale
    ([10.0, 20.0], 1.0)
    """
    points = row_landmarks(row, source=source)  # Landmarks, or CheXmask-U's Landmarks (Mean)
    if points is None:
        raise InputError(source, "no landmarks (the Landmarks column is empty)")
    if np.isnan(points).all():
        raise InputError(source, "the landmarks annotate no organ (all NaN)")
    frame = mask_size(row, source=source)
    h, w = image_shape
    scale = 1.0
    if frame != tuple(image_shape):
        if stated_frame or frame != PHYSICIAN_SIZE:
            raise InputError(source, f"the row's frame (Height x Width) is {frame[0]} x {frame[1]} but its image is "
                                     f"{h} x {w}; give the images the table was made from")
        points = to_original(points, Geometry.for_shape(h, w))  # the documented 1024 frame, reversed
        scale = max(h, w) / PHYSICIAN_SIZE[0]
    finite = points[np.isfinite(points).all(1)]
    margin = OUTSIDE_MARGIN * max(h, w)
    if (finite < -margin).any() or (finite[:, 0] > w + margin).any() or (finite[:, 1] > h + margin).any():
        raise InputError(source, f"landmarks reach outside the {h} x {w} frame (x {finite[:, 0].min():.0f}..{finite[:, 0].max():.0f}, "
                                 f"y {finite[:, 1].min():.0f}..{finite[:, 1].max():.0f}): are they in another frame?")
    return points, scale
