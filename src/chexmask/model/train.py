"""Training of HybridGNet on landmark-annotated chest X-rays from one or more sources.

Deterministic and resumable: augmentation and latent noise of epoch ``e`` are drawn
from generators seeded with ``(seed, e)``, and a checkpoint is written after every
epoch, so a killed run continues exactly where it stopped.

Several sources (JSRT-layout folders, CheXmask tables: :mod:`chexmask.model.table_data`) train together: nodes of organs a source does not
annotate are NaN and carry no loss; by default every source is drawn equally often (an
epoch has as many steps as the sources have training images, a source's images cycle in
a fresh order), so a small hospital weighs as much as a large one (``sampling =
"proportional"`` draws every image once an epoch instead). Validation is scored per
source with the numbers ``chexmask validate`` reports (:mod:`chexmask.model.validation`:
masks filled at the original size against the expert masks; lungs, and heart and
clavicles where annotated). The model with the best *selection score* is exported: the mean over sources
of each source's mean CheXmask-organ Dice (lungs, and heart where annotated), so every
source counts equally whatever its size; clavicles are reported, not selected on. With
``ema`` > 0 a moving average of the weights is validated and exported instead.
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from chexmask._errors import ChexmaskError
from chexmask.anatomy import ALL_ORGANS, ORGANS
from chexmask.formats.runfiles import write_errors
from chexmask.formats.tables import is_table_path
from chexmask.model.data import (
    LandmarkDataset,
    augment,
    concat_sources,
    failure_augment,
    load_source,
)
from chexmask.model.hybridgnet import (
    INPUT_NORMS,
    HybridGNet,
    ModelConfig,
    ModelOutput,
    flush_denormals,
    kl_divergence,
)
from chexmask.model.table_data import DEFAULT_VAL_FRACTION, load_table
from chexmask.model.validation import (
    predict_points,
    selection_score,
    validation_scores,
)
from chexmask.model.weights import load_model, save_weights

__all__ = ["TrainConfig", "train", "training_loss", "epoch_order", "warm_start"]

log = logging.getLogger(__name__)

SAMPLINGS = ("balanced", "proportional")


@dataclass
class TrainConfig:
    """Settings of a training run (all recorded next to the checkpoints)."""

    sources: list[str]
    out_dir: str
    size: int = 256
    epochs: int = 300
    batch_size: int = 4
    lr: float = 1e-3
    weight_decay: float = 1e-5
    kl_weight: float = 1e-5  # KL weight at the first epoch
    kl_final: float | None = None  # ramp the KL weight geometrically to this value (None: constant kl_weight)
    kl_ramp: float = 0.5  # fraction of the epochs the ramp takes; the weight then stays at kl_final
    sample_after: float = 0.3
    seed: int = 0
    init: str | None = None
    threads: int | None = None
    subset: int | None = None  # first N training images only, for quick experiments
    clavicles: bool = False  # also predict the clavicles (JSRT annotates them)
    robust: bool = True  # the wide augmentation of data.augment (False: the JSRT-only recipe)
    input_norm: str = "none"  # ModelConfig.input_norm: "zscore" standardises each image inside the network
    refine_levels: tuple[int, ...] = ()  # ModelConfig.refine_levels: encoder levels of further image-to-graph skips
    sampling: str = "balanced"  # SAMPLINGS: every source equally often, or every image once an epoch
    ema: float = 0.0  # decay of an exponential moving average of the weights, validated and exported (0: off)
    images: str | None = None  # where the ids of table sources resolve
    val_fraction: float = DEFAULT_VAL_FRACTION  # ids (by hash) that validate, for tables without a Split column
    corrected_only: bool = False  # table sources: only the organs their Corrected column lists carry loss
    failure_augment: float = 0.0  # probability of one failure mode of data.failure_augment per draw (0: off)
    spread_weight: float = 0.0  # weight of the spread term (_spread_term): latent spread trained to match node error (0: off)
    spread_samples: int = 4  # latent samples per image that the spread term draws

    def __post_init__(self) -> None:
        if isinstance(self.sources, (str, Path)):
            self.sources = [str(self.sources)]
        self.sources = [str(s) for s in self.sources]
        self.refine_levels = tuple(self.refine_levels)
        if self.input_norm not in INPUT_NORMS:
            raise ChexmaskError(f"input_norm {self.input_norm!r}: choose one of {', '.join(INPUT_NORMS)}")
        if self.sampling not in SAMPLINGS:
            raise ChexmaskError(f"sampling {self.sampling!r}: choose one of {', '.join(SAMPLINGS)}")
        if self.kl_weight <= 0 or (self.kl_final is not None and self.kl_final <= 0) or not 0.0 < self.kl_ramp <= 1.0:
            raise ChexmaskError(f"KL schedule {self.kl_weight}:{self.kl_final} over {self.kl_ramp} of the epochs: "
                                "give positive weights and a ramp fraction in (0, 1]")
        if not 0.0 <= self.failure_augment <= 1.0:
            raise ChexmaskError(f"failure_augment {self.failure_augment}: give a probability in [0, 1]")
        if self.spread_weight < 0 or self.spread_samples < 2:
            raise ChexmaskError(f"spread term {self.spread_weight} with {self.spread_samples} samples: give a weight >= 0 "
                                "and at least 2 samples")
        if not 0.0 < self.val_fraction < 1.0:
            raise ChexmaskError(f"val_fraction {self.val_fraction}: give a fraction in (0, 1)")
        tables = [s for s in self.sources if is_table_path(s)]
        if tables and self.images is None:
            raise ChexmaskError(f"{', '.join(tables)}: a table source needs --images, the folder where its ids resolve")
        if not 0.0 <= self.ema < 1.0:
            raise ChexmaskError(f"ema {self.ema}: give a decay in [0, 1) (0 turns the average off)")
        self.model_config()  # bad model settings fail here, before any data is read

    def model_config(self) -> ModelConfig:
        """The architecture this run trains (ChexmaskError for settings it cannot have)."""
        try:
            return ModelConfig(input_size=self.size, organs=self.organs, input_norm=self.input_norm,
                               refine_levels=self.refine_levels)
        except ValueError as err:
            raise ChexmaskError(f"model settings: {err}") from None

    def kl_at(self, epoch: int) -> float:
        """The KL weight of ``epoch``: ``kl_weight``, or its geometric ramp to ``kl_final``.

        The ramp (as CheXmask-U's, which raises the weight from 1e-5 to 1e-2 during
        training) lets the decoder learn the shapes first and the latent carry spread later.
        """
        if self.kl_final is None:
            return self.kl_weight
        t = min(epoch / max(self.kl_ramp * self.epochs, 1.0), 1.0)
        return float(self.kl_weight * (self.kl_final / self.kl_weight) ** t)

    @property
    def organs(self) -> tuple[str, ...]:
        return ALL_ORGANS if self.clavicles else ORGANS


def _landmark_term(out, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Squared node distance over annotated nodes, summed over the model's heads (the final and every intermediate output)."""
    denom = valid.sum().clamp_min(1.0)
    total = 0.0
    for p in (out.points, *out.intermediate):
        total = total + (((p - target) ** 2).sum(-1) * valid).sum() / denom
    return total


def training_loss(out: ModelOutput, target: torch.Tensor, valid: torch.Tensor, kl_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss of one batch and its landmark term: the landmark term of every head plus ``kl_weight`` times the KL
    divergence of the latent (the spread term, when trained, comes on top); ``benchmarks/gpu_oneshot.py`` times this step."""
    landmarks = _landmark_term(out, target, valid)
    return landmarks + kl_weight * kl_divergence(out.mu, out.logvar), landmarks


def _spread_term(model: HybridGNet, out: ModelOutput, feats: list[torch.Tensor], target: torch.Tensor, valid: torch.Tensor,
                 samples: int, generator: torch.Generator) -> torch.Tensor:
    """Mean squared gap between each annotated node's latent spread and its error.

    The spread is what inference reports as a node's std: ``sqrt(var x + var y)`` over
    ``samples`` decodes of ``z = mu + eps * sigma`` (the image's maps decoded again, the
    encoder run once). The error is the distance of ``out``'s node to its annotation,
    detached, so the term moves the spread towards the error and never the nodes towards
    a smaller spread. Both in the [0, 1] units of the landmark term, so the weights compare.
    """
    b, n = out.points.shape[:2]
    z = model.draw_latent(out.mu.repeat(samples, 1), out.logvar.repeat(samples, 1), generator)  # sample-major, as the maps
    points, _ = model.decode(z, [f.repeat(samples, 1, 1, 1) for f in feats])
    spread = points.view(samples, b, n, 2).var(dim=0).sum(-1).clamp_min(1e-12).sqrt()
    error = (out.points.detach() - target).norm(dim=-1)
    return (((spread - error) ** 2) * valid).sum() / valid.sum().clamp_min(1.0)


def balanced_order(sources: list[str], rng: np.random.Generator) -> np.ndarray:
    """One epoch's image indices: ``len(sources)`` draws, each source equally often.

    Each source's images are taken in a fresh random order, cycled when the source is
    drawn more often than it has images (small sources repeat, large ones are subsampled),
    and the draws of all sources are shuffled together.
    """
    names = list(dict.fromkeys(sources))
    per_source = len(sources) // max(len(names), 1)
    picks = []
    for name in names:
        idx = np.flatnonzero(np.asarray(sources) == name)
        reps = -(-per_source // len(idx))
        picks.append(np.concatenate([rng.permutation(idx) for _ in range(reps)])[:per_source])
    return rng.permutation(np.concatenate(picks)) if picks else np.zeros(0, np.int64)


def epoch_order(sources: list[str], rng: np.random.Generator, sampling: str = "balanced") -> np.ndarray:
    """One epoch's image indices under a ``sampling`` of :data:`SAMPLINGS`.

    ``balanced``: :func:`balanced_order`; ``proportional``: every image once, in a random
    order, so a source is drawn as often as it has training images.
    """
    return balanced_order(sources, rng) if sampling == "balanced" else rng.permutation(len(sources))


def _epoch_batches(data: LandmarkDataset, cfg: TrainConfig, epoch: int):
    rng = np.random.default_rng([cfg.seed, epoch])
    order = epoch_order(data.sources, rng, cfg.sampling)
    for i in range(0, len(order) - cfg.batch_size + 1, cfg.batch_size):
        drawn = [(data.images[j], data.targets[j]) for j in order[i : i + cfg.batch_size]]
        if cfg.failure_augment:
            drawn = [failure_augment(img, tgt, rng, cfg.failure_augment) for img, tgt in drawn]
        pairs = [augment(img, tgt, rng, robust=cfg.robust) for img, tgt in drawn]
        x = torch.from_numpy(np.stack([p[0] for p in pairs]))[:, None]
        y = torch.from_numpy(np.stack([p[1] for p in pairs]))
        yield x, y


def warm_start(model: HybridGNet, init: HybridGNet) -> None:
    """Copy ``init``'s weights into ``model``, which may predict more organs.

    Tensors of the same shape are copied. A model with the clavicles has the CheXmask
    organs first, so its node-indexed tensors (the latent-to-graph layer and the mean
    shape) start with ``init``'s: those prefixes are copied and the clavicle rows keep
    their fresh values.
    """
    if init.config.input_size != model.config.input_size:
        raise ChexmaskError(f"--init weights are {init.config.input_size} px but training is at {model.config.input_size} px; "
                            f"use --size {init.config.input_size} or other weights")
    target, source = model.state_dict(), init.state_dict()
    with torch.no_grad():
        for key, value in source.items():
            if key not in target:
                flags = " ".join(f"--refine-level {level}" for level in init.config.refine_levels)
                raise ChexmaskError(f"--init weights have tensor {key}, which this model has not (they have refine_levels "
                                    f"{init.config.refine_levels}, this run {model.config.refine_levels}); "
                                    f"to train on from them, give exactly {flags}")
            dst = target[key]
            if dst.shape == value.shape:
                dst.copy_(value)
            elif dst.shape[1:] == value.shape[1:] and dst.shape[0] > value.shape[0]:
                dst[: value.shape[0]].copy_(value)
            else:
                raise ChexmaskError(f"--init weights: tensor {key} has shape {tuple(value.shape)}, the model needs {tuple(dst.shape)}")


def _load_split(cfg: TrainConfig, split: str, out: Path) -> LandmarkDataset:
    """One split of every source: JSRT-layout folders, and tables whose ids resolve under ``cfg.images``.

    Table rows that cannot train are written to ``out/<split>.errors.csv`` (the errors
    table of every command) and counted in a warning; a split without images is an error.
    """
    parts, names, problems = [], [], []
    for source in cfg.sources:
        if not is_table_path(source):
            parts.append(load_source(Path(source), split, cfg.size, cfg.subset, cfg.organs, references=split == "val"))
            names.append(Path(source).resolve().name)
        else:
            part, bad = load_table(source, cfg.images, split, cfg.size, organs=cfg.organs, val_fraction=cfg.val_fraction,
                                   corrected_only=cfg.corrected_only, limit=cfg.subset, references=split == "val")
            parts.append(part)
            names.append(Path(source).name.split(".")[0])
            problems += bad
            log.info("%s: %d %s rows, %d left out", source, len(part), split, len(bad))
    errors = out / f"{split}.errors.csv"
    if problems:
        write_errors(errors, problems)
        log.warning("%d %s table rows left out (image missing or unreadable, frame mismatch, bad landmarks): see %s",
                    len(problems), split, errors)
    elif errors.exists():
        errors.unlink()  # a resumed run with fixed tables leaves no stale list
    data = concat_sources(parts, names)
    if not len(data):
        raise ChexmaskError(f"no {split} images in {', '.join(cfg.sources)}" + (
            f"; tables validate on their Split column's val rows, else on --val-fraction {cfg.val_fraction} of the ids"
            if split == "val" else ""))
    return data


def _check_resume(out: Path, cfg: TrainConfig) -> None:
    saved = out / "train_config.json"
    if not (out / "last.ckpt").exists() or not saved.exists():
        return
    old = json.loads(saved.read_text())
    for key, default in (("size", None), ("clavicles", False), ("input_norm", "none"), ("refine_levels", []), ("ema", 0.0)):  # older runs saved no such keys
        if old.get(key, default) != json.loads(json.dumps(getattr(cfg, key))):  # as saved: tuples are lists
            raise ChexmaskError(f"{out} holds a checkpoint trained with {key} = {old.get(key, default)}, this run asks for "
                                f"{key} = {getattr(cfg, key)}; use another --out folder or the same setting")


def train(cfg: TrainConfig, progress: bool = True) -> Path:
    """Train (or resume training) and export the best model.

    Denormal floats are flushed to zero during the run (:func:`flush_denormals`).

    Returns
    -------
    Path of ``best.safetensors`` in ``cfg.out_dir``.
    """
    with flush_denormals():
        return _train(cfg, progress)


def _train(cfg: TrainConfig, progress: bool) -> Path:
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _check_resume(out, cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    organs = cfg.organs
    train_set, val_set = (_load_split(cfg, split, out) for split in ("train", "val"))
    with warnings.catch_warnings():  # organs no training image annotates (a lungs-only source alone): NaN, then 0.5
        warnings.simplefilter("ignore", RuntimeWarning)
        mean_shape = np.nan_to_num(np.nanmean(train_set.targets, axis=0), nan=0.5)
    model = HybridGNet(cfg.model_config(), mean_shape=mean_shape)
    if cfg.init:
        init = load_model(cfg.init)[0]
        if init.config.input_norm != cfg.input_norm:
            log.warning("--init %s was trained with input_norm = %s, this run uses %s (--input-norm): its first layers will "
                        "see other inputs than they were trained on", cfg.init, init.config.input_norm, cfg.input_norm)
        warm_start(model, init)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = len(train_set) // cfg.batch_size
    total = max(cfg.epochs * steps_per_epoch, 1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    # The exported model: the weights themselves, or their moving average (BatchNorm statistics included).
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True) if cfg.ema else None
    export = model if ema is None else ema.module

    ckpt_path = out / "last.ckpt"
    start, best, history = 0, -math.inf, []
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, weights_only=True)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        if ema is not None:
            ema.load_state_dict(ckpt["ema"])
        start, best = int(ckpt["epoch"]) + 1, float(ckpt["best"])
        history = json.loads((out / "history.json").read_text()) if (out / "history.json").exists() else []
        log.info("resuming from epoch %d (best selection score %.4f)", start, best)
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
            mu, logvar, feats = model.encode(x)
            points, inter = model.decode(model.draw_latent(mu, logvar, gen) if sample else mu, feats)
            outp = ModelOutput(points, mu, logvar, inter)
            loss, landmarks = training_loss(outp, y, valid, cfg.kl_at(epoch))
            if cfg.spread_weight:
                loss = loss + cfg.spread_weight * _spread_term(model, outp, feats, y, valid, cfg.spread_samples, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if ema is not None:
                ema.update_parameters(model)
            losses.append(landmarks.item() / (1 + len(outp.intermediate)))  # per head: 3, or 5 with two refine stages
        per_source = validation_scores(predict_points(export, val_set.images), val_set, organs)
        score = selection_score(per_source)
        train_mse = float(np.mean(losses)) * 1024**2  # px^2 of the 1024 frame, x and y summed, mean over heads
        history.append({"epoch": epoch, "train_loss_px2": train_mse, "kl_weight": cfg.kl_at(epoch), "val": per_source, "val_score": score,
                        "seconds": time.perf_counter() - t0})
        if score > best:
            best = score
            save_weights(export, out / "best.safetensors", {"epoch": epoch, "val": per_source, "val_score": score,
                                                           "train_config": asdict(cfg)})
        state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "epoch": epoch, "best": best}
        torch.save(state | ({} if ema is None else {"ema": ema.state_dict()}), out / "last.ckpt.tmp")
        (out / "last.ckpt.tmp").replace(ckpt_path)
        (out / "history.json").write_text(json.dumps(history))
        bar.set_postfix(loss=f"{train_mse:.0f}", val=f"{score:.4f}", best=f"{best:.4f}")
        log.debug("epoch %d train %.1f val %s", epoch, train_mse, per_source)
    return out / "best.safetensors"
