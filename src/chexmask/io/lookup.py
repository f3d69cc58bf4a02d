"""Find the image file of a table row's image id, under a folder or among given paths."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from chexmask._errors import InputError, UnreadableImageError
from chexmask.io.discover import DEFAULT_EXTENSIONS

__all__ = ["ImageLookup", "image_stem", "output_stem"]


def image_stem(name: str) -> str:
    """File name of `name` (``/`` or ``\\`` separated) without an image extension."""
    base = PurePosixPath(name.replace("\\", "/")).name
    return base.rsplit(".", 1)[0] if base.lower().endswith(DEFAULT_EXTENSIONS) else base


def output_stem(image_id: str) -> str:
    """The relative path (no suffix) under which files made for an image id are written.

    Only an image extension is dropped (DICOM UIDs keep their dots); ids that are relative
    paths (CheXpert's) keep their folders. The masks export and the overlays name their
    files by it.

    Raises
    ------
    InputError
        If the id is empty, absolute or has ``..``, ``.`` or empty parts: an id never
        writes outside its output folder.

    Examples
    --------
    >>> output_stem("train/patient1/view1_frontal.jpg"), output_stem("1.2.840.113619")
    ('train/patient1/view1_frontal', '1.2.840.113619')
    """
    text = image_id.replace("\\", "/").strip()
    if text.lower().endswith(DEFAULT_EXTENSIONS):
        text = text[: text.rfind(".")]
    if not text or PurePosixPath(text).is_absolute() or any(p in ("..", ".", "") for p in text.split("/")):
        raise InputError(f"image id {image_id!r}", "cannot be used as a relative output path")
    return text


class ImageLookup:
    """Image files by image id, from a root folder or from a list of paths.

    Parameters
    ----------
    root : str or path-like, optional
        Folder of the images. An id is first tried as ``root/ID``, then as
        ``root/ID.png`` (``.jpg``, ``.jpeg``, ``.dcm``, ``.dicom``, each in lower then
        upper case), then by name among the images found below `root` by one
        recursive walk (:func:`chexmask.io.discover.find_images`, on the first miss).
    paths : iterable of str or path-like, optional
        Image files to match ids against by name instead of walking `root`.
    anywhere : bool, optional
        How an id is matched by name. False (default): against the file name without
        extension, and an id holding ``/`` (a CheXpert relative path) must match the
        end of the image's path. True: only the id's file name counts, wherever the
        file is, and a file of exactly that name wins over files sharing its stem
        (``x.png`` stored as ``x.jpg`` is still found).

    Example
    -------
    With ``images/a/p1.png`` and ``images/b/p2.jpg`` on disk::

        lookup = ImageLookup("images", anywhere=True)
        lookup.find("p2.png")        # Path("images/b/p2.jpg")
        lookup.candidates("ghost")   # []
        ImageLookup(paths=find_images("images")).find("a/p1")  # .../images/a/p1.png
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        paths: Iterable[str | os.PathLike[str]] | None = None,
        *,
        anywhere: bool = False,
    ) -> None:
        if root is None and paths is None:
            raise ValueError("give a root folder or a list of paths")
        self.root = None if root is None else Path(root)
        self.anywhere = anywhere
        self._index: dict[str, list[Path]] | None = None
        if paths is not None:
            self._index = self._build(Path(p) for p in paths)

    @staticmethod
    def _build(paths: Iterable[Path]) -> dict[str, list[Path]]:
        index: dict[str, list[Path]] = {}
        for path in paths:
            index.setdefault(image_stem(path.name), []).append(path)
        return index

    @property
    def paths(self) -> list[Path]:
        """All indexed images, grouped by stem (walks `root` if not done yet)."""
        return [p for group in self._by_stem().values() for p in group]

    def _by_stem(self) -> dict[str, list[Path]]:
        if self._index is None:  # one recursive walk, on the first need only
            from chexmask.io.discover import find_images

            self._index = self._build(find_images(self.root))
        return self._index

    def direct(self, image_id: str) -> Path | None:
        """``root/ID``, else ``root/ID`` plus an image extension, else None (no walk)."""
        if self.root is None:
            return None
        for suffix in ("", *(s for ext in DEFAULT_EXTENSIONS for s in (ext, ext.upper()))):
            candidate = self.root / f"{image_id}{suffix}"
            if candidate.is_file():
                return candidate
        return None

    def candidates(self, image_id: str) -> list[Path]:
        """The image files `image_id` may name: one direct hit, else every name match."""
        hit = self.direct(image_id)
        if hit is not None:
            return [hit]
        found = self._by_stem().get(image_stem(image_id), [])
        if self.anywhere:
            name = PurePosixPath(image_id.replace("\\", "/")).name
            return [p for p in found if p.name == name] or list(found)
        if "/" in image_id:  # a relative path (CheXpert): match the whole of it
            tail = "/" + image_id.lstrip("/")
            found = [p for p in found if p.as_posix().endswith(tail) or p.with_suffix("").as_posix().endswith(tail)]
        return list(found)

    def find(self, image_id: str) -> Path:
        """The one image file of `image_id`.

        Raises
        ------
        UnreadableImageError
            If no file or several files match.
        """
        found = self.candidates(image_id)
        if len(found) == 1:
            return found[0]
        source = self.root / image_id if self.root is not None else image_id
        detail = "none found" if not found else f"{len(found)} match ({', '.join(str(p) for p in found[:3])})"
        raise UnreadableImageError(source, f"no unique image for id {image_id!r}: {detail}")
