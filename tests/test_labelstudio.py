"""Label Studio round trip: export tasks, a Label Studio-shaped export back to a physician CSV.

The exports used here follow Label Studio's documented JSON export format (a list of
tasks; each with ``data``, ``annotations`` whose ``result`` holds regions with
``original_width``/``original_height`` and ``value.points`` in percent, ``predictions``
with ``model_version``/``score``). When ``label-studio-sdk`` is importable, the
labeling config and predictions are also validated by its ``LabelInterface``.
"""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from chexmask import InputError
from chexmask.anatomy import N_NODES, organ_slices
from chexmask.cli import app
from chexmask.formats.labelstudio_corrections import import_corrections, read_corrections
from chexmask.formats.labelstudio_tasks import export_tasks, labeling_config, make_task
from chexmask.formats.landmarks import format_landmarks, parse_landmarks
from chexmask.formats.tables import read_table, write_table
from chexmask.masks.fill import landmarks_to_masks
from chexmask.masks.rle import decode_rle, encode_rle


def _contours(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Ellipse-like organ contours (non-integer) inside a (height, width) image."""
    rng = np.random.default_rng(seed)
    centres = {"right_lung": (0.3, 0.5), "left_lung": (0.7, 0.5), "heart": (0.55, 0.65)}
    radii = {"right_lung": (0.15, 0.3), "left_lung": (0.15, 0.3), "heart": (0.12, 0.1)}
    pts = np.zeros((N_NODES, 2))
    for organ, part in organ_slices().items():
        n = part.stop - part.start
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        cx, cy = centres[organ]
        rx, ry = radii[organ]
        pts[part, 0] = width * (cx + rx * np.cos(t)) + rng.uniform(-2, 2, n)
        pts[part, 1] = height * (cy + ry * np.sin(t)) + rng.uniform(-2, 2, n)
    return pts


def ls_export(tasks: list[dict], edit=None, *, start_id: int = 1) -> list[dict]:
    """What Label Studio's "JSON" export gives after reviewers accept the predictions.

    Each task gets an id, Label Studio's bookkeeping fields, and one annotation whose
    result copies the prediction (as the editor does when a prediction is accepted),
    optionally changed by ``edit(result, task_index)``.
    """
    out = []
    for i, task in enumerate(tasks):
        task_id = start_id + i
        result = copy.deepcopy(task["predictions"][0]["result"])
        for n, region in enumerate(result):
            region["id"] = f"r{task_id}x{n}"
            region["origin"] = "prediction"
        if edit is not None:
            edit(result, i)
        out.append(
            {
                "id": task_id,
                "annotations": [
                    {
                        "id": 100 + task_id,
                        "completed_by": {"id": 1, "email": "reviewer@example.org", "first_name": "", "last_name": ""},
                        "result": result,
                        "was_cancelled": False,
                        "ground_truth": False,
                        "created_at": "2026-11-28T10:00:00.000000Z",
                        "updated_at": "2026-11-28T10:05:00.000000Z",
                        "draft_created_at": None,
                        "lead_time": 42.5,
                        "prediction": copy.deepcopy(task["predictions"][0]),
                        "result_count": 0,
                        "unique_id": f"u{task_id}",
                        "import_id": None,
                        "last_action": "prediction",
                        "task": task_id,
                        "project": 7,
                        "updated_by": 1,
                        "parent_prediction": 200 + task_id,
                        "parent_annotation": None,
                        "last_created_by": None,
                    }
                ],
                "file_upload": "tasks.json",
                "drafts": [],
                "predictions": [200 + task_id],
                "data": task["data"],
                "meta": {},
                "created_at": "2026-11-28T09:00:00.000000Z",
                "updated_at": "2026-11-28T10:05:00.000000Z",
                "inner_id": task_id,
                "total_annotations": 1,
                "cancelled_annotations": 0,
                "total_predictions": 1,
                "comment_count": 0,
                "unresolved_comment_count": 0,
                "last_comment_updated_at": None,
                "project": 7,
                "updated_by": 1,
                "comment_authors": [],
            }
        )
    return out


@pytest.fixture
def table(tmp_path: Path) -> tuple[Path, Path, pd.DataFrame]:
    """A CheXmask table of three images of different sizes, with their (blank) images."""
    import cv2

    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    rows = []
    for k, (name, h, w) in enumerate([("a.png", 300, 250), ("sub/b c.png", 256, 320), ("c.png", 200, 200)]):
        cv2.imwrite(str(images / name), np.zeros((h, w), np.uint8))
        pts = _contours(h, w, seed=k)
        masks = landmarks_to_masks(np.rint(pts), h, w)
        rows.append(
            {
                "ImageID": name,
                "Dice RCA (Mean)": [0.91, 0.62, np.nan][k],
                "Dice RCA (Max)": [0.93, 0.70, np.nan][k],
                "Landmarks": format_landmarks(pts),
                "Left Lung": encode_rle(masks["left_lung"]),
                "Right Lung": encode_rle(masks["right_lung"]),
                "Heart": encode_rle(masks["heart"]),
                "Height": h,
                "Width": w,
                "Uncertainty": [1.0, 2.0, 3.5][k],
            }
        )
    df = pd.DataFrame(rows)
    path = tmp_path / "table.csv"
    write_table(df, path)
    return path, images, read_table(path)


def test_config_is_valid_xml_matching_the_tasks():
    root = ET.fromstring(labeling_config())
    image = root.find("Image")
    polys = root.find("PolygonLabels")
    assert image.get("name") == polys.get("toName") == "image"
    assert image.get("value") == "$image"
    assert [label.get("value") for label in polys.findall("Label")] == ["Right Lung", "Left Lung", "Heart"]


def test_make_task_uses_percent_of_original_size():
    pts = np.full((N_NODES, 2), np.nan)
    pts[:44] = [50.0, 30.0]
    pts[:2] = [[0.0, 0.0], [200.0, 100.0]]
    task = make_task("u", "img", pts, height=100, width=200, score=0.5)
    (region,) = task["predictions"][0]["result"]  # all-NaN organs are left out
    assert region["value"]["points"][:3] == [[0.0, 0.0], [100.0, 100.0], [25.0, 30.0]]
    assert region["value"]["polygonlabels"] == ["Right Lung"]
    assert (region["original_width"], region["original_height"]) == (200, 100)
    assert task["predictions"][0]["score"] == 0.5
    assert "score" not in make_task("u", "img", pts, 100, 200, score=float("nan"))["predictions"][0]


def test_export_writes_tasks_config_and_scores(table, tmp_path):
    path, images, df = table
    out = tmp_path / "ls" / "tasks.json"
    config = export_tasks(path, images, out, url_prefix="/data/local-files/?d=")
    assert config == out.with_suffix(".xml") and config.read_text() == labeling_config()
    tasks = json.loads(out.read_text())
    assert [t["data"]["image_id"] for t in tasks] == ["a.png", "sub/b c.png", "c.png"]
    assert tasks[1]["data"]["image"] == "/data/local-files/?d=sub/b%20c.png"
    # RCA when present, else 1 / (1 + uncertainty in a 1024 frame): ascending sort = worst first.
    scores = [t["predictions"][0]["score"] for t in tasks]
    assert scores == [0.91, 0.62, pytest.approx(1 / (1 + 3.5 * 1024 / 200))]
    assert all(0 <= s <= 1 for s in scores)
    assert min(range(3), key=scores.__getitem__) == 2


def test_export_scores_by_the_estimated_dice_first(table, tmp_path):
    """The Estimated Dice (the lower organ) ranks rows before RCA and uncertainty; rows without both fall back."""
    path, images, df = table
    df["Estimated Dice Lungs"] = [0.95, 0.97, np.nan]
    df["Estimated Dice Heart"] = [0.88, 0.99, 0.90]
    write_table(df, tmp_path / "est.csv")
    out = tmp_path / "tasks.json"
    export_tasks(tmp_path / "est.csv", images, out)
    scores = [t["predictions"][0]["score"] for t in json.loads(out.read_text())]
    assert scores == [0.88, 0.97, pytest.approx(1 / (1 + 3.5 * 1024 / 200))]  # row 3 has no lungs estimate


def test_round_trip_preserves_landmarks_and_refills_masks(table, tmp_path):
    path, images, df = table
    export_tasks(path, images, tmp_path / "tasks.json")
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    moved = (5.123456, -3.3)

    def edit(result, i):
        if i == 0:  # the reviewer drags right-lung vertex 7
            region = next(r for r in result if r["value"]["polygonlabels"] == ["Right Lung"])
            x, y = region["value"]["points"][7]
            region["value"]["points"][7] = [x + 100 * moved[0] / 250, y + 100 * moved[1] / 300]

    export = tmp_path / "project.json"
    export.write_text(json.dumps(ls_export(tasks, edit)))
    out = import_corrections(export, tmp_path / "corrected.csv")
    back = read_table(tmp_path / "corrected.csv")
    assert list(back.columns) == ["ImageID", "Dataset", "Landmarks", "Right Lung", "Left Lung", "Heart", "Height", "Width", "Corrected"]
    assert back[["Height", "Width"]].values.tolist() == [[300, 250], [256, 320], [200, 200]]
    # Only the organ the reviewer moved counts as corrected (what train --corrected-only trains on).
    assert back["Corrected"].tolist() == ["right_lung", "", ""]
    pd.testing.assert_frame_equal(back, out)
    for i, row in df.iterrows():
        want = parse_landmarks(row["Landmarks"])
        if i == 0:
            want[7] += moved
        got = parse_landmarks(back.loc[i, "Landmarks"])
        np.testing.assert_allclose(got, want, atol=0.01, rtol=0)
        masks = landmarks_to_masks(got, int(row["Height"]), int(row["Width"]))
        for organ, column in [("right_lung", "Right Lung"), ("left_lung", "Left Lung"), ("heart", "Heart")]:
            mask = decode_rle(back.loc[i, column], int(row["Height"]), int(row["Width"]))
            np.testing.assert_array_equal(mask != 0, masks[organ] != 0)
            assert mask.any()


def test_round_trip_of_published_rows_is_exact(chexmask_csv_dir, tmp_path):
    """Published ChestX-ray8 rows (integer landmarks, 1024 x 1024): unchanged review -> same row."""
    src = read_table(chexmask_csv_dir / "ChestX-Ray8.csv").head(5)
    images = tmp_path / "images"
    images.mkdir()
    for name in src["Image Index"]:
        (images / name).write_bytes(b"")  # export needs the files to exist, not to be read
    write_table(src, tmp_path / "rows.csv")
    export_tasks(tmp_path / "rows.csv", images, tmp_path / "tasks.json", dataset="ChestX-ray8")
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    (tmp_path / "project.json").write_text(json.dumps(ls_export(tasks)))
    back = import_corrections(tmp_path / "project.json")
    assert back["ImageID"].tolist() == src["Image Index"].tolist()
    assert set(back["Dataset"]) == {"ChestX-ray8"}
    assert back["Landmarks"].tolist() == src["Landmarks"].tolist()
    for column in ("Right Lung", "Left Lung", "Heart"):
        assert back[column].tolist() == src[column].tolist()


def _project(table, tmp_path, edit=None) -> Path:
    path, images, _ = table
    export_tasks(path, images, tmp_path / "tasks.json")
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    export = tmp_path / "project.json"
    export.write_text(json.dumps(ls_export(tasks, edit)))
    return export


def test_deleted_organ_is_nan_with_an_empty_mask(table, tmp_path):
    def drop_heart(result, i):
        result[:] = [r for r in result if r["value"]["polygonlabels"] != ["Heart"]]

    back = import_corrections(_project(table, tmp_path, drop_heart))
    pts = parse_landmarks(back.loc[0, "Landmarks"])
    assert np.isnan(pts[organ_slices()["heart"]]).all() and not np.isnan(pts[:94]).any()
    assert back.loc[0, "Heart"] == ""


def test_cancelled_unannotated_and_annotator_selection(table, tmp_path):
    export = _project(table, tmp_path)
    project = json.loads(export.read_text())
    project[0]["annotations"][0]["was_cancelled"] = True
    project[1]["annotations"] = []
    later = copy.deepcopy(project[2]["annotations"][0])
    later["updated_at"] = "2026-11-29T00:00:00Z"
    later["completed_by"] = 5
    first = later["result"][0]["value"]["points"]
    first[0] = [first[0][0] + 1.0, first[0][1]]
    project[2]["annotations"].insert(0, later)
    export.write_text(json.dumps(project))

    items = read_corrections(export)
    assert [c["image_id"] for c in items] == ["c.png"]
    latest = items[0]["points_xy"]
    (original,) = read_corrections(export, annotator="reviewer@example.org")
    assert latest[0, 0] - original["points_xy"][0, 0] == pytest.approx(2.0)  # 1 % of 200 px
    assert read_corrections(export, annotator="99") == []


def test_legacy_completions_and_image_id_from_url(table, tmp_path):
    export = _project(table, tmp_path)
    project = json.loads(export.read_text())
    for task in project:
        task["completions"] = task.pop("annotations")
        del task["data"]["image_id"]
    export.write_text(json.dumps(project))
    assert [c["image_id"] for c in read_corrections(export)] == ["a.png", "b c.png", "c.png"]


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda r, i: r[0]["value"]["points"].pop(), r"Right Lung has 43 vertices, expected 44 \(vertices were added"),
        (lambda r, i: r[1]["value"].update(polygonlabels=["Liver"]), r"polygon labels \['Liver'\] are not one of"),
        (lambda r, i: r.append(copy.deepcopy(r[2])), "Heart is drawn twice"),
        (lambda r, i: r.clear(), "the annotation has no organ polygon"),
        (lambda r, i: r[0].update(original_width=999), "image is 999x300 in Label Studio but 250x300 in the task"),
        (lambda r, i: r[0].update(image_rotation=90), "image_rotation 90 is not supported"),
    ],
)
def test_bad_annotations_name_task_image_and_problem(table, tmp_path, edit, match):
    export = _project(table, tmp_path, lambda r, i: edit(r, i) if i == 0 else None)
    with pytest.raises(InputError, match=r"project\.json task 1 \(a\.png\): " + match):
        read_corrections(export)


def test_bad_export_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="bad.json: cannot read as JSON"):
        read_corrections(bad)
    bad.write_text('{"image": "x"}')
    with pytest.raises(InputError, match='expected a list of tasks \\(export the project as "JSON", not "JSON-MIN"\\)'):
        read_corrections(bad)
    with pytest.raises(InputError, match="missing.json: cannot read as JSON"):
        read_corrections(tmp_path / "missing.json")


def test_export_errors(table, tmp_path):
    path, images, _ = table
    (images / "c.png").unlink()
    with pytest.raises(InputError, match=r"table\.csv row 3: image 'c\.png' not found in"):
        export_tasks(path, images, tmp_path / "t.json")
    with pytest.raises(InputError, match="images folder not found"):
        export_tasks(path, tmp_path / "nope", tmp_path / "t.json")


def test_cli_export_and_import(table, tmp_path):
    path, images, _ = table
    runner = CliRunner()
    tasks = tmp_path / "tasks.json"
    res = runner.invoke(app, ["export", "labelstudio", str(path), str(images), "-o", str(tasks)])
    assert res.exit_code == 0, res.output
    assert tasks.with_suffix(".xml").is_file()
    export = tmp_path / "project.json"
    export.write_text(json.dumps(ls_export(json.loads(tasks.read_text()))))
    out = tmp_path / "corrected.csv"
    res = runner.invoke(app, ["import", "labelstudio", str(export), "-o", str(out), "--dataset", "JSRT"])
    assert res.exit_code == 0, res.output
    assert read_table(out)["Dataset"].tolist() == ["JSRT"] * 3
    res = runner.invoke(app, ["import", "labelstudio", str(tmp_path / "none.json"), "-o", str(out)])
    assert res.exit_code == 2  # an input named on the command line
    assert "none.json: cannot read as JSON" in res.stderr


@pytest.fixture
def odd_frames(example_dir, tmp_path):
    """The 786 x 899 example image with its reference landmarks, and a 2000 x 1500 one."""
    import cv2

    images = tmp_path / "images"
    images.mkdir()
    (images / "utils_example1.jpg").write_bytes((example_dir / "utils_example1.jpg").read_bytes())
    cv2.imwrite(str(images / "wide.png"), np.zeros((1500, 2000), np.uint8))
    example = np.concatenate([np.loadtxt(example_dir / f"{k}_landmarks.txt") for k in ("RL", "LL", "H")])
    rows = []
    for name, points, (h, w) in [("utils_example1.jpg", example, (899, 786)), ("wide.png", np.rint(_contours(1500, 2000)), (1500, 2000))]:
        masks = landmarks_to_masks(points, h, w)
        rows.append({"ImageID": name, "Landmarks": format_landmarks(points),
                     **{c: encode_rle(masks[o]) for o, c in (("left_lung", "Left Lung"), ("right_lung", "Right Lung"), ("heart", "Heart"))},
                     "Height": h, "Width": w})
    path = tmp_path / "predicted.csv"
    write_table(pd.DataFrame(rows), path)
    return path, images


def test_cli_round_trip_keeps_the_frame_for_any_image_size(odd_frames, tmp_path):
    """export -> review -> import -> masks / evaluate at 786 x 899 and 2000 x 1500."""
    import cv2

    path, images = odd_frames
    runner = CliRunner()
    tasks, corrected = tmp_path / "tasks.json", tmp_path / "corrected.csv"
    assert runner.invoke(app, ["export", "labelstudio", str(path), str(images), "-o", str(tasks)]).exit_code == 0
    (tmp_path / "project.json").write_text(json.dumps(ls_export(json.loads(tasks.read_text()))))
    res = runner.invoke(app, ["import", "labelstudio", str(tmp_path / "project.json"), "-o", str(corrected)])
    assert res.exit_code == 0, res.output
    back = read_table(corrected)
    assert list(back.columns) == ["ImageID", "Dataset", "Landmarks", "Right Lung", "Left Lung", "Heart", "Height", "Width", "Corrected"]
    assert back[["Height", "Width"]].values.tolist() == [[899, 786], [1500, 2000]]

    res = runner.invoke(app, ["masks", str(corrected), "-o", str(tmp_path / "m"), "--no-progress", "-j", "1"])
    assert res.exit_code == 0, res.output
    original = read_table(path)
    for i, name in enumerate(["utils_example1", "wide"]):
        png = cv2.imread(str(tmp_path / "m" / "heart" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(png, decode_rle(original.loc[i, "Heart"], *original.loc[i, ["Height", "Width"]]))

    res = runner.invoke(app, ["evaluate", str(path), str(corrected), "-o", str(tmp_path / "r"), "--bootstrap", "0", "--no-figures"])
    assert res.exit_code == 0, res.output
    summary = pd.read_csv(tmp_path / "r" / "summary.csv")
    dice = summary[(summary.metric == "dice") & (summary.organ == "lungs")].iloc[0]
    assert dice["n"] == 2 and dice["mean"] == 1.0


def test_cli_commands_fail_on_zero_matched_rows(odd_frames, tmp_path):
    path, _ = odd_frames
    other = read_table(path).assign(ImageID=["x.png", "y.png"])
    write_table(other, tmp_path / "other.csv")
    runner = CliRunner()
    res = runner.invoke(app, ["evaluate", str(path), str(tmp_path / "other.csv"), "-o", str(tmp_path / "r"), "--bootstrap", "0", "--no-figures"])
    assert res.exit_code == 1
    assert "predicted vs other: no image was compared" in res.stderr
    (tmp_path / "ids.txt").write_text("nothing.png\n")
    res = runner.invoke(app, ["masks", str(path), "-o", str(tmp_path / "m"), "--ids", str(tmp_path / "ids.txt"), "--no-progress", "-j", "1"])
    assert res.exit_code == 1
    assert "no row of" in res.stderr and "matched" in res.stderr
    export_tasks(path, odd_frames[1], tmp_path / "tasks.json")
    (tmp_path / "project.json").write_text(json.dumps(ls_export(json.loads((tmp_path / "tasks.json").read_text()))))
    res = runner.invoke(app, ["import", "labelstudio", str(tmp_path / "project.json"), "-o", str(tmp_path / "c.csv"), "--annotator", "nobody"])
    assert res.exit_code == 1
    assert "has a usable (not cancelled) annotation by 'nobody'" in res.stderr


def test_config_and_predictions_pass_label_studio_sdk(table, tmp_path):
    sdk = pytest.importorskip(
        "label_studio_sdk.label_interface",
        reason="label-studio-sdk not installed (it pins opencv<4.13/numpy<2.3, so it is not a test dependency)",
    )
    li = sdk.LabelInterface(labeling_config())
    li.validate()
    path, images, _ = table
    export_tasks(path, images, tmp_path / "tasks.json")
    for task in json.loads((tmp_path / "tasks.json").read_text()):
        assert li.validate_prediction(task["predictions"][0], return_errors=True) == []
    bad = copy.deepcopy(task["predictions"][0])
    bad["result"][0]["value"]["polygonlabels"] = ["Liver"]
    assert li.validate_prediction(bad, return_errors=True)
