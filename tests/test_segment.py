"""`chexmask segment`: the command line, its exit codes, and resuming after kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from typer.testing import CliRunner

from chexmask.cli import app
from chexmask.model.default import DEFAULT_MODEL

runner = CliRunner()


def segment(*args: str):
    return runner.invoke(app, ["segment", *map(str, args), "--no-progress", "--device", "cpu"])


def base(weights, out):
    return ["-o", out, "--weights", weights, "--uncertainty", "2", "-j", "0", "-b", "4"]


def test_segment_writes_the_table_and_reports(tiny_weights, xray_folder, tmp_path):
    out = tmp_path / "cxr.csv"
    result = segment(xray_folder, *base(tiny_weights, out), "--id-column", "Image Index")
    assert result.exit_code == 1, result.output  # 2 of 7 inputs failed
    assert "segmented 5 of 7 images" in result.output and "2 inputs failed" in result.output
    df = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert df.columns[0] == "Image Index" and len(df) == 5
    assert (tmp_path / "cxr.errors.csv").exists() and (tmp_path / "cxr.run.json").exists()
    assert "Traceback" not in result.output


def test_every_input_failing_exits_1(tiny_weights, xray_folder, tmp_path):
    result = segment(xray_folder / "notes.png", *base(tiny_weights, tmp_path / "o.csv"))
    assert result.exit_code == 1
    assert "segmented 0 of 1" in result.output and "1 inputs failed" in result.output


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["nowhere"], 2, "error: nowhere: no such file or folder"),
        (["{folder}", "--shard", "2/2"], 2, "error: --shard 2/2: need N >= 1 and 0 <= I < N"),
        (["{folder}", "--uncertainty", "-1"], 2, "error: --uncertainty must be >= 0"),
        (["{folder}", "--engine", "dask"], 2, "error: --engine 'dask': expected one of"),
    ],
)
def test_bad_command_lines_exit_2_with_a_message(tiny_weights, xray_folder, tmp_path, args, code, message):
    args = [a.replace("{folder}", str(xray_folder)) for a in args]
    result = segment(args[0], *base(tiny_weights, tmp_path / "o.csv"), *args[1:])
    assert result.exit_code == code and message in result.output
    assert "Traceback" not in result.output


def test_bad_output_suffix_and_unknown_weights(xray_folder, tmp_path):
    result = segment(xray_folder, "-o", tmp_path / "o.xlsx")
    assert result.exit_code == 2 and "the output must end in .csv or .parquet" in result.output
    result = segment(xray_folder, "-o", tmp_path / "o.csv", "--weights", "hybridgnet-jsrt-265")
    assert result.exit_code == 1 and "error: weights 'hybridgnet-jsrt-265'" in result.output


def test_help_shows_defaults():
    result = runner.invoke(app, ["segment", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for text in (DEFAULT_MODEL, "Image ID", "--uncertainty", "50", "--shard", "Exit codes"):
        assert text in result.output


def test_help_keeps_square_brackets_and_hides_bool_metavars():
    """Help text is plain text: "[...]" is not eaten as Rich markup, flags show no ``<bool>``."""
    result = runner.invoke(app, ["segment", "--help"], terminal_width=200)
    assert result.exit_code == 0
    output = " ".join(result.output.split())  # undo any wrapping
    for text in ("[default: CPUs - 1, at most 8; none on 2 CPUs or fewer]", "pip install 'chexmask[ray]'", "--sample", "--amp / --no-amp"):
        assert text in output
    assert "<bool>" not in output


@pytest.mark.parametrize("command", ["build", "masks", "convert", "evaluate", "rca", "train", "serve", "export labelstudio", "import labelstudio"])
def test_every_help_is_plain_text(command):
    result = runner.invoke(app, [*command.split(), "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output and "╭" not in result.output


def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc (Linux)."""
    out: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    stat = fh.read()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            out.setdefault(ppid, []).append(int(entry))
    return out


def _descendants(pid: int) -> dict[int, int]:
    """Descendant pid -> depth below ``pid``."""
    children, found, todo = _children(), {}, [(pid, 0)]
    while todo:
        parent, depth = todo.pop()
        for child in children.get(parent, []):
            found[child] = depth + 1
            todo.append((child, depth + 1))
    return found


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"  # a zombie has exited


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_leaves_no_worker_forkserver_or_resource_tracker(tiny_weights, xray_folder, tmp_path):
    """SIGKILL the main process once its worker runs: every descendant exits within seconds."""
    cmd = [sys.executable, "-c", "from chexmask.cli import app; app()", "segment", str(xray_folder),
           *map(str, base(tiny_weights, tmp_path / "out.csv")), "-j", "1", "-b", "1", "--chunk-size", "1",
           "--no-progress", "--device", "cpu", "--threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    family: dict[int, int] = {}
    try:
        deadline = time.monotonic() + 120  # a loaded 2-core machine takes a minute to start the run
        while proc.poll() is None and time.monotonic() < deadline:
            family = _descendants(proc.pid)
            if max(family.values(), default=0) >= 2:  # a worker, forked by the fork server
                break
            time.sleep(0.05)
        assert proc.poll() is None and max(family.values(), default=0) >= 2, "no worker process appeared"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 10
        while any(map(_running, family)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in family if _running(pid)], "processes outlived the killed main process"
    finally:  # if it failed, end what this test started
        proc.kill()
        proc.wait()
        for pid in family:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_kill_9_then_rerun_gives_the_bytes_of_an_uninterrupted_run(tiny_weights, xray_folder, tmp_path):
    """A real crash: SIGKILL the command once a part is on disk, run it again, compare bytes."""
    def cmd(out):
        return [sys.executable, "-c", "from chexmask.cli import app; app()", "segment", str(xray_folder),
                *map(str, base(tiny_weights, out)), "--chunk-size", "1", "-b", "1", "--no-progress",
                "--device", "cpu", "--threads", "1"]

    parts = tmp_path / "out.csv.parts"
    proc = subprocess.Popen(cmd(tmp_path / "out.csv"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(parts.glob("part-*.parquet")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(parts.glob("part-*.parquet")))
    assert 1 <= done < 7, "the run finished before it could be killed"
    # The folder holds two bad files on purpose: a run that completes exits 1 (some inputs failed, exit-code policy).
    assert subprocess.run(cmd(tmp_path / "out.csv"), capture_output=True).returncode == 1
    ref = tmp_path / "ref.csv"
    assert subprocess.run(cmd(ref), capture_output=True).returncode == 1
    assert (tmp_path / "out.csv").read_bytes() == ref.read_bytes()
    assert not parts.exists()


def test_default_workers_leave_small_machines_to_the_model(monkeypatch):
    import os

    from chexmask.cli._options import default_workers

    for cpus, expected in ((1, 0), (2, 0), (3, 2), (16, 8)):
        monkeypatch.setattr(os, "cpu_count", lambda c=cpus: c)
        assert default_workers() == expected
