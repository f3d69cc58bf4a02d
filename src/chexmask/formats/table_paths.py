"""A table's format by its file name: one rule for every reader and writer.

``.csv`` and ``.csv.gz`` are CSV, ``.parquet`` is Parquet, matched case-insensitively on
the whole suffix (so ``x.csv.gz`` is a CSV whose :func:`table_stem` is ``x``).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from chexmask._errors import InputError

__all__ = ["TABLE_FORMATS", "is_table_path", "table_format", "table_stem", "output_table_format"]

#: Table suffixes and the format each names, longest first where one ends another.
TABLE_FORMATS: dict[str, str] = {".csv.gz": "csv", ".csv": "csv", ".parquet": "parquet"}
#: What a command's output table may be (no compressed output: it is written in parts).
OUTPUT_SUFFIXES: tuple[str, ...] = (".csv", ".parquet")


def _suffix(path: Path) -> str | None:
    name = path.name.lower()
    return next((s for s in TABLE_FORMATS if name.endswith(s)), None)


def is_table_path(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a table by its suffix (``.csv``, ``.csv.gz``, ``.parquet``)."""
    return _suffix(Path(path)) is not None


def table_format(path: str | os.PathLike[str]) -> str:
    """``"csv"`` or ``"parquet"``, by the name of ``path``.

    Raises
    ------
    InputError
        For any other name, suggesting the closest suffix.

    Examples
    --------
    >>> table_format("ChestX-Ray8.csv.gz"), table_format("t.PARQUET")
    ('csv', 'parquet')
    >>> table_format("t.cvs")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    chexmask._errors.InputError: t.cvs: unknown table format '.cvs' (expected .csv.gz, .csv, .parquet); did you mean '.csv'?
    """
    path = Path(path)
    suffix = _suffix(path)
    if suffix is not None:
        return TABLE_FORMATS[suffix]
    given = "".join(path.suffixes[-2:]) if path.suffixes else ""
    close = difflib.get_close_matches(given.lower(), list(TABLE_FORMATS), n=1, cutoff=0.4)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise InputError(path, f"unknown table format {given or path.name!r} (expected {', '.join(TABLE_FORMATS)}){hint}")


def table_stem(path: str | os.PathLike[str]) -> str:
    """The name of ``path`` without its table suffix (``x.csv.gz`` -> ``x``), or without its last suffix."""
    path = Path(path)
    suffix = _suffix(path)
    return path.name[: -len(suffix)] if suffix else path.name[: len(path.name) - len(path.suffix)]


def output_table_format(out: str | os.PathLike[str], source: str | os.PathLike[str] | None = None) -> str:
    """The format of a command's output table, checked before any work: a ValueError names what is wrong.

    ``out`` must end in ``.csv`` or ``.parquet``, its folder must exist, and it must not be
    the input table ``source``.
    """
    path = Path(out)
    if not path.name.lower().endswith(OUTPUT_SUFFIXES):
        raise ValueError(f"-o {out}: the output must end in .csv or .parquet, got {path.suffix or 'no suffix'!r}")
    if not path.parent.is_dir():
        raise ValueError(f"-o {out}: folder {path.parent} does not exist")
    if source is not None and path.exists() and path.resolve() == Path(source).resolve():
        raise ValueError(f"-o {out} is the input table; choose another output path")
    return table_format(path)
