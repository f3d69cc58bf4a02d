"""NIH ChestX-ray8 / ChestX-ray14: ``Data_Entry_2017*.csv`` and ``images_*/images/*.png``.

Every image is frontal (PA or AP, column ``View Position``); the id is the file name
("Image Index").
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from chexmask.sources._base import Source, attach_paths, find_metadata, index_files

_KEEP = ["Image Index", "Finding Labels", "Patient ID", "Patient Age", "Patient Gender", "View Position"]


def _index(root: Path) -> pd.DataFrame:
    meta_path = find_metadata(root, ["Data_Entry_2017_v2020.csv", "Data_Entry_2017.csv"], "ChestX-ray8 metadata")
    meta = pd.read_csv(meta_path, usecols=lambda c: c in _KEEP)
    meta = meta[meta["View Position"].isin(["PA", "AP"])]
    meta = meta.assign(id=meta["Image Index"])
    return attach_paths(meta, index_files(root, (".png",)), meta["Image Index"], "chestxray8")


CHESTXRAY8 = Source("chestxray8", "Image Index", (".png",), _index)
