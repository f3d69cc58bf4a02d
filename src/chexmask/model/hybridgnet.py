"""HybridGNet with two image-to-graph skip connections (IGSC).

A residual CNN encoder gives the mean and log-variance of a 64-d latent; a
Chebyshev graph-convolution decoder turns a latent sample into the 120 landmark
positions. At two decoder depths an intermediate position is predicted per node,
the encoder features at that position are sampled (3x3 bilinear ROI) and joined to
the node features. Positions are predicted as offsets from the training mean shape
(output layers start at zero), which makes training converge much faster.

Pure ``nn.Module``: no file I/O here (weights live in :mod:`chexmask.model.weights`).

References
----------
Gaggion et al., IEEE TMI 2022, doi:10.1109/TMI.2022.3224660;
Gaggion et al., MICCAI 2021, doi:10.1007/978-3-030-87193-2_57.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from chexmask.anatomy import ALL_ORGANS, ORGANS, graph_levels, n_nodes
from chexmask.model.layers import ChebConv, GraphNorm, ResBlock, project_roi, sample_projected, sample_roi, scaled_laplacian

__all__ = ["ModelConfig", "HybridGNet", "ModelOutput", "standardise", "flush_denormals"]


@contextmanager
def flush_denormals() -> Iterator[None]:
    """Run the network on the CPU with denormal floats flushed to zero, then restore the default.

    The trained weights hold many values below float32's smallest normal number, and the
    products they make are too; x86 CPUs compute on such values down a slow path, which
    made every forward and backward pass several times slower (docs/training.md,
    "Speed"). Flushing changes results by less than float32's smallest normal number.
    """
    global _flush_depth
    _flush_depth += 1
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        _flush_depth -= 1
        if not _flush_depth:  # nested uses (a prediction inside a training run) keep it on to the outermost
            torch.set_flush_denormal(False)


_flush_depth = 0

INPUT_NORMS = ("none", "zscore")
# Target of the "zscore" input standardisation: about the pooled mean and standard deviation
# of the JSRT, Montgomery and Shenzhen model-frame pixels (0.59, 0.27), so the first layers
# of a network trained on raw pixels see the same range.
ZSCORE_MEAN, ZSCORE_STD = 0.6, 0.27
# Many latent samples of one image: a skip projects its whole feature map once
# (layers.project_roi) when the map has at most this many cells per graph node, i.e.
# when that is cheaper than projecting each sample's nodes for about this many samples.
_PROJECT_CELLS_PER_NODE = 20


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters that define a HybridGNet; saved with the weights.

    Attributes
    ----------
    input_size : int
        Side of the square input image (256, 512 or 1024).
    latent_dim : int
        Size of the variational latent.
    channels : tuple of int
        Encoder channels per level; each level after the first halves the resolution.
    cheb_k : int
        Chebyshev order of the graph convolutions.
    filters : tuple of int
        Decoder widths ``[out, ..., coarse]``, as in the reference ``[2, 32, 32, 32, 16, 16, 16]``.
    organs : tuple of str
        Organs the decoder predicts, in node order: the CheXmask three, optionally
        followed by the clavicles (:data:`chexmask.anatomy.ALL_ORGANS`).
    input_norm : str
        Intensity standardisation inside the network, before the first convolution:
        ``"none"`` (the [0, 1] pixels as they are) or ``"zscore"`` (each image's pixels
        to mean :data:`ZSCORE_MEAN` and standard deviation :data:`ZSCORE_STD`). Part of
        the network, so every backend and every caller standardise alike.
    refine_levels : tuple of int
        Encoder levels (0 = full resolution) sampled by further image-to-graph skips
        after the reference's two (which sample the two deepest levels), in order. Each
        adds a residual to the positions before it (:class:`RefineStage`); ``()`` is
        the reference architecture.
    """

    input_size: int = 256
    latent_dim: int = 64
    channels: tuple[int, ...] = (8, 16, 32, 64, 128, 128)
    cheb_k: int = 6
    filters: tuple[int, ...] = (2, 32, 32, 32, 16, 16, 16)
    window: int = 3
    organs: tuple[str, ...] = ORGANS
    input_norm: str = "none"
    refine_levels: tuple[int, ...] = ()
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if tuple(self.organs[:3]) != ORGANS or any(o not in ALL_ORGANS for o in self.organs):
            raise ValueError(f"organs must start with {ORGANS} and be taken from {ALL_ORGANS}, got {self.organs}")
        if self.input_norm not in INPUT_NORMS:
            raise ValueError(f"input_norm must be one of {INPUT_NORMS}, got {self.input_norm!r}")
        if self.input_size % 2 ** (len(self.channels) - 1):
            raise ValueError(f"input_size {self.input_size} must be divisible by {2 ** (len(self.channels) - 1)}")
        if any(not 0 <= level < len(self.channels) - 2 for level in self.refine_levels):
            raise ValueError(f"refine_levels must be encoder levels 0-{len(self.channels) - 3} (the two deepest are the "
                             f"reference skips), got {self.refine_levels}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        d = dict(d)
        for key in ("channels", "filters", "organs", "refine_levels"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)


def standardise(image: torch.Tensor) -> torch.Tensor:
    """Each ``(B, 1, S, S)`` image's pixels to mean :data:`ZSCORE_MEAN`, std :data:`ZSCORE_STD`.

    A per-image z-score (nnU-Net's normalisation for non-CT images) moved back to the
    range of the training pixels, so a network trained on raw pixels warm-starts it.
    Written with plain means (not ``torch.std_mean``) so that it exports to ONNX.
    """
    mean = image.mean(dim=(1, 2, 3), keepdim=True)
    var = ((image - mean) ** 2).mean(dim=(1, 2, 3), keepdim=True)
    return (image - mean) / torch.sqrt(var + 1e-6) * ZSCORE_STD + ZSCORE_MEAN


@dataclass
class ModelOutput:
    """What :meth:`HybridGNet.forward` returns.

    Attributes
    ----------
    points : (B, n_nodes, 2) tensor
        Node positions (x, y) normalised to [0, 1] of the model frame.
    mu, logvar : (B, latent_dim) tensors
    intermediate : list of (B, n_nodes, 2) tensors
        The skip connections' positions (supervised during training).
    """

    points: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor
    intermediate: list[torch.Tensor]


class Encoder(nn.Module):
    """Residual CNN; returns the feature map of every level."""

    def __init__(self, channels: tuple[int, ...]) -> None:
        super().__init__()
        ins = (1, *channels[:-1])
        self.blocks = nn.ModuleList(ResBlock(i, o) for i, o in zip(ins, channels))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for i, block in enumerate(self.blocks):
            if i:
                x = F.max_pool2d(x, 2)
            x = block(x)
            feats.append(x)
        return feats


class RefineStage(nn.Module):
    """A further image-to-graph skip: node features, positions and the sampled ``level``
    map through a Chebyshev convolution, then a residual on the positions (zero at
    initialisation, so a stage added to trained weights starts from their output)."""

    def __init__(self, width: int, channels: int, window: int, k: int, laplacian: torch.Tensor) -> None:
        super().__init__()
        self.conv = ChebConv(width + 2 + channels * window**2, width, k, laplacian)
        self.norm = GraphNorm(width)
        self.head = ChebConv(width, 2, k, laplacian)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)


class HybridGNet(nn.Module):
    """HybridGNet with image-to-graph skip connections.

    Parameters
    ----------
    config : ModelConfig
    mean_shape : (n_nodes, 2) array, optional
        Training mean node positions normalised to [0, 1]; predictions are offsets
        from it. Defaults to the centre of the image (all 0.5).
    """

    def __init__(self, config: ModelConfig, mean_shape: np.ndarray | None = None) -> None:
        super().__init__()
        self.config = config
        g = graph_levels(tuple(config.organs))
        self.n_nodes = n_nodes(tuple(config.organs))
        lap_full = scaled_laplacian(g.adjacency[0])
        lap_coarse = scaled_laplacian(g.adjacency[1])
        self.register_buffer("unpool", torch.from_numpy(g.unpool), persistent=False)
        shape = np.full((self.n_nodes, 2), 0.5, np.float32) if mean_shape is None else np.asarray(mean_shape, np.float32)
        if shape.shape != (self.n_nodes, 2):
            raise ValueError(f"mean_shape must be ({self.n_nodes}, 2), got {shape.shape}")
        self.register_buffer("mean_shape", torch.from_numpy(shape.copy()))

        ch = config.channels
        self.encoder = Encoder(ch)
        bottom = config.input_size // 2 ** (len(ch) - 1)
        flat = ch[-1] * bottom * bottom
        self.fc_mu = nn.Linear(flat, config.latent_dim)
        self.fc_logvar = nn.Linear(flat, config.latent_dim)

        f = config.filters  # [2, 32, 32, 32, 16, 16, 16]
        k, w2 = config.cheb_k, config.window**2
        n_coarse = g.adjacency[1].shape[0]
        self.n_coarse = n_coarse
        self.dec_lin = nn.Linear(config.latent_dim, n_coarse * f[6])
        self.conv6 = ChebConv(f[6], f[5], k, lap_coarse)
        self.norm6 = GraphNorm(f[5])
        self.conv5 = ChebConv(f[5], f[4], k, lap_coarse)
        self.norm5 = GraphNorm(f[4])
        # skip 1: deepest encoder level
        self.pos1 = ChebConv(f[4], 2, 1, lap_full)
        self.conv4 = ChebConv(f[4] + 2 + ch[-1] * w2, f[3], k, lap_full)
        self.norm4 = GraphNorm(f[3])
        self.conv3 = ChebConv(f[3], f[2], k, lap_full)
        self.norm3 = GraphNorm(f[2])
        # skip 2: the level above
        self.pos2 = ChebConv(f[2], 2, 1, lap_full)
        self.conv2 = ChebConv(f[2] + 2 + ch[-2] * w2, f[1], k, lap_full)
        self.norm2 = GraphNorm(f[1])
        self.conv1 = ChebConv(f[1], f[0], k, lap_full)
        self.refine = nn.ModuleList(RefineStage(f[1], ch[level], config.window, k, lap_full) for level in config.refine_levels)
        for head in (self.pos1, self.pos2, self.conv1):
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        nn.init.zeros_(self.fc_logvar.weight)
        nn.init.constant_(self.fc_logvar.bias, -6.0)

    @property
    def skip_levels(self) -> tuple[int, ...]:
        """Encoder levels the decoder samples, in the order of :meth:`encode`'s maps:
        the deepest, the one above (the reference's two skips), then ``refine_levels``."""
        top = len(self.config.channels) - 1
        return (top, top - 1, *self.config.refine_levels)

    def encode(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Encode ``(B, 1, S, S)`` images in [0, 1] to (mu, logvar, the maps of :attr:`skip_levels`)."""
        s = self.config.input_size
        if image.ndim != 4 or image.shape[1] != 1 or image.shape[2:] != (s, s):
            raise ValueError(f"image must have shape (B, 1, {s}, {s}), got {tuple(image.shape)}")
        if self.config.input_norm == "zscore":
            image = standardise(image)
        feats = self.encoder(image)
        flat = feats[-1].flatten(1)
        return self.fc_mu(flat), self.fc_logvar(flat), [feats[level] for level in self.skip_levels]

    def decode(self, z: torch.Tensor, feats: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Decode latents ``(B, latent_dim)`` with the matching encoder features.

        ``feats`` are the feature maps :meth:`encode` returns (those of
        :attr:`skip_levels`, in that order). They may have batch 1 while ``z`` has batch
        B (many samples of one image): the features are broadcast.
        """
        b = z.shape[0]
        deep, upper, *finer = feats
        shared = deep.shape[0] != b  # many latent samples of one image: its maps are used once for all (see _skip)
        if shared and deep.shape[0] != 1:
            raise ValueError(f"decode: {b} latents but feature maps of batch {deep.shape[0]}")
        h = self.dec_lin(z).view(b, self.n_coarse, -1)
        h = F.relu(self.norm6(self.conv6(h)))
        h = F.relu(self.norm5(self.conv5(h)))
        h = torch.matmul(self.unpool, h)
        p1 = self.mean_shape + self.pos1(h)
        ch = self.config.channels
        h = F.relu(self.norm4(self._skip(self.conv4, h, p1, deep, ch[-1], shared)))
        h = F.relu(self.norm3(self.conv3(h)))
        p2 = self.mean_shape + self.pos2(h)
        h = F.relu(self.norm2(self._skip(self.conv2, h, p2, upper, ch[-2], shared)))
        points, inter = self.mean_shape + self.conv1(h), [p1, p2]
        for stage, level, features in zip(self.refine, self.config.refine_levels, finer):
            h = F.relu(stage.norm(self._skip(stage.conv, h, points, features, ch[level], shared)))
            inter.append(points)
            points = points + stage.head(h)
        return points, inter

    def _skip(self, conv: ChebConv, h: torch.Tensor, points: torch.Tensor, features: torch.Tensor, channels: int,
              shared: bool) -> torch.Tensor:
        """An image-to-graph skip: ``conv`` of the nodes' features, positions and sampled ``features`` (``channels`` deep)."""
        head = torch.cat([h, points], dim=-1)
        window = self.config.window
        cells = (features.shape[-2] + window - 1) * (features.shape[-1] + window - 1)
        if shared and cells <= _PROJECT_CELLS_PER_NODE * self.n_nodes:
            # the sampled rows counted from the config, not from tensor shapes, so that the ONNX export sees a static kernel
            projected = project_roi(features, conv.weight[:, -channels * window**2 :], window)
            return conv(head, sample_projected(projected, points, window))
        # own maps, or one large map that costs more to project than every latent sample's nodes cost to sample from it
        b, n = points.shape[:2]
        sampled = sample_roi(features, points.reshape(1, b * n, 2) if shared else points, window).reshape(b, n, -1)
        return conv(torch.cat([head, sampled], dim=-1))

    @staticmethod
    def draw_latent(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One sample ``z = mu + eps * sigma`` per row (the reparameterisation of training)."""
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + eps * torch.exp(0.5 * logvar)

    def forward(self, image: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None) -> ModelOutput:
        """Predict node positions.

        Parameters
        ----------
        image : (B, 1, S, S) tensor in [0, 1]
        sample : bool
            Decode ``z = mu + eps * sigma`` (training) instead of ``z = mu``.
        generator : torch.Generator, optional
            Source of ``eps`` when sampling.
        """
        mu, logvar, feats = self.encode(image)
        points, inter = self.decode(self.draw_latent(mu, logvar, generator) if sample else mu, feats)
        return ModelOutput(points, mu, logvar, inter)

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma) || N(0, I)), summed over the latent, mean over the batch."""
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)).mean()


