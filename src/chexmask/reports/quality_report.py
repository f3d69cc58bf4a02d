"""The quality-estimate report: calibration figures and tables of the failure benchmark.

:func:`write_quality_report` draws, from the out-of-source predictions of
:func:`chexmask.quality.estimator_fit.leave_one_source_out`: estimated vs true Dice per
organ group (coloured by held-out source), the Node Error Radius's coverage per source
and shift, and writes the figures table (``summary.csv``) and ``summary.md``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from chexmask.preprocess import to_1024_frame
from chexmask.quality.failure_benchmark import FAILURE_CUTS

__all__ = ["calibration_figure", "coverage_figure", "markdown_table", "write_quality_report"]

_COLOURS = {"jsrt": "tab:blue", "montgomery": "tab:orange", "shenzhen": "tab:green"}


def calibration_figure(bench: pd.DataFrame, pred: pd.DataFrame, path: Path) -> Path:
    """Estimated vs true Dice, lungs and heart, one colour per held-out source; the failure cuts dashed."""
    fig = Figure(figsize=(9, 4.2))
    for ax, group in zip(fig.subplots(1, 2), ("lungs", "heart")):
        for source, rows in bench.groupby("source"):
            ok = rows[f"dice_{group}"].notna()
            if ok.any():
                ax.scatter(rows.loc[ok, f"dice_{group}"], pred.loc[rows.index[ok], f"est_{group}"], s=6, alpha=0.5,
                           color=_COLOURS.get(source), label=source)
        lo = 0.5 if group == "lungs" else 0.4
        ax.plot([lo, 1], [lo, 1], color="grey", lw=0.8)
        ax.axvline(FAILURE_CUTS[group], ls="--", color="red", lw=0.8)
        ax.set(xlim=(lo, 1), ylim=(lo, 1), xlabel=f"true Dice, {group}", ylabel=f"Estimated Dice {group.title()}",
               title=f"{group}: out-of-source estimate" if group == "lungs" else "heart: out-of-fold (JSRT only)")
        ax.legend(loc="lower right", fontsize=7)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    return path


def coverage_figure(bench: pd.DataFrame, pred: pd.DataFrame, path: Path, target: float) -> Path:
    """Fraction of expert nodes inside their Node Error Radius, per held-out source and shift."""
    rows = []
    for (r, radius) in zip(bench.itertuples(index=False), pred["radius"]):
        e = to_1024_frame(np.asarray(r.node_error, np.float64), r.height, r.width)
        ok = np.isfinite(e) & np.isfinite(radius)
        rows.append({"source": r.source, "shift": r.shift, "inside": (e[ok] <= np.asarray(radius)[ok]).mean() if ok.any() else np.nan})
    table = pd.DataFrame(rows).groupby(["shift", "source"])["inside"].mean().unstack()
    fig = Figure(figsize=(9, 3.8))
    ax = fig.subplots()
    table.plot.bar(ax=ax, color=[_COLOURS.get(c) for c in table.columns], width=0.8)
    ax.axhline(target, color="red", ls="--", lw=0.8, label=f"target {target:.0%}")
    ax.set(ylim=(0.5, 1.0), ylabel="expert node inside radius", xlabel="", title="Node Error Radius coverage on held-out sources")
    ax.legend(fontsize=7, ncols=4)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    return path


def markdown_table(frame: pd.DataFrame, digits: int = 3) -> str:
    """A plain markdown table of a frame (index as the first column), numbers to ``digits`` decimals.

    Examples
    --------
    >>> print(markdown_table(pd.DataFrame({"r": [0.91234]}, index=["all"])))
    | | r |
    | --- | --- |
    | all | 0.912 |
    """
    def cell(v) -> str:
        return f"{v:.{digits}f}" if isinstance(v, (float, np.floating)) else str(v)

    lines = ["| | " + " | ".join(map(str, frame.columns)) + " |", "| --- |" + " --- |" * len(frame.columns)]
    lines += ["| " + " | ".join([str(i), *map(cell, row)]) + " |" for i, row in zip(frame.index, frame.itertuples(index=False))]
    return "\n".join(lines)


def write_quality_report(out_dir: str | Path, bench: pd.DataFrame, pred: pd.DataFrame, figures: pd.DataFrame,
                         thresholds: dict[str, float], coverage: float) -> Path:
    """Write ``summary.csv``, ``summary.md`` and the two figures into ``out_dir``; returns the markdown path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures.to_csv(out / "summary.csv")
    calibration_figure(bench, pred, out / "quality_calibration.png")
    coverage_figure(bench, pred, out / "quality_radius_coverage.png", coverage)
    spread = bench[["dice_lungs", "dice_heart"]].describe(percentiles=[0.05, 0.25, 0.5]).T
    lines = [f"Failure benchmark: {len(bench)} segmentations, {int(figures.loc['all', 'failed'])} failed "
             f"(lungs Dice < {FAILURE_CUTS['lungs']} or heart Dice < {FAILURE_CUTS['heart']}).", "",
             "True Dice:", "", markdown_table(spread), "",
             f"Flag thresholds: Estimated Dice Lungs < {thresholds['lungs']:.4f} or Estimated Dice Heart < {thresholds['heart']:.4f}.", "",
             "Out-of-source figures (lungs: leave one source out; heart: JSRT image folds):", "",
             markdown_table(figures), ""]
    (out / "summary.md").write_text("\n".join(lines), encoding="utf-8")
    return out / "summary.md"
