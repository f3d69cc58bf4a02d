"""The web demo's API: uploads of each type, limits, bad files, the overlay and the zip."""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("fastapi", reason="the web demo needs the [app] extra (fastapi, uvicorn, python-multipart)")
pytest.importorskip("httpx2", reason="starlette's TestClient needs httpx2")

from fastapi.testclient import TestClient  # noqa: E402

from chexmask.app.server import create_app, quality_flag  # noqa: E402
from chexmask.app.upload import Limits, check_upload, safe_name  # noqa: E402
from chexmask.cli import app as cli  # noqa: E402
from chexmask.formats.landmarks import parse_landmarks  # noqa: E402
from chexmask.inference.segmenter import Segmenter  # noqa: E402
from chexmask.masks.fill import landmarks_to_masks  # noqa: E402
from sources_fixtures import make_dicom  # noqa: E402


@pytest.fixture(scope="module")
def segmenter(tiny_weights):
    return Segmenter(tiny_weights, uncertainty=4, batch_size=1)


@pytest.fixture
def client(segmenter):
    return TestClient(create_app(segmenter, Limits(max_bytes=2_000_000, max_pixels=600 * 600), keep=2))


def _image(h: int = 150, w: int = 120) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return ((np.sin(xx / 9.0) + np.cos(yy / 7.0) + 2) * 60).astype(np.uint8)


def _encode(ext: str, pixels: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(ext, pixels)
    assert ok
    return buf.tobytes()


def _dicom(pixels: np.ndarray) -> bytes:
    ds = make_dicom(pixels.astype(np.uint16) * 16, Modality="DX")
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _post(client, name: str, data: bytes):
    return client.post("/api/segment", files={"file": (name, data, "application/octet-stream")})


def test_page_and_info(client):
    page = client.get("/")
    assert page.status_code == 200 and 'id="file"' in page.text and "/static/app.js" in page.text
    assert client.get("/static/app.js").status_code == 200
    info = client.get("/api/info").json()
    assert info["limits"]["max_pixels"] == 360000 and info["uncertainty_samples"] == 4
    assert info["model"] == "tiny.safetensors"


@pytest.mark.parametrize("kind, name, encode", [
    ("png", "chest x-ray.png", lambda p: _encode(".png", p)),
    ("jpeg", "cxr.jpg", lambda p: _encode(".jpg", p)),
    ("dicom", "1.2.840.5.dcm", _dicom),
    ("png", "no_suffix", lambda p: _encode(".png", p)),  # type by content, not by name
])
def test_segment_each_type_then_overlay_and_zip(client, segmenter, kind, name, encode):
    pixels = _image()
    res = _post(client, name, encode(pixels))
    assert res.status_code == 200, res.text
    r = res.json()
    assert (r["kind"], r["height"], r["width"]) == (kind, 150, 120)
    assert r["image_id"] == safe_name(name)  # the id `chexmask segment` gives a lone file
    assert r["quality"]["flag"] in {"good", "review"} and r["uncertainty"] > 0
    assert set(r["organ_uncertainty"]) == {"right_lung", "left_lung", "heart"}

    png = client.get(r["overlay"])
    assert png.headers["content-type"] == "image/png"
    assert cv2.imdecode(np.frombuffer(png.content, np.uint8), cv2.IMREAD_COLOR).shape == (150, 120, 3)

    dl = client.get(r["download"])
    assert dl.headers["content-type"] == "application/zip"
    assert "attachment" in dl.headers["content-disposition"]
    zf = zipfile.ZipFile(io.BytesIO(dl.content))
    assert set(zf.namelist()) == {
        "landmarks.csv", "result.json", "chexmask.csv", "overlay.png",
        "right_lung.png", "left_lung.png", "heart.png",
    }
    lines = zf.read("landmarks.csv").decode().splitlines()
    assert lines[0] == "Node,Organ,X,Y,Std X,Std Y,Error Radius" and len(lines) == 121
    result = json.loads(zf.read("result.json"))
    assert np.asarray(result["landmarks"]).shape == (120, 2) and result["id"] == r["id"]
    # Masks at the original resolution, equal to filling the row's landmarks.
    row = zf.read("chexmask.csv").decode().splitlines()
    from chexmask.formats.records import csv_columns

    assert row[0] == ",".join(csv_columns("Image ID"))  # the row `chexmask segment` writes
    import pandas as pd

    table = pd.read_csv(io.BytesIO(zf.read("chexmask.csv")), dtype=str, keep_default_na=False)
    filled = landmarks_to_masks(parse_landmarks(table.loc[0, "Landmarks"]), 150, 120)
    for organ in ("right_lung", "left_lung", "heart"):
        mask = cv2.imdecode(np.frombuffer(zf.read(f"{organ}.png"), np.uint8), cv2.IMREAD_UNCHANGED)
        assert mask.shape == (150, 120) and mask.dtype == np.uint8
        np.testing.assert_array_equal(mask, filled[organ])


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims a size; its data is garbage (never decoded if refused)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + b"\0" * 64


@pytest.mark.parametrize("name, data, status, message", [
    ("empty.png", b"", 400, "empty.png: the file is empty"),
    ("notes.png", b"hello, I am text" * 20, 415, "notes.png: not a PNG, JPEG or DICOM file (checked by content"),
    ("big.png", _png_claiming(100_000, 100_000), 413, "big.png: the image is 100000x100000 = 10000.0 megapixels;"
     " the limit is 0.4 megapixels"),
    ("tiny.png", _png_claiming(10, 500), 422, "both sides must be at least 64 pixels"),
    ("head.png", b"\x89PNG\r\n\x1a\n\0\0", 422, "head.png: the PNG header is truncated or corrupt"),
    ("cut.png", _encode(".png", _image())[:300], 422, "cut.png: "),
    ("cut.jpg", _encode(".jpg", _image())[:400], 422, "cut.jpg: "),
    ("bomb.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 2_000_100, 413, "bomb.png: the file is 1.9 MiB; the limit is 2 MiB"),
])
def test_bad_uploads_get_clear_errors_and_the_server_goes_on(client, name, data, status, message):
    res = _post(client, name, data)
    assert res.status_code == status, res.text
    assert message in res.json()["error"]
    assert _post(client, "ok.png", _encode(".png", _image())).status_code == 200


def test_content_length_over_the_limit_is_refused_before_reading(client):
    res = client.post("/api/segment", content=b"x" * 2_100_000, headers={"content-type": "multipart/form-data; boundary=b"})
    assert res.status_code == 413 and "the limit is 2 MiB" in res.json()["error"]


def test_missing_field_and_unknown_result(client):
    assert client.post("/api/segment").status_code == 422
    res = client.get("/api/results/nope/download.zip")
    assert res.status_code == 404 and "no result 'nope'" in res.json()["error"]


def test_only_recent_results_are_kept(client):
    ids = [_post(client, f"{i}.png", _encode(".png", _image())).json()["id"] for i in range(3)]
    assert client.get(f"/api/results/{ids[0]}/overlay.png").status_code == 404
    assert client.get(f"/api/results/{ids[2]}/overlay.png").status_code == 200


def test_an_internal_error_is_a_500_not_a_crash(segmenter, monkeypatch):
    client = TestClient(create_app(segmenter), raise_server_exceptions=False)
    calls = {"n": 0}
    real = segmenter.segment

    def flaky(image):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return real(image)

    monkeypatch.setattr(segmenter, "segment", flaky)
    res = _post(client, "a.png", _encode(".png", _image()))
    assert res.status_code == 500 and "internal error while segmenting" in res.json()["error"]
    assert _post(client, "a.png", _encode(".png", _image())).status_code == 200


def test_quality_flag_is_the_estimate_s_flag(segmenter):
    seg = segmenter.segment(_image())
    est = seg.quality_estimate()
    flag = quality_flag(est)
    assert flag["flag"] == est.flag().flag and flag["estimated_dice"] == pytest.approx(est.dice) and flag["rca"] is None
    assert quality_flag(est, type("R", (), {"mean": 0.2})())["flag"] == "review"


def test_rca_scorer_drives_the_flag(segmenter):
    class FakeRCA:
        def __init__(self, mean):
            self.mean, self.calls = mean, []

        def score(self, image, masks, latent=None):
            self.calls.append((image.image_id, sorted(masks), latent.shape))
            mean, top = self.mean, self.mean + 0.05
            return type("Estimate", (), {"mean": mean, "max": top, "columns": lambda _: {"Dice RCA (Mean)": mean, "Dice RCA (Max)": top}})()

    alone = segmenter.segment(_image()).quality_estimate().flag().flag  # the flag without RCA
    for mean, flag in [(0.9, alone), (0.5, "review")]:
        fake = FakeRCA(mean)
        client = TestClient(create_app(segmenter, rca=fake))  # RCA below 0.7 flags whatever the estimate
        r = _post(client, "x.png", _encode(".png", _image())).json()
        assert r["quality"]["flag"] == flag and r["quality"]["rca"] == pytest.approx(mean)
        assert r["rca"] == {"mean": mean, "max": pytest.approx(mean + 0.05)}
        assert fake.calls == [("x.png", ["heart", "left_lung", "right_lung"], segmenter.segment(_image()).latent_mu.shape)]
    assert client.get("/api/info").json()["rca"] is True


def test_check_upload_reads_jpeg_size_from_its_header():
    assert check_upload(_encode(".jpg", _image(70, 90)), "a.jpg", Limits()) == "jpeg"
    with pytest.raises(Exception, match="the image is 90x70 = 6300 pixels; the limit is 100 pixels"):
        check_upload(_encode(".jpg", _image(70, 90)), "a.jpg", Limits(max_pixels=100))


def test_safe_name():
    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name("C:\\x\\my scan (1).dcm") == "my_scan_1_.dcm"
    assert safe_name(None) == safe_name("...") == "upload"


def test_serve_refuses_non_loopback_hosts():
    res = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0"])
    assert res.exit_code == 2  # bad usage
    assert "is not a loopback address" in res.stderr and "--allow-remote" in res.stderr


def test_measures_in_the_result_panel_and_the_downloads(client):
    import pandas as pd

    from chexmask.measures import MEASURE_COLUMNS

    assert 'id="measures"' in client.get("/").text and "function measures" in client.get("/static/app.js").text
    ds = make_dicom(_image().astype(np.uint16) * 16, Modality="DX", PixelSpacing=[0.5, 0.25])
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    r = _post(client, "cxr.dcm", buf.getvalue()).json()
    m = r["measures"]
    assert list(m) == MEASURE_COLUMNS and (m["Row Spacing (mm)"], m["Column Spacing (mm)"]) == (0.5, 0.25)
    assert m["Heart Area (mm2)"] == pytest.approx(m["Heart Area (px)"] * 0.125, abs=1e-4)
    zf = zipfile.ZipFile(io.BytesIO(client.get(r["download"]).content))
    assert json.loads(zf.read("result.json"))["measures"] == m
    row = pd.read_csv(io.BytesIO(zf.read("chexmask.csv")), keep_default_na=False).iloc[0]
    assert row["Heart Area (px)"] == m["Heart Area (px)"] and row["Row Spacing (mm)"] == 0.5
    assert row["Heart Area (mm2)"] == pytest.approx(m["Heart Area (mm2)"])
    png = _post(client, "x.png", _encode(".png", _image())).json()["measures"]
    assert png["Heart Area (mm2)"] is None and png["Row Spacing (mm)"] is None and png["Heart Area (px)"] >= 0


def test_the_demo_overlay_is_the_cli_renderer_on_its_fixed_scale(client, segmenter):
    """One renderer: the demo's PNG is render_overlay's (filled organs, no legend), its scale in /api/info."""
    from chexmask.app import render
    from chexmask.reports.overlay import VMAX_PX, render_overlay

    assert not hasattr(render, "overlay") and not hasattr(render, "ORGAN_COLOURS")
    assert client.get("/api/info").json()["overlay_vmax_px"] == VMAX_PX == 5.0
    pixels = _image()
    r = _post(client, "cxr.png", _encode(".png", pixels)).json()
    shown = cv2.imdecode(np.frombuffer(client.get(r["overlay"]).content, np.uint8), cv2.IMREAD_COLOR)
    seg = segmenter.segment(pixels, image_id="cxr.png")
    expected = render_overlay(pixels, seg, masks=seg.masks(), legend=False)
    assert np.array_equal(shown, expected)
