"""The published CheXmask tables as Python records and as a PyTorch dataset.

:func:`iter_records` streams a table (CSV, CSV.gz, Parquet or a frame) in bounded
memory and yields one :class:`Record` per row: the image id, the decoded masks,
the landmarks, the per-node standard deviations when the table has them and the other
columns. Both layouts are read: CheXmask's ``Landmarks`` and CheXmask-U's ``Landmarks
(Mean)`` / ``Landmarks (Std)`` (:mod:`chexmask.formats.landmark_columns`). :class:`MaskDataset` gives random access for
training loops (rows read by :func:`chexmask.formats.row_access.open_rows`), loading
the image too when an image folder is given. Masks are ``(H, W)`` uint8 {0, 255} at
the original size; landmarks are (x, y) = (col, row) original pixels (not skimage's
(row, col)).

References
----------
Gaggion et al., "CheXmask: a large-scale dataset of anatomical segmentation masks
for multi-center chest x-ray images", Scientific Data 2024,
doi:10.1038/s41597-024-03358-1.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch.utils.data

from chexmask._errors import InputError
from chexmask.anatomy import ORGANS
from chexmask.formats.landmark_columns import (
    LANDMARK_COLUMNS,
    LANDMARKS_COLUMN,
    STD_COLUMN,
    landmarks_column,
    node_std_column,
    row_landmarks,
    row_node_std,
)
from chexmask.formats.landmarks import node_uncertainty
from chexmask.formats.row_access import open_rows
from chexmask.formats.stream import (
    DEFAULT_CHUNKSIZE,
    TableSource,
    decode_masks,
    iter_rows,
    mask_size,
    table_columns,
)
from chexmask.formats.tables import FLOAT_COLUMNS, MASK_COLUMNS, id_column
from chexmask.io.lookup import ImageLookup

__all__ = ["Record", "row_to_record", "iter_records", "MaskDataset"]

logger = logging.getLogger(__name__)

_SKIPPED = {*LANDMARK_COLUMNS, STD_COLUMN, *MASK_COLUMNS.values()}


@dataclass(frozen=True, eq=False)
class Record:
    """One row of a CheXmask table, decoded.

    Attributes
    ----------
    image_id : str
        The value of the table's id column (``Image Index``, ``dicom_id``,
        ``ImageID``, ``Path`` ...).
    masks : dict of str to (H, W) uint8 ndarray
        Organ key -> mask, 255 inside the organ, 0 elsewhere.
    landmarks : (120, 2) float64 ndarray or None
        (x, y) = (col, row) original pixels, from ``Landmarks`` or CheXmask-U's
        ``Landmarks (Mean)``; NaN rows for an organ that was not annotated; ``None``
        when not requested.
    metadata : dict
        Every other column: ``Dice RCA (Mean)``/``(Max)`` as float (NaN when
        empty), ``Height``/``Width`` as int (1024 for physician tables, which lack
        them), other columns as stored; plus ``row``, the 1-based row number.
    node_std : (120, 2) float64 ndarray or None
        ``(std_x, std_y)`` per node over the latent samples, pixels of the row's frame,
        from ``Landmarks (Std)`` (CheXmask-U's, or ``chexmask segment``'s with sampling);
        ``None`` when the row has none or landmarks were not requested.

    Notes
    -----
    A record with landmarks draws as a segmentation does:
    :func:`chexmask.reports.overlay.render_overlay` (``image``, ``record``) outlines its
    organs and colours each node by its uncertainty (:attr:`uncertainty`), so the
    overlays of CheXmask-U rows and of ``chexmask segment`` rows read alike.
    """

    image_id: str
    masks: dict[str, np.ndarray]
    landmarks: np.ndarray | None
    metadata: dict[str, Any]
    node_std: np.ndarray | None = None

    @property
    def height(self) -> int:
        """Height of the row's frame (original pixels)."""
        return int(self.metadata["Height"])

    @property
    def width(self) -> int:
        """Width of the row's frame (original pixels)."""
        return int(self.metadata["Width"])

    @property
    def organs(self) -> tuple[str, ...]:
        """The organs of :attr:`landmarks`, in node order."""
        return ORGANS

    @property
    def uncertainty(self) -> float | None:
        """Mean over the 120 nodes of ``sqrt(std_x^2 + std_y^2)`` (pixels), as the ``Uncertainty`` column; None without :attr:`node_std`."""
        return None if self.node_std is None else float(np.nanmean(node_uncertainty(self.node_std)))


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def row_to_record(
    image_id: str,
    row: Mapping[str, Any],
    *,
    organs: Sequence[str] = ORGANS,
    landmarks: bool = True,
    source: str = "row",
) -> Record:
    """Decode one table row (column -> value) into a :class:`Record`.

    Parameters
    ----------
    image_id : str
        The row's id.
    row : mapping
        The row's other columns (the mask columns of ``organs`` at least).
    organs : sequence of str, optional
        Organ keys to decode.
    landmarks : bool, optional
        Parse the landmarks (``Landmarks``, or CheXmask-U's ``Landmarks (Mean)``) and,
        when the row has them, the per-node standard deviations (``Landmarks (Std)``).
    source : str, optional
        What the row is, for error messages (``"table.csv row 12"``).

    Returns
    -------
    Record

    Raises
    ------
    InputError
        If a mask column is missing or malformed (:class:`~chexmask.RLEError`), the
        size is missing or bad, the landmarks are missing or do not parse, or the
        standard deviations are malformed (text, a wrong count, a negative value).
    """
    masks = decode_masks(row, organs, source=source)
    height, width = mask_size(row, source=source)
    points = std = None
    if landmarks:
        points = row_landmarks(row, source=source)
        if points is None:
            column = landmarks_column(row.keys())
            reason = "landmarks string is empty" if column else f"no landmarks column ({LANDMARKS_COLUMN!r} or {LANDMARK_COLUMNS[1]!r})"
            raise InputError(f"{source}, column {column or LANDMARKS_COLUMN}", reason)
        std = row_node_std(row, source=source)
    metadata: dict[str, Any] = {}
    for column, value in row.items():
        if column in _SKIPPED:
            continue
        metadata[column] = _float(value) if column in FLOAT_COLUMNS else value
    metadata["Height"], metadata["Width"] = height, width
    return Record(str(image_id), masks, points, metadata, std)


def _check_organs(organs: Sequence[str]) -> tuple[str, ...]:
    organs = tuple(organs)
    if not organs or any(o not in MASK_COLUMNS for o in organs):
        raise ValueError(f"organs must be a non-empty subset of {list(ORGANS)}, got {list(organs)}")
    return organs


def iter_records(
    table: TableSource,
    *,
    organs: Sequence[str] = ORGANS,
    landmarks: bool = True,
    min_rca: float | None = None,
    ids: Iterable[str] | None = None,
    chunksize: int = DEFAULT_CHUNKSIZE,
    on_error: Literal["raise", "skip"] = "raise",
) -> Iterator[Record]:
    """Iterate the rows of a CheXmask table as decoded records, in bounded memory.

    Parameters
    ----------
    table : str, path-like or pandas.DataFrame
        A CheXmask or physician table: ``.csv``, ``.csv.gz``, ``.parquet`` or a frame.
    organs : sequence of str, optional
        Organ keys whose masks to decode (default all three); fewer is faster.
    landmarks : bool, optional
        Parse the landmarks (default True).
    min_rca : float, optional
        Keep rows with ``Dice RCA (Mean)`` at least this (0.7 is the reference's
        threshold).
    ids : iterable of str, optional
        Keep only these image ids (exact match).
    chunksize : int, optional
        Rows read at a time (memory is proportional to it).
    on_error : {"raise", "skip"}, optional
        What to do with a row that does not decode: raise its
        :class:`~chexmask.InputError`, or log a warning and go on.

    Yields
    ------
    Record
        In table order.

    Raises
    ------
    InputError
        If the table cannot be read, or (with ``on_error="raise"``) a row is bad.
    ValueError
        If an option is invalid.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"ImageID": ["a"], "Right Lung": ["2 2"],
    ...     "Left Lung": [""], "Heart": ["1 1"], "Height": [2], "Width": [2]})
    >>> record = next(iter_records(frame, landmarks=False))
    >>> record.image_id, record.masks["right_lung"].tolist(), record.metadata
    ('a', [[0, 255], [255, 0]], {'Height': 2, 'Width': 2, 'row': 1})
    """
    organs = _check_organs(organs)
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    source = "table" if isinstance(table, pd.DataFrame) else str(table)
    for number, image_id, row in iter_rows(table, min_rca=min_rca, ids=ids, chunksize=chunksize):
        try:
            record = row_to_record(image_id, row, organs=organs, landmarks=landmarks, source=f"{source} row {number}")
        except InputError as err:
            if on_error == "raise":
                raise
            logger.warning("skipped: %s", err)
            continue
        record.metadata["row"] = number
        yield record


class MaskDataset(torch.utils.data.Dataset):
    """A CheXmask table as a map-style PyTorch dataset of masks (and images).

    Parameters
    ----------
    table : str, path-like or pandas.DataFrame
        A CheXmask or physician table. An uncompressed CSV is indexed by byte
        offset (one pass, 8 bytes per row) and each item reads only its own row;
        Parquet is held in Arrow memory; frames and ``.csv.gz`` are held as frames.
    image_root : str or path-like, optional
        Folder of the source images. When given, each item has an ``"image"``,
        read with :func:`chexmask.read_image` from ``image_root/ID``, else
        ``image_root/ID.png`` (``.jpg``, ``.jpeg``, ``.dcm``, ``.dicom``), else the
        unique file of that name or stem anywhere below ``image_root``.
    transform : callable, optional
        Applied to each item (the dict below) before it is returned.
    organs : sequence of str, optional
        Organ keys, in the order of the ``"masks"`` channels.
    landmarks : bool, optional
        Include the ``"landmarks"`` array.
    min_rca : float, optional
        Keep rows with ``Dice RCA (Mean)`` at least this.
    ids : iterable of str, optional
        Keep only these image ids.
    chunksize : int, optional
        Rows read at a time while indexing and filtering.

    Attributes
    ----------
    organs : tuple of str
    row_numbers : (N,) int64 ndarray
        1-based table row of each item.

    Notes
    -----
    An item is a dict: ``"image_id"`` (str); ``"masks"`` ``(K, H, W)`` uint8
    {0, 255} in ``organs`` order at the original size; ``"landmarks"`` ``(120, 2)``
    float64 (x, y) = (col, row); when the table has a ``Landmarks (Std)`` column,
    ``"node_std"`` ``(120, 2)`` float64 (NaN for a row without); ``"metadata"`` as in
    :class:`Record`; and, with ``image_root``, ``"image"`` ``(H, W)`` uint8. Arrays stay NumPy: the default
    ``collate_fn`` of :class:`torch.utils.data.DataLoader` turns them into tensors
    (items of different sizes need a resizing ``transform`` to be batched).
    Worker processes each open their own file handle.

    Raises
    ------
    InputError
        On construction, if the table cannot be read or filtered; on access, if the
        row does not decode or the image's size differs from the row's.
    UnreadableImageError
        On access, if the image is missing or unreadable.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"ImageID": ["a"], "Right Lung": ["2 2"],
    ...     "Left Lung": [""], "Heart": ["1 1"], "Height": [2], "Width": [2]})
    >>> dataset = MaskDataset(frame, landmarks=False)
    >>> len(dataset), dataset[0]["masks"].shape
    (1, (3, 2, 2))
    """

    def __init__(
        self,
        table: TableSource,
        image_root: str | os.PathLike[str] | None = None,
        transform: Callable[[dict[str, Any]], Any] | None = None,
        *,
        organs: Sequence[str] = ORGANS,
        landmarks: bool = True,
        min_rca: float | None = None,
        ids: Iterable[str] | None = None,
        chunksize: int = DEFAULT_CHUNKSIZE,
    ) -> None:
        self.organs = _check_organs(organs)
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable, got {type(transform).__name__}")
        self._source = "table" if isinstance(table, pd.DataFrame) else str(table)
        columns = table_columns(table)
        self._ident = id_column(pd.DataFrame(columns=columns), source=self._source)
        self._has_std = node_std_column(columns) is not None
        self._rows, self.row_numbers = open_rows(table, min_rca, ids, chunksize)
        if image_root is not None and not Path(image_root).is_dir():
            raise InputError(image_root, "image_root is not a folder")
        self._images = None if image_root is None else ImageLookup(image_root, anywhere=True)
        self.transform = transform
        self.landmarks = landmarks

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index: int) -> Any:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        index %= len(self)
        number = int(self.row_numbers[index])
        row = self._rows.get(index)
        image_id = str(row.pop(self._ident))
        record = row_to_record(
            image_id, row, organs=self.organs, landmarks=self.landmarks,
            source=f"{self._source} row {number}",
        )
        record.metadata["row"] = number
        item: dict[str, Any] = {
            "image_id": image_id,
            "masks": np.stack([record.masks[o] for o in self.organs]),
            "metadata": record.metadata,
        }
        if self.landmarks:
            item["landmarks"] = record.landmarks
            if self._has_std:  # every item has it, so batches collate
                item["node_std"] = np.full_like(record.landmarks, np.nan) if record.node_std is None else record.node_std
        if self._images is not None:
            from chexmask.io.read import read_image

            image = read_image(self._images.find(image_id))
            size = (record.metadata["Height"], record.metadata["Width"])
            if image.pixels.shape != size:
                raise InputError(
                    image.path,
                    f"image is {image.pixels.shape[0]}x{image.pixels.shape[1]} but "
                    f"{self._source} row {number} has masks of {size[0]}x{size[1]}",
                )
            item["image"] = image.pixels
        return item if self.transform is None else self.transform(item)
