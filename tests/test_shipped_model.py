"""The model chexmask ships: registry, hash, accuracy on held-out JSRT images, determinism."""

import numpy as np
import pytest

import chexmask
from chexmask.model.report import score_split, summarise
from chexmask.model.weights import DEFAULT_MODEL, load_model, registry

# Test-split means of MODEL_CARD.md (the slow test guards them against regressions).
LUNGS_DICE = 0.9667
HEART_DICE = 0.9358


def test_registry_names_the_default_model_with_its_hash():
    reg = registry()
    assert DEFAULT_MODEL in reg
    entry = reg[DEFAULT_MODEL]
    model, info = load_model(DEFAULT_MODEL)
    assert info["sha256"] == entry["sha256"]
    assert model.config.input_size == entry["input_size"] == 256
    assert entry["nodes"] == {"right_lung": 44, "left_lung": 50, "heart": 26}


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
    summary = summarise(score_split(chexmask.Segmenter(batch_size=8), jsrt_dir, "test"))
    assert summary.loc["lungs_dice", "n"] == 51
    assert summary.loc["lungs_dice", "mean"] >= LUNGS_DICE - 0.005
    assert summary.loc["heart_dice", "mean"] >= HEART_DICE - 0.005
