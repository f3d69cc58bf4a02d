"""One image, one answer: results depend on the pixels, the weights and the seed only.

The same JSRT image under two names in two folders must give the same landmarks, masks,
uncertainty (``Landmarks (Std)`` too), Estimated Dice and Quality Flag through the API, the
dataset pipeline (CLI) and the web demo (the Ray engine writes the local engine's bytes: test_ray.py).
"""

from __future__ import annotations

import dataclasses
import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chexmask.anatomy import N_NODES
from chexmask.formats.landmarks import format_node_std
from chexmask.formats.tables import read_table
from chexmask.inference.pipeline import segment_dataset
from chexmask.inference.segmenter import Segmenter

SAMPLE_JPEG = Path(__file__).resolve().parents[1] / "src" / "chexmask" / "samples" / "00cfd1c1.jpg"


@pytest.fixture(scope="module", params=["png", "jpeg"])
def copies(request, tmp_path_factory, jsrt_dir):
    """One image under two names in two folders: JPCLN003.png, or the bundled 2000-px JPEG sample
    (whose model frame is decoded at 1/4 scale, :mod:`chexmask.io.model_frame`)."""
    source = jsrt_dir / "images" / "JPCLN003.png" if request.param == "png" else SAMPLE_JPEG
    root = tmp_path_factory.mktemp("copies")
    first, second = root / "a" / source.name, root / "b" / "deeper" / f"other name{source.suffix}"
    for path in (first, second):
        path.parent.mkdir(parents=True)
        shutil.copy(source, path)
    return first, second


def test_same_pixels_same_answer_everywhere(copies, tiny_weights, tmp_path):
    seg = Segmenter(tiny_weights, uncertainty=6, seed=3)
    api = [seg.segment(p) for p in copies]
    assert [a.image_id for a in api] == [p.name for p in copies]  # the id segment and the demo give a lone file
    from chexmask.io.read import read_image

    read = [seg.segment(read_image(p)) for p in copies]  # read first: the same id and answer
    assert [r.image_id for r in read] == [p.name for p in copies]
    assert [r.image_id for r in seg.segment_images([read_image(p) for p in copies])] == [p.name for p in copies]
    np.testing.assert_array_equal(read[0].landmarks, api[0].landmarks)
    renamed = dataclasses.replace(read_image(copies[0]), image_id="study 7")  # an id set by the caller is kept
    assert seg.segment(renamed).image_id == "study 7"
    np.testing.assert_array_equal(api[0].node_std, api[1].node_std)
    np.testing.assert_array_equal(api[0].landmarks, api[1].landmarks)

    # the pipeline over each copy's grandparent (ids are paths relative to the images' common folder)
    values = []
    for k, path in enumerate(copies):
        out = tmp_path / f"run{k}.csv"
        segment_dataset([path.parent.parent], out, weights=tiny_weights, uncertainty=6, seed=3, workers=0, progress=False)
        values.append(read_table(out).iloc[0])
    first, second = copies
    # run 0 found both copies; run 1 only the second, named as the API names it
    assert (values[0]["Image ID"], values[1]["Image ID"]) == (first.relative_to(first.parent.parent).as_posix(), api[1].image_id)
    assert values[0]["Uncertainty"] == values[1]["Uncertainty"]
    assert float(values[0]["Uncertainty"]) == pytest.approx(api[0].uncertainty, abs=1e-4)
    assert values[0]["Landmarks"] == values[1]["Landmarks"]
    assert values[0]["Heart"] == values[1]["Heart"]
    # Landmarks (Std): the API's node std (float32, as Parquet's Node Std) in CheXmask-U's text
    assert values[0]["Landmarks (Std)"] == values[1]["Landmarks (Std)"] != ""
    assert values[0]["Landmarks (Std)"] == format_node_std(api[0].node_std.astype(np.float32)[:N_NODES])
    estimate = api[0].quality_estimate()
    for k, organ in enumerate(("Lungs", "Heart")):
        assert values[0][f"Estimated Dice {organ}"] == values[1][f"Estimated Dice {organ}"]
        assert float(values[0][f"Estimated Dice {organ}"]) == pytest.approx(estimate.dice[organ.lower()], abs=1e-4)
    assert values[0]["Quality Flag"] == estimate.flag().flag

    # the web demo
    from fastapi.testclient import TestClient

    from chexmask.app.server import create_app
    from chexmask.app.upload import safe_name

    client = TestClient(create_app(seg))
    demo = []
    for path in copies:
        mime = "image/png" if path.suffix == ".png" else "image/jpeg"
        r = client.post("/api/segment", files={"file": (path.name, path.read_bytes(), mime)}).json()
        assert r["image_id"] == safe_name(path.name)  # the upload's file name, in safe characters
        row = pd.read_csv(io.BytesIO(zipfile.ZipFile(io.BytesIO(client.get(r["download"]).content)).read("chexmask.csv")),
                          dtype=str, keep_default_na=False).iloc[0]
        demo.append((r["uncertainty"], row["Landmarks"], row["Heart"], row["Uncertainty"], row["Estimated Dice Lungs"], row["Quality Flag"],
                     row["Landmarks (Std)"]))
    assert demo[0] == demo[1]
    assert demo[0][6] == values[0]["Landmarks (Std)"]
    assert demo[0][0] == pytest.approx(api[0].uncertainty)
    assert demo[0][1:3] == (values[0]["Landmarks"], values[0]["Heart"])
    assert demo[0][3] == values[0]["Uncertainty"]
    assert demo[0][4:6] == (values[0]["Estimated Dice Lungs"], values[0]["Quality Flag"])


def test_other_seed_other_samples(copies, tiny_weights):
    a = Segmenter(tiny_weights, uncertainty=6, seed=3).segment(copies[0])
    b = Segmenter(tiny_weights, uncertainty=6, seed=4).segment(copies[0])
    assert not np.array_equal(a.node_std, b.node_std)
