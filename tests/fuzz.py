"""Mutation fuzzing of model files, model configs and CSVs (hypothesis-driven).

Invariant: every input either works or fails with a JacpropError (the CLI's clean exit 2);
never another exception, never longer than TIME_LIMIT seconds per case.  Run

    python tests/fuzz.py --examples 2000 --save        # make fuzz: a longer run
    python tests/fuzz.py --examples 150                # what the test suite runs

The test suite runs it in a subprocess with an address-space limit, so memory stays
bounded too.  With --save, failing inputs are written to tests/fuzz_corpus/, which the
suite replays on every run.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
import signal
import sys
import tempfile
import traceback
from pathlib import Path

import h5py
import numpy as np
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

import jacprop
from jacprop.errors import JacpropError

ROOT = Path(__file__).parent.parent
SAMPLES = ROOT / "sample_models"
CORPUS = Path(__file__).parent / "fuzz_corpus"
TIME_LIMIT = 10
SEED_MODELS = [SAMPLES / "bishop_tanh.npz", *sorted((SAMPLES / "keras").glob("*.k2.h5"))[:6],
               *sorted((SAMPLES / "keras").glob("*.k3.keras"))[:6], *sorted((SAMPLES / "keras").glob("*.k3.h5"))[:4]]
SEED_CSV = (SAMPLES / "bishop_tanh.csv").read_bytes()


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang(f"case took longer than {TIME_LIMIT} s")


def mutate_bytes(data: bytes, edits) -> bytes:
    """Apply (kind, position, payload) edits: flip, insert, delete, truncate, duplicate."""
    buf = bytearray(data)
    for kind, pos, payload in edits:
        if not buf:
            break
        i = pos % len(buf)
        if kind == "flip":
            buf[i] ^= 1 << (pos % 8)
        elif kind == "insert":
            buf[i:i] = payload
        elif kind == "delete":
            del buf[i : i + max(1, len(payload))]
        elif kind == "truncate":
            del buf[i:]
        elif kind == "overwrite":
            buf[i : i + len(payload)] = payload
        elif kind == "duplicate":
            buf[i:i] = buf[i : i + 64]
    return bytes(buf)


JUNK = [None, -1, 0, 10**30, -(10**30), 1e308, float("nan"), "", "x" * 1000,
        [], {}, [1, 2], {"a": 1}, True, [[[[[]]]]], "relu"]


def mutate_json(obj, choices):
    """Replace values in a JSON tree, guided by ``choices`` (integers)."""
    nodes = []

    def walk(o, parent, key):
        nodes.append((parent, key))
        if isinstance(o, dict):
            for k, v in o.items():
                walk(v, o, k)
        elif isinstance(o, list):
            for k, v in enumerate(o):
                walk(v, o, k)

    walk(obj, None, None)
    for c in choices:
        parent, key = nodes[c % len(nodes)]
        if parent is not None:
            parent[key] = JUNK[(c // len(nodes)) % len(JUNK)]
    return obj


def check_model(data: bytes, suffix: str) -> str | None:
    """None if the model loads and computes or fails cleanly; else a description of the failure."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"m{suffix}"
        path.write_bytes(data)
        return _guarded(lambda: _load_and_run(path))


def _load_and_run(path):
    model = jacprop.load(path)
    if model.D * model.K <= 10**6:
        jacprop.jacobian(model, np.zeros((2, model.D)))
        jacprop.jacobian(model, np.zeros((2, model.D)), mode="forward")


def check_csv(data: bytes) -> str | None:
    from click.testing import CliRunner

    from jacprop.cli import main

    def run():
        r = CliRunner().invoke(main, ["jacobian", str(SAMPLES / "bishop_tanh.npz"), "-", "--format", "csv"], input=data)
        if r.exit_code not in (0, 2):
            raise AssertionError(f"exit code {r.exit_code}: {r.output[-500:]}")
        if r.exit_code == 2 and (not r.stderr.startswith("jacprop: error: ") or "internal error" in r.stderr
                                 or r.stderr.count("\n") != 1):
            raise AssertionError(f"not a clean error: {r.stderr[-500:]}")

    return _guarded(run)


def _guarded(fn) -> str | None:
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TIME_LIMIT)
    try:
        fn()
        return None
    except JacpropError:
        return None
    except Exception:
        return traceback.format_exc(limit=6)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def config_variant(path: Path, choices) -> tuple[bytes, str]:
    """The seed model with its JSON config mutated (HDF5 attribute or .keras member)."""
    if path.suffix == ".keras":
        import zipfile

        out = io.BytesIO()
        with zipfile.ZipFile(path) as zin, zipfile.ZipFile(out, "w") as zout:
            for item in zin.namelist():
                data = zin.read(item)
                if item == "config.json":
                    data = json.dumps(mutate_json(json.loads(data), choices)).encode()
                zout.writestr(item, data)
        return out.getvalue(), ".keras"
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "m.h5"
        shutil.copy(path, copy)
        with h5py.File(copy, "a") as f:
            f.attrs["model_config"] = json.dumps(mutate_json(json.loads(f.attrs["model_config"]), choices))
        return copy.read_bytes(), ".h5"


EDITS = st.lists(st.tuples(st.sampled_from(["flip", "insert", "delete", "truncate", "overwrite", "duplicate"]),
                           st.integers(0, 2**31), st.binary(min_size=1, max_size=8)), min_size=1, max_size=4)
STATS = {"cases": 0, "failures": []}


def record(kind, data, suffix, failure):
    STATS["cases"] += 1
    if failure:
        STATS["failures"].append((kind, data, suffix, failure))


@st.composite
def case(draw):
    kind = draw(st.sampled_from(["bytes", "config", "csv"]))
    if kind == "csv":
        return kind, mutate_bytes(SEED_CSV, draw(EDITS)), ".csv"
    path = draw(st.sampled_from(SEED_MODELS))
    if kind == "config" and path.suffix != ".npz":
        data, suffix = config_variant(path, draw(st.lists(st.integers(0, 10**6), min_size=1, max_size=3)))
        return kind, data, suffix
    return "bytes", mutate_bytes(path.read_bytes(), draw(EDITS)), path.suffix


def run(examples: int, seed_value: int) -> dict:
    @seed(seed_value)
    @settings(max_examples=examples, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case())
    def one(c):
        kind, data, suffix = c
        record(kind, data, suffix, check_csv(data) if kind == "csv" else check_model(data, suffix))

    one()
    return STATS


def replay_corpus() -> list[tuple[str, str]]:
    """Every saved input must still load and compute, or fail cleanly."""
    failures = []
    for path in sorted(CORPUS.glob("*")):
        if path.name == "README.md":
            continue
        data = path.read_bytes()
        failure = check_csv(data) if path.suffix == ".csv" else check_model(data, path.suffix)
        if failure:
            failures.append((path.name, failure))
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=150)
    parser.add_argument("--seed", type=int, default=20261130)
    parser.add_argument("--save", action="store_true", help="write failing inputs to tests/fuzz_corpus/")
    args = parser.parse_args()
    stats = run(args.examples, args.seed)
    replayed = replay_corpus()
    for kind, data, suffix, failure in stats["failures"]:
        print(f"FAILURE ({kind}, {suffix}, {len(data)} bytes):\n{failure}", file=sys.stderr)
        if args.save:
            CORPUS.mkdir(exist_ok=True)
            (CORPUS / (hashlib.sha256(data).hexdigest()[:16] + suffix)).write_bytes(data)
    for name, failure in replayed:
        print(f"CORPUS FAILURE {name}:\n{failure}", file=sys.stderr)
    print(f"fuzz: {stats['cases']} cases, {len(stats['failures'])} failures, corpus {len(replayed)} failures")
    sys.exit(1 if stats["failures"] or replayed else 0)


if __name__ == "__main__":
    main()
