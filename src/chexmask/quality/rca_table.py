"""Score the masks of a CheXmask table by RCA, row by row (the ``chexmask rca`` command).

A bad row (no image for its id, an unreadable image, masks of the wrong size, malformed
RLE, an empty mask) becomes a record in the errors table and the other rows are scored;
images given without a table row are recorded too.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from chexmask._errors import InputError
from chexmask.formats.runfiles import ERROR_COLUMNS, errors_path, write_errors
from chexmask.io.read import XrayImage
from chexmask.quality.atlas import open_atlas
from chexmask.quality.rca import RCAResult, RCAScorer

__all__ = ["score_table", "run_rca", "RCARun"]

log = logging.getLogger(__name__)

def _row_masks(row: dict, image: XrayImage, source: str) -> dict[str, np.ndarray]:
    """The row's masks, decoded in the row's own frame, which must be the image's."""
    from chexmask.formats.stream import decode_masks
    from chexmask.formats.tables import MASK_COLUMNS, mask_size

    h, w = mask_size(row, source=source)
    if (h, w) != (image.height, image.width):
        raise InputError(source, f"masks are {h}x{w} (Height x Width) but the image {image.path} is {image.height}x{image.width}")
    return decode_masks(row, MASK_COLUMNS, source=source)


def score_table(
    images: Sequence[str | os.PathLike[str]],
    table: str | os.PathLike[str],
    scorer: RCAScorer,
    id_column: str | None = None,
    progress: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """RCA scores of the masks of a CheXmask table, one row at a time.

    Parameters
    ----------
    images : sequence of str or path-like
        Image files, folders or path lists (see :func:`chexmask.io.discover.find_images`).
    table : str or path-like
        CheXmask CSV or Parquet with the ``Right Lung``, ``Left Lung`` and ``Heart`` RLE
        columns (and ``Height``/``Width`` when present).
    scorer : chexmask.quality.rca.RCAScorer
    id_column : str, optional
        The table's image id column (default: found by
        :func:`chexmask.formats.tables.id_column`). A row matches the image whose file
        name without extension is the id; an id holding ``/`` must match the end of the
        image's path.
    progress : bool
        Show a progress bar.

    Returns
    -------
    scores : pandas.DataFrame
        One row per scored table row: the id column, the columns of
        :meth:`RCAResult.columns` and ``RCA References``.
    errors : pandas.DataFrame
        The errors table of every command (:data:`chexmask.formats.runfiles.ERROR_COLUMNS`
        ``path, error, reason``, ``path`` being ``"<table> row N"`` or the image file),
        then ``image_id`` and ``image``: table rows that could not be scored (no or
        ambiguous image, unreadable image, masks of the wrong size, malformed RLE, empty
        mask) and images with no table row.

    Raises
    ------
    InputError
        If the table cannot be read or has no such id column, or an input does not exist.
    """
    from tqdm import tqdm

    from chexmask.formats.tables import id_column as find_id_column
    from chexmask.formats.tables import read_table
    from chexmask.io.discover import find_images
    from chexmask.io.lookup import ImageLookup, image_stem
    from chexmask.io.read import read_image

    df = read_table(table)
    column = id_column or find_id_column(df, source=str(table))
    if column not in df.columns:
        raise InputError(table, f"no id column {column!r}; columns are {[str(c) for c in df.columns]}")
    lookup = ImageLookup(paths=find_images(images))
    scores, errors, used = [], [], set()
    for i, row in enumerate(tqdm(df.to_dict("records"), disable=not progress, unit="row")):
        row_id, source = str(row[column]), f"{table} row {i + 1}"
        found = lookup.candidates(row_id)
        used.update(found)
        try:
            if len(found) != 1:
                names = ", ".join(str(p) for p in found[:3])
                raise InputError(source, f"no image given for id {row_id!r}" if not found else f"id {row_id!r} matches {len(found)} images ({names})")
            image = read_image(found[0])
            result = scorer.score(image, _row_masks(row, image, source))
        except InputError as exc:
            log.debug("%s", exc)  # the errors file holds it
            reason = exc.reason if exc.source.startswith(str(table)) else str(exc)
            errors.append({"path": source, "error": type(exc).__name__, "reason": reason, "image_id": row_id,
                           "image": str(found[0]) if len(found) == 1 else ""})
            continue
        scores.append({column: row_id, **result.columns(), "RCA References": " ".join(result.references)})
    errors += [{"path": str(p), "error": "InputError", "reason": "no row in the table for this image", "image_id": image_stem(p.name),
                "image": str(p)} for p in lookup.paths if p not in used]
    columns = [column, *RCAResult.column_names(), "RCA References"]
    return pd.DataFrame(scores, columns=columns), pd.DataFrame(errors, columns=[*ERROR_COLUMNS, "image_id", "image"])


@dataclass(frozen=True)
class RCARun:
    """What :func:`run_rca` wrote: how many rows were scored and how many failed."""

    scored: int
    failed: int
    out: Path
    errors: Path


def run_rca(
    images: Sequence[str | os.PathLike[str]],
    table: str | os.PathLike[str],
    atlas: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    errors: str | os.PathLike[str] | None = None,
    id_column: str | None = None,
    k: int = 5,
    embedding: str = "latent",
    method: str = "affine+dis",
    weights: str | os.PathLike[str] | None = None,
    device: str = "auto",
    save_atlas: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> RCARun:
    """Score a table's masks by RCA and write the scores and the errors (``chexmask rca``).

    Parameters
    ----------
    images, table, id_column, progress
        As for :func:`score_table`.
    atlas : str, path-like or sequence of them
        JSRT-layout folders (a string may list several, comma-separated: the atlas is
        built from their train splits once, then cached; see
        :func:`chexmask.quality.atlas.open_atlas`) or an atlas ``.npz`` written by
        :meth:`chexmask.quality.atlas.Atlas.save`.
    out : str or path-like
        Scores table, ``.csv``, ``.csv.gz`` or ``.parquet``.
    errors : str or path-like, optional
        Errors CSV; default ``OUT``'s name without its table suffix + ``.errors.csv``
        (:func:`chexmask.formats.runfiles.errors_path`).
    k, embedding, method
        As for :class:`~chexmask.quality.rca.RCAScorer`.
    weights : str or path-like, optional
        Model for ``embedding="latent"`` (default: the shipped model).
    device : str
        Torch device of the model.
    save_atlas : str or path-like, optional
        Also write the atlas (with its latents) here, for later runs.

    Returns
    -------
    RCARun

    Raises
    ------
    InputError, ChexmaskError
        The table, the atlas or the weights cannot be used (nothing is written).
    """
    from chexmask.formats.tables import write_table

    segmenter = None
    if embedding == "latent":
        from chexmask.inference.segmenter import Segmenter

        segmenter = Segmenter(weights, device=device, uncertainty=0) if weights is not None else Segmenter(device=device, uncertainty=0)
    scorer = RCAScorer(open_atlas(atlas, segmenter, progress=progress), k=k, segmenter=segmenter, embedding=embedding, method=method)
    if save_atlas is not None:
        scorer.atlas.save(save_atlas)
    scores, failed = score_table(images, table, scorer, id_column=id_column, progress=progress)
    out = Path(out)
    errors = Path(errors) if errors is not None else errors_path(out)
    write_table(scores, out)
    write_errors(errors, failed.itertuples(index=False, name=None), extra=list(failed.columns[len(ERROR_COLUMNS):]))
    return RCARun(len(scores), len(failed), out, errors)
