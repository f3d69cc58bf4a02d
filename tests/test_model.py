import json

import numpy as np
import pytest
import torch

from chexmask import ChexmaskError
from chexmask.inference.predictor import image_seed, predict_batch
from chexmask.model.hybridgnet import HybridGNet, ModelConfig
from chexmask.model.weights import load_model, resolve_weights, save_weights


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    model = HybridGNet(ModelConfig(input_size=64), mean_shape=np.random.default_rng(0).uniform(0.2, 0.8, (120, 2)))
    for head in (model.conv1, model.pos1, model.pos2):  # non-zero heads so samples differ
        torch.nn.init.normal_(head.weight, std=0.01)
    torch.nn.init.constant_(model.fc_logvar.bias, -1.0)
    return model.eval()


def test_forward_shapes(tiny_model):
    out = tiny_model(torch.rand(3, 1, 64, 64))
    assert out.points.shape == (3, 120, 2)
    assert out.mu.shape == out.logvar.shape == (3, 64)
    assert [p.shape for p in out.intermediate] == [(3, 120, 2)] * 2


def test_untrained_model_starts_at_mean_shape():
    shape = np.random.default_rng(1).uniform(0.2, 0.8, (120, 2)).astype(np.float32)
    model = HybridGNet(ModelConfig(input_size=64), mean_shape=shape).eval()
    np.testing.assert_allclose(model(torch.rand(1, 1, 64, 64)).points[0].detach().numpy(), shape, atol=1e-6)


def test_bad_config_and_input():
    with pytest.raises(ValueError, match="divisible by 32"):
        ModelConfig(input_size=100)
    model = HybridGNet(ModelConfig(input_size=64))
    with pytest.raises(ValueError, match=r"\(B, 1, 64, 64\)"):
        model(torch.rand(1, 1, 32, 32))


def test_weights_round_trip_and_hash(tiny_model, tmp_path):
    path = tmp_path / "m.safetensors"
    digest = save_weights(tiny_model, path, {"epochs": 3})
    model, info = load_model(path)
    assert info["sha256"] == digest and info["epochs"] == 3 and info["config"]["input_size"] == 64
    x = torch.rand(2, 1, 64, 64)
    torch.testing.assert_close(model(x).points, tiny_model(x).points)
    assert json.loads(json.dumps(info))  # serialisable provenance


def test_unknown_weights_name_suggests():
    with pytest.raises(ChexmaskError, match="not a shipped model name"):
        resolve_weights("no-such-model")


def test_predictive_samples_independent_of_batch(tiny_model):
    x = torch.rand(3, 1, 64, 64)
    seeds = [image_seed(im[0].numpy(), 5) for im in x]
    full = predict_batch(tiny_model, x, seeds, n_samples=7)
    one = predict_batch(tiny_model, x[2:], seeds[2:], n_samples=7)
    np.testing.assert_allclose(full.sample_std[2], one.sample_std[0], atol=1e-6)
    np.testing.assert_allclose(full.points[2], one.points[0], atol=1e-6)
    assert full.sample_std.mean() > 0
    again = predict_batch(tiny_model, x, seeds, n_samples=7)
    np.testing.assert_array_equal(full.sample_mean, again.sample_mean)
    other = predict_batch(tiny_model, x, [image_seed(im[0].numpy(), 6) for im in x], n_samples=7)
    assert not np.array_equal(full.sample_mean, other.sample_mean)
    # chunked decoding gives the same result
    chunked = predict_batch(tiny_model, x, seeds, n_samples=7, max_decode=4)
    np.testing.assert_allclose(chunked.sample_std, full.sample_std, atol=1e-6)


def test_image_seed_depends_on_pixels_and_seed_only():
    a = np.arange(64, dtype=np.uint8).reshape(8, 8)
    b = a.copy()
    b[3, 3] += 1
    assert image_seed(a, 0) == image_seed(a.copy(), 0) == image_seed(a.astype(np.float32) / 255.0, 0)
    assert len({image_seed(a, 0), image_seed(b, 0), image_seed(a, 1)}) == 3
    assert 0 <= image_seed(a) < 2**63


@pytest.mark.parametrize("batch_size", [1, 2, 8])
def test_segment_files_reports_bad_files_and_keeps_order(batch_size, tiny_weights, jsrt_dir, tmp_path):
    from chexmask.inference.segmenter import Failure, Segmentation, Segmenter

    bad = tmp_path / "notes.png"
    bad.write_text("not an image\n")
    good = [jsrt_dir / "images" / "JPCLN001.png", jsrt_dir / "images" / "JPCLN002.png"]
    results = list(Segmenter(tiny_weights, batch_size=batch_size).segment_files([good[0], bad, good[1]]))
    assert isinstance(results[1], Failure) and results[1].path == str(bad)
    assert results[1].message == "not a PNG, JPEG or DICOM image"
    assert [r.image_id for r in results if isinstance(r, Segmentation)] == ["JPCLN001.png", "JPCLN002.png"]


def test_zscore_input_norm_standardises_inside_the_network(tmp_path):
    """A "zscore" model answers the same for an image and its gain/offset change, and keeps its norm on disk."""
    from chexmask.model.hybridgnet import ZSCORE_MEAN, ZSCORE_STD, standardise

    with pytest.raises(ValueError, match="input_norm must be one of"):
        ModelConfig(input_size=64, input_norm="histeq")
    x = torch.rand(2, 1, 64, 64) * 0.5
    z = standardise(x)
    torch.testing.assert_close(z.mean(dim=(1, 2, 3)), torch.full((2,), ZSCORE_MEAN), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.std(dim=(1, 2, 3), unbiased=False), torch.full((2,), ZSCORE_STD), atol=1e-4, rtol=0)
    torch.manual_seed(0)
    model = HybridGNet(ModelConfig(input_size=64, input_norm="zscore")).eval()
    torch.nn.init.normal_(model.conv1.weight, std=0.01)
    with torch.no_grad():
        torch.testing.assert_close(model(x).points, model(x * 1.7 + 0.1).points, atol=1e-5, rtol=0)
        raw = HybridGNet(ModelConfig(input_size=64)).eval()
        raw.load_state_dict(model.state_dict())
        torch.nn.init.normal_(raw.conv1.weight, std=0.01)
        assert not torch.allclose(raw(x).points, raw(x * 1.7 + 0.1).points, atol=1e-5)
    path = tmp_path / "z.safetensors"
    save_weights(model, path)
    loaded, info = load_model(path)
    assert loaded.config.input_norm == "zscore" and info["config"]["input_norm"] == "zscore"
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).points, model(x).points)
