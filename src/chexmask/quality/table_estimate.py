"""Estimated Dice of any table's rows, from their landmarks and images (the ``chexmask estimate`` command).

The published CheXmask rows (and CheXmask-U's, a physician table, another tool's output)
carry landmarks but no estimate of ours. Given the images, each row gets the shipped
estimate's ``shape`` variant (:mod:`chexmask.estimate.estimator`): the shape-model and
frame features of its landmarks and the edge evidence at its lung contours
(:func:`chexmask.estimate.contour_contrast.weak_lung_edges`, measured in the
:data:`~chexmask.estimate.contour_contrast.FITTED_FRAME` model frame the estimate was
fitted on). It needs no latent samples, no reference images and no network: the variant
that serves other weights, validated out of source on the failure benchmark
(docs/quality.md). The ``Quality Flag`` is the flag rule (:func:`chexmask.flag.quality_flag`)
on that estimate and, when the row has it, its ``Dice RCA (Mean)``.

A row that cannot be estimated (no or several images for its id, an unreadable image,
a frame that is not the image's, landmarks missing a lung) is a line of the errors
table, and the other rows are estimated.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from chexmask._errors import InputError
from chexmask.anatomy import N_NODES
from chexmask.estimate.contour_contrast import FITTED_FRAME, weak_lung_edges
from chexmask.estimate.estimator import ESTIMATE_COLUMNS, estimate_quality
from chexmask.flag import quality_flag
from chexmask.formats.row_frame import row_points_in_image
from chexmask.formats.runfiles import errors_path, write_errors
from chexmask.formats.stream import RCA_COLUMN, table_columns
from chexmask.formats.table_images import TableRow, map_rows
from chexmask.formats.tables import cell_number, id_column, write_table
from chexmask.io.model_frame import model_frame
from chexmask.preprocess import to_model_frame

__all__ = ["ESTIMATE_TABLE_COLUMNS", "EstimateRun", "estimate_row", "estimate_table"]

#: Columns written after the id column.
ESTIMATE_TABLE_COLUMNS: list[str] = [*ESTIMATE_COLUMNS, "Quality Flag", "Weak Lung Edges"]
def estimate_row(r: TableRow) -> dict[str, object]:
    """The estimate columns of one row (:data:`ESTIMATE_TABLE_COLUMNS`); InputError names the row and the problem."""
    image = r.image()
    points, _ = row_points_in_image(r.row, image.pixels.shape, stated_frame=r.stated_frame, source=r.source)
    if not np.isfinite(points[:N_NODES]).all():
        raise InputError(r.source, "the estimate needs the landmarks of both lungs and the heart; some are missing (NaN)")
    frame, geometry = model_frame(image, FITTED_FRAME)
    edges = weak_lung_edges(frame, to_model_frame(points, geometry))
    result = SimpleNamespace(landmarks=points, node_std=None, height=image.height, width=image.width, weak_lung_edges=edges)
    estimate = estimate_quality(result, None)  # no samples, not our weights: the shape variant
    flag = quality_flag(estimate.dice, cell_number(r.row.get(RCA_COLUMN)))
    return {**{c: round(v, 4) for c, v in estimate.columns().items()}, "Quality Flag": flag.flag, "Weak Lung Edges": round(edges, 4)}


@dataclass(frozen=True)
class EstimateRun:
    """What :func:`estimate_table` wrote: rows estimated and rows (or images) that failed."""

    estimated: int
    failed: int
    out: Path
    errors: Path


def estimate_table(
    table: str | os.PathLike[str],
    images: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    ids: Iterable[str] | None = None,
    errors: str | os.PathLike[str] | None = None,
    chunksize: int = 1000,
    progress: bool = False,
) -> EstimateRun:
    """Estimate the Dice of every row of a table (or of the rows of `ids`) and write them.

    Parameters
    ----------
    table : str or path-like
        CheXmask table with an id column and ``Landmarks`` (or ``Landmarks (Mean)``);
        ``Height``/``Width`` unless it is in the physician layout's 1024 frame.
    images : sequence of str or path-like
        Image files, folders or path lists where the ids are found.
    out : str or path-like
        ``.csv``, ``.csv.gz`` or ``.parquet``: the table's id column, then
        :data:`ESTIMATE_TABLE_COLUMNS`, one row per estimated row, in table order.
    ids : iterable of str, optional
        Only these ids; images without a row are then not listed as errors.
    errors : str or path-like, optional
        Errors CSV (default: beside ``out``, :func:`chexmask.formats.runfiles.errors_path`).
    chunksize, progress
        Rows read at a time; a progress bar.

    Returns
    -------
    EstimateRun

    Raises
    ------
    InputError
        The table cannot be read or has no id column, or an input does not exist.
    """
    ident = id_column(pd.DataFrame(columns=table_columns(table)), source=str(table))
    rows, failures = map_rows(table, images, lambda r: {ident: r.image_id, **estimate_row(r)}, ids=ids,
                              chunksize=chunksize, progress=progress, desc="estimate")
    out = Path(out)
    errors = Path(errors) if errors is not None else errors_path(out)
    write_table(pd.DataFrame(rows, columns=[ident, *ESTIMATE_TABLE_COLUMNS]), out)
    write_errors(errors, failures, extra=["image_id"])
    return EstimateRun(len(rows), len(failures), out, errors)
