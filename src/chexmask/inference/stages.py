"""The per-image stages both engines run: load, predict, make rows.

1. :func:`load_item` reads and pads/resizes one image (worker processes or Ray tasks);
2. :func:`predict_segmentations` runs a batch through the model and maps the results
   back to the original frame (the main process, or a Ray actor);
3. :func:`success_records` fills and run-length encodes the masks into part rows
   (worker processes or Ray tasks); :func:`failure_record` is the row of an input that
   could not be segmented.

The local engine (:mod:`chexmask.inference.local_engine`) and the Ray engine
(:mod:`chexmask.inference.ray_engine`) differ only in how they schedule these, so their
rows are bitwise equal.
"""

from __future__ import annotations

import numpy as np

from chexmask._errors import InputError
from chexmask.formats.records import segmentation_record
from chexmask.inference.plan import WorkItem

__all__ = ["load_item", "predict_segmentations", "failure_record", "success_records"]


def load_item(path: str, size: int) -> tuple:
    """Read and pad/resize one image: ``("ok", uint8 (S, S) pixels, Geometry, pixel spacing or None)``
    or ``("failed", error, reason)``."""
    from chexmask.io.model_frame import read_model_frame

    try:
        pixels, geometry, spacing = read_model_frame(path, size)  # a large JPEG is decoded at reduced scale
    except InputError as exc:
        return ("failed", type(exc).__name__, exc.reason)
    return ("ok", pixels, geometry, spacing)


def predict_segmentations(segmenter, batch: list[tuple[WorkItem, np.ndarray, object]]) -> list:
    """Run one batch of loaded images through the model; Segmentations in the original frame."""
    from chexmask.inference.segmenter import FrameMeta

    return segmenter.segment_frames([(FrameMeta(item.image_id, item.path, g.height, g.width), pixels, g)
                                     for item, pixels, g, *_ in batch])


def failure_record(item: WorkItem, error: str, reason: str) -> dict:
    """The part row of an input that could not be segmented."""
    return {"_index": item.index, "_path": item.path, "_error": error, "_reason": reason}


def success_records(segmentations: list, items: list[WorkItem], id_column: str, rca: list | None = None,
                    spacings: list | None = None) -> list[dict]:
    """Part rows of segmented images (mask filling, RLE and measures: run in worker processes).

    ``spacings`` are the images' pixel spacings (``(row, column)`` mm or None), for the mm measures.
    """
    out = []
    none = [None] * len(items)
    for seg, item, scores, spacing in zip(segmentations, items, rca or none, spacings or none):
        try:
            rec = segmentation_record(seg, id_column, scores, spacing)
        except InputError as exc:  # e.g. a non-finite prediction for one odd image
            out.append(failure_record(item, type(exc).__name__, f"prediction unusable: {exc.reason}"))
            continue
        rec.update(_index=item.index, _path=item.path, _error=None, _reason=None)
        out.append(rec)
    return out
