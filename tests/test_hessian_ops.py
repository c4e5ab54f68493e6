"""Every op's second-order rule against central differences of its own first-order rule (float64).

For an op y = f(x1, ..., xm), ``vjp2(saved, g, ts)[i]`` is d/dx (vjp(saved, g)[i]) in the tangent
directions ts, g held fixed.  Its reference here is the central difference of the vjp (already tested
against central differences of f in test_ops.py) as the inputs move along each unit direction.  Ops
declared ``linear`` must have a vjp that does not move at all.  h'' of every activation is checked
against a central difference of h'.
"""

import math
import zlib

import numpy as np
import pytest
from test_onnx import OP_CASES
from test_ops import CASES
from test_recurrent import SECOND_ORDER_CASES

from jacprop import ops
from jacprop.ops import activations as A
from jacprop.ops import tensor as T

STEP = 1e-5


def _kink_free(points, kinks, margin=1e-3):
    return points[np.min(np.abs(points[:, None] - np.asarray(kinks)[None]), axis=1) > margin] if kinks else points


KINKS = {"relu": [0], "relu6": [0, 6], "leaky_relu": [0], "elu": [0], "selu": [0], "celu": [0], "relu_max": [0, 0.7],
         "hard_sigmoid_k2": [-2.5, 2.5], "hard_sigmoid": [-3, 3], "hard_silu": [-3, 3], "sparse_plus": [-1, 1],
         "soft_shrink": [-0.5, 0.5], "hard_shrink": [-0.5, 0.5], "hard_tanh": [-1, 1], "sparse_sigmoid": [-1, 1],
         "softsign": [0]}


def test_every_activation_has_a_second_order_rule():
    assert set(A.SECOND) == set(A.ELEMENTWISE)
    assert set(T.POINTWISE2) == set(T.POINTWISE)


@pytest.mark.parametrize("name", sorted(A.ELEMENTWISE))
def test_activation_d2h_is_the_derivative_of_dh(name):
    p = 0.2 if name == "leaky_relu" else 0.7
    a = _kink_free(np.linspace(-4.1, 7.3, 241), KINKS.get(name, []))
    h, dh = A.ELEMENTWISE[name]
    rule = A.SECOND[name]
    d2 = np.zeros_like(a) if rule is None else rule(a, h(a, p), p)
    ref = (dh(a + STEP, h(a + STEP, p), p) - dh(a - STEP, h(a - STEP, p), p)) / (2 * STEP)
    np.testing.assert_allclose(d2, ref, rtol=1e-6, atol=1e-8)


POINTWISE_PARAMS = {"pow": (3.0, 0), "selu": (1.67, 1.05), "celu": (0.8, 0), "clip": (-0.9, 1.1),
                    "hard_sigmoid": (0.2, 0.5), "thresholded_relu": (0.3, 0)}
POINTWISE_KINKS = {"abs": [0], "selu": [0], "celu": [0], "clip": [-0.9, 1.1], "hard_sigmoid": [-2.5, 2.5],
                   "hard_swish": [-3, 3], "thresholded_relu": [0.3]}


@pytest.mark.parametrize("name", sorted(T.POINTWISE))
def test_pointwise_d2h_is_the_derivative_of_dh(name):
    a_, b_ = POINTWISE_PARAMS.get(name, (0, 0))
    lo = 0.3 if name in ("log", "sqrt", "reciprocal") else -4.1
    x = _kink_free(np.linspace(lo, 4.3, 211), POINTWISE_KINKS.get(name, []))
    h, dh = T.POINTWISE[name]
    rule = T.POINTWISE2[name]
    d2 = np.zeros_like(x) if rule is None else rule(x, h(x, a_, b_), a_, b_)
    ref = (dh(x + STEP, h(x + STEP, a_, b_), a_, b_) - dh(x - STEP, h(x - STEP, a_, b_), a_, b_)) / (2 * STEP)
    np.testing.assert_allclose(d2, ref, rtol=1e-6, atol=1e-7)


EXTRA = [  # forms the first-order tables do not sample
    ("layernorm-rms-scaling", ops.LayerNorm(gamma=np.linspace(0.5, 1.5, 5), rms_scaling=True), [(5,)], (-2, 2)),
    ("layernorm-nogamma-axis-2", ops.LayerNorm(axes=(-2,)), [(4, 3)], (-2, 2)),
    ("dense-log_softmax",
     ops.Dense(kernel=np.linspace(-1, 1, 12).reshape(4, 3), activation=A.Activation("log_softmax")), [(4,)], (-2, 2)),
    ("merge-multiply-2", ops.Merge(how="multiply"), [(3,)] * 2, (-2, 2)),
    ("binary-div-broadcast", T.Binary("div"), [(3,), (2, 1)], (0.5, 2)),
    *SECOND_ORDER_CASES,  # every recurrent activation, cell and direction
]


def _vjp(op, xs, g):
    return op.vjp(op.forward(*xs)[1], g)


# Every op has a rule now (the recurrent ones since issue 19); `hessian` refusing an op without one is
# test_hessian.test_an_op_without_a_second_order_rule_is_refused.
RULED = CASES + OP_CASES + EXTRA


@pytest.mark.parametrize("name,op,shapes,span", RULED, ids=[c[0] for c in RULED])
def test_second_order_rule_matches_central_differences_of_the_vjp(name, op, shapes, span):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    out = op.out_shape(*shapes)
    op = op.bind(*shapes)
    xs = [rng.uniform(*span, size=(3, *s)) for s in shapes]
    g = rng.normal(size=(3, 2, *out))
    saved = op.forward(*xs)[1]
    assert op.linear or op.vjp2 is not None, f"{name}: neither linear nor a second-order rule"
    for l, s in enumerate(shapes):  # move input l along each of its d unit directions
        d = math.prod(s)
        ts = [np.zeros((1, d, *sj)) for sj in shapes]
        ts[l] = np.eye(d).reshape(1, d, *s)
        rule = None if op.linear else op.vjp2(saved, g, tuple(ts))
        for m in range(d):
            step = STEP * np.maximum(1.0, np.abs(xs[l].reshape(3, -1)[:, m]))
            plus, minus = [x.copy() for x in xs], [x.copy() for x in xs]
            plus[l].reshape(3, -1)[:, m] += step
            minus[l].reshape(3, -1)[:, m] -= step
            for i, (vp, vm) in enumerate(zip(_vjp(op, plus, g), _vjp(op, minus, g))):
                ref = (np.broadcast_to(vp, (3, 2, *shapes[i])) - np.broadcast_to(vm, (3, 2, *shapes[i])))
                ref = ref / (2 * step.reshape(3, *[1] * (ref.ndim - 1)))
                got = np.zeros_like(ref) if rule is None else np.broadcast_to(rule[i][:, :, m], ref.shape)
                scale = max(1.0, float(np.abs(ref).max()))
                assert np.abs(got - ref).max() / scale < 1e-6, (name, l, m, i, np.abs(got - ref).max())


@pytest.mark.parametrize("name,op,shapes,span", RULED, ids=[c[0] for c in RULED])
def test_hess_term_is_vjp2_contracted_with_the_tangents(name, op, shapes, span):
    """What the engine calls (Dense/Conv: on the pre-activation tangents) equals the rule above, contracted
    with the tangents once more; the diagonal form equals the diagonal of the full one."""
    from jacprop.ops.base import Op, contract

    op = op.bind(*shapes)
    if op.linear:
        return
    rng = np.random.default_rng(zlib.crc32(name.encode()) + 1)
    xs = [rng.uniform(*span, size=(3, *s)) for s in shapes]
    saved = op.forward(*xs)[1]
    g = rng.normal(size=(3, 2, *op.out_shape(*shapes)))
    ts = tuple(rng.normal(size=(3, 4, *s)) for s in shapes)
    ref = sum(contract(v, t) for v, t in zip(op.vjp2(saved, g, ts), ts))
    full = op.hess_term(saved, g, ts)
    np.testing.assert_allclose(full, ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(op.hess_term(saved, g, ts, diagonal=True), np.diagonal(ref, axis1=2, axis2=3),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(Op.hess_term(op, saved, g, ts), ref, rtol=1e-12, atol=1e-12)
