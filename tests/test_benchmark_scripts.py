"""The scripts under benchmarks/ still run (tiny settings, no timing checked): a refactor of the
library must not leave them broken until the next measurement, nor the GPU script until the next GPU."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.slow
@pytest.mark.parametrize("script, args, expect", [
    ("gpu_oneshot.py", ["{jsrt}", "--device", "cpu", "--quick"], "seconds_per_step"),
    ("profile_stages.py", ["{jsrt}/images", "--n", "8"], "postprocess"),
    ("bench_segment.py", ["{jsrt}/images", "--n", "8", "--n-sampled", "8", "--uncertainty", "0"], "e2e/model"),
    ("bench_estimate.py", ["--images", "{jsrt}/images", "--n", "4", "--repeats", "1"], "the edge evidence alone"),
])
def test_benchmark_script_runs(jsrt_dir, script, args, expect):
    cmd = [sys.executable, str(BENCHMARKS / script), *(a.format(jsrt=jsrt_dir) for a in args)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert expect in done.stdout + done.stderr
