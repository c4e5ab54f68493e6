"""Record golden outputs of the jacprop CLI: tests/golden/cases/<case>.txt (see tests/golden/README.md).

    python tests/golden/make_golden.py [--jobs N]      (or: make golden)

Each case is one command, run as a subprocess from the repository root with COLUMNS=100, NO_COLOR=1 and
TERM=dumb.  A case file holds the command, its exit code, its stdout and stderr, and a digest of every file
it wrote (.npy: shape, dtype, sha256 of the array bytes; .npz: the same per member).  Commands that start
with ``jacprop`` run as ``sys.executable -m jacprop``; the README's examples run through bash with the
venv's bin/ on PATH, as tests/test_readme.py runs them.  Each case gets a fresh temporary directory, written
<TMP> in the case file; the bad-input cases make their files there as tests/test_bad_inputs.py does.

tests/test_golden.py re-runs the command stored in every case file and compares, with the functions here.
"""

import argparse
import difflib
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CASES_DIR = HERE / "cases"
INPUTS_DIR = HERE / "inputs"
ENVIRONMENT_FILE = HERE / "ENVIRONMENT.txt"
SAMPLES = "sample_models"
KERAS = f"{SAMPLES}/keras"
TMP = "<TMP>"
TIMEOUT = 120
HEADER = ("# jacprop golden output (tests/golden/README.md). "
          "Regenerate with `make golden`; a diff here is a behaviour change.")
FIELDS = ("case", "command", "shell", "stdin", "setup", "exit")

sys.path.insert(0, str(HERE))
import bad_files  # noqa: E402


@dataclass(frozen=True)
class Case:
    name: str
    command: str  # one line; "jacprop ..." is shlex-split and run as `python -m jacprop ...`, unless shell
    shell: bool = False  # run with bash -c (the README's examples, pipes and all)
    stdin: str | None = None  # a file, relative to the repository root, fed on stdin (else /dev/null)
    setup: str | None = None  # "bad:<id>" / "accepted:<id>": files made in <TMP> by bad_files.make


# ---------------------------------------------------------------------------------------------- the cases

def q(*args) -> str:
    out = shlex.join(str(a) for a in args)
    assert shlex.split(out) == [str(a) for a in args], args
    return out


def readme_cases() -> list[Case]:
    """Every `$ ` command of the README's ```console blocks (the parsing of tests/test_readme.py)."""
    text = (ROOT / "README.md").read_text()
    cases = []
    for block in re.findall(r"```console\n(.*?)```", text, re.S):
        for part in re.split(r"^\$ ", block, flags=re.M)[1:]:
            command = part.partition("\n")[0]
            cases.append(Case(f"readme-{len(cases) + 1:02d}-{slug(command)}", command, shell=True))
    return cases


def slug(command: str) -> str:
    """A short name for a README command: its words, the first file by its stem, the other files left out."""
    words, seen_file = [], False
    for word in command.split():
        if word == "jacprop":
            continue
        if "/" in word:
            if not seen_file:
                words.append(Path(word).name.split(".")[0])
            seen_file = True
            continue
        words.append(word)
    return re.sub(r"[^A-Za-z0-9_.]+", "-", "-".join(words)).strip("-")[:60].strip("-")


def help_cases() -> list[Case]:
    cases = [Case("cli-no-arguments", "jacprop"), Case("cli-help", "jacprop --help"),
             Case("cli-version", "jacprop --version")]
    for command in ("jacobian", "hessian", "propagate", "check", "inspect", "convert"):
        cases.append(Case(f"cli-{command}-help", f"jacprop {command} --help"))
    return cases


NPZ_SAMPLES = {  # name: extra arguments (what the file does not say: torch_mlp has no activations and an id column)
    "bishop_tanh": ([], []),
    "torch_mlp": (["--id-column", "id", "--activation", "relu"], ["--activation", "relu"]),
}


def npz_cases() -> list[Case]:
    cases = []
    for s, (extra, inspect_extra) in NPZ_SAMPLES.items():
        m, c = f"{SAMPLES}/{s}.npz", f"{SAMPLES}/{s}.csv"
        p = f"npz-{s}"

        def add(what, *args, p=p, **kw):
            cases.append(Case(f"{p}-{what}", q("jacprop", *args), **kw))

        for fmt in ("csv", "jsonl", "table"):
            add(f"jacobian-{fmt}", "jacobian", m, c, *extra, "--format", fmt)
        add("jacobian-npy", "jacobian", m, c, *extra, "-o", f"{TMP}/j.npy")
        add("jacobian-npz", "jacobian", m, c, *extra, "-o", f"{TMP}/j.npz")
        add("inspect", "inspect", m, *inspect_extra)
        add("inspect-json", "inspect", m, *inspect_extra, "--format", "json")
        add("check", "check", m, c, *extra)
        add("check-json", "check", m, c, *extra, "--format", "json")
        add("check-order-2-json", "check", m, c, *extra, "--order", "2", "--allow-flat", "--format", "json")
        for fmt in ("csv", "jsonl", "table"):
            add(f"hessian-{fmt}", "hessian", m, c, *extra, "--format", fmt)
        add("hessian-npz", "hessian", m, c, *extra, "-o", f"{TMP}/h.npz")
        prop = ["propagate", m, c, *extra, "--dx", "0.01"]
        add("propagate", *prop)
        add("propagate-method-all", *prop, "--method", "all", "--seed", "0")
        add("propagate-budget", *prop, "--budget")
        add("propagate-output-cov", *prop, "--output-cov")
        add("propagate-check-linearity", *prop, "--check-linearity")
        add("propagate-coverage-2", *prop, "--coverage", "2")
        add("propagate-level-0.95", *prop, "--level", "0.95")
        add("propagate-table", *prop, "--format", "table")
        add("propagate-jsonl", *prop, "--format", "jsonl")
        add("propagate-npz", *prop, "-o", f"{TMP}/u.npz")
        # the pipeline form, jacobian ... | propagate, fed from a saved jacobian output (tests/golden/inputs)
        add("pipe-csv-propagate", "propagate", "--dx", "0.01", stdin=f"tests/golden/inputs/{s}.jacobian.csv")
        add("pipe-jsonl-propagate", "propagate", "--dx", "0.01", stdin=f"tests/golden/inputs/{s}.jacobian.jsonl")
        add("saved-npz-propagate", "propagate", f"tests/golden/inputs/{s}.jacobian.npz", "--dx", "0.01")
    # a few more options of jacobian, and convert, on the Bishop sample
    m, c = f"{SAMPLES}/bishop_tanh.npz", f"{SAMPLES}/bishop_tanh.csv"
    more = {
        "mode-forward": ["jacobian", m, c, "--mode", "forward"],
        "mode-reverse": ["jacobian", m, c, "--mode", "reverse"],
        "dtype-float32": ["jacobian", m, c, "--dtype", "float32"],
        "rows-outputs-wrt": ["jacobian", m, c, "--rows", "2-3,6", "--outputs", "y[1]", "--wrt", "flow,temperature"],
        "hessian-diagonal-wrt": ["hessian", m, c, "--diagonal", "--wrt", "flow,temperature", "--format", "csv"],
        "summary-csv": ["jacobian", m, c, "--summary", "--format", "csv"],
        "convert": ["convert", m, "-o", f"{TMP}/c.npz"],
    }
    cases += [Case(f"npz-bishop_tanh-{k}", q("jacprop", *v)) for k, v in more.items()]
    return cases


def pipeline_inputs() -> dict[str, list[str]]:
    """tests/golden/inputs/<file>: the jacobian output the pipeline cases read, as today's code writes it."""
    out = {}
    for s, (extra, _) in NPZ_SAMPLES.items():
        for fmt in ("csv", "jsonl", "npz"):
            out[f"{s}.jacobian.{fmt}"] = ["jacobian", f"{SAMPLES}/{s}.npz", f"{SAMPLES}/{s}.csv", *extra,
                                          "--format", fmt]
    return out


KERAS_FORMATS = {"k2.h5": "k2h5", "k3.keras": "k3keras", "k3.h5": "k3h5"}


def keras_cases() -> list[Case]:
    """Every Keras file through `jacobian --format csv`; every model through `inspect` and (when jacprop can read
    it) `check --format json`, and two of the other six (jsonl, table, npy, npz, inspect json, check table) in
    turn, each on one of its files, in rotation: every format runs on 5 or 6 models and every file kind.
    (All nine on every one of the 56 files would be 500 cases, too slow for a test.)"""
    manifest = json.loads((ROOT / KERAS / "manifest.json").read_text())
    extras = ["jacobian-jsonl", "jacobian-table", "jacobian-npy", "jacobian-npz", "inspect-json", "check"]
    cases = []
    for i, entry in enumerate(manifest):
        name, csv = entry["name"], f"{KERAS}/{entry['csv']}"
        files = list(entry["files"].items())

        def pick(j, i=i, name=name, files=files):
            fmt, file = files[(i + j) % len(files)]
            return f"keras-{name}-{KERAS_FORMATS[fmt]}", f"{KERAS}/{file}"

        for fmt, file in files:
            cases.append(Case(f"keras-{name}-{KERAS_FORMATS[fmt]}-jacobian-csv",
                              q("jacprop", "jacobian", f"{KERAS}/{file}", csv, "--format", "csv")))
        p, m = pick(0)
        cases.append(Case(f"{p}-inspect", q("jacprop", "inspect", m)))
        if entry["expect"] != "ok":
            continue
        p, m = pick(1)
        cases.append(Case(f"{p}-check-json", q("jacprop", "check", m, csv, "--format", "json")))
        for j in range(2):
            what = extras[(2 * i + j) % len(extras)]
            p, m = pick(2 + j)
            args = {
                "jacobian-jsonl": ["jacobian", m, csv, "--format", "jsonl"],
                "jacobian-table": ["jacobian", m, csv, "--format", "table"],
                "jacobian-npy": ["jacobian", m, csv, "-o", f"{TMP}/j.npy"],
                "jacobian-npz": ["jacobian", m, csv, "-o", f"{TMP}/j.npz"],
                "inspect-json": ["inspect", m, "--format", "json"],
                "check": ["check", m, csv],
            }[what]
            cases.append(Case(f"{p}-{what}", q("jacprop", *args)))
    return cases


def bad_cases() -> list[Case]:
    """The bad-input matrix, and the accepted variants, with their files made in a temporary directory."""
    cases = []
    with tempfile.TemporaryDirectory(prefix="jacprop-golden-") as tmp:
        for kind, ids in (("bad", [c[0] for c in bad_files.CASES]), ("accepted", [c[0] for c in bad_files.ACCEPTED])):
            for id_ in ids:
                d = Path(tmp) / id_
                d.mkdir()
                setup = f"{kind}:{id_}"
                args = [a.replace(str(d), TMP) for a in bad_files.make(setup, d)]
                cases.append(Case(f"{kind}-{id_}", q("jacprop", *args), setup=setup))
    return cases


def all_cases() -> list[Case]:
    cases = readme_cases() + help_cases() + npz_cases() + keras_cases() + bad_cases()
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})
    return cases


# ------------------------------------------------------------------------------------------ running one

# OpenBLAS picks its kernels for the CPU, and they round differently: with OPENBLAS_CORETYPE=SkylakeX instead
# of Haswell, 17 of these cases (Keras conv/functional Jacobians, `check` errors) differ in the last digits.
# The golden files were recorded with Haswell (this machine's setting); pinning it makes them independent of it.
BLAS = {"OPENBLAS_CORETYPE": "Haswell"}


def environment() -> dict[str, str]:
    env = {**os.environ, "COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb", **BLAS,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("FORCE_COLOR", None)
    return env


def argv(case: Case) -> list[str]:
    if case.shell:
        return ["bash", "-c", case.command]
    args = shlex.split(case.command)
    assert args[0] == "jacprop", case.command
    return [sys.executable, "-m", "jacprop", *args[1:]]


@dataclass
class Result:
    exit: int
    stdout: bytes
    stderr: bytes
    files: list[str]


def run(case: Case) -> Result:
    """Run ``case`` in a fresh temporary directory (<TMP>), from the repository root."""
    tmp = Path(tempfile.mkdtemp(prefix="jacprop-golden-"))
    try:
        if case.setup:
            made = [a.replace(str(tmp), TMP) for a in bad_files.make(case.setup, tmp)]
            if made != shlex.split(case.command)[1:]:
                raise AssertionError(f"{case.name}: setup {case.setup} now makes a different command:\n"
                                     f"  recorded: {case.command}\n  setup:    {q('jacprop', *made)}")
        before = set(tmp.rglob("*"))
        command = [a.replace(TMP, str(tmp)) for a in argv(case)]
        stdin = open(ROOT / case.stdin, "rb") if case.stdin else subprocess.DEVNULL
        try:
            p = subprocess.run(command, cwd=ROOT, env=environment(), stdin=stdin, capture_output=True, timeout=TIMEOUT)
        finally:
            if case.stdin:
                stdin.close()
        files = [line for f in sorted(set(tmp.rglob("*")) - before) for line in describe(f, tmp)]
        return Result(p.returncode, placeholder(p.stdout, tmp), placeholder(p.stderr, tmp), files)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def placeholder(data: bytes, tmp: Path) -> bytes:
    for t in {str(tmp.resolve()), str(tmp)}:
        data = data.replace(t.encode(), TMP.encode())
    return data


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def array_digest(a: np.ndarray) -> str:
    return f"dtype {a.dtype.str}, shape {tuple(a.shape)}, sha256 {sha256(np.ascontiguousarray(a).tobytes())}"


def describe(path: Path, tmp: Path) -> list[str]:
    """Stable text for a file a case wrote: arrays by their values, not by the container's bytes."""
    name = f"{TMP}/{path.relative_to(tmp)}"
    if path.is_dir():
        return [f"{name}/: directory"]
    try:
        if path.suffix == ".npy":
            return [f"{name}: npy, {array_digest(np.load(path, allow_pickle=False))}"]
        if path.suffix == ".npz":
            with zipfile.ZipFile(path) as z, np.load(path, allow_pickle=False) as npz:
                infos = z.infolist()
                lines = [f"{name}: npz, {len(infos)} members"]
                for info in infos:
                    kind = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}.get(
                        info.compress_type, str(info.compress_type))
                    lines.append(f"  {info.filename} ({kind}): {array_digest(npz[info.filename.removesuffix('.npy')])}")
                return lines
    except Exception as e:  # recorded as such: a change in what is unreadable shows too
        return [f"{name}: unreadable as {path.suffix}: {type(e).__name__}: {e}"]
    data = path.read_bytes()
    return [f"{name}: {len(data)} bytes, sha256 {sha256(data)}"]


# ----------------------------------------------------------------------------------------- the case file

def show(label: str, data: bytes) -> list[str]:
    """A section: a head with the size and sha256 of the exact bytes, then the text (not UTF-8: backslash escapes)."""
    body = data.decode("utf-8", errors="backslashreplace").split("\n")
    if body[-1] == "":
        body.pop()
    else:
        body.append("\\ no newline at end")
    newlines = data.count(b"\n")
    head = f"==== {label}: {newlines} lines, {len(data)} bytes" + (f", sha256 {sha256(data)}" if data else "") + " ===="
    return [head, *body]


def render(case: Case, result: Result) -> str:
    """The case file: what was run (read back by parse) and everything it gave."""
    values = (case.name, case.command, "bash" if case.shell else "no", case.stdin or "-", case.setup or "-",
              str(result.exit))
    lines = [HEADER, *(f"{k}: {v}" for k, v in zip(FIELDS, values))]
    lines += show("stdout", result.stdout) + show("stderr", result.stderr)
    lines += [f"==== files written: {sum(not f.startswith(' ') for f in result.files)} ====", *result.files,
              "==== end ===="]
    return "\n".join(lines) + "\n"


def parse(text: str) -> Case:
    """The Case a case file records (its header lines), so that its exact command can be re-run."""
    lines = text.split("\n")
    assert lines[0] == HEADER, "not a golden case file"
    fields = {}
    for line in lines[1 : 1 + len(FIELDS)]:
        key, sep, value = line.partition(": ")
        assert sep and key in FIELDS, line
        fields[key] = value
    assert tuple(fields) == FIELDS, fields
    none = lambda v: None if v == "-" else v
    return Case(fields["case"], fields["command"], shell=fields["shell"] == "bash", stdin=none(fields["stdin"]),
                setup=none(fields["setup"]))


def diff(recorded: str, now: str, name: str, limit: int = 120) -> str:
    lines = list(difflib.unified_diff(recorded.splitlines(), now.splitlines(), f"recorded {name}", "now",
                                      lineterm="", n=2))
    if len(lines) > limit:
        lines = lines[:limit] + [f"... {len(lines) - limit} more diff lines"]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------- the environment

ENVIRONMENT_SCRIPT = r"""
import ctypes, os, platform, re
from importlib import metadata
from pathlib import Path
import numpy as np

print(f"python {platform.python_version()} {platform.machine()}")
for dist in ("numpy", "h5py", "click", "rich", "pyarrow"):
    try:
        print(dist, metadata.version(dist))
    except metadata.PackageNotFoundError:
        print(dist, "not installed")
try:
    config = np.show_config(mode="dicts")
    blas = config["Build Dependencies"]["blas"]
    print("numpy blas", blas.get("name"), blas.get("version"))
    print("numpy SIMD found", " ".join(config["SIMD Extensions"].get("found", [])))
except Exception as e:
    print(f"numpy config unknown ({type(e).__name__})")
maps = Path("/proc/self/maps").read_text() if Path("/proc/self/maps").exists() else ""
for lib in sorted(set(re.findall(r"(/\S*openblas\S*\.so\S*)", maps))):
    for symbol in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename", "openblas_get_corename"):
        try:
            f = getattr(ctypes.CDLL(lib), symbol)
        except (OSError, AttributeError):
            continue
        f.restype = ctypes.c_char_p
        print("openblas core", f().decode(), "| OPENBLAS_CORETYPE", os.environ.get("OPENBLAS_CORETYPE", "unset"))
        break
"""


def environment_text() -> str:
    """What besides jacprop's code decides the bytes, as the cases see it (a child process in their environment):
    library versions, numpy's BLAS and the kernels it picked for this CPU, numpy's SIMD dispatch.  Recorded in
    ENVIRONMENT.txt; test_golden.py shows the difference when a case fails."""
    p = subprocess.run([sys.executable, "-c", ENVIRONMENT_SCRIPT], cwd=ROOT, env=environment(), capture_output=True,
                       text=True, timeout=TIMEOUT)
    return p.stdout + (f"(environment script failed: {p.stderr.strip()})\n" if p.returncode else "")


# -------------------------------------------------------------------------------------------------- main

def write_if_changed(path: Path, data: bytes, same=None) -> bool:
    if path.exists() and (same(path) if same else path.read_bytes() == data):
        return False
    path.write_bytes(data)
    return True


def make_inputs() -> int:
    """The saved jacobian outputs of tests/golden/inputs (an .npz is rewritten only when its arrays change)."""
    INPUTS_DIR.mkdir(exist_ok=True)
    changed = 0
    for name, args in pipeline_inputs().items():
        target = INPUTS_DIR / name
        if name.endswith(".npz"):
            with tempfile.TemporaryDirectory(prefix="jacprop-golden-") as tmp:
                out = Path(tmp) / name
                r = run(Case(name, q("jacprop", *args[:-2], "-o", out)))
                assert r.exit == 0, r
                digest = describe(out, Path(tmp))[1:]
                changed += write_if_changed(target, out.read_bytes(), lambda p,
                                            d=digest: describe(p, p.parent)[1:] == d)
        else:
            r = run(Case(name, q("jacprop", *args)))
            assert r.exit == 0 and r.stdout, r
            changed += write_if_changed(target, r.stdout)
    return changed


def jobs_default() -> int:
    return int(os.environ.get("JACPROP_GOLDEN_JOBS", 0)) or min(max(os.cpu_count() or 2, 2), 8)


def run_all(cases: list[Case], jobs: int) -> list[Result]:
    with ThreadPoolExecutor(jobs) as pool:
        return list(pool.map(run, cases))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=jobs_default(), help="cases run at once (default: CPUs, 2 to 8)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    write_if_changed(ENVIRONMENT_FILE, environment_text().encode())
    inputs_changed = make_inputs()
    cases = all_cases()
    results = run_all(cases, args.jobs)
    CASES_DIR.mkdir(exist_ok=True)
    written = sum(write_if_changed(CASES_DIR / f"{c.name}.txt", render(c, r).encode()) for c, r in zip(cases, results))
    stale = [p for p in CASES_DIR.glob("*.txt") if p.stem not in {c.name for c in cases}]
    for p in stale:
        p.unlink()
    print(f"{len(cases)} cases in {time.perf_counter() - t0:.1f} s: {written} case files written, "
          f"{len(cases) - written} unchanged, {len(stale)} removed; {inputs_changed} input files written")


if __name__ == "__main__":
    main()
