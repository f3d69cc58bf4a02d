"""Records and the torch Dataset over published CheXmask rows (CSV, CSV.gz, Parquet, frames)."""

from __future__ import annotations

import pickle

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from chexmask import InputError, RLEError, UnreadableImageError
from chexmask.dataset import MaskDataset, iter_records
from chexmask.formats.convert import convert_table
from chexmask.formats.landmarks import parse_landmarks
from chexmask.masks.rle import decode_rle


@pytest.fixture(scope="module")
def parquet(cxr8, tmp_path_factory):
    path = tmp_path_factory.mktemp("pq") / "cxr8.parquet"
    convert_table(cxr8, path)
    return path


def check_row(record_or_item, table, row):
    expected = table.iloc[row - 1]
    h, w = expected["Height"], expected["Width"]
    masks = record_or_item.masks if hasattr(record_or_item, "masks") else None
    if masks is None:  # a dataset item: stacked (K, H, W)
        stacked = record_or_item["masks"]
        masks = dict(zip(("right_lung", "left_lung", "heart"), stacked))
    for organ, column in (("right_lung", "Right Lung"), ("left_lung", "Left Lung"), ("heart", "Heart")):
        assert masks[organ].dtype == np.uint8
        np.testing.assert_array_equal(masks[organ], decode_rle(expected[column], h, w))


def test_iter_records_csv(cxr8, table):
    records = list(iter_records(cxr8, chunksize=16))
    assert [r.image_id for r in records] == table["Image Index"].tolist()
    check_row(records[7], table, 8)
    assert records[7].landmarks.shape == (120, 2)
    np.testing.assert_array_equal(records[7].landmarks, parse_landmarks(table["Landmarks"][7]))
    meta = records[7].metadata
    assert meta == {
        "Dice RCA (Mean)": table["Dice RCA (Mean)"][7],
        "Dice RCA (Max)": table["Dice RCA (Max)"][7],
        "Height": 1024,
        "Width": 1024,
        "row": 8,
    }


def test_iter_records_filters_organs_and_parquet(cxr8, parquet, table):
    ids = table["Image Index"].iloc[[2, 30]].tolist()
    from_csv = list(iter_records(cxr8, ids=ids, organs=["heart"], landmarks=False))
    from_pq = list(iter_records(parquet, ids=ids, organs=["heart"], landmarks=False))
    assert [r.metadata["row"] for r in from_csv] == [3, 31] == [r.metadata["row"] for r in from_pq]
    assert all(list(r.masks) == ["heart"] and r.landmarks is None for r in from_csv)
    for a, b in zip(from_csv, from_pq):
        np.testing.assert_array_equal(a.masks["heart"], b.masks["heart"])
        assert a.metadata == b.metadata
    passing = sum(1 for _ in iter_records(cxr8, min_rca=0.8, landmarks=False, organs=["heart"]))
    assert passing == int((table["Dice RCA (Mean)"] >= 0.8).sum())


def test_physician_records(chexmask_csv_dir):
    record = next(iter_records(chexmask_csv_dir / "CANDID-PTX_martina_annotations.csv"))
    assert record.masks["heart"].shape == (1024, 1024)
    assert record.metadata["Dataset"] == "CANDID-PTX"
    assert (record.metadata["Height"], record.metadata["Width"]) == (1024, 1024)


def test_bad_row_raises_or_is_skipped(cxr8, tmp_path, caplog):
    frame = pd.read_csv(cxr8, dtype=str, keep_default_na=False, nrows=3)
    frame.loc[1, "Left Lung"] = "5 3 1 1"
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False, lineterminator="\n")
    with pytest.raises(RLEError, match=r"bad.csv row 2, column Left Lung: run 1 \(start 1\) overlaps"):
        list(iter_records(path))
    kept = list(iter_records(path, on_error="skip"))
    assert [r.metadata["row"] for r in kept] == [1, 3]
    assert "bad.csv row 2" in caplog.text
    with pytest.raises(ValueError, match="on_error must be 'raise' or 'skip'"):
        next(iter_records(path, on_error="ignore"))


def test_dataset_csv_matches_the_table(cxr8, table):
    dataset = MaskDataset(cxr8)
    assert len(dataset) == 50
    item = dataset[12]
    assert item["image_id"] == table["Image Index"][12] and "image" not in item
    assert item["masks"].shape == (3, 1024, 1024) and item["landmarks"].shape == (120, 2)
    check_row(item, table, 13)
    assert dataset[-1]["image_id"] == table["Image Index"].iloc[-1]
    with pytest.raises(IndexError, match="index 50 out of range for 50 items"):
        dataset[50]


@pytest.mark.parametrize("kind", ["csv", "csv.gz", "parquet", "frame"])
def test_dataset_sources_and_filters_agree(cxr8, parquet, table, tmp_path, kind):
    if kind == "csv.gz":
        source = tmp_path / "t.csv.gz"
        convert_table(cxr8, source)
    else:
        source = {"csv": cxr8, "parquet": parquet, "frame": table}[kind]
    ids = table["Image Index"].iloc[[1, 4, 20, 44]].tolist()
    dataset = MaskDataset(source, min_rca=0.75, ids=ids, organs=["left_lung"])
    passing = [i + 1 for i in (1, 4, 20, 44) if table["Dice RCA (Mean)"][i] >= 0.75]
    assert dataset.row_numbers.tolist() == passing and len(passing) >= 2
    item = dataset[1]
    row = passing[1]
    assert item["metadata"]["row"] == row
    expected = decode_rle(table["Left Lung"][row - 1], 1024, 1024)
    np.testing.assert_array_equal(item["masks"][0], expected)


def test_dataset_empty_after_filter(cxr8):
    assert len(MaskDataset(cxr8, ids=["nothing"])) == 0


def test_csv_index_handles_quoted_newlines_and_blank_lines(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(
        'ImageID,Dataset,Right Lung,Left Lung,Heart,Landmarks\n\n'
        'a,"two\nlines",1 1,,2 2,x\n'
        '\n'
        'b,"say ""hi""",,3 1,,\n',
        encoding="utf-8",
    )
    dataset = MaskDataset(path, landmarks=False)
    assert len(dataset) == 2
    assert dataset[0]["metadata"]["Dataset"] == "two\nlines"
    assert dataset[1]["metadata"]["Dataset"] == 'say "hi"'
    assert dataset[1]["masks"][1].reshape(-1)[:4].tolist() == [0, 0, 255, 0]


def test_dataset_transform_pickling_and_loader(cxr8, table):
    ids = table["Image Index"].iloc[:3].tolist()
    dataset = MaskDataset(cxr8, ids=ids, organs=["heart"],
                          transform=lambda item: {**item, "area": int((item["masks"] > 0).sum())})
    assert dataset[0]["area"] == int(np.count_nonzero(decode_rle(table["Heart"][0], 1024, 1024)))
    clone = pickle.loads(pickle.dumps(MaskDataset(cxr8, ids=ids, landmarks=False)))
    assert clone[2]["image_id"] == ids[2]
    loader = torch.utils.data.DataLoader(MaskDataset(cxr8, ids=ids, organs=["heart"]), batch_size=2)
    batch = next(iter(loader))
    assert batch["masks"].shape == (2, 1, 1024, 1024) and batch["masks"].dtype == torch.uint8
    assert batch["landmarks"].shape == (2, 120, 2) and batch["image_id"] == ids[:2]
    assert batch["metadata"]["row"].tolist() == [1, 2]


def test_dataset_loads_images(cxr8, table, tmp_path):
    first, second, third = table["Image Index"].iloc[:3]
    root = tmp_path / "images"
    (root / "nested" / "deeper").mkdir(parents=True)
    image = np.arange(1024 * 1024, dtype=np.uint32).reshape(1024, 1024).astype(np.uint8)
    cv2.imwrite(str(root / first), image)  # ROOT/ID
    cv2.imwrite(str(root / "nested" / "deeper" / second), image)  # found by name
    cv2.imwrite(str(root / third), image[:512])  # wrong size
    dataset = MaskDataset(cxr8, image_root=root, ids=[first, second, third], landmarks=False)
    np.testing.assert_array_equal(dataset[0]["image"], image)
    assert dataset[1]["image"].shape == (1024, 1024)
    with pytest.raises(InputError, match=r"image is 512x1024 but .* row 3 has masks of 1024x1024"):
        dataset[2]
    missing = MaskDataset(cxr8, image_root=root, ids=[table["Image Index"][3]], landmarks=False)
    with pytest.raises(UnreadableImageError, match="no unique image for id"):
        missing[0]
    with pytest.raises(InputError, match="image_root is not a folder"):
        MaskDataset(cxr8, image_root=tmp_path / "absent")


def test_loader_workers_read_their_own_rows(cxr8, table):
    """Forked DataLoader workers each read their own rows, though the parent opened its handle first.

    Run in a fresh interpreter: forking this test process, which has run OpenVINO and torch
    models in other tests, left it crashing (SIGSEGV) at its next subprocess start.
    """
    import json
    import subprocess
    import sys

    ids = table["Image Index"].iloc[:4].tolist()
    code = f"""
import json, torch
from chexmask.dataset import MaskDataset
dataset = MaskDataset({str(cxr8)!r}, ids={ids!r}, organs=["heart"], landmarks=False)
dataset[0]  # the parent opens its handle before the workers fork
loader = torch.utils.data.DataLoader(dataset, batch_size=1, num_workers=2, multiprocessing_context="fork")
print(json.dumps([b["image_id"][0] for b in loader]))
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.strip().splitlines()[-1]) == ids
