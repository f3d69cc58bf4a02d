"""Overlays of a table's rows (the ``chexmask overlays`` command): what a row holds, drawn on its image.

Any CheXmask table with landmarks draws: the published database's rows, CheXmask-U's,
``chexmask segment``'s output, a Label Studio import. Each row is matched to its image
by :func:`chexmask.formats.table_images.map_rows` (by file name without extension; an id
holding ``/`` must match the end of the path), its landmarks are put in the image's frame by
:func:`chexmask.formats.row_frame.row_points_in_image` (the physician layout's 1024 frame
is mapped back; any other mismatch is an error), and the one overlay renderer
(:func:`chexmask.reports.overlay.draw_overlay`) draws it at the path ``segment
--overlays`` would use. Nodes are coloured by the row's ``Landmarks (Std)`` when it has
them; the Parquet output's ``Node Error Radius`` circles are drawn when present. The
caption's flag is the Quality Flag rule (:func:`chexmask.flag.quality_flag`) applied to
the row's ``Estimated Dice`` columns, ``Dice RCA (Mean)`` and node uncertainty, so a
published row shows its RCA and a ``segment`` row shows the flag it was written with.

A bad row (no or several images for its id, an unreadable image, a frame that is not the
image's, malformed landmarks or standard deviations, an id that is not a safe relative
path) becomes a line of ``errors.csv`` in the output folder and the others are drawn;
images given without a row are listed there too.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


from chexmask._errors import ChexmaskError
from chexmask.dataset import Record
from chexmask.estimate.estimator import ESTIMATE_COLUMNS
from chexmask.flag import QualityFlag, quality_flag
from chexmask.formats.landmark_columns import row_node_radius, row_node_std
from chexmask.formats.row_frame import row_points_in_image
from chexmask.formats.runfiles import run_record, utc_iso, write_errors, write_run_json
from chexmask.formats.stream import RCA_COLUMN
from chexmask.formats.table_images import TableRow, map_rows
from chexmask.formats.tables import cell_number
from chexmask.preprocess import to_1024_frame
from chexmask.reports.overlay import draw_overlay, overlay_path

__all__ = ["OverlayRun", "draw_table_overlays", "row_flag"]

@dataclass(frozen=True)
class OverlayRun:
    """What :func:`draw_table_overlays` did: overlays written, rows and images that failed, where."""

    written: int
    failed: int
    out_dir: Path
    errors: Path


def row_flag(row: Mapping[str, object], record: Record) -> QualityFlag:
    """The Quality Flag rule applied to what a row holds: its Estimated Dice, RCA and node uncertainty.

    Parameters
    ----------
    row : mapping
        The row's columns (``Estimated Dice Lungs``/``Heart`` and ``Dice RCA (Mean)``
        are used when present and numeric).
    record : chexmask.dataset.Record
        The row in its image's frame (its ``node_std`` gives the uncertainty).

    Examples
    --------
    >>> import numpy as np
    >>> rec = Record("a", {}, np.zeros((120, 2)), {"Height": 10, "Width": 10})
    >>> row_flag({"Dice RCA (Mean)": 0.62}, rec).flag, row_flag({}, rec).flag
    ('review', 'unknown')
    """
    dice = [cell_number(row.get(c)) for c in ESTIMATE_COLUMNS]
    estimate = dict(zip(("lungs", "heart"), dice)) if None not in dice else None
    u = record.uncertainty
    uncertainty = None if u is None or not math.isfinite(u) else float(to_1024_frame(u, record.height, record.width))
    return quality_flag(estimate, cell_number(row.get(RCA_COLUMN)), uncertainty_px=uncertainty)


def _draw_row(r: TableRow, out_dir: Path) -> Path:
    """Draw one row; returns its overlay. InputError names the row and the problem."""
    path = overlay_path(out_dir, r.image_id)  # an id that would write outside out_dir fails first
    image = r.image()
    points, scale = row_points_in_image(r.row, image.pixels.shape, stated_frame=r.stated_frame, source=r.source)
    std = row_node_std(r.row, source=r.source)
    record = Record(r.image_id, {}, points, {"Height": image.height, "Width": image.width}, None if std is None else std * scale)
    radius = row_node_radius(r.row, source=r.source)
    return draw_overlay(image, record, path, flag=row_flag(r.row, record), error_radius=None if radius is None else radius * scale)


def draw_table_overlays(
    table: str | os.PathLike[str],
    images: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    ids: Iterable[str] | None = None,
    chunksize: int = 1000,
    progress: bool = False,
) -> OverlayRun:
    """Draw the overlay of every row of a table (or of the rows of `ids`) on its image.

    Parameters
    ----------
    table : str or path-like
        CheXmask table (``.csv``, ``.csv.gz``, ``.parquet``) with an id column and
        ``Landmarks`` (or CheXmask-U's ``Landmarks (Mean)``); ``Height``/``Width`` unless
        it is in the physician layout's 1024 frame.
    images : sequence of str or path-like
        Image files, folders or path lists (:func:`chexmask.io.discover.find_images`).
    out_dir : str or path-like
        Output folder: ``<id without suffix>.png`` per row, ``errors.csv``
        (:data:`~chexmask.formats.runfiles.ERROR_COLUMNS` then ``image_id``) and
        ``run.json``.
    ids : iterable of str, optional
        Only these image ids (exact match); images without a row are then not listed.
    chunksize : int
        Rows read at a time.
    progress : bool
        Show a progress bar.

    Returns
    -------
    OverlayRun

    Raises
    ------
    InputError
        The table cannot be read or has no id column, or an input does not exist.
    ChexmaskError
        The output folder cannot be written.
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ChexmaskError(f"cannot create the overlay folder {out}: {exc}") from exc
    start, started = time.time(), utc_iso()
    written, failures = map_rows(table, images, lambda r: _draw_row(r, out), ids=ids, chunksize=chunksize,
                                 progress=progress, desc="overlays")
    errors = out / "errors.csv"
    write_errors(errors, failures, extra=["image_id"])
    args = {"table": str(table), "images": [str(i) for i in images], "out_dir": str(out), "ids": None if ids is None else len(set(ids))}
    write_run_json(out / "run.json", run_record("overlays", args, started, time.time() - start,
                                                {"written": len(written), "failed": len(failures)}))
    return OverlayRun(len(written), len(failures), out, errors)
