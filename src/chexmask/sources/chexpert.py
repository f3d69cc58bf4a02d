"""CheXpert (v1.0 and -small): ``train.csv`` / ``valid.csv`` with a ``Path`` column.

``Path`` starts with the dataset folder ("CheXpert-v1.0-small/train/patient00001/
study1/view1_frontal.jpg") and is the id, as in CheXmask: file names repeat in every
study, so only the whole relative path is unique. Frontal: ``Frontal/Lateral``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from chexmask._errors import InputError
from chexmask.sources._base import Source, find_metadata

_KEEP = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA"]


def _resolve(root: Path, rel: str) -> str | None:
    # The CSV path includes the dataset folder name; the user may point ROOT at it or above it.
    parts = Path(rel).parts
    for skip in range(len(parts)):
        candidate = root.joinpath(*parts[skip:])
        if candidate.is_file():
            return str(candidate)
    return None


def _index(root: Path) -> pd.DataFrame:
    tables = []
    for name in ("train.csv", "valid.csv", "test.csv"):
        try:
            tables.append(pd.read_csv(find_metadata(root, [name], "CheXpert split table"), usecols=lambda c: c in _KEEP))
        except InputError:
            continue
    if not tables:
        raise InputError(root, "no CheXpert train.csv/valid.csv found (looked up to 3 folders deep)")
    meta = pd.concat(tables, ignore_index=True)
    meta = meta[meta["Frontal/Lateral"] == "Frontal"]
    paths = meta["Path"].map(lambda p: _resolve(root, p))
    meta = meta.assign(id=meta["Path"], path=paths)
    return meta[meta["path"].notna()].sort_values("id", kind="stable").reset_index(drop=True)


CHEXPERT = Source("chexpert", "Path", (".jpg",), _index)
