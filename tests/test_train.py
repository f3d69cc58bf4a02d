import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from chexmask.model.data import augment, load_jsrt
from chexmask.model.train import TrainConfig, landmark_mse, train


def test_augment_keeps_landmarks_on_the_anatomy():
    """Points drawn into an image stay under the transformed points."""
    rng = np.random.default_rng(0)
    img = np.zeros((128, 128), np.uint8)
    pts = rng.uniform(0.2, 0.8, (120, 2)).astype(np.float32)
    for x, y in (pts * 128).astype(int):
        img[y - 1 : y + 2, x - 1 : x + 2] = 255
    out, moved = augment(img, pts, rng)
    assert out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    xy = np.clip((moved * 128).round().astype(int), 0, 127)
    assert (out[xy[:, 1], xy[:, 0]] > 0.2).mean() > 0.95


def test_landmark_mse_ignores_missing():
    t = np.zeros((2, 120, 2))
    t[1, 94:] = np.nan
    p = np.full((2, 120, 2), 1 / 1024)
    assert landmark_mse(p, t) == pytest.approx(2.0)


def test_load_jsrt_maps_landmarks(jsrt_dir):
    d = load_jsrt(jsrt_dir, "val", 64, limit=2)
    assert d.images.shape == (2, 64, 64) and d.targets.shape == (2, 120, 2)
    assert np.isfinite(d.targets).all() and 0 < d.targets.min() and d.targets.max() < 1


def test_training_is_resumable_and_deterministic(jsrt_dir, tmp_path):
    base = dict(data_dir=str(jsrt_dir), size=64, epochs=2, batch_size=2, subset=4, threads=1)
    full = train(TrainConfig(out_dir=str(tmp_path / "full"), **base), progress=False)
    # a run stopped after epoch 1, then resumed from its checkpoint
    half = TrainConfig(out_dir=str(tmp_path / "half"), **{**base, "epochs": 2})
    import chexmask.model.train as t

    stop = t._epoch_batches

    def one_epoch_then_die(data, cfg, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        return stop(data, cfg, epoch)

    t._epoch_batches = one_epoch_then_die
    try:
        with pytest.raises(KeyboardInterrupt):
            train(half, progress=False)
    finally:
        t._epoch_batches = stop
    resumed = train(half, progress=False)
    hist = json.loads((tmp_path / "half" / "history.json").read_text())
    assert [h["epoch"] for h in hist] == [0, 1]
    a, b = load_file(str(full)), load_file(str(resumed))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_missing_organs_are_masked_out_of_the_loss():
    """Lungs-only sources (Montgomery, Shenzhen): heart nodes are NaN and carry no gradient."""
    import torch

    from chexmask.model.hybridgnet import HybridGNet, ModelConfig
    from chexmask.model.train import _loss

    model = HybridGNet(ModelConfig(input_size=64))
    out = model(torch.rand(2, 1, 64, 64))
    target = torch.full((2, 120, 2), 0.3)
    target[:, 94:] = float("nan")
    valid = torch.isfinite(target).all(-1).float()
    loss = _loss(out, torch.nan_to_num(target), valid, kl_weight=0.0)
    assert torch.isfinite(loss)
    grad = torch.autograd.grad(loss, out.points)[0]
    assert grad[:, 94:].abs().max() == 0 and grad[:, :94].abs().max() > 0
