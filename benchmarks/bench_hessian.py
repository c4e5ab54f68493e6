"""jacprop.hessian against torch.func and JAX Hessians on the same MLPs, interleaved in one process.

    python benchmarks/bench_hessian.py                        # the four shapes, N = 100, 1000, 10000, float64
    python benchmarks/bench_hessian.py --smoke                # jacprop only, tiny, prints only
    make bench                                                # runs this too and appends its section to RESULTS.md

The shapes are bench.py's (tanh hidden layers, linear output).  wide-in (D = 784) is timed with respect to a
32-input subset (jacprop ``wrt``; the peers differentiate a function of those 32 inputs, the other 752 held at the
row's values), so every method computes the same (N, K, 32, 32) array.  Peers: torch.func vmap(hessian(f)) and
vmap(jacfwd(jacrev(f))), JAX the same two under jit.  Each cell is the median of interleaved repeats after a
warm-up (JAX's compile excluded); before timing, every peer's H is checked against jacprop's (max |difference|
<= 1e-10 max(1, max |H|)).  Peak memory: a fresh process streaming rows through ``second_order.iter_hessian``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# One thread for every method (BLAS, torch, XLA) unless BENCH_THREADS says otherwise: the numbers compare the
# methods' work, not how each runtime's thread pool copes with a shared, loaded machine.
THREADS = os.environ.get("BENCH_THREADS", "1")
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, THREADS)
if THREADS == "1":
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

import jacprop  # noqa: E402
import jacprop.engine  # noqa: E402

WRT = {"wide-in": 32}
SIZES = (100, 1000, 10_000)
MAX_CALL = 20.0  # seconds: skip a size whose previous size predicts a longer jacprop call
# The process's CPU time, not the wall clock: on a shared machine (this one ran at a load of ~20 on 2 cores) a
# call longer than the scheduler's time slice waits for the other processes, and the wall clock then measures
# them.  With one thread per method, CPU time is what the call costs (BENCH_CLOCK=wall for the wall clock).
CLOCK = time.perf_counter if os.environ.get("BENCH_CLOCK") == "wall" else time.process_time
MAX_OUT_BYTES = 2**30  # skip a size whose H alone would be larger
PAUSE = 0.2


def subset(shape):
    D = bench.SHAPES[shape][0]
    return np.arange(WRT.get(shape, D))


def jacprop_methods(ws, wrt, dtype):
    model = bench.jacprop_model(ws)
    full = len(wrt) == model.D
    return {"jacprop": lambda X: lambda: jacprop.hessian(model, X, wrt=None if full else wrt, dtype=dtype,
                                                        threads=int(THREADS))[2]}


def torch_methods(ws, wrt, dtype):
    import torch
    from torch.func import hessian, jacfwd, jacrev, vmap

    torch.set_num_threads(int(THREADS))
    tw = [(torch.from_numpy(W), torch.from_numpy(c)) for W, c in ws]
    w = len(wrt)

    def f(xs, xr):  # one row: the W differentiated inputs and the rest
        x = torch.cat([xs, xr])
        for i, (W, c) in enumerate(tw):
            x = x @ W + c
            x = torch.tanh(x) if i < len(tw) - 1 else x
        return x

    def prep(transform):
        fn = vmap(transform(f))

        def prepare(X):
            T = torch.from_numpy(X)
            xs, xr = T[:, :w].contiguous(), T[:, w:].contiguous()
            return lambda: fn(xs, xr).numpy()

        return prepare

    return {"torch vmap(hessian)": prep(hessian), "torch vmap(jacfwd(jacrev))": prep(lambda g: jacfwd(jacrev(g)))}


def jax_methods(ws, wrt, dtype):
    import jax
    import jax.numpy as jnp

    jw = [(jnp.asarray(W), jnp.asarray(c)) for W, c in ws]
    w = len(wrt)

    def f(xs, xr):
        x = jnp.concatenate([xs, xr])
        for i, (W, c) in enumerate(jw):
            x = x @ W + c
            x = jnp.tanh(x) if i < len(jw) - 1 else x
        return x

    def prep(transform):
        fn = jax.jit(jax.vmap(transform(f)))

        def prepare(X):
            xs, xr = jnp.asarray(X[:, :w]), jnp.asarray(X[:, w:])
            return lambda: np.asarray(fn(xs, xr).block_until_ready())

        return prepare

    return {"jax jit(vmap(hessian))": prep(jax.hessian),
            "jax jit(vmap(jacfwd(jacrev)))": prep(lambda g: jax.jacfwd(jax.jacrev(g)))}


def run_cell(shape, dtype, N, makers, budget):
    ws = bench.weights(shape, dtype)
    wrt = subset(shape)
    X = np.random.default_rng(3).normal(size=(N, ws[0][0].shape[0])).astype(dtype)
    calls = {name: prep(X) for make in makers for name, prep in make(ws, wrt, dtype).items()}
    ref = None
    first = {}
    for name, fn in calls.items():  # warm-up (JAX compiles), the cross-check, and the repeat count
        H = fn()
        ref = H if ref is None else ref
        err = float(np.abs(H - ref).max()) / max(1.0, float(np.abs(ref).max()))
        if err > (1e-10 if dtype == "float64" else 1e-4):
            raise AssertionError(f"{shape} {dtype} N={N}: {name} differs from jacprop by {err:.2g}")
        t = CLOCK()
        fn()
        first[name] = CLOCK() - t
    repeats = int(np.clip(budget / max(sum(first.values()), 1e-9), 3, 7))
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            time.sleep(PAUSE)
            t = CLOCK()
            fn()
            times[name].append(CLOCK() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


MEMORY_CHILD = """
import sys, numpy as np
sys.path.insert(0, {here!r})
import bench
from jacprop import second_order
n, chunk = int(sys.argv[1]), 10_000
model = bench.jacprop_model(bench.weights("small", np.float64))
rng = np.random.default_rng(0)
for start in range(0, n, chunk):
    X = rng.normal(size=(min(chunk, n - start), model.D))
    for _ in second_order.iter_hessian(model, X):
        pass
    del X
print(int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) * 1024)
"""


def peak_memory(n):
    code = MEMORY_CHILD.format(here=os.path.dirname(os.path.abspath(__file__)))
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, str(n)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1]), time.perf_counter() - t


def section(cells, mem, notes, command):
    out = ["## Hessians: `jacprop.hessian` against torch.func and JAX", "", f"Command: `{command}`", ""]
    out += [f"- note: {n}" for n in notes]
    out += ["",
            "H rows per CPU second; `x best peer` = the fastest peer method's time / jacprop's time "
            "(> 1: jacprop faster). "
            "wide-in: H with respect to its first 32 inputs (K x 32 x 32 per row) for every method. "
            "Every peer's H was checked against jacprop's before timing. Medians of interleaved repeats.", "",
            "| shape | D (wrt) | K | dtype | N | jacprop rows/s | fastest peer (rows/s) | x best peer |",
            "|---|---:|---:|---|---:|---:|---|---:|"]
    names = sorted({n for c in cells for n in c["med"]}, key=lambda n: (n != "jacprop", n))
    for c in cells:
        med = dict(c["med"])
        jp = med.pop("jacprop")
        best = min(med, key=med.get) if med else None
        D, _, K = bench.SHAPES[c["shape"]]
        peer = f"{best} ({c['N'] / med[best]:,.0f})" if best else "–"
        ratio = f"{med[best] / jp:.2f}" if best else "–"
        out.append(f"| {c['shape']} | {D} ({len(subset(c['shape']))}) | {K} | {c['dtype']} | {c['N']:,} | "
                   f"{c['N'] / jp:,.0f} | {peer} | {ratio} |")
    out += ["", "All methods, rows/s:", "", "| shape | N | " + " | ".join(names) + " |",
            "|---|---:|" + "---:|" * len(names)]
    for c in cells:
        out.append(f"| {c['shape']} | {c['N']:,} | "
                   + " | ".join(f"{c['N'] / c['med'][n]:,.0f}" if n in c["med"] else "–" for n in names) + " |")
    if mem:
        out += ["", "Peak memory (RSS high-water) of a fresh process streaming generated chunks of 10,000 rows "
                "through `second_order.iter_hessian`, small shape, float64 (H of every row computed and dropped):", "",
                "| rows | peak RSS (MB) | wall time (s) |", "|---:|---:|---:|"]
        out += [f"| {n:,} | {b / 2**20:.0f} | {t:.1f} |" for n, (b, t) in mem.items()]
    return "\n".join(out) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="small shape, N = 50, jacprop only, no memory run")
    p.add_argument("--shapes", default=",".join(bench.SHAPES))
    p.add_argument("--sizes", default=",".join(map(str, SIZES)))
    p.add_argument("--dtypes", default="float64")
    p.add_argument("--skip", default="", help="comma-separated: torch, jax, memory")
    p.add_argument("--budget", type=float, default=4.0)
    p.add_argument("--out", default="-", help="a file to append the section to; '-' for stdout")
    a = p.parse_args(argv)
    if a.smoke:
        a.shapes, a.sizes, a.skip, a.budget = "small", "50", "torch,jax,memory", 0.0
    found, notes = bench.peers(set(filter(None, a.skip.split(","))))
    if jacprop.engine.keep_freed_memory():  # as the CLI does; process-wide, so the peers run with it too
        notes.append("glibc malloc keeps freed memory (engine.keep_freed_memory, as the CLI does), "
                     "for every method alike")
    makers = [jacprop_methods] + [{"torch": torch_methods, "jax": jax_methods}[n] for n, _, _ in found]
    notes = notes + [f"{n} {v}" for n, _, v in found] + [
        f"threads per method: {THREADS} "
        "(BENCH_THREADS; OPENBLAS/OMP/MKL_NUM_THREADS, torch.set_num_threads, XLA_FLAGS)",
        f"load average at the start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
        f"clock: {'wall' if CLOCK is time.perf_counter else 'process CPU time (BENCH_CLOCK=wall for the wall clock)'}"]
    cells = []
    for shape in a.shapes.split(","):
        D, _, K = bench.SHAPES[shape]
        w = len(subset(shape))
        for dtype in a.dtypes.split(","):
            for N in map(int, a.sizes.split(",")):
                if N * K * w * w * np.dtype(dtype).itemsize > MAX_OUT_BYTES:
                    notes.append(f"{shape} N={N:,}: skipped, H alone would be over {MAX_OUT_BYTES >> 30} GB")
                    continue
                if (cells and cells[-1]["shape"] == shape
                        and cells[-1]["med"]["jacprop"] * N / cells[-1]["N"] > MAX_CALL):
                    notes.append(f"{shape} N={N:,}: skipped, one jacprop call would take over {MAX_CALL:.0f} s")
                    continue
                med = run_cell(shape, dtype, N, makers, a.budget)
                cells.append({"shape": shape, "dtype": dtype, "N": N, "med": med})
                line = ", ".join(f"{n} {N / t:,.0f}" for n, t in med.items())
                print(f"{shape:9s} {dtype} N={N:>6,}: {line} rows/s", file=sys.stderr, flush=True)
    mem = {} if "memory" in a.skip else {n: peak_memory(n) for n in (10_000, 100_000, 1_000_000)}
    command = "python benchmarks/bench_hessian.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = section(cells, mem, notes, command.strip())
    if a.out == "-":
        print(text)
    else:
        with open(a.out, "a") as f:
            f.write("\n" + text)
        print(f"appended to {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
