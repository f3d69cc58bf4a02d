"""Plan a dataset run: the images to segment, their row ids, shards and chunks.

The work list is the inputs in order (files, folders searched recursively, path lists),
each image a :class:`WorkItem` with its row id; ``--shard I/N`` keeps the images whose
id hashes to I modulo N. :func:`chunks` cuts the list into the fixed chunks that are
the pipeline's unit of writing and resuming.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from chexmask._errors import InputError

__all__ = ["WorkItem", "row_ids", "image_row_id", "parse_shard", "plan_items", "items_from_pairs", "chunks"]


class WorkItem(NamedTuple):
    """One input image: its position in the input order, its row id and its file."""

    index: int
    image_id: str
    path: str




def row_ids(paths: Sequence[Path]) -> list[str]:
    """The row id of each image: its path relative to the deepest folder holding them all.

    The one id rule of ``chexmask segment``, Ray, the demo and ``Segmenter.segment(path)``:
    ``/`` separators and the extension kept, so one file is named by its file name
    (``00000001_000.png``, as in the published ChestX-ray8 rows).

    >>> row_ids([Path("data/a/x.png"), Path("data/b/x.png")]), row_ids([Path("data/a/x.png")])
    (['a/x.png', 'b/x.png'], ['x.png'])
    """
    root = Path(os.path.commonpath([p.parent for p in paths]))
    return [p.relative_to(root).as_posix() for p in paths]


def image_row_id(image) -> str:
    """The row id of an :class:`~chexmask.io.read.XrayImage`: read from a file and not renamed,
    the file's name (:func:`row_ids` of that one file); otherwise its own ``image_id``."""
    from chexmask.io.read import image_id_of

    return row_ids([Path(image.path)])[0] if image.path and image.image_id == image_id_of(image.path) else image.image_id


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``"I/N"`` (0-based: ``0/4`` ... ``3/4``) into ``(I, N)``."""
    try:
        i, n = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like I/N (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard {text}: need N >= 1 and 0 <= I < N (shards are numbered from 0)")
    return i, n


def _shard_of(image_id: str, n: int) -> int:
    return int.from_bytes(hashlib.sha256(image_id.encode()).digest()[:8], "little") % n


def plan_items(inputs: Sequence[str | os.PathLike[str]], shard: tuple[int, int] | None = None) -> list[WorkItem]:
    """The images to segment, in input order, with their row ids.

    The id of an image is :func:`row_ids`' (its path relative to the deepest folder
    holding all inputs; a single folder of PNGs gives file names). ``shard=(i, n)`` keeps
    the images whose id hashes to ``i`` modulo ``n``: deterministic and stable when
    images are added.

    Raises
    ------
    InputError
        An input does not exist, a list file is unreadable, or no image was found.
    """
    from chexmask.io.discover import DEFAULT_EXTENSIONS, find_images

    paths = find_images(list(inputs))
    if not paths:
        raise InputError(", ".join(map(str, inputs)), f"no images found (looked for {', '.join(DEFAULT_EXTENSIONS)} files)")
    items = [WorkItem(i, image_id, str(p)) for i, (image_id, p) in enumerate(zip(row_ids(paths), paths))]
    return _keep_shard(items, shard)


def _keep_shard(items: list[WorkItem], shard: tuple[int, int] | None) -> list[WorkItem]:
    if shard is None:
        return items
    return [it for it in items if _shard_of(it.image_id, shard[1]) == shard[0]]


def items_from_pairs(pairs: Sequence[tuple[str, str]], shard: tuple[int, int] | None = None) -> list[WorkItem]:
    """Work items from explicit ``(image_id, path)`` pairs (a dataset builder's index), in order.

    Raises
    ------
    InputError
        No pairs, or an id that repeats (rows would be ambiguous).
    """
    if not pairs:
        raise InputError("image index", "no images to segment")
    ids = [str(i) for i, _ in pairs]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise InputError("image index", f"image id {dup!r} appears more than once")
    return _keep_shard([WorkItem(k, i, str(p)) for k, (i, p) in enumerate(pairs)], shard)


def chunks(items: list[WorkItem], chunk_size: int) -> list[list[WorkItem]]:
    """``items`` cut into consecutive chunks of ``chunk_size`` (the last may be shorter)."""
    return [items[i : i + chunk_size] for i in range(0, len(items), chunk_size)]
