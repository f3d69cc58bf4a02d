"""The shipped quality estimate: shape model, features, Estimated Dice, Node Error Radius and the flag.

Toy cases pin the monotone rules (more spread or a less plausible shape never raises the
estimate); the shared images pin real behaviour: a clean JSRT film is estimated good,
non-chest and blank images are flagged for review, never crash.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import chexmask

from chexmask.anatomy import N_NODES
from chexmask.estimate.estimator import ESTIMATE_COLUMNS, estimate_quality, load_estimator
from chexmask.estimate.features import FEATURES, image_features
from chexmask.estimate.shape_model import GROUP_NODES, ShapeModel, fit_shape_model
from chexmask.model.weights import registry

DEFAULT_SHA = registry()["hybridgnet-multi-256"]["sha256"]


def _seg(landmarks, std=None, size=1024, edges=0.07):
    """A result as the estimate reads it; ``edges``: its weak_lung_edges (0.07 is a clean film's median)."""
    return SimpleNamespace(landmarks=landmarks, node_std=std, height=size, width=size, weak_lung_edges=edges)


@pytest.fixture(scope="module")
def typical():
    return load_estimator().shape_model.mean_shape()


def test_shape_model_round_trip_and_typical_shape(tmp_path, typical):
    model = load_estimator().shape_model
    model.save(tmp_path / "m.npz")
    again = ShapeModel.load(tmp_path / "m.npz")
    assert again.scores(typical) == pytest.approx(model.scores(typical))
    scores = model.scores(typical)
    assert scores["lungs_mahalanobis"] < 0.25 and scores["heart_mahalanobis"] < 0.25  # the mean, up to re-alignment


def test_shape_model_is_similarity_invariant(typical):
    model = load_estimator().shape_model
    angle = np.deg2rad(7)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = 1.7 * (typical - 512) @ rot.T + 900
    assert model.scores(moved) == pytest.approx(model.scores(typical), abs=1e-6)


def test_a_heart_in_the_abdomen_is_implausible(typical):
    model = load_estimator().shape_model
    low = typical.copy()
    lungs_height = np.ptp(typical[GROUP_NODES["lungs"], 1])
    low[GROUP_NODES["heart"], 1] += 0.35 * lungs_height
    assert model.scores(low)["heart_mahalanobis"] > 3 * max(model.scores(typical)["heart_mahalanobis"], 1.0)


def test_fit_shape_model_on_expert_landmarks(shared_data):
    from chexmask.io.layout import landmark_arrays

    shapes, sources = landmark_arrays(shared_data / "landmarks" / "all_landmarks.npz")
    model = fit_shape_model(shapes)
    assert len(shapes) == 911 and set(sources) == {"JSRT", "Montgomery", "Shenzhen", "Padchest"}
    typical = np.median([model.scores(s)["lungs_mahalanobis"] for s in shapes[:100]])
    assert 0.7 < typical < 1.3  # an expert shape is about one standard deviation from the mean


def test_features_are_oriented_worse_is_larger(typical):
    model = load_estimator().shape_model
    small, large = np.full(N_NODES, 0.5), np.full(N_NODES, 2.0)  # per-node spreads
    a, b = (image_features(typical, s, 1024, 1024, model) for s in (small, large))
    assert set(a) == set(FEATURES)
    assert b["log_uncertainty_lungs"] > a["log_uncertainty_lungs"] and b["log_uncertainty_heart"] > a["log_uncertainty_heart"]
    shrunk = (typical - 512) * 0.5 + 512  # the same thorax, smaller in the frame
    assert image_features(shrunk, None, 1024, 1024, model)["thorax_small"] > a["thorax_small"]
    assert np.isnan(image_features(typical, None, 1024, 1024, model)["log_uncertainty_lungs"])


def test_estimate_is_monotone_in_uncertainty(typical):
    low, high = (estimate_quality(_seg(typical, np.full((N_NODES, 2), s)), DEFAULT_SHA) for s in (0.5, 8.0))
    assert low.variant == high.variant == "full"
    for group in ("lungs", "heart"):
        assert 0.0 <= high.dice[group] <= low.dice[group] <= 1.0
    assert list(low.columns()) == ESTIMATE_COLUMNS
    assert low.node_radius.shape == (N_NODES,) and np.isfinite(low.node_radius).all()
    assert (high.node_radius >= low.node_radius).all()
    assert high.flag().flag == "review" and low.flag().flag == "good"


def test_variants_and_radius_availability(typical):
    std = np.ones((N_NODES, 2))
    assert estimate_quality(_seg(typical, std), "not-a-shipped-model").variant == "shape"
    other = estimate_quality(_seg(typical, std), "not-a-shipped-model")
    assert other.node_radius is None and other.uncertainty_px == pytest.approx(np.sqrt(2))
    unsampled = estimate_quality(_seg(typical), DEFAULT_SHA)
    assert unsampled.variant == "shape" and unsampled.node_radius is None and unsampled.uncertainty_px is None


def test_radius_is_in_the_original_frame(typical):
    std = np.ones((N_NODES, 2))
    small = estimate_quality(_seg(typical, std), DEFAULT_SHA)
    big = estimate_quality(_seg(typical * 2, std * 2, size=2048), DEFAULT_SHA)
    assert big.node_radius == pytest.approx(2 * small.node_radius)
    assert big.dice == pytest.approx(small.dice)


def test_weak_edges_lower_the_estimate_and_are_required(typical):
    std = np.ones((N_NODES, 2))
    for sha in (DEFAULT_SHA, None):
        sharp, blurred = (estimate_quality(_seg(typical, std, edges=e), sha) for e in (0.05, 0.6))
        assert blurred.dice["lungs"] < sharp.dice["lungs"]
        assert blurred.dice["heart"] <= sharp.dice["heart"]
    with pytest.raises(ValueError, match="weak_lung_edges"):
        estimate_quality(_seg(typical, std, edges=None), DEFAULT_SHA)


def test_implausible_shape_lowers_the_estimate(typical):
    low = typical.copy()
    low[GROUP_NODES["heart"], 1] += 0.4 * np.ptp(typical[GROUP_NODES["lungs"], 1])
    good, bad = estimate_quality(_seg(typical), None), estimate_quality(_seg(low), None)
    assert bad.dice["heart"] < good.dice["heart"]


@pytest.fixture(scope="module")
def segmenter():
    from chexmask import Segmenter

    return Segmenter(uncertainty=50)


def test_clean_film_is_estimated_good(segmenter, jsrt_dir):
    seg = segmenter.segment(jsrt_dir / "images" / "JPCLN001.png")
    est = seg.quality_estimate()
    assert est.variant == "full" and est.dice["lungs"] > 0.93 and est.dice["heart"] > 0.85
    assert est.flag().flag == "good"
    # the radius is where the expert's node is, most of the time, on an image no model trained on (JSRT val)
    from chexmask.io.layout import load_landmarks_npz

    expert = load_landmarks_npz(jsrt_dir / "landmarks" / "JPCLN001.npz")
    error = np.sqrt(((seg.landmarks_int[:N_NODES] - expert) ** 2).sum(-1))
    assert (error <= est.node_radius).mean() > 0.7


@pytest.mark.parametrize("kind", ["camera", "inverted", "rotated", "blank"])
def test_non_chest_and_bad_inputs_are_flagged(segmenter, jsrt_dir, kind):
    import skimage.data

    from chexmask.io.read import read_image

    film = read_image(jsrt_dir / "images" / "JPCLN001.png").pixels
    image = {"camera": skimage.data.camera(), "inverted": 255 - film, "rotated": np.ascontiguousarray(np.rot90(film)),
             "blank": np.zeros((300, 300), np.uint8)}[kind]
    est = segmenter.segment(image, image_id=kind).quality_estimate()
    assert est.flag().flag == "review", (kind, est)


def test_parquet_rows_carry_the_radius_the_api_gives(tmp_path):
    from chexmask import Segmenter
    from chexmask.formats.tables import read_table
    from chexmask.inference.pipeline import segment_dataset

    sample = Path(chexmask.__file__).parent / "samples" / "00cfd1c1.jpg"
    out = tmp_path / "s.parquet"
    segment_dataset([sample], out, workers=0, progress=False)
    row = read_table(out).iloc[0]
    radius = np.asarray(row["Node Error Radius"])
    assert radius.shape == (N_NODES,) and (radius > 0).all()
    api = Segmenter(uncertainty=50).segment(sample).quality_estimate()
    np.testing.assert_allclose(radius, api.node_radius, rtol=1e-5)
    assert row["Estimated Dice Lungs"] == pytest.approx(api.dice["lungs"], abs=1e-4)
