"""Small models built in code for the engine and CLI tests."""

import numpy as np

from jacprop import ops
from jacprop.graph import GraphBuilder
from jacprop.ops.activations import Activation


def mlp(sizes, acts, seed=0, scale=0.7):
    """A Dense chain sizes[0] -> ... -> sizes[-1] with the given activations."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder([("x", (sizes[0],))])
    node = b.inputs[0]
    for i, (n_in, n_out, a) in enumerate(zip(sizes, sizes[1:], acts)):
        op = ops.Dense(kernel=rng.normal(size=(n_in, n_out)) * scale, bias=rng.normal(size=n_out) * 0.2,
                       activation=Activation(a))
        node = b.add(f"dense_{i}", op, [node], "Dense")
    return b.finish([node])


def branchy(seed=0):
    """Two inputs, a conv branch, fan-out, merges, layer norm and two outputs (one softmax)."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder([("a", (12,)), ("b", (3,))])
    a, bb = b.inputs
    h = b.add("d1",
              ops.Dense(kernel=rng.normal(size=(12, 12)) * 0.5, bias=rng.normal(size=12),
                        activation=Activation("tanh")), [a], "Dense")
    r = b.add("r", ops.Reshape(shape=(6, 2)), [h], "Reshape")
    c = b.add("c",
              ops.Conv(kernel=rng.normal(size=(3, 2, 4)), bias=rng.normal(size=4), activation=Activation("gelu"),
                       strides=(2,), padding="same"), [r], "Conv1D")
    p = b.add("p", ops.Pool(how="max", size=(2,), strides=(1,), padding="same"), [c], "MaxPooling1D")
    f = b.add("f", ops.Reshape(shape=(-1,)), [p], "Flatten")
    e = b.add("e", ops.Dense(kernel=rng.normal(size=(3, 12))), [bb], "Dense")
    m = b.add("m", ops.Merge(how="multiply"), [f, e], "Multiply")
    s2 = b.add("skip", ops.Merge(how="add"), [m, h], "Add")
    ln = b.add("ln", ops.LayerNorm(gamma=rng.normal(size=12), beta=rng.normal(size=12)), [s2], "LayerNormalization")
    s = b.add("s", ops.Dense(kernel=rng.normal(size=(12, 3)), activation=Activation("softmax")), [ln], "Dense")
    return b.finish([s, e])
