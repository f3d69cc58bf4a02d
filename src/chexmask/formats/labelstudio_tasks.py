"""Label Studio review tasks: the predicted contours out, with the labeling config.

Export writes one Label Studio task per table row, with the 120 predicted nodes as
three polygon predictions (right lung 44, left lung 50, heart 26 vertices, in node
order) and a prediction score so reviewers can sort the worst first. Reading the
corrections back is :mod:`chexmask.formats.labelstudio_corrections`.

Why polygons, not 120 keypoints: a polygon keeps its vertices in order, so node
identity survives the round trip without relying on region ids or region order; a
reviewer sees and drags a closed contour, which is what is judged; and three regions
per task stay usable where 120 keypoint regions do not.

Coordinates: Label Studio stores points as percentages of the original image size,
``x% = 100 * x / original_width`` and ``y% = 100 * y / original_height``. Landmarks are
(x, y) = (col, row) pixels of the original image, as in CheXmask; tables in CheXmask-U's
layout (``Landmarks (Mean)``) are read too, and their per-node standard deviations
(``Landmarks (Std)``, or ours) travel with the task as data
(:mod:`chexmask.formats.landmark_columns`).

References
----------
Gaggion et al., "CheXmask: a large-scale dataset of anatomical segmentation masks for
multi-center chest x-ray images", Scientific Data 2024, doi:10.1038/s41597-024-03358-1.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd

from chexmask._errors import InputError
from chexmask.anatomy import N_NODES, ORGANS, organ_slices
from chexmask.estimate.estimator import ESTIMATE_COLUMNS
from chexmask.formats.landmark_columns import (
    LANDMARKS_COLUMN,
    row_landmarks,
    row_node_std,
)
from chexmask.formats.landmarks import node_uncertainty
from chexmask.formats.tables import MASK_COLUMNS, cell_number, id_column, read_table
from chexmask.preprocess import to_1024_frame

__all__ = [
    "LABELS",
    "labeling_config",
    "make_task",
    "export_tasks",
]

log = logging.getLogger(__name__)

#: Organ key -> the Label Studio label (the same words as the table's mask columns).
LABELS: dict[str, str] = dict(MASK_COLUMNS)
_COLOURS = {"right_lung": "#1f77b4", "left_lung": "#2ca02c", "heart": "#d62728"}
FROM_NAME, TO_NAME = "anatomy", "image"
#: Default image URL prefix: Label Studio's local-files serving, paths relative to
#: ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT``.
LOCAL_FILES_PREFIX = "/data/local-files/?d="


def labeling_config() -> str:
    """The Label Studio labeling config (XML) matching the exported tasks.

    Returns
    -------
    str
        An ``<Image>`` named ``image`` (zoomable, from the task's ``$image``) and a
        ``<PolygonLabels>`` named ``anatomy`` with one label per organ, each usable
        once per task.
    """
    labels = "\n".join(
        f'    <Label value="{LABELS[o]}" background="{_COLOURS[o]}"/>' for o in ORGANS
    )
    return (
        "<View>\n"
        '  <Header value="Correct the contours: drag vertices, do not add or delete them"/>\n'
        f'  <Image name="{TO_NAME}" value="$image" zoom="true" zoomControl="true"/>\n'
        f'  <PolygonLabels name="{FROM_NAME}" toName="{TO_NAME}" strokeWidth="2"'
        ' pointSize="small" opacity="0.2">\n'
        f"{labels}\n"
        "  </PolygonLabels>\n"
        "</View>\n"
    )


def make_task(
    image_url: str,
    image_id: str,
    points_xy: np.ndarray,
    height: int,
    width: int,
    *,
    dataset: str = "",
    score: float | None = None,
    model_version: str = "chexmask",
    node_std: np.ndarray | None = None,
) -> dict:
    """One Label Studio task with the predicted contours as a prediction.

    Parameters
    ----------
    image_url : str
        What Label Studio loads the image from (``data.image``).
    image_id : str
        The table's image id, kept in ``data.image_id`` for the import.
    points_xy : (120, 2) array_like of float
        (x, y) = (col, row) nodes in the original frame; an all-NaN organ is left out.
    height, width : int
        Original image size (``original_height``/``original_width``).
    dataset : str, optional
        Source dataset, kept in ``data.dataset`` for the import.
    score : float or None, optional
        Prediction score; higher is better, so Label Studio's ascending sort puts the
        worst first. ``None`` or NaN: no score.
    model_version : str, optional
    node_std : (120, 2) array_like of float, optional
        ``(std_x, std_y)`` per node, original pixels (a row's ``Landmarks (Std)``). Kept in
        ``data.node_std`` (2 decimals, ``null`` for NaN), with ``data.uncertainty``, the mean
        node uncertainty ``sqrt(std_x^2 + std_y^2)`` in original pixels (as the ``Uncertainty``
        column), a sortable Data Manager column.

    Returns
    -------
    dict
        ``{"data": {...}, "predictions": [{"model_version", "score", "result"}]}``.
    """
    pts = np.asarray(points_xy, dtype=np.float64)
    if pts.shape != (N_NODES, 2):
        raise InputError(image_id, f"landmarks must have shape ({N_NODES}, 2), got {pts.shape}")
    result = []
    for organ, part in organ_slices().items():
        nodes = pts[part]
        if np.isnan(nodes).all():
            continue
        percent = np.column_stack([100.0 * nodes[:, 0] / width, 100.0 * nodes[:, 1] / height])
        result.append(
            {
                "id": organ,
                "type": "polygonlabels",
                "from_name": FROM_NAME,
                "to_name": TO_NAME,
                "original_width": int(width),
                "original_height": int(height),
                "image_rotation": 0,
                "value": {
                    "points": percent.tolist(),
                    "closed": True,
                    "polygonlabels": [LABELS[organ]],
                },
            }
        )
    data = {"image": image_url, "image_id": image_id, "dataset": dataset}
    data.update({"height": int(height), "width": int(width)})
    if node_std is not None:
        std = np.asarray(node_std, dtype=np.float64)
        if std.shape != (N_NODES, 2):
            raise InputError(image_id, f"node_std must have shape ({N_NODES}, 2), got {std.shape}")
        data["node_std"] = [[None if np.isnan(v) else round(float(v), 2) for v in xy] for xy in std]
        mean = float(np.nanmean(node_uncertainty(std))) if np.isfinite(std).any() else math.nan
        data["uncertainty"] = None if math.isnan(mean) else round(mean, 4)
    prediction: dict = {"model_version": model_version, "result": result}
    if score is not None and not math.isnan(score):
        prediction["score"] = float(score)
        data["score"] = float(score)  # also a sortable Data Manager column
    return {"data": data, "predictions": [prediction]}


def _row_score(row: pd.Series, height: int, width: int, node_std: np.ndarray | None) -> float | None:
    # Label Studio accepts scores in [0, 1] only (its SDK rejects others).
    # The Estimated Dice first: on real failures it ranks rows best (docs/quality.md).
    estimated = [cell_number(row.get(c)) for c in ESTIMATE_COLUMNS]
    if None not in estimated:
        return min(1.0, max(0.0, min(estimated)))
    rca = row.get("Dice RCA (Mean)")
    if rca is not None and not pd.isna(rca) and str(rca) != "":
        return min(1.0, max(0.0, float(rca)))
    unc = row.get("Uncertainty")
    if (unc is None or pd.isna(unc) or str(unc) == "") and node_std is not None and np.isfinite(node_std).any():
        unc = float(np.nanmean(node_uncertainty(node_std)))  # what the Uncertainty column holds
    if unc is not None and not pd.isna(unc) and str(unc) != "":
        return 1.0 / (1.0 + to_1024_frame(max(0.0, float(unc)), height, width))
    return None


def export_tasks(
    table: str | os.PathLike[str],
    images_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    url_prefix: str = LOCAL_FILES_PREFIX,
    dataset: str | None = None,
    model_version: str = "chexmask",
) -> Path:
    """Write Label Studio tasks for a CheXmask table, and the labeling config next to them.

    Parameters
    ----------
    table : str or path-like
        A CheXmask table (CSV or Parquet), in CheXmask's layout (``Landmarks``) or
        CheXmask-U's (``Landmarks (Mean)``). Rows need ``Height``/``Width`` or a
        readable image. The prediction score (in [0, 1], higher is better) is the
        lower of ``Estimated Dice Lungs`` and ``Estimated Dice Heart`` when the row has
        both (``chexmask segment`` or ``chexmask estimate`` output), else
        ``Dice RCA (Mean)`` when present, else ``1 / (1 + u)`` with ``u`` the
        ``Uncertainty`` column (else the mean node uncertainty of ``Landmarks (Std)``)
        rescaled to a 1024-pixel frame, else none. A row's ``Landmarks (Std)`` goes
        into its task (``data.node_std``, ``data.uncertainty``; see :func:`make_task`).
    images_dir : str or path-like
        Folder the table's ids are relative to (``id``, or ``id`` plus an image suffix).
    out : str or path-like
        The tasks JSON file; the config goes to ``<out stem>.xml`` beside it.
    url_prefix : str, optional
        Prepended to each image's path relative to `images_dir` (URL-quoted). The
        default is Label Studio's local-files serving, with
        ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` set to `images_dir`.
    dataset : str, optional
        Dataset name for all rows; default: the table's ``Dataset`` column, else "".
    model_version : str, optional

    Returns
    -------
    Path
        The labeling config file written.

    Raises
    ------
    InputError
        If the table is unreadable, or a row's image is missing, its landmarks are
        missing or bad, or its ``Landmarks (Std)`` is malformed (the message names the
        row and column).
    """
    from chexmask.io.lookup import ImageLookup
    from chexmask.io.read import read_image

    table, images_dir, out = Path(table), Path(images_dir), Path(out)
    if not images_dir.is_dir():
        raise InputError(images_dir, "images folder not found")
    df = read_table(table)
    ident = id_column(df, source=str(table))
    lookup = ImageLookup(images_dir)
    tasks = []
    for i, row in df.iterrows():
        source = f"{table} row {i + 1}"
        image_id = row[ident]
        path = lookup.direct(image_id)
        if path is None:
            raise InputError(source, f"image {image_id!r} not found in {images_dir}")
        if "Height" in df.columns and "Width" in df.columns:
            height, width = int(row["Height"]), int(row["Width"])
        else:
            image = read_image(path)
            height, width = image.height, image.width
        points = row_landmarks(row, source=source)
        if points is None:
            raise InputError(f"{source}, column {LANDMARKS_COLUMN}", "no landmarks")
        node_std = row_node_std(row, source=source)
        url = url_prefix + quote(path.relative_to(images_dir).as_posix(), safe="/")
        name = dataset if dataset is not None else str(row.get("Dataset", ""))
        tasks.append(
            make_task(url, image_id, points, height, width, dataset=name,
                      score=_row_score(row, height, width, node_std), model_version=model_version, node_std=node_std)
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(tasks, indent=1) + "\n")
    config = out.with_suffix(".xml")
    config.write_text(labeling_config())
    log.debug("wrote %d tasks to %s and the labeling config to %s", len(tasks), out, config)  # the caller reports it
    return config
