"""Shared fixtures: the location of ../shared data, skipping clearly when absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CHEXMASK_SHARED", REPO.parent / "shared"))
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def pytest_configure(config):
    # One torch thread: on a loaded 2-core machine, OpenMP threads spin-waiting for a
    # busy core made small models 20-50x slower; tests need no intra-op parallelism.
    import torch

    torch.set_num_threads(1)
    # Derived files (the OpenVINO export of each weights file, RCA atlases) go to pytest's
    # own cache folder, not the user's ~/.cache, and are reused by later runs (none with -p no:cacheprovider).
    if getattr(config, "cache", None) is not None:
        os.environ.setdefault("CHEXMASK_CACHE", str(config.cache.mkdir("chexmask")))


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
def montgomery_dir(shared_data: Path) -> Path:
    """The shared Montgomery folder (lungs only; images in their own frame)."""
    return _need(shared_data / "montgomery")


@pytest.fixture(scope="session")
def shenzhen_dir(shared_data: Path) -> Path:
    """The shared Shenzhen folder (lungs only; images in their own frame)."""
    return _need(shared_data / "shenzhen")


@pytest.fixture(scope="session")
def chexmask_csv_dir(shared_data: Path) -> Path:
    """Published CheXmask rows (CANDID-PTX, ChestX-Ray8, physician annotations)."""
    return _need(shared_data / "chexmask-format")


@pytest.fixture(scope="module")
def cxr8(chexmask_csv_dir: Path) -> Path:
    """The published ChestX-Ray8 CheXmask rows (CSV)."""
    return chexmask_csv_dir / "ChestX-Ray8.csv"


@pytest.fixture(scope="module")
def table(cxr8: Path):
    """The ChestX-Ray8 rows read with :func:`chexmask.formats.tables.read_table` (one copy per module)."""
    from chexmask.formats.tables import read_table

    return read_table(cxr8)


@pytest.fixture(scope="session")
def example_dir(shared_data: Path) -> Path:
    """The reference system's revert-to-original example (786x899 image)."""
    return _need(shared_data / "example")


def _tiny_model(path: Path, organs: tuple[str, ...], refine_levels: tuple[int, ...] = ()) -> Path:
    import numpy as np
    import torch

    from chexmask.anatomy import n_nodes
    from chexmask.model.hybridgnet import HybridGNet, ModelConfig
    from chexmask.model.weights import save_weights

    torch.manual_seed(0)
    shape = np.random.default_rng(0).uniform(0.25, 0.75, (n_nodes(organs), 2))
    model = HybridGNet(ModelConfig(input_size=64, organs=organs, refine_levels=refine_levels), mean_shape=shape)
    for head in (model.conv1, model.pos1, model.pos2, *(stage.head for stage in model.refine)):  # non-zero heads: samples differ, uncertainty > 0
        torch.nn.init.normal_(head.weight, std=0.01)
    torch.nn.init.constant_(model.fc_logvar.bias, -2.0)
    save_weights(model, path, {"note": "random weights for tests"})
    from chexmask.inference.segmenter import Segmenter

    Segmenter(path)  # exports the OpenVINO network now: command-line subprocesses find it cached
    return path


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """A randomly initialised 64-px HybridGNet saved as safetensors (fast; for pipeline tests)."""
    from chexmask.anatomy import ORGANS

    return _tiny_model(tmp_path_factory.mktemp("weights") / "tiny.safetensors", ORGANS)


@pytest.fixture(scope="session")
def tiny_refine_weights(tmp_path_factory) -> Path:
    """As ``tiny_weights``, with two further image-to-graph skips (``refine_levels=(2, 1)``)."""
    from chexmask.anatomy import ORGANS

    return _tiny_model(tmp_path_factory.mktemp("weights") / "tiny-refine.safetensors", ORGANS, (2, 1))


@pytest.fixture(scope="session")
def tiny_clavicle_weights(tmp_path_factory) -> Path:
    """As ``tiny_weights``, for a model that also predicts the clavicles (166 nodes)."""
    from chexmask.anatomy import ALL_ORGANS

    return _tiny_model(tmp_path_factory.mktemp("weights") / "tiny-clavicles.safetensors", ALL_ORGANS)


@pytest.fixture(scope="session")
def mixed_films(tmp_path_factory, jsrt_dir: Path, montgomery_dir: Path) -> Path:
    """Two JSRT films (1024 x 1024) and one Montgomery film (512 x 623) in one folder: the
    inputs of the table commands' tests (a table and the images its ids name)."""
    folder = tmp_path_factory.mktemp("films")
    for path in [*sorted((jsrt_dir / "images").glob("*.png"))[:2], sorted((montgomery_dir / "images").glob("*.png"))[0]]:
        (folder / path.name).write_bytes(path.read_bytes())
    return folder


@pytest.fixture(scope="session")
def xray_folder(tmp_path_factory, jsrt_dir: Path) -> Path:
    """Seven inputs for dataset-pipeline tests: four JSRT PNGs, one cropped to a
    non-square 1024x800 PNG, a text file named ``.png`` and an empty ``.jpg``."""
    import cv2

    folder = tmp_path_factory.mktemp("xrays")
    names = sorted(p.name for p in (jsrt_dir / "images").glob("*.png"))[:5]
    for name in names[:4]:
        (folder / name).write_bytes((jsrt_dir / "images" / name).read_bytes())
    image = cv2.imread(str(jsrt_dir / "images" / names[4]), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(folder / "cropped.png"), image[:, 100:900])
    (folder / "notes.png").write_text("not an image\n")
    (folder / "empty.jpg").write_bytes(b"")
    return folder


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test, restored after it: on a loaded 2-core machine a thread
    pool mostly waits (10x slower). Use with ``pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
