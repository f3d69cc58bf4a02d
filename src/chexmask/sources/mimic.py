"""MIMIC-CXR-JPG: ``mimic-cxr-2.0.0-metadata.csv(.gz)`` and ``files/pXX/pSUBJECT/sSTUDY/DICOM_ID.jpg``.

Frontal images are those with ``ViewPosition`` PA or AP; the id is ``dicom_id``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from chexmask.sources._base import Source, attach_paths, find_metadata, index_files

_KEEP = ["dicom_id", "subject_id", "study_id", "ViewPosition", "Rows", "Columns", "StudyDate"]


def _index(root: Path) -> pd.DataFrame:
    meta_path = find_metadata(root, ["mimic-cxr-2.0.0-metadata.csv.gz", "mimic-cxr-2.0.0-metadata.csv"], "MIMIC-CXR metadata")
    meta = pd.read_csv(meta_path, usecols=lambda c: c in _KEEP, dtype={"dicom_id": str})
    meta = meta[meta["ViewPosition"].isin(["PA", "AP"])]
    meta = meta.assign(id=meta["dicom_id"])
    return attach_paths(meta, index_files(root, (".jpg",)), meta["dicom_id"] + ".jpg", "mimic-cxr-jpg")


MIMIC_CXR_JPG = Source("mimic-cxr-jpg", "dicom_id", (".jpg",), _index)
