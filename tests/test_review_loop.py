"""The review loop end to end on a few real films: segment, export, correct, import, fine-tune, segment again."""

import json

import numpy as np
import pandas as pd
from test_labelstudio import ls_export
from typer.testing import CliRunner

from chexmask.cli import app
from chexmask.formats.landmarks import parse_landmarks
from chexmask.formats.tables import read_table

runner = CliRunner()


def _ok(args):
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    return res


def test_segment_export_correct_import_train_segment(jsrt_dir, tmp_path):
    hospital = tmp_path / "hospital"
    hospital.mkdir()
    ids = (jsrt_dir / "splits" / "val.txt").read_text().split()[:6]
    for i in ids:
        (hospital / f"{i}.png").symlink_to(jsrt_dir / "images" / f"{i}.png")
    _ok(["segment", str(hospital), "-o", str(tmp_path / "hospital.csv"), "--uncertainty", "0", "-j", "0", "--no-progress"])
    _ok(["export", "labelstudio", str(tmp_path / "hospital.csv"), str(hospital), "-o", str(tmp_path / "tasks.json")])
    tasks = json.loads((tmp_path / "tasks.json").read_text())

    def review(result, i):  # the reviewer moves the heart of the first film 1 % of the width to the right
        if i == 0:
            region = next(r for r in result if r["value"]["polygonlabels"] == ["Heart"])
            region["value"]["points"] = [[x + 1.0, y] for x, y in region["value"]["points"]]

    (tmp_path / "project.json").write_text(json.dumps(ls_export(tasks, review)))
    _ok(["import", "labelstudio", str(tmp_path / "project.json"), "-o", str(tmp_path / "corrected.csv")])
    corrected = read_table(tmp_path / "corrected.csv")
    assert corrected["Corrected"].tolist() == ["heart"] + [""] * 5
    predicted = read_table(tmp_path / "hospital.csv").set_index("Image ID")
    first = corrected.iloc[0]
    moved = parse_landmarks(first["Landmarks"])[94:, 0] - parse_landmarks(predicted.loc[first["ImageID"], "Landmarks"])[94:, 0]
    np.testing.assert_allclose(moved, 0.01 * first["Width"], atol=0.01)

    corrected["Split"] = ["train"] * 4 + ["val"] * 2  # in practice --val-fraction picks them
    corrected.to_csv(tmp_path / "split.csv", index=False)
    run = tmp_path / "run"
    _ok(["train", str(tmp_path / "split.csv"), "--images", str(hospital), "--init", "hybridgnet-multi-256", "--clavicles",
         "--input-norm", "zscore", "--refine-level", "2", "--refine-level", "1", "--basic-augment", "--epochs", "1",
         "--batch-size", "2", "--lr", "1e-5", "--threads", "1", "-o", str(run), "--no-progress"])
    _ok(["segment", str(hospital), "-o", str(tmp_path / "v2.csv"), "--weights", str(run / "best.safetensors"),
         "--uncertainty", "0", "-j", "0", "--no-progress"])
    again = pd.read_csv(tmp_path / "v2.csv")
    assert sorted(again["Image ID"]) == sorted(f"{i}.png" for i in ids)
    # One epoch at a tiny learning rate: the fine-tuned model still answers like the default on these films.
    before = np.stack([parse_landmarks(t) for t in predicted.sort_index()["Landmarks"]])
    after = np.stack([parse_landmarks(t) for t in again.sort_values("Image ID")["Landmarks"]])
    assert np.median(np.abs(after - before)) < 5.0
