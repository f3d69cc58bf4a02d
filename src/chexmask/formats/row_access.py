"""Random access to the rows of a CheXmask table, after filtering.

An uncompressed CSV is indexed by byte offset (one pass, 8 bytes per row) and a row
is read from the file when asked for; Parquet is held in Arrow memory; frames and
``.csv.gz`` (no random access) are held as frames. :func:`open_rows` picks the way.
"""

from __future__ import annotations

import csv
import io
import os
from array import array
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chexmask._errors import InputError
from chexmask.formats.stream import RCA_COLUMN, TableSource, iter_chunks, table_columns

__all__ = ["open_rows"]


def _index_csv(path: Path) -> tuple[list[str], np.ndarray]:
    """Header and byte offsets of the data records of an uncompressed CSV.

    A record ends at a newline outside quotes (an even number of ``"`` so far), so
    quoted fields may hold newlines; blank lines are skipped, as pandas does.
    """
    offsets, header = array("q"), None
    with open(path, "rb") as fh:
        pos, start, quotes, parts = 0, -1, 0, []
        for line in fh:
            if start < 0:
                if not line.strip(b"\r\n"):
                    pos += len(line)
                    continue
                start, quotes = pos, 0
            quotes += line.count(b'"')
            pos += len(line)
            if header is None:
                parts.append(line)
            if quotes % 2 == 0:
                if header is None:
                    header = _parse_record(b"".join(parts), "utf-8-sig")
                else:
                    offsets.append(start)
                start = -1
    if header is None:
        raise InputError(path, "empty CSV: no header")
    return header, np.frombuffer(offsets, dtype=np.int64).copy()


def _parse_record(raw: bytes, encoding: str = "utf-8") -> list[str]:
    return next(csv.reader(io.StringIO(raw.decode(encoding), newline="")))


class _CsvRows:
    """Rows of an uncompressed CSV read on demand by byte offset."""

    def __init__(self, path: Path, header: list[str], offsets: np.ndarray) -> None:
        self.path, self.header, self.offsets = path, header, offsets
        self._fh, self._pid = None, -1

    def __getstate__(self):  # file handles do not cross processes
        return {**self.__dict__, "_fh": None, "_pid": -1}

    def __del__(self) -> None:
        if self._fh is not None:
            self._fh.close()

    def __len__(self) -> int:
        return len(self.offsets)

    def get(self, i: int) -> dict[str, Any]:
        if self._fh is None or self._pid != os.getpid():
            if self._fh is not None:  # a forked worker: close its copy, open its own
                self._fh.close()
            self._fh, self._pid = open(self.path, "rb"), os.getpid()
        self._fh.seek(int(self.offsets[i]))
        raw = self._fh.readline()
        while raw.count(b'"') % 2 and (more := self._fh.readline()):
            raw += more
        fields = _parse_record(raw)
        if len(fields) != len(self.header):
            raise InputError(
                f"{self.path} at byte {self.offsets[i]}",
                f"{len(fields)} fields, header has {len(self.header)}",
            )
        return dict(zip(self.header, fields))


class _ArrowRows:
    """Rows of an Arrow table (Parquet kept in Arrow memory, no Python objects)."""

    def __init__(self, table) -> None:
        self.table = table

    def __len__(self) -> int:
        return self.table.num_rows

    def get(self, i: int) -> dict[str, Any]:
        return self.table.slice(i, 1).to_pylist()[0]


class _FrameRows(_ArrowRows):
    def get(self, i: int) -> dict[str, Any]:
        return self.table.iloc[i].to_dict()

    def __len__(self) -> int:
        return len(self.table)


def _passing_rows(table: TableSource, min_rca, ids, chunksize: int) -> np.ndarray:
    """1-based numbers of the rows passing the filters, reading only the id and RCA."""
    wanted = [RCA_COLUMN] if min_rca is not None else []
    chunks = iter_chunks(table, columns=wanted, min_rca=min_rca, ids=ids, chunksize=chunksize)
    return np.concatenate([np.zeros(0, np.int64), *(c.index.to_numpy(np.int64) for c in chunks)])


def open_rows(table: TableSource, min_rca, ids, chunksize: int) -> tuple[Any, np.ndarray]:
    """Random-access rows of a table after filtering, and their 1-based row numbers.

    Parameters
    ----------
    table : str, path-like or pandas.DataFrame
        A CheXmask or physician table.
    min_rca, ids, chunksize
        The filters and chunk size of :func:`chexmask.formats.stream.iter_chunks`.

    Returns
    -------
    rows : object
        ``len(rows)`` rows, ``rows.get(i)`` the ``i``-th as a dict column -> value.
    numbers : (N,) int64 ndarray
        The 1-based table row of each.
    """
    filtered = min_rca is not None or ids is not None
    path = None if isinstance(table, pd.DataFrame) else Path(table)
    kind = "frame" if path is None else path.name.lower().rsplit(".", 1)[-1]
    if path is not None and kind in ("csv", "parquet") and path.is_file():
        if kind == "csv":
            header, offsets = _index_csv(path)
            total = len(offsets)
        else:
            import pyarrow.parquet as pq

            arrow = pq.read_table(path)
            total = arrow.num_rows
        numbers = _passing_rows(path, min_rca, ids, chunksize) if filtered else np.arange(1, total + 1)
        if len(numbers) and numbers[-1] > total:
            raise InputError(path, "rows could not be indexed (malformed quoting?)")
        if kind == "csv":
            return _CsvRows(path, header, offsets[numbers - 1]), numbers
        return _ArrowRows(arrow.take(numbers - 1) if filtered else arrow), numbers
    # Frames, and compressed CSV (no random access): held in memory.
    chunks = list(iter_chunks(table, min_rca=min_rca, ids=ids, chunksize=chunksize))
    if not chunks:
        return _FrameRows(pd.DataFrame(columns=table_columns(table))), np.zeros(0, np.int64)
    frame = pd.concat(chunks)
    return _FrameRows(frame), frame.index.to_numpy(np.int64)
