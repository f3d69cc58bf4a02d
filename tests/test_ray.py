"""`--engine ray`: the pipeline on a local Ray instance gives the local engine's rows."""

from __future__ import annotations

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
