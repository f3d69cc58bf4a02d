"""The model frame (chexmask.io.model_frame): large JPEGs decoded at reduced scale, one rule for every entry point."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

import chexmask
from chexmask import UnreadableImageError
from chexmask.io.layout import load_landmarks_npz, read_split
from chexmask.io.model_frame import model_frame, read_model_frame, reduction_factor
from chexmask.io.read import read_image
from chexmask.preprocess import pad_resize, pad_resize_reduced, to_original


def _disk_image(height: int, width: int, centre: tuple[float, float], radius: float) -> np.ndarray:
    yy, xx = np.mgrid[:height, :width]
    image = np.full((height, width), 40, np.uint8)
    image[(xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 <= radius**2] = 220
    return image


def _centroid(square: np.ndarray) -> np.ndarray:
    w = np.clip(square.astype(np.float64) - 130, 0, None)
    yy, xx = np.mgrid[: square.shape[0], : square.shape[1]]
    return np.array([(w * (xx + 0.5)).sum(), (w * (yy + 0.5)).sum()]) / w.sum()


@pytest.mark.parametrize(("height", "width"), [(2048, 1536), (1501, 2203), (1024, 1024)])
def test_reduced_decode_maps_back_to_the_original_frame(height, width, tmp_path):
    """A disk's centre found in the reduced-decode model frame maps back where the full decode puts it."""
    image = _disk_image(height, width, (width * 0.37, height * 0.61), min(height, width) * 0.08)
    path = tmp_path / "disk.jpg"
    cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    reduced, g = read_model_frame(path, 256)[:2]
    full, g_full = pad_resize(read_image(path).pixels, 256)
    assert (g.height, g.width) == (height, width) and reduced.shape == (256, 256)
    np.testing.assert_allclose(to_original(_centroid(reduced), g), to_original(_centroid(full), g_full), atol=1.0)
    assert np.abs(reduced.astype(int) - full).mean() < 1.0


def test_every_entry_point_builds_the_same_frame(tmp_path, jsrt_dir):
    """The pipeline's reader (read_model_frame) and the API's (model_frame of read_image) agree bitwise,
    for large grey and colour JPEGs, a small JPEG (full decode) and a PNG."""
    grey = cv2.imread(str(sorted((jsrt_dir / "images").glob("*.png"))[0]), 0)
    files = {"big.jpg": cv2.resize(grey, (2320, 2828)), "colour.jpg": cv2.cvtColor(cv2.resize(grey, (1800, 1500)), cv2.COLOR_GRAY2BGR),
             "small.jpg": cv2.resize(grey, (300, 400)), "scan.png": grey}
    for name, pixels in files.items():
        cv2.imwrite(str(tmp_path / name), pixels)
        square, g, spacing = read_model_frame(tmp_path / name, 256)
        image = read_image(tmp_path / name)
        again, g_again = model_frame(image, 256)
        np.testing.assert_array_equal(square, again, err_msg=name)
        assert g == g_again and spacing is None and (g.height, g.width) == (image.height, image.width), name
    assert reduction_factor(2828, 2320, 256) == 8 and reduction_factor(1500, 1800, 256) == 4 and reduction_factor(400, 300, 256) == 1
    small_square, _ = model_frame(read_image(tmp_path / "small.jpg"), 256)
    np.testing.assert_array_equal(small_square, pad_resize(read_image(tmp_path / "small.jpg").pixels, 256)[0])


def test_a_cut_off_large_jpeg_is_a_clear_error(tmp_path):
    path = tmp_path / "cut.jpg"
    data = cv2.imencode(".jpg", _disk_image(2000, 1600, (800, 900), 200))[1].tobytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UnreadableImageError, match="truncated or corrupt JPEG"):
        read_model_frame(path, 256)


def test_pad_resize_reduced_checks_the_reduced_shape():
    with pytest.raises(ValueError, match="a 2000x800 image at 1/8 has shape"):
        pad_resize_reduced(np.zeros((100, 100), np.uint8), 8, 2000, 800, 256)


def test_reduced_decode_keeps_the_accuracy(jsrt_dir, tmp_path):
    """JSRT val images as CheXpert-size JPEGs: landmarks from the 1/8 decode are as close to the
    experts' as those from the full pixels, and within about a pixel of them (1024 frame)."""
    seg = chexmask.Segmenter(uncertainty=0)
    side, errors, gaps = 2320, [], []
    for image_id in read_split(Path(jsrt_dir), "val")[:4]:
        big = cv2.resize(cv2.imread(str(jsrt_dir / "images" / f"{image_id}.png"), 0), (side, side), interpolation=cv2.INTER_CUBIC)
        path = tmp_path / f"{image_id}.jpg"
        cv2.imwrite(str(path), big, [cv2.IMWRITE_JPEG_QUALITY, 95])
        reduced, full = seg.segment(path).landmarks, seg.segment(read_image(path).pixels).landmarks
        ref = load_landmarks_npz(jsrt_dir / "landmarks" / f"{image_id}.npz") * side / 1024
        errors.append([np.linalg.norm(p - ref, axis=1).mean() * 1024 / side for p in (reduced, full)])
        gaps.append(np.linalg.norm(reduced - full, axis=1).mean() * 1024 / side)
    errors = np.array(errors)
    assert abs(errors[:, 0].mean() - errors[:, 1].mean()) < 0.5, errors
    assert np.mean(gaps) < 2.0, gaps


def test_changed_pixels_are_not_decoded_from_the_file(tmp_path):
    """An image whose pixels were changed (corruption, OOD experiments) is framed from its pixels, not its JPEG."""
    path = tmp_path / "disk.jpg"
    cv2.imwrite(str(path), _disk_image(2000, 1600, (800, 900), 200))
    image = read_image(path)
    dark = image.with_pixels(np.zeros_like(image.pixels))
    assert image.jpeg is not None and dark.jpeg is None and (dark.height, dark.width) == (2000, 1600)
    assert model_frame(dark, 256)[0].max() == 0 and model_frame(image, 256)[0].max() > 200


def test_the_api_reads_a_large_jpeg_without_decoding_it_in_full(tmp_path, monkeypatch, tiny_weights):
    """Segmenter.segment(path) and segment_files frame a large JPEG from its 1/8 decode only, and
    give what segment(read_image(path)) gives."""
    from chexmask.io import read

    path = tmp_path / "big.jpg"
    cv2.imwrite(str(path), _disk_image(2828, 2320, (1100, 1500), 400))
    seg = chexmask.Segmenter(tiny_weights, uncertainty=3)
    via_image = seg.segment(read_image(path))
    monkeypatch.setattr(read, "_read_raster", lambda *a: pytest.fail("decoded in full"))
    for result in (seg.segment(path), next(seg.segment_files([path]))):
        assert (result.image_id, result.height, result.width) == ("big.jpg", 2828, 2320)
        np.testing.assert_array_equal(result.landmarks, via_image.landmarks)
        np.testing.assert_array_equal(result.node_std, via_image.node_std)
