import numpy as np
import pytest

from chexmask import InputError, read_image
from chexmask.sources import SOURCES, get_source
from sources_fixtures import MAKERS


@pytest.mark.parametrize("name", list(SOURCES))
def test_index_selects_frontal_images_with_source_ids(name, tmp_path, jsrt_dir):
    expected = MAKERS[name](tmp_path, jsrt_dir)
    index = get_source(name)(tmp_path)
    assert index["id"].tolist() == sorted(expected)
    for path in index["path"]:
        img = read_image(path)
        assert img.pixels.shape == (256, 256) and img.pixels.std() > 20  # decoded, windowed, not blank


def test_vindr_monochrome1_is_inverted(tmp_path, jsrt_dir):
    MAKERS["vindr-cxr"](tmp_path, jsrt_dir)
    index = get_source("vindr-cxr")(tmp_path)
    img = read_image(index["path"][0])
    assert img.photometric == "MONOCHROME1"
    # the fixture stores 255 - JSRT; reading must undo the inversion: lungs (dark) stay dark
    import cv2

    ref = cv2.resize(cv2.imread(str(jsrt_dir / "images" / "JPCLN001.png"), cv2.IMREAD_GRAYSCALE), (256, 256))
    assert np.corrcoef(img.pixels.ravel(), ref.ravel())[0, 1] > 0.99


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(InputError, match="root folder not found"):
        get_source("padchest")(tmp_path / "nope")
    with pytest.raises(InputError, match="no ChestX-ray8 metadata found"):
        get_source("chestxray8")(tmp_path)
    with pytest.raises(ValueError, match="did you mean 'chexpert'"):
        get_source("chexpret")
