"""Measure which constants Keras rounds to float32 in a float64 model, and write float64 references.

Development-only (jacprop never imports TensorFlow). For Keras 3 (``keras``) and Keras 2 (``tf_keras``), with
floatx float64, it builds one tiny model per constant (gelu's 1/sqrt(2), leaky slopes, ReLU max_value /
negative_slope / threshold, ELU alpha, Rescaling scale/offset, selu, hard_sigmoid, the Normalization /
BatchNormalization / LayerNormalization epsilons and Normalization's config mean/variance), on inputs chosen where
the constant matters. It compares the framework's float64 output with numpy formulas that use the exact constant
and the float32-rounded one, and writes into sample_models/keras/constants/:

  NAME.k2.h5, NAME.k3.keras   the float64 model (float64 weights, dtype float64 in the config)
  NAME.k2.ref.npz / .k3.ref.npz   x (N, D), y (N, K) and jacobian (N, K, D) from GradientTape.batch_jacobian,
                              all float64, computed by that Keras version on the model it saved
  measured.json               per case and version: the verdict and the max relative difference to each formula

and prints one JSON line per case and version. gelu with approximate=True cannot be saved in a file Keras can
read back (see README.md), so gelu_approx has refs only, computed from keras.activations.gelu(approximate=True).

Run from the repository root:

    /work/devenv-tf/bin/python sample_models/keras/make_constant_refs.py
"""

from __future__ import annotations

import json
import math
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ["KERAS_BACKEND"] = "tensorflow"

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402  (Keras 3)
import tf_keras  # noqa: E402  (Keras 2)

warnings.filterwarnings("ignore")
tf.get_logger().setLevel("ERROR")

OUT_DIR = Path(__file__).resolve().parent / "constants"
K2, K3 = "k2", "k3"
MODULES = {K2: tf_keras, K3: keras}
FILE_FORMATS = {K2: ("k2.h5",), K3: ("k3.keras",)}
f32 = lambda v: float(np.float32(v))  # noqa: E731


def erfc(v):
    return np.vectorize(math.erfc)(v)


# ------------------------------------------------------------------------------------------------------------
# numpy formulas, in float64, taking the constants as arguments


def gelu_exact(x, c):
    return 0.5 * x * erfc(-x * c["inv_sqrt2"])  # tf.nn.gelu: 0.5 x erfc(-x / sqrt(2))


def gelu_tanh(x, c):
    return 0.5 * x * (1 + np.tanh(c["sqrt_2_over_pi"] * (x + c["coeff"] * x**3)))


def leaky(x, c):
    return np.where(x > 0, x, c["slope"] * x)


def relu_max(x, c):
    return np.clip(x, 0, c["max_value"])


def relu_threshold(x, c):
    return np.where(x > c["threshold"], x, 0.0)


def elu(x, c):
    return np.where(x > 0, x, c["alpha"] * np.expm1(np.minimum(x, 0)))


def selu(x, c):
    return c["scale"] * np.where(x > 0, x, c["alpha"] * np.expm1(np.minimum(x, 0)))


def hard_sigmoid_k2(x, c):
    return np.clip(c["slope"] * x + c["shift"], 0, 1)


def hard_sigmoid_k3(x, c):
    return np.clip(x + 3, 0, 6) / 6


def rescaling(x, c):
    return x * c["scale"] + c["offset"]


NORM_MEAN = np.array([0.25, -1.5, 3.0, 0.0])
NORM_VAR = np.array([1e-16, 4e-15, 2.5e-17, 0.7])  # sqrt(var) < 1e-7 in the first three columns: epsilon wins


def normalization(x, c):
    return (x - c.get("mean", NORM_MEAN)) / np.maximum(np.sqrt(c.get("variance", NORM_VAR)), c.get("epsilon", 1e-7))


BN_GAMMA = np.array([1.2, 0.8, 1.0, 0.5])
BN_BETA = np.array([0.1, -0.2, 0.0, 0.3])
BN_MEAN = np.array([0.5, -0.25, 1.0, 0.0])
BN_VAR = np.array([1e-4, 5e-4, 2e-5, 1e-3])  # comparable to epsilon 1e-3


def batch_norm(x, c):
    return BN_GAMMA * (x - BN_MEAN) / np.sqrt(BN_VAR + c["epsilon"]) + BN_BETA


LN_GAMMA = np.array([1.1, 0.9, 1.3, 0.7])
LN_BETA = np.array([0.05, -0.1, 0.2, 0.0])


def layer_norm(x, c):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return LN_GAMMA * (x - mu) / np.sqrt(var + c["epsilon"]) + LN_BETA


# ------------------------------------------------------------------------------------------------------------
# cases


@dataclass
class Case:
    name: str
    constants: dict  # label -> exact value (as in the framework's source or the layer config), or {version: dict}
    formula: Callable  # formula(x, constants) or {version: formula}
    layers: Callable  # layers(K, version) -> list of layers after the Input (floatx already float64)
    x: np.ndarray
    weights: dict = field(default_factory=dict)  # layer name -> [arrays]
    versions: tuple = (K2, K3)
    files: bool = True  # False: refs only (Keras cannot save it)
    fn: Callable | None = None  # files=False: fn(K, x) -> y
    notes: str = ""


def dense_identity(d):
    return {"fc": [np.eye(d), np.zeros(d)]}


def dense(K, act, d=4):
    return K.layers.Dense(d, activation=act, name="fc")


def leaky_layer(K, version, slope, name="leaky"):
    if slope is None:  # the default slope
        return K.layers.LeakyReLU(name=name)
    if version == K3:
        return K.layers.LeakyReLU(negative_slope=slope, name=name)
    return K.layers.LeakyReLU(alpha=slope, name=name)


def grid(*rows):
    return np.array(rows, dtype=np.float64)


GELU_X = grid([-2.0, -1.5, -1.0, -0.5], [0.25, 0.75, 1.25, 2.0], [-1.75, -0.3, 0.6, 1.6])
NEG_X = grid([-3.0, -1.5, -0.5, 2.0], [-0.1, -2.5, 1.0, -4.0], [-1.0, -7.5, -0.25, 0.5])
# 6.09999995 lies between float32(6.1) = 6.0999999046 and 6.1: clipped only if max_value is rounded
RELU_MAX_X = grid([6.09999995, 7.0, 6.2, 5.0], [6.0999999, -1.0, 6.5, 3.0])
# 0.300000006 lies between 0.3 and float32(0.3) = 0.3000000119: zeroed only if the threshold is rounded
RELU_THR_X = grid([0.300000006, 0.5, 0.2, -1.0], [0.300000011, 0.31, 0.29, 2.0])
HS_X = grid([-3.5, -2.0, -0.5, 0.4], [1.0, 2.2, 2.6, 3.5], [-2.6, -1.3, 0.7, 2.4])
RESCALE_X = grid([0.0, 1.0, 60.0, 255.0], [128.0, 12.75, 200.0, 7.0])
NORM_X = grid([1.0, -1.0, 2.0, 1.0], [0.5, 0.0, 3.5, -0.5])  # outputs ~1e7: x is far from the mean, as it would be
BN_X = grid([0.4, -0.3, 1.01, 0.5], [0.6, -0.2, 0.99, -1.0], [0.55, -0.26, 1.003, 0.2])
LN_X = grid([0.01, -0.02, 0.015, 0.0], [0.03, 0.031, 0.0, -0.01], [1.0, 1.02, 0.99, 1.01])


def gelu_approx_fn(K, x):
    return K.activations.gelu(x, approximate=True)


def normalization_layer(K, version, **kw):
    return K.layers.Normalization(axis=-1, name="norm", **kw)


CASES = [
    Case("gelu_string", {"inv_sqrt2": 0.7071067811865476}, gelu_exact,
         lambda K, v: [dense(K, "gelu")], GELU_X, dense_identity(4),
         notes="Dense(activation='gelu'), identity kernel: exact (erf) gelu of x"),
    Case("gelu_layer", {"inv_sqrt2": 0.7071067811865476}, gelu_exact,
         lambda K, v: [K.layers.Activation("gelu", name="act")], GELU_X, notes="Activation('gelu') layer"),
    Case("gelu_approx", {"coeff": 0.044715, "sqrt_2_over_pi": 0.7978845608028654}, gelu_tanh,
         None, GELU_X, files=False, fn=gelu_approx_fn,
         notes="keras.activations.gelu(x, approximate=True) on a float64 tensor; no model file (not savable)"),
    Case("leaky_string", {"slope": 0.2}, leaky, lambda K, v: [dense(K, "leaky_relu")], NEG_X, dense_identity(4),
         notes="Dense(activation='leaky_relu'): slope 0.2"),
    Case("leaky_layer_02", {"slope": 0.2}, leaky, lambda K, v: [leaky_layer(K, v, 0.2)], NEG_X,
         notes="LeakyReLU(0.2) layer"),
    Case("leaky_layer_default", {"slope": 0.3}, leaky, lambda K, v: [leaky_layer(K, v, None)], NEG_X,
         notes="LeakyReLU() layer, default slope 0.3"),
    Case("leaky_object_01", {"slope": 0.1}, leaky,
         lambda K, v: [dense(K, leaky_layer(K, v, 0.1, "obj_leaky"))], NEG_X, dense_identity(4),
         notes="Dense(activation=LeakyReLU(0.1)) (a serialized layer object)"),
    Case("relu_max_value", {"max_value": 6.1}, relu_max,
         lambda K, v: [K.layers.ReLU(max_value=6.1, name="relu")], RELU_MAX_X, notes="ReLU(max_value=6.1)"),
    Case("relu_negative_slope", {"slope": 0.15}, leaky,
         lambda K, v: [K.layers.ReLU(negative_slope=0.15, name="relu")], NEG_X, notes="ReLU(negative_slope=0.15)"),
    Case("relu_threshold", {"threshold": 0.3}, relu_threshold,
         lambda K, v: [K.layers.ReLU(threshold=0.3, name="relu")], RELU_THR_X, notes="ReLU(threshold=0.3)"),
    Case("elu_alpha", {"alpha": 0.7}, elu, lambda K, v: [K.layers.ELU(alpha=0.7, name="elu")], NEG_X,
         notes="ELU(alpha=0.7) layer"),
    Case("selu", {"alpha": 1.6732632423543772848170429916717, "scale": 1.0507009873554804934193349852946}, selu,
         lambda K, v: [dense(K, "selu")], NEG_X, dense_identity(4), notes="Dense(activation='selu')"),
    Case("hard_sigmoid", {K2: {"slope": 0.2, "shift": 0.5}, K3: {}}, {K2: hard_sigmoid_k2, K3: hard_sigmoid_k3},
         lambda K, v: [dense(K, "hard_sigmoid")], HS_X, dense_identity(4),
         notes="Dense(activation='hard_sigmoid'): Keras 2 clip(0.2x+0.5, 0, 1), Keras 3 relu6(x+3)/6 "
               "(no non-representable constant in Keras 3)"),
    Case("rescaling", {"scale": 1 / 255.0, "offset": -0.1}, rescaling,
         lambda K, v: [K.layers.Rescaling(scale=1 / 255.0, offset=-0.1, name="rescale")], RESCALE_X,
         notes="Rescaling(scale=1/255., offset=-0.1)"),
    Case("normalization_epsilon", {"epsilon": 1e-7}, normalization,
         lambda K, v: [normalization_layer(K, v)], NORM_X,
         {"norm": [NORM_MEAN, NORM_VAR, np.array(1000)]},
         notes="Normalization with weights mean/variance, variance < 1e-14 in three columns so that "
               "max(sqrt(variance), epsilon = backend.epsilon() = 1e-7) is the epsilon"),
    Case("normalization_config", {"mean": 0.1, "variance": 0.3}, normalization,
         lambda K, v: [normalization_layer(K, v, mean=0.1, variance=0.3)], NEG_X,
         notes="Normalization(mean=0.1, variance=0.3) given in the config (no weights)"),
    Case("batchnorm_epsilon", {"epsilon": 1e-3}, batch_norm,
         lambda K, v: [K.layers.BatchNormalization(epsilon=1e-3, name="bn")], BN_X,
         {"bn": [BN_GAMMA, BN_BETA, BN_MEAN, BN_VAR]},
         notes="BatchNormalization(epsilon=1e-3), moving_variance 2e-5..1e-3"),
    Case("layernorm_epsilon", {"epsilon": 1e-3}, layer_norm,
         lambda K, v: [K.layers.LayerNormalization(epsilon=1e-3, name="ln")], LN_X,
         {"ln": [LN_GAMMA, LN_BETA]}, notes="LayerNormalization(epsilon=1e-3), rows with variance ~1e-4"),
]


# ------------------------------------------------------------------------------------------------------------


def set_floatx(version, value):
    if version == K3:
        keras.config.set_floatx(value)
    else:
        tf_keras.backend.set_floatx(value)


def build(case, version, d):
    K = MODULES[version]
    model = K.Sequential([K.Input(shape=(d,), name="x")] + case.layers(K, version), name=case.name)
    for lname, ws in case.weights.items():
        layer = model.get_layer(lname)
        dtypes = [np.dtype(v.dtype.name if hasattr(v.dtype, "name") else v.dtype) for v in layer.weights]
        layer.set_weights([np.asarray(w).astype(dt) for w, dt in zip(ws, dtypes)])
        if hasattr(layer, "finalize_state") and isinstance(layer, K.layers.Normalization):
            layer.finalize_state()
    for w in model.weights:
        if "float64" not in str(w.dtype) and "int" not in str(w.dtype):
            raise RuntimeError(f"{case.name} {version}: weight {w.name} is {w.dtype}, not float64")
    return model


def tape(fn, x):
    xt = tf.constant(x, dtype=tf.float64)
    with tf.GradientTape() as t:
        t.watch(xt)
        y = fn(xt)
    if y.dtype != tf.float64:
        raise RuntimeError(f"output dtype {y.dtype}")
    return y.numpy(), t.batch_jacobian(y, xt).numpy()


def rel_diff(a, b):
    """max |a - b| / max |b|, over the whole array."""
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


EXACT_TOL, APART_TOL = 1e-13, 1e-10


def measure(case, version, y):
    """Relative differences of the framework's y to the formula with the exact constants, with each constant
    rounded to float32 alone and, for several constants, with every combination rounded. The verdict for a
    constant is read off the one combination that matches to EXACT_TOL (while every other is >= APART_TOL
    away); "undetermined" otherwise, or when the constant is representable in float32."""
    formula = case.formula[version] if isinstance(case.formula, dict) else case.formula
    c = dict(case.constants.get(version, {}) if set(case.constants) <= {K2, K3} else case.constants)
    movable = [k for k, v in c.items() if f32(v) != v]
    diffs, combos = {}, {}
    for mask in range(1 << len(movable)):
        rounded = [k for i, k in enumerate(movable) if mask >> i & 1]
        label = "exact" if not rounded else "float32(" + ", ".join(rounded) + ")"
        d = rel_diff(y, formula(case.x, {k: f32(v) if k in rounded else v for k, v in c.items()}))
        diffs[label] = d
        combos[label] = (rounded, d)
    if not movable:
        return diffs, {k: "undetermined (representable in float32)" for k in c}
    matches = [label for label, (_, d) in combos.items() if d <= EXACT_TOL]
    others_apart = all(d >= APART_TOL for label, (_, d) in combos.items() if label not in matches)
    per_constant = {}
    for k in c:
        if k not in movable:
            per_constant[k] = "undetermined (representable in float32)"
        elif len(matches) == 1 and others_apart:
            per_constant[k] = "float32-rounded" if k in combos[matches[0]][0] else "exact"
        else:
            per_constant[k] = "undetermined"
    return diffs, per_constant


def reload(version, path):
    if version == K3:
        return keras.models.load_model(str(path), compile=False)
    return tf_keras.models.load_model(str(path), compile=False)


def main():
    OUT_DIR.mkdir(exist_ok=True)
    for old in OUT_DIR.iterdir():
        if old.suffix in (".h5", ".keras", ".npz") or old.name == "measured.json":
            old.unlink()
    versions_info = {"tensorflow": tf.__version__, "keras": keras.__version__, "tf_keras": tf_keras.__version__}
    results = {"versions": versions_info, "cases": []}
    for case in CASES:
        entry = {"name": case.name, "notes": case.notes, "constants": case.constants, "files": {}, "refs": {},
                 "measured": {}}
        for version in case.versions:
            K = MODULES[version]
            set_floatx(version, "float64")
            try:
                if case.files:
                    model = build(case, version, case.x.shape[1])
                    y, jac = tape(lambda t, m=model: m(t, training=False), case.x)
                    # predict() runs a tf.function: the constants must come out the same there (a float32
                    # constant would show as ~1e-8; summation order may differ by a few ulp)
                    y_predict = np.asarray(model.predict(case.x, verbose=0))
                    predict_diff = rel_diff(y_predict, y)
                    if y_predict.dtype != np.float64 or predict_diff > 1e-12:
                        raise RuntimeError(f"{case.name} {version}: predict differs from the eager tape")
                    for fmt in FILE_FORMATS[version]:
                        path = OUT_DIR / f"{case.name}.{fmt}"
                        model.save(str(path))
                        back = reload(version, path)
                        y_back, jac_back = tape(lambda t, m=back: m(t, training=False), case.x)
                        if not (np.array_equal(y_back, y) and np.array_equal(jac_back, jac)):
                            raise RuntimeError(f"{path.name}: the reloaded model computes differently")
                        entry["files"][fmt] = path.name
                else:
                    y, jac = tape(lambda t, fn=case.fn, K=K: fn(K, t), case.x)
                    predict_diff = None
            finally:
                set_floatx(version, "float32")
            ref = f"{case.name}.{version}.ref.npz"
            np.savez_compressed(OUT_DIR / ref, x=case.x, y=y, jacobian=jac)
            entry["refs"][version] = ref
            diffs, per_constant = measure(case, version, y)
            entry["measured"][version] = {"rel_diff": diffs, "verdict": per_constant,
                                          "predict_vs_tape": predict_diff}
            print(json.dumps({"name": case.name, "version": version, **diffs, "verdict": per_constant,
                              "predict_vs_tape": predict_diff}))
            sys.stdout.flush()
        results["cases"].append(entry)
    (OUT_DIR / "measured.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
