"""jacprop.hessian on the recurrent shape of bench_rnn.py against torch.func, the same weights, in one process.

    PYTHONPATH=. python benchmarks/bench_rnn_hessian.py --sizes 1,10,100 --repeats 3
    PYTHONPATH=. python benchmarks/bench_rnn_hessian.py --smoke          # jacprop only, a few seconds

LSTM(32) on 64 steps x 8 features (D = 512) then Dense(2) (K = 2), float64.  H is taken with respect to
W = 32 inputs spread over the sequence (``--wrt``: inputs 0, 16, 32, ..., 496, i.e. features 0 of every
other step; the full H would be 2 x 512 x 512 per row): jacprop ``hessian(model, X, wrt=WRT)`` against
torch.func ``vmap(hessian(g))`` with g(z, x) = f(x with x[WRT] = z) differentiated in z (torch.func's
``hessian`` is ``jacfwd(jacrev)``, so that is the second peer too).  Both answers are compared before anything is timed;
each row is the median of the repeats, the methods taking turns within each repeat.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
from bench_rnn import F, K, T, U, jacprop_model, torch_function, weights  # noqa: E402

import jacprop  # noqa: E402

WRT = np.arange(0, T * F, T * F // 32)
W = len(WRT)


def torch_hessian(w):
    import torch
    from torch.func import hessian, vmap

    f = torch_function(w, np.float64)
    idx = torch.from_numpy(WRT)

    def g(z, x):
        return f(x.index_copy(0, idx, z))

    hess = vmap(hessian(g, argnums=0))

    def prepare(X):
        Xt = torch.from_numpy(X)
        return lambda: hess(Xt[:, idx], Xt)
    return prepare


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
    p.add_argument("--sizes", default="1,10,100")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--smoke", action="store_true")
    args = p.parse_args(argv)
    w = weights(np.float64)
    model = jacprop_model(w)
    peers = {}
    if not args.smoke:
        import torch

        torch.set_num_threads(max(1, os.cpu_count() or 1))
        peers = {"torch vmap(hessian) = vmap(jacfwd(jacrev))": torch_hessian(w)}
        version = f"torch {torch.__version__}"
    else:
        version = "smoke: jacprop only"
    print(f"# hessian, LSTM({U}) on {T} steps x {F} features -> Dense({K}), wrt {W} inputs spread over the steps, "
          f"float64; {version}; numpy {np.__version__}; load average {os.getloadavg()[0]:.1f}")
    print("| N | method | seconds | rows/s | vs jacprop | max abs diff from jacprop's H |")
    print("|---|---|---:|---:|---:|---:|")
    for N in [4] if args.smoke else [int(s) for s in args.sizes.split(",")]:
        X = np.random.default_rng(1).normal(size=(N, T * F))
        calls = {"jacprop hessian --wrt": lambda X=X: jacprop.hessian(model, X, wrt=WRT)}
        calls.update({name: make(X) for name, make in peers.items()})
        H = calls["jacprop hessian --wrt"]()[2]
        diffs = {name: float(np.abs(fn().numpy() - H).max()) for name, fn in list(calls.items())[1:]}
        print(f"# N = {N}: max|H| = {np.abs(H).max():.3g}")
        med = timed(calls, 1 if args.smoke else args.repeats)
        base = med["jacprop hessian --wrt"]
        for name, t in med.items():
            print(f"| {N} | {name} | {t:.4g} | {N / t:.4g} | {t / base:.2f}x | {diffs.get(name, 0.0):.1e} |")
        sys.stdout.flush()
    print(f"# load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
