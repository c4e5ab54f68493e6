"""Files in the shapes old Keras wrote, made by hand from the documented formats (h5py and numpy only):

  rnn_acts.k22.h5   the rnn_acts.k2.h5 model (LSTM/GRU with hard_sigmoid, SimpleRNN, LSTM, Dense) as Keras
                    2.2.4 saved a Sequential model: ``model_config`` is {"class_name": "Sequential",
                    "config": [layer, ...]} (a bare list of layers, no InputLayer: the first layer carries
                    ``batch_input_shape``), only the config fields Keras 2.2.4 wrote, every attribute stored
                    as bytes (h5py 2), keras_version "2.2.4".  Its reference is rnn_acts.k2.ref.npz (same
                    weights; Keras 2.2.4's hard_sigmoid is clip(0.2 a + 0.5, 0, 1), as tf_keras').

Run from the repository root with any Python that has h5py:  python sample_models/keras/make_old_samples.py
"""

import json
import shutil
from pathlib import Path

import h5py
import numpy as np

OUT = Path(__file__).resolve().parent
KERAS_224_FIELDS = {  # the config keys keras 2.2.4's get_config() wrote for these classes
    "Dense": ["name", "trainable", "units", "activation", "use_bias", "kernel_initializer", "bias_initializer",
              "kernel_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint",
              "bias_constraint"],
    "recurrent": ["name", "trainable", "return_sequences", "return_state", "go_backwards", "stateful", "unroll",
                  "units", "activation", "recurrent_activation", "use_bias", "kernel_initializer",
                  "recurrent_initializer", "bias_initializer", "unit_forget_bias", "kernel_regularizer",
                  "recurrent_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint",
                  "recurrent_constraint", "bias_constraint", "dropout", "recurrent_dropout", "implementation",
                  "reset_after"],
}


def old_layer(entry, first_shape=None):
    cls, cfg = entry["class_name"], entry["config"]
    keep = KERAS_224_FIELDS["Dense" if cls == "Dense" else "recurrent"]
    new = {k: cfg[k] for k in keep if k in cfg}
    if cls == "LSTM":
        new.pop("reset_after", None)
    if first_shape is not None:
        new = {"name": new["name"], "trainable": True, "batch_input_shape": first_shape, "dtype": "float32", **new}
    return {"class_name": cls, "config": new}


def b(value) -> np.bytes_:
    return np.bytes_(value.encode("utf-8"))


def main():
    src, dst = OUT / "rnn_acts.k2.h5", OUT / "rnn_acts.k22.h5"
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        layers = config["config"]["layers"]
        shape = layers[0]["config"]["batch_input_shape"]
        body = [e for e in layers if e["class_name"] != "InputLayer"]
        old = [old_layer(e, shape if i == 0 else None) for i, e in enumerate(body)]
        for key in list(f.attrs):
            del f.attrs[key]
        f.attrs["keras_version"] = b("2.2.4")
        f.attrs["backend"] = b("tensorflow")
        f.attrs["model_config"] = b(json.dumps({"class_name": "Sequential", "config": old}))
        g = f["model_weights"]
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in g.attrs["layer_names"]]
        g.attrs["layer_names"] = np.array([b(n) for n in names])
        g.attrs["keras_version"], g.attrs["backend"] = b("2.2.4"), b("tensorflow")
        for n in names:
            wn = [w.decode() if isinstance(w, bytes) else str(w) for w in g[n].attrs["weight_names"]]
            g[n].attrs["weight_names"] = np.array([b(w) for w in wn]) if wn else np.array([], dtype="S1")
    print(f"wrote {dst}")


if __name__ == "__main__":
    main()
