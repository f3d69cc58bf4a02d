"""CheXmask tables: read and write the CSV and Parquet forms.

A CheXmask table has one row per image: the source dataset's image id column, then
``CHEXMASK_COLUMNS`` (RCA quality scores, landmarks, run-length masks, original
image size). Physician-corrected tables have ``PHYSICIAN_COLUMNS`` instead (no RCA
and no size: their masks are 1024 x 1024, :data:`PHYSICIAN_SIZE`); a row whose
``Height`` and ``Width`` are both empty is in that frame too (some released physician
subsets have such rows). Columns are kept in the file's order and
values are kept exactly, so reading then writing a published CSV reproduces its
bytes, and CSV -> Parquet -> CSV does too.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from chexmask._errors import InputError
from chexmask.formats.landmark_columns import (
    LANDMARKS_COLUMN,
    MEAN_LANDMARKS_COLUMN,
    STD_COLUMN,
    landmarks_column,
)
from chexmask.formats.table_paths import is_table_path, table_format

__all__ = [
    "CHEXMASK_COLUMNS",
    "PHYSICIAN_COLUMNS",
    "ID_COLUMNS",
    "MASK_COLUMNS",
    "REQUIRED_COLUMNS",
    "PHYSICIAN_SIZE",
    "cell_number",
    "id_column",
    "is_table_path",
    "mask_size",
    "read_table",
    "write_table",
    "write_csv",
]

#: Columns of a CheXmask table after its id column, in the published order.
CHEXMASK_COLUMNS: list[str] = [
    "Dice RCA (Mean)",
    "Dice RCA (Max)",
    "Landmarks",
    "Left Lung",
    "Right Lung",
    "Heart",
    "Height",
    "Width",
]
#: Columns of a physician-corrected table.
PHYSICIAN_COLUMNS: list[str] = [
    "ImageID",
    "Dataset",
    "Landmarks",
    "Right Lung",
    "Left Lung",
    "Heart",
]
#: Image id columns of the source datasets (ChestX-ray8, MIMIC-CXR, PadChest and
#: CANDID-PTX, CheXpert, VinDr, ...), in the order they are looked for.
ID_COLUMNS: tuple[str, ...] = (
    "Image Index",
    "dicom_id",
    "ImageID",
    "Path",
    "image_id",
    "Image ID",
    "ImageId",
    "image",
    "filename",
    "id",
)
#: Organ key (as in :data:`chexmask.anatomy.ORGANS`) -> mask column.
MASK_COLUMNS: dict[str, str] = {
    "right_lung": "Right Lung",
    "left_lung": "Left Lung",
    "heart": "Heart",
}
#: (height, width) of masks in tables without Height/Width (physician-corrected ones)
#: and of rows whose Height and Width are both empty: the preprocessed 1024 frame.
PHYSICIAN_SIZE: tuple[int, int] = (1024, 1024)
#: Columns every table must have besides its id column. ``Landmarks`` may be CheXmask-U's
#: ``Landmarks (Mean)`` (:func:`chexmask.formats.landmark_columns.landmarks_column`).
REQUIRED_COLUMNS: tuple[str, ...] = ("Landmarks", "Right Lung", "Left Lung", "Heart")

_TEXT_COLUMNS = ("Landmarks", MEAN_LANDMARKS_COLUMN, STD_COLUMN, "Right Lung", "Left Lung", "Heart", "Dataset")
#: Columns read as numbers: the RCA scores (float) and the frame of the masks (int).
FLOAT_COLUMNS = ("Dice RCA (Mean)", "Dice RCA (Max)")
INT_COLUMNS = ("Height", "Width")
_KNOWN_DATA = set(CHEXMASK_COLUMNS) | set(PHYSICIAN_COLUMNS[1:]) | {MEAN_LANDMARKS_COLUMN, STD_COLUMN}


def _norm(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


_ID_NORMS = {_norm(c): i for i, c in enumerate(ID_COLUMNS)}


def id_column(df: pd.DataFrame, *, source: str = "table") -> str:
    """Find the image id column of a CheXmask table.

    Parameters
    ----------
    df : pandas.DataFrame
        A CheXmask or physician table.
    source : str, optional
        What the table is (a file name), for the error message.

    Returns
    -------
    str
        The first of :data:`ID_COLUMNS` present, compared ignoring case, spaces and
        underscores (``"image_id"`` matches ``"Image ID"``); failing that, the first
        column if it is not a known data column.

    Raises
    ------
    InputError
        If no column can be the id column.

    Examples
    --------
    >>> import pandas as pd
    >>> id_column(pd.DataFrame(columns=["dicom_id", "Landmarks"]))
    'dicom_id'
    """
    columns = [str(c) for c in df.columns]
    for name in ID_COLUMNS:
        if name in columns:
            return name
    ranked = sorted((_ID_NORMS[_norm(c)], c) for c in columns if _norm(c) in _ID_NORMS)
    if ranked:
        return ranked[0][1]
    if columns and columns[0] not in _KNOWN_DATA and not columns[0].startswith("Unnamed"):
        return columns[0]
    raise InputError(
        source,
        f"no image id column; expected one of {list(ID_COLUMNS)}, found columns {columns}",
    )


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def _as_text(values: pd.Series) -> list[str]:
    return ["" if _is_missing(v) else str(v) for v in values.tolist()]


def _as_float(values: pd.Series, source: str, column: str) -> list[float]:
    out = []
    for i, v in enumerate(values.tolist()):
        if _is_missing(v) or v == "":
            out.append(math.nan)
            continue
        try:
            out.append(float(v))
        except (TypeError, ValueError):
            raise InputError(
                f"{source} row {i + 1}, column {column}", f"not a number: {v!r}"
            ) from None
    return out


def cell_number(value: object) -> float | None:
    """A table cell as a finite number, or None (blank, text, NaN or infinite): for the
    optional numeric columns a row may hold (``Estimated Dice``, ``Dice RCA (Mean)``).

    >>> cell_number("0.91"), cell_number(""), cell_number(float("nan")), cell_number(None)
    (0.91, None, None, None)
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _is_blank(value: object) -> bool:
    return _is_missing(value) or (isinstance(value, str) and not value.strip())


def mask_size(row: Mapping[str, object], *, source: str = "row") -> tuple[int, int]:
    """The ``(height, width)`` a row's masks were encoded over.

    Parameters
    ----------
    row : mapping
        A table row (column -> value).
    source : str, optional
        What the row is, for the error message (``"table.csv row 12"``).

    Returns
    -------
    (int, int)
        ``Height`` and ``Width``; :data:`PHYSICIAN_SIZE` (1024, 1024) when the row
        has neither (physician-corrected tables have no such columns; some released
        subsets leave both empty on rows whose masks are in the 1024 frame).

    Raises
    ------
    InputError
        If only one of the two is given, or a value is not an integer or below 1.

    Examples
    --------
    >>> mask_size({"Height": "2048", "Width": 1536})
    (2048, 1536)
    >>> mask_size({"ImageID": "x"}), mask_size({"Height": "", "Width": None})
    ((1024, 1024), (1024, 1024))
    """
    if all(_is_blank(row.get(column)) for column in INT_COLUMNS):
        return PHYSICIAN_SIZE
    size = []
    for column in INT_COLUMNS:
        value = row.get(column)
        try:
            number = float(value)  # type: ignore[arg-type]
            if not number.is_integer() or number < 1:
                raise ValueError
        except (TypeError, ValueError, OverflowError):
            reason = "missing" if _is_blank(value) else f"not a positive integer: {value!r}"
            raise InputError(source, f"image size column {column} is {reason}") from None
        size.append(int(number))
    return size[0], size[1]


def _read_sizes(df: pd.DataFrame, source: str, ident: str, keep_bad: bool) -> None:
    """Height/Width -> int64 in place; both empty is the 1024 frame (one warning)."""
    columns = [c for c in INT_COLUMNS if c in df.columns]
    if not columns:
        return
    raw = {c: df[c].tolist() for c in columns}
    ids = df[ident].tolist()
    parsed: dict[str, list[object]] = {c: [] for c in columns}
    blank, bad = [], False
    for i in range(len(df)):
        values = {c: raw[c][i] for c in columns}
        try:
            size = dict(zip(INT_COLUMNS, mask_size(values, source=f"{source} row {i + 1} ({ident} {ids[i]!r})")))
        except InputError:
            if not keep_bad:
                raise
            size, bad = values, True  # kept as read: the row's consumer records it
        if all(_is_blank(v) for v in values.values()):
            blank.append(i + 1)
        for c in columns:
            parsed[c].append(size[c])
    for c in columns:
        df[c] = pd.Series(parsed[c], index=df.index, dtype=object if bad else "int64")
    if blank:
        shown = ", ".join(map(str, blank[:10])) + (", ..." if len(blank) > 10 else "")
        warnings.warn(
            f"{source}: {len(blank)} rows ({shown}) have empty Height and Width; their masks "
            f"are read in the {PHYSICIAN_SIZE[0]} x {PHYSICIAN_SIZE[1]} frame of the preprocessed images",
            UserWarning,
            stacklevel=3,
        )


def read_table(path: str | os.PathLike[str], *, bad_values: str = "raise") -> pd.DataFrame:
    """Read a CheXmask or physician table from CSV or Parquet.

    Parameters
    ----------
    path : str or path-like
        A ``.csv``, ``.csv.gz`` or ``.parquet`` file.
    bad_values : {"raise", "keep"}, optional
        What a bad ``Height``/``Width`` value does (see :func:`mask_size`): raise, or
        stay in the table as read (both columns are then object dtype) for a consumer
        that records bad rows one by one, as :func:`chexmask.quality.evaluate.compare`
        does.

    Returns
    -------
    pandas.DataFrame
        The columns in the file's order. The id column, ``Landmarks`` (or CheXmask-U's
        ``Landmarks (Mean)`` and ``Landmarks (Std)``), ``Dataset`` and the mask columns
        are ``str`` (an empty mask or missing value is ``""``);
        ``Dice RCA (Mean)``/``(Max)`` are float64; ``Height``/``Width`` int64. Other
        CSV columns are kept as text (Parquet columns keep their types). Landmarks
        stay strings: read a row's with :func:`chexmask.formats.landmark_columns.row_landmarks`
        and :func:`~chexmask.formats.landmark_columns.row_node_std`, whichever layout it has.

    Raises
    ------
    InputError
        If the file is missing or unreadable, its format is unknown, it lacks the id
        column or any of :data:`REQUIRED_COLUMNS`, or a number column holds a bad
        value. The message names the file (and row, 1-based, the row's id and column).
    ValueError
        If ``bad_values`` is not ``"raise"`` or ``"keep"``.

    Warns
    -----
    UserWarning
        Once per table with rows whose ``Height`` and ``Width`` are both empty: they
        read as :data:`PHYSICIAN_SIZE`, and their RLE runs are later checked against
        that frame when decoded.

    Notes
    -----
    Ids are never converted to numbers, so leading zeros survive. Numbers are parsed
    with Python's correctly rounded ``float``, and pandas writes the shortest
    representation back, so values round-trip exactly.
    """
    if bad_values not in ("raise", "keep"):
        raise ValueError(f"bad_values must be 'raise' or 'keep', got {bad_values!r}")
    path = Path(path)
    kind = table_format(path)
    if not path.is_file():
        raise InputError(path, "file not found" if not path.exists() else "not a file")
    try:
        if kind == "csv":
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
        else:
            df = pd.read_parquet(path)
    except Exception as err:  # pandas/pyarrow raise many types for a corrupt file
        raise InputError(path, f"cannot read as {kind}: {type(err).__name__}: {err}") from err

    source = str(path)
    ident = id_column(df, source=source)
    has_landmarks = landmarks_column(df.columns) is not None
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns and not (c == LANDMARKS_COLUMN and has_landmarks)]
    if missing:
        also = f" (or {MEAN_LANDMARKS_COLUMN!r}, as in CheXmask-U)" if not has_landmarks else ""
        raise InputError(
            path, f"missing required column(s) {missing}{also}; found {[str(c) for c in df.columns]}"
        )
    df = df.copy()
    for column in (ident, *_TEXT_COLUMNS):
        if column in df.columns:
            df[column] = pd.Series(_as_text(df[column]), index=df.index, dtype="str")
    for column in FLOAT_COLUMNS:
        if column in df.columns:
            values = _as_float(df[column], source, column)
            df[column] = pd.Series(values, index=df.index, dtype="float64")
    _read_sizes(df, source, ident, keep_bad=bad_values == "keep")
    return df


def write_table(df: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write a table as CSV or Parquet, chosen by the file suffix.

    Parameters
    ----------
    df : pandas.DataFrame
        The table; written without its index, columns in order.
    path : str or path-like
        Ends in ``.csv``, ``.csv.gz`` or ``.parquet``.

    Raises
    ------
    InputError
        If the suffix is not a known format (the message suggests the closest one).

    Notes
    -----
    CSV uses ``"\\n"`` line ends and minimal quoting, as the published files do;
    missing text values are written as empty fields. In Parquet, missing values
    of the text columns are written as ``""``.

    Examples
    --------
    >>> write_table(pd.DataFrame(), "out.xlsx")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    chexmask._errors.InputError: out.xlsx: unknown table format '.xlsx' (...); did you mean '.csv'?
    """
    path = Path(path)
    kind = table_format(path)
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"df must be a pandas DataFrame, got {type(df).__name__}")
    if kind == "csv":
        write_csv(df, path)
        return
    out = df.copy()
    for column in _TEXT_COLUMNS:
        if column in out.columns:
            out[column] = pd.Series(_as_text(out[column]), index=out.index, dtype="str")
    out.to_parquet(path, index=False)


def write_csv(df: pd.DataFrame, target=None, *, header: bool = True) -> str | None:
    """Write ``df`` in the CSV dialect of every table chexmask writes; the text when ``target`` is None.

    No index, ``"\\n"`` line ends, minimal quoting, missing values as empty fields and
    floats in their shortest round-trip form, as the published files are. ``target`` is a
    path or an open text file (``header=False`` appends a chunk to one).
    """
    return df.to_csv(target, index=False, header=header, lineterminator="\n")
