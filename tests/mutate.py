"""Mutation testing of jacprop's numerical and IO core with mutmut (``make mutate``; issue #20).

    python tests/mutate.py jacprop/propagate.py jacprop/io/reader.py   # these modules
    python tests/mutate.py --all                                    # the whole core (CORE below)
    python tests/mutate.py --tests tests/test_x.py -- jacprop/io/reader.py   # only these tests: a lower bound
    python tests/mutate.py --mutants '*_ids__mutmut_*' -- jacprop/io/reader.py   # only these mutants (fnmatch)

Each module is mutated in its own scratch copy of the repository (``--workdir``, default
/tmp/jacprop-mutate/<module>), so the work tree stays clean and runs of different modules do not
share state.  Only the test files mapped to the module (TESTS) run, and mutmut runs, for each
mutant, only the tests among them that call the mutated function.  Prints one line per module:
killed, survived, other (timeouts, suspicious, not checked) and the run time.  ``mutmut`` must be
on PATH or given by --mutmut (the Makefile uses the dev venv outside the repository).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The numerical and IO core, and the tests that check each module's results (the fast selection).
TESTS = {
    "jacprop/engine.py": ["tests/test_engine.py", "tests/test_mutants_engine.py", "tests/test_mutants_engine2.py"],
    "jacprop/graph.py": ["tests/test_engine.py", "tests/test_mutants_engine.py", "tests/test_npz.py",
                         "tests/test_mutants_engine2.py"],
    # base.py also holds the ops' (de)serialisation, which the NPZ tests exercise
    "jacprop/ops/base.py": ["tests/test_ops.py", "tests/test_engine.py", "tests/test_mutants_engine.py",
                            "tests/test_npz.py", "tests/test_mutants_ops.py"],
    **{f"jacprop/ops/{m}.py": ["tests/test_ops.py", "tests/test_engine.py", "tests/test_mutants_ops.py"]
       for m in ("structure", "norm", "merge")},
    **{f"jacprop/ops/{m}.py": ["tests/test_ops.py", "tests/test_engine.py", "tests/test_mutants_ops.py",
                               "tests/test_mutants_ops2.py"]
       for m in ("dense", "spatial")},
    "jacprop/ops/activations.py": ["tests/test_ops.py", "tests/test_constants.py", "tests/test_mutants_activations.py"],
    "jacprop/ops/tensor.py": ["tests/test_onnx.py", "tests/test_ops.py", "tests/test_mutants_ops2.py"],
    "jacprop/ops/tensor_index.py": ["tests/test_onnx.py", "tests/test_ops.py", "tests/test_mutants_ops2.py"],
    "jacprop/ops/conv_variants.py": ["tests/test_ops.py", "tests/test_recurrent.py", "tests/test_mutants_ops2.py"],
    "jacprop/ops/contract.py": ["tests/test_hessian_ops.py"],
    "jacprop/ops/time_distributed.py": ["tests/test_recurrent.py", "tests/test_recurrent_hessian.py",
                                        "tests/test_mutants_ops2.py"],
    "jacprop/ops/recurrent.py": ["tests/test_recurrent.py", "tests/test_cudnn.py", "tests/test_mutants_ops2.py"],
    "jacprop/ops/recurrent_second.py": ["tests/test_recurrent_hessian.py", "tests/test_mutants_ops2.py",
                                        "tests/test_mutants_second.py"],
    # the model-level Hessians, H u and check --order 2 (not test_hessian_ops.py: the ops' own rules, 3x slower)
    "jacprop/second_order.py": ["tests/test_hessian.py", "tests/test_hvp.py", "tests/test_hessian_check.py",
                                "tests/test_mutants_second.py"],
    "jacprop/parallel.py": ["tests/test_engine.py", "tests/test_mutants_engine.py", "tests/test_mutants_engine2.py",
                            "tests/test_speed_contract.py", "tests/test_mutants_parallel.py"],
    "jacprop/propagate.py": ["tests/test_mutants_propagate3.py", "tests/test_propagate.py",
                             "tests/test_holes_propagate.py", "tests/test_gum2.py", "tests/test_extremes.py",
                             "tests/test_mutants_uncertainty2.py"],
    "jacprop/commands/propagate.py": ["tests/test_propagate.py", "tests/test_holes_propagate.py"],
    "jacprop/io/reader.py": ["tests/test_holes_io.py", "tests/test_csv_fast.py", "tests/test_bad_inputs.py",
                             "tests/test_reader_dialects.py", "tests/test_cli.py", "tests/test_mutants_io.py",
                             "tests/test_mutants_io2.py"],
    "jacprop/io/dialect.py": ["tests/test_reader_dialects.py", "tests/test_holes_io.py", "tests/test_csv_fast.py",
                              "tests/test_bad_inputs.py", "tests/test_mutants_io.py", "tests/test_mutants_io2.py"],
    "jacprop/io/fastcsv.py": ["tests/test_csv_fast.py", "tests/test_mutants_io.py", "tests/test_mutants_io2.py"],
    "jacprop/io/numtext.py": ["tests/test_cli.py", "tests/test_cli_files.py", "tests/test_holes_io.py",
                              "tests/test_speed_contract.py", "tests/test_mutants_io2.py"],
    "jacprop/io/writers.py": ["tests/test_holes_io.py", "tests/test_cli.py", "tests/test_cli_files.py",
                              "tests/test_bad_inputs.py", "tests/test_mutants_io.py", "tests/test_mutants_io2.py"],
    "jacprop/io/readback.py": ["tests/test_propagate.py", "tests/test_cli.py", "tests/test_cli_propagate.py",
                               "tests/test_holes_propagate.py", "tests/test_mutants_io.py",
                               "tests/test_mutants_io2.py"],
    "jacprop/io/matrices.py": ["tests/test_propagate.py", "tests/test_holes_propagate.py",
                               "tests/test_cli_propagate.py",
                               "tests/test_metrology.py", "tests/test_mutants_io2.py"],
    **{f"jacprop/uncertainty/{m}.py": ["tests/test_propagate.py", "tests/test_holes_propagate.py",
                                        "tests/test_metrology.py", "tests/test_cli_propagate.py",
                                        "tests/test_cli_options.py", "tests/test_mutants_uncertainty.py",
                                        "tests/test_mutants_uncertainty2.py"]
       for m in ("montecarlo", "distributions", "inputs")},
    # coverage.py: with its own millisecond tests in the selection (mutmut runs the fastest covering test first and
    # stops at the first failure) a mutant that breaks the continued fraction or the Newton iteration fails at once;
    # one that only slows them still costs this selection's timeout: `--tests tests/test_mutants_coverage.py` judges
    # all 529 in 2 minutes (tests/mutation-mut-prop.md)
    "jacprop/uncertainty/coverage.py": ["tests/test_mutants_coverage.py", "tests/test_propagate.py",
                                        "tests/test_holes_propagate.py", "tests/test_metrology.py",
                                        "tests/test_cli_propagate.py", "tests/test_cli_options.py",
                                        "tests/test_mutants_uncertainty.py", "tests/test_mutants_uncertainty2.py"],
    "jacprop/uncertainty/curvature.py": ["tests/test_gum2.py", "tests/test_mutants_uncertainty2.py"],
    "jacprop/uncertainty/first_order.py": ["tests/test_extremes.py", "tests/test_propagate.py",
                                           "tests/test_holes_propagate.py", "tests/test_mutants_uncertainty2.py"],
    "jacprop/commands/gates.py": ["tests/test_propagate.py", "tests/test_holes_propagate.py",
                                  "tests/test_cli_propagate.py", "tests/test_gum2.py",
                                  "tests/test_mutants_uncertainty2.py"],
    "jacprop/commands/curvature.py": ["tests/test_gum2.py", "tests/test_mutants_uncertainty2.py"],
    # the loaders' weight mapping: the samples Keras wrote (against TensorFlow's numbers), and the weights read back
    # independently with h5py / numpy in tests/test_mutants_loaders.py
    "jacprop/loaders/keras_layers.py": ["tests/test_keras.py", "tests/test_holes_keras.py", "tests/test_keras_old.py",
                                        "tests/test_constants.py", "tests/test_recurrent.py", "tests/test_cudnn.py",
                                        "tests/test_mutants_loaders.py"],
    "jacprop/loaders/keras_norm.py": ["tests/test_keras.py", "tests/test_holes_keras.py", "tests/test_keras_old.py",
                                      "tests/test_constants.py", "tests/test_mutants_loaders.py"],
    "jacprop/loaders/keras_config.py": ["tests/test_keras.py", "tests/test_holes_keras.py"],
    "jacprop/loaders/keras_recurrent.py": ["tests/test_recurrent.py", "tests/test_keras.py", "tests/test_cudnn.py",
                                           "tests/test_keras_old.py", "tests/test_mutants_loaders.py"],
    "jacprop/loaders/keras_more.py": ["tests/test_keras.py", "tests/test_keras_old.py", "tests/test_holes_keras.py",
                                      "tests/test_mutants_loaders.py"],
    "jacprop/loaders/npz.py": ["tests/test_npz.py", "tests/test_names.py", "tests/test_mutants_loaders.py"],
}
CORE = list(TESTS)
# Slow tests that send signals or fill pipes: they check the CLI's process handling, not numbers.
# The RNN benchmark's smoke test runs benchmarks/, which the scratch copy does not hold.
DESELECT = ["tests/test_bad_inputs.py::test_ctrl_c_exits_130_and_leaves_no_file",
            "tests/test_bad_inputs.py::test_closed_pipe_ends_quietly",
            "tests/test_recurrent.py::test_bench_rnn_smoke"]


def copy_tree(dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".hypothesis")
    for name in ("jacprop", "tests", "sample_models"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")


def configure(dest: Path, module: str, only_tests=None, timeout_multiplier=2.0) -> None:
    tests = [t for t in (only_tests or TESTS[module]) if (ROOT / t).exists()]
    deselect = [a for t in DESELECT if t.split("::")[0] in tests for a in ("--deselect", t)]
    with open(dest / "pyproject.toml", "a") as f:
        f.write("\n[tool.mutmut]\n"
                f"source_paths = {json.dumps(['jacprop'])}\n"
                f"only_mutate = {json.dumps([module])}\n"
                f"also_copy = {json.dumps(['sample_models'])}\n"
                f"pytest_add_cli_args_test_selection = {json.dumps(tests)}\n"
                f"pytest_add_cli_args = {json.dumps(['-p', 'no:cacheprovider', *deselect])}\n"
                # a mutant is stopped after (t + 1) * 2 * multiplier CPU seconds or (t + 1) * multiplier WALL
                # seconds, t its tests' time in the clean run: mutmut's default 15 spends minutes on each mutant
                # that loops forever (the reader has a dozen); under load the wall limit calls slow survivors
                # timeouts (--timeout-multiplier)
                f"timeout_multiplier = {timeout_multiplier}\n")


def counts(dest: Path, mutmut: str) -> dict:
    out = subprocess.run([mutmut, "results", "--all", "true"], cwd=dest, capture_output=True, text=True).stdout
    status = [m.group(1) for m in re.finditer(r":\s*([a-z ]+?)\s*$", out, re.M)]
    return {s: status.count(s) for s in sorted(set(status))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("modules", nargs="*", help="modules to mutate (paths under jacprop/)")
    p.add_argument("--all", action="store_true", help="the whole core: " + " ".join(CORE))
    p.add_argument("--workdir", default="/tmp/jacprop-mutate")
    p.add_argument("--mutmut", default=shutil.which("mutmut") or "mutmut")
    p.add_argument("--max-children", type=int, default=2)
    p.add_argument("--timeout-multiplier", type=float, default=2.0,
                   help="mutmut's timeout_multiplier (default 2; more on a loaded machine, where the wall-clock "
                        "limit stops surviving mutants whose tests only ran slowly)")
    p.add_argument("--tests", nargs="+", metavar="FILE",
                   help="run only these test files (a quick lower bound of the score; default: TESTS)")
    p.add_argument("--mutants", nargs="+", default=[], metavar="GLOB",
                   help="run only the mutants whose names match (re-checking survivors after new tests)")
    args = p.parse_args(argv)
    modules = CORE if args.all else [m for m in args.modules if m in TESTS]
    skipped = [m for m in args.modules if m not in TESTS and not args.all]
    if skipped:
        print(f"not in the core (no test selection in tests/mutate.py): {' '.join(skipped)}", file=sys.stderr)
    if not modules:
        print("no core module to mutate (MUTATE_MODULES is empty: nothing in the core differs from main; "
              "make mutate ALL=1 runs the whole core)")
        return 0
    rows = []
    for module in modules:
        dest = Path(args.workdir) / module.replace("/", "_").removesuffix(".py")
        copy_tree(dest)
        configure(dest, module, args.tests, args.timeout_multiplier)
        start = time.monotonic()
        with open(dest / "mutmut.log", "w") as log:
            # one BLAS thread: mutmut's timeout is a CPU-time limit, and spinning BLAS threads spend CPU
            # seconds faster than wall seconds (under load, tests that only ran slowly were called timeouts)
            env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
            r = subprocess.run([args.mutmut, "run", "--max-children", str(args.max_children), *args.mutants], cwd=dest,
                               stdout=log, stderr=subprocess.STDOUT, env=env)
        seconds = time.monotonic() - start
        c = counts(dest, args.mutmut)
        killed, survived = c.pop("killed", 0), c.pop("survived", 0)
        score = killed / max(1, killed + survived)
        rows.append((module, killed, survived, c, seconds))
        print(f"{module}: {killed} killed, {survived} survived, other {c or 0}, score {score:.1%}, "
              f"{seconds / 60:.1f} min (exit {r.returncode}; details: cd {dest} && mutmut results / mutmut show NAME)",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
