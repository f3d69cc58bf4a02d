"""Figures of an evaluation report (matplotlib, saved as PNG and PDF).

- :func:`landmark_error_figure`: mean error of each landmark drawn on the mean shape,
  colour on a log scale and marker size growing with the error (the reference's
  per-landmark error map).
- :func:`score_histograms`: histograms of score columns such as ``Dice RCA (Mean)``,
  like the reference's per-dataset RCA histograms.
- :func:`dice_boxplots`: Dice distributions per comparison and group, lungs and heart.

Figures are built on :class:`matplotlib.figure.Figure` without pyplot, so nothing
touches the global backend or figure registry. Landmarks are (x, y) = (column, row)
pixels; the y axis is drawn downwards as in the image.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from chexmask.anatomy import organ_slices

__all__ = ["landmark_error_figure", "score_histograms", "dice_boxplots", "draw_report_figures"]

SCORE_PATTERN = re.compile(r"^Dice RCA")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def _save(fig: Figure, stem: Path) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    for path in paths:
        fig.savefig(path, dpi=150, bbox_inches="tight")
    return paths


def landmark_error_figure(per_landmark: pd.DataFrame, stem: str | Path, *, title: str = "") -> list[Path]:
    """Per-landmark mean error on the mean shape.

    Parameters
    ----------
    per_landmark : DataFrame
        One comparison's rows of ``per_landmark.csv``: node, x, y (mean reference
        shape, pixels) and mean_error (mean Euclidean node error, pixels), node order
        as in :mod:`chexmask.anatomy`.
    stem : path
        Output path without suffix; ``.png`` and ``.pdf`` are written.
    title : str
        Figure title.

    Returns
    -------
    list of Path
        The files written.
    """
    df = per_landmark.sort_values("node")
    x, y, err = (df[c].to_numpy(dtype=float) for c in ("x", "y", "mean_error"))
    fig = Figure(figsize=(5.5, 5.5))
    ax = fig.add_subplot()
    for organ, s in organ_slices().items():
        xs, ys = x[s], y[s]
        ax.plot(np.r_[xs, xs[:1]], np.r_[ys, ys[:1]], color="0.6", lw=1, zorder=1)
    ok = np.isfinite(err) & np.isfinite(x) & np.isfinite(y)
    if ok.any():
        positive = np.clip(err[ok], 1e-3, None)  # log scale: zero error drawn at the floor
        norm = LogNorm(vmin=positive.min(), vmax=max(positive.max(), positive.min() * 1.01))
        sizes = 10 + 140 * (positive - positive.min()) / max(np.ptp(positive), 1e-9)
        sc = ax.scatter(x[ok], y[ok], c=positive, s=sizes, cmap="viridis", norm=norm, zorder=2, edgecolors="k", linewidths=0.3)
        fig.colorbar(sc, ax=ax, label="mean landmark error (px, log scale)")
    else:
        ax.text(0.5, 0.5, "no landmark pairs", ha="center", va="center", transform=ax.transAxes)
    ax.set_aspect("equal")
    ax.invert_yaxis()
    ax.set_xlabel("x (px)")
    ax.set_ylabel("y (px)")
    ax.set_title(title)
    return _save(fig, Path(stem))


def score_histograms(table: pd.DataFrame, stem: str | Path, *, columns: list[str] | None = None, title: str = "") -> list[Path]:
    """Histograms of score columns of one table, one panel per column.

    Parameters
    ----------
    table : DataFrame
        A CheXmask-format table.
    stem : path
        Output path without suffix.
    columns : list of str, optional
        Columns to draw; by default those whose name starts with ``Dice RCA``.
    title : str
        Figure title (e.g. the dataset name).

    Returns
    -------
    list of Path
        The files written; empty if the table has none of the columns.
    """
    columns = [c for c in table.columns if SCORE_PATTERN.match(str(c))] if columns is None else columns
    columns = [c for c in columns if c in table.columns]
    if not columns:
        return []
    fig = Figure(figsize=(4 * len(columns), 3.2), layout="constrained")
    for k, column in enumerate(columns):
        ax = fig.add_subplot(1, len(columns), k + 1)
        values = pd.to_numeric(table[column], errors="coerce").dropna().to_numpy()
        ax.hist(values, bins=50 if column.startswith("Dice") else 30, range=(0, 1) if column.startswith("Dice") else None, color="tab:blue", alpha=0.8)
        ax.set_xlabel(column)
        ax.set_ylabel("images")
        ax.set_title(f"mean {values.mean():.3f} (n={values.size})" if values.size else "no values", fontsize=9)
    fig.suptitle(title)
    return _save(fig, Path(stem))


def dice_boxplots(per_image: pd.DataFrame, stem: str | Path, *, organs: tuple[str, ...] = ("lungs", "heart")) -> list[Path]:
    """Box plots of Dice per comparison and group, one panel per organ.

    Parameters
    ----------
    per_image : DataFrame
        ``per_image.csv``: comparison, organ, dice and optionally group.
    stem : path
        Output path without suffix.
    organs : tuple of str
        Organs to draw.

    Returns
    -------
    list of Path
        The files written.
    """
    df = per_image.assign(group=per_image["group"].astype(str) if "group" in per_image else "all")
    labels = df[["comparison", "group"]].drop_duplicates().itertuples(index=False)
    labels = list(labels)
    fig = Figure(figsize=(max(5, 1.2 * len(labels) * len(organs)), 4), layout="constrained")
    for k, organ in enumerate(organs):
        ax = fig.add_subplot(1, len(organs), k + 1)
        sub = df[df["organ"] == organ]
        data = [sub.loc[(sub["comparison"] == c) & (sub["group"] == g), "dice"].dropna().to_numpy() for c, g in labels]
        names = [c.replace(" vs ", "\nvs ") + ("" if g == "all" else f"\n[{g}]") for c, g in labels]
        ax.boxplot([d if d.size else np.array([np.nan]) for d in data], showfliers=True)
        ax.set_xticks(range(1, len(names) + 1), names, rotation=30, ha="right", fontsize=6)
        ax.set_title(organ)
        ax.set_ylabel("Dice")
    return _save(fig, Path(stem))


def draw_report_figures(fig_dir: str | Path, per_image: pd.DataFrame, per_landmark: pd.DataFrame, tables: dict[str, pd.DataFrame]) -> list[Path]:
    """Draw every figure of an evaluation report into ``fig_dir``.

    Parameters
    ----------
    fig_dir : path
        Output folder.
    per_image, per_landmark : DataFrame
        As written to ``per_image.csv`` and ``per_landmark.csv``.
    tables : dict of str to DataFrame
        The input tables by file stem, for the score histograms.

    Returns
    -------
    list of Path
        The files written.
    """
    fig_dir = Path(fig_dir)
    files = dice_boxplots(per_image, fig_dir / "dice_boxplots")
    for comparison, rows in per_landmark.groupby("comparison", sort=False):
        if rows["n"].max() > 0:
            files += landmark_error_figure(rows, fig_dir / f"landmark_error_{_slug(comparison)}", title=comparison)
    for stem, table in tables.items():
        files += score_histograms(table, fig_dir / f"scores_{_slug(stem)}", title=stem)
    return files

