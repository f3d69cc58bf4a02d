"""Label Studio round trip: predicted contours out as review tasks, corrections back in.

Export writes one Label Studio task per table row, with the 120 predicted nodes as
three polygon predictions (right lung 44, left lung 50, heart 26 vertices, in node
order) and a prediction score so reviewers can sort the worst first; import reads a
project exported in Label Studio's JSON format and writes a physician-style table
(``ImageID, Dataset, Landmarks, Right Lung, Left Lung, Heart, Height, Width``) in the
original frame; ``Height`` and ``Width`` say which frame, so every reader decodes the
masks at the image's own size.

Why polygons, not 120 keypoints: a polygon keeps its vertices in order, so node
identity survives the round trip without relying on region ids or region order; a
reviewer sees and drags a closed contour, which is what is judged; and three regions
per task stay usable where 120 keypoint regions do not.

Coordinates: Label Studio stores points as percentages of the original image size,
``x% = 100 * x / original_width`` and ``y% = 100 * y / original_height``. Landmarks are
(x, y) = (col, row) pixels of the original image, as in CheXmask.

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
from urllib.parse import quote, unquote, urlsplit

import numpy as np
import pandas as pd

from chexmask._errors import InputError
from chexmask.anatomy import N_NODES, NODE_COUNTS, ORGANS, organ_slices
from chexmask.formats.landmarks import format_landmarks, parse_landmarks
from chexmask.formats.tables import MASK_COLUMNS, PHYSICIAN_COLUMNS, id_column, read_table
from chexmask.preprocess import to_1024_frame

__all__ = [
    "LABELS",
    "labeling_config",
    "make_task",
    "export_tasks",
    "read_corrections",
    "import_corrections",
]

log = logging.getLogger(__name__)

#: Organ key -> the Label Studio label (the same words as the table's mask columns).
LABELS: dict[str, str] = dict(MASK_COLUMNS)
_ORGAN_OF_LABEL = {label: organ for organ, label in LABELS.items()}
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
    prediction: dict = {"model_version": model_version, "result": result}
    if score is not None and not math.isnan(score):
        prediction["score"] = float(score)
        data["score"] = float(score)  # also a sortable Data Manager column
    return {"data": data, "predictions": [prediction]}


def _row_score(row: pd.Series, height: int, width: int) -> float | None:
    # Label Studio accepts scores in [0, 1] only (its SDK rejects others).
    rca = row.get("Dice RCA (Mean)")
    if rca is not None and not pd.isna(rca) and str(rca) != "":
        return min(1.0, max(0.0, float(rca)))
    unc = row.get("Uncertainty")
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
        A CheXmask table (CSV or Parquet). Rows need ``Height``/``Width`` or a
        readable image. The prediction score (in [0, 1], higher is better) is
        ``Dice RCA (Mean)`` when present, else ``1 / (1 + u)`` with ``u`` the
        ``Uncertainty`` column rescaled to a 1024-pixel frame, else none.
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
        If the table is unreadable, or a row's image is missing or its landmarks bad.
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
        points = parse_landmarks(row["Landmarks"], source=source)
        url = url_prefix + quote(path.relative_to(images_dir).as_posix(), safe="/")
        name = dataset if dataset is not None else str(row.get("Dataset", ""))
        tasks.append(
            make_task(url, image_id, points, height, width, dataset=name,
                      score=_row_score(row, height, width), model_version=model_version)
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(tasks, indent=1) + "\n")
    config = out.with_suffix(".xml")
    config.write_text(labeling_config())
    log.debug("wrote %d tasks to %s and the labeling config to %s", len(tasks), out, config)  # the caller reports it
    return config


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
        ``{"image_id", "dataset", "height", "width", "points_xy"}`` per corrected task;
        ``points_xy`` is (120, 2) float in original pixels, NaN for an organ that the
        reviewer deleted.

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
                    "height": height, "width": width, "points_xy": points})
    return out


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
        Width``. Landmarks are written to 2 decimals in the original frame; masks are
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
        row.update(Height=item["height"], Width=item["width"])
        rows.append(row)
    df = pd.DataFrame(rows, columns=[*PHYSICIAN_COLUMNS, "Height", "Width"]).astype({"Height": "int64", "Width": "int64"})
    if out is not None:
        write_table(df, out)
    return df
