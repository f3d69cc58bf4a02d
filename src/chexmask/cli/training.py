"""``chexmask train``: fit HybridGNet on JSRT-layout folders and CheXmask tables."""

from __future__ import annotations

import typer

import chexmask
from chexmask.cli._errors import exit_on, usage_error
from chexmask.cli._options import progress_option, threads_option


def train(
    sources: list[str] = typer.Argument(..., help="JSRT-layout folders (images/, landmarks/, splits/{train,val}.txt) and CheXmask tables (.csv, .csv.gz, .parquet: an id column, Landmarks, Height, Width; optional Split), mixed freely; see --sampling."),
    images: str = typer.Option(None, help="Folder where the tables' image ids resolve (required with a table)."),
    val_fraction: float = typer.Option(0.1, help="Tables without a Split column validate on this fraction of their ids (chosen by a hash of the id)."),
    corrected_only: bool = typer.Option(False, "--corrected-only", help="Tables: train only on the organs their Corrected column lists (chexmask import labelstudio writes it: the organs a reviewer moved)."),
    out_dir: str = typer.Option("runs/hybridgnet", "--out", "-o", help="Checkpoints, history and best.safetensors go here."),
    size: int = typer.Option(256, help="Input resolution (256, 512 or 1024)."),
    epochs: int = typer.Option(300, help="Total epochs (cosine learning-rate schedule over them)."),
    batch_size: int = typer.Option(4, help="Images per step."),
    lr: float = typer.Option(1e-3, help="Peak learning rate (Adam)."),
    seed: int = typer.Option(0, help="Seed of augmentation, latent noise and initialisation."),
    init: str = typer.Option(None, help="Warm start from a shipped model name or .safetensors file."),
    threads: int = threads_option(),
    clavicles: bool = typer.Option(False, "--clavicles", help="Also predict the clavicles (RCLA/LCLA landmarks; sources without them carry no clavicle loss)."),
    robust: bool = typer.Option(True, "--robust-augment/--basic-augment", help="Wide augmentation for other hospitals (default) or the JSRT-only recipe."),
    failure_augment: float = typer.Option(0.0, help="Probability per draw of one failure mode of other hospitals' films (aspect change, AP-like short thorax, zoom-out, magnified heart, dark flat film, rotation; docs/training.md), before the augmentation above; 0 = off."),
    input_norm: str = typer.Option("none", help="Intensity standardisation inside the network: none, or zscore (each image to one mean and spread)."),
    refine_levels: list[int] = typer.Option([], "--refine-level", help="Add an image-to-graph skip sampling this encoder level (0 = full resolution; repeatable) after the reference's two."),
    sampling: str = typer.Option("balanced", help="Draws per epoch: balanced (every source equally often) or proportional (every training image once)."),
    ema: float = typer.Option(0.0, help="Validate and export an exponential moving average of the weights with this decay per step (e.g. 0.998; 0 = off)."),
    kl: str = typer.Option("1e-5", help="KL weight of the latent: a constant (1e-5), or START:END, a geometric ramp over the first --kl-ramp of the epochs (as CheXmask-U: sampled outputs then spread where the model is unsure)."),
    kl_ramp: float = typer.Option(0.5, help="Fraction of the epochs the --kl START:END ramp takes."),
    spread_weight: float = typer.Option(0.0, help="Weight of the spread term: each node's spread over latent samples is trained towards its error (docs/training.md); 0 = off."),
    spread_samples: int = typer.Option(4, help="Latent samples per image the spread term draws (at least 2)."),
    progress: bool = progress_option(),
) -> None:
    """Train HybridGNet on the sources' train splits, selecting on their val splits; resumes from OUT/last.ckpt if present.

    Table rows that cannot train (image missing, frame mismatch, bad landmarks) are listed in OUT/train.errors.csv and
    OUT/val.errors.csv and left out.
    """
    from chexmask.model.train import TrainConfig
    from chexmask.model.train import train as run_training

    try:  # settings the run cannot have are bad usage (exit 2), whatever raised them
        kl_weight, kl_final = _kl_schedule(kl)
        cfg = TrainConfig(sources, out_dir, size, epochs, batch_size, lr, seed=seed, init=init, threads=threads,
                          clavicles=clavicles, robust=robust, input_norm=input_norm, sampling=sampling, ema=ema,
                          refine_levels=tuple(refine_levels), kl_weight=kl_weight, kl_final=kl_final, kl_ramp=kl_ramp,
                          images=images, val_fraction=val_fraction, corrected_only=corrected_only, failure_augment=failure_augment,
                          spread_weight=spread_weight, spread_samples=spread_samples)
    except (chexmask.ChexmaskError, ValueError) as err:
        raise usage_error(str(err)) from None
    with exit_on(chexmask.ChexmaskError, ValueError):
        best = run_training(cfg, progress=progress)
    typer.echo(f"best model: {best}")


def _kl_schedule(text: str) -> tuple[float, float | None]:
    """``--kl`` as (start, end): ``"1e-5"`` -> (1e-5, None), ``"1e-5:3e-4"`` -> (1e-5, 3e-4)."""
    parts = text.split(":")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2):
        raise ValueError(f"--kl {text!r}: give a weight (1e-5) or a ramp START:END (1e-5:3e-4)")
    return values[0], (values[1] if len(values) == 2 else None)


# The options the two experiments share: one definition, one meaning.
_SIZE = typer.Option(256, help="Training resolution (a warm start needs the weights' own).")
_BATCH = typer.Option(4, help="Images per step (fewer when a run has fewer rows).")
_ROBUST = typer.Option(False, "--robust-augment/--basic-augment", help="The wide augmentation, or the JSRT-only recipe (default).")
_THREADS = typer.Option(1, help="CPU threads for torch.")


def _budget(draws: int, size: int, lr: float, batch_size: int, threads: int | None, seed: int, robust: bool):
    from chexmask.model.retraining import Budget

    return Budget(draws=draws, size=size, batch_size=batch_size, lr=lr, robust=robust, threads=threads, seed=seed)


def experiment_adapt(
    source: str = typer.Argument(..., help="JSRT-layout folder: its train split's expert landmarks play a hospital's corrected rows; its val split scores."),
    out: str = typer.Option(..., "--out", "-o", help="Folder: one run per count, and adaptation.csv."),
    weights: str = typer.Option("hybridgnet-jsrt-256", help="The model from elsewhere that is fine-tuned."),
    counts: str = typer.Option("10,25,50,100", help="Numbers of corrected rows, comma-separated (capped to the train split)."),
    draws: int = typer.Option(2000, help="Images drawn per fine-tuning run (epochs = draws / rows, rounded up)."),
    size: int = _SIZE,
    lr: float = typer.Option(2e-4, help="Peak learning rate."),
    batch_size: int = _BATCH,
    robust: bool = _ROBUST,
    threads: int = _THREADS,
    seed: int = typer.Option(0, help="Seed of the rows' order, augmentation and latent noise."),
) -> None:
    """The review loop measured: fine-tune a model on N corrected rows of a hospital, score that hospital's val split."""
    from pathlib import Path

    from chexmask.model.retraining import adaptation

    with exit_on(chexmask.ChexmaskError, ValueError):
        n = tuple(int(c) for c in counts.split(","))
        table = adaptation(source, out, weights=weights, counts=n, budget=_budget(draws, size, lr, batch_size, threads, seed, robust))
    table.to_csv(Path(out) / "adaptation.csv", index=False)
    typer.echo(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


def experiment_retrain(
    source: str = typer.Argument(..., help="JSRT-layout folder whose train and val images --weights segments into the training table."),
    score: list[str] = typer.Option(..., "--score", help="FOLDER:SPLIT of expert annotations to score the fresh model on (repeatable), e.g. ../shared/data/jsrt:test."),
    out: str = typer.Option(..., "--out", "-o", help="Folder: the table, the run, and retraining.csv."),
    weights: str = typer.Option("hybridgnet-multi-256", help="The model that builds the table."),
    draws: int = typer.Option(50000, help="Images drawn in training (epochs = draws / rows, rounded up)."),
    size: int = _SIZE,
    lr: float = typer.Option(1e-3, help="Peak learning rate (a fresh model)."),
    batch_size: int = _BATCH,
    robust: bool = _ROBUST,
    threads: int = _THREADS,
    seed: int = typer.Option(0, help="Seed of initialisation, augmentation and latent noise."),
) -> None:
    """The reference's retraining check: a fresh HybridGNet trained only on a model's table of one source, scored on others."""
    from pathlib import Path

    from chexmask.model.retraining import retraining

    with exit_on(chexmask.ChexmaskError, ValueError):
        targets = {}
        for spec in score:
            folder, _, split = spec.rpartition(":")
            if not folder or split not in ("train", "val", "test"):
                raise ValueError(f"--score {spec!r}: give FOLDER:SPLIT, SPLIT one of train, val, test")
            targets[f"{Path(folder).name}:{split}"] = (folder, split)
        table = retraining(source, targets, out, weights=weights, budget=_budget(draws, size, lr, batch_size, threads, seed, robust))
    table.to_csv(Path(out) / "retraining.csv", index=False)
    typer.echo(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
