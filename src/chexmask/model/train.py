"""Training of HybridGNet on landmark-annotated chest X-rays.

Deterministic and resumable: augmentation and latent noise of epoch ``e`` are drawn
from generators seeded with ``(seed, e)``, and a checkpoint is written after every
epoch, so a killed run continues exactly where it stopped. The model with the
lowest validation landmark error is exported as safetensors.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from chexmask.model.data import LandmarkDataset, augment, load_jsrt
from chexmask.model.hybridgnet import HybridGNet, ModelConfig, kl_divergence
from chexmask.model.weights import load_model, save_weights
from chexmask.quality.metrics import landmark_sq_errors

__all__ = ["TrainConfig", "train", "landmark_mse"]

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Settings of a training run (all recorded next to the checkpoints)."""

    data_dir: str
    out_dir: str
    size: int = 256
    epochs: int = 300
    batch_size: int = 4
    lr: float = 1e-3
    weight_decay: float = 1e-5
    kl_weight: float = 1e-5
    sample_after: float = 0.3
    seed: int = 0
    init: str | None = None
    threads: int | None = None
    subset: int | None = None  # first N training images only, for quick experiments


def landmark_mse(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean squared landmark error in pixels^2 of the 1024 frame, over annotated nodes.

    Both arrays are normalised to [0, 1]; NaN targets are ignored.
    """
    pred, target = (np.asarray(a, np.float64).reshape(-1, 2) * 1024.0 for a in (pred, target))
    return float(np.nanmean(landmark_sq_errors(pred, target)))


def _loss(out, target: torch.Tensor, valid: torch.Tensor, kl_weight: float) -> torch.Tensor:
    denom = valid.sum().clamp_min(1.0)
    total = 0.0
    for p in (out.points, *out.intermediate):
        total = total + (((p - target) ** 2).sum(-1) * valid).sum() / denom
    return total + kl_weight * kl_divergence(out.mu, out.logvar)


@torch.no_grad()
def predict_points(model: HybridGNet, images: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """Deterministic (z = mu) node positions, normalised, for ``(N, S, S)`` uint8 images."""
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = torch.from_numpy(images[i : i + batch_size]).float().div_(255.0)[:, None]
        out.append(model(x).points.numpy())
    return np.concatenate(out)


def _epoch_batches(data: LandmarkDataset, cfg: TrainConfig, epoch: int):
    rng = np.random.default_rng([cfg.seed, epoch])
    order = rng.permutation(len(data))
    for i in range(0, len(order) - cfg.batch_size + 1, cfg.batch_size):
        pairs = [augment(data.images[j], data.targets[j], rng) for j in order[i : i + cfg.batch_size]]
        x = torch.from_numpy(np.stack([p[0] for p in pairs]))[:, None]
        y = torch.from_numpy(np.stack([p[1] for p in pairs]))
        yield x, y


def train(cfg: TrainConfig, progress: bool = True) -> Path:
    """Train (or resume training) and export the best model.

    Returns
    -------
    Path of ``best.safetensors`` in ``cfg.out_dir``.
    """
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    train_set = load_jsrt(Path(cfg.data_dir), "train", cfg.size, limit=cfg.subset)
    val_set = load_jsrt(Path(cfg.data_dir), "val", cfg.size, limit=cfg.subset)
    mean_shape = np.nanmean(train_set.targets, axis=0)

    if cfg.init:
        model, _ = load_model(cfg.init)
        if model.config.input_size != cfg.size:
            raise ValueError(f"--init weights are {model.config.input_size} px, training is {cfg.size} px")
        model.train()
    else:
        model = HybridGNet(ModelConfig(input_size=cfg.size), mean_shape=mean_shape)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = len(train_set) // cfg.batch_size
    total = cfg.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))

    ckpt_path = out / "last.ckpt"
    start, best, history = 0, math.inf, []
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, weights_only=True)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        start, best = int(ckpt["epoch"]) + 1, float(ckpt["best"])
        history = json.loads((out / "history.json").read_text()) if (out / "history.json").exists() else []
        log.info("resuming from epoch %d (best val MSE %.1f)", start, best)
    (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2))

    bar = tqdm(range(start, cfg.epochs), initial=start, total=cfg.epochs, disable=not progress, desc="train")
    for epoch in bar:
        model.train()
        gen = torch.Generator().manual_seed(cfg.seed * 100003 + epoch)
        sample = epoch >= cfg.sample_after * cfg.epochs
        t0, losses = time.perf_counter(), []
        for x, y in _epoch_batches(train_set, cfg, epoch):
            valid = torch.isfinite(y).all(-1).float()
            y = torch.nan_to_num(y)
            outp = model(x, sample=sample, generator=gen)
            loss = _loss(outp, y, valid, cfg.kl_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        val_mse = landmark_mse(predict_points(model, val_set.images), val_set.targets)
        train_mse = float(np.mean(losses)) * 1024**2 / 3
        history.append({"epoch": epoch, "train_loss_px2": train_mse, "val_mse_px2": val_mse, "seconds": time.perf_counter() - t0})
        if val_mse < best:
            best = val_mse
            save_weights(model, out / "best.safetensors", {"epoch": epoch, "val_mse_px2": val_mse, "train_config": asdict(cfg)})
        torch.save(
            {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "epoch": epoch, "best": best},
            out / "last.ckpt.tmp",
        )
        (out / "last.ckpt.tmp").replace(ckpt_path)
        (out / "history.json").write_text(json.dumps(history))
        bar.set_postfix(loss=f"{train_mse:.0f}", val=f"{val_mse:.0f}", best=f"{best:.0f}")
        log.debug("epoch %d train %.1f val %.1f", epoch, train_mse, val_mse)
    return out / "best.safetensors"
