"""Quality flag: toy cases of the Estimated Dice, uncertainty-guard and RCA rules, and errors."""

from __future__ import annotations

import pytest

from chexmask.flag import DEFAULT_MAX_UNCERTAINTY_PX, DEFAULT_MIN_DICE, DEFAULT_MIN_RCA, QualityFlag, quality_flag

GOOD = {"lungs": 0.97, "heart": 0.93}


@pytest.mark.parametrize(
    ("estimate", "rca", "u", "flag"),
    [
        (GOOD, None, None, "good"),
        ({"lungs": DEFAULT_MIN_DICE["lungs"], "heart": 0.93}, None, None, "good"),  # the threshold itself passes
        ({"lungs": DEFAULT_MIN_DICE["lungs"] - 0.001, "heart": 0.93}, None, None, "review"),
        ({"lungs": 0.97, "heart": DEFAULT_MIN_DICE["heart"] - 0.001}, None, None, "review"),
        (None, None, None, "unknown"),
        (None, 0.9, None, "good"),
        (None, 0.5, None, "review"),
        (GOOD, 0.5, None, "review"),  # RCA alone can flag
        (GOOD, None, DEFAULT_MAX_UNCERTAINTY_PX, "good"),
        (GOOD, None, DEFAULT_MAX_UNCERTAINTY_PX + 0.01, "review"),  # the uncertainty guard alone can flag
        (None, float("nan"), None, "unknown"),  # NaN RCA counts as absent
    ],
)
def test_flag_rules(estimate, rca, u, flag):
    result = quality_flag(estimate, rca, uncertainty_px=u)
    assert result.flag == flag
    assert result.columns() == {"Quality Flag": flag}
    assert result.reason


def test_flag_reads_rca_columns_and_reports_reason():
    cols = {"Dice RCA (Mean)": 0.6, "Dice RCA (Max)": 0.8}
    result = quality_flag(GOOD, cols)
    assert isinstance(result, QualityFlag)
    assert result.flag == "review" and result.rca == pytest.approx(0.6) and result.estimate == GOOD
    assert f"< {DEFAULT_MIN_RCA:g}" in result.reason
    assert "Estimated Dice Lungs 0.970 >=" in quality_flag(GOOD, 0.9).reason  # a passing check is said too


def test_flag_errors_name_the_parameter():
    with pytest.raises(ValueError, match="thresholds must be in"):
        quality_flag(GOOD, min_dice={"lungs": 1.5, "heart": 0.7})
    with pytest.raises(ValueError, match="thresholds must be in"):
        quality_flag(GOOD, min_rca=1.5)
    with pytest.raises(ValueError, match="estimate must give"):
        quality_flag({"lungs": 0.9})
    with pytest.raises(ValueError, match="Dice RCA \\(Mean\\)"):
        quality_flag(GOOD, {"Dice RCA (Max)": 0.9})
