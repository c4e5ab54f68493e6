"""Ops where the second mutation round (issue #20, tests/mutation-mut-num.md) found holes.

Each op is built inside its test (mutmut does not see mutants in code that runs at import), its
forward is checked against the layer's formula written here (``ref``), and its vjp, jvp and
second-order rule against central differences of that independent forward (first and second
differences of ``ref``), never of the op's own forward."""

import json

import numpy as np
import pytest

from jacprop import ops
from jacprop.ops.activations import Activation
from jacprop.ops.tensor import MatMul

R = np.random.default_rng(31)


def flat_ref(ref, shape):
    """ref over flat rows: (N, prod(shape)) -> (N, prod(out))."""
    return lambda X: ref(X.reshape(len(X), *shape)).reshape(len(X), -1)


def central_jac(f, X, h=1e-6):
    """J[n, k, i] = (f(x + h e_i) - f(x - h e_i))_k / 2h, f row by row: (N, D) -> (N, K); one call of f."""
    n, d = X.shape
    E = np.eye(d) * h
    Y = f((X[:, None, None, :] + np.stack([E, -E])[None]).reshape(-1, d)).reshape(n, 2, d, -1)
    return ((Y[:, 0] - Y[:, 1]) / (2 * h)).transpose(0, 2, 1)


def central_hessian(f, X, h=1e-4):
    """H[n, k, i, j] = d2 f_k / dx_i dx_j from second central differences (one call of f)."""
    n, d = X.shape
    E = np.eye(d) * h
    corners = [(1, 1), (1, -1), (-1, 1), (-1, -1)]
    pts = np.stack([X[:, None, None, :] + a * E[None, :, None] + b * E[None, None, :] for a, b in corners], 1)
    Y = f(pts.reshape(-1, d)).reshape(n, 4, d, d, -1)
    return ((Y[:, 0] - Y[:, 1] - Y[:, 2] + Y[:, 3]) / (4 * h * h)).transpose(0, 3, 1, 2)


def check_op(op, shape, ref, x, rtol=1e-7, seeds=(3, 1)):
    """forward == ref; vjp g -> g J and jvp t -> J t with J from central differences of ref, for cotangents
    and tangents per row (B = N) and shared by every row (B = 1).  Returns the bound op and its saved values."""
    bound = op.bind(shape)
    y, saved = bound.forward(x.copy())
    y_ref = ref(x)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    assert tuple(op.out_shape(shape)) == y_ref.shape[1:]
    n = len(x)
    J = central_jac(flat_ref(ref, shape), x.reshape(n, -1))
    scale = max(1.0, np.abs(J).max(initial=0))
    for b, k in ((n, seeds[0]), (n, 1), (1, seeds[0])):
        g = R.normal(size=(b, k, *y_ref.shape[1:]))
        (vj,) = bound.vjp(saved, g)
        assert vj.shape[1:] == (k, *shape)
        want = np.einsum("nko,nod->nkd", np.broadcast_to(g.reshape(b, k, -1), (n, k, J.shape[1])), J)
        np.testing.assert_allclose(np.broadcast_to(vj, (n, *vj.shape[1:])).reshape(want.shape), want,
                                   atol=rtol * scale)
    for b in (n, 1):
        t = R.normal(size=(b, seeds[1], *shape))
        jv = bound.jvp(saved, (t,))
        assert jv.shape[1:] == (seeds[1], *y_ref.shape[1:])
        want = np.einsum("nod,nkd->nko", J, np.broadcast_to(t.reshape(b, seeds[1], -1), (n, seeds[1], J.shape[2])))
        np.testing.assert_allclose(np.broadcast_to(jv, (n, *jv.shape[1:])).reshape(want.shape), want,
                                   atol=rtol * scale)
    return bound, saved


def check_second(bound, saved, shape, ref, x, rtol=1e-5, k=2, d=2):
    """vjp2 = sum_o g_o H_o t and hess_term = sum_o g_o t^T H_o t' (and its diagonal), H_o from second
    differences of ref."""
    n = len(x)
    H = central_hessian(flat_ref(ref, shape), x.reshape(n, -1))
    out = ref(x).shape[1:]
    g = R.normal(size=(n, k, *out))
    t = R.normal(size=(n, d, *shape))
    gh = np.einsum("nko,noij->nkij", g.reshape(n, k, -1), H)
    scale = max(1.0, np.abs(gh).max())
    want = np.einsum("nkij,ndj->nkdi", gh, t.reshape(n, d, -1))
    if bound.vjp2 is not None:
        (v2,) = bound.vjp2(saved, g, (t,))
        np.testing.assert_allclose(v2.reshape(want.shape), want, atol=rtol * scale * 10)
    tt = t.reshape(n, d, -1)
    full = np.einsum("nkdi,nei->nkde", want, tt)
    np.testing.assert_allclose(bound.hess_term(saved, g, (t,)), full, atol=rtol * scale * 100)
    np.testing.assert_allclose(bound.hess_term(saved, g, (t,), diagonal=True),
                               np.diagonal(full, axis1=2, axis2=3), atol=rtol * scale * 100)
    return g, t, full


def tanh_dense(W, b):
    return lambda x: np.tanh(x @ W + b)


# ---------------------------------------------------------------------------
# dense.py


@pytest.mark.parametrize("act", ["tanh", "softmax", "sigmoid", "swish", "linear"])
def test_dense_first_and_second_order_against_differences_of_h_of_xw_plus_b(act):
    W, b = R.normal(size=(4, 3)), R.normal(size=3)
    h = {"tanh": np.tanh, "sigmoid": lambda a: 1 / (1 + np.exp(-a)), "swish": lambda a: a / (1 + np.exp(-a)),
         "linear": lambda a: a, "softmax": lambda a: np.exp(a) / np.exp(a).sum(-1, keepdims=True)}[act]

    def ref(x):
        return h(x @ W + b)
    x = R.normal(size=(5, 4))
    bound, saved = check_op(ops.Dense(kernel=W, bias=b, activation=Activation(act)), (4,), ref, x)
    assert bound.linear == (act == "linear")
    if bound.linear:  # no second-order term
        return
    g, t, full = check_second(bound, saved, (4,), ref, x)
    jv, pre = bound.jvp_pre(saved, (t,))
    np.testing.assert_allclose(pre, t @ W, rtol=1e-13)  # the pre-activation tangent t W
    np.testing.assert_allclose(jv, bound.jvp(saved, (t,)), rtol=1e-14)
    np.testing.assert_allclose(bound.hess_term(saved, g, (t,), pre=pre), full, atol=1e-3)


def test_dense_seed_fast_path_writes_into_out_and_matches_the_general_product():
    """One seed for all rows (B = 1): h'(a) @ M with M folded from the seed, written into ``out``; the seed
    changes between calls (the fold cache is keyed on it)."""
    W, b = R.normal(size=(4, 3)), R.normal(size=3)
    x = R.normal(size=(6, 4))
    bound = ops.Dense(kernel=W, bias=b, activation=Activation("tanh")).bind((4,))
    _, saved = bound.forward(x)
    d = 1 - np.tanh(x @ W + b) ** 2
    for _ in range(2):
        g = R.normal(size=(1, 2, 3))
        want = np.einsum("kj,nj,ij->nki", g[0], d, W)
        out = np.empty((6, 2, 4))
        (vj,) = bound.vjp(saved, g, out=out)
        np.testing.assert_allclose(vj, want, rtol=1e-12)
        np.testing.assert_allclose(out, want, rtol=1e-12)
        (vj,) = bound.vjp(saved, g)
        np.testing.assert_allclose(vj, want, rtol=1e-12)
    g32 = g.astype(np.float32)
    (vj,) = bound.vjp(saved, g32)
    np.testing.assert_allclose(vj, np.einsum("kj,nj,ij->nki", g32[0].astype(float), d, W), rtol=1e-6)
    gn = R.normal(size=(6, 2, 3))  # per-row cotangents through ``out``
    out = np.empty((6, 2, 4))
    (vj,) = bound.vjp(saved, gn, out=out)
    np.testing.assert_allclose(out, np.einsum("nkj,nj,ij->nki", gn, d, W), rtol=1e-12)
    _, saved2 = bound.forward(x[:2])  # two rows, each its own cotangent: not the shared-seed product
    (vj,) = bound.vjp(saved2, gn[:2])
    np.testing.assert_allclose(vj, np.einsum("nkj,nj,ij->nki", gn[:2], d[:2], W), rtol=1e-12)


def test_dense_linear_flags_follow_the_activation():
    W = R.normal(size=(2, 2))
    assert ops.Dense(kernel=W, activation=Activation("relu")).linear
    assert not ops.Dense(kernel=W, activation=Activation("tanh")).linear
    assert ops.Act(Activation("linear")).linear and not ops.Act(Activation("elu", alpha=0.5)).linear


def test_act_first_and_second_order_against_differences_of_h():
    def ref(x):
        return np.where(x > 0, x, 0.5 * (np.exp(x) - 1))
    x = R.normal(size=(4, 3))
    x[np.abs(x) < 0.05] = 0.3  # away from the kink
    bound, saved = check_op(ops.Act(Activation("elu", alpha=0.5)), (3,), ref, x)
    check_second(bound, saved, (3,), ref, x)


# ---------------------------------------------------------------------------
# spatial.py and conv_variants.py: the layers' sums written as loops over positions


def geometry(n, k, s, d, padding):
    """(output length, padding before) of one axis: TensorFlow's rules."""
    e = (k - 1) * d + 1
    if padding == "same":
        out = -(-n // s)
        return out, max((out - 1) * s + e - n, 0) // 2
    if padding == "causal":
        return (n - 1) // s + 1, e - 1
    return (n - e) // s + 1, 0


def windows(spatial, size, strides, dilation, padding):
    """Every (output position, kernel offset, input position or None where it is padding)."""
    geo = [geometry(n, k, s, d, padding) for n, k, s, d in zip(spatial, size, strides, dilation)]
    for o in np.ndindex(*[g[0] for g in geo]):
        for j in np.ndindex(*size):
            i = tuple(oi * s + ji * d - lo for oi, ji, s, d, (_, lo) in zip(o, j, strides, dilation, geo))
            inside = all(0 <= ii < n for ii, n in zip(i, spatial))
            yield o, j, (i if inside else None)


def conv_ref(x, kernel, bias, strides, dilation, padding, act=np.tanh):
    """a[o, f] = bias[f] + sum_{j, c} x[o s + j d - pad, c] kernel[j, c, f], y = act(a); x (N, *spatial, C)."""
    spatial, size = x.shape[1:-1], kernel.shape[:-2]
    outs = [geometry(n, k, s, d, padding)[0] for n, k, s, d in zip(spatial, size, strides, dilation)]
    a = np.zeros((len(x), *outs, kernel.shape[-1])) + (0 if bias is None else bias)
    for o, j, i in windows(spatial, size, strides, dilation, padding):
        if i is not None:
            a[(slice(None), *o)] += x[(slice(None), *i)] @ kernel[j]
    return act(a)


def depthwise_ref(x, kernel, bias, strides, dilation, padding, act=np.tanh):
    """a[o, c M + m] = bias[c M + m] + sum_j x[o s + j d - pad, c] kernel[j, c, m]."""
    spatial, size = x.shape[1:-1], kernel.shape[:-2]
    c, m = kernel.shape[-2:]
    outs = [geometry(n, k, s, d, padding)[0] for n, k, s, d in zip(spatial, size, strides, dilation)]
    a = np.zeros((len(x), *outs, c * m)) + (0 if bias is None else bias)
    for o, j, i in windows(spatial, size, strides, dilation, padding):
        if i is not None:
            for ci in range(c):
                a[(slice(None), *o, slice(ci * m, ci * m + m))] += x[(slice(None), *i, ci)][:, None] * kernel[j][ci]
    return act(a)


def conv_transpose_ref(x, kernel, bias, strides, dilation, padding, act=np.tanh):
    """y[o s + j d - pad, f] += x[o, c] kernel[j, f, c]; output length valid L s + max(e - s, 0), same L s."""
    spatial, size = x.shape[1:-1], kernel.shape[:-2]
    outs = [n * s + (max((k - 1) * d + 1 - s, 0) if padding == "valid" else 0)
            for n, k, s, d in zip(spatial, size, strides, dilation)]
    a = np.zeros((len(x), *outs, kernel.shape[-2])) + (0 if bias is None else bias)
    for o, j, i in windows(outs, size, strides, dilation, padding):  # o runs over x's grid, i over y's
        if i is not None:
            a[(slice(None), *i)] += x[(slice(None), *o)] @ kernel[j].T
    return act(a)


def channels_first_ref(ref):
    """ref on channels-first rows: move the channels last, apply, move them back."""
    return lambda x: np.moveaxis(ref(np.moveaxis(x, 1, -1)), -1, 1)


CONVS = [  # (op class, reference, kernel shape, input shape (channels last), strides, dilation, padding)
    (ops.Conv, conv_ref, (3, 2, 2), (7, 2), (2,), (1,), "same"),
    (ops.Conv, conv_ref, (2, 2, 3), (6, 2), (1,), (2,), "causal"),
    (ops.Conv, conv_ref, (2, 3, 1, 2), (5, 6, 1), (2, 1), (1, 2), "valid"),
    (ops.Conv, conv_ref, (3, 2, 1, 2), (4, 5, 1), (1, 2), (1, 1), "same"),
    (ops.Conv, conv_ref, (3, 2, 2), (3, 2), (1,), (1,), "valid"),  # the window is the whole input: one output
    (ops.Depthwise, depthwise_ref, (3, 2, 2), (7, 2), (2,), (1,), "same"),
    (ops.Depthwise, depthwise_ref, (2, 2, 2, 1), (4, 5, 2), (1, 2), (2, 1), "valid"),
    (ops.ConvTranspose, conv_transpose_ref, (2, 3, 2), (3, 2), (3,), (1,), "valid"),
    (ops.ConvTranspose, conv_transpose_ref, (3, 2, 2), (3, 2), (2,), (2,), "valid"),
    (ops.ConvTranspose, conv_transpose_ref, (3, 2, 2, 1), (2, 3, 1), (2, 1), (1, 1), "same"),
    (ops.ConvTranspose, conv_transpose_ref, (2, 1, 2, 1, 1), (2, 1, 2, 1), (2, 1, 1), (1, 1, 1), "valid"),  # 3-D
]


@pytest.mark.parametrize("case", range(len(CONVS)))
@pytest.mark.parametrize("channels_first", [False, True])
def test_convolutions_against_their_sums_written_out(case, channels_first):
    cls, ref, kshape, shape, strides, dilation, padding = CONVS[case]
    kernel = R.normal(size=kshape)
    n_out = kshape[-2] if cls is ops.ConvTranspose else kshape[-1] * (kshape[-2] if cls is ops.Depthwise else 1)
    bias = R.normal(size=n_out)
    op = cls(kernel=kernel, bias=bias, activation=Activation("tanh"), strides=strides, dilation=dilation,
             padding=padding, channels_first=channels_first)
    fn = (lambda x: ref(x, kernel, bias, strides, dilation, padding))
    if channels_first:
        fn, shape = channels_first_ref(fn), (shape[-1], *shape[:-1])
    x = R.normal(size=(3, *shape))
    bound, saved = check_op(op, shape, fn, x)
    assert bound.out_shape(shape) == fn(x).shape[1:]
    assert not bound.linear
    g, t, full = check_second(bound, saved, shape, fn, x)
    jv, pre = bound.jvp_pre(saved, (t,))  # (jvp, L t): the pre-activation tangent, L t = d a / dx t
    np.testing.assert_allclose(jv, bound.jvp(saved, (t,)), rtol=1e-13)
    np.testing.assert_allclose(pre * (1 - fn(x)[:, None] ** 2), jv, rtol=1e-12, atol=1e-13)  # tanh' = 1 - y^2
    np.testing.assert_allclose(bound.hess_term(saved, g, (t,), pre=pre), full,
                               atol=1e-3 * max(1.0, np.abs(full).max()))
    if not channels_first:  # the same op without bias and activation is the linear sum alone
        lin = cls(kernel=kernel, strides=strides, dilation=dilation, padding=padding).bind(shape)
        np.testing.assert_allclose(lin.forward(x)[0], ref(x, kernel, None, strides, dilation, padding,
                                                          act=lambda a: a), rtol=1e-12, atol=1e-12)
        assert lin.linear


@pytest.mark.parametrize("cls", [ops.Conv, ops.Depthwise, ops.ConvTranspose])
def test_convolutions_cast_to_float32_compute_in_float32(cls):
    op = cls(kernel=R.normal(size=(2, 2, 2)), bias=R.normal(size=2 if cls is not ops.Depthwise else 4),
             activation=Activation("tanh"))
    x = R.normal(size=(2, 4, 2))
    y64, _ = op.bind((4, 2)).forward(x)
    b32 = op.astype(np.float32).bind((4, 2))
    y, saved = b32.forward(x.astype(np.float32))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, y64, rtol=1e-5, atol=1e-6)
    (v,) = b32.vjp(saved, np.ones((2, 1, *y.shape[1:]), np.float32))
    assert v.dtype == np.float32
    assert b32.jvp(saved, (np.ones((2, 1, 4, 2), np.float32),)).dtype == np.float32


def test_convolutions_refuse_kernels_biases_and_paddings_that_do_not_fit():
    k = R.normal(size=(2, 3, 4))
    with pytest.raises(ValueError, match="kernel expects 3 input channels"):
        ops.Conv(kernel=k).out_shape((5, 2))
    with pytest.raises(ValueError, match="bias shape"):
        ops.Conv(kernel=k, bias=np.zeros(3)).out_shape((5, 3))
    with pytest.raises(ValueError, match="spatial axes"):
        ops.Conv(kernel=k).out_shape((5, 2, 3))
    with pytest.raises(ValueError, match="larger than input"):
        ops.Conv(kernel=R.normal(size=(4, 3, 4)), dilation=(2,)).out_shape((6, 3))
    with pytest.raises(ValueError, match="unknown padding"):
        ops.Conv(kernel=k, padding="full").out_shape((5, 3))
    with pytest.raises(ValueError, match=">= 1"):
        ops.Conv(kernel=k, strides=(0,)).out_shape((5, 3))
    assert ops.Conv(kernel=k, strides=2, padding="same").out_shape((5, 3)) == (3, 4)
    assert ops.Conv(kernel=k, padding="causal", dilation=3).out_shape((5, 3)) == (5, 4)
    assert ops.Conv(kernel=k, channels_first=True).out_shape((3, 5)) == (4, 4)
    with pytest.raises(ValueError, match="expected 1 values"):
        ops.Conv(kernel=k, strides=(1, 2)).out_shape((5, 3))
    d = R.normal(size=(2, 3, 2))
    with pytest.raises(ValueError, match="kernel expects 3 input channels"):
        ops.Depthwise(kernel=d).out_shape((5, 2))
    with pytest.raises(ValueError, match="does not fit 6 output channels"):
        ops.Depthwise(kernel=d, bias=np.zeros(3)).out_shape((5, 3))
    assert ops.Depthwise(kernel=d, channels_first=True, strides=(2,), padding="same").out_shape((3, 5)) == (6, 3)
    t = R.normal(size=(2, 4, 3))
    with pytest.raises(ValueError, match="kernel expects 3 input channels"):
        ops.ConvTranspose(kernel=t).out_shape((5, 4))
    with pytest.raises(ValueError, match="does not fit 4 output channels"):
        ops.ConvTranspose(kernel=t, bias=np.zeros(3)).out_shape((5, 3))
    with pytest.raises(ValueError, match="not supported"):
        ops.ConvTranspose(kernel=t, padding="causal").out_shape((5, 3))
    assert ops.ConvTranspose(kernel=t, strides=(3,)).out_shape((5, 3)) == (15, 4)
    assert ops.ConvTranspose(kernel=t, strides=(2,), padding="same", channels_first=True).out_shape((3, 5)) == (4, 10)


def pool_ref(x, how, size, strides, padding):
    """max or mean over each window's positions inside the input (``same`` padding is never a value)."""
    spatial, c = x.shape[1:-1], x.shape[-1]
    outs = [geometry(n, k, s, 1, padding)[0] for n, k, s in zip(spatial, size, strides)]
    picked = {}
    for o, _, i in windows(spatial, size, strides, (1,) * len(size), padding):
        if i is not None:
            picked.setdefault(o, []).append(x[(slice(None), *i)])
    y = np.empty((len(x), *outs, c))
    for o, vals in picked.items():
        y[(slice(None), *o)] = np.max(vals, axis=0) if how == "max" else np.mean(vals, axis=0)
    return y


@pytest.mark.parametrize("how", ["max", "average"])
@pytest.mark.parametrize("size, strides, padding, shape", [
    ((3,), (2,), "same", (6, 2)), ((2, 3), (1, 2), "same", (3, 5, 1)), ((2,), (1,), "valid", (4, 2)),
    ((3,), (3,), "valid", (3, 1))])
def test_pooling_against_the_windows_written_out(how, size, strides, padding, shape):
    x = -np.abs(R.normal(size=(2, *shape))) - 0.1  # all negative: a zero from the padding would win a max
    fn = (lambda x: pool_ref(x, how, size, strides, padding))
    bound, _ = check_op(ops.Pool(how, size, strides, padding), shape, fn, x)
    assert bound.linear
    cf = ops.Pool(how, size, strides, padding, channels_first=True)
    check_op(cf, (shape[-1], *shape[:-1]), channels_first_ref(fn), np.moveaxis(x, -1, 1).copy())
    _, saved = bound.forward(x)
    if how == "max":  # the cotangent keeps its dtype through the scatter
        (v32,) = bound.vjp(saved, np.ones((2, 1, *fn(x).shape[1:]), np.float32))
        assert v32.dtype == np.float32
    with pytest.raises(ValueError, match="unknown pooling"):
        ops.Pool("min", size, strides, padding).out_shape(shape)


def test_average_pooling_in_float32_stays_float32():
    op = ops.Pool("average", (2,), (2,), "same").astype(np.float32).bind((5, 2))
    y, _ = op.forward(np.ones((2, 5, 2), np.float32))
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, np.ones((2, 3, 2)))  # the last window holds one value, not two
    (g,) = op.vjp(None, np.ones((2, 1, 3, 2), np.float32))
    assert g.dtype == np.float32  # the cotangent too (it came back float64: count was not cast)
    np.testing.assert_array_equal(g[0, 0, :, 0], [0.5, 0.5, 0.5, 0.5, 1.0])  # 1/count of each value's window


@pytest.mark.parametrize("how", ["average", "max"])
@pytest.mark.parametrize("rank, shape, cf, keep", [(1, (4, 1), False, False), (2, (2, 3, 2), False, True),
                                                   (2, (1, 2, 3), True, False), (1, (2, 3), True, True)])
def test_global_pooling_over_the_spatial_axes(how, rank, shape, cf, keep):
    axes = tuple(range(2, 2 + rank)) if cf else tuple(range(1, 1 + rank))
    red = np.mean if how == "average" else np.max

    def ref(x):
        return red(x, axis=axes, keepdims=keep)
    x = R.normal(size=(3, *shape))
    op = ops.GlobalPool(how, rank, channels_first=cf, keepdims=keep)
    check_linear(op, shape, ref, x)
    if how == "max":  # tied maxima share the cotangent equally
        xt = np.zeros((1, *shape))
        bound = op.bind(shape)
        _, saved = bound.forward(xt)
        (v,) = bound.vjp(saved, np.ones((1, 1, *ref(xt).shape[1:])))
        n_spatial = int(np.prod([shape[a - 1] for a in axes]))
        np.testing.assert_allclose(v, np.full((1, 1, *shape), 1 / n_spatial), rtol=1e-15)


# ---------------------------------------------------------------------------
# tensor.py: ONNX's elementwise functions, binary ops, MatMul, Where, Const


def check_multi(op, shapes, ref, xs, rtol=1e-7, second=True):
    """check_op for an op of several inputs: the inputs side by side as one flat row for the differences."""
    n, sizes = len(xs[0]), [int(np.prod(s)) for s in shapes]
    cuts = np.cumsum(sizes)[:-1]

    def flat(X):
        return ref(*(p.reshape(len(X), *s) for p, s in zip(np.split(X, cuts, axis=1), shapes)))

    X = np.concatenate([x.reshape(n, -1) for x in xs], axis=1)
    bound = op.bind(*shapes)
    y, saved = bound.forward(*[x.copy() for x in xs])
    y_ref = ref(*xs)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    assert tuple(bound.out_shape(*shapes)) == y_ref.shape[1:]
    J = central_jac(lambda X: flat(X).reshape(len(X), -1), X)
    scale = max(1.0, np.abs(J).max(initial=0))
    for b in (n, 1):
        g = R.normal(size=(b, 2, *y_ref.shape[1:]))
        got = np.concatenate([np.broadcast_to(v, (n, *v.shape[1:])).reshape(n, 2, -1)
                              for v in bound.vjp(saved, g)], -1)
        want = np.einsum("nko,nod->nkd", np.broadcast_to(g.reshape(b, 2, -1), (n, 2, J.shape[1])), J)
        np.testing.assert_allclose(got, want, atol=rtol * scale)
        ts = [R.normal(size=(b, 3, *s)) for s in shapes]
        T = np.concatenate([t.reshape(b, 3, -1) for t in ts], -1)
        jv = bound.jvp(saved, ts)
        want = np.einsum("nod,nkd->nko", J, np.broadcast_to(T, (n, 3, X.shape[1])))
        np.testing.assert_allclose(np.broadcast_to(jv, (n, *jv.shape[1:])).reshape(n, 3, -1), want, atol=rtol * scale)
    if second and not bound.linear:
        H = central_hessian(lambda X: flat(X).reshape(len(X), -1), X)
        g = R.normal(size=(n, 2, *y_ref.shape[1:]))
        ts = [R.normal(size=(n, 2, *s)) for s in shapes]
        T = np.concatenate([t.reshape(n, 2, -1) for t in ts], -1)
        want = np.einsum("nko,noij,ndj->nkdi", g.reshape(n, 2, -1), H, T)
        got = np.concatenate([v.reshape(n, 2, 2, -1) for v in bound.vjp2(saved, g, ts)], -1)
        np.testing.assert_allclose(got, want, atol=1e-5 * max(1.0, np.abs(want).max()))
        full = np.einsum("nkdi,nei->nkde", want, T)
        np.testing.assert_allclose(bound.hess_term(saved, g, ts), full, atol=1e-4 * max(1.0, np.abs(full).max()))
    return bound, saved


def _phi(x):
    return np.array([[0.5 * (1 + __import__("math").erf(v / np.sqrt(2))) for v in row] for row in x])


POINTWISE_REFS = {  # name: (alpha, beta, h written out, sampling range)
    "abs": (0, 0, np.abs, (0.2, 3)),
    "neg": (0, 0, lambda x: -x, (-3, 3)),
    "exp": (0, 0, np.exp, (-3, 3)),
    "log": (0, 0, np.log, (0.5, 3)),
    "sqrt": (0, 0, np.sqrt, (0.5, 3)),
    "reciprocal": (0, 0, lambda x: 1 / x, (0.5, 3)),
    "sin": (0, 0, np.sin, (-3, 3)),
    "cos": (0, 0, np.cos, (-3, 3)),
    "erf": (0, 0, lambda x: 2 * _phi(x * np.sqrt(2)) - 1, (-2, 2)),
    "pow": (2.5, 0, lambda x: x**2.5, (0.5, 3)),
    "selu": (1.6732632, 1.0507010, lambda x: 1.0507010 * np.where(x > 0, x, 1.6732632 * (np.exp(x) - 1)), (-3, 3)),
    "celu": (0.7, 0, lambda x: np.where(x > 0, x, 0.7 * (np.exp(x / 0.7) - 1)), (-3, 3)),
    "clip": (-0.5, 1.5, lambda x: np.minimum(np.maximum(x, -0.5), 1.5), (-3, 3)),
    "hard_sigmoid": (0.2, 0.5, lambda x: np.minimum(np.maximum(0.2 * x + 0.5, 0), 1), (-4, 4)),
    "hard_swish": (0, 0, lambda x: x * np.minimum(np.maximum(x + 3, 0), 6) / 6, (-4, 4)),
    "thresholded_relu": (0.3, 0, lambda x: np.where(x > 0.3, x, 0), (-3, 3)),
    "gelu": (0, 0, lambda x: x * _phi(x), (-3, 3)),
    "gelu_tanh": (0, 0, lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3))), (-3, 3)),
}
KINKS = {"abs": [0], "clip": [-0.5, 1.5], "hard_sigmoid": [-2.5, 2.5], "hard_swish": [-3, 3],
         "thresholded_relu": [0.3], "selu": [0], "celu": [0]}


@pytest.mark.parametrize("name", sorted(POINTWISE_REFS))
def test_pointwise_functions_against_their_formulas(name):
    alpha, beta, h, (lo, hi) = POINTWISE_REFS[name]
    x = R.uniform(lo, hi, size=(3, 4))
    for k in KINKS.get(name, []):
        x[np.abs(x - k) < 0.05] = k + 0.2
    if name == "abs":
        x[0, :2] *= -1
    op = ops.Pointwise(name=name, alpha=alpha, beta=beta)
    bound, saved = check_op(op, (4,), h, x, rtol=1e-6)
    assert bound.linear == (name in ("abs", "neg", "clip", "hard_sigmoid", "thresholded_relu"))
    if not bound.linear:
        check_second(bound, saved, (4,), h, x)
    with pytest.raises(ValueError, match="unknown pointwise"):
        ops.Pointwise(name="tan").out_shape((4,))


def test_pointwise_derivatives_keep_float32():
    x = np.array([[-1.0, 0.5, 2.0]], np.float32)
    for name in ("clip", "hard_sigmoid", "hard_swish", "thresholded_relu", "selu", "celu"):
        d = ops.Pointwise(name=name, alpha=0.2, beta=1.0).bind((3,)).forward(x)[1][0]
        assert d.dtype == np.float32, name


def test_pointwise_derivatives_at_the_kinks_follow_the_documented_branches():
    x = np.array([[0.0, -0.5, 1.5, 0.3]])
    d = {n: ops.Pointwise(name=n, alpha=a, beta=b).bind((4,)).forward(x)[1][0]
         for n, (a, b, _, _) in POINTWISE_REFS.items()}
    np.testing.assert_array_equal(d["abs"][0], [0.0, -1, 1, 1])
    np.testing.assert_array_equal(d["clip"][0], [1.0, 0, 0, 1])  # 1 strictly inside (a, b)
    np.testing.assert_array_equal(d["thresholded_relu"][0], [0.0, 0, 1, 0])
    np.testing.assert_allclose(d["selu"][0, 0], 1.0507010 * 1.6732632, rtol=1e-15)
    np.testing.assert_allclose(d["celu"][0, 0], 1.0, rtol=1e-15)
    assert ops.Pointwise(name="tan").vjp2 is None and not ops.Pointwise(name="tan").linear
    x = np.array([[-2.5, 2.5, -3.0, 3.0]])  # hard_sigmoid: 0.2 x + 0.5 = 0, 1, -0.1, 1.1: outside (0, 1)
    np.testing.assert_array_equal(ops.Pointwise(name="hard_sigmoid", alpha=0.2, beta=0.5).bind((4,)).forward(x)[1][0],
                                  [[0.0, 0.0, 0.0, 0.0]])
    # hard_swish' = clip(x/6 + 1/2, 0, 1) + x [-3 < x < 3] / 6
    np.testing.assert_allclose(ops.Pointwise(name="hard_swish").bind((4,)).forward(x)[1][0],
                               [[1 / 12 - 2.5 / 6, 11 / 12 + 2.5 / 6, 0, 1]], rtol=1e-15)


BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide}


@pytest.mark.parametrize("how", sorted(BINARY))
@pytest.mark.parametrize("sa, sb", [((2, 3), (3,)), ((3,), (2, 1)), ((2, 3), (2, 3)), ((1, 3), (2, 1))])
def test_binary_ops_broadcast_as_numpy(how, sa, sb):
    a = R.normal(size=(3, *sa))
    b = R.uniform(0.5, 2, size=(3, *sb)) * R.choice([-1, 1], size=(3, *sb))
    check_multi(ops.Binary(how=how), [sa, sb], lambda a, b: BINARY[how](_align(a, sa, sb), _align(b, sb, sa)), [a, b])


def _align(x, s, other):
    """x (N, *s) with 1s in front up to the broadcast rank of s and other."""
    r = max(len(s), len(other))
    return x.reshape(len(x), *(1,) * (r - len(s)), *s)


def test_binary_refuses_an_unknown_op():
    with pytest.raises(ValueError, match="unknown binary"):
        ops.Binary(how="pow").out_shape((2,), (2,))
    assert ops.Binary(how="add").linear and ops.Binary(how="sub").linear and not ops.Binary(how="div").linear


@pytest.mark.parametrize("sa, sb", [((2, 3), (3, 4)), ((2, 2, 3), (2, 3, 1))])
def test_matmul_per_row(sa, sb):
    a, b = R.normal(size=(2, *sa)), R.normal(size=(2, *sb))
    check_multi(MatMul(), [sa, sb], np.matmul, [a, b])
    for bad in [((3,), (3, 4)), ((2, 3), (4,)), ((2, 3), (4, 2)), ((2, 2, 3), (3, 3, 1))]:
        with pytest.raises(ValueError, match=r"@ \(\.\.\., k, n\) with the same leading axes$"):
            MatMul().out_shape(*bad)


@pytest.mark.parametrize("how", ["greater", "less", "greater_equal", "less_equal", "equal"])
def test_where_selects_by_a_comparison_with_a_constant(how):
    cmp = {"greater": np.greater, "less": np.less, "greater_equal": np.greater_equal, "less_equal": np.less_equal,
           "equal": np.equal}[how]
    value = np.array([0.0, 0.5, 1.0])
    c = R.choice([0.0, 0.5, 1.0, -1.0], size=(4, 2, 3))
    a, b = R.normal(size=(4, 3)), R.normal(size=(4, 2, 1))

    def ref(c_, a, b):  # the mask of the given c for every perturbed copy of a row: dy/dc = 0 (piecewise constant)
        return np.where(np.repeat(cmp(c, value), len(c_) // len(c), axis=0), a[:, None], b)
    bound, saved = check_multi(ops.Where(how=how, value=value), [(2, 3), (3,), (2, 1)], ref, [c, a, b])
    assert bound.linear
    with pytest.raises(ValueError, match="unknown comparison"):
        ops.Where(how="between", value=value).out_shape((3,), (3,), (3,))
    op = ops.Where(how=how, value=np.float64(0.5))  # every operand's shape takes part in the broadcast
    assert op.out_shape((2, 1), (3,), (1,)) == (2, 3)
    assert op.out_shape((1,), (2, 3), (1,)) == (2, 3)
    assert op.out_shape((1,), (1,), (4, 1)) == (4, 1)
    assert ops.Where(how=how, value=np.zeros((3, 1, 1))).out_shape((1,), (1,), (2,)) == (3, 1, 2)
    (zc, za, zb) = bound.vjp(saved, np.ones((4, 1, 2, 3), np.float32))
    assert zc.dtype == za.dtype == zb.dtype == np.float32 and not zc.any()


def test_const_is_the_same_for_every_row_and_has_zero_derivatives():
    value = R.normal(size=(2, 3))
    op = ops.Const(value=value).bind((5,))
    y, saved = op.forward(R.normal(size=(4, 5)))
    np.testing.assert_array_equal(y, np.broadcast_to(value, (4, 2, 3)))
    assert op.out_shape((5,)) == (2, 3) and op.linear
    (v,) = op.vjp(saved, np.ones((4, 7, 2, 3), np.float32))
    assert v.shape == (1, 7, 5) and v.dtype == np.float32 and not v.any()
    t = op.jvp(saved, (np.ones((4, 6, 5), np.float32),))
    assert t.shape == (1, 6, 2, 3) and t.dtype == np.float32 and not t.any()


# ---------------------------------------------------------------------------
# tensor_index.py: Gather, strided Slice, Pad, ReduceSum/Mean (linear: forward and transpose)


def check_linear(op, shape, ref, x):
    """check_op, and the maps keep a float32 cotangent's and tangent's dtype."""
    bound, saved = check_op(op, shape, ref, x)
    assert bound.linear
    out = ref(x).shape[1:]
    y32, saved32 = bound.forward(x.astype(np.float32))  # a float32 run
    assert y32.dtype == np.float32
    (v,) = bound.vjp(saved32, np.ones((1, 2, *out), np.float32))
    assert v.dtype == np.float32
    assert bound.jvp(saved32, (np.ones((1, 2, *shape), np.float32),)).dtype == np.float32
    return bound


@pytest.mark.parametrize("indices, axis", [([2, 0, 2], -1), ([[1, 0], [1, 1]], -2), ([0], -3), ([], -1)])
def test_take_gathers_and_adds_back_at_repeated_indices(indices, axis):
    x = R.normal(size=(2, 2, 3, 4))
    idx = np.array(indices, dtype=np.intp)

    def ref(x):  # y[..., i, ...] = x[..., indices[i], ...], written as a stack of single slices
        moved = np.moveaxis(x, axis, -1)
        picked = np.stack([moved[..., j] for j in idx.ravel()], -1) if idx.size else moved[..., :0]
        picked = picked.reshape(*moved.shape[:-1], *idx.shape)
        p = x.ndim + axis
        return np.moveaxis(picked.reshape(*picked.shape[:-idx.ndim], -1), -1, p).reshape(
            *x.shape[:p], *idx.shape, *x.shape[p + 1:]) if idx.ndim else picked
    check_linear(ops.Take(indices=idx, axis=axis), (2, 3, 4), ref, x)


def test_take_refuses_axes_and_indices_out_of_range():
    for axis in (-4, 0, 1):
        with pytest.raises(ValueError, match="out of range for shape"):
            ops.Take(indices=np.array([0]), axis=axis).out_shape((3, 4))
    for idx in ([4], [-1], [0, 4]):
        with pytest.raises(ValueError, match=r"indices out of range \[0, 4\)"):
            ops.Take(indices=np.array(idx), axis=-1).out_shape((3, 4))
    assert ops.Take(indices=np.array([3, 0]), axis=-1).out_shape((3, 4)) == (3, 2)
    assert ops.Take(indices=np.array([[2], [0]]), axis=-2).out_shape((3, 4)) == (2, 1, 4)  # the first axis
    assert ops.Take(indices=np.array([1, 1, 0]), axis=-2).out_shape((2, 3, 5)) == (2, 3, 5)


def test_strided_keeps_the_indices_of_every_axis():
    index = ((0, 2), (3, 1, 0))
    x = R.normal(size=(2, 3, 4))

    def ref(x):
        return np.stack([np.stack([x[:, i, j] for j in index[1]], -1) for i in index[0]], 1)
    check_linear(ops.Strided(index=index), (3, 4), ref, x)
    for bad in [((0,),), ((0, 3), (1,)), ((), (1,)), ((0,), (-1,)), ((0,), (4,))]:
        with pytest.raises(ValueError, match="slice does not fit"):
            ops.Strided(index=bad).out_shape((3, 4))
    assert ops.Strided(index=((2,), (0, 3))).out_shape((3, 4)) == (1, 2)


def test_pad_fills_with_its_value_and_crops_back():
    x = R.normal(size=(2, 3, 4))
    pads = ((1, 0), (2, 1))

    def ref(x):
        y = np.full((len(x), 4, 7), 0.5)
        y[:, 1:4, 2:6] = x
        return y
    check_linear(ops.Pad(pads=pads, value=0.5), (3, 4), ref, x)
    for bad in [((1, 0),), ((1, 0), (-1, 2))]:
        with pytest.raises(ValueError, match="do not fit"):
            ops.Pad(pads=bad).out_shape((3, 4))
    assert ops.Pad(pads=((0, 0), (0, 2))).out_shape((3, 4)) == (3, 6)
    bound = ops.Pad(pads=np.array([[1, 0], [2, 1]])).bind((3, 4))  # an ONNX loader's integer array
    assert bound.pads == ((1, 0), (2, 1)) and all(type(v) is int for p in bound.pads for v in p)
    assert json.loads(json.dumps(ops.op_config(bound)))["pads"] == [[1, 0], [2, 1]]


@pytest.mark.parametrize("how", ["mean", "sum"])
@pytest.mark.parametrize("axes, keepdims", [((-1,), True), ((-3, -1), False), ((-2, -3, -2), True), ((-2,), False)])
def test_reduce_sums_or_averages_over_its_axes(how, axes, keepdims):
    x = R.normal(size=(2, 2, 3, 4))
    ax = sorted({a % 3 + 1 for a in axes})

    def ref(x):
        total = x
        for a in reversed(ax):  # one axis at a time, written out
            total = sum(np.take(total, i, axis=a) for i in range(x.shape[a]))
            if keepdims:
                total = np.expand_dims(total, a)
        return total / (np.prod([x.shape[a] for a in ax]) if how == "mean" else 1)
    bound = check_linear(ops.Reduce(how=how, axes=axes, keepdims=keepdims), (2, 3, 4), ref, x)
    assert bound.count == np.prod([x.shape[a] for a in ax])


def test_reduce_refuses_unknown_kinds_and_axes():
    for how, axes in (("max", (-1,)), ("sum", (0,)), ("mean", (-4,))):
        with pytest.raises(ValueError, match="cannot reduce"):
            ops.Reduce(how=how, axes=axes).out_shape((3, 4, 5))
    assert ops.Reduce(how="sum", axes=(-3,)).out_shape((3, 4, 5)) == (1, 4, 5)


# ---------------------------------------------------------------------------
# recurrent.py, recurrent_second.py, time_distributed.py: Keras' cell equations written out per step


def sig(a):
    return 1 / (1 + np.exp(-a))


def rnn_ref(cell, W, R, b, act=np.tanh, rec=sig, reset_after=True, seq=False, back=False, reverse=False):
    """Keras' SimpleRNN / LSTM / GRU from h_0 = c_0 = 0, one step at a time."""
    def run(x):
        n, steps = x.shape[:2]
        u = R.shape[0]
        h, c, hs = np.zeros((n, u)), np.zeros((n, u)), []
        b_in = np.zeros(W.shape[1]) if b is None else (b[0] if b.ndim == 2 else b)
        order = range(steps - 1, -1, -1) if back else range(steps)
        for t in order:
            ax = x[:, t] @ W + b_in
            if cell == "simple":
                h = act(ax + h @ R)
            elif cell == "lstm":
                a = ax + h @ R
                i, f, g, o = rec(a[:, :u]), rec(a[:, u:2 * u]), act(a[:, 2 * u:3 * u]), rec(a[:, 3 * u:])
                c = f * c + i * g
                h = o * act(c)
            elif reset_after:
                rh = h @ R + (0 if b is None else b[1])
                z, r = rec(ax[:, :u] + rh[:, :u]), rec(ax[:, u:2 * u] + rh[:, u:2 * u])
                h = z * h + (1 - z) * act(ax[:, 2 * u:] + r * rh[:, 2 * u:])
            else:
                z, r = rec(ax[:, :u] + h @ R[:, :u]), rec(ax[:, u:2 * u] + h @ R[:, u:2 * u])
                h = z * h + (1 - z) * act(ax[:, 2 * u:] + (r * h) @ R[:, 2 * u:])
            hs.append(h)
        if not seq:
            return h
        out = np.stack(hs, 1)
        return out[:, ::-1] if reverse else out
    return run


RNNS = [  # (cell, options, bias rows)
    ("simple", {}, 1), ("simple", dict(return_sequences=True, go_backwards=True), 1),
    ("lstm", {}, 1), ("lstm", dict(return_sequences=True, go_backwards=True, reverse_output=True), 1),
    ("lstm", dict(return_sequences=True), 0),
    ("gru", {}, 2), ("gru", dict(return_sequences=True, go_backwards=True), 0),
    ("gru", dict(reset_after=False), 1), ("gru", dict(reset_after=False, return_sequences=True), 0),
    ("lstm", dict(activation="softsign", recurrent_activation="swish"), 1),  # derivatives that need a, not y
    ("gru", dict(activation="swish", recurrent_activation="softsign", return_sequences=True), 2),
]
ACTS = {"softsign": lambda a: a / (1 + np.abs(a)), "swish": lambda a: a * sig(a)}


@pytest.mark.parametrize("case", range(len(RNNS)))
def test_recurrent_cells_against_kerases_equations(case):
    cell, kw, rows = RNNS[case]
    kw = dict(kw)  # the pops below must not empty the module's RNNS for the next run (mutmut runs tests twice)
    f, u, steps = 2, 2, 3
    gates = {"simple": 1, "lstm": 4, "gru": 3}[cell] * u
    W, R_ = R.normal(size=(f, gates)) * 0.8, R.normal(size=(u, gates)) * 0.8
    b = None if rows == 0 else R.normal(size=(gates,) if rows == 1 else (2, gates)) * 0.5
    acts = {k: kw.pop(k) for k in ("activation", "recurrent_activation") if k in kw}
    op = ops.Recurrent(cell=cell, kernel=W, recurrent_kernel=R_, bias=b, **kw,
                       **{k: Activation(v) for k, v in acts.items()})
    ref = rnn_ref(cell, W, R_, b, reset_after=kw.get("reset_after", True), seq=kw.get("return_sequences", False),
                  back=kw.get("go_backwards", False), reverse=kw.get("reverse_output", False),
                  act=ACTS.get(acts.get("activation"), np.tanh), rec=ACTS.get(acts.get("recurrent_activation"), sig))
    x = R.normal(size=(2, steps, f))  # two rows of three steps: rows and steps are not confused
    bound, saved = check_op(op, (steps, f), ref, x)
    assert not bound.linear
    check_second(bound, saved, (steps, f), ref, x)
    assert bound.hess_scratch(4, 6) > 0


@pytest.mark.parametrize("cell, bias", [("lstm", False), ("gru", True), ("simple", False)])
@pytest.mark.parametrize("steps", [1, 3])
def test_recurrent_float32_runs_stay_float32(cell, bias, steps):
    g = {"simple": 1, "lstm": 4, "gru": 3}[cell] * 2
    W, R_ = R.normal(size=(2, g)), R.normal(size=(2, g))
    b = R.normal(size=(2, g)) if bias else None
    op = ops.Recurrent(cell=cell, kernel=W, recurrent_kernel=R_, bias=b, return_sequences=True)
    x = R.normal(size=(2, steps, 2))
    y64 = op.bind((steps, 2)).forward(x)[0]
    b32 = op.astype(np.float32).bind((steps, 2))
    y, saved = b32.forward(x.astype(np.float32))
    assert y.dtype == np.float32 and all(v.dtype == np.float32 for v in saved.values())
    np.testing.assert_allclose(y, y64, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y64, rnn_ref(cell, W, R_, b, seq=True)(x), rtol=1e-12, atol=1e-13)
    (v,) = b32.vjp(saved, np.ones((2, 3, steps, 2), np.float32))
    assert v.dtype == np.float32
    assert b32.jvp(saved, (np.ones((2, 3, steps, 2), np.float32),)).dtype == np.float32


def test_recurrent_refuses_cells_shapes_and_activations_that_do_not_fit():
    W, R_ = np.zeros((2, 8)), np.zeros((2, 8))
    lstm = dict(cell="lstm", kernel=W, recurrent_kernel=R_)
    with pytest.raises(ValueError, match="unknown recurrent cell"):
        ops.Recurrent(**{**lstm, "cell": "lru"}).out_shape((3, 2))
    with pytest.raises(ValueError, match="not elementwise"):
        ops.Recurrent(**lstm, activation=Activation("softmax")).out_shape((3, 2))
    with pytest.raises(ValueError, match="not elementwise"):
        ops.Recurrent(**lstm, recurrent_activation=Activation("softmax")).out_shape((3, 2))
    for s in ((3, 3), (2,), (1, 3, 2)):
        with pytest.raises(ValueError, match=r"expects \(time steps, 2 features\)"):
            ops.Recurrent(**lstm).out_shape(s)
    with pytest.raises(ValueError, match="do not make a lstm cell"):  # the input kernel alone is wrong
        ops.Recurrent(**{**lstm, "kernel": np.zeros((2, 6))}).out_shape((3, 2))
    with pytest.raises(ValueError, match="do not make a gru cell"):
        ops.Recurrent(**{**lstm, "cell": "gru"}).out_shape((3, 2))
    with pytest.raises(ValueError, match="do not make a lstm cell"):
        ops.Recurrent(**{**lstm, "recurrent_kernel": np.zeros((3, 8))}).out_shape((3, 2))
    with pytest.raises(ValueError, match="does not fit 2 units"):
        ops.Recurrent(**lstm, bias=np.zeros(6)).out_shape((3, 2))
    with pytest.raises(ValueError, match="only a reset_after GRU"):
        ops.Recurrent(**lstm, bias=np.zeros((2, 8))).out_shape((3, 2))
    gru = dict(cell="gru", kernel=np.zeros((2, 6)), recurrent_kernel=np.zeros((2, 6)))
    with pytest.raises(ValueError, match="only a reset_after GRU"):
        ops.Recurrent(**gru, bias=np.zeros((2, 6)), reset_after=False).out_shape((3, 2))
    assert ops.Recurrent(**gru, bias=np.zeros((2, 6))).out_shape((3, 2)) == (2,)
    assert ops.Recurrent(**lstm, return_sequences=True).out_shape((3, 2)) == (3, 2)
    assert ops.Recurrent(cell="simple", kernel=np.zeros((2, 2)), recurrent_kernel=np.zeros((2, 2)),
                         activation=Activation("relu")).linear


def test_time_distributed_applies_its_chain_to_every_step():
    W, b = R.normal(size=(3, 2)), R.normal(size=2)
    k = R.normal(size=(2, 2, 2))
    inner = (ops.Dense(kernel=W, bias=b, activation=Activation("tanh")),
             ops.Conv(kernel=k, activation=Activation("sigmoid")), ops.Reshape(shape=(-1,)))

    def ref(x):  # (N, T, 3, 3): per step, tanh(x W + b) over the last axis, then a 1-D valid conv of 2 taps
        a = np.tanh(x @ W + b)  # (N, T, 3, 2)
        conv = sig(np.einsum("ntjc,jcf->ntf", a[:, :, 0:2], k))[:, :, None]
        conv = np.concatenate([conv, sig(np.einsum("ntjc,jcf->ntf", a[:, :, 1:3], k))[:, :, None]], 2)
        return conv.reshape(*x.shape[:2], -1)
    x = R.normal(size=(2, 2, 3, 3))
    op = ops.TimeDistributed(inner=inner)
    bound, saved = check_op(op, (2, 3, 3), ref, x)
    assert bound.out_shape((2, 3, 3)) == (2, 4) and not bound.linear
    check_second(bound, saved, (2, 3, 3), ref, x)
    steps_numbers = 2 * sum(6 * int(np.prod(o.in_shapes[0])) + o.hess_scratch(4, 6) for o in bound.inner)
    assert bound.hess_scratch(4, 6) == steps_numbers
    with pytest.raises(ValueError, match="time steps"):
        op.out_shape((3,))
    lin = ops.TimeDistributed(inner=(ops.Dense(kernel=W),)).bind((4, 3))
    assert lin.linear
    x2 = R.normal(size=(2, 4, 3))
    y, saved = lin.forward(x2)
    np.testing.assert_allclose(y, x2 @ W, rtol=1e-14)
    g = R.normal(size=(2, 3, 4, 2))
    t = R.normal(size=(2, 2, 4, 3))
    np.testing.assert_array_equal(lin.vjp2(saved, g, (t,))[0], np.zeros((2, 3, 2, 4, 3)))
    restored = ops.make_op("TimeDistributed", ops.op_config(op), op.arrays())
    np.testing.assert_array_equal(restored.bind((2, 3, 3)).forward(x)[0], bound.forward(x)[0])
    with pytest.raises(ValueError, match="inside TimeDistributed"):
        ops.make_op("TimeDistributed", {"inner": [{"op": "TimeDistributed", "config": {}}]}, {})
    assert ops.make_op("TimeDistributed", {}, {}).inner == ()  # a file's defaults: no ops, no config
    assert isinstance(ops.make_op("TimeDistributed", {"inner": [{"op": "Identity"}]}, {}).inner[0], ops.Identity)
    assert lin.out_shape((4, 3)) == (4, 2)
    v32 = lin.vjp2(saved, g.astype(np.float32), (t.astype(np.float32),))[0]
    assert v32.dtype == np.float32 and v32.shape == (2, 3, 2, 4, 3)


def test_time_distributed_broadcasts_what_its_ops_give_for_every_row():
    """A Const inside gives one row for all (B = 1): the chain broadcasts it to every step of every row;
    a seed shared by the rows (B = 1) with as many seeds as rows (K = N) is broadcast too."""
    W, b = R.normal(size=(3, 2)), R.normal(size=2)
    value = R.normal(size=(2,))
    cases = [((ops.Dense(kernel=W, bias=b, activation=Activation("tanh")), ops.Const(value=value)),
              lambda x: np.broadcast_to(value, (*x.shape[:2], 2))),
             ((ops.Const(value=np.array([0.5, 1.0, -1.0])), ops.Dense(kernel=W, bias=b, activation=Activation("tanh"))),
              lambda x: np.broadcast_to(np.tanh(np.array([0.5, 1.0, -1.0]) @ W + b), (*x.shape[:2], 2))),
             ((ops.Dense(kernel=W, bias=b, activation=Activation("tanh")),), lambda x: np.tanh(x @ W + b))]
    for inner, ref in cases:
        x = R.normal(size=(2, 4, 3))
        for seeds in ((2, 2), (8, 8)):  # K = N, and K = N T (the steps as rows)
            bound, saved = check_op(ops.TimeDistributed(inner=inner), (4, 3), ref, x, seeds=seeds)
        if not bound.linear:
            check_second(bound, saved, (4, 3), ref, x)


def test_time_distributed_scratch_counts_its_ops_scratch_for_every_step():
    lstm = ops.Recurrent(cell="lstm", kernel=R.normal(size=(2, 8)), recurrent_kernel=R.normal(size=(2, 8)),
                         bias=R.normal(size=8), return_sequences=True)
    op = ops.TimeDistributed(inner=(lstm,)).bind((5, 3, 2))  # 5 steps of (3, 2) sequences
    inner = op.inner[0]
    assert inner.hess_scratch(4, 6) > 0  # the LSTM's own scratch counts, for every step
    assert op.hess_scratch(4, 6) == 5 * (6 * 3 * 2 + inner.hess_scratch(4, 6))
    f32 = op.astype(np.float32)
    assert all(a.dtype == np.float32 for a in f32.arrays().values()) and len(f32.arrays()) == 3
