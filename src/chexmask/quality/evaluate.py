"""Evaluate a table of masks against reference tables: every comparison, grouped, summarised.

:func:`compare` compares a predicted table with one or more reference tables (CheXmask
CSV/Parquet or physician CSVs), image by image and organ by organ;
:func:`chexmask.reports.evaluation.evaluate` writes its report (``summary.csv``,
``summary.md``, ``per_image.csv``, ``per_landmark.csv``, ``errors.csv`` and figures).
With several references every pair is compared: the prediction against each
reference, then each reference against the next ones. The pieces:
:func:`chexmask.quality.matching.match_ids` pairs the rows,
:func:`chexmask.quality.table_comparison.compare_tables` scores a pair of tables and
:func:`chexmask.quality.summary.summarize` summarises the scores.

Conventions
-----------
- Organs: ``lungs`` (right | left lung masks), ``heart``, ``right_lung``, ``left_lung``.
- Metrics: ``dice``, ``hd``, ``hd95`` (see :mod:`chexmask.quality.metrics`; pixels of
  the frame the masks live in) and ``landmark_mse``: the mean over the organ's nodes of
  the squared Euclidean node error, pixels squared, when both rows have landmarks
  (``Landmarks``, or CheXmask-U's ``Landmarks (Mean)``).
- When the first table of a comparison has per-node standard deviations
  (``Landmarks (Std)``: CheXmask-U's, or ``chexmask segment``'s with sampling), the summary
  adds ``node_uncertainty_spearman`` per organ: Spearman's rho of the node uncertainty
  ``sqrt(std_x^2 + std_y^2)`` with the node error, over all nodes of all images, both in
  the 1024 frame (:func:`chexmask.quality.summary.uncertainty_error_summary`).
- Masks live in a ``Height`` x ``Width`` frame; tables without those columns (the
  physician CSVs) and rows with both empty are 1024 x 1024
  (:func:`chexmask.formats.tables.mask_size`).
- A bad row (empty, missing or malformed mask, frames of different sizes, NaN
  landmarks) becomes NaN metrics plus a line in ``errors.csv``, never a crash.
- Rows match on image ids with folders and image extensions stripped; when file names
  repeat, on as many trailing path components as make the ids unique.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from chexmask._errors import InputError
from chexmask.anatomy import N_NODES, organ_slices
from chexmask.formats.table_paths import table_format
from chexmask.formats.tables import id_column, read_table
from chexmask.quality.matching import match_ids
from chexmask.quality.summary import summarize, uncertainty_error_summary
from chexmask.quality.table_comparison import METRICS, compare_tables

__all__ = ["Evaluation", "compare"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Evaluation:
    """What :func:`compare` computed (:func:`chexmask.reports.evaluation.evaluate` writes it).

    Attributes
    ----------
    summary : DataFrame
        Long form: comparison, group, organ, metric, mean, std, n, ci_low, ci_high;
        with ``node_uncertainty_spearman`` rows when a compared table has ``Landmarks (Std)``.
    per_image : DataFrame
        One row per comparison, image and organ, with the four metrics.
    per_landmark : DataFrame
        One row per comparison and node: reference mean shape and error statistics.
    errors : DataFrame
        :data:`~chexmask.quality.table_comparison.ERROR_TABLE_COLUMNS`: ``path, error,
        reason`` (the errors table of every command; ``path`` names the table row), then
        ``comparison, image_id, organ``; one line per problem found.
    tables : dict of str to DataFrame
        The tables compared, by file stem (for the score histograms).
    unscored : dict of str to str
        Comparisons in which no image got any metric (no ids in common, or every
        matched row was bad) -> why, in words; empty when every comparison has values.
        ``chexmask evaluate`` exits non-zero when it is not empty.
    """

    summary: pd.DataFrame
    per_image: pd.DataFrame
    per_landmark: pd.DataFrame
    errors: pd.DataFrame
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    unscored: dict[str, str] = field(default_factory=dict)


def _read_metadata(path: Path) -> pd.DataFrame:
    # Any columns, so not read_table; the format is table_paths' (.csv, .csv.gz, .parquet; .pq is refused).
    if not path.is_file():
        raise InputError(path, "metadata table not found")
    read = pd.read_parquet if table_format(path) == "parquet" else pd.read_csv
    try:
        return read(path)
    except Exception as exc:  # pandas raises many types for unreadable files
        raise InputError(path, f"cannot read metadata table ({type(exc).__name__}: {exc})") from exc


def _groups(metadata: pd.DataFrame, column: str, ids: pd.Series) -> pd.Series:
    try:
        meta_id = id_column(metadata)
    except InputError:
        meta_id = metadata.columns[0]
    values = metadata[column]
    if pd.api.types.is_numeric_dtype(values) and values.nunique() > 10:
        values = pd.qcut(values, 4, duplicates="drop").astype(str)  # quartile bins
    matching = match_ids(ids.tolist(), metadata[meta_id].tolist())
    out = pd.Series([None] * len(ids), index=ids.index, dtype=object)
    for i, j in matching.pairs:
        v = values.iat[j]
        out.iat[i] = None if pd.isna(v) else str(v)
    return out


def compare(
    pred: str | Path,
    refs: list[str | Path],
    *,
    group_by: str | None = None,
    metadata: str | Path | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    progress: bool = False,
) -> Evaluation:
    """Compare a table of masks with one or more reference tables (nothing is written).

    Parameters
    ----------
    pred : path
        CheXmask CSV/Parquet or physician CSV: the table under test.
    refs : list of path
        One or more reference tables. Comparisons: ``pred`` vs each reference, then
        every pair of references; each is named ``"<file stem A> vs <file stem B>"``.
    group_by : str, optional
        Column of ``metadata`` whose values split the images into groups (numeric
        columns with more than 10 distinct values are split into quartiles).
    metadata : path, optional
        CSV/Parquet table with an image id column and ``group_by``; required with it.
    n_boot, seed : int
        Bootstrap resamples and seed for the 95% confidence intervals.
    progress : bool
        Show a progress bar (matched images of every comparison) on stderr.

    Returns
    -------
    Evaluation

    Raises
    ------
    InputError
        If a table cannot be read, has no id column, two inputs share a file stem,
        or the grouping options are inconsistent.
    """
    from tqdm.auto import tqdm

    pred = Path(pred)
    paths = [pred, *map(Path, refs)]
    if len(paths) < 2:
        raise InputError("refs", "give at least one reference table")
    if len({p.stem for p in paths}) < len(paths):
        raise InputError("tables", f"file stems must differ to name the comparisons: {[p.stem for p in paths]}")
    if (group_by is None) != (metadata is None):
        raise InputError("--group-by/--metadata", "give both options or neither")
    tables = {p: read_table(p, bad_values="keep") for p in paths}  # bad sizes: per-row errors
    meta = None
    if metadata is not None:
        meta = _read_metadata(Path(metadata))
        if group_by not in meta.columns:
            raise InputError(metadata, f"no column {group_by!r}; columns are {list(meta.columns)}")
    pairs = [(pred, r) for r in paths[1:]] + list(combinations(paths[1:], 2))
    per_image, errors, landmarks, relations, unscored = [], [], [], [], {}
    with tqdm(total=0, unit="img", disable=not progress, desc="evaluate") as bar:
        for pa, pb in pairs:
            name = f"{pa.stem} vs {pb.stem}"
            log.debug("comparing %s", name)
            result = compare_tables(tables[pa], tables[pb], name=name, source_a=str(pa), source_b=str(pb), bar=bar)
            rows, errs = result.per_image, result.errors
            n_matched = rows["image_id"].nunique()
            if not rows[list(METRICS)].notna().any(axis=None):  # the caller says so (the CLI: on stderr, once)
                unscored[name] = (f"no image ids in common between {pa} ({len(tables[pa])} rows) and {pb} ({len(tables[pb])} rows)"
                                  if n_matched == 0 else f"all {n_matched} matched rows failed (see errors.csv)")
            if meta is not None:
                ids = rows["image_id"].drop_duplicates()
                groups = _groups(meta, group_by, ids)
                rows["group"] = rows["image_id"].map(dict(zip(ids, groups)))
                missing = ids[groups.isna().to_numpy()]
                if len(missing):
                    extra = pd.DataFrame({"path": str(metadata), "error": "NoGroup", "reason": f"no {group_by!r} value in {metadata}",
                                          "comparison": name, "image_id": missing, "organ": ""})
                    errs = pd.concat([errs, extra], ignore_index=True) if len(errs) else extra
            per_image.append(rows)
            errors.append(errs)
            landmarks.append(_per_landmark(name, result.node_sq_errors, result.ref_points_xy))
            relations.append(uncertainty_error_summary(name, result.node_sq_errors, result.node_uncertainty, result.frame_scale,
                                                       n_boot=n_boot, seed=seed))
    per_image_df = pd.concat(per_image, ignore_index=True)
    errors_df = pd.concat(errors, ignore_index=True)
    per_landmark = pd.concat(landmarks, ignore_index=True)
    summary = summarize(per_image_df, n_boot=n_boot, seed=seed)
    relations = [r for r in relations if len(r)]
    if relations:
        summary = pd.concat([summary, *relations], ignore_index=True)
    return Evaluation(summary, per_image_df, per_landmark, errors_df, {p.stem: t for p, t in tables.items()}, unscored)


def _per_landmark(name: str, sq: np.ndarray, ref_xy: np.ndarray) -> pd.DataFrame:
    """Mean reference shape and error statistics per node (NaN-aware)."""
    organ_of = np.empty(N_NODES, dtype=object)
    for organ, s in organ_slices().items():
        organ_of[s] = organ
    valid = ~np.isnan(sq)
    n = valid.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        err = np.where(valid, np.sqrt(np.where(valid, sq, 0.0)), 0.0).sum(axis=0) / n
        mse = np.where(valid, sq, 0.0).sum(axis=0) / n
        xy = np.where(valid[..., None], ref_xy, 0.0).sum(axis=0) / n[:, None]
    return pd.DataFrame(
        {"comparison": name, "node": np.arange(N_NODES), "organ": organ_of, "x": xy[:, 0], "y": xy[:, 1],
         "mean_error": err, "mse": mse, "n": n}
    )
