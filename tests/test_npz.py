"""NPZ models: the jacprop schema round trip, weight lists, PyTorch state_dicts, refusals."""

import numpy as np
import pytest
from models import branchy, mlp

import jacprop
from jacprop.engine import jacobian
from jacprop.errors import ModelError
from jacprop.loaders import npz

RNG = np.random.default_rng(11)
SAMPLES = __import__("pathlib").Path(__file__).parent.parent / "sample_models"


@pytest.mark.parametrize("make", [branchy, lambda: mlp([4, 5, 3], ["selu", "softmax"])], ids=["branchy", "mlp"])
def test_schema_round_trip_gives_the_same_function(tmp_path, make):
    model = make()
    npz.save(model, tmp_path / "m.npz")
    again = jacprop.load(tmp_path / "m.npz")
    X = RNG.normal(size=(4, model.D))
    Y0, J0 = jacobian(model, X)
    Y1, J1 = jacobian(again, X)
    assert Y1.tobytes() == Y0.tobytes() and J1.tobytes() == J0.tobytes()
    assert again.output_names == model.output_names and again.input_names == model.input_names
    assert [n.kind for n in again.nodes] == [n.kind for n in model.nodes]
    with np.load(tmp_path / "m.npz", allow_pickle=False) as z:  # plain arrays only
        assert all(z[k].dtype != object for k in z.files)


def test_weight_list_is_an_mlp_with_kernels_in_by_out(tmp_path):
    W0, b0, W1, b1 = RNG.normal(size=(3, 4)), RNG.normal(size=4), RNG.normal(size=(4, 2)), RNG.normal(size=2)
    np.savez(tmp_path / "w.npz", W0=W0, b0=b0, W1=W1, b1=b1, activations=np.array(["tanh", "linear"]))
    model = jacprop.load(tmp_path / "w.npz")
    X = RNG.normal(size=(5, 3))
    np.testing.assert_allclose(model.forward(X), np.tanh(X @ W0 + b0) @ W1 + b1, rtol=1e-14)
    assert model.output_names == ["y[0]", "y[1]"]


def test_pytorch_state_dict_weights_are_out_by_in_and_ordered_by_number(tmp_path):
    w = {f"net.{i}.weight": RNG.normal(size=s) for i, s in ((0, (5, 3)), (2, (4, 5)), (10, (2, 4)))}
    b = {f"net.{i}.bias": RNG.normal(size=s[0]) for i, s in ((0, (5, 3)), (2, (4, 5)), (10, (2, 4)))}
    np.savez(tmp_path / "t.npz", **w, **b)
    model = jacprop.load(tmp_path / "t.npz", activation="relu")
    X = RNG.normal(size=(4, 3))
    h = np.maximum(X @ w["net.0.weight"].T + b["net.0.bias"], 0)
    h = np.maximum(h @ w["net.2.weight"].T + b["net.2.bias"], 0)
    np.testing.assert_allclose(model.forward(X), h @ w["net.10.weight"].T + b["net.10.bias"], rtol=1e-13)


def test_weight_list_without_activations_asks_for_them(tmp_path):
    np.savez(tmp_path / "w.npz", W0=np.ones((3, 4)), b0=np.ones(4), W1=np.ones((4, 2)))
    with pytest.raises(ModelError, match="give --activation"):
        jacprop.load(tmp_path / "w.npz")


def test_weight_shapes_must_chain(tmp_path):
    np.savez(tmp_path / "w.npz", W0=np.ones((3, 4)), b0=np.ones(4), W1=np.ones((5, 2)),
             activations=np.array(["relu", "linear"]))
    with pytest.raises(ModelError, match=r"W1 of shape \(5, 2\) does not follow the previous layer \(4 outputs\)"):
        jacprop.load(tmp_path / "w.npz")


def test_object_arrays_are_refused_never_unpickled(tmp_path):
    np.savez(tmp_path / "p.npz", W0=np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ModelError, match="object arrays"):
        jacprop.load(tmp_path / "p.npz")


def test_malformed_schema_is_a_model_error(tmp_path):
    np.savez(tmp_path / "s.npz",
             __jacprop__=np.array('{"format": "jacprop", "version": 1, "D": 2, '
                                  '"nodes": [{"name": "a", "op": "Nope", "inputs": [0]}]}'))
    with pytest.raises(ModelError, match="node 1 .*unknown op 'Nope'"):
        jacprop.load(tmp_path / "s.npz")


def test_shipped_sample_loads():
    model = jacprop.load(SAMPLES / "bishop_tanh.npz")
    assert (model.D, model.K) == (3, 2)
