"""The options that several commands share: one definition, one default, one meaning.

Each factory returns a fresh ``typer.Option(...)`` (every command gets its own
``OptionInfo``) with the option's flag names, default and help text. A command may pass
``help=`` where its use adds a detail; the flag names and the default come from here only
(tests/test_cli_options.py checks every command against the others).

Options whose meaning genuinely differs per command (``--out``, ``--seed``, ``--split``,
``--limit``, ``--lr``, ``--batch-size``) are defined by each command, and so are the
deliberate exceptions of ``experiment adapt``/``retrain`` (their ``--weights``,
``--threads`` 1 and ``--basic-augment`` defaults: the budget of a measured run).
"""

from __future__ import annotations

import typer

from chexmask.cli._errors import usage_error
from chexmask.model.default import DEFAULT_DEVICE, DEFAULT_MODEL, DEFAULT_UNCERTAINTY

# -- processes and devices ---------------------------------------------------------------

WORKERS_HELP = ("Worker processes (0 = none: everything in this process) "
                "[default: CPUs - 1, at most 8; none on 2 CPUs or fewer].")
DEVICE_HELP = "cpu, cuda, cuda:N or auto (CUDA when available)."
BACKEND_HELP = "What runs the network: auto (OpenVINO on the CPU, torch on CUDA), openvino or torch."
THREADS_HELP = "CPU threads for torch (default: torch's choice)."
PROGRESS_HELP = "Show a progress bar."


def workers_option():
    """``-j/--workers``: one meaning and one default in every dataset command (resolved by :func:`default_workers`)."""
    return typer.Option(None, "--workers", "-j", help=WORKERS_HELP)


def default_workers() -> int:
    """CPUs - 1, at most 8; none on 2 CPUs or fewer, where a worker only takes a core from
    the model (measured with benchmarks/bench_segment.py: docs/segment.md)."""
    import os

    cpus = os.cpu_count() or 1
    return 0 if cpus <= 2 else min(8, cpus - 1)


def device_option(help: str = DEVICE_HELP):
    """``--device``: where the network runs, ``auto`` (CUDA when available) by default."""
    return typer.Option(DEFAULT_DEVICE, "--device", help=help)


def backend_option(help: str = BACKEND_HELP):
    """``--backend``: what runs the network, ``auto`` by default."""
    return typer.Option("auto", "--backend", help=help)


def threads_option(help: str = THREADS_HELP):
    """``--threads``: torch's CPU threads, torch's choice unless given (applied by :func:`chexmask.cli._threads.set_threads`)."""
    return typer.Option(None, "--threads", help=help)


def progress_option(help: str = PROGRESS_HELP):
    """``--progress/--no-progress``: a progress bar on stderr, on by default."""
    return typer.Option(True, "--progress/--no-progress", help=help)


# -- the model ---------------------------------------------------------------------------

WEIGHTS_HELP = "Shipped model name or .safetensors file."
UNCERTAINTY_HELP = "Latent samples per image for node uncertainty (0 = off)."


def weights_option(help: str = WEIGHTS_HELP):
    """``--weights``: the model, the shipped default model unless given."""
    return typer.Option(DEFAULT_MODEL, "--weights", help=help)


def uncertainty_option(help: str = UNCERTAINTY_HELP):
    """``--uncertainty``: latent samples per image (0 = off), 50 by default."""
    return typer.Option(DEFAULT_UNCERTAINTY, "--uncertainty", help=help)


# -- tables and runs ---------------------------------------------------------------------

SHARD_HELP = "Only shard I of N, as I/N (0-based), split by id hash."
ERRORS_HELP = "Per-row errors CSV [default: OUT's name + .errors.csv]."
#: ``segment``'s and ``build``'s ``--chunk-size``: the pipeline's unit of writing and resuming.
CHUNK_SIZE_HELP = "Images per part file (what a kill can lose)."
#: ``--rows-per-read`` of the commands that stream a table (``masks``, ``convert``, ``measure``).
ROWS_PER_READ_HELP = "Table rows read, and held in memory, at a time (memory grows with it, not with the table)."
#: Its default in ``masks`` and ``measure``; ``convert`` reads more at a time, each read one Parquet row group.
ROWS_PER_READ = 1000
CONVERT_ROWS_PER_READ = 10 * ROWS_PER_READ
#: ``--id-column``: one meaning in ``segment`` (which writes it) and ``rca`` (which reads it).
ID_COLUMN_HELP = ("The image id column of the CheXmask table: the name segment writes, "
                  "the column rca reads and keys its scores by.")
#: ``segment``'s id column name, the one the published tables (and ``Segmenter``) use.
ID_COLUMN = "Image ID"


def shard_option(help: str = SHARD_HELP):
    """``--shard I/N``: all images unless given."""
    return typer.Option(None, "--shard", help=help)


def errors_option(help: str = ERRORS_HELP):
    """``--errors``: the per-row errors CSV, next to OUT unless given."""
    return typer.Option(None, "--errors", help=help)


def chunk_size_option():
    """``--chunk-size``: images per part file, in every command that writes part files."""
    return typer.Option(1000, "--chunk-size", min=1, help=CHUNK_SIZE_HELP)


def rows_per_read_option(default: int = ROWS_PER_READ):
    """``--rows-per-read``: one meaning in every command that streams a table;
    :data:`ROWS_PER_READ`, or :data:`CONVERT_ROWS_PER_READ` in ``convert``."""
    return typer.Option(default, "--rows-per-read", min=1, help=ROWS_PER_READ_HELP)


def former_chunk_size_option():
    """The former name of ``--rows-per-read`` in the table commands, hidden, still working (:func:`resolve_rows_per_read`)."""
    return typer.Option(None, "--chunk-size", min=1, hidden=True, help="Former name of --rows-per-read.")


def id_column_option(writing: bool):
    """``--id-column``: the image id column of the CheXmask table, one meaning everywhere.

    ``writing`` (``segment``): the name written, ``Image ID`` unless given. Reading (``rca``):
    the column read, detected unless given (:func:`chexmask.formats.tables.id_column`, which
    finds ``Image ID`` too), and the scores table keeps its name.
    """
    if writing:
        return typer.Option(ID_COLUMN, "--id-column", help=ID_COLUMN_HELP)
    return typer.Option(None, "--id-column", help=f"{ID_COLUMN_HELP} [default: detected]")


# -- the RCA atlas -----------------------------------------------------------------------

ATLAS_HELP = ("RCA atlas: JSRT-layout folders, comma-separated (their train splits; built once, then cached), "
              "or an atlas .npz (docs/rca.md).")


def atlas_option(required: bool = False, help: str = ATLAS_HELP):
    """``--atlas``: the RCA atlas; off unless given, except in ``rca``, which needs it (``required``)."""
    return typer.Option(... if required else None, "--atlas", help=help)


def former_rca_option():
    """``--rca``: the former name of ``--atlas`` in ``segment`` and ``build``, hidden, still working (:func:`resolve_atlas`)."""
    return typer.Option(None, "--rca", hidden=True, help="Former name of --atlas.")


# -- former names ------------------------------------------------------------------------

def renamed(value, former, name: str, former_name: str, why: str, unset=None):
    """An option's value, or that of its former name (kept working, with a one-line note on stderr).

    Both given (``value`` not ``unset``, its default) with different values is a usage error.
    """
    if former is None:
        return value
    if value != unset and value != former:
        raise usage_error(f"{former_name} is the former name of {name}; give one of them")
    typer.echo(f"note: {former_name} is now {name} ({why})", err=True)
    return former


def resolve_atlas(atlas: str | None, rca: str | None) -> str | None:
    """``--atlas``, or the former ``--rca``."""
    return renamed(atlas, rca, "--atlas", "--rca", "the same option, named as in 'chexmask rca' and 'chexmask serve'")


def resolve_rows_per_read(rows: int, chunk_size: int | None, default: int) -> int:
    """``--rows-per-read`` (``default`` unless given), or the former ``--chunk-size`` of a table command."""
    return renamed(rows, chunk_size, "--rows-per-read", "--chunk-size",
                   "in masks, convert and measure; --chunk-size is images per part file, as in segment and build", unset=default)
