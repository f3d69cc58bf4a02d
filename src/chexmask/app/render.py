"""Draw a segmentation over its image, and pack it for download.

Colours: right lung blue, left lung green, heart red (filled lightly, contour solid);
each node is a dot coloured by its predictive uncertainty (blue = low, red = high,
on a scale from 0 to the image's largest node uncertainty).
"""

from __future__ import annotations

import io
import json
import zipfile

import cv2
import numpy as np
import pandas as pd

from chexmask.anatomy import organ_slices

__all__ = ["ORGAN_COLOURS", "overlay", "bundle"]

#: Organ -> BGR colour of its fill and contour.
ORGAN_COLOURS: dict[str, tuple[int, int, int]] = {
    "right_lung": (180, 119, 31),
    "left_lung": (44, 160, 44),
    "heart": (40, 39, 214),
    "right_clavicle": (0, 200, 255),
    "left_clavicle": (200, 0, 200),
}
_MAX_SIDE = 1024  # the overlay is drawn at most this large; downloads keep full size


def overlay(pixels: np.ndarray, seg, masks: dict[str, np.ndarray]) -> bytes:
    """PNG bytes of the image with organ fills, contours and uncertainty-coloured nodes.

    Parameters
    ----------
    pixels : (H, W) uint8 ndarray
        The image as read.
    seg : Segmentation
        Its result (original frame).
    masks : dict of str to (H, W) uint8 ndarray
        ``seg.masks()``.
    """
    scale = min(1.0, _MAX_SIDE / max(pixels.shape))
    size = (max(1, round(pixels.shape[1] * scale)), max(1, round(pixels.shape[0] * scale)))
    base = cv2.cvtColor(cv2.resize(pixels, size, interpolation=cv2.INTER_AREA), cv2.COLOR_GRAY2BGR)
    fill = base.copy()
    for organ in seg.organs:
        small = cv2.resize(masks[organ], size, interpolation=cv2.INTER_NEAREST) > 0
        fill[small] = ORGAN_COLOURS[organ]
    out = cv2.addWeighted(base, 0.75, fill, 0.25, 0)
    points = seg.landmarks * scale
    thick = max(1, round(max(size) / 400))
    for organ, part in organ_slices(organs=seg.organs).items():
        ring = np.rint(points[part] * 16).astype(np.int32)  # 4 fractional bits for subpixel lines
        cv2.polylines(out, [ring], True, ORGAN_COLOURS[organ], thick, cv2.LINE_AA, shift=4)
    node_u = seg.node_uncertainty
    if node_u is None:
        colours = np.tile(np.array([[255, 255, 255]], np.uint8), (len(points), 1))
    else:
        level = np.clip(node_u / max(float(node_u.max()), 1e-6) * 255, 0, 255).astype(np.uint8)
        colours = cv2.applyColorMap(level[:, None], cv2.COLORMAP_JET)[:, 0]
    radius = max(2, round(max(size) / 200))
    for (x, y), colour in zip(np.rint(points * 16).astype(np.int32), colours):
        cv2.circle(out, (int(x), int(y)), radius * 16, tuple(int(c) for c in colour), -1, cv2.LINE_AA, shift=4)
    ok, png = cv2.imencode(".png", out)
    if not ok:  # pragma: no cover - encoding a valid uint8 image does not fail
        raise RuntimeError("PNG encoding of the overlay failed")
    return png.tobytes()


def _png(mask: np.ndarray) -> bytes:
    ok, png = cv2.imencode(".png", mask)
    if not ok:  # pragma: no cover
        raise RuntimeError("PNG encoding of a mask failed")
    return png.tobytes()


def bundle(seg, masks: dict[str, np.ndarray], summary: dict, overlay_png: bytes, rca: dict | None = None) -> bytes:
    """A zip with the landmarks (CSV, JSON), masks (PNG, original size) and a CheXmask row.

    Contents: ``landmarks.csv`` (Node, Organ, X, Y, Std X, Std Y), ``result.json``
    (the summary shown on the page, measurements included, plus the landmarks), ``<organ>.png`` masks
    (uint8 {0, 255}, original height x width), ``chexmask.csv`` (the row ``chexmask
    segment`` writes for the image, same columns and values; ``rca`` fills its RCA
    columns) and ``overlay.png``.
    """
    from chexmask.formats.records import csv_columns, segmentation_record

    organ_of = np.empty(len(seg.landmarks), dtype=object)
    for organ, part in organ_slices(organs=seg.organs).items():
        organ_of[part] = organ
    std = seg.node_std if seg.node_std is not None else np.full_like(seg.landmarks, np.nan)
    lines = ["Node,Organ,X,Y,Std X,Std Y"]
    lines += [
        f"{i},{organ_of[i]},{x:.3f},{y:.3f},{sx:.4f},{sy:.4f}"
        for i, ((x, y), (sx, sy)) in enumerate(zip(seg.landmarks, std))
    ]
    row = segmentation_record(seg, "Image ID", rca)
    row.update(summary.get("measures") or {})  # measured with the image's pixel spacing
    columns = csv_columns("Image ID", clavicles="right_clavicle" in seg.organs)
    table = pd.DataFrame([{c: row[c] for c in columns}]).to_csv(index=False, lineterminator="\n")
    result = dict(summary, landmarks=seg.landmarks.round(3).tolist(),
                  node_std=None if seg.node_std is None else seg.node_std.round(4).tolist())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("landmarks.csv", "\n".join(lines) + "\n")
        zf.writestr("result.json", json.dumps(result, indent=1))
        zf.writestr("chexmask.csv", table)
        for organ in seg.organs:
            zf.writestr(f"{organ}.png", _png(masks[organ]))
        zf.writestr("overlay.png", overlay_png)
    return buf.getvalue()
