"""Make extra.{k2.h5,k3.keras,k3.h5} and their references extra.{k2,k3}.npz: the Keras layers
and options the shared samples (sample_models/keras/) do not cover.

Development only (needs TensorFlow, tf_keras and keras 3; jacprop never imports them):

    /work/devenv-tf/bin/python tests/data/keras/make_extra.py

Covers Conv1D padding="causal" with dilation, PReLU(shared_axes), LayerNormalization(rms_scaling=True)
(Keras 3) / over two axes (Keras 2), BatchNormalization(center=False), Permute,
Flatten(data_format="channels_first"), RMSNormalization (Keras 3), Normalization with mean/variance
in its config, ReLU(max_value=6) and ReLU(max_value=0.7), Activation("gelu").
References: x (7, 24), y64 and jacobian (7, 2, 24) from a float64 copy with the same weights,
by tf.GradientTape.batch_jacobian.  ReLU's cap is float32(0.7) because Keras 2 writes the
float32-rounded value into the file's config, and a float64 model loaded from it uses that.
"""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ["KERAS_BACKEND"] = "tensorflow"

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

OUT = Path(__file__).resolve().parent
CAP = float(np.float32(0.7))


def set_dtype(K, dtype):
    if K is keras:
        keras.config.set_floatx(dtype)
        keras.config.set_dtype_policy(dtype)
    else:
        tf_keras.backend.set_floatx(dtype)


def build(K, dtype):
    set_dtype(K, dtype)
    L = K.layers
    x = K.Input(shape=(6, 4), name="x")
    h = L.Conv1D(3, 3, padding="causal", dilation_rate=2, activation="tanh", name="causal")(x)  # (6, 3)
    h = L.PReLU(shared_axes=[1], name="prelu")(h)
    if K is keras:
        h = L.LayerNormalization(rms_scaling=True, epsilon=0.01, name="lnrms")(h)
    else:
        h = L.LayerNormalization(axis=[1, 2], name="ln2")(h)
    h = L.BatchNormalization(center=False, name="bn")(h)
    h = L.Permute((2, 1), name="perm")(h)  # (3, 6)
    h = L.Flatten(data_format="channels_first", name="flat_cf")(h)  # moves axis 1 last again: (6, 3) order
    if K is keras:
        h = L.RMSNormalization(name="rmsn")(h)
    h = L.Normalization(mean=0.3, variance=2.0, name="norm_cfg")(h)
    h = L.Dense(5, name="d")(h)
    h = L.ReLU(max_value=6.0, name="relu6")(h)
    h = L.ReLU(max_value=CAP, name="relu_cap")(h)
    h = L.Activation("gelu", name="g")(h)
    out = L.Dense(2, name="out")(h)
    model = K.Model(x, out, name="extra")
    set_dtype(K, "float32")
    return model


def main():
    rng = np.random.default_rng(0)
    for K, tag, exts in ((keras, "k3", ("keras", "h5")), (tf_keras, "k2", ("h5",))):
        m32 = build(K, "float32")
        ws = [w + rng.normal(0, 0.3, size=w.shape).astype(w.dtype) for w in m32.get_weights()]
        m32.set_weights(ws)
        bn = m32.get_layer("bn")
        w = bn.get_weights()
        w[-1] = np.abs(w[-1]) + 0.5  # moving variance > 0
        bn.set_weights(w)
        for ext in exts:
            path = OUT / f"extra.{tag}.{ext}"
            path.unlink(missing_ok=True)
            m32.save(str(path))
        m64 = build(K, "float64")
        m64.set_weights(m32.get_weights())
        x = rng.normal(size=(7, 24))
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = m64(tf.reshape(xt, (-1, 6, 4)), training=False)
        np.savez(OUT / f"extra.{tag}.npz", x=x, y64=y.numpy(), jacobian=tape.batch_jacobian(y, xt).numpy())


if __name__ == "__main__":
    main()
