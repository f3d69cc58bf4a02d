"""The exit-code policy of every command, and how the commands turn library exceptions into it.

The library raises; only the CLI maps an outcome to an exit code, and it does so here:

- ``0`` (:data:`EXIT_DONE`): done, every input used.
- ``1`` (:data:`EXIT_FAILED`): some inputs failed (each listed in the errors file, the others
  written), or nothing could be done (every input failed, nothing matched, the run could not
  proceed: a :class:`chexmask.ChexmaskError`, a missing optional dependency).
- ``2`` (:data:`EXIT_USAGE`): the command line is wrong and nothing was done: an unknown or
  missing option or argument (click's own code), an option value the library rejects, or an
  input named on the command line that is missing or unusable (a ``ValueError``, which
  :class:`chexmask.InputError` is, or a ``FileNotFoundError``), as click does for a missing path.
- ``130`` (:data:`EXIT_INTERRUPTED`): Ctrl+C; ``segment`` and ``build`` resume when rerun.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

import chexmask

EXIT_DONE, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

EXIT_CODES_EPILOG = ("Exit codes (every command): 0 done; 1 some inputs failed (listed in the errors file) or nothing "
                     "could be done; 2 bad usage: an unknown or bad option value, or a missing or unusable input "
                     "named on the command line; 130 interrupted.")


def exit_code(exc: BaseException) -> int:
    """The policy's code for an exception that ends a command: 2 for a ValueError or a missing file, else 1."""
    return EXIT_USAGE if isinstance(exc, (ValueError, FileNotFoundError)) else EXIT_FAILED


def fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    """Print ``error: <message>`` on stderr and return the exit to raise (``raise fail(...)``)."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def usage_error(message: str) -> typer.Exit:
    """:func:`fail` with :data:`EXIT_USAGE`: the command line is wrong."""
    return fail(message, EXIT_USAGE)


@contextmanager
def exit_on(*exceptions: type[BaseException], message: Callable[[BaseException], str] = str) -> Iterator[None]:
    """Turn any of ``exceptions`` raised in the block into ``error: <message>`` and the policy's exit code.

    Parameters
    ----------
    *exceptions : exception types
        What to catch; anything else propagates unchanged.
    message : callable
        Text after ``error: `` for a caught exception (default: ``str(exc)``).
    """
    try:
        yield
    except exceptions as exc:
        raise fail(message(exc), exit_code(exc)) from None


@contextmanager
def dataset_run_errors(resume_out: str | None = None) -> Iterator[None]:
    """:func:`exit_on` for a batch command (``segment``, ``build``, ``measure``), Ctrl+C included.

    With ``resume_out``, the output table, Ctrl+C exits 130 and says where the finished
    parts are; without it a KeyboardInterrupt propagates.
    """
    try:
        with exit_on(chexmask.ChexmaskError, ValueError):
            yield
    except KeyboardInterrupt:
        if resume_out is None:
            raise
        typer.echo(f"interrupted; rerun the same command to resume (finished parts are in {resume_out}.parts/)", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None


def finish_batch(headline: str, *, total: int, done: int, failed: int, errors: str | Path, what: str = "inputs") -> None:
    """Print a batch's ``headline`` and its failures; exit 1 when any input failed or none was done.

    Parameters
    ----------
    headline : str
        The summary line, printed on stdout.
    total, done, failed : int
        Inputs of the batch, those written and those listed in ``errors``.
    errors : str or Path
        The errors file.
    what : str
        What an input is, in the failure line (``"inputs"``, ``"rows"``).
    """
    typer.echo(headline)
    if failed:
        typer.echo(f"{failed} {what} failed -> {errors}", err=True)
    if failed or (total and not done):
        raise typer.Exit(EXIT_FAILED)
