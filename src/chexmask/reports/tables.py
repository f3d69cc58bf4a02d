"""Markdown rendering of an evaluation summary, in the layout of CheXmask's Table 2.

The reference paper reports, per comparison (prediction vs physician 1, vs physician 2,
physician vs physician), mean +- std of Dice, HD and HD95 for the lungs and the heart.
:func:`summary_markdown` renders the long-form summary of
:func:`chexmask.quality.summary.summarize` the same way, one line per comparison and
group, followed by a second table for each lung and the landmark error.

References
----------
Gaggion et al., "CheXmask: a large-scale dataset of anatomical segmentation masks for
multi-center chest x-ray images", Scientific Data 2024, doi:10.1038/s41597-024-03358-1.
"""

from __future__ import annotations

import math

import pandas as pd

__all__ = ["summary_markdown"]

_LABELS = {"dice": "DSC", "hd": "HD", "hd95": "HD95", "landmark_mse": "Landmark MSE (px²)",
           "node_uncertainty_spearman": "ρ (node uncertainty, node error)"}
_ORGAN_LABELS = {"lungs": "Lungs", "heart": "Heart", "right_lung": "Right lung", "left_lung": "Left lung"}
_DIGITS = {"dice": 3, "hd": 1, "hd95": 1, "landmark_mse": 0, "node_uncertainty_spearman": 3}
_REQUIRED = {"comparison", "group", "organ", "metric", "mean", "std", "n"}


def _cell(mean: float, std: float, digits: int) -> str:
    if mean is None or math.isnan(mean):
        return "–"
    if std is None or math.isnan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _table(summary: pd.DataFrame, columns: list[tuple[str, str]]) -> list[str]:
    index = summary.set_index(["comparison", "group", "organ", "metric"])
    header = ["Comparison", "Group", "n"] + [f"{_ORGAN_LABELS[o]} {_LABELS[m]}" for o, m in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 2 + ["--:"] * (len(header) - 2)) + "|"]
    keys = summary[["comparison", "group"]].drop_duplicates()
    for comparison, group in keys.itertuples(index=False):
        cells, n = [], 0
        for organ, metric in columns:
            key = (comparison, group, organ, metric)
            if key in index.index:
                row = index.loc[key]
                cells.append(_cell(float(row["mean"]), float(row["std"]), _DIGITS[metric]))
                n = max(n, int(row["n"]))
            else:
                cells.append("–")
        lines.append("| " + " | ".join([str(comparison), str(group), str(n), *cells]) + " |")
    return lines


def summary_markdown(summary: pd.DataFrame, *, title: str = "Agreement (mean ± std)") -> str:
    """Render a long-form evaluation summary as Markdown tables.

    Parameters
    ----------
    summary : DataFrame
        Columns comparison, group, organ, metric, mean, std, n (as written to
        ``summary.csv``).
    title : str
        Heading of the first table.

    Returns
    -------
    str
        Markdown: Table 2's layout (lungs and heart: DSC, HD, HD95), then a table with
        each lung's DSC and the landmark MSE. HD and HD95 are in pixels; ``n`` is the
        largest count of images with a value in the row. When the summary has
        ``node_uncertainty_spearman`` rows, a third table gives them (``n``: nodes).

    Raises
    ------
    ValueError
        If a required column is missing.

    Examples
    --------
    >>> s = pd.DataFrame({"comparison": ["a vs b"], "group": ["all"], "organ": ["lungs"],
    ...                   "metric": ["dice"], "mean": [0.97], "std": [0.01], "n": [50]})
    >>> print(summary_markdown(s).splitlines()[4])
    | a vs b | all | 50 | 0.970 ± 0.010 | – | – | – | – | – |
    """
    missing = _REQUIRED - set(summary.columns)
    if missing:
        raise ValueError(f"summary is missing columns {sorted(missing)}")
    main = [(o, m) for o in ("lungs", "heart") for m in ("dice", "hd", "hd95")]
    extra = [("right_lung", "dice"), ("left_lung", "dice"), ("lungs", "landmark_mse"), ("heart", "landmark_mse")]
    lines = [f"## {title}", "", *_table(summary, main), "", "HD and HD95 in pixels of the mask frame.", ""]
    lines += ["## Each lung and landmarks", "", *_table(summary, extra), ""]
    relation = summary[summary["metric"] == "node_uncertainty_spearman"]
    if len(relation):
        columns = [(o, "node_uncertainty_spearman") for o in ("lungs", "heart")]
        note = ("Per-node uncertainty sqrt(std_x² + std_y²) of `Landmarks (Std)` against the node error, "
                "all nodes of all images, both in the 1024 frame; n counts nodes.")
        lines += ["## Node uncertainty vs node error (Spearman)", "", *_table(relation, columns), "", note, ""]
    return "\n".join(lines)
