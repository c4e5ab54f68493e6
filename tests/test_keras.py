"""Keras loaders against files real Keras wrote, with TensorFlow's outputs and Jacobians as the oracle.

Samples: sample_models/keras/ (manifest.json, made by make_samples.py) and tests/data/keras/extra.*
(layers the samples do not cover; made by tests/data/keras/make_extra.py).  Broken or hostile
files are made here with h5py/zipfile from copies of the samples.
"""

import io
import json
import re
import shutil
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers import assert_close_jacobian, central_jacobian

import jacprop
from jacprop import ops
from jacprop.engine import jacobian
from jacprop.errors import ModelError
from jacprop.loaders import hdf5, keras_zip
from jacprop.loaders.keras_config import to_snake_case

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_models" / "keras"
EXTRA = Path(__file__).resolve().parent / "data" / "keras"
FORMATS = {"k2.h5": "keras2-h5", "k3.keras": "keras3-keras", "k3.h5": "keras3-h5"}


def manifest():
    path = SAMPLES / "manifest.json"
    if not path.exists():
        return None
    doc = json.loads(path.read_text())
    return doc["models"] if isinstance(doc, dict) else doc


def cases(expect):
    models = manifest()
    if models is None:
        return [pytest.param(None, None, marks=pytest.mark.skip(reason=f"{SAMPLES}/manifest.json not generated yet"))]
    return [pytest.param(m, fmt, id=f"{m['name']}-{fmt}")
            for m in models if m["expect"] == expect for fmt in m["files"]]


def sample(name, fmt="k2.h5"):
    path = SAMPLES / f"{name}.{fmt}"
    if not path.exists():
        pytest.skip(f"{path} not generated yet")
    return path


def load_error(path) -> str:
    with pytest.raises(ModelError) as e:
        jacprop.load(path)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{path}: "), msg
    return msg


# ---------------------------------------------------------------------------
# Every sample Keras wrote: outputs and Jacobians as TensorFlow computed them


@pytest.mark.parametrize("entry,fmt", cases("ok"))
def test_sample_matches_tensorflow(entry, fmt):
    path = SAMPLES / entry["files"][fmt]
    ref = np.load(SAMPLES / (entry.get("refs") or {}).get(fmt, entry.get("ref")))
    model = jacprop.load(path)
    assert model.source["format"] == FORMATS[fmt] and model.source["path"] == str(path)
    assert model.source["keras_version"].startswith("3." if fmt.startswith("k3") else "2.")
    assert model.input_names == list(ref["input_names"])
    # Our output names are layer[j]; the references write layer_j.
    assert [re.sub(r"\[(\d+)\]$", r"_\1", n) for n in model.output_names] == list(ref["output_names"])

    x = ref["x"]
    y32 = model.forward(x, dtype=np.float32)
    assert np.abs(y32 - ref["y32"]).max() <= 1e-5 * max(1.0, np.abs(ref["y32"]).max())
    tol = entry.get("tolerance") or 1e-9  # only where TensorFlow computes a layer in float32 (see its notes)
    for mode in ("reverse", "forward"):
        y, J = jacobian(model, x, mode=mode)
        assert np.abs(y - ref["y64"]).max() <= tol * np.abs(ref["y64"]).max()
        assert_close_jacobian(J, ref["jacobian"], tol)


@pytest.mark.parametrize("fmt,tag", [("k2.h5", "k2"), ("k3.keras", "k3"), ("k3.h5", "k3")])
def test_extra_layers_match_tensorflow(fmt, tag):
    """Causal dilated Conv1D, PReLU, LayerNormalization(rms_scaling) / over two axes, BatchNormalization
    without beta, Permute, Flatten(channels_first), RMSNormalization, Normalization from its config,
    ReLU(max_value), gelu."""
    model = jacprop.load(EXTRA / f"extra.{fmt}")
    ref = np.load(EXTRA / f"extra.{tag}.npz")
    for mode in ("reverse", "forward"):
        y, J = jacobian(model, ref["x"], mode=mode)
        assert np.abs(y - ref["y64"]).max() <= 1e-9 * np.abs(ref["y64"]).max()
        assert_close_jacobian(J, ref["jacobian"], 1e-9)


def test_shared_layer_shares_its_weights():
    """Each call of a shared layer is its own bound op (its own input shapes), over the same arrays."""
    model = jacprop.load(sample("shared_layer", "k3.keras"))
    shared = [n.op for n in model.nodes if n.name == "shared"]
    assert len(shared) == 2 and shared[0].kernel is shared[1].kernel and shared[0].bias is shared[1].bias
    assert model.n_params() == (4 * 5 + 5) * 2 + (5 * 3 + 3) + (6 * 2 + 2)


def test_nested_model_is_inlined():
    for fmt in FORMATS:
        model = jacprop.load(sample("nested", fmt))
        assert [n.name for n in model.nodes if n.op is not None][1:] == ["pre", "inner_fc1", "inner_fc2", "head"]


# ---------------------------------------------------------------------------
# Refusals of the samples: exact messages


REFUSALS = {
    "lambda": lambda fmt: ("marker_lambda", "Lambda",
                           "refused: Lambda layers hold Python code, and jacprop never runs code from a model file"),
    "embedding": lambda fmt: ("embed", "Embedding", "takes integer indices, so it has no Jacobian"),
    "custom": lambda fmt: ("scaled_tanh", "ScaledTanh" if fmt == "k2.h5" else "jacprop_samples>ScaledTanhK3",
                           "not a built-in Keras layer class; custom layers cannot be loaded"),
}


@pytest.mark.parametrize("entry,fmt", cases("refuse"))
def test_sample_is_refused_with_exact_message(entry, fmt, tmp_path, monkeypatch):
    marker = tmp_path / "marker"
    monkeypatch.setenv("JACPROP_MARKER", str(marker))
    path = SAMPLES / entry["files"][fmt]
    name, cls, reason = REFUSALS[entry["refuse_reason"]](fmt)
    assert load_error(path) == f"{path}: layer '{name}' ({cls}): {reason}"
    assert not marker.exists()  # the Lambda's code never ran


def test_lambda_is_refused_before_its_config_is_read(tmp_path):
    """A Lambda whose 'function' is garbage gives the same message: nothing in it was decoded."""
    path = tmp_path / "m.h5"
    shutil.copy(sample("lambda"), path)
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        for layer in config["config"]["layers"]:
            if layer["class_name"] == "Lambda":
                layer["config"]["function"] = ["not base64 at all!", None, None]
        f.attrs["model_config"] = json.dumps(config)
    assert load_error(path).endswith("(Lambda): refused: Lambda layers hold Python code, "
                                     "and jacprop never runs code from a model file")


# ---------------------------------------------------------------------------
# Hand-made broken files


def edit_config(path, fn):
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        fn(config)
        f.attrs["model_config"] = json.dumps(config)


def copy_sample(tmp_path, name="mlp_tanh", fmt="k2.h5"):
    path = tmp_path / f"m.{fmt.split('.')[-1]}"
    shutil.copy(sample(name, fmt), path)
    return path


def test_custom_class_name_is_refused(tmp_path):
    path = copy_sample(tmp_path)

    def rename(config):
        config["config"]["layers"][1]["class_name"] = "MyPackage>MyLayer"
    edit_config(path, rename)
    assert load_error(path) == (f"{path}: layer 'hidden' (MyPackage>MyLayer): not a built-in Keras layer class; "
                                "custom layers cannot be loaded")


@pytest.mark.parametrize("cls", ["RNN", "ConvLSTM2D", "GRUCell"])
def test_unsupported_recurrent_classes_are_refused(tmp_path, cls):
    path = copy_sample(tmp_path)
    edit_config(path, lambda c: c["config"]["layers"][1].update(class_name=cls))
    assert load_error(path) == (f"{path}: layer 'hidden' ({cls}): this recurrent layer is not supported "
                                "(SimpleRNN, LSTM, GRU and Bidirectional are)")


@pytest.mark.parametrize("cls", ["StringLookup", "CategoryEncoding", "Hashing"])
def test_integer_input_classes_are_refused(tmp_path, cls):
    path = copy_sample(tmp_path)
    edit_config(path, lambda c: c["config"]["layers"][1].update(class_name=cls))
    assert load_error(path) == f"{path}: layer 'hidden' ({cls}): takes integer indices, so it has no Jacobian"


def test_missing_weight_legacy_h5(tmp_path):
    path = copy_sample(tmp_path)
    with h5py.File(path, "r+") as f:
        g = f["model_weights/hidden"]
        g.attrs["weight_names"] = [n for n in g.attrs["weight_names"] if "bias" not in n]
    assert load_error(path) == f"{path}: layer 'hidden' (Dense): missing weight 'bias'"


def test_wrong_weight_shape_legacy_h5(tmp_path):
    path = copy_sample(tmp_path)
    with h5py.File(path, "r+") as f:
        kernel = f["model_weights/hidden/hidden/kernel:0"][()]
        del f["model_weights/hidden/hidden/kernel:0"]
        f["model_weights/hidden/hidden/kernel:0"] = kernel.T
    assert load_error(path) == f"{path}: layer 'hidden' (Dense): weight 'kernel' expected shape (4, 8), got (8, 4)"


def rewrite_keras_weights(src, dst, edit):
    """Copy a .keras archive, editing its model.weights.h5 with ``edit(h5py.File)``."""
    with zipfile.ZipFile(src) as z:
        members = {n: z.read(n) for n in z.namelist()}
    buf = io.BytesIO(members["model.weights.h5"])
    with h5py.File(buf, "r+") as f:
        edit(f)
    members["model.weights.h5"] = buf.getvalue()
    with zipfile.ZipFile(dst, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)


def test_missing_and_wrong_weights_keras_zip(tmp_path):
    src = sample("mlp_tanh", "k3.keras")
    missing, wrong = tmp_path / "missing.keras", tmp_path / "wrong.keras"
    rewrite_keras_weights(src, missing, lambda f: f.__delitem__("layers/dense/vars/1"))

    def transpose(f):
        k = f["layers/dense/vars/0"][()]
        del f["layers/dense/vars/0"]
        f["layers/dense/vars/0"] = k.T
    rewrite_keras_weights(src, wrong, transpose)
    assert load_error(missing) == f"{missing}: layer 'hidden' (Dense): missing weight 'bias'"
    assert load_error(wrong) == f"{wrong}: layer 'hidden' (Dense): weight 'kernel' expected shape (4, 8), got (8, 4)"


def test_external_link_is_refused(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["data"] = np.zeros(3)
    path = copy_sample(tmp_path)
    with h5py.File(path, "r+") as f:
        f["model_weights/hidden/evil"] = h5py.ExternalLink(str(other), "/data")
    assert "refused: HDF5 external link /model_weights/hidden/evil" in load_error(path)


def test_external_storage_and_virtual_datasets_are_refused(tmp_path):
    raw = tmp_path / "raw.bin"
    raw.write_bytes(b"\0" * 64)
    ext = copy_sample(tmp_path)
    with h5py.File(ext, "r+") as f:
        f.create_dataset("outside", shape=(8,), dtype="f8", external=[(str(raw), 0, 64)])
    assert "refused: /outside is stored in external files" in load_error(ext)

    vds = tmp_path / "vds.h5"
    shutil.copy(sample("mlp_tanh"), vds)
    with h5py.File(vds, "r+") as f:
        layout = h5py.VirtualLayout(shape=(3,), dtype="f8")
        layout[:] = h5py.VirtualSource(str(tmp_path / "other.h5"), "data", shape=(3,))
        f.create_virtual_dataset("virtual", layout)
    assert "refused: /virtual is a virtual HDF5 dataset" in load_error(vds)


def test_huge_dataset_is_refused_before_reading(tmp_path):
    path = copy_sample(tmp_path)
    with h5py.File(path, "r+") as f:  # chunked and never written: the file stays small
        f.create_dataset("huge", shape=(10**9 + 1,), dtype="f4", chunks=(1024,))
    assert "refused: dataset /huge declares 1000000001 elements" in load_error(path)


def test_huge_zip_member_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(keras_zip, "MAX_MEMBER", 100)
    path = sample("mlp_tanh", "k3.keras")
    assert "refused: config.json is" in load_error(path)


@pytest.mark.parametrize("fmt", ["k2.h5", "k3.keras"])
def test_corrupt_files_give_one_line(tmp_path, fmt):
    data = sample("mlp_tanh", fmt).read_bytes()
    truncated = tmp_path / f"truncated.{fmt}"
    truncated.write_bytes(data[: len(data) // 2])
    load_error(truncated)
    scrambled = tmp_path / f"scrambled.{fmt}"
    scrambled.write_bytes(data[:8] + bytes(b ^ 0x5A for b in data[8:]))
    load_error(scrambled)


def test_malformed_config_gives_one_line(tmp_path):
    path = copy_sample(tmp_path)
    with h5py.File(path, "r+") as f:
        f.attrs["model_config"] = '{"class_name": "Sequential", "config": {"layers": [{"class_name": '
    assert "malformed Keras HDF5 file (JSONDecodeError" in load_error(path)
    edit_config(copy_sample(tmp_path, "norms"), lambda c: None)  # sanity: editing keeps files loadable
    jacprop.load(tmp_path / "m.h5")


def test_weights_only_h5_is_refused(tmp_path):
    path = tmp_path / "w.h5"
    with h5py.File(path, "w") as f:
        f["layer/kernel"] = np.zeros((2, 2))
    assert "without a model_config attribute" in load_error(path)


def test_groups_other_than_one_are_refused(tmp_path):
    path = copy_sample(tmp_path, "conv1d")
    edit_config(path, lambda c: c["config"]["layers"][1]["config"].update(groups=2))
    assert load_error(path) == f"{path}: layer 'c_valid' (Conv1D): groups=2 is not supported (only groups=1)"


# ---------------------------------------------------------------------------
# Pieces


def test_snake_case_matches_keras_group_names():
    names = ["Dense", "BatchNormalization", "LayerNormalization", "Conv1D", "LeakyReLU", "InputLayer",
             "GlobalAveragePooling2D", "PReLU", "Sequential"]
    assert [to_snake_case(n) for n in names] == [
        "dense", "batch_normalization", "layer_normalization", "conv1d", "leaky_re_lu", "input_layer",
        "global_average_pooling2d", "p_re_lu", "sequential"]


def test_layernorm_rms_scaling_is_keras3s_formula_with_exact_derivatives():
    """Keras 3 LayerNormalization(rms_scaling=True): x * rsqrt(var(x) + eps) * gamma, var centred, x not."""
    rng = np.random.default_rng(3)
    gamma = rng.uniform(0.5, 1.5, 5)
    op = ops.LayerNorm(gamma=gamma, epsilon=0.01, rms_scaling=True)
    op = op.bind((5,))
    x = rng.normal(size=(4, 5)) + 0.7
    y, saved = op.forward(x)
    assert np.allclose(y, x / np.sqrt(x.var(axis=-1, keepdims=True) + 0.01) * gamma, rtol=1e-14, atol=0)
    J_rev = np.broadcast_to(op.vjp(saved, np.eye(5)[None])[0], (4, 5, 5))
    J_fwd = np.broadcast_to(op.jvp(saved, (np.eye(5)[None],)), (4, 5, 5)).transpose(0, 2, 1)
    J_num = central_jacobian(lambda v: op.forward(v)[0], x)
    assert_close_jacobian(J_rev, J_num, 1e-8)
    assert_close_jacobian(J_fwd, J_rev, 1e-13)


def test_hdf5_checks_are_shared_by_the_zip_container(tmp_path):
    """model.weights.h5 inside a .keras archive gets the same external-link refusal."""
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["data"] = np.zeros(3)
    path = tmp_path / "evil.keras"
    rewrite_keras_weights(sample("mlp_tanh", "k3.keras"), path,
                          lambda f: f.__setitem__("sneaky", h5py.ExternalLink(str(other), "/data")))
    assert "refused: HDF5 external link /sneaky" in load_error(path)
    assert hdf5.MAX_ELEMENTS == 10**9 and keras_zip.MAX_MEMBER == 2 * 2**30
