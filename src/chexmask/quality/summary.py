"""Summary statistics of per-image metrics: mean, std, count and a seeded bootstrap CI.

:func:`summarize` turns the per-image table of
:func:`chexmask.quality.table_comparison.compare_tables` into the long-form summary an
evaluation reports (:func:`chexmask.reports.tables.summary_markdown` renders it).
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from chexmask.quality.table_comparison import METRICS

__all__ = ["summarize"]


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
    return pd.DataFrame(out, columns=["comparison", "group", "organ", "metric", "mean", "std", "n", "ci_low", "ci_high"])
