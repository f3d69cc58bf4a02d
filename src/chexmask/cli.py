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
