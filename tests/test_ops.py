"""Every op's vjp and jvp against central finite differences (float64), over the op table."""

import math
import zlib

import numpy as np
import pytest
from helpers import assert_close_jacobian, central_jacobian
from hypothesis import given, settings
from hypothesis import strategies as st

from jacprop import ops
from jacprop.ops.activations import ELEMENTWISE, Activation, erf

R = np.random.default_rng(7)


def w(*shape, scale=0.7):
    return R.normal(size=shape) * scale


def act(name, **kw):
    return Activation(name, **kw)


# (id, op, per-row input shapes, sampling range) -- the range keeps tests away from kinks where needed
CASES = [
    *[(f"act-{n}", ops.Act(act(n, alpha=0.2 if n == "leaky_relu" else 0.7 if n == "elu" else 0.0)), [(3, 4)],
       (-2.4, 2.4))
      for n in ELEMENTWISE],
    ("softmax-last", ops.Act(act("softmax")), [(5,)], (-3, 3)),
    ("softmax-axis-2", ops.Act(act("softmax", axis=-2)), [(4, 3)], (-3, 3)),
    ("log_softmax", ops.Act(act("log_softmax")), [(2, 5)], (-3, 3)),
    ("dense-tanh", ops.Dense(kernel=w(4, 3), bias=w(3), activation=act("tanh")), [(4,)], (-2, 2)),
    ("dense-nobias-softmax", ops.Dense(kernel=w(4, 6), activation=act("softmax")), [(4,)], (-2, 2)),
    ("dense-3d-gelu", ops.Dense(kernel=w(3, 2), bias=w(2), activation=act("gelu")), [(5, 3)], (-2, 2)),
    ("batchnorm-channels", ops.batch_norm(w(3) + 1, w(3), w(3), np.abs(w(3)) + 0.1, 1e-3, -1, 2), [(4, 3)], (-2, 2)),
    ("batchnorm-axis-2", ops.batch_norm(w(4) + 1, w(4), w(4), np.abs(w(4)) + 0.1, 1e-3, -2, 2), [(4, 3)], (-2, 2)),
    ("normalization", ops.normalization(w(5), np.abs(w(5)) + 0.1), [(5,)], (-2, 2)),
    ("normalization-invert", ops.normalization(w(5), np.abs(w(5)) + 0.1, invert=True), [(5,)], (-2, 2)),
    ("rescaling", ops.Affine(scale=np.array(0.5), shift=np.array(0.1)), [(2, 3)], (-2, 2)),
    ("layernorm", ops.LayerNorm(gamma=w(6) + 1, beta=w(6)), [(6,)], (-2, 2)),
    ("layernorm-2axes", ops.LayerNorm(axes=(-2, -1), gamma=w(3, 4) + 1, beta=None), [(3, 4)], (-2, 2)),
    ("layernorm-rms", ops.LayerNorm(gamma=w(5) + 1, rms=True, epsilon=1e-6), [(5,)], (-2, 2)),
    ("identity", ops.Identity(), [(3,)], (-2, 2)),
    ("reshape", ops.Reshape(shape=(2, -1)), [(3, 4)], (-2, 2)),
    ("flatten", ops.Reshape(shape=(-1,)), [(3, 2, 2)], (-2, 2)),
    ("slice", ops.Slice(2, 6, (2, 2)), [(7,)], (-2, 2)),
    ("transpose", ops.Transpose(perm=(2, 0, 1)), [(2, 3, 4)], (-2, 2)),
    ("flatconcat", ops.FlatConcat(), [(2, 2), (3,)], (-2, 2)),
    *[(f"merge-{h}", ops.Merge(how=h), [(4,)] * (2 if h == "subtract" else 3), (-2, 2))
      for h in ("add", "subtract", "multiply", "average", "maximum", "minimum")],
    ("concat-last", ops.Concat(axis=-1), [(2, 3), (2, 1)], (-2, 2)),
    ("concat-axis-2", ops.Concat(axis=-2), [(2, 3), (4, 3)], (-2, 2)),
    ("conv1d-valid", ops.Conv(kernel=w(3, 2, 4), bias=w(4), activation=act("tanh")), [(7, 2)], (-2, 2)),
    ("conv1d-same-stride2", ops.Conv(kernel=w(3, 2, 3), bias=w(3), strides=(2,), padding="same"), [(8, 2)], (-2, 2)),
    ("conv1d-same-dilation2", ops.Conv(kernel=w(3, 2, 2), dilation=(2,), padding="same", activation=act("gelu")),
     [(7, 2)], (-2, 2)),
    ("conv1d-causal", ops.Conv(kernel=w(2, 1, 2), dilation=(2,), padding="causal"), [(6, 1)], (-2, 2)),
    ("conv1d-channels-first", ops.Conv(kernel=w(2, 3, 2), bias=w(2), channels_first=True), [(3, 5)], (-2, 2)),
    ("conv2d-valid", ops.Conv(kernel=w(2, 2, 2, 3), bias=w(3), activation=act("swish")), [(4, 5, 2)], (-2, 2)),
    ("conv2d-same-stride", ops.Conv(kernel=w(3, 3, 1, 2), strides=(2, 2), padding="same"), [(5, 6, 1)], (-2, 2)),
    ("conv2d-dilated", ops.Conv(kernel=w(2, 2, 2, 2), dilation=(2, 1)), [(5, 4, 2)], (-2, 2)),
    ("conv2d-channels-first", ops.Conv(kernel=w(2, 2, 2, 3), bias=w(3), padding="same", channels_first=True),
     [(2, 4, 3)], (-2, 2)),
    ("maxpool1d", ops.Pool("max", (2,), (2,)), [(7, 3)], (-2, 2)),
    ("maxpool1d-same-stride1", ops.Pool("max", (3,), (1,), "same"), [(5, 2)], (-2, 2)),
    ("avgpool1d-same", ops.Pool("average", (2,), (2,), "same"), [(5, 2)], (-2, 2)),
    ("maxpool2d", ops.Pool("max", (2, 2), (2, 2)), [(4, 5, 2)], (-2, 2)),
    ("maxpool2d-same-cf", ops.Pool("max", (2, 2), (1, 2), "same", channels_first=True), [(2, 3, 5)], (-2, 2)),
    ("avgpool2d-same", ops.Pool("average", (3, 2), (2, 2), "same"), [(5, 4, 2)], (-2, 2)),
    ("globalavg1d", ops.GlobalPool("average", 1), [(5, 3)], (-2, 2)),
    ("globalmax1d", ops.GlobalPool("max", 1), [(5, 3)], (-2, 2)),
    ("globalavg2d-cf-keepdims", ops.GlobalPool("average", 2, channels_first=True, keepdims=True), [(3, 2, 4)], (-2, 2)),
    ("globalmax2d", ops.GlobalPool("max", 2), [(3, 4, 2)], (-2, 2)),
]

from test_recurrent import OP_CASES as RECURRENT_CASES  # noqa: E402  (recurrent and issue-19 ops)

CASES += RECURRENT_CASES


def op_jacobians(op, shapes, xs):
    """(J from vjp, J from jvp, J from central differences) for each input, all (N, out, in)."""
    out = op.out_shape(*shapes)
    op = op.bind(*shapes)
    n, m = len(xs[0]), math.prod(out)
    y, saved = op.forward(*xs)
    assert y.shape == (n, *out)
    cots = op.vjp(saved, np.eye(m).reshape(1, m, *out))
    results = []
    for i, s in enumerate(shapes):
        d = math.prod(s)

        def f(flat, i=i, s=s):
            args = list(xs)
            args[i] = flat.reshape(-1, *s)
            return op.forward(*args)[0].reshape(len(flat), -1)

        tangents = [np.zeros((1, d, *sj)) for sj in shapes]
        tangents[i] = np.eye(d).reshape(1, d, *s)
        j_rev = np.broadcast_to(cots[i], (n, m, *s)).reshape(n, m, d)
        j_fwd = np.broadcast_to(op.jvp(saved, tangents), (n, d, *out)).reshape(n, d, m).transpose(0, 2, 1)
        results.append((j_rev, j_fwd, central_jacobian(f, xs[i].reshape(n, -1))))
    return results


@pytest.mark.parametrize("name,op,shapes,span", CASES, ids=[c[0] for c in CASES])
def test_vjp_and_jvp_match_central_differences(name, op, shapes, span):
    rng = np.random.default_rng(zlib.crc32(name.encode()))  # the same inputs in every run
    xs = [rng.uniform(*span, size=(3, *s)) for s in shapes]
    for j_rev, j_fwd, j_num in op_jacobians(op, shapes, xs):
        assert_close_jacobian(j_rev, j_num, 1e-7)
        assert_close_jacobian(j_fwd, j_rev, 1e-12)


def test_op_table_is_covered():
    """Every registered op has at least one case above."""
    from test_onnx import OP_CASES  # the ONNX ops (jacprop/ops_onnx.py) have their cases there

    covered = {type(c[1]).__name__ for c in CASES + OP_CASES}
    assert covered == set(ops.OPS), set(ops.OPS) - covered


@settings(max_examples=40, deadline=None)
@given(
    n_in=st.integers(1, 6), n_out=st.integers(1, 6), rows=st.integers(1, 4),
    name=st.sampled_from(sorted(set(ELEMENTWISE) | {"softmax", "log_softmax"})), seed=st.integers(0, 2**31),
)
def test_dense_any_shape_and_activation(n_in, n_out, rows, name, seed):
    rng = np.random.default_rng(seed)
    op = ops.Dense(kernel=rng.normal(size=(n_in, n_out)), bias=rng.normal(size=n_out), activation=act(name, alpha=0.3))
    x = rng.uniform(-2, 2, size=(rows, n_in))
    a = x @ op.kernel + op.bias
    if name in ("relu", "relu6", "leaky_relu", "elu", "selu", "hard_sigmoid", "hard_sigmoid_k2"):
        kinks = {"relu6": [0, 6], "hard_sigmoid": [-3, 3], "hard_sigmoid_k2": [-2.5, 2.5]}.get(name, [0])
        if min(np.abs(a - k).min() for k in kinks) < 1e-4:
            return  # too close to a kink for a finite difference
    ((j_rev, j_fwd, j_num),) = op_jacobians(op, [(n_in,)], [x])
    assert_close_jacobian(j_rev, j_num, 1e-6)
    assert_close_jacobian(j_fwd, j_rev, 1e-12)


def test_erf_matches_math_erf():
    x = np.linspace(-7, 7, 20001)
    assert np.abs(erf(x) - np.vectorize(math.erf)(x)).max() < 2e-15


# ---- subgradients at kinks and ties: the ones TensorFlow's gradient kernels pick

def test_kink_derivatives_follow_tensorflow():
    a = np.array([0.0, 6.0, -3.0, 3.0, -2.5, 2.5])
    d = {n: Activation(n, alpha=0.2).derivative(a, Activation(n, alpha=0.2)(a)) for n in ELEMENTWISE}
    assert d["relu"][0] == 0
    assert d["relu6"][0] == 0 and d["relu6"][1] == 0
    assert d["leaky_relu"][0] == 0.2
    assert Activation("elu", alpha=1.0).derivative(a, None)[0] == 1.0
    assert d["elu"][0] == 0.2
    assert d["selu"][0] == pytest.approx(1.0507009873554805)
    assert d["hard_sigmoid"][2] == 0 and d["hard_sigmoid"][3] == 0
    assert d["hard_sigmoid_k2"][4] == 0.2 and d["hard_sigmoid_k2"][5] == 0.2


def test_hard_sigmoid_definitions_differ_between_keras_versions():
    a = np.array([-1.0, 1.0])
    assert np.allclose(Activation("hard_sigmoid_k2")(a), [0.3, 0.7])  # clip(0.2a + 0.5)
    assert np.allclose(Activation("hard_sigmoid")(a), [1 / 3, 2 / 3])  # relu6(a + 3) / 6


def test_ties_pick_first_or_split_like_tensorflow():
    x = np.array([[1.0, 3.0, 3.0, 0.0]])
    pool = ops.Pool("max", (4,), (4,))
    pool = pool.bind((4, 1))
    _, saved = pool.forward(x[..., None])
    g = pool.vjp(saved, np.ones((1, 1, 1, 1)))[0]
    assert g.ravel().tolist() == [0, 1, 0, 0]  # first maximum takes it all
    gp = ops.GlobalPool("max", 1)
    gp = gp.bind((4, 1))
    _, saved = gp.forward(x[..., None])
    assert gp.vjp(saved, np.ones((1, 1, 1)))[0].ravel().tolist() == [0, 0.5, 0.5, 0]  # split
    mx = ops.Merge("maximum")
    mx = mx.bind((1,), (1,))
    _, saved = mx.forward(np.array([[2.0]]), np.array([[2.0]]))
    assert [c.item() for c in mx.vjp(saved, np.ones((1, 1, 1)))] == [1.0, 0.0]
