"""Reverse classification accuracy (RCA): estimate a segmentation's Dice without ground truth.

For a query image and its predicted masks, RCA picks the ``k`` reference images of an
atlas (:mod:`chexmask.quality.atlas`: images with expert masks) that look most alike,
registers the query onto each (affine, then deformable:
:mod:`chexmask.quality.registration`), carries the predicted masks into each
reference's frame and scores them with Dice against the reference's expert masks. If
the prediction is good, well-registered references agree with it; the mean and the max
over the references estimate the true Dice.

Conventions
-----------
- Everything runs at the atlas's working resolution (256 px by default): the query
  image and masks are padded to a square and resized like the model input
  (:func:`chexmask.preprocess.pad_resize`).
- Three organs are scored, as the true mean Dice counts them: right lung, left lung and
  heart. **Lungs** is the mean of the two lungs' Dice; the overall score is
  ``(2 * lungs + heart) / 3``, the mean over the three organs. ``mean`` and ``max`` are
  taken per structure over the references that annotate it (the heart only over
  references whose source annotates it), then combined.
- A reference whose registration failed (:attr:`~chexmask.quality.registration.Warp.ncc`
  below ``min_ncc``) is left out, unless all are (then the best-registered one is kept).
- References are chosen by the cosine similarity of the segmentation model's latent
  mean ``mu`` (``embedding="latent"``) or of a 32 x 32 equalised thumbnail
  (``embedding="image"``, no model needed); at least ``ceil(k / 2)`` of the ``k``
  annotate the heart (the most similar such ones replace the least similar others).
- Masks are ``(H, W)`` arrays in the original image frame, nonzero = foreground.

References
----------
Valindria et al., "Reverse classification accuracy: predicting segmentation performance
in the absence of ground truth", IEEE TMI 2017, doi:10.1109/TMI.2017.2665165.
Gaggion et al., "CheXmask", Scientific Data 2024, doi:10.1038/s41597-024-03358-1.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from chexmask._errors import InputError
from chexmask.anatomy import ORGANS
from chexmask.io.read import XrayImage
from chexmask.preprocess import pad_resize
from chexmask.quality.atlas import (
    Atlas,
    build_atlas,
    latent_mean,
    open_atlas,
    resize_mask,
)
from chexmask.quality.metrics import dice as mask_dice
from chexmask.quality.registration import METHODS, prepare, register, warp_mask

__all__ = [
    "RCAResult",
    "RCAScorer",
    "score_segmentation",
    "STRUCTURES",
    "EMBEDDINGS",
    # the atlas lives in chexmask.quality.atlas; here for the segment pipeline's imports
    "Atlas",
    "build_atlas",
    "open_atlas",
]

log = logging.getLogger(__name__)

#: Structures of the per-organ scores, in column order.
STRUCTURES: tuple[str, ...] = ("lungs", "heart")
#: Ways to choose the references.
EMBEDDINGS: tuple[str, ...] = ("latent", "image")
#: Registrations with a normalised cross-correlation below this are failures (good ones
#: score 0.7-0.99; failed ones, with near-zero Dice for perfect masks, -0.1-0.45).
MIN_NCC = 0.5
_THUMB = 32


def _thumbnail(image: np.ndarray) -> np.ndarray:
    t = cv2.resize(cv2.equalizeHist(image), (_THUMB, _THUMB), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
    return t - t.mean()


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


@dataclass
class RCAResult:
    """RCA estimate of one segmentation.

    Attributes
    ----------
    mean, max : float
        ``(2 * lungs + heart) / 3`` of the per-structure mean (max) over the references:
        the estimate of the mean Dice of the right lung, left lung and heart. Lungs only
        when no usable reference annotates the heart.
    per_organ : dict
        ``{"lungs": {"mean": .., "max": ..}, "heart": {...}}``; lungs is the mean of the
        two lungs' Dice; NaN for the heart when no usable reference annotates it.
    references : list of str
        Ids of the references used, most similar first.
    dice : (k, 3) ndarray
        Dice of the right lung, left lung and heart against each reference; NaN where
        the reference lacks the organ or its registration was left out.
    ncc : (k,) ndarray
        Registration quality of each reference (see :attr:`Warp.ncc`).
    """

    mean: float
    max: float
    per_organ: dict[str, dict[str, float]]
    references: list[str]
    dice: np.ndarray = field(repr=False)
    ncc: np.ndarray = field(repr=False)

    def columns(self) -> dict[str, float]:
        """Table columns, named as :meth:`column_names`: overall, then per organ."""
        values = [self.mean, self.max]
        for organ in STRUCTURES:
            values += [self.per_organ[organ]["mean"], self.per_organ[organ]["max"]]
        return dict(zip(self.column_names(), values))

    @staticmethod
    def column_names() -> list[str]:
        """``Dice RCA (Mean)``, ``Dice RCA (Max)``, ``Dice RCA Lungs (Mean)``, ... ``Dice RCA Heart (Max)``."""
        names = ["Dice RCA (Mean)", "Dice RCA (Max)"]
        for organ in STRUCTURES:
            names += [f"Dice RCA {organ.capitalize()} (Mean)", f"Dice RCA {organ.capitalize()} (Max)"]
        return names


class RCAScorer:
    """Score segmentations by reverse classification accuracy against an atlas.

    Parameters
    ----------
    atlas : chexmask.quality.atlas.Atlas
    k : int
        References per query (the reference system used 5).
    segmenter : chexmask.Segmenter, optional
        Needed for ``embedding="latent"``. If the atlas's latents come from other
        weights (or are absent) they are recomputed from the atlas images and stored
        in ``atlas`` (so :meth:`Atlas.save` keeps them).
    embedding : {"latent", "image"}
        How references are chosen (cosine similarity of the model's latent mean, or of
        an equalised 32 x 32 thumbnail).
    method : str
        Registration, one of :data:`chexmask.quality.registration.METHODS`.
    min_ncc : float
        Leave out references registered with a normalised cross-correlation below this
        (:data:`MIN_NCC`); ``-1`` keeps all.

    Raises
    ------
    ValueError
        Unknown embedding or method, ``k`` outside ``1..len(atlas)``, or
        ``embedding="latent"`` without a segmenter.

    Examples
    --------
    >>> scorer = RCAScorer(open_atlas("jsrt/,montgomery/,shenzhen/", seg), segmenter=seg)  # doctest: +SKIP
    >>> scorer.score(read_image("x.png"), masks).mean                                      # doctest: +SKIP
    0.93
    """

    def __init__(
        self, atlas: Atlas, k: int = 5, segmenter=None, embedding: str = "latent", method: str = "affine+dis", min_ncc: float = MIN_NCC
    ) -> None:
        if embedding not in EMBEDDINGS:
            raise ValueError(f"unknown embedding {embedding!r}; expected one of {list(EMBEDDINGS)}")
        if method not in METHODS:
            raise ValueError(f"unknown registration method {method!r}; expected one of {list(METHODS)}")
        if not 1 <= k <= len(atlas):
            raise ValueError(f"k must be between 1 and the atlas size {len(atlas)}, got {k}")
        if embedding == "latent" and segmenter is None:
            raise ValueError("embedding='latent' needs a segmenter (or use embedding='image')")
        self.atlas, self.k, self.segmenter, self.embedding, self.method = atlas, k, segmenter, embedding, method
        self.min_ncc = float(min_ncc)
        if embedding == "latent":
            sha = segmenter.info["sha256"]
            if atlas.latent is None or atlas.model_sha256 != sha:
                log.info("computing atlas latents with model %s", sha[:12])
                atlas.latent = np.stack([latent_mean(segmenter, im) for im in atlas.images])
                atlas.model_sha256 = sha
            self._keys = _unit(atlas.latent.astype(np.float64))
        else:
            self._keys = _unit(np.stack([_thumbnail(im) for im in atlas.images]).astype(np.float64))
        self._prepared: dict[int, np.ndarray] = {}

    def references(self, image: np.ndarray, latent: np.ndarray | None = None) -> np.ndarray:
        """Indices of the ``k`` references for a query, most similar first.

        ``image`` is the working-resolution query; ``latent`` its latent mean when known.
        At least ``ceil(k / 2)`` of them annotate the heart (when the atlas has that many).
        """
        if self.embedding == "latent":
            query = latent if latent is not None else latent_mean(self.segmenter, image)
            if np.shape(query) != self._keys.shape[1:]:
                raise ValueError(f"latent has shape {np.shape(query)}, the atlas's latents have {self._keys.shape[1:]}")
        else:
            query = _thumbnail(image)
        sim = self._keys @ _unit(np.asarray(query, np.float64))
        order = np.argsort(-sim, kind="stable")
        chosen = order[: self.k]
        has_heart = self.atlas.has_heart
        missing = min(math.ceil(self.k / 2), int(has_heart.sum())) - int(has_heart[chosen].sum())
        if missing > 0:
            extra = [i for i in order[self.k :] if has_heart[i]][:missing]
            drop = set([i for i in chosen[::-1] if not has_heart[i]][:missing])
            chosen = np.array(sorted([i for i in chosen if i not in drop] + extra, key=lambda i: -sim[i]))
        return chosen

    def _reference_image(self, index: int) -> np.ndarray:
        if index not in self._prepared:
            self._prepared[index] = prepare(self.atlas.images[index])
        return self._prepared[index]

    def score(self, image: XrayImage | np.ndarray, masks: dict[str, np.ndarray], latent: np.ndarray | None = None) -> RCAResult:
        """Estimate the Dice of one image's masks.

        Parameters
        ----------
        image : XrayImage or (H, W) uint8 ndarray
            The query image, original frame.
        masks : dict of str to (H, W) array_like
            ``right_lung``, ``left_lung`` and ``heart`` masks of the same size as the image.
        latent : (D,) ndarray, optional
            The query's latent mean from the same model (saves one encoder pass).

        Returns
        -------
        RCAResult

        Raises
        ------
        InputError
            A mask is missing, not of the image's size, or empty.
        """
        return self.score_many(image, [masks], latent)[0]

    def score_many(self, image: XrayImage | np.ndarray, masks: list[dict[str, np.ndarray]], latent: np.ndarray | None = None) -> list[RCAResult]:
        """Like :meth:`score` for several mask sets of one image; registers the image once."""
        pixels = image.pixels if isinstance(image, XrayImage) else np.asarray(image)
        name = image.image_id if isinstance(image, XrayImage) else "image"
        if pixels.ndim != 2 or pixels.dtype != np.uint8:
            raise InputError(name, f"image must be 2-D uint8 grayscale, got {pixels.dtype} {pixels.shape}")
        size = self.atlas.size
        sets = [_working_masks(name, pixels.shape, m, size) for m in masks]
        query = pad_resize(pixels, size)[0]
        moving = prepare(query)
        refs = self.references(query, latent)
        warps = [register(self._reference_image(int(r)), moving, self.method, prepared=True) for r in refs]
        ncc = np.array([w.ncc for w in warps])
        keep = ncc >= self.min_ncc
        if not keep.any():
            keep = ncc == ncc.max()
        dice = np.full((len(sets), len(refs), len(ORGANS)), np.nan)
        for j, (r, warp) in enumerate(zip(refs, warps)):
            if not keep[j]:
                continue
            organs = len(ORGANS) if self.atlas.has_heart[r] else 2
            for i, working in enumerate(sets):
                for o in range(organs):
                    dice[i, j, o] = mask_dice(warp_mask(working[o], warp), self.atlas.masks[r, o])
        ids = [self.atlas.ids[r] for r in refs]
        return [_result(d, ids, ncc) for d in dice]


def _working_masks(name: str, shape: tuple[int, int], masks: dict[str, np.ndarray], size: int) -> list[np.ndarray]:
    checked = []
    for organ in ORGANS:
        if organ not in masks:
            raise InputError(name, f"no {organ} mask (expected keys {list(ORGANS)})")
        m = np.asarray(masks[organ])
        if m.shape != shape:
            got = "x".join(map(str, m.shape))
            raise InputError(name, f"{organ} mask is {got} but the image is {shape[0]}x{shape[1]}")
        if not m.any():
            raise InputError(name, f"{organ} mask is empty")
        checked.append(resize_mask(m, size))
    return checked


def _result(dice: np.ndarray, ids: list[str], ncc: np.ndarray) -> RCAResult:
    lungs = dice[:, :2].mean(axis=1)  # NaN for references left out
    heart = dice[:, 2]
    per_organ = {}
    for organ, values in (("lungs", lungs), ("heart", heart)):
        values = values[~np.isnan(values)]
        per_organ[organ] = {"mean": float(values.mean()), "max": float(values.max())} if len(values) else {"mean": math.nan, "max": math.nan}
    overall = {}
    for stat in ("mean", "max"):
        lung, h = per_organ["lungs"][stat], per_organ["heart"][stat]
        overall[stat] = lung if math.isnan(h) else (2 * lung + h) / 3
    return RCAResult(overall["mean"], overall["max"], per_organ, ids, dice, ncc)


def score_segmentation(scorer: RCAScorer, image: XrayImage, segmentation) -> dict[str, float]:
    """RCA columns for one result of the segment pipeline (the ``segment --atlas`` hook).

    Parameters
    ----------
    scorer : RCAScorer
        Built with the same :class:`~chexmask.Segmenter` that produced ``segmentation``
        when ``embedding="latent"``: its latent mean is reused.
    image : XrayImage
        The image that was segmented.
    segmentation : chexmask.inference.segmenter.Segmentation

    Returns
    -------
    dict of str to float
        ``Dice RCA (Mean)``, ``Dice RCA (Max)``, ``Dice RCA Lungs (Mean)``, ``Dice RCA
        Lungs (Max)``, ``Dice RCA Heart (Mean)``, ``Dice RCA Heart (Max)``.

    Raises
    ------
    InputError
        If the segmentation has an empty organ mask.
    """
    if (segmentation.height, segmentation.width) != (image.height, image.width):
        raise InputError(image.image_id, f"segmentation is {segmentation.height}x{segmentation.width} but the image is {image.height}x{image.width}")
    latent = segmentation.latent_mu if scorer.embedding == "latent" else None
    return scorer.score(image, segmentation.masks(), latent=latent).columns()
