"""The reference of tests/test_gum2.py's tanh check: a 10^6-draw Monte Carlo of the sample model
sample_models/bishop_tanh.npz (y = tanh(x W0 + b0) W1 + b1, evaluated here in plain numpy from the
file's arrays, not by jacprop) at each row of sample_models/bishop_tanh.csv, for Gaussian inputs
with the standard uncertainties below, independent.  Writes tanh_mc.json beside this script: per
case and row the Monte Carlo mean shift E[y] - f(x) and standard deviation, each with its standard
error.  Run: python tests/data/gum2/make_tanh_mc.py  (about 20 s)."""

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
ROOT = HERE.parents[2]
DRAWS = 10**6
# u(temperature), u(pressure), u(flow) per case
CASES = {"t0.2": [0.2, 0.0, 0.0], "all0.15": [0.15, 0.15, 0.15], "t0.5": [0.5, 0.0, 0.0]}


def f(z, X):
    return np.tanh(X @ z["W0"] + z["b0"]) @ z["W1"] + z["b1"]


def main():
    z = dict(np.load(ROOT / "sample_models" / "bishop_tanh.npz"))
    assert list(z["activations"]) == ["tanh", "linear"]
    X = np.loadtxt(ROOT / "sample_models" / "bishop_tanh.csv", delimiter=",", skiprows=1)
    out = {"draws": DRAWS, "seed": 20261203, "cases": {}}
    rng = np.random.default_rng(out["seed"])
    for name, u in CASES.items():
        rows = []
        for x in X:
            y = f(z, x + rng.standard_normal((DRAWS, 3)) * np.array(u))
            s, m4 = y.std(axis=0, ddof=1), ((y - y.mean(axis=0)) ** 4).mean(axis=0)
            se_s = np.sqrt((m4 - s**4 * (DRAWS - 3) / (DRAWS - 1)) / DRAWS) / (2 * s)
            rows.append({"shift": (y.mean(axis=0) - f(z, x)).tolist(), "shift_se": (s / np.sqrt(DRAWS)).tolist(),
                         "sigma": s.tolist(), "sigma_se": se_s.tolist()})
        out["cases"][name] = {"dx": u, "rows": rows}
    (HERE / "tanh_mc.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
