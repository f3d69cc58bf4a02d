"""What every source provides, and the shared steps of indexing one."""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from chexmask._errors import InputError

__all__ = ["Source", "get_source", "find_metadata", "index_files"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    """A public dataset's conventions.

    Attributes
    ----------
    name : str
        Command-line name (``chestxray8``, ``chexpert``...).
    id_column : str
        The id column of its CheXmask table ("Image Index", "Path", "dicom_id"...).
    extensions : tuple of str
        Image file endings under the dataset root.
    index : callable
        ``index(root) -> DataFrame`` with columns ``id``, ``path`` (absolute) and
        metadata; frontal images only, sorted by id.
    """

    name: str
    id_column: str
    extensions: tuple[str, ...]
    index: Callable[[Path], pd.DataFrame]

    def __call__(self, root: str | os.PathLike) -> pd.DataFrame:
        root = Path(root)
        if not root.is_dir():
            raise InputError(root, f"{self.name} root folder not found")
        return self.index(root)


def get_source(name: str) -> Source:
    """The source called ``name``; an unknown name gets a "did you mean" hint."""
    from chexmask.sources import SOURCES

    key = name.lower().replace("_", "-")
    if key in SOURCES:
        return SOURCES[key]
    close = difflib.get_close_matches(key, list(SOURCES), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown source {name!r}{hint} (choose from {', '.join(SOURCES)})")


def find_metadata(root: Path, names: Iterable[str], what: str) -> Path:
    """The first metadata file called one of ``names`` anywhere under ``root`` (shallowest first)."""
    names = list(names)
    for depth in range(4):
        for name in names:
            hits = sorted(root.glob("/".join(["*"] * depth + [name])))
            if hits:
                return hits[0]
    raise InputError(root, f"no {what} found (looked for {', '.join(names)} up to 3 folders deep)")


def index_files(root: Path, extensions: tuple[str, ...]) -> dict[str, Path]:
    """Map each image file's name to its path, for every file under ``root``.

    The sources split their images over many folders (``images_001/images``,
    ``0``..``54``...); metadata tables name files, not folders. Where a name repeats,
    the first path in sorted order wins.
    """
    from chexmask.io.discover import find_images

    found: dict[str, Path] = {}
    for path in find_images([root], extensions):
        found.setdefault(path.name, path)
    return found


def attach_paths(meta: pd.DataFrame, files: dict[str, Path], file_names: pd.Series, source: str) -> pd.DataFrame:
    """Add the ``path`` column from file names; rows whose image is absent are dropped and logged."""
    paths = file_names.map(lambda n: str(files[n]) if n in files else None)
    missing = int(paths.isna().sum())
    if missing:
        log.warning("%s: %d of %d metadata rows have no image under the root; skipped", source, missing, len(meta))
    out = meta.assign(path=paths)
    return out[out["path"].notna()].sort_values("id", kind="stable").reset_index(drop=True)
