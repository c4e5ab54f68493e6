"""jacprop on a recurrent shape against torch.func, the same weights, interleaved in one process.

    python benchmarks/bench_rnn.py                       # the grid below, a table on stdout
    python benchmarks/bench_rnn.py --sizes 100 --repeats 3
    python benchmarks/bench_rnn.py --smoke               # jacprop only, a few seconds (CI smoke)

The shape: a sequence of T = 64 steps x F = 8 features (D = 512 inputs), LSTM(32) (Keras gate order
i, f, g, o, sigmoid / tanh), then Dense(2) (K = 2).  torch computes the same function written out
step by step (so that torch.func can vmap it) and its Jacobians by ``vmap(jacrev)`` and
``vmap(jacfwd)``; both answers are compared with jacprop's before anything is timed.  Each row is
the median of the repeats, the methods taking turns within each repeat.  Peak memory is
jacprop's, measured with tracemalloc (numpy's allocations) beyond X, Y and J themselves.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import tracemalloc

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

import jacprop  # noqa: E402
from jacprop import ops  # noqa: E402
from jacprop.graph import GraphBuilder  # noqa: E402

T, F, U, K = 64, 8, 32, 2
SIZES = (1, 100, 1000, 10_000)
MAX_CALL = 30.0  # seconds: a peer whose time per row predicts a longer call at this N is skipped


def weights(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return dict(W=rng.normal(size=(F, 4 * U)) / np.sqrt(F), R=rng.normal(size=(U, 4 * U)) / np.sqrt(U),
                b=rng.normal(size=4 * U) * 0.1, V=rng.normal(size=(U, K)) / np.sqrt(U), c=rng.normal(size=K) * 0.1)


def jacprop_model(w):
    b = GraphBuilder([("x", (T, F))])
    h = b.add("lstm", ops.Recurrent(cell="lstm", kernel=w["W"], recurrent_kernel=w["R"], bias=w["b"]), b.inputs, "LSTM")
    out = b.add("out", ops.Dense(kernel=w["V"], bias=w["c"]), [h], "Dense")
    return b.finish([out])


def torch_function(w, dtype):
    """The same network in torch, one row (T * F,) -> (K,), written out step by step so torch.func can vmap it."""
    import torch

    tw = {k: torch.from_numpy(v.astype(dtype)) for k, v in w.items()}

    def f(x):
        xs = x.reshape(T, F) @ tw["W"] + tw["b"]
        h = torch.zeros(U, dtype=x.dtype)
        c = torch.zeros(U, dtype=x.dtype)
        for t in range(T):
            a = xs[t] + h @ tw["R"]
            i, fg, g, o = (torch.sigmoid(a[:U]), torch.sigmoid(a[U:2 * U]),
                           torch.tanh(a[2 * U:3 * U]), torch.sigmoid(a[3 * U:]))
            c = fg * c + i * g
            h = o * torch.tanh(c)
        return h @ tw["V"] + tw["c"]
    return f


def torch_methods(w, dtype):
    import torch
    from torch.func import jacfwd, jacrev, vmap

    f = torch_function(w, dtype)

    def prep(fn):
        def prepare(X):
            Xt = torch.from_numpy(X)
            return lambda: fn(Xt)
        return prepare

    # jacfwd pushes D = 512 tangents through every step: rows in chunks of 16 keep it to ~1 GB
    return {"torch vmap(jacrev)": prep(vmap(jacrev(f))),
            "torch vmap(jacfwd) chunk 16": prep(vmap(jacfwd(f), chunk_size=16))}


def peak_memory(model, X, dtype):
    """Bytes numpy allocates at most during jacprop.jacobian, beyond X, Y and J."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    _, J = jacprop.jacobian(model, X, dtype=dtype)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak - J.nbytes - len(X) * K * np.dtype(dtype).itemsize


def timed(calls, repeats):
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            time.sleep(0.2)
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default=",".join(map(str, SIZES)))
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--smoke", action="store_true")
    args = p.parse_args(argv)
    dtype = np.dtype(args.dtype)
    w = weights(dtype)
    model = jacprop_model(w)
    sizes = [8] if args.smoke else [int(s) for s in args.sizes.split(",")]
    peers, per_row = {}, {}
    if not args.smoke:
        try:
            peers = torch_methods(w, dtype)
            import torch
            torch.set_num_threads(max(1, os.cpu_count() or 1))
            version = f"torch {torch.__version__}"
        except ImportError:
            version = "torch not installed: jacprop only"
    else:
        version = "smoke: jacprop only"
    print(f"# LSTM({U}) on {T} steps x {F} features -> Dense({K}), {dtype}; {version}; numpy {np.__version__}")
    print("| N | method | seconds | rows/s | vs jacprop | max abs diff | jacprop peak memory |")
    print("|---|---|---|---|---|---|---|")
    for N in sizes:
        X = np.random.default_rng(1).normal(size=(N, T * F)).astype(dtype)
        calls = {"jacprop": lambda X=X: jacprop.jacobian(model, X, dtype=dtype)}
        skipped = {name: per_row[name] * N for name in peers if per_row.get(name, 0) * N > MAX_CALL}
        calls.update({name: prep(X) for name, prep in peers.items() if name not in skipped})
        _, J = jacprop.jacobian(model, X, dtype=dtype)
        diffs = {"jacprop": 0.0}
        for name in list(calls)[1:]:
            diffs[name] = float(np.abs(calls[name]().numpy() - J).max())  # also the warm-up
        calls["jacprop"]()
        med = timed(calls, 1 if args.smoke else args.repeats)
        per_row.update({name: t / N for name, t in med.items()})
        mem = peak_memory(model, X, dtype)
        for name, t in med.items():
            print(f"| {N} | {name} | {t:.4g} | {N / t:.4g} | {t / med['jacprop']:.2f}x | {diffs[name]:.1e} | "
                  f"{mem / 2**20:.1f} MB |" if name == "jacprop" else
                  f"| {N} | {name} | {t:.4g} | {N / t:.4g} | {t / med['jacprop']:.2f}x | {diffs[name]:.1e} | |")
        for name, t in skipped.items():
            print(f"| {N} | {name} | skipped: ~{t:.0f} s per call predicted | | | | |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
