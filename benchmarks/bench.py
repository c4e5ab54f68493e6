"""jacprop against torch.func and JAX on the same MLPs, interleaved in one process.

    make bench                                   # full run, writes benchmarks/RESULTS.md
    python benchmarks/bench.py --smoke           # a few seconds, jacprop only, writes nothing
    python benchmarks/bench.py --shapes medium --sizes 1000,10000 --dtypes float64 --out -

Peers (torch, jax) are optional: each missing one is skipped with a note.  Every row of
the table is the median of repeats after warm-up, the methods taking turns within each
repeat, so that the machine's noise hits them alike: compare ratios, not seconds.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # torch's OpenMP threads must not spin into the next method's turn

import numpy as np  # noqa: E402

import jacprop  # noqa: E402
from jacprop import engine, graph, ops  # noqa: E402
from jacprop.graph import GraphBuilder  # noqa: E402
from jacprop.ops.activations import Activation  # noqa: E402

SHAPES = {  # name: (D, hidden widths, K); tanh hidden layers, linear output
    "small": (8, (64, 64), 2),
    "medium": (32, (256, 256), 8),
    "wide-in": (784, (128,), 10),
    "wide-out": (4, (128, 128), 64),
}
SIZES = (1, 100, 1000, 10_000, 100_000)
MAX_BYTES = 6 * 2**30  # skip a method whose estimated peak memory is larger
PAUSE = 0.2  # seconds between timed calls; see run_cell
MAX_CALL = 15.0  # seconds: skip a method whose previous size predicts a longer call


def weights(shape, dtype, seed=0):
    D, hidden, K = SHAPES[shape]
    sizes = (D, *hidden, K)
    rng = np.random.default_rng(seed)
    return [
        ((rng.normal(size=(a, b)) / np.sqrt(a)).astype(dtype), (rng.normal(size=b) * 0.1).astype(dtype))
        for a, b in zip(sizes, sizes[1:])
    ]


def jacprop_model(ws):
    b = GraphBuilder([("x", (ws[0][0].shape[0],))])
    node = b.inputs[0]
    for i, (W, c) in enumerate(ws):
        act = Activation("tanh" if i < len(ws) - 1 else "linear")
        node = b.add(f"dense_{i}", ops.Dense(kernel=W, bias=c, activation=act), [node], "Dense")
    return b.finish([node])


# ---------------------------------------------------------------------------
# Methods: name -> (prepare(X) -> zero-argument call), each returning J in some layout


def jacprop_methods(ws, dtype):
    model = jacprop_model(ws)
    return {"jacprop": lambda X: lambda: jacprop.jacobian(model, X, dtype=dtype)}


def torch_methods(ws, dtype):
    import torch
    from torch.func import jacfwd, jacrev, jvp, vmap

    tw = [(torch.from_numpy(W), torch.from_numpy(c)) for W, c in ws]

    def f(x):  # one row (D,) or a batch (N, D)
        for i, (W, c) in enumerate(tw):
            x = x @ W + c
            x = torch.tanh(x) if i < len(tw) - 1 else x
        return x

    def bcast_jvp(X):  # forward mode with each seed e_i broadcast over the rows: (D, N, K)
        eye = torch.eye(X.shape[1], dtype=X.dtype)
        return vmap(lambda e: jvp(f, (X,), (e.expand_as(X),))[1])(eye)

    def prep(fn):
        def prepare(X):
            T = torch.from_numpy(X)
            return lambda: fn(T)

        return prepare

    return {
        "torch vmap(jacrev)": prep(vmap(jacrev(f))),
        "torch vmap(jacfwd)": prep(vmap(jacfwd(f))),
        "torch jacrev(row-sum)": prep(jacrev(lambda X: f(X).sum(0))),  # (K, N, D)
        "torch jvp(bcast seeds)": prep(bcast_jvp),
    }


def jax_methods(ws, dtype):
    import jax
    import jax.numpy as jnp

    jw = [(jnp.asarray(W), jnp.asarray(c)) for W, c in ws]

    def f(x):
        for i, (W, c) in enumerate(jw):
            x = x @ W + c
            x = jnp.tanh(x) if i < len(jw) - 1 else x
        return x

    def bcast_jvp(X):
        eye = jnp.eye(X.shape[1], dtype=X.dtype)
        return jax.vmap(lambda e: jax.jvp(f, (X,), (jnp.broadcast_to(e, X.shape),))[1])(eye)

    def prep(fn):
        fn = jax.jit(fn)

        def prepare(X):
            A = jnp.asarray(X)
            return lambda: fn(A).block_until_ready()

        return prepare

    return {
        "jax jit(vmap(jacrev))": prep(jax.vmap(jax.jacrev(f))),
        "jax jit(vmap(jacfwd))": prep(jax.vmap(jax.jacfwd(f))),
        "jax jit(jacrev(row-sum))": prep(jax.jacrev(lambda X: f(X).sum(0))),  # (K, N, D)
        "jax jit(jvp(bcast seeds))": prep(bcast_jvp),
    }


def peers(skip):
    found, notes = [], []
    if "torch" not in skip:
        try:
            import torch

            found.append(("torch", torch_methods, torch.__version__))
        except ImportError:
            notes.append("torch not installed: skipped")
    if "jax" not in skip:
        try:
            import jax

            jax.config.update("jax_enable_x64", True)
            found.append(("jax", jax_methods, jax.__version__))
        except ImportError:
            notes.append("jax not installed: skipped")
    return found, notes


def peak_bytes(name, ws, N, itemsize):
    """A generous estimate of a method's largest live tensors."""
    D, K, width = ws[0][0].shape[0], ws[-1][0].shape[1], max(W.shape[1] for W, _ in ws)
    seeds = D if "jacfwd" in name or "jvp" in name else K
    if name == "jacprop":
        return itemsize * N * K * D * 2  # J, and the chunk being copied in (chunks are small)
    return itemsize * N * (K * D * 2 + 2 * seeds * max(width, D))


# ---------------------------------------------------------------------------
# Flop counts and the machine's rate for the products involved


def products(ws, mode, rows, n_seeds):
    """The (m, k, n) matrix products jacprop pays for one chunk of ``rows`` rows: the forward
    pass, then each Dense's product over rows x seeds except the one on the identity seed
    (the last Dense in reverse mode, the first in forward mode), which is free."""
    fwd = [(rows, W.shape[0], W.shape[1]) for W, _ in ws]
    if mode == "reverse":
        back = [(rows * n_seeds, W.shape[1], W.shape[0]) for W, _ in ws[:-1]]
    else:
        back = [(rows * n_seeds, W.shape[0], W.shape[1]) for W, _ in ws[1:]]
    return fwd + back


def flops(prods):
    return sum(2 * m * k * n for m, k, n in prods)


def matmul_plan(ws, dtype, N):
    """jacprop's mode, chunking and the products it pays, with a callable doing just those products."""
    model = jacprop_model(ws).astype(dtype)
    D, K = model.D, model.K
    mode = engine.choose_mode(model, K, D)
    seeds = K if mode == "reverse" else D
    c = min(N, graph.block_rows(model, seeds, np.dtype(dtype).itemsize))
    chunks = [c] * (N // c) + ([N % c] if N % c else [])
    plan = [p for rows in chunks for p in products(ws, mode, rows, seeds)]
    rng = np.random.default_rng(1)
    ops_ = {(m, k, n): (rng.random((m, k)).astype(dtype), rng.random((k, n)).astype(dtype),
                        np.empty((m, n), dtype)) for m, k, n in set(plan)}

    def run():
        for p in plan:
            a, b, out = ops_[p]
            np.matmul(a, b, out=out)

    return mode, c, flops(plan), run


def square_rate(dtype, n=2000, repeats=5):
    a, b = np.random.default_rng(2).random((2, n, n)).astype(dtype)
    a @ b
    return 2 * n**3 / median_time(lambda: a @ b, repeats)


def median_time(fn, repeats):
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


# ---------------------------------------------------------------------------
# The interleaved timing grid


def run_cell(shape, dtype, N, methods_for, skip_state, budget):
    """Time jacprop, the peers and the bare products for one (shape, dtype, N)."""
    ws = weights(shape, dtype)
    X = np.random.default_rng(3).normal(size=(N, ws[0][0].shape[0])).astype(dtype)
    itemsize = np.dtype(dtype).itemsize
    calls, skipped = {}, {}
    for make in methods_for:
        for name, prep in make(ws, dtype).items():
            key = (shape, dtype, name)
            if peak_bytes(name, ws, N, itemsize) > MAX_BYTES:
                skipped[name] = f"needs > {MAX_BYTES >> 30} GB"
            elif key in skip_state and skip_state[key] * N > MAX_CALL:
                skipped[name] = f"~{skip_state[key] * N:.0f} s per call"
            else:
                calls[name] = prep(X)
    mode, c, mm_flops, mm_run = matmul_plan(ws, dtype, N)
    calls["numpy: the same products"] = mm_run
    first = {}
    for name, fn in calls.items():  # warm-up (and JAX's compile), also sizes the repeats
        fn()
        first[name] = median_time(fn, 1)
    repeats = int(np.clip(budget / max(sum(first.values()), 1e-9), 3, 7))
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            time.sleep(PAUSE)  # let the previous method's idle threads (OpenBLAS, XLA, OpenMP) stop spinning
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    med["numpy: the same products"] = min(times["numpy: the same products"])  # the machine's rate: its best repeat
    for name, t in med.items():
        skip_state[(shape, dtype, name)] = t / N
    D, hidden, K = SHAPES[shape]
    useful = flops(products(ws, mode, N, K if mode == "reverse" else D))
    return dict(shape=shape, dtype=dtype, N=N, med=med, skipped=skipped, repeats=repeats, mode=mode, chunk=c,
                flops=useful, mm_flops=mm_flops)


def summarise(cell, sq_rate):
    med, N = dict(cell["med"]), cell["N"]
    t_mm = med.pop("numpy: the same products")
    t_jp = med.pop("jacprop", None)
    if t_jp is None:
        return None
    peers_ = {k: v for k, v in med.items()}
    best = min(peers_, key=peers_.get) if peers_ else None
    return dict(
        rows=N / t_jp,
        best=best,
        best_rows=N / peers_[best] if best else None,
        ratio=peers_[best] / t_jp if best else None,
        gflops=cell["flops"] / t_jp / 1e9,
        mm_share=t_mm / t_jp,
        mm_gflops=cell["mm_flops"] / t_mm / 1e9,
        sq_share=cell["flops"] / t_jp / sq_rate[cell["dtype"]],
        peers=peers_,
    )


# ---------------------------------------------------------------------------
# Under load: beside one process busy on one core


BUSY = "import time\nend = time.time() + 600\nwhile time.time() < end: pass"


def serial_own_blas(model, X):
    """The engine as it ran before the thread pool: blocks one after the other, BLAS with its own
    threads (``OPENBLAS_NUM_THREADS`` or all cores).  For the loaded run's comparison only."""
    import contextlib

    from jacprop import parallel

    held, parallel.one_blas_thread = parallel.one_blas_thread, contextlib.nullcontext
    try:
        return jacprop.jacobian(model, X, threads=1)
    finally:
        parallel.one_blas_thread = held


def loaded_run(shapes, repeats=3, rows=100_000):
    """jacprop's time on each shape (float64, ``rows`` rows; wide-in a tenth) alone and beside a busy
    process, interleaved; also the serial engine on BLAS's own threads, as before.  Returns
    {shape: {variant: (alone s, loaded s)}}."""
    out = {}
    for shape in shapes:
        ws = weights(shape, np.float64)
        model = jacprop_model(ws)
        n = rows // 10 if shape == "wide-in" else rows
        X = np.random.default_rng(3).normal(size=(n, ws[0][0].shape[0]))
        variants = {"jacprop": lambda m=model, X=X: jacprop.jacobian(m, X),
                    "serial, BLAS's own threads": lambda m=model, X=X: serial_own_blas(m, X)}
        for fn in variants.values():
            fn()
        times = {(v, load): [] for v in variants for load in (False, True)}
        for _ in range(repeats):
            for load in (False, True):
                busy = subprocess.Popen([sys.executable, "-c", BUSY]) if load else None
                try:
                    time.sleep(PAUSE)
                    for v, fn in variants.items():
                        time.sleep(PAUSE)
                        t = time.perf_counter()
                        fn()
                        times[(v, load)].append(time.perf_counter() - t)
                finally:
                    if busy is not None:
                        busy.kill()
                        busy.wait()
        out[shape] = {v: (statistics.median(times[(v, False)]), statistics.median(times[(v, True)])) for v in variants}
        print(f"loaded {shape}: "
              + ", ".join(f"{v} {a:.3f} s alone, {b:.3f} s loaded" for v, (a, b) in out[shape].items()),
              file=sys.stderr, flush=True)
    return out


def loaded_section(res, load_before, load_after, rows=100_000, repeats=3) -> list[str]:
    out = ["", "## Under load: beside one process busy on one of the cores", "",
           f"float64, {rows:,} rows (wide-in {rows // 10:,}); medians of {repeats}, alone and loaded interleaved; "
           f"a busy child process (a Python loop) started before each loaded turn. "
           f"The machine's 1-minute load average was {load_before:.1f} "
           f"before and {load_after:.1f} after (other users' processes too: 'alone' means beside them only).", "",
           "| shape | jacprop alone s | loaded s | loaded / alone "
           "| serial, BLAS's own threads: alone s | loaded s | loaded / alone |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for shape, r in res.items():
        (a, b), (c, d) = r["jacprop"], r["serial, BLAS's own threads"]
        out.append(f"| {shape} | {a:.3f} | {b:.3f} | **{b / a:.2f}** | {c:.3f} | {d:.3f} | {d / c:.2f} |")
    return out


# ---------------------------------------------------------------------------
# Memory and start-up


MEMORY_CHILD = """
import sys, numpy as np
sys.path.insert(0, {here!r})
import bench, jacprop
from jacprop import engine
n, chunk = int(sys.argv[1]), 100_000
model = bench.jacprop_model(bench.weights("small", np.float64))
rng = np.random.default_rng(0)
for start in range(0, n, chunk):  # a generated stream of input chunks, as the CLI reads a CSV
    X = rng.normal(size=(min(chunk, n - start), model.D))
    for _ in engine.iter_jacobian(model, X):
        pass
    del X  # as the CLI's reader does: one chunk alive at a time
# VmHWM, not getrusage's ru_maxrss: Linux carries the latter over from the (large) parent across fork
print(int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) * 1024)
"""


def peak_memory(n):
    code = MEMORY_CHILD.format(here=os.path.dirname(os.path.abspath(__file__)))
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, str(n)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1]), time.perf_counter() - t


def startup(runs=20):
    exe = os.path.join(os.path.dirname(sys.executable), "jacprop")
    cmds = {
        "jacprop --version": (
            [exe, "--version"] if os.path.exists(exe) else [sys.executable, "-m", "jacprop", "--version"]),
        "python -c 'import numpy'": [sys.executable, "-c", "import numpy"],
        "python -c pass": [sys.executable, "-c", "pass"],
    }
    times = {k: [] for k in cmds}
    for _ in range(runs):
        for k, cmd in cmds.items():
            t = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=True)
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


# ---------------------------------------------------------------------------
# Report


def machine(peer_versions):
    cpu = "unknown"
    try:
        cpu = re.search(r"model name\s*:\s*(.*)", open("/proc/cpuinfo").read()).group(1)
    except (OSError, AttributeError):
        pass
    blas = "unknown"
    try:
        cfg = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = f"{cfg.get('name')} {cfg.get('version')}"
    except Exception:  # older numpy: no dict mode
        pass
    lines = [
        f"- CPU: {cpu}, {os.cpu_count()} logical cores; {platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}, numpy {np.__version__} with {blas}, jacprop {jacprop.__version__}",
        f"- peers: {', '.join(f'{n} {v}' for n, v in peer_versions) or 'none installed'}",
        f"- OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, "
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}",
    ]
    return lines


def fmt(x, spec=",.0f"):
    return "–" if x is None else format(x, spec)


def report(cells, sq_rate, mem, start, notes, peer_versions, command, loaded=()):
    out = ["# jacprop benchmark results", "", f"Command: `{command}`", ""]
    out += machine(peer_versions) + [""]
    out += ["- large square product (2000 x 2000) rate: "
            + ", ".join(f"{d} {r / 1e9:.1f} GFLOP/s" for d, r in sq_rate.items())]
    out += [f"- note: {n}" for n in notes] + [""]
    out += [
        "jacprop rows/s; `x best peer` = peer's time / jacprop's time for the fastest peer method at that size "
        "(>1: jacprop faster); `GFLOP/s` counts the matrix products jacprop's mode needs (forward pass + seeds x "
        "backward products, the one on the identity seed excluded); `% products` = numpy doing exactly those "
        "products (same chunking, no elementwise work) / jacprop's time; `% square` = GFLOP/s / the large "
        "square product's rate. Medians of interleaved repeats.",
        "",
        "| shape | dtype | N | mode, chunk | jacprop rows/s | fastest peer (rows/s) "
        "| x best peer | GFLOP/s | % products | % square |",
        "|---|---|---:|---|---:|---|---:|---:|---:|---:|",
    ]
    for cell in cells:
        s = summarise(cell, sq_rate)
        if s is None:
            continue
        peer = f"{s['best']} ({fmt(s['best_rows'])})" if s["best"] else "–"
        out.append(
            f"| {cell['shape']} | {cell['dtype']} | {cell['N']:,} | {cell['mode']}, {cell['chunk']} "
            f"| {fmt(s['rows'])} | {peer} "
            f"| {fmt(s['ratio'], '.2f')} | {s['gflops']:.1f} | {100 * s['mm_share']:.0f} | {100 * s['sq_share']:.0f} |"
        )
    out += ["", "All methods, rows/s (a dash: skipped, reason below):", ""]
    names = sorted({n for c in cells for n in (*c["med"], *c["skipped"]) if n != "numpy: the same products"},
                   key=lambda n: (n != "jacprop", n))
    out += ["| shape | dtype | N | " + " | ".join(names) + " |", "|---|---|---:|" + "---:|" * len(names)]
    reasons = set()
    for c in cells:
        row = [fmt(c["N"] / c["med"][n]) if n in c["med"] else "–" for n in names]
        reasons.update(f"{c['shape']} {c['dtype']} N={c['N']:,} {n}: {r}" for n, r in c["skipped"].items())
        out.append(f"| {c['shape']} | {c['dtype']} | {c['N']:,} | " + " | ".join(row) + " |")
    if reasons:
        out += ["", "Skipped: " + "; ".join(sorted(reasons)) + "."]
    if mem:
        out += ["",
                "Peak memory (RSS high-water) of a fresh process streaming generated chunks of 100,000 rows through "
                "`engine.iter_jacobian` (the API; the CLI reads a CSV in the same way), small shape, float64:", "",
                "| rows | peak RSS (MB) | wall time (s) |", "|---:|---:|---:|"]
        out += [f"| {n:,} | {b / 2**20:.0f} | {t:.1f} |" for n, (b, t) in mem.items()]
    if start:
        base = start["python -c 'import numpy'"]
        out += ["", "Start-up, median of 20 interleaved runs:", "", "| command | ms | / import numpy |",
                "|---|---:|---:|"]
        out += [f"| `{k}` | {1e3 * v:.0f} | {v / base:.2f} |" for k, v in start.items()]
    out += list(loaded)
    return "\n".join(out) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true",
                   help="tiny sizes, jacprop only, no memory/start-up runs, prints only")
    p.add_argument("--shapes", default=",".join(SHAPES))
    p.add_argument("--sizes", default=",".join(map(str, SIZES)))
    p.add_argument("--dtypes", default="float64,float32")
    p.add_argument("--skip", default="", help="comma-separated: torch, jax, memory, startup, loaded, e2e")
    p.add_argument("--e2e-rows", type=int, default=1_000_000, help="rows of the end-to-end CSV (bench_e2e.py)")
    p.add_argument("--tf-python", default=os.environ.get("TF_PYTHON"),
                   help="a Python with TensorFlow, for the end-to-end comparison with a batch_jacobian script")
    p.add_argument("--budget", type=float, default=4.0, help="seconds of timed calls per cell (at least 3 repeats)")
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md"),
                   help="'-' for stdout only")
    a = p.parse_args(argv)
    if a.smoke:
        a.shapes, a.sizes, a.dtypes, a.skip, a.budget, a.out = (
            "small", "1,50", "float64,float32", "torch,jax,memory,startup,loaded,e2e", 0.0, "-")
    skip = set(filter(None, a.skip.split(",")))
    global PAUSE
    PAUSE = 0.0 if a.smoke else PAUSE  # jacprop alone: no other runtime's threads to wait for
    found, notes = peers(skip)
    if engine.keep_freed_memory():  # as the CLI does; process-wide, so the peers run with it too
        notes.append("glibc malloc keeps freed memory (engine.keep_freed_memory, as the CLI does), "
                     "for every method alike")
    methods_for = [jacprop_methods] + [make for _, make, _ in found]
    sq_rate = {d: square_rate(d, 200 if a.smoke else 2000) for d in a.dtypes.split(",")}
    cells, state = [], {}
    for shape in a.shapes.split(","):
        for dtype in a.dtypes.split(","):
            for N in map(int, a.sizes.split(",")):
                cell = run_cell(shape, dtype, N, methods_for, state, a.budget)
                cells.append(cell)
                s = summarise(cell, sq_rate)
                if s:
                    print(f"{shape:9s} {dtype} N={N:>7,}: jacprop {s['rows']:>12,.0f} rows/s, "
                          f"best peer {s['best']} x{fmt(s['ratio'], '.2f')}, "
                          f"{s['gflops']:.1f} GFLOP/s = {100 * s['mm_share']:.0f}% of the same products",
                          file=sys.stderr, flush=True)
    mem = {n: peak_memory(n) for n in (100_000, 1_000_000, 10_000_000)} if "memory" not in skip else {}
    start = startup() if "startup" not in skip else {}
    loaded = []
    if "loaded" not in skip:
        before = os.getloadavg()[0]
        res = loaded_run(a.shapes.split(","))
        loaded = loaded_section(res, before, os.getloadavg()[0])
    command = "python benchmarks/bench.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = report(cells, sq_rate, mem, start, notes, [(n, v) for n, _, v in found], command.strip(), loaded)
    if "e2e" not in skip:
        import bench_e2e

        text += "\n" + bench_e2e.section(bench_e2e.measure(a.e2e_rows, 3, a.tf_python))
        if a.tf_python:
            text += "\n" + bench_e2e.tf_section(bench_e2e.tf_grid(a.tf_python), 100_000)
    if a.out == "-":
        print(text)
    else:
        with open(a.out, "w") as f:
            f.write(text)
        print(f"wrote {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
