"""The adaptation and retraining experiments, on a few real images and a tiny budget."""

import pandas as pd
import pytest
from safetensors import safe_open
from typer.testing import CliRunner

from chexmask.cli import app
from chexmask.formats.tables import read_table
from chexmask.model.retraining import Budget, adaptation, model_table

runner = CliRunner()


@pytest.fixture
def small_source(montgomery_dir, tmp_path):
    """A JSRT-layout folder of 4 train and 2 val Montgomery images (links to the shared files)."""
    root = tmp_path / "hospital"
    for sub in ("images", "landmarks", "masks", "splits"):
        (root / sub).mkdir(parents=True)
    splits = {s: (montgomery_dir / "splits" / f"{s}.txt").read_text().split() for s in ("train", "val")}
    chosen = {"train": splits["train"][:4], "val": splits["val"][:2]}
    for split, ids in chosen.items():
        (root / "splits" / f"{split}.txt").write_text("\n".join(ids) + "\n")
        for i in ids:
            (root / "images" / f"{i}.png").symlink_to(montgomery_dir / "images" / f"{i}.png")
            (root / "landmarks" / f"{i}.npz").symlink_to(montgomery_dir / "landmarks" / f"{i}.npz")
            (root / "masks" / f"{i}.png").symlink_to(montgomery_dir / "masks" / f"{i}.png")
    return root, chosen


def test_adaptation_fine_tunes_on_n_rows_and_scores_the_last_epoch(small_source, tmp_path):
    root, chosen = small_source
    table = adaptation(root, tmp_path / "out", counts=(2, 50), budget=Budget(draws=4, size=256))
    assert table["corrected_rows"].tolist() == [0, 2, 4]  # 50 is capped to the 4 train rows
    assert table["epochs"].tolist() == [0, 2, 1] and table["draws"].tolist() == [0, 4, 4]
    assert table["lungs_dice"].between(0.5, 1.0).all() and "heart_dice" not in table  # Montgomery: lungs only
    run = tmp_path / "out" / "n0002"
    rows = read_table(run / "n0002.parquet")
    assert sorted(rows.loc[rows.Split == "val", "ImageID"]) == sorted(chosen["val"]) and (rows.Split == "train").sum() == 2
    with safe_open(str(run / "last.safetensors"), "np") as f:
        assert f.metadata()["epoch"] == "1"  # the last of the 2 epochs, not a val-selected one


def test_a_model_table_reads_like_segment_output(small_source):
    root, chosen = small_source
    table = model_table("hybridgnet-multi-256", root, ("val",))
    assert table["ImageID"].tolist() == chosen["val"] and (table["Split"] == "val").all()
    assert {"Landmarks", "Right Lung", "Height", "Width", "Estimated Dice Lungs"} <= set(table.columns)


def test_retraining_trains_a_fresh_model_on_the_table_alone(small_source, tmp_path, jsrt_dir):
    root, _ = small_source
    out = tmp_path / "retrain"
    res = runner.invoke(app, ["experiment", "retrain", str(root), "--score", f"{jsrt_dir}:val", "-o", str(out),
                              "--draws", "8", "--size", "32"])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out / "retraining.csv")
    assert table["scored_on"].tolist() == ["jsrt:val"] and table["rows"].tolist() == [4] and table["size"].tolist() == [32]
    assert {"lungs_dice", "heart_dice"} <= set(table.columns)
    assert (out / "from-hospital" / "last.safetensors").exists()
    bad = runner.invoke(app, ["experiment", "retrain", str(root), "--score", str(jsrt_dir), "-o", str(out)])
    assert bad.exit_code == 2 and "FOLDER:SPLIT" in bad.output


def test_budget_epochs_cover_the_draws():
    assert Budget(draws=100).epochs(30) == 4 and Budget(draws=10).epochs(500) == 1
