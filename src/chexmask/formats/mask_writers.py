"""The mask writers: one image's organ masks in, files out (PNG, NPZ, NIfTI, COCO).

Each writer of :data:`WRITERS` writes every organ as its own mask (the lungs and the
heart overlap in CheXmask, so none is merged into one label image); its docstring
gives its file layout (``docs/database.md`` has them in a table). :func:`coco_rle` is
COCO's compressed RLE, the segmentation of the COCO writer. Decoding a table's rows
and running the writers in parallel is :mod:`chexmask.formats.masks_export`.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

__all__ = [
    "WRITERS",
    "MaskWriter",
    "get_writer",
    "coco_rle",
]


class MaskWriter:
    """Base class of the writers: one image's masks in, files out.

    ``write`` runs in the worker processes (one writer per worker); ``add`` and
    ``finish`` run in the main process, ``add`` once per written image in table
    order. Subclasses set ``name`` and are listed in :data:`WRITERS`.

    Parameters
    ----------
    out_dir : pathlib.Path
        The output folder.
    organs : sequence of str
        Organ keys (from :data:`chexmask.anatomy.ORGANS`) being written, in order.
    """

    name: ClassVar[str] = ""

    def __init__(self, out_dir: Path, organs: Sequence[str]) -> None:
        self.out_dir = Path(out_dir)
        self.organs = tuple(organs)

    def write(self, stem: str, image_id: str, masks: dict[str, np.ndarray]) -> Any:
        """Write one image's ``(H, W)`` uint8 {0, 255} masks; return what ``add`` needs."""
        raise NotImplementedError

    def add(self, image_id: str, payload: Any) -> None:
        """Record a written image (main process, table order)."""

    def finish(self) -> None:
        """Complete the output after the last image (main process)."""

    def _path(self, *parts: str) -> Path:
        path = self.out_dir.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


class PngWriter(MaskWriter):
    """``ORGAN/ID.png``: single-channel 8-bit, 255 = organ (as the database's RLE)."""

    name = "png"

    def write(self, stem, image_id, masks):
        import cv2

        for organ, mask in masks.items():
            path = self._path(organ, stem + ".png")
            if not cv2.imwrite(str(path), mask):
                raise OSError(f"cannot write {path}")


class NpzWriter(MaskWriter):
    """``ID.npz``: compressed, one ``(H, W)`` uint8 {0, 255} array per organ key."""

    name = "npz"

    def write(self, stem, image_id, masks):
        np.savez_compressed(self._path(stem + ".npz"), **masks)


class NiftiWriter(MaskWriter):
    """``ORGAN/ID.nii.gz``: uint8 {0, 1} label map of array shape (W, H)."""

    name = "nifti"

    def __init__(self, out_dir, organs):
        super().__init__(out_dir, organs)
        try:
            import nibabel  # noqa: F401
        except ImportError as err:
            raise ImportError("the nifti format needs nibabel: pip install chexmask[nifti]") from err

    def write(self, stem, image_id, masks):
        import nibabel as nib

        for organ, mask in masks.items():
            # NIfTI's first axis is x (column): the transpose matches what ITK
            # readers and writers do with a 2-D image.
            data = np.ascontiguousarray(mask.T != 0, dtype=np.uint8)
            nib.save(nib.Nifti1Image(data, np.eye(4)), self._path(organ, stem + ".nii.gz"))


class CocoWriter(MaskWriter):
    """``annotations.json`` in the COCO format with compressed RLE segmentations.

    Images and annotations are spooled to two line files while the export runs
    and joined at the end, so memory does not grow with the table.
    """

    name = "coco"
    filename: ClassVar[str] = "annotations.json"

    def __init__(self, out_dir, organs):
        super().__init__(out_dir, organs)
        self._spool: dict[str, Any] = {}
        self._n_images = self._n_annotations = 0

    def write(self, stem, image_id, masks):
        out = [(o, coco_rle(m), *_area_bbox(m)) for o, m in masks.items() if m.any()]
        return (*next(iter(masks.values())).shape, out)

    def _spool_file(self, key: str):
        if key not in self._spool:
            self._spool[key] = open(self._path(f".{self.filename}.{key}"), "w", encoding="utf-8")
        return self._spool[key]

    def add(self, image_id, payload):
        height, width, annotations = payload
        self._n_images += 1
        image = {"id": self._n_images, "file_name": image_id, "height": height, "width": width}
        images = self._spool_file("images")
        images.write(("" if self._n_images == 1 else ",\n") + json.dumps(image))
        spool = self._spool_file("annotations")
        for organ, rle, area, bbox in annotations:
            self._n_annotations += 1
            entry = {
                "id": self._n_annotations, "image_id": self._n_images,
                "category_id": self.organs.index(organ) + 1, "segmentation": rle,
                "area": area, "bbox": bbox, "iscrowd": 0,
            }
            spool.write(("" if self._n_annotations == 1 else ",\n") + json.dumps(entry))

    def finish(self):
        for key in ("images", "annotations"):
            self._spool_file(key).close()
        categories = [
            {"id": i + 1, "name": organ, "supercategory": "anatomy"}
            for i, organ in enumerate(self.organs)
        ]
        target = self._path(self.filename)
        tmp = target.with_name(f".{self.filename}.partial")
        with open(tmp, "w", encoding="utf-8") as out:
            out.write('{"info": {"description": "CheXmask masks", "version": "1.0"},\n')
            for key in ("images", "annotations"):
                out.write(f'"{key}": [\n')
                with open(self._spool[key].name, encoding="utf-8") as part:
                    while block := part.read(1 << 20):
                        out.write(block)
                out.write("\n],\n")
            out.write(f'"categories": {json.dumps(categories)}}}\n')
        os.replace(tmp, target)
        for handle in self._spool.values():
            Path(handle.name).unlink(missing_ok=True)


#: Output format name -> writer class.
WRITERS: dict[str, type[MaskWriter]] = {w.name: w for w in (PngWriter, NpzWriter, NiftiWriter, CocoWriter)}


def get_writer(name: str) -> type[MaskWriter]:
    """The writer class registered under ``name``.

    Raises
    ------
    ValueError
        If ``name`` is not in :data:`WRITERS`; the message suggests the closest.

    Examples
    --------
    >>> get_writer("npz").__name__
    'NpzWriter'
    >>> get_writer("nii")
    Traceback (most recent call last):
    ...
    ValueError: unknown mask format 'nii'; choose one of png, npz, nifti, coco (did you mean 'nifti'?)
    """
    if name in WRITERS:
        return WRITERS[name]
    close = difflib.get_close_matches(str(name), list(WRITERS), n=1, cutoff=0.5)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(f"unknown mask format {name!r}; choose one of {', '.join(WRITERS)}{hint}")


def coco_rle(mask: np.ndarray) -> dict[str, Any]:
    """Encode a mask as COCO compressed RLE (as ``pycocotools.mask.encode`` does).

    Parameters
    ----------
    mask : (H, W) array_like
        Non-zero is foreground.

    Returns
    -------
    dict
        ``{"size": [H, W], "counts": str}``: run lengths in column-major (Fortran)
        order, starting with a background run, in COCO's LEB128-like text form.

    Examples
    --------
    >>> coco_rle(np.array([[0, 1], [1, 1]]))
    {'size': [2, 2], 'counts': '13'}
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {mask.shape}")
    flat = mask.ravel(order="F") != 0
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.concatenate(([0], changes, [flat.size]))).tolist()
    if flat.size and flat[0]:
        counts.insert(0, 0)
    chars = []
    for i, count in enumerate(counts):
        x = count - counts[i - 2] if i > 2 else count
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            chars.append(chr((c | 0x20 if more else c) + 48))
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": "".join(chars)}


def _area_bbox(mask: np.ndarray) -> tuple[int, list[float]]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    x, y = float(cols[0]), float(rows[0])
    return int(np.count_nonzero(mask)), [x, y, float(cols[-1]) + 1 - x, float(rows[-1]) + 1 - y]
