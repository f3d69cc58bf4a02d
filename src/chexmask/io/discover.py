"""Find the image files a run should process, from files, folders and path lists."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from chexmask._errors import InputError

__all__ = ["DEFAULT_EXTENSIONS", "find_images"]

DEFAULT_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".dcm", ".dicom")
_LIST_SUFFIXES = (".csv", ".txt")
_PATH_COLUMNS = ("path", "Path")


def find_images(
    inputs: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    extensions: Sequence[str] = DEFAULT_EXTENSIONS,
) -> list[Path]:
    """List the image files named by files, folders and path lists.

    Parameters
    ----------
    inputs : sequence of str or path-like (or a single one)
        Each input is one of:

        - a folder: searched recursively for files whose name ends with one of
          `extensions` (case-insensitive); hidden files and folders (name
          starting with ``.``) are skipped;
        - a ``.csv`` file: a table with a header row whose column ``path`` or
          ``Path`` (else the first column) holds image paths;
        - a ``.txt`` file: one image path per line; blank lines and lines
          starting with ``#`` are skipped;
        - any other file: taken as an image, whatever its extension.

        Relative paths in a list file are relative to the list file's folder.
    extensions : sequence of str, optional
        File-name endings searched for in folders, with or without the leading
        dot, case-insensitive.

    Returns
    -------
    list of Path
        Absolute paths, sorted and without duplicates. Paths are made absolute
        without resolving symbolic links, so two links to one file both appear.

    Raises
    ------
    InputError
        An input does not exist, or a list file cannot be read or has no path
        column.
    ValueError
        `extensions` is empty or holds an empty string.

    Notes
    -----
    Entries of list files are not checked for existence (that would cost one
    file-system call per image on large datasets); a missing one fails later,
    when read, as :class:`~chexmask.UnreadableImageError`.

    Folders are searched by extension only, so DICOM files without an extension
    inside a folder are not found: list them in a ``.txt``/``.csv`` file or pass
    them as files.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("b.PNG", "a.jpg", "notes.md"):
    ...     _ = (root / name).write_bytes(b"")
    >>> [p.name for p in find_images([root])]
    ['a.jpg', 'b.PNG']
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    endings = _normalise_extensions(extensions)
    found: set[Path] = set()
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found.update(_search_folder(path, endings))
        elif path.is_file():
            if path.suffix.lower() in _LIST_SUFFIXES:
                found.update(_read_list(path))
            else:
                found.add(_absolute(path))
        elif path.exists():
            raise InputError(item, "not a file or folder")
        else:
            raise InputError(item, "no such file or folder")
    return sorted(found)


def _normalise_extensions(extensions: Sequence[str]) -> tuple[str, ...]:
    if isinstance(extensions, str):
        extensions = [extensions]
    endings = []
    for ext in extensions:
        ext = str(ext).strip().lower()
        if ext in ("", "."):
            raise ValueError(f"extensions must not hold an empty extension, got {extensions!r}")
        endings.append(ext if ext.startswith(".") else "." + ext)
    if not endings:
        raise ValueError("extensions must name at least one extension")
    return tuple(endings)


def _absolute(path: Path) -> Path:
    return Path(os.path.normpath(os.path.abspath(path)))


def _search_folder(folder: Path, endings: tuple[str, ...]) -> Iterable[Path]:
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith(".") and name.lower().endswith(endings):
                yield _absolute(Path(dirpath, name))


def _read_list(list_file: Path) -> list[Path]:
    """Paths named in a ``.csv`` or ``.txt`` list, relative ones taken from its folder."""
    try:
        with open(list_file, newline="", encoding="utf-8-sig") as fh:
            if list_file.suffix.lower() == ".csv":
                entries = _csv_entries(list_file, fh)
            else:
                entries = [line.strip() for line in fh]
                entries = [e for e in entries if e and not e.startswith("#")]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(list_file, f"cannot read the path list: {exc}") from exc
    base = list_file.parent
    return [_absolute(base / Path(entry).expanduser()) for entry in entries]


def _csv_entries(list_file: Path, fh) -> list[str]:
    reader = csv.reader(fh)
    header = next(reader, None)
    if not header:
        raise InputError(list_file, "empty CSV: expected a header row with a 'path' column")
    names = [h.strip() for h in header]
    column = next((names.index(c) for c in _PATH_COLUMNS if c in names), 0)
    entries = []
    for row in reader:
        if len(row) > column and row[column].strip():
            entries.append(row[column].strip())
    return entries
