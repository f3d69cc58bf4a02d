"""Convert a CheXmask table between CSV and Parquet, chunk by chunk, without loss.

Tables are read with :func:`chexmask.formats.stream.iter_chunks` (bounded memory); a
CSV table gets the Arrow types ``chexmask segment``'s Parquet output gives its columns,
and list and float cells are written back as the text they were read from.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from chexmask._errors import InputError
from chexmask.formats.stream import (
    DEFAULT_CHUNKSIZE,
    check_chunk_options,
    check_table_file,
    iter_chunks,
    table_columns,
)
from chexmask.formats.table_paths import table_format
from chexmask.formats.tables import FLOAT_COLUMNS, INT_COLUMNS, write_csv

__all__ = ["convert_table"]

logger = logging.getLogger(__name__)


def _is_list(arrow_type) -> bool:
    import pyarrow as pa

    return pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type) or pa.types.is_fixed_size_list(arrow_type)


def _is_number(arrow_type) -> bool:
    import pyarrow as pa

    return pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type)


def _number_text(value, item_type) -> str:
    import pyarrow as pa

    if value is None:
        return "null"
    if pa.types.is_integer(item_type):
        return str(int(value))
    value = np.float32(value) if pa.types.is_float32(item_type) else float(value)
    if not np.isfinite(value):
        return "NaN" if np.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    # The shortest text that reads back to the same float32 (resp. float64).
    return str(value) if isinstance(value, np.float32) else repr(value)


def _list_text(value, arrow_type) -> str:
    """A list cell of a Parquet table as a one-line JSON list (``""`` for null)."""
    if value is None or (not isinstance(value, (list, tuple, np.ndarray)) and pd.isna(value)):
        return ""
    item_type = arrow_type.value_type
    if not _is_number(item_type):
        return json.dumps(np.asarray(value).tolist(), separators=(",", ":"))
    return "[" + ",".join(_number_text(v, item_type) for v in value) + "]"


def _parse_list(value: str, where: str) -> list | None:
    if value == "":
        return None
    try:
        items = json.loads(value)
    except ValueError:
        items = None
    if not isinstance(items, list) or not all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in items):
        raise InputError(where, f"not a JSON list of numbers: {value[:60]!r}")
    return items


def _arrow_chunk(chunk: pd.DataFrame, schema, source: str):
    """CSV text chunk -> Arrow table of ``schema``; empty numbers and lists become null."""
    import pyarrow as pa

    arrays = []
    for field in schema:
        values = chunk[field.name].tolist()
        if pa.types.is_string(field.type):
            arrays.append(pa.array(values, type=pa.string()))
            continue
        if _is_list(field.type):
            parsed = [_parse_list(v, f"{source} row {row}, column {field.name}") for row, v in zip(chunk.index, values)]
            arrays.append(pa.array(parsed, type=field.type))
            continue
        convert = float if pa.types.is_floating(field.type) else int
        parsed = []
        for row, value in zip(chunk.index, values):
            if value == "":
                parsed.append(None)
                continue
            try:
                parsed.append(convert(value))
            except ValueError:
                raise InputError(
                    f"{source} row {row}, column {field.name}",
                    f"not {'a number' if convert is float else 'an integer'}: {value!r}",
                ) from None
        arrays.append(pa.array(parsed, type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _csv_schema(columns: list[str]):
    """Arrow schema of a CSV table: the types segment's Parquet output gives its columns
    (float RCA and uncertainty, int sizes and pixel measures, float32 node and latent
    lists, ...), string for every other column."""
    import pyarrow as pa

    from chexmask.formats.records import PRIVATE_COLUMNS, part_schema

    known = {f.name: f.type for f in part_schema("\0", clavicles=True) if f.name not in ("\0", *PRIVATE_COLUMNS)}
    known.update({c: pa.float64() for c in FLOAT_COLUMNS})
    known.update({c: pa.int64() for c in INT_COLUMNS})
    return pa.schema([(c, known.get(c, pa.string())) for c in columns])


def _open_text(path: Path, gz: bool):
    if gz:
        return gzip.open(path, "wt", encoding="utf-8", newline="")
    return open(path, "w", encoding="utf-8", newline="")


def convert_table(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    chunksize: int = 10 * DEFAULT_CHUNKSIZE,
) -> int:
    """Convert a table between CSV and Parquet, chunk by chunk, without loss.

    Parameters
    ----------
    src, dst : str or path-like
        ``.csv``, ``.csv.gz`` or ``.parquet``; the format is chosen by suffix.
        ``dst`` is written to a temporary file first and renamed when complete, so
        a failed conversion leaves no partial output.
    chunksize : int, optional
        Rows held in memory at a time.

    Returns
    -------
    int
        The number of rows written.

    Raises
    ------
    InputError
        If ``src`` is unreadable, or a CSV number column holds a value that is not
        a number (the message names the row and column).
    ValueError
        If ``src`` and ``dst`` are the same file, or ``dst``'s suffix is unknown.

    Notes
    -----
    In Parquet, ``Dice RCA (Mean)``/``(Max)`` are float64, ``Height``/``Width``
    int64 (an empty CSV field becomes null), the other columns of ``chexmask
    segment``'s output get the types it writes them with (the uncertainty and
    measurement numbers, the per-node and latent float32 lists), and every other
    column is a string kept byte for byte. Floats are written back in their shortest
    round-trip form, as the published CSVs hold them; a list cell is written to CSV
    as a one-line JSON list (``[1.5,-0.25]``, each number the shortest text of its
    float32 or float64 value, ``""`` for null) and read back from it. So CSV ->
    Parquet -> CSV reproduces a published file's bytes and Parquet -> CSV -> Parquet
    reproduces the values. CSV is written with ``"\\n"`` line ends and minimal quoting.
    """
    src, dst = Path(src), Path(dst)
    src_kind = check_table_file(src)
    dst_kind = table_format(dst)  # an InputError, which is a ValueError
    if dst.exists() and dst.resolve() == src.resolve():
        raise ValueError(f"dst {dst} is the source table; choose another output path")
    check_chunk_options(chunksize, None)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.partial")
    rows = 0
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if src_kind == "csv":
            schema = _csv_schema(table_columns(src))
        else:
            schema = pq.ParquetFile(src).schema_arrow.remove_metadata()
        chunks = iter_chunks(src, chunksize=chunksize)
        if dst_kind == "parquet":
            with pq.ParquetWriter(tmp, schema) as writer:
                for chunk in chunks:
                    table = (
                        _arrow_chunk(chunk, schema, str(src))
                        if src_kind == "csv"
                        else pa.Table.from_pandas(chunk, schema=schema, preserve_index=False)
                    )
                    writer.write_table(table)
                    rows += len(chunk)
        else:
            lists = {f.name: f.type for f in schema if _is_list(f.type)} if src_kind == "parquet" else {}
            with _open_text(tmp, dst.name.lower().endswith(".gz")) as fh:
                header = True
                for chunk in chunks:
                    if lists:
                        chunk = chunk.assign(**{c: [_list_text(v, t) for v in chunk[c]] for c, t in lists.items()})
                    write_csv(chunk, fh, header=header)
                    header = False
                    rows += len(chunk)
                if header:  # an empty table still gets its header
                    write_csv(pd.DataFrame(columns=schema.names), fh)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    logger.debug("converted %d rows: %s -> %s", rows, src, dst)  # the caller reports it (the CLI: once)
    return rows
