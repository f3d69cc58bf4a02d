"""`chexmask build` on miniature copies of each source, and `segment --sample --rca --overlays`."""

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from chexmask.cli import app
from chexmask.formats.tables import read_table
from chexmask.sources import SOURCES
from sources_fixtures import MAKERS

runner = CliRunner()


@pytest.mark.parametrize("name", list(SOURCES))
def test_build_writes_the_source_table(name, tmp_path, jsrt_dir, tiny_weights):
    root = tmp_path / "root"
    expected = MAKERS[name](root, jsrt_dir)
    out = tmp_path / f"{name}.csv"
    result = runner.invoke(app, ["build", name, str(root), "-o", str(out), "--weights", str(tiny_weights),
                                 "--uncertainty", "2", "--workers", "0", "--device", "cpu", "--no-progress"])
    assert result.exit_code == 0, result.output
    table = read_table(out)
    id_col = SOURCES[name].id_column
    assert table.columns[0] == id_col
    assert table[id_col].tolist() == sorted(expected)
    assert (table["Height"] == 256).all() and (table["Width"] == 256).all()
    assert table["Quality Flag"].isin(["good", "review"]).all()
    index = pd.read_csv(tmp_path / f"{name}.index.csv")
    assert index[id_col].tolist() == sorted(expected)
    record = json.loads((tmp_path / f"{name}.run.json").read_text())
    assert record["command"] == "build" and record["args"]["source"] == name  # the real command, not "segment"


def test_build_rejects_unknown_source(tmp_path, tiny_weights):
    result = runner.invoke(app, ["build", "padchets", str(tmp_path), "-o", str(tmp_path / "o.csv"), "--weights", str(tiny_weights)])
    assert result.exit_code == 2
    assert "did you mean 'padchest'" in result.output


@pytest.fixture(scope="module")
def small_atlas(tmp_path_factory, jsrt_dir, tiny_weights):
    from chexmask.inference.segmenter import Segmenter
    from chexmask.quality.rca import build_atlas

    path = tmp_path_factory.mktemp("atlas") / "atlas.npz"
    build_atlas(jsrt_dir, Segmenter(tiny_weights), split="val").save(path)
    return path


def test_segment_sample_with_rca_and_overlays(tmp_path, tiny_weights, small_atlas):
    out = tmp_path / "sample.parquet"
    result = runner.invoke(app, ["segment", "--sample", "-o", str(out), "--weights", str(tiny_weights), "--uncertainty", "3",
                                 "--rca", str(small_atlas), "--overlays", str(tmp_path / "ov"), "--workers", "0",
                                 "--device", "cpu", "--no-progress"])
    assert result.exit_code == 0, result.output
    row = read_table(out).iloc[0]
    assert row["Image ID"] == "00cfd1c1.jpg" and (row["Height"], row["Width"]) == (2000, 2000)
    for column in ("Dice RCA (Mean)", "Dice RCA (Max)", "Dice RCA Lungs (Mean)", "Dice RCA Heart (Max)"):
        assert 0.0 <= row[column] <= 1.0, column
    assert row["Dice RCA (Mean)"] <= row["Dice RCA (Max)"]
    assert row["Quality Flag"] in ("good", "review")
    assert (tmp_path / "ov" / "00cfd1c1.png").stat().st_size > 1000


def test_segment_without_inputs_says_so(tmp_path):
    result = runner.invoke(app, ["segment", "-o", str(tmp_path / "x.csv")])
    assert result.exit_code == 2
    assert "give image files or folders, or --sample" in result.output
