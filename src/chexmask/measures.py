"""Measurements from the organ masks: cardiothoracic ratio, organ areas, widths, heights.

Everything is measured on the masks in the ORIGINAL image frame, ``(H, W)`` row-major,
in image rows and columns:

- ``CTR``: the cardiothoracic ratio, heart width / thorax width.
- ``Heart Width``: the widest horizontal extent of the heart mask, ``max column - min
  column + 1`` over its pixels.
- ``Thorax Width``: the same over the union of the two lung masks (from the outer edge
  of one lung to the outer edge of the other).
- ``... Area``: pixels in the mask; ``... Height``: rows spanned, ``max row - min row + 1``.

Lengths and areas are in pixels, and also in mm and mm² when the image's pixel spacing
is known (DICOM PixelSpacing, else ImagerPixelSpacing, as
:attr:`chexmask.io.read.XrayImage.pixel_spacing` holds it); the spacing is never guessed,
so without one those columns are NaN (empty in a table). Widths use the column spacing,
heights the row spacing and areas their product.

"Right" and "left" are the patient's: the right lung is on the image's left side (lower
columns) of a frontal view. The thorax width takes both lungs together, so it does not
depend on which is which.

:func:`measure_masks` (of masks) and :func:`measure_runs` (of the runs a row's RLE holds,
no mask painted) give the same numbers, computed in one place from where each organ's
pixels are; :func:`measure_record` rounds them for tables (the ``chexmask segment`` columns), and
:func:`chexmask.formats.measure_table.measure_table` runs them over any CheXmask table
(``chexmask measure``).

References
----------
Danzer CS. The cardio-thoracic ratio: an index of cardiac enlargement. Am J Med Sci
1919;157:513-521. https://doi.org/10.1097/00000441-191904000-00007
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from chexmask.anatomy import ORGANS

__all__ = ["MEASURE_COLUMNS", "MEASURE_DECIMALS", "measure_masks", "measure_runs", "measure_record", "arrow_types"]

#: The measurement columns, in table order: pixel lengths and areas, then mm and mm²
#: (NaN/empty without a pixel spacing), then the spacing used.
MEASURE_COLUMNS: list[str] = [
    "CTR",
    "Heart Width (px)",
    "Thorax Width (px)",
    "Heart Area (px)",
    "Right Lung Area (px)",
    "Left Lung Area (px)",
    "Right Lung Height (px)",
    "Left Lung Height (px)",
    "Heart Width (mm)",
    "Thorax Width (mm)",
    "Heart Area (mm2)",
    "Right Lung Area (mm2)",
    "Left Lung Area (mm2)",
    "Right Lung Height (mm)",
    "Left Lung Height (mm)",
    "Row Spacing (mm)",
    "Column Spacing (mm)",
]
#: Columns holding whole pixels (integers in tables).
_PX_COLUMNS = frozenset(c for c in MEASURE_COLUMNS if c.endswith("(px)"))
#: ``CTR`` and the mm values are rounded to this many decimals in tables.
MEASURE_DECIMALS = 4


class _Extent(NamedTuple):
    """Where an organ's pixels are: first and last column and row (NaN when empty), and how many."""

    col0: float
    col1: float
    row0: float
    row1: float
    area: float


_EMPTY = _Extent(math.nan, math.nan, math.nan, math.nan, 0.0)


def _mask_extent(mask: np.ndarray) -> _Extent:
    cols, rows = np.flatnonzero(mask.any(axis=0)), np.flatnonzero(mask.any(axis=1))
    if cols.size == 0:
        return _EMPTY
    return _Extent(float(cols[0]), float(cols[-1]), float(rows[0]), float(rows[-1]), float(np.count_nonzero(mask)))


def _runs_extent(starts: np.ndarray, lengths: np.ndarray, width: int) -> _Extent:
    if len(starts) == 0:
        return _EMPTY
    starts = np.asarray(starts, np.int64)
    ends = starts + np.asarray(lengths, np.int64) - 1
    row0, row1 = starts // width, ends // width
    wraps = row0 != row1  # a run over a row end covers that row's last and the next row's first column
    col0 = np.where(wraps, 0, starts % width).min()
    col1 = np.where(wraps, width - 1, ends % width).max()
    return _Extent(float(col0), float(col1), float(row0.min()), float(row1.max()), float(np.sum(lengths)))


def _span(a: float, b: float) -> float:
    return b - a + 1  # NaN stays NaN


def _check_spacing(pixel_spacing) -> tuple[float, float] | None:
    if pixel_spacing is None:
        return None
    try:
        row, col = (float(v) for v in pixel_spacing)
    except (TypeError, ValueError):
        raise ValueError(f"pixel_spacing must be (row mm, column mm), got {pixel_spacing!r}") from None
    if not (math.isfinite(row) and math.isfinite(col) and row > 0 and col > 0):
        raise ValueError(f"pixel_spacing must be two positive numbers of mm, got {pixel_spacing!r}")
    return row, col


def measure_masks(masks: Mapping[str, np.ndarray], pixel_spacing: tuple[float, float] | None = None) -> dict[str, float]:
    """Cardiothoracic ratio, organ areas, widths and heights of one image's masks.

    Parameters
    ----------
    masks : mapping of str to (H, W) ndarray
        ``right_lung``, ``left_lung`` and ``heart`` masks in the original frame, any
        dtype (non-zero = inside), e.g. :meth:`chexmask.Segmentation.masks` or
        :func:`chexmask.formats.stream.decode_masks`. Other keys are ignored.
    pixel_spacing : (float, float), optional
        ``(row spacing, column spacing)`` in mm, the DICOM PixelSpacing order. Without
        it the mm and mm² values are NaN.

    Returns
    -------
    dict of str to float
        :data:`MEASURE_COLUMNS` -> value. Areas of an empty mask are 0; widths, heights
        and the CTR are NaN when a mask they need is empty.

    Raises
    ------
    ValueError
        An organ is missing, the masks are not 2-D of one shape, or ``pixel_spacing`` is
        not two positive numbers.

    Examples
    --------
    >>> import numpy as np
    >>> masks = {o: np.zeros((10, 20), bool) for o in ("right_lung", "left_lung", "heart")}
    >>> masks["right_lung"][2:8, 2:7] = True     # image left = patient's right
    >>> masks["left_lung"][2:9, 12:18] = True
    >>> masks["heart"][5:9, 6:14] = True
    >>> m = measure_masks(masks, pixel_spacing=(0.5, 0.25))
    >>> m["Heart Width (px)"], m["Thorax Width (px)"], m["CTR"]
    (8.0, 16.0, 0.5)
    >>> m["Left Lung Height (px)"], m["Left Lung Height (mm)"], m["Heart Area (mm2)"]
    (7.0, 3.5, 4.0)
    >>> bool(np.isnan(measure_masks(masks)["Heart Width (mm)"]))
    True
    """
    missing = [o for o in ORGANS if o not in masks]
    if missing:
        raise ValueError(f"masks lacks {missing}; it has {sorted(masks)}")
    arrays = {o: np.asarray(masks[o]) != 0 for o in ORGANS}
    shapes = {a.shape for a in arrays.values()}
    if len(shapes) != 1 or arrays["heart"].ndim != 2:
        raise ValueError(f"masks must be 2-D arrays of one shape, got {({o: a.shape for o, a in arrays.items()})}")
    return _measures({o: _mask_extent(a) for o, a in arrays.items()}, _check_spacing(pixel_spacing))


def measure_runs(runs: Mapping[str, tuple[np.ndarray, np.ndarray]], width: int,
                 pixel_spacing: tuple[float, float] | None = None) -> dict[str, float]:
    """:func:`measure_masks` of masks given as runs (:func:`chexmask.masks.fill.landmarks_to_runs`).

    Parameters
    ----------
    runs : mapping of str to (starts, lengths)
        0-based row-major runs of ``right_lung``, ``left_lung`` and ``heart`` in an image
        ``width`` pixels wide.
    width : int
    pixel_spacing : (float, float), optional
        As for :func:`measure_masks`.

    Returns
    -------
    dict of str to float
        The same values as :func:`measure_masks` of the painted masks.
    """
    missing = [o for o in ORGANS if o not in runs]
    if missing:
        raise ValueError(f"runs lacks {missing}; it has {sorted(runs)}")
    return _measures({o: _runs_extent(*runs[o], int(width)) for o in ORGANS}, _check_spacing(pixel_spacing))


def _measures(ext: Mapping[str, _Extent], spacing: tuple[float, float] | None) -> dict[str, float]:
    """The one place the numbers are computed, from where each organ's pixels are."""
    heart, right, left = ext["heart"], ext["right_lung"], ext["left_lung"]
    heart_w = _span(heart.col0, heart.col1)
    lungs = [e for e in (right, left) if e.area > 0]
    thorax_w = _span(min(e.col0 for e in lungs), max(e.col1 for e in lungs)) if lungs else math.nan
    px = {
        "Heart Width (px)": heart_w,
        "Thorax Width (px)": thorax_w,
        "Heart Area (px)": heart.area,
        "Right Lung Area (px)": right.area,
        "Left Lung Area (px)": left.area,
        "Right Lung Height (px)": _span(right.row0, right.row1),
        "Left Lung Height (px)": _span(left.row0, left.row1),
    }
    row_mm, col_mm = spacing if spacing is not None else (math.nan, math.nan)
    out = {"CTR": heart_w / thorax_w if thorax_w > 0 else math.nan, **px}
    out.update({
        "Heart Width (mm)": heart_w * col_mm,
        "Thorax Width (mm)": thorax_w * col_mm,
        "Heart Area (mm2)": px["Heart Area (px)"] * row_mm * col_mm,
        "Right Lung Area (mm2)": px["Right Lung Area (px)"] * row_mm * col_mm,
        "Left Lung Area (mm2)": px["Left Lung Area (px)"] * row_mm * col_mm,
        "Right Lung Height (mm)": px["Right Lung Height (px)"] * row_mm,
        "Left Lung Height (mm)": px["Left Lung Height (px)"] * row_mm,
        "Row Spacing (mm)": row_mm,
        "Column Spacing (mm)": col_mm,
    })
    return {c: out[c] for c in MEASURE_COLUMNS}


def measure_record(values: Mapping[str, float]) -> dict[str, int | float | None]:
    """Measurements (:func:`measure_masks` or :func:`measure_runs`) as table values.

    ``int`` pixels, ``CTR`` and the mm values rounded to :data:`MEASURE_DECIMALS`
    decimals, the spacing as given, ``None`` for NaN.
    """
    row: dict[str, int | float | None] = {}
    for column, value in values.items():
        if math.isnan(value):
            row[column] = None
        elif column in _PX_COLUMNS:
            row[column] = int(value)
        elif column.endswith("Spacing (mm)"):
            row[column] = float(value)
        else:
            row[column] = round(float(value), MEASURE_DECIMALS)
    return row


def arrow_types() -> dict[str, object]:
    """Arrow type of each measure column: int64 pixels, float64 otherwise (both nullable)."""
    import pyarrow as pa

    return {c: pa.int64() if c in _PX_COLUMNS else pa.float64() for c in MEASURE_COLUMNS}

