"""The files a command leaves beside its output: the errors table and the provenance record.

One schema for every command (``docs/segment.md``, "Errors and provenance files"):

- **Errors table** (CSV), :func:`errors_path` beside the output (``<name>.errors.csv``,
  ``<name>`` the output's name without its table suffix), unless a command is given
  another path or writes into a folder (``masks``: ``OUT/errors.csv``): the columns :data:`ERROR_COLUMNS` = ``path, error, reason``,
  one row per input that failed. ``path`` is what failed: an image file, or a table row
  as ``"<table> row <N>"`` (1-based data rows); ``error`` the error type (the exception
  class, e.g. ``UnreadableImageError``, ``RLEError``, or a name such as ``DuplicateId``);
  ``reason`` the problem in words. A command may add columns after these three that
  place the failure further (``chexmask evaluate``: ``comparison, image_id, organ``).
- **Provenance record** (``run.json``): the keys :data:`RUN_KEYS` first, always:
  ``chexmask`` (version), ``command``, ``args``, ``started`` and ``finished`` (UTC, ISO
  8601 to the second), ``seconds`` and ``counts``; a command adds its own keys after
  them (``segment``: the weights, device, fingerprint, output SHA256...).

Both are written atomically (:func:`atomic_write`): a reader sees a whole file or none.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path

from chexmask.formats.table_paths import table_stem

__all__ = ["ERROR_COLUMNS", "RUN_KEYS", "errors_path", "failure", "write_errors", "atomic_write", "utc_iso", "run_record", "write_run_json"]

#: Columns of every errors table, first and in this order.
ERROR_COLUMNS: list[str] = ["path", "error", "reason"]
#: Keys of every provenance record, first and in this order.
RUN_KEYS: list[str] = ["chexmask", "command", "args", "started", "finished", "seconds", "counts"]


def errors_path(out: str | os.PathLike[str]) -> Path:
    """The errors table of a command writing ``out``: ``<name>.errors.csv`` beside it.

    Examples
    --------
    >>> errors_path("runs/m.parquet").as_posix(), errors_path("scores.csv.gz").name
    ('runs/m.errors.csv', 'scores.errors.csv')
    """
    out = Path(out)
    return out.with_name(table_stem(out) + ".errors.csv")


def failure(where: str, exc: Exception) -> tuple[str, str, str]:
    """The ``(path, error, reason)`` of an exception raised while reading ``where``.

    The reason drops ``where`` when the message starts with it (an
    :class:`~chexmask.InputError` names its source), so the row reads once.

    Examples
    --------
    >>> from chexmask import RLEError
    >>> failure("t.csv row 3", RLEError("t.csv row 3, column Heart", "odd number of values"))
    ('t.csv row 3', 'RLEError', 'column Heart: odd number of values')
    """
    text = str(exc)
    reason = text[len(where):].lstrip(",: ") if text.startswith(where) else text
    return where, type(exc).__name__, reason


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write ``path`` through ``write(tmp)``, fsync, then rename: readers see all of it or nothing."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    with open(tmp, "rb") as fh:  # on disk before it is named done (a power cut, not just a kill)
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_errors(path: str | os.PathLike[str], rows: Iterable[Sequence[object]], extra: Sequence[str] = ()) -> None:
    """Write an errors table: :data:`ERROR_COLUMNS`, then the ``extra`` columns (atomically)."""
    import pandas as pd

    from chexmask.formats.tables import write_csv

    table = pd.DataFrame(list(rows), columns=[*ERROR_COLUMNS, *extra], dtype=object)

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            write_csv(table, fh)

    atomic_write(Path(path), write)


def utc_iso(moment: datetime | None = None) -> str:
    """``moment`` (default: now) in UTC, ISO 8601 to the second, e.g. ``2025-01-31T12:00:00+00:00``."""
    return (moment or datetime.now(timezone.utc)).astimezone(timezone.utc).isoformat(timespec="seconds")


def run_record(command: str, args: dict, started: str, seconds: float, counts: dict, **extra) -> dict:
    """A provenance record: :data:`RUN_KEYS` (``finished`` is now), then ``extra``.

    Parameters
    ----------
    command : str
        The ``chexmask`` command (``"segment"``, ``"build"``, ``"masks"``...).
    args : dict
        Its arguments, JSON-serialisable.
    started : str
        :func:`utc_iso` of the start.
    seconds : float
        Wall time of the run.
    counts : dict
        What it did (inputs, written, failed...).
    """
    import chexmask

    return {"chexmask": chexmask.__version__, "command": command, "args": args, "started": started,
            "finished": utc_iso(), "seconds": round(seconds, 3), "counts": counts, **extra}


def write_run_json(path: str | os.PathLike[str], record: dict) -> None:
    """Write a provenance record as JSON (atomically: a killed run leaves the old file or none)."""
    atomic_write(Path(path), lambda p: p.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8"))
