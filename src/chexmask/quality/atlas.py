"""The RCA atlas: reference images with expert masks, from one or several sources, cached.

An atlas is built from the train splits of JSRT-layout folders (JSRT, Montgomery,
Shenzhen...) and kept at a working resolution (256 px by default). Each reference has a
right lung, a left lung and, where its source annotates one, a heart.

Reference masks, in order of preference:

1. ``scr_masks/<ID>.npz`` (JSRT's SCR masks: ``right_lung``, ``left_lung``, ``heart``);
2. ``landmarks/<ID>.npz`` expert landmarks (``RL``, ``LL`` and, when annotated, ``H``)
   filled by :func:`chexmask.masks.fill.landmarks_to_masks`: per lung, and cleaner than
   a lungs-only source's own mask;
3. ``masks/<ID>.png`` (both lungs, 0/255), split into the right lung (the component on
   the image's left) and the left lung by connected components.

:func:`open_atlas` builds an atlas once, with a progress bar, and caches it under
:func:`chexmask._cache.cache_dir`, keyed by the sources (folder, split and its ids), the working size and
the SHA256 of the model whose latents pick the references; later runs load it in about
a second.

Masks are ``(S, S)`` bool arrays in the working frame: the image padded to a square and
resized like the model input (:func:`chexmask.preprocess.pad_resize`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from chexmask._cache import cache_dir
from chexmask._errors import ChexmaskError, InputError
from chexmask.anatomy import ORGANS
from chexmask.io.layout import expert_masks, find_image, load_landmarks_npz, read_split
from chexmask.preprocess import pad_resize

__all__ = ["Atlas", "build_atlas", "open_atlas", "atlas_cache_path"]

log = logging.getLogger(__name__)

#: Organs of an atlas, in mask order; the heart may be missing from a reference.
_FORMAT = "chexmask-rca-atlas-2"
_Sources = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


@dataclass
class Atlas:
    """Reference images with expert masks at a working resolution.

    Attributes
    ----------
    ids : list of str
    sources : list of str
        Source (folder name) of each reference.
    images : (N, S, S) uint8 ndarray
        Padded and resized images.
    masks : (N, 3, S, S) bool ndarray
        Right lung, left lung and heart (:data:`ORGANS`); the heart is empty where
        ``has_heart`` is False.
    has_heart : (N,) bool ndarray
        Whether the reference's source annotates the heart.
    latent : (N, D) float32 ndarray or None
        Latent means of the model named by ``model_sha256``.
    model_sha256 : str or None
        SHA256 of the weights that produced ``latent``.
    """

    ids: list[str]
    sources: list[str]
    images: np.ndarray
    masks: np.ndarray
    has_heart: np.ndarray
    latent: np.ndarray | None = None
    model_sha256: str | None = None

    @property
    def size(self) -> int:
        """Side of the working frame, pixels."""
        return int(self.images.shape[1])

    def __len__(self) -> int:
        return len(self.ids)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the atlas to a compressed ``.npz`` file (masks bit-packed), atomically."""
        path = Path(path)
        extra = {} if self.latent is None else {"latent": self.latent, "model_sha256": np.array(self.model_sha256 or "")}
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
        np.savez_compressed(
            tmp,
            format=np.array(_FORMAT),
            ids=np.array(self.ids),
            sources=np.array(self.sources),
            images=self.images,
            masks=np.packbits(self.masks, axis=-1),
            has_heart=self.has_heart,
            **extra,
        )
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Atlas:
        """Read an atlas written by :meth:`save`.

        Raises
        ------
        InputError
            If the file is missing or not an atlas of this version.
        """
        path = Path(path)
        if not path.is_file():
            raise InputError(path, "atlas file not found")
        try:
            with np.load(path, allow_pickle=False) as d:
                if "format" not in d.files or str(d["format"]) != _FORMAT:
                    raise InputError(path, f"not an RCA atlas of this version (expected format {_FORMAT!r}); rebuild it: give the source folders instead")
                images = d["images"]
                latent = d["latent"].astype(np.float32) if "latent" in d.files else None
                return cls(
                    ids=[str(i) for i in d["ids"]],
                    sources=[str(s) for s in d["sources"]],
                    images=images,
                    masks=np.unpackbits(d["masks"], axis=-1, count=images.shape[-1]).astype(bool),
                    has_heart=d["has_heart"].astype(bool),
                    latent=latent,
                    model_sha256=(str(d["model_sha256"]) or None) if latent is not None else None,
                )
        except InputError:
            raise
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(path, f"cannot read atlas: {exc}") from exc


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Pad/resize a mask like its image; area-average, then threshold at one half."""
    return pad_resize((np.asarray(mask) != 0).astype(np.uint8) * 255, size)[0] > 127


def _split_lungs(both: np.ndarray, source: Path) -> dict[str, np.ndarray]:
    """Right lung (on the image's left) and left lung: the two largest components of a lungs mask."""
    n, labels, stats, centroids = cv2.connectedComponentsWithStats((both > 0).astype(np.uint8), connectivity=8)
    if n < 3:
        raise InputError(source, f"lungs mask has {n - 1} connected component(s); expected the two lungs")
    two = 1 + np.argsort(-stats[1:, cv2.CC_STAT_AREA])[:2]
    right, left = sorted(two, key=lambda c: centroids[c, 0])
    return {"right_lung": labels == right, "left_lung": labels == left}


def _reference_masks(folder: Path, image_id: str, height: int, width: int) -> dict[str, np.ndarray]:
    """The expert masks of one reference, in the order of preference above (``heart`` absent when not annotated)."""
    expert = expert_masks(folder, image_id, missing_ok=True)
    if expert and "lungs" not in expert:  # SCR: one mask per organ
        return {o: expert[o] for o in ORGANS if o in expert}
    landmarks = folder / "landmarks" / f"{image_id}.npz"
    if landmarks.is_file():
        from chexmask.masks.fill import landmarks_to_masks

        with np.load(landmarks) as d:
            has_heart = "H" in d.files
        masks = landmarks_to_masks(load_landmarks_npz(landmarks), height, width)
        return masks if has_heart else {o: masks[o] for o in ORGANS[:2]}
    if "lungs" in expert:  # a lungs-only source's mask of both lungs
        both, png = expert["lungs"], folder / "masks" / f"{image_id}.png"
        if both.shape != (height, width):
            raise InputError(png, f"mask is {both.shape[0]}x{both.shape[1]} but its image is {height}x{width}")
        return _split_lungs(both, png)
    raise InputError(folder / "images" / image_id, "no expert masks for this reference (scr_masks/, landmarks/ or masks/)")


def _folders(sources: _Sources) -> list[Path]:
    """Source folders from a path, a list of paths, or one string of comma-separated paths."""
    items = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    folders = [Path(p.strip()) for item in items for p in str(os.fspath(item)).split(",") if p.strip()]
    if not folders:
        raise InputError(str(sources), "no atlas source given")
    return folders


def build_atlas(sources: _Sources, segmenter=None, split: str = "train", size: int = 256, progress: bool | None = False) -> Atlas:
    """Build an RCA atlas from one or several JSRT-layout folders.

    Parameters
    ----------
    sources : str, path-like or sequence of them
        Folders with ``images/``, ``splits/{split}.txt`` and expert masks (see the module
        notes); a string may list several, comma-separated.
    segmenter : chexmask.Segmenter, optional
        Computes the latent means used to choose references (``embedding="latent"``).
    split : str
        Which split to use as references; never the split you validate on.
    size : int
        Working resolution.
    progress : bool or None
        Show a progress bar (None: only on a terminal).

    Returns
    -------
    Atlas

    Raises
    ------
    InputError
        If a folder lacks the split file, an image or its masks.
    """
    from tqdm.auto import tqdm

    from chexmask.io.read import read_image

    items = [(folder, image_id) for folder in _folders(sources) for image_id in read_split(folder, split)]
    n = len(items)
    images = np.empty((n, size, size), np.uint8)
    masks = np.zeros((n, len(ORGANS), size, size), bool)
    has_heart = np.zeros(n, bool)
    latent = []
    for i, (folder, image_id) in enumerate(tqdm(items, desc="RCA atlas", unit="img", disable=None if progress is None else not progress)):
        try:
            image = read_image(find_image(folder, image_id))
        except InputError:
            raise
        except ChexmaskError as exc:  # no image file for an id of the split
            raise InputError(folder / "images" / image_id, str(exc)) from exc
        images[i] = pad_resize(image.pixels, size)[0]
        found = _reference_masks(folder, image_id, image.height, image.width)
        for j, organ in enumerate(ORGANS):
            if organ in found:
                masks[i, j] = resize_mask(found[organ], size)
        has_heart[i] = "heart" in found
        if segmenter is not None:
            latent.append(latent_mean(segmenter, image.pixels))
    ids, names = [image_id for _, image_id in items], [folder.name for folder, _ in items]
    if segmenter is None:
        return Atlas(ids, names, images, masks, has_heart)
    return Atlas(ids, names, images, masks, has_heart, np.stack(latent), segmenter.info["sha256"])


def latent_mean(segmenter, pixels: np.ndarray) -> np.ndarray:
    """The model's latent mean ``mu`` of one image (any size: padded and resized first)."""
    import torch

    x, _ = pad_resize(pixels, segmenter.input_size)
    t = torch.from_numpy(x.astype(np.float32) / 255.0)[None, None].to(segmenter.device)
    with torch.inference_mode():
        mu = segmenter.net.encode(t)[0]  # the network segment runs (OpenVINO or torch), so atlas and query latents agree
    return mu[0].cpu().numpy().astype(np.float32)


def atlas_cache_path(sources: _Sources, model_sha256: str | None, split: str = "train", size: int = 256) -> Path:
    """Where :func:`open_atlas` caches the atlas of these sources and this model.

    The key hashes the atlas format, the working size, the split, each source's
    resolved folder and its split's ids, and the model SHA256 (``None``: no latents).
    A new model, another split or an edited split file gives a new file; images
    replaced in place under the same ids do not (delete the cache then).
    """
    key = {"format": _FORMAT, "size": size, "split": split, "model": model_sha256,
           "sources": [[str(folder.resolve()), read_split(folder, split)] for folder in _folders(sources)]}
    digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:20]
    return cache_dir() / "rca" / f"atlas-{digest}.npz"


def open_atlas(source: _Sources, segmenter=None, *, cache: bool = True, progress: bool | None = None) -> Atlas:
    """An atlas from a prebuilt ``.npz`` file, or from source folders (built once, then cached).

    Parameters
    ----------
    source : str, path-like or sequence of them
        An atlas ``.npz`` (:meth:`Atlas.save`), or one or several JSRT-layout folders
        (a string may list several, comma-separated), whose train splits become the
        references.
    segmenter : chexmask.Segmenter, optional
        Computes the latents when building; its SHA256 is part of the cache key.
    cache : bool
        Read and write the cache (:func:`atlas_cache_path`); False always builds.
    progress : bool or None
        Progress bar while building (None: only on a terminal).

    Returns
    -------
    Atlas

    Raises
    ------
    InputError
        A missing or foreign ``.npz``, or a folder that cannot be used (see
        :func:`build_atlas`).

    Examples
    --------
    >>> atlas = open_atlas("jsrt/,montgomery/,shenzhen/", Segmenter())   # doctest: +SKIP
    """
    folders = _folders(source)
    if len(folders) == 1 and not folders[0].is_dir():
        return Atlas.load(folders[0])
    sha = None if segmenter is None else segmenter.info["sha256"]
    path = atlas_cache_path(folders, sha) if cache else None
    if path is not None and path.is_file():
        try:
            atlas = Atlas.load(path)
            log.info("RCA atlas from the cache %s (%d references)", path, len(atlas))
            return atlas
        except InputError as exc:  # a truncated or foreign file: rebuild over it
            log.warning("ignoring the cached atlas: %s", exc)
    atlas = build_atlas(folders, segmenter, progress=progress)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atlas.save(path)
            log.info("RCA atlas of %d references cached at %s", len(atlas), path)
        except OSError as exc:  # a read-only home: still usable, just not cached
            log.warning("cannot cache the RCA atlas at %s: %s", path, exc)
    return atlas
