"""CheXmask tables: read and write the CSV and Parquet forms.

A CheXmask table has one row per image: the source dataset's image id column, then
``CHEXMASK_COLUMNS`` (RCA quality scores, landmarks, run-length masks, original
image size). Physician-corrected tables have ``PHYSICIAN_COLUMNS`` instead (no RCA
and no size: their masks are 1024 x 1024). Columns are kept in the file's order and
values are kept exactly, so reading then writing a published CSV reproduces its
bytes, and CSV -> Parquet -> CSV does too.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from pathlib import Path

import pandas as pd

from chexmask._errors import InputError

__all__ = [
    "CHEXMASK_COLUMNS",
    "PHYSICIAN_COLUMNS",
    "ID_COLUMNS",
    "MASK_COLUMNS",
    "REQUIRED_COLUMNS",
    "id_column",
    "read_table",
    "write_table",
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
#: Columns every table must have besides its id column.
REQUIRED_COLUMNS: tuple[str, ...] = ("Landmarks", "Right Lung", "Left Lung", "Heart")

_TEXT_COLUMNS = ("Landmarks", "Right Lung", "Left Lung", "Heart", "Dataset")
_FLOAT_COLUMNS = ("Dice RCA (Mean)", "Dice RCA (Max)")
_INT_COLUMNS = ("Height", "Width")
_KNOWN_DATA = set(CHEXMASK_COLUMNS) | set(PHYSICIAN_COLUMNS[1:])
_FORMATS = {".csv": "csv", ".csv.gz": "csv", ".parquet": "parquet"}


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


def _table_format(path: Path) -> str | None:
    name = path.name.lower()
    for suffix in sorted(_FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            return _FORMATS[suffix]
    return None


def _unknown_format(path: Path) -> str:
    suffix = "".join(path.suffixes[-2:]) if path.suffixes else ""
    close = difflib.get_close_matches(suffix.lower(), list(_FORMATS), n=1, cutoff=0.4)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown table format {suffix or path.name!r} (expected {', '.join(_FORMATS)}){hint}"


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


def _as_int(values: pd.Series, source: str, column: str) -> list[int]:
    out = []
    for i, v in enumerate(values.tolist()):
        try:
            f = float(v)
            if not f.is_integer():
                raise ValueError
        except (TypeError, ValueError, OverflowError):
            raise InputError(
                f"{source} row {i + 1}, column {column}", f"not an integer: {v!r}"
            ) from None
        out.append(int(f))
    return out


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a CheXmask or physician table from CSV or Parquet.

    Parameters
    ----------
    path : str or path-like
        A ``.csv``, ``.csv.gz`` or ``.parquet`` file.

    Returns
    -------
    pandas.DataFrame
        The columns in the file's order. The id column, ``Landmarks``, ``Dataset``
        and the mask columns are ``str`` (an empty mask or missing value is ``""``);
        ``Dice RCA (Mean)``/``(Max)`` are float64; ``Height``/``Width`` int64. Other
        CSV columns are kept as text (Parquet columns keep their types). Landmarks
        stay strings: parse them with :func:`chexmask.formats.landmarks.parse_landmarks`.

    Raises
    ------
    InputError
        If the file is missing or unreadable, its format is unknown, it lacks the id
        column or any of :data:`REQUIRED_COLUMNS`, or a number column holds a bad
        value. The message names the file (and row, 1-based, and column).

    Notes
    -----
    Ids are never converted to numbers, so leading zeros survive. Numbers are parsed
    with Python's correctly rounded ``float``, and pandas writes the shortest
    representation back, so values round-trip exactly.
    """
    path = Path(path)
    kind = _table_format(path)
    if kind is None:
        raise InputError(path, _unknown_format(path))
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
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(
            path, f"missing required column(s) {missing}; found {[str(c) for c in df.columns]}"
        )
    df = df.copy()
    for column in (ident, *_TEXT_COLUMNS):
        if column in df.columns:
            df[column] = pd.Series(_as_text(df[column]), index=df.index, dtype="str")
    for column in _FLOAT_COLUMNS:
        if column in df.columns:
            values = _as_float(df[column], source, column)
            df[column] = pd.Series(values, index=df.index, dtype="float64")
    for column in _INT_COLUMNS:
        if column in df.columns:
            values = _as_int(df[column], source, column)
            df[column] = pd.Series(values, index=df.index, dtype="int64")
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
    ValueError
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
    ValueError: out.xlsx: unknown table format '.xlsx' (...); did you mean '.csv'?
    """
    path = Path(path)
    kind = _table_format(path)
    if kind is None:
        raise ValueError(f"{path}: {_unknown_format(path)}")
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"df must be a pandas DataFrame, got {type(df).__name__}")
    if kind == "csv":
        df.to_csv(path, index=False, lineterminator="\n")
        return
    out = df.copy()
    for column in _TEXT_COLUMNS:
        if column in out.columns:
            out[column] = pd.Series(_as_text(out[column]), index=out.index, dtype="str")
    out.to_parquet(path, index=False)
