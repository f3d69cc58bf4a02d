"""The edge evidence at the predicted lung contours, on real films: the quality estimate's one look at the pixels."""

from __future__ import annotations

import numpy as np
import pytest

from chexmask.anatomy import organ_slices
from chexmask.estimate.contour_contrast import weak_lung_edges
from chexmask.io.model_frame import model_frame
from chexmask.io.read import read_image
from chexmask.preprocess import to_model_frame


@pytest.fixture(scope="module")
def film(jsrt_dir):
    """A JSRT val film, the shipped model's result and the model frame it saw."""
    from chexmask import Segmenter

    segmenter = Segmenter(uncertainty=0)
    image = read_image(jsrt_dir / "images" / "JPCLN001.png")
    frame, geometry = model_frame(image, segmenter.input_size)
    seg = segmenter.segment(image)
    return frame, to_model_frame(seg.landmarks, geometry), seg


def _shrunk(points: np.ndarray, factor: float) -> np.ndarray:
    out = points.copy()
    for organ in ("right_lung", "left_lung"):
        part = organ_slices()[organ]
        centre = points[part].mean(axis=0)
        out[part] = centre + factor * (points[part] - centre)
    return out


def test_a_good_contour_sits_on_edges_and_a_shrunk_one_does_not(film):
    frame, points, seg = film
    good = weak_lung_edges(frame, points)
    assert good == pytest.approx(seg.weak_lung_edges)
    assert good < 0.25
    # contours moved off the borders lose their edges (JPCLN001: 0.09 on them, 0.29 shrunk to 70 %, 0.53 grown by 15 %)
    assert weak_lung_edges(frame, _shrunk(points, 0.7)) > good + 0.1  # drawn inside the lungs: mostly air on both sides
    assert weak_lung_edges(frame, _shrunk(points, 1.15)) > good + 0.25  # out in the chest wall and mediastinum
    assert weak_lung_edges(255 - frame, points) > 0.9  # inverted film: every edge the wrong way


def test_uint8_and_float_frames_give_one_answer(film):
    frame, points, _ = film
    assert weak_lung_edges(frame.astype(np.float32) / 255.0, points) == weak_lung_edges(frame, points)


def test_every_way_in_measures_the_same(film, jsrt_dir):
    """Array, path and XrayImage inputs reach the same model frame, so the same value."""
    from chexmask import Segmenter

    segmenter = Segmenter(uncertainty=0)
    path = jsrt_dir / "images" / "JPCLN001.png"
    values = {segmenter.segment(path).weak_lung_edges, segmenter.segment(read_image(path)).weak_lung_edges,
              segmenter.segment(read_image(path).pixels).weak_lung_edges}
    assert values == {film[2].weak_lung_edges}


def test_odd_predictions_do_not_crash(film):
    """Non-finite nodes give NaN (the row is reported unusable later); nodes off the frame still measure."""
    frame, points, _ = film
    broken = points.copy()
    broken[3] = np.nan
    assert np.isnan(weak_lung_edges(frame, broken))
    assert 0.0 <= weak_lung_edges(frame, points + 400.0) <= 1.0
    assert 0.0 <= weak_lung_edges(frame, points - 400.0) <= 1.0
