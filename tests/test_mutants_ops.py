"""Ops where mutation testing (issue #20, tests/README.md) found holes.  tests/test_ops.py checks
each op's vjp and jvp against central differences of the op's own forward, so a wrong forward
(a shift with the wrong sign, epsilon subtracted) passes there: here the forward values are
checked against the layers' formulas written out in the test, and the ops are built inside the
tests (mutmut only sees code that runs inside a test)."""

import numpy as np
import pytest
from helpers import assert_close_jacobian, central_jacobian

from jacprop import ops
from jacprop.engine import jacobian
from jacprop.graph import GraphBuilder
from jacprop.ops.activations import Activation

R = np.random.default_rng(23)


def one_op(op, shape):
    b = GraphBuilder([("x", shape)])
    h = b.add("op", op, b.inputs, "Op")
    if len(shape) > 1:
        h = b.add("flat", ops.Reshape(shape=(-1,)), [h], "Flatten")
    return b.finish([h])


def check_jacobian(model, X):
    ref = central_jacobian(model.forward, X)
    for mode in ("reverse", "forward"):
        assert_close_jacobian(jacobian(model, X, mode=mode)[1], ref, 1e-8)


def test_batch_norm_is_gamma_x_minus_mean_over_root_var_plus_eps_plus_beta():
    gamma, beta, mean, var = R.normal(size=3) + 1, R.normal(size=3), R.normal(size=3), np.abs(R.normal(size=3)) + 0.1
    eps = 1e-3
    x = R.normal(size=(4, 5, 3))
    for axis, xs, bshape in ((-1, x, (1, 3)), (-2, x.transpose(0, 2, 1).copy(), (3, 1))):
        op = ops.batch_norm(gamma, beta, mean, var, eps, axis, 2)
        g, b, m, v = (p.reshape(bshape) for p in (gamma, beta, mean, var))
        y, _ = op.bind(xs.shape[1:]).forward(xs)
        np.testing.assert_allclose(y, g * (xs - m) / np.sqrt(v + eps) + b, rtol=1e-13, atol=1e-14)
        model = one_op(op, xs.shape[1:])
        np.testing.assert_allclose(model.forward(xs.reshape(4, -1)), y.reshape(4, -1), rtol=1e-14)
        J = jacobian(model, xs.reshape(4, -1))[1]
        np.testing.assert_allclose(np.diagonal(J, axis1=1, axis2=2),  # elementwise: J = diag(gamma / sqrt(var + eps))
                                   np.broadcast_to(g / np.sqrt(v + eps), xs.shape).reshape(4, -1), rtol=1e-13)


@pytest.mark.parametrize("invert", [False, True])
def test_normalization_and_its_inverse(invert):
    mean, var = R.normal(size=4), np.array([0.5, 2.0, 0.0, 1e-20])  # zero variance: std floored at epsilon
    x = R.normal(size=(3, 4))
    std = np.maximum(np.sqrt(var), 1e-7)
    y, _ = ops.normalization(mean, var, invert=invert).bind((4,)).forward(x)
    np.testing.assert_allclose(y, mean + x * std if invert else (x - mean) / std, rtol=1e-12)  # x/s - m/s: cancels
    op = ops.normalization(mean, var, invert=invert, epsilon=0.1)
    std = np.maximum(np.sqrt(var), 0.1)
    np.testing.assert_allclose(op.bind((4,)).forward(x)[0], mean + x * std if invert else (x - mean) / std, rtol=1e-12)
    assert ops.normalization(mean.astype(np.float32), var.astype(np.float32), invert=True).shift.dtype == np.float32


def test_affine_parameters_must_fit_the_input():
    a = ops.Affine(scale=np.ones(3), shift=np.zeros(3))
    assert a.out_shape((2, 3)) == (2, 3)
    for scale, shift, shape in ((np.ones(3), np.zeros(4), (2, 3)), (np.ones(4), np.zeros(3), (2, 3)),
                                (np.ones((2, 3)), np.zeros(3), (3,))):
        with pytest.raises(ValueError, match=rf"^parameters of shape {np.shape(scale)} do not fit input "
                                             rf"{tuple(shape)}$".replace("(", r"\(").replace(")", r"\)")):
            ops.Affine(scale=scale, shift=shift).out_shape(shape)
    y, _ = ops.Affine(scale=np.array(0.5), shift=np.array(0.25)).forward(np.array([[1.0, -2.0]]))
    np.testing.assert_array_equal(y, [[0.75, -0.75]])


def layer_norm_ref(x, gamma, beta, eps, axes, rms=False, rms_scaling=False):
    mu = x.mean(axis=axes, keepdims=True)
    if rms:
        y = x / np.sqrt((x**2).mean(axis=axes, keepdims=True) + eps)
    else:
        var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
        y = (x if rms_scaling else x - mu) / np.sqrt(var + eps)
    y = y if gamma is None else y * gamma
    return y if beta is None else y + beta


@pytest.mark.parametrize("kw", [{}, {"rms": True}, {"rms_scaling": True}, {"axes": (-2, -1)}, {"no_gamma": True}])
def test_layer_norm_forward_and_jacobian(kw):
    kw = dict(kw)
    axes = kw.pop("axes", (-1,))
    shape = (3, 4)
    gamma = None if kw.pop("no_gamma", False) else R.normal(size=shape[-len(axes):]) + 1
    beta = None if kw.get("rms") or kw.get("rms_scaling") else R.normal(size=shape[-len(axes):])
    op = ops.LayerNorm(axes=axes, epsilon=0.05, gamma=gamma, beta=beta, **kw)
    x = R.normal(size=(5, *shape)) * 2 + 0.5
    y, _ = op.bind(shape).forward(x)
    np.testing.assert_allclose(y, layer_norm_ref(x, gamma, beta, 0.05, axes, **kw), rtol=1e-13, atol=1e-14)
    check_jacobian(one_op(op, shape), x.reshape(5, -1))


def test_layer_norm_refuses_axes_beyond_the_shape():
    assert ops.LayerNorm(axes=(-2, -1)).out_shape((3, 4)) == (3, 4)
    with pytest.raises(ValueError, match=r"^axes \(-3,\) out of range for shape \(3, 4\)$"):
        ops.LayerNorm(axes=(-3,)).out_shape((3, 4))


def test_dense_refuses_a_kernel_or_bias_that_does_not_fit():
    d = ops.Dense(kernel=np.ones((4, 3)), bias=np.zeros(3))
    assert d.out_shape((2, 4)) == (2, 3)
    with pytest.raises(ValueError, match=r"^kernel expects 4 input features, got shape \(2, 5\)$"):
        d.out_shape((2, 5))
    with pytest.raises(ValueError, match=r"^kernel expects 4 input features, got shape \(\)$"):
        d.out_shape(())
    with pytest.raises(ValueError, match=r"^bias shape \(4,\) does not match kernel \(4, 3\)$"):
        ops.Dense(kernel=np.ones((4, 3)), bias=np.zeros(4)).out_shape((4,))


@pytest.mark.parametrize("act", ["tanh", "relu", "softmax", "linear"])
def test_dense_forward_is_h_of_x_w_plus_b(act):
    k, b = R.normal(size=(4, 3)), R.normal(size=3)
    x = R.normal(size=(6, 4))
    for bias in (b, None):
        y, _ = ops.Dense(kernel=k, bias=bias, activation=Activation(act)).bind((4,)).forward(x)
        a = x @ k + (0 if bias is None else bias)
        np.testing.assert_allclose(y, Activation(act)(a), rtol=1e-13, atol=1e-15)
    model = one_op(ops.Dense(kernel=k, bias=b, activation=Activation(act)), (4,))
    check_jacobian(model, x)


def test_merge_forward_values_and_refusals():
    xs = [R.normal(size=(5, 2, 3)) for _ in range(3)]
    expected = {"add": xs[0] + xs[1] + xs[2], "average": (xs[0] + xs[1] + xs[2]) / 3, "multiply": xs[0] * xs[1] * xs[2],
                "maximum": np.maximum(np.maximum(xs[0], xs[1]), xs[2]),
                "minimum": np.minimum(np.minimum(xs[0], xs[1]), xs[2])}
    for how, ref in expected.items():
        op = ops.Merge(how=how)
        assert op.out_shape((2, 3), (2, 3), (2, 3)) == (2, 3)
        np.testing.assert_allclose(op.bind((2, 3), (2, 3), (2, 3)).forward(*xs)[0], ref, rtol=1e-15)
    np.testing.assert_array_equal(ops.Merge(how="subtract").bind((2, 3), (2, 3)).forward(*xs[:2])[0], xs[0] - xs[1])
    with pytest.raises(ValueError, match=r"^inputs of different shapes \[\(2, 3\), \(3, 2\)\]$"):
        ops.Merge(how="add").out_shape((2, 3), (3, 2))
    with pytest.raises(ValueError, match=r"^subtract takes 2 inputs, got 3$"):
        ops.Merge(how="subtract").out_shape((3,), (3,), (3,))
    with pytest.raises(ValueError, match=r"^unknown merge 'mean'$"):
        ops.Merge(how="mean").out_shape((3,), (3,))


def test_structure_ops_forward_values_and_refusals():
    x = R.normal(size=(2, 3, 4, 5))
    t = ops.Transpose(perm=(2, 0, 1))
    assert t.out_shape((3, 4, 5)) == (5, 3, 4)
    np.testing.assert_array_equal(t.bind((3, 4, 5)).forward(x)[0], x.transpose(0, 3, 1, 2))
    with pytest.raises(ValueError, match=r"^permutation \(1, 0\) does not fit shape \(3, 4, 5\)$"):
        t.__class__(perm=(1, 0)).out_shape((3, 4, 5))
    r = ops.Reshape(shape=(-1, 10)).bind((3, 4, 5))
    assert r.shape == (6, 10) and r.in_shape == (3, 4, 5)
    np.testing.assert_array_equal(r.forward(x)[0], x.reshape(2, 6, 10))
    for shape, msg in (((-1, 7), r"^cannot reshape \(3, 4, 5\) to \(-1, 7\)$"),
                       ((0, -1), r"^cannot reshape \(3, 4, 5\) to \(0, -1\)$"),
                       ((7, 8), r"^cannot reshape \(3, 4, 5\) \(60 values\) to \(7, 8\)$")):
        with pytest.raises(ValueError, match=msg):
            ops.Reshape(shape=shape).out_shape((3, 4, 5))
    s = ops.Slice(2, 6, (2, 2)).bind((7,))
    xf = R.normal(size=(3, 7))
    np.testing.assert_array_equal(s.forward(xf)[0], xf[:, 2:6].reshape(3, 2, 2))
    with pytest.raises(ValueError, match=r"^cannot take columns 2:9 of \(7,\)$"):
        ops.Slice(2, 9, (7,)).out_shape((7,))
    with pytest.raises(ValueError, match=r"^cannot take columns 0:2 of \(2, 1\)$"):
        ops.Slice(0, 2, (2,)).out_shape((2, 1))
    with pytest.raises(ValueError, match=r"^4 columns do not make shape \(3,\)$"):
        ops.Slice(2, 6, (3,)).out_shape((7,))
    c = ops.Concat(axis=-2)
    assert c.out_shape((2, 3), (4, 3)) == (6, 3)
    a, b = R.normal(size=(2, 2, 3)), R.normal(size=(2, 4, 3))
    np.testing.assert_array_equal(c.bind((2, 3), (4, 3)).forward(a, b)[0], np.concatenate([a, b], axis=1))
    with pytest.raises(ValueError, match=r"^cannot concatenate shapes \[\(2, 3\), \(4, 2\)\] along axis -2$"):
        c.out_shape((2, 3), (4, 2))
    with pytest.raises(ValueError, match=r"^cannot concatenate shapes \[\(3,\), \(4,\)\] along axis -2$"):
        c.out_shape((3,), (4,))


@pytest.mark.parametrize("axis", [-1, -2])
def test_concat_of_three_inputs_splits_its_cotangent_at_each_boundary(axis):
    shapes = [(2, 3), (2, 1), (2, 4)] if axis == -1 else [(3, 2), (1, 2), (4, 2)]
    op = ops.Concat(axis=axis).bind(*shapes)
    assert op.out_shape(*shapes) == ((2, 8) if axis == -1 else (8, 2))
    xs = [R.normal(size=(5, *s)) for s in shapes]
    np.testing.assert_array_equal(op.forward(*xs)[0], np.concatenate(xs, axis=axis))
    g = R.normal(size=(5, *op.out_shape(*shapes)))
    cuts = np.cumsum([s[axis] for s in shapes])
    want = np.split(g, cuts[:-1], axis=axis)  # boundaries 3, 4 (not only the first)
    for got, w, s in zip(op.vjp(None, g), want, shapes):
        np.testing.assert_array_equal(got, w)
        assert got.shape == (5, *s)
    flat = ops.FlatConcat().bind(*shapes)
    np.testing.assert_array_equal(flat.forward(*xs)[0], np.concatenate([x.reshape(5, -1) for x in xs], axis=1))
    gf = R.normal(size=(5, 16))
    pieces = flat.vjp(None, gf)
    np.testing.assert_array_equal(np.concatenate([p.reshape(5, -1) for p in pieces], axis=1), gf)
    assert [p.shape for p in pieces] == [(5, *s) for s in shapes]


def test_a_one_input_concat_or_sum_is_its_input():
    """ONNX allows Concat and Sum of a single input: the output has the input's shape."""
    assert ops.Concat(axis=-1).out_shape((2, 3)) == (2, 3)
    assert ops.Merge(how="add").out_shape((4,)) == (4,)
    x = R.normal(size=(3, 4))
    np.testing.assert_array_equal(ops.Merge(how="add").bind((4,)).forward(x)[0], x)


def test_slice_cotangent_keeps_the_dtype_and_places_the_columns():
    op = ops.Slice(start=1, stop=3, shape=(2,)).bind((5,))
    g = R.normal(size=(4, 2)).astype(np.float32)
    out = op.transpose(g)
    assert out.dtype == np.float32 and out.shape == (4, 5)
    want = np.zeros((4, 5), np.float32)
    want[:, 1:3] = g
    np.testing.assert_array_equal(out, want)


def test_normalization_keeps_the_variances_dtype_for_its_shift():
    op = ops.normalization(np.zeros(3), np.ones(3, np.float32), invert=True)
    assert op.shift.dtype == np.float32 == op.scale.dtype


def test_make_op_refuses_unknown_parameters_and_in_shapes_by_name():
    from jacprop.ops.base import make_op

    assert make_op("Reshape", {"shape": [2, -1]}, {}) == ops.Reshape(shape=(2, -1))
    for key in ("bogus", "in_shapes"):  # in_shapes is bound from the graph, never read from a file
        with pytest.raises(ValueError) as e:
            make_op("Reshape", {"shape": [2], key: [[4]]}, {})
        assert str(e.value) == f"op Reshape has no parameter {key!r}"
    with pytest.raises(ValueError, match="unknown op 'Nope'"):
        make_op("Nope", {}, {})


def test_normalization_normalizes_unless_told_to_invert():
    x = R.normal(size=(2, 3))
    np.testing.assert_allclose(ops.normalization(np.ones(3), np.full(3, 4.0)).bind((3,)).forward(x)[0], (x - 1) / 2,
                               rtol=1e-15)
