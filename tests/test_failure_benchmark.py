"""The failure benchmark and the fit of the quality estimate.

Realistic shifts keep the expert annotations exact; the benchmark scores real
predictions against the experts; the fit recovers a known relation between spread and
Dice on a synthetic benchmark built from the expert landmark sets, and its output is
what the package loads.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from chexmask.anatomy import N_NODES
from chexmask.cli import app
from chexmask.estimate.estimator import Estimator, estimate_quality
from chexmask.estimate.shape_model import GROUP_NODES, ShapeModel
from chexmask.masks.fill import landmarks_to_masks
from chexmask.quality.estimator_fit import COVERAGE, VARIANT_FEATURES, fit_quality, leave_one_source_out
from chexmask.quality.estimator_validation import summary
from chexmask.quality.failure_benchmark import FAILURE_CUTS, build_benchmark, failed
from chexmask.quality.metrics import dice
from chexmask.quality.realistic_shifts import SHIFTS, Shifted, apply_shift


@pytest.fixture(scope="module")
def jsrt_case(jsrt_dir):
    from chexmask.io.layout import load_landmarks_npz
    from chexmask.io.read import read_image
    from chexmask.model.report import reference_masks

    masks = reference_masks(jsrt_dir, "JPCLN001")
    masks.pop("clavicles")
    return Shifted(read_image(jsrt_dir / "images" / "JPCLN001.png").pixels, masks, load_landmarks_npz(jsrt_dir / "landmarks" / "JPCLN001.npz"))


@pytest.mark.parametrize("shift", SHIFTS)
def test_shifts_move_pixels_masks_and_landmarks_together(jsrt_case, shift):
    out = apply_shift(shift, jsrt_case, sign=-1)
    h, w = out.pixels.shape
    assert out.pixels.dtype == np.uint8 and all(m.shape == (h, w) for m in out.masks.values())
    filled = landmarks_to_masks(np.rint(out.landmarks).astype(np.int64), h, w)
    lungs = (filled["right_lung"] > 0) | (filled["left_lung"] > 0)
    assert dice(lungs, out.masks["lungs"]) > 0.93, shift  # the expert contours still fit the expert mask
    assert dice(filled["heart"] > 0, out.masks["heart"]) > 0.88, shift
    if shift == "crop-bottom":
        assert h < jsrt_case.pixels.shape[0] and np.array_equal(out.landmarks, jsrt_case.landmarks)
    elif shift != "low-contrast":
        assert not np.array_equal(out.landmarks, jsrt_case.landmarks)
    with pytest.raises(ValueError, match="unknown shift"):
        apply_shift("sideways", jsrt_case)


# The two tests that run the benchmark itself (two shipped models through OpenVINO) are in the slow
# run: in the default run's process, after the DataLoader worker test of test_dataset.py, they left
# the process crashing (SIGSEGV) on the next subprocess start (tests/test_lifeline.py).
@pytest.mark.slow
def test_benchmark_rows_are_scored_against_the_experts(jsrt_dir):
    table = build_benchmark({"jsrt": jsrt_dir}, "hybridgnet-multi-256", uncertainty=5, limit=2, progress=False)
    assert list(table["model"]) == ["hybridgnet-jsrt-256"] * 2 + ["hybridgnet-multi-256"] * 2
    assert set(table["split"]) == {"val"}  # never the training split
    assert list(table["shift"]) == ["clean", "zoom-out"] * 2
    clean = table[table["shift"] == "clean"]
    assert (clean["dice_lungs"] > 0.93).all() and (clean["dice_heart"] > 0.85).all() and not failed(clean).any()
    assert table["dice_lungs"].between(0, 1).all() and table["dice_heart"].between(0, 1).all()
    for row in table.itertuples():
        assert len(row.node_error) == len(row.node_std) == N_NODES and np.isfinite(row.node_error).all()
    assert np.median(clean["node_error"].iloc[0]) < 30  # pixels of the 1024-px JSRT frame
    assert failed(table).tolist() == ((table["dice_lungs"] < FAILURE_CUTS["lungs"]) | (table["dice_heart"] < FAILURE_CUTS["heart"])).tolist()


def _synthetic_benchmark(shared_data, n=24, seed=0) -> pd.DataFrame:
    """Expert shapes moved by noise of a known size: the spread says the error, the error says the Dice."""
    from chexmask.io.layout import landmark_arrays

    shapes, sources = landmark_arrays(shared_data / "landmarks" / "all_landmarks.npz")
    rng = np.random.default_rng(seed)
    rows = []
    for name, label in (("jsrt", "JSRT"), ("montgomery", "Montgomery"), ("shenzhen", "Shenzhen")):
        for k, shape in enumerate(shapes[sources == label][:n]):
            sigma = rng.uniform(0.5, 25)
            moved = shape + rng.normal(0, sigma, shape.shape)
            error = np.sqrt(((moved - shape) ** 2).sum(-1))
            d = 1 - 0.006 * sigma + rng.normal(0, 0.004)
            rows.append({"model": ("hybridgnet-multi-256", "hybridgnet-jsrt-256")[k % 2], "source": name, "split": "val",
                         "image_id": f"{name}{k}", "shift": "clean", "height": 1024, "width": 1024,
                         "dice_lungs": d, "dice_heart": d - 0.02 if name == "jsrt" else np.nan,
                         "node_error": np.where(np.isfinite(shape[:, 0]), error, np.nan).astype(np.float32),
                         "node_std": (0.4 * sigma * rng.uniform(0.7, 1.3, N_NODES)).astype(np.float32),
                         "landmarks": np.nan_to_num(moved, nan=500).reshape(-1).astype(np.float32), "latent_sigma": 0.7,
                         "weak_lung_edges": float(np.clip(0.05 + 0.02 * sigma + rng.normal(0, 0.05), 0, 1))})
    return pd.DataFrame(rows)


def test_fit_recovers_a_known_relation_out_of_source(shared_data):
    bench = _synthetic_benchmark(shared_data)
    landmarks = str(shared_data / "landmarks" / "all_landmarks.npz")
    pred = leave_one_source_out(bench, landmarks)
    figures = summary(bench, pred, {"lungs": 0.93, "heart": 0.7})
    assert figures.loc["all", "r_lungs"] > 0.8 and figures.loc["source=jsrt", "r_heart"] > 0.7
    assert 0.75 < figures.loc["all", "radius_coverage"] <= 1.0 and figures.loc["all", "radius_spearman"] > 0.4
    fit = fit_quality(bench, landmarks)
    assert fit.params["variants"]["full"]["lungs"]["features"]["log_uncertainty_lungs"]["weight"] > 0
    assert set(fit.params["variants"]) == set(VARIANT_FEATURES) and len(fit.params["full_models"]) == 2
    assert all(w["weight"] >= 0 for v in fit.params["variants"].values() for g in v.values() for w in g["features"].values())
    est = Estimator(fit.params, fit.shape_model)
    typical = fit.shape_model.mean_shape()
    seg = type("S", (), {"landmarks": typical, "node_std": np.ones((N_NODES, 2)), "height": 1024, "width": 1024, "weak_lung_edges": 0.1})
    out = estimate_quality(seg, fit.params["full_models"][0], est)
    assert out.variant == "full" and np.isfinite(out.node_radius[GROUP_NODES["lungs"]]).all()


def test_cli_quality_fit_writes_what_the_package_loads(shared_data, tmp_path):
    bench_path = tmp_path / "bench.parquet"
    _synthetic_benchmark(shared_data, n=12).to_parquet(bench_path)
    result = CliRunner().invoke(app, ["experiment", "quality-fit", str(bench_path), "--landmarks",
                                      str(shared_data / "landmarks" / "all_landmarks.npz"), "-o", str(tmp_path / "fit")])
    assert result.exit_code == 0, result.output
    assert "flag thresholds" in result.output
    params = json.loads((tmp_path / "fit" / "quality-estimator.json").read_text())
    assert params["radius"]["coverage"] == COVERAGE
    ShapeModel.load(tmp_path / "fit" / "shape-model.npz")
    for variant in VARIANT_FEATURES:
        assert (tmp_path / "fit" / variant / "quality_calibration.png").stat().st_size > 0
        assert "Out-of-source figures" in (tmp_path / "fit" / variant / "summary.md").read_text()


@pytest.mark.slow
def test_cli_failures_command(jsrt_dir, tmp_path):
    runner = CliRunner()
    out = tmp_path / "bench.parquet"
    result = runner.invoke(app, ["experiment", "failures", str(jsrt_dir), "-o", str(out), "--limit", "1", "--uncertainty", "4",
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    assert len(pd.read_parquet(out)) == 2 and "2 segmentations" in result.output


def test_removed_threshold_command_says_what_replaced_it(jsrt_dir):
    old = CliRunner().invoke(app, ["experiment", "threshold", str(jsrt_dir), "--split", "val"])
    assert old.exit_code == 2 and "quality-fit" in old.output


def test_a_benchmark_without_edge_evidence_is_refused(shared_data):
    from chexmask.estimate.estimator import load_estimator
    from chexmask.quality.estimator_fit import features_table

    bench = _synthetic_benchmark(shared_data, n=2).drop(columns="weak_lung_edges")
    with pytest.raises(ValueError, match="rerun chexmask experiment failures"):
        features_table(bench, load_estimator().shape_model)
