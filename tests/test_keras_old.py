"""Old and partial Keras files: Keras <= 2.2 list-form Sequential configs, weights-only files with their
architecture given by --config (the JSON model.to_json() writes), and Keras 2.13-2.15 .keras labels.

Samples: sample_models/keras/rnn_acts.k22.h5 (make_old_samples.py, written by hand from the documented
format) and NAME.{k2,k3}.weights.h5, NAME.k2.legacy_weights.h5, NAME.{k2,k3}.json (make_weights_only.py,
written by tf_keras and keras 3 from the sample models), all checked against the samples' references.
"""

import io
import json
import shutil
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from helpers import assert_close_jacobian

import jacprop
from jacprop.cli import main
from jacprop.engine import jacobian
from jacprop.errors import ModelError

SAMPLES = Path(__file__).resolve().parent.parent / "sample_models" / "keras"
WEIGHTS = [(name, w, c) for name in ("lstm", "functional_multi", "bidirectional")
           for w, c in (("k2.weights.h5", "k2.json"), ("k2.legacy_weights.h5", "k2.json"),
                        ("k3.weights.h5", "k3.json"))]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(r, code=2):
    assert r.exit_code == code, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jacprop: error: "), r.stderr
    return lines[0][len("jacprop: error: "):]


def test_keras_22_list_form_sequential():
    model = jacprop.load(SAMPLES / "rnn_acts.k22.h5")
    assert model.source["format"] == "keras2-h5" and model.source["keras_version"] == "2.2.4"
    ref = np.load(SAMPLES / "rnn_acts.k2.ref.npz")
    for mode in ("reverse", "forward"):
        y, J = jacobian(model, ref["x"], mode=mode)
        assert np.abs(y - ref["y64"]).max() <= 1e-9 * np.abs(ref["y64"]).max()
        assert_close_jacobian(J, ref["jacobian"], 1e-9)


@pytest.mark.parametrize("name,weights,config", WEIGHTS, ids=[f"{n}-{w}" for n, w, _ in WEIGHTS])
def test_weights_only_with_config_matches_tensorflow(name, weights, config):
    model = jacprop.load(SAMPLES / f"{name}.{weights}", configs=(SAMPLES / f"{name}.{config}",))
    assert model.source["format"] == {"k2.weights.h5": "keras2-weights", "k2.legacy_weights.h5": "keras2-weights-h5",
                                      "k3.weights.h5": "keras3-weights"}[weights]
    ref = np.load(SAMPLES / f"{name}.ref.npz")
    for mode in ("reverse", "forward"):
        y, J = jacobian(model, ref["x"], mode=mode)
        assert np.abs(y - ref["y64"]).max() <= 1e-9 * np.abs(ref["y64"]).max()
        assert_close_jacobian(J, ref["jacobian"], 1e-9)


def test_config_option_through_the_cli():
    ref = np.load(SAMPLES / "lstm.ref.npz")
    r = run("jacobian", SAMPLES / "lstm.k2.legacy_weights.h5", SAMPLES / "lstm.csv", "--config",
            SAMPLES / "lstm.k2.json", "--format", "csv")
    assert r.exit_code == 0, r.output
    data = np.loadtxt(io.StringIO(r.stdout), delimiter=",", skiprows=1)
    assert np.array_equal(data[:, 0], np.arange(1, len(data) + 1))  # the row column
    assert np.abs(data[:, 1:3] - ref["y64"]).max() < 1e-12
    r = run("inspect", SAMPLES / "lstm.k3.weights.h5", "--config", SAMPLES / "lstm.k3.json")
    assert r.exit_code == 0 and "keras3-weights" in r.stdout, r.output


def test_weights_only_without_config():
    w = SAMPLES / "lstm.k2.legacy_weights.h5"
    r = run("inspect", w)
    assert one_line_error(r) == (f"{w}: HDF5 file without a model_config attribute (weights only?); give its "
                                 "architecture with --config model.json (the JSON model.to_json() writes)")


def test_config_of_another_model_legacy():
    w, c = SAMPLES / "lstm.k2.legacy_weights.h5", SAMPLES / "functional_multi.k2.json"
    assert one_line_error(run("inspect", w, "--config", c)) == (
        f"{w}: holds weights of layer 'lstm', which --config {c} does not have (its layers: a_fc, b_fc, add, sub, "
        "mul, avg, a_skip, skip_add, ...)")


def test_config_of_another_model_keras3():
    w, c = SAMPLES / "lstm.k3.weights.h5", SAMPLES / "functional_multi.k3.json"
    msg = one_line_error(run("inspect", w, "--config", c))
    assert msg.startswith(f"{w}: holds weights layers/lstm, which no layer of --config {c} matches"), msg


def test_config_with_wrong_units(tmp_path):
    config = json.loads((SAMPLES / "lstm.k2.json").read_text())
    config["config"]["layers"][1]["config"]["units"] = 6
    c = tmp_path / "m.json"
    c.write_text(json.dumps(config))
    w = SAMPLES / "lstm.k2.legacy_weights.h5"
    assert one_line_error(run("inspect", w, "--config", c)) == (
        f"{w}: layer 'lstm' (LSTM): weight 'kernel' expected shape (2, 24), got (2, 16)")


@pytest.mark.parametrize("text,reason", [
    ("{not json", "not JSON"),
    ("[1, 2]", "not a Keras model config (the JSON model.to_json() writes, an object with class_name and config)"),
])
def test_bad_config_file(tmp_path, text, reason):
    c = tmp_path / "m.json"
    c.write_text(text)
    w = SAMPLES / "lstm.k2.weights.h5"
    msg = one_line_error(run("inspect", w, "--config", c))
    assert msg.startswith(f"{w}: --config {c}: {reason}"), msg


def test_config_for_a_whole_model_or_wrong_count():
    m, c = SAMPLES / "lstm.k2.h5", SAMPLES / "lstm.k2.json"
    assert one_line_error(run("inspect", m, "--config", c)) == (
        "--config: 1 config file(s) given for 0 weights-only model file(s); give one --config per weights-only "
        "file, in order")
    with pytest.raises(ModelError, match="holds its own model config"):
        from jacprop.loaders import keras_h5

        keras_h5.load(m, c)
    assert one_line_error(run("inspect", m, "--config", c, "--config", c)).startswith("--config: 2 config file(s)")


def test_missing_config_file():
    w = SAMPLES / "lstm.k2.weights.h5"
    msg = one_line_error(run("inspect", w, "--config", "/nonexistent/m.json"))
    assert msg.startswith(f"{w}: --config /nonexistent/m.json: cannot read it"), msg


def test_keras_215_keras_file_is_labelled_keras2(tmp_path):
    """Keras 2.13-2.15 wrote .keras archives too; metadata.json says which version."""
    src, dst = SAMPLES / "mlp_tanh.k3.keras", tmp_path / "m.keras"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename == "metadata.json":
                data = json.dumps({"keras_version": "2.15.0", "date_saved": "2024-01-01@00:00:00"}).encode()
            zout.writestr(item, data)
    model = jacprop.load(dst)
    assert model.source["format"] == "keras2-keras" and model.source["keras_version"] == "2.15.0"


def test_list_form_nested_in_functional(tmp_path):
    """A list-form Sequential inside a model config is read as well."""
    path = tmp_path / "m.h5"
    shutil.copy(SAMPLES / "nested.k2.h5", path)
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        for e in config["config"]["layers"]:
            if e["class_name"] == "Sequential":
                layers = [x for x in e["config"]["layers"] if x["class_name"] != "InputLayer"]
                layers[0]["config"]["batch_input_shape"] = [None, 4]
                e["config"] = layers
            if e.get("name") == "head":  # a Sequential without its own Input: its first node is 0
                e["inbound_nodes"] = [[["block", 0, 0, {}]]]
        f.attrs["model_config"] = json.dumps(config)
    ref = np.load(SAMPLES / "nested.ref.npz")
    y, J = jacobian(jacprop.load(path), ref["x"])
    assert_close_jacobian(J, ref["jacobian"], 1e-9)


def _names(model):
    return [n.name for n in model.nodes]


def test_sequential_without_input_layer_names_its_input_as_keras_2_does(tmp_path):
    """Issue 19 "Also seen": ``inspect`` showed the first layer's name twice (the input took it).  Keras 2 names
    the input it makes for such a config "<first layer>_input": measured with tf_keras 2.21 on
    input_shape_variants.k2.h5 with its InputLayer entry removed (tf_keras reads it, input 'first_input', the same
    predictions), and Keras 2.2.4's Sequential.add writes name=layer.name + '_input'."""
    path = tmp_path / "m.h5"
    shutil.copy(SAMPLES / "input_shape_variants.k2.h5", path)
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        assert config["config"]["layers"][0]["config"]["name"] == "first_input"
        config["config"]["layers"] = config["config"]["layers"][1:]  # the first Dense keeps batch_input_shape
        f.attrs["model_config"] = json.dumps(config)
    edited, original = jacprop.load(path), jacprop.load(SAMPLES / "input_shape_variants.k2.h5")
    assert _names(edited) == _names(original) and _names(edited)[1:3] == ["first_input", "first"]
    old = jacprop.load(SAMPLES / "rnn_acts.k22.h5")
    assert _names(old)[1:3] == ["lstm_hs_input", "lstm_hs"] and len(set(_names(old))) == len(old.nodes)
    r = run("inspect", SAMPLES / "rnn_acts.k22.h5")
    assert r.exit_code == 0 and r.stdout.count("lstm_hs_input") == 2  # its row and the LSTM's inputs column
    assert [line.split()[0] for line in r.stdout.splitlines()].count("lstm_hs") == 1
