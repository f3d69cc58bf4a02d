"""Quality flag: toy cases of the uncertainty and RCA rules, the 1024-frame rescaling, errors."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from chexmask.flag import (
    DEFAULT_MIN_RCA,
    DEFAULT_THRESHOLD_PX,
    QualityFlag,
    normalised_uncertainty,
    quality_flag,
)
from chexmask.quality.flag_calibration import calibrate_threshold


def _seg(u, h=1024, w=1024):
    return SimpleNamespace(uncertainty=u, height=h, width=w)


def test_normalised_uncertainty_rescales_to_1024_frame():
    assert normalised_uncertainty(4.0, 2048, 1000) == pytest.approx(2.0)
    assert normalised_uncertainty(4.0, 512, 256) == pytest.approx(8.0)
    assert normalised_uncertainty(None, 10, 10) is None
    with pytest.raises(ValueError, match="height=0"):
        normalised_uncertainty(1.0, 0, 10)


@pytest.mark.parametrize(
    ("u", "rca", "flag"),
    [
        (1.0, None, "good"),
        (DEFAULT_THRESHOLD_PX, None, "good"),  # the threshold itself passes
        (DEFAULT_THRESHOLD_PX + 0.01, None, "review"),
        (None, None, "unknown"),
        (None, 0.9, "good"),
        (None, 0.5, "review"),
        (1.0, 0.5, "review"),  # RCA alone can flag
        (DEFAULT_THRESHOLD_PX * 3, 0.95, "review"),  # uncertainty alone can flag
        (None, float("nan"), "unknown"),  # NaN RCA counts as absent
    ],
)
def test_flag_rules(u, rca, flag):
    result = quality_flag(_seg(u), rca)
    assert result.flag == flag
    assert result.columns() == {"Quality Flag": flag}
    assert result.reason


def test_flag_is_size_independent():
    # the same relative uncertainty on a 2048 image and a 512 image
    big = quality_flag(_seg(2 * 6.0, 2048, 2048), threshold_px=7.0)
    small = quality_flag(_seg(6.0 / 2, 512, 512), threshold_px=7.0)
    assert big.flag == small.flag == "good"
    assert big.uncertainty_px == pytest.approx(6.0) and small.uncertainty_px == pytest.approx(6.0)


def test_flag_reads_rca_columns_and_reports_reason():
    cols = {"Dice RCA (Mean)": 0.6, "Dice RCA (Max)": 0.8}
    result = quality_flag(_seg(1.0), cols)
    assert isinstance(result, QualityFlag)
    assert result.flag == "review" and result.rca == pytest.approx(0.6)
    assert f"< {DEFAULT_MIN_RCA:g}" in result.reason


def test_flag_errors_name_the_parameter():
    with pytest.raises(ValueError, match="threshold_px must be > 0"):
        quality_flag(_seg(1.0), threshold_px=0)
    with pytest.raises(ValueError, match="min_rca must be in"):
        quality_flag(_seg(1.0), min_rca=1.5)
    with pytest.raises(ValueError, match="Dice RCA \\(Mean\\)"):
        quality_flag(_seg(1.0), {"Dice RCA (Max)": 0.9})


def test_calibrate_threshold_quantile_rounded_up():
    assert calibrate_threshold([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert calibrate_threshold([1.0, 1.1, math.nan], 0.5) == 1.5  # NaN ignored, 1.05 -> 1.5
    values = list(range(1, 101))
    t = calibrate_threshold(values, 0.95)
    assert sum(v > t for v in values) <= 5
    with pytest.raises(ValueError, match="quantile"):
        calibrate_threshold([1.0], 1.0)
    with pytest.raises(ValueError, match="finite"):
        calibrate_threshold([math.nan])


def test_threshold_experiment_pools_the_sources(tiny_weights, jsrt_dir, tmp_path):
    from typer.testing import CliRunner

    from chexmask.cli import app

    for name in ("images",):
        (tmp_path / name).symlink_to(jsrt_dir / name)
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "val.txt").write_text("\n".join((jsrt_dir / "splits" / "val.txt").read_text().split()[:3]))
    res = CliRunner().invoke(app, ["experiment", "threshold", str(tmp_path), "--weights", str(tiny_weights), "--uncertainty", "3",
                                   "-o", str(tmp_path / "u.csv")])
    assert res.exit_code == 0, res.output
    import pandas as pd

    table = pd.read_csv(tmp_path / "u.csv")
    assert len(table) == 3 and (table["uncertainty_px"] > 0).all()
    assert "threshold" in res.output
