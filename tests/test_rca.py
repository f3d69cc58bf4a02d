"""RCA: registration, atlas, scorer, table scoring and the ``rca`` command.

Synthetic chest-like images (body, two dark lungs, a bright heart, placed at random)
stand in for JSRT so the tests are fast and do not depend on model quality.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from chexmask import InputError
from chexmask.io.read import read_image
from chexmask.masks.rle import encode_rle
from chexmask.quality.rca import Atlas, RCAResult, RCAScorer, build_atlas, open_atlas, score_segmentation
from chexmask.quality.registration import METHODS, prepare, register, warp_mask
from chexmask.quality.rca_table import score_table

H, W = 144, 128  # portrait: exercises the padding to square


def phantom(rng: np.random.Generator, dx: float = 0.0, dy: float = 0.0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A chest-like image and its right lung, left lung and heart masks (uint8 0/255)."""
    img = np.full((H, W), 20, np.uint8)
    cx, cy = W / 2 + dx + rng.uniform(-4, 4), H / 2 + dy + rng.uniform(-4, 4)
    ax = rng.uniform(0.9, 1.1)
    masks = {k: np.zeros((H, W), np.uint8) for k in ("right_lung", "left_lung", "heart")}
    cv2.ellipse(img, (int(cx), int(cy)), (int(55 * ax), 66), 0, 0, 360, 170, -1)
    for key, sx in (("right_lung", -1), ("left_lung", 1)):
        centre = (int(cx + sx * 24 * ax), int(cy - 6))
        cv2.ellipse(masks[key], centre, (int(17 * ax), 44), sx * 8, 0, 360, 255, -1)
    cv2.ellipse(masks["heart"], (int(cx + 8), int(cy + 26)), (int(22 * ax), 17), -15, 0, 360, 255, -1)
    for key in ("right_lung", "left_lung"):
        masks[key][masks["heart"] > 0] = 0
        img[masks[key] > 0] = 70
    img[masks["heart"] > 0] = 200
    texture = cv2.GaussianBlur(rng.normal(0, 25, (H, W)).astype(np.float32), (0, 0), 2)
    img = np.clip(cv2.GaussianBlur(img.astype(np.float32), (0, 0), 1.5) + texture, 0, 255).astype(np.uint8)
    return img, masks


def shifted(masks: dict[str, np.ndarray], dx: int) -> dict[str, np.ndarray]:
    return {k: np.roll(m, dx, axis=1) for k, m in masks.items()}


@pytest.fixture(scope="module")
def jsrt_like(tmp_path_factory) -> Path:
    """A JSRT-layout folder: 8 train images with SCR-style masks, 2 test images."""
    root = tmp_path_factory.mktemp("jsrt")
    for sub in ("images", "scr_masks", "splits"):
        (root / sub).mkdir()
    rng = np.random.default_rng(1)
    ids = {"train": [f"TR{i:02d}" for i in range(8)], "test": ["TE00", "TE01"]}
    for split, names in ids.items():
        for name in names:
            img, masks = phantom(rng, *rng.uniform(-8, 8, 2))
            cv2.imwrite(str(root / "images" / f"{name}.png"), img)
            np.savez(root / "scr_masks" / f"{name}.npz", **{k: m > 0 for k, m in masks.items()})
        (root / "splits" / f"{split}.txt").write_text("\n".join(names) + "\n")
    return root


@pytest.fixture(scope="module")
def atlas(jsrt_like) -> Atlas:
    return build_atlas(jsrt_like, size=96)


@pytest.fixture(scope="module")
def query():
    return phantom(np.random.default_rng(7), 5, -3)


# -- registration ---------------------------------------------------------------------

@pytest.mark.parametrize("method", METHODS)
def test_register_recovers_a_shift(method):
    img, masks = phantom(np.random.default_rng(0))
    fixed, moving = img[:, :128][:128], np.roll(img, 6, axis=1)[:128]
    warp = register(fixed, moving, method)
    assert abs(warp.affine[0, 2] - 6) < 1.5 and abs(warp.affine[1, 2]) < 1.5
    back = warp_mask(np.roll(masks["heart"], 6, axis=1)[:128], warp)
    assert cv2.countNonZero((back ^ (masks["heart"][:128] > 0)).astype(np.uint8)) < 0.15 * np.count_nonzero(masks["heart"])


def test_register_identity_for_the_same_image():
    img = prepare(phantom(np.random.default_rng(3))[0][:128])
    warp = register(img, img, "affine+dis", prepared=True)
    ys, xs = np.mgrid[0:128, 0:128]
    assert np.abs(warp.map_x - xs).max() < 0.5 and np.abs(warp.map_y - ys).max() < 0.5


def test_register_rejects_bad_input():
    a = np.zeros((32, 32), np.uint8)
    with pytest.raises(ValueError, match="unknown registration method 'demons'"):
        register(a, a, "demons")
    with pytest.raises(ValueError, match="differ in size"):
        register(a, np.zeros((16, 16), np.uint8))
    with pytest.raises(ValueError, match="2-D uint8"):
        prepare(a.astype(np.float32))


# -- atlas ----------------------------------------------------------------------------

def test_build_atlas_reads_the_train_split(atlas):
    assert atlas.ids == [f"TR{i:02d}" for i in range(8)]
    assert atlas.images.shape == (8, 96, 96) and atlas.images.dtype == np.uint8
    assert atlas.lungs.dtype == bool and atlas.lungs[0].any() and atlas.heart[0].any()
    assert atlas.latent is None


def test_atlas_save_load_round_trip(atlas, tmp_path):
    atlas2 = Atlas(atlas.ids, atlas.images, atlas.lungs, atlas.heart, np.ones((8, 4), np.float32), "abc")
    atlas2.save(tmp_path / "a.npz")
    back = open_atlas(tmp_path / "a.npz")
    assert back.ids == atlas.ids and back.model_sha256 == "abc"
    for name in ("images", "lungs", "heart", "latent"):
        np.testing.assert_array_equal(getattr(back, name), getattr(atlas2, name))


def test_atlas_errors(tmp_path, jsrt_like):
    with pytest.raises(InputError, match="atlas file not found"):
        Atlas.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(InputError, match="not an RCA atlas"):
        Atlas.load(tmp_path / "other.npz")
    with pytest.raises(InputError, match="splits/val.txt is missing"):
        build_atlas(jsrt_like, split="val")


def test_atlas_falls_back_to_expert_landmarks(tmp_path):
    root = tmp_path / "j"
    (root / "images").mkdir(parents=True)
    (root / "landmarks").mkdir()
    (root / "splits").mkdir()
    cv2.imwrite(str(root / "images" / "A.png"), np.full((64, 64), 100, np.uint8))
    t = np.linspace(0, 2 * np.pi, 50, endpoint=False)[:, None]
    ring = lambda n, cx, r: np.hstack([cx + r * np.cos(t[:: max(1, 50 // n)][:n]), 32 + r * np.sin(t[:: max(1, 50 // n)][:n])])  # noqa: E731
    np.savez(root / "landmarks" / "A.npz", RL=ring(44, 18, 10), LL=ring(50, 46, 10), H=ring(26, 32, 6))
    (root / "splits" / "train.txt").write_text("A\n")
    a = build_atlas(root, size=64)
    assert a.lungs[0, 32, 18] and a.lungs[0, 32, 46] and a.heart[0, 32, 32] and not a.lungs[0, 5, 5]


# -- scorer ---------------------------------------------------------------------------

def test_rca_ranks_good_above_bad_masks(atlas, query):
    img, masks = query
    scorer = RCAScorer(atlas, k=3, embedding="image")
    good, bad = scorer.score_many(img, [masks, shifted(masks, 25)])
    assert isinstance(good, RCAResult) and len(good.references) == 3
    assert good.mean > 0.8 and bad.mean < good.mean - 0.15
    assert good.mean <= good.max <= 1
    assert set(good.per_organ) == {"lungs", "heart"} and good.dice.shape == (3, 2)
    one = scorer.score(img, masks)
    assert one.mean == pytest.approx(good.mean)


def test_columns(atlas, query):
    res = RCAScorer(atlas, k=2, embedding="image").score(*query)
    cols = res.columns()
    assert list(cols) == RCAResult.column_names()
    assert list(cols)[:2] == ["Dice RCA (Mean)", "Dice RCA (Max)"] and "Dice RCA Heart (Max)" in cols


def test_references_find_the_image_itself(atlas):
    scorer = RCAScorer(atlas, k=2, embedding="image")
    assert scorer.references(atlas.images[4])[0] == 4


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda m: {**m, "heart": np.zeros((10, 10), np.uint8)}, "heart mask is 10x10 but the image is 144x128"),
        (lambda m: {**m, "heart": np.zeros_like(m["heart"])}, "heart mask is empty"),
        (lambda m: {k: v for k, v in m.items() if k != "left_lung"}, "no left_lung mask"),
    ],
)
def test_score_rejects_bad_masks(atlas, query, change, match):
    with pytest.raises(InputError, match=match):
        RCAScorer(atlas, k=1, embedding="image").score(query[0], change(query[1]))


def test_scorer_rejects_bad_options(atlas):
    with pytest.raises(ValueError, match="k must be between 1 and the atlas size 8"):
        RCAScorer(atlas, k=9, embedding="image")
    with pytest.raises(ValueError, match="unknown embedding 'pixels'"):
        RCAScorer(atlas, embedding="pixels")
    with pytest.raises(ValueError, match="needs a segmenter"):
        RCAScorer(atlas)


def test_latent_embedding_and_segment_hook(jsrt_like, tiny_weights, query):
    from chexmask.inference.segmenter import Segmenter

    seg = Segmenter(tiny_weights)
    atlas = build_atlas(jsrt_like, seg, size=96)
    assert atlas.latent.shape == (8, seg.model.config.latent_dim) and atlas.model_sha256 == seg.info["sha256"]
    stale = Atlas(atlas.ids, atlas.images, atlas.lungs, atlas.heart, np.zeros_like(atlas.latent), "other")
    scorer = RCAScorer(stale, k=3, segmenter=seg)
    assert stale.model_sha256 == seg.info["sha256"] and np.abs(stale.latent).sum() > 0  # recomputed
    image = read_image(jsrt_like / "images" / "TE00.png")
    result = seg.segment(image)
    cols = score_segmentation(scorer, image, result)
    assert list(cols) == RCAResult.column_names()
    assert all(0 <= v <= 1 for v in cols.values())


# -- table and command ----------------------------------------------------------------

@pytest.fixture()
def table_case(tmp_path, query):
    """Four images and a table: good row, wrong size, empty heart, id without image; one image without row."""
    img, masks = query
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("good", "small", "empty", "norow"):
        cv2.imwrite(str(folder / f"{name}.png"), img)

    def row(name, m, h=H, w=W):
        return {"image_id": name, "Dice RCA (Mean)": "", "Dice RCA (Max)": "", "Landmarks": "",
                "Left Lung": encode_rle(m["left_lung"]), "Right Lung": encode_rle(m["right_lung"]),
                "Heart": encode_rle(m["heart"]), "Height": h, "Width": w}

    small = {k: v[:100, :100] for k, v in masks.items()}
    rows = [row("good", masks), row("small", small, 100, 100), row("empty", {**masks, "heart": masks["heart"] * 0}),
            row("ghost", masks)]
    pd.DataFrame(rows).to_csv(tmp_path / "masks.csv", index=False)
    return folder, tmp_path / "masks.csv"


def test_score_table_reports_bad_rows_and_scores_the_rest(atlas, table_case):
    folder, table = table_case
    scores, errors = score_table([folder], table, RCAScorer(atlas, k=2, embedding="image"))
    assert scores["image_id"].tolist() == ["good"] and scores["Dice RCA (Mean)"].iloc[0] > 0.7
    msgs = dict(zip(errors["id"], errors["message"]))
    assert "masks are 100x100 (Height x Width) but the image" in msgs["small"] and "is 144x128" in msgs["small"]
    assert "heart mask is empty" in msgs["empty"]
    assert "no image given for id 'ghost'" in msgs["ghost"]
    assert msgs["norow"] == "no row in the table for this image"


def test_rca_command(atlas, table_case, tmp_path):
    from typer.testing import CliRunner

    from chexmask.cli import app

    folder, table = table_case
    atlas.save(tmp_path / "atlas.npz")
    out = tmp_path / "rca.csv"
    args = ["rca", str(folder), "--masks", str(table), "--atlas", str(tmp_path / "atlas.npz"), "-o", str(out),
            "--embedding", "image", "--k", "2", "--no-progress"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 1, res.output  # some rows failed
    assert "scored 1 rows" in res.output and "4 errors" in res.output
    assert len(pd.read_csv(out)) == 1 and len(pd.read_csv(tmp_path / "rca.errors.csv")) == 4
    res = CliRunner().invoke(app, [*args[:5], str(tmp_path / "nope.npz"), *args[6:]])
    assert res.exit_code == 1 and "atlas file not found" in res.output


# -- golden: real JSRT images ---------------------------------------------------------

def test_rca_on_jsrt_separates_good_and_bad_masks(jsrt_dir):
    ids = (jsrt_dir / "splits" / "train.txt").read_text().split()[:10]
    imgs, lungs, hearts = [], [], []
    from chexmask.preprocess import pad_resize

    for i in ids:
        imgs.append(pad_resize(read_image(jsrt_dir / "images" / f"{i}.png").pixels, 128)[0])
        with np.load(jsrt_dir / "scr_masks" / f"{i}.npz") as d:
            lungs.append(pad_resize((d["right_lung"] | d["left_lung"]).astype(np.uint8) * 255, 128)[0] > 127)
            hearts.append(pad_resize(d["heart"].astype(np.uint8) * 255, 128)[0] > 127)
    atlas = Atlas(ids, np.stack(imgs), np.stack(lungs), np.stack(hearts))
    test_id = (jsrt_dir / "splits" / "test.txt").read_text().split()[0]
    image = read_image(jsrt_dir / "images" / f"{test_id}.png")
    with np.load(jsrt_dir / "scr_masks" / f"{test_id}.npz") as d:
        truth = {k: d[k].astype(np.uint8) * 255 for k in ("right_lung", "left_lung", "heart")}
    eroded = {k: cv2.erode(m, np.ones((61, 61), np.uint8)) for k, m in truth.items()}
    good, bad = RCAScorer(atlas, k=3, embedding="image").score_many(image, [truth, eroded])
    assert good.mean > 0.8 and bad.mean < good.mean - 0.15
