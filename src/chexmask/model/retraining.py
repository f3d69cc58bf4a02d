"""Training from tables as experiments: what a hospital's corrected rows buy, and the reference's retraining check.

:func:`adaptation` is the review loop measured: a model from elsewhere is fine-tuned on
the first ``n`` rows of a source's expert landmarks written as a table (the rows a
hospital's reviewers corrected), for several ``n``, and each result is scored on the
source's val split with the scoring of ``chexmask validate``.

:func:`retraining` is the dataset-level check of the CheXmask paper (Table 4): a model
segments one source's images into a table, a fresh HybridGNet trains from that table
alone, and it is scored on the other sources' expert annotations.

Both report the exported weights of the last epoch, so the reported split never selects
an epoch; the budget (epochs, draws, resolution, seconds) is returned beside every score.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from chexmask.formats.records import csv_columns, segmentation_record
from chexmask.formats.source_table import source_table
from chexmask.formats.tables import write_table
from chexmask.model.hybridgnet import HybridGNet
from chexmask.model.report import score_split, segment_split, summarise
from chexmask.model.train import TrainConfig, train
from chexmask.model.weights import load_model, save_weights

__all__ = ["Budget", "adaptation", "model_table", "retraining"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Budget:
    """What one training run of an experiment may spend."""

    draws: int = 2000  # images drawn (augmented) in total; epochs = ceil(draws / training rows)
    size: int = 256
    batch_size: int = 4
    lr: float = 2e-4
    robust: bool = False  # the wide augmentation (True) or the JSRT-only recipe
    threads: int | None = 1
    seed: int = 0

    def epochs(self, n_rows: int) -> int:
        return max(1, -(-self.draws // max(n_rows, 1)))


def _last_weights(run_dir: Path, cfg: TrainConfig) -> Path:
    """The weights of the run's last epoch (``last.safetensors``), not the val-selected ones."""
    ckpt = torch.load(run_dir / "last.ckpt", weights_only=True)
    model = HybridGNet(cfg.model_config())
    model.load_state_dict(ckpt["model"])  # the mean shape is a buffer: it comes with the state
    out = run_dir / "last.safetensors"
    save_weights(model, out, {"epoch": int(ckpt["epoch"]), "train_config": asdict(cfg)})
    return out


def _fit(table: pd.DataFrame, images: Path, run_dir: Path, budget: Budget, init: str | None) -> tuple[Path, dict]:
    """Train on a table's rows (Split train/val); the last epoch's weights and the budget spent."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / f"{run_dir.name}.parquet"
    write_table(table, path)
    n_train = int((table["Split"] == "train").sum())
    config = {} if init is None else load_model(init)[0].config  # a warm start keeps the architecture
    batch = min(budget.batch_size, n_train)  # a step needs a whole batch: few rows, smaller batches
    cfg = TrainConfig([str(path)], str(run_dir), budget.size, budget.epochs(n_train), batch, budget.lr,
                      seed=budget.seed, init=init, threads=budget.threads, robust=budget.robust, images=str(images),
                      input_norm=getattr(config, "input_norm", "none"), refine_levels=tuple(getattr(config, "refine_levels", ())),
                      clavicles=len(getattr(config, "organs", ())) > 3)
    start = time.perf_counter()
    train(cfg, progress=False)
    spent = {"rows": n_train, "epochs": cfg.epochs, "draws": cfg.epochs * (n_train // cfg.batch_size) * cfg.batch_size,
             "size": cfg.size, "seconds": round(time.perf_counter() - start, 1)}
    return _last_weights(run_dir, cfg), spent


def _scores(weights: str | Path, folder: Path, split: str) -> dict[str, float]:
    """Mean Dice per organ group (and landmark MSE) on a split, as ``chexmask validate`` scores it."""
    from chexmask.inference.segmenter import Segmenter

    # The torch backend: every weights file of an experiment is scored once, not worth an OpenVINO export each.
    summary = summarise(score_split(Segmenter(str(weights), uncertainty=0, device="cpu", backend="torch"), folder, split))["mean"]
    return {k: float(summary[k]) for k in ("lungs_dice", "heart_dice", "landmark_mse") if k in summary}


def adaptation(folder: str | Path, out_dir: str | Path, *, weights: str = "hybridgnet-jsrt-256",
               counts: tuple[int, ...] = (10, 25, 50, 100), budget: Budget = Budget()) -> pd.DataFrame:
    """Fine-tune ``weights`` on the first ``n`` train rows of a source (seeded order), for every ``n`` of ``counts``.

    Returns one row per ``n`` (0 = ``weights`` as given): the source's val scores and
    the budget spent. ``n`` larger than the train split is capped to it.
    """
    folder, out_dir = Path(folder), Path(out_dir)
    rows = source_table(folder, ("train", "val"))
    train_ids = rows.loc[rows["Split"] == "train", "ImageID"].to_numpy()
    order = np.random.default_rng(budget.seed).permutation(len(train_ids))
    results = [{"source": folder.name, "corrected_rows": 0, **_scores(weights, folder, "val"),
                "rows": 0, "epochs": 0, "draws": 0, "size": budget.size, "seconds": 0.0}]
    for n in sorted({min(c, len(train_ids)) for c in counts}):
        keep = set(train_ids[order[:n]]) | set(rows.loc[rows["Split"] == "val", "ImageID"])
        tuned, spent = _fit(rows[rows["ImageID"].isin(keep)], folder / "images", out_dir / f"n{n:04d}", budget, weights)
        results.append({"source": folder.name, "corrected_rows": n, **_scores(tuned, folder, "val"), **spent})
        log.info("%s: %d corrected rows -> %s", folder.name, n, results[-1])
    return pd.DataFrame(results)


def model_table(weights: str | Path, folder: str | Path, splits: tuple[str, ...] = ("train", "val")) -> pd.DataFrame:
    """A model's CheXmask rows (the CSV columns of ``chexmask segment``, plus ``Split``) for the images of ``splits``."""
    from chexmask.inference.segmenter import Segmenter

    segmenter = Segmenter(str(weights), uncertainty=0, device="cpu")
    columns = csv_columns("ImageID")
    rows = []
    for split in splits:
        for image_id, _, seg in segment_split(segmenter, folder, split):
            record = segmentation_record(seg, "ImageID")
            rows.append({**{c: record[c] for c in columns}, "ImageID": image_id, "Split": split})  # the split file's id
    return pd.DataFrame(rows, columns=[*columns, "Split"])


def retraining(train_folder: str | Path, score_on: dict[str, tuple[str | Path, str]], out_dir: str | Path, *,
               weights: str = "hybridgnet-multi-256", budget: Budget = Budget()) -> pd.DataFrame:
    """Segment ``train_folder``'s train and val images with ``weights``, train a fresh model on that table alone, score it.

    Parameters
    ----------
    score_on : dict
        Name -> (JSRT-layout folder, split) of the expert annotations to score on.

    Returns one row per scored set: the fresh model's scores, the budget spent and the
    table's size.
    """
    train_folder, out_dir = Path(train_folder), Path(out_dir)
    table = model_table(weights, train_folder)
    fresh, spent = _fit(table, train_folder / "images", out_dir / f"from-{train_folder.name}", budget, None)
    return pd.DataFrame([{"table": f"{train_folder.name} ({weights})", "scored_on": name, "split": split,
                          **_scores(fresh, Path(folder), split), **spent}
                         for name, (folder, split) in score_on.items()])

