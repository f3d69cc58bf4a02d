"""The model chexmask ships: registry, hash, accuracy on held-out JSRT images, determinism."""

import numpy as np
import pytest

import chexmask
from chexmask.model.report import score_split, summarise
from chexmask.model.weights import DEFAULT_MODEL, load_model, registry

# Test-split means of MODEL_CARD.md, the JSRT-only model (the slow test guards them against regressions).
JSRT_ONLY = "hybridgnet-jsrt-256"
LUNGS_DICE = 0.9667
HEART_DICE = 0.9358


def test_registry_names_the_default_model_with_its_hash():
    reg = registry()
    assert DEFAULT_MODEL in reg
    entry = reg[DEFAULT_MODEL]
    model, info = load_model(DEFAULT_MODEL)
    assert info["sha256"] == entry["sha256"]
    assert model.config.input_size == entry["input_size"] == 256
    # the CheXmask nodes come first, whatever else the model predicts
    assert list(entry["nodes"].items())[:3] == [("right_lung", 44), ("left_lung", 50), ("heart", 26)]


def test_corrupt_weights_are_refused(tmp_path, monkeypatch):
    from chexmask import ChexmaskError
    from chexmask.model import weights

    reg = registry()
    bad = dict(reg[DEFAULT_MODEL], sha256="0" * 64)
    monkeypatch.setattr(weights, "registry", lambda: {DEFAULT_MODEL: bad})
    with pytest.raises(ChexmaskError, match="does not match the registry"):
        load_model(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def segmenter():
    return chexmask.Segmenter(uncertainty=10, batch_size=4)


def test_held_out_images_are_segmented_accurately(segmenter, jsrt_dir, tmp_path):
    """Two test-split images (never seen in training or selection) against the SCR masks."""
    split = tmp_path / "splits"
    split.mkdir()
    for name in ("images", "landmarks", "scr_masks"):
        (tmp_path / name).symlink_to(jsrt_dir / name)
    ids = (jsrt_dir / "splits" / "test.txt").read_text().split()[:2]
    (split / "test.txt").write_text("\n".join(ids))
    scores = score_split(segmenter, tmp_path, "test")
    assert (scores["lungs_dice"] > 0.93).all(), scores
    assert (scores["heart_dice"] > 0.85).all(), scores


def test_same_image_same_landmarks_and_uncertainty(segmenter, jsrt_dir):
    path = jsrt_dir / "images" / "JPCLN009.png"
    a, b = segmenter.segment(path), chexmask.Segmenter(uncertainty=10, batch_size=1).segment(path)
    np.testing.assert_array_equal(a.landmarks, b.landmarks)
    np.testing.assert_array_equal(a.node_std, b.node_std)
    assert a.uncertainty > 0


@pytest.mark.slow
def test_test_split_accuracy_matches_the_model_card(jsrt_dir):
    """The whole JSRT test split: the numbers of MODEL_CARD.md, within 0.005 Dice."""
    summary = summarise(score_split(chexmask.Segmenter(JSRT_ONLY, batch_size=8), jsrt_dir, "test"))
    assert summary.loc["lungs_dice", "n"] == 51
    assert summary.loc["lungs_dice", "mean"] >= LUNGS_DICE - 0.005
    assert summary.loc["heart_dice", "mean"] >= HEART_DICE - 0.005


def _val_subset(shared_data, source, tmp_path, n):
    """A lungs-only source's first ``n`` val images as a JSRT-layout folder under ``tmp_path`` (skips without the data)."""
    folder = shared_data / source
    if not folder.exists():
        pytest.skip(f"{folder} not found")
    for name in ("images", "landmarks", "masks"):
        (tmp_path / name).symlink_to(folder / name)
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "val.txt").write_text("\n".join((folder / "splits" / "val.txt").read_text().split()[:n]))
    return tmp_path


@pytest.mark.parametrize("source", ["montgomery", "shenzhen"])
def test_lungs_only_sources_are_scored_on_lungs(segmenter, shared_data, tmp_path, source):
    """`chexmask validate` on a lungs-only source: lungs against its manual masks, no heart columns."""
    _val_subset(shared_data, source, tmp_path, 2)
    scores = score_split(segmenter, tmp_path, "val")
    assert len(scores) == 2 and (scores["lungs_dice"] > 0.85).all(), scores
    assert not any(c.startswith("heart") for c in scores.columns)
    assert (scores["landmark_mse"] > 0).all()


def test_validate_command_reports_a_lungs_only_source(shared_data, tmp_path):
    from typer.testing import CliRunner

    from chexmask.cli import app

    _val_subset(shared_data, "montgomery", tmp_path, 1)
    res = CliRunner().invoke(app, ["validate", str(tmp_path), "--split", "val", "-o", str(tmp_path / "s.csv"), "--uncertainty", "0"])
    assert res.exit_code == 0, res.output
    assert "lungs_dice" in res.output and "heart_dice" not in res.output
    assert "node uncertainty vs node error" not in res.output  # no samples, no ranking


def test_validate_ranks_node_errors_by_node_uncertainty(shared_data, tmp_path):
    """The ship rule's node Spearman, by hand from the Segmenter's output and through `validate`."""
    from scipy.stats import spearmanr
    from typer.testing import CliRunner

    from chexmask.cli import app
    from chexmask.formats.landmarks import node_uncertainty
    from chexmask.io.layout import load_landmarks_npz
    from chexmask.model.report import node_uncertainty_ranking, segment_split

    _val_subset(shared_data, "montgomery", tmp_path, 2)
    segmented = list(segment_split(chexmask.Segmenter(uncertainty=10, batch_size=4), tmp_path, "val"))
    ranking = node_uncertainty_ranking(tmp_path, segmented)
    std, err = [], []
    for image_id, image, seg in segmented:  # Montgomery annotates the lungs only: 94 nodes per image
        scale = 1024 / max(image.height, image.width)
        expert = load_landmarks_npz(tmp_path / "landmarks" / f"{image_id}.npz", seg.organs)[:94]
        err.append(np.linalg.norm(seg.landmarks[:94] - expert, axis=1) * scale)
        std.append(node_uncertainty(seg.node_std)[:94] * scale)
    assert ranking["images"] == 2 and ranking["nodes"] == 188
    assert ranking["pooled"] == pytest.approx(spearmanr(np.concatenate(std), np.concatenate(err))[0])
    assert 0 < ranking["pooled"] < 1 and ranking["median_error_px"] > ranking["median_std_px"] > 0
    res = CliRunner().invoke(app, ["validate", str(tmp_path), "--split", "val", "--uncertainty", "10"])
    assert res.exit_code == 0, res.output
    assert f"Spearman pooled {ranking['pooled']:.3f}" in res.output and "188 nodes of 2 images" in res.output


MULTI = "hybridgnet-multi-256"


def test_multi_source_model_is_shipped_with_clavicles_and_a_card():
    from importlib import resources

    entry = registry()[MULTI]
    model, info = load_model(MULTI)
    assert info["sha256"] == entry["sha256"] and model.n_nodes == 166
    assert entry["nodes"] == {"right_lung": 44, "left_lung": 50, "heart": 26, "right_clavicle": 23, "left_clavicle": 23}
    card = (resources.files("chexmask") / "weights" / entry["card"]).read_text()
    assert "JSRT test" in card and "Montgomery val" in card and "Shenzhen val" in card


def test_multi_source_model_segments_held_out_jsrt_and_other_hospitals(jsrt_dir, shared_data, tmp_path):
    """Two JSRT test images with clavicles, and Montgomery/Shenzhen val images, against expert masks."""
    seg = chexmask.Segmenter(MULTI, batch_size=4, clavicles=True)
    split = tmp_path / "jsrt" / "splits"
    split.mkdir(parents=True)
    for name in ("images", "landmarks", "scr_masks"):
        (tmp_path / "jsrt" / name).symlink_to(jsrt_dir / name)
    (split / "test.txt").write_text("\n".join((jsrt_dir / "splits" / "test.txt").read_text().split()[:2]))
    scores = score_split(seg, tmp_path / "jsrt", "test")
    assert (scores["lungs_dice"] > 0.93).all() and (scores["heart_dice"] > 0.85).all(), scores
    assert (scores["clavicles_dice"] > 0.4).all(), scores
    for source in ("montgomery", "shenzhen"):
        folder = shared_data / source
        if folder.exists():
            one = score_split(chexmask.Segmenter(MULTI, batch_size=4), folder, "val").head(3)
            assert (one["lungs_dice"] > 0.85).all(), one


@pytest.mark.slow
def test_multi_source_model_matches_its_card(jsrt_dir):
    summary = summarise(score_split(chexmask.Segmenter(MULTI, batch_size=8, clavicles=True), jsrt_dir, "test"))
    assert summary.loc["lungs_dice", "mean"] >= 0.9782 - 0.005
    assert summary.loc["heart_dice", "mean"] >= 0.9442 - 0.005
    assert summary.loc["clavicles_dice", "mean"] >= 0.8676 - 0.01
