"""The report of ``chexmask evaluate``: the tables, Table 2 in Markdown and the figures.

:func:`evaluate` runs :func:`chexmask.quality.evaluate.compare` and writes what it
computed under one folder: ``summary.csv``, ``summary.md``
(:func:`~chexmask.reports.tables.summary_markdown`), ``per_image.csv``,
``per_landmark.csv``, ``errors.csv`` and ``figures/``
(:func:`~chexmask.reports.figures.draw_report_figures`). Quality computes, reports
write: nothing in :mod:`chexmask.quality` imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

__all__ = ["Report", "evaluate", "write_report"]


@dataclass(frozen=True)
class Report:
    """What :func:`evaluate` computed and wrote.

    Attributes
    ----------
    summary, per_image, per_landmark, errors : DataFrame
        As in :class:`chexmask.quality.evaluate.Evaluation`.
    out_dir : Path
        The report folder.
    files : tuple of Path
        Everything written under it.
    unscored : dict of str to str
        Comparisons in which no image got any metric -> why, in words; empty when every
        comparison has values. ``chexmask evaluate`` exits non-zero when it is not empty.
    """

    summary: pd.DataFrame
    per_image: pd.DataFrame
    per_landmark: pd.DataFrame
    errors: pd.DataFrame
    out_dir: Path
    files: tuple[Path, ...]
    unscored: dict[str, str] = field(default_factory=dict)


def write_report(evaluation, out_dir: str | Path, *, figures: bool = True) -> Report:
    """Write an :class:`~chexmask.quality.evaluate.Evaluation` under ``out_dir`` (created if needed).

    Parameters
    ----------
    evaluation : chexmask.quality.evaluate.Evaluation
    out_dir : path
        Report folder.
    figures : bool
        Also draw the figures (PNG and PDF) under ``out_dir/figures``.

    Returns
    -------
    Report
    """
    from chexmask.reports.tables import summary_markdown

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for fname, df in (("summary.csv", evaluation.summary), ("per_image.csv", evaluation.per_image),
                      ("per_landmark.csv", evaluation.per_landmark), ("errors.csv", evaluation.errors)):
        df.to_csv(out_dir / fname, index=False)
        files.append(out_dir / fname)
    (out_dir / "summary.md").write_text(summary_markdown(evaluation.summary), encoding="utf-8")
    files.append(out_dir / "summary.md")
    if figures:
        from chexmask.reports.figures import draw_report_figures

        files += draw_report_figures(out_dir / "figures", evaluation.per_image, evaluation.per_landmark, evaluation.tables)
    return Report(evaluation.summary, evaluation.per_image, evaluation.per_landmark, evaluation.errors, out_dir,
                  tuple(files), dict(evaluation.unscored))


def evaluate(
    pred: str | Path,
    refs: list[str | Path],
    out_dir: str | Path,
    *,
    group_by: str | None = None,
    metadata: str | Path | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    figures: bool = True,
    progress: bool = False,
) -> Report:
    """Compare a table of masks with one or more reference tables and write the report.

    Parameters
    ----------
    pred, refs, group_by, metadata, n_boot, seed, progress
        As for :func:`chexmask.quality.evaluate.compare`.
    out_dir : path
        Report folder, created if needed.
    figures : bool
        Also draw the figures (PNG and PDF) under ``out_dir/figures``.

    Returns
    -------
    Report

    Raises
    ------
    InputError
        If a table cannot be read, has no id column, two inputs share a file stem,
        or the grouping options are inconsistent (nothing is written).
    """
    from chexmask.quality.evaluate import compare

    evaluation = compare(pred, refs, group_by=group_by, metadata=metadata, n_boot=n_boot, seed=seed, progress=progress)
    return write_report(evaluation, out_dir, figures=figures)
