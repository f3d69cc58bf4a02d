"""Commands that make or reshape CheXmask tables: ``segment``, ``build``, ``masks``, ``convert`` and ``measure``."""

from __future__ import annotations

import typer

import chexmask
from chexmask.anatomy import ORGANS
from chexmask.cli._errors import (
    dataset_run_errors,
    exit_on,
    fail,
    finish_batch,
    usage_error,
)
from chexmask.cli._threads import set_threads
from chexmask.model.default import DEFAULT_MODEL

WORKERS_HELP = ("Worker processes (0 = none: everything in this process) "
                "[default: CPUs - 1, at most 8; none on 2 CPUs or fewer].")


def _workers_option():
    """``-j/--workers``: one meaning and one default in every dataset command (resolved by :func:`_default_workers`)."""
    return typer.Option(None, "--workers", "-j", help=WORKERS_HELP)


def _default_workers() -> int:
    """CPUs - 1, at most 8; none on 2 CPUs or fewer, where a worker only takes a core from
    the model (measured with benchmarks/bench_segment.py: docs/segment.md)."""
    import os

    cpus = os.cpu_count() or 1
    return 0 if cpus <= 2 else min(8, cpus - 1)


#: ``segment``'s and ``build``'s ``--chunk-size``: the pipeline's unit of writing and resuming.
CHUNK_SIZE_HELP = "Images per part file (what a kill can lose)."
#: ``--rows-per-read`` of the commands that stream a table (``masks``, ``convert``, ``measure``).
ROWS_PER_READ_HELP = "Table rows read, and held in memory, at a time (memory grows with it, not with the table)."
#: Its default in ``masks`` and ``measure``; ``convert`` reads more at a time, each read one Parquet row group.
ROWS_PER_READ = 1000
CONVERT_ROWS_PER_READ = 10 * ROWS_PER_READ


def _chunk_size_option():
    """``--chunk-size``: images per part file, in every command that writes part files."""
    return typer.Option(1000, "--chunk-size", min=1, help=CHUNK_SIZE_HELP)


def _rows_per_read_option(default: int):
    """``--rows-per-read``: one meaning in every command that streams a table."""
    return typer.Option(default, "--rows-per-read", min=1, help=ROWS_PER_READ_HELP)


def _former_chunk_size_option():
    """The former name of ``--rows-per-read`` in these commands, hidden, still working (:func:`_rows_per_read`)."""
    return typer.Option(None, "--chunk-size", min=1, hidden=True, help="Former name of --rows-per-read.")


def _renamed(value, former, name: str, former_name: str, why: str, unset=None):
    """An option's value, or that of its former name (kept working, with a one-line note on stderr).

    Both given (``value`` not ``unset``, its default) with different values is a usage error.
    """
    if former is None:
        return value
    if value != unset and value != former:
        raise usage_error(f"{former_name} is the former name of {name}; give one of them")
    typer.echo(f"note: {former_name} is now {name} ({why})", err=True)
    return former


def _atlas_option(atlas: str | None, rca: str | None) -> str | None:
    """``--atlas``, or the former ``--rca``."""
    return _renamed(atlas, rca, "--atlas", "--rca", "the same option, named as in 'chexmask rca' and 'chexmask serve'")


def _rows_per_read(rows: int, chunk_size: int | None, default: int) -> int:
    """``--rows-per-read`` (``default`` unless given), or the former ``--chunk-size`` of a table command."""
    return _renamed(rows, chunk_size, "--rows-per-read", "--chunk-size",
                    "in masks, convert and measure; --chunk-size is images per part file, as in segment and build", unset=default)


def segment_cmd(
    inputs: list[str] = typer.Argument(None, help="Image files, folders (searched recursively) or path lists (.txt/.csv)."),
    sample: bool = typer.Option(False, "--sample", help="Add the chest X-ray bundled with chexmask (CC BY 3.0, see its ATTRIBUTION.csv) to the inputs."),
    atlas: str = typer.Option(None, "--atlas", help="Fill the Dice RCA columns using this RCA atlas: JSRT-layout folders, comma-separated (built once, then cached), or an atlas .npz (see docs/rca.md)."),
    rca: str = typer.Option(None, "--rca", hidden=True, help="Former name of --atlas."),
    overlays: str = typer.Option(None, "--overlays", help="Write an overlay PNG per image (contours + node uncertainty) into this folder."),
    clavicles: bool = typer.Option(False, "--clavicles", help="Add the clavicles: 'Clavicle Landmarks', 'Right Clavicle' and 'Left Clavicle' columns (the 120 CheXmask nodes stay as they are)."),
    out: str = typer.Option(..., "--out", "-o", help="Output table: .csv (CheXmask CSV) or .parquet (+ per-node arrays)."),
    id_column: str = typer.Option("Image ID", "--id-column", help="Name of the image id column (ids are paths relative to the inputs' common folder)."),
    weights: str = typer.Option(DEFAULT_MODEL, help="Shipped model name or .safetensors file."),
    uncertainty: int = typer.Option(50, help="Latent samples per image for node uncertainty (0 = off)."),
    seed: int = typer.Option(0, help="Seed of the latent samples (each image's noise is also seeded by a hash of its pixels)."),
    batch_size: int = typer.Option(32, "--batch-size", "-b", help="Images per model call (a multiple of 8 on CPU, 32 on CUDA wastes nothing)."),
    workers: int = _workers_option(),
    device: str = typer.Option("auto", help="cpu, cuda, cuda:N or auto (CUDA when available)."),
    amp: bool = typer.Option(True, "--amp/--no-amp", help="float16 autocast on CUDA (ignored on CPU)."),
    backend: str = typer.Option("auto", help="What runs the network: auto (OpenVINO on the CPU, torch on CUDA), openvino or torch."),
    shard: str = typer.Option(None, "--shard", help="Only shard I of N, as I/N (0-based), split by id hash."),
    chunk_size: int = _chunk_size_option(),
    engine: str = typer.Option("local", help="local (this machine) or ray (Ray Data; pip install 'chexmask[ray]')."),
    threads: int = typer.Option(None, help="CPU threads for torch (default: torch's choice)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Segment images into a CheXmask table; resumable: rerun the same command after a crash."""
    from chexmask.inference.pipeline import segment_dataset
    from chexmask.reports.annotate import annotator

    set_threads(threads)
    inputs = list(inputs or [])
    if sample:
        from importlib import resources

        inputs.append(str(resources.files("chexmask") / "samples" / "00cfd1c1.jpg"))
    if not inputs:
        raise usage_error("give image files or folders, or --sample")
    if workers is None:
        workers = _default_workers()
    atlas = _atlas_option(atlas, rca)
    args = {"inputs": inputs, "out": out, "id_column": id_column, "weights": weights, "uncertainty": uncertainty,
            "seed": seed, "batch_size": batch_size, "workers": workers, "device": device, "amp": amp, "shard": shard,
            "chunk_size": chunk_size, "engine": engine, "threads": threads, "atlas": atlas, "overlays": overlays,
            "clavicles": clavicles, "backend": backend}
    with dataset_run_errors(resume_out=out):
        run = segment_dataset(inputs, out, weights=weights, device=device, uncertainty=uncertainty, seed=seed,
                              batch_size=batch_size, amp=amp, workers=workers, id_column=id_column, shard=shard,
                              chunk_size=chunk_size, engine=engine, progress=progress, args=args,
                              annotate=annotator(rca=atlas, overlays=overlays), clavicles=clavicles, backend=backend)
    resumed = f", {run.resumed} resumed" if run.resumed else ""
    finish_batch(f"segmented {run.segmented} of {run.images} images{resumed} in {run.seconds:.1f} s "
                 f"({run.images_per_second:.1f} images/s) -> {run.output}",
                 total=run.images, done=run.segmented, failed=run.failed, errors=run.errors)


def build_cmd(
    source: str = typer.Argument(..., help="chestxray8, chexpert, mimic-cxr-jpg, padchest or vindr-cxr."),
    root: str = typer.Argument(..., help="The dataset's folder as downloaded (metadata files and images anywhere below)."),
    out: str = typer.Option(..., "--out", "-o", help="Output table: .csv or .parquet, keyed by the source's id column."),
    weights: str = typer.Option(DEFAULT_MODEL, help="Shipped model name or .safetensors file."),
    uncertainty: int = typer.Option(50, help="Latent samples per image for node uncertainty (0 = off)."),
    atlas: str = typer.Option(None, "--atlas", help="Fill the Dice RCA columns using this RCA atlas (JSRT-layout folders, comma-separated, or an atlas .npz)."),
    rca: str = typer.Option(None, "--rca", hidden=True, help="Former name of --atlas."),
    batch_size: int = typer.Option(32, "--batch-size", "-b", help="Images per model call."),
    workers: int = _workers_option(),
    device: str = typer.Option("auto", help="cpu, cuda, cuda:N or auto (CUDA when available)."),
    backend: str = typer.Option("auto", help="What runs the network: auto (OpenVINO on the CPU, torch on CUDA), openvino or torch."),
    shard: str = typer.Option(None, "--shard", help="Only shard I of N, as I/N (0-based), split by id hash."),
    chunk_size: int = _chunk_size_option(),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Build a public dataset's CheXmask table: frontal images, the source's ids, resumable."""
    from chexmask.reports.annotate import annotator
    from chexmask.sources.build import build_source

    if workers is None:
        workers = _default_workers()
    atlas = _atlas_option(atlas, rca)
    with dataset_run_errors(resume_out=out):
        run = build_source(source, root, out, weights=weights, uncertainty=uncertainty, annotate=annotator(rca=atlas), batch_size=batch_size,
                           workers=workers, device=device, backend=backend, shard=shard, chunk_size=chunk_size, progress=progress,
                           args={"source": source, "root": root, "out": out, "weights": weights, "uncertainty": uncertainty,
                                 "atlas": atlas, "shard": shard, "chunk_size": chunk_size, "backend": backend})
    finish_batch(f"segmented {run.segmented} of {run.images} {source} images in {run.seconds:.1f} s -> {run.output}",
                 total=run.images, done=run.segmented, failed=run.failed, errors=run.errors)


def masks_cmd(
    table: str = typer.Argument(..., help="CheXmask or physician table (.csv, .csv.gz or .parquet)."),
    out_dir: str = typer.Option(..., "--out", "-o", help="Output folder (also gets errors.csv and run.json)."),
    fmt: str = typer.Option("png", "--format", "-f", help="png (ORGAN/ID.png), npz (ID.npz), nifti (ORGAN/ID.nii.gz) or coco (annotations.json)."),
    organs: list[str] = typer.Option(list(ORGANS), "--organ", help="Organ to write; repeat for several."),
    min_rca: float = typer.Option(None, "--min-rca", help="Only rows with Dice RCA (Mean) >= this (0.7 is the reference's threshold)."),
    ids: str = typer.Option(None, "--ids", help="Only the image ids listed in this file (one per line)."),
    workers: int = _workers_option(),
    rows_per_read: int = _rows_per_read_option(ROWS_PER_READ),
    chunk_size: int = _former_chunk_size_option(),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Decode the masks of a CheXmask table at the original resolution and write them as files."""
    from chexmask.formats.masks_export import export_masks
    from chexmask.formats.stream import read_ids

    rows_per_read = _rows_per_read(rows_per_read, chunk_size, ROWS_PER_READ)
    with exit_on(chexmask.ChexmaskError, ValueError, ImportError):
        summary = export_masks(
            table, out_dir, fmt=fmt, organs=organs, min_rca=min_rca,
            ids=None if ids is None else read_ids(ids), workers=_default_workers() if workers is None else workers,
            chunksize=rows_per_read, progress=progress,
        )
    typer.echo(f"wrote the masks of {summary.written} images to {summary.out_dir} ({fmt})")
    if summary.failed:
        raise fail(f"{summary.failed} rows skipped; see {summary.errors_path}")
    if not summary.written:
        selected = "matched --ids/--min-rca" if ids is not None or min_rca is not None else "was found"
        raise fail(f"no row of {table} {selected}; nothing written")


def convert_cmd(
    table: str = typer.Argument(..., help="Table to convert (.csv, .csv.gz or .parquet)."),
    out: str = typer.Option(..., "--out", "-o", help="Output table; its suffix (.csv, .csv.gz, .parquet) picks the format."),
    rows_per_read: int = _rows_per_read_option(CONVERT_ROWS_PER_READ),
    chunk_size: int = _former_chunk_size_option(),
) -> None:
    """Convert a CheXmask table between CSV and Parquet without loss (text columns byte for byte)."""
    from chexmask.formats.convert import convert_table

    rows_per_read = _rows_per_read(rows_per_read, chunk_size, CONVERT_ROWS_PER_READ)
    with exit_on(chexmask.ChexmaskError, ValueError):
        rows = convert_table(table, out, chunksize=rows_per_read)
    typer.echo(f"converted {rows} rows: {table} -> {out}")


def measure_cmd(
    table: str = typer.Argument(..., help="CheXmask table (.csv, .csv.gz or .parquet): published rows, a segment output or a physician table."),
    out: str = typer.Option(..., "--out", "-o", help="Output table, .csv or .parquet: the id column and the measure columns (see docs/measures.md)."),
    errors: str = typer.Option(None, "--errors", help="Per-row errors CSV (path, error, reason) [default: OUT's name + .errors.csv]."),
    workers: int = _workers_option(),
    rows_per_read: int = _rows_per_read_option(ROWS_PER_READ),
    chunk_size: int = _former_chunk_size_option(),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Cardiothoracic ratio, heart and thorax widths, organ areas and lung heights of every row of a table."""
    from chexmask.formats.measure_table import measure_table

    rows_per_read = _rows_per_read(rows_per_read, chunk_size, ROWS_PER_READ)
    with dataset_run_errors():
        run = measure_table(table, out, errors=errors, workers=_default_workers() if workers is None else workers,
                            chunksize=rows_per_read, progress=progress)
    finish_batch(f"measured {run.measured} of {run.rows} rows in {run.seconds:.1f} s -> {run.out}",
                 total=run.rows, done=run.measured, failed=run.failed, errors=run.errors, what="rows")
