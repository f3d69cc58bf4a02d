"""The OOD image sets of the OOD experiment: transformed chest X-rays and non-chest images.

Synthetic OOD sets made from the in-distribution images (:data:`TRANSFORMS`): horizontal
and vertical flips, 90-degree rotation, heavy crops (a random window of 35 % of each
side) and inverted contrast. Non-chest images: scikit-image's bundled sample
photographs and micrographs, and pydicom's bundled example CT and MR slices.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence

import numpy as np

from chexmask._errors import ChexmaskError
from chexmask.inference.plan import image_row_id
from chexmask.io.read import XrayImage

__all__ = ["TRANSFORMS", "synthetic_ood", "non_chest_images"]

log = logging.getLogger(__name__)

_CROP = 0.35
_SKIMAGE_SAMPLES = ("astronaut", "brick", "camera", "cell", "chelsea", "clock", "coffee", "coins", "grass",
                    "gravel", "horse", "hubble_deep_field", "immunohistochemistry", "moon", "page", "retina",
                    "rocket", "shepp_logan_phantom", "text")
_PYDICOM_SAMPLES = ("ct", "mr", "overlay")


def _crop(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = pixels.shape
    ch, cw = max(1, round(_CROP * h)), max(1, round(_CROP * w))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return pixels[y : y + ch, x : x + cw].copy()


#: Name -> function ``(pixels, rng) -> pixels`` making an OOD image from a chest X-ray.
TRANSFORMS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "hflip": lambda p, rng: p[:, ::-1].copy(),
    "vflip": lambda p, rng: p[::-1].copy(),
    "rot90": lambda p, rng: np.rot90(p).copy(),
    "crop": _crop,
    "invert": lambda p, rng: 255 - p,
}


def synthetic_ood(
    images: Sequence[XrayImage],
    transforms: Sequence[str] = tuple(TRANSFORMS),
    seed: int = 0,
) -> dict[str, list[XrayImage]]:
    """OOD sets made from chest X-rays: ``{transform: images}``, ids ``"<transform>/<id>"``.

    Raises
    ------
    ValueError
        For an unknown transform name.
    """
    unknown = [t for t in transforms if t not in TRANSFORMS]
    if unknown:
        raise ValueError(f"unknown OOD transform(s) {unknown}; expected some of {list(TRANSFORMS)}")
    out: dict[str, list[XrayImage]] = {}
    for ti, name in enumerate(transforms):
        made = []
        for i, img in enumerate(images):
            px = TRANSFORMS[name](img.pixels, np.random.default_rng([seed, ti, i]))
            made.append(img.with_pixels(px, image_id=f"{name}/{image_row_id(img)}"))  # named as segment names the original
        out[name] = made
    return out


def _gray_uint8(arr: np.ndarray) -> np.ndarray:
    from skimage.color import rgb2gray
    from skimage.util import img_as_ubyte

    if arr.ndim == 3:
        arr = rgb2gray(arr[..., :3])
    arr = np.asarray(arr, np.float64)
    lo, hi = float(arr.min()), float(arr.max())
    return img_as_ubyte((arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr))


def non_chest_images() -> dict[str, list[XrayImage]]:
    """Bundled non-chest images: ``{"skimage": [...], "ct_mr": [...]}`` (ids ``"skimage/camera"``...).

    scikit-image's sample images (photographs, textures, micrographs, a Shepp-Logan
    phantom) converted to 8-bit gray; pydicom's example CT and MR slices read with
    chexmask's DICOM reader. Images that need a download are skipped; nothing is
    fetched.
    """
    import skimage.data

    from chexmask.io.read import read_image

    sets: dict[str, list[XrayImage]] = {"skimage": [], "ct_mr": []}
    for name in _SKIMAGE_SAMPLES:
        try:
            px = _gray_uint8(getattr(skimage.data, name)())
        except (ImportError, OSError, AttributeError) as exc:  # some samples need pooch and the network
            log.warning("skipping skimage sample %s: %s", name, exc)
            continue
        sets["skimage"].append(XrayImage(px, "", f"skimage/{name}", px.shape[0], px.shape[1], "MONOCHROME2", None, 8))
    try:
        import pydicom.examples as examples
    except ImportError:
        log.warning("pydicom.examples is unavailable: no CT/MR OOD set")
        return sets
    for name in _PYDICOM_SAMPLES:
        try:
            img = read_image(getattr(examples, name).filename)
        except (ChexmaskError, AttributeError) as exc:
            log.warning("skipping pydicom example %s: %s", name, exc)
            continue
        sets["ct_mr"].append(dataclasses.replace(img, image_id=f"pydicom/{name}"))
    return sets
