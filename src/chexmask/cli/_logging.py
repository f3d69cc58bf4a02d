"""How the commands print messages: one plain line each, on stderr, never twice.

Results (tables, summaries, "wrote ...") are echoed to stdout by the commands. Library
messages come through the ``chexmask`` logger: ``message`` for INFO, ``warning:
message`` and ``error: message`` above, ``debug: module: message`` with ``--verbose``.
Python warnings (``warnings.warn``) print as ``warning: message``. The library logs at
INFO only what the command does not echo itself (a resume, a skipped input...), and a
per-row failure at DEBUG: those are in the errors file.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable

__all__ = ["log_to_stderr", "PlainFormatter"]

_PREFIX = {logging.WARNING: "warning: ", logging.ERROR: "error: ", logging.CRITICAL: "error: "}


class PlainFormatter(logging.Formatter):
    """``[level: ]message`` on one line (newlines of the message become spaces)."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.exc_info and not record.exc_text:
            text = f"{text} ({record.exc_info[1]!r})"
        prefix = f"debug: {record.name}: " if record.levelno < logging.INFO else _PREFIX.get(record.levelno, "")
        return prefix + " ".join(text.split("\n"))


class _StderrHandler(logging.StreamHandler):
    """Writes to the current ``sys.stderr`` (so a test runner's capture sees it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ sets it
        pass


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {' '.join(str(message).splitlines())}", file=file or sys.stderr)


def log_to_stderr(verbose: bool = False) -> Callable[[], None]:
    """Route the ``chexmask`` logger and Python warnings to stderr as plain lines.

    Returns the function that undoes it (the CLI calls it when the command ends, so a
    process that runs several commands, such as a test session, is left as it was).
    """
    logger = logging.getLogger("chexmask")
    handler = _StderrHandler()
    handler.setFormatter(PlainFormatter())
    saved = logger.level, logger.propagate, warnings.showwarning
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False  # a root handler (another library's basicConfig) would print it again
    warnings.showwarning = _one_line_warning

    def restore() -> None:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
        warnings.showwarning = saved[2]

    return restore
