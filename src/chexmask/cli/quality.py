"""Commands that score segmentations: ``rca``, ``estimate``, ``evaluate``, ``validate`` and ``experiment``."""

from __future__ import annotations

import typer

import chexmask
from chexmask.cli._errors import EXIT_FAILED, exit_on, finish_batch, usage_error
from chexmask.cli._options import (
    ROWS_PER_READ,
    atlas_option,
    device_option,
    errors_option,
    id_column_option,
    progress_option,
    rows_per_read_option,
    threads_option,
    uncertainty_option,
    weights_option,
)
from chexmask.cli._threads import set_threads

experiment_app = typer.Typer(help="Experiments: the failure benchmark and quality fit, uncertainty (corruption, out-of-distribution), adaptation and retraining.", no_args_is_help=True)


def rca(
    images: list[str] = typer.Argument(..., help="Image files, folders or path lists (.txt/.csv)."),
    masks: str = typer.Option(..., "--masks", "-m", help="CheXmask table (.csv, .csv.gz or .parquet) holding the masks to score."),
    atlas: str = atlas_option(required=True),
    out: str = typer.Option(..., "--out", "-o", help="Scores table (.csv, .csv.gz or .parquet)."),
    errors: str = errors_option(),
    id_column: str = id_column_option(writing=False),
    k: int = typer.Option(5, "--k", help="References per image."),
    embedding: str = typer.Option("latent", help="How references are chosen: latent (model) or image (thumbnail)."),
    weights: str = weights_option(help="Model for --embedding latent: shipped name or .safetensors."),
    device: str = device_option(),
    save_atlas: str = typer.Option(None, "--save-atlas", help="Also save the atlas to this .npz for later runs."),
    progress: bool = progress_option(),
) -> None:
    """Estimate the Dice of a table's masks without ground truth (reverse classification accuracy)."""
    from chexmask.quality.rca_table import run_rca

    with exit_on(chexmask.ChexmaskError, ValueError):
        run = run_rca(images, masks, atlas, out, errors=errors, id_column=id_column, k=k, embedding=embedding,
                      weights=weights, device=device, save_atlas=save_atlas, progress=progress)
    finish_batch(f"scored {run.scored} rows -> {run.out}; {run.failed} errors -> {run.errors}",
                 total=run.scored + run.failed, done=run.scored, failed=run.failed, errors=run.errors, what="rows")


def estimate(
    table: str = typer.Argument(..., help="CheXmask table (.csv, .csv.gz or .parquet) with Landmarks: published rows, CheXmask-U rows, a physician table, any tool's output."),
    images: list[str] = typer.Argument(..., help="Image files, folders or path lists (.txt/.csv) where the table's ids are found."),
    out: str = typer.Option(..., "--out", "-o", help="Estimates table (.csv, .csv.gz or .parquet): the id column, Estimated Dice Lungs/Heart, Quality Flag, Weak Lung Edges."),
    errors: str = errors_option(),
    ids: str = typer.Option(None, "--ids", help="Only the image ids listed in this file (one per line)."),
    rows_per_read: int = rows_per_read_option(ROWS_PER_READ),
    progress: bool = progress_option(),
) -> None:
    """Estimate the Dice of a table's rows from their landmarks and images: no ground truth, no atlas, no network (the estimate's shape variant)."""
    from chexmask.formats.stream import read_ids
    from chexmask.quality.table_estimate import estimate_table

    with exit_on(chexmask.ChexmaskError):
        run = estimate_table(table, images, out, ids=None if ids is None else read_ids(ids), errors=errors,
                             chunksize=rows_per_read, progress=progress)
    finish_batch(f"estimated {run.estimated} rows -> {run.out}; {run.failed} errors -> {run.errors}",
                 total=run.estimated + run.failed, done=run.estimated, failed=run.failed, errors=run.errors, what="rows or images")


def validate(
    folder: str = typer.Argument(..., help="JSRT-layout folder: images/, landmarks/, splits/, and scr_masks/ (JSRT) or masks/ (lungs-only sources)."),
    weights: str = weights_option(),
    split: str = typer.Option("test", help="Split to score: train, val or test."),
    out: str = typer.Option(None, "--out", "-o", help="Write per-image scores to this CSV."),
    ctr_report: str = typer.Option(None, "--ctr-report", help="Also validate the cardiothoracic ratio against the SCR expert masks (JSRT): report folder (per_image.csv, summary.csv, summary.json, ctr_bland_altman.png)."),
    limit: int = typer.Option(None, min=1, help="Use the first N images of the split only."),
    device: str = device_option(),
    threads: int = threads_option(),
    clavicles: bool = typer.Option(False, "--clavicles", help="Also score the clavicles (a model that predicts them; JSRT's SCR masks)."),
    uncertainty: int = uncertainty_option(help="Latent samples per image; above 0 also scores how well node uncertainty ranks node error (Spearman, 1024 frame)."),
) -> None:
    """Score a model against a source's expert masks and landmarks (Dice, HD, HD95, landmark MSE; node uncertainty vs node error; with --ctr-report the CTR); lungs-only sources report lungs."""
    from chexmask.inference.segmenter import Segmenter
    from chexmask.model.report import node_uncertainty_ranking, score_segmentations, segment_split, summarise

    set_threads(threads)
    with exit_on(chexmask.ChexmaskError, FileNotFoundError):
        segmenter = Segmenter(weights, device=device, uncertainty=uncertainty, batch_size=8, clavicles=clavicles)
        segmented = list(segment_split(segmenter, folder, split, limit))  # one pass, scored twice with --ctr-report
        if ctr_report:  # first: a source without SCR masks fails before anything is scored
            from chexmask.quality.ctr_validation import ctr_of_segmentations

            ctr = ctr_of_segmentations(folder, segmented, segmenter.info, split)
        per_image = score_segmentations(folder, segmented)
        ranking = node_uncertainty_ranking(folder, segmented) if uncertainty else None
    if out:
        from chexmask.formats.tables import write_csv

        write_csv(per_image, out)
    typer.echo(summarise(per_image).to_string(float_format=lambda v: f"{v:.4f}"))
    if ranking:
        typer.echo(f"node uncertainty vs node error ({uncertainty} samples, 1024 frame, {ranking['nodes']} nodes of {ranking['images']} images): "
                   f"Spearman pooled {ranking['pooled']:.3f}, median per image {ranking['per_image']:.3f}, image level "
                   f"{ranking['image_level']:.3f}; median node uncertainty {ranking['median_std_px']:.2f} px, error {ranking['median_error_px']:.2f} px")
    if ctr_report:
        _write_ctr(ctr, ctr_report, None, split)


def _write_ctr(result, out: str, figure: str | None, split: str) -> None:
    """Write the CTR report and print its summary."""
    from chexmask.reports.ctr_report import write_ctr_report

    with exit_on(chexmask.ChexmaskError, ValueError):
        write_ctr_report(result, out, figure)
    columns = ["source", "n", "mae", "bias", "sd", "pearson_r", "tp", "fp", "fn", "tn", "kappa"]
    typer.echo(f"CTR: model {result.model['name']} (SHA256 {result.model['sha256'][:12]}), {split}; report: {out}")
    counts = {c: "-" for c in ("tp", "fp", "fn", "tn")}  # no confusion counts for the width rows
    table = result.summary[columns].astype({c: object for c in counts}).fillna(counts)
    typer.echo(table.to_string(index=False, float_format=lambda v: f"{v:.4f}", na_rep="-"))


def evaluate_cmd(
    pred: str = typer.Argument(..., help="Table under test: CheXmask CSV/Parquet or physician CSV."),
    refs: list[str] = typer.Argument(..., help="One or more reference tables; several give every pairwise comparison."),
    out: str = typer.Option(..., "--out", "-o", help="Report folder (summary.csv/.md, per_image.csv, errors.csv, figures/)."),
    group_by: str = typer.Option(None, "--group-by", help="Metadata column to split images into groups (needs --metadata)."),
    metadata: str = typer.Option(None, "--metadata", help="CSV/Parquet with an image id column and the --group-by column."),
    bootstrap: int = typer.Option(1000, help="Bootstrap resamples for the 95% confidence intervals (0: none)."),
    seed: int = typer.Option(0, help="Seed of the bootstrap."),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="Draw the figures (PNG and PDF)."),
    progress: bool = progress_option(),
) -> None:
    """Agreement of masks and landmarks: Dice, HD, HD95 and landmark MSE per image, organ and comparison."""
    from chexmask.reports.evaluation import evaluate

    with exit_on(chexmask.ChexmaskError):
        report = evaluate(pred, refs, out, group_by=group_by, metadata=metadata, n_boot=bootstrap, seed=seed, figures=figures,
                          progress=progress)
    typer.echo((report.out_dir / "summary.md").read_text(encoding="utf-8"))
    if len(report.errors):
        typer.echo(f"{len(report.errors)} problems recorded in {report.out_dir / 'errors.csv'}", err=True)
    for name, why in report.unscored.items():
        typer.echo(f"error: {name}: no image was compared: {why}", err=True)
    if report.unscored:  # its inputs are the tables: rows it could not compare are findings of the report
        raise typer.Exit(EXIT_FAILED)


@experiment_app.command("corruption")
def experiment_corruption(
    images: list[str] = typer.Argument(..., help="Image files, folders or path lists (.txt/.csv)."),
    out: str = typer.Option(..., "--out", "-o", help="Report folder (CSV tables, correlations.json, summary.md, figures)."),
    landmarks: str = typer.Option(None, "--landmarks", help="Folder of <image id>.npz reference landmarks (JSRT layout) for the error columns [default with --split: IMAGES/landmarks]."),
    split: str = typer.Option(None, help="For a JSRT-layout folder in IMAGES: only this split (train, val, test)."),
    limit: int = typer.Option(None, help="Use the first N images only."),
    weights: str = weights_option(),
    samples: int = uncertainty_option(help="Latent samples per image for the predictive uncertainty and the quality estimate (segment's default)."),
    noise: str = typer.Option("15,30,60,120", help="Gaussian noise std levels (grey levels), comma-separated."),
    sizes: str = typer.Option("0.15,0.3,0.45", help="Occluding block sides (fraction of the shorter side), comma-separated."),
    seed: int = typer.Option(0, help="Seed of the noise and of the latent samples."),
    device: str = device_option(),
    threads: int = threads_option(),
) -> None:
    """Uncertainty and landmark error under Gaussian noise and occlusion, with Spearman correlations."""
    from chexmask.quality.corruption import corruption_experiment
    from chexmask.quality.image_corruptions import default_corruptions
    from chexmask.reports.uncertainty_report import write_corruption_report

    set_threads(threads)

    with exit_on(chexmask.ChexmaskError, ValueError):
        levels = [float(v) for v in noise.split(",") if v.strip()], [float(v) for v in sizes.split(",") if v.strip()]
        result = corruption_experiment(images, weights=weights, landmarks_dir=landmarks, split=split, limit=limit, samples=samples,
                                       corruptions=default_corruptions(*levels), seed=seed, device=device)
        write_corruption_report(result, out)
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
    weights: str = weights_option(),
    samples: int = uncertainty_option(help="Latent samples per image for the predictive uncertainty and the quality estimate (segment's default)."),
    seed: int = typer.Option(0, help="Seed of the crops and of the latent samples."),
    device: str = device_option(),
    threads: int = threads_option(),
) -> None:
    """AUROC of each uncertainty score for telling out-of-distribution images from IN images."""
    from chexmask.quality.ood import ood_experiment
    from chexmask.reports.uncertainty_report import save_ood_images, write_ood_report

    set_threads(threads)

    with exit_on(chexmask.ChexmaskError, ValueError):
        result = ood_experiment([in_dir], [out_dir] if out_dir else [], weights=weights, split=split, limit=limit, synthetic=synthetic,
                                non_chest=non_chest, max_synthetic=max_synthetic, reference=reference, samples=samples,
                                seed=seed, device=device)
        write_ood_report(result, out)
        if save_images:
            save_ood_images(result, out)
    typer.echo(result.aurocs.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


@experiment_app.command("ctr", hidden=True)
def experiment_ctr(
    jsrt_dir: str = typer.Argument(..., help="JSRT-layout folder with images/, scr_masks/, landmarks/, splits/."),
    out: str = typer.Option(..., "--out", "-o", help="Report folder (per_image.csv, summary.csv, summary.json, ctr_bland_altman.png)."),
    split: str = typer.Option("test", help="Split to validate on: train, val or test."),
    weights: str = weights_option(),
    limit: int = typer.Option(None, min=1, help="Use the first N images of the split only."),
    figure: str = typer.Option(None, help="Write the Bland-Altman PNG here instead of OUT/ctr_bland_altman.png."),
    device: str = device_option(),
    threads: int = threads_option(),
) -> None:
    """Former name of validate --ctr-report (the same report; kept working, with a note)."""
    from chexmask.quality.ctr_validation import validate_ctr

    typer.echo("note: experiment ctr is now 'chexmask validate JSRT --ctr-report DIR' (one command scores a model "
               "against a source's experts)", err=True)
    set_threads(threads)
    with exit_on(chexmask.ChexmaskError, ValueError):
        result = validate_ctr(jsrt_dir, split, weights=weights, device=device, limit=limit)
    _write_ctr(result, out, figure, split)


@experiment_app.command("threshold", hidden=True, context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def experiment_threshold() -> None:
    """Removed: the Quality Flag no longer thresholds the uncertainty."""
    raise usage_error("experiment threshold was removed: the Quality Flag now rests on the Estimated Dice; "
                      "calibrate it with chexmask experiment failures, then chexmask experiment quality-fit (docs/quality.md)")


@experiment_app.command("failures")
def experiment_failures(
    sources: list[str] = typer.Argument(..., help="JSRT-layout folders named jsrt, montgomery and/or shenzhen (images/, landmarks/, splits/, expert masks)."),
    out: str = typer.Option(..., "--out", "-o", help="Benchmark table (.parquet): one row per segmentation, true Dice, node errors, node spread."),
    weights: str = weights_option(help="Shipped model benchmarked on the val splits (hybridgnet-jsrt-256 is always run on the other hospitals)."),
    samples: int = uncertainty_option(help="Latent samples per image (segment's default)."),
    limit: int = typer.Option(None, help="First N rows per model only (a quick look)."),
    other_model: bool = typer.Option(True, "--other-model/--no-other-model", help="Also run hybridgnet-jsrt-256 on the other hospitals' train + val (off: the val rows of --weights only)."),
    threads: int = threads_option(),
    progress: bool = progress_option(),
) -> None:
    """The failure benchmark: models on images they never saw, clean and under realistic shifts, scored against experts."""
    from pathlib import Path

    from chexmask.quality.failure_benchmark import build_benchmark, failed

    set_threads(threads)
    with exit_on(chexmask.ChexmaskError, ValueError):
        table = build_benchmark({Path(s).name.lower(): s for s in sources}, weights, samples, limit, progress, other_model)
    table.to_parquet(out)
    typer.echo(f"{len(table)} segmentations, {int(failed(table).sum())} failed (lungs Dice < 0.90 or heart < 0.80) -> {out}")


@experiment_app.command("quality-fit")
def experiment_quality_fit(
    benchmark: str = typer.Argument(..., help="Table of chexmask experiment failures (.parquet)."),
    landmarks: str = typer.Option(..., "--landmarks", help="all_landmarks.npz: the expert landmark sets of the shape model."),
    out: str = typer.Option(..., "--out", "-o", help="Folder: quality-estimator.json, shape-model.npz, node_spearman.csv, and per variant summary.csv/.md and figures."),
    recall: float = typer.Option(0.85, help="Recall of failed rows the flag thresholds must reach out of source."),
) -> None:
    """Fit the Estimated Dice and Node Error Radius on a failure benchmark, leaving one source out to validate them."""
    import json
    from pathlib import Path

    import pandas as pd

    from chexmask.quality.estimator_fit import COVERAGE, fit_quality
    from chexmask.quality.estimator_validation import node_spearman, summary
    from chexmask.reports.quality_report import write_quality_report

    with exit_on(chexmask.ChexmaskError, ValueError, FileNotFoundError):
        bench = pd.read_parquet(benchmark)
        fit = fit_quality(bench, landmarks, recall)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "quality-estimator.json").write_text(json.dumps(fit.params, indent=1))
    fit.shape_model.save(folder / "shape-model.npz")
    node_spearman(bench).to_csv(folder / "node_spearman.csv")
    figures = {variant: summary(bench, pred, fit.thresholds) for variant, pred in fit.out_of_source.items()}
    for variant, pred in fit.out_of_source.items():
        write_quality_report(folder / variant, bench, pred, figures[variant], fit.thresholds, COVERAGE)
    typer.echo(figures["full"].loc["all"].to_string(float_format=lambda v: f"{v:.3f}"))
    typer.echo(f"flag thresholds (chexmask.flag.DEFAULT_MIN_DICE): lungs {fit.thresholds['lungs']:.4f}, heart {fit.thresholds['heart']:.4f}; "
               f"to ship, copy {folder}/quality-estimator.json and shape-model.npz into chexmask/weights/")
