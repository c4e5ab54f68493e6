"""jacprop check --order 2 (H against central differences of J), per-output scales, flat (saturated) outputs,
and jacprop.check staying the function whatever is imported."""

import importlib
import json
import pkgutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from models import mlp

import jacprop
from jacprop import ops
from jacprop.cli import main
from jacprop.graph import GraphBuilder
from jacprop.ops.activations import Activation

SAMPLES = Path(__file__).parent.parent / "sample_models"
MODEL, INPUTS = str(SAMPLES / "bishop_tanh.npz"), str(SAMPLES / "bishop_tanh.csv")


def run(*args):
    return CliRunner().invoke(main, ["check", *map(str, args)])


def test_jacprop_check_is_the_function_after_every_submodule_is_imported():
    for info in pkgutil.walk_packages(jacprop.__path__, "jacprop."):
        if not info.name.endswith("__main__"):  # that one runs the CLI
            importlib.import_module(info.name)
    assert callable(jacprop.check) and jacprop.check.__module__ == "jacprop.fdcheck"
    X = np.loadtxt(INPUTS, delimiter=",", skiprows=1)
    assert jacprop.check(jacprop.load(MODEL), X, order=2)["ok"] is True


def test_order_2_passes_on_the_sample_and_reports_pairs():
    r = run(MODEL, INPUTS, "--order", "2", "--format", "json")
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert result["order"] == 2 and result["floor"] == 1e-8 and result["flat"] == []
    for o in result["outputs"]:
        assert o["ok"] and o["max_scaled_error"] < 1e-8 and o["scale"] > 0.5
        assert len(o["input"].split(",")) == 2


def test_order_2_catches_a_wrong_second_order_rule(monkeypatch):
    """A tanh'' off by 1 % (J untouched): order 1 still passes, order 2 fails with exit 1."""
    from jacprop.ops import activations

    rule = activations.SECOND["tanh"]
    monkeypatch.setitem(activations.SECOND, "tanh", lambda a, y, p: 1.01 * rule(a, y, p))
    assert run(MODEL, INPUTS).exit_code == 0
    r = run(MODEL, INPUTS, "--order", "2", "--format", "json")
    assert r.exit_code == 1
    assert all(not o["ok"] and o["max_scaled_error"] > 1e-3 for o in json.loads(r.stdout)["outputs"])


def test_order_1_gate_catches_a_wrong_derivative(monkeypatch):
    from jacprop.ops import activations

    h, dh = activations.ELEMENTWISE["tanh"]
    monkeypatch.setitem(activations.ELEMENTWISE, "tanh", (h, lambda a, y, p: 1.001 * dh(a, y, p)))
    r = run(MODEL, INPUTS)
    assert r.exit_code == 1 and "FAIL" in r.stdout


def test_errors_are_on_each_outputs_own_scale():
    """An output 1e-6 times smaller than the other: a relative error there is not hidden by max(1, |J|)."""
    X = np.random.default_rng(0).normal(size=(5, 3))
    model = mlp([3, 4, 2], ["tanh", "linear"])
    model.nodes[-1].op.kernel[:, 1] *= 1e-6
    result = jacprop.check(model, X)
    small, big = result["outputs"][1], result["outputs"][0]
    assert small["scale"] < 1e-5 < big["scale"]
    assert small["ok"] and small["max_scaled_error"] < 1e-4


def _saturated(tmp_path):
    """A softmax whose logits are ~100 apart on N(0, 1) inputs: J ~ e^-100 everywhere (issue 19's classifiers)."""
    b = GraphBuilder([("x", (3,))])
    kernel = np.array([[100.0, -100.0], [0.1, 0.0], [0.0, 0.1]])
    node = b.add("probs", ops.Dense(kernel=kernel, bias=np.array([300.0, 0.0]), activation=Activation("softmax")),
                 b.inputs, "Dense")
    jacprop.save(b.finish([node]), tmp_path / "sat.npz")
    X = np.random.default_rng(1).normal(size=(6, 3)) * 0.5
    (tmp_path / "in.csv").write_text("a,b,c\n" + "".join(",".join(map(repr, x)) + "\n" for x in X.tolist()))
    return tmp_path / "sat.npz", tmp_path / "in.csv"


def test_saturated_outputs_do_not_pass_vacuously(tmp_path):
    model, inputs = _saturated(tmp_path)
    r = run(model, inputs, "--format", "json")
    assert r.exit_code == 1
    result = json.loads(r.stdout)
    assert result["flat"] == ["probs[0]", "probs[1]"] and result["ok"] is False
    assert all(o["scale"] < 1e-8 for o in result["outputs"])
    closing, line = r.stderr.strip().split("\n")  # the closing line, then why the check failed
    assert closing.startswith("jacprop: ") and " rows" in closing
    assert line.startswith("jacprop: check: outputs probs[0], probs[1]: |J| < 1e-08")
    assert "--logits" in line and "--allow-flat" in line
    r = run(model, inputs, "--allow-flat")
    assert r.exit_code == 0 and "accepted (--allow-flat)" in r.stderr and "flat" in r.stdout
    r = run(model, inputs, "--logits", "--format", "json")
    assert r.exit_code == 0 and r.stderr.startswith("jacprop: ") and r.stderr.count("\n") == 1  # the closing line
    assert json.loads(r.stdout)["flat"] == []


def test_order_2_of_a_piecewise_linear_model_is_flat(tmp_path):
    jacprop.save(mlp([3, 5, 2], ["relu", "linear"]), tmp_path / "relu.npz")
    r = run(tmp_path / "relu.npz", INPUTS, "--order", "2")
    assert r.exit_code == 1 and "|H| < 1e-08" in r.stderr
    assert run(tmp_path / "relu.npz", INPUTS, "--order", "2", "--allow-flat").exit_code == 0


@pytest.mark.parametrize("args,fragment", [(["--order", "3"], "--order"), (["--order", "0"], "--order")])
def test_bad_order(args, fragment):
    r = run(MODEL, INPUTS, *args)
    assert r.exit_code == 2 and fragment in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_order_2_refuses_an_op_without_a_rule(monkeypatch):
    from jacprop.ops import activations

    monkeypatch.delitem(activations.SECOND, "tanh")
    r = run(MODEL, INPUTS, "--order", "2")
    assert r.exit_code == 2 and "has no second-order rule" in r.stderr
    assert run(MODEL, INPUTS).exit_code == 0
