"""Every message of a command is printed once: results on stdout, plain lines on stderr (issue 14).

The CLI configures logging as in a process of its own: pytest's capture handlers are
taken off the root logger for these tests, so a command that both echoed a message and
logged it (the old ``logging.basicConfig`` INFO lines) would show it twice here.
"""

from __future__ import annotations

import logging
import shutil
from collections import Counter

import pandas as pd
import pytest
from typer.testing import CliRunner

from chexmask.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def process_logging(monkeypatch):
    """The root logger as in a fresh process (no handlers), restored after the test."""
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", logging.WARNING)


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_once(result, *needles):
    """Each needle is on exactly one line; no line repeats; no logging prefixes."""
    lines = [line for line in result.output.splitlines() if line.strip()]
    for needle in needles:
        hits = [line for line in lines if needle in line]
        assert len(hits) == 1, (needle, result.output)
    repeated = [line for line, n in Counter(lines).items() if n > 1]
    assert repeated == [], result.output
    assert not [line for line in lines if line.startswith(("INFO ", "WARNING ", "DEBUG "))], result.output


@pytest.fixture
def small_table(cxr8, tmp_path):
    """Three published ChestX-Ray8 rows, the second with a malformed Heart RLE."""
    rows = pd.read_csv(cxr8, dtype=str, keep_default_na=False).head(3)
    rows.loc[1, "Heart"] = "1 x"
    path = tmp_path / "t.csv"
    rows.to_csv(path, index=False)
    return path


def test_convert_says_it_once(small_table, tmp_path):
    result = invoke("convert", small_table, "-o", tmp_path / "t.parquet")
    assert result.exit_code == 0, result.output
    assert_once(result, "converted 3 rows")


def test_measure_reports_bad_rows_in_the_errors_file_not_line_by_line(small_table, tmp_path):
    result = invoke("measure", small_table, "-o", tmp_path / "m.csv", "--no-progress")
    assert result.exit_code == 1, result.output  # some rows failed
    assert_once(result, "measured 2 of 3 rows", "1 rows failed")
    assert "non-integer token" not in result.output  # the reason is in m.errors.csv
    assert "non-integer token" in (tmp_path / "m.errors.csv").read_text()


def test_masks_reports_bad_rows_in_the_errors_file_not_line_by_line(small_table, tmp_path):
    result = invoke("masks", small_table, "-o", tmp_path / "png", "--no-progress", "-j", "1")
    assert result.exit_code == 1
    assert_once(result, "wrote the masks of 2 images", "1 rows skipped")
    assert "skipped t.csv" not in result.output


def test_evaluate_says_each_problem_once_and_shows_progress(small_table, tmp_path):
    other = tmp_path / "other.csv"
    pd.read_csv(small_table, dtype=str, keep_default_na=False).assign(**{"Image Index": ["x1", "x2", "x3"]}).to_csv(other, index=False)
    result = invoke("evaluate", small_table, other, "-o", tmp_path / "r", "--bootstrap", "0", "--no-figures", "--no-progress")
    assert result.exit_code == 1
    assert_once(result, "no image was compared", "problems recorded")
    assert "evaluate:" not in result.stderr
    shown = invoke("evaluate", small_table, small_table.with_name("t.csv"), "-o", tmp_path / "r2", "--no-figures")
    assert "file stems must differ" in shown.stderr  # an input error: no bar
    copy = tmp_path / "copy.csv"
    shutil.copy(small_table, copy)
    shown = invoke("evaluate", small_table, copy, "-o", tmp_path / "r3", "--bootstrap", "0", "--no-figures", "--progress")
    assert "evaluate: 100%" in shown.stderr and "img" in shown.stderr


def test_segment_says_each_thing_once(shared_data, tiny_weights, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(shared_data / "samples" / "00cfd1c1.jpg", folder)
    (folder / "bad.png").write_text("not an image\n")
    out = tmp_path / "o.csv"
    result = invoke("segment", folder, "-o", out, "--weights", tiny_weights, "--uncertainty", "0", "-j", "0",
                    "--device", "cpu", "--no-progress")
    assert result.exit_code == 1, result.output  # one input failed
    assert_once(result, "segmented 1 of 2 images", "1 inputs failed")
    assert result.stdout.count("\n") == 1  # the headline; the failures go to stderr
    again = invoke("segment", folder, "-o", out, "--weights", tiny_weights, "--uncertainty", "0", "-j", "0",
                   "--device", "cpu", "--no-progress")
    assert_once(again, "already complete", "segmented 1 of 2 images")
    assert [line for line in again.stderr.splitlines() if "already complete" in line][0].startswith(str(out))


def test_build_says_each_thing_once(tmp_path, jsrt_dir, tiny_weights):
    from sources_fixtures import MAKERS

    MAKERS["chestxray8"](tmp_path / "root", jsrt_dir)
    result = invoke("build", "chestxray8", tmp_path / "root", "-o", tmp_path / "b.csv", "--weights", tiny_weights,
                    "--uncertainty", "0", "--workers", "0", "--device", "cpu", "--no-progress")
    assert result.exit_code == 0, result.output
    assert_once(result, "segmented 3 of 3 chestxray8 images", "have no image under the root")
    assert "warning: chestxray8: 1 of" in result.stderr  # one plain line


@pytest.mark.filterwarnings("always::UserWarning")  # shown, as outside pytest (its config makes warnings errors)
def test_python_warnings_are_one_plain_line(small_table, tmp_path):
    sizes = pd.read_csv(small_table, dtype=str, keep_default_na=False)
    sizes.loc[:, ["Height", "Width"]] = ""
    blank = tmp_path / "blank.csv"
    sizes.to_csv(blank, index=False)
    result = invoke("evaluate", small_table, blank, "-o", tmp_path / "r", "--bootstrap", "0", "--no-figures", "--no-progress")
    lines = [line for line in result.stderr.splitlines() if "empty Height and Width" in line]
    assert len(lines) == 1 and lines[0].startswith("warning: "), result.stderr
    assert "warnings.warn" not in result.stderr


def test_verbose_adds_debug_lines_with_their_module(small_table, tmp_path):
    result = invoke("--verbose", "convert", small_table, "-o", tmp_path / "t.parquet")
    assert "debug: chexmask.formats.convert: converted 3 rows" in result.stderr
    assert result.stdout.strip().startswith("converted 3 rows")


def test_workers_option_means_the_same_in_every_dataset_command():
    """-j/--workers: one help text, one default, 0 = no worker processes, in segment, build, masks and measure."""
    from typer.testing import CliRunner

    from chexmask.cli import app
    from chexmask.cli._options import WORKERS_HELP

    runner = CliRunner()
    for command in (["segment"], ["build"], ["masks"], ["measure"]):
        text = " ".join(runner.invoke(app, [*command, "--help"], terminal_width=400).output.split())
        assert " ".join(WORKERS_HELP.split()) in text, command
