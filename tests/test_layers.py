import numpy as np
import pytest
import torch

from chexmask.anatomy import ring_adjacency
from chexmask.model.layers import ChebConv, sample_roi, scaled_laplacian


def test_scaled_laplacian_of_ring():
    lap = scaled_laplacian(ring_adjacency((5,))).numpy()
    # ring degree 2: L~ = -A / 2, eigenvalues in [-1, 1]
    np.testing.assert_allclose(lap, -ring_adjacency((5,)) / 2, atol=1e-7)
    ev = np.linalg.eigvalsh(lap)
    assert ev.min() >= -1 - 1e-6 and ev.max() <= 1 + 1e-6


def test_chebconv_matches_explicit_chebyshev_polynomials():
    torch.manual_seed(0)
    lap = scaled_laplacian(ring_adjacency((6, 4)))
    conv = ChebConv(3, 2, K=4, laplacian=lap)
    x = torch.randn(2, 10, 3)
    L = lap.double().numpy()
    eye = np.eye(10)
    T = [eye, L, 2 * L @ L - eye]
    T.append(2 * L @ T[2] - T[1])
    W = conv.weight.detach().double().numpy()
    expected = sum(np.einsum("nm,bmc,cd->bnd", T[k], x.double().numpy(), W[k]) for k in range(4)) + conv.bias.detach().numpy()
    np.testing.assert_allclose(conv(x).detach().numpy(), expected, rtol=1e-5, atol=1e-5)


def test_chebconv_k1_is_linear_and_rejects_k0():
    lap = scaled_laplacian(ring_adjacency((3,)))
    conv = ChebConv(2, 2, K=1, laplacian=lap)
    x = torch.randn(1, 3, 2)
    torch.testing.assert_close(conv(x), x @ conv.weight[0] + conv.bias)
    with pytest.raises(ValueError, match="K must be"):
        ChebConv(2, 2, K=0, laplacian=lap)


def test_sample_roi_reads_pixel_centres_bilinearly():
    h, w = 6, 8
    feat = torch.arange(h * w, dtype=torch.float32).view(1, 1, h, w)  # value = 8*row + col
    # centre of pixel (row 2, col 3) in normalised coordinates
    pts = torch.tensor([[[(3 + 0.5) / w, (2 + 0.5) / h]]])
    out = sample_roi(feat, pts, window=3).view(3, 3)
    rows, cols = np.meshgrid([1, 2, 3], [2, 3, 4], indexing="ij")
    np.testing.assert_allclose(out.numpy(), 8 * rows + cols)
    # half a pixel to the right: bilinear mean of two neighbours
    pts2 = pts + torch.tensor([[[0.5 / w, 0.0]]])
    assert sample_roi(feat, pts2, window=1).item() == pytest.approx(8 * 2 + 3.5)


def test_sample_roi_shape_and_gradient():
    feat = torch.randn(2, 4, 8, 8, requires_grad=True)
    pts = torch.rand(2, 120, 2, requires_grad=True)
    out = sample_roi(feat, pts)
    assert out.shape == (2, 120, 36)
    out.sum().backward()
    assert pts.grad is not None and feat.grad is not None


@pytest.mark.parametrize("shared", [False, True])
def test_projected_samples_equal_projecting_the_samples(shared):
    """project_roi + sample_projected is sample_roi followed by the ChebConv projection, to float error,
    for nodes inside, on the edge of and outside the frame (zero padding), per image and shared by many samples."""
    from chexmask.model.layers import project_roi, sample_projected

    g = torch.Generator().manual_seed(0)
    feats = torch.randn(1 if shared else 3, 16, 8, 8, generator=g)
    points = torch.rand(3, 20, 2, generator=g) * 1.4 - 0.2  # some nodes outside [0, 1]
    points[:, 0] = torch.tensor([0.0, 1.0])
    weight = torch.randn(4, 16 * 9, 5, generator=g)
    samples = sample_roi(feats.expand(3, -1, -1, -1), points, 3)
    direct = samples @ weight.permute(1, 0, 2).reshape(16 * 9, 4 * 5)
    via = sample_projected(project_roi(feats, weight, 3), points, 3)
    torch.testing.assert_close(via, direct, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("refine_levels", [(), (2, 0)])  # level 0 is sampled, not projected
def test_decoding_many_samples_of_one_image_matches_decoding_them_one_by_one(refine_levels):
    from chexmask.model.hybridgnet import HybridGNet, ModelConfig

    torch.manual_seed(0)
    model = HybridGNet(ModelConfig(input_size=64, refine_levels=refine_levels),
                       mean_shape=np.random.default_rng(0).uniform(0.2, 0.8, (120, 2))).eval()
    for head in (model.conv1, model.pos1, model.pos2, *(stage.head for stage in model.refine)):
        torch.nn.init.normal_(head.weight, std=0.05)
    with torch.no_grad():
        mu, _, feats = model.encode(torch.rand(1, 1, 64, 64))
        z = mu + torch.randn(6, mu.shape[1])
        shared = model.decode(z, feats)[0]
        one_by_one = torch.cat([model.decode(z[i : i + 1], feats)[0] for i in range(6)])
    torch.testing.assert_close(shared, one_by_one, atol=5e-5, rtol=0)  # 0.05 px of the 1024 frame: float rounding over four skips
    assert float((shared - shared.mean(0)).abs().max()) > 1e-3  # the samples differ: a real check


def test_refine_stages_start_from_the_model_they_extend():
    """Warm-started into a model with further skips, trained weights give their own answer
    (the stages' residual heads start at zero), and every stage's position is supervised."""
    import dataclasses

    from chexmask.model.hybridgnet import HybridGNet, ModelConfig
    from chexmask.model.train import warm_start

    torch.manual_seed(0)
    base = HybridGNet(ModelConfig(input_size=64), mean_shape=np.random.default_rng(0).uniform(0.2, 0.8, (120, 2))).eval()
    torch.nn.init.normal_(base.conv1.weight, std=0.05)
    refined = HybridGNet(dataclasses.replace(base.config, refine_levels=(2,)), mean_shape=base.mean_shape.numpy()).eval()
    warm_start(refined, base)
    assert refined.skip_levels == (5, 4, 2)
    with torch.no_grad():
        x = torch.rand(2, 1, 64, 64)
        a, b = base(x), refined(x)
    torch.testing.assert_close(a.points, b.points, atol=0, rtol=0)
    assert len(b.intermediate) == 3 and torch.equal(b.intermediate[-1], a.points)
    with pytest.raises(ValueError, match="refine_levels must be encoder levels 0-3"):
        ModelConfig(input_size=64, refine_levels=(4,))
