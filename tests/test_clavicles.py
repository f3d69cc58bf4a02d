"""Clavicles: a model that predicts them adds them on request; the 120 CheXmask nodes stay the same."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from chexmask import ChexmaskError
from chexmask.formats.landmarks import parse_landmarks
from chexmask.formats.records import CLAVICLE_COLUMNS, csv_columns
from chexmask.formats.tables import read_table
from chexmask.inference.pipeline import segment_dataset
from chexmask.inference.segmenter import Segmenter
from chexmask.masks.fill import landmarks_to_masks
from chexmask.masks.rle import decode_rle


def test_api_adds_clavicles_without_changing_the_rest(tiny_clavicle_weights, jsrt_dir):
    path = jsrt_dir / "images" / "JPCLN001.png"
    plain = Segmenter(tiny_clavicle_weights, uncertainty=4).segment(path)
    both = Segmenter(tiny_clavicle_weights, uncertainty=4, clavicles=True).segment(path)
    assert plain.landmarks.shape == (120, 2) and both.landmarks.shape == (166, 2)
    np.testing.assert_array_equal(both.landmarks[:120], plain.landmarks)
    assert both.uncertainty == plain.uncertainty  # over the 120 CheXmask nodes either way
    assert set(both.masks()) == {"right_lung", "left_lung", "heart", "right_clavicle", "left_clavicle"}
    assert set(plain.masks()) == {"right_lung", "left_lung", "heart"}
    assert set(both.organ_uncertainty()) == set(both.masks())


def test_a_model_without_clavicles_refuses_the_option(tiny_weights):
    with pytest.raises(ChexmaskError, match="does not predict the clavicles"):
        Segmenter(tiny_weights, clavicles=True)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_segment_writes_clavicle_columns(tiny_clavicle_weights, jsrt_dir, tmp_path, suffix):
    images = [jsrt_dir / "images" / n for n in ("JPCLN001.png", "JPCLN002.png")]
    plain, both = tmp_path / f"plain{suffix}", tmp_path / f"both{suffix}"
    for out, clav in ((plain, False), (both, True)):
        segment_dataset(images, out, weights=tiny_clavicle_weights, uncertainty=2, workers=0, progress=False, clavicles=clav)
    a, b = read_table(plain), read_table(both)
    assert list(b.columns[: len(csv_columns("Image ID", True))]) == csv_columns("Image ID", True)
    assert not set(CLAVICLE_COLUMNS) & set(a.columns)
    arrays = [c for c in ("Node Mean", "Node Std") if c in a.columns]  # Parquet: 120 nodes, then the clavicles'
    for column in arrays:
        for x, y in zip(a[column], b[column]):
            np.testing.assert_array_equal(x, y[:240])
            assert len(y) == 332
    pd.testing.assert_frame_equal(a.drop(columns=arrays), b[list(a.columns)].drop(columns=arrays))  # nothing else changes
    row = b.iloc[0]
    nodes = parse_landmarks(row["Clavicle Landmarks"], n_points=46)
    full = np.concatenate([parse_landmarks(row["Landmarks"]), nodes])
    masks = landmarks_to_masks(full.astype(np.int64), int(row["Height"]), int(row["Width"]))
    for organ, column in (("right_clavicle", "Right Clavicle"), ("left_clavicle", "Left Clavicle")):
        np.testing.assert_array_equal(decode_rle(row[column], int(row["Height"]), int(row["Width"])) > 0, masks[organ] > 0)
