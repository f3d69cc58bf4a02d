"""What runs the network: OpenVINO by default on the CPU, torch as the fallback, the same answer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from chexmask._errors import ChexmaskError
from chexmask.inference import openvino_net
from chexmask.inference.segmenter import Segmenter
from chexmask.io.read import read_image

pytest.importorskip("openvino")


@pytest.fixture(scope="module")
def jsrt_images(jsrt_dir):
    return [read_image(p) for p in sorted((jsrt_dir / "images").glob("*.png"))[:4]]


@pytest.mark.parametrize(("weights", "clavicles"), [("hybridgnet-jsrt-256", False), ("hybridgnet-multi-256", True)])
def test_openvino_gives_torchs_answer_on_jsrt_images(jsrt_images, weights, clavicles):
    """The bar for a default backend: landmarks within 0.05 px, uncertainty within 1e-3 px of torch,
    for both shipped models (the multi-source one with its finer skips and clavicles)."""
    ov = Segmenter(weights, uncertainty=10, batch_size=4, clavicles=clavicles)
    pt = Segmenter(weights, uncertainty=10, batch_size=4, backend="torch", clavicles=clavicles)
    assert ov.backend.startswith("openvino ") and pt.backend.startswith("torch ")
    for a, b in zip(ov.segment_images(jsrt_images), pt.segment_images(jsrt_images)):
        assert np.abs(a.landmarks - b.landmarks).max() < 0.05
        assert np.abs(a.node_std - b.node_std).max() < 1e-3
        assert abs(a.uncertainty - b.uncertainty) < 1e-3
        np.testing.assert_allclose(a.latent_mu, b.latent_mu, atol=1e-4)
        assert (a.masks()["heart"] != b.masks()["heart"]).mean() < 1e-4


def test_openvino_repeats_itself_bitwise(jsrt_images, tiny_weights):
    seg = Segmenter(tiny_weights, uncertainty=5, batch_size=2, micro_batch=2)
    first, again = seg.segment_images(jsrt_images), seg.segment_images(jsrt_images[::-1])[::-1]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.landmarks, b.landmarks)
        np.testing.assert_array_equal(a.node_std, b.node_std)


def test_openvino_gives_torchs_answer_with_refine_stages(jsrt_images, tiny_refine_weights):
    """A model with further image-to-graph skips exports its extra feature maps too."""
    ov = Segmenter(tiny_refine_weights, uncertainty=5, batch_size=2)
    pt = Segmenter(tiny_refine_weights, uncertainty=5, batch_size=2, backend="torch")
    assert ov.backend.startswith("openvino ")
    for a, b in zip(ov.segment_images(jsrt_images), pt.segment_images(jsrt_images)):
        assert np.abs(a.landmarks - b.landmarks).max() < 0.05
        assert np.abs(a.node_std - b.node_std).max() < 1e-3


def test_the_export_is_cached_and_a_broken_cache_is_rebuilt(tiny_weights, tmp_path, monkeypatch):
    monkeypatch.setenv("CHEXMASK_CACHE", str(tmp_path))
    Segmenter(tiny_weights)
    (folder,) = (tmp_path / "openvino").iterdir()
    assert sorted(p.name for p in folder.iterdir()) == ["decoder.onnx", "encoder.onnx", "sample_decoder.onnx"]

    def no_export(*args):
        raise AssertionError("exported again")

    with monkeypatch.context() as m:
        m.setattr(openvino_net, "_convert", no_export)
        Segmenter(tiny_weights)  # read from the cache
    (folder / "decoder.onnx").unlink()  # e.g. a run killed while saving
    assert Segmenter(tiny_weights).backend.startswith("openvino")
    assert (folder / "decoder.onnx").exists()


def test_without_openvino_auto_falls_back_to_torch_and_openvino_says_why(tiny_weights, monkeypatch):
    monkeypatch.setattr(openvino_net, "openvino_version", lambda: None)
    assert Segmenter(tiny_weights).backend.startswith("torch ")
    with pytest.raises(ChexmaskError, match="pip install openvino"):
        Segmenter(tiny_weights, backend="openvino")
    with pytest.raises(ChexmaskError, match=r"--backend 'onnx': expected one of \['auto', 'openvino', 'torch'\]"):
        Segmenter(tiny_weights, backend="onnx")


def test_run_json_names_the_backend(tiny_weights, xray_folder, tmp_path):
    from chexmask.inference.pipeline import segment_dataset

    for backend in ("torch", "auto"):
        out = tmp_path / f"{backend}.csv"
        segment_dataset([xray_folder / "JPCLN001.png"], out, weights=tiny_weights, uncertainty=2, workers=0, progress=False,
                        backend=backend)
        record = json.loads(out.with_suffix(".run.json").read_text())
        assert record["fingerprint"]["backend"].split()[0] == ("torch" if backend == "torch" else "openvino")


def test_an_unusable_cache_falls_back_to_torch_with_a_warning(tiny_weights, tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("CHEXMASK_CACHE", str(blocker / "cache"))
    with caplog.at_level("WARNING"):
        seg = Segmenter(tiny_weights)
    assert seg.backend.startswith("torch ") and "OpenVINO could not load the network" in caplog.text
    with pytest.raises(ChexmaskError, match="--backend openvino: "):
        Segmenter(tiny_weights, backend="openvino")


def test_openvino_exports_the_input_standardisation(jsrt_images, tmp_path, monkeypatch):
    """A "zscore" model's standardisation is part of the exported network: OpenVINO gives torch's answer."""
    import torch

    from chexmask.model.hybridgnet import HybridGNet, ModelConfig
    from chexmask.model.weights import save_weights

    monkeypatch.setenv("CHEXMASK_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    model = HybridGNet(ModelConfig(input_size=64, input_norm="zscore"), mean_shape=np.random.default_rng(0).uniform(0.2, 0.8, (120, 2)))
    torch.nn.init.normal_(model.conv1.weight, std=0.01)
    path = tmp_path / "zscore.safetensors"
    save_weights(model, path)
    ov, pt = Segmenter(path, uncertainty=0), Segmenter(path, uncertainty=0, backend="torch")
    assert ov.backend.startswith("openvino ")
    for a, b in zip(ov.segment_images(jsrt_images[:2]), pt.segment_images(jsrt_images[:2])):
        assert np.abs(a.landmarks - b.landmarks).max() < 0.05
