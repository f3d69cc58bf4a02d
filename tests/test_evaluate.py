"""Tests of the evaluation (matching, table comparison, summary, compare), the Table-2 rendering, figures and the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from chexmask import InputError
from chexmask.anatomy import N_NODES
from chexmask.cli import app
from chexmask.masks.rle import encode_rle
from chexmask.quality.matching import match_ids
from chexmask.quality.summary import summarize
from chexmask.quality.table_comparison import compare_tables
from chexmask.reports.evaluation import evaluate
from chexmask.reports.tables import summary_markdown

SIZE = 48


def _box(top, left, h, w, size=SIZE) -> str:
    m = np.zeros((size, size), bool)
    m[top : top + h, left : left + w] = True
    return encode_rle(m)


def _row(image_id, shift=0, size=SIZE, heart=True, points=None) -> dict:
    points = np.tile([[10.0, 20.0]], (N_NODES, 1)) if points is None else points
    return {
        "Image Index": image_id,
        "Dice RCA (Mean)": 0.9,
        "Landmarks": ",".join(f"{v:g}" for v in points.ravel()),
        "Left Lung": _box(5, 28 + shift, 30, 12, size),
        "Right Lung": _box(5, 6 + shift, 30, 12, size),
        "Heart": _box(25, 18 + shift, 12, 14, size) if heart else "",
        "Height": size,
        "Width": size,
    }


def _metric(per_image, image_id, organ, metric):
    sel = per_image[(per_image.image_id == image_id) & (per_image.organ == organ)]
    return sel[metric].item()


# -- matching ---------------------------------------------------------------------------


def test_match_strips_folders_and_extensions():
    m = match_ids(["images/a.png", "b.jpg", "c.dcm"], ["a", "x/y/b.png", "d.png"])
    assert m.pairs == [(0, 0), (1, 1)]
    assert m.keys == ["a", "b"]
    assert m.unmatched_a == [2] and m.unmatched_b == [2]
    # the reader's extensions (io.lookup.image_stem): a DICOM UID keeps its dotted parts
    assert match_ids(["1.2.840.113.DCM", "1.2.840"], ["1.2.840.113", "1.2"]).pairs == [(0, 0)]


def test_match_falls_back_to_paths_when_names_repeat():
    a = ["train/p1/s1/view1_frontal.jpg", "train/p2/s1/view1_frontal.jpg", "train/p2/s2/view1_frontal.jpg"]
    b = ["CheXpert-v1.0/train/p2/s1/view1_frontal.jpg", "CheXpert-v1.0/train/p1/s1/view1_frontal.jpg"]
    m = match_ids(a, b)
    assert sorted(m.pairs) == [(0, 1), (1, 0)]
    assert m.unmatched_a == [2]


def test_match_keeps_first_duplicate():
    m = match_ids(["a.png", "a.png"], ["a"])
    assert m.pairs == [(0, 0)] and m.duplicates_a == [1]


# -- per-image metrics and per-row errors ---------------------------------------------------


def test_compare_tables_hand_computed_and_row_errors():
    pts = np.tile([[10.0, 20.0]], (N_NODES, 1))
    pts_nan = pts.copy()
    pts_nan[94:] = np.nan  # heart not annotated
    a = pd.DataFrame([_row("same.png"), _row("shift.png"), _row("noheart.png"), _row("small.png"),
                      _row("badrle.png"), _row("nanlm.png"), _row("only_in_a.png")])
    b = pd.DataFrame([_row("same"), _row("shift", shift=2, points=pts + [3.0, 4.0]), _row("noheart", heart=False),
                      _row("small", size=32), _row("badrle"), _row("nanlm", points=pts_nan), _row("only_in_b")])
    b.loc[4, "Heart"] = "5 3 1"  # odd number of values
    per_image, errors, node_sq, ref_xy, node_unc, scale = compare_tables(a, b, name="a vs b", source_a="a.csv", source_b="b.csv")

    assert _metric(per_image, "same.png", "lungs", "dice") == 1.0
    assert _metric(per_image, "same.png", "heart", "hd") == 0.0
    assert _metric(per_image, "same.png", "lungs", "landmark_mse") == 0.0
    assert _metric(per_image, "shift.png", "lungs", "hd") == pytest.approx(2.0)
    assert _metric(per_image, "shift.png", "right_lung", "dice") == pytest.approx(10 / 12)
    assert _metric(per_image, "shift.png", "heart", "landmark_mse") == pytest.approx(25.0)
    assert _metric(per_image, "noheart.png", "heart", "dice") == 0.0
    assert np.isnan(_metric(per_image, "noheart.png", "heart", "hd95"))
    assert _metric(per_image, "noheart.png", "lungs", "dice") == 1.0
    assert per_image[per_image.image_id == "small.png"][["dice", "hd", "landmark_mse"]].isna().all().all()
    assert np.isnan(_metric(per_image, "badrle.png", "heart", "dice"))
    assert _metric(per_image, "badrle.png", "lungs", "dice") == 1.0
    assert np.isnan(_metric(per_image, "nanlm.png", "heart", "landmark_mse"))
    assert _metric(per_image, "nanlm.png", "right_lung", "landmark_mse") == 0.0
    assert node_sq.shape == (6, N_NODES) and ref_xy.shape == (6, N_NODES, 2)
    assert node_unc.shape == (6, N_NODES) and np.isnan(node_unc).all()  # no Landmarks (Std) in A
    assert scale.tolist() == pytest.approx([1024 / SIZE] * 6)  # A's frame, 48 x 48 on every row

    assert list(errors.columns) == ["path", "error", "reason", "comparison", "image_id", "organ"]  # every command's, then where
    by_id = errors.groupby("image_id")["reason"].apply(" | ".join)
    assert "empty mask in b.csv row 3: HD and HD95 undefined" in by_id["noheart.png"]
    assert "mask sizes differ: 48x48 in a.csv row 4 vs 32x32 in b.csv row 4" in by_id["small.png"]
    assert "column Heart" in by_id["badrle.png"]
    assert "NaN landmarks" in by_id["nanlm.png"]
    assert by_id["only_in_a.png"] == "no matching row in b.csv"
    assert by_id["only_in_b"] == "no matching row in a.csv"
    where = errors.set_index("image_id")
    assert where.loc["badrle.png", ["path", "error"]].tolist() == ["b.csv row 5", "RLEError"]
    assert where.loc["only_in_a.png", ["path", "error"]].tolist() == ["a.csv row 7", "NoMatch"]
    assert where.loc["only_in_b", ["path", "error"]].tolist() == ["b.csv row 7", "NoMatch"]


def test_compare_tables_reads_chexmask_u_columns_and_the_std():
    """A in CheXmask-U's layout: Landmarks (Mean) and Landmarks (Std); a bad std is a row problem."""
    pts = np.tile([[10.0, 20.0]], (N_NODES, 1))
    std = np.tile([[3.0, 4.0]], (N_NODES, 1))
    a = pd.DataFrame([_row("x.png"), _row("y.png"), _row("z.png")]).rename(columns={"Landmarks": "Landmarks (Mean)"})
    a["Landmarks (Std)"] = [",".join(f"{v:.2f}" for v in std.ravel()), "", "1,2"]
    b = pd.DataFrame([_row("x", points=pts + [3.0, 4.0]), _row("y"), _row("z")])
    result = compare_tables(a, b, name="a vs b", source_a="a.csv", source_b="b.csv")
    assert _metric(result.per_image, "x.png", "lungs", "landmark_mse") == pytest.approx(25.0)
    np.testing.assert_array_equal(result.node_uncertainty[0], np.full(N_NODES, 5.0))
    assert np.isnan(result.node_uncertainty[1:]).all()  # empty std: none; malformed: none and an error
    bad = result.errors.set_index("image_id").loc["z.png"]
    assert (bad["path"], bad["error"], bad["organ"]) == ("a.csv row 3", "InputError", "landmarks")
    assert bad["reason"] == "column Landmarks (Std): expected 240 numbers (120 (x, y) points), got 2"


def test_summarize_mean_std_n_and_seeded_ci():
    per_image = pd.DataFrame({"comparison": "x vs y", "organ": "lungs", "dice": [0.9, 1.0, np.nan, 0.8],
                              "hd": 1.0, "hd95": 1.0, "landmark_mse": np.nan, "group": ["m", "f", "f", "m"]})
    s = summarize(per_image, n_boot=200, seed=3)
    row = s[(s.group == "all") & (s.metric == "dice")].iloc[0]
    assert row["mean"] == pytest.approx(0.9) and row["std"] == pytest.approx(0.1) and row["n"] == 3
    assert row["ci_low"] <= 0.9 <= row["ci_high"]
    assert s[(s.group == "m") & (s.metric == "dice")]["mean"].item() == pytest.approx(0.85)
    assert s[(s.metric == "landmark_mse")]["n"].eq(0).all()
    pd.testing.assert_frame_equal(s, summarize(per_image, n_boot=200, seed=3))


def test_summary_markdown_layout():
    s = pd.DataFrame({"comparison": "p vs q", "group": "all", "organ": ["lungs", "heart"], "metric": "hd",
                      "mean": [12.34, 5.0], "std": [1.0, np.nan], "n": 7})
    lines = summary_markdown(s).splitlines()
    assert lines[2] == "| Comparison | Group | n | Lungs DSC | Lungs HD | Lungs HD95 | Heart DSC | Heart HD | Heart HD95 |"
    assert lines[4] == "| p vs q | all | 7 | – | 12.3 ± 1.0 | – | – | 5.0 | – |"
    with pytest.raises(ValueError, match="missing columns"):
        summary_markdown(s.drop(columns="n"))


# -- whole evaluation -------------------------------------------------------------------------


def test_evaluate_groups_and_figures(tmp_path):
    ids = [f"img{i}.png" for i in range(6)]
    pd.DataFrame([_row(i) for i in ids]).to_csv(tmp_path / "pred.csv", index=False)
    pd.DataFrame([_row(i, shift=k % 3) for k, i in enumerate(ids)]).to_csv(tmp_path / "ref1.csv", index=False)
    pd.DataFrame([_row(i, shift=1) for i in ids]).to_csv(tmp_path / "ref2.csv", index=False)
    pd.DataFrame({"Image Index": ids[:5], "Patient Gender": list("MFMFM")}).to_csv(tmp_path / "meta.csv", index=False)
    report = evaluate(tmp_path / "pred.csv", [tmp_path / "ref1.csv", tmp_path / "ref2.csv"], tmp_path / "rep",
                      group_by="Patient Gender", metadata=tmp_path / "meta.csv", n_boot=50)

    assert list(report.summary["comparison"].unique()) == ["pred vs ref1", "pred vs ref2", "ref1 vs ref2"]
    assert set(report.summary["group"]) == {"all", "M", "F"}
    saved = pd.read_csv(tmp_path / "rep" / "summary.csv")
    assert list(saved.columns[:7]) == ["comparison", "group", "organ", "metric", "mean", "std", "n"]
    assert "| pred vs ref1 | F |" in (tmp_path / "rep" / "summary.md").read_text()
    assert (report.errors["reason"] == "no 'Patient Gender' value in " + str(tmp_path / "meta.csv")).sum() == 3
    for name in ("dice_boxplots", "landmark_error_pred_vs_ref1", "scores_pred"):
        assert (tmp_path / "rep" / "figures" / f"{name}.png").stat().st_size > 0
        assert (tmp_path / "rep" / "figures" / f"{name}.pdf").stat().st_size > 0


def test_evaluate_option_errors(tmp_path):
    pd.DataFrame([_row("a.png")]).to_csv(tmp_path / "p.csv", index=False)
    pd.DataFrame([_row("a.png")]).to_csv(tmp_path / "q.csv", index=False)
    with pytest.raises(InputError, match="give both options or neither"):
        evaluate(tmp_path / "p.csv", [tmp_path / "q.csv"], tmp_path / "r", group_by="sex")
    with pytest.raises(InputError, match=r"meta.csv: metadata table not found"):
        evaluate(tmp_path / "p.csv", [tmp_path / "q.csv"], tmp_path / "r", group_by="sex", metadata=tmp_path / "meta.csv")
    (tmp_path / "meta.pq").write_bytes(b"")  # table_paths' suffixes only: .pq is not one
    with pytest.raises(InputError, match=r"meta.pq: unknown table format '.pq'.*did you mean '.parquet'"):
        evaluate(tmp_path / "p.csv", [tmp_path / "q.csv"], tmp_path / "r", group_by="sex", metadata=tmp_path / "meta.pq")
    with pytest.raises(InputError, match="file stems must differ"):
        evaluate(tmp_path / "p.csv", [tmp_path / "p.csv"], tmp_path / "r")
    with pytest.raises(InputError, match="at least one reference"):
        evaluate(tmp_path / "p.csv", [], tmp_path / "r")


# -- CLI on the shared CheXmask rows -------------------------------------------------------------


def test_cli_evaluate_candid_ptx(chexmask_csv_dir, tmp_path):
    # 9 predicted rows and 8 of them in each physician file keep the test fast (docs/evaluate.md
    # has the full 50); the 9th predicted row must be reported as unmatched.
    names = ["CANDID-PTX.csv", "CANDID-PTX_julia_annotations.csv", "CANDID-PTX_martina_annotations.csv"]
    tables = [pd.read_csv(chexmask_csv_dir / n, dtype=str, keep_default_na=False) for n in names]
    ids = tables[0]["ImageID"].iloc[:9]
    paths = []
    for name, table, keep in zip(names, tables, (ids, ids[:8], ids[:8])):
        path = tmp_path / name
        table[table["ImageID"].isin(keep)].to_csv(path, index=False)
        paths.append(str(path))
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["evaluate", *paths, "-o", str(out), "--bootstrap", "100"])
    assert result.exit_code == 0, result.output
    assert "| CANDID-PTX vs CANDID-PTX_julia_annotations | all | 8 |" in result.stdout
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 3 * 4 * 4  # comparisons x organs x metrics
    assert (summary.loc[(summary.organ == "lungs") & (summary.metric == "dice"), "mean"] > 0.9).all()
    assert (summary.loc[summary.metric != "landmark_mse", "n"] == 8).all()
    errors = pd.read_csv(out / "errors.csv")
    assert errors["reason"].tolist() == [f"no matching row in {p}" for p in paths[1:]]
    assert errors["path"].tolist() == [f"{paths[0]} row 9"] * 2 and set(errors["error"]) == {"NoMatch"}
    assert errors["image_id"].tolist() == [ids.iloc[8]] * 2
    assert (out / "figures" / "dice_boxplots.png").exists()


def _subset_with_blank_sizes(chexmask_csv_dir, tmp_path):
    """8 CANDID-PTX predictions and julia's rows for them with Height/Width columns added:
    empty on rows 1-4 (the 1024 frame), 1024 on rows 5-8; row 3 says 'tall', row 6's heart
    runs past the 1024 x 1024 frame."""
    pred = pd.read_csv(chexmask_csv_dir / "CANDID-PTX.csv", dtype=str, keep_default_na=False).head(8)
    ref = pd.read_csv(chexmask_csv_dir / "CANDID-PTX_julia_annotations.csv", dtype=str, keep_default_na=False)
    ref = ref.set_index("ImageID").loc[pred["ImageID"]].reset_index()
    ref["Height"] = ref["Width"] = ["", "", "", "", "1024", "1024", "1024", "1024"]
    ref.loc[2, "Height"] = "tall"
    ref.loc[5, ["Height", "Width"]] = ""
    ref.loc[5, "Heart"] += f" {1024 * 1024 - 5} 10"
    paths = tmp_path / "pred.csv", tmp_path / "ref.csv"
    pred.to_csv(paths[0], index=False)
    ref.to_csv(paths[1], index=False)
    return paths, ref["ImageID"]


def test_evaluate_reads_empty_sizes_and_records_bad_rows(chexmask_csv_dir, tmp_path):
    (pred, ref), ids = _subset_with_blank_sizes(chexmask_csv_dir, tmp_path)
    with pytest.warns(UserWarning, match=r"ref.csv: 4 rows \(1, 2, 4, 6\) have empty Height and Width"):
        report = evaluate(pred, [ref], tmp_path / "r", n_boot=0, figures=False)
    dice = report.per_image[report.per_image.organ == "lungs"].set_index("image_id")["dice"]
    assert dice.drop(ids[2]).gt(0.9).all() and np.isnan(dice[ids[2]])
    heart = report.per_image[report.per_image.organ == "heart"].set_index("image_id")["dice"]
    assert np.isnan(heart[ids[5]]) and heart.drop([ids[2], ids[5]]).gt(0.8).all()
    errors = report.errors.set_index("image_id")
    assert len(errors) == 2
    assert errors.loc[ids[2], "path"] == str(ref) + " row 3"
    assert errors.loc[ids[2], "reason"] == "image size column Height is not a positive integer: 'tall'"
    assert errors.loc[ids[5], "path"] == str(ref) + " row 6"
    assert "column Heart" in errors.loc[ids[5], "reason"] and "beyond 1024x1024" in errors.loc[ids[5], "reason"]


def test_cli_evaluate_missing_file_exits_2(tmp_path):
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "nope.csv"), str(tmp_path / "ref.csv"), "-o", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "nope.csv: file not found" in result.stderr
