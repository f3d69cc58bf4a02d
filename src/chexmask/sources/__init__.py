"""The public chest X-ray datasets CheXmask was built from: layouts, metadata, frontal selection.

One module per source behind a registry (:data:`SOURCES`). Each source turns a
dataset folder into an index: one row per frontal image with the source's own id
column, the image path and the metadata worth keeping.
"""

from __future__ import annotations

from chexmask.sources._base import Source, get_source
from chexmask.sources.chestxray8 import CHESTXRAY8
from chexmask.sources.chexpert import CHEXPERT
from chexmask.sources.mimic import MIMIC_CXR_JPG
from chexmask.sources.padchest import PADCHEST
from chexmask.sources.vindr import VINDR_CXR

#: name -> Source, in the order of the CheXmask paper.
SOURCES: dict[str, Source] = {s.name: s for s in (CHESTXRAY8, CHEXPERT, MIMIC_CXR_JPG, PADCHEST, VINDR_CXR)}

__all__ = ["SOURCES", "Source", "get_source"]
