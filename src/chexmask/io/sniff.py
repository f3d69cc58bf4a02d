"""What kind of image a file holds, by its first bytes, never by its name.

One rule for the reader (:func:`chexmask.io.read.read_image`), the reduced JPEG decode
(:mod:`chexmask.io.model_frame`) and the demo's upload check (:mod:`chexmask.app.upload`):
DICOM by the ``DICM`` marker after its 128-byte preamble (first, as a preamble may hold
anything), then the PNG and JPEG signatures.
"""

from __future__ import annotations

__all__ = ["HEAD_BYTES", "PNG_MAGIC", "JPEG_MAGIC", "image_kind"]

#: Bytes :func:`image_kind` needs: the DICOM preamble and its marker.
HEAD_BYTES = 132
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"


def image_kind(head: bytes) -> str | None:
    """``"dicom"``, ``"png"`` or ``"jpeg"`` from a file's first :data:`HEAD_BYTES` bytes; None for anything else.

    Examples
    --------
    >>> image_kind(b"\\x89PNG\\r\\n\\x1a\\n" + bytes(124)), image_kind(bytes(128) + b"DICM"), image_kind(b"GIF89a")
    ('png', 'dicom', None)
    """
    if head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(PNG_MAGIC):
        return "png"
    if head.startswith(JPEG_MAGIC):
        return "jpeg"
    return None
