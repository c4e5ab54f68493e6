"""Make named_inputs.keras: a Keras 3 Functional model with one named Input per feature
(temperature, pressure, flow), for tests/test_names.py.  Dev environment only:

    /work/devenv-tf/bin/python tests/data/keras/make_named_inputs.py

It prints Keras' own predict on the test's two rows (the reference the test holds)."""

import json

import keras
import numpy as np

keras.utils.set_random_seed(3)
names = ["temperature", "pressure", "flow"]
inputs = [keras.Input(shape=(1,), name=n) for n in names]
hidden = keras.layers.Dense(4, activation="tanh", name="hidden")(keras.layers.Concatenate()(inputs))
model = keras.Model(inputs, keras.layers.Dense(2, name="y")(hidden))
model.save("named_inputs.keras")
X = np.array([[-2.88355, 0.10074, -1.1018], [0.245891, -0.221047, -3.70894]])
print(json.dumps({"y": np.asarray(model.predict([X[:, i : i + 1] for i in range(3)], verbose=0), float).tolist()}))
