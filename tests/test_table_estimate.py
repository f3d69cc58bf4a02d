"""``chexmask estimate``: the shipped estimate of any table's rows, from landmarks and images, on real films."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from chexmask.cli import app
from chexmask.cli._errors import EXIT_FAILED
from chexmask.formats.landmarks import format_landmarks, parse_landmarks
from chexmask.formats.tables import read_table
from chexmask.io.read import read_image
from chexmask.preprocess import Geometry, to_model_frame

runner = CliRunner()


@pytest.fixture(scope="module")
def rows(mixed_films, tmp_path_factory):
    """The shipped model's rows of the films without sampling: the estimate's shape variant, as the table estimate's."""
    out = tmp_path_factory.mktemp("seg") / "seg.csv"
    result = runner.invoke(app, ["segment", str(mixed_films), "-o", str(out), "--uncertainty", "0", "--workers", "0", "--no-progress"])
    assert result.exit_code == 0, result.output
    return out


def _estimate(table, images, out, *extra):
    result = runner.invoke(app, ["estimate", str(table), *map(str, images), "-o", str(out), "--no-progress", *extra])
    return result, (pd.read_csv(out) if out.exists() else None)


def test_a_table_estimates_as_segment_did(rows, mixed_films, tmp_path):
    """From the table's whole-pixel landmarks and the images, the same estimate segment wrote (shape variant)."""
    result, est = _estimate(rows, [mixed_films], tmp_path / "est.csv")
    assert result.exit_code == 0, result.output
    seg = pd.read_csv(rows)
    assert list(est.columns) == ["Image ID", "Estimated Dice Lungs", "Estimated Dice Heart", "Quality Flag", "Weak Lung Edges"]
    assert list(est["Image ID"]) == list(seg["Image ID"])
    for column in ("Estimated Dice Lungs", "Estimated Dice Heart"):
        np.testing.assert_allclose(est[column], seg[column], atol=0.003)
    assert list(est["Quality Flag"]) == list(seg["Quality Flag"])
    assert est["Weak Lung Edges"].between(0, 0.25).all()


def test_contours_of_another_image_are_estimated_worse(cxr8, rows, mixed_films, tmp_path):
    """Published ChestX-Ray8 contours (1024 x 1024) laid on a JSRT film of that size are wrong for it: lower estimate."""
    published = pd.read_csv(cxr8, dtype=str, keep_default_na=False).head(4)
    images = tmp_path / "images"
    images.mkdir()
    for image_id in published["Image Index"]:
        shutil.copy(mixed_films / "JPCLN001.png", images / image_id)
    published.to_csv(tmp_path / "published.csv", index=False)
    result, est = _estimate(tmp_path / "published.csv", [images], tmp_path / "est.csv")
    assert result.exit_code == 0, result.output
    own = pd.read_csv(rows).set_index("Image ID").loc["JPCLN001.png", "Estimated Dice Lungs"]
    assert (est["Estimated Dice Lungs"] < own - 0.01).all(), (own, est)
    assert (est["Weak Lung Edges"] > 0.1).all() and est["Weak Lung Edges"].mean() > 0.25  # the film's own contours: 0.085
    flags = ["review" if float(r) < 0.7 or e < 0.9225 or h < 0.70 else "good"
             for r, e, h in zip(published["Dice RCA (Mean)"], est["Estimated Dice Lungs"], est["Estimated Dice Heart"])]
    assert list(est["Quality Flag"]) == flags  # the flag rule on the estimate and the row's RCA


def test_physician_layout_estimates_as_its_own_frame(rows, mixed_films, tmp_path):
    """A row in the 1024 frame (no Height/Width) is mapped back to its film and estimated as the same row in the film's frame."""
    row = read_table(rows).query("`Image ID`.str.startswith('MCU')").iloc[0]
    image = read_image(mixed_films / row["Image ID"])
    in_1024 = np.rint(to_model_frame(parse_landmarks(row["Landmarks"]), Geometry.for_shape(image.height, image.width)))
    pd.DataFrame([{"Image ID": row["Image ID"], "Landmarks": format_landmarks(in_1024)}]).to_csv(tmp_path / "p.csv", index=False)
    result, est = _estimate(tmp_path / "p.csv", [mixed_films / row["Image ID"]], tmp_path / "est.csv")
    assert result.exit_code == 0, result.output
    assert est.loc[0, "Estimated Dice Lungs"] == pytest.approx(float(row["Estimated Dice Lungs"]), abs=0.005)


def test_bad_rows_are_listed_and_the_others_estimated(rows, mixed_films, tmp_path):
    table = read_table(rows)
    good, ghost, no_heart = table.iloc[0].copy(), table.iloc[0].copy(), table.iloc[1].copy()
    ghost["Image ID"] = "GHOST.png"
    points = parse_landmarks(no_heart["Landmarks"])
    points[94:] = np.nan
    no_heart["Landmarks"] = format_landmarks(points)
    pd.DataFrame([good, ghost, no_heart]).to_csv(tmp_path / "bad.csv", index=False)
    result, est = _estimate(tmp_path / "bad.csv", [mixed_films], tmp_path / "est.csv", "--ids", _ids(tmp_path, ["JPCLN001.png", "GHOST.png", no_heart["Image ID"]]))
    assert result.exit_code == EXIT_FAILED
    assert list(est["Image ID"]) == [good["Image ID"]]
    errors = pd.read_csv(tmp_path / "est.errors.csv")
    reasons = dict(zip(errors["image_id"], errors["reason"]))
    assert "no unique image for id 'GHOST.png'" in reasons["GHOST.png"]
    assert "some are missing (NaN)" in reasons[no_heart["Image ID"]]
    assert len(errors) == 2  # with --ids, the film without a selected row is not an error


def _ids(folder, ids):
    path = folder / "ids.txt"
    path.write_text("\n".join(ids) + "\n")
    return str(path)
