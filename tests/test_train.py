import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from chexmask.model.data import augment, load_source
from chexmask.model.train import TrainConfig, train
from chexmask.model.validation import landmark_mse
from chexmask.model.weights import load_model


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
    d = load_source(jsrt_dir, "val", 64, limit=2)
    assert d.images.shape == (2, 64, 64) and d.targets.shape == (2, 120, 2)
    assert np.isfinite(d.targets).all() and 0 < d.targets.min() and d.targets.max() < 1


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_training_is_resumable_and_deterministic(jsrt_dir, tmp_path, ema):
    base = dict(sources=[str(jsrt_dir)], size=64, epochs=2, batch_size=2, subset=4, threads=1, ema=ema)
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


def test_ema_weights_are_validated_and_exported(jsrt_dir, tmp_path):
    """--ema exports the moving average (BatchNorm statistics included), not the last step's
    weights; a bad decay and a resume with another decay are clear errors."""
    import torch

    from chexmask._errors import ChexmaskError

    with pytest.raises(ChexmaskError, match=r"ema 1.0: give a decay in \[0, 1\)"):
        TrainConfig([str(jsrt_dir)], str(tmp_path), ema=1.0)
    base = dict(sources=[str(jsrt_dir)], epochs=1, batch_size=2, subset=4, threads=1, size=32, out_dir=str(tmp_path))
    best = load_file(str(train(TrainConfig(ema=0.5, **base), progress=False)))
    ckpt = torch.load(tmp_path / "last.ckpt", weights_only=True)
    averaged = {k.removeprefix("module."): v.numpy() for k, v in ckpt["ema"].items() if k.startswith("module.")}
    assert int(ckpt["ema"]["n_averaged"]) == 2  # two steps of two images
    for key in ("encoder.blocks.0.conv1.weight", "encoder.blocks.0.bn1.running_mean"):
        np.testing.assert_array_equal(best[key], averaged[key])
        assert not np.array_equal(best[key], ckpt["model"][key].numpy()), key
    with pytest.raises(ChexmaskError, match="ema = 0.5, this run asks for ema = 0.9"):
        train(TrainConfig(ema=0.9, **base), progress=False)


def test_missing_organs_are_masked_out_of_the_loss():
    """Lungs-only sources (Montgomery, Shenzhen): heart nodes are NaN and carry no gradient."""
    import torch

    from chexmask.model.hybridgnet import HybridGNet, ModelConfig
    from chexmask.model.train import _landmark_term

    model = HybridGNet(ModelConfig(input_size=64))
    out = model(torch.rand(2, 1, 64, 64))
    target = torch.full((2, 120, 2), 0.3)
    target[:, 94:] = float("nan")
    valid = torch.isfinite(target).all(-1).float()
    loss = _landmark_term(out, torch.nan_to_num(target), valid)
    assert torch.isfinite(loss)
    grad = torch.autograd.grad(loss, out.points)[0]
    assert grad[:, 94:].abs().max() == 0 and grad[:, :94].abs().max() > 0


def test_lungs_only_sources_load_in_their_own_frame(montgomery_dir, shenzhen_dir):
    """Montgomery/Shenzhen landmarks sit in each stored image's frame: after padding and
    resizing they must still lie on the filled expert lung mask shipped with the source."""
    from chexmask.io.read import read_image
    from chexmask.model.data import load_source
    from chexmask.preprocess import pad_resize

    for folder in (montgomery_dir, shenzhen_dir):
        d = load_source(folder, "val", 128, limit=2)
        assert d.sources == [folder.name] * 2 and d.targets.shape == (2, 120, 2)
        assert np.isfinite(d.targets[:, :94]).all() and np.isnan(d.targets[:, 94:]).all()
        mask = read_image(folder / "masks" / f"{d.ids[0]}.png").pixels
        small, _ = pad_resize(mask, 128)
        xy = np.clip((d.targets[0, :94] * 128).round().astype(int), 0, 127)
        # contour nodes lie on the mask boundary: most are within a pixel of the mask
        near = [small[max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2].max() > 0 for x, y in xy]
        assert np.mean(near) > 0.9


def test_multi_source_dataset_with_clavicles(jsrt_dir, montgomery_dir):
    from chexmask.anatomy import ALL_ORGANS
    from chexmask.model.data import load_sources

    d = load_sources([jsrt_dir, montgomery_dir], "val", 64, limit=2, organs=ALL_ORGANS)
    assert d.targets.shape == (4, 166, 2) and d.source_names() == ["jsrt", "montgomery"]
    jsrt, mont = d.subset("jsrt"), d.subset("montgomery")
    assert np.isfinite(jsrt.targets).all()  # JSRT annotates heart and clavicles
    assert np.isnan(mont.targets[:, 94:]).all() and np.isfinite(mont.targets[:, :94]).all()


def test_balanced_order_draws_every_source_equally():
    from chexmask.model.train import balanced_order

    sources = ["a"] * 10 + ["b"] * 2 + ["c"] * 30
    order = balanced_order(sources, np.random.default_rng(0))
    assert len(order) == 42
    drawn = np.asarray(sources)[order]
    assert [(drawn == s).sum() for s in "abc"] == [14, 14, 14]
    # the small source repeats every image evenly; the large one draws distinct images
    assert sorted(np.bincount(order[drawn == "b"], minlength=12)[10:12]) == [7, 7]
    assert len(set(order[drawn == "c"])) == 14


def test_proportional_order_draws_every_image_once():
    from chexmask.model.train import epoch_order

    sources = ["a"] * 10 + ["b"] * 2 + ["c"] * 30
    order = epoch_order(sources, np.random.default_rng(0), "proportional")
    assert sorted(order) == list(range(42)) and list(order) != list(range(42))


def test_unknown_sampling_is_a_clear_error(jsrt_dir, tmp_path):
    from chexmask._errors import ChexmaskError
    from chexmask.model.train import TrainConfig

    with pytest.raises(ChexmaskError, match="sampling 'by_size'"):
        TrainConfig([str(jsrt_dir)], str(tmp_path), sampling="by_size")


def test_clavicle_nodes_missing_from_a_source_carry_no_loss():
    import torch

    from chexmask.anatomy import ALL_ORGANS
    from chexmask.model.hybridgnet import HybridGNet, ModelConfig
    from chexmask.model.train import _landmark_term

    model = HybridGNet(ModelConfig(input_size=64, organs=ALL_ORGANS))
    out = model(torch.rand(2, 1, 64, 64))
    target = torch.full((2, 166, 2), 0.3)
    target[1, 94:] = float("nan")  # a lungs-only image next to a fully annotated one
    valid = torch.isfinite(target).all(-1).float()
    grad = torch.autograd.grad(_landmark_term(out, torch.nan_to_num(target), valid), out.points)[0]
    assert grad[1, 94:].abs().max() == 0 and grad[0, 94:].abs().min() > 0 and grad[1, :94].abs().min() > 0


def test_spread_term_moves_the_spread_towards_the_error_and_never_the_nodes():
    """The spread term: zero gradient on the nodes, unannotated nodes left out, and the
    latent's sigma pushed up where the spread is below the error."""
    import torch

    from chexmask.model.hybridgnet import HybridGNet, ModelConfig
    from chexmask.model.train import _spread_term

    torch.manual_seed(0)
    model = HybridGNet(ModelConfig(input_size=64))
    with torch.no_grad():
        for layer in (model.dec_lin, model.pos1, model.pos2, model.conv1):  # a decoder that the latent moves
            layer.weight.normal_(0, 0.1)
    x = torch.rand(2, 1, 64, 64)
    mu, logvar, feats = model.encode(x)
    points, inter = model.decode(mu, feats)
    from chexmask.model.hybridgnet import ModelOutput

    out = ModelOutput(points, mu, logvar, inter)
    target = points.detach() + 1.0  # every node 1.4 off: far more than its spread
    target[:, 94:] = float("nan")
    valid = torch.isfinite(target).all(-1).float()
    term = _spread_term(model, out, feats, torch.nan_to_num(target), valid, 64, torch.Generator().manual_seed(1))
    assert term > 0
    g_points, g_logvar = torch.autograd.grad(term, [out.points, out.logvar], allow_unused=True)
    assert g_points is None or g_points.abs().max() == 0  # the error is detached
    assert g_logvar.sum() < 0 and (g_logvar < 0).float().mean() > 0.9  # more spread lowers the gap: sigmas go up
    # unannotated nodes carry nothing: moving their targets leaves the term unchanged
    moved = torch.nan_to_num(target).clone()
    moved[:, 94:] = 5.0
    again = _spread_term(model, out, feats, moved, valid, 64, torch.Generator().manual_seed(1))
    assert torch.isclose(term, again)


def test_a_spread_term_needs_two_samples(tmp_path):
    import pytest

    from chexmask._errors import ChexmaskError
    from chexmask.model.train import TrainConfig

    with pytest.raises(ChexmaskError, match="at least 2 samples"):
        TrainConfig(sources=[str(tmp_path)], out_dir=str(tmp_path), spread_weight=1.0, spread_samples=1)
    with pytest.raises(ChexmaskError, match="weight >= 0"):
        TrainConfig(sources=[str(tmp_path)], out_dir=str(tmp_path), spread_weight=-1.0)


def test_training_validation_is_the_score_validate_reports(jsrt_dir, montgomery_dir):
    """Training selects on the Dice ``chexmask validate`` prints: masks filled at the original size against the experts'."""
    from chexmask.inference.segmenter import Segmenter
    from chexmask.model.data import load_sources
    from chexmask.model.report import score_split
    from chexmask.model.validation import predict_points, selection_score, validation_scores

    model = load_model("hybridgnet-multi-256")[0]
    organs = model.config.organs
    data = load_sources([jsrt_dir, montgomery_dir], "val", 256, limit=5, organs=organs, references=True)
    scores = validation_scores(predict_points(model, data.images), data, organs)
    segmenter = Segmenter("hybridgnet-multi-256", uncertainty=0, backend="torch", clavicles=True)
    for folder in (jsrt_dir, montgomery_dir):
        ids = data.subset(folder.name).ids
        validated = score_split(segmenter, folder, "val").set_index("image_id").loc[ids]
        for group in ("lungs", "heart", "clavicles"):
            if f"{group}_dice" in validated:
                assert scores[folder.name][f"{group}_dice"] == pytest.approx(validated[f"{group}_dice"].mean(), abs=1e-6)
            else:
                assert f"{group}_dice" not in scores[folder.name]  # Montgomery: lungs only
    assert scores["montgomery"]["score"] == scores["montgomery"]["lungs_dice"]
    assert scores["jsrt"]["score"] == pytest.approx((scores["jsrt"]["lungs_dice"] + scores["jsrt"]["heart_dice"]) / 2)
    assert selection_score(scores) == pytest.approx((scores["jsrt"]["score"] + scores["montgomery"]["score"]) / 2)


def test_warm_start_from_a_model_without_clavicles():
    import torch

    from chexmask.anatomy import ALL_ORGANS
    from chexmask.model.hybridgnet import HybridGNet, ModelConfig
    from chexmask.model.train import warm_start

    small = HybridGNet(ModelConfig(input_size=64))
    big = HybridGNet(ModelConfig(input_size=64, organs=ALL_ORGANS))
    warm_start(big, small)
    torch.testing.assert_close(big.encoder.blocks[0].conv1.weight, small.encoder.blocks[0].conv1.weight)
    torch.testing.assert_close(big.dec_lin.weight[: small.dec_lin.weight.shape[0]], small.dec_lin.weight)
    torch.testing.assert_close(big.mean_shape[:120], small.mean_shape)


def test_size_mismatch_is_a_clear_error(jsrt_dir, tmp_path):
    """--init of another resolution and a checkpoint of another resolution name both sizes."""
    from chexmask._errors import ChexmaskError
    from chexmask.model.hybridgnet import HybridGNet, ModelConfig
    from chexmask.model.train import warm_start

    with pytest.raises(ChexmaskError, match="256 px but training is at 64 px"):
        warm_start(HybridGNet(ModelConfig(input_size=64)), HybridGNet(ModelConfig(input_size=256)))
    base = dict(sources=[str(jsrt_dir)], epochs=1, batch_size=2, subset=2, threads=1, out_dir=str(tmp_path))
    train(TrainConfig(size=32, **base), progress=False)
    with pytest.raises(ChexmaskError, match="size = 32.*size = 64"):
        train(TrainConfig(size=64, **base), progress=False)


def test_refine_levels_train_resume_and_warm_start_check(jsrt_dir, tmp_path):
    """--refine-level trains a model with further skips; a checkpoint of other levels is not
    resumed; weights with more stages than the model are a clear --init error; a level the
    encoder has not is a clear error."""
    from chexmask._errors import ChexmaskError

    base = dict(sources=[str(jsrt_dir)], epochs=1, batch_size=2, subset=2, threads=1, size=32)
    best = train(TrainConfig(out_dir=str(tmp_path / "r"), refine_levels=(2,), **base), progress=False)
    model, _ = load_model(best)
    assert model.config.refine_levels == (2,) and len(model.refine) == 1
    with pytest.raises(ChexmaskError, match=r"refine_levels = \[2\].*refine_levels = \(\)"):
        train(TrainConfig(out_dir=str(tmp_path / "r"), **base), progress=False)
    with pytest.raises(ChexmaskError, match=r"have tensor refine.0.*refine_levels \(2,\), this run \(\)\); to train on from them, give exactly --refine-level 2"):
        train(TrainConfig(out_dir=str(tmp_path / "plain"), init=str(best), **base), progress=False)
    with pytest.raises(ChexmaskError, match="model settings: refine_levels must be encoder levels 0-3"):
        train(TrainConfig(out_dir=str(tmp_path / "bad"), refine_levels=(7,), **base), progress=False)


def test_input_norm_is_checked_and_kept_across_a_resume(jsrt_dir, tmp_path):
    """A bad --input-norm is a clear error; a checkpoint of another input norm is not resumed."""
    from chexmask._errors import ChexmaskError

    with pytest.raises(ChexmaskError, match="input_norm 'histeq': choose one of none, zscore"):
        TrainConfig([str(jsrt_dir)], str(tmp_path), input_norm="histeq")
    base = dict(sources=[str(jsrt_dir)], epochs=1, batch_size=2, subset=2, threads=1, out_dir=str(tmp_path), size=32)
    best = train(TrainConfig(input_norm="zscore", **base), progress=False)
    assert load_model(best)[0].config.input_norm == "zscore"
    with pytest.raises(ChexmaskError, match="input_norm = zscore.*input_norm = none"):
        train(TrainConfig(**base), progress=False)


def test_warm_start_across_input_norms_warns(jsrt_dir, tmp_path, caplog):
    base = dict(sources=[str(jsrt_dir)], epochs=1, batch_size=2, subset=2, threads=1, size=32)
    raw = train(TrainConfig(out_dir=str(tmp_path / "raw"), **base), progress=False)
    with caplog.at_level("WARNING", logger="chexmask.model.train"):
        train(TrainConfig(out_dir=str(tmp_path / "z"), init=str(raw), input_norm="zscore", **base), progress=False)
    assert "trained with input_norm = none, this run uses zscore" in caplog.text


def test_kl_schedule_ramps_geometrically_then_holds():
    cfg = TrainConfig(["x"], "o", epochs=10, kl_weight=1e-5, kl_final=1e-3, kl_ramp=0.5)
    weights = [cfg.kl_at(e) for e in range(10)]
    assert weights[0] == pytest.approx(1e-5) and weights[5:] == pytest.approx([1e-3] * 5)
    assert weights[2] / weights[1] == pytest.approx(weights[3] / weights[2])  # geometric
    assert TrainConfig(["x"], "o", kl_weight=2e-5).kl_at(7) == 2e-5  # constant without kl_final
    with pytest.raises(Exception, match="KL schedule"):
        TrainConfig(["x"], "o", kl_weight=0.0)
    with pytest.raises(Exception, match="KL schedule"):
        TrainConfig(["x"], "o", kl_ramp=1.5, kl_final=1e-3)


def test_kl_option_is_parsed_and_bad_values_named(tmp_path):
    from typer.testing import CliRunner

    from chexmask.cli import app
    from chexmask.cli.training import _kl_schedule

    assert _kl_schedule("1e-5") == (1e-5, None) and _kl_schedule("1e-5:3e-4") == (1e-5, 3e-4)
    result = CliRunner().invoke(app, ["train", str(tmp_path), "--kl", "lots", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "--kl 'lots'" in result.output


def test_kl_weight_is_logged_per_epoch(jsrt_dir, tmp_path):
    cfg = TrainConfig([str(jsrt_dir)], str(tmp_path / "run"), epochs=2, batch_size=2, subset=4, seed=0, threads=1,
                      kl_weight=1e-5, kl_final=1e-4, kl_ramp=0.5)
    train(cfg, progress=False)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [h["kl_weight"] for h in history] == pytest.approx([1e-5, 1e-4])


def test_denormals_are_flushed_while_the_network_runs_and_restored_after():
    import torch

    from chexmask.model.hybridgnet import flush_denormals

    tiny = torch.tensor([1e-39])  # below float32's smallest normal number
    assert (tiny * 1.0).item() != 0.0
    with flush_denormals():
        with flush_denormals():
            pass
        assert (tiny * 1.0).item() == 0.0  # still on after a nested use ends
    assert (tiny * 1.0).item() != 0.0


def test_failure_augment_moves_landmarks_with_the_anatomy():
    """Every failure mode keeps drawn points under the moved points; NaN organs stay NaN; p = 0 is the identity."""
    from chexmask.model.data import FAILURE_MODES, failure_augment

    rng = np.random.default_rng(1)
    img = np.full((128, 128), 60, np.uint8)
    pts = rng.uniform(0.25, 0.75, (120, 2)).astype(np.float32)
    pts[94:] = np.nan  # a lungs-only source: the heart's centre is guessed between the lungs
    for x, y in (pts[:94] * 128).astype(int):
        img[y - 1 : y + 2, x - 1 : x + 2] = 255
    seen = 0
    for _ in range(60):
        out, moved = failure_augment(img, pts, rng, p=1.0)
        assert out.dtype == np.uint8 and out.shape == img.shape and np.isnan(moved[94:]).all()
        xy = np.clip((moved[:94] * 128).round().astype(int), 0, 127)
        assert (out[xy[:, 1], xy[:, 0]] > np.median(out)).mean() > 0.9
        seen += not np.array_equal(out, img)
    assert seen == 60 and len(FAILURE_MODES) == 6
    same, kept = failure_augment(img, pts, rng, p=0.0)
    assert same is img and kept is pts


def test_failure_augment_option_trains_and_is_checked(jsrt_dir, tmp_path):
    from chexmask.cli import app
    from typer.testing import CliRunner

    res = CliRunner().invoke(app, ["train", str(jsrt_dir), "--size", "32", "--epochs", "1", "--batch-size", "2", "--threads", "1",
                                   "--failure-augment", "1.0", "-o", str(tmp_path / "r"), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "r" / "train_config.json").read_text())["failure_augment"] == 1.0
    bad = CliRunner().invoke(app, ["train", str(jsrt_dir), "--failure-augment", "2", "-o", str(tmp_path / "b")])
    assert bad.exit_code == 2 and "probability in [0, 1]" in bad.output


def test_the_logged_training_loss_is_per_head():
    """The landmark term sums the heads (final + every intermediate); the log divides by their number, 3 or 5."""
    from types import SimpleNamespace

    import torch

    from chexmask.model.train import _landmark_term

    target = torch.zeros(1, 4, 2)
    valid = torch.ones(1, 4)
    for n_intermediate in (2, 4):
        heads = [torch.full((1, 4, 2), 0.1)] * (1 + n_intermediate)  # every node 0.1 off in x and y: 0.02 per head
        out = SimpleNamespace(points=heads[0], intermediate=heads[1:])
        term = _landmark_term(out, target, valid).item()
        assert term == pytest.approx(0.02 * (1 + n_intermediate))
        assert term / (1 + len(out.intermediate)) == pytest.approx(0.02)
