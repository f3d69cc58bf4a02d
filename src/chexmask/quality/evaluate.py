"""Agreement between CheXmask-format tables: matching, per-image metrics, summary.

:func:`compare` compares a predicted table with one or more reference tables (CheXmask
CSV/Parquet or physician CSVs), image by image and organ by organ;
:func:`chexmask.reports.evaluation.evaluate` writes its report (``summary.csv``,
``summary.md``, ``per_image.csv``, ``per_landmark.csv``, ``errors.csv`` and figures).
With several references every pair is compared: the prediction against each
reference, then each reference against the next ones.

Conventions
-----------
- Organs: ``lungs`` (right | left lung masks), ``heart``, ``right_lung``, ``left_lung``.
- Metrics: ``dice``, ``hd``, ``hd95`` (see :mod:`chexmask.quality.metrics`; pixels of
  the frame the masks live in) and ``landmark_mse``: the mean over the organ's nodes of
  the squared Euclidean node error, pixels squared, when both rows have landmarks.
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
import re
import zlib
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from chexmask._errors import InputError
from chexmask.anatomy import N_NODES, organ_slices
from chexmask.formats.landmarks import parse_landmarks
from chexmask.formats.runfiles import ERROR_COLUMNS, failure
from chexmask.formats.stream import decode_masks
from chexmask.formats.tables import MASK_COLUMNS, id_column, mask_size, read_table
from chexmask.quality.metrics import landmark_sq_errors, mask_scores

__all__ = ["Matching", "Evaluation", "match_ids", "compare_tables", "summarize", "compare"]

log = logging.getLogger(__name__)

REPORT_ORGANS = ("lungs", "heart", "right_lung", "left_lung")
METRICS = ("dice", "hd", "hd95", "landmark_mse")
_PARTS = {"lungs": ("right_lung", "left_lung"), "heart": ("heart",), "right_lung": ("right_lung",), "left_lung": ("left_lung",)}
_IMAGE_EXT = re.compile(r"\.(png|jpe?g|dcm|dicom|tiff?|bmp|gif|webp)$", re.IGNORECASE)


@dataclass(frozen=True)
class Matching:
    """Row pairs of two tables that show the same image.

    Attributes
    ----------
    pairs : list of (int, int)
        Positional row indices (table A, table B).
    keys : list of str
        The normalised id each pair matched on.
    unmatched_a, unmatched_b : list of int
        Rows of A (resp. B) with no partner.
    duplicates_a, duplicates_b : list of int
        Rows dropped because an earlier row of the same table has the same key.
    """

    pairs: list[tuple[int, int]]
    keys: list[str]
    unmatched_a: list[int] = field(default_factory=list)
    unmatched_b: list[int] = field(default_factory=list)
    duplicates_a: list[int] = field(default_factory=list)
    duplicates_b: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Evaluation:
    """What :func:`compare` computed (:func:`chexmask.reports.evaluation.evaluate` writes it).

    Attributes
    ----------
    summary : DataFrame
        Long form: comparison, group, organ, metric, mean, std, n, ci_low, ci_high.
    per_image : DataFrame
        One row per comparison, image and organ, with the four metrics.
    per_landmark : DataFrame
        One row per comparison and node: reference mean shape and error statistics.
    errors : DataFrame
        :data:`ERROR_TABLE_COLUMNS`: ``path, error, reason`` (the errors table of every
        command; ``path`` names the table row), then ``comparison, image_id, organ``;
        one line per problem found.
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


def _id_parts(image_id: object) -> tuple[str, ...]:
    text = str(image_id).strip().replace("\\", "/")
    parts = [p for p in text.split("/") if p not in ("", ".")] or [""]
    parts[-1] = _IMAGE_EXT.sub("", parts[-1])
    return tuple(parts)


def match_ids(ids_a, ids_b) -> Matching:
    """Pair the rows of two tables by image id, robust to folders and extensions.

    Ids are compared on their last path component without its image extension
    (``a/b/x.png`` matches ``x.jpg``). When that repeats within a table (CheXpert's
    ``patientN/studyM/view1_frontal.jpg``), on the shortest number of trailing path
    components that is unique in both tables.

    Parameters
    ----------
    ids_a, ids_b : sequence of str
        Image ids, one per row.

    Returns
    -------
    Matching

    Examples
    --------
    >>> m = match_ids(["p1/s1/view1.jpg", "p2/s1/view1.jpg"], ["s1/view1.png", "data/p2/s1/view1"])
    >>> m.pairs, m.keys
    ([(1, 1)], ['p2/s1/view1'])
    """
    pa, pb = [_id_parts(x) for x in ids_a], [_id_parts(x) for x in ids_b]
    depth = max((len(p) for p in pa + pb), default=1)
    for k in range(1, depth + 1):
        ka, kb = ["/".join(p[-k:]) for p in pa], ["/".join(p[-k:]) for p in pb]
        if len(set(ka)) == len(ka) and len(set(kb)) == len(kb):
            break
    first_b: dict[str, int] = {}
    dup_b = []
    for j, key in enumerate(kb):
        if key in first_b:
            dup_b.append(j)
        else:
            first_b[key] = j
    pairs, keys, unmatched_a, dup_a, seen, used_b = [], [], [], [], set(), set()
    for i, key in enumerate(ka):
        if key in seen:
            dup_a.append(i)
            continue
        seen.add(key)
        if key in first_b:
            pairs.append((i, first_b[key]))
            keys.append(key)
            used_b.add(first_b[key])
        else:
            unmatched_a.append(i)
    unmatched_b = [j for j in first_b.values() if j not in used_b]
    return Matching(pairs, keys, unmatched_a, sorted(unmatched_b), dup_a, dup_b)


#: Columns of ``errors.csv``: the errors table of every command, then where in the comparison.
ERROR_TABLE_COLUMNS = [*ERROR_COLUMNS, "comparison", "image_id", "organ"]


def _masks(row: pd.Series, source: str, problems: list[tuple]) -> dict[str, np.ndarray | None]:
    """The row's masks (:func:`~chexmask.formats.stream.decode_masks`); an organ that fails is None and a problem."""
    out: dict[str, np.ndarray | None] = {}
    for organ, column in MASK_COLUMNS.items():
        if column not in row.index:
            out[organ] = None
            problems.append((organ, source, "MissingColumn", f"no {column!r} column"))
            continue
        try:
            out[organ] = decode_masks(row, [organ], source=source)[organ]
        except InputError as exc:
            out[organ] = None
            problems.append((organ, *failure(source, exc)))
    return out


def _landmarks(row: pd.Series, source: str, problems: list[tuple]) -> np.ndarray | None:
    text = row.get("Landmarks")
    if text is None or (isinstance(text, float) and np.isnan(text)) or str(text).strip() == "":
        problems.append(("landmarks", source, "MissingLandmarks", "no landmarks"))
        return None
    try:
        points_xy = parse_landmarks(str(text), source=f"{source}, column Landmarks")
    except InputError as exc:
        problems.append(("landmarks", *failure(source, exc)))
        return None
    return points_xy


def compare_tables(a: pd.DataFrame, b: pd.DataFrame, *, name: str = "A vs B", source_a: str = "A", source_b: str = "B", bar=None):
    """Per-image, per-organ metrics of table A against table B.

    Parameters
    ----------
    a, b : DataFrame
        CheXmask-format tables (an id column, mask RLE columns, optionally Landmarks,
        Height and Width).
    name : str
        The comparison's label, stored in every output row.
    source_a, source_b : str
        How to name each table in error messages (usually its path).
    bar : tqdm, optional
        Progress bar: its total grows by the matched images, and it advances per image.

    Returns
    -------
    per_image : DataFrame
        comparison, image_id, ref_image_id, organ, dice, hd, hd95, landmark_mse.
    errors : DataFrame
        :data:`ERROR_TABLE_COLUMNS` (path, error, reason, comparison, image_id, organ).
    node_sq_errors : (n_images, 120) ndarray
        Squared node errors (NaN where unavailable), in the order of ``per_image``'s images.
    ref_points_xy : (n_images, 120, 2) ndarray
        Table B's landmarks (NaN where unavailable).
    """
    col_a, col_b = id_column(a, source=source_a), id_column(b, source=source_b)
    matching = match_ids(a[col_a].tolist(), b[col_b].tolist())
    errors = [(f"{source_a} row {i + 1}", "NoMatch", f"no matching row in {source_b}", name, a[col_a].iat[i], "")
              for i in matching.unmatched_a]
    errors += [(f"{source_b} row {j + 1}", "NoMatch", f"no matching row in {source_a}", name, b[col_b].iat[j], "")
               for j in matching.unmatched_b]
    errors += [(f"{source_a} row {i + 1}", "DuplicateId", f"duplicate id in {source_a}; first row kept", name, a[col_a].iat[i], "")
               for i in matching.duplicates_a]
    errors += [(f"{source_b} row {j + 1}", "DuplicateId", f"duplicate id in {source_b}; first row kept", name, b[col_b].iat[j], "")
               for j in matching.duplicates_b]
    use_landmarks = "Landmarks" in a.columns and "Landmarks" in b.columns
    slices = organ_slices()
    node_sets = {organ: np.concatenate([np.arange(N_NODES)[slices[p]] for p in parts]) for organ, parts in _PARTS.items()}
    rows, node_sq, ref_points = [], [], []
    if bar is not None:
        bar.total += len(matching.pairs)
        bar.refresh()
    for i, j in matching.pairs:
        ra, rb = a.iloc[i], b.iloc[j]
        image_id, ref_id = ra[col_a], rb[col_b]
        sa, sb = f"{source_a} row {i + 1}", f"{source_b} row {j + 1}"  # 1-based data rows, as read_table says
        problems: list[tuple] = []  # (organ, path, error, reason)
        scores = {organ: dict.fromkeys(METRICS, np.nan) for organ in REPORT_ORGANS}
        sq = np.full(N_NODES, np.nan)
        pts_b = np.full((N_NODES, 2), np.nan)
        try:
            shape_a, shape_b = mask_size(ra, source=sa), mask_size(rb, source=sb)
        except InputError as exc:
            shape_a = shape_b = None
            problems.append(("", *failure(exc.source, exc)))
        if shape_a is not None and shape_a != shape_b:
            problems.append(("", sa, "SizeMismatch",
                             f"mask sizes differ: {shape_a[0]}x{shape_a[1]} in {sa} vs {shape_b[0]}x{shape_b[1]} in {sb}"))
        elif shape_a is not None:
            ma, mb = _masks(ra, sa, problems), _masks(rb, sb, problems)
            for organ, parts in _PARTS.items():
                if any(ma[p] is None or mb[p] is None for p in parts):
                    continue
                x = ma[parts[0]] if len(parts) == 1 else ma[parts[0]] | ma[parts[1]]
                y = mb[parts[0]] if len(parts) == 1 else mb[parts[0]] | mb[parts[1]]
                s = mask_scores(x, y)
                scores[organ].update(dice=s.dice, hd=s.hd, hd95=s.hd95)
                if np.isnan(s.hd):
                    empty = [n for n, m in ((sa, x), (sb, y)) if not m.any()]
                    problems.append((organ, empty[0], "EmptyMask", f"empty mask in {' and '.join(empty)}: HD and HD95 undefined"))
            if use_landmarks:
                pa, pb = _landmarks(ra, sa, problems), _landmarks(rb, sb, problems)
                if pa is not None and pb is not None:
                    sq = landmark_sq_errors(pa, pb)  # NaN nodes (organ not annotated) stay NaN
                    pts_b = pb
                    for organ, nodes in node_sets.items():
                        scores[organ]["landmark_mse"] = float(sq[nodes].mean())
                        if organ in MASK_COLUMNS and np.isnan(sq[nodes]).any():
                            problems.append((organ, sa, "NaNLandmarks", f"NaN landmarks in {sa} or {sb}: landmark MSE undefined"))
        errors += [(path, error, reason, name, image_id, organ) for organ, path, error, reason in problems]
        rows += [(name, image_id, ref_id, organ, *scores[organ].values()) for organ in REPORT_ORGANS]
        node_sq.append(sq)
        ref_points.append(pts_b)
        if bar is not None:
            bar.update(1)
    per_image = pd.DataFrame(rows, columns=["comparison", "image_id", "ref_image_id", "organ", *METRICS])
    errors_df = pd.DataFrame(errors, columns=ERROR_TABLE_COLUMNS)
    node_sq_arr = np.array(node_sq).reshape(-1, N_NODES)
    ref_arr = np.array(ref_points).reshape(-1, N_NODES, 2)
    return per_image, errors_df, node_sq_arr, ref_arr


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
        As returned by :func:`compare_tables`, optionally with a ``group`` column
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


def _read_metadata(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise InputError(path, "metadata table not found")
    try:
        return pd.read_parquet(path) if path.suffix.lower() in (".parquet", ".pq") else pd.read_csv(path)
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
    per_image, errors, landmarks, unscored = [], [], [], {}
    with tqdm(total=0, unit="img", disable=not progress, desc="evaluate") as bar:
        for pa, pb in pairs:
            name = f"{pa.stem} vs {pb.stem}"
            log.debug("comparing %s", name)
            rows, errs, sq, ref_xy = compare_tables(tables[pa], tables[pb], name=name, source_a=str(pa), source_b=str(pb), bar=bar)
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
            landmarks.append(_per_landmark(name, sq, ref_xy))
    per_image_df = pd.concat(per_image, ignore_index=True)
    errors_df = pd.concat(errors, ignore_index=True)
    per_landmark = pd.concat(landmarks, ignore_index=True)
    summary = summarize(per_image_df, n_boot=n_boot, seed=seed)
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
