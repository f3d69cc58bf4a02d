"""A JSRT-layout source's expert landmarks as a CheXmask table.

The experts' contours of a source folder (``images/``, ``landmarks/``, ``splits/``) as
rows any command reads and ``chexmask train`` trains from: ``ImageID``, ``Landmarks``
(the image's own frame), the three RLE masks filled from them, ``Height``, ``Width`` and
``Split``. The adaptation and retraining experiments use it as "the corrected rows of
a hospital"; a user can use it to mix a labelled folder into a table-based run.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from chexmask.anatomy import ORGANS
from chexmask.formats.landmarks import format_landmarks
from chexmask.formats.tables import MASK_COLUMNS
from chexmask.io.layout import find_image, load_landmarks_npz, read_split
from chexmask.io.read import read_image
from chexmask.masks.fill import landmarks_to_masks
from chexmask.masks.rle import encode_rle

__all__ = ["source_table"]


def source_table(folder: str | Path, splits: tuple[str, ...] = ("train", "val"), *, ids: list[str] | None = None) -> pd.DataFrame:
    """The expert rows of ``splits`` of a JSRT-layout folder (``ids``: only these, in this order).

    Organs the source does not annotate are NaN in ``Landmarks`` and empty masks.
    """
    folder = Path(folder)
    split_of = {i: s for s in splits for i in read_split(folder, s)}
    rows = []
    for image_id in split_of if ids is None else ids:
        height, width = read_image(find_image(folder, image_id)).pixels.shape
        points = load_landmarks_npz(folder / "landmarks" / f"{image_id}.npz", ORGANS)
        masks = landmarks_to_masks(points, height, width)
        rows.append({"ImageID": image_id, "Landmarks": format_landmarks(points),
                     **{MASK_COLUMNS[o]: encode_rle(masks[o]) for o in ORGANS},
                     "Height": height, "Width": width, "Split": split_of[image_id]})
    return pd.DataFrame(rows, columns=["ImageID", "Landmarks", *MASK_COLUMNS.values(), "Height", "Width", "Split"])
