"""Mask export: writer registry, COCO RLE, each format on published rows, bad rows, CLI."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from chexmask.cli import app
from chexmask.formats.mask_writers import WRITERS, coco_rle, get_writer
from chexmask.formats.masks_export import export_masks
from chexmask.masks.rle import decode_rle

COLUMNS = {"right_lung": "Right Lung", "left_lung": "Left Lung", "heart": "Heart"}


@pytest.fixture(scope="module")
def some_ids(table):
    return list(table["Image Index"].iloc[[0, 9, 33]])


def expected_masks(table, image_id):
    row = table.loc[table["Image Index"] == image_id].iloc[0]
    return {o: decode_rle(row[c], row["Height"], row["Width"]) for o, c in COLUMNS.items()}


def read_errors(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_registry_and_unknown_name():
    assert list(WRITERS) == ["png", "npz", "nifti", "coco"]
    with pytest.raises(ValueError, match=r"unknown mask format 'nii'; .* \(did you mean 'nifti'\?\)"):
        get_writer("nii")


@pytest.mark.parametrize(
    ("mask", "counts"),
    [
        (np.array([[0, 1], [1, 1]]), "13"),  # column-major: 0 | 1 1 1
        (np.array([[1, 1], [0, 0]]), "01100"),  # empty first run; later runs are deltas
        (np.zeros((2, 3)), "6"),
        (np.ones((1, 40)), "0X1"),  # 40 = 8 + 1 << 5: "8 | more" then "1"
    ],
)
def test_coco_rle_toy(mask, counts):
    assert coco_rle(mask) == {"size": list(mask.shape), "counts": counts}


def test_coco_rle_matches_pycocotools(table):
    mask_api = pytest.importorskip("pycocotools.mask")
    row = table.iloc[5]
    for column in COLUMNS.values():
        mask = decode_rle(row[column], row["Height"], row["Width"])
        ref = mask_api.encode(np.asfortranarray(mask // 255))
        assert coco_rle(mask)["counts"] == ref["counts"].decode()


def test_png_one_file_per_organ_at_original_size(cxr8, table, some_ids, tmp_path):
    summary = export_masks(cxr8, tmp_path, fmt="png", ids=some_ids)
    assert (summary.written, summary.failed) == (3, 0)
    assert read_errors(summary.errors_path) == []
    for image_id in some_ids:
        for organ, mask in expected_masks(table, image_id).items():
            png = cv2.imread(str(tmp_path / organ / image_id), cv2.IMREAD_UNCHANGED)
            assert png.dtype == np.uint8 and png.shape == mask.shape
            np.testing.assert_array_equal(png, mask)  # uint8 {0, 255}
    info = json.loads((tmp_path / "run.json").read_text())  # the provenance record of every command
    assert list(info)[:7] == ["chexmask", "command", "args", "started", "finished", "seconds", "counts"]
    assert info["command"] == "masks" and info["started"].endswith("+00:00") and info["started"] <= info["finished"]
    assert info["args"]["format"] == "png" and info["counts"] == {"written": 3, "failed": 0} and info["args"]["ids"] == 3


def test_npz(cxr8, table, some_ids, tmp_path):
    export_masks(cxr8, tmp_path, fmt="npz", ids=some_ids, organs=["heart", "left_lung"])
    with np.load(tmp_path / (some_ids[1][: -len(".png")] + ".npz")) as data:
        assert sorted(data.files) == ["heart", "left_lung"]
        expected = expected_masks(table, some_ids[1])
        np.testing.assert_array_equal(data["heart"], expected["heart"])


def test_nifti(cxr8, table, some_ids, tmp_path):
    nib = pytest.importorskip("nibabel")
    export_masks(cxr8, tmp_path, fmt="nifti", ids=some_ids[:1])
    stem = some_ids[0][: -len(".png")]
    data = np.asarray(nib.load(tmp_path / "heart" / f"{stem}.nii.gz").dataobj)
    np.testing.assert_array_equal(data.T, expected_masks(table, some_ids[0])["heart"] // 255)  # {0, 1} labels


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # pycocotools
def test_coco_annotations(cxr8, table, some_ids, tmp_path):
    export_masks(cxr8, tmp_path, fmt="coco", ids=some_ids, workers=2)
    coco = json.loads((tmp_path / "annotations.json").read_text())
    assert [c["name"] for c in coco["categories"]] == ["right_lung", "left_lung", "heart"]
    # Table order, whatever the workers' timing.
    order = [i for i in table["Image Index"] if i in set(some_ids)]
    assert [im["file_name"] for im in coco["images"]] == order
    assert len(coco["annotations"]) == 9
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # spool files removed
    mask_api = pytest.importorskip("pycocotools.mask")
    for ann in coco["annotations"]:
        image = coco["images"][ann["image_id"] - 1]
        organ = coco["categories"][ann["category_id"] - 1]["name"]
        mask = expected_masks(table, image["file_name"])[organ]
        rle = {"size": ann["segmentation"]["size"], "counts": ann["segmentation"]["counts"].encode()}
        np.testing.assert_array_equal(mask_api.decode(rle).astype(bool), mask > 0)
        assert ann["area"] == int(np.count_nonzero(mask))
        assert ann["bbox"] == mask_api.toBbox(rle).tolist()


def test_physician_tables_are_1024(chexmask_csv_dir, tmp_path):
    path = chexmask_csv_dir / "CANDID-PTX_julia_annotations.csv"
    first = pd.read_csv(path, dtype=str, keep_default_na=False, nrows=1)["ImageID"][0]
    export_masks(path, tmp_path, fmt="npz", ids=[first], organs=["heart"])
    with np.load(tmp_path / (first[: -len(".jpg")] + ".npz")) as data:
        assert data["heart"].shape == (1024, 1024)


@pytest.fixture()
def bad_table(cxr8, tmp_path):
    """Eight published rows, four of them broken in different ways."""
    frame = pd.read_csv(cxr8, dtype=str, keep_default_na=False, nrows=8)
    frame.loc[1, "Heart"] = "12 5 x"
    frame.loc[2, "Height"] = ""
    frame.loc[3, "Image Index"] = "../escape.png"
    frame.loc[4, "Image Index"] = frame.loc[0, "Image Index"]
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False, lineterminator="\n")
    return path, frame


def test_bad_rows_are_recorded_and_skipped(bad_table, tmp_path):
    path, frame = bad_table
    summary = export_masks(path, tmp_path / "out", fmt="png", workers=2, chunksize=3)
    assert (summary.written, summary.failed) == (4, 4)
    errors = sorted(read_errors(summary.errors_path), key=lambda e: int(e["path"].rsplit(" ", 1)[1]))
    assert list(errors[0]) == ["path", "error", "reason"]  # the errors table of every command
    assert [e["path"] for e in errors] == [f"{path} row {n}" for n in (2, 3, 4, 5)]
    assert errors[0]["error"] == "RLEError"
    assert "column Heart: non-integer token 'x'" in errors[0]["reason"]
    assert "image size column Height is missing" in errors[1]["reason"]
    assert "cannot be used as a relative output path" in errors[2]["reason"]
    assert errors[3]["error"] == "DuplicateId"
    written = sorted(p.name for p in (tmp_path / "out" / "heart").iterdir())
    expected = [frame.loc[i, "Image Index"] for i in (0, 5, 6, 7)]
    assert written == sorted(expected)
    assert not (tmp_path / "escape.png").exists()


def test_min_rca_filter(cxr8, table, tmp_path):
    summary = export_masks(cxr8, tmp_path, fmt="coco", min_rca=0.85, organs=["heart"])
    assert summary.written == int((table["Dice RCA (Mean)"] >= 0.85).sum())


def test_bad_arguments(cxr8, tmp_path):
    with pytest.raises(ValueError, match=r"organs must be a non-empty subset"):
        export_masks(cxr8, tmp_path, organs=["lungs"])
    with pytest.raises(ValueError, match="--workers must be >= 0"):
        export_masks(cxr8, tmp_path, workers=-1)


runner = CliRunner()


def test_cli_masks(cxr8, some_ids, tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(some_ids[:2]) + "\n")
    result = runner.invoke(
        app, ["masks", str(cxr8), "-o", str(tmp_path / "o"), "--format", "npz", "--ids", str(ids),
              "--min-rca", "0.5", "--workers", "0", "--no-progress"],
    )
    assert result.exit_code == 0, result.output
    assert "wrote the masks of 2 images" in result.stdout
    assert len(list((tmp_path / "o").glob("*.npz"))) == 2


def test_cli_masks_failures_exit_1(bad_table, tmp_path):
    path, _ = bad_table
    result = runner.invoke(app, ["masks", str(path), "-o", str(tmp_path / "o"), "-j", "1", "--no-progress"])
    assert result.exit_code == 1
    assert "4 rows skipped; see" in result.stderr and "errors.csv" in result.stderr
    result = runner.invoke(app, ["masks", str(path), "-o", str(tmp_path / "o"), "--format", "jpg"])
    assert result.exit_code == 2 and "unknown mask format 'jpg'" in result.stderr  # a bad option


def test_cli_convert_round_trip(cxr8, tmp_path):
    result = runner.invoke(app, ["convert", str(cxr8), "-o", str(tmp_path / "t.parquet")])
    assert result.exit_code == 0 and "converted 50 rows" in result.stdout
    result = runner.invoke(app, ["convert", str(tmp_path / "t.parquet"), "-o", str(tmp_path / "t.csv")])
    assert result.exit_code == 0
    assert (tmp_path / "t.csv").read_bytes() == cxr8.read_bytes()
    result = runner.invoke(app, ["convert", str(tmp_path / "missing.csv"), "-o", str(tmp_path / "x.parquet")])
    assert result.exit_code == 2 and "missing.csv: file not found" in result.stderr  # an input named on the command line
