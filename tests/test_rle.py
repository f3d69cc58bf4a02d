"""RLE encode/decode: toy cases, errors, fuzzing, and the published CheXmask masks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from chexmask import InputError, RLEError
from chexmask.masks.rle import decode_rle, encode_rle

# A 3x4 mask: runs cross the row boundary (pixels 8..9 are (1, 3) and (2, 0)).
TOY = np.array([[0, 255, 255, 0], [0, 0, 0, 255], [255, 0, 0, 0]], dtype=np.uint8)


@pytest.mark.parametrize(
    ("mask", "rle"),
    [
        (TOY, "2 2 8 2"),
        (np.zeros((3, 4), np.uint8), ""),
        (np.full((3, 4), 255, np.uint8), "1 12"),
        (np.array([[0, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0]], bool), "9 1"),  # row-major
        (np.pad(np.ones((1, 1), bool), ((2, 0), (3, 0))), "12 1"),  # last pixel
        (np.array([[1, 0, 1, 0]], dtype=bool), "1 1 3 1"),
    ],
)
def test_toy_round_trip(mask, rle):
    assert encode_rle(mask) == rle
    np.testing.assert_array_equal(decode_rle(rle, *mask.shape) > 0, mask != 0)


def test_decode_returns_uint8_0_255_and_shape():
    out = decode_rle("2 2 8 2", 3, 4)
    assert out.dtype == np.uint8 and out.shape == (3, 4)
    assert set(np.unique(out)) == {0, 255}
    np.testing.assert_array_equal(out, (TOY > 0) * np.uint8(255))
    assert decode_rle("", 3, 4).dtype == np.uint8


def test_decode_accepts_any_whitespace_and_touching_runs():
    np.testing.assert_array_equal(decode_rle(" 2  2\n8\t2 ", 3, 4), TOY)
    # Touching runs decode; the encoder writes them merged.
    assert encode_rle(decode_rle("1 2 3 2", 3, 4)) == "1 4"


@pytest.mark.parametrize(
    ("rle", "message"),
    [
        ("2 2 8", r"odd number of values \(3\)"),
        ("2 x", r"non-integer token 'x'"),
        ("1.5 2", r"non-integer token '1.5'"),
        ("-1 2", r"non-integer token '-1'"),
        ("0 2", r"run 0 starts at 0; starts are 1-based"),
        ("2 2 8 0", r"run 1 \(start 8\) has length 0 < 1"),
        ("12 2", r"run 0 \(start 12, length 2\) ends at pixel 13, beyond 3x4 = 12 pixels"),
        ("5 2 2 1", r"run 1 \(start 2\) overlaps or precedes run 0"),
        ("2 3 4 1", r"run 1 \(start 4\) overlaps or precedes run 0"),
        ("1" * 30 + " 1", r"value 1+ is beyond any image size"),
    ],
)
def test_decode_errors(rle, message):
    with pytest.raises(RLEError, match=r"^RLE string: " + message):
        decode_rle(rle, 3, 4)


def test_decode_error_names_source():
    with pytest.raises(RLEError, match=r"^file.csv row 12, column Heart: odd number"):
        decode_rle("1", 3, 4, source="file.csv row 12, column Heart")


def test_decode_rejects_non_string():
    with pytest.raises(RLEError, match="expected a string, got float"):
        decode_rle(float("nan"), 3, 4)


def test_rle_error_is_input_and_value_error():
    with pytest.raises(InputError):
        decode_rle("1", 3, 4)
    with pytest.raises(ValueError):
        decode_rle("1", 3, 4)


@pytest.mark.parametrize("size", [(0, 4), (3, -1), (3.0, 4), (True, 4)])
def test_decode_bad_size(size):
    with pytest.raises(ValueError, match="must be a positive integer"):
        decode_rle("", *size)


def test_encode_rejects_non_2d():
    with pytest.raises(ValueError, match=r"mask must be 2-D \(H, W\), got shape \(2, 3, 4\)"):
        encode_rle(np.zeros((2, 3, 4)))


@settings(max_examples=200, deadline=None)
@given(arrays(bool, st.tuples(st.integers(1, 12), st.integers(1, 12))))
def test_fuzz_masks_round_trip(mask):
    rle = encode_rle(mask)
    np.testing.assert_array_equal(decode_rle(rle, *mask.shape), mask * np.uint8(255))
    assert encode_rle(mask.astype(np.uint8) * 255) == rle


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(alphabet="0123456789 -+.x\n\t", max_size=40),
        st.lists(st.integers(-3, 30), max_size=10).map(lambda v: " ".join(map(str, v))),
    )
)
def test_fuzz_strings_only_raise_rle_error(text):
    try:
        mask = decode_rle(text, 4, 6)
    except RLEError:
        return
    assert mask.shape == (4, 6)
    # Whatever decodes re-encodes to a string that decodes to the same mask.
    np.testing.assert_array_equal(decode_rle(encode_rle(mask), 4, 6), mask)


CSV_NAMES = [
    "ChestX-Ray8.csv",
    "CANDID-PTX.csv",
    "CANDID-PTX_julia_annotations.csv",
    "CANDID-PTX_martina_annotations.csv",
]


@pytest.mark.parametrize("name", CSV_NAMES)
def test_published_masks_round_trip(chexmask_csv_dir, name):
    df = pd.read_csv(chexmask_csv_dir / name, dtype=str, keep_default_na=False)
    for i, row in df.iterrows():
        height = int(row["Height"]) if "Height" in df else 1024
        width = int(row["Width"]) if "Width" in df else 1024
        for column in ("Right Lung", "Left Lung", "Heart"):
            rle = row[column]
            mask = decode_rle(rle, height, width, source=f"{name} row {i}, {column}")
            assert mask.any()
            assert encode_rle(mask) == rle, f"{name} row {i}, {column}"
