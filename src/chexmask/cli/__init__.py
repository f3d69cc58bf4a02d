"""The ``chexmask`` command line: a thin Typer shell over the library.

Each command parses its options, makes one library call and maps the outcome to an
exit code by one policy (:mod:`chexmask.cli._errors`), which every command's help ends with. Logging is configured here and nowhere else
(:func:`chexmask.cli._logging.log_to_stderr`): every message is printed once, as one
plain line on stderr; results go to stdout.
The commands live by job in :mod:`~chexmask.cli.datasets`, :mod:`~chexmask.cli.quality`,
:mod:`~chexmask.cli.review` and :mod:`~chexmask.cli.training`; this module registers them.
The options several commands share are defined once, in :mod:`chexmask.cli._options`.
"""

from __future__ import annotations

import typer

import chexmask
from chexmask.cli import datasets, quality, review, training
from chexmask.cli._errors import EXIT_CODES_EPILOG
from chexmask.cli._logging import log_to_stderr

__all__ = ["app"]

app = typer.Typer(
    name="chexmask",
    help="Lung and heart segmentation of chest X-rays (HybridGNet), with quality and uncertainty.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Plain click help: Rich markup would eat every "[...]" in the help texts
    # ("[default: ...]", "chexmask[ray]") and Rich panels show a <bool> metavar on flags.
    rich_markup_mode=None,
    context_settings={"show_default": True},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"chexmask {chexmask.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """chexmask: segment chest X-rays into lungs and heart, with quality and uncertainty."""
    ctx.call_on_close(log_to_stderr(verbose))


app.command("train")(training.train)
app.command("rca")(quality.rca)
app.command("estimate")(quality.estimate)
app.command("validate")(quality.validate)
app.command("masks")(datasets.masks_cmd)
app.command("convert")(datasets.convert_cmd)
app.command("measure")(datasets.measure_cmd)
app.command("evaluate")(quality.evaluate_cmd)
app.add_typer(review.export_app, name="export")
app.add_typer(review.import_app, name="import")
quality.experiment_app.command("adapt")(training.experiment_adapt)
quality.experiment_app.command("retrain")(training.experiment_retrain)
app.add_typer(quality.experiment_app, name="experiment")
app.command("overlays")(review.overlays_cmd)
app.command("serve")(review.serve)
app.command("segment")(datasets.segment_cmd)
app.command("build")(datasets.build_cmd)

for group in (app, quality.experiment_app, review.export_app, review.import_app):
    for command in group.registered_commands:
        command.epilog = EXIT_CODES_EPILOG
