"""The engine's speed in two (or more) commits of jacprop, side by side in one run (issue 12 item 5).

    python benchmarks/bench_trees.py --tree pre=70abb41 --tree main=main --repeats 5

Each commit is exported with ``git archive`` to a temporary directory; each repeat runs one fresh
child process per tree, the trees taking turns (interleaved, the same interpreter, environment and
niceness), and each child times ``jacprop.jacobian`` (float64) on the MLPs of that tree's own
``benchmarks/bench.py`` (``weights``, ``jacprop_model``: the same seeded weights) as the median of a
few calls after a warm-up (for N <= 100, of 200 calls each).  The figure per cell is the median over
repeats; the ratios are seconds(tree) / seconds(first tree), of wall time and of the process's CPU time
(both threads).  Prints a Markdown table; writes nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

CELLS = [("small", 1), ("small", 100), ("small", 1000), ("small", 100_000), ("medium", 1), ("medium", 100),
         ("medium", 1000), ("medium", 10_000), ("wide-in", 1), ("wide-in", 100), ("wide-in", 1000), ("wide-out", 1),
         ("wide-out", 100), ("wide-out", 1000), ("wide-out", 10_000)]

CHILD = """
import json, sys, time, statistics
import numpy as np
import bench, jacprop
assert jacprop.__file__.startswith(sys.argv[1]), jacprop.__file__
out = {}
for shape, n in json.loads(sys.argv[2]):
    ws = bench.weights(shape, np.float64)
    model = bench.jacprop_model(ws)
    X = np.random.default_rng(1).normal(size=(n, ws[0][0].shape[0]))
    jacprop.jacobian(model, X)
    times, cpu, budget = [], [], time.perf_counter() + 1.5
    reps = 200 if n <= 100 else 1  # a small call is timed over many, so that the clocks resolve it
    while len(times) < 3 or (time.perf_counter() < budget and len(times) < 15):
        t, c = time.perf_counter(), time.process_time()
        for _ in range(reps):
            jacprop.jacobian(model, X)
        times.append((time.perf_counter() - t) / reps)
        cpu.append((time.process_time() - c) / reps)
    out[f"{shape}/{n}"] = statistics.median(times), statistics.median(cpu)
print(json.dumps(out))
"""


def export(commit: str, root: str) -> str:
    """The tree of ``commit`` in a fresh directory under ``root``."""
    where = tempfile.mkdtemp(prefix=f"tree-{commit[:10]}-", dir=root)
    archive = subprocess.run(["git", "archive", commit], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", where], input=archive, check=True)
    return where


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tree", action="append", required=True, help="NAME=COMMIT (the first is the reference)")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    trees = [t.split("=", 1) for t in args.tree]
    with tempfile.TemporaryDirectory() as root:
        paths = {name: export(commit, root) for name, commit in trees}
        runs = {name: [] for name, _ in trees}
        loads = [os.getloadavg()[0]]
        for _ in range(args.repeats):
            for name, _ in trees:
                env = {**os.environ, "PYTHONPATH": f"{paths[name]}:{paths[name]}/benchmarks"}
                out = subprocess.run([sys.executable, "-c", CHILD, paths[name], json.dumps(CELLS)], env=env,
                                     cwd=paths[name], capture_output=True, text=True, check=True).stdout
                runs[name].append(json.loads(out))
            loads.append(os.getloadavg()[0])
    ref = trees[0][0]
    print(f"load average (1 min) during the run: {min(loads):.1f} to {max(loads):.1f}; {args.repeats} repeats\n")
    print("| shape | N | " + " | ".join(f"{n} ms" for n, _ in trees) + " | "
          + " | ".join(f"{n} / {ref} wall | CPU" for n, _ in trees[1:]) + " |")
    print("|---|---:|" + "---:|" * (3 * len(trees) - 2))
    for shape, n in CELLS:
        key = f"{shape}/{n}"
        med = {name: [statistics.median(r[key][i] for r in runs[name]) for i in (0, 1)] for name, _ in trees}
        ratios = [f"{med[name][0] / med[ref][0]:.2f} | {med[name][1] / med[ref][1]:.2f}" for name, _ in trees[1:]]
        print(f"| {shape} | {n:,} | " + " | ".join(f"{med[name][0] * 1e3:.3g}" for name, _ in trees) + " | "
              + " | ".join(ratios) + " |")


if __name__ == "__main__":
    main()
