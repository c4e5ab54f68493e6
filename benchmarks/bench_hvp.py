"""Hessian-vector products H_k u and the memory of jacprop.hessian, for benchmarks/RESULTS.md.

    python benchmarks/bench_hvp.py                  # H u on medium and wide-in (all 784 inputs), then the memory
    python benchmarks/bench_hvp.py --skip memory    # H u only
    python benchmarks/bench_hvp.py --smoke          # tiny, jacprop only, prints only

H u: jacprop.hvp (forward-over-reverse with one tangent) against jacprop's own full H then H u (what one would do
without --direction), torch.func vmap(jvp(jacrev(f), x, u)) and JAX jit(vmap(jvp(jacrev))) on bench.py's MLPs,
float64, one thread per method, CPU time, interleaved medians after a warm-up (bench_hessian.run_cell, which also
checks every method's H u against the first one's before timing).

Memory: a fresh process per (shape, N) runs jacprop.hessian(model, X) on N generated rows and reports tracemalloc's
peak (numpy's allocations are traced) beyond X and the returned Y, J, H, and the RSS high-water mark (VmHWM).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import bench_hessian as bh  # sets the one-thread environment before numpy is imported
import numpy as np

import jacprop

bench = bh.bench
SHAPES = ("medium", "wide-in")
FULL_H_MAX_ROWS = 100  # jacprop's full H (then H u) is timed on at most this many rows (wide-in: 784 x 784 x 10)


def direction(D):
    return np.random.default_rng(11).normal(size=D)


def jacprop_methods(ws, wrt, dtype, full=True):
    model = bench.jacprop_model(ws)
    u = direction(model.D)
    methods = {"jacprop hvp": lambda X: lambda: jacprop.hvp(model, X, u, dtype=dtype, threads=int(bh.THREADS))[2]}
    if full:
        methods["jacprop H, then H u"] = lambda X: lambda: np.einsum(
            "nkij,j->nki", jacprop.hessian(model, X, dtype=dtype, threads=int(bh.THREADS))[2], u)
    return methods


def torch_methods(ws, wrt, dtype):
    import torch
    from torch.func import jacrev, jvp, vmap

    torch.set_num_threads(int(bh.THREADS))
    tw = [(torch.from_numpy(W), torch.from_numpy(c)) for W, c in ws]
    u = torch.from_numpy(direction(ws[0][0].shape[0]))

    def f(x):
        for i, (W, c) in enumerate(tw):
            x = x @ W + c
            x = torch.tanh(x) if i < len(tw) - 1 else x
        return x

    fn = vmap(lambda x: jvp(jacrev(f), (x,), (u,))[1])
    return {"torch vmap(jvp(jacrev))": lambda X: (lambda T: lambda: fn(T).numpy())(torch.from_numpy(X))}


def jax_methods(ws, wrt, dtype):
    import jax
    import jax.numpy as jnp

    jw = [(jnp.asarray(W), jnp.asarray(c)) for W, c in ws]
    u = jnp.asarray(direction(ws[0][0].shape[0]))

    def f(x):
        for i, (W, c) in enumerate(jw):
            x = x @ W + c
            x = jnp.tanh(x) if i < len(jw) - 1 else x
        return x

    fn = jax.jit(jax.vmap(lambda x: jax.jvp(jax.jacrev(f), (x,), (u,))[1]))
    return {"jax jit(vmap(jvp(jacrev)))": lambda X: (lambda A: lambda: np.asarray(fn(A).block_until_ready()))(
        jnp.asarray(X))}


MEMORY_CHILD = """
import sys, tracemalloc, numpy as np
sys.path.insert(0, {here!r})
import bench
import jacprop
shape, n = sys.argv[1], int(sys.argv[2])
model = bench.jacprop_model(bench.weights(shape, np.float64))
X = np.random.default_rng(0).normal(size=(n, model.D))
wrt = None if model.D <= 64 else np.arange(32)
tracemalloc.start()
base = tracemalloc.get_traced_memory()[0]
Y, J, H = jacprop.hessian(model, X, wrt=wrt, threads=1)
peak = tracemalloc.get_traced_memory()[1] - base
out = Y.nbytes + J.nbytes + H.nbytes
print(peak - out, out, int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) * 1024)
"""


def memory(shape, n):
    code = MEMORY_CHILD.format(here=os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code, shape, str(n)], capture_output=True, text=True, check=True)
    return tuple(int(v) for v in out.stdout.split())


def hvp_section(cells, command, notes):
    names = sorted({n for c in cells for n in c["med"]}, key=lambda n: (not n.startswith("jacprop"), n))
    out = ["## Hessian-vector products: `jacprop.hvp` (`jacprop hessian --direction`)", "",
           f"Command: `{command}`", ""] + [f"- note: {n}" for n in notes] + [
        "", "H u rows per CPU second (K x D values a row); `H, then H u`: jacprop's full H (K x D x D a row) "
        f"contracted with u, timed on at most {FULL_H_MAX_ROWS} rows. Every method's H u was checked against "
        "jacprop's before timing.", "",
        "| shape | D | K | N | " + " | ".join(names) + " | hvp / full H | hvp / best peer |",
        "|---|---:|---:|---:|" + "---:|" * (len(names) + 2)]
    for c in cells:
        D, _, K = bench.SHAPES[c["shape"]]
        med = c["med"]
        rate = {n: c["N"] / med[n] for n in med}
        full = c.get("full")
        peers = [n for n in med if not n.startswith("jacprop")]
        best = max((rate[n] for n in peers), default=None)
        cols = [f"{rate[n]:,.0f}" if n in rate else (f"{full:,.0f} ({FULL_H_MAX_ROWS} rows)" if full and
                                                    n.startswith("jacprop H") else "–") for n in names]
        ratio_full = rate["jacprop hvp"] / (full or rate.get("jacprop H, then H u", float("nan")))
        ratio_peer = f"{rate['jacprop hvp'] / best:.2f}" if best else "–"
        out.append(f"| {c['shape']} | {D} | {K} | {c['N']:,} | " + " | ".join(cols)
                   + f" | {ratio_full:,.1f}x | {ratio_peer} |")
    return "\n".join(out) + "\n"


def memory_section(mem):
    out = ["", "### Memory of `jacprop.hessian` against N", "",
           "A fresh process per cell: `jacprop.hessian(model, X, threads=1)` on N generated float64 rows (wide-in: "
           "`wrt` its first 32 inputs). tracemalloc's peak beyond the returned Y, J and H (the working memory, "
           "which the block height bounds), the returned arrays themselves, and the process's RSS high-water mark.",
           "", "| shape | N | working peak (MB) | Y, J, H (MB) | peak RSS (MB) |", "|---|---:|---:|---:|---:|"]
    for (shape, n), (work, result, rss) in mem.items():
        out.append(f"| {shape} | {n:,} | {work / 2**20:.1f} | {result / 2**20:.1f} | {rss / 2**20:.0f} |")
    return "\n".join(out) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--shapes", default=",".join(SHAPES))
    p.add_argument("--sizes", default="1000")
    p.add_argument("--memory-shapes", default="small,wide-out")
    p.add_argument("--memory-sizes", default="1000,10000,100000")
    p.add_argument("--skip", default="", help="comma-separated: torch, jax, memory, hvp")
    p.add_argument("--budget", type=float, default=2.0)
    p.add_argument("--out", default="-")
    a = p.parse_args(argv)
    if a.smoke:
        a.shapes, a.sizes, a.skip, a.budget, a.memory_sizes = "small", "20", "torch,jax", 0.0, "50"
        a.memory_shapes = "small"
    skip = set(filter(None, a.skip.split(",")))
    found, notes = bench.peers(skip)
    notes = notes + [f"{n} {v}" for n, _, v in found] + [
        f"threads per method: {bh.THREADS}", f"load average at the start: {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} cores", "clock: process CPU time"]
    peer_makers = [{"torch": torch_methods, "jax": jax_methods}[n] for n, _, _ in found]
    cells = []
    for shape in ([] if "hvp" in skip else a.shapes.split(",")):
        for N in map(int, a.sizes.split(",")):
            small = N <= FULL_H_MAX_ROWS
            makers = [lambda ws, wrt, dt, small=small: jacprop_methods(ws, wrt, dt, full=small)] + peer_makers
            cell = {"shape": shape, "N": N, "med": bh.run_cell(shape, "float64", N, makers, a.budget)}
            if not small:  # the full H on FULL_H_MAX_ROWS rows only
                full = bh.run_cell(shape, "float64", FULL_H_MAX_ROWS, [jacprop_methods], 0.0)
                cell["full"] = FULL_H_MAX_ROWS / full["jacprop H, then H u"]
            cells.append(cell)
            print(shape, N, {n: f"{N / t:,.0f}" for n, t in cell["med"].items()}, cell.get("full"), file=sys.stderr,
                  flush=True)
    mem = {}
    for shape in ([] if "memory" in skip else a.memory_shapes.split(",")):
        for n in map(int, a.memory_sizes.split(",")):
            mem[(shape, n)] = memory(shape, n)
            print(shape, n, mem[(shape, n)], file=sys.stderr, flush=True)
    command = "python benchmarks/bench_hvp.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = (hvp_section(cells, command.strip(), notes) if cells else "") + (memory_section(mem) if mem else "")
    if a.out == "-":
        print(text)
    else:
        with open(a.out, "a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
