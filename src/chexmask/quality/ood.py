"""Out-of-distribution experiment: which uncertainty score separates OOD inputs?

In-distribution images (e.g. the JSRT test split) and out-of-distribution sets
(:mod:`chexmask.quality.ood_sets`) are segmented with latent sampling, each image gets
the scores of :mod:`chexmask.quality.ood_scoring`, and every score's AUROC is computed
per OOD set and over all of them;
:func:`chexmask.reports.uncertainty_report.write_ood_report` writes the report.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from chexmask._errors import ChexmaskError
from chexmask.io.read import XrayImage
from chexmask.model.default import DEFAULT_MODEL
from chexmask.quality.metrics import auroc
from chexmask.quality.ood_scoring import SCORES, fit_reference, ood_scores
from chexmask.quality.ood_sets import non_chest_images, synthetic_ood

__all__ = [
    "OODResult",
    "run_ood",
    "ood_experiment",
]

log = logging.getLogger(__name__)


@dataclass
class OODResult:
    """``scores``: one row per image with its ``set`` (``"in"`` or an OOD set name) and
    :data:`~chexmask.quality.ood_scoring.SCORES`; ``aurocs``: one row per score, one
    column per OOD set plus ``all``; ``sets``: the OOD images scored, by set name;
    ``meta``: how the run was made, for the report's header (filled by :func:`ood_experiment`)."""

    scores: pd.DataFrame
    aurocs: pd.DataFrame
    sets: dict[str, list[XrayImage]] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)


def run_ood(
    in_images: Sequence[XrayImage],
    ood_sets: Mapping[str, Sequence[XrayImage]],
    segmenter,
    reference_images: Sequence[XrayImage] | None = None,
) -> OODResult:
    """Score in-distribution and OOD images and compute the AUROC of every score.

    Parameters
    ----------
    in_images : sequence of XrayImage
    ood_sets : mapping of set name to sequence of XrayImage
    segmenter : chexmask.Segmenter
        With ``uncertainty >= 2`` for the predictive score.
    reference_images : sequence of XrayImage, optional
        In-distribution images NOT in `in_images` (the training split) for the
        Mahalanobis and shape scores; segmented without sampling.

    Raises
    ------
    ChexmaskError
        If `in_images` or every OOD set is empty.
    """
    import copy

    if not in_images:
        raise ChexmaskError("the OOD experiment needs in-distribution images")
    if not any(len(v) for v in ood_sets.values()):
        raise ChexmaskError("the OOD experiment needs at least one out-of-distribution image")
    reference = None
    if reference_images:
        deterministic = copy.copy(segmenter)  # shares the model; no sampling needed for mu and sigma
        deterministic.uncertainty = 0
        reference = fit_reference(deterministic.segment_images(list(reference_images)))
    frames = [ood_scores(segmenter.segment_images(list(in_images)), reference).assign(set="in")]
    for name, images in ood_sets.items():
        if images:
            frames.append(ood_scores(segmenter.segment_images(list(images)), reference).assign(set=name))
            log.info("OOD set %s: %d images", name, len(images))
    scores = pd.concat(frames, ignore_index=True)
    inside = scores[scores["set"] == "in"]
    outside = scores[scores["set"] != "in"]
    table = {name: {s: auroc(inside[s], g[s]) for s in SCORES} for name, g in outside.groupby("set", sort=False)}
    table["all"] = {s: auroc(inside[s], outside[s]) for s in SCORES}
    return OODResult(scores, pd.DataFrame(table).rename_axis("score").reset_index(),
                     {name: list(images) for name, images in ood_sets.items()})


def _reference_paths(source: Path) -> list[Path]:
    from chexmask.io.discover import find_images
    from chexmask.io.layout import read_split

    if (source / "splits" / "train.txt").is_file():  # JSRT layout: the training split only
        return [source / "images" / f"{i}.png" for i in read_split(source, "train")]
    return find_images(source)


def ood_experiment(
    in_inputs: Sequence[str | os.PathLike[str]],
    out_inputs: Sequence[str | os.PathLike[str]],
    *,
    weights: str = DEFAULT_MODEL,
    split: str | None = None,
    limit: int | None = None,
    synthetic: bool = True,
    non_chest: bool = True,
    max_synthetic: int = 20,
    reference: str | os.PathLike[str] | None = None,
    samples: int = 20,
    seed: int = 0,
    device: str = "auto",
    batch_size: int = 8,
) -> OODResult:
    """The ``chexmask experiment ood`` command's run: read, generate, score.

    :func:`chexmask.reports.uncertainty_report.write_ood_report` writes the report and
    :func:`~chexmask.reports.uncertainty_report.save_ood_images` the generated images.

    Parameters
    ----------
    in_inputs, out_inputs : sequence of path
        In-distribution and OOD images: files, folders or path lists. `out_inputs`
        may be empty when synthetic or non-chest sets are made. JSRT-layout folders
        with `split`: see :func:`chexmask.quality.experiment_inputs.resolve_images`.
    split : str, optional
        Split of JSRT-layout in-distribution inputs to use.
    limit : int, optional
        Use the first `limit` in-distribution images only.
    synthetic : bool, optional
        Make :data:`~chexmask.quality.ood_sets.TRANSFORMS` sets from the first `max_synthetic`
        in-distribution images.
    non_chest : bool, optional
        Add :func:`~chexmask.quality.ood_sets.non_chest_images`.
    reference : path, optional
        Training images for the Mahalanobis and shape scores: a JSRT-layout folder
        (its train split is used) or any folder/list of images.
    samples, seed, device, batch_size
        See :class:`chexmask.Segmenter`.

    Returns
    -------
    OODResult
        With ``meta``.

    Raises
    ------
    ChexmaskError
        On unreadable inputs or no OOD images.
    ValueError
        With fewer than 2 samples.
    """
    from chexmask.inference.segmenter import Segmenter
    from chexmask.io.read import read_image
    from chexmask.quality.experiment_inputs import resolve_images

    if samples < 2:
        raise ValueError(f"--uncertainty must be >= 2 to estimate a spread, got {samples}")
    in_images = [read_image(p) for p in resolve_images(in_inputs, split, limit)]
    sets: dict[str, list[XrayImage]] = {}
    if out_inputs:
        sets["given"] = [read_image(p) for p in resolve_images(out_inputs)]
    if synthetic:
        sets.update(synthetic_ood(in_images[:max_synthetic], seed=seed))
    if non_chest:
        sets.update(non_chest_images())
    ref_images = None
    if reference is not None:
        ref_paths = _reference_paths(Path(reference))
        if not ref_paths:
            raise ChexmaskError(f"--reference {reference}: no images found")
        ref_images = [read_image(p) for p in ref_paths]
    segmenter = Segmenter(weights, device=device, uncertainty=samples, seed=seed, batch_size=batch_size)
    result = run_ood(in_images, sets, segmenter, ref_images)
    info = getattr(segmenter, "info", {}) or {}
    meta = {"weights": str(weights), "weights_sha256": info.get("sha256", ""), "samples": samples, "seed": seed,
            "in_images": len(in_images), "reference_images": 0 if ref_images is None else len(ref_images),
            "ood_sets": {k: len(v) for k, v in sets.items()}}
    return replace(result, meta=meta)
