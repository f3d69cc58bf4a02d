"""CheXmask-U tables (``Landmarks (Mean)``, ``Landmarks (Std)``) read as CheXmask tables do, and
``chexmask segment``'s ``Landmarks (Std)`` in CheXmask-U's layout.

The CheXmask-U rows are published ChestX-Ray8 rows turned into that layout here: ``Landmarks`` renamed
``Landmarks (Mean)`` (integers) and a ``Landmarks (Std)`` column added ("sx,sy,..." per node, two
decimals), in the release's column order. Tests needing the shared folder skip when it is absent.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from chexmask import InputError
from chexmask.anatomy import N_NODES
from chexmask.cli import app
from chexmask.dataset import MaskDataset, iter_records
from chexmask.formats.convert import convert_table
from chexmask.formats.landmark_columns import (
    landmarks_column,
    node_std_column,
    row_landmarks,
    row_node_std,
)
from chexmask.formats.landmarks import (
    format_node_std,
    node_uncertainty,
    parse_landmarks,
    parse_node_std,
)
from chexmask.formats.tables import read_table

runner = CliRunner()
U_COLUMNS = ["Image Index", "Dice RCA (Mean)", "Dice RCA (Max)", "Landmarks (Mean)", "Landmarks (Std)", "Left Lung",
             "Right Lung", "Heart", "Height", "Width"]
N_ROWS = 6


def _std(k: int) -> np.ndarray:
    """Per-node std of row k: rising along the nodes, so it has something to rank."""
    rng = np.random.default_rng(k)
    return np.round(rng.uniform(0.2, 3.0, (N_NODES, 2)) + np.linspace(0, 4, N_NODES)[:, None], 2)


def _to_u_layout(rows: pd.DataFrame) -> pd.DataFrame:
    u = rows.rename(columns={"Landmarks": "Landmarks (Mean)"})
    u["Landmarks (Mean)"] = [",".join(str(int(np.rint(v))) for v in parse_landmarks(t).ravel()) for t in u["Landmarks (Mean)"]]
    u["Landmarks (Std)"] = [format_node_std(_std(k)) for k in range(len(u))]
    return u[U_COLUMNS]


@pytest.fixture(scope="module")
def published(cxr8) -> pd.DataFrame:
    """The first published ChestX-Ray8 rows, as text (CheXmask layout)."""
    return pd.read_csv(cxr8, dtype=str, keep_default_na=False).head(N_ROWS)


@pytest.fixture(scope="module")
def tables(published, tmp_path_factory):
    """(classic.csv, u.csv): the same rows in both layouts."""
    folder = tmp_path_factory.mktemp("layouts")
    published.to_csv(folder / "classic.csv", index=False, lineterminator="\n")
    _to_u_layout(published).to_csv(folder / "u.csv", index=False, lineterminator="\n")
    return folder / "classic.csv", folder / "u.csv"


def _with_bad_std(u_csv, tmp_path, value, row=1):
    rows = pd.read_csv(u_csv, dtype=str, keep_default_na=False)
    rows.loc[row, "Landmarks (Std)"] = value
    path = tmp_path / "bad.csv"
    rows.to_csv(path, index=False, lineterminator="\n")
    return path


# -- which column holds what ------------------------------------------------------------------


def test_both_layouts_read_the_same_landmarks(tables):
    classic, u = (read_table(p) for p in tables)
    assert landmarks_column(classic.columns) == "Landmarks" and node_std_column(classic.columns) is None
    assert landmarks_column(u.columns) == "Landmarks (Mean)" and node_std_column(u.columns) == "Landmarks (Std)"
    for k in range(N_ROWS):
        np.testing.assert_array_equal(row_landmarks(u.iloc[k]), row_landmarks(classic.iloc[k]))
        np.testing.assert_array_equal(row_node_std(u.iloc[k], source=f"u.csv row {k + 1}"), _std(k))
        assert row_node_std(classic.iloc[k]) is None


def test_std_text_round_trips_with_two_decimals():
    std = np.array([[1.0, 0.254], [12.5, 0.0], [np.nan, 0.006]])
    text = format_node_std(std)
    assert text == "1.00,0.25,12.50,0.00,nan,0.01"
    np.testing.assert_array_equal(parse_node_std(text, n_points=3), np.round(std, 2))
    assert node_uncertainty([[3.0, 4.0]]).tolist() == [5.0]


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("1.00,2.00,3.00", r"u.csv row 2, column Landmarks \(Std\): expected 240 numbers \(120 \(x, y\) points\), got 3"),
        (",".join(["0.50"] * 239 + ["wide"]), r"u.csv row 2, column Landmarks \(Std\): std value 239 is not a number: 'wide'"),
        (",".join(["0.50"] * 239 + ["-1"]), r"u.csv row 2, column Landmarks \(Std\): std 119 is negative"),
        ("[1, 2", r"u.csv row 2, column Landmarks \(Std\): stds look like JSON but do not parse"),
    ],
)
def test_malformed_std_names_row_column_and_problem(value, match):
    with pytest.raises(InputError, match=match):
        row_node_std({"Landmarks (Mean)": "", "Landmarks (Std)": value}, source="u.csv row 2")


def test_empty_std_is_no_std_and_node_std_lists_are_read():
    assert row_node_std({"Landmarks (Std)": "", "Node Std": None}) is None
    std = np.arange(2 * 166, dtype=np.float32) / 100  # a Parquet Node Std cell with the clavicles
    np.testing.assert_allclose(row_node_std({"Node Std": std}), std.reshape(-1, 2)[:N_NODES], rtol=1e-6)
    np.testing.assert_allclose(row_node_std({"Node Std": json.dumps(std[:240].tolist())}), std[:240].reshape(-1, 2), rtol=1e-6)


# -- dataset records and overlays -------------------------------------------------------------


def test_records_of_both_layouts_match_and_carry_the_std(tables):
    classic, u = (list(iter_records(p)) for p in tables)
    for k, (a, b) in enumerate(zip(classic, u)):
        assert a.image_id == b.image_id
        np.testing.assert_array_equal(a.landmarks, b.landmarks)
        for organ in a.masks:
            np.testing.assert_array_equal(a.masks[organ], b.masks[organ])
        assert a.node_std is None and a.uncertainty is None
        np.testing.assert_array_equal(b.node_std, _std(k))
        assert b.uncertainty == pytest.approx(node_uncertainty(_std(k)).mean())
        assert "Landmarks (Std)" not in b.metadata and "Landmarks (Mean)" not in b.metadata
        assert (b.height, b.width) == (a.height, a.width) == (1024, 1024)


def test_map_dataset_items_carry_the_std(tables):
    item = MaskDataset(tables[1])[2]
    np.testing.assert_array_equal(item["node_std"], _std(2))
    assert "node_std" not in MaskDataset(tables[0])[2]


def test_bad_std_row_is_skipped_or_raised_with_its_row(tables, tmp_path, caplog):
    bad = _with_bad_std(tables[1], tmp_path, "1.00,oops")
    records = list(iter_records(bad, on_error="skip"))
    assert [r.metadata["row"] for r in records] == [1, 3, 4, 5, 6]
    assert "bad.csv row 2, column Landmarks (Std): std value 1 is not a number: 'oops'" in caplog.text
    with pytest.raises(InputError, match=r"bad.csv row 2, column Landmarks \(Std\)"):
        list(iter_records(bad))
    with pytest.raises(InputError, match=r"bad.csv row 2, column Landmarks \(Std\)"):
        MaskDataset(bad)[1]


def test_overlay_of_a_u_row_colours_nodes_by_its_std(tables):
    from chexmask.reports.overlay import render_overlay

    classic, u = next(iter_records(tables[0])), next(iter_records(tables[1]))
    image = np.full((u.height, u.width), 90, np.uint8)
    plain = render_overlay(image, classic, legend=False, ellipses=False)
    coloured = render_overlay(image, u, legend=False, ellipses=False)
    x, y = np.rint(u.landmarks[-1]).astype(int)  # a heart node: node uncertainty above 5 px, the top colour
    assert tuple(plain[y, x]) == (255, 255, 255)  # no std: white nodes
    assert tuple(coloured[y, x]) != (255, 255, 255)
    with_legend = render_overlay(image, u)
    assert with_legend.shape[0] == image.shape[0] + 28  # caption with the mean node std


# -- commands ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference(published, tmp_path_factory):
    """A reference table (CheXmask layout) whose nodes sit off the mean by noise scaled by the std."""
    rng = np.random.default_rng(5)
    ref = published.copy()
    ref["Landmarks"] = [",".join(f"{v:.2f}" for v in (parse_landmarks(t) + rng.normal(0, 1, (N_NODES, 2)) * _std(k)).ravel())
                        for k, t in enumerate(published["Landmarks"])]
    path = tmp_path_factory.mktemp("ref") / "ref.csv"
    ref.to_csv(path, index=False, lineterminator="\n")
    return path


def test_evaluate_reads_u_tables_and_relates_std_to_error(tables, reference, tmp_path):
    result = runner.invoke(app, ["evaluate", str(tables[1]), str(reference), "-o", str(tmp_path / "r"), "--no-figures",
                                 "--no-progress", "--bootstrap", "200"])
    assert result.exit_code == 0, result.output
    summary = pd.read_csv(tmp_path / "r" / "summary.csv")
    rho = summary[summary.metric == "node_uncertainty_spearman"].set_index("organ")
    assert set(rho.index) == {"lungs", "heart", "right_lung", "left_lung"}
    assert rho.loc["lungs", "n"] == N_ROWS * 94 and rho.loc["heart", "n"] == N_ROWS * 26
    assert rho.loc["lungs", "mean"] > 0.3 and rho.loc["lungs", "ci_low"] <= rho.loc["lungs", "mean"] <= rho.loc["lungs", "ci_high"]
    assert "Node uncertainty vs node error (Spearman)" in result.output
    dice = summary[(summary.metric == "dice") & (summary.organ == "lungs")]["mean"].item()
    assert dice == 1.0  # the same masks
    # the CheXmask layout has no std: no such rows, and the same Dice and landmark errors
    classic = runner.invoke(app, ["evaluate", str(tables[0]), str(reference), "-o", str(tmp_path / "c"), "--no-figures",
                                  "--no-progress", "--bootstrap", "0"])
    assert classic.exit_code == 0, classic.output
    other = pd.read_csv(tmp_path / "c" / "summary.csv")
    assert "node_uncertainty_spearman" not in set(other.metric)
    same = ["comparison", "organ", "metric", "mean", "n"]
    pd.testing.assert_frame_equal(other[same].assign(comparison=""),
                                  summary[summary.metric != "node_uncertainty_spearman"][same].assign(comparison=""))


def test_evaluate_records_a_bad_std_and_scores_the_rest(tables, reference, tmp_path):
    bad = _with_bad_std(tables[1], tmp_path, ",".join(["1.00"] * 10))
    result = runner.invoke(app, ["evaluate", str(bad), str(reference), "-o", str(tmp_path / "r"), "--no-figures",
                                 "--no-progress", "--bootstrap", "0"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    errors = pd.read_csv(tmp_path / "r" / "errors.csv")
    assert errors["path"].tolist() == [f"{bad} row 2"]
    assert errors["reason"].item() == "column Landmarks (Std): expected 240 numbers (120 (x, y) points), got 10"
    per_image = pd.read_csv(tmp_path / "r" / "per_image.csv")
    assert per_image["landmark_mse"].notna().all()  # the row's landmarks are still scored
    summary = pd.read_csv(tmp_path / "r" / "summary.csv")
    assert summary[(summary.metric == "node_uncertainty_spearman") & (summary.organ == "heart")]["n"].item() == (N_ROWS - 1) * 26


def test_measure_masks_and_convert_treat_both_layouts_alike(tables, tmp_path):
    for name, table in zip(("classic", "u"), tables):
        out = tmp_path / f"{name}.measures.csv"
        assert runner.invoke(app, ["measure", str(table), "-o", str(out), "--no-progress"]).exit_code == 0
        masks = runner.invoke(app, ["masks", str(table), "-o", str(tmp_path / name), "--format", "npz", "--no-progress"])
        assert masks.exit_code == 0, masks.output
    assert (tmp_path / "classic.measures.csv").read_bytes() == (tmp_path / "u.measures.csv").read_bytes()
    for f in sorted((tmp_path / "classic").glob("*.npz")):
        a, b = np.load(f), np.load(tmp_path / "u" / f.name)
        assert all(np.array_equal(a[k], b[k]) for k in a.files)
    convert_table(tables[1], tmp_path / "u.parquet")
    convert_table(tmp_path / "u.parquet", tmp_path / "back.csv")
    assert (tmp_path / "back.csv").read_bytes() == tables[1].read_bytes()
    assert read_table(tmp_path / "u.parquet")["Landmarks (Std)"].tolist() == read_table(tables[1])["Landmarks (Std)"].tolist()


def test_label_studio_tasks_carry_the_std(tables, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for name in read_table(tables[1])["Image Index"]:
        (images / name).write_bytes(b"")  # export needs the files to exist, not to be read
    out = tmp_path / "tasks.json"
    result = runner.invoke(app, ["export", "labelstudio", str(tables[1]), str(images), "-o", str(out)])
    assert result.exit_code == 0, result.output
    tasks = json.loads(out.read_text())
    assert np.array_equal(np.array(tasks[3]["data"]["node_std"]), _std(3))
    assert tasks[3]["data"]["uncertainty"] == pytest.approx(node_uncertainty(_std(3)).mean(), abs=1e-4)
    assert tasks[3]["predictions"][0]["score"] == pytest.approx(float(read_table(tables[1])["Dice RCA (Mean)"][3]))
    classic = json.loads((tmp_path / "c.json").read_text()) if runner.invoke(
        app, ["export", "labelstudio", str(tables[0]), str(images), "-o", str(tmp_path / "c.json")]).exit_code == 0 else None
    assert classic is not None and "node_std" not in classic[3]["data"]
    assert [t["predictions"][0]["result"] for t in classic] == [t["predictions"][0]["result"] for t in tasks]
    bad = _with_bad_std(tables[1], tmp_path, "x")
    result = runner.invoke(app, ["export", "labelstudio", str(bad), str(images), "-o", str(tmp_path / "b.json")])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert f"{bad} row 2, column Landmarks (Std): std value 0 is not a number: 'x'" in result.output


# -- segment writes Landmarks (Std) in CheXmask-U's layout ------------------------------------


def test_segment_writes_the_std_in_csv_and_parquet_alike(tiny_weights, jsrt_dir, tmp_path):
    from chexmask.inference.pipeline import segment_dataset

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("JPCLN001.png", "JPCLN002.png"):
        (folder / name).write_bytes((jsrt_dir / "images" / name).read_bytes())
    kw = {"weights": tiny_weights, "uncertainty": 4, "seed": 1, "workers": 0, "progress": False}
    segment_dataset([folder], tmp_path / "s.csv", **kw)
    segment_dataset([folder], tmp_path / "s.parquet", **kw)
    csv, parquet = read_table(tmp_path / "s.csv"), read_table(tmp_path / "s.parquet")
    assert csv["Landmarks (Std)"].tolist() == parquet["Landmarks (Std)"].tolist()
    for k in range(2):
        text = csv["Landmarks (Std)"][k]
        assert all(len(v.split(".")[1]) == 2 for v in text.split(","))  # two decimals, as CheXmask-U
        node_std = np.asarray(parquet["Node Std"][k], np.float32).astype(np.float64).reshape(-1, 2)
        np.testing.assert_array_equal(parse_node_std(text), np.round(node_std, 2))  # one meaning: Node Std, rounded
        assert float(csv["Uncertainty"][k]) == pytest.approx(node_uncertainty(node_std).mean(), abs=1e-4)
        assert float(csv["Uncertainty"][k]) == pytest.approx(node_uncertainty(parse_node_std(text)).mean(), abs=0.01)
    # our rows read as CheXmask-U rows do
    ours = next(iter_records(tmp_path / "s.csv"))
    np.testing.assert_array_equal(ours.node_std, parse_node_std(csv["Landmarks (Std)"][0]))
    # convert is loss-free both ways
    convert_table(tmp_path / "s.csv", tmp_path / "c.parquet")
    convert_table(tmp_path / "c.parquet", tmp_path / "c.csv")
    assert (tmp_path / "c.csv").read_bytes() == (tmp_path / "s.csv").read_bytes()
    convert_table(tmp_path / "s.parquet", tmp_path / "p.csv")
    convert_table(tmp_path / "p.csv", tmp_path / "p.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "p.parquet"), pd.read_parquet(tmp_path / "s.parquet"))

    # without sampling the column is there and empty, in both formats and after converting
    kw["uncertainty"] = 0
    segment_dataset([folder], tmp_path / "n.csv", **kw)
    segment_dataset([folder], tmp_path / "n.parquet", **kw)
    assert read_table(tmp_path / "n.csv")["Landmarks (Std)"].tolist() == ["", ""]
    assert pd.read_parquet(tmp_path / "n.parquet")["Landmarks (Std)"].tolist() == ["", ""]
    convert_table(tmp_path / "n.csv", tmp_path / "n2.parquet")
    assert pd.read_parquet(tmp_path / "n2.parquet")["Landmarks (Std)"].tolist() == ["", ""]
    assert next(iter_records(tmp_path / "n.parquet")).node_std is None
