"""Toy and error tests of chexmask.quality.metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from skimage.draw import ellipse

from chexmask.quality.metrics import (
    MaskScores,
    dice,
    hausdorff,
    landmark_sq_errors,
    mask_scores,
    node_rank_figures,
    surface,
    surface_distances,
)


def _square(shape=(40, 40), top=10, left=10, side=12) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[top : top + side, left : left + side] = True
    return m


def _brute_surface(m: np.ndarray) -> np.ndarray:
    # Independent of scipy: foreground with a 4-neighbour in the background (outside = background).
    p = np.pad(m, 1)
    inner = p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return m & ~inner


def _brute_scores(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    d = cdist(np.argwhere(_brute_surface(a)), np.argwhere(_brute_surface(b)))
    ab, ba = d.min(axis=1), d.min(axis=0)
    return max(ab.max(), ba.max()), float(np.percentile(np.r_[ab, ba], 95))


def test_identical_masks():
    m = _square()
    assert mask_scores(m, m) == MaskScores(1.0, 0.0, 0.0)


@pytest.mark.parametrize("d", [1, 3, 7])
@pytest.mark.parametrize("axis", [0, 1])
def test_shifted_squares_hd_equals_shift(d, axis):
    a = _square()
    b = np.roll(a, d, axis=axis)
    s = mask_scores(a, b)
    assert s.hd == pytest.approx(d)
    assert s.dice == pytest.approx((12 - d) / 12)
    assert 0 < s.hd95 <= d


def test_hd95_pools_both_directions():
    # A = one pixel; B = a 3-pixel line starting on it: A->B [0], B->A [0, 1, 2].
    # Pooled [0, 0, 1, 2]: 95th percentile 1.85 (linear); the max of directed 95th would be 1.9.
    a = np.zeros((20, 20), bool)
    a[10, 10] = True
    b = np.zeros((20, 20), bool)
    b[10, 10:13] = True
    assert hausdorff(a, b) == pytest.approx(2.0)
    assert hausdorff(a, b, percentile=95) == pytest.approx(1.85)
    assert mask_scores(a, b).hd95 == pytest.approx(1.85)


def test_single_pixels_euclidean():
    a = np.zeros((20, 20), bool)
    b = np.zeros((20, 20), bool)
    a[2, 2], b[5, 6] = True, True
    assert mask_scores(a, b) == MaskScores(0.0, 5.0, 5.0)


def test_surface_of_square_is_its_outline():
    m = _square(side=5)
    assert surface(m).sum() == 16
    assert not surface(m)[12, 12]


@pytest.mark.parametrize("seed", range(6))
def test_matches_brute_force_and_full_frame(seed):
    rng = np.random.default_rng(seed)
    a = np.zeros((64, 80), bool)
    b = np.zeros((64, 80), bool)
    for m in (a, b):
        # Centres near the edge on some seeds so masks touch the image border.
        r, c = ellipse(rng.integers(0, 64), rng.integers(0, 80), rng.integers(5, 25), rng.integers(5, 30), shape=m.shape)
        m[r, c] = True
    hd, hd95 = _brute_scores(a, b)
    fast, full = mask_scores(a, b), mask_scores(a, b, crop=False)
    assert fast.hd == pytest.approx(hd)
    assert fast.hd95 == pytest.approx(hd95)
    assert fast == full
    assert fast.dice == pytest.approx(2 * (a & b).sum() / (a.sum() + b.sum()))


def test_empty_masks():
    empty = np.zeros((10, 10), bool)
    full = _square((10, 10), 2, 2, 4)
    both = mask_scores(empty, empty)
    assert both.dice == 1.0 and np.isnan(both.hd) and np.isnan(both.hd95)
    one = mask_scores(full, empty)
    assert one.dice == 0.0 and np.isnan(one.hd)
    assert dice(empty, empty) == 1.0
    with pytest.raises(ValueError, match="the second mask is empty"):
        surface_distances(full, empty)
    with pytest.raises(ValueError, match="first and second mask is empty"):
        hausdorff(empty, empty)


def test_mismatched_sizes():
    with pytest.raises(ValueError, match=r"mask sizes differ: 10x10 vs 10x12"):
        mask_scores(np.ones((10, 10)), np.ones((10, 12)))
    with pytest.raises(ValueError, match="2-D"):
        dice(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match=r"percentile must be in \[0, 100\], got 120"):
        hausdorff(_square(), _square(), percentile=120)


def test_uint8_255_masks_count_as_foreground():
    m = _square().astype(np.uint8) * 255
    assert mask_scores(m, m > 0) == MaskScores(1.0, 0.0, 0.0)


def test_landmark_sq_errors():
    np.testing.assert_array_equal(landmark_sq_errors([[0, 0], [1, 1]], [[3, 4], [1, 1]]), [25.0, 0.0])
    assert np.isnan(landmark_sq_errors([[np.nan, 0]], [[0, 0]])[0])
    with pytest.raises(ValueError, match=r"same shape, got \(2, 2\) and \(3, 2\)"):
        landmark_sq_errors(np.zeros((2, 2)), np.zeros((3, 2)))


def test_node_rank_figures_pool_images_and_drop_unannotated_nodes():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    stds = [rng.random(20) for _ in range(4)]
    errors = [s * 3 + rng.random(20) for s in stds]
    errors[1][:5] = np.nan  # an organ the expert did not annotate
    f = node_rank_figures(stds, errors)
    ok = [np.isfinite(e) for e in errors]
    pooled = spearmanr(np.concatenate([s[k] for s, k in zip(stds, ok)]), np.concatenate([e[k] for e, k in zip(errors, ok)]))[0]
    assert f["images"] == 4 and f["nodes"] == 75
    assert f["pooled"] == pytest.approx(pooled)
    assert f["per_image"] == pytest.approx(np.median([spearmanr(s[k], e[k])[0] for s, e, k in zip(stds, errors, ok)]))
    assert f["median_error_px"] == pytest.approx(np.median(np.concatenate([e[k] for e, k in zip(errors, ok)])))
    # a spread that ranks every error exactly
    assert node_rank_figures([np.arange(5.0)], [np.arange(5.0) * 2])["pooled"] == pytest.approx(1.0)


def test_node_rank_figures_of_too_few_images_are_nan():
    assert np.isnan(node_rank_figures([np.arange(3.0)] * 2, [np.arange(3.0)] * 2)["image_level"])  # under 3 images
    empty = node_rank_figures([np.arange(3.0)], [np.full(3, np.nan)])
    assert empty["nodes"] == 0 and np.isnan(empty["pooled"])
