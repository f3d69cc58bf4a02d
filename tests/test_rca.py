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
from chexmask.anatomy import ORGANS
from chexmask.io.read import read_image
from chexmask.masks.rle import encode_rle
from chexmask.preprocess import pad_resize
from chexmask.quality.atlas import Atlas, atlas_cache_path, build_atlas, open_atlas
from chexmask.quality.rca import RCAResult, RCAScorer, score_segmentation
from chexmask.quality.rca_table import score_table
from chexmask.quality.registration import METHODS, prepare, register, warp_mask

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


def test_prepare_stretches_a_washed_out_image():
    img = np.full((64, 64), 245, np.uint8)
    img[16:48, 8:28] = img[16:48, 36:56] = 238  # "lungs" 7 grey levels darker than the body
    out = prepare(img)
    assert int(out[32, 18]) + 100 < int(out[32, 32])  # now far apart


def test_register_reports_its_quality():
    img, _ = phantom(np.random.default_rng(4))
    good = register(img[:128], np.roll(img, 4, axis=1)[:128], "affine+dis")
    noise = np.random.default_rng(5).integers(0, 255, (128, 128), dtype=np.uint8)
    assert good.ncc > 0.8 and register(img[:128], noise, "affine+dis").ncc < 0.3


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
    assert atlas.ids == [f"TR{i:02d}" for i in range(8)] and set(atlas.sources) == {atlas.sources[0]}
    assert atlas.images.shape == (8, 96, 96) and atlas.images.dtype == np.uint8
    assert atlas.masks.shape == (8, 3, 96, 96) and atlas.masks.dtype == bool and atlas.masks.any(axis=(2, 3)).all()
    assert atlas.has_heart.all() and atlas.latent is None


def test_atlas_save_load_round_trip(atlas, tmp_path):
    atlas2 = Atlas(atlas.ids, atlas.sources, atlas.images, atlas.masks, atlas.has_heart, np.ones((8, 4), np.float32), "abc")
    atlas2.save(tmp_path / "a.npz")
    back = open_atlas(tmp_path / "a.npz")
    assert back.ids == atlas.ids and back.sources == atlas.sources and back.model_sha256 == "abc"
    for name in ("images", "masks", "has_heart", "latent"):
        np.testing.assert_array_equal(getattr(back, name), getattr(atlas2, name))


def test_atlas_errors(tmp_path, jsrt_like):
    with pytest.raises(InputError, match="atlas file not found"):
        Atlas.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(InputError, match="not an RCA atlas of this version"):
        Atlas.load(tmp_path / "other.npz")
    with pytest.raises(InputError, match="splits/val.txt: no such split file"):
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
    rl, ll, heart = a.masks[0]
    assert rl[32, 18] and ll[32, 46] and heart[32, 32] and not (rl | ll)[5, 5] and not rl[32, 46] and a.has_heart[0]


@pytest.fixture(scope="module")
def lungs_only(tmp_path_factory) -> Path:
    """A lungs-only source (Montgomery/Shenzhen layout): masks/<ID>.png of both lungs, no heart."""
    root = tmp_path_factory.mktemp("mc")
    for sub in ("images", "masks", "splits"):
        (root / sub).mkdir()
    rng = np.random.default_rng(2)
    for name in ("MC0", "MC1"):
        img, masks = phantom(rng)
        cv2.imwrite(str(root / "images" / f"{name}.png"), img)
        cv2.imwrite(str(root / "masks" / f"{name}.png"), masks["right_lung"] | masks["left_lung"])
    (root / "splits" / "train.txt").write_text("MC0\nMC1\n")
    return root


def test_multi_source_atlas_with_a_lungs_only_reference(jsrt_like, lungs_only):
    a = build_atlas([jsrt_like, lungs_only], size=96)
    assert len(a) == 10 and a.ids[-2:] == ["MC0", "MC1"] and a.sources[-1] == lungs_only.name
    assert a.has_heart.tolist() == [True] * 8 + [False] * 2
    rl, ll, heart = a.masks[-1]
    assert not heart.any() and rl.any() and ll.any() and not (rl & ll).any()
    ys, xs = np.nonzero(rl)
    assert xs.mean() < np.nonzero(ll)[1].mean()  # the right lung is on the image's left
    same = build_atlas(f"{jsrt_like},{lungs_only}", size=96)  # one comma-separated string
    assert same.ids == a.ids


def test_lungs_only_landmarks_give_per_lung_masks_without_heart(tmp_path):
    root = tmp_path / "sz"
    for sub in ("images", "landmarks", "splits"):
        (root / sub).mkdir(parents=True)
    cv2.imwrite(str(root / "images" / "A.png"), np.full((64, 64), 100, np.uint8))
    t = np.linspace(0, 2 * np.pi, 50, endpoint=False)[:, None]
    np.savez(root / "landmarks" / "A.npz", RL=np.hstack([18 + 10 * np.cos(t[:44]), 32 + 10 * np.sin(t[:44])]),
             LL=np.hstack([46 + 10 * np.cos(t), 32 + 10 * np.sin(t)]))
    (root / "splits" / "train.txt").write_text("A\n")
    a = build_atlas(root, size=64)
    assert not a.has_heart[0] and a.masks[0, 0, 32, 18] and a.masks[0, 1, 32, 46] and not a.masks[0, 2].any()


def test_lungs_mask_with_one_component_is_an_error(tmp_path, lungs_only):
    root = tmp_path / "bad"
    for sub in ("images", "masks", "splits"):
        (root / sub).mkdir(parents=True)
    cv2.imwrite(str(root / "images" / "B.png"), np.full((64, 64), 100, np.uint8))
    blob = np.zeros((64, 64), np.uint8)
    blob[10:50, 10:50] = 255
    cv2.imwrite(str(root / "masks" / "B.png"), blob)
    (root / "splits" / "train.txt").write_text("B\n")
    with pytest.raises(InputError, match="1 connected component"):
        build_atlas(root, size=64)


def test_open_atlas_caches_by_sources_and_model(jsrt_like, lungs_only, tmp_path, monkeypatch):
    from chexmask.quality import atlas as atlas_module

    monkeypatch.setenv("CHEXMASK_CACHE", str(tmp_path / "cache"))
    path = atlas_cache_path([jsrt_like, lungs_only], None)
    assert path.parent == tmp_path / "cache" / "rca" and not path.exists()
    first = open_atlas([jsrt_like, lungs_only], progress=False)  # miss: built and written
    assert path.is_file() and len(first) == 10

    def no_build(*args, **kwargs):
        raise AssertionError("built again: the cache was not used")

    monkeypatch.setattr(atlas_module, "build_atlas", no_build)
    again = open_atlas(f"{jsrt_like},{lungs_only}")  # hit, even spelled as one string
    np.testing.assert_array_equal(again.masks, first.masks)
    assert atlas_cache_path([jsrt_like, lungs_only], "abc") != path  # another model: another file
    assert atlas_cache_path([lungs_only, jsrt_like], None) != path  # the order of references matters
    assert atlas_cache_path([jsrt_like], None) != path
    with pytest.raises(AssertionError, match="built again"):
        open_atlas([jsrt_like, lungs_only], cache=False)
    path.write_bytes(b"truncated")  # a broken cache file is rebuilt, not fatal
    monkeypatch.setattr(atlas_module, "build_atlas", lambda *a, **k: first)
    assert len(open_atlas([jsrt_like, lungs_only])) == 10 and Atlas.load(path).ids == first.ids


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    from chexmask._cache import cache_dir

    monkeypatch.delenv("CHEXMASK_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "chexmask"
    monkeypatch.setenv("CHEXMASK_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"


# -- scorer ---------------------------------------------------------------------------

def test_rca_ranks_good_above_bad_masks(atlas, query):
    img, masks = query
    scorer = RCAScorer(atlas, k=3, embedding="image")
    good, bad = scorer.score_many(img, [masks, shifted(masks, 25)])
    assert isinstance(good, RCAResult) and len(good.references) == 3
    assert good.mean > 0.8 and bad.mean < good.mean - 0.15
    assert good.mean <= good.max <= 1
    assert set(good.per_organ) == {"lungs", "heart"} and good.dice.shape == (3, 3) and good.ncc.shape == (3,)
    overall = (2 * good.per_organ["lungs"]["mean"] + good.per_organ["heart"]["mean"]) / 3
    assert good.mean == pytest.approx(overall)
    one = scorer.score(img, masks)
    assert one.mean == pytest.approx(good.mean)


def test_heart_scored_only_on_references_that_annotate_it(jsrt_like, lungs_only, query):
    a = build_atlas([jsrt_like, lungs_only], size=96)
    img, masks = query
    scorer = RCAScorer(a, k=5, embedding="image")
    scorer._keys[:] = 0  # make the two lungs-only references the most similar ...
    scorer._keys[8:, 0] = scorer._keys[:8, 1] = 1
    scorer._keys[:8, 0] = np.linspace(0.5, 0.1, 8)
    scorer._keys = scorer._keys / np.linalg.norm(scorer._keys, axis=1, keepdims=True)
    refs = scorer.references(pad_resize(img, 96)[0])
    assert sum(a.has_heart[refs]) >= 3 and len(refs) == 5  # ... yet 3 of 5 references have a heart
    res = scorer.score(img, masks)
    heart_refs = a.has_heart[[a.ids.index(i) for i in res.references]]
    assert np.isnan(res.dice[~heart_refs, 2]).all() and not np.isnan(res.dice[heart_refs, 2]).any()
    assert res.per_organ["heart"]["mean"] == pytest.approx(np.nanmean(res.dice[:, 2]))
    only_lungs = Atlas(a.ids[8:], a.sources[8:], a.images[8:], a.masks[8:], a.has_heart[8:])
    res = RCAScorer(only_lungs, k=2, embedding="image").score(img, masks)
    assert np.isnan(res.per_organ["heart"]["mean"]) and res.mean == pytest.approx(res.per_organ["lungs"]["mean"])


def test_failed_registrations_are_left_out(atlas, query):
    img, masks = query
    res = RCAScorer(atlas, k=3, embedding="image", min_ncc=1.01).score(img, masks)  # every one "failed"
    kept = ~np.isnan(res.dice[:, 0])
    assert kept.sum() == 1 and res.ncc[kept][0] == res.ncc.max()  # the best-registered one is kept
    assert not np.isnan(RCAScorer(atlas, k=3, embedding="image").score(img, masks).dice).any()  # none fails here


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
    stale = Atlas(atlas.ids, atlas.sources, atlas.images, atlas.masks, atlas.has_heart, np.zeros_like(atlas.latent), "other")
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
    assert list(errors.columns[:3]) == ["path", "error", "reason"]  # the errors table of every command
    msgs = dict(zip(errors["image_id"], errors["reason"]))
    assert "masks are 100x100 (Height x Width) but the image" in msgs["small"] and "is 144x128" in msgs["small"]
    assert "heart mask is empty" in msgs["empty"]
    assert "no image given for id 'ghost'" in msgs["ghost"]
    assert msgs["norow"] == "no row in the table for this image"


def test_score_table_reads_the_chexmask_u_layout(atlas, table_case, tmp_path):
    """Landmarks (Mean) and Landmarks (Std) instead of Landmarks: the same scores and errors."""
    folder, table = table_case
    scorer = RCAScorer(atlas, k=2, embedding="image")
    u = pd.read_csv(table, dtype=str, keep_default_na=False).rename(columns={"Landmarks": "Landmarks (Mean)"})
    u.insert(4, "Landmarks (Std)", "")
    u.to_csv(tmp_path / "u.csv", index=False)
    scores, errors = score_table([folder], table, scorer)
    u_scores, u_errors = score_table([folder], tmp_path / "u.csv", scorer)
    pd.testing.assert_frame_equal(u_scores, scores)
    assert u_errors["reason"].tolist() == errors["reason"].tolist()


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
    assert res.exit_code == 2 and "atlas file not found" in res.output


# -- golden: real JSRT images ---------------------------------------------------------

def test_rca_on_jsrt_separates_good_and_bad_masks(jsrt_dir):
    ids = (jsrt_dir / "splits" / "train.txt").read_text().split()[:10]
    imgs, masks = [], []
    from chexmask.preprocess import pad_resize

    for i in ids:
        imgs.append(pad_resize(read_image(jsrt_dir / "images" / f"{i}.png").pixels, 256)[0])
        with np.load(jsrt_dir / "scr_masks" / f"{i}.npz") as d:
            masks.append(np.stack([pad_resize(d[o].astype(np.uint8) * 255, 256)[0] > 127 for o in ORGANS]))
    atlas = Atlas(ids, ["jsrt"] * len(ids), np.stack(imgs), np.stack(masks), np.ones(len(ids), bool))
    test_id = (jsrt_dir / "splits" / "test.txt").read_text().split()[0]
    image = read_image(jsrt_dir / "images" / f"{test_id}.png")
    with np.load(jsrt_dir / "scr_masks" / f"{test_id}.npz") as d:
        truth = {k: d[k].astype(np.uint8) * 255 for k in ("right_lung", "left_lung", "heart")}
    eroded = {k: cv2.erode(m, np.ones((61, 61), np.uint8)) for k, m in truth.items()}
    good, bad = RCAScorer(atlas, k=3, embedding="image").score_many(image, [truth, eroded])
    assert good.mean > 0.8 and bad.mean < good.mean - 0.15


# -- columns and option names ---------------------------------------------------------

def test_per_organ_columns_follow_the_chexmask_ones_in_both_outputs():
    from chexmask.formats.records import RCA_ORGAN_COLUMNS, csv_columns, parquet_columns
    from chexmask.formats.tables import CHEXMASK_COLUMNS

    assert RCAResult.column_names() == ["Dice RCA (Mean)", "Dice RCA (Max)", *RCA_ORGAN_COLUMNS]
    n = 1 + len(CHEXMASK_COLUMNS)
    for columns in (csv_columns("Image ID"), parquet_columns("Image ID")):
        assert columns[n : n + len(RCA_ORGAN_COLUMNS)] == RCA_ORGAN_COLUMNS and columns.count(RCA_ORGAN_COLUMNS[0]) == 1


def test_segment_takes_atlas_and_the_former_rca_name():
    import typer

    from chexmask.cli._options import resolve_atlas

    assert resolve_atlas("a.npz", None) == "a.npz" and resolve_atlas(None, "a.npz") == "a.npz"
    assert resolve_atlas("a.npz", "a.npz") == "a.npz"
    with pytest.raises(typer.Exit):
        resolve_atlas("a.npz", "b.npz")
