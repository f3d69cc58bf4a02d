"""How the commands turn library exceptions into ``error: ...`` lines and exit codes.

The library raises; only the CLI maps an outcome to an exit code, and it does so here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer

import chexmask


@contextmanager
def exit_on(*exceptions: type[BaseException], code: int = 1,
            message: Callable[[BaseException], str] = str) -> Iterator[None]:
    """Turn any of ``exceptions`` raised in the block into ``error: <message>`` on stderr and exit ``code``.

    Parameters
    ----------
    *exceptions : exception types
        What to catch; anything else propagates unchanged.
    code : int
        Exit code of the command.
    message : callable
        Text after ``error: `` for a caught exception (default: ``str(exc)``).
    """
    try:
        yield
    except exceptions as exc:
        typer.echo(f"error: {message(exc)}", err=True)
        raise typer.Exit(code) from None


@contextmanager
def dataset_run_errors(resume_out: str | None = None) -> Iterator[None]:
    """Exit codes of a dataset run (``segment``, ``build``), as their epilogs state.

    A ValueError or :class:`chexmask.InputError` (bad options or inputs) exits 2, any other
    :class:`chexmask.ChexmaskError` (the run could not proceed) exits 3. With ``resume_out``,
    the output table, Ctrl+C exits 130 and says where the finished parts are; without it a
    KeyboardInterrupt propagates.
    """
    try:
        # the inner manager sees an InputError first: it is a ChexmaskError too, but exits 2
        with exit_on(chexmask.ChexmaskError, code=3), exit_on(ValueError, chexmask.InputError, code=2):
            yield
    except KeyboardInterrupt:
        if resume_out is None:
            raise
        typer.echo(f"interrupted; rerun the same command to resume (finished parts are in {resume_out}.parts/)", err=True)
        raise typer.Exit(130) from None


def finish_run(run, headline: str) -> None:
    """Print a dataset run's ``headline`` and its failures; exit 1 when every input failed.

    ``run`` has ``images``, ``segmented``, ``failed`` and ``errors`` (the errors file).
    """
    typer.echo(headline)
    if run.failed:
        typer.echo(f"{run.failed} inputs failed -> {run.errors}", err=True)
    if run.images and not run.segmented:
        raise typer.Exit(1)
