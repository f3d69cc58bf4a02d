"""VinDr-CXR: DICOM files ``train/IMAGE_ID.dicom`` and ``test/IMAGE_ID.dicom``.

All images are frontal; ``annotations/image_labels_{train,test}.csv`` (one row per
radiologist) give the ids. Where no label table is present, every ``.dicom`` file
under the root is taken. The id is ``image_id``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from chexmask._errors import InputError
from chexmask.sources._base import Source, attach_paths, find_metadata, index_files


def _index(root: Path) -> pd.DataFrame:
    files = index_files(root, (".dicom", ".dcm"))
    ids = []
    for name in ("image_labels_train.csv", "image_labels_test.csv"):
        try:
            table = pd.read_csv(find_metadata(root, [name], "VinDr-CXR labels"), usecols=["image_id"])
        except InputError:
            continue
        ids.append(table["image_id"].drop_duplicates())
    if ids:
        image_ids = pd.concat(ids, ignore_index=True).drop_duplicates()
    else:
        image_ids = pd.Series(sorted(Path(f).stem for f in files), dtype=str)
    by_stem = {Path(name).stem: path for name, path in files.items()}
    meta = pd.DataFrame({"image_id": image_ids.to_numpy(), "id": image_ids.to_numpy()})
    return attach_paths(meta, by_stem, meta["image_id"], "vindr-cxr")


VINDR_CXR = Source("vindr-cxr", "image_id", (".dicom", ".dcm"), _index)
