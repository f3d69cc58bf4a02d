"""The ``chexmask`` command line: a thin Typer shell over the library.

Each command parses its options, makes one library call and maps the outcome to an
exit code. Logging is configured here and nowhere else.
"""

from __future__ import annotations

import logging

import typer

import chexmask

app = typer.Typer(
    name="chexmask",
    help="Lung and heart segmentation of chest X-rays (HybridGNet), with quality and uncertainty.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"show_default": True},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"chexmask {chexmask.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """chexmask: segment chest X-rays into lungs and heart, with quality and uncertainty."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
