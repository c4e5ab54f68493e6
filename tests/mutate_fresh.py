"""Run mutants by hand, each in a fresh import of jacprop: fork from a parent that has imported pytest and
numpy (not jacprop), set MUTANT_UNDER_TEST before anything imports jacprop, so mutants of code that runs at
import (the builder factories _conv(1), ...) are the code the tests see.

    python tests/mutate_fresh.py MUTANTS_DIR OUT.tsv 'glob-or-name' ... -- pytest args

MUTANTS_DIR is a scratch copy's ``mutants/`` folder (tests/mutate.py's workdir); one line per mutant is appended to
OUT.tsv (name, killed/survived/timeout/no tests, exit status, seconds), and mutants already in it are skipped.
BYHAND_TIMEOUT (s, default 300); BYHAND_PHASE2: pytest arguments run only for the mutants the first ones leave alive.
"""
import fnmatch
import os
import re
import signal
import sys
import time

mdir, out, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
split = rest.index("--")
pats, pytest_args = rest[:split], rest[split + 1:]
timeout = float(os.environ.get("BYHAND_TIMEOUT", "300"))
os.chdir(mdir)
sys.path.insert(0, mdir)
os.environ.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
import h5py  # noqa: E402,F401
import numpy  # noqa: E402,F401
import pytest  # noqa: E402

names = []
src_files = [os.path.join(dp, f) for dp, _, fs in os.walk(os.path.join(mdir, "jacprop"))
             for f in fs if f.endswith(".py")]
all_names = []
for path in src_files:
    text = open(path).read()
    if "__mutmut_" not in text:
        continue
    mod = os.path.relpath(path, mdir)[:-3].replace("/", ".")
    all_names += [f"{mod}.{m}" for m in re.findall(r"^\s*def (x\S*?__mutmut_\d+)\(", text, re.M)]
for p in pats:
    names += [n for n in all_names if fnmatch.fnmatch(n, p) or n == p]
seen = set()
names = [n for n in names if not (n in seen or seen.add(n))]
done = set()
if os.path.exists(out):
    done = {line.split("\t")[0] for line in open(out)}
with open(out, "a") as log:
    for name in names:
        if name in done:
            continue
        t0 = time.monotonic()
        phases = [pytest_args] + ([os.environ["BYHAND_PHASE2"].split()] if os.environ.get("BYHAND_PHASE2") else [])
        for args in phases:
            pid = os.fork()
            if pid == 0:
                os.environ["MUTANT_UNDER_TEST"] = name
                fd = os.open(os.devnull, os.O_WRONLY)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                rc = pytest.main(["--rootdir=.", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *args])
                os._exit(int(rc))
            status = None
            while time.monotonic() - t0 < timeout:
                r, st = os.waitpid(pid, os.WNOHANG)
                if r:
                    status = os.waitstatus_to_exitcode(st)
                    break
                time.sleep(0.05)
            if status is None:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                status = "timeout"
            if status != 0:
                break
        verdict = {0: "survived", "timeout": "timeout", 5: "no tests"}.get(status, "killed")
        log.write(f"{name}\t{verdict}\t{status}\t{time.monotonic() - t0:.1f}\n")
        log.flush()
