"""End to end: `jacprop jacobian` on a CSV of 1,000,000 rows, against its parts and against TensorFlow.

    python benchmarks/bench_e2e.py                      # prints a Markdown section
    python benchmarks/bench_e2e.py --rows 20000 --tf-python /work/devenv-tf/bin/python

The model is bench.py's "small" MLP (D=8, 64-64 tanh, K=2, float64).  Timed, interleaved,
median of ``--repeats``:

- the CLI: ``jacprop jacobian MODEL x.csv -o J.npy`` in a fresh process (start-up, reading,
  engine, writing: everything a user waits for), with its peak RSS;
- its parts alone, each in a fresh process and timed inside around the part: each CSV
  parser installed (numpy.loadtxt, pyarrow, pandas, polars) reading the whole file, and the
  engine streaming every row's J from the array (``engine.iter_jacobian``, as the CLI does);
  and, for reference, jacprop's own CSV reader alone and the CLI writing CSV (``-o J.csv``);
- with ``--tf-python`` (a Python that has TensorFlow): a script a TensorFlow user would write,
  ``keras.models.load_model`` + the fastest CSV parser it has + ``GradientTape.batch_jacobian``
  under ``tf.function`` in batches + ``np.save``, on a Keras file holding the same weights.
  jacprop then reads that Keras file too.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402

TF_SAVE = r"""
import sys, numpy as np, keras
dtype = sys.argv[3] if len(sys.argv) > 3 else "float64"
keras.backend.set_floatx(dtype)
w = np.load(sys.argv[1])
n = len([k for k in w.files if k.startswith("W")])
x = inp = keras.Input((w["W0"].shape[0],), dtype=dtype)
for i in range(n):
    layer = keras.layers.Dense(w[f"W{i}"].shape[1], activation="tanh" if i < n - 1 else "linear", dtype=dtype)
    x = layer(x)
    layer.set_weights([w[f"W{i}"].astype(dtype), w[f"b{i}"].astype(dtype)])
keras.Model(inp, x).save(sys.argv[2])
"""

TF_SCRIPT = r"""
import sys, time, numpy as np
t0 = time.perf_counter()
import tensorflow as tf, keras
dtype = sys.argv[4] if len(sys.argv) > 4 else "float64"
keras.backend.set_floatx(dtype)
model = keras.models.load_model(sys.argv[1])
t1 = time.perf_counter()
try:
    import pandas as pd
    X, parser = pd.read_csv(sys.argv[2]).to_numpy(dtype), "pandas"
except ImportError:
    X, parser = np.loadtxt(sys.argv[2], delimiter=",", skiprows=1, dtype=dtype), "numpy.loadtxt"
t2 = time.perf_counter()

@tf.function(reduce_retracing=True)
def jac(x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = model(x)
    return y, tape.batch_jacobian(y, x)

Ys, Js = [], []
for s in range(0, len(X), 65536):
    y, j = jac(tf.constant(X[s:s + 65536]))
    Ys.append(y.numpy()); Js.append(j.numpy())
t3 = time.perf_counter()
np.save(sys.argv[3], np.concatenate(Js))
t4 = time.perf_counter()
print(f"load {t1 - t0:.3f} parse {t2 - t1:.3f} jacobian {t3 - t2:.3f} save {t4 - t3:.3f} parser {parser}")
"""


def write_inputs(tmp, rows, D, seed=1):
    """x.csv: ``rows`` x D numbers in round-trip precision (17 significant digits), header x0,x1,..."""
    X = np.random.default_rng(seed).normal(size=(rows, D))
    path = os.path.join(tmp, "x.csv")
    np.savetxt(path, X, delimiter=",", fmt="%.17g", header=",".join(f"x{i}" for i in range(D)), comments="")
    return path, X


def parsers():
    """name -> read(path) -> (N, D) float64 array, for every parser installed."""
    found = {"numpy.loadtxt": lambda p: np.loadtxt(p, delimiter=",", skiprows=1)}
    try:
        from pyarrow import csv as pacsv

        found["pyarrow.csv"] = lambda p: np.column_stack([c.to_numpy() for c in pacsv.read_csv(p).columns])
    except ImportError:
        pass
    try:
        import pandas as pd

        found["pandas (C engine)"] = lambda p: pd.read_csv(p).to_numpy(np.float64)
    except ImportError:
        pass
    try:
        import polars as pl

        found["polars"] = lambda p: pl.read_csv(p).to_numpy().astype(np.float64)
    except ImportError:
        pass
    return found


PART = r"""
import sys, time, numpy as np
here, name, csv, model, x_npy = sys.argv[1:6]
sys.path.insert(0, here)
import bench_e2e
if name == "engine":  # the Jacobian of every row, streamed as the CLI streams it (no (N, K, D) array)
    import jacprop
    from jacprop import engine
    engine.keep_freed_memory()
    m, X = jacprop.load(model), np.load(x_npy)
    t = time.perf_counter()
    for _ in engine.iter_jacobian(m, X, deterministic=True):
        pass
    print(time.perf_counter() - t, True)
elif name == "reader":  # jacprop's own CSV reader (pyarrow blocks when installed, else numpy)
    from jacprop.io import reader as csvio
    t = time.perf_counter()
    A = csvio.read_all(csv)[0]
    print(time.perf_counter() - t, np.array_equal(A, np.load(x_npy)))
else:
    read = bench_e2e.parsers()[name]
    t = time.perf_counter()
    A = read(csv)
    print(time.perf_counter() - t, np.array_equal(A, np.load(x_npy)))
"""

LAUNCHER = r"""
import os, sys, time
t = time.perf_counter()
pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ)
_, status, usage = os.wait4(pid, 0)
print(time.perf_counter() - t, usage.ru_maxrss * 1024, os.waitstatus_to_exitcode(status))
"""


def timed_child(cmd) -> tuple[float, int, str]:
    """(wall seconds, peak RSS in bytes, stdout) of a command.  A small launcher process spawns
    it: Linux counts a child's peak RSS from its parent's at fork, and this process is large."""
    cmd = [shutil.which(cmd[0]) or cmd[0], *cmd[1:]]
    out = subprocess.run([sys.executable, "-S", "-c", LAUNCHER, *cmd], capture_output=True, text=True)
    *lines, last = out.stdout.strip().splitlines() or [""]
    wall, peak, code = last.split() if len(last.split()) == 3 else (0, 0, out.returncode or 1)
    if int(code) or out.returncode:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed: {out.stderr.strip()[-400:]}")
    return float(wall), int(peak), "\n".join(lines)


def measure(rows, repeats, tf_python=None, tmp=None):
    D, hidden, K = bench.SHAPES["small"]
    ws = bench.weights("small", np.float64)
    tmp = tmp or tempfile.mkdtemp(prefix="jacprop-e2e-")
    npz = os.path.join(tmp, "small.npz")
    arrays = {f"W{i}": W for i, (W, _) in enumerate(ws)} | {f"b{i}": c for i, (_, c) in enumerate(ws)}
    np.savez(npz, activations=np.array(["tanh"] * (len(ws) - 1) + ["linear"]), **arrays)
    csv, X = write_inputs(tmp, rows, D)
    model_path, notes = npz, []
    if tf_python:
        model_path = os.path.join(tmp, "small.keras")
        subprocess.run([tf_python, "-c", TF_SAVE, npz, model_path], check=True, capture_output=True)
    exe = os.path.join(os.path.dirname(sys.executable), "jacprop")
    cli = [exe if os.path.exists(exe) else sys.executable, *([] if os.path.exists(exe) else ["-m", "jacprop"]),
           "jacobian", model_path, csv, "-o", os.path.join(tmp, "J.npy")]
    tf_cmd = [tf_python, "-c", TF_SCRIPT, model_path, csv, os.path.join(tmp, "J_tf.npy")] if tf_python else None

    import jacprop

    model = jacprop.load(model_path)
    reads = parsers()
    x_npy = os.path.join(tmp, "x.npy")
    np.save(x_npy, X)
    cli_csv = [*cli[:-1], os.path.join(tmp, "J.csv")]
    times: dict[str, list] = {"cli": [], "cli_csv": [], "engine": [], "reader": [], **{name: [] for name in reads}}
    rss, tf_parts = [], []
    if tf_cmd:
        times["tf"] = []
    for _ in range(repeats):
        wall, peak, _ = timed_child(cli)
        times["cli"].append(wall)
        rss.append(peak)
        times["cli_csv"].append(timed_child(cli_csv)[0])
        if tf_cmd:
            wall, _, out = timed_child(tf_cmd)
            times["tf"].append(wall)
            tf_parts.append(out.strip())
        for name in [*reads, "reader", "engine"]:  # each part alone, in a fresh process as the CLI runs, timed inside
            _, _, out = timed_child([sys.executable, "-c", PART, HERE, name, csv, model_path, x_npy])
            seconds, same = out.split()[-2:]
            assert same == "True", f"{name} did not read the numbers back exactly"
            times[name].append(float(seconds))
    J = np.load(os.path.join(tmp, "J.npy"))
    _, J_ref = jacprop.jacobian(model, X, deterministic=True)
    assert np.array_equal(J, J_ref), "the CLI's J differs from the API's"
    if tf_cmd:
        J_tf = np.load(os.path.join(tmp, "J_tf.npy"))
        notes.append("largest |J_jacprop - J_tensorflow| / max(1, |J|): "
                     f"{np.abs(J - J_tf).max() / max(1.0, np.abs(J_tf).max()):.1e}")
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"rows": rows, "med": med, "parsers": list(reads), "rss": max(rss), "tf_parts": tf_parts, "notes": notes,
            "model": os.path.basename(model_path), "repeats": repeats, "csv_mb": os.path.getsize(csv) / 1e6}


def tf_grid(tf_python, rows=100_000, repeats=3, shapes=("small", "medium"), dtypes=("float64", "float32")):
    """The CLI (``-o J.npy``, ``--dtype`` as the model) against the TensorFlow script on ``rows`` rows, for
    each shape and dtype (the Keras file saved in that dtype: equal precision), interleaved; medians."""
    tmp = tempfile.mkdtemp(prefix="jacprop-tf-")
    exe = os.path.join(os.path.dirname(sys.executable), "jacprop")
    cells = {}
    for shape in shapes:
        D = bench.SHAPES[shape][0]
        csv, _ = write_inputs(tmp, rows, D)
        csv = shutil.move(csv, os.path.join(tmp, f"x_{shape}.csv"))
        ws = bench.weights(shape, np.float64)
        npz = os.path.join(tmp, f"{shape}.npz")
        np.savez(npz, **{f"W{i}": W for i, (W, _) in enumerate(ws)}, **{f"b{i}": c for i, (_, c) in enumerate(ws)})
        for dtype in dtypes:
            keras_file = os.path.join(tmp, f"{shape}_{dtype}.keras")
            subprocess.run([tf_python, "-c", TF_SAVE, npz, keras_file, dtype], check=True, capture_output=True)
            cli = [exe if os.path.exists(exe) else sys.executable, *([] if os.path.exists(exe) else ["-m", "jacprop"]),
                   "jacobian", keras_file, csv, "--dtype", dtype, "-o", os.path.join(tmp, "J.npy")]
            tf = [tf_python, "-c", TF_SCRIPT, keras_file, csv, os.path.join(tmp, "J_tf.npy"), dtype]
            cells[(shape, dtype)] = {"cli": cli, "tf": tf, "t_cli": [], "t_tf": [], "parts": []}
    for _ in range(repeats):
        for c in cells.values():
            c["t_cli"].append(timed_child(c["cli"])[0])
            wall, _, out = timed_child(c["tf"])
            c["t_tf"].append(wall)
            c["parts"].append(out.strip())
    shutil.rmtree(tmp, ignore_errors=True)
    return {k: (statistics.median(c["t_cli"]), statistics.median(c["t_tf"]), c["parts"]) for k, c in cells.items()}


def tf_section(grid, rows) -> str:
    out = [f"## Against the TensorFlow script, {rows:,} rows (whole runs, fresh processes, medians)", "",
           "The CLI `jacprop jacobian M.keras x.csv --dtype T -o J.npy` against `load_model` + `pandas.read_csv` + "
           "`batch_jacobian` under `tf.function` + `np.save`, both in the model's dtype.", "",
           "| shape | dtype | jacprop CLI s | TensorFlow script s | x (TF / jacprop) |", "|---|---|---:|---:|---:|"]
    for (shape, dtype), (cli, tf, _) in grid.items():
        out.append(f"| {shape} | {dtype} | {cli:.2f} | {tf:.2f} | **{tf / cli:.2f}** |")
    out += ["", "TensorFlow's own timings (last run each): " + "; ".join(
        f"{s} {d}: `{parts[-1]}`" for (s, d), (_, _, parts) in grid.items())]
    return "\n".join(out) + "\n"


def section(r) -> str:
    med = r["med"]
    fastest = min(r["parsers"], key=med.get)
    base = med[fastest] + med["engine"]
    out = [
        f"## End to end: `jacprop jacobian {r['model']} x.csv -o J.npy`, "
        f"{r['rows']:,} rows x 8 ({r['csv_mb']:.0f} MB of CSV)",
        "",
        f"Small shape (D=8, 64-64, K=2), float64; medians of {r['repeats']} interleaved runs, each in a fresh process: "
        "the CLI timed from outside (start-up, imports, reading, engine, writing), each part timed inside around the "
        "part alone (the engine: `engine.iter_jacobian` streaming every row's J, as the CLI does). "
        "Every parser read the file back bit for bit.",
        "",
        "| what | s | / (fastest parse + engine) |",
        "|---|---:|---:|",
        f"| `jacprop jacobian` CLI, whole run | {med['cli']:.2f} | **{med['cli'] / base:.2f}** |",
    ]
    out += [f"| parse alone: {name} | {med[name]:.2f} | {med[name] / base:.2f} |" for name in r["parsers"]]
    out += [f"| jacprop's CSV reader alone (`io.reader.read_all`) | {med['reader']:.2f} | {med['reader'] / base:.2f} |"]
    out += [f"| engine alone: the array's Jacobians | {med['engine']:.2f} | {med['engine'] / base:.2f} |"]
    out += [f"| the CLI writing CSV instead (`-o J.csv`) | {med['cli_csv']:.2f} | {med['cli_csv'] / base:.2f} |"]
    if "tf" in med:
        out += ["| TensorFlow script (load_model, parse, batch_jacobian, np.save) "
                f"| {med['tf']:.2f} | {med['tf'] / base:.2f} |"]
    out += ["", f"- fastest parse: {fastest}; CLI peak RSS {r['rss'] / 2**20:.0f} MB."]
    if "tf" in med:
        out += [f"- jacprop CLI vs the TensorFlow script: **x{med['tf'] / med['cli']:.2f}** (> 1: jacprop faster).",
                "- TensorFlow script's own timings per run: " + "; ".join(f"`{p}`" for p in r["tf_parts"])]
    out += [f"- {n}" for n in r["notes"]]
    return "\n".join(out) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--tf-python", default=None, help="a Python with TensorFlow/Keras, for the TensorFlow comparison")
    p.add_argument("--tf-rows", type=int, default=100_000, help="rows of the TensorFlow grid (small, medium x dtypes)")
    a = p.parse_args(argv)
    print(section(measure(a.rows, a.repeats, a.tf_python)))
    if a.tf_python:
        print(tf_section(tf_grid(a.tf_python, a.tf_rows, a.repeats), a.tf_rows))


if __name__ == "__main__":
    main()
