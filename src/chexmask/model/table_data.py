"""Training data from CheXmask tables: rows with landmarks, their images under a folder.

Any table with an id column, ``Landmarks`` (or CheXmask-U's ``Landmarks (Mean)``) and a frame (``Height``, ``Width``) trains:
the published database's rows, ``chexmask segment``'s output, a Label Studio import.
Each row's landmarks are in its own frame, the size of its image: they are mapped with
the image through the model's padding and resizing. A table without ``Height`` and
``Width`` (the physician layout) is in the documented 1024 frame of the preprocessed
image, which is mapped back to the image's own size first (the reverse of the
reference's preprocessing); any other mismatch between a row's frame and its image is
reported, never guessed.

Which rows validate: the ``Split`` column (``train``, ``val``; ``test`` rows are never
read) when the table has one, else a fixed fraction of the ids chosen by a hash of the
id (:func:`hash_split`), so a row keeps its split whatever the table's order or size.

Organs a row does not carry (NaN landmarks) carry no loss, as for sources that annotate
no heart. With ``corrected_only``, organs the table's ``Corrected`` column (written by
``chexmask import labelstudio``: the organs a reviewer moved) does not list carry no
loss either. A row that cannot train (image missing or unreadable, frame mismatch, bad
landmarks, no organ) is reported as ``(path, error, reason)`` and left out.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from chexmask._errors import ChexmaskError, InputError
from chexmask.anatomy import N_NODES, ORGAN_GROUPS, ORGANS, n_nodes, organ_slices
from chexmask.formats.row_frame import row_points_in_image
from chexmask.formats.runfiles import failure
from chexmask.formats.tables import (
    INT_COLUMNS,
    id_column,
    read_table,
)
from chexmask.io.lookup import ImageLookup
from chexmask.io.read import read_image
from chexmask.masks.fill import landmarks_to_masks
from chexmask.model.data import LandmarkDataset
from chexmask.model.validation import Reference, pack_groups
from chexmask.preprocess import Geometry, pad_resize, to_model_frame

__all__ = ["SPLIT_COLUMN", "CORRECTED_COLUMN", "DEFAULT_VAL_FRACTION", "hash_split", "load_table"]

log = logging.getLogger(__name__)

#: Column that assigns a row to ``train``, ``val`` or ``test``.
SPLIT_COLUMN = "Split"
#: Column listing the organs a reviewer corrected (``right_lung;heart``), written by the Label Studio import.
CORRECTED_COLUMN = "Corrected"
#: Fraction of the ids that validate when a table has no ``Split`` column.
DEFAULT_VAL_FRACTION = 0.1
_SPLITS = ("train", "val", "test")


def hash_split(image_id: str, val_fraction: float = DEFAULT_VAL_FRACTION) -> str:
    """``"val"`` for a fixed ``val_fraction`` of ids, else ``"train"``.

    The first 8 bytes of the id's SHA-1 as a number in [0, 1): below ``val_fraction``
    validates. The same id gets the same split in every table and on every machine.

    Examples
    --------
    >>> hash_split("JPCLN001"), hash_split("JPCLN001", 1.0)
    ('train', 'val')
    """
    u = int.from_bytes(hashlib.sha1(image_id.encode("utf-8")).digest()[:8], "big") / 2.0**64
    return "val" if u < val_fraction else "train"


def _row_splits(df: pd.DataFrame, ids: list[str], source: str, val_fraction: float) -> list[str | None]:
    """Each row's split; None (and a logged reason) for a value that is not a split."""
    if SPLIT_COLUMN not in df.columns:
        return [hash_split(i, val_fraction) for i in ids]
    out = []
    for n, value in enumerate(df[SPLIT_COLUMN].tolist(), start=1):
        text = str(value).strip().lower()
        out.append(text if text in _SPLITS else None)
        if text not in _SPLITS:
            log.warning("%s row %d: %s %r is not one of %s; row left out", source, n, SPLIT_COLUMN, value, ", ".join(_SPLITS))
    return out


def _corrected_organs(value: object, where: str) -> set[str]:
    names = {t.strip() for t in str(value if isinstance(value, str) else "").split(";") if t.strip()}
    unknown = names - set(ORGANS)
    if unknown:
        raise InputError(where, f"column {CORRECTED_COLUMN} names {sorted(unknown)}; organs are {', '.join(ORGANS)}")
    return names


def _row_groups(points: np.ndarray, geom: Geometry) -> dict[str, np.ndarray]:
    """A row's reference masks per organ group: its landmarks filled at the original size, organs it carries only."""
    masks = landmarks_to_masks(np.rint(points), geom.height, geom.width)
    finite = {o: np.isfinite(points[organ_slices()[o]]).all() for o in ORGANS}
    return {group: np.logical_or.reduce([masks[o] > 0 for o in members]) for group, members in ORGAN_GROUPS.items()
            if all(finite.get(o, False) for o in members)}


def load_table(
    table: str | Path,
    images: str | Path,
    split: str,
    size: int,
    *,
    organs: tuple[str, ...] = ORGANS,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    corrected_only: bool = False,
    limit: int | None = None,
    references: bool = False,
) -> tuple[LandmarkDataset, list[tuple[str, str, str]]]:
    """Load the ``split`` rows of a CheXmask table at ``size`` px.

    Parameters
    ----------
    table : str or Path
        CSV or Parquet with an id column, ``Landmarks`` and (optionally) ``Height``,
        ``Width``, ``Split`` and ``Corrected``.
    images : str or Path
        Folder where the ids resolve (:class:`chexmask.io.lookup.ImageLookup`).
    split : {"train", "val"}
    size : int
        Training resolution.
    organs : tuple of str
        The model's organs; organs a table does not hold (the clavicles) are NaN.
    val_fraction : float
        Fraction of ids that validate when there is no ``Split`` column.
    corrected_only : bool
        Train only on the organs the ``Corrected`` column lists.
    limit : int, optional
        The first ``limit`` rows of the split only.
    references : bool
        Keep every row's geometry and the fill of its landmarks at the original size
        (what validation scores against: the row's own masks, in the image's frame).

    Returns
    -------
    LandmarkDataset
        ``sources`` is the table's file name without suffixes.
    list of (path, error, reason)
        The rows of the split that were left out, as in an errors table.
    """
    table = Path(table)
    name = table.name.split(".")[0]
    df = read_table(table)
    ident = id_column(df, source=str(table))
    if corrected_only and CORRECTED_COLUMN not in df.columns:
        raise ChexmaskError(f"{table}: --corrected-only needs a {CORRECTED_COLUMN!r} column (written by chexmask import labelstudio)")
    stated_frame = all(c in df.columns for c in INT_COLUMNS)
    ids = [str(i) for i in df[ident].tolist()]
    splits = _row_splits(df, ids, str(table), val_fraction)
    lookup = ImageLookup(images)
    chosen = [n for n, s in enumerate(splits) if s == split][:limit]
    kept, images_out, targets, problems, refs = [], [], [], [], []
    records = df.to_dict("records")
    for n in chosen:
        row, where = records[n], f"{table} row {n + 1} ({ident} {ids[n]!r})"
        try:
            img = read_image(lookup.find(ids[n]))
            points, _ = row_points_in_image(row, img.pixels.shape, stated_frame=stated_frame, source=where)
            if corrected_only:
                keep = _corrected_organs(row.get(CORRECTED_COLUMN), where)
                for organ in ORGANS:
                    if organ not in keep:
                        points[organ_slices()[organ]] = np.nan
                if np.isnan(points).all():
                    raise InputError(where, f"column {CORRECTED_COLUMN} lists no corrected organ")
        except ChexmaskError as err:
            problems.append(failure(where, err))
            continue
        pixels, geom = pad_resize(img.pixels, size)
        if references:
            refs.append(Reference(geom, pack_groups(_row_groups(points, geom))))
        target = np.full((n_nodes(organs), 2), np.nan)
        target[:N_NODES] = to_model_frame(points, geom) / size  # the CheXmask organs come first in every node order
        kept.append(ids[n])
        images_out.append(pixels)
        targets.append(target)
    data = LandmarkDataset(kept, np.asarray(images_out, np.uint8).reshape(-1, size, size),
                           np.asarray(targets, np.float32).reshape(-1, n_nodes(organs), 2), [name] * len(kept),
                           refs if references else None)
    return data, problems
