"""Per-image extras of the segment pipeline: RCA scores and overlay images.

Both need the original image, so it is read again once per image when either is
asked for. They run in the main process, after prediction: the RCA scorer holds
the atlas and reuses each segmentation's latent mean to pick references.

This sits on top of inference, quality and the overlay renderer: the pipeline
(:func:`chexmask.inference.pipeline.segment_dataset`) only receives the
``annotate`` factory that :func:`annotator` returns, and never imports quality.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from pathlib import Path

from chexmask._errors import InputError
from chexmask.io.read import read_image

__all__ = ["Annotator", "annotator"]

log = logging.getLogger(__name__)


class Annotator:
    """Compute RCA columns and write overlays for segmentations.

    Parameters
    ----------
    scorer : chexmask.quality.rca.RCAScorer, optional
        Fills ``Dice RCA (Mean)``/``(Max)`` and the per-organ RCA columns.
    overlays : path-like, optional
        Folder for one overlay PNG per image, at ``<id without suffix>.png`` (ids that
        are relative paths keep their folders).
    """

    def __init__(self, scorer=None, overlays: str | Path | None = None) -> None:
        self.scorer = scorer
        self.overlays = None if overlays is None else Path(overlays)

    def fingerprint(self) -> dict:
        """What changes the rows (part of a resumable run's identity)."""
        return {"rca_k": None if self.scorer is None else self.scorer.k, "rca_atlas": None if self.scorer is None else len(self.scorer.atlas)}

    def __call__(self, segmentation) -> dict[str, float] | None:
        """The RCA columns of one segmentation (None without a scorer); writes its overlay."""
        if self.scorer is None and self.overlays is None:
            return None
        from chexmask.quality.rca import score_segmentation

        image = read_image(segmentation.path)
        rca = None
        if self.scorer is not None:
            try:
                rca = score_segmentation(self.scorer, image, segmentation)
            except InputError as exc:  # e.g. an empty organ: no score, the row is still written
                log.warning("RCA of %s: %s", segmentation.image_id, exc.reason)
                rca = {"Dice RCA (Mean)": math.nan, "Dice RCA (Max)": math.nan}
        if self.overlays is not None:
            from chexmask.reports.overlay import draw_overlay, overlay_path

            estimate = segmentation.quality_estimate()
            draw_overlay(image, segmentation, overlay_path(self.overlays, segmentation.image_id), flag=estimate.flag(rca),
                         error_radius=estimate.node_radius)
        return rca


def annotator(
    rca: str | os.PathLike[str] | None = None,
    overlays: str | os.PathLike[str] | None = None,
    k: int = 5,
) -> Callable[..., Annotator] | None:
    """The ``annotate`` factory of ``segment --atlas/--overlays`` (None when neither is asked for).

    Parameters
    ----------
    rca : path-like, optional
        RCA atlas: a JSRT folder or an atlas ``.npz`` (see docs/rca.md).
    overlays : path-like, optional
        Folder for the overlay PNGs.
    k : int
        RCA references per image.

    Returns
    -------
    callable or None
        ``factory(segmenter) -> Annotator``: the pipeline calls it once its model is
        loaded (the RCA scorer picks references with that model's latents).
    """
    if rca is None and overlays is None:
        return None

    def build(segmenter) -> Annotator:
        scorer = None
        if rca is not None:
            from chexmask.quality.rca import RCAScorer, open_atlas

            scorer = RCAScorer(open_atlas(rca, segmenter), k=k, segmenter=segmenter)
        return Annotator(scorer, overlays)

    return build
