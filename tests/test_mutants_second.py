"""Second-order rules where the mutation run of issue #20 (tests/mutation-mut-second.md) found holes:
recurrent_second.py (the recurrent cells' vjp2), second_order.py (the model-level Hessian) and engine.py.

Every op and model is built inside its test (mutmut does not see mutants in code run at import).  Hessians are
checked against central differences of the engine's J, (J(x + h e_j) - J(x - h e_j)) / 2h with h = 1e-5
(error O(h^2 |J'''|) + O(1e-16 |J| / h), about 1e-10 here), and J and y against a forward written here
(test_mutants_ops2.rnn_ref: Keras' cell equations step by step) and its central differences."""

import numpy as np
import pytest
from test_mutants_ops2 import central_jac, rnn_ref, sig

import jacprop
from jacprop import ops
from jacprop.graph import GraphBuilder
from jacprop.ops import recurrent_second
from jacprop.ops.activations import Activation

H_J = 1e-5  # the step of the central differences of J


def fd_hessian_of_j(model, X, h=H_J, **kw):
    """H[n, k, i, j] = (J(x + h e_j) - J(x - h e_j))[n, k, i] / 2h, J = jacprop.jacobian(model, ., **kw)."""
    cols = []
    for j in range(X.shape[1]):
        e = np.zeros(X.shape[1])
        e[j] = h
        cols.append((jacprop.jacobian(model, X + e, **kw)[1] - jacprop.jacobian(model, X - e, **kw)[1]) / (2 * h))
    return np.stack(cols, axis=-1)


def assert_scaled(got, want, tol):
    """|got - want| <= tol max(1, max|want|), and want is not all zeros (not a vacuous comparison)."""
    assert got.shape == want.shape
    scale = max(1.0, np.abs(want).max())
    assert np.abs(want).max() > 1e-3
    assert np.abs(got - want).max() <= tol * scale, np.abs(got - want).max() / scale


# ---------------------------------------------------------------------------
# recurrent_second.py

def softsign(a):
    return a / (1 + np.abs(a))


def swish(a):
    return a * sig(a)


def elu(alpha):
    return lambda a: np.where(a > 0, a, alpha * np.expm1(np.minimum(a, 0)))


def hard_sigmoid(a):  # Keras 3's: relu6(a + 3) / 6
    return np.clip(a + 3, 0, 6) / 6


REFS = {"softsign": softsign, "swish": swish, "tanh": np.tanh, "sigmoid": sig, "hard_sigmoid": hard_sigmoid}

# (cell, activation, recurrent activation, options, bias rows): activations whose h' and h'' need a, not y
# (softsign, swish), one with alpha (elu 0.7), a piecewise-linear gate (hard_sigmoid: h'' = 0, no rule)
CELLS = [
    ("simple", ("elu", 0.7), None, dict(return_sequences=True), 1),
    ("simple", "softsign", None, {}, 0),
    ("lstm", "softsign", "swish", dict(return_sequences=True), 1),
    ("lstm", "swish", "hard_sigmoid", {}, 0),
    ("gru", "swish", "softsign", dict(return_sequences=True), 2),
    ("gru", "softsign", "swish", dict(reset_after=False, return_sequences=True), 1),
    ("gru", "tanh", "hard_sigmoid", dict(reset_after=False), 0),
]


def _activation(spec):
    if isinstance(spec, tuple):
        return Activation(spec[0], alpha=spec[1]), elu(spec[1])
    return Activation(spec), REFS[spec]


def _cell(case, units=3, features=2, seed=0):
    """(op, its reference forward) for CELLS[case]."""
    cell, act, rec, kw, rows = CELLS[case]
    rng = np.random.default_rng(seed)
    gates = {"simple": 1, "lstm": 4, "gru": 3}[cell] * units
    W, R = rng.normal(size=(features, gates)) * 0.7, rng.normal(size=(units, gates)) * 0.7
    b = None if rows == 0 else rng.normal(size=(gates,) if rows == 1 else (2, gates)) * 0.4
    a, a_ref = _activation(act)
    extra = {} if rec is None else {"recurrent_activation": Activation(rec)}
    op = ops.Recurrent(cell=cell, kernel=W, recurrent_kernel=R, bias=b, activation=a, **extra, **kw)
    ref = rnn_ref(cell, W, R, b, act=a_ref, rec=sig if rec is None else REFS[rec],
                  reset_after=kw.get("reset_after", True), seq=kw.get("return_sequences", False))
    return op, ref


def _alone(op, steps, features):
    """A model that is the recurrent layer alone: its cotangent and its input's tangent are the engine's seeds,
    one for every row (B = 1), while its saved values have N rows."""
    b = GraphBuilder([("x", (steps, features))])
    return b.finish([b.add("rnn", op, b.inputs, "RNN")])


@pytest.mark.parametrize("case", range(len(CELLS)), ids=[f"{c[0]}-{c[1]}-{c[2]}-{i}" for i, c in enumerate(CELLS)])
def test_recurrent_layer_alone_against_central_differences_of_j(case):
    """N = 2 rows, D = 8 inputs (T = 4 steps of F = 2), K = 12 outputs (return_sequences) or 3: fewer rows than
    inputs and outputs, and identity tangents that are zero at every step but one (0 / 0 where a tangent is
    formed by dividing)."""
    steps, features = 4, 2
    op, ref = _cell(case, features=features)
    model = _alone(op, steps, features)
    X = np.random.default_rng(case).uniform(-1.5, 1.5, size=(2, steps * features))
    Y, J, H = jacprop.hessian(model, X)
    np.testing.assert_allclose(Y, ref(X.reshape(2, steps, features)).reshape(2, -1), rtol=0, atol=1e-13)
    J_ref = central_jac(lambda A: ref(A.reshape(len(A), steps, features)).reshape(len(A), -1), X)
    assert_scaled(J, J_ref, 1e-8)
    assert_scaled(H, fd_hessian_of_j(model, X), 1e-7)
    _, _, Hd = jacprop.hessian(model, X, diagonal=True)
    np.testing.assert_allclose(Hd, np.diagonal(H, axis1=2, axis2=3), rtol=0, atol=1e-14)


@pytest.mark.parametrize("case", range(len(CELLS)), ids=[f"{c[0]}-{c[1]}-{c[2]}-{i}" for i, c in enumerate(CELLS)])
def test_recurrent_vjp2_of_one_row_many_outputs_and_tangents(case):
    """vjp2 with one row and cotangents and tangents per row (B = N = 1), K = 5 and W = 7 > N: against second
    central differences of the reference, sum_o g_o H_o t."""
    from test_mutants_ops2 import central_hessian

    steps, features = 3, 2
    op, ref = _cell(case, features=features, seed=10 + case)
    bound = op.bind((steps, features))
    rng = np.random.default_rng(20 + case)
    x = rng.uniform(-1.5, 1.5, size=(1, steps, features))
    y, saved = bound.forward(x)
    g = rng.normal(size=(1, 5, *y.shape[1:]))
    t = rng.normal(size=(1, 7, steps, features))
    H = central_hessian(lambda A: ref(A.reshape(len(A), steps, features)).reshape(len(A), -1), x.reshape(1, -1))
    want = np.einsum("nko,noij,ndj->nkdi", g.reshape(1, 5, -1), H, t.reshape(1, 7, -1))
    (got,) = bound.vjp2(saved, g, (t,))
    assert got.shape == (1, 5, 7, steps, features)
    assert_scaled(got.reshape(want.shape), want, 1e-5)


@pytest.mark.parametrize("case", range(len(CELLS)), ids=[f"{c[0]}-{c[1]}-{c[2]}-{i}" for i, c in enumerate(CELLS)])
def test_a_float32_vjp2_computes_in_float32(case, monkeypatch):
    """A float32 run keeps float32 throughout the second-order sweep, not only in its result: the step products'
    tangents (``tangent_sweep``, the scratch ``hessian_rows`` budgets at 4 bytes a number), the first-order
    cotangents and their tangents in every reverse step; and its result is the float64 one to float32 rounding."""
    steps, features = 3, 2
    op, _ = _cell(case, features=features, seed=30 + case)
    rng = np.random.default_rng(40 + case)
    x, g, t = rng.uniform(-1, 1, size=(2, steps, features)), None, rng.normal(size=(2, 3, steps, features))
    b64, b32 = op.bind((steps, features)), op.astype(np.float32).bind((steps, features))
    y64, saved64 = b64.forward(x)
    y32, saved32 = b32.forward(x.astype(np.float32))
    g = rng.normal(size=(2, 2, *y64.shape[1:]))
    x32 = b32._order(saved32["x"])
    dots = recurrent_second.tangent_sweep(b32, x32, b32._order(t.astype(np.float32)))
    assert len(dots) == steps
    assert {v.dtype for d in dots for v in d.values()} == {np.dtype(np.float32)}
    seen = []
    back2 = recurrent_second.BACK2[op.cell]

    def checked(op_, at, dots_, dh, dc, tangents, dda, tr):
        seen.append((dh.dtype, dda.dtype, *(np.asarray(v).dtype for v in tangents)))
        return back2(op_, at, dots_, dh, dc, tangents, dda, tr)

    monkeypatch.setitem(recurrent_second.BACK2, op.cell, checked)
    (v32,) = b32.vjp2(saved32, g.astype(np.float32), (t.astype(np.float32),))
    assert v32.dtype == np.float32
    assert len(seen) == steps
    f32, f64 = np.dtype(np.float32), np.dtype(np.float64)
    assert all(s[0] == f32 and s[1] == f32 for s in seen), seen
    # the tangents start as the scalars 0.0 (float64 as arrays) and are float32 arrays from the second step on
    assert all(s[2] == f32 for s in seen[1:]) and seen[0][2:] == (f64, f64), seen
    (v64,) = b64.vjp2(saved64, g, (t,))
    np.testing.assert_allclose(v32, v64, rtol=0, atol=2e-5 * max(1.0, np.abs(v64).max()))


@pytest.mark.parametrize("cell, n_products", [("simple", 1), ("lstm", 6), ("gru", 5)])
def test_recurrent_scratch_is_w_t_products_u_plus_one_steps_buffers(cell, n_products):
    """scratch = W T (#P) U + 4 W G U numbers per row, with T steps (not F features: here T = 5, F = 2)."""
    u, gates = 3, {"simple": 1, "lstm": 4, "gru": 3}[cell] * 3
    op = ops.Recurrent(cell=cell, kernel=np.zeros((2, gates)), recurrent_kernel=np.zeros((u, gates)))
    for w in (1, 7):
        assert recurrent_second.scratch(op, (5, 2), w) == w * 5 * n_products * u + 4 * w * gates
    assert op.bind((5, 2)).hess_scratch(4, 7) == 7 * 5 * n_products * u + 4 * 7 * gates


# ---------------------------------------------------------------------------
# second_order.py

def _mlp():
    from models import mlp

    return mlp([4, 6, 5, 3], ["tanh", "softplus", "swish"], seed=7)


def test_tangents_without_a_direction_are_the_forward_mode_jacobian():
    """``tangents`` with identity seeds: the last node's tangent is J^T over the wrt inputs (the engine's forward
    mode, itself checked against central differences of f elsewhere), one seed shared by every row."""
    from jacprop.graph import run_forward
    from jacprop.second_order import tangents

    model = _mlp()
    X = np.random.default_rng(1).normal(size=(3, 4))
    _, J = jacprop.jacobian(model, X, mode="forward")
    for dtype, tol in ((np.float64, 1e-15), (np.float32, 1e-6)):
        m = model.astype(dtype)
        _, saved = run_forward(m, X.astype(dtype))
        wrt = np.array([2, 0, 3])
        tan = tangents(m, saved, wrt)
        assert tan[0].shape == (1, 3, 4) and tan[0].dtype == dtype
        np.testing.assert_array_equal(tan[0][0], np.eye(4)[wrt])
        assert all(t.dtype == dtype for t in tan)
        assert tan[-1].shape == (3, 3, 3)
        np.testing.assert_allclose(tan[-1].transpose(0, 2, 1), J[:, :, wrt], rtol=0, atol=tol)


def test_a_float32_hvp_is_float32_and_the_float64_one_to_rounding():
    model = _mlp()
    rng = np.random.default_rng(2)
    X, u = rng.normal(size=(5, 4)), rng.normal(size=4)
    _, _, Hu = jacprop.hvp(model, X, u)
    Y32, J32, Hu32 = jacprop.hvp(model, X, u, dtype=np.float32)
    assert Y32.dtype == J32.dtype == Hu32.dtype == np.float32
    np.testing.assert_allclose(Hu32, Hu, rtol=0, atol=1e-5 * np.abs(Hu).max())
    from jacprop.second_order import iter_hessian

    parts = list(iter_hessian(model, X, dtype=np.float32, direction=u))
    assert all(H.dtype == np.float32 and J.dtype == np.float32 for _, _, J, H in parts)
    np.testing.assert_allclose(np.concatenate([H for *_, H in parts]), Hu32, rtol=0, atol=0)
    _, _, H = jacprop.hessian(model, X)
    Y32, J32, H32 = jacprop.hessian(model, X, dtype=np.float32)
    assert Y32.dtype == J32.dtype == H32.dtype == np.float32
    blocks32 = list(iter_hessian(model, X, dtype=np.float32))  # hessian() is these blocks put together, to the bit
    assert all(y.dtype == j.dtype == np.float32 for _, y, j, _ in blocks32)
    for got, i in ((Y32, 1), (J32, 2), (H32, 3)):
        np.testing.assert_array_equal(got, np.concatenate([b[i] for b in blocks32]))
    for diagonal in (False, True):  # the full H and its diagonal: float32 blocks from float32 tangents
        parts = list(iter_hessian(model, X, dtype=np.float32, diagonal=diagonal))
        assert all(H32.dtype == np.float32 for *_, H32 in parts)
        want = np.diagonal(H, axis1=2, axis2=3) if diagonal else H
        np.testing.assert_allclose(np.concatenate([H32 for *_, H32 in parts]), want, rtol=0,
                                   atol=1e-5 * np.abs(H).max())


def test_per_row_directions_in_padded_blocks():
    """A direction per row, in deterministic blocks of 4 rows over N = 7 (the last block: 3 rows padded to 4):
    H u against central differences of J along each row's u, (J(x + h u) - J(x - h u)) / 2h, h = 1e-5, and
    against H (the full Hessian) times u."""
    from jacprop.second_order import iter_hessian

    model = _mlp()
    rng = np.random.default_rng(3)
    X, U = rng.normal(size=(7, 4)), rng.normal(size=(7, 4))
    got = np.empty((7, 3, 4))
    starts = []
    for start, _, _, Hu in iter_hessian(model, X, direction=U, rows=4, deterministic=True):
        got[start : start + len(Hu)] = Hu
        starts.append((start, len(Hu)))
    assert starts == [(0, 4), (4, 3)]
    h = H_J
    want = (jacprop.jacobian(model, X + h * U)[1] - jacprop.jacobian(model, X - h * U)[1]) / (2 * h)
    assert_scaled(got, want, 1e-8)
    _, _, H = jacprop.hessian(model, X)
    np.testing.assert_allclose(got, np.einsum("nkij,nj->nki", H, U), rtol=0, atol=1e-13)


def test_a_direction_of_exact_fractions_is_converted_like_floats():
    from fractions import Fraction

    model = _mlp()
    X = np.random.default_rng(4).normal(size=(2, 4))
    _, _, want = jacprop.hvp(model, X, [0.5, -0.25, 1.0, 0.0])
    _, _, got = jacprop.hvp(model, X, [Fraction(1, 2), Fraction(-1, 4), Fraction(1), Fraction(0)])
    np.testing.assert_array_equal(got, want)


def test_hvp_hands_deterministic_and_threads_to_the_blocks(monkeypatch):
    """``deterministic`` (pad the last block: a row's bits independent of N) and ``threads`` reach the row blocks
    and the pool; neither shows in the values (the same numbers by design), so they are watched where they act."""
    from jacprop import second_order

    seen = []
    real_blocks, real_map = second_order.blocks, second_order.map_blocks

    def blocks(X, step, pad):
        seen.append(("pad", pad))
        return real_blocks(X, step, pad)

    def map_blocks(f, items, threads):
        seen.append(("threads", threads))
        return real_map(f, items, threads)

    monkeypatch.setattr(second_order, "blocks", blocks)
    monkeypatch.setattr(second_order, "map_blocks", map_blocks)
    model = _mlp()
    X, u = np.random.default_rng(5).normal(size=(3, 4)), np.array([1.0, 0.0, -1.0, 0.5])
    _, _, Hu = jacprop.hvp(model, X, u, deterministic=True, threads=1)
    assert seen == [("pad", True), ("threads", 1)]
    seen.clear()
    _, _, Hu2 = jacprop.hvp(model, X, u)
    assert seen == [("pad", False), ("threads", None)]
    np.testing.assert_allclose(Hu2, Hu, rtol=0, atol=1e-14)
    seen.clear()
    _, _, H = jacprop.hessian(model, X)  # hessian's own defaults
    assert seen == [("pad", False), ("threads", None)]
    np.testing.assert_allclose(Hu2, np.einsum("nkij,j->nki", H, u), rtol=0, atol=1e-14)
    seen.clear()
    _, _, H1 = jacprop.hessian(model, X, deterministic=True, threads=1)
    assert seen == [("pad", True), ("threads", 1)]
    np.testing.assert_allclose(H1, H, rtol=0, atol=1e-14)
    seen.clear()
    list(second_order.iter_hessian(model, X))
    assert seen == [("pad", False), ("threads", None)]


def test_hessian_keeps_to_the_memory_it_is_given(monkeypatch):
    """``memory`` sizes the blocks (``hessian_rows``): 1 byte, one row per block; the same values."""
    from jacprop import second_order

    steps = []
    real_blocks = second_order.blocks
    monkeypatch.setattr(second_order, "blocks", lambda X, step, pad: (steps.append(step), real_blocks(X, step, pad))[1])
    model = _mlp()
    X = np.random.default_rng(5).normal(size=(3, 4))
    _, _, H = jacprop.hessian(model, X)
    _, _, H1 = jacprop.hessian(model, X, memory=1)
    assert steps == [second_order.hessian_rows(model, 3, 4, 8), 1]
    np.testing.assert_allclose(H1, H, rtol=0, atol=1e-14)


def test_iter_hessian_names_a_bad_selection_and_a_bad_combination():
    from jacprop.errors import UsageError
    from jacprop.second_order import iter_hessian

    model, X = _mlp(), np.zeros((2, 4))
    for kw, message in ((dict(outputs=[3]), "output indices must lie in [0, 3), got [3]"),
                        (dict(wrt=[0, -5]), "wrt indices must lie in [0, 4), got [0, -5]"),
                        (dict(direction=np.ones(4), diagonal=True),
                         "direction and diagonal exclude each other: H u is a vector per output already"),
                        (dict(direction=[1.0, np.nan, 0.0, 0.0]), "direction: every value must be finite")):
        with pytest.raises(UsageError) as e:
            list(iter_hessian(model, X, **kw))
        assert str(e.value) == message


def _budget(model, k, w, itemsize, memory, diagonal=False):
    """hessian_rows' budget as its docstring states it: per row, 3 x every node's size (values and saved),
    W x (every node's size + every nonlinear node's size) (tangents and their ``jvp_pre`` parts), 4 K x the largest
    node (cotangents), 2 K W x the largest node (a term's temporary), 3 x H (K W W, or K W for the diagonal) and
    the largest op scratch; and one tangent of the largest nonlinear node within TANGENT_CACHE bytes."""
    import math

    from jacprop.graph import MAX_BLOCK_ROWS
    from jacprop.second_order import TANGENT_CACHE

    sizes = [math.prod(n.shape) for n in model.nodes]
    nonlinear = [math.prod(n.shape) for n in model.nodes[1:] if not n.op.linear]
    scratch = max(n.op.hess_scratch(k, w) for n in model.nodes[1:])
    h = k * w * (1 if diagonal else w)
    per_row = itemsize * (3 * sum(sizes) + w * (sum(sizes) + sum(nonlinear)) + 4 * k * max(sizes)
                          + 2 * k * w * max(sizes) + 3 * h + scratch)
    cache = TANGENT_CACHE // (itemsize * w * max(nonlinear, default=1))
    return max(1, min(MAX_BLOCK_ROWS, memory // per_row, cache))


def test_the_block_budget_as_documented():
    """A recurrent layer first (its scratch and its size count), then Dense layers; a linear model of 600 inputs
    (the cache bound without a nonlinear node); a tiny one (the 2,048-row cap)."""
    from models import mlp

    from jacprop.graph import MAX_BLOCK_ROWS
    from jacprop.second_order import TANGENT_CACHE, hessian_rows

    b = GraphBuilder([("x", (4, 2))])
    op, _ = _cell(2)  # an LSTM over return_sequences: (4, 3)
    r = b.add("lstm", op, b.inputs, "LSTM")
    flat = b.add("flat", ops.Reshape(shape=(-1,)), [r], "Flatten")
    d = b.add("d", ops.Dense(kernel=np.ones((12, 5)), activation=Activation("tanh")), [flat], "Dense")
    rec = b.finish([b.add("out", ops.Dense(kernel=np.ones((5, 2))), [d], "Dense")])
    assert rec.nodes[2].op.hess_scratch(2, 8) > 0  # node 1: the input's Slice
    # memory binds in the first three (the diagonal's smaller H leaves room for more rows), the cache in the last
    for (k, w, itemsize, memory, diagonal), rows in (((2, 8, 8, 2**20, False), 52), ((2, 8, 8, 2**20, True), 61),
                                                     ((1, 3, 4, 10**5, True), 30),
                                                     ((2, 32, 8, 2**30, False), TANGENT_CACHE // (8 * 32 * 12))):
        got = hessian_rows(rec, k, w, itemsize, memory, diagonal)
        assert got == _budget(rec, k, w, itemsize, memory, diagonal) == rows, (k, w, itemsize, memory, diagonal, got)
    wide = mlp([600, 2], ["linear"])
    assert hessian_rows(wide, 2, 600, 8, 2**40) == _budget(wide, 2, 600, 8, 2**40) == TANGENT_CACHE // (8 * 600)
    tiny = mlp([1, 1], ["linear"])
    assert hessian_rows(tiny, 1, 1, 8, 2**40) == MAX_BLOCK_ROWS


# ---------------------------------------------------------------------------
# engine.py: blocks, halves and what reaches the pool

def _wide():
    """60 -> 300 -> 60: about 2.2e6 multiply-adds a row in reverse mode (60 seeds), so a call of 64 rows or more
    (below two blocks) is cut in two halves, and its products are large enough for BLAS to thread (held)."""
    from models import mlp

    return mlp([60, 300, 60], ["tanh", "linear"], seed=3)


def test_halves_block_heights_and_values():
    """Non-deterministic N = 100: two halves of 50; deterministic: one block; rows=80 as asked; J against central
    differences of the model's forward, (f(x + h e_i) - f(x - h e_i)) / 2h with h = 1e-6 max(1, |x_i|)."""
    from helpers import central_jacobian

    from jacprop.engine import iter_jacobian
    from jacprop.graph import DEFAULT_MEMORY, block_rows

    model = _wide()
    assert block_rows(model, 60, 8, DEFAULT_MEMORY) >= 100  # N = 100 is below two blocks
    X = np.random.default_rng(6).normal(size=(100, 60))
    J_ref = central_jacobian(model.forward, X)
    for kw, chunks in (({}, [(0, 50), (50, 50)]), ({"deterministic": True}, [(0, 100)]),
                       ({"rows": 80}, [(0, 80), (80, 20)]), ({"rows": 80, "deterministic": True}, [(0, 80), (80, 20)])):
        parts = list(iter_jacobian(model, X, **kw))
        assert [(s, len(Y)) for s, Y, _ in parts] == chunks, kw
        assert_scaled(np.concatenate([J for *_, J in parts]), J_ref, 1e-7)
    _, J = jacprop.jacobian(model, X)
    assert_scaled(J, J_ref, 1e-7)
    _, J1 = jacprop.jacobian(model, X[:7])  # below the halves' minimum: one block
    np.testing.assert_allclose(J1, J[:7], rtol=0, atol=1e-13)


def test_the_pool_gets_the_blas_hold_the_padding_and_the_threads(monkeypatch):
    """What neither the values nor the chunks show: deterministic blocks all of one height (``block_rows``,
    padded; never halves), BLAS held to one thread exactly when a block's products are large enough for BLAS to
    thread (a padded block counts at its full height), the thread count as given."""
    from models import mlp

    from jacprop import engine
    from jacprop.graph import DEFAULT_MEMORY, block_rows

    seen = []
    real_blocks, real_map = engine.blocks, engine.map_blocks

    def blocks(X, step, pad):
        seen.append(("blocks", step, bool(pad)))
        return real_blocks(X, step, pad)

    def map_blocks(fn, items, threads, hold):
        seen.append(("pool", threads, hold))
        return real_map(fn, items, threads, hold)

    monkeypatch.setattr(engine, "blocks", blocks)
    monkeypatch.setattr(engine, "map_blocks", map_blocks)
    # (model, hold for 5 rows alone, hold for 5 rows padded to a block): the medium one's block of 5 rows is too
    # small for BLAS to thread, its padded block of 512 is not
    for model, hold, hold_padded in ((_wide(), True, True), (mlp([8, 32, 8], ["tanh", "linear"]), False, True),
                                     (mlp([3, 5, 2], ["tanh", "linear"]), False, False)):
        step = block_rows(model, model.K, 8, DEFAULT_MEMORY)
        X = np.random.default_rng(7).normal(size=(5, model.D))
        for call in (jacprop.jacobian, lambda m, X, **kw: list(engine.iter_jacobian(m, X, **kw))):
            seen.clear()
            call(model, X)
            assert seen == [("blocks", step, False), ("pool", None, hold)]
            seen.clear()
            call(model, X, deterministic=True, threads=1)
            assert seen == [("blocks", step, True), ("pool", 1, hold_padded)]
    seen.clear()
    jacprop.jacobian(_wide(), np.zeros((100, 60)), deterministic=True)  # 100 rows: halves, were it not deterministic
    assert seen == [("blocks", block_rows(_wide(), 60, 8, DEFAULT_MEMORY), True), ("pool", None, True)]


def test_plans_share_a_read_only_seed():
    """The identity seed is kept on the model and shared by every call with that plan: read-only, so no op can
    change it for the next call."""
    from jacprop import engine

    model = _wide()
    for mode in ("reverse", "forward"):
        p = engine.plan(model, mode)
        assert not p.seed.flags.writeable
        np.testing.assert_array_equal(p.seed[0], np.eye(60))
        with pytest.raises(ValueError):
            p.seed[0, 0, 0] = 2


def test_a_single_index_and_nested_indices_select_like_a_flat_list():
    from models import mlp

    model = mlp([4, 6, 3], ["tanh", "softplus"], seed=8)
    X = np.random.default_rng(9).normal(size=(3, 4))
    _, J = jacprop.jacobian(model, X)
    for outputs, wrt, ko, kw in ((1, None, [1], slice(None)), ([[2, 0]], 3, [2, 0], [3]),
                                 (np.array([[1], [2]]), [[0, 2]], [1, 2], [0, 2])):
        for mode in ("reverse", "forward"):
            Y, Js = jacprop.jacobian(model, X, mode=mode, outputs=outputs, wrt=wrt)
            np.testing.assert_allclose(Js, J[:, ko][:, :, kw], rtol=0, atol=1e-15)
            assert Y.shape == (3, len(ko))


def _refused(model):
    from jacprop.errors import ModelError

    with pytest.raises(ModelError) as e:
        jacprop.hessian(model, np.zeros((1, model.D)))
    return str(e.value)


def test_rules_missing_inside_a_layer_are_refused_naming_it(monkeypatch):
    """check_second_order looks inside TimeDistributed (its ops and their activations) and at a recurrent layer's
    recurrent activation, not only at the layer's own op and activation."""
    from jacprop.ops import activations, tensor

    def td(*inner):
        b = GraphBuilder([("x", (3, 2))])
        return b.finish([b.add("td", ops.TimeDistributed(inner=inner), b.inputs, "TimeDistributed")])

    jacprop.hessian(td(tensor.Pointwise(name="exp")), np.zeros((1, 6)))
    monkeypatch.delitem(tensor.POINTWISE2, "exp")  # exp without its h'': an op without a second-order rule
    assert _refused(td(tensor.Pointwise(name="exp"))) == "hessian: layer 'td' (TimeDistributed): op Pointwise has " \
                                                         "no second-order rule"
    dense = ops.Dense(kernel=np.ones((2, 2)), activation=Activation("softsign"))
    jacprop.hessian(td(dense), np.zeros((1, 6)))  # it has one
    op, _ = _cell(3)  # an LSTM with a swish cell and a hard_sigmoid gate
    model = _alone(op, 4, 2)
    jacprop.hessian(model, np.zeros((1, 8)))
    monkeypatch.delitem(activations.SECOND, "softsign")
    assert _refused(td(dense)) == "hessian: layer 'td' (TimeDistributed): activation 'softsign' has no " \
                                  "second-order rule"
    monkeypatch.delitem(activations.SECOND, "hard_sigmoid")
    assert _refused(model) == "hessian: layer 'rnn' (RNN): activation 'hard_sigmoid' has no second-order rule"


def test_hessian_halves_and_block_heights():
    """iter_hessian over N = 100 rows (below two blocks): two halves of 50 unless deterministic (one block) or
    ``rows`` is given (as asked); H against central differences of J in every case."""
    from jacprop.second_order import hessian_rows, iter_hessian

    model = _mlp()
    assert hessian_rows(model, 3, 4, 8) >= 100
    X = np.random.default_rng(11).normal(size=(100, 4))
    H_ref = fd_hessian_of_j(model, X)
    for kw, chunks in (({}, [(0, 50), (50, 50)]), ({"deterministic": True}, [(0, 100)]),
                       ({"rows": 80}, [(0, 80), (80, 20)]), ({"rows": 80, "deterministic": True}, [(0, 80), (80, 20)])):
        parts = list(iter_hessian(model, X, **kw))
        assert [(s, len(H)) for s, _, _, H in parts] == chunks, kw
        assert_scaled(np.concatenate([H for *_, H in parts]), H_ref, 1e-7)
    _, _, H = jacprop.hessian(model, X)
    assert_scaled(H, H_ref, 1e-7)


def test_a_linear_model_gives_float32_zeros_in_float32():
    """H = 0 without any second-order term (no nonlinear node): still in the run's dtype, in every form."""
    from models import mlp

    from jacprop.second_order import iter_hessian

    model = mlp([3, 4, 2], ["linear", "relu"])
    X = np.random.default_rng(12).normal(size=(4, 3))
    for kw, shape in (({}, (4, 2, 3, 3)), ({"diagonal": True}, (4, 2, 3)), ({"direction": np.ones(3)}, (4, 2, 3))):
        parts = list(iter_hessian(model, X, dtype=np.float32, **kw))
        H = np.concatenate([p[3] for p in parts])
        assert H.dtype == np.float32 and H.shape == shape and not H.any(), kw
