"""Reading a JSRT-layout source folder: its splits, its images by id, its landmark files, its expert masks.

A source folder (``../shared/data/jsrt``, ``montgomery``, ``shenzhen``) holds
``images/<ID>.png``, ``landmarks/<ID>.npz`` (the Chest X-ray Landmark dataset's keys, in
the stored image's frame), ``splits/{train,val,test}.txt`` and expert masks
(``scr_masks/<ID>.npz`` or ``masks/<ID>.png``). Training, validation, RCA atlases and the
experiments all read sources through this module.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from chexmask._errors import InputError
from chexmask.anatomy import ALL_NODE_COUNTS, ALL_ORGANS, ORGANS
from chexmask.io.read import read_image

__all__ = ["read_split", "find_image", "expert_masks", "load_landmarks_npz", "landmark_arrays"]

_NPZ_KEYS = {"right_lung": "RL", "left_lung": "LL", "heart": "H", "right_clavicle": "RCLA", "left_clavicle": "LCLA"}


def read_split(jsrt_dir: Path, split: str) -> list[str]:
    """Image ids of a split (``train``, ``val`` or ``test``) of a JSRT-layout folder."""
    path = Path(jsrt_dir) / "splits" / f"{split}.txt"
    if not path.exists():
        raise InputError(path, "no such split file (a JSRT-layout folder has splits/{train,val,test}.txt)")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def load_landmarks_npz(path: Path, organs: tuple[str, ...] = ORGANS) -> np.ndarray:
    """Read a landmark file into an ``(n_nodes, 2)`` array, NaN for organs it lacks.

    Keys are those of the Chest X-ray Landmark dataset: ``RL``, ``LL``, ``H``, ``RCLA``, ``LCLA``.
    """
    with np.load(path) as d:
        parts = [d[_NPZ_KEYS[o]] if _NPZ_KEYS[o] in d.files else np.full((ALL_NODE_COUNTS[o], 2), np.nan) for o in organs]
    return np.concatenate(parts).astype(np.float64)


def find_image(folder: Path, image_id: str) -> Path:
    """The image file of ``image_id`` in a JSRT-layout folder (``images/<ID>.png``, ``.jpg`` or ``.jpeg``)."""
    for suffix in (".png", ".jpg", ".jpeg"):
        if (path := folder / "images" / f"{image_id}{suffix}").exists():
            return path
    raise InputError(folder / "images", f"no image for id {image_id!r} listed in the split")


def expert_masks(folder: Path, image_id: str, *, missing_ok: bool = False) -> dict[str, np.ndarray]:
    """The expert masks of one image of a JSRT-layout folder, boolean, in the image's frame.

    ``scr_masks/<ID>.npz`` (JSRT's SCR masks) gives one mask per organ it holds, keyed by
    organ (``right_lung``, ``left_lung``, ``heart``, ``right_clavicle``, ``left_clavicle``);
    otherwise ``masks/<ID>.png`` (a lungs-only source's one mask of both lungs) gives
    ``{"lungs": ...}``, keyed by the organ group of :data:`chexmask.anatomy.ORGAN_GROUPS`.

    Raises
    ------
    InputError
        When the image has neither file (with ``missing_ok``: an empty dict instead), or
        the PNG cannot be read.
    """
    npz, png = Path(folder) / "scr_masks" / f"{image_id}.npz", Path(folder) / "masks" / f"{image_id}.png"
    if npz.is_file():
        with np.load(npz) as d:
            return {o: d[o].astype(bool, copy=False) for o in ALL_ORGANS if o in d.files}
    if png.is_file():
        return {"lungs": read_image(png).pixels > 0}
    if missing_ok:
        return {}
    raise InputError(Path(folder), f"no expert mask for {image_id} (scr_masks/{image_id}.npz or masks/{image_id}.png)")


def landmark_arrays(path: str | Path, organs: tuple[str, ...] = ORGANS) -> tuple[np.ndarray, np.ndarray]:
    """All landmark sets of a collection file (``all_landmarks.npz``: ``source`` and one ``(N, nodes, 2)`` array per organ key).

    Returns ``(shapes (N, n_nodes, 2) with NaN where an organ is not annotated, sources (N,))``.
    """
    with np.load(path) as d:
        shapes = np.concatenate([d[_NPZ_KEYS[o]] for o in organs], axis=1).astype(np.float64)
        return shapes, np.asarray(d["source"]).astype(str)
