"""One home per concept (issue 14): helpers, constants and the direction of imports.

Each concept (the mask columns, decoding a row's masks, the 1024-frame rescale, node
counts) is defined once and imported elsewhere. That data flows one way, with quality and
reports on top of inference, is checked by import-linter (tests/test_layers_contracts.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "chexmask"
#: Owned by other work (RCA, the network): not checked here.
_SKIP = ("model/", "quality/rca", "quality/registration", "weights/")


def _sources():
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if not rel.startswith(_SKIP):
            yield rel, path.read_text(encoding="utf-8")


def _code(text: str) -> str:
    """The text without docstrings and comments (a rough cut, enough for these checks)."""
    text = re.sub(r'"""(.|\n)*?"""', "", text)
    return re.sub(r"#.*", "", text)


def test_mask_columns_are_defined_once():
    from chexmask.formats import tables
    from chexmask.quality import table_comparison

    assert table_comparison.MASK_COLUMNS is tables.MASK_COLUMNS
    defined = [rel for rel, text in _sources() if re.search(r"^MASK_COLUMNS\b.*=", text, re.MULTILINE)]
    assert defined == ["formats/tables.py"]


@pytest.mark.parametrize("name", ["FLOAT_COLUMNS", "INT_COLUMNS"])
def test_typed_columns_are_defined_once(name):
    defined = [rel for rel, text in _sources() if re.search(rf"^_?{name}\b.*=", text, re.MULTILINE)]
    assert defined == ["formats/tables.py"]


def test_the_1024_frame_rescale_has_one_home():
    from chexmask.preprocess import to_1024_frame

    assert to_1024_frame(4.0, 2048, 1000) == 2.0
    with pytest.raises(ValueError, match="height=0"):
        to_1024_frame(1.0, 0, 10)
    pattern = re.compile(r"(?<!\w)1024(\.0)?\s*/\s*max\(")
    homes = [rel for rel, text in _sources() if pattern.search(_code(text))]
    assert homes == [], f"use chexmask.preprocess.to_1024_frame in {homes}"


def test_evaluate_decodes_masks_with_the_stream_helper(monkeypatch):
    import pandas as pd

    from chexmask.quality import table_comparison

    calls = []

    def spy(row, organs, *, source="row"):
        calls.append((tuple(organs), source))
        raise table_comparison.InputError(source, "spied")

    monkeypatch.setattr(table_comparison, "decode_masks", spy)
    row = pd.Series({"Right Lung": "1 2", "Left Lung": "1 2", "Heart": "1 2", "Height": 4, "Width": 4})
    problems: list = []
    assert table_comparison._masks(row, "t.csv row 1", problems) == dict.fromkeys(table_comparison.MASK_COLUMNS)
    assert [c[0] for c in calls] == [("right_lung",), ("left_lung",), ("heart",)]
    assert all(reason == "spied" for *_, reason in problems)


def test_node_counts_come_from_anatomy():
    counts = re.compile(r"(?<![\w.])(94|120|166|46)(?![\w.])")
    offenders = []
    for rel, text in _sources():
        if rel == "anatomy.py":
            continue
        for line in _code(text).splitlines():
            if counts.search(line) and "help=" not in line and "dpi=" not in line and "NOISE" not in line:
                offenders.append(f"{rel}: {line.strip()}")
    assert offenders == []


# The direction of imports (quality and reports on top of inference and the writers, reports on top
# of quality, quality reading sources through chexmask.io.layout rather than the training code, the
# Quality Flag rule applied by the row builder without the quality layer) is checked by import-linter:
# the contracts are [tool.importlinter] in pyproject.toml, run by tests/test_layers_contracts.py.


def test_segment_receives_its_annotate_hook_from_above(tmp_path, tiny_weights, xray_folder):
    """segment_dataset builds no RCA scorer itself: it calls the factory it is given with its model."""
    from chexmask.inference.pipeline import segment_dataset

    seen = []

    class Hook:
        def fingerprint(self):
            return {"hook": 1}

        def __call__(self, segmentation):
            seen.append(segmentation.image_id)
            return None

    def factory(segmenter):
        seen.append(type(segmenter).__name__)
        return Hook()

    run = segment_dataset([xray_folder / "JPCLN001.png"], tmp_path / "o.csv", weights=tiny_weights, uncertainty=0,
                          workers=0, progress=False, annotate=factory)
    assert run.segmented == 1 and seen == ["Segmenter", "JPCLN001.png"]


def test_errors_and_provenance_files_have_one_home():
    from chexmask.formats import records, runfiles

    assert runfiles.ERROR_COLUMNS == ["path", "error", "reason"]
    assert not any(hasattr(records, name) for name in ("ERROR_COLUMNS", "write_errors"))
    assert records.atomic_write is runfiles.atomic_write
    writers = [rel for rel, text in _sources() if re.search(r"writerow\(\[\"(row|id)\"", text)]
    assert writers == []


def test_rca_table_decodes_masks_with_the_stream_helper_in_the_rows_frame(monkeypatch):
    """RCA of a table decodes a row with the one helper, in the row's stated frame (empty = 1024), never the image's."""
    from types import SimpleNamespace

    from chexmask._errors import InputError
    from chexmask.formats import stream
    from chexmask.quality import rca_table

    calls = []
    monkeypatch.setattr(stream, "decode_masks", lambda row, organs, *, source="row": calls.append(source) or {})
    image = SimpleNamespace(height=2048, width=2048, path="big.png")
    with pytest.raises(InputError, match="masks are 1024x1024 .* big.png is 2048x2048"):
        rca_table._row_masks({"Height": "", "Width": "", "Heart": "1 2"}, image, "t.csv row 3")
    assert calls == []
    assert rca_table._row_masks({"Height": 2048, "Width": 2048}, image, "t.csv row 4") == {}
    assert calls == ["t.csv row 4"]


def test_atlas_latents_come_from_the_network_segment_runs(tiny_weights, jsrt_dir):
    """RCA picks references by latent distance: its latents are those of segment's own network (its backend)."""
    import numpy as np

    from chexmask.inference.segmenter import Segmenter
    from chexmask.io.read import read_image
    from chexmask.quality.atlas import latent_mean

    image = read_image(jsrt_dir / "images" / "JPCLN001.png")
    for backend in ("auto", "torch"):
        seg = Segmenter(tiny_weights, backend=backend)
        np.testing.assert_allclose(latent_mean(seg, image.pixels), seg.segment(image).latent_mu, atol=1e-6)
