"""Read CheXmask tables in chunks with bounded memory, filter rows, decode a row's masks.

The published CSVs run to gigabytes (one row is ~18 kB of landmark and run-length
text), so nothing here loads a whole table: CSV is read ``chunksize`` rows at a
time with pandas' C parser, Parquet one batch at a time with pyarrow. Memory use is
set by ``chunksize``, not by the table.

Chunks are :class:`pandas.DataFrame` objects whose index is the 1-based data row
number in the file (the header is not counted), so an error can name its row.
CSV values stay text exactly as in the file (``dtype=str``, no NA parsing);
Parquet values keep their stored types. Converting a table between CSV and Parquet
is :mod:`chexmask.formats.convert`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from chexmask._errors import InputError
from chexmask.formats.table_paths import table_format
from chexmask.formats.tables import MASK_COLUMNS, id_column, mask_size
from chexmask.masks.rle import decode_rle, rle_runs

__all__ = [
    "DEFAULT_CHUNKSIZE",
    "RCA_COLUMN",
    "TableSource",
    "table_columns",
    "count_rows",
    "iter_chunks",
    "iter_rows",
    "read_ids",
    "decode_masks",
    "decode_runs",
]

#: Rows per chunk: ~20 MB of CheXmask text.
DEFAULT_CHUNKSIZE: int = 1000
#: The quality column ``min_rca`` filters on.
RCA_COLUMN: str = "Dice RCA (Mean)"

TableSource = str | os.PathLike[str] | pd.DataFrame


def check_table_file(path: Path) -> str:
    """The :func:`~chexmask.formats.table_paths.table_format` of an existing file; an :class:`InputError` if it is missing or not a file."""
    kind = table_format(path)
    if not path.is_file():
        raise InputError(path, "file not found" if not path.exists() else "not a file")
    return kind


def table_columns(table: TableSource) -> list[str]:
    """Column names of a table, in order, reading only its header or schema.

    Parameters
    ----------
    table : str, path-like or pandas.DataFrame
        A ``.csv``, ``.csv.gz`` or ``.parquet`` file, or a frame.

    Returns
    -------
    list of str

    Raises
    ------
    InputError
        If the file is missing, of unknown format or unreadable.
    """
    if isinstance(table, pd.DataFrame):
        return [str(c) for c in table.columns]
    path = Path(table)
    kind = check_table_file(path)
    try:
        if kind == "csv":
            return [str(c) for c in pd.read_csv(path, nrows=0, dtype=str).columns]
        import pyarrow.parquet as pq

        return list(pq.ParquetFile(path).schema_arrow.names)
    except Exception as err:  # pandas/pyarrow raise many types for a corrupt file
        raise InputError(path, f"cannot read as {kind}: {type(err).__name__}: {err}") from err


def count_rows(table: TableSource) -> int | None:
    """Number of data rows when known without reading the table, else ``None``.

    Frames and Parquet files (from their metadata) know it; CSV files do not.
    """
    if isinstance(table, pd.DataFrame):
        return len(table)
    path = Path(table)
    if check_table_file(path) == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    return None


def iter_rows(
    table: TableSource,
    *,
    min_rca: float | None = None,
    ids: Iterable[str] | None = None,
    chunksize: int = DEFAULT_CHUNKSIZE,
) -> Iterator[tuple[int, str, dict]]:
    """``(row number, image id, the row's other columns)`` of every row that passes, in table order.

    The row number is 1-based, as errors name rows (``"t.csv row 3"``); the options are
    those of :func:`iter_chunks`, which reads the table.

    Examples
    --------
    >>> frame = pd.DataFrame({"ImageID": ["a", "b"], "Height": [4, 5]})
    >>> list(iter_rows(frame, ids={"b"}))
    [(2, 'b', {'Height': 5})]
    """
    source = "table" if isinstance(table, pd.DataFrame) else str(table)
    ident = id_column(pd.DataFrame(columns=table_columns(table)), source=source)
    for chunk in iter_chunks(table, min_rca=min_rca, ids=ids, chunksize=chunksize):
        rows = chunk.drop(columns=[ident]).to_dict("records")
        yield from zip(chunk.index.tolist(), map(str, chunk[ident].tolist()), rows)


def read_ids(path: str | os.PathLike[str]) -> frozenset[str]:
    """Read an id list: one image id per line.

    Parameters
    ----------
    path : str or path-like
        A text file. Surrounding whitespace is stripped; blank lines and lines
        starting with ``#`` are ignored. Ids match a table's id column exactly (the
        whole relative path for CheXpert-style ids).

    Returns
    -------
    frozenset of str

    Raises
    ------
    InputError
        If the file cannot be read.
    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(path, f"cannot read id list: {err}") from err
    return frozenset(s for line in text.splitlines() if (s := line.strip()) and not s.startswith("#"))


def check_chunk_options(chunksize: int, min_rca: float | None) -> None:
    """Raise a :class:`ValueError` unless ``chunksize`` is a positive integer and ``min_rca`` None or in [0, 1]."""
    if isinstance(chunksize, bool) or not isinstance(chunksize, int) or chunksize < 1:
        raise ValueError(f"chunksize must be a positive integer, got {chunksize!r}")
    if min_rca is not None:
        if isinstance(min_rca, bool) or not isinstance(min_rca, (int, float)) or not 0 <= min_rca <= 1:
            raise ValueError(f"min_rca must be a number in [0, 1], got {min_rca!r}")


def _select(
    columns: list[str], wanted: Iterable[str] | None, min_rca: float | None, source: str
) -> tuple[str, list[str]]:
    ident = id_column(pd.DataFrame(columns=columns), source=source)
    if min_rca is not None and RCA_COLUMN not in columns:
        raise InputError(
            source,
            f"min_rca needs a {RCA_COLUMN!r} column, which this table lacks "
            f"(physician-corrected tables have no RCA); found {columns}",
        )
    if wanted is None:
        return ident, columns
    wanted = list(wanted)
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise InputError(source, f"missing column(s) {missing}; found {columns}")
    keep = {ident, *wanted, *([RCA_COLUMN] if min_rca is not None else [])}
    return ident, [c for c in columns if c in keep]


def _raw_chunks(table: TableSource, columns: list[str], chunksize: int) -> Iterator[pd.DataFrame]:
    if isinstance(table, pd.DataFrame):
        frame = table.loc[:, columns].reset_index(drop=True)
        frame.index = frame.index + 1
        for start in range(0, len(frame), chunksize):
            yield frame.iloc[start : start + chunksize]
        return
    path = Path(table)
    first = 1
    if table_format(path) == "csv":
        # usecols only for a subset: with it pandas drops a row's surplus fields silently.
        subset = columns if columns != table_columns(path) else None
        reader = pd.read_csv(
            path, dtype=str, keep_default_na=False, usecols=subset, chunksize=chunksize
        )
        with reader:
            for chunk in reader:
                chunk = chunk.loc[:, columns]
                chunk.index = pd.RangeIndex(first, first + len(chunk))
                first += len(chunk)
                yield chunk
        return
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(batch_size=chunksize, columns=columns):
        chunk = batch.to_pandas(types_mapper=_nullable_ints)
        chunk.index = pd.RangeIndex(first, first + len(chunk))
        first += len(chunk)
        yield chunk


def _nullable_ints(arrow_type):
    import pyarrow as pa

    if pa.types.is_integer(arrow_type):
        return pd.Int64Dtype()
    return None


def iter_chunks(
    table: TableSource,
    *,
    columns: Iterable[str] | None = None,
    min_rca: float | None = None,
    ids: Iterable[str] | None = None,
    chunksize: int = DEFAULT_CHUNKSIZE,
) -> Iterator[pd.DataFrame]:
    """Read a table in chunks of at most ``chunksize`` rows, keeping rows that pass.

    Parameters
    ----------
    table : str, path-like or pandas.DataFrame
        A CheXmask or physician table: ``.csv``, ``.csv.gz``, ``.parquet`` or a frame.
    columns : iterable of str, optional
        Columns to read besides the id column (default: all). Reading fewer
        columns reads less: ``["Heart", "Height", "Width"]`` skips the others.
    min_rca : float, optional
        Keep rows whose ``Dice RCA (Mean)`` is at least this (the reference
        recommends 0.7). Rows with a missing or non-numeric RCA do not pass.
    ids : iterable of str, optional
        Keep only rows whose id is in this collection (exact match).
    chunksize : int, optional
        Rows read at a time; memory use is proportional to it.

    Yields
    ------
    pandas.DataFrame
        The id column, then the chosen columns in the file's order. The index is
        the 1-based data row number in the table (before filtering). Chunks left
        empty by the filters are not yielded.

    Raises
    ------
    InputError
        If the file is missing or unreadable, has no id column, lacks a requested
        column, or ``min_rca`` is given for a table without RCA.
    ValueError
        If ``chunksize`` is not a positive integer or ``min_rca`` is not in [0, 1].

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"ImageID": ["a", "b", "c"], "Dice RCA (Mean)": [0.9, 0.5, 0.8]})
    >>> [chunk.index.tolist() for chunk in iter_chunks(frame, min_rca=0.7, chunksize=2)]
    [[1], [3]]
    """
    check_chunk_options(chunksize, min_rca)
    source = "table" if isinstance(table, pd.DataFrame) else str(table)
    ident, selected = _select(table_columns(table), columns, min_rca, source)
    wanted_ids = None if ids is None else frozenset(map(str, ids))
    try:
        for chunk in _raw_chunks(table, selected, chunksize):
            keep = pd.Series(True, index=chunk.index)
            if min_rca is not None:
                rca = pd.to_numeric(chunk[RCA_COLUMN], errors="coerce")
                keep &= (rca >= min_rca).fillna(False).astype(bool)
            if wanted_ids is not None:
                keep &= chunk[ident].astype(str).isin(wanted_ids)
            if keep.any():
                yield chunk if keep.all() else chunk[keep.to_numpy()]
    except (InputError, MemoryError):
        raise
    except Exception as err:  # a corrupt file surfaces mid-stream as a parser error
        raise InputError(source, f"cannot read: {type(err).__name__}: {err}") from err


def decode_masks(
    row: Mapping[str, object], organs: Iterable[str], *, source: str = "row"
) -> dict[str, np.ndarray]:
    """Decode the masks of ``organs`` from a table row at its :func:`~chexmask.formats.tables.mask_size`.

    Returns
    -------
    dict of str to (H, W) uint8 ndarray
        Organ key (``right_lung``, ``left_lung``, ``heart``) -> {0, 255} mask.

    Raises
    ------
    InputError
        If the size is bad (see :func:`~chexmask.formats.tables.mask_size`), a mask value is missing, or an
        RLE string is malformed (:class:`~chexmask.RLEError`, naming the column).
    """
    height, width = mask_size(row, source=source)
    return {organ: decode_rle(text, height, width, source=where) for organ, (text, where) in _mask_texts(row, organs, source).items()}


def decode_runs(
    row: Mapping[str, object], organs: Iterable[str], *, source: str = "row"
) -> tuple[int, int, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """:func:`decode_masks` as runs (:func:`chexmask.masks.rle.rle_runs`), no mask painted.

    Returns
    -------
    height, width, runs
        The row's frame and, per organ, 0-based ``(starts, lengths)``: what
        :func:`chexmask.measures.measure_runs` takes.

    Raises
    ------
    InputError
        As :func:`decode_masks`.
    """
    height, width = mask_size(row, source=source)
    runs = {organ: rle_runs(text, height, width, source=where) for organ, (text, where) in _mask_texts(row, organs, source).items()}
    return height, width, runs


def _mask_texts(row: Mapping[str, object], organs: Iterable[str], source: str) -> dict[str, tuple[str, str]]:
    """Each organ's RLE text and what it is (``"t.csv row 3, column Heart"``); a missing one is an error."""
    out = {}
    for organ in organs:
        column = MASK_COLUMNS[organ]
        text = row.get(column)
        if not isinstance(text, str):
            raise InputError(f"{source}, column {column}", "mask value is missing")
        out[organ] = (text, f"{source}, column {column}")
    return out
