"""Batched prediction with latent-sample uncertainty (CheXmask-U).

Each image is encoded once; the deterministic landmarks decode ``z = mu``. With
``n_samples > 0`` the decoder also runs on ``n_samples`` draws ``z ~ N(mu, sigma)``
of every image (each image's draws decoded as one batch), and the per-node mean and
standard deviation of the decoded positions are the predictive uncertainty. The noise
of each image comes from a generator seeded by a hash of the image's model-frame pixels
and the run seed (:func:`image_seed`), so results depend on the pixels, the weights and
the seed only: not on the file's name or folder, the batch size, the order of the images
or the number of workers (bitwise so with ``micro_batch``).

References
----------
CheXmask-U: Gaggion et al., node-level uncertainty for landmark-based segmentation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from chexmask.model.hybridgnet import HybridGNet, flush_denormals

__all__ = ["BatchPrediction", "predict_batch", "image_seed"]


def image_seed(pixels: np.ndarray, seed: int = 0) -> int:
    """A stable 63-bit seed from an image's pixels and a run seed.

    Parameters
    ----------
    pixels : (S, S) ndarray
        The model-frame image: uint8, or float in [0, 1] holding ``uint8 / 255`` values
        (both give the same seed).
    seed : int
        The run seed.

    Examples
    --------
    >>> a = np.zeros((4, 4), np.uint8)
    >>> image_seed(a) == image_seed(a.astype(np.float32) / 255) != image_seed(a, seed=1)
    True
    """
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8:
        pixels = np.rint(np.asarray(pixels, np.float64) * 255.0).clip(0, 255).astype(np.uint8)
    h = hashlib.sha256(f"{seed}:{pixels.shape}".encode())
    h.update(np.ascontiguousarray(pixels).tobytes())
    return int.from_bytes(h.digest()[:8], "little") >> 1


@dataclass
class BatchPrediction:
    """Predictions of a batch, in normalised [0, 1] coordinates of the model frame.

    Attributes
    ----------
    points : (B, n_nodes, 2) ndarray
        Deterministic landmarks (z = mu), (x, y); 120 nodes, or 166 with the clavicles.
    mu, sigma : (B, latent_dim) ndarray
        Posterior mean and standard deviation of the latent.
    sample_mean, sample_std : (B, n_nodes, 2) ndarray or None
        Mean and std of the decoded latent samples (None when ``n_samples == 0``).
    """

    points: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray
    sample_mean: np.ndarray | None = None
    sample_std: np.ndarray | None = None


@torch.inference_mode()
def predict_batch(
    model: HybridGNet,
    images: torch.Tensor,
    seeds: list[int],
    n_samples: int = 0,
    max_decode: int = 1024,
    micro_batch: int | None = None,
) -> BatchPrediction:
    """Predict landmarks (and uncertainty) for a batch of preprocessed images.

    Parameters
    ----------
    model : HybridGNet in eval mode, or a network with its ``encode``/``decode``
        (:class:`chexmask.inference.openvino_net.OpenVINONet`).
    images : (B, 1, S, S) float tensor in [0, 1], on the model's device.
    seeds : list of int
        One seed per image for its latent samples (:func:`image_seed` of its pixels).
    n_samples : int
        Latent samples per image (0 = deterministic only).
    max_decode : int
        Most latent samples decoded at once (bounds memory at 1024 px).
    micro_batch : int, optional
        Run the model on chunks of exactly this many images, zero-padding the last
        one. Matrix kernels pick their blocking from the batch size, so the same
        image can come out a few ulps apart in batches of different sizes; with a
        fixed chunk shape every image's result is bitwise the same whatever the
        batch size, the order of the images, or their neighbours.
    """
    with flush_denormals():
        return _predict_batch(model, images, seeds, n_samples, max_decode, micro_batch)


def _predict_batch(model, images: torch.Tensor, seeds: list[int], n_samples: int, max_decode: int,
                   micro_batch: int | None) -> BatchPrediction:
    if len(seeds) != images.shape[0]:
        raise ValueError(f"got {images.shape[0]} images but {len(seeds)} seeds")
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}")
    if micro_batch is not None:
        if micro_batch < 1:
            raise ValueError(f"micro_batch must be >= 1, got {micro_batch}")
        parts = []
        for start in range(0, len(seeds), micro_batch):
            x, chunk = images[start : start + micro_batch], list(seeds[start : start + micro_batch])
            k = len(chunk)
            if k < micro_batch:
                x = torch.cat([x, x.new_zeros((micro_batch - k, *x.shape[1:]))])
                chunk += [0] * (micro_batch - k)
            parts.append(_head(_predict(model, x, chunk, n_samples, max_decode, n_real=k), k))
        return _concat(parts)
    return _predict(model, images, seeds, n_samples, max_decode)


def _head(pred: BatchPrediction, k: int) -> BatchPrediction:
    return BatchPrediction(*(None if v is None else v[:k] for v in _fields(pred)))


def _concat(parts: list[BatchPrediction]) -> BatchPrediction:
    fields = list(zip(*(_fields(p) for p in parts)))
    return BatchPrediction(*(None if v[0] is None else np.concatenate(v) for v in fields))


def _fields(pred: BatchPrediction) -> tuple:
    return (pred.points, pred.mu, pred.sigma, pred.sample_mean, pred.sample_std)


def _predict(
    model: HybridGNet, images: torch.Tensor, seeds: list[int], n_samples: int, max_decode: int, n_real: int | None = None
) -> BatchPrediction:
    mu, logvar, feats = model.encode(images)
    points, _ = model.decode(mu, feats)
    sigma = torch.exp(0.5 * logvar)
    result = BatchPrediction(points.float().cpu().numpy(), mu.float().cpu().numpy(), sigma.float().cpu().numpy())
    if n_samples == 0:
        return result

    # Each image's samples decode as one batch against its own feature maps, which the
    # decoder broadcasts instead of copying per sample (measured in docs/segment.md);
    # padding images (beyond n_real) are not sampled.
    samples = torch.full((len(seeds), n_samples, points.shape[1], 2), float("nan"), device=mu.device)
    for i, own_seed in enumerate(seeds[:n_real]):
        noise = torch.randn(n_samples, mu.shape[1], generator=torch.Generator().manual_seed(int(own_seed)))
        z = mu[i] + noise.to(mu.device, mu.dtype) * sigma[i]  # drawn on the CPU: every device gets the same noise
        own = [f[i : i + 1] for f in feats]
        for start in range(0, n_samples, max_decode):
            samples[i, start : start + max_decode] = model.decode(z[start : start + max_decode], own)[0].float()
    result.sample_mean = samples.mean(1).cpu().numpy()
    result.sample_std = samples.std(1, unbiased=n_samples > 1).cpu().numpy()
    return result
