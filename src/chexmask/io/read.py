"""Read a chest X-ray (PNG, JPEG or DICOM) into an 8-bit grayscale array.

The format is found from the file's content, not its name: DICOM by the ``DICM``
marker at byte 128, PNG and JPEG by their signatures. Every failure caused by the
file raises :class:`~chexmask.UnreadableImageError` naming the file and the
problem, so a batch can record it and go on.

Images are ``(H, W)`` arrays in row-major order, ``uint8``, 0 = black.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, NoReturn

import cv2
import numpy as np

from chexmask._errors import UnreadableImageError
from chexmask.io.lookup import image_stem
from chexmask.io.sniff import HEAD_BYTES, image_kind

__all__ = ["XrayImage", "read_image", "is_complete", "image_id_of"]

_PNG_END = b"IEND\xaeB`\x82"
_JPEG_END = b"\xff\xd9"
_TAIL_BYTES = 4096
_DICOM_SUFFIXES = (".dcm", ".dicom")

Scale16 = Literal["minmax", "shift"]


@dataclass(frozen=True, eq=False)
class XrayImage:
    """A decoded chest X-ray and what is known about its source.

    Attributes
    ----------
    pixels : ndarray of uint8, shape (H, W)
        Grayscale image, row-major, 0 = black (MONOCHROME1 is already inverted).
    path : str
        The path the image was read from, as given.
    image_id : str
        File name without its image extension (``.png``, ``.jpg``, ``.jpeg``,
        ``.dcm``, ``.dicom``); other names are kept whole.
    height, width : int
        Original size in pixels (``pixels.shape``).
    photometric : str
        ``"MONOCHROME1"`` or ``"MONOCHROME2"`` as stored in a DICOM file,
        ``"MONOCHROME2"`` for grayscale PNG/JPEG, ``"RGB"`` when the stored image
        had colour channels and was converted to gray.
    view_position : str or None
        DICOM ViewPosition (``"PA"``, ``"AP"``, ...), ``None`` when absent.
    bits : int
        Original bit depth: 8 or 16 for PNG/JPEG, BitsStored for DICOM.
    pixel_spacing : (float, float) or None
        ``(row spacing, column spacing)`` in mm, the DICOM order: the distance between
        the centres of adjacent rows, then of adjacent columns. From DICOM PixelSpacing,
        else ImagerPixelSpacing (at the detector, not corrected for magnification);
        ``None`` for PNG/JPEG and for a DICOM with neither, or with a value that is not
        two positive numbers. Never guessed.
    jpeg : bytes or None
        The file's bytes when it is a JPEG (``None`` otherwise): the model frame of a large
        JPEG is decoded from them at reduced scale (:mod:`chexmask.io.model_frame`). Change
        the pixels with :meth:`with_pixels`, which drops them.
    """

    pixels: np.ndarray
    path: str
    image_id: str
    height: int
    width: int
    photometric: str
    view_position: str | None
    bits: int
    pixel_spacing: tuple[float, float] | None = None
    jpeg: bytes | None = None

    def with_pixels(self, pixels: np.ndarray, **changes) -> "XrayImage":
        """A copy holding other pixels (and ``changes``), no longer tied to the file's JPEG bytes."""
        return replace(self, pixels=pixels, height=int(pixels.shape[0]), width=int(pixels.shape[1]), jpeg=None, **changes)


def read_image(path: str | os.PathLike[str], *, scale16: Scale16 = "minmax") -> XrayImage:
    """Read a PNG, JPEG or DICOM chest X-ray as 8-bit grayscale.

    Parameters
    ----------
    path : str or path-like
        The image file. Its format is detected from its content.
    scale16 : {"minmax", "shift"}, optional
        How a 16-bit PNG becomes 8 bit. ``"minmax"`` (default) maps the image's
        own minimum and maximum to 0 and 255. ``"shift"`` keeps the high byte
        (``value >> 8``), which is what ``cv2.imread(path, 0)`` does and what the
        CheXmask reference used to prepare PadChest.

    Returns
    -------
    XrayImage
        The ``(H, W)`` uint8 pixels and the source's metadata.

    Raises
    ------
    UnreadableImageError
        The file is missing, a folder, empty, truncated or corrupt, not a PNG,
        JPEG or DICOM image, a DICOM without pixel data or with an unsupported
        layout, or compressed with a transfer syntax no installed plugin decodes.
    ValueError
        `scale16` is not one of the accepted values.
    ImportError
        A DICOM file is read and pydicom is not installed.

    Notes
    -----
    Colour images (RGB, BGR, RGBA, palette) are converted to gray with the
    ITU-R BT.601 weights and reported with ``photometric="RGB"``; alpha is
    ignored. EXIF orientation in JPEGs is ignored.

    DICOM is decoded with pydicom (compressed transfer syntaxes need pylibjpeg
    and its libjpeg/openjpeg plugins). The stored values go through the modality
    LUT (or RescaleSlope/RescaleIntercept), then the VOI LUT sequence or, failing
    that, the first WindowCenter/WindowWidth; the VOI output range is mapped to
    0-255. Without any VOI the image's own minimum and maximum are mapped to
    0-255. MONOCHROME1 is then inverted, so 0 is always black. Multi-frame files
    give their first frame. A constant image becomes all zeros.

    Examples
    --------
    >>> import numpy as np, cv2, tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = cv2.imwrite(str(folder / "cxr.png"), np.full((4, 6), 7, np.uint8))
    >>> image = read_image(folder / "cxr.png")
    >>> image.pixels.shape, image.image_id, image.bits, image.photometric
    ((4, 6), 'cxr', 8, 'MONOCHROME2')
    """
    if scale16 not in ("minmax", "shift"):
        raise ValueError(f"scale16 must be 'minmax' or 'shift', got {scale16!r}")
    p = Path(path)
    if not p.exists():
        raise UnreadableImageError(path, "file not found")
    if p.is_dir():
        raise UnreadableImageError(path, "is a directory, not an image file")
    try:
        with open(p, "rb") as fh:
            head = fh.read(HEAD_BYTES)
    except OSError as exc:
        raise UnreadableImageError(path, f"cannot open file: {exc.strerror or exc}") from exc
    if not head:
        raise UnreadableImageError(path, "empty file")

    spacing = jpeg = None
    kind = image_kind(head)
    if kind == "dicom":
        pixels, photometric, view, bits, spacing = _read_dicom(p)
    elif kind == "png":
        pixels, photometric, bits = _read_raster(p, p.read_bytes(), "PNG", scale16)
        view = None
    elif kind == "jpeg":
        jpeg = p.read_bytes()
        pixels, photometric, bits = _read_raster(p, jpeg, "JPEG", scale16)
        view = None
    elif p.suffix.lower() in _DICOM_SUFFIXES:
        _reject_dicom_without_preamble(p)
    else:
        raise UnreadableImageError(path, "not a PNG, JPEG or DICOM image")

    height, width = pixels.shape
    return XrayImage(
        pixels=pixels,
        path=os.fspath(path),
        image_id=image_id_of(p),
        height=int(height),
        width=int(width),
        photometric=photometric,
        view_position=view,
        bits=int(bits),
        pixel_spacing=spacing,
        jpeg=jpeg,
    )


def is_complete(data: np.ndarray, kind: str) -> bool:
    """Whether a PNG's or JPEG's bytes end with the format's end marker.

    libjpeg fills a cut-off JPEG with gray instead of failing, and OpenCV only warns on
    stderr, so the end marker is checked. It is looked for near the end, not at it, as
    some writers append padding or metadata.
    """
    return (_PNG_END if kind == "PNG" else _JPEG_END) in data[-_TAIL_BYTES:].tobytes()


def image_id_of(path: str | os.PathLike[str]) -> str:
    """An :class:`XrayImage`'s id: its file name without an image extension (kept whole otherwise).

    The key of the file's side files (``landmarks/<id>.npz`` in a JSRT-layout folder); a
    table row names the file with its extension (:func:`chexmask.inference.plan.row_ids`).
    """
    # Only image suffixes are dropped (io.lookup.image_stem): DICOM files are often named by
    # their UID ("1.2.840.113619.2.55"), whose last dotted part is not an extension.
    return image_stem(Path(path).name)


def _to_uint8(arr: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map [lo, hi] linearly to [0, 255], clipping; a constant image gives zeros."""
    if not hi > lo:
        return np.zeros(arr.shape, np.uint8)
    scaled = (arr.astype(np.float64) - lo) * (255.0 / (hi - lo))
    return np.rint(np.clip(scaled, 0.0, 255.0)).astype(np.uint8)


def _to_gray(path: Path, arr: np.ndarray, order: str) -> tuple[np.ndarray, bool]:
    """Return ``(gray, was_colour)``; `order` is ``"BGR"`` (OpenCV) or ``"RGB"``."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        gray, colour = arr, False
    elif arr.ndim == 3 and arr.shape[2] in (3, 4):
        code = {
            ("BGR", 3): cv2.COLOR_BGR2GRAY,
            ("BGR", 4): cv2.COLOR_BGRA2GRAY,
            ("RGB", 3): cv2.COLOR_RGB2GRAY,
            ("RGB", 4): cv2.COLOR_RGBA2GRAY,
        }[order, arr.shape[2]]
        gray, colour = cv2.cvtColor(np.ascontiguousarray(arr), code), True
    else:
        raise UnreadableImageError(path, f"unsupported image dimensions {arr.shape}")
    if gray.shape[0] < 1 or gray.shape[1] < 1:
        raise UnreadableImageError(path, f"unsupported image dimensions {arr.shape}")
    return gray, colour


def _read_raster(path: Path, raw: bytes, kind: str, scale16: Scale16) -> tuple[np.ndarray, str, int]:
    """Decode a PNG's or JPEG's bytes (read from ``path``) with OpenCV; returns ``(pixels, photometric, bits)``."""
    data = np.frombuffer(raw, dtype=np.uint8)
    decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if is_complete(data, kind) else None
    if decoded is None:
        raise UnreadableImageError(path, f"truncated or corrupt {kind}")
    if decoded.dtype == np.uint8:
        bits = 8
    elif decoded.dtype == np.uint16:
        bits = 16
    else:
        raise UnreadableImageError(path, f"unsupported {kind} sample type {decoded.dtype}")
    gray, colour = _to_gray(path, decoded, "BGR")
    if bits == 16:
        if scale16 == "shift":
            gray = (gray >> 8).astype(np.uint8)
        else:
            gray = _to_uint8(gray, float(gray.min()), float(gray.max()))
    return gray, ("RGB" if colour else "MONOCHROME2"), bits


# --------------------------------------------------------------------------- DICOM

# pydicom and its decoding plugins raise many exception types on a bad file
# (EOFError, ValueError, struct.error, BytesLengthException, plugin RuntimeErrors,
# and warnings when they are errors), so everything but MemoryError is taken as a
# problem of the file; MemoryError stays an infrastructure failure.
_DICOM_ERRORS = (Exception,)


def _import_pydicom():
    try:
        import pydicom
        import pydicom.pixels
    except ImportError as exc:  # pragma: no cover - pydicom is a dependency
        raise ImportError(
            "reading DICOM files needs pydicom>=3 (and pylibjpeg, pylibjpeg-libjpeg, "
            "pylibjpeg-openjpeg for compressed files): "
            "pip install pydicom pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg"
        ) from exc
    return pydicom


def _reject_dicom_without_preamble(path: Path) -> NoReturn:
    """Fail clearly on a ``.dcm`` file that lacks the 128-byte preamble and DICM."""
    pydicom = _import_pydicom()
    from pydicom.errors import InvalidDicomError

    try:
        pydicom.dcmread(path, force=False)
    except InvalidDicomError as exc:
        raise UnreadableImageError(
            path,
            "not a DICOM file: no 'DICM' marker at byte 128 (DICOM files without the "
            "standard preamble are not supported)",
        ) from exc
    except MemoryError:
        raise
    except _DICOM_ERRORS as exc:
        raise UnreadableImageError(path, f"truncated or corrupt DICOM: {exc}") from exc
    # pydicom only accepts what has the marker, which the caller already checked.
    raise UnreadableImageError(path, "not a DICOM file: no 'DICM' marker at byte 128")


def _pixel_spacing(ds) -> tuple[float, float] | None:
    """``(row, column)`` spacing in mm: PixelSpacing, else ImagerPixelSpacing, else None."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        try:
            values = [float(v) for v in ds.get(keyword) or []]
        except (TypeError, ValueError):  # a malformed value is no spacing, not a bad image
            continue
        if len(values) == 2 and all(np.isfinite(v) and v > 0 for v in values):
            return values[0], values[1]
    return None


def _read_dicom(path: Path) -> tuple[np.ndarray, str, str | None, int, tuple[float, float] | None]:
    """Decode a DICOM file; returns ``(pixels, photometric, view_position, bits, pixel_spacing)``."""
    pydicom = _import_pydicom()
    try:
        ds = pydicom.dcmread(path)
    except MemoryError:
        raise
    except _DICOM_ERRORS as exc:
        raise UnreadableImageError(path, f"truncated or corrupt DICOM: {exc}") from exc

    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise UnreadableImageError(path, "DICOM has no pixel data")
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    if not photometric:
        raise UnreadableImageError(path, "DICOM has no PhotometricInterpretation")
    bits = int(ds.get("BitsStored", 0) or ds.get("BitsAllocated", 0) or 8)
    view = str(ds.get("ViewPosition", "") or "").strip() or None
    spacing = _pixel_spacing(ds)

    try:
        # Only the first frame is decoded: multi-frame chest X-rays are rare and
        # the pipeline segments one image per file.
        arr = pydicom.pixels.pixel_array(ds, index=0)
    except MemoryError:
        raise
    except _DICOM_ERRORS as exc:
        raise UnreadableImageError(path, _decode_reason(ds, exc)) from exc

    if photometric in ("MONOCHROME1", "MONOCHROME2"):
        samples = int(ds.get("SamplesPerPixel", 1))
        if samples != 1 or arr.ndim != 2:
            raise UnreadableImageError(
                path,
                f"unsupported image dimensions {arr.shape} for {photometric} "
                f"with SamplesPerPixel={samples}",
            )
        try:
            pixels = _dicom_grayscale(pydicom, arr, ds)
        except MemoryError:
            raise
        except _DICOM_ERRORS as exc:
            raise UnreadableImageError(path, f"invalid DICOM LUT or window: {exc}") from exc
        if photometric == "MONOCHROME1":
            pixels = 255 - pixels
        return pixels, photometric, view, bits, spacing

    # Colour: pydicom converts YBR to RGB; a palette needs its colour LUT.
    try:
        if photometric == "PALETTE COLOR":
            arr = pydicom.pixels.apply_color_lut(arr, ds)
    except MemoryError:
        raise
    except _DICOM_ERRORS as exc:
        raise UnreadableImageError(path, f"invalid DICOM palette: {exc}") from exc
    gray, _ = _to_gray(path, arr, "RGB")
    if gray.dtype != np.uint8:
        gray = _to_uint8(gray, float(gray.min()), float(gray.max()))
    return gray, "RGB", view, bits, spacing


def _decode_reason(ds, exc: Exception) -> str:
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if isinstance(exc, RuntimeError) and syntax is not None and syntax.is_compressed:
        return (
            f"no installed decoder for transfer syntax {syntax.name} ({syntax}): "
            "pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg "
            f"({exc})"
        )
    return f"truncated or corrupt DICOM pixel data: {exc}"


def _dicom_grayscale(pydicom, arr: np.ndarray, ds) -> np.ndarray:
    """Modality LUT, then VOI LUT or window, then scale the VOI range to uint8."""
    pix = pydicom.pixels
    values = pix.apply_modality_lut(arr, ds)

    voi_seq = ds.get("VOILUTSequence")
    has_lut = bool(voi_seq) and all(k in voi_seq[0] for k in ("LUTDescriptor", "LUTData"))
    has_window = ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None

    if has_lut:
        # A VOI LUT indexes integers; rescaling gives floats that are whole numbers.
        if not np.issubdtype(values.dtype, np.integer):
            values = np.rint(values).astype(np.int64)
        descriptor = voi_seq[0].LUTDescriptor
        entries, first = int(descriptor[0]) or 2**16, int(descriptor[1])
        # The VOI output range is the LUT's own range: run every input through it.
        lut_out = pix.apply_voi(np.arange(first, first + entries, dtype=np.int64), ds)
        out = pix.apply_voi(values, ds)
        return _to_uint8(out, float(lut_out.min()), float(lut_out.max()))
    if has_window:
        out = pix.apply_windowing(values, ds)
        # The window's output range, as pydicom defines it for this dataset.
        lo, hi = pix.apply_windowing(np.array([-np.inf, np.inf]), ds)
        return _to_uint8(out, float(lo), float(hi))
    return _to_uint8(values, float(values.min()), float(values.max()))
