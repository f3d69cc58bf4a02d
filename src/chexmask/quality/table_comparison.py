"""Per-image, per-organ metrics of one CheXmask-format table against another.

:func:`compare_tables` pairs the rows (:func:`chexmask.quality.matching.match_ids`),
decodes each pair's masks (:func:`chexmask.formats.stream.decode_masks`) and landmarks,
and scores them (:mod:`chexmask.quality.metrics`). Organs are :data:`REPORT_ORGANS`
(``lungs`` is the right | left lung masks); metrics are :data:`METRICS`. Landmarks are
read from ``Landmarks`` or CheXmask-U's ``Landmarks (Mean)``, and table A's per-node
standard deviations from ``Landmarks (Std)`` when it has them
(:mod:`chexmask.formats.landmark_columns`). A bad row (empty, missing or malformed mask,
frames of different sizes, NaN landmarks, malformed standard deviations) becomes NaN
metrics plus a line of the errors table (:data:`ERROR_TABLE_COLUMNS`), never a crash.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from chexmask._errors import InputError
from chexmask.anatomy import N_NODES, organ_slices
from chexmask.formats.landmark_columns import (
    landmarks_column,
    node_std_column,
    row_landmarks,
    row_node_std,
)
from chexmask.formats.landmarks import node_uncertainty
from chexmask.formats.runfiles import ERROR_COLUMNS, failure
from chexmask.formats.stream import decode_masks
from chexmask.formats.tables import MASK_COLUMNS, id_column, mask_size
from chexmask.preprocess import to_1024_frame
from chexmask.quality.matching import match_ids
from chexmask.quality.metrics import landmark_sq_errors, mask_scores

__all__ = ["TableComparison", "compare_tables"]

#: The organs scored: ``lungs`` (right | left lung masks) and each organ alone.
REPORT_ORGANS = ("lungs", "heart", "right_lung", "left_lung")
#: The metrics of each image and organ, in the per-image table's column order.
METRICS = ("dice", "hd", "hd95", "landmark_mse")
_PARTS = {"lungs": ("right_lung", "left_lung"), "heart": ("heart",), "right_lung": ("right_lung",), "left_lung": ("left_lung",)}
_SLICES = organ_slices()
#: Node indices of each of :data:`REPORT_ORGANS`.
NODE_SETS: dict[str, np.ndarray] = {
    organ: np.concatenate([np.arange(N_NODES)[_SLICES[p]] for p in parts]) for organ, parts in _PARTS.items()
}

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
    try:
        points_xy = row_landmarks(row, source=source)
    except InputError as exc:
        problems.append(("landmarks", *failure(source, exc)))
        return None
    if points_xy is None:
        problems.append(("landmarks", source, "MissingLandmarks", "no landmarks"))
    return points_xy


def _node_std(row: pd.Series, source: str, problems: list[tuple]) -> np.ndarray | None:
    """The row's per-node std (None without); a malformed value is None and a problem."""
    try:
        return row_node_std(row, source=source)
    except InputError as exc:
        problems.append(("landmarks", *failure(source, exc)))
        return None


class TableComparison(NamedTuple):
    """What :func:`compare_tables` computed, one entry per matched image in ``per_image``'s order.

    Attributes
    ----------
    per_image : DataFrame
        comparison, image_id, ref_image_id, organ, dice, hd, hd95, landmark_mse.
    errors : DataFrame
        :data:`ERROR_TABLE_COLUMNS` (path, error, reason, comparison, image_id, organ).
    node_sq_errors : (n_images, 120) ndarray
        Squared node errors, pixels² of the rows' frame (NaN where unavailable).
    ref_points_xy : (n_images, 120, 2) ndarray
        Table B's landmarks (NaN where unavailable).
    node_uncertainty : (n_images, 120) ndarray
        Table A's per-node uncertainty ``sqrt(std_x^2 + std_y^2)``
        (:func:`chexmask.formats.landmarks.node_uncertainty` of its ``Landmarks (Std)``),
        pixels of the rows' frame; NaN where A has none, or where no node error was scored.
    frame_scale : (n_images,) ndarray
        ``1024 / max(Height, Width)`` of A's row: multiply pixel values by it to put images
        of different sizes in one frame (:func:`chexmask.preprocess.to_1024_frame`); NaN
        when the size is bad.
    """

    per_image: pd.DataFrame
    errors: pd.DataFrame
    node_sq_errors: np.ndarray
    ref_points_xy: np.ndarray
    node_uncertainty: np.ndarray
    frame_scale: np.ndarray


def compare_tables(a: pd.DataFrame, b: pd.DataFrame, *, name: str = "A vs B", source_a: str = "A", source_b: str = "B",
                   bar=None) -> TableComparison:
    """Per-image, per-organ metrics of table A against table B.

    Parameters
    ----------
    a, b : DataFrame
        CheXmask-format tables (an id column, mask RLE columns, optionally Landmarks or
        CheXmask-U's Landmarks (Mean), A optionally Landmarks (Std), Height and Width).
    name : str
        The comparison's label, stored in every output row.
    source_a, source_b : str
        How to name each table in error messages (usually its path).
    bar : tqdm, optional
        Progress bar: its total grows by the matched images, and it advances per image.

    Returns
    -------
    TableComparison
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
    use_landmarks = landmarks_column(a.columns) is not None and landmarks_column(b.columns) is not None
    use_std = use_landmarks and node_std_column(a.columns) is not None
    rows, node_sq, ref_points, node_unc, scales = [], [], [], [], []
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
        unc = np.full(N_NODES, np.nan)
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
                    std = _node_std(ra, sa, problems) if use_std else None
                    if std is not None:
                        unc = np.where(np.isnan(sq), np.nan, node_uncertainty(std))
                    for organ, nodes in NODE_SETS.items():
                        scores[organ]["landmark_mse"] = float(sq[nodes].mean())
                        if organ in MASK_COLUMNS and np.isnan(sq[nodes]).any():
                            problems.append((organ, sa, "NaNLandmarks", f"NaN landmarks in {sa} or {sb}: landmark MSE undefined"))
        errors += [(path, error, reason, name, image_id, organ) for organ, path, error, reason in problems]
        rows += [(name, image_id, ref_id, organ, *scores[organ].values()) for organ in REPORT_ORGANS]
        node_sq.append(sq)
        ref_points.append(pts_b)
        node_unc.append(unc)
        scales.append(np.nan if shape_a is None else to_1024_frame(1.0, *shape_a))
        if bar is not None:
            bar.update(1)
    per_image = pd.DataFrame(rows, columns=["comparison", "image_id", "ref_image_id", "organ", *METRICS])
    errors_df = pd.DataFrame(errors, columns=ERROR_TABLE_COLUMNS)
    return TableComparison(per_image, errors_df, np.array(node_sq).reshape(-1, N_NODES), np.array(ref_points).reshape(-1, N_NODES, 2),
                           np.array(node_unc).reshape(-1, N_NODES), np.array(scales, dtype=np.float64))
