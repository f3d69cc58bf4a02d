"""Landmarks -> masks: toy polygons, OpenCV agreement, and the published masks."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest

from chexmask import InputError
from chexmask.anatomy import ORGANS
from chexmask.masks.fill import fill_polygon, landmarks_to_masks
from chexmask.masks.rle import decode_rle

COLUMNS = {"right_lung": "Right Lung", "left_lung": "Left Lung", "heart": "Heart"}


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else 2.0 * (a & b).sum() / total


def parse(text: str) -> np.ndarray:
    return np.array(text.split(","), dtype=float).reshape(-1, 2)


# --- toy cases -----------------------------------------------------------------


def test_rectangle():
    out = fill_polygon([[1, 1], [3, 1], [3, 2], [1, 2]], 4, 5)
    expected = np.zeros((4, 5), bool)
    expected[1:3, 1:4] = True
    np.testing.assert_array_equal(out, expected)


def test_point_and_segment():
    np.testing.assert_array_equal(np.argwhere(fill_polygon([[2, 1]], 3, 4)), [[1, 2]])
    seg = fill_polygon([[0, 0], [3, 3]], 4, 4)
    np.testing.assert_array_equal(seg, np.eye(4, dtype=bool))


def test_tie_rule():
    # The right edge (0, 0)-(1, 2) crosses row 1 at x = 0.5: "inside" leaves the
    # pixel at row 1, column 1 out; "round" takes it.
    pts = [[0, 0], [1, 2], [0, 2]]
    assert not fill_polygon(pts, 3, 3, rule="inside")[1, 1]
    assert fill_polygon(pts, 3, 3, rule="round")[1, 1]


def test_contour_outside_image_is_clipped():
    out = fill_polygon([[-10, -10], [10, -10], [10, 10], [-10, 10]], 4, 5)
    assert out.all()


def _opencv_rule() -> str | None:
    """Which rule the installed OpenCV follows (None: neither)."""
    pts = np.array([[0, 0], [1, 2], [0, 2]], np.int32)
    ref = np.zeros((3, 3), np.uint8)
    cv2.drawContours(ref, [pts.reshape(-1, 1, 2)], -1, 1, -1)
    for rule in ("inside", "round"):
        if np.array_equal(fill_polygon(pts, 3, 3, rule=rule), ref > 0):
            return rule
    return None


def test_matches_installed_opencv():
    rule = _opencv_rule()
    if rule is None:
        pytest.skip(f"OpenCV {cv2.__version__} follows neither known fill rule")
    rng = np.random.default_rng(0)
    for _ in range(400):
        n = int(rng.integers(1, 12))
        height, width = (int(v) for v in rng.integers(1, 50, 2))
        # "round" (OpenCV 4.x) is only emulated for contours inside the image.
        margin = 15 if rule == "inside" and rng.random() < 0.5 else 0
        xs = rng.integers(-margin, width + margin, n)
        ys = rng.integers(-margin, height + margin, n)
        pts = np.stack([xs, ys], axis=1)
        ref = np.zeros((height, width), np.uint8)
        cv2.drawContours(ref, [pts.astype(np.int32).reshape(-1, 1, 2)], -1, 1, -1)
        np.testing.assert_array_equal(fill_polygon(pts, height, width, rule=rule), ref > 0)


# --- landmarks_to_masks --------------------------------------------------------


def _toy_landmarks() -> np.ndarray:
    pts = np.zeros((120, 2))
    pts[:44] = [[5, 5], [15, 5], [15, 25], [5, 25]] * 11
    pts[44:94] = [[25, 5], [35, 5], [35, 25], [25, 25], [25, 15]] * 10
    pts[94:] = [[18, 20], [22, 20], [22, 28], [18, 28]] * 6 + [[18, 20], [22, 20]]
    return pts


def test_landmarks_to_masks_contract():
    masks = landmarks_to_masks(_toy_landmarks(), 30, 40)
    assert list(masks) == list(ORGANS)
    for mask in masks.values():
        assert mask.shape == (30, 40) and mask.dtype == np.uint8
        assert set(np.unique(mask)) == {0, 255}
    assert masks["right_lung"][5:26, 5:16].all() and masks["right_lung"].sum() == 11 * 21 * 255


def test_nan_organ_gives_empty_mask():
    pts = _toy_landmarks()
    pts[94:] = np.nan
    masks = landmarks_to_masks(pts, 30, 40)
    assert not masks["heart"].any() and masks["left_lung"].any()


def test_fractional_landmarks_are_truncated():
    pts = _toy_landmarks()
    a = landmarks_to_masks(pts, 30, 40)
    b = landmarks_to_masks(pts + 0.9, 30, 40)
    for organ in ORGANS:
        np.testing.assert_array_equal(a[organ], b[organ])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p[:119], r"^landmarks: expected shape \(120, 2\), or \(166, 2\) with the clavicles, got \(119, 2\)"),
        (lambda p: p.T, r"expected shape \(120, 2\), or \(166, 2\) with the clavicles, got \(2, 120\)"),
        (lambda p: _set(p, 94, np.nan), r"heart has non-finite values at nodes \[94\]"),
        (lambda p: _set(p, 3, np.inf), r"right_lung has non-finite values at nodes \[3\]"),
        (lambda p: _set(p, 50, 1e9), r"left_lung has coordinates beyond"),
    ],
)
def test_landmarks_to_masks_errors(change, message):
    with pytest.raises(InputError, match=message):
        landmarks_to_masks(change(_toy_landmarks()), 30, 40)


def _set(pts: np.ndarray, node: int, value: float) -> np.ndarray:
    pts = pts.copy()
    pts[node, 1] = value
    return pts


@pytest.mark.parametrize(("height", "width"), [(0, 40), (30, 40.0), (30, -2)])
def test_landmarks_to_masks_bad_size(height, width):
    with pytest.raises(InputError, match="must be a positive integer"):
        landmarks_to_masks(_toy_landmarks(), height, width)


def test_fill_polygon_errors():
    with pytest.raises(ValueError, match=r"rule must be one of \['inside', 'round'\]"):
        fill_polygon([[0, 0]], 2, 2, rule="cv4")
    with pytest.raises(ValueError, match="must hold integers"):
        fill_polygon([[0.5, 0]], 2, 2)
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        fill_polygon(np.zeros((3, 3)), 2, 2)


# --- golden: published masks ------------------------------------------------------


def _fill_table(path, rule="inside"):
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    for i, row in df.iterrows():
        height = int(row["Height"]) if "Height" in df else 1024
        width = int(row["Width"]) if "Width" in df else 1024
        masks = landmarks_to_masks(parse(row["Landmarks"]), height, width, rule=rule)
        for organ, column in COLUMNS.items():
            yield i, organ, masks[organ], decode_rle(row[column], height, width)


@pytest.mark.parametrize("name", ["ChestX-Ray8.csv", "CANDID-PTX.csv"])
def test_published_predictions_are_reproduced_exactly(chexmask_csv_dir, name):
    for i, organ, mask, ref in _fill_table(chexmask_csv_dir / name):
        np.testing.assert_array_equal(mask > 0, ref > 0, err_msg=f"{name} row {i} {organ}")


@pytest.mark.parametrize(
    ("name", "rule", "min_dice", "min_exact"),
    [
        # Physicians' masks were filled by OpenCV versions of both rules; a few were
        # edited beyond the landmarks.
        ("CANDID-PTX_julia_annotations.csv", "round", 0.9997, 137),
        ("CANDID-PTX_martina_annotations.csv", "inside", 0.9998, 99),
    ],
)
def test_published_physician_masks(chexmask_csv_dir, name, rule, min_dice, min_exact):
    scores, exact = [], 0
    for _, _, mask, ref in _fill_table(chexmask_csv_dir / name, rule):
        scores.append(dice(mask, ref))
        exact += np.array_equal(mask > 0, ref > 0)
    assert np.mean(scores) >= min_dice and exact >= min_exact


def test_example_original_frame(example_dir):
    keys = ("RL", "LL", "H")
    parts = [np.loadtxt(example_dir / f"{k}_landmarks.txt") for k in keys]
    refs = [cv2.imread(str(example_dir / f"{k}_mask.png"), cv2.IMREAD_GRAYSCALE) for k in keys]
    height, width = refs[0].shape
    assert (height, width) == (899, 786)
    points = np.concatenate(parts)
    exact = landmarks_to_masks(points, height, width, rule="round")
    default = landmarks_to_masks(points, height, width)
    for organ, ref in zip(ORGANS, refs):
        np.testing.assert_array_equal(exact[organ], ref)
        assert dice(default[organ], ref) > 0.99998


def test_polygon_runs_are_the_runs_of_fill_polygon():
    """Bit-exact on random polygons, inside and across the frame (the runs path writes the CSV masks)."""
    from chexmask.masks.fill import polygon_runs
    from chexmask.masks.rle import encode_rle, runs_to_rle

    rng = np.random.default_rng(7)
    for trial in range(600):
        h, w = int(rng.integers(3, 120)), int(rng.integers(3, 120))
        n = int(rng.integers(3, 50))
        if trial % 2:
            ang = np.sort(rng.uniform(0, 2 * np.pi, n))
            r = rng.uniform(0.2, 0.7, n) * min(h, w)
            pts = np.stack([w / 2 + r * np.cos(ang), h / 2 + r * np.sin(ang)], 1).astype(int)
        else:
            pts = np.stack([rng.integers(-20, w + 20, n), rng.integers(-20, h + 20, n)], 1)
        for rule in ("inside", "round"):
            assert runs_to_rle(*polygon_runs(pts, h, w, rule=rule)) == encode_rle(fill_polygon(pts, h, w, rule=rule)), (h, w, pts)


def test_landmarks_to_runs_matches_landmarks_to_masks_and_measures_agree():
    from chexmask.masks.fill import landmarks_to_runs
    from chexmask.masks.rle import encode_rle, runs_to_rle
    from chexmask.measures import measure_masks, measure_runs

    rng = np.random.default_rng(3)
    pts = np.concatenate([rng.uniform(-5, 70, (120, 2)), rng.uniform(0, 60, (46, 2))])
    pts[94:120] = np.nan  # no heart: empty runs, NaN heart measures
    pts[:44, 0] = np.where(np.arange(44) % 2, -3, 70)  # the right lung spans the whole width: runs wrap rows
    runs, masks = landmarks_to_runs(pts, 50, 64), landmarks_to_masks(pts, 50, 64)
    assert list(runs) == list(masks)
    for organ in masks:
        assert runs_to_rle(*runs[organ]) == encode_rle(masks[organ]), organ
    a, b = measure_runs(runs, 64, (0.5, 0.25)), measure_masks(masks, (0.5, 0.25))
    assert a.keys() == b.keys()
    for k in a:
        assert (np.isnan(a[k]) and np.isnan(b[k])) or a[k] == b[k], k
    with pytest.raises(ValueError, match="runs lacks"):
        measure_runs({"heart": runs["right_lung"]}, 64)
