"""The engine: reverse == forward == finite differences, batching, chunking, subsets, chains."""

import platform

import numpy as np
import pytest
from helpers import assert_close_jacobian, central_jacobian
from hypothesis import given, settings
from hypothesis import strategies as st
from models import branchy, mlp

import jacprop
from jacprop.engine import choose_mode, jacobian
from jacprop.graph import chain

RNG = np.random.default_rng(3)


def test_bishop_two_layer_tanh_closed_form():
    """Bishop 8.1.5 by hand: J_ki = sum_j w2_kj (1 - z_j^2) w1_ji with z = tanh(W1 x + b1)."""
    model = mlp([3, 4, 2], ["tanh", "linear"], seed=1)
    W1, b1 = model.nodes[2].op.kernel.T, model.nodes[2].op.bias  # (hidden, in)
    W2 = model.nodes[3].op.kernel.T  # (out, hidden)
    X = RNG.normal(size=(5, 3))
    expected = np.zeros((5, 2, 3))
    for n in range(5):
        z = [np.tanh(sum(W1[j, i] * X[n, i] for i in range(3)) + b1[j]) for j in range(4)]
        for k in range(2):
            for i in range(3):
                expected[n, k, i] = sum(W2[k, j] * (1 - z[j] ** 2) * W1[j, i] for j in range(4))
    for mode in ("reverse", "forward"):
        _, J = jacobian(model, X, mode=mode)
        np.testing.assert_allclose(J, expected, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_branchy_graph_matches_central_differences(mode):
    model = branchy()
    X = RNG.normal(size=(6, model.D))
    Y, J = jacobian(model, X, mode=mode)
    np.testing.assert_allclose(Y, model.forward(X), rtol=0, atol=0)
    assert_close_jacobian(J, central_jacobian(model.forward, X), 1e-8)


def test_batch_equals_row_by_row_and_chunks_do_not_matter():
    model = branchy()
    X = RNG.normal(size=(9, model.D))
    _, J = jacobian(model, X, deterministic=True)
    rows = np.concatenate([jacobian(model, X[i : i + 1], deterministic=True)[1] for i in range(len(X))])
    assert rows.tobytes() == J.tobytes()  # every block is padded to one height: the same bits
    fast = np.concatenate([jacobian(model, X[i : i + 1])[1] for i in range(len(X))])  # no padding
    np.testing.assert_allclose(fast, J, rtol=1e-14, atol=1e-15)
    _, J_small = jacobian(model, X, memory=1)  # one row per chunk
    np.testing.assert_allclose(J_small, J, rtol=1e-14, atol=1e-15)  # another block height may round differently


def test_outputs_and_wrt_select_rows_and_columns_of_J():
    model = branchy()
    X = RNG.normal(size=(4, model.D))
    Y, J = jacobian(model, X)
    for mode in ("reverse", "forward"):
        Ys, Js = jacobian(model, X, mode=mode, outputs=[4, 0], wrt=[14, 2, 3])
        np.testing.assert_allclose(Js, J[:, [4, 0]][:, :, [14, 2, 3]], rtol=1e-12, atol=1e-14)
        np.testing.assert_array_equal(Ys, Y[:, [4, 0]])


def test_chain_is_the_product_of_jacobians():
    first, second = mlp([4, 6, 3], ["tanh", "sigmoid"], seed=2), mlp([3, 5, 2], ["elu", "linear"], seed=3)
    X = RNG.normal(size=(5, 4))
    Y1, J1 = jacobian(first, X)
    _, J2 = jacobian(second, Y1)
    Y, J = jacobian(chain([first, second]), X)
    np.testing.assert_allclose(J, J2 @ J1, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(Y, second.forward(Y1), rtol=1e-14)


def test_float32_on_request():
    model = mlp([5, 8, 2], ["tanh", "linear"])
    X = RNG.normal(size=(3, 5))
    Y32, J32 = jacobian(model, X, dtype=np.float32)
    _, J64 = jacobian(model, X)
    assert J32.dtype == np.float32 and Y32.dtype == np.float32
    np.testing.assert_allclose(J32, J64, rtol=1e-5, atol=1e-6)


def test_linear_model_jacobian_is_the_same_for_every_row():
    model = mlp([3, 4, 2], ["linear", "linear"])
    X = RNG.normal(size=(4, 3))
    _, J = jacobian(model, X)
    assert J.shape == (4, 2, 3) and J.flags.writeable
    W = model.nodes[2].op.kernel @ model.nodes[3].op.kernel
    np.testing.assert_allclose(J, np.broadcast_to(W.T, (4, 2, 3)), rtol=1e-14)


def test_auto_mode_pushes_the_fewer_seeds():
    assert choose_mode(None, 2, 10) == "reverse"
    assert choose_mode(None, 10, 2) == "forward"


def test_api_entry_points():
    model = mlp([2, 3, 1], ["relu", "linear"])
    assert isinstance(model, jacprop.Model)
    Y, J = jacprop.jacobian(model, np.array([0.3, -0.2]))
    assert Y.shape == (1, 1) and J.shape == (1, 1, 2)
    with pytest.raises(jacprop.JacpropError, match=r"shape \(N, 2\)"):
        jacprop.jacobian(model, np.ones((3, 5)))
    Y0, J0 = jacprop.jacobian(model, np.zeros((0, 2)))
    assert Y0.shape == (0, 1) and J0.shape == (0, 1, 2)


@settings(max_examples=25, deadline=None)
@given(
    widths=st.lists(st.integers(1, 7), min_size=2, max_size=5),
    acts=st.lists(st.sampled_from(["tanh", "sigmoid", "softplus", "swish", "gelu", "mish", "softsign"]),
                  min_size=4, max_size=4),
    rows=st.integers(1, 5), seed=st.integers(0, 2**31),
)
def test_random_mlps_reverse_forward_and_finite_differences_agree(widths, acts, rows, seed):
    model = mlp(widths, acts + ["linear"] * 4, seed=seed)
    X = np.random.default_rng(seed).normal(size=(rows, widths[0]))
    _, Jr = jacobian(model, X, mode="reverse")
    _, Jf = jacobian(model, X, mode="forward")
    assert_close_jacobian(Jf, Jr, 1e-12)
    assert_close_jacobian(Jr, central_jacobian(model.forward, X), 1e-7)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_keep_freed_memory_sets_glibc_malloc_options():
    from jacprop.engine import keep_freed_memory

    assert keep_freed_memory() is True


@pytest.mark.parametrize("acts", [("tanh", "linear"), ("linear", "linear"), ("relu", "sigmoid")])
def test_the_last_product_written_straight_into_J_gives_the_same_bits(acts):
    from jacprop import engine

    model = mlp((5, 7, 3), acts)
    assert engine._writer(model) == 2 and engine._writer(branchy()) is None
    X = RNG.normal(size=(1100, 5))  # two full blocks written in place, and a partial one copied
    _, J = jacobian(model, X)
    copied = np.concatenate([Jc for _, _, Jc in engine.iter_jacobian(model, X)])
    assert J.tobytes() == copied.tobytes()
    _, J_sub = jacobian(model, X, outputs=[2, 0], wrt=[4, 1])
    np.testing.assert_array_equal(J_sub, J[:, [2, 0]][:, :, [4, 1]])
