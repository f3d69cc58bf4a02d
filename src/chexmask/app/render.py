"""Pack a demo result for download.

The overlay shown and zipped is drawn by the one renderer,
:func:`chexmask.reports.overlay.render_overlay` (its fixed colour scale and organ
colours); this module only bundles the files.
"""

from __future__ import annotations

import io
import json
import zipfile

import cv2
import numpy as np
import pandas as pd

from chexmask.anatomy import organ_slices

__all__ = ["bundle"]


def _png(mask: np.ndarray) -> bytes:
    ok, png = cv2.imencode(".png", mask)
    if not ok:  # pragma: no cover
        raise RuntimeError("PNG encoding of a mask failed")
    return png.tobytes()


def bundle(seg, masks: dict[str, np.ndarray], summary: dict, overlay_png: bytes, rca: dict | None = None) -> bytes:
    """A zip with the landmarks (CSV, JSON), masks (PNG, original size) and a CheXmask row.

    Contents: ``landmarks.csv`` (Node, Organ, X, Y, Std X, Std Y, Error Radius), ``result.json``
    (the summary shown on the page, measurements included, plus the landmarks), ``<organ>.png`` masks
    (uint8 {0, 255}, original height x width), ``chexmask.csv`` (the row ``chexmask
    segment`` writes for the image, same columns and values; ``rca`` fills its RCA
    columns) and ``overlay.png``.
    """
    from chexmask.formats.records import csv_columns, segmentation_record
    from chexmask.formats.tables import write_csv

    organ_of = np.empty(len(seg.landmarks), dtype=object)
    for organ, part in organ_slices(organs=seg.organs).items():
        organ_of[part] = organ
    std = seg.node_std if seg.node_std is not None else np.full_like(seg.landmarks, np.nan)
    radius = np.full(len(seg.landmarks), np.nan)
    estimated = seg.quality_estimate().node_radius
    if estimated is not None:
        radius[: len(estimated)] = estimated  # the CheXmask nodes; clavicles have none
    lines = ["Node,Organ,X,Y,Std X,Std Y,Error Radius"]
    lines += [
        f"{i},{organ_of[i]},{x:.3f},{y:.3f},{sx:.4f},{sy:.4f},{r:.3f}"
        for i, ((x, y), (sx, sy), r) in enumerate(zip(seg.landmarks, std, radius))
    ]
    row = segmentation_record(seg, "Image ID", rca)
    row.update(summary.get("measures") or {})  # measured with the image's pixel spacing
    columns = csv_columns("Image ID", clavicles="right_clavicle" in seg.organs)
    table = write_csv(pd.DataFrame([{c: row[c] for c in columns}]))
    result = dict(summary, landmarks=seg.landmarks.round(3).tolist(),
                  node_std=None if seg.node_std is None else seg.node_std.round(4).tolist(),
                  node_error_radius=None if estimated is None else estimated.round(3).tolist())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("landmarks.csv", "\n".join(lines) + "\n")
        zf.writestr("result.json", json.dumps(result, indent=1))
        zf.writestr("chexmask.csv", table)
        for organ in seg.organs:
            zf.writestr(f"{organ}.png", _png(masks[organ]))
        zf.writestr("overlay.png", overlay_png)
    return buf.getvalue()
