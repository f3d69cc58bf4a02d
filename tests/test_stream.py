"""Chunked table reading, filters, id lists, row sizes and loss-free CSV <-> Parquet."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from chexmask import InputError
from chexmask.formats.convert import convert_table
from chexmask.formats.stream import (
    count_rows,
    iter_chunks,
    read_ids,
    table_columns,
)
from chexmask.formats.tables import mask_size, read_table

PUBLISHED = [
    "ChestX-Ray8.csv",
    "CANDID-PTX.csv",
    "CANDID-PTX_julia_annotations.csv",
    "CANDID-PTX_martina_annotations.csv",
]


@pytest.fixture(scope="module")
def cxr8(chexmask_csv_dir):
    return chexmask_csv_dir / "ChestX-Ray8.csv"


def test_chunks_are_bounded_and_reassemble_the_table(cxr8):
    chunks = list(iter_chunks(cxr8, chunksize=7))
    assert [len(c) for c in chunks] == [7] * 7 + [1]
    whole = pd.concat(chunks)
    assert whole.index.tolist() == list(range(1, 51))  # 1-based data row numbers
    table = read_table(cxr8)
    assert list(whole.columns) == list(table.columns)
    for column in ("Image Index", "Landmarks", "Left Lung", "Right Lung", "Heart"):
        assert whole[column].tolist() == table[column].tolist()
    assert whole["Height"].tolist() == [str(v) for v in table["Height"]]  # CSV text kept


def test_columns_selects_id_plus_requested(cxr8):
    chunk = next(iter_chunks(cxr8, columns=["Height", "Heart"], chunksize=5))
    assert list(chunk.columns) == ["Image Index", "Heart", "Height"]  # file order


def test_min_rca_and_ids_filters(cxr8):
    table = read_table(cxr8)
    expected = table.index[table["Dice RCA (Mean)"] >= 0.8] + 1
    got = pd.concat(iter_chunks(cxr8, min_rca=0.8, chunksize=9)).index
    assert got.tolist() == expected.tolist() and 0 < len(got) < 50
    ids = set(table["Image Index"].iloc[[3, 17, 40]])
    got = pd.concat(iter_chunks(cxr8, ids=ids | {"not-in-table.png"}, chunksize=9))
    assert got.index.tolist() == [4, 18, 41]
    both = pd.concat(iter_chunks(cxr8, ids=ids, min_rca=0.8, chunksize=9)).index
    assert set(both) == set(got.index) & set(expected)
    assert list(iter_chunks(cxr8, ids=[])) == []


def test_min_rca_drops_missing_and_bad_values():
    frame = pd.DataFrame({"ImageID": list("abcd"), "Dice RCA (Mean)": ["0.9", "", "x", "0.7"]})
    assert pd.concat(iter_chunks(frame, min_rca=0.7)).index.tolist() == [1, 4]


def test_parquet_chunks_match_csv(cxr8, tmp_path):
    convert_table(cxr8, tmp_path / "t.parquet")
    assert count_rows(tmp_path / "t.parquet") == 50 and count_rows(cxr8) is None
    csv_rows = pd.concat(iter_chunks(cxr8, min_rca=0.75, chunksize=6))
    pq_rows = pd.concat(iter_chunks(tmp_path / "t.parquet", min_rca=0.75, chunksize=6))
    assert pq_rows.index.tolist() == csv_rows.index.tolist()
    assert pq_rows["Heart"].tolist() == csv_rows["Heart"].tolist()
    assert pq_rows["Width"].tolist() == [int(v) for v in csv_rows["Width"]]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"chunksize": 0}, ValueError, "chunksize must be a positive integer, got 0"),
        ({"min_rca": 1.5}, ValueError, r"min_rca must be a number in \[0, 1\], got 1.5"),
        ({"columns": ["Lungs"]}, InputError, r"missing column\(s\) \['Lungs'\]"),
    ],
)
def test_bad_options(cxr8, kwargs, error, match):
    with pytest.raises(error, match=match):
        next(iter_chunks(cxr8, **kwargs))


def test_min_rca_on_a_physician_table(chexmask_csv_dir):
    path = chexmask_csv_dir / "CANDID-PTX_julia_annotations.csv"
    with pytest.raises(InputError, match=r"julia_annotations.csv: min_rca needs a 'Dice RCA \(Mean\)'"):
        next(iter_chunks(path, min_rca=0.7))


def test_missing_and_unknown_files(tmp_path):
    with pytest.raises(InputError, match=r"nope.csv: file not found"):
        table_columns(tmp_path / "nope.csv")
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(InputError, match=r"t.xlsx: unknown table format '.xlsx'"):
        next(iter_chunks(tmp_path / "t.xlsx"))


def test_corrupt_csv_mid_stream_names_the_file(tmp_path):
    (tmp_path / "t.csv").write_text("ImageID,Heart\na,1 1\nb,2 2,extra,fields\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"t.csv: cannot read: ParserError: .*fields"):
        list(iter_chunks(tmp_path / "t.csv", chunksize=1))


def test_read_ids(tmp_path):
    path = tmp_path / "ids.txt"
    path.write_text("\ufeffa.png\n\n  train/p1/s1/view1_frontal.jpg \r\n# comment\nb.png\n", encoding="utf-8")
    assert read_ids(path) == {"a.png", "train/p1/s1/view1_frontal.jpg", "b.png"}
    with pytest.raises(InputError, match="missing.txt: cannot read id list"):
        read_ids(tmp_path / "missing.txt")


def test_mask_size():
    assert mask_size({"Height": "2048", "Width": "1536"}) == (2048, 1536)
    assert mask_size({"Height": 10, "Width": 12.0}) == (10, 12)
    assert mask_size({"ImageID": "x"}) == (1024, 1024)  # physician tables
    with pytest.raises(InputError, match="t.csv row 3: image size column Height is missing"):
        mask_size({"Height": "", "Width": "5"}, source="t.csv row 3")
    with pytest.raises(InputError, match="column Width is missing"):
        mask_size({"Height": 5, "Width": pd.NA})
    with pytest.raises(InputError, match="column Width is missing"):
        mask_size({"Height": 5})
    with pytest.raises(InputError, match=r"column Width is not a positive integer: '12.5'"):
        mask_size({"Height": "5", "Width": "12.5"})
    with pytest.raises(InputError, match=r"column Height is not a positive integer: '0'"):
        mask_size({"Height": "0", "Width": "5"})


@pytest.mark.parametrize("name", PUBLISHED)
def test_csv_parquet_csv_is_byte_identical(chexmask_csv_dir, tmp_path, name):
    src = chexmask_csv_dir / name
    assert convert_table(src, tmp_path / "t.parquet", chunksize=13) == 50
    assert convert_table(tmp_path / "t.parquet", tmp_path / name, chunksize=11) == 50
    assert (tmp_path / name).read_bytes() == src.read_bytes()


def test_parquet_csv_parquet_keeps_values_and_string_bytes(cxr8, tmp_path):
    convert_table(cxr8, tmp_path / "a.parquet")
    first = pq.read_table(tmp_path / "a.parquet")
    assert first.schema.field("Dice RCA (Mean)").type == pa.float64()
    assert first.schema.field("Height").type == pa.int64()
    assert first.schema.field("Landmarks").type == pa.string()
    convert_table(tmp_path / "a.parquet", tmp_path / "b.csv.gz")
    convert_table(tmp_path / "b.csv.gz", tmp_path / "c.parquet")
    second = pq.read_table(tmp_path / "c.parquet")
    assert second.equals(first)
    for field in first.schema:
        if field.type == pa.string():
            a = [s.encode() for s in first.column(field.name).to_pylist()]
            assert a == [s.encode() for s in second.column(field.name).to_pylist()]


def test_empty_numbers_round_trip_as_null(tmp_path):
    text = (
        "ImageID,Dice RCA (Mean),Dice RCA (Max),Landmarks,Left Lung,Right Lung,Heart,Height,Width\n"
        'a,,0.5,"1,2",,1 2,,,3\n'
        "007,0.1,0.25,,3 1,,,4,4\n"
    )
    (tmp_path / "t.csv").write_text(text, encoding="utf-8")
    convert_table(tmp_path / "t.csv", tmp_path / "t.parquet")
    values = pq.read_table(tmp_path / "t.parquet").to_pydict()
    assert values["Height"] == [None, 4] and values["ImageID"] == ["a", "007"]
    assert values["Dice RCA (Mean)"] == [None, 0.1]
    convert_table(tmp_path / "t.parquet", tmp_path / "back.csv")
    assert (tmp_path / "back.csv").read_text(encoding="utf-8") == text


@pytest.fixture()
def segment_parquet(cxr8, tmp_path):
    """12 published rows with segment's Parquet extras: summary floats, float32 node arrays
    (null where no sampling, one empty), the model strings."""
    import numpy as np

    from chexmask.formats.records import ARRAY_COLUMNS, part_schema

    rows = pq.read_table(cxr8).slice(0, 12) if cxr8.suffix == ".parquet" else pa.Table.from_pandas(
        pd.read_csv(cxr8, dtype=str, keep_default_na=False, nrows=12), preserve_index=False)
    rng = np.random.default_rng(0)
    types = {f.name: f.type for f in part_schema("Image Index")}
    arrays = {c: [(rng.standard_normal(240) * 300).astype(np.float32) for _ in range(12)] for c in ARRAY_COLUMNS}
    arrays["Node Std"][3] = None
    arrays["Latent Mu"][4] = np.zeros(0, np.float32)
    arrays["Node Mean"][5][:3] = [np.float32(0.1), np.float32(1e-8), np.float32(3.4e38)]
    table = pa.table({c: rows.column(c).cast(types[c]) if c in types else rows.column(c) for c in rows.column_names})
    table = table.append_column("Uncertainty", pa.array(rng.uniform(0, 5, 12), pa.float64()))
    for c in ARRAY_COLUMNS:
        table = table.append_column(c, pa.array(arrays[c], types[c]))
    table = table.append_column("Model", pa.array(["hybridgnet-jsrt-256"] * 12))
    path = tmp_path / "segment.parquet"
    pq.write_table(table, path)
    return path, table


def test_segment_parquet_to_csv_writes_arrays_as_json_lists(segment_parquet, tmp_path):
    import json

    import numpy as np

    path, table = segment_parquet
    assert convert_table(path, tmp_path / "s.csv") == 12
    text = (tmp_path / "s.csv").read_text(encoding="utf-8")
    assert text.count("\n") == 13  # one line per row, no multi-line numpy reprs
    back = pd.read_csv(tmp_path / "s.csv", dtype=str, keep_default_na=False)
    for column in ("Node Mean", "Node Std", "Latent Mu", "Latent Sigma Vector"):
        for cell, want in zip(back[column], table.column(column).to_pylist()):
            if want is None:
                assert cell == ""
            else:
                np.testing.assert_array_equal(np.array(json.loads(cell), np.float32), np.array(want, np.float32))
    assert back.loc[4, "Latent Mu"] == "[]" and back.loc[5, "Node Mean"].startswith("[0.1,1e-08,3.4e+38,")


def test_segment_tables_round_trip_both_ways(segment_parquet, tmp_path):
    path, table = segment_parquet
    convert_table(path, tmp_path / "a.csv", chunksize=5)
    convert_table(tmp_path / "a.csv", tmp_path / "b.parquet", chunksize=7)
    second = pq.read_table(tmp_path / "b.parquet")
    assert second.schema.equals(table.schema) and second.equals(table)  # Parquet -> CSV -> Parquet
    convert_table(tmp_path / "b.parquet", tmp_path / "c.csv.gz", chunksize=3)
    convert_table(tmp_path / "c.csv.gz", tmp_path / "d.csv")
    assert (tmp_path / "d.csv").read_bytes() == (tmp_path / "a.csv").read_bytes()  # CSV -> Parquet -> CSV


def test_convert_reports_bad_json_lists(tmp_path):
    (tmp_path / "t.csv").write_text(
        "ImageID,Landmarks,Left Lung,Right Lung,Heart,Node Std\na,,,,,[1.5]\nb,,,,,[1.5 2]\n", encoding="utf-8"
    )
    with pytest.raises(InputError, match=r"t.csv row 2, column Node Std: not a JSON list of numbers: '\[1.5 2\]'"):
        convert_table(tmp_path / "t.csv", tmp_path / "out.parquet")


def test_convert_reports_bad_numbers_and_leaves_nothing(tmp_path):
    (tmp_path / "t.csv").write_text(
        "ImageID,Landmarks,Left Lung,Right Lung,Heart,Height,Width\n"
        "a,,,,,4,4\nb,,,,,four,4\n",
        encoding="utf-8",
    )
    with pytest.raises(InputError, match=r"t.csv row 2, column Height: not an integer: 'four'"):
        convert_table(tmp_path / "t.csv", tmp_path / "out.parquet", chunksize=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]


def test_convert_refuses_its_own_source_and_unknown_suffix(cxr8, tmp_path):
    (tmp_path / "t.csv").write_bytes(cxr8.read_bytes())
    with pytest.raises(ValueError, match="is the source table"):
        convert_table(tmp_path / "t.csv", tmp_path / "t.csv")
    with pytest.raises(ValueError, match="out.xlsx: unknown table format '.xlsx'"):
        convert_table(tmp_path / "t.csv", tmp_path / "out.xlsx")
