"""`chexmask measure`: measures of published CheXmask rows, streamed, with bad rows in an errors file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from chexmask.cli import app
from chexmask.formats.measure_table import measure_table
from chexmask.formats.stream import decode_masks
from chexmask.formats.tables import read_table
from chexmask.measures import MEASURE_COLUMNS, measure_masks, measure_record

runner = CliRunner()
ORGANS = ("right_lung", "left_lung", "heart")


def measure(*args):
    return runner.invoke(app, ["measure", *map(str, args), "--no-progress"])


def _expected(row) -> dict:
    return measure_record(measure_masks(decode_masks(row, ORGANS)))


@pytest.mark.parametrize("name", ["ChestX-Ray8.csv", "CANDID-PTX.csv"])
def test_published_rows_are_measured_in_their_frame(chexmask_csv_dir, tmp_path, name):
    out = tmp_path / "m.csv"
    result = measure(chexmask_csv_dir / name, "-o", out)
    assert result.exit_code == 0, result.output
    assert "measured 50 of 50 rows" in result.output
    source = read_table(chexmask_csv_dir / name)
    got = pd.read_csv(out, keep_default_na=False)
    assert list(got.columns) == [source.columns[0], *MEASURE_COLUMNS]
    assert list(got.iloc[:, 0].astype(str)) == list(source.iloc[:, 0])
    for k in (0, 17, 49):
        expected, row = _expected(source.iloc[k].to_dict()), got.iloc[k]
        assert row["CTR"] == expected["CTR"] and row["Thorax Width (px)"] == expected["Thorax Width (px)"]
        assert row["Right Lung Area (px)"] == expected["Right Lung Area (px)"]
        assert row["Heart Width (mm)"] == "" and row["Row Spacing (mm)"] == ""  # tables hold no pixel spacing
    assert 0.3 < got["CTR"].astype(float).median() < 0.65
    assert pd.read_csv(tmp_path / "m.errors.csv").empty


def test_bad_rows_go_to_the_errors_file_and_the_others_are_measured(chexmask_csv_dir, tmp_path):
    rows = pd.read_csv(chexmask_csv_dir / "ChestX-Ray8.csv", dtype=str, keep_default_na=False)
    rows.loc[2, "Heart"] = "10 5 12"  # odd number of RLE values
    rows.loc[4, "Height"] = "abc"
    rows.loc[6, "Left Lung"] = "12 x"
    rows.loc[8, "Width"] = ""  # Height without Width
    rows.loc[9, "Height"] = "10"  # runs beyond a 10-row frame
    bad_csv = tmp_path / "bad.csv"
    rows.to_csv(bad_csv, index=False, lineterminator="\n")
    out = tmp_path / "m.parquet"
    result = measure(bad_csv, "-o", out, "--rows-per-read", "4", "-j", "2")
    assert result.exit_code == 1, result.output  # some rows failed
    assert "measured 45 of 50 rows" in result.output and "5 rows failed" in result.output
    errors = pd.read_csv(tmp_path / "m.errors.csv", dtype=str)
    assert list(errors.columns) == ["path", "error", "reason"]  # the errors table of `chexmask segment`
    assert list(errors["path"]) == [f"{bad_csv} row {n}" for n in (3, 5, 7, 9, 10)]
    assert errors["error"].tolist() == ["RLEError", "InputError", "RLEError", "InputError", "RLEError"]
    assert rows.loc[2, "Image Index"] in errors["reason"][0] and "column Heart" in errors["reason"][0]
    assert "Height is not a positive integer" in errors["reason"][1] and "column Left Lung" in errors["reason"][2]
    assert "Width is missing" in errors["reason"][3]
    got = pd.read_parquet(out)
    assert len(got) == 45 and list(got["Image Index"]) == [i for k, i in enumerate(rows["Image Index"]) if k not in (2, 4, 6, 8, 9)]
    assert got["Heart Area (px)"].dtype == np.int64
    assert got["CTR"].iloc[-1] == _expected(rows.iloc[-1].to_dict())["CTR"]


def test_physician_tables_are_measured_at_1024(chexmask_csv_dir, tmp_path):
    run = measure_table(chexmask_csv_dir / "CANDID-PTX_julia_annotations.csv", tmp_path / "p.csv")
    assert (run.measured, run.failed) == (50, 0)
    got = pd.read_csv(tmp_path / "p.csv")
    assert got["Thorax Width (px)"].max() <= 1024 and got["Right Lung Height (px)"].max() <= 1024


def test_a_segment_table_measures_to_its_own_columns(tiny_weights, xray_folder, tmp_path):
    from chexmask.inference.pipeline import segment_dataset

    segment_dataset([xray_folder], tmp_path / "seg.csv", weights=tiny_weights, uncertainty=0, workers=0, progress=False)
    measure_table(tmp_path / "seg.csv", tmp_path / "m.csv")
    seg = pd.read_csv(tmp_path / "seg.csv", keep_default_na=False)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "m.csv", keep_default_na=False), seg[["Image ID", *MEASURE_COLUMNS]])


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["{csv}", "-o", "{tmp}/m.xlsx"], 2, "the output must end in .csv or .parquet"),
        (["{tmp}/none.csv", "-o", "{tmp}/m.csv"], 2, "file not found"),
        (["{tmp}/nomasks.csv", "-o", "{tmp}/m.csv"], 2, "missing mask column(s) ['Left Lung']"),
        (["{csv}", "-o", "{tmp}/m.csv", "-j", "-1"], 2, "--workers must be >= 0"),
        (["{csv}", "-o", "{tmp}/m.csv", "--rows-per-read", "0"], 2, "Invalid value for '--rows-per-read'"),
        (["{csv}", "-o", "{tmp}/m.csv", "--rows-per-read", "5", "--chunk-size", "4"], 2,
         "--chunk-size is the former name of --rows-per-read; give one of them"),
    ],
)
def test_bad_command_lines_exit_2_and_leave_no_output(chexmask_csv_dir, tmp_path, args, code, message):
    pd.DataFrame({"ImageID": ["a"], "Right Lung": ["1 2"], "Heart": ["1 2"]}).to_csv(tmp_path / "nomasks.csv", index=False)
    args = [a.format(csv=chexmask_csv_dir / "ChestX-Ray8.csv", tmp=tmp_path) for a in args]
    result = measure(*args)
    assert result.exit_code == code and message in result.output, result.output
    assert not (tmp_path / "m.csv").exists() and not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("command", ["measure", "masks", "convert"])
def test_former_chunk_size_of_table_commands_still_works_with_a_note(tmp_path, command):
    """--chunk-size of the table commands is now --rows-per-read; the old name works and says so on stderr."""
    pd.DataFrame({"ImageID": ["a", "b", "c"], "Right Lung": ["1 2"] * 3, "Left Lung": ["5 2"] * 3, "Heart": ["9 2"] * 3,
                  "Height": ["10"] * 3, "Width": ["10"] * 3}).to_csv(tmp_path / "t.csv", index=False)
    out = tmp_path / ("m.csv" if command != "masks" else "masks")
    result = runner.invoke(app, [command, str(tmp_path / "t.csv"), "-o", str(out), "--chunk-size", "2",
                                 *(["--no-progress"] if command != "convert" else [])])
    assert result.exit_code == 0, result.output
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("note: --chunk-size is now --rows-per-read (in masks, convert and measure; ")


def test_every_row_failing_exits_1(tmp_path):
    pd.DataFrame({"ImageID": ["a", "b"], "Right Lung": ["x", "1"], "Left Lung": ["1 2", "1 2"], "Heart": ["1 2", "1 2"],
                  "Height": ["10", "10"], "Width": ["10", "10"]}).to_csv(tmp_path / "t.csv", index=False)
    result = measure(tmp_path / "t.csv", "-o", tmp_path / "m.csv")
    assert result.exit_code == 1 and "measured 0 of 2 rows" in result.output
    assert pd.read_csv(tmp_path / "m.csv").columns.tolist() == ["ImageID", *MEASURE_COLUMNS]


def test_measuring_runs_gives_the_numbers_of_the_decoded_masks(shared_data):
    """``chexmask measure`` measures a row's runs without painting masks: the same numbers, on published rows."""
    import math

    from chexmask.formats.stream import decode_runs
    from chexmask.measures import measure_runs

    folder = shared_data / "chexmask-format"
    if not folder.exists():
        pytest.skip(f"no published CheXmask rows at {folder}")
    rows = [r for path in sorted(folder.glob("*.csv")) for r in read_table(path).head(10).to_dict("records")]
    assert len(rows) >= 20
    for row in rows:
        a = measure_masks(decode_masks(row, ORGANS))
        _, width, runs = decode_runs(row, ORGANS)
        b = measure_runs(runs, width)
        assert all((math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k] for k in a), row.get("Height")
