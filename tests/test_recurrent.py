"""Recurrent ops and the layers of issue 19: op cases for test_ops (vjp/jvp vs central differences),
batching, the Keras files' refusals and messages, and hand-computed values.

The Keras samples themselves (sample_models/keras: lstm, rnn_stack, gru_variants, rnn_acts,
bidirectional, time_distributed, pad_1d, pad_2d, upsample_bilinear) are checked against TensorFlow's
float64 Jacobians in both modes by test_keras.test_sample_matches_tensorflow.
"""

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers import assert_close_jacobian, central_jacobian

import jacprop
from jacprop import ops
from jacprop.engine import jacobian
from jacprop.errors import ModelError
from jacprop.ops.activations import Activation
from jacprop.ops.structure import interpolation_matrix

R = np.random.default_rng(19)
SAMPLES = Path(__file__).resolve().parent.parent / "sample_models" / "keras"


def w(*shape, scale=0.6):
    return R.normal(size=shape) * scale


def rnn(cell, f, u, **kw):
    g = {"simple": 1, "lstm": 4, "gru": 3}[cell] * u
    bias = kw.pop("bias", w(2, g) if cell == "gru" and kw.get("reset_after", True) else w(g))
    return ops.Recurrent(cell=cell, kernel=w(f, g), recurrent_kernel=w(u, g), bias=bias, **kw)


A = Activation
OP_CASES = [
    ("rnn-simple", rnn("simple", 3, 4), [(5, 3)], (-2, 2)),
    ("rnn-simple-seq-back", rnn("simple", 2, 3, return_sequences=True, go_backwards=True), [(4, 2)], (-2, 2)),
    ("rnn-lstm", rnn("lstm", 3, 4), [(5, 3)], (-2, 2)),
    ("rnn-lstm-seq", rnn("lstm", 2, 3, return_sequences=True), [(4, 2)], (-2, 2)),
    ("rnn-lstm-back-reversed", rnn("lstm", 2, 3, return_sequences=True, go_backwards=True, reverse_output=True),
     [(4, 2)], (-2, 2)),
    ("rnn-lstm-softsign-tanh", rnn("lstm", 2, 2, activation=A("softsign"), recurrent_activation=A("tanh")),
     [(3, 2)], (-2, 2)),
    ("rnn-gru", rnn("gru", 3, 4), [(5, 3)], (-2, 2)),
    ("rnn-gru-seq-nobias", rnn("gru", 2, 3, bias=None, return_sequences=True), [(4, 2)], (-2, 2)),
    ("rnn-gru-classic", rnn("gru", 3, 3, reset_after=False), [(4, 3)], (-2, 2)),
    ("rnn-gru-classic-seq-back", rnn("gru", 2, 3, reset_after=False, return_sequences=True, go_backwards=True),
     [(4, 2)], (-2, 2)),
    ("timedist-dense-pool", ops.TimeDistributed(inner=(
        ops.Conv(kernel=w(2, 2, 3), activation=A("tanh")), ops.Reshape(shape=(-1,)))), [(3, 4, 2)], (-2, 2)),
    ("repeat", ops.Repeat(n=3), [(4,)], (-2, 2)),
    ("resize-nearest-2d", ops.Resize(axes=(-3, -2), factors=(2, 3)), [(3, 2, 2)], (-2, 2)),
    ("resize-bilinear-1d", ops.Resize(axes=(-2,), factors=(3,), how="bilinear"), [(4, 2)], (-2, 2)),
    ("depthwise-2d", ops.Depthwise(kernel=w(2, 3, 2, 2), bias=w(4), activation=A("tanh"), padding="same"),
     [(4, 5, 2)], (-2, 2)),
    ("depthwise-1d-stride-cf", ops.Depthwise(kernel=w(3, 3, 1), strides=(2,), channels_first=True), [(3, 7)],
     (-2, 2)),
    ("convt-1d-valid-gap", ops.ConvTranspose(kernel=w(2, 3, 2), bias=w(3), strides=(3,)), [(4, 2)], (-2, 2)),
    ("convt-2d-same", ops.ConvTranspose(kernel=w(3, 2, 2, 3), strides=(2, 1), padding="same",
                                        activation=A("tanh")), [(3, 2, 3)], (-2, 2)),
]
# Second order (tests/test_hessian_ops.py, besides OP_CASES): every recurrent activation of both Keras versions
# (hard_sigmoid as each defines it), both GRU conventions, every direction, and TimeDistributed around nonlinear ops.
SECOND_ORDER_CASES = [
    ("rnn2-lstm-hard_sigmoid_k2-seq", rnn("lstm", 2, 3, recurrent_activation=A("hard_sigmoid_k2"),
                                          return_sequences=True), [(4, 2)], (-2, 2)),
    ("rnn2-lstm-hard_sigmoid-elu-back", rnn("lstm", 2, 2, activation=A("elu", alpha=1.0),
                                            recurrent_activation=A("hard_sigmoid"), go_backwards=True),
     [(4, 2)], (-2, 2)),
    ("rnn2-lstm-softplus-sigmoid-nobias", rnn("lstm", 3, 2, bias=None, activation=A("softplus")), [(3, 3)], (-2, 2)),
    ("rnn2-gru-softsign-hard_sigmoid-seq", rnn("gru", 2, 3, activation=A("softsign"),
                                               recurrent_activation=A("hard_sigmoid"), return_sequences=True),
     [(4, 2)], (-2, 2)),
    ("rnn2-gru-back-reversed", rnn("gru", 2, 3, return_sequences=True, go_backwards=True, reverse_output=True),
     [(4, 2)], (-2, 2)),
    ("rnn2-gru-classic-swish-hard_sigmoid_k2", rnn("gru", 2, 3, reset_after=False, activation=A("swish"),
                                                   recurrent_activation=A("hard_sigmoid_k2"), return_sequences=True,
                                                   go_backwards=True, reverse_output=True), [(4, 2)], (-2, 2)),
    ("rnn2-gru-classic-nobias-selu", rnn("gru", 3, 2, reset_after=False, bias=None, activation=A("selu")),
     [(3, 3)], (-2, 2)),
    ("rnn2-simple-relu-seq", rnn("simple", 2, 3, activation=A("relu"), return_sequences=True), [(4, 2)], (-2, 2)),
    ("rnn2-simple-elu-seq-back", rnn("simple", 2, 3, activation=A("elu", alpha=0.7), return_sequences=True,
                                     go_backwards=True), [(4, 2)], (-2, 2)),
    ("rnn2-simple-gelu-mish", rnn("simple", 2, 2, activation=A("gelu")), [(3, 2)], (-2, 2)),
    ("rnn2-timedist-dense-tanh", ops.TimeDistributed(inner=(ops.Dense(kernel=w(3, 4), bias=w(4),
                                                                       activation=A("tanh")),)), [(3, 3)], (-2, 2)),
    ("rnn2-timedist-lstm", ops.TimeDistributed(inner=(rnn("lstm", 2, 2, return_sequences=True),
                                                      ops.Reshape(shape=(-1,)),
                                                      ops.Dense(kernel=w(6, 2), activation=A("sigmoid")))),
     [(2, 3, 2)], (-2, 2)),
    ("rnn2-timedist-linear", ops.TimeDistributed(inner=(ops.Dense(kernel=w(2, 3)),)), [(3, 2)], (-2, 2)),
]


def test_lstm_by_hand():
    """One unit, one feature, two steps, every weight 0.5, no bias: the LSTM equations written out."""
    op = ops.Recurrent(cell="lstm", kernel=np.full((1, 4), 0.5), recurrent_kernel=np.full((1, 4), 0.5), bias=None)
    op = op.bind((2, 1))
    x = np.array([[[1.0], [-2.0]]])
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    h = c = 0.0
    for xt in (1.0, -2.0):
        a = 0.5 * xt + 0.5 * h
        c = sig(a) * c + sig(a) * np.tanh(a)
        h = sig(a) * np.tanh(c)
    assert op.forward(x)[0][0, 0] == pytest.approx(h, rel=1e-15)


def test_recurrent_batch_equals_rows_and_modes_agree():
    """Rows are independent (no state carried from one row to the next) and reverse == forward mode."""
    b = jacprop.graph.GraphBuilder([("x", (6, 2))])
    node = b.add("lstm", rnn("lstm", 2, 3, return_sequences=True), b.inputs, "LSTM")
    node = b.add("gru", rnn("gru", 3, 2), [node], "GRU")
    model = b.finish([node])
    X = R.normal(size=(7, 12))
    y, Jr = jacobian(model, X, mode="reverse")
    _, Jf = jacobian(model, X, mode="forward")
    assert_close_jacobian(Jf, Jr, 1e-13)
    for n in range(len(X)):
        y1, J1 = jacobian(model, X[n : n + 1])
        assert np.abs(y1 - y[n]).max() < 1e-14 and np.abs(J1 - Jr[n]).max() < 1e-14
    assert_close_jacobian(Jr, central_jacobian(model.forward, X), 1e-7)


def test_interpolation_matrices_by_hand():
    """TensorFlow's half-pixel rule: 2 -> 4 bilinear weights (1, 0), (3/4, 1/4), (1/4, 3/4), (0, 1)."""
    assert np.array_equal(interpolation_matrix(2, 4, "bilinear"),
                          [[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]])
    assert np.array_equal(interpolation_matrix(2, 4, "nearest"), [[1, 0], [1, 0], [0, 1], [0, 1]])


def test_bilinear_matches_torch_interpolate():
    torch = pytest.importorskip("torch")
    for n, f in [(4, 2), (3, 3), (5, 2), (2, 5)]:
        eye = torch.eye(n, dtype=torch.float64)[:, None, :]
        ref = torch.nn.functional.interpolate(eye, scale_factor=f, mode="linear", align_corners=False)[:, 0, :]
        assert np.abs(ref.numpy().T - interpolation_matrix(n, n * f, "bilinear")).max() < 1e-15


def test_time_distributed_saves_and_loads_as_npz(tmp_path):
    model = jacprop.load(SAMPLES / "time_distributed.k3.keras")
    jacprop.save(model, tmp_path / "m.npz")
    again = jacprop.load(tmp_path / "m.npz")
    X = np.loadtxt(SAMPLES / "time_distributed.csv", delimiter=",", skiprows=1)
    assert np.array_equal(again.forward(X), model.forward(X))
    assert np.array_equal(jacobian(again, X)[1], jacobian(model, X)[1])


def test_rnn_acts_hard_sigmoid_per_version():
    """The same weights read by Keras 2 and 3 give different functions (hard_sigmoid), as TensorFlow measured."""
    X = np.loadtxt(SAMPLES / "rnn_acts.csv", delimiter=",", skiprows=1)
    k2, k3 = jacprop.load(SAMPLES / "rnn_acts.k2.h5"), jacprop.load(SAMPLES / "rnn_acts.k3.keras")
    assert k2.nodes[2].op.recurrent_activation.name == "hard_sigmoid_k2"
    assert k3.nodes[2].op.recurrent_activation.name == "hard_sigmoid"
    ref2, ref3 = np.load(SAMPLES / "rnn_acts.k2.ref.npz"), np.load(SAMPLES / "rnn_acts.k3.ref.npz")
    assert np.abs(ref2["y64"] - ref3["y64"]).max() > 1  # the two definitions really differ here
    assert np.abs(k2.forward(X) - ref2["y64"]).max() < 1e-12 * np.abs(ref2["y64"]).max()
    assert np.abs(k3.forward(X) - ref3["y64"]).max() < 1e-12 * np.abs(ref3["y64"]).max()


# ---------------------------------------------------------------------------
# Refusals of what cannot be answered, one line each


def edited(tmp_path, name, edit, fmt="k2.h5"):
    path = tmp_path / f"m.{fmt.split('.')[-1]}"
    shutil.copy(SAMPLES / f"{name}.{fmt}", path)
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        edit(config["config"]["layers"])
        f.attrs["model_config"] = json.dumps(config)
    return path


def message(path):
    with pytest.raises(ModelError) as e:
        jacprop.load(path)
    assert "\n" not in str(e.value)
    return str(e.value)


@pytest.mark.parametrize("key,reason", [
    ("stateful", "refused: stateful=True carries state from one batch to the next, so a row's outputs would "
                 "depend on the rows before it"),
    ("return_state", "refused: return_state=True (the states as extra outputs) is not supported"),
    ("time_major", "refused: time_major=True is not supported"),
])
def test_recurrent_options_refused(tmp_path, key, reason):
    path = edited(tmp_path, "lstm", lambda layers: layers[1]["config"].update({key: True}))
    assert message(path) == f"{path}: layer 'lstm' (LSTM): {reason}"


def test_masking_refused(tmp_path):
    def add_masking(layers):
        layers.insert(1, {"class_name": "Masking", "config": {"name": "mask", "mask_value": 0.0}})
    path = edited(tmp_path, "lstm", add_masking)
    assert message(path).startswith(f"{path}: layer 'mask' (Masking): refused: masked time steps are not supported")


def test_unknown_steps_refused(tmp_path):
    path = edited(tmp_path, "lstm", lambda layers: layers[0]["config"].update(batch_input_shape=[None, None, 2]))
    assert message(path) == (f"{path}: layer 'lstm' (Sequential): input shape [None, 2] has unknown or invalid "
                             "dimensions; jacprop needs fixed shapes")


def test_custom_layer_inside_wrapper_is_screened(tmp_path):
    """A Lambda inside TimeDistributed is refused by class name before anything is built."""
    def wrap_lambda(layers):
        layers[1] = {"class_name": "TimeDistributed", "config": {"name": "td", "layer": {
            "class_name": "Lambda", "config": {"name": "evil", "function": ["garbage", None, None]}}}}
    path = edited(tmp_path, "lstm", wrap_lambda)
    assert message(path).endswith("layer 'evil' (Lambda): refused: Lambda layers hold Python code, and jacprop "
                                  "never runs code from a model file")


def test_builtin_but_unsupported_is_not_called_custom(tmp_path):
    path = edited(tmp_path, "lstm", lambda layers: layers[1].update(class_name="MultiHeadAttention"))
    assert message(path) == (f"{path}: layer 'lstm' (MultiHeadAttention): this built-in Keras layer is not "
                             "supported by jacprop")


def test_wrong_recurrent_weight_shape(tmp_path):
    path = edited(tmp_path, "lstm", lambda layers: layers[1]["config"].update(units=5))
    assert message(path) == f"{path}: layer 'lstm' (LSTM): weight 'kernel' expected shape (2, 20), got (2, 16)"


def test_bidirectional_merge_none_refused(tmp_path):
    path = tmp_path / "b.h5"
    shutil.copy(SAMPLES / "bidirectional.k2.h5", path)
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        config["config"]["layers"][1]["config"]["merge_mode"] = None
        f.attrs["model_config"] = json.dumps(config)
    assert message(path) == (f"{path}: layer 'bi_concat' (Bidirectional): merge_mode None is not supported "
                             "(concat, sum, mul, ave; None gives two outputs)")


# ---------------------------------------------------------------------------
# --summary for sequence inputs: per time step and per feature


def test_summary_per_step_and_feature_from_tensorflow_jacobian(tmp_path):
    """per_step[k, t] = mean_n sum_f |J|, per_feature[k, f] = mean_n sum_t |J|, with TensorFlow's J."""
    from click.testing import CliRunner

    from jacprop.cli import main

    ref = np.load(SAMPLES / "rnn_stack.ref.npz")  # input (6, 3)
    out = tmp_path / "s.npz"
    r = CliRunner().invoke(main, ["jacobian", str(SAMPLES / "rnn_stack.k3.keras"), str(SAMPLES / "rnn_stack.csv"),
                                  "--summary", "-o", str(out)])
    assert r.exit_code == 0, r.output
    got = np.load(out)
    A = np.abs(ref["jacobian"]).reshape(len(ref["x"]), 2, 6, 3)
    assert np.abs(got["per_step"] - A.sum(axis=3).mean(axis=0)).max() < 1e-12
    assert np.abs(got["per_feature"] - A.sum(axis=2).mean(axis=0)).max() < 1e-12
    r = CliRunner().invoke(main, ["jacobian", str(SAMPLES / "rnn_stack.k3.keras"), str(SAMPLES / "rnn_stack.csv"),
                                  "--summary", "--format", "jsonl"])
    steps = [json.loads(line) for line in r.stdout.splitlines() if '"step"' in line]
    assert len(steps) == 2 * 6 and steps[0]["sequence"] == "x"
    assert steps[3]["mean_abs_over_features"] == pytest.approx(A.sum(axis=3).mean(axis=0)[0, 3], rel=1e-12)
    r = CliRunner().invoke(main, ["jacobian", str(SAMPLES / "rnn_stack.k3.keras"), str(SAMPLES / "rnn_stack.csv"),
                                  "--summary", "--format", "table"])
    assert r.exit_code == 0 and "6 steps x 3 features: per time step" in r.stdout and "per feature" in r.stdout


def test_summary_of_selected_inputs_has_no_profile(tmp_path):
    from click.testing import CliRunner

    from jacprop.cli import main

    out = tmp_path / "s.npz"
    r = CliRunner().invoke(main, ["jacobian", str(SAMPLES / "lstm.k2.h5"), str(SAMPLES / "lstm.csv"), "--summary",
                                  "--wrt", "x0,x3", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "per_step" not in np.load(out).files


def test_cudnn_lstm_sums_its_two_biases(tmp_path):
    """Keras <= 2.2 CuDNNLSTM: an LSTM (sigmoid/tanh) whose bias (8U,) is the input and recurrent bias."""
    path = tmp_path / "m.h5"
    shutil.copy(SAMPLES / "lstm.k2.h5", path)
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        config["config"]["layers"][1]["class_name"] = "CuDNNLSTM"
        f.attrs["model_config"] = json.dumps(config)
        name = "model_weights/lstm/lstm/lstm_cell/bias:0"
        b = f[name][()]
        del f[name]
        f[name] = np.concatenate([b - 0.25, np.full_like(b, 0.25)])
    ref = np.load(SAMPLES / "lstm.ref.npz")
    y, J = jacobian(jacprop.load(path), ref["x"])
    assert np.abs(y - ref["y64"]).max() < 1e-6  # the float32 sum b - 0.25 + 0.25 rounds
    assert_close_jacobian(J, ref["jacobian"], 1e-6)


def test_bench_rnn_smoke():
    """benchmarks/bench_rnn.py still runs (jacprop only, 8 rows); no timing is asserted."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_rnn.py"
    out = subprocess.run([sys.executable, str(script), "--smoke"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "| 8 | jacprop |" in out.stdout


ISSUE19 = ["lstm", "rnn_stack", "gru_variants", "rnn_acts", "bidirectional", "time_distributed", "pad_1d", "pad_2d",
           "upsample_bilinear"]


@pytest.mark.parametrize("name", ISSUE19)
def test_check_passes_on_the_new_samples(name):
    """jacprop check (J against central differences of the model's own forward pass) on every new sample."""
    from click.testing import CliRunner

    from jacprop.cli import main

    for fmt in ("k2.h5", "k3.keras"):
        r = CliRunner().invoke(main, ["check", str(SAMPLES / f"{name}.{fmt}"), str(SAMPLES / f"{name}.csv"),
                                      "--format", "json"])
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["rows"] == 12


@pytest.mark.parametrize("name", ISSUE19)
def test_new_ops_round_trip_through_npz(name, tmp_path):
    """jacprop convert / jacprop.save stores every new op; the NPZ gives the same J bit for bit."""
    model = jacprop.load(SAMPLES / f"{name}.k3.keras")
    jacprop.save(model, tmp_path / "m.npz")
    X = np.loadtxt(SAMPLES / f"{name}.csv", delimiter=",", skiprows=1)
    assert np.array_equal(jacobian(jacprop.load(tmp_path / "m.npz"), X)[1], jacobian(model, X)[1])
