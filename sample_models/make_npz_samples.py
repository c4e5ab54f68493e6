"""Write the NPZ sample models and their CSVs (numpy only; deterministic).

    python sample_models/make_npz_samples.py

bishop_tanh.npz: Bishop's two-layer network y = W2 tanh(W1 x + b1) + b2 (Deep Learning,
section 8.1.5), D=3 inputs (temperature, pressure, flow), 5 tanh hidden units, K=2 linear
outputs, stored as a plain weight list (W0, b0, W1, b1, activations).
torch_mlp.npz: the same kind of network stored with PyTorch state_dict names and (out, in)
weights (net.0.weight, net.0.bias, net.2.weight, net.2.bias), activations not in the file.
"""

from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


def main():
    rng = np.random.default_rng(20261130)
    W1 = rng.normal(size=(3, 5)) * 0.7
    b1 = rng.normal(size=5) * 0.2
    W2 = rng.normal(size=(5, 2)) * 0.8
    b2 = rng.normal(size=2) * 0.1
    np.savez(HERE / "bishop_tanh.npz", W0=W1, b0=b1, W1=W2, b1=b2, activations=np.array(["tanh", "linear"]))
    X = rng.normal(size=(6, 3)) * [1.0, 0.5, 2.0]
    with open(HERE / "bishop_tanh.csv", "w") as f:
        f.write("temperature,pressure,flow\n")
        for row in X:
            f.write(",".join(f"{v:.6g}" for v in row) + "\n")

    np.savez(
        HERE / "torch_mlp.npz",
        **{"net.0.weight": rng.normal(size=(8, 4)) * 0.5, "net.0.bias": rng.normal(size=8) * 0.1,
           "net.2.weight": rng.normal(size=(3, 8)) * 0.5, "net.2.bias": rng.normal(size=3) * 0.1},
    )
    with open(HERE / "torch_mlp.csv", "w") as f:
        f.write("id,a,b,c,d\n")
        for i, row in enumerate(rng.normal(size=(5, 4))):
            f.write(f"s{i}," + ",".join(f"{v:.6g}" for v in row) + "\n")


if __name__ == "__main__":
    main()
