"""Generate small Keras sample models plus TensorFlow reference outputs and Jacobians.

This is a development-only script: jacprop itself never imports TensorFlow or Keras. It writes, into the
folder that holds this script (sample_models/keras/):

  NAME.k2.h5        Keras 2 (tf_keras) legacy HDF5, ``model.save("x.h5")``
  NAME.k3.keras     Keras 3 zip archive, ``model.save("x.keras")``
  NAME.k3.h5        Keras 3 legacy HDF5, ``model.save("x.h5")``
  NAME.csv          header of input column names, then 12 rows of float inputs ('%.17g')
  NAME.ref.npz      reference arrays x, y32, y64, jacobian, input_names, output_names
                    (NAME.k2.ref.npz / NAME.k3.ref.npz instead where Keras 2 and 3 define a layer differently)
  manifest.json     one entry per model: files, csv, refs, covered features, expected outcome, notes

How to run (from the repository root; the venv lives OUTSIDE the repository):

    python3 -m venv /work/devenv-tf && /work/devenv-tf/bin/pip install tensorflow-cpu==2.21.0 \
        tf_keras==2.21.0 keras==3.15.1 h5py numpy
    /work/devenv-tf/bin/python sample_models/keras/make_samples.py

In that venv ``import tf_keras`` is Keras 2 and ``import keras`` is Keras 3 (TensorFlow backend).

Conventions (see DESIGN.md):
  * Inputs: each input tensor is flattened row-major (C order) per row; several inputs are concatenated in
    the model's ``input_layers`` order. Column names: ``x0..x{D-1}`` for a single input, otherwise
    ``<input layer name>_<i>``.
  * Outputs: each output tensor is flattened row-major per row; several outputs are concatenated in the
    model's ``output_layers`` order. Output names: ``<output layer name>_<i>`` (``<name>`` alone when the
    output has a single element).
  * ``y32`` is the float32 model's ``predict``; ``y64`` and ``jacobian`` (N, K, D) come from a float64
    copy of the same architecture holding the same (float32-representable) weights, differentiated with
    ``tf.GradientTape.batch_jacobian``.

Everything is deterministic: weights are drawn from a seeded numpy RNG (moderate scale, so activations are
not saturated) and set explicitly; Normalization layers are adapted on seeded random data; BatchNorm
moving statistics, gamma and beta are set to non-trivial values.
"""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # bit-stable CPU kernels
os.environ["KERAS_BACKEND"] = "tensorflow"

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402  (Keras 3)
import tf_keras  # noqa: E402  (Keras 2)

warnings.filterwarnings("ignore")
tf.get_logger().setLevel("ERROR")

OUT_DIR = Path(__file__).resolve().parent
N_ROWS = 12
SEED = 20240611
K2, K3 = "k2", "k3"
FORMATS = {"k2.h5": K2, "k3.keras": K3, "k3.h5": K3}  # file suffix -> Keras major version
# HDF5 costs ~2-5 KB per layer, so the long activation chains skip the Keras 3 legacy .h5 (its config is the
# .keras config without module/registered_name/build_config; its weight layout is covered by other models).
NO_K3_H5 = "skipped to keep the folder small: same config as the .k3.keras file, k3.h5 layout covered elsewhere"

# The Lambda refusal sample: if anything ever executes the function, it creates the marker file named by
# $JACPROP_MARKER (read at call time). Self-contained (uses __import__) so it also works once unmarshalled.
LAMBDA_FN = lambda x: (  # noqa: E731
    open(__import__("os").environ.get("JACPROP_MARKER", "/tmp/jacprop_lambda_marker"), "w").close(),
    x,
)[1]


# ----------------------------------------------------------------------------------------------------------
# Model definitions. Every builder takes the Keras module (``keras`` or ``tf_keras``) and returns a model;
# the dtype comes from the global floatx, which the caller sets. Layers are named explicitly so the same
# layer can be found by name in every copy.
# ----------------------------------------------------------------------------------------------------------


def is_k3(K) -> bool:
    return K is keras


def leaky(K, slope, name):
    return K.layers.LeakyReLU(negative_slope=slope, name=name) if is_k3(K) else K.layers.LeakyReLU(alpha=slope, name=name)


def seq(K, input_shape, layers, name):
    return K.Sequential([K.Input(shape=input_shape, name="x")] + layers, name=name)


def build_mlp_tanh(K):
    L = K.layers
    return seq(K, (4,), [L.Dense(8, activation="tanh", name="hidden"), L.Dense(2, name="out")], "mlp_tanh")


ACTS_COMMON = ["relu", "sigmoid", "tanh", "exponential", "elu", "selu", "softplus", "softsign", "swish", "gelu",
               "mish", "relu6", "leaky_relu", "linear"]
ACTS_K3_ONLY = ["silu", "hard_silu", "celu", "log_sigmoid", "sparse_plus", "squareplus", "soft_shrink",
                "hard_shrink", "tanh_shrink", "hard_tanh", "sparse_sigmoid", "log_softmax"]


def mlp_of_activations(K, acts, name, width=6, d_in=5, k_out=3):
    L = K.layers
    layers = [L.Dense(width, activation=a, name=f"fc_{a}") for a in acts]
    layers.append(L.Dense(k_out, activation="linear", name="out"))
    return seq(K, (d_in,), layers, name)


def build_mlp_acts(K):
    return mlp_of_activations(K, ACTS_COMMON, "mlp_acts")


def build_mlp_acts_k3(K):
    return mlp_of_activations(K, ACTS_K3_ONLY, "mlp_acts_k3")


def build_hard_sigmoid(K):
    L = K.layers
    # Weights are scaled up (see WEIGHT_SCALE) so that pre-activations reach both clip regions of either
    # definition: Keras 2 clip(0.2x+0.5, 0, 1) saturates at |x|>2.5, Keras 3 relu6(x+3)/6 at |x|>3.
    return seq(K, (4,), [L.Dense(8, activation="hard_sigmoid", name="hs"), L.Dense(2, name="out")], "hard_sigmoid")


def build_act_layers(K):
    L = K.layers
    return seq(K, (5,), [
        L.Dense(6, name="fc1"), L.Activation("tanh", name="act_tanh"),
        L.Dense(6, name="fc2"), leaky(K, 0.2, "leaky"),
        L.Dense(6, name="fc3"), L.ELU(alpha=0.5, name="elu_half"),
        L.Dense(6, name="fc4"), L.ReLU(name="relu_layer"),
        L.Dense(6, name="fc5"), L.Activation("softplus", name="act_softplus"),
        L.Dense(4, name="fc6"), L.Softmax(name="softmax"),
    ], "act_layers")


def build_act_objects(K):
    """Dense layers whose ``activation`` argument is a layer object (serialized as a nested dict)."""
    L = K.layers
    return seq(K, (5,), [
        L.Dense(6, activation=leaky(K, 0.2, "obj_leaky"), name="fc_leaky"),
        L.Dense(6, activation=L.ELU(alpha=0.5, name="obj_elu"), name="fc_elu"),
        L.Dense(6, activation=L.ReLU(max_value=1.0, name="obj_relu_max1"), name="fc_relu_max1"),
        L.Dense(3, activation=L.Softmax(name="obj_softmax"), name="fc_softmax"),
    ], "act_objects")


NORM_ADAPT_MEAN = np.array([1.0, -2.0, 0.5, 0.0, 3.0, -0.7])
NORM_ADAPT_STD = np.array([0.5, 2.0, 1.0, 3.0, 0.8, 1.5])


def build_norms(K):
    L = K.layers
    return seq(K, (6,), [
        L.Normalization(axis=-1, name="norm"),
        L.Dense(8, activation="tanh", name="fc1"),
        L.BatchNormalization(epsilon=0.01, momentum=0.9, name="bn"),
        L.Dense(6, activation="elu", name="fc2"),
        L.LayerNormalization(epsilon=1e-2, name="ln"),
        L.Dropout(0.3, name="drop"),
        L.GaussianNoise(0.5, name="noise"),
        L.Rescaling(scale=0.5, offset=0.1, name="rescale"),
        L.Dense(3, name="out"),
    ], "norms")


def build_functional_multi(K):
    L = K.layers
    in_a = K.Input(shape=(3,), name="in_a")
    in_b = K.Input(shape=(2,), name="in_b")
    a = L.Dense(4, activation="tanh", name="a_fc")(in_a)
    b = L.Dense(4, activation="sigmoid", name="b_fc")(in_b)
    s_add = L.Add(name="add")([a, b])
    s_sub = L.Subtract(name="sub")([a, b])
    s_mul = L.Multiply(name="mul")([s_add, s_sub])
    s_avg = L.Average(name="avg")([a, b, s_mul])
    s_max = L.Maximum(name="max")([a, b])
    s_min = L.Minimum(name="min")([a, s_mul])
    skip = L.Dense(4, name="a_skip")(in_a)
    h = L.Add(name="skip_add")([s_avg, skip])
    cat = L.Concatenate(name="cat")([h, s_max, s_min, in_b])
    out_a = L.Dense(2, name="out_a")(cat)
    out_b = L.Dense(3, activation="tanh", name="out_b")(L.Concatenate(name="cat_b")([in_a, cat]))
    # Inputs and outputs deliberately NOT in alphabetical order.
    return K.Model(inputs=[in_b, in_a], outputs=[out_b, out_a], name="functional_multi")


def build_shared_layer(K):
    L = K.layers
    x = K.Input(shape=(4,), name="x")
    p = L.Dense(5, activation="tanh", name="pre_a")(x)
    q = L.Dense(5, activation="sigmoid", name="pre_b")(x)
    shared = L.Dense(3, activation="tanh", name="shared")
    s0 = shared(p)  # node 0 of "shared"
    s1 = shared(q)  # node 1 of "shared"
    head = L.Dense(2, name="head")(L.Concatenate(name="cat")([s0, s1]))
    # Second output is the shared layer's node 1: output_layers holds ["shared", 1, 0].
    return K.Model(inputs=x, outputs=[head, s1], name="shared_layer")


def build_nested(K):
    L = K.layers
    block = K.Sequential([
        K.Input(shape=(4,), name="block_in"),
        L.Dense(5, activation="tanh", name="inner_fc1"),
        L.Dense(3, activation="relu", name="inner_fc2"),
    ], name="block")
    x = K.Input(shape=(4,), name="x")
    h = L.Dense(4, activation="tanh", name="pre")(x)
    h = block(h)
    out = L.Dense(2, name="head")(h)
    return K.Model(inputs=x, outputs=out, name="nested")


def build_conv1d(K):
    L = K.layers
    return seq(K, (11, 2), [
        L.Conv1D(4, 3, padding="valid", activation="tanh", name="c_valid"),              # (9, 4)
        L.Conv1D(4, 4, strides=2, padding="same", activation="relu", name="c_s2_same"),  # (5, 4), pad 1/2
        L.Conv1D(3, 3, dilation_rate=2, padding="same", name="c_d2_same"),                # (5, 3), pad 2/2
        L.MaxPooling1D(pool_size=2, name="maxpool"),                                     # (2, 3)
        L.AveragePooling1D(pool_size=2, strides=1, padding="same", name="avgpool"),     # (2, 3)
        L.Flatten(name="flat"),
        L.Dense(3, name="out"),
    ], "conv1d")


def build_conv1d_global(K):
    L = K.layers
    x = K.Input(shape=(12,), name="x")
    h = L.Reshape((6, 2), name="reshape")(x)
    h = L.Conv1D(4, 3, padding="same", activation="tanh", name="conv")(h)
    g_avg = L.GlobalAveragePooling1D(name="gap")(h)
    g_max = L.GlobalMaxPooling1D(name="gmp")(h)
    out = L.Dense(2, name="out")(L.Concatenate(name="cat")([g_avg, g_max]))
    return K.Model(inputs=x, outputs=out, name="conv1d_global")


def build_conv2d(K):
    L = K.layers
    return seq(K, (7, 6, 2), [
        L.Conv2D(3, (3, 3), strides=2, padding="same", activation="tanh", name="c_s2_same"),   # (4, 3, 3)
        L.Conv2D(4, (2, 2), dilation_rate=2, padding="valid", activation="relu", name="c_d2"),  # (2, 1, 4)
        L.AveragePooling2D(pool_size=(2, 2), strides=1, padding="same", name="avgpool"),      # (2, 1, 4)
        L.MaxPooling2D(pool_size=(2, 1), name="maxpool"),                                     # (1, 1, 4)
        L.Flatten(name="flat"),
        L.Dense(2, name="out"),
    ], "conv2d")


def build_conv2d_cf(K):
    L = K.layers
    return seq(K, (2, 6, 5), [
        L.Conv2D(3, (3, 2), padding="same", activation="tanh", data_format="channels_first", name="conv"),
        L.MaxPooling2D(pool_size=2, data_format="channels_first", name="maxpool"),       # (3, 3, 2)
        L.AveragePooling2D(pool_size=(2, 1), strides=1, data_format="channels_first", name="avgpool"),
        L.Flatten(name="flat"),  # default data_format (channels_last): flattens the stored (C, H, W) order
        L.Dense(2, name="out"),
    ], "conv2d_cf")


def build_conv2d_cf_twin(K):
    """conv2d_cf computed the channels_last way (TensorFlow's CPU kernels lack NCHW conv/pooling): permute
    (C, H, W) -> (H, W, C), the same layers in channels_last, permute back, then the same Flatten/Dense.
    Conv kernels have the same shape (kh, kw, in, out) in both data formats, so the weights carry over."""
    L = K.layers
    return seq(K, (2, 6, 5), [
        L.Permute((2, 3, 1), name="to_hwc"),
        L.Conv2D(3, (3, 2), padding="same", activation="tanh", name="conv"),
        L.MaxPooling2D(pool_size=2, name="maxpool"),
        L.AveragePooling2D(pool_size=(2, 1), strides=1, name="avgpool"),
        L.Permute((3, 1, 2), name="to_chw"),
        L.Flatten(name="flat"),
        L.Dense(2, name="out"),
    ], "conv2d_cf_twin")


def build_conv2d_global(K):
    L = K.layers
    x = K.Input(shape=(5, 4, 2), name="x")
    h = L.Conv2D(3, (2, 2), padding="valid", activation="tanh", name="conv")(x)  # (4, 3, 3)
    g_avg = L.GlobalAveragePooling2D(name="gap")(h)
    g_max = L.GlobalMaxPooling2D(name="gmp")(h)
    out = L.Dense(2, name="out")(L.Concatenate(name="cat")([g_avg, g_max]))
    return K.Model(inputs=x, outputs=out, name="conv2d_global")


def build_input_shape_variants(K):
    L = K.layers
    # No explicit Input: the first layer carries input_shape=, so Keras synthesizes the InputLayer.
    return K.Sequential([
        L.Dense(5, activation="tanh", input_shape=(4,), name="first"),
        L.Dense(2, name="out"),
    ], name="input_shape_variants")


def build_bias_free(K):
    L = K.layers
    # Flat input of 12 -> (6, 2); use_bias=False on the Conv1D and on two of the three Dense layers, so the
    # files hold a kernel and no bias for them (the middle Dense keeps its bias).
    return seq(K, (12,), [
        L.Reshape((6, 2), name="grid"),
        L.Conv1D(3, 3, activation="tanh", use_bias=False, name="conv_nb"),
        L.Flatten(name="flat"),
        L.Dense(5, activation="sigmoid", use_bias=False, name="fc_nb"),
        L.Dense(4, activation="elu", name="fc_bias"),
        L.Dense(2, use_bias=False, name="out_nb"),
    ], "bias_free")


# ---- issue 19: recurrent layers and the standard layers that were missing -----------------------------


def build_rnn_stack(K):
    L = K.layers
    return seq(K, (6, 3), [
        L.SimpleRNN(5, return_sequences=True, name="rnn"),                                # (6, 5)
        L.LSTM(4, return_sequences=True, go_backwards=True, name="lstm_back"),            # (6, 4), reversed
        L.GRU(3, name="gru"),                                                             # reset_after=True
        L.Dense(2, name="out"),
    ], "rnn_stack")


def build_gru_variants(K):
    L = K.layers
    return seq(K, (5, 3), [
        L.GRU(4, reset_after=False, return_sequences=True, name="gru_classic"),           # one bias (3U,)
        L.GRU(3, reset_after=True, go_backwards=True, use_bias=False, name="gru_back_nb"),
        L.Dense(2, name="out"),
    ], "gru_variants")


def build_rnn_acts(K):
    L = K.layers
    return seq(K, (5, 2), [
        L.LSTM(4, recurrent_activation="hard_sigmoid", return_sequences=True, name="lstm_hs"),
        L.GRU(3, activation="softsign", recurrent_activation="hard_sigmoid", return_sequences=True, name="gru_hs"),
        L.SimpleRNN(3, activation="relu", return_sequences=True, name="rnn_relu"),
        L.LSTM(2, activation="elu", recurrent_activation="tanh", name="lstm_elu"),
        L.Dense(2, name="out"),
    ], "rnn_acts")


def build_bidirectional(K):
    L = K.layers
    x = K.Input(shape=(6, 3), name="x")
    h = L.Bidirectional(L.LSTM(3, return_sequences=True, name="lstm_a"), merge_mode="concat", name="bi_concat")(x)
    h = L.Bidirectional(L.GRU(3, return_sequences=True, name="gru_b"), merge_mode="sum", name="bi_sum")(h)
    h = L.Bidirectional(L.SimpleRNN(3, return_sequences=True, name="rnn_c"), merge_mode="mul", name="bi_mul")(h)
    h = L.Bidirectional(L.LSTM(2, name="lstm_d"), merge_mode="ave", name="bi_ave")(h)
    out = L.Dense(2, name="out")(h)
    return K.Model(inputs=x, outputs=out, name="bidirectional")


def build_time_distributed(K):
    L = K.layers
    x = K.Input(shape=(4, 6, 2), name="x")
    h = L.TimeDistributed(L.Conv1D(3, 3, activation="tanh", name="conv"), name="td_conv")(x)   # (4, 4, 3)
    h = L.TimeDistributed(L.MaxPooling1D(2, name="pool"), name="td_pool")(h)                   # (4, 2, 3)
    h = L.TimeDistributed(L.Flatten(name="flat"), name="td_flat")(h)                           # (4, 6)
    h = L.TimeDistributed(L.Dense(5, activation="tanh", name="fc"), name="td_dense")(h)        # (4, 5)
    h = L.LSTM(3, return_sequences=True, name="lstm")(h)
    h = L.TimeDistributed(L.Dense(2, name="fc2"), name="td_out")(h)                            # (4, 2)
    out = L.Dense(2, name="out")(L.Flatten(name="flat_all")(h))
    return K.Model(inputs=x, outputs=out, name="time_distributed")


def build_pad_1d(K):
    L = K.layers
    return seq(K, (8, 2), [
        L.ZeroPadding1D((1, 2), name="zpad"),                                        # (11, 2)
        L.Conv1D(3, 3, activation="tanh", name="conv"),                              # (9, 3)
        L.Cropping1D((1, 2), name="crop"),                                           # (6, 3)
        L.UpSampling1D(2, name="up"),                                                # (12, 3)
        L.SeparableConv1D(4, 3, depth_multiplier=2, activation="tanh", name="sep"),  # (10, 4)
        L.Conv1DTranspose(2, 3, strides=2, padding="same", name="convt_same"),        # (20, 2)
        L.Conv1DTranspose(2, 2, strides=3, padding="valid", name="convt_valid"),      # (60, 2): gaps
        L.Flatten(name="flat"),
        L.Dense(3, activation="tanh", name="fc"),
        L.RepeatVector(2, name="repeat"),                                            # (2, 3)
        L.Permute((2, 1), name="perm"),                                              # (3, 2)
        L.Flatten(name="flat2"),
        L.Dense(2, name="out"),
    ], "pad_1d")


def build_pad_2d(K):
    L = K.layers
    return seq(K, (5, 4, 2), [
        L.ZeroPadding2D(((1, 2), (0, 1)), name="zpad"),                                   # (8, 5, 2)
        L.Conv2D(3, (3, 2), activation="tanh", name="conv"),                              # (6, 4, 3)
        L.Cropping2D(((1, 0), (0, 1)), name="crop"),                                      # (5, 3, 3)
        L.UpSampling2D((2, 1), name="up"),                                                # (10, 3, 3)
        L.DepthwiseConv2D((3, 2), depth_multiplier=2, activation="tanh", name="dw"),     # (8, 2, 6)
        L.SeparableConv2D(4, (2, 2), padding="same", activation="tanh", name="sep"),      # (8, 2, 4)
        L.Conv2DTranspose(2, (3, 2), strides=(2, 1), padding="same", name="convt"),       # (16, 2, 2)
        L.Conv2DTranspose(2, (2, 3), strides=(1, 2), padding="valid", name="convt_v"),    # (17, 5, 2)
        L.MaxPooling2D((4, 2), name="pool"),                                              # (4, 2, 2)
        L.Flatten(name="flat"),
        L.Dense(2, name="out"),
    ], "pad_2d")


def build_upsample_bilinear(K):
    L = K.layers
    return seq(K, (4, 3, 2), [
        L.UpSampling2D((2, 3), interpolation="bilinear", name="up_bilinear"),             # (8, 9, 2)
        L.Conv2D(2, (3, 3), strides=2, activation="tanh", name="conv"),                   # (3, 4, 2)
        L.Flatten(name="flat"),
        L.Dense(2, name="out"),
    ], "upsample_bilinear")


# ---- refusals --------------------------------------------------------------------------------------------


def build_lambda(K):
    L = K.layers
    return seq(K, (4,), [
        L.Dense(3, activation="tanh", name="fc"),
        L.Lambda(LAMBDA_FN, name="marker_lambda"),
        L.Dense(2, name="out"),
    ], "lambda")


def build_embedding(K):
    L = K.layers
    x = K.Input(shape=(4,), dtype="int32", name="tokens")
    h = L.Embedding(10, 3, name="embed")(x)
    out = L.Dense(2, name="out")(L.Flatten(name="flat")(h))
    return K.Model(inputs=x, outputs=out, name="embedding")


def build_lstm(K):
    L = K.layers
    return seq(K, (5, 2), [L.LSTM(4, name="lstm"), L.Dense(2, name="out")], "lstm")


@keras.saving.register_keras_serializable(package="jacprop_samples")
class ScaledTanhK3(keras.layers.Layer):
    """A custom layer: y = tanh(scale * x)."""

    def __init__(self, scale=1.5, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

    def call(self, x):
        return keras.ops.tanh(self.scale * x)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


class ScaledTanhK2(tf_keras.layers.Layer):
    """The same custom layer for Keras 2 (loadable only with custom_objects={"ScaledTanh": ...})."""

    def __init__(self, scale=1.5, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

    def call(self, x):
        return tf.tanh(self.scale * x)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


ScaledTanhK2.__name__ = "ScaledTanh"


def build_custom(K):
    L = K.layers
    cls = ScaledTanhK3 if is_k3(K) else ScaledTanhK2
    return seq(K, (4,), [L.Dense(3, name="fc"), cls(scale=1.5, name="scaled_tanh"), L.Dense(2, name="out")],
               "custom")


# ----------------------------------------------------------------------------------------------------------
# The catalogue
# ----------------------------------------------------------------------------------------------------------


@dataclass
class Spec:
    name: str
    build: Callable
    covers: list[str]
    versions: tuple[str, ...] = (K2, K3)
    formats: tuple[str, ...] = tuple(FORMATS)
    expect: str = "ok"
    refuse_reason: str | None = None
    notes: str = ""
    per_version_refs: bool = False   # Keras 2 and 3 define some layer differently: one ref per version
    weight_scale: float = 1.0        # multiplies the default kernel scale 1/sqrt(fan_in)
    calibrate: float = 0.0           # > 0: rescale each Dense so its pre-activations on the CSV rows have this std
    twin: Callable | None = None     # builder of an equivalent model TensorFlow can run, used for the refs
    x_scale: float = 1.0             # standard deviation of the CSV inputs
    compile_and_fit: bool = False    # compile + one training step, so the files carry optimizer state
    integer_inputs: int = 0          # > 0: inputs are integers in [0, integer_inputs)
    skipped: dict = field(default_factory=dict)  # format -> reason it is deliberately not written
    tolerance: float | None = None   # relative tolerance of the refs where TensorFlow computes in float32
    seed: int | None = None          # its own random generator (later additions), so --only NAME makes the
                                     # same weights and inputs as a full run, and the earlier models' stay put


SPECS = [
    Spec("mlp_tanh", build_mlp_tanh, ["Sequential", "Dense", "tanh", "linear", "optimizer_state"],
         compile_and_fit=True,
         notes="Bishop's two-layer net. Compiled with Adam and fitted one step before the weights were set, "
               "so the files carry training_config / optimizer weights (a loader must ignore them)."),
    Spec("mlp_acts", build_mlp_acts, ["Sequential", "Dense"] + ACTS_COMMON, calibrate=1.0,
         formats=("k2.h5", "k3.keras"), skipped={"k3.h5": NO_K3_H5},
         notes="One Dense(6) per activation string available in both Keras 2 and 3. Keras 2 writes swish as "
               "'swish', Keras 3 as 'silu'. leaky_relu as an activation string uses slope 0.2 in both."),
    Spec("mlp_acts_k3", build_mlp_acts_k3, ["Sequential", "Dense"] + ACTS_K3_ONLY, versions=(K3,), calibrate=1.5,
         formats=("k3.keras",), skipped={"k2.h5": "tf_keras knows none of these activation strings",
                                        "k3.h5": NO_K3_H5},
         notes="Activation strings only Keras 3 knows (tf_keras raises 'Unknown activation function'). "
               "Not covered: threshold (needs arguments), glu and sparsemax (not elementwise / not smooth)."),
    Spec("hard_sigmoid", build_hard_sigmoid, ["Sequential", "Dense", "hard_sigmoid"], per_version_refs=True,
         weight_scale=3.0,
         notes="hard_sigmoid differs between versions: Keras 2 clip(0.2*x+0.5, 0, 1), Keras 3 relu6(x+3)/6 = "
               "clip(x/6+0.5, 0, 1). Same weights in all files; refs: hard_sigmoid.k2.ref.npz for the .k2.h5 "
               "file, hard_sigmoid.k3.ref.npz for both Keras 3 files. Kernel scale x3 so both clip regions "
               "are reached."),
    Spec("act_layers", build_act_layers,
         ["Sequential", "Dense", "Activation", "LeakyReLU", "ELU", "ReLU", "Softmax", "tanh", "softplus"],
         formats=("k2.h5", "k3.keras"), skipped={"k3.h5": NO_K3_H5},
         notes="Separate activation layers: LeakyReLU slope 0.2 (K2 'alpha', K3 'negative_slope'), "
               "ELU(alpha=0.5), ReLU() default, Softmax over the last axis (K=4)."),
    Spec("act_objects", build_act_objects,
         ["Sequential", "Dense", "activation_object", "LeakyReLU", "ELU", "ReLU_max_value", "Activation",
          "Softmax"],
         notes="Dense layers whose 'activation' config is a serialized layer dict, not a string: "
               "LeakyReLU(0.2), ELU(0.5), ReLU(max_value=1.0), Softmax(). (An Activation('gelu') object works in "
               "Keras 3 but tf_keras cannot deserialize it: 'Could not interpret activation function "
               "identifier', so it was left out.)"),
    Spec("norms", build_norms,
         ["Sequential", "Normalization", "Dense", "BatchNormalization", "LayerNormalization", "Dropout",
          "GaussianNoise", "Rescaling", "tanh", "elu"],
         notes="Normalization adapted on data with per-feature means and std devs "
               f"{NORM_ADAPT_MEAN.tolist()} / {NORM_ADAPT_STD.tolist()}; BatchNormalization epsilon=0.01 with "
               "non-trivial gamma/beta/moving stats; LayerNormalization epsilon=0.01; Dropout and "
               "GaussianNoise are identity at inference; Rescaling(scale=0.5, offset=0.1)."),
    Spec("functional_multi", build_functional_multi,
         ["Functional", "multi_input", "multi_output", "Dense", "Add", "Subtract", "Multiply", "Average",
          "Maximum", "Minimum", "Concatenate", "skip_connection", "tanh", "sigmoid"],
         notes="inputs=[in_b (2), in_a (3)] and outputs=[out_b (3), out_a (2)]: both deliberately not "
               "alphabetical. CSV columns in_b_0, in_b_1, in_a_0..in_a_2; outputs out_b_0..2, out_a_0..1."),
    Spec("shared_layer", build_shared_layer,
         ["Functional", "shared_layer", "multi_output", "node_index", "Dense", "Concatenate"],
         notes="Dense 'shared' is called twice (nodes 0 and 1, same weights). The second model output is "
               "the shared layer's node 1 (output_layers entry ['shared', 1, 0])."),
    Spec("nested", build_nested, ["Functional", "nested_model", "Sequential", "Dense", "tanh", "relu"],
         notes="A Sequential model 'block' (inner_fc1, inner_fc2) used as a layer inside a Functional model."),
    Spec("conv1d", build_conv1d,
         ["Sequential", "Conv1D", "padding_valid", "padding_same", "strides", "dilation", "MaxPooling1D",
          "AveragePooling1D", "Flatten", "Dense"],
         notes="Input (11, 2) flattened row-major into 22 columns (x0 = step 0 channel 0, x1 = step 0 "
               "channel 1, ...). Strided 'same' conv has asymmetric padding (1 left, 2 right). "
               "AveragePooling1D 'same' excludes the padding from the divisor."),
    Spec("conv1d_global", build_conv1d_global,
         ["Functional", "Reshape", "Conv1D", "GlobalAveragePooling1D", "GlobalMaxPooling1D", "Concatenate"],
         notes="Flat input of 12 reshaped to (6, 2)."),
    Spec("conv2d", build_conv2d,
         ["Sequential", "Conv2D", "channels_last", "padding_same", "padding_valid", "strides", "dilation",
          "MaxPooling2D", "AveragePooling2D", "Flatten", "Dense"],
         notes="Input (7, 6, 2) channels_last, flattened row-major (H, W, C) into 84 columns. Rectangular "
               "input so H/W mix-ups show; strided 'same' conv pads H 1/1 and W 0/1 (asymmetric); "
               "AveragePooling2D 'same' excludes the padding from the divisor."),
    Spec("conv2d_cf", build_conv2d_cf,
         ["Sequential", "Conv2D", "channels_first", "MaxPooling2D", "AveragePooling2D", "Flatten"],
         notes="channels_first input (2, 6, 5) flattened row-major as stored (C, H, W). Flatten keeps the "
               "default data_format, so it flattens in (C, H, W) order too. TensorFlow on CPU cannot run "
               "this model (Keras 3: NCHW Conv2D unimplemented; tf_keras: NCHW MaxPool unsupported), so the "
               "refs come from an equivalent channels_last twin (Permute -> same layers -> Permute back) "
               "holding the same weights, and the saved files were checked by comparing weights on reload.",
         twin=build_conv2d_cf_twin),
    Spec("conv2d_global", build_conv2d_global,
         ["Functional", "Conv2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Concatenate"],
         notes="Input (5, 4, 2) channels_last."),
    Spec("input_shape_variants", build_input_shape_variants,
         ["Sequential", "input_shape_kwarg", "synthesized_InputLayer", "Dense"],
         notes="Sequential built with input_shape= on the first Dense (no explicit Input). Keras 2 writes a "
               "synthesized InputLayer 'first_input' and batch_input_shape on the Dense."),
    # ---- refusals: a safe loader must refuse these (exit 2) ----
    Spec("lambda", build_lambda, ["Lambda"], expect="refuse", refuse_reason="lambda",
         notes="Lambda whose function, if ever executed, creates the file named by $JACPROP_MARKER "
               "(default /tmp/jacprop_lambda_marker). A loader must refuse by class name without "
               "unmarshalling or running it. Check: set JACPROP_MARKER to a temp path, run jacprop, assert the "
               "file does not exist."),
    Spec("embedding", build_embedding, ["Embedding", "integer_input"], expect="refuse",
         refuse_reason="embedding", integer_inputs=10,
         notes="int32 input of 4 token ids in [0, 10) -> Embedding(10, 3) -> Flatten -> Dense(2)."),
    Spec("lstm", build_lstm, ["Sequential", "LSTM"], seed=20261209,
         notes="Input (5, 2) -> LSTM(4) -> Dense(2). (Refused as recurrent before issue 19; own seed since then.)"),
    Spec("custom", build_custom, ["custom_layer"], expect="refuse", refuse_reason="custom",
         notes="Custom layer 'ScaledTanh' (y = tanh(1.5 x)). Keras 3: registered as "
               "'jacprop_samples>ScaledTanhK3'; Keras 2: class_name 'ScaledTanh', loadable only with "
               "custom_objects."),
    # ---- added later, each with its own seed (made alone with --only NAME) ----
    Spec("bias_free", build_bias_free,
         ["Sequential", "Reshape", "Conv1D", "Dense", "use_bias_false", "tanh", "sigmoid", "elu"], seed=20261203,
         notes="use_bias=False on Conv1D conv_nb and Dense fc_nb and out_nb (config use_bias: false, a kernel and "
               "no bias in the weights); Dense fc_bias between them keeps its bias."),
    Spec("rnn_stack", build_rnn_stack, ["Sequential", "SimpleRNN", "LSTM", "GRU", "return_sequences", "go_backwards",
                                      "reset_after"], seed=20261210,
         notes="SimpleRNN(5, return_sequences) -> LSTM(4, return_sequences, go_backwards: its sequence comes out "
               "reversed in time) -> GRU(3) (reset_after=True, the default of both versions) -> Dense(2)."),
    Spec("gru_variants", build_gru_variants, ["Sequential", "GRU", "reset_after_false", "use_bias_false",
                                            "go_backwards"], seed=20261211,
         notes="GRU(reset_after=False: one bias of 3U, reset gate applied before the recurrent product) with "
               "return_sequences, then GRU(reset_after=True, go_backwards, use_bias=False)."),
    Spec("rnn_acts", build_rnn_acts, ["Sequential", "LSTM", "GRU", "SimpleRNN", "hard_sigmoid", "softsign", "relu",
                                    "elu"], seed=20261212, per_version_refs=True, weight_scale=2.5,
         notes="recurrent_activation='hard_sigmoid' in an LSTM and a GRU: Keras 2 clip(0.2a+0.5, 0, 1), Keras 3 "
               "relu6(a+3)/6, so one ref per version; SimpleRNN relu; LSTM elu with recurrent_activation tanh. "
               "Kernel scale x2.5 so the clip regions are reached."),
    Spec("bidirectional", build_bidirectional, ["Functional", "Bidirectional", "LSTM", "GRU", "SimpleRNN", "concat",
                                              "sum", "mul", "ave"], seed=20261213,
         notes="Bidirectional with merge_mode concat, sum, mul and ave; the backward layer's sequence is reversed "
               "back in time before the merge; the last one returns only the final states."),
    Spec("time_distributed", build_time_distributed, ["Functional", "TimeDistributed", "Conv1D", "MaxPooling1D",
                                                    "Flatten", "Dense", "LSTM"], seed=20261214,
         notes="Input (4, 6, 2): TimeDistributed Conv1D, MaxPooling1D, Flatten and Dense over 4 time steps, "
               "LSTM(return_sequences), TimeDistributed(Dense), Flatten, Dense."),
    Spec("pad_1d", build_pad_1d, ["Sequential", "ZeroPadding1D", "Cropping1D", "UpSampling1D", "SeparableConv1D",
                                "Conv1DTranspose", "RepeatVector", "Permute"], seed=20261215,
         notes="ZeroPadding1D (1, 2), Cropping1D (1, 2), UpSampling1D 2, SeparableConv1D depth_multiplier 2, "
               "Conv1DTranspose same stride 2 and valid stride 3 (> kernel: gaps), RepeatVector, Permute."),
    Spec("pad_2d", build_pad_2d, ["Sequential", "ZeroPadding2D", "Cropping2D", "UpSampling2D", "DepthwiseConv2D",
                                "SeparableConv2D", "Conv2DTranspose"], seed=20261216,
         notes="Asymmetric ZeroPadding2D and Cropping2D, UpSampling2D nearest (2, 1), DepthwiseConv2D "
               "depth_multiplier 2, SeparableConv2D same, Conv2DTranspose same and valid with unequal strides."),
    Spec("upsample_bilinear", build_upsample_bilinear, ["Sequential", "UpSampling2D", "bilinear"], seed=20261217,
         tolerance=1e-6,
         notes="UpSampling2D((2, 3), interpolation='bilinear'). tf.image.resize returns float32 for bilinear "
               "even from float64 input, so the float64 reference is rounded to float32 after that layer: "
               "compare with tolerance 1e-6 (the manifest's 'tolerance'); the interpolation weights themselves "
               "are exact (tests compare them with torch's interpolate in float64 where torch is installed)."),
]


# ----------------------------------------------------------------------------------------------------------
# Machinery
# ----------------------------------------------------------------------------------------------------------


def kmod(version):
    return keras if version == K3 else tf_keras


def set_floatx(K, dtype):
    if is_k3(K):
        keras.config.set_floatx(dtype)
        keras.config.set_dtype_policy(dtype)  # Keras 3 caches the global policy separately from floatx
    else:
        tf_keras.backend.set_floatx(dtype)


def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)
    keras.utils.set_random_seed(seed)
    tf_keras.utils.set_random_seed(seed)


def build(spec, version, dtype, twin=False):
    K = kmod(version)
    set_floatx(K, dtype)
    try:
        seed_all(SEED)
        return (spec.twin if twin and spec.twin else spec.build)(K)
    finally:
        set_floatx(K, "float32")


def input_info(model):
    """[(input layer name, shape without batch, dtype)] in input_layers order."""
    out = []
    for t in model.inputs:
        layer = t._keras_history[0]
        out.append((layer.name, tuple(int(d) for d in t.shape[1:]), str(t.dtype)))
    return out


def output_info(model):
    return [(t._keras_history[0].name, tuple(int(d) for d in t.shape[1:])) for t in model.outputs]


def column_names(inputs):
    if len(inputs) == 1:
        return [f"x{i}" for i in range(int(np.prod(inputs[0][1])))]
    return [f"{name}_{i}" for name, shape, _ in inputs for i in range(int(np.prod(shape)))]


def output_names(outputs):
    names = []
    for name, shape in outputs:
        size = int(np.prod(shape))
        names += [name] if size == 1 else [f"{name}_{i}" for i in range(size)]
    return names


def split_inputs(x, inputs):
    """(N, D) array/tensor -> list of (N, *shape) pieces, in input_layers order."""
    parts, start = [], 0
    for _, shape, _ in inputs:
        size = int(np.prod(shape))
        piece = x[:, start:start + size]
        parts.append(tf.reshape(piece, (-1,) + shape) if tf.is_tensor(piece) else piece.reshape((-1,) + shape))
        start += size
    return parts


def flat_outputs(y):
    ys = y if isinstance(y, (list, tuple)) else [y]
    if tf.is_tensor(ys[0]):
        return tf.concat([tf.reshape(t, (tf.shape(t)[0], -1)) for t in ys], axis=1)
    return np.concatenate([np.asarray(t).reshape(len(t), -1) for t in ys], axis=1)


def model_in(parts):
    return parts[0] if len(parts) == 1 else list(parts)


def predict(model, x, inputs):
    return flat_outputs(model.predict(model_in(split_inputs(x, inputs)), verbose=0)).astype(np.float64)


def jacobian(model, x, inputs):
    xt = tf.constant(x, dtype=tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = flat_outputs(model(model_in(split_inputs(xt, inputs)), training=False))
    return y.numpy(), tape.batch_jacobian(y, xt).numpy()


def all_layers(model):
    """Layers with weights, recursing into nested models, as {name: layer}."""
    found = {}
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:  # nested model
            found.update(all_layers(layer))
        elif layer.weights:
            found[layer.name] = layer
    return found


def finalize(layer):
    # Normalization caches mean/variance as tensors; refresh them after set_weights.
    if isinstance(layer, (keras.layers.Normalization, tf_keras.layers.Normalization)):
        layer.finalize_state()


def random_weights(spec, model, rng):
    """Deterministic, moderate-scale weights for every layer of the Keras 3 float32 model."""
    weights = {}
    for name, layer in all_layers(model).items():
        if isinstance(layer, keras.layers.Normalization):
            weights[name] = layer.get_weights()  # keep the adapted statistics
            continue
        new = []
        for var in layer.weights:
            vname = var.path.split("/")[-1]
            shape = tuple(var.shape)
            if vname in ("kernel", "embeddings", "recurrent_kernel", "depthwise_kernel", "pointwise_kernel"):
                fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
                w = rng.normal(0.0, spec.weight_scale / np.sqrt(fan_in), size=shape)
            elif vname == "bias":
                w = rng.normal(0.0, 0.2, size=shape)
            elif vname == "gamma":
                w = rng.uniform(0.5, 1.5, size=shape)
            elif vname == "beta":
                w = rng.normal(0.0, 0.3, size=shape)
            elif vname == "moving_mean":
                w = rng.normal(0.0, 0.5, size=shape)
            elif vname == "moving_variance":
                w = rng.uniform(0.3, 2.0, size=shape)
            else:
                raise RuntimeError(f"{spec.name}: no rule for weight {var.path}")
            new.append(w.astype(np.float32))
        weights[name] = new
    return weights


CALIBRATE_BOOST = {"fc_relu6": 3.0}  # so relu6 reaches its cap at 6


def calibrate_dense_chain(model, weights, x, target_std):
    """Deep chains of Dense layers vanish or explode with plain random weights. Rescale each Dense (except
    the last) so its pre-activations over the CSV rows have standard deviation target_std: every activation
    is then exercised over a useful range and the Jacobian stays O(0.01..1)."""
    h = x.astype(np.float32)
    for layer in model.layers[:-1]:
        kernel, bias = weights[layer.name]
        z = h @ kernel + bias
        factor = np.float32(target_std * CALIBRATE_BOOST.get(layer.name, 1.0) / z.std())
        weights[layer.name] = [kernel * factor, bias * factor]
        layer.set_weights(weights[layer.name])
        h = np.asarray(layer(h))
    model.layers[-1].set_weights(weights[model.layers[-1].name])


def set_weights(model, weights):
    layers = all_layers(model)
    assert set(layers) == set(weights), (sorted(layers), sorted(weights))
    for name, layer in layers.items():
        ws = weights[name]
        dtypes = [np.dtype(v.dtype.name if hasattr(v.dtype, "name") else v.dtype) for v in layer.weights]
        layer.set_weights([np.asarray(w).astype(dt if dt.kind == "f" else np.asarray(w).dtype)
                           for w, dt in zip(ws, dtypes)])
        finalize(layer)


def check_weights(model, weights):
    layers = all_layers(model)
    assert set(layers) == set(weights), (sorted(layers), sorted(weights))
    for name, layer in layers.items():
        for a, b in zip(layer.get_weights(), weights[name]):
            if not np.array_equal(np.asarray(a), np.asarray(b)):
                raise RuntimeError(f"reloaded weights of {name} differ")


def compile_and_fit(model, inputs, outputs, K):
    model.compile(optimizer=K.optimizers.Adam(1e-3), loss="mse")
    rng = np.random.default_rng(1)
    x = [rng.normal(size=(8,) + s).astype(np.float32) for _, s, _ in inputs]
    y = [rng.normal(size=(8,) + s).astype(np.float32) for _, s in outputs]
    model.fit(model_in(x), model_in(y), epochs=1, batch_size=8, verbose=0)


def make_inputs(spec, inputs, rng):
    d = sum(int(np.prod(s)) for _, s, _ in inputs)
    if spec.integer_inputs:
        return rng.integers(0, spec.integer_inputs, size=(N_ROWS, d)).astype(np.float64)
    return rng.normal(0.0, spec.x_scale, size=(N_ROWS, d))


def write_csv(path, names, x):
    with open(path, "w", newline="") as f:
        f.write(",".join(names) + "\n")
        for row in x:
            f.write(",".join("%.17g" % v for v in row) + "\n")


def save(model, path):
    if path.exists():
        path.unlink()
    model.save(str(path))


def load(version, path):
    if version == K3:
        return keras.models.load_model(str(path), compile=False)
    return tf_keras.models.load_model(str(path), compile=False)


def rel_err(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def generate(spec, rng, report):
    name = spec.name
    entry = {"name": name, "files": {}, "csv": None, "ref": None, "refs": {}, "covers": spec.covers,
             "expect": spec.expect, "refuse_reason": spec.refuse_reason, "skipped_formats": dict(spec.skipped),
             "notes": spec.notes, **({"tolerance": spec.tolerance} if spec.tolerance else {})}

    # 1. The Keras 3 float32 model is the master copy; adapt Normalization layers, draw weights.
    m3 = build(spec, K3, "float32") if K3 in spec.versions else None
    master = m3 if m3 is not None else build(spec, K2, "float32")
    inputs, outputs = input_info(master), output_info(master)
    for layer in master.layers:
        if isinstance(layer, keras.layers.Normalization):
            data = rng.normal(size=(500,) + inputs[0][1]) * NORM_ADAPT_STD + NORM_ADAPT_MEAN
            layer.adapt(data.astype(np.float32))
    x = make_inputs(spec, inputs, rng)
    weights = random_weights(spec, master, rng)
    if spec.calibrate:
        calibrate_dense_chain(master, weights, x, spec.calibrate)

    models32 = {}
    for version in spec.versions:
        try:
            m = m3 if version == K3 else build(spec, K2, "float32")
            if spec.compile_and_fit:
                compile_and_fit(m, inputs, outputs, kmod(version))
            set_weights(m, weights)
            models32[version] = m
        except Exception as e:  # noqa: BLE001
            for fmt, v in FORMATS.items():
                if v == version and fmt in spec.formats:
                    entry["skipped_formats"][fmt] = f"build failed: {type(e).__name__}: {e}"[:300]

    # 2. Inputs.
    in_names, out_names = column_names(inputs), output_names(outputs)
    write_csv(OUT_DIR / f"{name}.csv", in_names, x)
    entry["csv"] = f"{name}.csv"

    # 3. Model files.
    y32 = {}
    for fmt in spec.formats:
        version = FORMATS[fmt]
        if fmt in entry["skipped_formats"]:  # a build failure recorded above
            continue
        path = OUT_DIR / f"{name}.{fmt}"
        try:
            if version not in models32:
                raise RuntimeError(f"no Keras {version[1]} model")
            m = models32[version]
            save(m, path)
            if spec.expect == "ok" and spec.twin:  # TF cannot run it: compare the weights on reload
                check_weights(load(version, path), weights)
                if version not in y32:
                    twin = build(spec, version, "float32", twin=True)
                    set_weights(twin, weights)
                    y32[version] = predict(twin, x, inputs)
            elif spec.expect == "ok":  # reload (never for refusals: that would run the Lambda) and compare
                y_file = predict(load(version, path), x, inputs)
                y_mem = y32.setdefault(version, predict(m, x, inputs))
                err = rel_err(y_file, y_mem)
                if err > 1e-6:
                    raise RuntimeError(f"reloaded file predicts differently (rel err {err:.2e})")
            entry["files"][fmt] = path.name
        except Exception as e:  # noqa: BLE001
            if path.exists():
                path.unlink()
            entry["skipped_formats"][fmt] = f"{type(e).__name__}: {e}"[:300]

    # 4. References (float64 copies), only for models jacprop should handle.
    line = {"name": name, "files": sorted(entry["files"]), "skipped": entry["skipped_formats"]}
    if spec.expect == "ok" and entry["files"]:
        refs = {}
        for version in sorted(y32):
            m64 = build(spec, version, "float64", twin=True)
            set_weights(m64, weights)
            y64, jac = jacobian(m64, x, inputs)
            set_floatx(kmod(version), "float64")  # else predict() casts the inputs to float32
            try:
                y64_predict = predict(m64, x, inputs)
            finally:
                set_floatx(kmod(version), "float32")
            # predict() may run XLA-compiled kernels (differences of a few ulp); the tape runs eagerly.
            line[f"{version}_y64_tape_vs_predict_rel"] = rel_err(y64, y64_predict)
            if rel_err(y64, y64_predict) > 1e-10:
                raise RuntimeError(f"{name}: float64 tape vs predict rel err {rel_err(y64, y64_predict):.2e}")
            refs[version] = dict(x=x, y32=y32[version], y64=y64, jacobian=jac,
                                 input_names=np.array(in_names, dtype=np.str_),
                                 output_names=np.array(out_names, dtype=np.str_))
            line[f"{version}_y32_vs_y64_rel"] = rel_err(y32[version], y64)
            line[f"{version}_y32_vs_y64_abs"] = float(np.max(np.abs(y32[version] - y64)))
            line[f"{version}_max_abs_y64"] = float(np.max(np.abs(y64)))
            line[f"{version}_max_abs_J"] = float(np.max(np.abs(jac)))
        if K2 in refs and K3 in refs:  # the two Keras versions, same weights: float32 and float64 agreement
            line["k2_vs_k3_y32_rel"] = rel_err(refs[K2]["y32"], refs[K3]["y32"])
            line["k2_vs_k3_y64_abs"] = float(np.max(np.abs(refs[K2]["y64"] - refs[K3]["y64"])))
            line["k2_vs_k3_J_abs"] = float(np.max(np.abs(refs[K2]["jacobian"] - refs[K3]["jacobian"])))
        if spec.per_version_refs:
            for version, arrays in refs.items():
                fname = f"{name}.{version}.ref.npz"
                np.savez_compressed(OUT_DIR / fname, **arrays)
                for fmt in entry["files"]:
                    if FORMATS[fmt] == version:
                        entry["refs"][fmt] = fname
        else:
            if K2 in refs and K3 in refs and line["k2_vs_k3_J_abs"] > 1e-6 * max(1.0, line["k3_max_abs_J"]):
                raise RuntimeError(f"{name}: Keras 2 and Keras 3 disagree; mark it per_version_refs")
            arrays = refs[K3] if K3 in refs else refs[K2]
            fname = f"{name}.ref.npz"
            np.savez_compressed(OUT_DIR / fname, **arrays)
            entry["ref"] = fname
            entry["refs"] = {fmt: fname for fmt in entry["files"]}
        line["K"], line["D"] = len(out_names), len(in_names)
    report.append(line)
    return entry


def main(argv=None):
    """make_samples.py [--only NAME ...]: every model, or only those named (they must have their own
    ``seed``), whose manifest entries then replace the old ones in place."""
    args = sys.argv[1:] if argv is None else argv
    only = args[args.index("--only") + 1:] if "--only" in args else None
    specs = [s for s in SPECS if only is None or s.name in only]
    if only is not None and (len(specs) != len(only) or any(s.seed is None for s in specs)):
        raise SystemExit(f"--only: name models that have their own seed, of {[s.name for s in SPECS if s.seed]}")
    # Building and saving the Lambda sample calls its function (on symbolic tensors), which creates the
    # marker file: point it at a private path for the whole run and delete it afterwards.
    marker = Path(tempfile.gettempdir()) / f"jacprop_gen_marker_{os.getpid()}"
    os.environ["JACPROP_MARKER"] = str(marker)
    for spec in specs:  # remove earlier outputs, so a format that is skipped now leaves no stale file
        for old in OUT_DIR.glob(f"{spec.name}.*"):
            if old.suffix != ".py":
                old.unlink()
    rng = np.random.default_rng(SEED)
    made, report = {}, []
    for spec in specs:
        print(f"== {spec.name}", file=sys.stderr, flush=True)
        try:
            made[spec.name] = generate(spec, np.random.default_rng(spec.seed) if spec.seed is not None else rng, report)
        except Exception:
            traceback.print_exc()
            raise
    if marker.exists():
        marker.unlink()
    old = {} if only is None else {e["name"]: e for e in json.loads((OUT_DIR / "manifest.json").read_text())}
    manifest = [made.get(s.name) or old[s.name] for s in SPECS if s.name in made or s.name in old]
    (OUT_DIR / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    for line in report:  # per-model agreement summary (stdout)
        print(json.dumps(line))


if __name__ == "__main__":
    main()
