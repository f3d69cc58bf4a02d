"""Label Studio corrections back in: a project's JSON export as a physician-style table.

Import reads a project exported in Label Studio's JSON format (the polygons of the
tasks of :mod:`chexmask.formats.labelstudio_tasks`, moved by a reviewer) and writes a
physician-style table (``ImageID, Dataset, Landmarks, Right Lung, Left Lung, Heart,
Height, Width, Corrected``) in the original frame; ``Height`` and ``Width`` say which frame, so
every reader decodes the masks at the image's own size. Points are percentages of the
original image size, as Label Studio stores them.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pandas as pd

from chexmask._errors import InputError
from chexmask.anatomy import N_NODES, NODE_COUNTS, ORGANS, organ_slices
from chexmask.formats.labelstudio_tasks import LABELS
from chexmask.formats.landmarks import format_landmarks, parse_landmarks
from chexmask.formats.tables import MASK_COLUMNS, PHYSICIAN_COLUMNS

__all__ = [
    "read_corrections",
    "import_corrections",
]

log = logging.getLogger(__name__)

_ORGAN_OF_LABEL = {label: organ for organ, label in LABELS.items()}


def _annotator_matches(annotation: dict, annotator: str) -> bool:
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        return annotator in {str(who.get("id")), str(who.get("email"))}
    return str(who) == annotator


def _pick_annotation(task: dict, annotator: str | None) -> dict | None:
    # "completions" is the name in Label Studio 0.x exports.
    annotations = task.get("annotations", task.get("completions")) or []
    usable = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
    if annotator is not None:
        usable = [a for a in usable if _annotator_matches(a, annotator)]
    if not usable:
        return None
    # The latest correction wins; ISO timestamps sort as text.
    return max(enumerate(usable), key=lambda ia: (str(ia[1].get("updated_at", "")), ia[0]))[1]


def _image_id(task: dict, source: str) -> str:
    data = task.get("data")
    if not isinstance(data, dict):
        raise InputError(source, "task has no 'data' object")
    if data.get("image_id"):
        return str(data["image_id"])
    url = str(data.get("image", ""))
    if not url:
        raise InputError(source, "task data has neither 'image_id' nor 'image'")
    parts = urlsplit(url)
    path = parts.query[2:] if parts.query.startswith("d=") else parts.path
    return Path(unquote(path)).name


def _annotation_points(result: list, task: dict, source: str) -> tuple[np.ndarray, int, int]:
    points = np.full((N_NODES, 2), np.nan)
    seen: set[str] = set()
    size = (task["data"].get("height"), task["data"].get("width"))
    for region in result:
        if not isinstance(region, dict) or region.get("type") != "polygonlabels":
            continue  # other tags (choices, text) carry no contour
        value = region.get("value") or {}
        labels = value.get("polygonlabels") or []
        if len(labels) != 1 or labels[0] not in _ORGAN_OF_LABEL:
            raise InputError(source, f"polygon labels {labels} are not one of {list(_ORGAN_OF_LABEL)}")
        organ = _ORGAN_OF_LABEL[labels[0]]
        if organ in seen:
            raise InputError(source, f"{labels[0]} is drawn twice; keep one polygon per organ")
        seen.add(organ)
        if region.get("image_rotation", 0):
            raise InputError(source, f"image_rotation {region['image_rotation']} is not supported; unrotate")
        height = region.get("original_height", size[0])
        width = region.get("original_width", size[1])
        if not height or not width:
            raise InputError(source, "no original_width/original_height in the result or task data")
        if size[0] and size[1] and (int(height), int(width)) != (int(size[0]), int(size[1])):
            raise InputError(
                source, f"image is {width}x{height} in Label Studio but {size[1]}x{size[0]} in the task"
            )
        size = (int(height), int(width))
        try:
            pct = np.asarray(value.get("points"), dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(source, f"{labels[0]} points are not numbers") from None
        expected = NODE_COUNTS[organ]
        if pct.ndim != 2 or pct.shape[1] != 2 or len(pct) != expected:
            raise InputError(
                source,
                f"{labels[0]} has {len(pct) if pct.ndim else 0} vertices, expected {expected}"
                " (vertices were added or deleted; only move them)",
            )
        if not np.isfinite(pct).all():
            raise InputError(source, f"{labels[0]} has non-finite points")
        points[organ_slices()[organ]] = pct * [size[1] / 100.0, size[0] / 100.0]
    if not seen:
        raise InputError(source, "the annotation has no organ polygon")
    return points, size[0], size[1]


def read_corrections(
    export: str | os.PathLike[str], *, annotator: str | None = None
) -> list[dict]:
    """Read corrected contours from a Label Studio JSON export.

    Parameters
    ----------
    export : str or path-like
        A project exported as "JSON" (a list of tasks, each with ``annotations`` whose
        ``result`` holds the polygons). Tasks without a usable (non-cancelled)
        annotation are skipped; with several, the most recently updated is used.
    annotator : str, optional
        Keep only annotations by this user (``completed_by`` id or email).

    Returns
    -------
    list of dict
        ``{"image_id", "dataset", "height", "width", "points_xy", "corrected"}`` per
        corrected task; ``points_xy`` is (120, 2) float in original pixels, NaN for an
        organ that the reviewer deleted; ``corrected`` the organs the reviewer moved
        away from the task's prediction (every drawn organ when the task has none).

    Raises
    ------
    InputError
        If the file is not a JSON list of tasks, or a polygon is not one of the organ
        labels, appears twice, or has a different vertex count than the organ's nodes.
    """
    export = Path(export)
    try:
        tasks = json.loads(export.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(export, f"cannot read as JSON: {err}") from err
    if not isinstance(tasks, list):
        raise InputError(export, 'expected a list of tasks (export the project as "JSON", not "JSON-MIN")')
    out = []
    for n, task in enumerate(tasks):
        source = f"{export} task {task.get('id', n + 1) if isinstance(task, dict) else n + 1}"
        if not isinstance(task, dict):
            raise InputError(source, "a task must be a JSON object")
        annotation = _pick_annotation(task, annotator)
        if annotation is None:
            log.info("%s: no usable annotation, skipped", source)
            continue
        image_id = _image_id(task, source)
        points, height, width = _annotation_points(annotation.get("result") or [], task, f"{source} ({image_id})")
        out.append({"image_id": image_id, "dataset": str(task["data"].get("dataset", "")),
                    "height": height, "width": width, "points_xy": points,
                    "corrected": _moved_organs(points, annotation, task, f"{source} ({image_id}) prediction")})
    return out


def _moved_organs(points: np.ndarray, annotation: dict, task: dict, source: str) -> list[str]:
    """The organs whose corrected contour differs from the prediction (all drawn ones without a prediction).

    The prediction is the one the annotation started from (``annotation.prediction`` in
    Label Studio's export, whose task-level ``predictions`` are ids), else the task's
    first. A vertex counts as moved beyond 0.01 px of the original frame; an organ the
    reviewer deleted is not listed (it has no contour to train on).
    """
    drawn = [o for o in ORGANS if np.isfinite(points[organ_slices()[o]]).all()]
    candidates = [annotation.get("prediction"), *(task.get("predictions") or [])]
    predictions = [p for p in candidates if isinstance(p, dict) and p.get("result")]
    if not predictions:
        return drawn
    predicted, _, _ = _annotation_points(predictions[0]["result"], task, source)
    return [o for o in drawn if not np.allclose(points[organ_slices()[o]], predicted[organ_slices()[o]], atol=0.01, rtol=0.0)]


def import_corrections(
    export: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    annotator: str | None = None,
    dataset: str | None = None,
) -> pd.DataFrame:
    """Turn a Label Studio JSON export into a physician-style CheXmask table.

    Parameters
    ----------
    export : str or path-like
        See :func:`read_corrections`.
    out : str or path-like, optional
        Write the table here (CSV or Parquet, by suffix).
    annotator : str, optional
        See :func:`read_corrections`.
    dataset : str, optional
        ``Dataset`` for every row; default: the task's ``data.dataset``.

    Returns
    -------
    pandas.DataFrame
        Columns ``ImageID, Dataset, Landmarks, Right Lung, Left Lung, Heart, Height,
        Width, Corrected`` (``Corrected``: the organs the reviewer moved, ``;``-separated,
        which ``chexmask train --corrected-only`` trains on). Landmarks are written to 2 decimals in the original frame; masks are
        the RLE of :func:`chexmask.masks.fill.landmarks_to_masks` applied to the
        written landmarks at the original size (``Height`` x ``Width``, on every row),
        so refilling a row reproduces its masks.
    """
    from chexmask.formats.tables import write_table
    from chexmask.masks.fill import landmarks_to_masks
    from chexmask.masks.rle import encode_rle

    rows = []
    for item in read_corrections(export, annotator=annotator):
        text = format_landmarks(item["points_xy"])
        written = parse_landmarks(text, source=item["image_id"])
        masks = landmarks_to_masks(written, item["height"], item["width"])
        row = {"ImageID": item["image_id"], "Dataset": dataset if dataset is not None else item["dataset"],
               "Landmarks": text}
        row.update({MASK_COLUMNS[o]: encode_rle(masks[o]) for o in ORGANS})
        row.update(Height=item["height"], Width=item["width"], Corrected=";".join(item["corrected"]))
        rows.append(row)
    df = pd.DataFrame(rows, columns=[*PHYSICIAN_COLUMNS, "Height", "Width", "Corrected"]).astype({"Height": "int64", "Width": "int64"})
    if out is not None:
        write_table(df, out)
    return df
