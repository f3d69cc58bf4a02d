import numpy as np
import pytest

from chexmask.preprocess import Geometry, mask_to_original, pad_resize, to_model_frame, to_original


@pytest.mark.parametrize("shape", [(100, 100), (899, 786), (786, 899), (101, 64), (64, 101), (1024, 1024), (3000, 2500)])
@pytest.mark.parametrize("size", [256, 1024])
def test_round_trip_points_and_masks(shape, size):
    h, w = shape
    image = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    out, g = pad_resize(image, size)
    assert out.shape == (size, size) and out.dtype == np.uint8
    assert (g.height, g.width, g.side) == (h, w, max(h, w))
    # extra pixel of an odd difference goes to the end
    assert g.pad_top == (g.side - h) // 2 and g.pad_left == (g.side - w) // 2
    pts = np.array([[0, 0], [w - 1, h - 1], [w / 3, h / 2]])
    np.testing.assert_allclose(to_original(to_model_frame(pts, g), g), pts, atol=1e-9)
    mask = np.zeros((size, size), np.uint8)
    mask[size // 4 : size // 2, size // 3 : size // 2] = 255
    back = mask_to_original(mask, g)
    assert back.shape == (h, w) and set(np.unique(back)) <= {0, 255}


def test_padding_is_symmetric_zero():
    img = np.full((4, 7), 9, np.uint8)
    out, g = pad_resize(img, 7)
    assert (g.pad_top, g.pad_left) == (1, 0)
    assert out[0].max() == 0 and out[5:].max() == 0 and out[1:5].min() == 9  # 3 rows: 1 before, 2 after


def test_pad_resize_rejects_bad_input():
    with pytest.raises(ValueError, match="2-D"):
        pad_resize(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="positive"):
        Geometry.for_shape(0, 5)
    with pytest.raises(ValueError, match="mask must have shape"):
        mask_to_original(np.zeros((10, 10)), Geometry.for_shape(20, 20, 16))


def _dice(a, b):
    a, b = a > 0, b > 0
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def test_reference_example_reverts_to_original_frame(example_dir):
    """The reference's masks of a 786x899 image, rebuilt at 1024 and mapped back."""
    import cv2

    from chexmask.masks.fill import landmarks_to_masks

    image = cv2.imread(str(example_dir / "utils_example1.jpg"), cv2.IMREAD_GRAYSCALE)
    g = Geometry.for_shape(*image.shape, size=1024)
    lms = np.concatenate([np.loadtxt(example_dir / f"{o}_landmarks.txt") for o in ("RL", "LL", "H")])
    model_frame = np.rint(to_model_frame(lms, g))
    masks_1024 = landmarks_to_masks(model_frame, 1024, 1024)
    for organ, name in (("right_lung", "RL"), ("left_lung", "LL"), ("heart", "H")):
        ref = cv2.imread(str(example_dir / f"{name}_mask.png"), cv2.IMREAD_GRAYSCALE)
        back = mask_to_original(masks_1024[organ], g)
        assert back.shape == ref.shape == (899, 786)
        assert _dice(back, ref) > 0.98, organ
        # no systematic offset: centroids agree within a pixel
        cy, cx = (np.argwhere(back > 0).mean(0) - np.argwhere(ref > 0).mean(0))
        assert abs(cy) < 1 and abs(cx) < 1, organ
