"""Weights-only files and their architecture as JSON, the way users ship them: for the samples
``lstm`` (Sequential) and ``functional_multi`` and ``bidirectional`` (Functional),

  NAME.k2.weights.h5 + NAME.k2.json   tf_keras  model.save_weights("x.weights.h5") and model.to_json()
  NAME.k2.legacy_weights.h5           tf_keras  model.save_weights("x.h5") (the legacy layout: layer_names)
  NAME.k3.weights.h5 + NAME.k3.json   keras 3   model.save_weights("x.weights.h5") and model.to_json()

written from the sample model files make_samples.py made (so NAME.ref.npz is their reference too).
Development only:  /work/devenv-tf/bin/python sample_models/keras/make_weights_only.py
"""

import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["KERAS_BACKEND"] = "tensorflow"

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tf_keras  # noqa: E402

OUT = Path(__file__).resolve().parent
NAMES = ("lstm", "functional_multi", "bidirectional")


def main():
    for name in NAMES:
        for tag, K, src in (("k2", tf_keras, f"{name}.k2.h5"), ("k3", keras, f"{name}.k3.keras")):
            model = K.models.load_model(str(OUT / src), compile=False)
            weights = OUT / f"{name}.{tag}.weights.h5"
            if weights.exists():
                weights.unlink()
            model.save_weights(str(weights))
            if tag == "k2":
                legacy = OUT / f"{name}.k2.legacy_weights.h5"
                if legacy.exists():
                    legacy.unlink()
                model.save_weights(str(legacy))
            (OUT / f"{name}.{tag}.json").write_text(model.to_json() + "\n")
            # the pair read back by the framework itself predicts what the model file predicts
            again = K.models.model_from_json((OUT / f"{name}.{tag}.json").read_text())
            again.load_weights(str(weights))
            ref = np.load(OUT / f"{name}.ref.npz")
            x = ref["x"]
            shapes = [tuple(int(d) for d in t.shape[1:]) for t in model.inputs]
            parts, start = [], 0
            for s in shapes:
                size = int(np.prod(s))
                parts.append(x[:, start:start + size].reshape((-1,) + s).astype(np.float32))
                start += size
            arg = parts[0] if len(parts) == 1 else parts
            a, b = model.predict(arg, verbose=0), again.predict(arg, verbose=0)
            a, b = (np.concatenate([np.reshape(t, (len(x), -1)) for t in (v if isinstance(v, list) else [v])], 1)
                    for v in (a, b))
            print(json.dumps({"name": name, "tag": tag, "max_abs_diff": float(np.abs(a - b).max())}))


if __name__ == "__main__":
    main()
