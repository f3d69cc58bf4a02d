import numpy as np
import pytest

from chexmask.anatomy import N_NODES, NODE_COUNTS, graph_levels, organ_slices, pooling_matrix, ring_adjacency, split_organs, unpooling_matrix


def test_node_counts_and_order():
    assert NODE_COUNTS == {"right_lung": 44, "left_lung": 50, "heart": 26}
    assert N_NODES == 120
    s = organ_slices()
    assert (s["right_lung"], s["left_lung"], s["heart"]) == (slice(0, 44), slice(44, 94), slice(94, 120))


def test_ring_adjacency_is_union_of_closed_rings():
    a = ring_adjacency((4, 3))
    assert np.array_equal(a, a.T)
    assert a.sum(axis=1).tolist() == [2.0] * 7
    assert a[0, 3] == 1 and a[4, 6] == 1  # rings close
    assert a[3, 4] == 0  # no edge between organs
    assert np.trace(a) == 0


def test_pooling_averages_consecutive_pairs():
    p = pooling_matrix((5,))
    assert p.shape == (3, 5)
    np.testing.assert_allclose(p @ np.arange(5.0), [0.5, 2.5, 4.0])
    np.testing.assert_allclose(p.sum(1), 1.0)


def test_unpooling_interpolates_between_coarse_nodes():
    u = unpooling_matrix((4,))
    assert u.shape == (4, 2)
    np.testing.assert_allclose(u @ np.array([0.0, 2.0]), [0.0, 1.0, 2.0, 1.0])


def test_graph_levels_shapes():
    g = graph_levels()
    assert g.adjacency[0].shape == (120, 120)
    assert g.adjacency[1].shape == (60, 60)  # 22 + 25 + 13
    assert g.pool.shape == (60, 120) and g.unpool.shape == (120, 60)
    # a pooled contour unpools close to itself on a smooth circle
    t = np.linspace(0, 2 * np.pi, 44, endpoint=False)
    circle = np.stack([np.cos(t), np.sin(t)], 1)
    p = pooling_matrix((44,))
    assert np.abs(unpooling_matrix((44,)) @ (p @ circle) - circle).max() < 0.1


def test_split_organs_rejects_wrong_shape():
    parts = split_organs(np.zeros((120, 2)))
    assert parts["heart"].shape == (26, 2)
    with pytest.raises(ValueError, match=r"\(\.\.\., 120, 2\)"):
        split_organs(np.zeros((119, 2)))
