"""The dataset pipeline (chexmask.inference.pipeline): rows, failures, determinism, resume, shards."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chexmask import ChexmaskError, InputError
from chexmask.formats.landmarks import parse_landmarks
from chexmask.formats.records import csv_columns, parquet_columns, segmentation_record
from chexmask.formats.tables import read_table, write_table
from chexmask.inference import pipeline
from chexmask.inference.pipeline import build_dataset, parse_shard, plan_items, segment_dataset
from chexmask.inference.segmenter import Segmenter
from chexmask.masks.fill import landmarks_to_masks
from chexmask.masks.rle import decode_rle
from chexmask.model.weights import sha256_file

GOOD = ["JPCLN001.png", "JPCLN002.png", "JPCLN003.png", "JPCLN004.png", "cropped.png"]
BAD = {"empty.jpg": "empty file", "notes.png": "not a PNG, JPEG or DICOM image"}


def run(weights, inputs, out, stop_after_chunks=None, **kw):
    options = dict(weights=weights, uncertainty=3, batch_size=3, workers=0, chunk_size=3, progress=False)
    options.update(kw)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "_stop_after_chunks", stop_after_chunks)  # the test hook: stop like a killed run
        return segment_dataset(inputs if isinstance(inputs, list) else [inputs], out, **options)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_weights, xray_folder):
    """One uninterrupted CSV run, shared by the comparisons below."""
    out = tmp_path_factory.mktemp("ref") / "ref.csv"
    summary = run(tiny_weights, xray_folder, out)
    return summary, out.read_bytes()


def test_rows_are_chexmask_rows_in_the_original_frame(reference, xray_folder):
    summary, _ = reference
    assert (summary.images, summary.segmented, summary.failed, summary.resumed) == (7, 5, 2, 0)
    df = read_table(summary.output)
    assert list(df.columns) == csv_columns("Image ID")
    assert list(df["Image ID"]) == sorted(GOOD)  # input order = sorted paths
    for _, row in df.iterrows():
        h, w = int(row["Height"]), int(row["Width"])
        assert (h, w) == ((1024, 800) if row["Image ID"] == "cropped.png" else (1024, 1024))
        points = parse_landmarks(row["Landmarks"])
        assert points.shape == (120, 2) and np.array_equal(points, np.rint(points))
        refilled = landmarks_to_masks(points, h, w)
        for organ, column in (("right_lung", "Right Lung"), ("left_lung", "Left Lung"), ("heart", "Heart")):
            mask = decode_rle(row[column], h, w)
            assert mask.any() and np.array_equal(mask > 0, refilled[organ] > 0)
        assert row["Dice RCA (Mean)"] == "" or np.isnan(row["Dice RCA (Mean)"])
        organs = [float(row[f"Uncertainty {o}"]) for o in ("Right Lung", "Left Lung", "Heart")]
        assert float(row["Uncertainty"]) > 0 and min(organs) > 0 and float(row["Latent Sigma"]) > 0


def test_bad_inputs_go_to_the_errors_file_and_run_json_records_provenance(reference, tiny_weights, xray_folder):
    summary, _ = reference
    errors = pd.read_csv(summary.errors, dtype=str)
    assert list(errors.columns) == ["path", "error", "reason"]
    assert {Path(p).name: r for p, r in zip(errors["path"], errors["reason"])} == BAD
    assert set(errors["error"]) == {"UnreadableImageError"}
    record = json.loads(summary.run_json.read_text())
    assert record["weights"]["sha256"] == sha256_file(tiny_weights)
    assert record["counts"] == {"images": 7, "segmented": 5, "failed": 2, "resumed": 0}
    assert record["chexmask"] and record["started"] <= record["finished"]
    assert record["command"] == "segment"
    from chexmask.formats.runfiles import RUN_KEYS

    assert list(record)[: len(RUN_KEYS)] == RUN_KEYS  # the provenance format of every command
    assert record["started"].endswith("+00:00") and record["finished"].endswith("+00:00")  # UTC
    assert not summary.output.with_name("ref.csv.parts").exists()


def test_rows_equal_the_segmenter_api(reference, tiny_weights, xray_folder):
    """uint8 transfer + worker preprocessing give the rows of the plain Segmenter path."""
    from chexmask.io.read import read_image

    seg = Segmenter(tiny_weights, uncertainty=3, micro_batch=8, batch_size=2)
    images = [dataclasses.replace(read_image(xray_folder / n), image_id=n) for n in sorted(GOOD)]  # ids seed the noise
    results = seg.segment_images(images)
    expected = [segmentation_record(r) for r in results]
    got = read_table(reference[0].output)
    for row, exp in zip(got.to_dict("records"), expected):
        assert row["Landmarks"] == exp["Landmarks"] and row["Heart"] == exp["Heart"]
        assert row["Image ID"] == exp["Image ID"] and float(row["Uncertainty"]) == exp["Uncertainty"]


def test_rows_do_not_depend_on_batch_size_order_or_workers(reference, tiny_weights, xray_folder, tmp_path):
    run(tiny_weights, xray_folder, tmp_path / "b1.csv", batch_size=1, chunk_size=7)
    assert (tmp_path / "b1.csv").read_bytes() == reference[1]
    run(tiny_weights, xray_folder, tmp_path / "w2.csv", batch_size=5, workers=2)
    assert (tmp_path / "w2.csv").read_bytes() == reference[1]


def test_resume_after_a_stop_gives_identical_bytes(reference, tiny_weights, xray_folder, tmp_path):
    out = tmp_path / "out.csv"
    partial = run(tiny_weights, xray_folder, out, stop_after_chunks=1)
    assert not partial.complete and not out.exists()
    parts = tmp_path / "out.csv.parts"
    assert sorted(p.name for p in parts.iterdir()) == ["manifest.json", "part-000000.parquet"]
    (parts / ".part-000001.parquet.tmp").write_bytes(b"half-written by a killed run")
    resumed = run(tiny_weights, xray_folder, out)
    assert resumed.resumed == 3 and resumed.segmented == 5
    assert out.read_bytes() == reference[1]
    assert not parts.exists()
    again = run(tiny_weights, xray_folder, out)  # complete: nothing to do
    assert again.resumed == 7 and out.read_bytes() == reference[1]


def test_resume_after_losing_the_last_part(reference, tiny_weights, xray_folder, tmp_path):
    out = tmp_path / "out.csv"
    run(tiny_weights, xray_folder, out, stop_after_chunks=2)
    (tmp_path / "out.csv.parts" / "part-000001.parquet").unlink()  # as if killed while writing it
    assert run(tiny_weights, xray_folder, out).resumed == 3
    assert out.read_bytes() == reference[1]


def test_resume_refuses_parts_of_another_run(tiny_weights, xray_folder, tmp_path):
    out = tmp_path / "out.csv"
    run(tiny_weights, xray_folder, out, stop_after_chunks=1)
    with pytest.raises(ChexmaskError, match=r"other settings \(differs in: uncertainty\).*delete the folder"):
        run(tiny_weights, xray_folder, out, uncertainty=0)


def test_resume_refuses_parts_made_under_another_quality_estimate(tiny_weights, xray_folder, tmp_path, monkeypatch):
    """Rows of one output never mix two estimates: a refit estimator (or new flag thresholds) is another run."""
    import chexmask.inference.provenance as provenance

    out = tmp_path / "out.csv"
    run(tiny_weights, xray_folder, out, stop_after_chunks=1)
    monkeypatch.setattr(provenance, "estimator_sha256", lambda: "0" * 64)
    with pytest.raises(ChexmaskError, match=r"differs in: estimator_sha256"):
        run(tiny_weights, xray_folder, out)


def test_shards_partition_the_rows(reference, tiny_weights, xray_folder, tmp_path):
    rows = []
    for i in range(3):
        out = tmp_path / f"s{i}.csv"
        run(tiny_weights, xray_folder, out, shard=f"{i}/3")
        rows.append(pd.read_csv(out, dtype=str, keep_default_na=False))
    merged = pd.concat(rows).sort_values("Image ID").reset_index(drop=True)
    full = pd.read_csv(reference[0].output, dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(merged, full)
    shards = [plan_items([xray_folder], (i, 3)) for i in range(3)]
    assert sorted(it for s in shards for it in s) == plan_items([xray_folder])
    assert shards == [plan_items([xray_folder], (i, 3)) for i in range(3)]  # deterministic


@pytest.mark.parametrize(
    ("text", "match"),
    [("2", "must look like I/N"), ("3/3", "0 <= I < N"), ("-1/2", "0 <= I < N"), ("a/b", "must look like I/N")],
)
def test_bad_shard(text, match):
    with pytest.raises(ValueError, match=match):
        parse_shard(text)


def test_parquet_holds_the_arrays_and_the_model(reference, tiny_weights, xray_folder, tmp_path):
    out = tmp_path / "out.parquet"
    run(tiny_weights, xray_folder, out)
    df = pd.read_parquet(out)
    assert list(df.columns) == parquet_columns("Image ID")
    assert set(df["Model SHA256"]) == {sha256_file(tiny_weights)}
    assert all(len(v) == 240 for v in df["Node Std"]) and all(len(v) == 64 for v in df["Latent Mu"])
    std = np.stack(df["Node Std"]).reshape(len(df), 120, 2)
    assert np.allclose(np.sqrt((std**2).sum(-1)).mean(1), df["Uncertainty"], atol=1e-4)
    csv = pd.read_csv(reference[0].output, dtype=str, keep_default_na=False)
    assert list(df["Landmarks"]) == list(csv["Landmarks"]) and list(df["Heart"]) == list(csv["Heart"])
    back = read_table(out)  # the CheXmask reader takes it
    assert list(back["Image ID"]) == sorted(GOOD)


def test_csv_round_trips_through_the_table_writer(reference, tmp_path):
    write_table(read_table(reference[0].output), tmp_path / "again.csv")
    assert (tmp_path / "again.csv").read_bytes() == reference[1]


def test_without_uncertainty_the_summary_is_empty_but_latent_sigma_stays(tiny_weights, xray_folder, tmp_path):
    out = tmp_path / "out.csv"
    run(tiny_weights, [xray_folder / "JPCLN001.png"], out, uncertainty=0, id_column="Image Index")
    row = pd.read_csv(out, dtype=str, keep_default_na=False).iloc[0]
    assert row["Image Index"] == "JPCLN001.png"
    assert row["Uncertainty"] == "" and row["Uncertainty Heart"] == "" and float(row["Latent Sigma"]) > 0


def test_every_input_failing_still_writes_the_tables(tiny_weights, xray_folder, tmp_path):
    out = tmp_path / "out.csv"
    summary = run(tiny_weights, [xray_folder / "notes.png", xray_folder / "empty.jpg"], out)
    assert (summary.segmented, summary.failed) == (0, 2)
    assert out.read_text().splitlines() == [",".join(csv_columns("Image ID"))]


def test_ids_keep_subfolders(tiny_weights, xray_folder, tmp_path):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        shutil.copy(xray_folder / "JPCLN001.png", tmp_path / sub / "view.png")
    assert [it.image_id for it in plan_items([tmp_path])] == ["a/view.png", "b/view.png"]


@pytest.mark.parametrize(
    ("kw", "exc", "match"),
    [
        ({"out": "x.txt"}, ValueError, r"must end in \.csv or \.parquet"),
        ({"workers": -1}, ValueError, "--workers must be >= 0"),
        ({"chunk_size": 0}, ValueError, "--chunk-size must be >= 1"),
        ({"engine": "spark"}, ValueError, "--engine 'spark'"),
        ({"batch_size": 0}, ValueError, "--batch-size must be >= 1"),
        ({"inputs": ["nowhere"]}, InputError, "nowhere: no such file or folder"),
    ],
)
def test_bad_options(tiny_weights, xray_folder, tmp_path, kw, exc, match):
    inputs = kw.pop("inputs", [xray_folder])
    out = tmp_path / kw.pop("out", "out.csv")
    with pytest.raises(exc, match=match):
        run(tiny_weights, inputs, out, **kw)


def test_build_dataset_with_an_existing_segmenter(tiny_weights, xray_folder, tmp_path):
    seg = Segmenter(tiny_weights, uncertainty=0, batch_size=4, micro_batch=8)
    summary = build_dataset(seg, [xray_folder], tmp_path / "o.csv", progress=False, chunk_size=100)
    assert (summary.segmented, summary.failed) == (5, 2)


def test_measure_columns_follow_the_chexmask_ones_and_match_the_masks(reference):
    from chexmask.measures import MEASURE_COLUMNS, measure_masks, measure_record

    df = pd.read_csv(reference[0].output, dtype=str, keep_default_na=False)
    columns = list(df.columns)
    assert columns.index("CTR") > columns.index("Width") and columns[-len(MEASURE_COLUMNS):] == MEASURE_COLUMNS
    for _, row in df.iterrows():
        h, w = int(row["Height"]), int(row["Width"])
        masks = {o: decode_rle(row[c], h, w) for o, c in (("right_lung", "Right Lung"), ("left_lung", "Left Lung"), ("heart", "Heart"))}
        expected = measure_record(measure_masks(masks))
        assert float(row["CTR"]) == expected["CTR"] and int(row["Heart Area (px)"]) == expected["Heart Area (px)"]
        assert int(row["Thorax Width (px)"]) == expected["Thorax Width (px)"]
        assert row["Heart Width (mm)"] == "" and row["Row Spacing (mm)"] == ""  # PNGs have no pixel spacing


def test_dicom_pixel_spacing_gives_the_mm_columns(tiny_weights, jsrt_dir, tmp_path):
    import cv2
    from sources_fixtures import make_dicom

    pixels = cv2.imread(str(jsrt_dir / "images" / "JPCLN001.png"), cv2.IMREAD_UNCHANGED)
    ds = make_dicom(pixels.astype(np.uint16) * 16, PixelSpacing=[0.3, 0.2])
    ds.save_as(tmp_path / "cxr.dcm", enforce_file_format=True)
    for out in (tmp_path / "o.csv", tmp_path / "o.parquet"):
        run(tiny_weights, [tmp_path / "cxr.dcm"], out, uncertainty=0)
        row = read_table(out).iloc[0] if out.suffix == ".csv" else pd.read_parquet(out).iloc[0]
        assert float(row["Row Spacing (mm)"]) == 0.3 and float(row["Column Spacing (mm)"]) == 0.2
        assert float(row["Heart Width (mm)"]) == pytest.approx(int(row["Heart Width (px)"]) * 0.2, abs=1e-4)
        assert float(row["Left Lung Height (mm)"]) == pytest.approx(int(row["Left Lung Height (px)"]) * 0.3, abs=1e-4)
        assert float(row["Heart Area (mm2)"]) == pytest.approx(int(row["Heart Area (px)"]) * 0.06, abs=1e-4)
    parquet = pd.read_parquet(tmp_path / "o.parquet")
    assert str(parquet["Heart Area (px)"].dtype) == "int64" and str(parquet["CTR"].dtype) == "float64"


def test_segmentation_measures_are_the_row_measures(tiny_weights, xray_folder):
    from chexmask.io.read import read_image
    from chexmask.measures import measure_masks, measure_record

    seg = Segmenter(tiny_weights).segment(read_image(xray_folder / "JPCLN001.png"))
    m = seg.measures()
    assert m["Heart Area (px)"] == measure_record(measure_masks(seg.masks()))["Heart Area (px)"] and np.isnan(m["Heart Width (mm)"])
    assert seg.measures((0.5, 0.5))["Heart Width (mm)"] == m["Heart Width (px)"] * 0.5
    assert segmentation_record(seg, pixel_spacing=(0.5, 0.5))["CTR"] == round(m["CTR"], 4)


def test_the_pipeline_is_split_by_job_and_keeps_its_public_names():
    """Planning, stages, engines and provenance live in modules of their own, each under ~400 lines."""
    import inspect

    from chexmask.inference import local_engine, plan, provenance, stages

    for module in (pipeline, plan, stages, local_engine, provenance):
        assert len(inspect.getsource(module).splitlines()) < 400, module.__name__
    assert pipeline.plan_items is plan.plan_items and pipeline.load_item is stages.load_item
    assert "_stop_after_chunks" not in inspect.signature(build_dataset).parameters  # a module-level test hook
    assert {"MICRO_BATCH", "RunSummary", "check_output", "build_dataset", "segment_dataset"} <= set(pipeline.__all__)


def test_without_workers_each_chunk_is_written_before_the_next_is_predicted(tiny_weights, xray_folder, tmp_path, monkeypatch):
    """Peak memory holds one chunk's rows: without worker processes nothing builds rows in the
    background, so a chunk's part is written before the next chunk's first prediction."""
    from chexmask.formats.records import PartStore
    from chexmask.inference import local_engine

    events = []
    predict, write = local_engine.predict_segmentations, PartStore.write
    monkeypatch.setattr(local_engine, "predict_segmentations", lambda seg, batch: events.append("predict") or predict(seg, batch))
    monkeypatch.setattr(PartStore, "write", lambda self, chunk, rows: events.append(f"write {chunk}") or write(self, chunk, rows))
    run(tiny_weights, xray_folder, tmp_path / "o.csv", batch_size=2, chunk_size=2)
    # 7 inputs in chunks of 2; the last chunk holds only an unreadable file (nothing to predict)
    assert events == ["predict", "write 0", "predict", "write 1", "predict", "write 2", "write 3"]
