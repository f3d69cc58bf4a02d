"""The image inputs of the uncertainty experiments: files, folders, path lists or a JSRT split.

:func:`resolve_images` turns the inputs of ``chexmask experiment corruption`` and
``chexmask experiment ood`` into image paths.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from chexmask._errors import ChexmaskError

__all__ = ["resolve_images"]


def resolve_images(
    inputs: Sequence[str | os.PathLike[str]],
    split: str | None = None,
    limit: int | None = None,
) -> list[Path]:
    """Image paths from files, folders and path lists; a JSRT-layout folder gives one split.

    Parameters
    ----------
    inputs : sequence of path
        See :func:`chexmask.io.discover.find_images`. A folder holding
        ``splits/<split>.txt`` and ``images/`` stands for ``images/<id>.png`` of the
        ids listed in that split when `split` is given.
    split : str, optional
        ``train``, ``val`` or ``test``.
    limit : int, optional
        Keep the first `limit` paths.

    Raises
    ------
    ChexmaskError
        If a split file is missing or nothing is found.
    """
    from chexmask.io.discover import find_images
    from chexmask.io.layout import read_split

    paths: list[Path] = []
    for item in inputs:
        folder = Path(item)
        if split is not None and folder.is_dir() and (folder / "splits").is_dir():
            if not (folder / "splits" / f"{split}.txt").is_file():
                raise ChexmaskError(f"--split {split!r}: {folder / 'splits' / (split + '.txt')} does not exist")
            paths += [folder / "images" / f"{i}.png" for i in read_split(folder, split)]
        else:
            paths += find_images(item)
    if not paths:
        raise ChexmaskError(f"no images found in {[str(i) for i in inputs]}")
    return paths[:limit] if limit else paths
