"""`--engine ray`: the pipeline on a local Ray instance gives the local engine's rows."""

from __future__ import annotations

import numpy as np
import pytest

from chexmask.inference import pipeline
from chexmask.inference.pipeline import segment_dataset

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'chexmask[ray]' to test --engine ray")

# Ray's own modules warn about their deprecated settings when Ray Data starts.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def run(weights, folder, out, stop_after_chunks=None, **kw):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "_stop_after_chunks", stop_after_chunks)  # the test hook: stop like a killed run
        return segment_dataset([folder], out, weights=weights, uncertainty=2, batch_size=3, workers=0, chunk_size=3,
                               progress=False, **kw)


def test_ray_rows_equal_the_local_engine(local_ray, tiny_weights, xray_folder, tmp_path):
    local = run(tiny_weights, xray_folder, tmp_path / "local.parquet")
    distributed = run(tiny_weights, xray_folder, tmp_path / "ray.parquet", engine="ray")
    assert (distributed.segmented, distributed.failed) == (local.segmented, local.failed) == (5, 2)
    assert (tmp_path / "ray.parquet").read_bytes() == (tmp_path / "local.parquet").read_bytes()
    assert (tmp_path / "ray.errors.csv").read_text() == (tmp_path / "local.errors.csv").read_text()


def test_ray_resumes_a_local_run(local_ray, tiny_weights, xray_folder, tmp_path):
    """Parts are engine-independent: stop a local run, finish it on Ray."""
    ref = run(tiny_weights, xray_folder, tmp_path / "ref.csv")
    out = tmp_path / "out.csv"
    run(tiny_weights, xray_folder, out, stop_after_chunks=1)
    assert run(tiny_weights, xray_folder, out, engine="ray").resumed == 3
    assert out.read_bytes() == ref.output.read_bytes()


def test_ray_run_prints_only_the_command_lines(tiny_weights, xray_folder, tmp_path):
    """`segment --engine ray --no-progress` in a process of its own: no Ray banner, logs, plans or bars."""
    import subprocess
    import sys

    cmd = [sys.executable, "-c", "from chexmask.cli import app; app()", "segment", str(xray_folder / "JPCLN001.png"),
           str(xray_folder / "notes.png"), "-o", str(tmp_path / "o.csv"), "--weights", str(tiny_weights), "--uncertainty", "0",
           "-j", "0", "-b", "2", "--device", "cpu", "--engine", "ray", "--no-progress", "--threads", "1"]
    env = {k: v for k, v in __import__("os").environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 1, done.stderr  # one input failed (exit-code policy)
    assert done.stdout.splitlines() == [line for line in done.stdout.splitlines() if line.startswith("segmented 1 of 2 images")]
    assert done.stderr.splitlines() == [f"1 inputs failed -> {tmp_path / 'o.errors.csv'}"], done.stderr


def test_placeholder_arrays_have_the_dtypes_of_real_results(tiny_weights, jsrt_dir):
    """A Ray batch whose images all failed must carry arrays of the same dtypes as a good batch."""
    from chexmask.inference.ray_engine import _FIELD_DTYPES
    from chexmask.inference.segmenter import Segmenter

    seg = Segmenter(tiny_weights, uncertainty=2).segment(jsrt_dir / "images" / "JPCLN001.png")
    assert {f: np.asarray(getattr(seg, f)).dtype for f in _FIELD_DTYPES} == {f: np.dtype(d) for f, d in _FIELD_DTYPES.items()}
