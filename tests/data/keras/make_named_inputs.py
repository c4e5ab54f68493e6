import numpy as np, keras, json
keras.utils.set_random_seed(3)
names = ["temperature", "pressure", "flow"]
ins = [keras.Input(shape=(1,), name=n) for n in names]
h = keras.layers.Concatenate()(ins)
h = keras.layers.Dense(4, activation="tanh", name="hidden")(h)
out = keras.layers.Dense(2, name="y")(h)
m = keras.Model(ins, out)
m.save("named_inputs.keras")
X = np.array([[-2.88355, 0.10074, -1.1018], [0.245891, -0.221047, -3.70894]])
import tensorflow as tf
keras.backend.set_floatx("float64")
m64 = keras.models.load_model("named_inputs.keras")
xs = [tf.constant(X[:, i:i+1], tf.float64) for i in range(3)]
with tf.GradientTape(persistent=True) as t:
    for x in xs: t.watch(x)
    y = tf.cast(m64([tf.cast(x, tf.float32) for x in xs]), tf.float64) if False else m(xs)
print(json.dumps({"y": np.asarray(m.predict([X[:, i:i+1] for i in range(3)], verbose=0), dtype=float).tolist()}))
