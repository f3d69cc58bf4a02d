"""Miniature copies of each public dataset's folder layout, made from JSRT images.

Metadata files use the real column layout of each source; a lateral view and a
metadata row without an image are included so frontal selection and missing files
are exercised.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd


def _jsrt(jsrt_dir: Path, n: int) -> list[np.ndarray]:
    ids = sorted(p.stem for p in (jsrt_dir / "images").glob("*.png"))[:n]
    return [cv2.resize(cv2.imread(str(jsrt_dir / "images" / f"{i}.png"), cv2.IMREAD_GRAYSCALE), (256, 256)) for i in ids]


def make_chestxray8(root: Path, jsrt_dir: Path) -> list[str]:
    imgs = _jsrt(jsrt_dir, 3)
    names = ["00000001_000.png", "00000002_000.png", "00000003_001.png"]
    for i, (name, img) in enumerate(zip(names, imgs)):
        folder = root / f"images_{i + 1:03d}" / "images"
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / name), img)
    pd.DataFrame({
        "Image Index": names + ["00000004_000.png"],
        "Finding Labels": ["No Finding", "Effusion", "No Finding", "Mass"],
        "Follow-up #": [0, 0, 1, 0], "Patient ID": [1, 2, 3, 4], "Patient Age": [58, 60, 44, 70],
        "Patient Gender": ["M", "F", "M", "F"], "View Position": ["PA", "AP", "PA", "PA"],
        "OriginalImage[Width": [2500] * 4, "Height]": [2048] * 4,
        "OriginalImagePixelSpacing[x": [0.143] * 4, "y]": [0.143] * 4,
    }).to_csv(root / "Data_Entry_2017_v2020.csv", index=False)
    return names  # the 4th row has no image


def make_chexpert(root: Path, jsrt_dir: Path) -> list[str]:
    imgs = _jsrt(jsrt_dir, 3)
    rels = [
        "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg",
        "CheXpert-v1.0-small/train/patient00002/study1/view1_frontal.jpg",
        "CheXpert-v1.0-small/train/patient00002/study1/view2_lateral.jpg",
    ]
    for rel, img in zip(rels, imgs):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / rel), img)
    pd.DataFrame({
        "Path": rels, "Sex": ["Female", "Male", "Male"], "Age": [68, 87, 87],
        "Frontal/Lateral": ["Frontal", "Frontal", "Lateral"], "AP/PA": ["AP", "PA", None],
        "No Finding": [1.0, None, None], "Pleural Effusion": [None, 1.0, 1.0],
    }).to_csv(root / "CheXpert-v1.0-small" / "train.csv", index=False)
    return rels[:2]


def make_mimic(root: Path, jsrt_dir: Path) -> list[str]:
    imgs = _jsrt(jsrt_dir, 3)
    rows = [("a1b2c3d4-0001", 10000032, 50414267, "PA"), ("a1b2c3d4-0002", 10000032, 50414267, "LATERAL"),
            ("a1b2c3d4-0003", 11000011, 52000001, "AP")]
    for (dicom_id, subject, study, _), img in zip(rows, imgs):
        folder = root / "files" / f"p{str(subject)[:2]}" / f"p{subject}" / f"s{study}"
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{dicom_id}.jpg"), img)
    pd.DataFrame(rows, columns=["dicom_id", "subject_id", "study_id", "ViewPosition"]).assign(
        PerformedProcedureStepDescription="CHEST (PA AND LAT)", Rows=256, Columns=256, StudyDate=21800506, StudyTime=213014.531,
        ProcedureCodeSequence_CodeMeaning="CHEST (PA AND LAT)", ViewCodeSequence_CodeMeaning="postero-anterior",
        PatientOrientationCodeSequence_CodeMeaning="Erect",
    ).to_csv(root / "mimic-cxr-2.0.0-metadata.csv.gz", index=False)
    return ["a1b2c3d4-0001", "a1b2c3d4-0003"]


def make_padchest(root: Path, jsrt_dir: Path) -> list[str]:
    imgs = _jsrt(jsrt_dir, 3)
    names = ["216840111366964012283393834152009033102258826_00-141-160.png",
             "216840111366964012339356563862009041122518701_00-061-032.png",
             "216840111366964012373310883942009170084120009_00-097-074.png"]
    for i, (name, img) in enumerate(zip(names, imgs)):
        folder = root / str(i)
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / name), img.astype(np.uint16) * 16)  # 12 of 16 bits used, as in PadChest
    pd.DataFrame({
        "ImageID": names, "ImageDir": [0, 1, 2], "StudyDate_DICOM": [20090331] * 3, "StudyID": ["s1", "s2", "s3"],
        "PatientID": ["p1", "p2", "p3"], "PatientBirth": [1939, 1950, 1962], "PatientSex_DICOM": ["M", "F", "M"],
        "ViewPosition_DICOM": ["POSTEROANTERIOR", "LATERAL", "AP"], "Projection": ["PA", "L", "AP_horizontal"],
        "MethodProjection": ["Manual review of DICOM fields"] * 3, "Labels": ["['normal']"] * 3,
    }).to_csv(root / "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv", index=False)
    return [names[0], names[2]]


def make_dicom(stored: np.ndarray, photometric: str = "MONOCHROME2", **elements):
    """A single-frame DX DICOM dataset (16 bits allocated, 12 stored) holding ``stored``.

    ``stored`` is the ``(H, W)`` array of stored values (< 4096); ``elements`` are extra
    data elements by keyword (``Modality="DX"``). Save it with ``ds.save_as(target,
    enforce_file_format=True)``.
    """
    from pydicom import Dataset
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = stored.astype(np.uint16).tobytes()
    return ds


def make_vindr(root: Path, jsrt_dir: Path) -> list[str]:
    imgs = _jsrt(jsrt_dir, 2)
    ids = ["000434271f63a053c4128a0ba6352c7f", "00053190460d56c53cc3e57321387478"]
    for split, image_id, img in zip(("train", "test"), ids, imgs):
        ds = make_dicom((255 - img).astype(np.uint16) * 16, "MONOCHROME1")
        (root / split).mkdir(parents=True, exist_ok=True)
        ds.save_as(root / split / f"{image_id}.dicom", enforce_file_format=True)
    (root / "annotations").mkdir(exist_ok=True)
    pd.DataFrame({"image_id": [ids[0], ids[0]], "rad_id": ["R1", "R2"], "No finding": [1, 1]}).to_csv(
        root / "annotations" / "image_labels_train.csv", index=False)
    pd.DataFrame({"image_id": [ids[1]], "No finding": [0]}).to_csv(root / "annotations" / "image_labels_test.csv", index=False)
    return ids


MAKERS = {"chestxray8": make_chestxray8, "chexpert": make_chexpert, "mimic-cxr-jpg": make_mimic,
          "padchest": make_padchest, "vindr-cxr": make_vindr}
