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


@app.command()
def train(
    data_dir: str = typer.Argument(..., help="JSRT-layout folder: images/, landmarks/, splits/{train,val}.txt."),
    out_dir: str = typer.Option("runs/hybridgnet", "--out", "-o", help="Checkpoints, history and best.safetensors go here."),
    size: int = typer.Option(256, help="Input resolution (256, 512 or 1024)."),
    epochs: int = typer.Option(300, help="Total epochs (cosine learning-rate schedule over them)."),
    batch_size: int = typer.Option(4, help="Images per step."),
    lr: float = typer.Option(1e-3, help="Peak learning rate (Adam)."),
    seed: int = typer.Option(0, help="Seed of augmentation, latent noise and initialisation."),
    init: str = typer.Option(None, help="Warm start from a shipped model name or .safetensors file."),
    threads: int = typer.Option(None, help="CPU threads for torch (default: torch's choice)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Train HybridGNet on the train split, selecting on val; resumes from OUT/last.ckpt if present."""
    from chexmask.model.train import TrainConfig
    from chexmask.model.train import train as run_training

    cfg = TrainConfig(data_dir, out_dir, size, epochs, batch_size, lr, seed=seed, init=init, threads=threads)
    try:
        best = run_training(cfg, progress=progress)
    except chexmask.ChexmaskError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"best model: {best}")


@app.command()
def rca(
    images: list[str] = typer.Argument(..., help="Image files, folders or path lists (.txt/.csv)."),
    masks: str = typer.Option(..., "--masks", "-m", help="CheXmask table (.csv, .csv.gz or .parquet) holding the masks to score."),
    atlas: str = typer.Option(..., "--atlas", help="JSRT folder (images/, scr_masks/, splits/train.txt) or an atlas .npz."),
    out: str = typer.Option(..., "--out", "-o", help="Scores table (.csv, .csv.gz or .parquet)."),
    errors: str = typer.Option(None, "--errors", help="Per-row errors CSV [default: OUT's name + .errors.csv]."),
    id_column: str = typer.Option(None, "--id-column", help="Image id column of the table [default: detected]."),
    k: int = typer.Option(5, "--k", help="References per image."),
    embedding: str = typer.Option("latent", help="How references are chosen: latent (model) or image (thumbnail)."),
    weights: str = typer.Option("hybridgnet-jsrt-256", help="Model for --embedding latent: shipped name or .safetensors."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:N or auto."),
    save_atlas: str = typer.Option(None, "--save-atlas", help="Also save the atlas to this .npz for later runs."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Estimate the Dice of a table's masks without ground truth (reverse classification accuracy)."""
    from chexmask.quality.rca_table import run_rca

    try:
        run = run_rca(images, masks, atlas, out, errors=errors, id_column=id_column, k=k, embedding=embedding,
                      weights=weights, device=device, save_atlas=save_atlas, progress=progress)
    except (chexmask.ChexmaskError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"scored {run.scored} rows -> {run.out}; {run.failed} errors -> {run.errors}")
    if run.failed:
        raise typer.Exit(1)


@app.command()
def validate(
    jsrt_dir: str = typer.Argument(..., help="JSRT-layout folder with images/, landmarks/, scr_masks/, splits/."),
    weights: str = typer.Option("hybridgnet-jsrt-256", help="Shipped model name or .safetensors file."),
    split: str = typer.Option("test", help="Split to score: train, val or test."),
    out: str = typer.Option(None, "--out", "-o", help="Write per-image scores to this CSV."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:N or auto."),
) -> None:
    """Score a model against the JSRT expert masks and landmarks (Dice, HD, HD95, landmark MSE)."""
    from chexmask.inference.segmenter import Segmenter
    from chexmask.model.report import score_split, summarise

    try:
        per_image = score_split(Segmenter(weights, device=device, batch_size=8), jsrt_dir, split)
    except (chexmask.ChexmaskError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if out:
        per_image.to_csv(out, index=False)
    typer.echo(summarise(per_image).to_string(float_format=lambda v: f"{v:.4f}"))


@app.command("masks")
def masks_cmd(
    table: str = typer.Argument(..., help="CheXmask or physician table (.csv, .csv.gz or .parquet)."),
    out_dir: str = typer.Option(..., "--out", "-o", help="Output folder (also gets errors.csv and export.json)."),
    fmt: str = typer.Option("png", "--format", "-f", help="png (ORGAN/ID.png), npz (ID.npz), nifti (ORGAN/ID.nii.gz) or coco (annotations.json)."),
    organs: list[str] = typer.Option(["right_lung", "left_lung", "heart"], "--organ", help="Organ to write; repeat for several."),
    min_rca: float = typer.Option(None, "--min-rca", help="Only rows with Dice RCA (Mean) >= this (0.7 is the reference's threshold)."),
    ids: str = typer.Option(None, "--ids", help="Only the image ids listed in this file (one per line)."),
    workers: int = typer.Option(None, "--workers", "-j", help="Worker processes (default: all CPUs)."),
    chunksize: int = typer.Option(1000, help="Table rows read at a time (memory is proportional to it)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Decode the masks of a CheXmask table at the original resolution and write them as files."""
    import os

    from chexmask.formats.masks_export import export_masks
    from chexmask.formats.stream import read_ids

    try:
        summary = export_masks(
            table, out_dir, fmt=fmt, organs=organs, min_rca=min_rca,
            ids=None if ids is None else read_ids(ids), workers=workers or os.cpu_count() or 1,
            chunksize=chunksize, progress=progress,
        )
    except (chexmask.ChexmaskError, ValueError, ImportError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"wrote the masks of {summary.written} images to {summary.out_dir} ({fmt})")
    if summary.failed:
        typer.echo(f"error: {summary.failed} rows skipped; see {summary.errors_path}", err=True)
        raise typer.Exit(1)


@app.command("convert")
def convert_cmd(
    table: str = typer.Argument(..., help="Table to convert (.csv, .csv.gz or .parquet)."),
    out: str = typer.Option(..., "--out", "-o", help="Output table; its suffix (.csv, .csv.gz, .parquet) picks the format."),
    chunksize: int = typer.Option(10000, help="Rows held in memory at a time."),
) -> None:
    """Convert a CheXmask table between CSV and Parquet without loss (text columns byte for byte)."""
    from chexmask.formats.stream import convert_table

    try:
        rows = convert_table(table, out, chunksize=chunksize)
    except (chexmask.ChexmaskError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"converted {rows} rows: {table} -> {out}")


@app.command("evaluate")
def evaluate_cmd(
    pred: str = typer.Argument(..., help="Table under test: CheXmask CSV/Parquet or physician CSV."),
    refs: list[str] = typer.Argument(..., help="One or more reference tables; several give every pairwise comparison."),
    out: str = typer.Option(..., "--out", "-o", help="Report folder (summary.csv/.md, per_image.csv, errors.csv, figures/)."),
    group_by: str = typer.Option(None, "--group-by", help="Metadata column to split images into groups (needs --metadata)."),
    metadata: str = typer.Option(None, "--metadata", help="CSV/Parquet with an image id column and the --group-by column."),
    bootstrap: int = typer.Option(1000, help="Bootstrap resamples for the 95% confidence intervals (0: none)."),
    seed: int = typer.Option(0, help="Seed of the bootstrap."),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="Draw the figures (PNG and PDF)."),
) -> None:
    """Agreement of masks and landmarks: Dice, HD, HD95 and landmark MSE per image, organ and comparison."""
    from chexmask.quality.evaluate import evaluate

    try:
        report = evaluate(pred, refs, out, group_by=group_by, metadata=metadata, n_boot=bootstrap, seed=seed, figures=figures)
    except chexmask.ChexmaskError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo((report.out_dir / "summary.md").read_text(encoding="utf-8"))
    if len(report.errors):
        typer.echo(f"{len(report.errors)} problems recorded in {report.out_dir / 'errors.csv'}", err=True)


export_app = typer.Typer(help="Export predictions for review in other tools.", no_args_is_help=True)
import_app = typer.Typer(help="Import reviewed annotations as CheXmask tables.", no_args_is_help=True)
app.add_typer(export_app, name="export")
app.add_typer(import_app, name="import")


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
    from chexmask.formats.labelstudio import export_tasks

    try:
        config = export_tasks(table, images_dir, out, url_prefix=url_prefix, dataset=dataset, model_version=model_version)
    except chexmask.ChexmaskError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"tasks: {out}\nlabeling config: {config}")


@import_app.command("labelstudio")
def import_labelstudio(
    export: str = typer.Argument(..., help="Label Studio project export in JSON format."),
    out: str = typer.Option("corrected.csv", "--out", "-o", help="Physician-style CheXmask table (CSV or Parquet)."),
    annotator: str = typer.Option(None, help="Only this reviewer's annotations (user id or email)."),
    dataset: str = typer.Option(None, help="Dataset column for every row (default: from the tasks)."),
) -> None:
    """Turn reviewed Label Studio tasks into a CheXmask table in the original image frame."""
    from chexmask.formats.labelstudio import import_corrections

    try:
        df = import_corrections(export, out, annotator=annotator, dataset=dataset)
    except chexmask.ChexmaskError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{len(df)} corrected images written to {out}")


experiment_app = typer.Typer(help="Uncertainty experiments: corruption and out-of-distribution.", no_args_is_help=True)
app.add_typer(experiment_app, name="experiment")


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


@experiment_app.command("corruption")
def experiment_corruption(
    images: list[str] = typer.Argument(..., help="Image files, folders or path lists (.txt/.csv)."),
    out: str = typer.Option(..., "--out", "-o", help="Report folder (CSV tables, correlations.json, summary.md, figures)."),
    landmarks: str = typer.Option(None, "--landmarks", help="Folder of <image id>.npz reference landmarks (JSRT layout) for the error columns [default with --split: IMAGES/landmarks]."),
    split: str = typer.Option(None, help="For a JSRT-layout folder in IMAGES: only this split (train, val, test)."),
    limit: int = typer.Option(None, help="Use the first N images only."),
    weights: str = typer.Option("hybridgnet-jsrt-256", help="Shipped model name or .safetensors file."),
    samples: int = typer.Option(20, help="Latent samples per image for the predictive uncertainty."),
    noise: str = typer.Option("15,30,60,120", help="Gaussian noise std levels (grey levels), comma-separated."),
    sizes: str = typer.Option("0.15,0.3,0.45", help="Occluding block sides (fraction of the shorter side), comma-separated."),
    seed: int = typer.Option(0, help="Seed of the noise and of the latent samples."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:N or auto."),
    threads: int = typer.Option(None, help="CPU threads for torch (default: torch's choice)."),
) -> None:
    """Uncertainty and landmark error under Gaussian noise and occlusion, with Spearman correlations."""
    from chexmask.quality.corruption import corruption_experiment, default_corruptions

    _set_threads(threads)

    try:
        levels = [float(v) for v in noise.split(",") if v.strip()], [float(v) for v in sizes.split(",") if v.strip()]
        result = corruption_experiment(images, out, weights=weights, landmarks_dir=landmarks, split=split, limit=limit, samples=samples,
                                       corruptions=default_corruptions(*levels), seed=seed, device=device)
    except (chexmask.ChexmaskError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    rho = result.correlations["per_image"]["all"]["rho"]
    typer.echo(f"{len(result.per_image)} segmentations; Spearman (per image, uncertainty vs error): {rho}; report: {out}/summary.md")


@experiment_app.command("ood")
def experiment_ood(
    in_dir: str = typer.Argument(..., help="In-distribution images: folder, file or path list."),
    out_dir: str = typer.Argument(None, help="Out-of-distribution images (optional with --synthetic/--non-chest)."),
    out: str = typer.Option(..., "--out", "-o", help="Report folder (scores.csv, auroc.csv, summary.md, figure)."),
    reference: str = typer.Option(None, help="Training images for the Mahalanobis scores: a JSRT-layout folder (train split) or any folder."),
    split: str = typer.Option(None, help="For a JSRT-layout IN_DIR: only this split (train, val, test)."),
    limit: int = typer.Option(None, help="Use the first N in-distribution images only."),
    synthetic: bool = typer.Option(True, "--synthetic/--no-synthetic", help="Add flipped, rotated, cropped and inverted copies of IN images."),
    non_chest: bool = typer.Option(True, "--non-chest/--no-non-chest", help="Add scikit-image sample images and pydicom's example CT/MR slices."),
    max_synthetic: int = typer.Option(20, help="IN images each synthetic set is made from."),
    save_images: bool = typer.Option(False, "--save-images", help="Also write the generated OOD images under OUT/images/."),
    weights: str = typer.Option("hybridgnet-jsrt-256", help="Shipped model name or .safetensors file."),
    samples: int = typer.Option(20, help="Latent samples per image for the predictive uncertainty."),
    seed: int = typer.Option(0, help="Seed of the crops and of the latent samples."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:N or auto."),
    threads: int = typer.Option(None, help="CPU threads for torch (default: torch's choice)."),
) -> None:
    """AUROC of each uncertainty score for telling out-of-distribution images from IN images."""
    from chexmask.quality.ood import ood_experiment

    _set_threads(threads)

    try:
        result = ood_experiment([in_dir], [out_dir] if out_dir else [], out, weights=weights, split=split, limit=limit, synthetic=synthetic,
                                non_chest=non_chest, max_synthetic=max_synthetic, reference=reference, samples=samples,
                                seed=seed, device=device, save_images=save_images)
    except (chexmask.ChexmaskError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(result.aurocs.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on (loopback unless --allow-remote)."),
    port: int = typer.Option(8000, help="TCP port."),
    weights: str = typer.Option("hybridgnet-jsrt-256", help="Shipped model name or .safetensors file."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:N or auto."),
    uncertainty: int = typer.Option(20, help="Latent samples per image for node uncertainty (0 = off)."),
    max_mb: float = typer.Option(32.0, help="Largest upload, in MiB."),
    max_megapixels: float = typer.Option(40.0, help="Largest image, in megapixels."),
    flag_threshold: float = typer.Option(10.0, help="Without --atlas: mean node uncertainty (px, 1024 frame) above which a result is flagged (provisional, uncalibrated)."),
    atlas: str = typer.Option(None, help="RCA atlas (.npz or JSRT folder): flag results by estimated Dice instead of uncertainty."),
    allow_remote: bool = typer.Option(False, "--allow-remote", help="Allow a non-loopback --host (the demo has no authentication)."),
) -> None:
    """Start the web demo: upload an X-ray, see lungs and heart with uncertainty, download the result."""
    import ipaddress

    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not allow_remote:
        typer.echo(f"error: --host {host!r} is not a loopback address; the demo has no authentication,"
                   " pass --allow-remote to expose it anyway", err=True)
        raise typer.Exit(1)
    try:
        import uvicorn

        from chexmask.app.server import create_app
        from chexmask.app.upload import Limits
    except ImportError as exc:
        typer.echo(f"error: {exc.name} is missing; install the demo with: pip install 'chexmask[app]'", err=True)
        raise typer.Exit(1) from None
    from chexmask.inference.segmenter import Segmenter

    try:
        segmenter = Segmenter(weights, device=device, uncertainty=uncertainty, batch_size=1)
    except chexmask.ChexmaskError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    scorer = None
    if atlas:
        try:
            from chexmask.quality.rca import RCAScorer, open_atlas

            scorer = RCAScorer(open_atlas(atlas, segmenter), segmenter=segmenter)
        except (chexmask.ChexmaskError, ImportError, OSError) as exc:
            typer.echo(f"error: --atlas {atlas}: {exc}", err=True)
            raise typer.Exit(1) from None
    limits = Limits(max_bytes=int(max_mb * 2**20), max_pixels=int(max_megapixels * 1e6))
    web = create_app(segmenter, limits, flag_threshold_px=flag_threshold, rca=scorer)
    typer.echo(f"chexmask demo on http://{host}:{port}/ (Ctrl+C to stop)")
    uvicorn.run(web, host=host, port=port, log_level="info", ws="none")


@app.command("segment", epilog="Exit codes: 0 done (some inputs may have failed, see the errors file); 1 every input failed; "
             "2 bad options or inputs; 3 the run could not proceed; 130 interrupted (rerun to resume).")
def segment_cmd(
    inputs: list[str] = typer.Argument(None, help="Image files, folders (searched recursively) or path lists (.txt/.csv)."),
    sample: bool = typer.Option(False, "--sample", help="Add the chest X-ray bundled with chexmask (CC BY 3.0, see its ATTRIBUTION.csv) to the inputs."),
    rca: str = typer.Option(None, "--rca", help="Fill the Dice RCA columns, using this atlas: a JSRT folder or an atlas .npz (see docs/rca.md)."),
    overlays: str = typer.Option(None, "--overlays", help="Write an overlay PNG per image (contours + node uncertainty) into this folder."),
    out: str = typer.Option(..., "--out", "-o", help="Output table: .csv (CheXmask CSV) or .parquet (+ per-node arrays)."),
    id_column: str = typer.Option("Image ID", "--id-column", help="Name of the image id column (ids are paths relative to the inputs' common folder)."),
    weights: str = typer.Option("hybridgnet-jsrt-256", help="Shipped model name or .safetensors file."),
    uncertainty: int = typer.Option(50, help="Latent samples per image for node uncertainty (0 = off)."),
    seed: int = typer.Option(0, help="Seed of the latent samples (each image's noise is also seeded by its id)."),
    batch_size: int = typer.Option(32, "--batch-size", "-b", help="Images per model call (a multiple of 8 on CPU, 32 on CUDA wastes nothing)."),
    workers: int = typer.Option(None, "--workers", "-j", help="Processes reading images and encoding masks (0 = none) [default: CPUs - 1, at most 8]."),
    device: str = typer.Option("auto", help="cpu, cuda, cuda:N or auto."),
    amp: bool = typer.Option(True, "--amp/--no-amp", help="float16 autocast on CUDA (ignored on CPU)."),
    shard: str = typer.Option(None, "--shard", help="Only shard I of N, as I/N (0-based), split by id hash."),
    chunk_size: int = typer.Option(1000, "--chunk-size", help="Images per part file (what a kill can lose)."),
    engine: str = typer.Option("local", help="local (this machine) or ray (Ray Data; pip install 'chexmask[ray]')."),
    threads: int = typer.Option(None, help="CPU threads for torch (default: torch's choice)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Segment images into a CheXmask table; resumable: rerun the same command after a crash."""
    import os

    from chexmask.inference.pipeline import segment_dataset

    _set_threads(threads)
    inputs = list(inputs or [])
    if sample:
        from importlib import resources

        inputs.append(str(resources.files("chexmask") / "samples" / "00cfd1c1.jpg"))
    if not inputs:
        typer.echo("error: give image files or folders, or --sample", err=True)
        raise typer.Exit(2)
    if workers is None:
        workers = max(1, min(8, (os.cpu_count() or 2) - 1))
    args = {"inputs": inputs, "out": out, "id_column": id_column, "weights": weights, "uncertainty": uncertainty,
            "seed": seed, "batch_size": batch_size, "workers": workers, "device": device, "amp": amp, "shard": shard,
            "chunk_size": chunk_size, "engine": engine, "threads": threads, "rca": rca, "overlays": overlays}
    try:
        run = segment_dataset(inputs, out, weights=weights, device=device, uncertainty=uncertainty, seed=seed,
                              batch_size=batch_size, amp=amp, workers=workers, id_column=id_column, shard=shard,
                              chunk_size=chunk_size, engine=engine, progress=progress, args=args, rca=rca, overlays=overlays)
    except (ValueError, chexmask.InputError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except chexmask.ChexmaskError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(3) from None
    except KeyboardInterrupt:
        typer.echo(f"interrupted; rerun the same command to resume (finished parts are in {out}.parts/)", err=True)
        raise typer.Exit(130) from None
    resumed = f", {run.resumed} resumed" if run.resumed else ""
    typer.echo(f"segmented {run.segmented} of {run.images} images{resumed} in {run.seconds:.1f} s "
               f"({run.images_per_second:.1f} images/s) -> {run.output}")
    if run.failed:
        typer.echo(f"{run.failed} inputs failed -> {run.errors}", err=True)
    if run.images and not run.segmented:
        raise typer.Exit(1)


@app.command("build", epilog="Exit codes as for segment.")
def build_cmd(
    source: str = typer.Argument(..., help="chestxray8, chexpert, mimic-cxr-jpg, padchest or vindr-cxr."),
    root: str = typer.Argument(..., help="The dataset's folder as downloaded (metadata files and images anywhere below)."),
    out: str = typer.Option(..., "--out", "-o", help="Output table: .csv or .parquet, keyed by the source's id column."),
    weights: str = typer.Option("hybridgnet-jsrt-256", help="Shipped model name or .safetensors file."),
    uncertainty: int = typer.Option(50, help="Latent samples per image for node uncertainty (0 = off)."),
    rca: str = typer.Option(None, "--rca", help="Fill the Dice RCA columns with this atlas (JSRT folder or atlas .npz)."),
    batch_size: int = typer.Option(32, "--batch-size", "-b", help="Images per model call."),
    workers: int = typer.Option(None, "--workers", "-j", help="Processes reading images and encoding masks [default: CPUs - 1, at most 8]."),
    device: str = typer.Option("auto", help="cpu, cuda, cuda:N or auto."),
    shard: str = typer.Option(None, "--shard", help="Only shard I of N, as I/N (0-based), split by id hash."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Build a public dataset's CheXmask table: frontal images, the source's ids, resumable."""
    import os

    from chexmask.sources.build import build_source

    if workers is None:
        workers = max(1, min(8, (os.cpu_count() or 2) - 1))
    try:
        run = build_source(source, root, out, weights=weights, uncertainty=uncertainty, rca=rca, batch_size=batch_size,
                           workers=workers, device=device, shard=shard, progress=progress,
                           args={"source": source, "root": root, "out": out, "weights": weights, "uncertainty": uncertainty,
                                 "rca": rca, "shard": shard})
    except (ValueError, chexmask.InputError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except chexmask.ChexmaskError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(3) from None
    typer.echo(f"segmented {run.segmented} of {run.images} {source} images in {run.seconds:.1f} s -> {run.output}")
    if run.failed:
        typer.echo(f"{run.failed} inputs failed -> {run.errors}", err=True)
    if run.images and not run.segmented:
        raise typer.Exit(1)
