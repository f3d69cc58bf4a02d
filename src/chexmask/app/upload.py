"""Check an uploaded file before decoding it: type by content, size in bytes and pixels.

The pixel count is read from the file header (PNG IHDR, JPEG SOF, DICOM Rows and
Columns), so an image that would decode to gigabytes is refused before it is decoded.
"""

from __future__ import annotations

import io
import re
import struct
from dataclasses import dataclass

from chexmask._errors import InputError
from chexmask.io.sniff import HEAD_BYTES, image_kind

__all__ = ["Limits", "UploadRejected", "check_upload", "safe_name"]

# JPEG start-of-frame markers (baseline, progressive, lossless, ...); C4, C8, CC are not frames.
_SOF = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


@dataclass(frozen=True)
class Limits:
    """What an upload may be.

    Attributes
    ----------
    max_bytes : int
        Largest file accepted, in bytes.
    max_pixels : int
        Largest image accepted, height x width.
    min_side : int
        Smallest height or width accepted, in pixels.
    """

    max_bytes: int = 32 * 1024 * 1024
    max_pixels: int = 40_000_000
    min_side: int = 64


class UploadRejected(InputError):
    """An upload breaks a limit or is not a supported type; ``status`` is the HTTP code."""

    def __init__(self, source: object, reason: str, status: int = 422) -> None:
        super().__init__(source, reason)
        self.status = status

    def __reduce__(self):
        return (type(self), (self.source, self.reason, self.status))


def safe_name(filename: str | None) -> str:
    """The upload's base name, reduced to safe characters (``"upload"`` if nothing is left)."""
    base = re.split(r"[\\/]", filename or "")[-1]
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._")
    return base[:100] or "upload"


def _png_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return height, width


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _SOF and pos + 9 <= len(data):
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return height, width
        pos += 2 + length
    return None


def _dicom_size(data: bytes) -> tuple[int, int] | None:
    import pydicom

    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        return int(ds.Rows), int(ds.Columns)
    except Exception:  # any header problem: let the reader give its own message
        return None


def _pixels(n: int) -> str:
    return f"{n / 1e6:.1f} megapixels" if n >= 100_000 else f"{n} pixels"


def check_upload(data: bytes, name: str, limits: Limits) -> str:
    """Check an upload's type, byte size and pixel count from its header.

    Parameters
    ----------
    data : bytes
        The whole file.
    name : str
        The upload's name, for messages.
    limits : Limits

    Returns
    -------
    str
        ``"png"``, ``"jpeg"`` or ``"dicom"``.

    Raises
    ------
    UploadRejected
        Empty (400), too many bytes (413), not PNG/JPEG/DICOM (415), a header without
        a readable size (422), or too many or too few pixels (413/422).
    """
    if not data:
        raise UploadRejected(name, "the file is empty", 400)
    if len(data) > limits.max_bytes:
        raise UploadRejected(
            name, f"the file is {len(data) / 2**20:.1f} MiB; the limit is {limits.max_bytes / 2**20:.0f} MiB", 413
        )
    kind = image_kind(data[:HEAD_BYTES])
    if kind is None:
        raise UploadRejected(name, "not a PNG, JPEG or DICOM file (checked by content, not by name)", 415)
    size = {"png": _png_size, "jpeg": _jpeg_size, "dicom": _dicom_size}[kind](data)
    if size is None:
        raise UploadRejected(name, f"the {kind.upper()} header is truncated or corrupt", 422)
    height, width = size
    if height * width > limits.max_pixels:
        raise UploadRejected(
            name, f"the image is {width}x{height} = {_pixels(height * width)};"
            f" the limit is {_pixels(limits.max_pixels)}", 413
        )
    if min(height, width) < limits.min_side:
        raise UploadRejected(
            name, f"the image is {width}x{height}; both sides must be at least {limits.min_side} pixels", 422
        )
    return kind
