"""One exit-code policy for every command (README, "Exit codes"): 0 done, 1 some or all inputs
failed or nothing could be done, 2 bad usage, 130 interrupted."""

from __future__ import annotations

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

import chexmask
from chexmask.cli import app
from chexmask.cli._errors import EXIT_CODES_EPILOG, exit_code, exit_on, finish_batch

runner = CliRunner()


def _commands(group, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a group (typer ships its own click)
            yield from _commands(command, (*prefix, name))
        elif not command.hidden:
            yield (*prefix, name), command


def test_every_command_states_the_policy_in_its_help():
    commands = dict(_commands(typer.main.get_command(app)))
    assert {("segment",), ("masks",), ("rca",), ("validate",), ("experiment", "failures"), ("import", "labelstudio")} <= set(commands)
    for name, command in commands.items():
        assert command.epilog == EXIT_CODES_EPILOG, name


@pytest.mark.parametrize(("exc", "code"), [
    (ValueError("--limit must be >= 1"), 2),
    (chexmask.InputError("t.csv", "file not found"), 2),
    (FileNotFoundError("bench.parquet"), 2),
    (chexmask.ChexmaskError("weights 'x': not a shipped model name"), 1),
    (ImportError("no module named ray"), 1),
])
def test_exceptions_map_to_the_policy(exc, code):
    assert exit_code(exc) == code
    with pytest.raises(typer.Exit) as caught, exit_on(type(exc)):
        raise exc
    assert caught.value.exit_code == code


@pytest.mark.parametrize(("total", "done", "failed", "code"), [(3, 3, 0, None), (3, 2, 1, 1), (3, 0, 3, 1), (0, 0, 0, None)])
def test_a_batch_exits_1_when_any_input_failed(total, done, failed, code, capsys):
    if code is None:
        finish_batch("done", total=total, done=done, failed=failed, errors="e.csv")
    else:
        with pytest.raises(typer.Exit) as caught:
            finish_batch("done", total=total, done=done, failed=failed, errors="e.csv")
        assert caught.value.exit_code == code
    assert capsys.readouterr().out == "done\n"


def test_unknown_options_exit_2_in_every_command():
    for name in (["segment"], ["measure", "t.csv"], ["masks", "t.csv"], ["experiment", "ctr", "jsrt"]):
        result = runner.invoke(app, [*name, "--no-such-option"])
        assert result.exit_code == 2, (name, result.output)


def test_measure_partial_failure_exits_1_and_a_clean_table_0(cxr8, tmp_path):
    rows = pd.read_csv(cxr8, dtype=str, keep_default_na=False).head(2)
    rows.to_csv(tmp_path / "good.csv", index=False)
    rows.assign(Heart=["1 x", rows.loc[1, "Heart"]]).to_csv(tmp_path / "bad.csv", index=False)
    good = runner.invoke(app, ["measure", str(tmp_path / "good.csv"), "-o", str(tmp_path / "g.csv"), "--no-progress", "-j", "0"])
    assert good.exit_code == 0, good.output
    bad = runner.invoke(app, ["measure", str(tmp_path / "bad.csv"), "-o", str(tmp_path / "b.csv"), "--no-progress", "-j", "0"])
    assert bad.exit_code == 1 and "1 rows failed" in bad.output
    assert len(pd.read_csv(tmp_path / "b.csv")) == 1  # the good row is still written
    usage = runner.invoke(app, ["measure", str(tmp_path / "good.csv"), "-o", str(tmp_path / "m.xlsx")])
    assert usage.exit_code == 2 and "must end in .csv or .parquet" in usage.output
