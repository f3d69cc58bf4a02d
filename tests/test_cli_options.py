"""One meaning and one default per option across the CLI (issue 27).

The options several commands share are defined once, in :mod:`chexmask.cli._options`;
these tests walk every command of the app (click's view of it) and check each shared
option against that one definition, and every other option name that several commands
use against the others.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pandas as pd
import typer
from typer.testing import CliRunner

from chexmask.cli import _options as o
from chexmask.cli import app

CLI = Path(__file__).resolve().parents[1] / "src" / "chexmask" / "cli"

#: The one definition of each shared option (its default and flag names).
SHARED = {
    "--workers": o.workers_option,
    "--chunk-size": o.chunk_size_option,
    "--rows-per-read": o.rows_per_read_option,
    "--device": o.device_option,
    "--progress": o.progress_option,
    "--threads": o.threads_option,
    "--weights": o.weights_option,
    "--uncertainty": o.uncertainty_option,
    "--backend": o.backend_option,
    "--shard": o.shard_option,
    "--errors": o.errors_option,
    "--atlas": o.atlas_option,
    "--rca": o.former_rca_option,
    "--id-column": lambda: o.id_column_option(writing=True),
}
#: The documented variants of a shared definition, by (option, command).
VARIANTS = {
    ("--id-column", "rca"): lambda: o.id_column_option(writing=False),  # reads the column: detected unless given
    ("--atlas", "rca"): lambda: o.atlas_option(required=True),  # rca needs an atlas; elsewhere it is off by default
    ("--rows-per-read", "convert"): lambda: o.rows_per_read_option(o.CONVERT_ROWS_PER_READ),  # a Parquet row group a read
    **{("--chunk-size", c): o.former_chunk_size_option for c in ("masks", "convert", "measure")},  # hidden former name of --rows-per-read
}
#: Options whose meaning differs per command: each command defines its own.
PER_COMMAND = {"--out", "--seed", "--split", "--limit", "--lr", "--batch-size", "--draws", "--landmarks"}
#: Deliberately their own default: the budget of a measured run in experiment adapt/retrain
#: (the model adapted or that builds the table, one torch thread, the JSRT-only augmentation).
OWN_DEFAULT = {(flag, f"experiment {c}") for flag in ("--weights", "--threads", "--robust-augment") for c in ("adapt", "retrain")}


def _commands(command=None, path=()):
    command = command or typer.main.get_command(app)
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name))
    else:
        yield " ".join(path), command


def _options() -> dict[str, dict[str, object]]:
    """Long flag -> {command: click option}, for every option of every command."""
    found: dict[str, dict[str, object]] = defaultdict(dict)
    for name, command in _commands():
        for param in command.params:
            if param.param_type_name == "option":
                found[next(f for f in param.opts if f.startswith("--"))][name] = param
    return found


def _signature(param) -> tuple:
    default = tuple(param.default) if isinstance(param.default, list) else param.default
    return default, tuple(sorted(param.opts)), tuple(sorted(param.secondary_opts)), param.required


def _defined(info) -> tuple:
    """What a factory's ``OptionInfo`` becomes in click: the same four fields as :func:`_signature`."""
    decls = list(info.param_decls)
    opts = sorted(f for d in decls for f in d.split("/")[:1])
    secondary = sorted(d.split("/")[1] for d in decls if "/" in d)
    required = info.default is ...
    return (None if required else info.default), tuple(opts), tuple(secondary), required


def test_shared_options_take_their_default_and_flags_from_one_definition():
    options = _options()
    for flag, factory in SHARED.items():
        commands = options[flag]
        assert len(commands) >= 2, f"{flag} is shared by {sorted(commands)} only"
        for command, param in commands.items():
            if (flag, command) in OWN_DEFAULT:
                continue
            expected = _defined(VARIANTS.get((flag, command), factory)())
            assert _signature(param) == expected, f"{command} {flag}: {_signature(param)} != {expected}"


def test_every_other_option_name_means_one_default_across_commands():
    for flag, commands in _options().items():
        if flag in SHARED or flag in PER_COMMAND:
            continue
        signatures = {c: _signature(p) for c, p in commands.items() if (flag, c) not in OWN_DEFAULT}
        assert len(set(signatures.values())) <= 1, f"{flag} differs between commands: {signatures}"


def test_the_documented_exceptions_exist():
    options = _options()
    for flag, command in (*VARIANTS, *OWN_DEFAULT):
        assert command in options[flag], f"stale exception: {command} {flag}"
    # Their defaults as documented (README "Options with one meaning")
    assert options["--threads"]["experiment adapt"].default == 1
    assert options["--rows-per-read"]["convert"].default == 10 * options["--rows-per-read"]["masks"].default


def test_shared_options_are_defined_only_in_the_options_module():
    """No command spells a shared option's flag in its own ``typer.Option(...)``."""
    flags = "|".join(re.escape(f) for f in SHARED)
    pattern = re.compile(rf'typer\.Option\([^\n]*"(?:{flags})["/]')
    for path in sorted(CLI.glob("*.py")):
        if path.name != "_options.py":
            hits = pattern.findall(path.read_text(encoding="utf-8"))
            assert not hits, f"{path.name} defines a shared option itself: {hits}"


def test_id_column_has_one_help_in_segment_and_rca():
    options = _options()["--id-column"]
    assert set(options) == {"segment", "rca"}
    for param in options.values():
        assert param.help.startswith(o.ID_COLUMN_HELP)
    assert options["segment"].default == "Image ID" and options["rca"].default is None


def test_segment_writes_the_id_column_that_the_readers_detect(tiny_weights, jsrt_dir, tmp_path):
    """``--id-column`` names the column segment writes; formats.tables.id_column (rca's
    detection, when rca is given no --id-column) finds it, and the default ``Image ID``."""
    from chexmask.formats.tables import id_column

    image = min((jsrt_dir / "images").glob("*.png"))
    runner = CliRunner()
    for name in ("dicom_id", None):
        out = tmp_path / f"{name or 'default'}.csv"
        args = ["segment", str(image), "-o", str(out), "--weights", str(tiny_weights), "--uncertainty", "0",
                "-j", "0", "-b", "4", "--device", "cpu", "--no-progress"]
        if name:
            args += ["--id-column", name]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        df = pd.read_csv(out, dtype=str, keep_default_na=False)
        expected = name or "Image ID"
        assert df.columns[0] == expected and df[expected].tolist() == [image.name]
        assert id_column(df) == expected

