"""Batched prediction with latent-sample uncertainty (CheXmask-U).

Each image is encoded once; the deterministic landmarks decode ``z = mu``. With
``n_samples > 0`` the decoder also runs on ``n_samples`` draws ``z ~ N(mu, sigma)``
of every image (each image's draws decoded as one batch), and the per-node mean and
standard deviation of the decoded positions are the predictive uncertainty. The noise
of each image comes from a generator seeded by the image's id, so results do not
depend on the batch size, the order of the images or the number of workers (bitwise
so with ``micro_batch``).

References
----------
CheXmask-U: Gaggion et al., node-level uncertainty for landmark-based segmentation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from chexmask.model.hybridgnet import HybridGNet

__all__ = ["BatchPrediction", "predict_batch", "image_seed"]


def image_seed(image_id: str, seed: int = 0) -> int:
    """A stable 63-bit seed from an image id and a run seed (not Python's salted ``hash``)."""
    digest = hashlib.sha256(f"{seed}:{image_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


@dataclass
class BatchPrediction:
    """Predictions of a batch, in normalised [0, 1] coordinates of the model frame.

    Attributes
    ----------
    points : (B, 120, 2) ndarray
        Deterministic landmarks (z = mu), (x, y).
    mu, sigma : (B, latent_dim) ndarray
        Posterior mean and standard deviation of the latent.
    sample_mean, sample_std : (B, 120, 2) ndarray or None
        Mean and std of the decoded latent samples (None when ``n_samples == 0``).
    """

    points: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray
    sample_mean: np.ndarray | None = None
    sample_std: np.ndarray | None = None


@torch.no_grad()
def predict_batch(
    model: HybridGNet,
    images: torch.Tensor,
    image_ids: list[str],
    n_samples: int = 0,
    seed: int = 0,
    max_decode: int = 1024,
    micro_batch: int | None = None,
) -> BatchPrediction:
    """Predict landmarks (and uncertainty) for a batch of preprocessed images.

    Parameters
    ----------
    model : HybridGNet in eval mode.
    images : (B, 1, S, S) float tensor in [0, 1], on the model's device.
    image_ids : list of str
        One id per image; seeds its latent samples.
    n_samples : int
        Latent samples per image (0 = deterministic only).
    seed : int
        Run seed mixed into every image's seed.
    max_decode : int
        Most latent samples decoded at once (bounds memory at 1024 px).
    micro_batch : int, optional
        Run the model on chunks of exactly this many images, zero-padding the last
        one. Matrix kernels pick their blocking from the batch size, so the same
        image can come out a few ulps apart in batches of different sizes; with a
        fixed chunk shape every image's result is bitwise the same whatever the
        batch size, the order of the images, or their neighbours.
    """
    if len(image_ids) != images.shape[0]:
        raise ValueError(f"got {images.shape[0]} images but {len(image_ids)} ids")
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}")
    if micro_batch is not None:
        if micro_batch < 1:
            raise ValueError(f"micro_batch must be >= 1, got {micro_batch}")
        parts = []
        for start in range(0, len(image_ids), micro_batch):
            x, ids = images[start : start + micro_batch], list(image_ids[start : start + micro_batch])
            k = len(ids)
            if k < micro_batch:
                x = torch.cat([x, x.new_zeros((micro_batch - k, *x.shape[1:]))])
                ids += [""] * (micro_batch - k)
            parts.append(_head(_predict(model, x, ids, n_samples, seed, max_decode, n_real=k), k))
        return _concat(parts)
    return _predict(model, images, image_ids, n_samples, seed, max_decode)


def _head(pred: BatchPrediction, k: int) -> BatchPrediction:
    return BatchPrediction(*(None if v is None else v[:k] for v in _fields(pred)))


def _concat(parts: list[BatchPrediction]) -> BatchPrediction:
    fields = list(zip(*(_fields(p) for p in parts)))
    return BatchPrediction(*(None if v[0] is None else np.concatenate(v) for v in fields))


def _fields(pred: BatchPrediction) -> tuple:
    return (pred.points, pred.mu, pred.sigma, pred.sample_mean, pred.sample_std)


def _predict(
    model: HybridGNet, images: torch.Tensor, image_ids: list[str], n_samples: int, seed: int, max_decode: int, n_real: int | None = None
) -> BatchPrediction:
    mu, logvar, feats = model.encode(images)
    points, _ = model.decode(mu, feats)
    sigma = torch.exp(0.5 * logvar)
    result = BatchPrediction(points.float().cpu().numpy(), mu.float().cpu().numpy(), sigma.float().cpu().numpy())
    if n_samples == 0:
        return result

    # Each image's samples decode as one batch against its own feature maps, which the
    # decoder broadcasts instead of copying per sample (1.6x faster on the CPU at 256 px);
    # padding images (beyond n_real) are not sampled.
    samples = torch.full((len(image_ids), n_samples, points.shape[1], 2), float("nan"), device=mu.device)
    for i, image_id in enumerate(image_ids[:n_real]):
        noise = torch.randn(n_samples, mu.shape[1], generator=torch.Generator().manual_seed(image_seed(image_id, seed)))
        z = mu[i] + noise.to(mu.device, mu.dtype) * sigma[i]  # drawn on the CPU: every device gets the same noise
        own = [f[i : i + 1] for f in feats]
        for start in range(0, n_samples, max_decode):
            samples[i, start : start + max_decode] = model.decode(z[start : start + max_decode], own)[0].float()
    result.sample_mean = samples.mean(1).cpu().numpy()
    result.sample_std = samples.std(1, unbiased=n_samples > 1).cpu().numpy()
    return result
