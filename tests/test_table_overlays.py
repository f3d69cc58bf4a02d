"""``chexmask overlays``: a table's rows drawn on their images, on real films and published rows."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from chexmask import InputError
from chexmask.cli import app
from chexmask.cli._errors import EXIT_FAILED
from chexmask.dataset import row_to_record
from chexmask.formats.landmarks import format_landmarks, parse_landmarks
from chexmask.formats.row_frame import row_points_in_image
from chexmask.formats.tables import read_table
from chexmask.io.read import read_image
from chexmask.preprocess import Geometry, to_model_frame
from chexmask.reports.table_overlays import row_flag

runner = CliRunner()


@pytest.fixture(scope="module")
def segmented(mixed_films, tmp_path_factory):
    """The shipped model's Parquet rows of the films, with segment's own overlays beside them."""
    out = tmp_path_factory.mktemp("segmented")
    result = runner.invoke(app, ["segment", str(mixed_films), "-o", str(out / "seg.parquet"), "--uncertainty", "10",
                                 "--overlays", str(out / "segment_overlays"), "--workers", "0", "--no-progress"])
    assert result.exit_code == 0, result.output
    return out


def _pixels(path) -> np.ndarray:
    return cv2.imread(str(path)).astype(np.int16)


def test_segment_rows_draw_as_segment_drew_them(segmented, mixed_films, tmp_path):
    """A segment output's rows drawn from the table match segment --overlays' pictures (the table
    holds rounded landmarks, so a few pixels of the lines differ), and the flag the rule gives
    from the row is the flag the row was written with."""
    out = tmp_path / "ov"
    result = runner.invoke(app, ["overlays", str(segmented / "seg.parquet"), str(mixed_films), "-o", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "drew 3 overlays" in result.output
    for name in sorted(p.name for p in mixed_films.iterdir()):
        mine, theirs = _pixels(out / name), _pixels(segmented / "segment_overlays" / name)
        assert mine.shape == theirs.shape
        assert np.abs(mine - theirs).max(-1).__gt__(30).mean() < 0.05
    rows = read_table(segmented / "seg.parquet")
    for row in rows.to_dict("records"):
        record = row_to_record(row["Image ID"], row)
        assert row_flag(row, record).flag == row["Quality Flag"]
    assert pd.read_csv(out / "errors.csv").empty


def test_csv_and_parquet_draw_the_same_pictures(segmented, mixed_films, tmp_path):
    csv = tmp_path / "seg.csv"
    assert runner.invoke(app, ["convert", str(segmented / "seg.parquet"), "-o", str(csv)]).exit_code == 0
    for table, out in ((csv, tmp_path / "a"), (segmented / "seg.parquet", tmp_path / "b")):
        assert runner.invoke(app, ["overlays", str(table), str(mixed_films), "-o", str(out), "--no-progress"]).exit_code == 0
    for name in (p.name for p in mixed_films.iterdir()):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_published_rows_draw_with_their_rca_flag(cxr8, mixed_films, tmp_path):
    """Published ChestX-Ray8 rows (1024 x 1024, like JSRT mixed_films) drawn on JSRT mixed_films named as their ids;
    the flag is the rule on their Dice RCA, and CheXmask-U's layout draws as well."""
    rows = pd.read_csv(cxr8, dtype=str, keep_default_na=False).head(3)
    images = tmp_path / "images"
    images.mkdir()
    for image_id in rows["Image Index"]:
        shutil.copy(mixed_films / "JPCLN001.png", images / image_id)
    u = rows.rename(columns={"Landmarks": "Landmarks (Mean)"})
    u["Landmarks (Std)"] = ",".join(["1.50"] * 240)
    for name, table in (("published.csv", rows), ("u.csv", u)):
        table.to_csv(tmp_path / name, index=False)
        result = runner.invoke(app, ["overlays", str(tmp_path / name), str(images), "-o", str(tmp_path / name[:-4]), "--no-progress"])
        assert result.exit_code == 0, result.output
        assert sorted(p.name for p in (tmp_path / name[:-4]).glob("*.png")) == sorted(rows["Image Index"])
    for row in rows.to_dict("records"):
        flag = row_flag(row, row_to_record(row["Image Index"], row))
        assert flag.flag == ("review" if float(row["Dice RCA (Mean)"]) < 0.7 else "good")
        assert flag.rca == pytest.approx(float(row["Dice RCA (Mean)"]))
    plain, coloured = (_pixels(tmp_path / d / rows["Image Index"][0]) for d in ("published", "u"))
    assert np.abs(plain - coloured).max() > 100  # CheXmask-U's std colours the nodes; without it they are white


def test_bad_rows_are_listed_and_the_others_drawn(segmented, mixed_films, tmp_path):
    rows = read_table(segmented / "seg.parquet")
    good, montgomery = rows.iloc[0].copy(), rows[rows["Image ID"].str.startswith("MCU")].iloc[0].copy()
    wrong_frame = good.copy()
    wrong_frame["Image ID"] = montgomery["Image ID"]  # a 1024 x 1024 row on a 512 x 623 film
    missing, unsafe = good.copy(), good.copy()
    missing["Image ID"], unsafe["Image ID"] = "GHOST001.png", "../escape.png"
    table = pd.DataFrame([good, wrong_frame, missing, unsafe])
    table.to_parquet(tmp_path / "bad.parquet")
    out = tmp_path / "ov"
    result = runner.invoke(app, ["overlays", str(tmp_path / "bad.parquet"), str(mixed_films), "-o", str(out), "--no-progress"])
    assert result.exit_code == EXIT_FAILED
    assert "drew 1 overlays" in result.output and "4 rows or images failed" in result.output
    errors = pd.read_csv(out / "errors.csv")
    reasons = dict(zip(errors["path"], errors["reason"]))
    assert "is 1024 x 1024 but its image is 512 x 623" in reasons[f"{tmp_path / 'bad.parquet'} row 2"]
    assert "no unique image for id 'GHOST001.png': none found" in reasons[f"{tmp_path / 'bad.parquet'} row 3"]
    assert "relative output path" in reasons[f"{tmp_path / 'bad.parquet'} row 4"]
    assert any("no row in the table" in r for r in errors["reason"])  # the second JSRT film has no row
    assert sorted(p.name for p in out.rglob("*.png")) == [good["Image ID"]]
    assert not (tmp_path / "escape.png").exists()


def test_ids_select_rows(segmented, mixed_films, tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("JPCLN002.png\n")
    out = tmp_path / "ov"
    result = runner.invoke(app, ["overlays", str(segmented / "seg.parquet"), str(mixed_films), "-o", str(out), "--ids", str(ids), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert [p.name for p in out.glob("*.png")] == ["JPCLN002.png"]
    assert pd.read_csv(out / "errors.csv").empty  # images outside --ids are not errors


def test_physician_layout_is_mapped_from_the_1024_frame(segmented, mixed_films, tmp_path):
    """A row without Height/Width is in the preprocessed 1024 frame: it lands on the 512 x 623 film
    where the row of that film's own frame does (within the rounding of whole 1024-frame pixels)."""
    row = read_table(segmented / "seg.parquet").query("`Image ID`.str.startswith('MCU')").iloc[0]
    image = read_image(mixed_films / row["Image ID"])
    own = parse_landmarks(row["Landmarks"])
    in_1024 = np.rint(to_model_frame(own, Geometry.for_shape(image.height, image.width)))
    physician = {"Image ID": row["Image ID"], "Landmarks": format_landmarks(in_1024)}
    points, scale = row_points_in_image(physician, (image.height, image.width), stated_frame=False)
    assert scale == pytest.approx(623 / 1024)
    assert np.abs(points - own).max() <= 0.5 * scale + 0.51
    with pytest.raises(InputError, match="frame"):
        row_points_in_image(physician, (image.height, image.width), stated_frame=True)
    pd.DataFrame([physician]).to_csv(tmp_path / "physician.csv", index=False)
    result = runner.invoke(app, ["overlays", str(tmp_path / "physician.csv"), str(mixed_films / row["Image ID"]), "-o", str(tmp_path / "ov"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert cv2.imread(str(tmp_path / "ov" / row["Image ID"])).shape[:2] == (512 + 28, 623 + 90)
