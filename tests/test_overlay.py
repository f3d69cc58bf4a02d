"""Overlay images: geometry of the output, fixed colour scale, errors, and the Segmenter round trip."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from chexmask._errors import InputError
from chexmask.anatomy import organ_slices
from chexmask.inference.segmenter import Segmentation
from chexmask.reports.overlay import draw_overlay, render_overlay

H, W = 200, 160


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _segmentation(std: float | None) -> Segmentation:
    """Three organ rings on a 200 x 160 image; every node has the same std (px)."""
    rng = np.random.default_rng(0)
    landmarks = np.empty((120, 2))
    centres = {"right_lung": (45, 90), "left_lung": (115, 90), "heart": (85, 140)}
    for organ, part in organ_slices().items():
        n = part.stop - part.start
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        landmarks[part] = np.c_[centres[organ][0] + 25 * np.cos(t), centres[organ][1] + 40 * np.sin(t)]
    node_std = None if std is None else np.full((120, 2), std / np.sqrt(2))
    return Segmentation("toy", None, H, W, landmarks, rng.normal(size=64), np.ones(64), landmarks, node_std, weak_lung_edges=0.1)


def _image() -> np.ndarray:
    return np.full((H, W), 128, np.uint8)


def test_render_shape_and_drawn_contours():
    out = render_overlay(_image(), _segmentation(2.0))
    assert out.shape == (H + 28, W + 90, 3) and out.dtype == np.uint8
    body = out[28:, :W]
    assert (np.abs(body.astype(int) - 128).sum(-1) > 30).mean() > 0.02  # contours and nodes were drawn
    assert np.array_equal(body[2, 2], [128, 128, 128])  # far from every node: untouched


def test_large_images_are_scaled_down():
    seg = _segmentation(2.0)
    seg.height, seg.width = 2 * H, 2 * W
    seg.landmarks = seg.landmarks * 2
    out = render_overlay(np.full((2 * H, 2 * W), 128, np.uint8), seg, max_side=H)
    assert out.shape == (H + 28, W + 90, 3)


def test_node_colour_uses_a_fixed_scale():
    # same image, low vs high std: the node centre turns from the cold to the hot end of the map
    seg_lo, seg_hi = _segmentation(0.5), _segmentation(100.0)
    x, y = np.rint(seg_lo.landmarks[0]).astype(int)
    lo = render_overlay(_image(), seg_lo, vmax_px=20, ellipses=False)[28 + y, x].astype(int)
    hi = render_overlay(_image(), seg_hi, vmax_px=20, ellipses=False)[28 + y, x].astype(int)
    assert hi[2] > lo[2] + 50  # red channel (BGR)
    assert lo[0] > hi[0]  # blue channel


def test_without_sampling_draws_white_nodes():
    out = render_overlay(_image(), _segmentation(None))
    x, y = np.rint(_segmentation(None).landmarks[0]).astype(int)
    assert np.array_equal(out[28 + y, x], [255, 255, 255])


def test_draw_overlay_writes_png(tmp_path):
    seg = _segmentation(3.0)
    path = draw_overlay(_image(), seg, tmp_path / "sub" / "toy.png", flag=seg.quality_estimate().flag())
    assert path.is_file()
    assert cv2.imread(str(path)).shape == (H + 28, W + 90, 3)


def test_errors():
    with pytest.raises(InputError, match="200x160"):
        render_overlay(np.zeros((100, 100), np.uint8), _segmentation(1.0))
    with pytest.raises(InputError, match="2-D uint8"):
        render_overlay(np.zeros((H, W), np.float32), _segmentation(1.0))
    with pytest.raises(ValueError, match="vmax_px"):
        render_overlay(_image(), _segmentation(1.0), vmax_px=0)


def test_overlay_of_a_segmenter_result(tiny_weights, tmp_path):
    from chexmask.inference.segmenter import Segmenter

    image = np.random.default_rng(1).integers(0, 255, (90, 70), dtype=np.uint8)
    seg = Segmenter(tiny_weights, uncertainty=4).segment(image, image_id="noise")
    path = draw_overlay(image, seg, tmp_path / "noise.png", flag=seg.quality_estimate().flag(),
                        error_radius=seg.quality_estimate().node_radius)
    assert cv2.imread(str(path)).shape == (90 + 28, 70 + 90, 3)


def test_without_legend_the_overlay_is_the_image_size_and_masks_fill_the_organs():
    seg = _segmentation(2.0)
    plain = render_overlay(_image(), seg, legend=False, ellipses=False)
    assert plain.shape == (H, W, 3)
    masks = {o: np.zeros((H, W), np.uint8) for o in seg.organs}
    masks["heart"][130:150, 80:90] = 255  # inside the heart ring, away from its nodes
    filled = render_overlay(_image(), seg, legend=False, ellipses=False, masks=masks)
    assert np.array_equal(plain[5, 5], filled[5, 5])
    from chexmask.reports.overlay import ORGAN_COLOURS

    expected = 0.75 * 128 + 0.25 * np.array(ORGAN_COLOURS["heart"])
    assert np.abs(filled[140, 85].astype(float) - expected).max() <= 1


def test_the_scale_is_fixed_in_the_1024_frame():
    """The same std in the 1024 frame gives the same colour on images of any size."""
    small = _segmentation(1.0)
    x, y = np.rint(small.landmarks[0]).astype(int)
    big = _segmentation(2.0)  # twice the std on an image twice as large: the same std in the 1024 frame
    big.height, big.width, big.landmarks = 2 * H, 2 * W, small.landmarks * 2
    a = render_overlay(_image(), small, legend=False, ellipses=False)[y, x]
    b = render_overlay(np.full((2 * H, 2 * W), 128, np.uint8), big, legend=False, ellipses=False, max_side=2 * H)[2 * y, 2 * x]
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 2


def test_clavicles_are_drawn_when_the_result_has_them():
    from chexmask.anatomy import ALL_ORGANS, N_NODES_ALL, organ_slices as slices
    from chexmask.reports.overlay import ORGAN_COLOURS

    base = _segmentation(None)
    landmarks = np.empty((N_NODES_ALL, 2))
    landmarks[: len(base.landmarks)] = base.landmarks
    for organ, y in (("right_clavicle", 20), ("left_clavicle", 188)):  # wide flat rings above and below the others
        part = slices(organs=ALL_ORGANS)[organ]
        t = np.linspace(0, 2 * np.pi, part.stop - part.start, endpoint=False)
        landmarks[part] = np.c_[80 + 60 * np.cos(t), y + 8 * np.sin(t)]
    seg = Segmentation("toy", None, H, W, landmarks, base.latent_mu, base.latent_sigma, None, None)
    assert seg.organs[-2:] == ("right_clavicle", "left_clavicle")
    out = render_overlay(_image(), seg, legend=False).astype(int)
    for organ, rows in (("right_clavicle", slice(8, 32)), ("left_clavicle", slice(176, 200))):
        close = np.abs(out[rows] - np.array(ORGAN_COLOURS[organ])).sum(-1) < 60
        assert close.sum() > 20, organ


def test_annotator_names_overlays_without_cutting_a_dicom_uid(tiny_weights, jsrt_dir, tmp_path):
    """An overlay is `<id without its image extension>.png`: a file named by a DICOM UID keeps every dotted part."""
    import dataclasses
    import shutil

    from chexmask.inference.segmenter import Segmenter
    from chexmask.reports.annotate import Annotator

    uid = tmp_path / "1.2.840.113619.2.55"  # no extension; the reader sniffs the content
    shutil.copy(jsrt_dir / "images" / "JPCLN001.png", uid)
    seg = Segmenter(tiny_weights, uncertainty=0).segment(uid)
    annotate = Annotator(overlays=tmp_path / "ov")
    annotate(dataclasses.replace(seg, image_id="a/" + seg.image_id))
    annotate(dataclasses.replace(seg, image_id="b/x.png"))
    assert sorted(p.relative_to(tmp_path / "ov").as_posix() for p in (tmp_path / "ov").rglob("*.png")) == [
        "a/1.2.840.113619.2.55.png", "b/x.png"]
