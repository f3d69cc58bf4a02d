"""Graph and image-to-graph layers of HybridGNet.

Written here rather than taken from torch_geometric / torchvision: torchvision does
not import beside the pinned CPU torch, and the graph is a fixed 120-node union of
rings, for which a dense Chebyshev recurrence is both simpler and faster on CPU than
sparse message passing.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["scaled_laplacian", "ChebConv", "GraphNorm", "sample_roi", "project_roi", "sample_projected", "ResBlock"]


def scaled_laplacian(adjacency: np.ndarray) -> torch.Tensor:
    """Chebyshev-scaled Laplacian ``2 L / lambda_max - I`` with ``lambda_max = 2``.

    ``L = I - D^-1/2 A D^-1/2`` (symmetric normalisation), so the result is
    ``-D^-1/2 A D^-1/2``, as torch_geometric's ChebConv computes by default.

    Parameters
    ----------
    adjacency : (N, N) ndarray
        Symmetric adjacency with zero diagonal.

    Returns
    -------
    (N, N) float32 tensor.
    """
    a = np.asarray(adjacency, dtype=np.float64)
    deg = a.sum(axis=1)
    inv_sqrt = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1e-12)), 0.0)
    return torch.from_numpy(-(inv_sqrt[:, None] * a * inv_sqrt[None, :])).float()


class ChebConv(nn.Module):
    """Chebyshev spectral graph convolution of order ``K`` on a fixed graph.

    ``out = sum_k T_k(L~) x W_k + b`` with ``T_0 = x``, ``T_1 = L~ x`` and
    ``T_k = 2 L~ T_{k-1} - T_{k-2}`` (Defferrard et al., NeurIPS 2016).

    Parameters
    ----------
    in_channels, out_channels : int
    K : int
        Polynomial order (number of terms); ``K=1`` is a per-node linear layer.
    laplacian : (N, N) tensor
        Scaled Laplacian from :func:`scaled_laplacian`.

    Notes
    -----
    Input and output are ``(B, N, C)``.
    """

    def __init__(self, in_channels: int, out_channels: int, K: int, laplacian: torch.Tensor) -> None:
        super().__init__()
        if K < 1:
            raise ValueError(f"K must be >= 1, got {K}")
        self.K = K
        # The graph is fixed, so the polynomials T_k(L~) are computed once, laid side by
        # side as [T_0 | T_1 | ... | T_{K-1}] (N, K*N): a forward pass is then one
        # (in -> K*out) projection and one matmul, cheaper than running the recurrence
        # on wide inputs (the skip-connection layers take ~1200 channels).
        n = laplacian.shape[0]
        lap = laplacian.double()
        polys = [torch.eye(n, dtype=torch.float64), lap]
        for _ in range(2, K):
            polys.append(2.0 * lap @ polys[-1] - polys[-2])
        self.register_buffer("polys", torch.cat(polys[:K], dim=1).float(), persistent=False)
        self.weight = nn.Parameter(torch.empty(K, in_channels, out_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        for k in range(K):
            nn.init.xavier_uniform_(self.weight[k])

    def forward(self, x: torch.Tensor, projected: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` is ``(B, N, C)``; with ``projected`` (:func:`sample_projected` of
        :func:`project_roi` maps), ``x`` holds only the first input channels and
        ``projected`` is what the remaining ones contribute to the ``(B, N, K*out)`` projection."""
        b, n, c = x.shape
        k, c_in, c_out = self.weight.shape
        w = self.weight.permute(1, 0, 2).reshape(c_in, k * c_out)
        y = x @ w if projected is None else x @ w[:c] + projected  # (B, N, K*out)
        y = y.reshape(b, n, k, c_out).transpose(1, 2).reshape(b, k * n, c_out)  # (B, K*N, out)
        return torch.matmul(self.polys, y) + self.bias


class GraphNorm(nn.Module):
    """Instance normalisation over the nodes of each graph, per channel; input (B, N, C)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm1d(channels, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


def sample_roi(features: torch.Tensor, points: torch.Tensor, window: int = 3) -> torch.Tensor:
    """Bilinear ``window x window`` samples of a feature map around each node.

    The equivalent of torchvision's ``roi_align`` with one sample per bin on a box
    of ``window`` feature-map pixels centred on each node, written with
    :func:`torch.nn.functional.grid_sample`.

    Parameters
    ----------
    features : (B, C, h, w) tensor
    points : (B, N, 2) tensor
        Node positions (x, y) normalised to [0, 1] of the image frame.
    window : int

    Returns
    -------
    (B, N, C * window * window) tensor.
    """
    b, c, h, w = features.shape
    n = points.shape[1]
    offs = torch.arange(window, dtype=points.dtype, device=points.device) - (window - 1) / 2
    oy, ox = torch.meshgrid(offs, offs, indexing="ij")
    # grid_sample's align_corners=False maps [-1, 1] to pixel edges: one pixel = 2/size.
    delta = torch.stack([ox.reshape(-1) * 2.0 / w, oy.reshape(-1) * 2.0 / h], dim=-1)  # (w*w, 2)
    centre = points * 2.0 - 1.0
    grid = centre[:, :, None, :] + delta[None, None]  # (B, N, window^2, 2)
    sampled = F.grid_sample(features, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return sampled.permute(0, 2, 1, 3).reshape(b, n, c * window * window)


def project_roi(features: torch.Tensor, weight: torch.Tensor, window: int = 3) -> torch.Tensor:
    """What a :class:`ChebConv` makes of :func:`sample_roi` samples, computed once per feature map.

    The window's samples sit whole feature-map pixels apart, so they share their bilinear
    weights: projecting the window's samples with ``weight`` equals bilinearly sampling,
    at the node, the ``window x window`` convolution of the map by ``weight`` (sampling is
    linear). The convolution covers the map and a border of ``(window - 1) / 2`` pixels,
    outside which it is zero, as the samples' zero padding. When many latent samples of one
    image are decoded, this convolution runs once per image and each sample only samples
    it (:func:`sample_projected`) instead of projecting ``C * window^2`` features per node.

    Parameters
    ----------
    features : (B, C, h, w) tensor
    weight : (K, C * window^2, out) tensor
        The ChebConv weight rows of the sampled channels, in :func:`sample_roi`'s order
        (channel-major, then the window's pixels row by row).

    Returns
    -------
    (B, K * out, h + window - 1, w + window - 1) tensor.
    """
    k, rows, out = weight.shape
    c = rows // (window * window)  # from the weight, not the features: a static shape for the ONNX export
    kernel = weight.reshape(k, c, window, window, out).permute(0, 4, 1, 2, 3).reshape(k * out, c, window, window)
    return F.conv2d(features, kernel, padding=window - 1)


def sample_projected(projected: torch.Tensor, points: torch.Tensor, window: int = 3) -> torch.Tensor:
    """Bilinear samples of a :func:`project_roi` map at each node: ``(B, N, K * out)``.

    Parameters
    ----------
    projected : (Bf, D, h + window - 1, w + window - 1) tensor
        Bf is the batch of ``points`` or 1 (one image's map, shared by every latent sample).
    points : (B, N, 2) tensor
        Node positions (x, y) normalised to [0, 1] of the image frame.

    Returns
    -------
    (B, N, D) tensor: ``sample_roi(features, points, window)`` projected by the weight.
    """
    bf, d, hb, wb = projected.shape
    b, n, _ = points.shape
    border = (window - 1) / 2
    size = torch.tensor([wb - 2 * border, hb - 2 * border], dtype=points.dtype, device=points.device)
    # a node at x (normalised) is at feature pixel x * w - 0.5, i.e. x * w - 0.5 + border of the
    # bordered map, whose normalised grid coordinate (align_corners=False) is this:
    grid = (points * size + border) * (2.0 / (size + 2 * border)) - 1.0
    if bf == 1:  # every sample's nodes sample the same map
        sampled = F.grid_sample(projected, grid.reshape(1, b * n, 1, 2), mode="bilinear", padding_mode="zeros", align_corners=False)
        return sampled.reshape(d, b, n).permute(1, 2, 0)
    sampled = F.grid_sample(projected, grid[:, :, None, :], mode="bilinear", padding_mode="zeros", align_corners=False)
    return sampled[..., 0].transpose(1, 2)


class ResBlock(nn.Module):
    """Two 3x3 conv + BatchNorm + ReLU with a (1x1-projected) residual path."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.skip = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.skip(x))
