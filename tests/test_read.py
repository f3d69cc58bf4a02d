"""Tests of chexmask.io.read: PNG/JPEG/DICOM decoding to 8-bit gray, and bad inputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)

import chexmask
from chexmask import UnreadableImageError
from chexmask.io.read import XrayImage, read_image


@pytest.fixture(scope="module")
def jsrt_png(jsrt_dir: Path) -> Path:
    return jsrt_dir / "images" / "JPCLN001.png"


@pytest.fixture(scope="module")
def source(jsrt_png: Path) -> np.ndarray:
    """The 1024x1024 uint8 JSRT image every synthetic file is made from."""
    image = cv2.imread(str(jsrt_png), cv2.IMREAD_UNCHANGED)
    assert image.shape == (1024, 1024) and image.dtype == np.uint8
    return image


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1])


# ----------------------------------------------------------------- DICOM writer


def write_dicom(
    path: Path,
    stored: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int = 16,
    signed: bool = False,
    extra: dict | None = None,
    voi_lut: np.ndarray | None = None,
    compress: str | None = None,
    pixel_data: bool = True,
) -> Path:
    """Write `stored` (H, W), (F, H, W) or (H, W, 3) as a DICOM file."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    colour = photometric == "RGB"
    frames = stored.shape[0] if stored.ndim == 3 and not colour else 1
    ds.Rows, ds.Columns = stored.shape[-3:-1] if colour else stored.shape[-2:]
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.SamplesPerPixel = 3 if colour else 1
    if colour:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 8 if bits_stored <= 8 else 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = int(signed)
    for key, value in (extra or {}).items():
        setattr(ds, key, value)
    if voi_lut is not None:
        item = Dataset()
        item.add_new("LUTDescriptor", "US", [len(voi_lut), 0, 12])
        item.add_new("LUTData", "US", [int(v) for v in voi_lut])
        ds.VOILUTSequence = Sequence([item])
    if pixel_data:
        dtype = {(8, False): np.uint8, (16, False): np.uint16, (16, True): np.int16}
        ds.PixelData = stored.astype(dtype[ds.BitsAllocated, signed]).tobytes()
        if compress is not None:
            ds.compress(compress)
    ds.save_as(path, enforce_file_format=True)
    return path


@dataclass(frozen=True)
class DicomCase:
    """How to store the JSRT image, and what the reader should give back."""

    stored: object  # source uint8 -> stored values
    expected: object  # source uint8 -> expected uint8 output
    kwargs: dict = field(default_factory=dict)
    photometric: str = "MONOCHROME2"
    bits: int = 16
    view: str | None = None
    max_diff: int = 1


def _window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """DICOM LINEAR window (PS3.3 C.11.2.1.2.1) to [0, 255], written out by hand."""
    y = ((values - (center - 0.5)) / (width - 1) + 0.5) * 255
    return np.clip(y, 0, 255)


DICOM_CASES = {
    "mono2_12bit": DicomCase(lambda s: s.astype(np.uint16) * 16, lambda s: s, {"bits_stored": 12}, bits=12),
    "mono1_12bit_inverted": DicomCase(
        lambda s: (255 - s.astype(np.uint16)) * 16,
        lambda s: s,
        {"bits_stored": 12, "photometric": "MONOCHROME1"},
        photometric="MONOCHROME1",
        bits=12,
    ),
    "mono2_16bit": DicomCase(lambda s: s.astype(np.uint16) * 257, lambda s: s),
    "mono1_16bit_inverted": DicomCase(
        lambda s: (255 - s.astype(np.uint16)) * 257,
        lambda s: s,
        {"photometric": "MONOCHROME1"},
        photometric="MONOCHROME1",
    ),
    "signed_12bit": DicomCase(
        lambda s: s.astype(np.int16) * 16 - 2048, lambda s: s, {"bits_stored": 12, "signed": True}, bits=12
    ),
    "8bit": DicomCase(lambda s: s, lambda s: s, {"bits_stored": 8}, bits=8),
    # The window covers only the middle of the range: the ends saturate.
    "voi_window": DicomCase(
        lambda s: s.astype(np.uint16) * 16,
        lambda s: _window(s * 16.0, 2048, 2048),
        {"bits_stored": 12, "extra": {"WindowCenter": 2048, "WindowWidth": 2048}},
        bits=12,
    ),
    # Rescaled values are s*16 - 1024; the window only fits them once rescaled.
    "modality_rescale_then_window": DicomCase(
        lambda s: s.astype(np.uint16) * 8,
        lambda s: _window(s * 16.0 - 1024, 1016.5, 4081),
        {
            "bits_stored": 12,
            "extra": {
                "RescaleSlope": 2,
                "RescaleIntercept": -1024,
                "WindowCenter": 1016.5,
                "WindowWidth": 4081,
            },
        },
        bits=12,
    ),
    "modality_rescale_no_window": DicomCase(
        lambda s: s.astype(np.uint16) * 16,
        lambda s: s,
        {"bits_stored": 12, "extra": {"RescaleSlope": 0.5, "RescaleIntercept": 100}},
        bits=12,
    ),
    # An inverting VOI LUT: preferred over the window that is also present.
    "voi_lut_sequence": DicomCase(
        lambda s: s.astype(np.uint16) * 16,
        lambda s: 255 - s,
        {
            "bits_stored": 12,
            "voi_lut": 4095 - np.arange(4096),
            "extra": {"WindowCenter": 100, "WindowWidth": 10},
        },
        bits=12,
    ),
    "view_position": DicomCase(
        lambda s: s.astype(np.uint16) * 16,
        lambda s: s,
        {"bits_stored": 12, "extra": {"ViewPosition": "PA"}},
        bits=12,
        view="PA",
    ),
    "jpeg2000_lossless": DicomCase(
        lambda s: s.astype(np.uint16) * 16,
        lambda s: s,
        {"bits_stored": 12, "compress": JPEG2000Lossless, "extra": {"ViewPosition": "AP"}},
        bits=12,
        view="AP",
    ),
    "multiframe_first_frame": DicomCase(
        lambda s: np.stack([s, 255 - s]).astype(np.uint16) * 16, lambda s: s, {"bits_stored": 12}, bits=12
    ),
    "rgb": DicomCase(
        lambda s: np.stack([s, s, s], axis=-1),
        lambda s: s,
        {"bits_stored": 8, "photometric": "RGB"},
        photometric="RGB",
        bits=8,
    ),
}


@pytest.mark.parametrize("case", DICOM_CASES.values(), ids=DICOM_CASES.keys())
def test_dicom_matches_source(case: DicomCase, source: np.ndarray, tmp_path: Path):
    path = write_dicom(tmp_path / "x.dcm", case.stored(source), **case.kwargs)
    image = read_image(path)
    expected = np.asarray(case.expected(source), dtype=float)
    assert image.pixels.dtype == np.uint8
    assert image.pixels.shape == (1024, 1024) == (image.height, image.width)
    assert np.abs(image.pixels.astype(float) - expected).max() <= case.max_diff
    assert _corr(image.pixels, expected) > 0.99
    assert image.photometric == case.photometric
    assert image.bits == case.bits
    assert image.view_position == case.view
    assert image.image_id == "x"


def test_dicom_dispatch_by_content_not_name(source: np.ndarray, tmp_path: Path):
    # A DICOM named .png, and one named by its UID without an extension.
    for name, image_id in (("fake.png", "fake"), ("1.2.840.10008", "1.2.840.10008")):
        path = write_dicom(tmp_path / name, source.astype(np.uint16) * 16, bits_stored=12)
        image = read_image(path)
        assert image.image_id == image_id
        assert image.bits == 12
        np.testing.assert_array_equal(image.pixels, source)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"PixelSpacing": [0.2, 0.1]}, (0.2, 0.1)),  # [row spacing, column spacing], kept in that order
        ({"ImagerPixelSpacing": [0.15, 0.175]}, (0.15, 0.175)),
        ({"PixelSpacing": [0.2, 0.1], "ImagerPixelSpacing": [0.3, 0.3]}, (0.2, 0.1)),  # PixelSpacing first
        ({"PixelSpacing": [0.0, 0.1], "ImagerPixelSpacing": [0.3, 0.25]}, (0.3, 0.25)),  # unusable: next one
        ({"PixelSpacing": [0.2]}, None),
        ({}, None),
    ],
    ids=["pixel", "imager", "pixel_first", "zero_falls_back", "one_value", "none"],
)
def test_dicom_pixel_spacing(extra: dict, expected, tmp_path: Path):
    stored = np.arange(64 * 48, dtype=np.uint16).reshape(64, 48)
    image = read_image(write_dicom(tmp_path / "s.dcm", stored, bits_stored=12, extra=extra))
    assert image.pixel_spacing == (pytest.approx(expected) if expected else None)


def test_png_has_no_pixel_spacing(jsrt_png: Path):
    assert read_image(jsrt_png).pixel_spacing is None


# ----------------------------------------------------------------- PNG and JPEG


def test_jsrt_png_is_read_unchanged(jsrt_png: Path, source: np.ndarray):
    image = read_image(jsrt_png)
    assert isinstance(image, XrayImage)
    np.testing.assert_array_equal(image.pixels, source)
    assert (image.image_id, image.bits, image.photometric) == ("JPCLN001", 8, "MONOCHROME2")
    assert image.path == str(jsrt_png)
    assert image.view_position is None


def _bt601(b: np.ndarray, g: np.ndarray, r: np.ndarray) -> np.ndarray:
    return 0.299 * r + 0.587 * g + 0.114 * b


RASTER_CASES = {
    # name: (suffix, source -> array cv2 writes as PNG/JPEG, source -> expected gray,
    #        photometric, bits, max abs diff)
    "png16_minmax": (".png", lambda s: s.astype(np.uint16) * 200 + 500, lambda s: s, "MONOCHROME2", 16, 1),
    "png16_rgb": (".png", lambda s: cv2.merge([s, s, s]).astype(np.uint16) * 257, lambda s: s, "RGB", 16, 1),
    "rgb_jpeg": (".jpg", lambda s: cv2.merge([s, s, s]), lambda s: s, "RGB", 8, 12),
    "colour_jpeg": (
        ".jpeg",
        lambda s: cv2.merge([s, s // 2 + 60, s]),
        lambda s: _bt601(s, s // 2 + 60, s),
        "RGB",
        8,
        12,
    ),
    "rgba_png": (".png", lambda s: cv2.merge([s, s, s, np.full_like(s, 128)]), lambda s: s, "RGB", 8, 0),
    "gray_jpeg": (".jpg", lambda s: s, lambda s: s, "MONOCHROME2", 8, 12),
}


@pytest.mark.parametrize("case", RASTER_CASES.values(), ids=RASTER_CASES.keys())
def test_png_jpeg_variants(case, source: np.ndarray, tmp_path: Path):
    suffix, make, expect, photometric, bits, max_diff = case
    path = tmp_path / f"x{suffix}"
    assert cv2.imwrite(str(path), make(source))
    image = read_image(path)
    expected = expect(source).astype(float)
    assert image.pixels.dtype == np.uint8 and image.pixels.shape == source.shape
    assert (image.photometric, image.bits) == (photometric, bits)
    assert _corr(image.pixels, expected) > 0.99
    assert np.abs(image.pixels - expected).max() <= max_diff


def test_png_named_jpg_is_read_as_png(jsrt_png: Path, source: np.ndarray, tmp_path: Path):
    path = tmp_path / "x.jpg"
    path.write_bytes(jsrt_png.read_bytes())
    np.testing.assert_array_equal(read_image(path).pixels, source)


def test_jpeg_with_trailing_bytes_is_accepted(source: np.ndarray, tmp_path: Path):
    path = tmp_path / "x.jpg"
    cv2.imwrite(str(path), source)
    path.write_bytes(path.read_bytes() + b"\x00" * 100 + b"trailer")
    assert _corr(read_image(path).pixels, source) > 0.99


def test_png16_shift_matches_opencv_grayscale_read(source: np.ndarray, tmp_path: Path):
    path = tmp_path / "x.png"
    cv2.imwrite(str(path), source.astype(np.uint16) * 200 + 500)
    image = read_image(path, scale16="shift")
    np.testing.assert_array_equal(image.pixels, cv2.imread(str(path), cv2.IMREAD_GRAYSCALE))


def test_example_jpeg_keeps_its_shape(example_dir: Path):
    path = example_dir / "utils_example1.jpg"
    image = read_image(str(path))
    assert image.pixels.shape == cv2.imread(str(path), cv2.IMREAD_GRAYSCALE).shape
    assert {image.height, image.width} == {786, 899}
    assert image.image_id == "utils_example1"


def test_constant_image_is_all_zero(tmp_path: Path):
    path = tmp_path / "flat.png"
    cv2.imwrite(str(path), np.full((5, 7), 1000, np.uint16))
    assert not read_image(path).pixels.any()


def test_lazy_export_and_bad_option(jsrt_png: Path):
    assert chexmask.read_image is read_image
    with pytest.raises(ValueError, match="scale16 must be 'minmax' or 'shift', got 'max'"):
        read_image(jsrt_png, scale16="max")


# ----------------------------------------------------------------- bad inputs


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _truncate(path: Path, keep: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def _png(tmp: Path, source: np.ndarray) -> Path:
    cv2.imwrite(str(tmp / "x.png"), source)
    return tmp / "x.png"


def _jpeg(tmp: Path, source: np.ndarray) -> Path:
    cv2.imwrite(str(tmp / "x.jpg"), source)
    return tmp / "x.jpg"


def _dicom(tmp: Path, source: np.ndarray, **kwargs) -> Path:
    return write_dicom(tmp / "x.dcm", source.astype(np.uint16) * 16, bits_stored=12, **kwargs)


def _corrupt_png_body(tmp: Path, source: np.ndarray) -> Path:
    data = bytearray(_png(tmp, source).read_bytes())
    data[100:4000] = bytes(3900)  # zero the compressed stream, keep the IEND trailer
    (tmp / "x.png").write_bytes(bytes(data))
    return tmp / "x.png"


ERROR_CASES = {
    # name: (make the bad file in tmp from the source image, message pattern)
    "missing": (lambda t, s: t / "nope.png", "file not found"),
    "directory": (lambda t, s: t, "is a directory"),
    "empty": (lambda t, s: _write(t / "e.png", b""), "empty file"),
    "text_file": (lambda t, s: _write(t / "a.png", b"hello\n"), "not a PNG, JPEG or DICOM image"),
    "text_named_dcm": (lambda t, s: _write(t / "a.dcm", b"hello\n"), "not a DICOM file: no 'DICM' marker"),
    "truncated_png": (lambda t, s: _truncate(_png(t, s), 0.5), "truncated or corrupt PNG"),
    "corrupt_png": (_corrupt_png_body, "truncated or corrupt PNG"),
    "truncated_jpeg": (lambda t, s: _truncate(_jpeg(t, s), 0.5), "truncated or corrupt JPEG"),
    "truncated_dicom": (lambda t, s: _truncate(_dicom(t, s), 0.6), "truncated or corrupt DICOM"),
    "dicom_without_pixels": (lambda t, s: _dicom(t, s, pixel_data=False), "DICOM has no pixel data"),
    # pydicom also warns here; with warnings as errors that is the error caught.
    "truncated_jpeg2000_dicom": (
        lambda t, s: _truncate(_dicom(t, s, compress=JPEG2000Lossless), 0.5),
        "truncated or corrupt DICOM",
    ),
    "dicom_truncated_in_header": (lambda t, s: _truncate(_dicom(t, s), 0.00015), "DICOM has no pixel data"),
    "dicom_bad_window": (
        lambda t, s: _dicom(t, s, extra={"WindowCenter": 10, "WindowWidth": 0}),
        "invalid DICOM LUT or window",
    ),
    "dicom_unsupported_dims": (
        lambda t, s: write_dicom(t / "x.dcm", cv2.merge([s, s, s]), bits_stored=8, photometric="RGB")
        and _set_photometric(t / "x.dcm", "MONOCHROME2"),
        "unsupported image dimensions",
    ),
}


def _set_photometric(path: Path, value: str) -> Path:
    ds = pydicom.dcmread(path)
    ds.PhotometricInterpretation = value
    ds.save_as(path)
    return path


@pytest.mark.parametrize("case", ERROR_CASES.values(), ids=ERROR_CASES.keys())
def test_bad_input_raises_unreadable(case, source: np.ndarray, tmp_path: Path):
    make, pattern = case
    path = make(tmp_path, source)
    with pytest.raises(UnreadableImageError, match=pattern) as info:
        read_image(path)
    assert info.value.source == str(path)
    # An unreadable image is an input error: a batch records it and goes on.
    assert isinstance(info.value, chexmask.InputError)


def test_missing_decoder_says_what_to_install(source: np.ndarray, tmp_path: Path, monkeypatch):
    path = _dicom(tmp_path, source, compress=JPEG2000Lossless)

    def no_plugin(*args, **kwargs):
        raise RuntimeError("Unable to decompress: all plugins are missing dependencies")

    monkeypatch.setattr(pydicom.pixels, "pixel_array", no_plugin)
    pattern = "no installed decoder for transfer syntax JPEG 2000"
    with pytest.raises(UnreadableImageError, match=pattern) as info:
        read_image(path)
    assert "pip install pylibjpeg" in info.value.reason
    assert isinstance(info.value.__cause__, RuntimeError)
