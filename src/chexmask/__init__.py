"""chexmask: anatomically plausible lung and heart segmentation of chest X-rays.

The public surface is small; everything else lives in private modules. Heavy
dependencies (torch) load only when a name that needs them is first used.
"""

from __future__ import annotations

import importlib

from chexmask._errors import ChexmaskError, InputError, RLEError, UnreadableImageError

__version__ = "0.1.0"

# name -> module that defines it; resolved lazily so `import chexmask` stays cheap.
_LAZY = {
    "Segmenter": "chexmask.inference.segmenter",
    "read_image": "chexmask.io.read",
    "encode_rle": "chexmask.masks.rle",
    "decode_rle": "chexmask.masks.rle",
    "landmarks_to_masks": "chexmask.masks.fill",
    "read_table": "chexmask.formats.tables",
    "write_table": "chexmask.formats.tables",
}

__all__ = [
    "ChexmaskError",
    "InputError",
    "RLEError",
    "UnreadableImageError",
    "__version__",
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'chexmask' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
