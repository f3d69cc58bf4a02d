"""Commands for human review: ``export``/``import labelstudio``, ``overlays`` of a table and the ``serve`` web demo."""

from __future__ import annotations

import typer

import chexmask
from chexmask.cli._errors import exit_on, fail, finish_batch, usage_error
from chexmask.cli._options import (
    ATLAS_HELP,
    ROWS_PER_READ,
    atlas_option,
    device_option,
    progress_option,
    rows_per_read_option,
    uncertainty_option,
    weights_option,
)

export_app = typer.Typer(help="Export predictions for review in other tools.", no_args_is_help=True)
import_app = typer.Typer(help="Import reviewed annotations as CheXmask tables.", no_args_is_help=True)


@export_app.command("labelstudio")
def export_labelstudio(
    table: str = typer.Argument(..., help="CheXmask table (CSV or Parquet) with Landmarks, Height, Width."),
    images_dir: str = typer.Argument(..., help="Folder the table's image ids are relative to."),
    out: str = typer.Option("tasks.json", "--out", "-o", help="Tasks JSON; the labeling config goes to <stem>.xml."),
    url_prefix: str = typer.Option("/data/local-files/?d=", help="Prefix of each image URL (path relative to IMAGES_DIR)."),
    dataset: str = typer.Option(None, help="Dataset name for every task (default: the table's Dataset column)."),
    model_version: str = typer.Option("chexmask", help="model_version of the predictions."),
) -> None:
    """Write Label Studio tasks with the predicted contours, scored so the worst sort first."""
    from chexmask.formats.labelstudio_tasks import export_tasks

    with exit_on(chexmask.ChexmaskError):
        config = export_tasks(table, images_dir, out, url_prefix=url_prefix, dataset=dataset, model_version=model_version)
    typer.echo(f"tasks: {out}\nlabeling config: {config}")


@import_app.command("labelstudio")
def import_labelstudio(
    export: str = typer.Argument(..., help="Label Studio project export in JSON format."),
    out: str = typer.Option("corrected.csv", "--out", "-o", help="Physician-style CheXmask table (CSV or Parquet)."),
    annotator: str = typer.Option(None, help="Only this reviewer's annotations (user id or email)."),
    dataset: str = typer.Option(None, help="Dataset column for every row (default: from the tasks)."),
) -> None:
    """Turn reviewed Label Studio tasks into a CheXmask table in the original image frame."""
    from chexmask.formats.labelstudio_corrections import import_corrections

    with exit_on(chexmask.ChexmaskError):
        df = import_corrections(export, out, annotator=annotator, dataset=dataset)
    typer.echo(f"{len(df)} corrected images written to {out}")
    if df.empty:
        who = f" by {annotator!r}" if annotator is not None else ""
        raise fail(f"no task of {export} has a usable (not cancelled) annotation{who}")


def overlays_cmd(
    table: str = typer.Argument(..., help="CheXmask table (.csv, .csv.gz or .parquet) with Landmarks: published rows, CheXmask-U rows, a segment output or a physician table."),
    images: list[str] = typer.Argument(..., help="Image files, folders or path lists (.txt/.csv) where the table's ids are found."),
    out_dir: str = typer.Option(..., "--out", "-o", help="Output folder: <id without suffix>.png per row, errors.csv and run.json."),
    ids: str = typer.Option(None, "--ids", help="Only the image ids listed in this file (one per line)."),
    rows_per_read: int = rows_per_read_option(ROWS_PER_READ),
    progress: bool = progress_option(),
) -> None:
    """Draw a table's rows on their images: contours, node uncertainty (Landmarks (Std)), error radius and flag, as segment --overlays does."""
    from chexmask.formats.stream import read_ids
    from chexmask.reports.table_overlays import draw_table_overlays

    with exit_on(chexmask.ChexmaskError):
        run = draw_table_overlays(table, images, out_dir, ids=None if ids is None else read_ids(ids),
                                  chunksize=rows_per_read, progress=progress)
    finish_batch(f"drew {run.written} overlays -> {run.out_dir}; {run.failed} errors -> {run.errors}",
                 total=run.written + run.failed, done=run.written, failed=run.failed, errors=run.errors, what="rows or images")


def _missing_app_extra(exc: ImportError) -> str:
    return f"{exc.name} is missing; install the demo with: pip install 'chexmask[app]'"


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on (loopback unless --allow-remote)."),
    port: int = typer.Option(8000, help="TCP port."),
    weights: str = weights_option(),
    device: str = device_option(),
    uncertainty: int = uncertainty_option(help="Latent samples per image for node uncertainty and the Node Error Radius (0 = off), as segment."),
    max_mb: float = typer.Option(32.0, help="Largest upload, in MiB."),
    max_megapixels: float = typer.Option(40.0, help="Largest image, in megapixels."),
    flag_threshold: float = typer.Option(None, hidden=True),  # removed: the flag rests on the Estimated Dice
    atlas: str = atlas_option(help=f"{ATLAS_HELP} Also flag results with Dice RCA (Mean) < 0.7."),
    allow_remote: bool = typer.Option(False, "--allow-remote", help="Allow a non-loopback --host (the demo has no authentication)."),
    clavicles: bool = typer.Option(False, "--clavicles", help="Also draw and download the clavicles (a model that predicts them)."),
) -> None:
    """Start the web demo: upload an X-ray, see lungs and heart with uncertainty, download the result."""
    import ipaddress

    if flag_threshold is not None:
        raise usage_error("--flag-threshold was removed: the quality flag now rests on the Estimated Dice columns "
                          "(chexmask.flag.DEFAULT_MIN_DICE; docs/quality.md)")

    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not allow_remote:
        raise usage_error(f"--host {host!r} is not a loopback address; the demo has no authentication,"
                          " pass --allow-remote to expose it anyway")
    with exit_on(ImportError, message=_missing_app_extra):
        import uvicorn

        from chexmask.app.server import create_app
        from chexmask.app.upload import Limits
    from chexmask.inference.segmenter import Segmenter

    with exit_on(chexmask.ChexmaskError):
        segmenter = Segmenter(weights, device=device, uncertainty=uncertainty, batch_size=1, clavicles=clavicles)
    scorer = None
    if atlas:
        with exit_on(chexmask.ChexmaskError, ImportError, OSError, message=lambda exc: f"--atlas {atlas}: {exc}"):
            from chexmask.quality.rca import RCAScorer, open_atlas

            scorer = RCAScorer(open_atlas(atlas, segmenter), segmenter=segmenter)
    limits = Limits(max_bytes=int(max_mb * 2**20), max_pixels=int(max_megapixels * 1e6))
    web = create_app(segmenter, limits, rca=scorer)
    typer.echo(f"chexmask demo on http://{host}:{port}/ (Ctrl+C to stop)")
    uvicorn.run(web, host=host, port=port, log_level="info", ws="none")
