"""chexmask.measures: CTR, areas, widths and heights on masks with hand-computed answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from chexmask.measures import MEASURE_COLUMNS, measure_masks, measure_record


def _masks(shape=(40, 60)) -> dict[str, np.ndarray]:
    """Right lung on the image's left (cols 5-24), left lung on its right (cols 35-54), heart cols 20-39."""
    m = {o: np.zeros(shape, np.uint8) for o in ("right_lung", "left_lung", "heart")}
    m["right_lung"][5:35, 5:25] = 255  # 30 rows x 20 cols
    m["left_lung"][3:36, 35:55] = 255  # 33 rows x 20 cols
    m["heart"][20:30, 20:40] = 255  # 10 rows x 20 cols, overlapping both lungs
    return m


def test_pixel_measures_are_the_hand_computed_ones():
    m = measure_masks(_masks())
    assert list(m) == MEASURE_COLUMNS
    assert m["Heart Width (px)"] == 20 and m["Thorax Width (px)"] == 50  # cols 5..54
    assert m["CTR"] == pytest.approx(0.4)
    assert (m["Heart Area (px)"], m["Right Lung Area (px)"], m["Left Lung Area (px)"]) == (200, 600, 660)
    assert (m["Right Lung Height (px)"], m["Left Lung Height (px)"]) == (30, 33)
    assert all(math.isnan(m[c]) for c in MEASURE_COLUMNS if "(mm" in c)


def test_mm_use_the_column_spacing_for_widths_and_the_row_spacing_for_heights():
    m = measure_masks(_masks(), pixel_spacing=(0.5, 0.2))  # DICOM order: (row, column)
    assert m["Heart Width (mm)"] == pytest.approx(20 * 0.2) and m["Thorax Width (mm)"] == pytest.approx(50 * 0.2)
    assert m["Right Lung Height (mm)"] == pytest.approx(30 * 0.5) and m["Left Lung Height (mm)"] == pytest.approx(33 * 0.5)
    assert m["Heart Area (mm2)"] == pytest.approx(200 * 0.1) and m["Left Lung Area (mm2)"] == pytest.approx(660 * 0.1)
    assert (m["Row Spacing (mm)"], m["Column Spacing (mm)"]) == (0.5, 0.2)
    assert m["CTR"] == pytest.approx(0.4)  # a ratio of columns: no spacing needed


def test_width_is_the_extent_not_the_widest_row():
    masks = _masks()
    masks["heart"][:] = 0
    masks["heart"][10, 10:15] = 1  # two separate strokes: extent from col 10 to col 44
    masks["heart"][30, 40:45] = 1
    assert measure_masks(masks)["Heart Width (px)"] == 35


def test_the_thorax_is_the_union_of_both_lungs_whatever_their_sides():
    swapped = _masks()
    swapped["right_lung"], swapped["left_lung"] = swapped["left_lung"], swapped["right_lung"]
    a, b = measure_masks(_masks()), measure_masks(swapped)
    assert a["Thorax Width (px)"] == b["Thorax Width (px)"] and a["CTR"] == b["CTR"]
    assert a["Right Lung Area (px)"] == b["Left Lung Area (px)"]


def test_empty_masks_give_zero_area_and_nan_lengths():
    masks = _masks()
    masks["heart"][:] = 0
    m = measure_masks(masks, pixel_spacing=(1.0, 1.0))
    assert m["Heart Area (px)"] == 0 and m["Heart Area (mm2)"] == 0
    assert math.isnan(m["Heart Width (px)"]) and math.isnan(m["CTR"]) and math.isnan(m["Heart Width (mm)"])
    masks = {o: np.zeros((8, 8), bool) for o in masks}
    assert math.isnan(measure_masks(masks)["CTR"])


def test_record_rounds_for_tables():
    masks = _masks()
    masks["heart"][20:30, 20:41] = 255  # width 21: CTR 0.42
    masks["left_lung"][:, 54] = 0  # thorax 49 cols: CTR 21/49
    row = measure_record(measure_masks(masks, pixel_spacing=(0.139, 0.143)))
    assert row["CTR"] == round(21 / 49, 4) and isinstance(row["Heart Width (px)"], int)
    assert row["Heart Width (mm)"] == round(21 * 0.143, 4) and row["Row Spacing (mm)"] == 0.139
    assert measure_record(measure_masks(masks))["Heart Width (mm)"] is None


@pytest.mark.parametrize(
    ("masks", "spacing", "match"),
    [
        ({"heart": np.ones((4, 4))}, None, r"masks lacks \['right_lung', 'left_lung'\]"),
        ({"heart": np.ones((4, 4)), "right_lung": np.ones((4, 5)), "left_lung": np.ones((4, 4))}, None, "2-D arrays of one shape"),
        (None, (0.1,), r"pixel_spacing must be \(row mm, column mm\)"),
        (None, (0.1, -1), "two positive numbers"),
        (None, (0.1, float("nan")), "two positive numbers"),
    ],
)
def test_bad_inputs_name_the_problem(masks, spacing, match):
    with pytest.raises(ValueError, match=match):
        measure_masks(masks if masks is not None else _masks(), pixel_spacing=spacing)


def test_scr_right_lung_is_on_the_image_left(jsrt_dir):
    """The convention the columns rely on: SCR's (and CheXmask's) right lung is the patient's."""
    with np.load(jsrt_dir / "scr_masks" / "JPCLN001.npz") as ref:
        masks = {o: ref[o] for o in ("right_lung", "left_lung", "heart")}
    cols = {o: np.flatnonzero(masks[o].any(0)).mean() for o in masks}
    assert cols["right_lung"] < cols["heart"] < cols["left_lung"]
    assert 0.3 < measure_masks(masks)["CTR"] < 0.7
