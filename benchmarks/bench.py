"""Placeholder until the performance issue (#6): times jacprop alone on one MLP shape.

    make bench
"""

import time

import numpy as np

import jacprop
from jacprop import ops
from jacprop.activations import Activation
from jacprop.graph import GraphBuilder


def main():
    rng = np.random.default_rng(0)
    b = GraphBuilder([("x", (32,))])
    node = b.inputs[0]
    for i, (n_in, n_out, a) in enumerate([(32, 256, "tanh"), (256, 256, "tanh"), (256, 8, "linear")]):
        node = b.add(f"d{i}", ops.Dense(kernel=rng.normal(size=(n_in, n_out)) * 0.1, bias=np.zeros(n_out), activation=Activation(a)), [node], "Dense")
    model = b.finish([node])
    X = rng.normal(size=(10000, 32))
    jacprop.jacobian(model, X[:100])
    t = time.perf_counter()
    jacprop.jacobian(model, X)
    dt = time.perf_counter() - t
    print(f"jacprop, D=32 256-256 K=8, N=10000: {len(X) / dt:,.0f} rows/s (no peers compared yet)")


if __name__ == "__main__":
    main()
