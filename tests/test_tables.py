"""CheXmask tables and landmark strings: read, write, round trips and errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from chexmask import InputError
from chexmask.formats.landmarks import format_landmarks, parse_landmarks
from chexmask.formats.tables import (
    CHEXMASK_COLUMNS,
    PHYSICIAN_COLUMNS,
    id_column,
    read_table,
    write_table,
)

PREDICTED = {"ChestX-Ray8.csv": "Image Index", "CANDID-PTX.csv": "ImageID"}
PHYSICIAN = ["CANDID-PTX_julia_annotations.csv", "CANDID-PTX_martina_annotations.csv"]
ALL = [*PREDICTED, *PHYSICIAN]


def _toy(**columns) -> pd.DataFrame:
    base = {
        "dicom_id": ["000123", "b"],
        "Dice RCA (Mean)": [0.5, 0.25],
        "Dice RCA (Max)": [0.75, 0.5],
        "Landmarks": ["1,2", "3,4"],
        "Left Lung": ["1 2", ""],
        "Right Lung": ["3 1", "5 2"],
        "Heart": ["", "7 1"],
        "Height": [3, 3],
        "Width": [4, 4],
    }
    base.update(columns)
    return pd.DataFrame(base)


# --- reading the published tables -------------------------------------------------


@pytest.mark.parametrize("name", list(PREDICTED))
def test_read_predicted(chexmask_csv_dir, name):
    df = read_table(chexmask_csv_dir / name)
    assert list(df.columns) == [PREDICTED[name], *CHEXMASK_COLUMNS]
    assert id_column(df) == PREDICTED[name]
    assert len(df) == 50
    assert df["Height"].dtype == np.int64 and df["Width"].dtype == np.int64
    assert df["Dice RCA (Mean)"].dtype == np.float64
    assert all(isinstance(v, str) and v for v in df["Heart"])


@pytest.mark.parametrize("name", PHYSICIAN)
def test_read_physician(chexmask_csv_dir, name):
    df = read_table(chexmask_csv_dir / name)
    assert list(df.columns) == PHYSICIAN_COLUMNS
    assert id_column(df) == "ImageID"
    assert set(df["Dataset"]) == {"CANDID-PTX"}


@pytest.mark.parametrize("name", ALL)
def test_csv_round_trips_are_byte_identical(chexmask_csv_dir, tmp_path, name):
    original = (chexmask_csv_dir / name).read_bytes()
    df = read_table(chexmask_csv_dir / name)
    write_table(df, tmp_path / "copy.csv")
    assert (tmp_path / "copy.csv").read_bytes() == original
    write_table(df, tmp_path / "copy.parquet")
    back = read_table(tmp_path / "copy.parquet")
    pd.testing.assert_frame_equal(back, df)
    write_table(back, tmp_path / "again.csv")
    assert (tmp_path / "again.csv").read_bytes() == original


# --- toy tables ----------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".csv.gz"])
def test_toy_round_trip_keeps_types_and_empty_masks(tmp_path, suffix):
    df = _toy()
    write_table(df, tmp_path / f"t{suffix}")
    back = read_table(tmp_path / f"t{suffix}")
    assert back["dicom_id"].tolist() == ["000123", "b"]  # ids stay text
    assert back["Left Lung"].tolist() == ["1 2", ""]
    assert back["Heart"].tolist() == ["", "7 1"]
    assert back["Height"].tolist() == [3, 3] and back["Height"].dtype == np.int64
    assert back["Dice RCA (Max)"].tolist() == [0.75, 0.5]


def test_missing_masks_become_empty_strings(tmp_path):
    df = _toy(Heart=[None, np.nan])
    for name in ("t.csv", "t.parquet"):
        write_table(df, tmp_path / name)
        assert read_table(tmp_path / name)["Heart"].tolist() == ["", ""]


def test_column_order_and_id_variant(tmp_path):
    df = _toy().rename(columns={"dicom_id": "Path"})
    df = df[list(reversed(df.columns))]
    write_table(df, tmp_path / "t.csv")
    back = read_table(tmp_path / "t.csv")
    assert list(back.columns) == list(df.columns)
    assert id_column(back) == "Path"


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        (["Image Index", "Landmarks"], "Image Index"),
        (["Landmarks", "dicom_id"], "dicom_id"),
        (["ImageID", "Dataset"], "ImageID"),
        (["Landmarks", "Path"], "Path"),
        (["image_id", "Heart"], "image_id"),
        (["Heart", "Image ID"], "Image ID"),
        (["Heart", "IMAGE_INDEX"], "IMAGE_INDEX"),  # case and separators ignored
        (["study", "Landmarks"], "study"),  # fallback: first, unknown column
    ],
)
def test_id_column_variants(columns, expected):
    assert id_column(pd.DataFrame(columns=columns)) == expected


@pytest.mark.parametrize("columns", [["Landmarks", "Heart"], ["Unnamed: 0", "Heart"], []])
def test_id_column_missing(columns):
    with pytest.raises(InputError, match=r"^t.csv: no image id column; expected one of"):
        id_column(pd.DataFrame(columns=columns), source="t.csv")


# --- errors -----------------------------------------------------------------------------


def test_read_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"nope.csv: file not found"):
        read_table(tmp_path / "nope.csv")


def test_read_missing_columns(tmp_path):
    write_table(_toy().drop(columns=["Heart", "Landmarks"]), tmp_path / "t.csv")
    message = r"t.csv: missing required column\(s\) \['Landmarks', 'Heart'\]"
    with pytest.raises(InputError, match=message):
        read_table(tmp_path / "t.csv")


def test_read_chexmask_u_layout_keeps_its_columns_and_text(tmp_path):
    """Landmarks (Mean) stands for Landmarks; Landmarks (Std) stays text; CSV bytes round-trip."""
    toy = _toy().rename(columns={"Landmarks": "Landmarks (Mean)"})
    toy.insert(4, "Landmarks (Std)", ["0.50,1.00", ""])
    write_table(toy, tmp_path / "u.csv")
    df = read_table(tmp_path / "u.csv")
    assert list(df.columns) == list(toy.columns) and id_column(df) == "dicom_id"
    assert df["Landmarks (Std)"].tolist() == ["0.50,1.00", ""]
    write_table(df, tmp_path / "back.csv")
    assert (tmp_path / "back.csv").read_bytes() == (tmp_path / "u.csv").read_bytes()
    write_table(df, tmp_path / "u.parquet")
    assert read_table(tmp_path / "u.parquet")["Landmarks (Std)"].tolist() == ["0.50,1.00", ""]


def test_read_missing_landmarks_names_both_layouts(tmp_path):
    write_table(_toy().drop(columns=["Landmarks"]), tmp_path / "t.csv")
    with pytest.raises(InputError, match=r"missing required column\(s\) \['Landmarks'\] \(or 'Landmarks \(Mean\)', as in CheXmask-U\)"):
        read_table(tmp_path / "t.csv")


def test_read_bad_integer_names_row_and_id(tmp_path):
    write_table(_toy(Height=[3, "tall"]), tmp_path / "t.csv")
    message = r"t.csv row 2 \(dicom_id 'b'\): image size column Height is not a positive integer: 'tall'"
    with pytest.raises(InputError, match=message):
        read_table(tmp_path / "t.csv")
    write_table(_toy(Width=[0, 4]), tmp_path / "t.csv")
    with pytest.raises(InputError, match=r"row 1 \(dicom_id '000123'\): image size column Width is not a positive"):
        read_table(tmp_path / "t.csv")


def test_read_keep_bad_values_keeps_the_row_for_its_consumer(tmp_path):
    write_table(_toy(Height=[3, "tall"]), tmp_path / "t.csv")
    df = read_table(tmp_path / "t.csv", bad_values="keep")
    assert df["Height"].tolist() == [3, "tall"] and df["Width"].tolist() == [4, "4"]  # the bad row as read
    with pytest.raises(ValueError, match="bad_values must be 'raise' or 'keep', got 'skip'"):
        read_table(tmp_path / "t.csv", bad_values="skip")


def _published_with_blank_sizes(chexmask_csv_dir, tmp_path, suffix):
    """Real ChestX-ray8 rows, Height and Width emptied on rows 2 and 4 (1-based)."""
    df = pd.read_csv(chexmask_csv_dir / "ChestX-Ray8.csv", dtype=str, keep_default_na=False).head(6)
    df.loc[[1, 3], ["Height", "Width"]] = ""
    path = tmp_path / f"blank{suffix}"
    if suffix == ".csv":
        df.to_csv(path, index=False, lineterminator="\n")
    else:  # Parquet nulls, as convert writes empty numbers
        sizes = {c: pd.array([None if v == "" else int(v) for v in df[c]], dtype="Int64") for c in ("Height", "Width")}
        df.assign(**sizes).to_parquet(path, index=False)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_read_empty_sizes_mean_the_1024_frame_with_one_warning(chexmask_csv_dir, tmp_path, suffix):
    path = _published_with_blank_sizes(chexmask_csv_dir, tmp_path, suffix)
    with pytest.warns(UserWarning, match=r"2 rows \(2, 4\) have empty Height and Width; .*1024 x 1024") as caught:
        df = read_table(path)
    assert len(caught) == 1
    assert df["Height"].dtype == np.int64 and df["Height"].tolist() == [1024] * 6
    assert df["Width"].tolist() == [1024] * 6


def test_read_one_empty_size_is_a_bad_row(chexmask_csv_dir, tmp_path):
    df = pd.read_csv(chexmask_csv_dir / "ChestX-Ray8.csv", dtype=str, keep_default_na=False).head(3)
    df.loc[2, "Width"] = ""
    df.to_csv(tmp_path / "t.csv", index=False)
    image_id = df.loc[2, "Image Index"]
    with pytest.raises(InputError, match=rf"t.csv row 3 \(Image Index '{image_id}'\): image size column Width is missing"):
        read_table(tmp_path / "t.csv")


def test_read_bad_float_names_row(tmp_path):
    write_table(_toy(**{"Dice RCA (Mean)": ["x", 0.5]}), tmp_path / "t.csv")
    with pytest.raises(InputError, match=r"row 1, column Dice RCA \(Mean\): not a number: 'x'"):
        read_table(tmp_path / "t.csv")


def test_read_corrupt_parquet(tmp_path):
    (tmp_path / "t.parquet").write_text("not parquet")
    with pytest.raises(InputError, match=r"t.parquet: cannot read as parquet"):
        read_table(tmp_path / "t.parquet")


def test_read_unknown_suffix(tmp_path):
    (tmp_path / "t.parq").write_text("")
    message = r"unknown table format '.parq'.*did you mean '.parquet'\?"
    with pytest.raises(InputError, match=message):
        read_table(tmp_path / "t.parq")


def test_write_unknown_suffix(tmp_path):
    message = r"t.cvs: unknown table format '.cvs'.*did you mean '.csv'\?"
    with pytest.raises(ValueError, match=message):
        write_table(_toy(), tmp_path / "t.cvs")
    assert not (tmp_path / "t.cvs").exists()


# --- landmark strings ------------------------------------------------------------------


def _points() -> np.ndarray:
    return np.arange(240, dtype=float).reshape(120, 2)


def test_parse_flat_and_json_forms_agree():
    pts = _points()
    flat = ",".join(str(int(v)) for v in pts.ravel())
    pairs = json.dumps(pts.tolist())
    np.testing.assert_array_equal(parse_landmarks(flat), pts)
    np.testing.assert_array_equal(parse_landmarks(pairs), pts)
    np.testing.assert_array_equal(parse_landmarks(json.dumps(pts.ravel().tolist())), pts)
    np.testing.assert_array_equal(parse_landmarks(flat.replace(",", ", ") + ","), pts)


def test_format_landmarks():
    assert format_landmarks([[381.0, 223.0], [-0.001, 1e-9]]) == "381,223,0,0"
    assert format_landmarks([[12.5, 7.256], [3.999, np.nan]]) == "12.5,7.26,4,nan"
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        format_landmarks(np.zeros(4))
    with pytest.raises(ValueError, match="infinite"):
        format_landmarks([[np.inf, 0]])


def test_nan_organ_survives_round_trip():
    pts = _points()
    pts[94:] = np.nan
    back = parse_landmarks(format_landmarks(pts))
    np.testing.assert_array_equal(back, pts)


@pytest.mark.parametrize("name", ALL)
def test_published_landmarks_round_trip(chexmask_csv_dir, name):
    df = read_table(chexmask_csv_dir / name)
    for i, text in enumerate(df["Landmarks"]):
        points = parse_landmarks(text, source=f"{name} row {i + 1}")
        assert points.shape == (120, 2)
        assert format_landmarks(points) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1,2,3", r"expected 240 numbers \(120 \(x, y\) points\), got 3"),
        ("1,2,x,4", r"landmark value 2 is not a number: 'x'"),
        ("1,2,,4", r"landmark value 2 is not a number: ''"),
        ("__import__('os').system('true')", r"landmark value 0 is not a number"),
        ("1_000,2", r"landmark value 0 is not a number: '1_000'"),
        ("[[1, 2], [3]]", r"landmark 1 has 1 values, expected \[x, y\]"),
        ("[[1, 2], [3, 4]", r"landmarks look like JSON but do not parse"),
        ('[["1", 2]]', r"landmark value 0 is not a number: '1'"),
        ("", r"landmarks string is empty"),
        ("inf," * 239 + "inf", r"landmark value 0 is not a number: 'inf'"),
    ],
)
def test_parse_errors(text, message):
    with pytest.raises(InputError, match=r"^t.csv row 3: " + message):
        parse_landmarks(text, source="t.csv row 3")


def test_parse_rejects_infinite_json_and_non_string():
    with pytest.raises(InputError, match=r"landmark 0 is infinite"):
        parse_landmarks(json.dumps([[1e999, 0]] * 120))
    with pytest.raises(InputError, match=r"must be a string, got float"):
        parse_landmarks(1.0)
