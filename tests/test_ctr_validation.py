"""chexmask.quality.ctr_validation and `chexmask validate --ctr-report` (formerly `experiment ctr`): CTR vs the SCR expert masks on JSRT."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from chexmask.cli import app
from chexmask.model.weights import DEFAULT_MODEL, registry
from chexmask.quality.ctr_validation import ctr_agreement, validate_ctr

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def three(jsrt_dir):
    return validate_ctr(jsrt_dir, "test", limit=3)


def test_agreement_by_hand():
    a = ctr_agreement([0.45, 0.55, 0.52, 0.40, np.nan], [0.44, 0.53, 0.49, 0.42, 0.6])  # the NaN pair is left out
    assert a["n"] == 4 and a["mae"] == pytest.approx(0.02) and a["bias"] == pytest.approx(0.01)
    assert (a["tp"], a["fp"], a["fn"], a["tn"]) == (1, 1, 0, 2) and a["kappa"] == pytest.approx(0.5)
    assert a["loa_high"] - a["loa_low"] == pytest.approx(2 * 1.96 * np.std([0.01, 0.02, 0.03, -0.02], ddof=1))
    assert ctr_agreement([0.4, 0.6], [0.4, 0.6])["kappa"] == 1.0
    assert math.isnan(ctr_agreement([0.4, 0.45], [0.41, 0.42])["kappa"])  # all negative: chance agreement is 1
    with pytest.raises(ValueError, match="paired 1-D series"):
        ctr_agreement([0.4], [0.4, 0.5])


def test_three_jsrt_images(three):
    per_image, summary = three.per_image, three.summary.set_index("source")
    assert list(per_image["image_id"]) == ["JPCLN009", "JPCLN010", "JPCLN019"]  # the first of splits/test.txt
    assert per_image["ctr_scr"].between(0.35, 0.65).all()
    # the decomposition swaps one organ: its CTR is the predicted width over the expert one, or the reverse
    np.testing.assert_allclose(per_image["ctr_model_heart"], per_image["heart_width_model"] / per_image["thorax_width_scr"])
    np.testing.assert_allclose(per_image["ctr_model_lungs"], per_image["heart_width_scr"] / per_image["thorax_width_model"])
    assert summary.loc["landmarks", "mae"] < 0.01 and summary.loc["model", "mae"] < 0.05
    assert summary.loc["model", "n"] == 3 and summary.loc["model", ["tp", "fp", "fn", "tn"]].sum() == 3
    assert three.model == {"name": DEFAULT_MODEL, "sha256": registry()[DEFAULT_MODEL]["sha256"]}


def test_validate_writes_the_ctr_report_from_its_one_segmentation_pass(jsrt_dir, tiny_weights, tmp_path):
    result = CliRunner().invoke(app, ["validate", str(jsrt_dir), "--limit", "3", "--ctr-report", str(tmp_path / "r"),
                                      "--weights", str(tiny_weights), "-o", str(tmp_path / "scores.csv")])
    assert result.exit_code == 0, result.output
    assert "lungs_dice" in result.output and "landmarks" in result.output and "model_heart" in result.output
    record = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert record["model"]["name"] == str(tiny_weights) and record["images"] == 3
    per_image = pd.read_csv(tmp_path / "r" / "per_image.csv")
    assert len(per_image) == 3 and len(pd.read_csv(tmp_path / "scores.csv")) == 3
    assert (tmp_path / "r" / "ctr_bland_altman.png").stat().st_size > 10_000
    # the same numbers as the CTR validation on its own
    alone = validate_ctr(jsrt_dir, "test", weights=tiny_weights, device="cpu", limit=3).per_image
    pd.testing.assert_frame_equal(per_image, alone.reset_index(drop=True), check_dtype=False, atol=1e-9)


def test_the_former_experiment_ctr_still_works_with_a_note(jsrt_dir, tiny_weights, tmp_path):
    result = CliRunner().invoke(app, ["experiment", "ctr", str(jsrt_dir), "--limit", "3", "-o", str(tmp_path / "r"),
                                      "--weights", str(tiny_weights), "--figure", str(tmp_path / "fig" / "ba.png")])
    assert result.exit_code == 0, result.output
    assert "experiment ctr is now 'chexmask validate JSRT --ctr-report DIR'" in result.output
    assert "landmarks" in result.output and "model_heart" in result.output
    assert len(pd.read_csv(tmp_path / "r" / "per_image.csv")) == 3
    assert (tmp_path / "fig" / "ba.png").stat().st_size > 10_000
    assert "ctr" not in CliRunner().invoke(app, ["experiment", "--help"]).output.split("Commands:")[1]  # hidden


def test_bad_split_and_limit(jsrt_dir, tmp_path):
    runner = CliRunner()
    for command in (["experiment", "ctr", str(jsrt_dir), "-o", str(tmp_path)], ["validate", str(jsrt_dir), "--ctr-report", str(tmp_path)]):
        result = runner.invoke(app, [*command, "--split", "tset"])
        assert result.exit_code == 2 and "no such split file" in result.output
        result = runner.invoke(app, [*command, "--limit", "0"])
        assert result.exit_code == 2 and "--limit" in result.output


def test_a_source_without_scr_masks_is_an_input_error(tiny_weights, tmp_path):
    import cv2

    root = tmp_path / "lungs-only"
    for sub in ("images", "masks", "splits"):
        (root / sub).mkdir(parents=True)
    cv2.imwrite(str(root / "images" / "A.png"), np.full((64, 64), 100, np.uint8))
    cv2.imwrite(str(root / "masks" / "A.png"), np.full((64, 64), 255, np.uint8))
    (root / "splits" / "test.txt").write_text("A\n")
    result = CliRunner().invoke(app, ["validate", str(root), "--ctr-report", str(tmp_path / "r"), "--weights", str(tiny_weights)])
    assert result.exit_code == 2 and "no SCR masks of both lungs and the heart for A" in result.output
