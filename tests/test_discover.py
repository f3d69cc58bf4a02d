"""Tests of chexmask.io.discover.find_images: folders, files and path lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from chexmask import InputError
from chexmask.io.discover import find_images


def _touch(root: Path, *names: str) -> list[Path]:
    paths = []
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
        paths.append(path)
    return paths


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    _touch(
        tmp_path,
        "a/1.png",
        "a/2.JPG",
        "a/deep/er/3.jpeg",
        "b/4.dcm",
        "b/5.DICOM",
        "b/1.2.840.10008",  # DICOM named by UID, no extension: not searched
        "b/notes.txt",
        "b/.hidden.png",
        ".cache/6.png",
    )
    return tmp_path


def _names(paths: list[Path], root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() for p in paths]


def test_folder_is_searched_recursively_case_insensitively(tree: Path):
    found = find_images([tree])
    assert _names(found, tree) == ["a/1.png", "a/2.JPG", "a/deep/er/3.jpeg", "b/4.dcm", "b/5.DICOM"]
    assert all(p.is_absolute() for p in found)


def test_result_is_sorted_deduplicated_and_deterministic(tree: Path, monkeypatch):
    monkeypatch.chdir(tree)
    # The same files reached through a folder, a relative folder, a file and a "..".
    found = find_images([tree / "b", "a", tree / "a" / "1.png", "b/../a/2.JPG", tree])
    assert found == sorted(found) == find_images([tree])
    assert len(found) == len(set(found)) == 5


def test_extensions_option(tree: Path):
    assert _names(find_images([tree], extensions=["PNG", ".dcm"]), tree) == ["a/1.png", "b/4.dcm"]
    with pytest.raises(ValueError, match="empty extension"):
        find_images([tree], extensions=[""])
    with pytest.raises(ValueError, match="at least one extension"):
        find_images([tree], extensions=[])


def test_single_input_and_explicit_file_of_any_extension(tree: Path):
    # A file named explicitly is taken whatever its name (read_image checks content).
    uid_file = tree / "b" / "1.2.840.10008"
    assert find_images(uid_file) == [uid_file]
    assert find_images(str(tree / "a")) == find_images([tree / "a"])


def test_txt_list_relative_to_its_folder(tree: Path):
    listing = tree / "lists" / "images.txt"
    listing.parent.mkdir()
    absolute = tree / "a" / "2.JPG"
    listing.write_text(f"# header comment\n../a/1.png\n\n  ../b/4.dcm  \n{absolute}\n../a/1.png\n")
    assert _names(find_images([listing]), tree) == ["a/1.png", "a/2.JPG", "b/4.dcm"]


@pytest.mark.parametrize(
    ("header", "rows"),
    [
        ("id,path,label", ["x,a/1.png,0", "y,b/4.dcm,1"]),
        ("Path,Sex", ["a/1.png,F", "b/4.dcm,M"]),
        ("filename", ["a/1.png", "b/4.dcm", ""]),  # first column; blank row skipped
    ],
    ids=["path_column", "Path_column", "first_column"],
)
def test_csv_list(tree: Path, header: str, rows: list[str]):
    table = tree / "table.csv"
    table.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8-sig")  # with a BOM
    assert _names(find_images([table]), tree) == ["a/1.png", "b/4.dcm"]


def test_list_entries_are_not_checked_for_existence(tmp_path: Path):
    listing = tmp_path / "l.txt"
    listing.write_text("gone.png\n")
    assert find_images([listing]) == [tmp_path / "gone.png"]


def test_empty_folder_gives_empty_list(tmp_path: Path):
    assert find_images([tmp_path]) == []


@pytest.mark.parametrize(
    ("make", "pattern"),
    [
        (lambda t: t / "missing", "missing: no such file or folder"),
        (lambda t: _write(t / "empty.csv", b""), "empty CSV"),
        (lambda t: _write(t / "bad.txt", b"\xff\xfe\x00bad"), "cannot read the path list"),
    ],
    ids=["missing_input", "empty_csv", "undecodable_txt"],
)
def test_bad_inputs_raise_input_error(tmp_path: Path, make, pattern: str):
    bad = make(tmp_path)
    with pytest.raises(InputError, match=pattern) as info:
        find_images([tmp_path, bad])
    assert info.value.source == str(bad)
