"""Reverse classification accuracy (RCA): estimate a segmentation's Dice without ground truth.

For a query image and its predicted masks, RCA picks the ``k`` reference images of an
atlas (images with expert masks) that look most alike, registers the query onto each
(affine, then deformable: :mod:`chexmask.quality.registration`), carries the predicted
masks into each reference's frame and scores them with Dice against the reference's
expert masks. If the prediction is good, at least one well-registered reference agrees
with it; the mean and the max over the ``k`` references estimate the true Dice.

Conventions
-----------
- Everything runs at the atlas's working resolution (256 px by default): the query
  image and masks are padded to a square and resized like the model input
  (:func:`chexmask.preprocess.pad_resize`).
- Two structures are scored: **lungs** (right and left lung united) and **heart**. The
  overall score of one reference is the mean of the two Dice values; ``mean`` and
  ``max`` are taken over the ``k`` references of that overall score (and per organ).
- References are chosen by the cosine similarity of the segmentation model's latent
  mean ``mu`` (``embedding="latent"``) or of a 32 x 32 equalised thumbnail
  (``embedding="image"``, no model needed).
- Masks are ``(H, W)`` arrays in the original image frame, nonzero = foreground.

References
----------
Valindria et al., "Reverse classification accuracy: predicting segmentation performance
in the absence of ground truth", IEEE TMI 2017, doi:10.1109/TMI.2017.2665165.
Gaggion et al., "CheXmask", Scientific Data 2024, doi:10.1038/s41597-024-03358-1.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from chexmask._errors import InputError
from chexmask.io.read import XrayImage
from chexmask.preprocess import pad_resize
from chexmask.quality.registration import METHODS, prepare, register, warp_mask

__all__ = [
    "Atlas",
    "RCAResult",
    "RCAScorer",
    "build_atlas",
    "open_atlas",
    "score_segmentation",
    "STRUCTURES",
    "EMBEDDINGS",
]

log = logging.getLogger(__name__)

#: Structures RCA scores, in column order.
STRUCTURES: tuple[str, ...] = ("lungs", "heart")
#: Ways to choose the references.
EMBEDDINGS: tuple[str, ...] = ("latent", "image")
_ORGANS = ("right_lung", "left_lung", "heart")
_ATLAS_FORMAT = "chexmask-rca-atlas-1"
_THUMB = 32


@dataclass
class Atlas:
    """Reference images with expert masks at a working resolution.

    Attributes
    ----------
    ids : list of str
    images : (N, S, S) uint8 ndarray
        Padded and resized images.
    lungs, heart : (N, S, S) bool ndarray
        Expert masks (lungs = right | left).
    latent : (N, D) float32 ndarray or None
        Latent means of the model named by ``model_sha256``.
    model_sha256 : str or None
        SHA256 of the weights that produced ``latent``.
    """

    ids: list[str]
    images: np.ndarray
    lungs: np.ndarray
    heart: np.ndarray
    latent: np.ndarray | None = None
    model_sha256: str | None = None

    @property
    def size(self) -> int:
        """Side of the working frame, pixels."""
        return int(self.images.shape[1])

    def __len__(self) -> int:
        return len(self.ids)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the atlas to a compressed ``.npz`` file (masks bit-packed)."""
        extra = {} if self.latent is None else {"latent": self.latent, "model_sha256": np.array(self.model_sha256 or "")}
        np.savez_compressed(
            path,
            format=np.array(_ATLAS_FORMAT),
            ids=np.array(self.ids),
            images=self.images,
            lungs=np.packbits(self.lungs, axis=-1),
            heart=np.packbits(self.heart, axis=-1),
            **extra,
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Atlas:
        """Read an atlas written by :meth:`save`.

        Raises
        ------
        InputError
            If the file is missing or not an RCA atlas.
        """
        path = Path(path)
        if not path.is_file():
            raise InputError(path, "atlas file not found")
        try:
            with np.load(path, allow_pickle=False) as d:
                if "format" not in d.files or str(d["format"]) != _ATLAS_FORMAT:
                    raise InputError(path, f"not an RCA atlas (expected format {_ATLAS_FORMAT!r}); build one with build_atlas")
                images = d["images"]
                s = images.shape[-1]
                latent = d["latent"].astype(np.float32) if "latent" in d.files else None
                return cls(
                    ids=[str(i) for i in d["ids"]],
                    images=images,
                    lungs=np.unpackbits(d["lungs"], axis=-1, count=s).astype(bool),
                    heart=np.unpackbits(d["heart"], axis=-1, count=s).astype(bool),
                    latent=latent,
                    model_sha256=(str(d["model_sha256"]) or None) if latent is not None else None,
                )
        except InputError:
            raise
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(path, f"cannot read atlas: {exc}") from exc


def _resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Pad/resize a mask like its image; area-average then threshold at one half."""
    return pad_resize((np.asarray(mask) != 0).astype(np.uint8) * 255, size)[0] > 127


def _reference_masks(jsrt_dir: Path, image_id: str, height: int, width: int) -> dict[str, np.ndarray]:
    scr = jsrt_dir / "scr_masks" / f"{image_id}.npz"
    if scr.is_file():
        with np.load(scr) as d:
            return {o: d[o] for o in _ORGANS}
    from chexmask.masks.fill import landmarks_to_masks
    from chexmask.model.data import load_landmarks_npz

    lm = jsrt_dir / "landmarks" / f"{image_id}.npz"
    if not lm.is_file():
        raise InputError(scr, "no SCR mask and no expert landmarks for this reference image")
    return landmarks_to_masks(load_landmarks_npz(lm), height, width)


def build_atlas(jsrt_dir: str | os.PathLike[str], segmenter=None, split: str = "train", size: int = 256) -> Atlas:
    """Build an RCA atlas from a JSRT-layout folder.

    Parameters
    ----------
    jsrt_dir : str or path-like
        Folder with ``images/``, ``splits/{split}.txt`` and ``scr_masks/`` (SCR masks,
        keys ``right_lung``, ``left_lung``, ``heart``) or, failing those,
        ``landmarks/`` (expert landmarks, filled).
    segmenter : chexmask.Segmenter, optional
        Computes the latent means used to choose references (``embedding="latent"``).
    split : str
        Which split to use as references; never the split you validate on.
    size : int
        Working resolution.

    Returns
    -------
    Atlas

    Raises
    ------
    InputError
        If the folder lacks the split file, an image or its masks.
    """
    from chexmask.io.read import read_image
    from chexmask.model.data import read_split

    jsrt_dir = Path(jsrt_dir)
    split_file = jsrt_dir / "splits" / f"{split}.txt"
    if not split_file.is_file():
        raise InputError(jsrt_dir, f"not a JSRT-layout folder: {split_file} is missing")
    ids = read_split(jsrt_dir, split)
    images = np.empty((len(ids), size, size), np.uint8)
    lungs = np.empty((len(ids), size, size), bool)
    heart = np.empty((len(ids), size, size), bool)
    latent = []
    for i, image_id in enumerate(ids):
        image = read_image(jsrt_dir / "images" / f"{image_id}.png")
        images[i] = pad_resize(image.pixels, size)[0]
        masks = _reference_masks(jsrt_dir, image_id, image.height, image.width)
        lungs[i] = _resize_mask(np.logical_or(masks["right_lung"], masks["left_lung"]), size)
        heart[i] = _resize_mask(masks["heart"], size)
        if segmenter is not None:
            latent.append(_latent(segmenter, image.pixels))
    if segmenter is None:
        return Atlas(ids, images, lungs, heart)
    return Atlas(ids, images, lungs, heart, np.stack(latent), segmenter.info["sha256"])


def open_atlas(source: str | os.PathLike[str], segmenter=None) -> Atlas:
    """An atlas from a prebuilt ``.npz`` file or a JSRT folder (built on the fly)."""
    source = Path(source)
    if source.is_dir():
        return build_atlas(source, segmenter)
    return Atlas.load(source)


def _latent(segmenter, pixels: np.ndarray) -> np.ndarray:
    import torch

    x, _ = pad_resize(pixels, segmenter.input_size)
    t = torch.from_numpy(x.astype(np.float32) / 255.0)[None, None].to(segmenter.device)
    with torch.inference_mode():
        mu = segmenter.model.encode(t)[0]
    return mu[0].cpu().numpy().astype(np.float32)


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
        Mean and max over the references of the per-reference score (mean of lungs
        and heart Dice).
    per_organ : dict
        ``{"lungs": {"mean": .., "max": ..}, "heart": {...}}``.
    references : list of str
        Ids of the references used, most similar first.
    dice : (k, 2) ndarray
        Dice of lungs and heart against each reference.
    """

    mean: float
    max: float
    per_organ: dict[str, dict[str, float]]
    references: list[str]
    dice: np.ndarray = field(repr=False)

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
    atlas : Atlas
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

    Raises
    ------
    ValueError
        Unknown embedding or method, ``k`` outside ``1..len(atlas)``, or
        ``embedding="latent"`` without a segmenter.

    Examples
    --------
    >>> scorer = RCAScorer(open_atlas("jsrt/"), embedding="image")   # doctest: +SKIP
    >>> scorer.score(read_image("x.png"), masks).mean                 # doctest: +SKIP
    0.93
    """

    def __init__(self, atlas: Atlas, k: int = 5, segmenter=None, embedding: str = "latent", method: str = "affine+dis") -> None:
        if embedding not in EMBEDDINGS:
            raise ValueError(f"unknown embedding {embedding!r}; expected one of {list(EMBEDDINGS)}")
        if method not in METHODS:
            raise ValueError(f"unknown registration method {method!r}; expected one of {list(METHODS)}")
        if not 1 <= k <= len(atlas):
            raise ValueError(f"k must be between 1 and the atlas size {len(atlas)}, got {k}")
        if embedding == "latent" and segmenter is None:
            raise ValueError("embedding='latent' needs a segmenter (or use embedding='image')")
        self.atlas, self.k, self.segmenter, self.embedding, self.method = atlas, k, segmenter, embedding, method
        if embedding == "latent":
            sha = segmenter.info["sha256"]
            if atlas.latent is None or atlas.model_sha256 != sha:
                log.info("computing atlas latents with model %s", sha[:12])
                atlas.latent = np.stack([_latent(segmenter, im) for im in atlas.images])
                atlas.model_sha256 = sha
            self._keys = _unit(atlas.latent.astype(np.float64))
        else:
            self._keys = _unit(np.stack([_thumbnail(im) for im in atlas.images]).astype(np.float64))
        self._prepared: dict[int, np.ndarray] = {}

    def references(self, image: np.ndarray, latent: np.ndarray | None = None) -> np.ndarray:
        """Indices of the ``k`` most similar atlas images, most similar first.

        ``image`` is the working-resolution query; ``latent`` its latent mean when known.
        """
        if self.embedding == "latent":
            query = latent if latent is not None else _latent(self.segmenter, image)
            if np.shape(query) != self._keys.shape[1:]:
                raise ValueError(f"latent has shape {np.shape(query)}, the atlas's latents have {self._keys.shape[1:]}")
        else:
            query = _thumbnail(image)
        sim = self._keys @ _unit(np.asarray(query, np.float64))
        return np.argsort(-sim, kind="stable")[: self.k]

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
        dice = np.empty((len(sets), len(refs), 2))
        for j, r in enumerate(refs):
            warp = register(self._reference_image(int(r)), moving, self.method, prepared=True)
            for i, (lungs, heart) in enumerate(sets):
                dice[i, j, 0] = _dice(warp_mask(lungs, warp), self.atlas.lungs[r])
                dice[i, j, 1] = _dice(warp_mask(heart, warp), self.atlas.heart[r])
        ids = [self.atlas.ids[r] for r in refs]
        return [_result(d, ids) for d in dice]


def _working_masks(name: str, shape: tuple[int, int], masks: dict[str, np.ndarray], size: int) -> tuple[np.ndarray, np.ndarray]:
    checked = {}
    for organ in _ORGANS:
        if organ not in masks:
            raise InputError(name, f"no {organ} mask (expected keys {list(_ORGANS)})")
        m = np.asarray(masks[organ])
        if m.shape != shape:
            got = "x".join(map(str, m.shape))
            raise InputError(name, f"{organ} mask is {got} but the image is {shape[0]}x{shape[1]}")
        if not m.any():
            raise InputError(name, f"{organ} mask is empty")
        checked[organ] = m != 0
    lungs = _resize_mask(checked["right_lung"] | checked["left_lung"], size)
    return lungs, _resize_mask(checked["heart"], size)


def _result(dice: np.ndarray, ids: list[str]) -> RCAResult:
    overall = dice.mean(axis=1)
    per_organ = {s: {"mean": float(dice[:, i].mean()), "max": float(dice[:, i].max())} for i, s in enumerate(STRUCTURES)}
    return RCAResult(float(overall.mean()), float(overall.max()), per_organ, ids, dice)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(np.count_nonzero(a)) + int(np.count_nonzero(b))
    return 1.0 if total == 0 else 2.0 * int(np.count_nonzero(a & b)) / total


def score_segmentation(scorer: RCAScorer, image: XrayImage, segmentation) -> dict[str, float]:
    """RCA columns for one result of the segment pipeline (the ``segment --rca`` hook).

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
