"""Corruption and OOD experiments: corruptions, AUROC, reference scores, the runners and the CLI.

Runs use the random 64-px ``tiny_weights`` model, so they check mechanics only; the
one test of a property that needs a trained model uses the shipped weights and skips
without them.
"""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from chexmask.cli import app
from chexmask.io.read import XrayImage
from chexmask.quality.corruption import run_corruption
from chexmask.quality.image_corruptions import Corruption, default_corruptions
from chexmask.quality.metrics import auroc
from chexmask.quality.ood import run_ood
from chexmask.quality.ood_scoring import SCORES, fit_reference, ood_scores
from chexmask.quality.ood_sets import non_chest_images, synthetic_ood
from chexmask.reports.uncertainty_report import write_corruption_report

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _xray(image_id: str, seed: int, shape=(80, 64)) -> XrayImage:
    px = np.random.default_rng(seed).integers(40, 220, shape, dtype=np.uint8)
    return XrayImage(px, "", image_id, shape[0], shape[1], "MONOCHROME2", None, 8)


# --- corruptions ------------------------------------------------------------------

def test_clean_is_an_unchanged_copy():
    img = _xray("a", 0).pixels
    out = Corruption("clean").apply(img, np.random.default_rng(0))
    assert np.array_equal(out, img) and out is not img


def test_noise_grows_with_sigma_and_stays_uint8():
    img = np.full((64, 64), 128, np.uint8)
    diffs = []
    for sigma in (5, 20, 60):
        out = Corruption("noise", sigma).apply(img, np.random.default_rng(0))
        assert out.dtype == np.uint8 and out.shape == img.shape
        diffs.append(np.abs(out.astype(int) - 128).mean())
    assert diffs[0] < diffs[1] < diffs[2]


@pytest.mark.parametrize(("position", "where"), [("right_lung", (0, 0)), ("left_lung", (0, 1)), ("centre", None)])
def test_occlusion_block_size_and_side(position, where):
    img = np.full((100, 200), 200, np.uint8)
    out = Corruption("occlusion", 0.3, position).apply(img, np.random.default_rng(0))
    assert (out == 0).sum() == 30 * 30  # side = 0.3 x shorter side
    ys, xs = np.nonzero(out == 0)
    if where is not None:  # the patient's right lung is on the image's left
        assert (xs.mean() < 100) == (where[1] == 0)


def test_corruption_validation():
    with pytest.raises(ValueError, match="unknown corruption kind 'blur'"):
        Corruption("blur", 1.0)
    with pytest.raises(ValueError, match="unknown occlusion position 'middle'"):
        Corruption("occlusion", 0.3, "middle")
    with pytest.raises(ValueError, match="level out of range"):
        Corruption("occlusion", 1.5, "centre")


def test_default_corruptions_are_unique_and_start_clean():
    cs = default_corruptions((10, 20), (0.2,), ("centre", "left_lung"))
    names = [c.name for c in cs]
    assert names == ["clean", "noise-10", "noise-20", "occlusion-0.2-centre", "occlusion-0.2-left_lung"]


# --- AUROC and reference scores ---------------------------------------------------

def test_auroc_hand_computed():
    assert auroc([1, 2, 3], [4, 5]) == 1.0
    assert auroc([4, 5], [1, 2, 3]) == 0.0
    assert auroc([1, 1], [1, 1]) == 0.5
    # pairs (out, in): (2,1) win, (2,2) tie, (0,1) loss, (0,2) loss -> 1.5 / 4
    assert auroc([1, 2], [2, 0]) == pytest.approx(0.375)
    assert auroc([1, np.nan, 2], [3]) == 1.0
    assert np.isnan(auroc([], [1.0]))


def test_synthetic_ood_sets():
    imgs = [_xray("a", 0), _xray("b", 1)]
    sets = synthetic_ood(imgs, seed=3)
    assert set(sets) == {"hflip", "vflip", "rot90", "crop", "invert"}
    assert [i.image_id for i in sets["hflip"]] == ["hflip/a", "hflip/b"]
    assert np.array_equal(sets["hflip"][0].pixels, imgs[0].pixels[:, ::-1])
    rot = sets["rot90"][0]
    assert rot.pixels.shape == (64, 80) and (rot.height, rot.width) == (64, 80)
    assert np.array_equal(sets["invert"][1].pixels, 255 - imgs[1].pixels)
    crop = sets["crop"][0]
    assert crop.pixels.shape == (28, 22) and (crop.height, crop.width) == crop.pixels.shape
    with pytest.raises(ValueError, match="unknown OOD transform"):
        synthetic_ood(imgs, ["blur"])


def test_non_chest_images_are_gray_uint8():
    sets = non_chest_images()
    assert len(sets["skimage"]) >= 10
    for img in sets["skimage"] + sets["ct_mr"]:
        assert img.pixels.ndim == 2 and img.pixels.dtype == np.uint8
        assert img.pixels.shape == (img.height, img.width)


def _fake_seg(mu, sigma, shape_offset=0.0):
    from chexmask.estimate.estimator import estimate_quality

    landmarks = np.tile([[100.0, 100.0]], (120, 1)) + np.arange(240).reshape(120, 2) * 0.1 + shape_offset
    seg = SimpleNamespace(image_id="x", latent_mu=np.asarray(mu, float), latent_sigma=np.asarray(sigma, float),
                          landmarks=landmarks, height=1000, width=1000, uncertainty=None, node_std=None, weak_lung_edges=0.1)
    seg.quality_estimate = lambda: estimate_quality(seg, None)
    return seg


def test_mahalanobis_scores_grow_away_from_the_reference():
    rng = np.random.default_rng(0)
    ref = fit_reference([_fake_seg(rng.normal(size=8), np.exp(rng.normal(-1, 0.1, 8)), rng.normal(0, 1)) for _ in range(50)])
    near, far = _fake_seg(np.zeros(8), np.full(8, np.exp(-1))), _fake_seg(np.full(8, 6.0), np.full(8, 0.9), 200.0)
    scores = ood_scores([near, far], ref)
    assert list(scores.columns) == ["image_id", *SCORES, "flagged"]
    assert scores["flagged"].all()  # a degenerate shape has a low Estimated Dice
    for s in ("mahalanobis_mu", "mahalanobis_logsigma", "shape"):
        assert scores.loc[1, s] > 3 * scores.loc[0, s]
    assert scores["predictive_px"].isna().all()  # no sampling
    assert ood_scores([near]).loc[0, ["mahalanobis_mu", "shape"]].isna().all()  # no reference


# --- runners (tiny random model: mechanics only) ----------------------------------

@pytest.fixture(scope="module")
def segmenter(tiny_weights):
    from chexmask.inference.segmenter import Segmenter

    return Segmenter(tiny_weights, uncertainty=3, batch_size=4)


def test_run_corruption_tables(segmenter, tmp_path):
    images = [_xray("a", 0), _xray("b", 1), _xray("c", 2)]
    refs = {"a": np.full((120, 2), 30.0), "b": np.full((120, 2), 40.0)}  # no landmarks for "c"
    corruptions = default_corruptions((30,), (0.3,), ("centre",))
    result = run_corruption(images, segmenter, landmarks=refs, corruptions=corruptions)
    assert len(result.per_image) == 3 * 3 and len(result.per_node) == 3 * 3 * 120
    assert list(result.summary["corruption"]) == ["clean", "noise-30", "occlusion-0.3-centre"]
    assert (result.summary["n_images"] == 3).all()
    assert result.per_image.loc[result.per_image["image_id"] == "c", "error_px"].isna().all()
    assert result.per_image["uncertainty_px"].gt(0).all()
    node = result.per_node
    assert np.allclose(node["uncertainty_px"], np.hypot(node["std_x_px"], node["std_y_px"]), atol=1e-6)
    # error is measured in the 1024 frame: the 80-px-high image scales by 1024 / 80
    clean_a = result.per_image.query("image_id == 'a' and corruption == 'clean'").iloc[0]
    assert clean_a["mse_px2"] >= clean_a["error_px"] ** 2 - 1e-6
    assert set(result.correlations) >= {"per_image", "per_node_pooled", "per_node_by_index", "per_node_within_image"}
    summary = write_corruption_report(replace(result, meta={"weights": "tiny"}), tmp_path)
    assert summary.is_file()
    for name in ("per_node.csv", "per_image.csv", "summary.csv", "correlations.json",
                 "uncertainty_vs_level.png", "uncertainty_vs_error.png"):
        assert (tmp_path / name).is_file(), name


def test_run_corruption_needs_sampling(tiny_weights):
    from chexmask._errors import ChexmaskError
    from chexmask.inference.segmenter import Segmenter

    with pytest.raises(ChexmaskError, match="uncertainty sampling"):
        run_corruption([_xray("a", 0)], Segmenter(tiny_weights, uncertainty=0))


def test_run_ood_auroc_table(segmenter):
    ins = [_xray(f"in{i}", i) for i in range(4)]
    sets = synthetic_ood(ins[:2], ["invert", "rot90"])
    result = run_ood(ins, sets, segmenter, reference_images=[_xray(f"ref{i}", 10 + i) for i in range(5)])
    assert list(result.aurocs["score"]) == list(SCORES)
    assert list(result.aurocs.columns) == ["score", "invert", "rot90", "all"]
    values = result.aurocs.drop(columns="score").to_numpy(float)
    assert np.all((values >= 0) & (values <= 1))
    assert list(result.scores["set"]).count("in") == 4 and len(result.scores) == 8


# --- CLI ---------------------------------------------------------------------------

def _write_pngs(folder, n):
    folder.mkdir()
    for i in range(n):
        cv2.imwrite(str(folder / f"img{i}.png"), _xray(f"img{i}", i).pixels)
    return folder


def test_cli_corruption(tiny_weights, tmp_path):
    images = _write_pngs(tmp_path / "in", 2)
    out = tmp_path / "report"
    res = CliRunner().invoke(app, ["experiment", "corruption", str(images), "-o", str(out), "--weights", str(tiny_weights),
                                   "--uncertainty", "3", "--noise", "30", "--sizes", "0.3"])
    assert res.exit_code == 0, res.output
    assert (out / "summary.md").is_file() and (out / "per_image.csv").is_file()


def test_cli_corruption_errors(tiny_weights, tmp_path):
    images = _write_pngs(tmp_path / "in", 1)
    runner = CliRunner()
    res = runner.invoke(app, ["experiment", "corruption", str(images), "-o", str(tmp_path / "r"),
                              "--weights", str(tiny_weights), "--uncertainty", "1"])
    assert res.exit_code == 2 and "--uncertainty must be >= 2" in res.output
    res = runner.invoke(app, ["experiment", "corruption", str(images), "-o", str(tmp_path / "r"),
                              "--weights", str(tiny_weights), "--landmarks", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "not a folder" in res.output


def test_cli_ood(tiny_weights, tmp_path):
    ins = _write_pngs(tmp_path / "in", 3)
    outs = _write_pngs(tmp_path / "out", 2)
    report = tmp_path / "report"
    res = CliRunner().invoke(app, ["experiment", "ood", str(ins), str(outs), "-o", str(report), "--weights", str(tiny_weights),
                                   "--uncertainty", "2", "--no-non-chest", "--max-synthetic", "1", "--reference", str(ins),
                                   "--save-images"])
    assert res.exit_code == 0, res.output
    assert (report / "auroc.csv").is_file() and (report / "images" / "invert" / "img0.png").is_file()
    res = CliRunner().invoke(app, ["experiment", "ood", str(ins), "-o", str(report), "--weights", str(tiny_weights),
                                   "--no-synthetic", "--no-non-chest"])
    assert res.exit_code == 1 and "at least one out-of-distribution image" in res.output


# --- trained model -------------------------------------------------------------------

def test_shipped_model_separates_non_chest_images(jsrt_dir):
    """Mahalanobis distance of mu tells photographs from JSRT X-rays (needs the shipped weights)."""
    from chexmask._errors import ChexmaskError
    from chexmask.inference.segmenter import Segmenter
    from chexmask.io.layout import read_split
    from chexmask.io.read import read_image

    try:
        seg = Segmenter("hybridgnet-jsrt-256", uncertainty=0)
    except ChexmaskError as exc:
        pytest.skip(f"shipped weights unavailable: {exc}")
    read = lambda split, n: [read_image(jsrt_dir / "images" / f"{i}.png") for i in read_split(jsrt_dir, split)[:n]]  # noqa: E731
    ref = fit_reference(seg.segment_images(read("train", 40)))
    ins = ood_scores(seg.segment_images(read("test", 8)), ref)
    outs = ood_scores(seg.segment_images(non_chest_images()["skimage"][:8]), ref)
    assert auroc(ins["mahalanobis_mu"], outs["mahalanobis_mu"]) > 0.9
