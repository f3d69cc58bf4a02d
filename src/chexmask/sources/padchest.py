"""PadChest: ``PADCHEST_chest_x_ray_images_labels_160K*.csv`` and 16-bit PNGs in folders ``0``..``54``.

Frontal images are those whose ``Projection`` is PA, AP or AP_horizontal; the id is
``ImageID``. The 16-bit PNGs are windowed to 8 bit by :func:`chexmask.read_image`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from chexmask.sources._base import Source, attach_paths, find_metadata, index_files

_KEEP = ["ImageID", "ImageDir", "StudyID", "PatientID", "PatientSex_DICOM", "PatientBirth", "Projection", "ViewPosition_DICOM"]
FRONTAL = ("PA", "AP", "AP_horizontal")


def _index(root: Path) -> pd.DataFrame:
    meta_path = find_metadata(
        root, ["PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv", "PADCHEST_chest_x_ray_images_labels_160K*.csv"], "PadChest metadata"
    )
    meta = pd.read_csv(meta_path, usecols=lambda c: c in _KEEP, dtype={"ImageDir": str})
    meta = meta[meta["Projection"].isin(FRONTAL)]
    meta = meta.assign(id=meta["ImageID"])
    return attach_paths(meta, index_files(root, (".png",)), meta["ImageID"], "padchest")


PADCHEST = Source("padchest", "ImageID", (".png",), _index)
