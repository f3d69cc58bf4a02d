"""ImageLookup: the image file of a table row's image id."""

from pathlib import Path

import pytest

from chexmask import UnreadableImageError
from chexmask.io.discover import find_images
from chexmask.io.lookup import ImageLookup, image_stem


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    for name in ("direct.png", "a/p1.jpg", "b/p1.jpg", "c/dup.png", "d/dup.png",
                 "CheXpert-v1.0/train/patient1/study1/view1_frontal.jpg",
                 "CheXpert-v1.0/train/patient2/study1/view1_frontal.jpg", "e/only.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    return tmp_path


def test_image_stem():
    assert image_stem("a/b/x.PNG") == "x"
    assert image_stem("a\\x.dcm") == "x"
    assert image_stem("x.txt") == "x.txt"


def test_direct_hit(root: Path):
    lookup = ImageLookup(root)
    assert lookup.direct("direct.png") == root / "direct.png"
    assert lookup.direct("direct") == root / "direct.png"
    assert lookup.find("direct") == root / "direct.png"
    assert lookup.direct("only") is None  # direct never walks


def test_suffix_swap(root: Path):
    assert ImageLookup(root, anywhere=True).find("only.png") == root / "e" / "only.jpg"
    assert ImageLookup(paths=find_images(root)).find("only.png") == root / "e" / "only.jpg"


def test_upper_case_suffix(tmp_path: Path):
    (tmp_path / "x.PNG").write_bytes(b"")
    assert ImageLookup(tmp_path).direct("x") in (tmp_path / "x.png", tmp_path / "x.PNG")


def test_relative_chexpert_path(root: Path):
    lookup = ImageLookup(paths=find_images(root))
    rel = "CheXpert-v1.0/train/patient2/study1/view1_frontal.jpg"
    assert lookup.find(rel) == root / rel
    assert lookup.find(rel[: -len(".jpg")]) == root / rel
    assert lookup.candidates("patient3/study1/view1_frontal.jpg") == []
    assert len(lookup.candidates("view1_frontal")) == 2


def test_ambiguous_name(root: Path):
    for lookup in (ImageLookup(root, anywhere=True), ImageLookup(paths=find_images(root))):
        assert len(lookup.candidates("dup")) == 2
        with pytest.raises(UnreadableImageError, match=r"no unique image for id 'p1': 2 match"):
            lookup.find("p1")


def test_missing(root: Path):
    with pytest.raises(UnreadableImageError, match="no unique image for id 'ghost': none found") as info:
        ImageLookup(root, anywhere=True).find("ghost")
    assert info.value.source == str(root / "ghost")
    assert ImageLookup(paths=[]).candidates("ghost") == []


def test_paths_lists_every_image(root: Path):
    assert sorted(ImageLookup(root).paths) == find_images(root)
    with pytest.raises(ValueError):
        ImageLookup()
