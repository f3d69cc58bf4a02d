"""Summary statistics of per-image metrics: mean, std, count and a seeded bootstrap CI.

:func:`summarize` turns the per-image table of
:func:`chexmask.quality.table_comparison.compare_tables` into the long-form summary an
evaluation reports (:func:`chexmask.reports.tables.summary_markdown` renders it);
:func:`uncertainty_error_summary` adds, when the compared table has per-node standard
deviations (``Landmarks (Std)``), how well its node uncertainty ranks its node errors.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from chexmask.quality.table_comparison import METRICS, NODE_SETS

__all__ = ["UNCERTAINTY_METRIC", "summarize", "uncertainty_error_summary"]

#: Metric name of :func:`uncertainty_error_summary`'s rows.
UNCERTAINTY_METRIC = "node_uncertainty_spearman"
_SUMMARY_COLUMNS = ["comparison", "group", "organ", "metric", "mean", "std", "n", "ci_low", "ci_high"]


def _bootstrap_ci(values: np.ndarray, n_boot: int, rng: np.random.Generator, level: float) -> tuple[float, float]:
    n = values.size
    if n == 0 or n_boot <= 0:
        return np.nan, np.nan
    means = np.empty(n_boot)
    chunk = max(1, 4_000_000 // n)  # bound memory: at most ~4 M resampled indices at once
    for start in range(0, n_boot, chunk):
        stop = min(start + chunk, n_boot)
        means[start:stop] = values[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    alpha = (1 - level) / 2 * 100
    lo, hi = np.percentile(means, [alpha, 100 - alpha])
    return float(lo), float(hi)


def summarize(per_image: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Mean, standard deviation, count and bootstrap CI of each metric.

    Parameters
    ----------
    per_image : DataFrame
        As returned by :func:`~chexmask.quality.table_comparison.compare_tables`, optionally with a ``group`` column
        (rows are then summarised for ``"all"`` and for each group).
    n_boot : int
        Bootstrap resamples for the confidence interval of the mean (0: no CI).
    seed : int
        Seed; each cell's resampling is seeded from it and the cell's labels, so a
        cell's CI does not depend on which other cells exist.
    level : float
        Confidence level of the percentile interval.

    Returns
    -------
    DataFrame
        comparison, group, organ, metric, mean, std (sample, ddof=1), n (non-NaN
        values), ci_low, ci_high.
    """
    frames = [per_image.assign(group="all")]
    if "group" in per_image.columns:
        grouped = per_image.dropna(subset=["group"])
        frames.append(grouped.assign(group=grouped["group"].astype(str)))
    long = pd.concat(frames, ignore_index=True).melt(
        id_vars=["comparison", "group", "organ"], value_vars=list(METRICS), var_name="metric"
    )
    out = []
    for (comparison, group, organ, metric), cell in long.groupby(["comparison", "group", "organ", "metric"], sort=False):
        values = cell["value"].to_numpy(dtype=float)
        values = values[~np.isnan(values)]
        key = f"{comparison}|{group}|{organ}|{metric}".encode()
        rng = np.random.default_rng([seed, zlib.crc32(key)])
        lo, hi = _bootstrap_ci(values, n_boot, rng, level)
        mean = float(values.mean()) if values.size else np.nan
        std = float(values.std(ddof=1)) if values.size > 1 else np.nan
        out.append((comparison, group, organ, metric, mean, std, values.size, lo, hi))
    return pd.DataFrame(out, columns=_SUMMARY_COLUMNS)


def _pearson(stats: np.ndarray) -> np.ndarray:
    """Pearson r from sums ``(n, Sx, Sy, Sxx, Syy, Sxy)`` (last axis); NaN when a variance is 0."""
    n, sx, sy, sxx, syy, sxy = np.moveaxis(stats, -1, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = sxy - sx * sy / n
        var = (sxx - sx**2 / n) * (syy - sy**2 / n)
        return np.where(var > 0, cov / np.sqrt(np.where(var > 0, var, 1.0)), np.nan)


def uncertainty_error_summary(
    name: str,
    node_sq_errors: np.ndarray,
    node_uncertainty: np.ndarray,
    frame_scale: np.ndarray,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """Spearman correlation of per-node uncertainty with per-node error, per organ.

    Parameters
    ----------
    name : str
        The comparison (``"pred vs ref"``).
    node_sq_errors, node_uncertainty : (n_images, 120) ndarray
        Squared node errors (pixels²) and the node uncertainty ``sqrt(std_x^2 + std_y^2)``
        (pixels) of the compared table, in each row's frame; NaN where unavailable
        (:class:`~chexmask.quality.table_comparison.TableComparison`).
    frame_scale : (n_images,) ndarray
        ``1024 / max(H, W)`` of each image: errors and uncertainties are compared in the
        1024 frame, so that image size alone (both grow with it) does not make them agree.
    n_boot, seed, level
        As in :func:`summarize`; the bootstrap resamples images (each with all its nodes).

    Returns
    -------
    DataFrame
        The summary's columns; one row per organ of
        :data:`~chexmask.quality.table_comparison.REPORT_ORGANS` (group ``all``, metric
        :data:`UNCERTAINTY_METRIC`): ``mean`` is Spearman's rho over every (image, node) pair
        with both values, ``n`` their number, ``std`` NaN, ``ci_low``/``ci_high`` the
        percentile interval. Empty when no node has an uncertainty.

    Notes
    -----
    The ranks are those of the whole sample (ties averaged); each bootstrap replicate
    correlates the ranks of the images it drew, which is Spearman's rho of the replicate
    up to the re-ranking of a resample, at the cost of one matrix product.

    Examples
    --------
    >>> sq = np.array([[1.0, 4.0, 9.0] + [np.nan] * 117])
    >>> u = np.array([[0.5, 0.7, 2.0] + [np.nan] * 117])
    >>> s = uncertainty_error_summary("a vs b", sq, u, np.array([1.0]), n_boot=0)
    >>> lungs = s.set_index("organ").loc["lungs"]
    >>> float(lungs["mean"]), int(lungs["n"])
    (1.0, 3)
    """
    from scipy.stats import rankdata

    error = np.sqrt(node_sq_errors) * frame_scale[:, None]
    uncertainty = node_uncertainty * frame_scale[:, None]
    if not np.isfinite(uncertainty).any():
        return pd.DataFrame(columns=_SUMMARY_COLUMNS)
    out = []
    for organ, nodes in NODE_SETS.items():
        e, u = error[:, nodes], uncertainty[:, nodes]
        valid = np.isfinite(e) & np.isfinite(u)
        image_of = np.nonzero(valid)[0]
        re, ru = rankdata(e[valid]), rankdata(u[valid])
        pairs = np.column_stack([np.ones_like(re), re, ru, re**2, ru**2, re * ru])
        per_image = np.zeros((len(e), 6))
        np.add.at(per_image, image_of, pairs)
        rho = float(_pearson(per_image.sum(0))) if len(re) > 2 else np.nan
        lo = hi = np.nan
        if n_boot > 0 and len(re) > 2:
            rng = np.random.default_rng([seed, zlib.crc32(f"{name}|all|{organ}|{UNCERTAINTY_METRIC}".encode())])
            drawn = np.unique(image_of)
            counts = rng.multinomial(len(drawn), np.full(len(drawn), 1.0 / len(drawn)), size=n_boot)
            reps = _pearson(counts @ per_image[drawn])
            reps = reps[np.isfinite(reps)]
            if reps.size:
                alpha = (1 - level) / 2 * 100
                lo, hi = (float(v) for v in np.percentile(reps, [alpha, 100 - alpha]))
        out.append((name, "all", organ, UNCERTAINTY_METRIC, rho, np.nan, len(re), lo, hi))
    return pd.DataFrame(out, columns=_SUMMARY_COLUMNS)
