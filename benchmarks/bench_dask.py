"""--engine dask against the single-machine path on the same input: rows/s with 1 and 2 workers,
and the fixed cost of one partition.

    .venv/bin/python benchmarks/bench_dask.py [--rows 60000] [--format npy] [--workers 1,2]

Each configuration writes the same output file; the times include reading the CSV, the
Jacobians and writing (and, for dask, counting rows and assembling the parts), not starting
the cluster (reported apart).  Partitions are multiples of the reader's chunk; the chunk is
set to --chunk rows here so that a benchmark-sized file splits into several partitions (with
the default 65536-row chunk a file this size would be one partition).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jacprop import ops  # noqa: E402
from jacprop.cluster import runner as distributed  # noqa: E402
from jacprop.commands import jacobian  # noqa: E402
from jacprop.commands.common import InputSpec, ModelSpec, OutputSpec  # noqa: E402
from jacprop.graph import GraphBuilder  # noqa: E402
from jacprop.loaders import npz  # noqa: E402
from jacprop.ops.activations import Activation  # noqa: E402


def make_inputs(tmp: Path, rows: int, d: int, hidden: list[int], k: int):
    rng = np.random.default_rng(0)
    b = GraphBuilder([("x", (d,))])
    node, n_in = b.inputs[0], d
    for i, h in enumerate([*hidden, k]):
        act = Activation("tanh" if i < len(hidden) else "linear")
        node = b.add(f"dense_{i}", ops.Dense(kernel=rng.normal(size=(n_in, h)) / np.sqrt(n_in), bias=np.zeros(h),
                                             activation=act), [node], "Dense")
        n_in = h
    model = tmp / "model.npz"
    with open(model, "wb") as f:
        npz.save(b.finish([node]), f)
    csv = tmp / "inputs.csv"
    np.savetxt(csv, rng.normal(size=(rows, d)), delimiter=",", header=",".join(f"x{i}" for i in range(d)), comments="",
               fmt="%.17g")
    return str(model), str(csv)


def timed(fn, *args) -> float:
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


def spec(models, inputs, out, fmt):
    return jacobian.JacobianSpec(ModelSpec(tuple(models)), InputSpec(inputs), OutputSpec(out, fmt, quiet=True))


def local(model, csv, out, fmt):
    jacobian.run(jacobian.prepare(spec([model], csv, out, fmt)))


def on_dask(client, model, csv, out, chunk, partition, fmt=None):
    distributed.CHUNK_ROWS, distributed.PARTITION_ROWS = chunk, partition
    distributed.run_jacobian([model, csv], lambda m, i: spec(m, i, out, fmt), scheduler=client.scheduler.address)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=60_000)
    ap.add_argument("--format", default="npy", choices=["csv", "jsonl", "npy", "npz"])
    ap.add_argument("--workers", default="1,2", help="worker counts to compare (comma-separated)")
    ap.add_argument("--chunk", type=int, default=4096, help="reader chunk = partition granularity for dask")
    ap.add_argument("--repeat", type=int, default=2, help="best of this many runs")
    args = ap.parse_args()
    from dask.distributed import Client, LocalCluster

    d, hidden, k = 32, [256, 256], 8
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model, csv = make_inputs(tmp, args.rows, d, hidden, k)
        out = str(tmp / f"out.{args.format}")
        print(f"MLP D={d} {'-'.join(map(str, hidden))} K={k}, {args.rows:,} rows "
              f"({os.path.getsize(csv) / 2**20:.0f} MiB CSV), --format {args.format}, {os.cpu_count()} CPUs")
        t_local = min(timed(local, model, csv, out, args.format) for _ in range(args.repeat))
        print(f"{'local (one process)':<34}{args.rows / t_local:>12,.0f} rows/s   {t_local:6.2f} s")
        rates, rates_dir = {}, {}
        for n in [int(w) for w in args.workers.split(",")]:
            t = time.perf_counter()
            with (LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address="127.0.0.1:0", silence_logs=logging.CRITICAL) as cluster,
                  Client(cluster) as client):
                start = time.perf_counter() - t
                parts = max(1, 4 * n)  # about 4 partitions per worker
                partition = args.chunk * max(1, -(-args.rows // (parts * args.chunk)))
                on_dask(client, model, csv, out, args.chunk, partition)  # warm: imports on the workers
                dt = min(timed(on_dask, client, model, csv, out, args.chunk, partition) for _ in range(args.repeat))
                rates[n] = args.rows / dt
                n_parts = -(-args.rows // partition)
                print(f"{f'dask, {n} worker(s), {n_parts} partitions':<34}{rates[n]:>12,.0f} rows/s   {dt:6.2f} s"
                      f"   x{t_local / dt:.2f} vs local   (cluster start {start:.1f} s, not included)")
                t_dir = min(timed(on_dask, client, model, csv, str(tmp / "parts") + "/", args.chunk, partition,
                                  args.format)
                            for _ in range(args.repeat))
                print(f"{'  the same, -o DIR/ (no concatenation)':<34}{args.rows / t_dir:>12,.0f} rows/s   "
                      f"{t_dir:6.2f} s   x{t_local / t_dir:.2f} vs local")
                rates_dir[n] = args.rows / t_dir
                if n == 1:  # the fixed cost of a partition: many small partitions against few large ones
                    chunk = 1024
                    few, many = chunk * max(1, args.rows // (4 * chunk)), chunk
                    t_few = min(timed(on_dask, client, model, csv, out, chunk, few) for _ in range(args.repeat))
                    t_many = min(timed(on_dask, client, model, csv, out, chunk, many) for _ in range(args.repeat))
                    n_few, n_many = -(-args.rows // few), -(-args.rows // many)
                    per = (t_many - t_few) / (n_many - n_few) if n_many > n_few else float("nan")
                    print(f"{'overhead per partition (1 worker)':<34}{per * 1e3:>12.1f} ms      "
                          f"({n_many} partitions {t_many:.2f} s vs {n_few} partitions {t_few:.2f} s)")
        ws = sorted(rates)
        if len(ws) >= 2:
            print(f"speed-up {ws[-1]} vs {ws[0]} worker(s): x{rates[ws[-1]] / rates[ws[0]]:.2f} (one output file), "
                  f"x{rates_dir[ws[-1]] / rates_dir[ws[0]]:.2f} (-o DIR/)")
        print("note: the local process's BLAS may use every CPU; dask workers run one BLAS thread each")


if __name__ == "__main__":
    main()
