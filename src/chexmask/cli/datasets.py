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
from chexmask.cli._options import (
    ATLAS_HELP,
    CONVERT_ROWS_PER_READ,
    ROWS_PER_READ,
    atlas_option,
    backend_option,
    chunk_size_option,
    default_workers,
    device_option,
    errors_option,
    former_chunk_size_option,
    former_rca_option,
    id_column_option,
    progress_option,
    resolve_atlas,
    resolve_rows_per_read,
    rows_per_read_option,
    shard_option,
    threads_option,
    uncertainty_option,
    weights_option,
    workers_option,
)
from chexmask.cli._threads import set_threads


def segment_cmd(
    inputs: list[str] = typer.Argument(None, help="Image files, folders (searched recursively) or path lists (.txt/.csv)."),
    sample: bool = typer.Option(False, "--sample", help="Add the chest X-ray bundled with chexmask (CC BY 3.0, see its ATTRIBUTION.csv) to the inputs."),
    atlas: str = atlas_option(help=f"Fill the Dice RCA columns using this {ATLAS_HELP}"),
    rca: str = former_rca_option(),
    overlays: str = typer.Option(None, "--overlays", help="Write an overlay PNG per image (contours + node uncertainty) into this folder."),
    clavicles: bool = typer.Option(False, "--clavicles", help="Add the clavicles: 'Clavicle Landmarks', 'Right Clavicle' and 'Left Clavicle' columns (the 120 CheXmask nodes stay as they are)."),
    out: str = typer.Option(..., "--out", "-o", help="Output table: .csv (CheXmask CSV) or .parquet (+ per-node arrays)."),
    id_column: str = id_column_option(writing=True),
    weights: str = weights_option(),
    uncertainty: int = uncertainty_option(),
    seed: int = typer.Option(0, help="Seed of the latent samples (each image's noise is also seeded by a hash of its pixels)."),
    batch_size: int = typer.Option(32, "--batch-size", "-b", help="Images per model call (a multiple of 8 on CPU, 32 on CUDA wastes nothing)."),
    workers: int = workers_option(),
    device: str = device_option(),
    amp: bool = typer.Option(True, "--amp/--no-amp", help="float16 autocast on CUDA (ignored on CPU)."),
    backend: str = backend_option(),
    shard: str = shard_option(),
    chunk_size: int = chunk_size_option(),
    engine: str = typer.Option("local", help="local (this machine) or ray (Ray Data; pip install 'chexmask[ray]')."),
    threads: int = threads_option(),
    progress: bool = progress_option(),
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
        workers = default_workers()
    atlas = resolve_atlas(atlas, rca)
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
    weights: str = weights_option(),
    uncertainty: int = uncertainty_option(),
    atlas: str = atlas_option(help=f"Fill the Dice RCA columns using this {ATLAS_HELP}"),
    rca: str = former_rca_option(),
    batch_size: int = typer.Option(32, "--batch-size", "-b", help="Images per model call."),
    workers: int = workers_option(),
    device: str = device_option(),
    backend: str = backend_option(),
    shard: str = shard_option(),
    chunk_size: int = chunk_size_option(),
    progress: bool = progress_option(),
) -> None:
    """Build a public dataset's CheXmask table: frontal images, the source's ids, resumable."""
    from chexmask.reports.annotate import annotator
    from chexmask.sources.build import build_source

    if workers is None:
        workers = default_workers()
    atlas = resolve_atlas(atlas, rca)
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
    workers: int = workers_option(),
    rows_per_read: int = rows_per_read_option(ROWS_PER_READ),
    chunk_size: int = former_chunk_size_option(),
    progress: bool = progress_option(),
) -> None:
    """Decode the masks of a CheXmask table at the original resolution and write them as files."""
    from chexmask.formats.masks_export import export_masks
    from chexmask.formats.stream import read_ids

    rows_per_read = resolve_rows_per_read(rows_per_read, chunk_size, ROWS_PER_READ)
    with exit_on(chexmask.ChexmaskError, ValueError, ImportError):
        summary = export_masks(
            table, out_dir, fmt=fmt, organs=organs, min_rca=min_rca,
            ids=None if ids is None else read_ids(ids), workers=default_workers() if workers is None else workers,
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
    rows_per_read: int = rows_per_read_option(CONVERT_ROWS_PER_READ),
    chunk_size: int = former_chunk_size_option(),
) -> None:
    """Convert a CheXmask table between CSV and Parquet without loss (text columns byte for byte)."""
    from chexmask.formats.convert import convert_table

    rows_per_read = resolve_rows_per_read(rows_per_read, chunk_size, CONVERT_ROWS_PER_READ)
    with exit_on(chexmask.ChexmaskError, ValueError):
        rows = convert_table(table, out, chunksize=rows_per_read)
    typer.echo(f"converted {rows} rows: {table} -> {out}")


def measure_cmd(
    table: str = typer.Argument(..., help="CheXmask table (.csv, .csv.gz or .parquet): published rows, a segment output or a physician table."),
    out: str = typer.Option(..., "--out", "-o", help="Output table, .csv or .parquet: the id column and the measure columns (see docs/measures.md)."),
    errors: str = errors_option(),
    workers: int = workers_option(),
    rows_per_read: int = rows_per_read_option(ROWS_PER_READ),
    chunk_size: int = former_chunk_size_option(),
    progress: bool = progress_option(),
) -> None:
    """Cardiothoracic ratio, heart and thorax widths, organ areas and lung heights of every row of a table."""
    from chexmask.formats.measure_table import measure_table

    rows_per_read = resolve_rows_per_read(rows_per_read, chunk_size, ROWS_PER_READ)
    with dataset_run_errors():
        run = measure_table(table, out, errors=errors, workers=default_workers() if workers is None else workers,
                            chunksize=rows_per_read, progress=progress)
    finish_batch(f"measured {run.measured} of {run.rows} rows in {run.seconds:.1f} s -> {run.out}",
                 total=run.rows, done=run.measured, failed=run.failed, errors=run.errors, what="rows")
