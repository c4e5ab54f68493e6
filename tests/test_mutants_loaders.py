"""The loaders' weight mapping and config reading, against references made without jacprop (issue #20; helper
mut-load's mutation run of jacprop/loaders/): TensorFlow's outputs stored beside the sample models, the weights
read back with h5py or numpy here and the layer's formula written in the test.

- A Keras config may leave out any argument at its Keras default (Keras' from_config then uses the
  constructor's default): every sample, with each default-valued key deleted, must still give TensorFlow's
  numbers.  The defaults below are the Keras 2 / 3 constructors' (keras.io, tensorflow.org API pages).
- One-layer models written here with h5py in Keras 2's legacy HDF5 layout, each checked against its formula.
"""

import json
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

import jacprop
from jacprop.errors import ModelError

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_models" / "keras"
EXTRA = ROOT / "tests" / "data" / "keras"

# ---------------------------------------------------------------------------
# Keras' constructor defaults, per class (an argument at this value may be left out of a config)

_CONV = {"strides": 1, "padding": "valid", "data_format": "channels_last", "dilation_rate": 1, "groups": 1,
         "activation": "linear", "use_bias": True}
_POOL = {"pool_size": 2, "padding": "valid", "data_format": "channels_last"}
_GLOBAL = {"data_format": "channels_last", "keepdims": False}
_RNN = {"activation": "tanh", "use_bias": True, "return_sequences": False, "return_state": False,
        "go_backwards": False, "stateful": False, "time_major": False}
DEFAULTS = {
    "Dense": {"activation": "linear", "use_bias": True},
    **dict.fromkeys(("Conv1D", "Conv2D"), _CONV),
    **dict.fromkeys(("Conv1DTranspose", "Conv2DTranspose"), {**_CONV, "output_padding": None}),
    **dict.fromkeys(("DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D"),
                    {**_CONV, "depth_multiplier": 1}),
    **dict.fromkeys(("MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D"), _POOL),
    **dict.fromkeys(("GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D",
                     "GlobalMaxPooling2D"), _GLOBAL),
    "BatchNormalization": {"axis": -1, "epsilon": 1e-3, "center": True, "scale": True},
    "LayerNormalization": {"axis": -1, "epsilon": 1e-3, "center": True, "scale": True, "rms_scaling": False},
    "RMSNormalization": {"axis": -1, "epsilon": 1e-6},
    "Normalization": {"axis": -1, "invert": False, "mean": None, "variance": None},
    "Rescaling": {"offset": 0.0},
    "Flatten": {"data_format": "channels_last"},
    "Concatenate": {"axis": -1},
    "Softmax": {"axis": -1},
    "ReLU": {"max_value": None, "negative_slope": 0.0, "threshold": 0.0},
    "LeakyReLU": {"alpha": 0.3, "negative_slope": 0.3},
    "ELU": {"alpha": 1.0},
    "PReLU": {"shared_axes": None},
    "UpSampling1D": {"size": 2},
    "UpSampling2D": {"size": 2, "data_format": "channels_last", "interpolation": "nearest"},
    "ZeroPadding1D": {"padding": 1},
    "ZeroPadding2D": {"padding": 1, "data_format": "channels_last"},
    "Cropping1D": {"cropping": 1},
    "Cropping2D": {"cropping": 0, "data_format": "channels_last"},
    "SimpleRNN": _RNN,
    **dict.fromkeys(("LSTM", "GRU"), {**_RNN, "recurrent_activation": "sigmoid"}),
    **dict.fromkeys(("CuDNNLSTM", "CuDNNGRU"), {k: v for k, v in _RNN.items() if k not in ("activation", "use_bias")}),
    "Bidirectional": {"merge_mode": "concat"},
}


def _flat(v):
    """[1, 1] and [[1, 1], [1, 1]] are the scalar 1 (Keras' int-or-tuple arguments)."""
    if isinstance(v, (list, tuple)):
        items = [_flat(x) for x in v]
        return items[0] if items and all(x == items[0] for x in items) and not isinstance(items[0], list) else items
    return v


def strip_defaults(layers, deleted):
    """Delete every config key at its Keras default, in place, through nested models and wrappers."""
    for entry in layers:
        cls, cfg = entry.get("class_name"), entry.get("config")
        if isinstance(cfg, list):  # Keras <= 2.2 Sequential
            strip_defaults(cfg, deleted)
            continue
        if not isinstance(cfg, dict):
            continue
        if isinstance(cfg.get("layers"), list):
            strip_defaults(cfg["layers"], deleted)
        for key in ("layer", "backward_layer"):
            if isinstance(cfg.get(key), dict):
                strip_defaults([cfg[key]], deleted)
        if "pool_size" in DEFAULTS.get(cls, {}) and _flat(cfg.get("strides")) == _flat(cfg.get("pool_size", 2)):
            del cfg["strides"]  # pooling strides default to pool_size
            deleted.add(f"{cls}.strides")
        for key, default in DEFAULTS.get(cls, {}).items():
            if key in cfg and _flat(cfg[key]) == default:
                del cfg[key]
                deleted.add(f"{cls}.{key}")


def _manifest():
    doc = json.loads((SAMPLES / "manifest.json").read_text())
    return doc["models"] if isinstance(doc, dict) else doc


H5_CASES = [(m["name"], fmt, m) for m in _manifest() if m["expect"] == "ok" for fmt in m["files"]
            if fmt.endswith(".h5")]


def _ref(entry, fmt):
    return np.load(SAMPLES / (entry.get("refs") or {}).get(fmt, entry.get("ref")))


def _strip_file(src, dst):
    shutil.copy(src, dst)
    deleted = set()
    with h5py.File(dst, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        strip_defaults([config], deleted)
        f.attrs["model_config"] = json.dumps(config)
    return deleted


ALL_DELETED = set()


@pytest.mark.parametrize("name,fmt,entry", H5_CASES, ids=[f"{n}-{f}" for n, f, _ in H5_CASES])
def test_a_sample_without_its_default_valued_config_keys_gives_tensorflows_numbers(tmp_path, name, fmt, entry):
    path = tmp_path / f"m.{fmt}"
    ALL_DELETED.update(_strip_file(SAMPLES / entry["files"][fmt], path))
    ref = _ref(entry, fmt)
    model = jacprop.load(path)
    tol = entry.get("tolerance") or 1e-9
    y, J = jacprop.jacobian(model, ref["x"])
    assert np.abs(y - ref["y64"]).max() <= tol * np.abs(ref["y64"]).max()
    assert np.abs(J - ref["jacobian"]).max() <= tol * max(1.0, np.abs(ref["jacobian"]).max())


@pytest.mark.parametrize("tag,fmt", [("k2", "k2.h5"), ("k3", "k3.h5")])
def test_the_extra_layers_without_their_default_valued_config_keys_give_tensorflows_numbers(tmp_path, tag, fmt):
    path = tmp_path / f"m.{fmt}"
    ALL_DELETED.update(_strip_file(EXTRA / f"extra.{fmt}", path))
    ref = np.load(EXTRA / f"extra.{tag}.npz")
    y, J = jacprop.jacobian(jacprop.load(path), ref["x"])
    assert np.abs(y - ref["y64"]).max() <= 1e-9 * np.abs(ref["y64"]).max()
    assert np.abs(J - ref["jacobian"]).max() <= 1e-9 * max(1.0, np.abs(ref["jacobian"]).max())


# ---------------------------------------------------------------------------
# One-layer models written here in Keras 2's legacy HDF5 layout


def write_k2(path, shape, layers, version="2.15.0"):
    """A Sequential Keras 2 .h5: ``layers`` = [(class, config, {weight name: array})], weights listed in order."""
    entries = [{"class_name": "InputLayer", "config": {"batch_input_shape": [None, *shape], "name": "x"}}]
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = version
        mw = f.create_group("model_weights")
        for i, (cls, cfg, weights) in enumerate(layers):
            name = cfg.get("name", f"l{i}")
            entries.append({"class_name": cls, "config": {"name": name, **cfg}})
            g = mw.create_group(name)
            names = []
            for w, arr in weights.items():
                g[f"{name}/{w}:0"] = np.asarray(arr, dtype=np.float64)
                names.append(f"{name}/{w}:0")
            g.attrs["weight_names"] = [n.encode() for n in names]
        f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {"name": "s", "layers": entries}})
    return path


def layer_nodes(model) -> list[str]:
    """The names of the nodes the layers added (what ``jacprop inspect`` lists), without the input and output."""
    return [n.name for n in model.nodes if n.kind not in ("Input", "InputLayer", "Output")]


def load_error(path) -> str:
    with pytest.raises(ModelError) as e:
        jacprop.load(path)
    return str(e.value)


RNG = np.random.default_rng(2026)


def run1(tmp_path, shape, cls, cfg, weights=None, x=None, version="2.15.0"):
    """(model, x, y, J) of a one-layer model; x drawn in [-8, 8] unless given."""
    path = write_k2(tmp_path / f"{cls}.h5", shape, [(cls, cfg, weights or {})], version)
    model = jacprop.load(path)
    x = RNG.uniform(-8, 8, size=(7, int(np.prod(shape)))) if x is None else x
    y, J = jacprop.jacobian(model, x)
    return model, x, y, J


def refused(tmp_path, shape, cls, cfg, weights=None, version="2.15.0"):
    path = write_k2(tmp_path / f"{cls}.h5", shape, [(cls, cfg, weights or {})], version)
    msg = load_error(path)
    prefix = f"{path}: layer '{cfg.get('name', 'l0')}' ({cls}): "
    assert msg.startswith(prefix), msg
    return msg[len(prefix):]


# ---- Dense


@pytest.mark.parametrize("use_bias", [True, False])
def test_dense_kernel_in_by_out_and_its_bias(tmp_path, use_bias):
    K, b = RNG.normal(size=(3, 4)), RNG.normal(size=4)
    w = {"kernel": K, **({"bias": b} if use_bias else {})}
    model, x, y, J = run1(tmp_path, (3,), "Dense", {"units": 4, "activation": "tanh", "use_bias": use_bias}, w)
    assert [(n.name, n.kind) for n in model.nodes if n.name == "l0"] == [("l0", "Dense")]  # what inspect lists
    a = x @ K + (b if use_bias else 0)
    np.testing.assert_allclose(y, np.tanh(a), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(J, (1 - np.tanh(a) ** 2)[:, :, None] * K.T[None], rtol=1e-12, atol=1e-15)


def test_dense_weight_count_and_shape_errors(tmp_path):
    K, b = RNG.normal(size=(3, 4)), RNG.normal(size=4)
    cfg = {"units": 4, "use_bias": False}
    assert refused(tmp_path, (3,), "Dense", cfg, {"kernel": K, "bias": b}) == \
        "2 weights stored (l0/kernel:0, l0/bias:0), expected 1"
    assert refused(tmp_path, (3,), "Dense", {"units": 4}, {"kernel": K}) == "missing weight 'bias'"
    assert refused(tmp_path, (3,), "Dense", {"units": 4}, {"kernel": K, "bias": K}) == \
        "weight 'bias' expected shape (4,), got (3, 4)"
    assert refused(tmp_path, (3,), "Dense", {"units": 4}, {"kernel": K.T, "bias": b}) == \
        "weight 'kernel' expected shape (3, 4), got (4, 3)"
    assert refused(tmp_path, (3,), "Dense", {"units": 4}) == "missing weight 'kernel'"


# ---- activations: strings, functions, layer objects


def test_relu_layer_variants_against_their_formulas(tmp_path):
    x = np.array([[-7.0, -0.5, 0.0, 0.3, 0.7, 5.5, 6.0, 7.5]])
    cases = [({"max_value": 6.0}, np.clip(x, 0, 6), ((x > 0) & (x < 6)) * 1.0),  # Relu6Grad: 0 < a < 6
             ({"max_value": 0.7}, np.clip(x, 0, 0.7), ((x > 0) & (x <= 0.7)) * 1.0),
             ({"negative_slope": 0.1}, np.where(x > 0, x, float(np.float32(0.1)) * x),
              np.where(x > 0, 1.0, float(np.float32(0.1)))),
             ({"alpha": 0.1}, np.where(x > 0, x, float(np.float32(0.1)) * x),
              np.where(x > 0, 1.0, float(np.float32(0.1)))),
             ({"threshold": 0.0, "negative_slope": 0.0}, np.maximum(x, 0), (x > 0) * 1.0)]
    for cfg, y_ref, d_ref in cases:
        _, _, y, J = run1(tmp_path, (8,), "ReLU", cfg, x=x)
        np.testing.assert_array_equal(y, y_ref, err_msg=str(cfg))
        np.testing.assert_array_equal(J[0], np.diag(d_ref[0]), err_msg=str(cfg))


def test_relu_layer_refusals(tmp_path):
    assert refused(tmp_path, (3,), "ReLU", {"threshold": 0.5}) == \
        "ReLU with threshold=0.5, negative_slope=0.0, max_value=None is not supported"
    assert refused(tmp_path, (3,), "ReLU", {"negative_slope": 0.1, "max_value": 6.0}) == \
        "ReLU with threshold=0.0, negative_slope=0.1, max_value=6.0 is not supported"


def test_leaky_relu_and_elu_layers_use_keras_defaults(tmp_path):
    x = np.array([[-3.0, -0.25, 0.5, 2.0]])
    for cfg, slope in (({}, 0.3), ({"alpha": 0.05}, 0.05), ({"negative_slope": 0.25}, 0.25)):
        _, _, y, _ = run1(tmp_path, (4,), "LeakyReLU", cfg, x=x)
        np.testing.assert_array_equal(y, np.where(x > 0, x, float(np.float32(slope)) * x))
    for cfg, alpha in (({}, 1.0), ({"alpha": 0.5}, 0.5)):
        _, _, y, J = run1(tmp_path, (4,), "ELU", cfg, x=x)
        np.testing.assert_allclose(y, np.where(x > 0, x, alpha * np.expm1(x)), rtol=1e-15)
        np.testing.assert_allclose(np.diagonal(J[0]), np.where(x > 0, 1.0, alpha * np.exp(x))[0], rtol=1e-15)


def _act_dense(tmp_path, activation, version="2.15.0", x=None):
    K = np.eye(4)
    return run1(tmp_path, (4,), "Dense", {"units": 4, "activation": activation, "use_bias": False}, {"kernel": K},
                x=x, version=version)


def test_activation_given_as_a_serialized_function_or_layer_object(tmp_path):
    x = RNG.uniform(-4, 4, size=(5, 4))
    for module in ("builtins", "keras.activations", "keras.src.activations", "tf_keras.activations",
                   "tensorflow.python.keras.activations"):
        spec = {"class_name": "function", "config": "tanh", "module": module, "registered_name": "tanh"}
        _, _, y, _ = _act_dense(tmp_path, spec, x=x)
        np.testing.assert_allclose(y, np.tanh(x), rtol=1e-15, err_msg=str(module))
    spec = {"class_name": "ReLU", "config": {"max_value": 2.0}}
    np.testing.assert_array_equal(_act_dense(tmp_path, spec, x=x)[2], np.clip(x, 0, 2))
    spec = {"class_name": "LeakyReLU", "config": {"negative_slope": 0.5}}
    np.testing.assert_array_equal(_act_dense(tmp_path, spec, x=x)[2], np.where(x > 0, x, 0.5 * x))
    spec = {"class_name": "Softmax", "config": {"axis": -1}}
    e = np.exp(x - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(_act_dense(tmp_path, spec, x=x)[2], e / e.sum(axis=1, keepdims=True), rtol=1e-14)


def test_activation_refusals_name_the_activation(tmp_path):
    cfg = {"units": 4, "use_bias": False}
    K = {"kernel": np.eye(4)}
    custom = {"class_name": "function", "config": "swishy", "module": "my_package.acts", "registered_name": "my>swishy"}
    assert refused(tmp_path, (4,), "Dense", {**cfg, "activation": custom}, K) == \
        "activation 'my>swishy' is a custom function; custom activations cannot be loaded"
    custom = {"class_name": "function", "config": "swishy", "module": "__main__"}
    assert refused(tmp_path, (4,), "Dense", {**cfg, "activation": custom}, K) == \
        "activation 'swishy' is a custom function; custom activations cannot be loaded"
    assert refused(tmp_path, (4,), "Dense", {**cfg, "activation": {"class_name": "Swish", "config": {}}}, K) == \
        "activation 'Swish' is not supported"
    assert refused(tmp_path, (4,), "Dense", {**cfg, "activation": {"class_name": "X", "config": {},
                                                                    "registered_name": "pkg>X"}}, K) == \
        "activation 'pkg>X' is not supported"
    not_a_function = {"class_name": "Swish", "config": "tanh", "module": "keras.activations"}  # a name, not a config
    assert refused(tmp_path, (4,), "Dense", {**cfg, "activation": not_a_function}, K) == \
        "activation 'Swish' is not supported"
    assert refused(tmp_path, (4,), "Dense", {**cfg, "activation": 3}, K) == "activation 3 is not supported"
    assert refused(tmp_path, (4,), "Dense", {**cfg, "activation": "nope"}, K) == "activation 'nope' is not supported"
    for internal in ("relu_max", "gelu_tanh", "hard_sigmoid_k2"):  # jacprop's names, not Keras': Keras refuses them
        assert refused(tmp_path, (4,), "Dense", {**cfg, "activation": internal}, K) == \
            f"activation {internal!r} is not supported"
        function = {"class_name": "function", "config": internal, "module": "keras.activations"}
        assert refused(tmp_path, (4,), "Dense", {**cfg, "activation": function}, K) == \
            f"activation {internal!r} is not supported"


def test_hard_sigmoid_is_the_keras_versions_own(tmp_path):
    x = np.array([[-4.0, -2.6, -1.0, 0.0, 1.0, 2.4, 2.9, 4.0]])
    _, _, y2, _ = run1(tmp_path, (8,), "Activation", {"activation": "hard_sigmoid"}, x=x)
    np.testing.assert_allclose(y2, np.clip(0.2 * x + 0.5, 0, 1), rtol=1e-15)
    _, _, y3, _ = run1(tmp_path, (8,), "Activation", {"activation": "hard_sigmoid"}, x=x, version="3.6.0")
    np.testing.assert_allclose(y3, np.clip(x + 3, 0, 6) / 6, rtol=1e-15)
    _, _, yg, _ = run1(tmp_path, (8,), "Activation", {"activation": "gelu"}, x=x)
    from math import erf
    # exact gelu, not its tanh form (TensorFlow rounds 1/sqrt(2) to float32: within 1e-6 of erf here)
    np.testing.assert_allclose(yg, [[0.5 * v * (1 + erf(v / np.sqrt(2))) for v in x[0]]], rtol=1e-6, atol=1e-300)


# ---- normalisation layers: weights in Keras' order, against the formulas


@pytest.mark.parametrize("scale,center", [(True, True), (False, True), (True, False), (False, False)])
def test_batch_normalization_weights_in_keras_order(tmp_path, scale, center):
    g, be, m, v = RNG.uniform(0.5, 2, 3), RNG.normal(size=3), RNG.normal(size=3), RNG.uniform(0.5, 2, 3)
    w = {**({"gamma": g} if scale else {}), **({"beta": be} if center else {}), "moving_mean": m, "moving_variance": v}
    cfg = {"axis": -1, "epsilon": 0.01, "scale": scale, "center": center}
    _, x, y, J = run1(tmp_path, (3,), "BatchNormalization", cfg, w)
    gg, bb = (g if scale else 1.0), (be if center else 0.0)
    np.testing.assert_allclose(y, gg * (x - m) / np.sqrt(v + 0.01) + bb, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(J, np.broadcast_to(np.diag(gg / np.sqrt(v + 0.01) * np.ones(3)), J.shape), rtol=1e-13)


def test_batch_normalization_on_a_middle_axis_and_axis_errors(tmp_path):
    g, be, m, v = RNG.uniform(0.5, 2, 2), RNG.normal(size=2), RNG.normal(size=2), RNG.uniform(0.5, 2, 2)
    w = {"gamma": g, "beta": be, "moving_mean": m, "moving_variance": v}
    _, x, y, _ = run1(tmp_path, (2, 3), "BatchNormalization", {"axis": 1}, w)
    xs = x.reshape(-1, 2, 3)
    ref = g[:, None] * (xs - m[:, None]) / np.sqrt(v[:, None] + 1e-3) + be[:, None]
    np.testing.assert_allclose(y, ref.reshape(len(x), -1), rtol=1e-13, atol=1e-14)
    assert refused(tmp_path, (2, 3), "BatchNormalization", {"axis": 3}, w) == \
        "axis 3 is the batch axis or out of range for per-row shape (2, 3)"
    assert refused(tmp_path, (2, 3), "BatchNormalization", {"axis": 0}, w) == \
        "axis 0 is the batch axis or out of range for per-row shape (2, 3)"
    assert refused(tmp_path, (2, 3), "BatchNormalization", {"axis": [1, 2]}, w) == "axis [1, 2]: one axis expected"


@pytest.mark.parametrize("scale,center", [(True, True), (False, True), (True, False), (False, False)])
def test_layer_normalization_weights_and_options(tmp_path, scale, center):
    g, be = RNG.uniform(0.5, 2, 4), RNG.normal(size=4)
    w = {**({"gamma": g} if scale else {}), **({"beta": be} if center else {})}
    cfg = {"axis": -1, "epsilon": 0.01, "scale": scale, "center": center}
    _, x, y, _ = run1(tmp_path, (4,), "LayerNormalization", cfg, w)
    xhat = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 0.01)
    np.testing.assert_allclose(y, xhat * (g if scale else 1) + (be if center else 0), rtol=1e-12, atol=1e-13)


def test_layer_normalization_rms_scaling_and_an_int_axis_over_the_last_of_two(tmp_path):
    g = RNG.uniform(0.5, 2, 3)
    # rms_scaling: gamma only (Keras 3), the variance centred, x not
    _, x, y, _ = run1(tmp_path, (2, 3), "LayerNormalization", {"axis": -1, "rms_scaling": True, "epsilon": 0.01},
                      {"gamma": g})
    xs = x.reshape(-1, 2, 3)
    np.testing.assert_allclose(y, (xs / np.sqrt(xs.var(2, keepdims=True) + 0.01) * g).reshape(len(x), -1),
                               rtol=1e-12)
    _, x, y, _ = run1(tmp_path, (2, 3), "LayerNormalization", {"axis": 2, "center": False}, {"gamma": g})
    xs = x.reshape(-1, 2, 3)
    xhat = (xs - xs.mean(2, keepdims=True)) / np.sqrt(xs.var(2, keepdims=True) + 1e-3)
    np.testing.assert_allclose(y, (xhat * g).reshape(len(x), -1), rtol=1e-12, atol=1e-13)


def test_rms_normalization_scale_and_default_epsilon(tmp_path):
    s = RNG.uniform(0.5, 2, 3)
    _, x, y, _ = run1(tmp_path, (2, 3), "RMSNormalization", {"axis": -1}, {"scale": s}, version="3.10.0")
    xs = x.reshape(-1, 2, 3)
    np.testing.assert_allclose(y, (xs / np.sqrt((xs ** 2).mean(2, keepdims=True) + 1e-6) * s).reshape(len(x), -1),
                               rtol=1e-13)
    x = np.full((1, 6), 1e-4)  # where epsilon matters
    _, _, y, _ = run1(tmp_path, (2, 3), "RMSNormalization", {}, {"scale": np.ones(3)}, x=x, version="3.10.0")
    np.testing.assert_allclose(y, 1e-4 / np.sqrt(1e-8 + 1e-6), rtol=1e-13)
    assert refused(tmp_path, (2, 3), "RMSNormalization", {}, {"scale": np.ones(2)}, version="3.10.0") == \
        "weight 'scale' expected shape (3,), got (2,)"


def _central_differences(model, x, h=1e-6):
    """dy/dx by central differences, (N, K, D): the reference for a Jacobian that no framework computed here."""
    cols = [(model.forward(x + h * e) - model.forward(x - h * e)) / (2 * h) for e in np.eye(x.shape[1])]
    return np.stack(cols, axis=-1)


def test_layer_normalization_over_a_non_last_axis(tmp_path):
    # Keras 2 and 3 reshape gamma and beta to the normalised axis (measured, Keras 3.15.1: within 7e-16 of this)
    g, be = RNG.uniform(0.5, 2, 2), RNG.normal(size=2)
    model, x, y, J = run1(tmp_path, (2, 3), "LayerNormalization", {"axis": [1], "epsilon": 0.01},
                          {"gamma": g, "beta": be})
    xs = x.reshape(-1, 2, 3)
    xhat = (xs - xs.mean(1, keepdims=True)) / np.sqrt(xs.var(1, keepdims=True) + 0.01)
    np.testing.assert_allclose(y, (xhat * g[:, None] + be[:, None]).reshape(len(x), -1), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(J, _central_differences(model, x), rtol=1e-6, atol=1e-7)
    _, x, y, _ = run1(tmp_path, (2, 3), "LayerNormalization", {"axis": 1, "epsilon": 0.01, "rms_scaling": True},
                      {"gamma": g})
    xs = x.reshape(-1, 2, 3)
    np.testing.assert_allclose(y, (xs / np.sqrt(xs.var(1, keepdims=True) + 0.01) * g[:, None]).reshape(len(x), -1),
                               rtol=1e-12)


def test_rms_normalization_over_a_non_last_axis_broadcasts_scale_as_keras_does(tmp_path):
    # Keras 3 multiplies by scale with numpy's broadcasting, i.e. along the LAST axis, whichever axis it normalises
    # over (measured, Keras 3.15.1: within 5e-16 of this formula on a (2, 2) row; a (3, 2) row fails in Keras)
    s = RNG.uniform(0.5, 2, 2)
    model, x, y, J = run1(tmp_path, (2, 2), "RMSNormalization", {"axis": [1], "epsilon": 0.01}, {"scale": s},
                          version="3.10.0")
    xs = x.reshape(-1, 2, 2)
    ref = xs / np.sqrt((xs ** 2).mean(1, keepdims=True) + 0.01) * s
    np.testing.assert_allclose(y, ref.reshape(len(x), -1), rtol=1e-13)
    np.testing.assert_allclose(J, _central_differences(model, x), rtol=1e-6, atol=1e-7)
    assert refused(tmp_path, (3, 2), "RMSNormalization", {"axis": [1]}, {"scale": np.ones(3)}, version="3.10.0") \
        == "scale of shape (3,) does not broadcast against the row shape (3, 2) (Keras itself cannot call this layer)"
    s6 = RNG.uniform(0.5, 2, (2, 3))  # over two axes: the scale of both
    _, x, y, _ = run1(tmp_path, (2, 3), "RMSNormalization", {"axis": [1, 2], "epsilon": 0.5}, {"scale": s6},
                      version="3.10.0")
    xs = x.reshape(-1, 2, 3)
    np.testing.assert_allclose(y, (xs / np.sqrt((xs ** 2).mean((1, 2), keepdims=True) + 0.5) * s6).reshape(len(x), -1),
                               rtol=1e-13)


def test_normalization_without_an_axis_key_normalises_the_last_axis(tmp_path):
    m, v = RNG.normal(size=3), RNG.uniform(0.5, 2, 3)
    _, x, y, _ = run1(tmp_path, (2, 3), "Normalization", {}, {"mean": m, "variance": v, "count": np.array(4.0)})
    np.testing.assert_allclose(y, ((x.reshape(-1, 2, 3) - m) / np.sqrt(v)).reshape(len(x), -1), rtol=1e-13,
                               atol=1e-14)


def test_normalization_from_its_weights_over_an_axis_none_and_inverted(tmp_path):
    m, v = RNG.normal(size=3), RNG.uniform(0.5, 2, 3)
    w = {"mean": m, "variance": v, "count": np.array(10.0)}
    _, x, y, _ = run1(tmp_path, (2, 3), "Normalization", {"axis": -1}, w)
    xs = x.reshape(-1, 2, 3)
    np.testing.assert_allclose(y, ((xs - m) / np.sqrt(v)).reshape(len(x), -1), rtol=1e-13, atol=1e-14)
    _, x, y, _ = run1(tmp_path, (2, 3), "Normalization", {"axis": -1, "invert": True}, w)
    np.testing.assert_allclose(y, (x.reshape(-1, 2, 3) * np.sqrt(v) + m).reshape(len(x), -1), rtol=1e-13)
    w0 = {"mean": np.array(0.5), "variance": np.array(4.0), "count": np.array(3.0)}
    _, x, y, _ = run1(tmp_path, (2, 3), "Normalization", {"axis": None}, w0)
    np.testing.assert_allclose(y, (x - 0.5) / 2, rtol=1e-15)
    w2 = {"mean": RNG.normal(size=2), "variance": RNG.uniform(0.5, 2, 2), "count": np.array(3.0)}
    _, x, y, _ = run1(tmp_path, (2, 3), "Normalization", {"axis": 1}, w2)
    ref = (x.reshape(-1, 2, 3) - w2["mean"][:, None]) / np.sqrt(w2["variance"])[:, None]
    np.testing.assert_allclose(y, ref.reshape(len(x), -1), rtol=1e-13, atol=1e-14)
    assert refused(tmp_path, (2, 3), "Normalization", {"axis": -1}, {"mean": m, "variance": v}) == \
        "missing weight 'count'"
    assert refused(tmp_path, (2, 3), "Normalization", {"axis": -1}, {**w, "variance": np.ones(2)}) == \
        "weight 'variance' expected shape (3,), got (2,)"
    assert refused(tmp_path, (2, 3), "Normalization", {"axis": -1}, {**w, "mean": np.ones(2)}) == \
        "weight 'mean' expected shape (3,), got (2,)"


def test_normalization_from_its_config(tmp_path):
    _, x, y, _ = run1(tmp_path, (3,), "Normalization", {"mean": [0.1, 0.2, 0.3], "variance": [1.0, 4.0, 9.0],
                                                        "axis": -1, "invert": False})
    np.testing.assert_allclose(y, (x - [0.1, 0.2, 0.3]) / [1, 2, 3], rtol=1e-15)
    assert refused(tmp_path, (3,), "Normalization", {"mean": [0.1, 0.2], "variance": [1.0, 4.0]}) == \
        "mean/variance in the config do not fit shape (3,)"


def test_rescaling_per_channel_in_float32(tmp_path):
    _, x, y, _ = run1(tmp_path, (2,), "Rescaling", {"scale": [0.3, 2.0], "offset": [0.1, -0.7]})
    s, o = np.float32([0.3, 2.0]).astype(float), np.float32([0.1, -0.7]).astype(float)
    np.testing.assert_array_equal(y, x * s + o)
    _, x, y, _ = run1(tmp_path, (2,), "Rescaling", {"scale": 0.3})
    np.testing.assert_array_equal(y, x * float(np.float32(0.3)))
    _, x, y, _ = run1(tmp_path, (2,), "Rescaling", {"offset": 0.25})  # scale left out: Keras' 1.0
    np.testing.assert_array_equal(y, x + 0.25)


# ---- PReLU, Flatten: several ops, named after the layer


def test_prelu_with_shared_axes_and_the_names_of_its_ops(tmp_path):
    alpha = RNG.uniform(0.1, 0.9, (1, 3))
    model, x, y, J = run1(tmp_path, (2, 3), "PReLU", {"shared_axes": [1]}, {"alpha": alpha})
    xs = x.reshape(-1, 2, 3)
    np.testing.assert_allclose(y, np.where(xs > 0, xs, alpha * xs).reshape(len(x), -1), rtol=1e-15)
    assert layer_nodes(model) == ["l0/1", "l0/2", "l0/3", "l0/4", "l0"]
    assert refused(tmp_path, (2, 3), "PReLU", {"shared_axes": [1]}, {"alpha": np.ones((2, 3))}) == \
        "weight 'alpha' expected shape (1, 3), got (2, 3)"


def test_flatten_channels_first_moves_the_channels_last(tmp_path):
    model, x, y, _ = run1(tmp_path, (2, 3, 4), "Flatten", {"data_format": "channels_first"})
    np.testing.assert_array_equal(y, x.reshape(-1, 2, 3, 4).transpose(0, 2, 3, 1).reshape(len(x), -1))
    assert layer_nodes(model) == ["l0/1", "l0"]
    model, x, y, _ = run1(tmp_path, (5,), "Flatten", {"data_format": "channels_first"})  # nothing to move
    np.testing.assert_array_equal(y, x)
    assert layer_nodes(model) == ["l0"]
    model, x, y, _ = run1(tmp_path, (2, 3), "Flatten", {})
    np.testing.assert_array_equal(y, x)
    assert refused(tmp_path, (2, 3), "GlobalAveragePooling1D", {"data_format": "channels_middle"}) == \
        "data_format 'channels_middle' is not supported"


# ---- convolutions, pooling, merges (built by factories at import: mutmut's forked runs never see their mutants)


def conv_ref(x, K, b, strides, dilation, pad_before, out_len):
    """Channels-last convolution written out: y[o, f] = sum_{k, c} xpad[o s + k d, c] K[k, c, f] + b[f]."""
    rank = K.ndim - 2
    xp = np.pad(x, [(0, 0), *[(p, 200) for p in pad_before], (0, 0)])
    y = np.zeros((len(x), *out_len, K.shape[-1]))
    for o in np.ndindex(*out_len):
        for k in np.ndindex(*K.shape[:rank]):
            idx = tuple(o[i] * strides[i] + k[i] * dilation[i] for i in range(rank))
            y[(slice(None), *o)] += xp[(slice(None), *idx)] @ K[k]
    return y + (0 if b is None else b)


@pytest.mark.parametrize("cfg,out,pad", [
    ({"kernel_size": 2, "strides": 1}, (3, 4), (0, 0)),
    ({"kernel_size": [3, 2], "strides": [2, 1], "padding": "valid"}, (1, 4), (0, 0)),
    ({"kernel_size": 3, "padding": "same"}, (4, 5), (1, 1)),
    ({"kernel_size": 2, "dilation_rate": 2, "use_bias": False}, (2, 3), (0, 0)),
])
def test_conv2d_kernel_layout_strides_padding_dilation(tmp_path, cfg, out, pad):
    size = (cfg["kernel_size"],) * 2 if isinstance(cfg["kernel_size"], int) else tuple(cfg["kernel_size"])
    K, b = RNG.normal(size=(*size, 2, 3)), RNG.normal(size=3)
    use_bias = cfg.get("use_bias", True)
    w = {"kernel": K, **({"bias": b} if use_bias else {})}
    _, x, y, _ = run1(tmp_path, (4, 5, 2), "Conv2D", {"filters": 3, "activation": "linear", **cfg}, w)
    st, dl = cfg.get("strides", 1), cfg.get("dilation_rate", 1)
    st = (st,) * 2 if isinstance(st, int) else tuple(st)
    dl = (dl,) * 2 if isinstance(dl, int) else tuple(dl)
    ref = conv_ref(x.reshape(-1, 4, 5, 2), K, b if use_bias else None, st, dl, pad, out)
    np.testing.assert_allclose(y, ref.reshape(len(x), -1), rtol=1e-12, atol=1e-12)


def test_conv2d_channels_first_and_its_activation(tmp_path):
    K, b = RNG.normal(size=(2, 2, 3, 2)), RNG.normal(size=2)
    cfg = {"filters": 2, "kernel_size": [2, 2], "data_format": "channels_first", "activation": "tanh"}
    _, x, y, _ = run1(tmp_path, (3, 4, 4), "Conv2D", cfg, {"kernel": K, "bias": b})
    xl = x.reshape(-1, 3, 4, 4).transpose(0, 2, 3, 1)
    ref = np.tanh(conv_ref(xl, K, b, (1, 1), (1, 1), (0, 0), (3, 3))).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(y, ref.reshape(len(x), -1), rtol=1e-12, atol=1e-12)


def test_conv1d_causal_and_refusals(tmp_path):
    K, b = RNG.normal(size=(3, 2, 2)), RNG.normal(size=2)
    cfg = {"filters": 2, "kernel_size": 3, "padding": "causal", "dilation_rate": 2}
    _, x, y, _ = run1(tmp_path, (6, 2), "Conv1D", cfg, {"kernel": K, "bias": b})
    ref = conv_ref(x.reshape(-1, 6, 2), K, b, (1,), (2,), (4,), (6,))
    np.testing.assert_allclose(y, ref.reshape(len(x), -1), rtol=1e-12, atol=1e-12)
    w = {"kernel": K, "bias": b}
    assert refused(tmp_path, (6, 2), "Conv1D", {**cfg, "groups": 2}, w) == "groups=2 is not supported (only groups=1)"
    assert refused(tmp_path, (6, 2), "Conv1D", {**cfg, "padding": "full"}, w) == "padding 'full' is not supported"
    assert refused(tmp_path, (6, 2, 1), "Conv2D", {**cfg, "padding": "causal"}, w) == \
        "padding 'causal' is not supported"
    assert refused(tmp_path, (6, 2, 1), "Conv1D", {**cfg, "padding": "valid"}, w) == \
        "expects 1 spatial axes and channels, got shape (6, 2, 1)"
    assert refused(tmp_path, (6, 2), "Conv1D", {**cfg, "padding": "valid"}, {"kernel": K}) == "missing weight 'bias'"
    assert refused(tmp_path, (6, 2), "Conv1D", {**cfg, "padding": "valid", "filters": 3}, w) == \
        "weight 'kernel' expected shape (3, 2, 3), got (3, 2, 2)"


@pytest.mark.parametrize("cls,how", [("MaxPooling2D", np.max), ("AveragePooling2D", np.mean)])
def test_pooling_2d_sizes_strides_and_channels_first(tmp_path, cls, how):
    _, x, y, _ = run1(tmp_path, (4, 6, 2), cls, {"pool_size": [2, 3]})  # strides default to pool_size
    xs = x.reshape(-1, 2, 2, 2, 3, 2)
    np.testing.assert_allclose(y, how(xs, axis=(2, 4)).reshape(len(x), -1), rtol=1e-14)
    _, x, y, _ = run1(tmp_path, (4, 6, 2), cls, {"pool_size": 2, "strides": 2})
    xs = x.reshape(-1, 2, 2, 3, 2, 2)
    np.testing.assert_allclose(y, how(xs, axis=(2, 4)).reshape(len(x), -1), rtol=1e-14)
    _, x, y, _ = run1(tmp_path, (4, 6, 2), cls, {"pool_size": [2, 2], "strides": [1, 2]})
    xs = x.reshape(-1, 4, 6, 2)
    ref = np.stack([np.stack([how(xs[:, i:i + 2, 2 * j:2 * j + 2], axis=(1, 2)) for j in range(3)], 1)
                    for i in range(3)], 1)
    np.testing.assert_allclose(y, ref.reshape(len(x), -1), rtol=1e-14)
    _, x, y, _ = run1(tmp_path, (2, 4, 6), cls, {"pool_size": [2, 3], "data_format": "channels_first"})
    xs = x.reshape(-1, 2, 2, 2, 2, 3)
    np.testing.assert_allclose(y, how(xs, axis=(3, 5)).reshape(len(x), -1), rtol=1e-14)


def test_pooling_1d_and_same_padding(tmp_path):
    _, x, y, _ = run1(tmp_path, (6, 2), "MaxPooling1D", {})  # pool_size 2, strides 2
    np.testing.assert_array_equal(y, x.reshape(-1, 3, 2, 2).max(axis=2).reshape(len(x), -1))
    _, x, y, _ = run1(tmp_path, (5, 1), "AveragePooling1D", {"pool_size": 2, "strides": 2, "padding": "same"})
    xs = x.reshape(-1, 5)
    ref = np.stack([xs[:, 0:2].mean(1), xs[:, 2:4].mean(1), xs[:, 4]], 1)  # the padding is not averaged
    np.testing.assert_allclose(y, ref, rtol=1e-14)


@pytest.mark.parametrize("how,fn", [("Average", np.mean), ("Max", np.max)])
def test_global_pooling_keepdims_and_channels_first(tmp_path, how, fn):
    _, x, y, _ = run1(tmp_path, (3, 4, 2), f"Global{how}Pooling2D", {})
    np.testing.assert_allclose(y, fn(x.reshape(-1, 12, 2), axis=1), rtol=1e-14)
    model, x, y, _ = run1(tmp_path, (3, 4, 2), f"Global{how}Pooling2D", {"keepdims": True})
    np.testing.assert_allclose(y, fn(x.reshape(-1, 12, 2), axis=1), rtol=1e-14)
    assert model.nodes[-2].shape == (1, 1, 2)
    _, x, y, _ = run1(tmp_path, (2, 5), f"Global{how}Pooling1D", {"data_format": "channels_first"})
    np.testing.assert_allclose(y, fn(x.reshape(-1, 2, 5), axis=2), rtol=1e-14)


def write_k2_functional(path, inputs, layers, outputs, version="2.15.0"):
    """A Functional Keras 2 .h5: inputs [(name, shape)], layers [(class, config, {w: array}, [input names])]."""
    entries = [{"class_name": "InputLayer", "name": n, "config": {"batch_input_shape": [None, *s], "name": n},
                "inbound_nodes": []} for n, s in inputs]
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = version
        mw = f.create_group("model_weights")
        for cls, cfg, weights, ins in layers:
            entries.append({"class_name": cls, "name": cfg["name"], "config": cfg,
                            "inbound_nodes": [[[i, 0, 0, {}] for i in ins]]})
            g = mw.create_group(cfg["name"])
            for w, arr in weights.items():
                g[f"{cfg['name']}/{w}:0"] = arr
            g.attrs["weight_names"] = [f"{cfg['name']}/{w}:0".encode() for w in weights]
        config = {"class_name": "Functional", "config": {"name": "f", "layers": entries,
                                                         "input_layers": [[n, 0, 0] for n, _ in inputs],
                                                         "output_layers": [[o, 0, 0] for o in outputs]}}
        f.attrs["model_config"] = json.dumps(config)
    return path


@pytest.mark.parametrize("cls,fn", [("Add", lambda a, b: a + b), ("Subtract", lambda a, b: a - b),
                                    ("Multiply", lambda a, b: a * b), ("Average", lambda a, b: (a + b) / 2),
                                    ("Maximum", np.maximum), ("Minimum", np.minimum)])
def test_merge_layers(tmp_path, cls, fn):
    path = write_k2_functional(tmp_path / "m.h5", [("a", (3,)), ("b", (3,))], [(cls, {"name": "m"}, {}, ["a", "b"])],
                               ["m"])
    x = RNG.normal(size=(5, 6))
    np.testing.assert_allclose(jacprop.load(path).forward(x), fn(x[:, :3], x[:, 3:]), rtol=1e-15)


def test_concatenate_axes(tmp_path):
    for axis, ref in ((-1, lambda a, b: np.concatenate([a, b], 2)), (1, lambda a, b: np.concatenate([a, b], 1)),
                      (2, lambda a, b: np.concatenate([a, b], 2))):
        path = write_k2_functional(tmp_path / "c.h5", [("a", (2, 3)), ("b", (2, 3))],
                                   [("Concatenate", {"name": "c", "axis": axis}, {}, ["a", "b"])], ["c"])
        x = RNG.normal(size=(4, 12))
        y = jacprop.load(path).forward(x)
        np.testing.assert_array_equal(y, ref(x[:, :6].reshape(-1, 2, 3), x[:, 6:].reshape(-1, 2, 3)).reshape(4, -1))
    path = write_k2_functional(tmp_path / "c.h5", [("a", (2, 3)), ("b", (2, 3))],
                               [("Concatenate", {"name": "c"}, {}, ["a", "b"])], ["c"])
    x = RNG.normal(size=(4, 12))
    np.testing.assert_array_equal(jacprop.load(path).forward(x), np.concatenate(
        [x[:, :6].reshape(-1, 2, 3), x[:, 6:].reshape(-1, 2, 3)], 2).reshape(4, -1))


# ---- keras_more: padding, cropping, upsampling, depthwise / separable / transposed convolutions


def test_zero_padding_forms(tmp_path):
    _, x, y, _ = run1(tmp_path, (3, 2), "ZeroPadding1D", {"padding": 1})
    np.testing.assert_array_equal(y, np.pad(x.reshape(-1, 3, 2), [(0, 0), (1, 1), (0, 0)]).reshape(len(x), -1))
    _, x, y, _ = run1(tmp_path, (3, 2), "ZeroPadding1D", {"padding": [1, 2]})
    np.testing.assert_array_equal(y, np.pad(x.reshape(-1, 3, 2), [(0, 0), (1, 2), (0, 0)]).reshape(len(x), -1))
    _, x, y, _ = run1(tmp_path, (3, 2), "ZeroPadding1D", {})
    np.testing.assert_array_equal(y, np.pad(x.reshape(-1, 3, 2), [(0, 0), (1, 1), (0, 0)]).reshape(len(x), -1))
    for pad, ref in ((2, [(2, 2), (2, 2)]), ([1, 2], [(1, 1), (2, 2)]), ([[1, 2], [0, 3]], [(1, 2), (0, 3)])):
        _, x, y, _ = run1(tmp_path, (2, 3, 2), "ZeroPadding2D", {"padding": pad})
        np.testing.assert_array_equal(y, np.pad(x.reshape(-1, 2, 3, 2), [(0, 0), *ref, (0, 0)]).reshape(len(x), -1))
    _, x, y, _ = run1(tmp_path, (2, 2, 3), "ZeroPadding2D", {"padding": [[1, 0], [0, 2]],
                                                             "data_format": "channels_first"})
    np.testing.assert_array_equal(y, np.pad(x.reshape(-1, 2, 2, 3), [(0, 0), (0, 0), (1, 0), (0, 2)]).reshape(len(x),
                                                                                                             -1))
    assert refused(tmp_path, (2, 3, 2), "ZeroPadding2D", {"padding": [1, 2, 3]}) == \
        "padding [1, 2, 3] does not give 2 axes"
    assert refused(tmp_path, (2, 3, 2), "ZeroPadding2D", {"padding": [[1, -1], [0, 0]]}) == \
        "padding [[1, -1], [0, 0]] must be non-negative pairs"
    assert refused(tmp_path, (2, 3, 2), "ZeroPadding2D", {"padding": [[1, 1, 1], [0, 0]]}) == \
        "padding [[1, 1, 1], [0, 0]] must be non-negative pairs"
    assert refused(tmp_path, (2, 3), "ZeroPadding2D", {"padding": 1}) == \
        "expects 2 spatial axes and channels, got shape (2, 3)"


def test_cropping_forms(tmp_path):
    _, x, y, _ = run1(tmp_path, (5, 2), "Cropping1D", {"cropping": [1, 2]})
    np.testing.assert_array_equal(y, x.reshape(-1, 5, 2)[:, 1:3].reshape(len(x), -1))
    _, x, y, _ = run1(tmp_path, (5, 2), "Cropping1D", {})  # Keras' default (1, 1)
    np.testing.assert_array_equal(y, x.reshape(-1, 5, 2)[:, 1:4].reshape(len(x), -1))
    _, x, y, _ = run1(tmp_path, (4, 5, 2), "Cropping2D", {"cropping": [[1, 0], [2, 1]]})
    np.testing.assert_array_equal(y, x.reshape(-1, 4, 5, 2)[:, 1:, 2:4].reshape(len(x), -1))
    _, x, y, _ = run1(tmp_path, (2, 4, 5), "Cropping2D", {"cropping": 1, "data_format": "channels_first"})
    np.testing.assert_array_equal(y, x.reshape(-1, 2, 4, 5)[:, :, 1:3, 1:4].reshape(len(x), -1))
    assert refused(tmp_path, (4, 2), "Cropping1D", {"cropping": [2, 2]}) == \
        "cropping 2 + 2 leaves nothing of an axis of 4"
    assert refused(tmp_path, (4, 2), "Cropping1D", {"cropping": [3, 1]}) == \
        "cropping 3 + 1 leaves nothing of an axis of 4"
    _, x, y, _ = run1(tmp_path, (4, 2), "Cropping1D", {"cropping": [3, 0]})
    np.testing.assert_array_equal(y, x[:, 6:])


def test_cropping2d_without_cropping_crops_nothing_as_keras_does(tmp_path):
    """Keras' Cropping2D default is ((0, 0), (0, 0)) (Cropping1D's is (1, 1))."""
    _, x, y, _ = run1(tmp_path, (4, 5, 2), "Cropping2D", {})
    np.testing.assert_array_equal(y, x)


def test_upsampling_nearest(tmp_path):
    _, x, y, _ = run1(tmp_path, (3, 2), "UpSampling1D", {"size": 3})
    np.testing.assert_array_equal(y, np.repeat(x.reshape(-1, 3, 2), 3, axis=1).reshape(len(x), -1))
    _, x, y, _ = run1(tmp_path, (3, 2), "UpSampling1D", {})
    np.testing.assert_array_equal(y, np.repeat(x.reshape(-1, 3, 2), 2, axis=1).reshape(len(x), -1))
    _, x, y, _ = run1(tmp_path, (2, 3, 2), "UpSampling2D", {"size": [2, 3]})
    ref = np.repeat(np.repeat(x.reshape(-1, 2, 3, 2), 2, axis=1), 3, axis=2)
    np.testing.assert_array_equal(y, ref.reshape(len(x), -1))
    _, x, y, _ = run1(tmp_path, (2, 3, 2), "UpSampling2D", {"size": 2, "data_format": "channels_first"})
    ref = np.repeat(np.repeat(x.reshape(-1, 2, 3, 2), 2, axis=2), 2, axis=3)
    np.testing.assert_array_equal(y, ref.reshape(len(x), -1))
    assert refused(tmp_path, (2, 3, 2), "UpSampling2D", {"interpolation": "bicubic"}) == \
        "interpolation 'bicubic' is not supported (nearest, bilinear)"
    assert refused(tmp_path, (2, 3, 2), "UpSampling1D", {}) == "expects (steps, features), got shape (2, 3, 2)"


def test_depthwise_conv2d_channel_order_c_times_m_plus_m(tmp_path):
    K, b = RNG.normal(size=(2, 2, 3, 2)), RNG.normal(size=6)
    _, x, y, _ = run1(tmp_path, (3, 4, 3), "DepthwiseConv2D", {"kernel_size": [2, 2], "depth_multiplier": 2,
                                                                "activation": "tanh"},
                      {"depthwise_kernel": K, "bias": b})
    xs = x.reshape(-1, 3, 4, 3)
    ref = np.zeros((len(x), 2, 3, 6))
    for c in range(3):
        for m in range(2):
            ref[..., c * 2 + m] = conv_ref(xs[..., c:c + 1], K[:, :, c:c + 1, m:m + 1], None, (1, 1), (1, 1),
                                           (0, 0), (2, 3))[..., 0]
    np.testing.assert_allclose(y, np.tanh(ref + b).reshape(len(x), -1), rtol=1e-12, atol=1e-13)
    _, x, y, _ = run1(tmp_path, (5, 2), "DepthwiseConv1D", {"kernel_size": 2, "strides": 2, "use_bias": False},
                      {"depthwise_kernel": K[0, :, :2, :1]})
    xs = x.reshape(-1, 5, 2)
    ref = np.stack([xs[:, 2 * o:2 * o + 2] * K[0, :, :2, 0] for o in range(2)], 1).sum(2)
    np.testing.assert_allclose(y, ref.reshape(len(x), -1), rtol=1e-12, atol=1e-13)
    assert refused(tmp_path, (5, 2), "DepthwiseConv1D", {"kernel_size": 2, "padding": "causal"},
                   {"depthwise_kernel": K[0, :, :2, :1], "bias": b[:2]}) == "padding 'causal' is not supported"


def test_separable_conv1d_is_depthwise_then_pointwise(tmp_path):
    dw, pw, b = RNG.normal(size=(3, 2, 2)), RNG.normal(size=(1, 4, 3)), RNG.normal(size=3)
    cfg = {"filters": 3, "kernel_size": 3, "depth_multiplier": 2, "activation": "tanh", "padding": "same"}
    model, x, y, _ = run1(tmp_path, (5, 2), "SeparableConv1D", cfg,
                          {"depthwise_kernel": dw, "pointwise_kernel": pw, "bias": b})
    xs = np.pad(x.reshape(-1, 5, 2), [(0, 0), (1, 1), (0, 0)])
    mid = np.zeros((len(x), 5, 4))
    for c in range(2):
        for m in range(2):
            mid[..., c * 2 + m] = sum(xs[:, k:k + 5, c] * dw[k, c, m] for k in range(3))
    np.testing.assert_allclose(y, np.tanh(mid @ pw[0] + b).reshape(len(x), -1), rtol=1e-12, atol=1e-13)
    assert layer_nodes(model) == ["l0/1", "l0"]
    _, x, y, _ = run1(tmp_path, (5, 2), "SeparableConv1D", {**cfg, "use_bias": False, "padding": "valid"},
                      {"depthwise_kernel": dw, "pointwise_kernel": pw})
    xs = x.reshape(-1, 5, 2)
    mid = np.zeros((len(x), 3, 4))
    for c in range(2):
        for m in range(2):
            mid[..., c * 2 + m] = sum(xs[:, k:k + 3, c] * dw[k, c, m] for k in range(3))
    np.testing.assert_allclose(y, np.tanh(mid @ pw[0]).reshape(len(x), -1), rtol=1e-12, atol=1e-13)


def test_conv1d_transpose_valid_and_its_refusals(tmp_path):
    K, b = RNG.normal(size=(3, 2, 4)), RNG.normal(size=2)  # (k, filters, C_in)
    _, x, y, _ = run1(tmp_path, (4, 4), "Conv1DTranspose", {"filters": 2, "kernel_size": 3, "strides": 2},
                      {"kernel": K, "bias": b})
    xs = x.reshape(-1, 4, 4)
    ref = np.zeros((len(x), 4 * 2 + 1, 2))
    for i in range(4):
        for j in range(3):
            ref[:, i * 2 + j] += xs[:, i] @ K[j].T
    np.testing.assert_allclose(y, (ref + b).reshape(len(x), -1), rtol=1e-12, atol=1e-13)
    w = {"kernel": K, "bias": b}
    assert refused(tmp_path, (4, 4), "Conv1DTranspose", {"filters": 2, "kernel_size": 3, "output_padding": 1}, w) \
        == "output_padding and dilation_rate != 1 are not supported for a transposed convolution"
    assert refused(tmp_path, (4, 4), "Conv1DTranspose", {"filters": 2, "kernel_size": 3, "dilation_rate": 2}, w) \
        == "output_padding and dilation_rate != 1 are not supported for a transposed convolution"
    assert refused(tmp_path, (4, 4), "Conv1DTranspose", {"filters": 2, "kernel_size": 3}, {"kernel": K}) == \
        "missing weight 'bias'"


def test_conv1d_transpose_without_bias_with_its_activation(tmp_path):
    K = RNG.normal(size=(3, 2, 4))  # (k, filters, C_in)
    xs = RNG.uniform(-0.5, 0.5, size=(7, 4, 4))  # tanh not saturated
    _, x, y, _ = run1(tmp_path, (4, 4), "Conv1DTranspose", {"filters": 2, "kernel_size": 3, "strides": 2,
                                                            "use_bias": False, "activation": "tanh"}, {"kernel": K},
                      x=xs.reshape(7, -1))
    ref = np.zeros((len(x), 4 * 2 + 1, 2))
    for i in range(4):
        for j in range(3):
            ref[:, i * 2 + j] += xs[:, i] @ K[j].T
    np.testing.assert_allclose(y, np.tanh(ref).reshape(len(x), -1), rtol=1e-12, atol=1e-13)
    assert refused(tmp_path, (4, 4), "Conv1DTranspose", {"filters": 2, "kernel_size": 3, "use_bias": False},
                   {"kernel": K, "bias": np.ones(2)}) == "2 weights stored (l0/kernel:0, l0/bias:0), expected 1"


@pytest.mark.parametrize("cls,cfg,weights", [
    ("DepthwiseConv1D", {"kernel_size": 2, "depth_multiplier": 2, "dilation_rate": 2},
     {"depthwise_kernel": RNG.normal(size=(2, 3, 2)), "bias": RNG.normal(size=6)}),
    ("SeparableConv1D", {"filters": 2, "kernel_size": 2, "depth_multiplier": 2, "dilation_rate": 2},
     {"depthwise_kernel": RNG.normal(size=(2, 3, 2)), "pointwise_kernel": RNG.normal(size=(1, 6, 2)),
      "bias": RNG.normal(size=2)}),
    ("Conv1DTranspose", {"filters": 2, "kernel_size": 3, "strides": 2},
     {"kernel": RNG.normal(size=(3, 2, 3)), "bias": RNG.normal(size=2)}),
])
def test_depthwise_separable_and_transposed_convolutions_channels_first(tmp_path, cls, cfg, weights):
    # Keras' channels_first is channels_last on the transposed row, whatever the layer (TensorFlow transposes too)
    x_cl = RNG.uniform(-1, 1, size=(5, 7, 3))  # (length 7, 3 channels)
    _, _, y_cl, _ = run1(tmp_path, (7, 3), cls, cfg, weights, x=x_cl.reshape(5, -1))
    _, _, y_cf, _ = run1(tmp_path, (3, 7), cls, {**cfg, "data_format": "channels_first"}, weights,
                         x=np.swapaxes(x_cl, 1, 2).reshape(5, -1))
    out_cl = y_cl.reshape(5, -1, 6 if cls == "DepthwiseConv1D" else 2)
    np.testing.assert_array_equal(y_cf, np.swapaxes(out_cl, 1, 2).reshape(5, -1))


def test_depthwise_and_separable_dilation_and_weight_names(tmp_path):
    K = RNG.normal(size=(2, 2, 1))  # (k, C, m)
    _, x, y, _ = run1(tmp_path, (5, 2), "DepthwiseConv1D", {"kernel_size": 2, "dilation_rate": 3, "use_bias": False},
                      {"depthwise_kernel": K})
    xs = x.reshape(-1, 5, 2)
    ref = np.stack([xs[:, o] * K[0, :, 0] + xs[:, o + 3] * K[1, :, 0] for o in range(2)], 1)
    np.testing.assert_allclose(y, ref.reshape(len(x), -1), rtol=1e-13, atol=1e-14)
    assert refused(tmp_path, (5, 2), "DepthwiseConv1D", {"kernel_size": 2}, {}) == "missing weight 'depthwise_kernel'"
    assert refused(tmp_path, (5, 2), "DepthwiseConv1D", {"kernel_size": 2}, {"depthwise_kernel": K}) == \
        "missing weight 'bias'"
    sep = {"filters": 2, "kernel_size": 2}
    assert refused(tmp_path, (5, 2), "SeparableConv1D", sep, {}) == "missing weight 'depthwise_kernel'"
    assert refused(tmp_path, (5, 2), "SeparableConv1D", sep, {"depthwise_kernel": K}) == \
        "missing weight 'pointwise_kernel'"
    assert refused(tmp_path, (5, 2), "SeparableConv1D", sep,
                   {"depthwise_kernel": K, "pointwise_kernel": np.ones((1, 2, 2))}) == "missing weight 'bias'"
    assert refused(tmp_path, (4, 4), "Conv1DTranspose", {"filters": 2, "kernel_size": 3}, {}) == \
        "missing weight 'kernel'"


def test_cropping_refusals_name_the_option(tmp_path):
    assert refused(tmp_path, (5, 2), "Cropping1D", {"cropping": [1, 2, 3]}) == "cropping [1, 2, 3] does not give 1 axes"
    assert refused(tmp_path, (4, 5, 2), "Cropping2D", {"cropping": [[1, -1], [0, 0]]}) == \
        "cropping [[1, -1], [0, 0]] must be non-negative pairs"


def test_repeat_vector_and_identity_layers(tmp_path):
    _, x, y, _ = run1(tmp_path, (3,), "RepeatVector", {"n": 4})
    np.testing.assert_array_equal(y, np.tile(x, 4))
    for cls in ("RandomFlip", "RandomRotation", "Identity", "Dropout", "GaussianNoise"):
        _, x, y, _ = run1(tmp_path, (3,), cls, {})
        np.testing.assert_array_equal(y, x)


# ---- keras_recurrent: the cells written out step by step


def _sig(a):
    return 1 / (1 + np.exp(-a))


def rnn_ref(cls, x, W, U, b, reset_after=False, go_backwards=False, return_sequences=False, act=np.tanh,
            rec=_sig):
    """Keras' SimpleRNN / LSTM (gates i, f, c, o) / GRU (gates z, r, h) over x (N, T, F), written out here."""
    n, steps, _ = x.shape
    u = U.shape[0]
    h, cstate = np.zeros((n, u)), np.zeros((n, u))
    order = range(steps - 1, -1, -1) if go_backwards else range(steps)
    seq = []
    for t in order:
        xt = x[:, t]
        if cls == "SimpleRNN":
            h = act(xt @ W + h @ U + (0 if b is None else b))
        elif cls == "LSTM":
            z = xt @ W + h @ U + (0 if b is None else b)
            i, f, g, o = (z[:, k * u:(k + 1) * u] for k in range(4))
            cstate = rec(f) * cstate + rec(i) * act(g)
            h = rec(o) * act(cstate)
        else:
            bi, br = (np.zeros(3 * u), np.zeros(3 * u)) if b is None else (b[0], b[1]) if reset_after else (b, 0)
            xz = xt @ W + bi
            if reset_after:
                hz = h @ U + br
                z, r = rec(xz[:, :u] + hz[:, :u]), rec(xz[:, u:2 * u] + hz[:, u:2 * u])
                hh = act(xz[:, 2 * u:] + r * hz[:, 2 * u:])
            else:
                z = rec(xz[:, :u] + h @ U[:, :u])
                r = rec(xz[:, u:2 * u] + h @ U[:, u:2 * u])
                hh = act(xz[:, 2 * u:] + (r * h) @ U[:, 2 * u:])
            h = z * h + (1 - z) * hh
        seq.append(h)
    return np.stack(seq, 1) if return_sequences else h


def _rnn_weights(cls, f, u, use_bias=True, reset_after=False):
    g = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}[cls]
    W, U = RNG.normal(size=(f, g * u)) * 0.5, RNG.normal(size=(u, g * u)) * 0.5
    b = (RNG.normal(size=(2, g * u)) if reset_after else RNG.normal(size=g * u)) * 0.5 if use_bias else None
    return W, U, b


@pytest.mark.parametrize("cls,opts", [
    ("SimpleRNN", {}), ("SimpleRNN", {"go_backwards": True, "return_sequences": True}),
    ("LSTM", {}), ("LSTM", {"use_bias": False, "return_sequences": True}),
    ("GRU", {"reset_after": False}), ("GRU", {"reset_after": True, "go_backwards": True}),
    ("GRU", {"reset_after": True, "use_bias": False}), ("GRU", {}),
])
def test_recurrent_layers_against_their_cells_written_out(tmp_path, cls, opts):
    W, U, b = _rnn_weights(cls, 2, 3, opts.get("use_bias", True), opts.get("reset_after", False))
    w = {"kernel": W, "recurrent_kernel": U, **({"bias": b} if b is not None else {})}
    x = RNG.normal(size=(4, 5, 2))
    _, _, y, _ = run1(tmp_path, (5, 2), cls, {"units": 3, **opts}, w, x=x.reshape(4, -1))
    ref = rnn_ref(cls, x, W, U, b, opts.get("reset_after", False), opts.get("go_backwards", False),
                  opts.get("return_sequences", False))
    np.testing.assert_allclose(y, ref.reshape(4, -1), rtol=1e-12, atol=1e-13)


def test_recurrent_activations_from_the_config(tmp_path):
    W, U, b = _rnn_weights("LSTM", 2, 3)
    x = RNG.normal(size=(4, 5, 2))
    cfg = {"units": 3, "activation": "softsign", "recurrent_activation": "hard_sigmoid"}
    _, _, y, _ = run1(tmp_path, (5, 2), "LSTM", cfg, {"kernel": W, "recurrent_kernel": U, "bias": b},
                      x=x.reshape(4, -1))
    ref = rnn_ref("LSTM", x, W, U, b, act=lambda a: a / (1 + np.abs(a)), rec=lambda a: np.clip(0.2 * a + 0.5, 0, 1))
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-13)


def test_cudnn_layers_sum_or_split_their_biases(tmp_path):
    x = RNG.normal(size=(4, 5, 2))
    W, U, _ = _rnn_weights("LSTM", 2, 3)
    b8 = RNG.normal(size=24) * 0.5
    _, _, y, _ = run1(tmp_path, (5, 2), "CuDNNLSTM", {"units": 3}, {"kernel": W, "recurrent_kernel": U, "bias": b8},
                      x=x.reshape(4, -1), version="2.2.4")
    np.testing.assert_allclose(y, rnn_ref("LSTM", x, W, U, b8[:12] + b8[12:]), rtol=1e-12, atol=1e-13)
    W, U, _ = _rnn_weights("GRU", 2, 3)
    b6 = RNG.normal(size=18) * 0.5
    _, _, y, _ = run1(tmp_path, (5, 2), "CuDNNGRU", {"units": 3, "return_sequences": True},
                      {"kernel": W, "recurrent_kernel": U, "bias": b6}, x=x.reshape(4, -1), version="2.2.4")
    ref = rnn_ref("GRU", x, W, U, b6.reshape(2, 9), reset_after=True, return_sequences=True)
    np.testing.assert_allclose(y, ref.reshape(4, -1), rtol=1e-12, atol=1e-13)


def test_recurrent_refusals(tmp_path):
    W, U, b = _rnn_weights("LSTM", 2, 3)
    w = {"kernel": W, "recurrent_kernel": U, "bias": b}
    for key, reason in (("stateful", "refused: stateful=True carries state from one batch to the next, so a row's "
                                     "outputs would depend on the rows before it"),
                        ("return_state", "refused: return_state=True (the states as extra outputs) is not supported"),
                        ("time_major", "refused: time_major=True is not supported")):
        assert refused(tmp_path, (5, 2), "LSTM", {"units": 3, key: True}, w) == reason
    assert refused(tmp_path, (5, 2, 1), "LSTM", {"units": 3}, w) == \
        "expects (time steps, features) per row, got shape (5, 2, 1)"
    assert refused(tmp_path, (5, 2), "LSTM", {"units": 3}, {"kernel": W, "recurrent_kernel": U}) == \
        "2 weights stored, expected 3 (kernel, recurrent_kernel, bias)"
    assert refused(tmp_path, (5, 2), "LSTM", {"units": 3}, {**w, "bias": b[:6]}) == \
        "weight 'bias' expected shape (12,), got (6,)"
    assert refused(tmp_path, (5, 2), "LSTM", {"units": 3}, {**w, "kernel": W[:, :6]}) == \
        "weight 'kernel' expected shape (2, 12), got (2, 6)"
    assert refused(tmp_path, (5, 2), "LSTM", {"units": 3, "activation": "softmax"}, w) == \
        "activation 'softmax' is not elementwise; a recurrent cell needs one"
    assert refused(tmp_path, (5, 2), "LSTM", {"units": 3, "recurrent_activation": "softmax"}, w) == \
        "activation 'softmax' is not elementwise; a recurrent cell needs one"
    assert refused(tmp_path, (5, 2), "Masking", {"mask_value": 0.0}) == (
        "refused: masked time steps are not supported (jacprop reads every step of every row); remove the Masking "
        "layer or give rows without masked steps to a model without it")


def _wrapped(cls, cfg):
    return {"class_name": cls, "config": {"name": f"inner_{cls.lower()}", **cfg}}


@pytest.mark.parametrize("mode", ["concat", "sum", "mul", "ave"])
def test_bidirectional_merge_modes_and_weight_halves(tmp_path, mode):
    Wf, Uf, bf = _rnn_weights("GRU", 2, 3)
    Wb, Ub, bb = _rnn_weights("GRU", 2, 3)
    x = RNG.normal(size=(4, 5, 2))
    cfg = {"layer": _wrapped("GRU", {"units": 3, "reset_after": False, "return_sequences": True}), "merge_mode": mode}
    w = {"forward/kernel": Wf, "forward/recurrent_kernel": Uf, "forward/bias": bf,
         "backward/kernel": Wb, "backward/recurrent_kernel": Ub, "backward/bias": bb}
    model, _, y, _ = run1(tmp_path, (5, 2), "Bidirectional", cfg, w, x=x.reshape(4, -1))
    f = rnn_ref("GRU", x, Wf, Uf, bf, return_sequences=True)
    b = rnn_ref("GRU", x, Wb, Ub, bb, go_backwards=True, return_sequences=True)[:, ::-1]
    ref = {"concat": np.concatenate([f, b], -1), "sum": f + b, "mul": f * b, "ave": (f + b) / 2}[mode]
    np.testing.assert_allclose(y, ref.reshape(4, -1), rtol=1e-12, atol=1e-13)
    assert layer_nodes(model) == ["l0/1", "l0/2", "l0"]


def test_bidirectional_with_its_own_backward_layer_and_last_states(tmp_path):
    W1, U1, b1 = _rnn_weights("SimpleRNN", 2, 3)
    W2, U2, b2 = _rnn_weights("SimpleRNN", 2, 3)
    x = RNG.normal(size=(4, 5, 2))
    cfg = {"layer": _wrapped("SimpleRNN", {"units": 3}),
           "backward_layer": _wrapped("SimpleRNN", {"units": 3, "go_backwards": True, "activation": "relu"})}
    w = {"f/kernel": W1, "f/recurrent_kernel": U1, "f/bias": b1, "b/kernel": W2, "b/recurrent_kernel": U2,
         "b/bias": b2}
    _, _, y, _ = run1(tmp_path, (5, 2), "Bidirectional", cfg, w, x=x.reshape(4, -1))
    ref = np.concatenate([rnn_ref("SimpleRNN", x, W1, U1, b1),
                          rnn_ref("SimpleRNN", x, W2, U2, b2, go_backwards=True, act=lambda a: np.maximum(a, 0))], -1)
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-13)


def test_bidirectional_and_time_distributed_refusals(tmp_path):
    W, U, b = _rnn_weights("SimpleRNN", 2, 3)
    w = {"f/kernel": W, "f/recurrent_kernel": U, "f/bias": b, "b/kernel": W, "b/recurrent_kernel": U, "b/bias": b}
    assert refused(tmp_path, (5, 2), "Bidirectional", {"layer": _wrapped("SimpleRNN", {"units": 3}),
                                                       "merge_mode": None}, w) == \
        "merge_mode None is not supported (concat, sum, mul, ave; None gives two outputs)"
    assert refused(tmp_path, (5, 2), "Bidirectional", {"layer": _wrapped("Dense", {"units": 3})}, w) == \
        "Bidirectional around Dense is not supported (SimpleRNN, LSTM, GRU)"
    assert refused(tmp_path, (5, 2), "Bidirectional", {"layer": {"class_name": "SimpleRNN", "config": "?"}}, w) == \
        "malformed wrapper config (no 'layer')"
    assert refused(tmp_path, (5, 2), "TimeDistributed", {"layer": {"class_name": "Dense", "config": None}}) == \
        "malformed wrapper config (no 'layer')"


def test_time_distributed_dense_and_a_wrapped_chain(tmp_path):
    K, b = RNG.normal(size=(2, 3)), RNG.normal(size=3)
    x = RNG.normal(size=(4, 5, 2))
    model, _, y, _ = run1(tmp_path, (5, 2), "TimeDistributed",
                          {"layer": _wrapped("Dense", {"units": 3, "activation": "tanh"})},
                          {"kernel": K, "bias": b}, x=x.reshape(4, -1))
    np.testing.assert_allclose(y, np.tanh(x @ K + b).reshape(4, -1), rtol=1e-13)
    assert layer_nodes(model) == ["l0"] and model.nodes[2].kind == "TimeDistributed(Dense)"
    Kc, bc = RNG.normal(size=(2, 3, 2)), RNG.normal(size=2)
    x = RNG.normal(size=(4, 5, 4, 3))
    _, _, y, _ = run1(tmp_path, (5, 4, 3), "TimeDistributed", {"layer": _wrapped("Conv1D", {"filters": 2,
                                                                                       "kernel_size": 2})},
                      {"kernel": Kc, "bias": bc}, x=x.reshape(4, -1))
    ref = np.stack([conv_ref(x[:, t], Kc, bc, (1,), (1,), (0,), (3,)) for t in range(5)], 1)
    np.testing.assert_allclose(y, ref.reshape(4, -1), rtol=1e-12, atol=1e-13)
    assert refused(tmp_path, (5, 2), "TimeDistributed", {"layer": _wrapped("Sequential", {"layers": []})}) == \
        "TimeDistributed around Sequential is not supported"
    assert refused(tmp_path, (5,), "TimeDistributed", {"layer": _wrapped("Flatten", {})}) == \
        "expects (time steps, ...) per row, got shape (5,)"


# ---------------------------------------------------------------------------
# NPZ weight lists and jacprop's schema, against numpy written in the test

from jacprop.loaders import npz  # noqa: E402


def npz_error(path, **options) -> str:
    with pytest.raises(ModelError) as e:
        npz.load(path, **options)
    msg = str(e.value)
    assert msg.startswith(f"{path}: "), msg
    return msg[len(f"{path}: "):]


@pytest.mark.parametrize("names", [("W0", "b0", "W1", "b1"), ("weight_1", "bias_1", "weight_2", "bias_2"),
                                   ("kernel0", "B0", "w1", "b1"), ("W_0", "b_0", "weights1", "bias1")])
def test_weight_list_names_and_an_out_by_in_matrix_told_by_its_bias(tmp_path, names):
    W0, b0, W1, b1 = RNG.normal(size=(4, 3)), RNG.normal(size=4), RNG.normal(size=(4, 2)), RNG.normal(size=2)
    np.savez(tmp_path / "w.npz", **dict(zip(names, (W0, b0, W1, b1))), activations=np.array(["tanh", "elu"]))
    model = npz.load(tmp_path / "w.npz")
    X = RNG.normal(size=(5, 3))
    h = np.tanh(X @ W0.T + b0)  # W0 is (out, in): its bias has 4 entries, the chain starts from 3 inputs
    a = h @ W1 + b1
    np.testing.assert_allclose(model.forward(X), np.where(a > 0, a, np.expm1(a)), rtol=1e-13)
    assert model.output_names == ["y[0]", "y[1]"] and [n.name for n in model.nodes if n.kind == "Dense"] == \
        ["hidden_1", "y"]
    assert model.source["format"] == "npz-weights" and model.source["path"] == str(tmp_path / "w.npz")


def test_weight_list_elu_and_leaky_relu_take_their_usual_parameters(tmp_path):
    """elu alone is alpha 1 (Keras, TensorFlow, PyTorch agree; before the fix both it and leaky_relu got 0, i.e. relu,
    silently); NAME:VALUE gives the parameter; leaky_relu alone is refused (PyTorch 0.01, tf.nn 0.2, Keras 0.3)."""
    W0 = np.eye(3)
    X = np.array([[-2.0, -0.5, 1.5]])
    cases = (("elu", np.where(X > 0, X, np.expm1(X))), ("elu:0.5", np.where(X > 0, X, 0.5 * np.expm1(X))),
             ("leaky_relu:0.01", np.where(X > 0, X, 0.01 * X)), ("leaky_relu:0.3", np.where(X > 0, X, 0.3 * X)))
    for act, ref in cases:
        np.savez(tmp_path / "a.npz", W0=W0, activations=np.array([act]))
        np.testing.assert_allclose(npz.load(tmp_path / "a.npz").forward(X), ref, rtol=1e-15, err_msg=act)
        np.savez(tmp_path / "b.npz", W0=W0, W1=W0)
        np.testing.assert_allclose(npz.load(tmp_path / "b.npz", activation=act).forward(X), ref, rtol=1e-15)
    for act, why in (("leaky_relu", "'leaky_relu' needs its slope, which the frameworks choose differently"),
                     ("tanh:2", "only elu and leaky_relu take a parameter"), ("elu:x", "'x' is not a number"),
                     ("leaky_relu:nan", "the parameter must be finite")):
        np.savez(tmp_path / "a.npz", W0=W0, activations=np.array([act]))
        with pytest.raises(ModelError, match=re.escape(why)):
            npz.load(tmp_path / "a.npz")


def test_weight_list_activation_options_and_integer_weights(tmp_path):
    W0, W1 = np.array([[1, -2], [3, 4]]), np.array([[2], [-1]])
    np.savez(tmp_path / "w.npz", W0=W0, W1=W1)
    X = RNG.normal(size=(5, 2))
    h = np.maximum(X @ W0, 0)
    np.testing.assert_allclose(npz.load(tmp_path / "w.npz", activation="relu").forward(X), h @ W1, rtol=1e-14)
    np.testing.assert_allclose(npz.load(tmp_path / "w.npz", activation="relu", output_activation="tanh").forward(X),
                               np.tanh(h @ W1), rtol=1e-14)
    np.savez(tmp_path / "one.npz", W0=W0)  # one layer: no hidden activation to ask for
    np.testing.assert_allclose(npz.load(tmp_path / "one.npz").forward(X), X @ W0, rtol=1e-15)


def test_weight_list_refusals(tmp_path):
    def save(**arrays):
        path = tmp_path / f"e{len(list(tmp_path.iterdir()))}.npz"
        np.savez(path, **arrays)
        return path

    ok = {"W0": np.ones((3, 4)), "b0": np.ones(4)}
    assert npz_error(save(**ok, W2=np.ones((4, 2)), activations=np.array(["relu", "linear"]))) == \
        "weight indices [0, 2] have gaps"
    assert npz_error(save(foo=np.ones(3), bar=np.ones(2))) == (
        "no weights found: expected the jacprop schema, W0/b0/W1/b1... or PyTorch '<name>.weight' arrays; "
        "found ['bar', 'foo']")
    assert npz_error(save(**ok, extra=np.ones(2))) == (
        "unexpected array(s) ['extra']: a weight list holds only weights, biases and 'activations' (other layers "
        "need jacprop's schema: see `jacprop convert`)")
    assert npz_error(save(**ok, activations=np.array(["relu", "linear"]))) == \
        "'activations' names 2 activations for 1 layers"
    assert npz_error(save(W0=np.ones((3, 4, 1)))) == "W0: expected a 2-D numeric weight matrix, got float64 (3, 4, 1)"
    assert npz_error(save(W0=np.array([["a", "b"]]))) == "W0: expected a 2-D numeric weight matrix, got <U1 (1, 2)"
    assert npz_error(save(W0=np.ones((3, 4)), b0=np.ones(5))) == \
        "W0 of shape (3, 4) does not follow the previous layer (None outputs)"
    assert npz_error(save(W0=np.ones((3, 4)), W1=np.ones((4, 2)), activations=np.array(["bogus", "linear"]))) \
        .startswith("layer 'hidden_1': ")
    assert npz_error(save(W0=np.ones((3, 4)), W1=np.ones((4, 2)), activations=np.array(["relu_max", "linear"]))) \
        == "layer 'hidden_1': activation 'relu_max' cannot be given in a weight list (its cap would be 0); " \
        "relu6 is clip(a, 0, 6)"
    torch = {"net.0.weight": np.ones((4, 3)), "net.0.bias": np.ones(5)}
    assert npz_error(save(**torch)) == "net.0: bias expected shape (4,), got (5,)"
    torch = {"a.weight": np.ones((4, 3)), "b.weight": np.ones((2, 5))}
    assert npz_error(save(**torch), activation="relu") == \
        "b: expects 5 inputs but the previous layer has 4 outputs"
    assert npz_error(save(**{"a.weight": np.ones((4, 3)), "a.bias": np.ones(4), "c": np.ones(1)})) == (
        "unexpected array(s) ['c']: a weight list holds only weights, biases and 'activations' (other layers need "
        "jacprop's schema: see `jacprop convert`)")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 not a zip archive at all")
    assert npz_error(bad).startswith("unreadable NPZ file (")


def test_pytorch_names_and_the_output_layer(tmp_path):
    w = {"enc.0.weight": RNG.normal(size=(4, 3)), "enc.0.bias": RNG.normal(size=4),
         "head.weight": RNG.normal(size=(2, 4))}
    np.savez(tmp_path / "t.npz", **w, activations=np.array(["sigmoid", "linear"]))
    model = npz.load(tmp_path / "t.npz")
    X = RNG.normal(size=(3, 3))
    ref = (1 / (1 + np.exp(-(X @ w["enc.0.weight"].T + w["enc.0.bias"])))) @ w["head.weight"].T
    np.testing.assert_allclose(model.forward(X), ref, rtol=1e-13)
    assert [n.name for n in model.nodes if n.kind == "Dense"] == ["hidden_1", "y"]


def test_names_arrays_of_a_weight_list(tmp_path):
    W0 = RNG.normal(size=(2, 3))
    np.savez(tmp_path / "n.npz", W0=W0, input_names=np.array(["p", "q"]), output_names=np.array(["u", "v", "w"]))
    model = npz.load(tmp_path / "n.npz")
    assert model.input_names == ["p", "q"] and model.output_names == ["u", "v", "w"]
    assert model.source["input_names_from"] == "the NPZ file"
    np.savez(tmp_path / "o.npz", W0=W0, output_names=np.array(["u", "v", "w"]))
    assert npz.load(tmp_path / "o.npz").source["input_names_from"] == "numbered by jacprop"
    for attr, value, shown in (("input_names", ["p"], "<U1 (1,)"), ("input_names", ["p", "p"], "<U1 (2,)"),
                               ("output_names", [1, 2, 3], "int64 (3,)")):
        np.savez(tmp_path / "b.npz", W0=W0, **{attr: np.array(value)})
        size = 2 if attr == "input_names" else 3
        assert npz_error(tmp_path / "b.npz") == f"{attr} must be {size} distinct strings, got {shown}"


def _schema_file(path, spec, **arrays):
    np.savez(path, __jacprop__=np.array(json.dumps(spec)), **arrays)
    return path


def test_schema_refusals_and_names(tmp_path):
    dense = {"name": "d", "kind": "Dense", "op": "Dense", "inputs": [0], "config": {"activation": {"name": "tanh"}}}
    K, b = RNG.normal(size=(2, 3)), RNG.normal(size=3)
    base = {"format": "jacprop", "version": 1, "D": 2, "nodes": [dense]}
    model = npz.load(_schema_file(tmp_path / "ok.npz", base, **{"1/kernel": K, "1/bias": b}))
    X = RNG.normal(size=(4, 2))
    np.testing.assert_allclose(model.forward(X), np.tanh(X @ K + b), rtol=1e-14)
    assert model.source["input_names_from"] == "numbered by jacprop" and model.source["format"] == "jacprop-npz"
    named = npz.load(_schema_file(tmp_path / "named.npz", {**base, "input_names": ["a", "b"],
                                                           "output_names": ["u", "v", "w"]},
                                  **{"1/kernel": K, "1/bias": b}))
    assert named.input_names == ["a", "b"] and named.output_names == ["u", "v", "w"]
    assert named.source["input_names_from"] == "the NPZ file"
    named = npz.load(_schema_file(tmp_path / "from.npz", {**base, "input_names": ["a", "b"],
                                                          "input_names_from": "given to jacprop convert"},
                                  **{"1/kernel": K, "1/bias": b}))
    assert named.source["input_names_from"] == "given to jacprop convert"
    w = {"1/kernel": K, "1/bias": b}
    assert npz_error(_schema_file(tmp_path / "v.npz", {**base, "version": 2}, **w)) == \
        "unsupported schema 'jacprop' version 2"
    assert npz_error(_schema_file(tmp_path / "f.npz", {**base, "format": "other"}, **w)) == \
        "unsupported schema 'other' version 1"
    assert npz_error(_schema_file(tmp_path / "i.npz", {**base, "nodes": [{**dense, "inputs": [1]}]}, **w)) == \
        "node 1 ('d'): inputs [1] must name earlier nodes"
    assert npz_error(_schema_file(tmp_path / "n.npz", {**base, "input_names": ["a"]}, **w)) == \
        "input_names has 1 entries for a model of D=2, K=3"
    assert npz_error(_schema_file(tmp_path / "o.npz", {**base, "output_names": ["a"]}, **w)) == \
        "output_names has 1 entries for a model of D=2, K=3"
    assert npz_error(_schema_file(tmp_path / "m.npz", {"format": "jacprop", "version": 1, "nodes": []}, **w)) \
        .startswith("malformed jacprop schema (KeyError: ")


def test_shape_errors_of_the_graph_name_the_file_and_the_layer(tmp_path):
    path = write_k2_functional(tmp_path / "c.h5", [("a", (2, 3)), ("b", (3, 3))],
                               [("Concatenate", {"name": "c", "axis": -1}, {}, ["a", "b"])], ["c"])
    msg = load_error(path)
    assert msg.startswith(f"{path}: layer 'c' (Concatenate): ") and "\n" not in msg, msg
    path = write_k2_functional(tmp_path / "m.h5", [("a", (3,)), ("b", (4,))], [("Add", {"name": "m"}, {}, ["a", "b"])],
                               ["m"])
    msg = load_error(path)
    assert msg.startswith(f"{path}: layer 'm' (Add): ") and "\n" not in msg, msg


def test_time_distributed_errors_name_the_wrapped_layer(tmp_path):
    cfg = {"layer": _wrapped("Dense", {"units": 3})}
    assert load_error(write_k2(tmp_path / "td.h5", (5, 2), [("TimeDistributed", cfg, {"kernel": np.ones((3, 3)),
                                                                                        "bias": np.ones(3)})])) \
        .endswith(": layer 'inner_dense' (Dense): weight 'kernel' expected shape (2, 3), got (3, 3)")
    assert refused(tmp_path, (5, 2, 3), "TimeDistributed", {"layer": _wrapped("PReLU", {})},
                   {"alpha": np.ones((2, 3))}) == \
        "TimeDistributed around PReLU: only layers that are a chain of ops are supported"


def test_npz_messages_names_and_kinds(tmp_path):
    import zipfile

    bad = tmp_path / "bad.npz"
    with zipfile.ZipFile(bad, "w") as z:  # a .npy member whose header does not parse: not a pickle
        z.writestr("a.npy", b"\x93NUMPY\x01\x00\x10\x00{garbage!!!!!!}\n")
    assert npz_error(bad) == "unreadable NPZ file (Cannot parse header: '{garbage!!!!!!}\\n')"
    np.savez(tmp_path / "many.npz", **{f"a{i}": np.ones(1) for i in range(10)})
    assert npz_error(tmp_path / "many.npz") == (
        "no weights found: expected the jacprop schema, W0/b0/W1/b1... or PyTorch '<name>.weight' arrays; found "
        "['a0', 'a1', 'a2', 'a3', 'a4', 'a5', 'a6', 'a7']")
    np.savez(tmp_path / "extra.npz", W0=np.ones((2, 2)), **{f"z{i}": np.ones(1) for i in range(7)})
    assert npz_error(tmp_path / "extra.npz").startswith("unexpected array(s) ['z0', 'z1', 'z2', 'z3', 'z4']: ")
    np.savez(tmp_path / "two.npz", W0=np.ones((2, 2)), W1=np.ones((2, 2)))
    assert npz_error(tmp_path / "two.npz") == (
        "the file does not say which activations the hidden layers use; add an 'activations' array to it or give "
        "--activation (e.g. --activation relu)")
    model = npz.load(tmp_path / "two.npz", activation="tanh")
    assert model.input_names == ["x0", "x1"] and [n.name for n in model.nodes][:1] == ["x"]
    # a PyTorch prefix that itself ends in ".weight" loses it in the layer's name
    w = {"enc.weight.weight": RNG.normal(size=(3, 2)), "enc.weight.bias": RNG.normal(size=3),
         "head.weight": RNG.normal(size=(1, 3))}
    np.savez(tmp_path / "t.npz", **w, activations=np.array(["tanh", "linear"]))
    assert [n.name for n in npz.load(tmp_path / "t.npz").nodes if n.kind == "Dense"] == ["enc", "y"]
    # a schema node without "kind" is of its op's kind
    spec = {"format": "jacprop", "version": 1, "D": 2,
            "nodes": [{"name": "d", "op": "Dense", "inputs": [0], "config": {"activation": {"name": "relu"}}}]}
    model = npz.load(_schema_file(tmp_path / "k.npz", spec, **{"1/kernel": np.ones((2, 2)), "1/bias": np.ones(2)}))
    assert [n.kind for n in model.nodes if n.name == "d"] == ["Dense"]


def test_a_weight_list_in_float32_and_saved_gives_the_same_function(tmp_path):
    W0, b0, W1 = RNG.normal(size=(3, 4)), RNG.normal(size=4), RNG.normal(size=(4, 2))
    np.savez(tmp_path / "w.npz", W0=W0, b0=b0, W1=W1, activations=np.array(["relu", "sigmoid"]))
    model = npz.load(tmp_path / "w.npz")
    X = RNG.normal(size=(6, 3))
    ref = 1 / (1 + np.exp(-(np.maximum(X @ W0 + b0, 0) @ W1)))
    np.testing.assert_allclose(model.forward(X), ref, rtol=1e-14)
    np.testing.assert_allclose(model.forward(X, dtype=np.float32), ref, rtol=1e-5)
    npz.save(model, tmp_path / "s.npz")
    assert npz.load(tmp_path / "s.npz").forward(X).tobytes() == model.forward(X).tobytes()
