"""Shared fixtures: the location of ../shared data, skipping clearly when absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CHEXMASK_SHARED", REPO.parent / "shared"))
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data not found at {path} (set CHEXMASK_SHARED to the shared/ folder)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The ``shared/data`` folder (skips the test if it is absent)."""
    return _need(SHARED / "data")


@pytest.fixture(scope="session")
def jsrt_dir(shared_data: Path) -> Path:
    """The shared JSRT folder with images/, landmarks/, scr_masks/, splits/."""
    return _need(shared_data / "jsrt")


@pytest.fixture(scope="session")
def chexmask_csv_dir(shared_data: Path) -> Path:
    """Published CheXmask rows (CANDID-PTX, ChestX-Ray8, physician annotations)."""
    return _need(shared_data / "chexmask-format")


@pytest.fixture(scope="session")
def example_dir(shared_data: Path) -> Path:
    """The reference system's revert-to-original example (786x899 image)."""
    return _need(shared_data / "example")
