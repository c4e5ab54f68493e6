"""Hessians of recurrent models (issue 19 item 1, second order): the Keras recurrent samples against torch.func
float64 references on the same weights (sample_models/keras/make_rnn_hessian_refs.py; skipped if absent),
against central differences of J, check --order 2 on every recurrent sample file, selections, blocks and
refusals.  The op-level rules are in test_hessian_ops.py (OP_CASES and SECOND_ORDER_CASES of test_recurrent)."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import assert_close_jacobian
from test_hessian import fd_hessian
from test_recurrent import rnn

import jacprop
from jacprop import ops
from jacprop.cli import main
from jacprop.errors import ModelError
from jacprop.graph import GraphBuilder
from jacprop.ops.activations import Activation

KERAS = Path(__file__).resolve().parent.parent / "sample_models" / "keras"
RECURRENT = ("lstm", "rnn_stack", "gru_variants", "rnn_acts", "bidirectional", "time_distributed")
FILES = sorted(p for name in RECURRENT for p in KERAS.glob(f"{name}.k*[sh5]") if ".weights." not in p.name
               and ".legacy_weights." not in p.name and p.suffix in (".h5", ".keras"))


def _ref(path: Path) -> Path:
    """The torch reference of a sample file: rnn_acts has one per Keras version (hard_sigmoid differs)."""
    name, version = path.name.split(".")[:2]
    if name == "rnn_acts":
        return KERAS / f"rnn_acts.{'k2' if version in ('k2', 'k22') else 'k3'}.hess.npz"
    return KERAS / f"{name}.hess.npz"


def test_every_recurrent_sample_file_is_covered():
    assert {p.name.split(".")[0] for p in FILES} == set(RECURRENT)
    assert "rnn_acts.k22.h5" in {p.name for p in FILES} and len(FILES) == 19


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_hessian_matches_torch_func(path):
    """|H - H_torch| <= 1e-8 max(1, max|H_torch|) (measured: <= 1.4e-14 max|H|); y and J to 1e-12."""
    ref = _ref(path)
    if not ref.exists():
        pytest.skip(f"{ref.name} absent (make_rnn_hessian_refs.py writes it)")
    z = np.load(ref, allow_pickle=False)
    assert str(z["framework"]).startswith("torch ")
    Y, J, H = jacprop.hessian(jacprop.load(str(path)), z["x"])
    assert_close_jacobian(Y, z["y"], 1e-12)
    assert_close_jacobian(J, z["jacobian"], 1e-12)
    assert_close_jacobian(H, z["hessian"], 1e-8)
    assert np.abs(H - z["hessian"]).max() <= 1e-12 * np.abs(z["hessian"]).max()
    _, _, Hd = jacprop.hessian(jacprop.load(str(path)), z["x"], diagonal=True)
    assert_close_jacobian(Hd, np.diagonal(z["hessian"], axis1=2, axis2=3), 1e-8)


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_check_order_2_passes(path):
    csv = KERAS / f"{path.name.split('.')[0]}.csv"
    r = CliRunner().invoke(main, ["check", str(path), str(csv), "--order", "2", "--rows", "1-4", "--format", "json"])
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert result["order"] == 2 and result["flat"] == []
    assert all(o["ok"] and o["max_scaled_error"] < 1e-8 for o in result["outputs"])


def _bidirectional_model():
    """Bidirectional(GRU classic, mul) over return_sequences, then Bidirectional(SimpleRNN elu, ave) and a Dense."""
    b = GraphBuilder([("x", (4, 2))])
    fwd = b.add("f", rnn("gru", 2, 3, reset_after=False, return_sequences=True), b.inputs, "GRU")
    back = b.add("b", rnn("gru", 2, 3, reset_after=False, return_sequences=True, go_backwards=True,
                          reverse_output=True), b.inputs, "GRU")
    mul = b.add("bi_mul", ops.Merge(how="multiply"), [fwd, back], "Bidirectional")
    f2 = b.add("f2", rnn("simple", 3, 2, activation=Activation("elu", alpha=1.0)), [mul], "SimpleRNN")
    b2 = b.add("b2", rnn("simple", 3, 2, activation=Activation("elu", alpha=1.0), go_backwards=True), [mul],
               "SimpleRNN")
    ave = b.add("bi_ave", ops.Merge(how="average"), [f2, b2], "Bidirectional")
    out = b.add("out", ops.Dense(kernel=np.random.default_rng(3).normal(size=(2, 2)), activation=Activation("tanh")),
                [ave], "Dense")
    return b.finish([out])


def test_bidirectional_built_here_matches_central_differences_and_blocks():
    model = _bidirectional_model()
    X = np.random.default_rng(4).uniform(-2, 2, size=(5, model.D))
    Y, J, H = jacprop.hessian(model, X)
    assert_close_jacobian(H, fd_hessian(model, X), 1e-6)
    _, _, H1 = jacprop.hessian(model, X, memory=1)  # one row per block
    np.testing.assert_allclose(H1, H, rtol=0, atol=1e-14)
    wrt = [7, 0, 3]
    _, Js, Hs = jacprop.hessian(model, X, outputs=[1], wrt=wrt)
    np.testing.assert_allclose(Hs, H[:, [1]][:, :, wrt][:, :, :, wrt], rtol=0, atol=1e-14)
    np.testing.assert_allclose(Js, J[:, [1]][:, :, wrt], rtol=0, atol=1e-14)


def test_the_block_budget_counts_the_recurrent_scratch():
    from jacprop.second_order import hessian_rows

    model = jacprop.load(str(KERAS / "lstm.k3.keras"))
    (lstm,) = [n.op for n in model.nodes[1:] if isinstance(n.op, ops.Recurrent)]
    assert lstm.hess_scratch(2, 10) == 10 * 5 * 6 * 4 + 4 * 10 * 16  # W T (#P) U + 4 W G U
    plain = hessian_rows(model, 2, 10, 8, memory=2**20)
    lstm.hess_scratch = lambda k, w: 0  # what the budget was before the hook
    assert plain < hessian_rows(model, 2, 10, 8, memory=2**20)


def test_recurrent_activation_without_a_rule_is_refused_naming_the_layer(monkeypatch):
    from jacprop.ops import activations

    monkeypatch.delitem(activations.SECOND, "sigmoid")
    model = jacprop.load(str(KERAS / "lstm.k3.keras"))
    with pytest.raises(ModelError) as e:
        jacprop.hessian(model, np.zeros((1, model.D)))
    assert str(e.value) == "hessian: layer 'lstm' (LSTM): activation 'sigmoid' has no second-order rule"


def test_relu_simple_rnn_is_piecewise_linear():
    b = GraphBuilder([("x", (3, 2))])
    node = b.add("rnn", rnn("simple", 2, 3, activation=Activation("relu")), b.inputs, "SimpleRNN")
    model = b.finish([node])
    assert model.nodes[1].op.linear
    _, _, H = jacprop.hessian(model, np.random.default_rng(5).normal(size=(4, model.D)))
    assert not H.any()
