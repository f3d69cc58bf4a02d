"""Golden test: the shipped default model's results on fixed images do not move silently.

The pinned numbers are tests/golden/default_model.json, written by tests/golden/make_golden.py
(whose functions this test calls, so both compute the same things): the 120 landmarks (within
0.5 px) and mean node uncertainty (within 0.05 px) of ``Segmenter(uncertainty=50, seed=0)`` on
the bundled sample, the shared sample JPEGs and two JSRT val images, and the CSV of
``chexmask segment --sample``: its exact columns, and its Landmarks (1 px), Height, Width, CTR
(0.005), Estimated Dice (0.005) and Quality Flag. Images of the shared data folder skip when it is absent.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
GOLDEN_FILE = HERE / "golden" / "default_model.json"
GOLDEN = json.loads(GOLDEN_FILE.read_text())
REGENERATE = ("if this change of results is intended, rerun python tests/golden/make_golden.py and commit the JSON "
              "(tests/golden/default_model.json) with the change that caused it")

LANDMARKS_PX = 0.5
UNCERTAINTY_PX = 0.05
CLI_LANDMARKS_PX = 1.0
CTR_TOL = 0.005


def _load_maker():
    spec = importlib.util.spec_from_file_location("chexmask_make_golden", HERE / "golden" / "make_golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_golden = _load_maker()


def _model_note(info: dict) -> str:
    pinned = GOLDEN["model"]
    if info["sha256"] == pinned["sha256"]:
        return ""
    return f" (the default model is now {info.get('name')} sha256 {info['sha256'][:12]}, the JSON pins {pinned['name']} {pinned['sha256'][:12]})"


def _check_points(what: str, got, want, tol: float, note: str = "") -> None:
    got, want = np.asarray(got, float), np.asarray(want, float)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, pinned {want.shape}{note}; {REGENERATE}"
    err = np.abs(got - want).max(axis=1)
    worst = int(err.argmax())
    assert err[worst] <= tol, (f"{what}: {int((err > tol).sum())} nodes moved more than {tol} px, node {worst} by "
                               f"{err[worst]:.3f} px ({want[worst].tolist()} -> {got[worst].tolist()}){note}; {REGENERATE}")


@pytest.fixture(scope="module")
def segmenter():
    return make_golden.make_segmenter()


@pytest.mark.parametrize("key", list(GOLDEN["images"]))
def test_default_model_landmarks_and_uncertainty_are_pinned(key, segmenter, request):
    entry = GOLDEN["images"][key]
    data = None
    if entry["source"] == "shared":
        data = request.getfixturevalue("shared_data")  # skips when the shared folder is absent
        if not (data / entry["path"]).exists():
            pytest.skip(f"shared image not found at {data / entry['path']} (set CHEXMASK_SHARED to the shared/ folder)")
    got = make_golden.segment(segmenter, make_golden.image_path(entry, data))
    note = _model_note(segmenter.info)
    assert (got["height"], got["width"]) == (entry["height"], entry["width"]), f"{key}: size{note}; {REGENERATE}"
    _check_points(f"{key} landmarks", got["landmarks"], entry["landmarks"], LANDMARKS_PX, note)
    assert abs(got["uncertainty"] - entry["uncertainty"]) <= UNCERTAINTY_PX, (
        f"{key}: Uncertainty {got['uncertainty']:.4f} px, pinned {entry['uncertainty']:.4f} px "
        f"(tolerance {UNCERTAINTY_PX}){note}; {REGENERATE}")


def test_segment_sample_command_writes_the_pinned_table(tmp_path):
    pinned = GOLDEN["cli_sample"]
    assert pinned["args"] == make_golden.CLI_ARGS, f"the pinned command differs from make_golden.CLI_ARGS; {REGENERATE}"
    got = make_golden.run_cli_sample(tmp_path)
    added = [c for c in got["columns"] if c not in pinned["columns"]]
    removed = [c for c in pinned["columns"] if c not in got["columns"]]
    assert got["columns"] == pinned["columns"], (
        f"chexmask segment --sample wrote other columns: added {added}, removed {removed}"
        f"{', or in another order' if not (added or removed) else ''}; {REGENERATE}")
    want, values = pinned["values"], got["values"]
    _check_points("chexmask segment --sample Landmarks", values["Landmarks"], want["Landmarks"], CLI_LANDMARKS_PX)
    for column in ("Height", "Width", "Quality Flag"):
        assert values[column] == want[column], f"chexmask segment --sample {column}: {values[column]!r}, pinned {want[column]!r}; {REGENERATE}"
    for column in ("CTR", "Estimated Dice Lungs", "Estimated Dice Heart"):
        assert abs(values[column] - want[column]) <= CTR_TOL, (
            f"chexmask segment --sample {column}: {values[column]}, pinned {want[column]} (tolerance {CTR_TOL}); {REGENERATE}")
