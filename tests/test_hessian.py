"""Hessians of whole models: against the framework references beside the sample models (TensorFlow's nested
GradientTape, torch.func.hessian; sample_models/make_hessian_refs.py), against central differences of J
(ONNX samples, models built here), the chain rule across modules written out, selections, blocks, refusals."""

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_close_jacobian, central_jacobian
from models import branchy, mlp

import jacprop
from jacprop import ops
from jacprop.errors import ModelError
from jacprop.graph import GraphBuilder, chain
from jacprop.ops.activations import Activation

SAMPLES = Path(__file__).parent.parent / "sample_models"
KERAS = SAMPLES / "keras"


def _keras_cases():
    cases = []
    for entry in json.loads((KERAS / "manifest.json").read_text()):
        if entry["expect"] != "ok":
            continue
        for fmt, name in entry["files"].items():
            ref = KERAS / f"{entry['name']}.{fmt.split('.')[0]}.hess.npz"
            ref = ref if ref.exists() else KERAS / f"{entry['name']}.hess.npz"
            if ref.exists():
                cases.append((KERAS / name, ref, {}))
    return cases


CASES = _keras_cases() + [
    (SAMPLES / "bishop_tanh.npz", SAMPLES / "bishop_tanh.hess.npz", {}),
    (SAMPLES / "torch_mlp.npz", SAMPLES / "torch_mlp.hess.npz", {"activation": "relu"}),
    (SAMPLES / "torch_mlp.npz", SAMPLES / "torch_mlp.tanh.hess.npz", {"activation": "tanh"}),
]


def test_every_reference_is_used():
    assert {ref for _, ref, _ in CASES} == set(SAMPLES.glob("**/*.hess.npz"))


@pytest.mark.parametrize("path,ref,options", CASES, ids=[f"{p.name}-{r.name}" for p, r, _ in CASES])
def test_hessian_matches_the_framework_reference(path, ref, options):
    """Done criterion of issue 14: |H - H_ref| <= 1e-8 max(1, max|H_ref|) on every sample model and file format."""
    z = np.load(ref, allow_pickle=False)
    assert "wrt" not in z.files
    Y, J, H = jacprop.hessian(jacprop.load(str(path), **options), z["x"])
    assert_close_jacobian(Y, z["y"], 1e-12)
    assert_close_jacobian(J, z["jacobian"], 1e-12)
    assert_close_jacobian(H, z["hessian"], 1e-8)


def fd_hessian(model, X):
    """Central differences of jacprop's J (itself checked against central differences of f): (N, K, D, D)."""
    n, k, d = len(X), model.K, model.D
    return central_jacobian(lambda A: jacprop.jacobian(model, A)[1].reshape(len(A), -1), X).reshape(n, k, d, d)


ONNX = sorted((SAMPLES / "onnx").glob("*.onnx"))


@pytest.mark.parametrize("path", ONNX, ids=[p.name for p in ONNX])
def test_onnx_samples_against_central_differences_of_j(path):
    model = jacprop.load(str(path))
    X = np.loadtxt(path.with_suffix(".csv"), delimiter=",", skiprows=1, ndmin=2)[:3, -model.D:]
    _, J, H = jacprop.hessian(model, X)
    assert_close_jacobian(J, jacprop.jacobian(model, X)[1], 1e-13)
    assert_close_jacobian(H, fd_hessian(model, X), 1e-6)
    np.testing.assert_array_equal(H, H.transpose(0, 1, 3, 2))


TORCH_ONNX = [p for p in ONNX if "hessian" in np.load(p.with_suffix(".ref.npz")).files]


def test_every_torch_onnx_sample_has_a_torch_func_hessian():
    assert {p.name for p in TORCH_ONNX} == {p.name for p in ONNX if p.name.startswith("torch_")}


@pytest.mark.parametrize("path", TORCH_ONNX, ids=[p.name for p in TORCH_ONNX])
def test_onnx_samples_match_torch_func_hessian(path):
    """torch.func.hessian of the torch module (make_onnx_samples.py): |H - H_ref| <= 1e-8 max(1, max|H_ref|) for
    float64 files, 1e-4 relative for float32 ones (whose references are the float64-promoted module)."""
    ref = np.load(path.with_suffix(".ref.npz"))
    H_ref, wrt = ref["hessian"], [int(i) for i in ref["hessian_wrt"]]
    _, J, H = jacprop.hessian(jacprop.load(str(path)), ref["x"][: len(H_ref)], wrt=wrt)
    tol = 1e-4 if ref["float32"] else 1e-8
    assert np.abs(H - H_ref).max() <= tol * max(1.0, np.abs(H_ref).max())
    assert np.abs(H_ref).max() > 1e-3  # not a vacuous comparison


def test_branchy_graph_against_central_differences():
    """Fan-out, conv, max pooling, multiply and add merges, layer norm and a softmax head."""
    model = branchy()
    X = np.random.default_rng(3).normal(size=(4, model.D))
    Y, J, H = jacprop.hessian(model, X)
    assert_close_jacobian(H, fd_hessian(model, X), 1e-6)
    assert np.abs(H).max() > 1e-2


def test_chain_rule_across_modules_written_out():
    """H of B(A(x)) = J_A^T H_B J_A + sum_l dB/dy_l H_A[l]: the chained model against the two modules' own H."""
    a, b = mlp([3, 5, 4], ["tanh", "softplus"], seed=1), mlp([4, 3, 2], ["swish", "softmax"], seed=2)
    X = np.random.default_rng(4).normal(size=(5, 3))
    Ya, Ja, Ha = jacprop.hessian(a, X)
    _, Jb, Hb = jacprop.hessian(b, Ya)
    expect = np.einsum("nli,nklm,nmj->nkij", Ja, Hb, Ja) + np.einsum("nkl,nlij->nkij", Jb, Ha)
    _, J, H = jacprop.hessian(chain([a, b]), X)
    assert_close_jacobian(J, np.einsum("nkl,nli->nki", Jb, Ja), 1e-14)
    assert_close_jacobian(H, expect, 1e-14)


def test_selections_are_slices_of_the_full_hessian():
    model = branchy()
    X = np.random.default_rng(5).normal(size=(3, model.D))
    Y, J, H = jacprop.hessian(model, X)
    outputs, wrt = [4, 0], [14, 2, 7]
    Ys, Js, Hs = jacprop.hessian(model, X, outputs=outputs, wrt=wrt)
    np.testing.assert_allclose(Ys, Y[:, outputs], rtol=0, atol=1e-15)
    np.testing.assert_allclose(Js, J[:, outputs][:, :, wrt], rtol=0, atol=1e-15)
    np.testing.assert_allclose(Hs, H[:, outputs][:, :, wrt][:, :, :, wrt], rtol=0, atol=1e-15)
    _, _, Hd = jacprop.hessian(model, X, wrt=wrt, diagonal=True)
    np.testing.assert_allclose(Hd, np.diagonal(H[:, :, wrt][:, :, :, wrt], axis1=2, axis2=3), rtol=0, atol=1e-15)


def test_blocks_keep_memory_bounded_and_results_unchanged():
    """A tiny memory budget forces one row per block: the same H (memory flat in N)."""
    from jacprop.second_order import hessian_rows

    model = branchy()
    X = np.random.default_rng(6).normal(size=(7, model.D))
    assert hessian_rows(model, model.K, model.D, 8, memory=1) == 1
    assert hessian_rows(model, model.K, model.D, 8) > 7
    _, _, H = jacprop.hessian(model, X)
    _, _, H1 = jacprop.hessian(model, X, memory=1)
    assert_close_jacobian(H1, H, 1e-14)  # BLAS may round a row differently in a block of another height


def test_block_height_keeps_one_tangent_in_cache():
    """hessian_rows: one tangent (rows, W, largest nonlinear node) in TANGENT_CACHE bytes, within the budget."""
    from jacprop.second_order import TANGENT_CACHE, hessian_rows

    small = mlp([8, 64, 64, 2], ["tanh", "tanh", "linear"])
    medium = mlp([32, 256, 256, 8], ["tanh", "tanh", "linear"])
    assert TANGENT_CACHE // (8 * 8 * 64) == 128 == hessian_rows(small, 2, 8, 8)
    assert TANGENT_CACHE // (8 * 32 * 256) == 8 == hessian_rows(medium, 8, 32, 8)
    assert hessian_rows(small, 2, 8, 8, memory=2**20) == 2**20 // (8 * 5486)  # the budget's per-row count binds
    wide_in = mlp([784, 128, 10], ["tanh", "linear"])  # the input's 784 is the seed's, not a row's tangent
    assert hessian_rows(wide_in, 10, 32, 8) > TANGENT_CACHE // (8 * 32 * 784)


def test_tangents_nothing_reads_are_not_computed(monkeypatch):
    """Past the last nonlinear node no tangent is read (second_order._wanted): the trailing linear layers' jvp is
    not called, nor the last nonlinear node's (its hess_term reads its inputs' tangents or its jvp_pre part only),
    and H still agrees with central differences of J, Dense (pre part) and Act (no pre part) alike."""
    from jacprop import second_order

    rng = np.random.default_rng(8)
    b = GraphBuilder([("x", (3,))])
    node = b.inputs[0]
    for name, op in [("d0", ops.Dense(kernel=rng.normal(size=(3, 5)), bias=rng.normal(size=5) * 0.2,
                                      activation=Activation("tanh"))),
                     ("d1", ops.Dense(kernel=rng.normal(size=(5, 4)) * 0.7)),
                     ("act", ops.Act(activation=Activation("sigmoid"))),
                     ("d2", ops.Dense(kernel=rng.normal(size=(4, 4)))),
                     ("d3", ops.Dense(kernel=rng.normal(size=(4, 2))))]:
        node = b.add(name, op, [node], type(op).__name__)
    model = b.finish([node])
    wanted = dict(zip([n.name for n in model.nodes[1:]], second_order._wanted(model)[1:]))
    assert wanted == {"x": True, "d0": True, "d1": True, "act": False, "d2": False, "d3": False}
    calls = []
    for cls in (ops.Dense, ops.Act):
        monkeypatch.setattr(cls, "jvp", lambda self, saved, ts, f=cls.jvp: calls.append(self) or f(self, saved, ts))
    X = np.random.default_rng(9).normal(size=(4, 3))
    _, _, H = jacprop.hessian(model, X)
    monkeypatch.undo()
    ran = {getattr(op, "kernel", np.zeros(0)).shape for op in calls}  # hessian runs a float64 copy of each op
    assert ran == {(5, 4)}  # d1's only: d0's tangent comes from its jvp_pre; act, d2 and d3's are never formed
    assert_close_jacobian(H, fd_hessian(model, X), 1e-7)
    assert np.abs(H).max() > 1e-2


def test_float32():
    model = mlp([3, 6, 2], ["gelu", "tanh"])
    X = np.random.default_rng(7).normal(size=(4, 3))
    _, _, H64 = jacprop.hessian(model, X)
    _, _, H32 = jacprop.hessian(model, X, dtype=np.float32)
    assert H32.dtype == np.float32
    assert_close_jacobian(H32, H64, 1e-5)


def test_piecewise_linear_model_has_zero_hessian():
    model = mlp([3, 4, 2], ["relu", "linear"])
    _, _, H = jacprop.hessian(model, np.random.default_rng(8).normal(size=(3, 3)))
    assert H.shape == (3, 2, 3, 3) and not H.any()


class NoRule(ops.Op):
    """A nonlinear op (y = x^3) with first-order rules only."""

    def forward(self, x):
        return x**3, x

    def vjp(self, saved, g, out=None):
        return (g * 3 * saved[:, None] ** 2,)

    def jvp(self, saved, ts):
        return ts[0] * 3 * saved[:, None] ** 2


def test_an_op_without_a_second_order_rule_is_refused():
    b = GraphBuilder([("x", (3,))])
    node = b.add("cube", NoRule(), b.inputs, "Cube")
    model = b.finish([b.add("out", ops.Dense(kernel=np.ones((3, 1))), [node], "Dense")])
    jacprop.jacobian(model, np.ones((1, 3)))  # J is fine
    with pytest.raises(ModelError) as e:
        jacprop.hessian(model, np.ones((1, 3)))
    assert str(e.value) == "hessian: layer 'cube' (Cube): op NoRule has no second-order rule"


def test_an_activation_without_a_second_order_rule_is_refused(monkeypatch):
    from jacprop.ops import activations

    monkeypatch.delitem(activations.SECOND, "tanh")
    with pytest.raises(ModelError, match="layer 'dense_0' \\(Dense\\): activation 'tanh' has no second-order rule"):
        jacprop.hessian(mlp([2, 3, 1], ["tanh", "linear"]), np.ones((1, 2)))


def test_softmax_of_one_unit_and_linear_outputs():
    """Edge cases: H = 0 for a linear model (row-independent J), float inputs of extreme size stay finite."""
    b = GraphBuilder([("x", (2,))])
    dense = ops.Dense(kernel=np.ones((2, 1)), activation=Activation("softmax"))
    model = b.finish([b.add("d", dense, b.inputs, "Dense")])
    _, J, H = jacprop.hessian(model, np.array([[1e300, -1e300], [0.0, 1.0]]))
    assert not J.any() and not H.any()


def _unreferenced_keras():
    """Keras samples that load and have a second-order rule but no framework Hessian (upsample_bilinear:
    TensorFlow's bilinear resize runs in float32 and its nested tape gives H = 0; make_hessian_refs.py refuses it)."""
    out = []
    for entry in json.loads((KERAS / "manifest.json").read_text()):
        if entry["expect"] == "ok" and not list(KERAS.glob(f"{entry['name']}.*hess.npz")):
            out += [(KERAS / name, KERAS / entry["csv"]) for name in entry["files"].values()]
    return out


@pytest.mark.parametrize("path,csv", _unreferenced_keras(), ids=[p.name for p, _ in _unreferenced_keras()])
def test_keras_samples_without_a_reference_against_central_differences_of_j(path, csv):
    model = jacprop.load(str(path))
    try:
        from jacprop.second_order import check_second_order

        check_second_order(model)
    except ModelError as e:
        pytest.skip(str(e))  # refused with one line (recurrent ops, TimeDistributed): tested in test_hessian_cli
    X = np.loadtxt(csv, delimiter=",", skiprows=1, ndmin=2)[:3, -model.D:]
    _, J, H = jacprop.hessian(model, X)
    assert_close_jacobian(H, fd_hessian(model, X), 1e-6)


@pytest.mark.parametrize("sizes,acts", [([3, 9, 8, 10], ["tanh", "sigmoid", "softplus"]),
                                        ([2, 6, 7], ["elu", "tanh"])])
def test_many_outputs_few_inputs_against_central_differences(sizes, acts):
    """K > 2 D: the activations' hess_term by pairs t_i t_j (and the first layer's shared tangent table)."""
    model = mlp(sizes, acts, seed=6)
    X = np.random.default_rng(7).normal(size=(5, model.D))
    _, _, H = jacprop.hessian(model, X)
    assert_close_jacobian(H, fd_hessian(model, X), 1e-7)
    np.testing.assert_array_equal(H, H.transpose(0, 1, 3, 2))
    _, _, Hd = jacprop.hessian(model, X, diagonal=True)
    np.testing.assert_allclose(Hd, np.diagonal(H, axis1=2, axis2=3), rtol=1e-13, atol=1e-15)
