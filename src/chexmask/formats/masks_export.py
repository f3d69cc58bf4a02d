"""Export the masks of a CheXmask table, decoded and written in parallel.

Masks are decoded at the original resolution of each row (``Height`` x ``Width``;
1024 x 1024 for physician-corrected tables) and written by one of the writers of
:data:`chexmask.formats.mask_writers.WRITERS` (PNG, NPZ, NIfTI or COCO; every organ
stays its own mask).

Each writer's docstring gives its file layout; ``docs/database.md`` has them in a
table. Every run also writes ``errors.csv`` (``path, error, reason`` for each row that
could not be written, ``path`` naming the table row) and ``run.json`` (version, command,
options, UTC times, counts): the errors and provenance files of every command
(:mod:`chexmask.formats.runfiles`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from chexmask._errors import InputError
from chexmask._pool import OrderedPool
from chexmask.anatomy import ORGANS
from chexmask.formats.mask_writers import MaskWriter, get_writer
from chexmask.formats.runfiles import (
    failure,
    run_record,
    utc_iso,
    write_errors,
    write_run_json,
)
from chexmask.formats.stream import (
    DEFAULT_CHUNKSIZE,
    TableSource,
    count_rows,
    decode_masks,
    iter_chunks,
    table_columns,
)
from chexmask.formats.tables import MASK_COLUMNS, id_column
from chexmask.io.lookup import output_stem

__all__ = [
    "ExportSummary",
    "export_masks",
]

logger = logging.getLogger(__name__)

_ROWS_PER_TASK = 8


@dataclass(frozen=True)
class ExportSummary:
    """What :func:`export_masks` did.

    Attributes
    ----------
    written, failed : int
        Rows written; rows recorded in ``errors_path`` and skipped.
    out_dir, errors_path : pathlib.Path
    seconds : float
    """

    written: int
    failed: int
    out_dir: Path
    errors_path: Path
    seconds: float


_WORKER: dict[str, Any] = {}


def _init_worker(fmt: str, out_dir: str, organs: tuple[str, ...], source: str) -> None:
    _WORKER.update(writer=get_writer(fmt)(Path(out_dir), organs), source=source)


def _write_rows(rows: list[tuple[int, str, str, dict[str, Any]]]) -> list[tuple]:
    """Worker task: decode and write rows; bad rows come back as error records."""
    writer: MaskWriter = _WORKER["writer"]
    out = []
    for row, image_id, stem, values in rows:
        where = f"{_WORKER['source']} row {row}"
        try:
            masks = decode_masks(values, writer.organs, source=where)
            out.append(("ok", row, image_id, writer.write(stem, image_id, masks)))
        except InputError as err:  # the row's data is bad: record it, go on
            out.append(_bad_row(where, image_id, err))
    return out


def _bad_row(where: str, image_id: str, err: Exception) -> tuple:
    """``("error", path, error, reason)``: a row of the errors table (:data:`~chexmask.formats.runfiles.ERROR_COLUMNS`)."""
    path, error, reason = failure(where, err)
    return ("error", path, error, f"image {image_id!r}: {reason}")


def _tasks(
    chunks: Iterator, ident: str, seen: set[str], bad: list[tuple], source: str
) -> Iterator[list[tuple[int, str, str, dict[str, Any]]]]:
    task = []
    for chunk in chunks:
        ids = chunk[ident].tolist()
        records = chunk.drop(columns=[ident]).to_dict("records")
        for row, image_id, values in zip(chunk.index.tolist(), ids, records):
            image_id = "" if image_id is None else str(image_id)
            try:
                stem = output_stem(image_id)
            except InputError as err:
                bad.append(_bad_row(f"{source} row {row}", image_id, err))
                continue
            if stem in seen:
                bad.append(("error", f"{source} row {row}", "DuplicateId",
                            f"image {image_id!r}: output {stem!r} was already written by an earlier row"))
                continue
            seen.add(stem)
            task.append((row, image_id, stem, values))
            if len(task) == _ROWS_PER_TASK:
                yield task
                task = []
    if task:
        yield task


def _run(tasks: Iterable[list], workers: int, init_args: tuple) -> Iterator[list[tuple]]:
    """Results of the tasks in submission order, at most 2 x workers in flight (0 workers: in this process)."""
    if workers == 0:
        _init_worker(*init_args)
    with OrderedPool(workers, initializer=_init_worker, initargs=init_args, preload=("chexmask.formats.masks_export",),
                     died="rerun with fewer --workers or a smaller --chunk-size") as pool:
        yield from pool.ordered(_write_rows, ((task,) for task in tasks))


def export_masks(
    table: TableSource,
    out_dir: str | os.PathLike[str],
    *,
    fmt: str = "png",
    organs: Sequence[str] = ORGANS,
    min_rca: float | None = None,
    ids: Iterable[str] | None = None,
    workers: int = 0,
    chunksize: int = DEFAULT_CHUNKSIZE,
    progress: bool = False,
) -> ExportSummary:
    """Decode the masks of a CheXmask table and write them in one format.

    Parameters
    ----------
    table : str, path-like or pandas.DataFrame
        A CheXmask or physician table (``.csv``, ``.csv.gz``, ``.parquet``), read in
        chunks of ``chunksize`` rows, so memory does not grow with the table.
    out_dir : str or path-like
        Output folder (created). See the module notes for the layout of each format.
    fmt : {"png", "npz", "nifti", "coco"}, optional
        A name in :data:`chexmask.formats.mask_writers.WRITERS`. ``"nifti"`` needs nibabel.
    organs : sequence of str, optional
        Organ keys to write (default: right_lung, left_lung, heart).
    min_rca : float, optional
        Write only rows with ``Dice RCA (Mean)`` at least this (0.7 is the
        reference's threshold).
    ids : iterable of str, optional
        Write only rows with these image ids (exact match).
    workers : int, optional
        Worker processes decoding and writing (0: none, in this process).
    chunksize : int, optional
        Rows read at a time.
    progress : bool, optional
        Show a progress bar on stderr.

    Returns
    -------
    ExportSummary

    Raises
    ------
    InputError
        If the table cannot be read or lacks a needed column (see
        :func:`chexmask.formats.stream.iter_chunks`).
    ValueError
        If ``fmt``, an organ, ``workers``, ``chunksize`` or ``min_rca`` is invalid.
    ImportError
        If ``fmt="nifti"`` and nibabel is not installed.
    ChexmaskError
        If a worker process dies.

    Notes
    -----
    A row whose masks cannot be written (malformed RLE, missing or bad size, an
    id that is not a safe relative path, an id already written) is recorded in
    ``errors.csv`` and skipped; the other rows are written. Files are written in
    table order per worker; COCO image and annotation ids follow table order.
    """
    writer_cls = get_writer(fmt)
    organs = tuple(organs)
    unknown = [o for o in organs if o not in MASK_COLUMNS]
    if unknown or not organs:
        raise ValueError(f"organs must be a non-empty subset of {list(ORGANS)}, got {list(organs)}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"--workers must be >= 0 (0 = no worker processes), got {workers!r}")
    ids = None if ids is None else frozenset(map(str, ids))
    source = "table" if not isinstance(table, (str, os.PathLike)) else str(table)
    header = table_columns(table)
    ident = id_column(pd.DataFrame(columns=header), source=source)
    columns = [MASK_COLUMNS[o] for o in organs] + [c for c in ("Height", "Width") if c in header]
    chunks = iter_chunks(table, columns=columns, min_rca=min_rca, ids=ids, chunksize=chunksize)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    writer = writer_cls(out, organs)  # fails early (e.g. nibabel missing)
    errors_path = out / "errors.csv"
    start, started = time.time(), utc_iso()
    written = 0
    bad: list[tuple] = []
    failures: list[tuple] = []
    from tqdm import tqdm

    total = count_rows(table) if min_rca is None and ids is None else None
    with tqdm(total=total, disable=not progress, unit="row", desc=f"masks -> {fmt}") as bar:

        def record(results: Sequence[tuple]) -> None:
            nonlocal written
            for result in results:
                if result[0] == "ok":
                    writer.add(result[2], result[3])
                    written += 1
                else:
                    failures.append(result[1:])
                    logger.debug("skipped %s: %s", result[1], result[3])  # every one is in errors.csv
            bar.update(len(results))

        tasks = _tasks(chunks, ident, set(), bad, source)
        for batch in _run(tasks, workers, (fmt, str(out), organs, source)):
            record([*bad, *batch])
            bad.clear()
        record(bad)  # rows rejected after the last task
        writer.finish()
    write_errors(errors_path, failures)
    failed = len(failures)
    seconds = time.time() - start
    args = {"table": source, "out_dir": str(out), "format": fmt, "organs": list(organs), "min_rca": min_rca,
            "ids": None if ids is None else len(ids), "workers": workers, "chunksize": chunksize}
    write_run_json(out / "run.json", run_record("masks", args, started, seconds, {"written": written, "failed": failed}))
    return ExportSummary(written, failed, out, errors_path, seconds)
