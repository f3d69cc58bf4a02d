"""The model frame of an image: the padded, resized square the network sees.

One rule for every entry point (``Segmenter``, ``chexmask segment``, Ray, the web demo),
so that one file gives one answer: an image read from a **JPEG file** whose long side
has at least twice the model's pixels is decoded at the largest DCT scale, 1/2, 1/4 or
1/8, that keeps at least the model's pixels on its long side (libjpeg scales in the
DCT: at 1/8 each pixel is the mean of its 8 x 8 block), then padded and resized
(:func:`chexmask.preprocess.pad_resize_reduced`, whose geometry maps back to the
original frame). Everything else (PNG, DICOM, small or unusual JPEGs, arrays) is padded
and resized from its full pixels (:func:`chexmask.preprocess.pad_resize`).

Decoding and resizing a 2320 x 2828 JPEG (CheXpert's size) to 256 px takes about
38.6 ms in full and 9.4 ms at 1/8 on one core (``benchmarks/bench_decode.py``); masks
are filled from the landmarks at the original size, so no output loses resolution.
An array holding a JPEG's full pixels is resized from them and may differ from its file
by a fraction of a pixel.
"""

from __future__ import annotations

import io
import os

import cv2
import numpy as np

from chexmask.io.read import XrayImage, is_complete, read_image
from chexmask.io.sniff import HEAD_BYTES, image_kind
from chexmask.preprocess import Geometry, pad_resize, pad_resize_reduced

__all__ = ["reduction_factor", "model_frame", "read_model_frame"]

_REDUCED = {  # (factor, colour) -> OpenCV flag
    (2, False): cv2.IMREAD_REDUCED_GRAYSCALE_2, (4, False): cv2.IMREAD_REDUCED_GRAYSCALE_4,
    (8, False): cv2.IMREAD_REDUCED_GRAYSCALE_8, (2, True): cv2.IMREAD_REDUCED_COLOR_2,
    (4, True): cv2.IMREAD_REDUCED_COLOR_4, (8, True): cv2.IMREAD_REDUCED_COLOR_8,
}


def reduction_factor(height: int, width: int, size: int) -> int:
    """The largest of 8, 4, 2 whose reduced long side keeps ``size`` pixels; 1 if none does.

    >>> reduction_factor(2828, 2320, 256), reduction_factor(2000, 2000, 256), reduction_factor(400, 300, 256)
    (8, 4, 1)
    """
    side = max(height, width)
    for factor in (8, 4, 2):
        if -(-side // factor) >= size:
            return factor
    return 1


def _jpeg_frame(data: bytes, size: int) -> tuple[np.ndarray, Geometry] | None:
    """The reduced-scale model frame of a JPEG's bytes, or None where the full decode applies."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as header:  # reads the header only
            (width, height), mode = header.size, header.mode
    except (UnidentifiedImageError, OSError, ValueError):
        return None  # the full decode says what is wrong with the file
    factor = reduction_factor(height, width, size)
    if factor == 1 or mode not in ("L", "RGB"):
        return None
    buffer = np.frombuffer(data, np.uint8)
    if not is_complete(buffer, "JPEG"):
        return None
    decoded = cv2.imdecode(buffer, _REDUCED[factor, mode == "RGB"])
    if decoded is None:
        return None
    if decoded.ndim == 3:  # the BT.601 conversion read_image applies to colour files
        decoded = cv2.cvtColor(decoded, cv2.COLOR_BGR2GRAY)
    return pad_resize_reduced(decoded, factor, height, width, size)


def model_frame(image: XrayImage, size: int) -> tuple[np.ndarray, Geometry]:
    """The ``(size, size)`` uint8 model frame of an image and its geometry (the rule above)."""
    if image.jpeg is not None:
        frame = _jpeg_frame(image.jpeg, size)
        if frame is not None:
            return frame
    return pad_resize(image.pixels, size)


def read_model_frame(path: str | os.PathLike[str], size: int) -> tuple[np.ndarray, Geometry, tuple[float, float] | None]:
    """Read a file straight into its model frame: ``(pixels, geometry, pixel spacing or None)``.

    A large JPEG is never decoded at full size; the result equals
    ``model_frame(read_image(path), size)``.

    Raises
    ------
    UnreadableImageError
        As :func:`chexmask.io.read.read_image`.
    """
    declined = False  # the reduced decode was tried on these bytes and does not apply
    try:
        with open(path, "rb") as fh:
            head = fh.read(HEAD_BYTES)
            if image_kind(head) == "jpeg":
                frame = _jpeg_frame(head + fh.read(), size)
                if frame is not None:
                    return (*frame, None)
                declined = True
    except OSError:
        pass  # read_image names the problem
    image = read_image(path)
    square, geometry = pad_resize(image.pixels, size) if declined else model_frame(image, size)
    return square, geometry, image.pixel_spacing
