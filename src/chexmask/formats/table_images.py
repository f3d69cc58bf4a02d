"""A table's rows with their images, one at a time: the loop of every command that reads both.

``chexmask overlays`` and ``chexmask estimate`` read a CheXmask table and the images its
ids name. :func:`map_rows` streams the rows (:func:`chexmask.formats.stream.iter_rows`),
gives each to a function as a :class:`TableRow` that finds and reads its image on demand
(:meth:`chexmask.io.lookup.ImageLookup.find`: by file name without extension; an id holding
``/`` must match the end of the path), and turns every :class:`~chexmask.InputError` into
a line of the errors table naming the row, so one bad row never stops the others. Images
given without a row are listed too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from chexmask._errors import InputError
from chexmask.formats.stream import count_rows, iter_rows, table_columns
from chexmask.formats.tables import INT_COLUMNS
from chexmask.io.discover import find_images
from chexmask.io.lookup import ImageLookup, image_stem
from chexmask.io.read import XrayImage, read_image

__all__ = ["TableRow", "map_rows"]

T = TypeVar("T")


@dataclass
class TableRow:
    """One row of a table, and the way to its image.

    Attributes
    ----------
    number : int
        1-based row number.
    image_id : str
    row : dict
        The row's other columns.
    source : str
        ``"<table> row N"``, what errors name.
    stated_frame : bool
        Whether the table has ``Height`` and ``Width`` (else it is in the 1024 frame).
    """

    number: int
    image_id: str
    row: dict
    source: str
    stated_frame: bool
    _lookup: ImageLookup = field(repr=False)
    _used: set = field(repr=False)

    def image(self) -> XrayImage:
        """Find and read the row's image; InputError when there is none, several, or it does not read."""
        self._used.update(self._lookup.candidates(self.image_id))
        return read_image(self._lookup.find(self.image_id))


def map_rows(
    table: str | os.PathLike[str],
    images: Sequence[str | os.PathLike[str]],
    work: Callable[[TableRow], T],
    *,
    ids: Iterable[str] | None = None,
    chunksize: int = 1000,
    progress: bool = False,
    desc: str = "rows",
) -> tuple[list[T], list[tuple[str, str, str, str]]]:
    """``work`` of every row (or of the rows of ``ids``); rows it refuses become errors.

    Parameters
    ----------
    table : str or path-like
        A CheXmask table (``.csv``, ``.csv.gz``, ``.parquet``) with an id column.
    images : sequence of str or path-like
        Image files, folders or path lists (:func:`chexmask.io.discover.find_images`).
    work : callable
        ``work(TableRow) -> result``; an :class:`~chexmask.InputError` it raises is the row's error.
    ids : iterable of str, optional
        Only these ids (exact match); images without a row are then not listed.
    chunksize : int
        Rows read at a time.
    progress : bool
        Show a progress bar (``desc`` names it).

    Returns
    -------
    results : list
        ``work``'s results, in table order.
    errors : list of (path, error, reason, image_id)
        :data:`~chexmask.formats.runfiles.ERROR_COLUMNS` then ``image_id``: ``path`` is
        ``"<table> row N"`` for a row, the file for an image without a row.

    Raises
    ------
    InputError
        The table cannot be read or has no id column, or an input does not exist.
    """
    from tqdm import tqdm

    source = str(table)
    stated_frame = all(c in table_columns(table) for c in INT_COLUMNS)
    ids = None if ids is None else frozenset(map(str, ids))
    lookup = ImageLookup(paths=find_images(images))
    results, errors, used = [], [], set()
    total = count_rows(table) if ids is None else len(ids)
    with tqdm(total=total, disable=not progress, unit="row", desc=desc) as bar:
        for number, image_id, row in iter_rows(table, ids=ids, chunksize=chunksize):
            where = f"{source} row {number}"
            try:
                results.append(work(TableRow(number, image_id, row, where, stated_frame, lookup, used)))
            except InputError as exc:
                reason = exc.reason if exc.source.startswith(source) else str(exc)
                errors.append((where, type(exc).__name__, reason, image_id))
            bar.update(1)
    if ids is None:
        errors += [(str(p), "InputError", "no row in the table for this image", image_stem(p.name)) for p in lookup.paths if p not in used]
    return results, errors
