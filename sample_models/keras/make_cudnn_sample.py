"""A Keras 2 CuDNNLSTM -> CuDNNGRU -> Dense file and its TensorFlow float64 reference (dev-only).

    /work/devenv-tf/bin/python sample_models/keras/make_cudnn_sample.py

CuDNN layers run only on a GPU, but tf_keras builds and saves them on a CPU.  The reference is
TensorFlow's own float64 LSTM and GRU (``recurrent_activation="sigmoid"``; the GRU with
``reset_after=True``, the convention Keras documents as CuDNN-compatible) given the file's weights:
CuDNNLSTM's bias (8 U,) = input bias + recurrent bias, which add (summed in float64 here),
CuDNNGRU's (6 U,) = a reset_after GRU's two bias rows.  ``batch_jacobian`` of that model is J.
Writes cudnn.k2.h5, cudnn.csv (6 rows, 5 steps x 2 features) and cudnn.ref.npz (x, y, jacobian).
"""

import os
from pathlib import Path

os.environ["TF_USE_LEGACY_KERAS"] = "1"
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as k  # noqa: E402
from tf_keras.src.layers.rnn.cudnn_gru import CuDNNGRU  # noqa: E402
from tf_keras.src.layers.rnn.cudnn_lstm import CuDNNLSTM  # noqa: E402

HERE = Path(__file__).parent
T, F, U1, U2, K = 5, 2, 3, 4, 2

src = k.Sequential([k.layers.InputLayer(input_shape=(T, F)), CuDNNLSTM(U1, return_sequences=True), CuDNNGRU(U2),
                    k.layers.Dense(K)])
rng = np.random.default_rng(0)
src.set_weights([rng.normal(size=w.shape) * 0.5 for w in src.get_weights()])
src.save(HERE / "cudnn.k2.h5")

w = [v.astype(np.float64) for v in k.models.load_model(HERE / "cudnn.k2.h5", compile=False).get_weights()]
k.backend.set_floatx("float64")
ref = k.Sequential([k.layers.InputLayer(input_shape=(T, F)),
                    k.layers.LSTM(U1, return_sequences=True, recurrent_activation="sigmoid"),
                    k.layers.GRU(U2, reset_after=True, recurrent_activation="sigmoid"), k.layers.Dense(K)])
ref.set_weights([w[0], w[1], w[2][: 4 * U1] + w[2][4 * U1 :], w[3], w[4], w[5].reshape(2, 3 * U2), w[6], w[7]])
X = np.random.default_rng(1).normal(size=(6, T * F))
names = [f"x{i}" for i in range(T * F)]
np.savetxt(HERE / "cudnn.csv", X, delimiter=",", header=",".join(names), comments="", fmt="%.17g")
x = tf.constant(X.reshape(-1, T, F))
with tf.GradientTape() as tape:
    tape.watch(x)
    y = ref(x)
J = tape.batch_jacobian(y, x).numpy().reshape(len(X), K, T * F)
np.savez(HERE / "cudnn.ref.npz", x=X, y=y.numpy(), jacobian=J)
print("wrote cudnn.k2.h5, cudnn.csv, cudnn.ref.npz")
