"""Measure the masks of any CheXmask table, streamed (the ``chexmask measure`` command).

Each row's run-length masks are read as runs in their ``Height`` x ``Width`` frame and
measured with :func:`chexmask.measures.measure_runs` (cardiothoracic ratio, areas,
widths, heights; the numbers of ``measure_masks``, 5x faster as no mask is painted). A
row that cannot be measured becomes a line of the errors file and the other rows go on;
memory is set by the chunk size, not by the table.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from chexmask._errors import InputError
from chexmask._pool import OrderedPool
from chexmask.anatomy import ORGANS
from chexmask.formats.runfiles import errors_path, failure
from chexmask.formats.stream import DEFAULT_CHUNKSIZE, check_chunk_options
from chexmask.formats.table_paths import output_table_format
from chexmask.formats.tables import MASK_COLUMNS, id_column, write_csv
from chexmask.measures import arrow_types, measure_record, measure_runs

__all__ = ["MeasureRun", "measure_table"]

log = logging.getLogger(__name__)


#: Rows per worker task of :func:`measure_table`.
_ROWS_PER_TASK = 64


@dataclass(frozen=True)
class MeasureRun:
    """What :func:`measure_table` wrote: rows measured, rows that failed, and where."""

    measured: int
    failed: int
    out: Path
    errors: Path
    seconds: float

    @property
    def rows(self) -> int:
        """Table rows read (measured + failed)."""
        return self.measured + self.failed


def _measure_rows(task: list[tuple[int, str, dict]], source: str) -> list[tuple]:
    """Worker task: ``("ok", id, record)`` per good row, ``("error", where, type, reason)`` per bad one."""
    from chexmask.formats.stream import decode_runs

    out = []
    for row, image_id, values in task:
        where = f"{source} row {row}"
        try:
            _, width, runs = decode_runs(values, ORGANS, source=where)  # no mask painted: the runs are measured
            out.append(("ok", image_id, measure_record(measure_runs(runs, width))))
        except InputError as err:  # the row's data is bad: record it, go on
            path, error, reason = failure(where, err)
            out.append(("error", path, error, f"image {image_id!r}: {reason}"))
    return out


def _tasks(chunks, ident: str):
    for chunk in chunks:
        ids = ["" if v is None else str(v) for v in chunk[ident].tolist()]
        records = chunk.drop(columns=[ident]).to_dict("records")
        rows = list(zip(chunk.index.tolist(), ids, records))
        for start in range(0, len(rows), _ROWS_PER_TASK):
            yield rows[start : start + _ROWS_PER_TASK]


def _run(tasks, workers: int, source: str):
    """Results of the tasks in order, at most ``2 * workers`` in flight (0 workers: in this process)."""
    with OrderedPool(workers, preload=("chexmask.formats.measure_table",)) as pool:
        yield from pool.ordered(_measure_rows, ((task, source) for task in tasks))


class _Writer:
    """Stream measure rows into a CSV (``\\n`` line ends, empty = missing) or Parquet file."""

    def __init__(self, path: Path, kind: str, ident: str) -> None:
        import pyarrow as pa

        self.ident = ident
        self.schema = pa.schema([(ident, pa.string()), *arrow_types().items()])
        self._header = True
        self._pq = self._fh = None
        if kind == "parquet":
            import pyarrow.parquet as pq

            self._pq = pq.ParquetWriter(path, self.schema)
        else:
            self._fh = open(path, "w", encoding="utf-8", newline="")

    def write(self, ids: list[str], records: list[dict]) -> None:
        import pandas as pd
        import pyarrow as pa

        table = pa.Table.from_pylist([{self.ident: i, **r} for i, r in zip(ids, records)], schema=self.schema)
        if self._pq is not None:
            if table.num_rows:
                self._pq.write_table(table)
            return
        frame = table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)  # whole pixels stay integers
        write_csv(frame, self._fh, header=self._header)
        self._header = False

    def close(self) -> None:
        if self._pq is not None:
            self._pq.close()
            return
        if self._header:  # no rows: still the header
            self.write([], [])
        self._fh.close()


def measure_table(
    table,
    out: str | os.PathLike[str],
    *,
    errors: str | os.PathLike[str] | None = None,
    workers: int = 0,
    chunksize: int = DEFAULT_CHUNKSIZE,
    progress: bool = False,
) -> MeasureRun:
    """Measure every row of a CheXmask table into a new table (the ``chexmask measure`` command).

    Parameters
    ----------
    table : str, path-like or pandas.DataFrame
        A CheXmask table (published, or written by ``chexmask segment``) or a physician
        table: ``.csv``, ``.csv.gz``, ``.parquet`` or a frame. Read in chunks, so memory
        does not grow with the table.
    out : str or path-like
        ``.csv`` or ``.parquet``: the table's id column, then :data:`~chexmask.measures.MEASURE_COLUMNS`,
        one row per measured row, in table order. Written to a temporary file and
        renamed when complete.
    errors : str or path-like, optional
        Errors CSV (``path, error, reason`` as ``chexmask segment`` writes it; ``path``
        names the table row); default ``OUT``'s name with ``.errors.csv``.
    workers : int
        Worker processes decoding and measuring (0: none, in this process).
    chunksize : int
        Rows read at a time (memory is proportional to it).
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    MeasureRun

    Raises
    ------
    InputError
        The table cannot be read, has no id column or lacks a mask column.
    ValueError
        A bad output path, ``workers`` or ``chunksize``.
    ChexmaskError
        A worker process died.

    Notes
    -----
    The masks are decoded from their run-length columns at ``Height`` x ``Width`` (1024
    x 1024 for physician tables, which have no size columns). Tables hold no pixel
    spacing, so the mm columns are empty. A row that cannot be measured (malformed RLE,
    a missing mask, a bad size) goes to the errors file and the other rows are measured.
    """
    import time

    import pandas as pd
    from tqdm import tqdm

    from chexmask.formats.runfiles import atomic_write, write_errors
    from chexmask.formats.stream import count_rows, iter_chunks, table_columns

    start = time.perf_counter()
    out = Path(out)
    kind = output_table_format(out, table if isinstance(table, (str, os.PathLike)) else None)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"--workers must be >= 0 (0 = no worker processes), got {workers!r}")
    check_chunk_options(chunksize, None)
    source = str(table) if isinstance(table, (str, os.PathLike)) else "table"
    header = table_columns(table)
    ident = id_column(pd.DataFrame(columns=header), source=source)
    missing = [c for c in MASK_COLUMNS.values() if c not in header]
    if missing:
        raise InputError(source, f"missing mask column(s) {missing}; found {header}")
    columns = [*MASK_COLUMNS.values(), *(c for c in ("Height", "Width") if c in header)]
    chunks = iter_chunks(table, columns=columns, chunksize=chunksize)
    errors = Path(errors) if errors is not None else errors_path(out)
    failures: list[list[str]] = []
    measured = 0

    def write(tmp: Path) -> None:
        nonlocal measured
        writer = _Writer(tmp, kind, ident)
        try:
            with tqdm(total=count_rows(table), disable=not progress, unit="row", desc="measure") as bar:
                for results in _run(_tasks(chunks, ident), workers, source):
                    good = [r for r in results if r[0] == "ok"]
                    for bad in (r for r in results if r[0] == "error"):
                        log.debug("%s: %s", bad[1], bad[3])  # every one is in the errors file
                        failures.append(list(bad[1:]))
                    writer.write([r[1] for r in good], [r[2] for r in good])
                    measured += len(good)
                    bar.update(len(results))
        except BaseException:  # an unreadable table, a dead worker, Ctrl+C: leave no partial file
            writer.close()
            tmp.unlink(missing_ok=True)
            raise
        writer.close()

    atomic_write(out, write)
    write_errors(errors, failures)
    return MeasureRun(measured, len(failures), out, errors, time.perf_counter() - start)
