"""Overlap and surface-distance metrics between two masks, and landmark errors.

The definitions follow the ones the CheXmask paper used (medpy's conventions), so
numbers are comparable with its Table 2:

- **Dice** ``2 |A & B| / (|A| + |B|)``; 1 when both masks are empty, 0 when only one is.
- **Surface** of a mask: the mask minus its binary erosion (4-connected structuring
  element; pixels on the image border count as surface).
- **Directed distances** from A to B: for every surface pixel of A, the Euclidean
  distance (in pixels of the frame the masks live in) to the nearest surface pixel of B.
- **HD** (Hausdorff distance): the larger of the two directed maxima.
- **HD95**: the 95th percentile of the *pooled* distances of both directions. This is
  medpy's ``hd95``; it is smaller than or equal to the max of the two directed 95th
  percentiles.

Distances come from :func:`scipy.ndimage.distance_transform_edt` of the complement of
each surface, computed once per mask pair on the crop that holds both masks (their
union bounding box plus a one-pixel margin), then indexed at the other surface's
pixels. Cropping does not change any value: all surface pixels lie inside the crop, and
the margin keeps the erosion identical to the full-frame one.

Masks are ``(H, W)`` arrays, row-major; any nonzero value is foreground (CheXmask
masks are ``uint8`` {0, 255} or ``bool``). Landmarks are ``(N, 2)`` arrays of
(x, y) = (column, row) pixel coordinates, named ``points_xy``. :func:`auroc` ranks a
score's positives against its negatives (OOD images, failed segmentations);
:func:`node_rank_figures` says how well a per-node spread ranks per-node errors.

References
----------
Gaggion et al., "CheXmask: a large-scale dataset of anatomical segmentation masks for
multi-center chest x-ray images", Scientific Data 2024, doi:10.1038/s41597-024-03358-1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy import ndimage
from scipy.stats import rankdata, spearmanr

__all__ = [
    "auroc",
    "MaskScores",
    "dice",
    "surface",
    "surface_distances",
    "hausdorff",
    "mask_scores",
    "landmark_sq_errors",
    "node_rank_figures",
]

# 4-connected cross, as medpy's default (generate_binary_structure(2, 1)).
_CROSS = ndimage.generate_binary_structure(2, 1)


class MaskScores(NamedTuple):
    """Dice, Hausdorff distance and HD95 of one mask pair (distances in pixels).

    ``hd`` and ``hd95`` are NaN when either mask is empty.
    """

    dice: float
    hd: float
    hd95: float


def _as_bool_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a)
    b = np.asarray(b)
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"masks must be 2-D (H, W) arrays, got shapes {a.shape} and {b.shape}")
    if a.shape != b.shape:
        raise ValueError(f"mask sizes differ: {a.shape[0]}x{a.shape[1]} vs {b.shape[0]}x{b.shape[1]} (HxW)")
    return a.astype(bool, copy=False), b.astype(bool, copy=False)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice similarity coefficient of two masks.

    Parameters
    ----------
    a, b : (H, W) array_like
        Masks; nonzero is foreground.

    Returns
    -------
    float
        ``2 |A & B| / (|A| + |B|)``; 1.0 if both masks are empty.

    Raises
    ------
    ValueError
        If the masks are not 2-D or their shapes differ.

    Examples
    --------
    >>> a = np.zeros((4, 4), bool); a[:2] = True
    >>> b = np.zeros((4, 4), bool); b[1:3] = True
    >>> dice(a, b)
    0.5
    """
    a, b = _as_bool_pair(a, b)
    total = int(np.count_nonzero(a)) + int(np.count_nonzero(b))
    if total == 0:
        return 1.0
    return 2.0 * int(np.count_nonzero(a & b)) / total


def surface(mask: np.ndarray) -> np.ndarray:
    """Surface pixels of a mask: the mask minus its binary erosion.

    Parameters
    ----------
    mask : (H, W) array_like
        Nonzero is foreground.

    Returns
    -------
    (H, W) bool ndarray
        Foreground pixels with at least one 4-neighbour in the background; pixels on
        the image border count as surface.

    Examples
    --------
    >>> m = np.zeros((5, 5), bool); m[1:4, 1:4] = True
    >>> int(surface(m).sum())
    8
    """
    mask = np.asarray(mask, dtype=bool)
    return mask & ~ndimage.binary_erosion(mask, structure=_CROSS, border_value=0)


def _crop(a: np.ndarray, b: np.ndarray, margin: int = 1) -> tuple[slice, slice] | None:
    rows = np.flatnonzero(a.any(axis=1) | b.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(a.any(axis=0) | b.any(axis=0))
    h, w = a.shape
    return (
        slice(max(rows[0] - margin, 0), min(rows[-1] + margin + 1, h)),
        slice(max(cols[0] - margin, 0), min(cols[-1] + margin + 1, w)),
    )


def surface_distances(a: np.ndarray, b: np.ndarray, *, crop: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances between two non-empty masks, both ways.

    Parameters
    ----------
    a, b : (H, W) array_like
        Masks of the same shape; nonzero is foreground.
    crop : bool, optional
        Work on the union bounding box of both masks plus a one-pixel margin (the
        default; same result, much faster at 1024x1024). ``False`` computes on the
        full frame, which is the naive baseline.

    Returns
    -------
    a_to_b, b_to_a : 1-D float64 ndarrays
        For each surface pixel of A (resp. B), the Euclidean distance in pixels to the
        nearest surface pixel of B (resp. A).

    Raises
    ------
    ValueError
        If the shapes differ or either mask is empty (no surface, distances undefined).
    """
    a, b = _as_bool_pair(a, b)
    if not a.any() or not b.any():
        empty = [name for name, m in (("first", a), ("second", b)) if not m.any()]
        raise ValueError(f"surface distances are undefined: the {' and '.join(empty)} mask is empty")
    if crop:
        window = _crop(a, b)
        a, b = a[window], b[window]
    sa, sb = surface(a), surface(b)
    # distance_transform_edt measures the distance to the nearest zero, so feeding it
    # the complement of a surface gives the distance to that surface everywhere.
    a_to_b = ndimage.distance_transform_edt(~sb)[sa]
    b_to_a = ndimage.distance_transform_edt(~sa)[sb]
    return a_to_b, b_to_a


def hausdorff(a: np.ndarray, b: np.ndarray, percentile: float | None = None) -> float:
    """Symmetric Hausdorff distance between mask surfaces, in pixels.

    Parameters
    ----------
    a, b : (H, W) array_like
        Non-empty masks of the same shape.
    percentile : float, optional
        ``None`` gives the Hausdorff distance (max of the two directed maxima); a value
        in [0, 100] gives that percentile of the pooled distances of both directions
        (95 gives medpy's HD95).

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If the shapes differ, a mask is empty or the percentile is outside [0, 100].

    Examples
    --------
    >>> a = np.zeros((20, 20), bool); a[5:10, 5:10] = True
    >>> hausdorff(a, np.roll(a, 3, axis=1))
    3.0
    """
    if percentile is not None and not 0 <= percentile <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}")
    a_to_b, b_to_a = surface_distances(a, b)
    if percentile is None:
        return float(max(a_to_b.max(), b_to_a.max()))
    return float(np.percentile(np.concatenate([a_to_b, b_to_a]), percentile))


def mask_scores(a: np.ndarray, b: np.ndarray, *, crop: bool = True) -> MaskScores:
    """Dice, HD and HD95 of one mask pair, sharing one pair of distance transforms.

    Parameters
    ----------
    a, b : (H, W) array_like
        Masks of the same shape; nonzero is foreground.
    crop : bool, optional
        See :func:`surface_distances`.

    Returns
    -------
    MaskScores
        ``hd`` and ``hd95`` are NaN if either mask is empty (``dice`` is then 1 if
        both are empty, else 0).

    Raises
    ------
    ValueError
        If the masks are not 2-D or their shapes differ.

    Examples
    --------
    >>> a = np.zeros((8, 8), bool); a[2:6, 2:6] = True
    >>> mask_scores(a, a)
    MaskScores(dice=1.0, hd=0.0, hd95=0.0)
    """
    a, b = _as_bool_pair(a, b)
    d = dice(a, b)
    if not a.any() or not b.any():
        return MaskScores(d, float("nan"), float("nan"))
    a_to_b, b_to_a = surface_distances(a, b, crop=crop)
    hd = float(max(a_to_b.max(), b_to_a.max()))
    hd95 = float(np.percentile(np.concatenate([a_to_b, b_to_a]), 95))
    return MaskScores(d, hd, hd95)


def landmark_sq_errors(points_xy: np.ndarray, ref_points_xy: np.ndarray) -> np.ndarray:
    """Squared Euclidean error of each landmark, in pixels squared.

    Parameters
    ----------
    points_xy, ref_points_xy : (N, 2) array_like
        (x, y) = (column, row) coordinates of the same N nodes, in the same frame.

    Returns
    -------
    (N,) float64 ndarray
        ``(x - x_ref)**2 + (y - y_ref)**2`` per node; NaN where either side is NaN.
        Its mean is the landmark MSE as chexmask reports it (per node, not per
        coordinate, as in training).

    Raises
    ------
    ValueError
        If the shapes differ or are not (N, 2).

    Examples
    --------
    >>> landmark_sq_errors([[0, 0], [1, 1]], [[3, 4], [1, 1]])
    array([25.,  0.])
    """
    p = np.asarray(points_xy, dtype=np.float64)
    q = np.asarray(ref_points_xy, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2 or p.shape != q.shape:
        raise ValueError(f"landmarks must be two (N, 2) arrays of the same shape, got {p.shape} and {q.shape}")
    return ((p - q) ** 2).sum(axis=1)


def auroc(scores_in: Sequence[float], scores_out: Sequence[float]) -> float:
    """Area under the ROC curve for telling positives (e.g. OOD or failed images) from negatives.

    Parameters
    ----------
    scores_in, scores_out : (N,), (M,) array_like
        Scores of negatives (in-distribution, good) and positives (OOD, failed); higher
        means "more suspicious". NaNs are dropped.

    Returns
    -------
    float
        ``P(out > in) + P(out == in) / 2`` (the Mann-Whitney U statistic / (N M)); NaN
        if either side is empty.

    Examples
    --------
    >>> auroc([1, 2, 3], [4, 5])
    1.0
    >>> auroc([1, 2], [2, 0])
    0.375
    """
    a = np.asarray(scores_in, np.float64)
    b = np.asarray(scores_out, np.float64)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        return float("nan")
    ranks = rankdata(np.concatenate([a, b]))
    u = ranks[a.size :].sum() - b.size * (b.size + 1) / 2
    return float(u / (a.size * b.size))


def node_rank_figures(node_std: Sequence[np.ndarray], node_error: Sequence[np.ndarray]) -> dict[str, float]:
    """How well per-node spreads rank per-node errors over a set of images.

    Parameters
    ----------
    node_std, node_error : sequences of (N,) arrays, one pair per image
        Each node's spread (e.g. the latent samples' std) and its distance to the expert's
        node, in one frame shared by all images (chexmask uses the 1024 frame); nodes with
        a non-finite error (organs the expert did not annotate) are left out.

    Returns
    -------
    dict
        ``images``, ``nodes``; ``pooled``: Spearman's rho over every (image, node) pair;
        ``per_image``: the median over images of the rho inside one image; ``image_level``:
        rho of the images' mean spread with their mean error (NaN under 3 images);
        ``median_error_px`` and ``median_std_px``.

    Examples
    --------
    >>> f = node_rank_figures([np.array([1.0, 2.0, 3.0])] * 2, [np.array([1.0, 3.0, 2.0]), np.array([1.0, 2.0, np.nan])])
    >>> f["nodes"], round(f["pooled"], 3), f["per_image"]
    (5, 0.75, 0.75)
    """
    pairs = []
    for s, e in zip(node_std, node_error):
        s, e = np.asarray(s, np.float64), np.asarray(e, np.float64)
        ok = np.isfinite(e) & np.isfinite(s)
        if ok.any():
            pairs.append((s[ok], e[ok]))
    if not pairs:
        nan = float("nan")
        return {"images": 0, "nodes": 0, "pooled": nan, "per_image": nan, "image_level": nan, "median_error_px": nan, "median_std_px": nan}
    s_all = np.concatenate([s for s, _ in pairs])
    e_all = np.concatenate([e for _, e in pairs])
    per = [spearmanr(s, e)[0] if s.size > 1 else np.nan for s, e in pairs]
    image_level = spearmanr([s.mean() for s, _ in pairs], [e.mean() for _, e in pairs])[0] if len(pairs) > 2 else np.nan
    return {"images": len(pairs), "nodes": int(e_all.size), "pooled": float(spearmanr(s_all, e_all)[0]),
            "per_image": float(np.nanmedian(per)) if np.isfinite(per).any() else float("nan"), "image_level": float(image_level),
            "median_error_px": float(np.median(e_all)), "median_std_px": float(np.median(s_all))}
