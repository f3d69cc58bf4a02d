"""chexmask train from CheXmask tables: the same targets as the folder, splits, bad rows, frames."""

import json

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import load_file
from typer.testing import CliRunner

from chexmask.anatomy import ALL_ORGANS, organ_slices
from chexmask.cli import app
from chexmask.formats.landmarks import format_landmarks, parse_landmarks
from chexmask.formats.source_table import source_table
from chexmask.formats.tables import write_table
from chexmask.model.data import load_source
from chexmask.model.table_data import hash_split, load_table
from chexmask.model.train import TrainConfig, train
from chexmask.preprocess import Geometry, to_model_frame

runner = CliRunner()


def test_a_source_table_trains_like_its_folder(montgomery_dir, tmp_path):
    """Expert rows written as a table load to the folder's images and targets (lungs only: heart NaN)."""
    table = tmp_path / "mc.parquet"
    write_table(source_table(montgomery_dir, ("val",)), table)
    from_table, problems = load_table(table, montgomery_dir / "images", "val", 64, organs=ALL_ORGANS)
    from_folder = load_source(montgomery_dir, "val", 64, organs=ALL_ORGANS)
    assert problems == [] and from_table.ids == from_folder.ids and from_table.sources[0] == "mc"
    np.testing.assert_array_equal(from_table.images, from_folder.images)
    np.testing.assert_allclose(from_table.targets, from_folder.targets, atol=0.01 / 64)  # 2-decimal landmarks
    assert np.isnan(from_table.targets[:, organ_slices(organs=ALL_ORGANS)["heart"]]).all()


def test_split_column_else_a_stable_hash(jsrt_dir, tmp_path):
    df = source_table(jsrt_dir, ("val",))
    df["Split"] = ["train"] * 3 + ["test"] * 3 + ["val"] * (len(df) - 6)
    write_table(df, tmp_path / "split.csv")
    train_rows, _ = load_table(tmp_path / "split.csv", jsrt_dir / "images", "train", 32)
    val_rows, _ = load_table(tmp_path / "split.csv", jsrt_dir / "images", "val", 32)
    assert train_rows.ids == df.ImageID[:3].tolist() and val_rows.ids == df.ImageID[6:].tolist()  # test rows never load
    # Without the column: the id's hash decides, whatever the order of the table.
    ids = [f"img{i:04d}" for i in range(2000)]
    assert 0.08 < np.mean([hash_split(i) == "val" for i in ids]) < 0.12
    assert [hash_split(i) for i in ids] == [hash_split(i) for i in ids[::-1]][::-1]
    write_table(df.drop(columns="Split").iloc[::-1], tmp_path / "nosplit.csv")
    val_hash, _ = load_table(tmp_path / "nosplit.csv", jsrt_dir / "images", "val", 32, val_fraction=0.5)
    assert sorted(val_hash.ids) == sorted(i for i in df.ImageID if hash_split(i, 0.5) == "val")


def test_bad_rows_are_reported_one_by_one_and_left_out(jsrt_dir, tmp_path):
    df = source_table(jsrt_dir, ("val",)).iloc[:6].copy()
    df["Split"] = "train"
    df.loc[1, "ImageID"] = "not-there"
    df.loc[2, ["Height", "Width"]] = [1000, 1024]  # another frame than the image's
    df.loc[3, "Landmarks"] = "1,2,3"
    df.loc[4, "Landmarks"] = format_landmarks(np.full((120, 2), np.nan))
    points = parse_landmarks(df.loc[5, "Landmarks"]) * 3.0  # e.g. landmarks of a 3x larger frame
    df.loc[5, "Landmarks"] = format_landmarks(points)
    write_table(df, tmp_path / "bad.csv")
    data, problems = load_table(tmp_path / "bad.csv", jsrt_dir / "images", "train", 32)
    assert data.ids == [df.ImageID[0]]
    where = [p[0] for p in problems]
    assert where == [f"{tmp_path / 'bad.csv'} row {n} (ImageID {df.ImageID[n - 1]!r})" for n in (2, 3, 4, 5, 6)]
    reasons = [p[2] for p in problems]
    assert "no unique image for id 'not-there'" in reasons[0]
    assert "frame (Height x Width) is 1000 x 1024 but its image is 1024 x 1024" in reasons[1]
    assert "expected 240 numbers" in reasons[2] and "annotate no organ" in reasons[3]
    assert "outside the 1024 x 1024 frame" in reasons[4]


def test_a_table_in_the_1024_frame_maps_to_the_image(montgomery_dir, tmp_path):
    """Physician-layout tables (no Height/Width) are in the preprocessed 1024 frame: mapped back, not guessed."""
    df = source_table(montgomery_dir, ("val",))
    for i, row in df.iterrows():
        geom = Geometry.for_shape(row.Height, row.Width, 1024)
        df.loc[i, "Landmarks"] = format_landmarks(to_model_frame(parse_landmarks(row.Landmarks), geom))
    write_table(df.drop(columns=["Height", "Width"]), tmp_path / "physician.csv")
    data, problems = load_table(tmp_path / "physician.csv", montgomery_dir / "images", "val", 64)
    folder = load_source(montgomery_dir, "val", 64)
    assert problems == [] and data.ids == folder.ids
    np.testing.assert_allclose(data.targets, folder.targets, atol=0.02 / 64)


def test_corrected_only_trains_the_organs_a_reviewer_moved(jsrt_dir, tmp_path):
    df = source_table(jsrt_dir, ("val",)).iloc[:3].copy()
    df["Corrected"] = ["heart", "right_lung;left_lung", ""]
    write_table(df, tmp_path / "reviewed.csv")
    data, problems = load_table(tmp_path / "reviewed.csv", jsrt_dir / "images", "val", 32, corrected_only=True)
    s = organ_slices()
    assert data.ids == df.ImageID[:2].tolist() and "lists no corrected organ" in problems[0][2]
    assert np.isfinite(data.targets[0, s["heart"]]).all() and np.isnan(data.targets[0, : s["heart"].start]).all()
    assert np.isnan(data.targets[1, s["heart"]]).all() and np.isfinite(data.targets[1, : s["heart"].start]).all()
    everything, _ = load_table(tmp_path / "reviewed.csv", jsrt_dir / "images", "val", 32)
    assert np.isfinite(everything.targets).all()
    write_table(df.drop(columns="Corrected"), tmp_path / "plain.csv")
    with pytest.raises(Exception, match="needs a 'Corrected' column"):
        load_table(tmp_path / "plain.csv", jsrt_dir / "images", "val", 32, corrected_only=True)


def test_cli_trains_from_a_table_mixed_with_a_folder(jsrt_dir, montgomery_dir, tmp_path):
    df = source_table(jsrt_dir, ("train", "val")).iloc[:8].copy()
    df["Split"] = ["train"] * 6 + ["val"] * 2
    df.loc[0, "ImageID"] = "ghost"
    table = tmp_path / "hospital.csv"
    write_table(df, table)
    out = tmp_path / "run"
    res = runner.invoke(app, ["train", str(table), str(montgomery_dir), "--images", str(jsrt_dir / "images"), "--size", "64",
                              "--epochs", "1", "--batch-size", "8", "--threads", "1", "-o", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    hist = json.loads((out / "history.json").read_text())
    assert set(hist[0]["val"]) == {"hospital", "montgomery"}
    errors = pd.read_csv(out / "train.errors.csv")
    assert errors.columns.tolist()[:3] == ["path", "error", "reason"] and "'ghost'" in errors.path[0]
    assert not (out / "val.errors.csv").exists()


def test_cli_table_errors_are_clear(jsrt_dir, tmp_path):
    df = source_table(jsrt_dir, ("val",)).iloc[:2].copy()
    df["Split"] = "train"
    write_table(df, tmp_path / "t.csv")
    res = runner.invoke(app, ["train", str(tmp_path / "t.csv"), "-o", str(tmp_path / "r")])
    assert res.exit_code == 2 and "needs --images" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["train", str(tmp_path / "t.csv"), "--images", str(jsrt_dir / "images"), "--size", "32",
                              "--epochs", "1", "-o", str(tmp_path / "r"), "--no-progress"])
    assert res.exit_code == 1 and "no val images" in res.output and "Split" in res.output


def test_a_table_run_is_deterministic(jsrt_dir, tmp_path):
    df = source_table(jsrt_dir, ("train", "val")).iloc[:6].copy()
    df["Split"] = ["train"] * 4 + ["val"] * 2
    write_table(df, tmp_path / "t.parquet")
    cfg = dict(sources=[str(tmp_path / "t.parquet")], images=str(jsrt_dir / "images"), size=32, epochs=1, batch_size=2, threads=1)
    a = train(TrainConfig(out_dir=str(tmp_path / "a"), **cfg), progress=False)
    b = train(TrainConfig(out_dir=str(tmp_path / "b"), **cfg), progress=False)
    wa, wb = load_file(a), load_file(b)
    assert wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa)


def test_a_chexmask_u_table_trains_from_its_mean_landmarks(jsrt_dir, tmp_path):
    df = source_table(jsrt_dir, ("val",)).iloc[:3].rename(columns={"Landmarks": "Landmarks (Mean)"})
    write_table(df, tmp_path / "u.csv")
    data, problems = load_table(tmp_path / "u.csv", jsrt_dir / "images", "val", 32)
    plain, _ = load_table(_plain(jsrt_dir, tmp_path), jsrt_dir / "images", "val", 32)
    assert problems == [] and data.ids == plain.ids
    np.testing.assert_array_equal(data.targets, plain.targets)


def _plain(jsrt_dir, tmp_path):
    write_table(source_table(jsrt_dir, ("val",)).iloc[:3], tmp_path / "plain.csv")
    return tmp_path / "plain.csv"
