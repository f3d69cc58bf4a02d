"""The landmark graph: organs, node counts, contour rings and graph matrices.

Nodes are concatenated in the order right lung (44), left lung (50), heart (26),
giving 120 nodes. "Right" and "left" are the patient's: the right lung is on the
image's left side. Each organ is a closed contour (node i joins i-1 and i+1, mod N);
the graph is the union of those rings, with no edges between organs.

References
----------
Gaggion et al., "Improving anatomical plausibility in medical image segmentation via
hybrid graph neural networks", IEEE TMI 2022, doi:10.1109/TMI.2022.3224660.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

__all__ = [
    "ORGANS",
    "NODE_COUNTS",
    "N_NODES",
    "organ_slices",
    "ring_adjacency",
    "pooling_matrix",
    "unpooling_matrix",
    "GraphLevels",
    "graph_levels",
    "split_organs",
    "CLAVICLES",
    "ALL_ORGANS",
    "ALL_NODE_COUNTS",
    "N_NODES_ALL",
    "n_nodes",
    "ORGAN_GROUPS",
]

#: Organ keys in node order, as used in mask dictionaries.
ORGANS: tuple[str, ...] = ("right_lung", "left_lung", "heart")
#: Nodes per organ, in node order.
NODE_COUNTS: dict[str, int] = {"right_lung": 44, "left_lung": 50, "heart": 26}
#: Total node count (120).
N_NODES: int = sum(NODE_COUNTS.values())
#: Clavicles (23 nodes each in the training landmarks); predicted only by models built with them.
CLAVICLES: tuple[str, ...] = ("right_clavicle", "left_clavicle")
#: The CheXmask organs followed by the clavicles: the node order of a model that predicts them.
ALL_ORGANS: tuple[str, ...] = ORGANS + CLAVICLES
#: Nodes per organ, clavicles included.
ALL_NODE_COUNTS: dict[str, int] = {**NODE_COUNTS, "right_clavicle": 23, "left_clavicle": 23}
#: Node count with the clavicles (166).
N_NODES_ALL: int = sum(ALL_NODE_COUNTS.values())


#: The structures accuracy is reported on, and the organs each unites (lungs = both lungs,
#: as the reference reports).
ORGAN_GROUPS: dict[str, tuple[str, ...]] = {
    "lungs": ("right_lung", "left_lung"),
    "heart": ("heart",),
    "clavicles": CLAVICLES,
}


def n_nodes(organs: tuple[str, ...] = ORGANS) -> int:
    """Total node count of ``organs`` (in :data:`ALL_ORGANS` order).

    >>> n_nodes(), n_nodes(ALL_ORGANS)
    (120, 166)
    """
    return sum(ALL_NODE_COUNTS[o] for o in organs)


def organ_slices(counts: dict[str, int] | None = None, organs: tuple[str, ...] = ORGANS) -> dict[str, slice]:
    """Slices of each organ's nodes in the concatenated node array.

    Examples
    --------
    >>> organ_slices()["heart"]
    slice(94, 120, None)
    >>> organ_slices(organs=ALL_ORGANS)["left_clavicle"]
    slice(143, 166, None)
    """
    counts = ALL_NODE_COUNTS if counts is None else counts
    out, start = {}, 0
    for organ in organs:
        out[organ] = slice(start, start + counts[organ])
        start += counts[organ]
    return out


def split_organs(points_xy: np.ndarray) -> dict[str, np.ndarray]:
    """Split a ``(120, 2)`` (x, y) node array into per-organ arrays."""
    points_xy = np.asarray(points_xy)
    if points_xy.shape[-2:] != (N_NODES, 2):
        raise ValueError(f"points_xy must have shape (..., {N_NODES}, 2), got {points_xy.shape}")
    return {organ: points_xy[..., s, :] for organ, s in organ_slices().items()}


def ring_adjacency(counts: tuple[int, ...]) -> np.ndarray:
    """Adjacency matrix of the union of closed rings of the given sizes.

    Returns
    -------
    (N, N) float32 ndarray, symmetric, zero diagonal.
    """
    n = sum(counts)
    adj = np.zeros((n, n), dtype=np.float32)
    start = 0
    for c in counts:
        idx = np.arange(c)
        a, b = start + idx, start + (idx + 1) % c
        adj[a, b] = adj[b, a] = 1.0
        start += c
    return adj


def _pooled_counts(counts: tuple[int, ...]) -> tuple[int, ...]:
    return tuple((c + 1) // 2 for c in counts)


def pooling_matrix(counts: tuple[int, ...]) -> np.ndarray:
    """Pooling by averaging pairs of consecutive nodes of each ring.

    Returns
    -------
    (sum(ceil(c/2)), sum(c)) float32 ndarray; each row averages nodes 2j and 2j+1
    of its organ (a lone last node of an odd ring is kept as it is).
    """
    coarse = _pooled_counts(counts)
    pool = np.zeros((sum(coarse), sum(counts)), dtype=np.float32)
    r0 = c0 = 0
    for c, k in zip(counts, coarse):
        for j in range(k):
            members = [m for m in (2 * j, 2 * j + 1) if m < c]
            pool[r0 + j, [c0 + m for m in members]] = 1.0 / len(members)
        r0, c0 = r0 + k, c0 + c
    return pool


def unpooling_matrix(counts: tuple[int, ...]) -> np.ndarray:
    """Upsampling from the pooled rings back to the full rings.

    Node 2j copies coarse node j; node 2j+1 lies midway between coarse nodes j and
    j+1 (mod the ring), so a pooled contour unpools to a contour, not a staircase.

    Returns
    -------
    (sum(c), sum(ceil(c/2))) float32 ndarray whose rows sum to 1.
    """
    coarse = _pooled_counts(counts)
    up = np.zeros((sum(counts), sum(coarse)), dtype=np.float32)
    r0 = c0 = 0
    for c, k in zip(counts, coarse):
        for i in range(c):
            j = i // 2
            if i % 2 == 0:
                up[r0 + i, c0 + j] = 1.0
            else:
                up[r0 + i, c0 + j] += 0.5
                up[r0 + i, c0 + (j + 1) % k] += 0.5
        r0, c0 = r0 + c, c0 + k
    return up


@dataclass(frozen=True)
class GraphLevels:
    """Graph matrices of the decoder: full and pooled levels.

    Attributes
    ----------
    adjacency : list of ndarray
        ``adjacency[0]`` is the full 120-node graph, ``adjacency[1]`` the pooled one.
    pool : ndarray
        (n_coarse, 120) pooling matrix.
    unpool : ndarray
        (120, n_coarse) unpooling matrix.
    """

    adjacency: tuple[np.ndarray, ...]
    pool: np.ndarray
    unpool: np.ndarray


@cache
def graph_levels(organs: tuple[str, ...] = ORGANS) -> GraphLevels:
    """The decoder's graph matrices for ``organs`` (default: right lung, left lung, heart)."""
    counts = tuple(ALL_NODE_COUNTS[o] for o in organs)
    coarse = _pooled_counts(counts)
    return GraphLevels(
        adjacency=(ring_adjacency(counts), ring_adjacency(coarse)),
        pool=pooling_matrix(counts),
        unpool=unpooling_matrix(counts),
    )
