"""Output files as a user finds them: the mode the umask gives (an overwritten file keeps its
own), and after any failure, a full disk included, no temporary left and an existing output
byte-identical.  Every -o format of every command, and the Dask engine's part files."""

import errno
import io
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from jacprop.cli import main
from jacprop.io import writers

ROOT = Path(__file__).parent.parent
MODEL, INPUTS = str(ROOT / "sample_models" / "bishop_tanh.npz"), str(ROOT / "sample_models" / "bishop_tanh.csv")

# (id, argv with OUT for the output path, output name)
RUNS = [(f"jacobian-{ext}", ["jacobian", MODEL, INPUTS, "-o", "OUT"], f"j.{ext}")
        for ext in ("csv", "npz", "npy", "jsonl", "txt")]
RUNS += [(f"propagate-{ext}", ["propagate", MODEL, INPUTS, "--dx", "0.1", "--method", "all", "-o", "OUT"], f"u.{ext}")
         for ext in ("csv", "npz", "jsonl", "txt")]
RUNS += [("summary-csv", ["jacobian", MODEL, INPUTS, "--summary", "-o", "OUT"], "s.csv"),
         ("summary-npz", ["jacobian", MODEL, INPUTS, "--summary", "-o", "OUT"], "s.npz"),
         ("convert", ["convert", MODEL, "-o", "OUT"], "c.npz"),
         ("check-json", ["check", MODEL, INPUTS, "-o", "OUT"], "c.json")]


def invoke(argv, out):
    return CliRunner().invoke(main, [str(out) if a == "OUT" else a for a in argv])


@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield lambda m: os.umask(m)
    os.umask(old)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("argv,name", [r[1:] for r in RUNS], ids=[r[0] for r in RUNS])
def test_new_files_follow_the_umask_and_replaced_files_keep_their_mode(tmp_path, umask, argv, name):
    out = tmp_path / name
    r = invoke(argv, out)
    assert r.exit_code == 0, r.output
    assert mode(out) == 0o644
    out.unlink()
    umask(0o027)
    assert invoke(argv, out).exit_code == 0 and mode(out) == 0o640
    out.write_bytes(b"old")
    os.chmod(out, 0o604)
    assert invoke(argv, out).exit_code == 0
    assert mode(out) == 0o604 and out.read_bytes() != b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


class FullDisk(io.RawIOBase):
    """A file on a disk with ``room`` bytes left: writes beyond them fail with ENOSPC."""

    def __init__(self, fd, room):
        self.raw, self.room = os.fdopen(fd, "wb", buffering=0), room

    def writable(self):
        return True

    def write(self, b):
        if len(b) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(b)
        return self.raw.write(b)

    def close(self):
        self.raw.close()
        super().close()


@pytest.mark.parametrize("room", [0, 300])
@pytest.mark.parametrize("argv,name", [r[1:] for r in RUNS], ids=[r[0] for r in RUNS])
def test_a_full_disk_leaves_no_temporary_and_the_old_output_intact(tmp_path, monkeypatch, argv, name, room):
    out = tmp_path / name
    out.write_bytes(b"the previous run's output\n")
    monkeypatch.setattr(writers, "open_fd", lambda fd: io.BufferedWriter(FullDisk(fd, room), 64))
    r = invoke(argv, out)
    assert r.exit_code == 2, r.output
    assert r.stderr == f"jacprop: error: {out}: cannot write the output: No space left on device\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    assert out.read_bytes() == b"the previous run's output\n"


def test_a_real_one_megabyte_tmpfs(tmp_path):
    """On a 1 MB tmpfs mounted in a private mount namespace (unshare -rm; skipped where that is not allowed)."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here: unshare -rm (a user and mount namespace) is not available")
    big = tmp_path / "big.csv"
    np.savetxt(big, np.random.default_rng(0).normal(size=(40000, 3)), delimiter=",",
               header="temperature,pressure,flow", comments="")
    full = tmp_path / "full"
    full.mkdir()
    script = [f"mount -t tmpfs -o size=1m tmpfs {full} || exit 99", f"echo old > {full}/keep.npz"]
    for ext in ("csv", "npz", "jsonl", "npy", "keep.npz"):
        target = f"{full}/keep.npz" if ext == "keep.npz" else f"{full}/j.{ext}"
        script.append(f"{sys.executable} -m jacprop jacobian {MODEL} {big} -o {target}; echo rc=$?")
    script.append(f"ls -A {full}; cat {full}/keep.npz")
    p = subprocess.run(["unshare", "-rm", "sh", "-c", "\n".join(script)], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    if p.returncode == 99:
        pytest.skip(f"cannot mount a tmpfs here: {p.stderr.strip()}")
    assert p.stdout.split() == ["rc=2"] * 5 + ["keep.npz", "old"], (p.stdout, p.stderr)
    assert p.stderr.count("No space left on device") == 5 and "Traceback" not in p.stderr


@pytest.fixture(scope="module")
def threads_cluster():
    distributed = pytest.importorskip("dask.distributed",
                                      reason="dask is an optional extra: pip install 'jacprop[dask]'")
    import logging

    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None,
                                  silence_logs=logging.CRITICAL) as cluster:
        yield cluster


def dask_run(cluster, out, *extra):
    return CliRunner().invoke(main, ["jacobian", MODEL, INPUTS, "--engine", "dask", "--scheduler",
                                     cluster.scheduler_address, "-o", str(out), *extra])


def test_dask_parts_follow_the_umask_and_keep_a_replaced_mode(tmp_path, umask, threads_cluster):
    out = tmp_path / "out"
    assert dask_run(threads_cluster, f"{out}/").exit_code == 0
    names = sorted(os.listdir(out))
    assert names == ["manifest.json", "part-00000.csv"] and all(mode(out / n) == 0o644 for n in names)
    names = names[::-1]
    os.chmod(out / names[0], 0o600)
    assert dask_run(threads_cluster, f"{out}/").exit_code == 0
    assert mode(out / names[0]) == 0o600 and mode(out / "manifest.json") == 0o644
    assert dask_run(threads_cluster, tmp_path / "all.npz").exit_code == 0 and mode(tmp_path / "all.npz") == 0o644


@pytest.mark.parametrize("target", ["dir", "all.csv", "all.npz"])
def test_dask_on_a_full_disk_leaves_the_old_output_as_it_was(tmp_path, monkeypatch, threads_cluster, target):
    out = tmp_path / "out"
    path = f"{out}/" if target == "dir" else out / target
    out.mkdir()
    assert dask_run(threads_cluster, path).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setattr(writers, "open_fd", lambda fd: io.BufferedWriter(FullDisk(fd, 100), 64))
    r = dask_run(threads_cluster, path)
    assert r.exit_code == 2 and "No space left on device" in r.stderr and r.stderr.count("\n") == 1, r.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
