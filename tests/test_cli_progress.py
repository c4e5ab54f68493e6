"""Progress and the closing line on stderr, as a person and as a CI log see them."""

import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import jacprop
from jacprop.cli import main

ROOT = Path(__file__).parent.parent
MODEL, INPUTS = str(ROOT / "sample_models" / "bishop_tanh.npz"), str(ROOT / "sample_models" / "bishop_tanh.csv")
NAMES = ["temperature", "pressure", "flow"]


def run(*args):
    return CliRunner().invoke(main, list(args))


def reference():
    X = np.loadtxt(INPUTS, delimiter=",", skiprows=1)
    return jacprop.jacobian(jacprop.load(MODEL), X)


def test_the_closing_line_names_the_largest_derivative_and_where(tmp_path):
    _, J = reference()
    n, k, i = np.unravel_index(np.abs(J).argmax(), J.shape)
    r = run("jacobian", MODEL, INPUTS, "-o", str(tmp_path / "j.npz"))
    assert r.exit_code == 0
    assert r.stderr == f"jacprop: 6 rows; largest |J| {abs(J[n, k, i]):.4g} at row {n + 1} d(y[{k}])/d({NAMES[i]})\n"
    assert run("jacobian", MODEL, INPUTS, "--summary", "-o", str(tmp_path / "s.csv")).stderr == r.stderr  # --summary
    assert run("jacobian", MODEL, INPUTS, "-o", str(tmp_path / "j.npz"), "-q").stderr == ""
    assert run("jacobian", MODEL, INPUTS, "--format", "csv").stderr == ""  # a pipe: stdout is the data, stderr quiet


def test_a_passing_gate_says_so_in_a_ci_log():
    _, J = reference()
    u = np.sqrt((J ** 2).sum(axis=2)) * 0.05
    n, k = np.unravel_index(u.argmax(), u.shape)
    r = run("propagate", MODEL, INPUTS, "--dx", "0.05", "--max-dy", "1", "--format", "csv")
    assert r.exit_code == 0
    assert r.stderr == f"jacprop: 6 rows; largest dy_gum {u[n, k]:.4g} at row {n + 1} y[{k}]\n"
    assert run("propagate", MODEL, INPUTS, "--dx", "0.05", "--max-dy", "1", "--summary").stderr == r.stderr


def test_nan_is_the_largest_value(tmp_path):
    p = tmp_path / "nan.csv"
    p.write_text("temperature,pressure,flow\n1,2,3\nnan,2,3\n4,5,6\n")
    r = run("propagate", MODEL, str(p), "--dx", "0.05", "--on-invalid", "keep", "-o", str(tmp_path / "u.csv"))
    assert "jacprop: 3 rows; largest dy_gum nan at row 2 y[0]" in r.stderr.splitlines()


def on_a_terminal(*args, timeout=120) -> tuple[int, str]:
    """(exit code, stderr) of ``jacprop ARGS`` with stderr a terminal (a pty), stdout and stdin not."""
    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "jacprop", *map(str, args)], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=slave, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120", "TERM": "xterm"})
    os.close(slave)
    seen = b""
    while True:
        ready, _, _ = select.select([master], [], [], timeout)
        try:
            chunk = os.read(master, 65536) if ready else b""
        except OSError:  # the child closed the terminal
            chunk = b""
        if not chunk:
            break
        seen += chunk
    code = p.wait(timeout=timeout)
    os.close(master)
    return code, seen.decode(errors="replace")


def big_csv(tmp_path, n=300_000):
    big = tmp_path / "big.csv"
    np.savetxt(big, np.random.default_rng(0).normal(size=(n, 3)), delimiter=",", header=",".join(NAMES),
               comments="", fmt="%.6f")
    return big


def test_a_bar_with_percentage_and_time_left_on_a_terminal(tmp_path):
    code, text = on_a_terminal("jacobian", MODEL, big_csv(tmp_path), "-o", tmp_path / "j.npy")
    assert code == 0
    assert "%" in text and "ETA" in text and "rows" in text, text[-500:]
    assert "jacprop: 300,000 rows in " in text and " s; largest |J| " in text


def test_a_bar_from_the_row_count_of_an_npz_jacobian(tmp_path):
    """propagate reading what jacobian wrote to an npz: the row count is known, so a bar (0% to 100%)."""
    assert run("jacobian", MODEL, INPUTS, "-o", str(tmp_path / "j.npz"), "-q").exit_code == 0
    code, text = on_a_terminal("propagate", tmp_path / "j.npz", "--dx", "0.1", "-o", tmp_path / "u.csv")
    assert code == 0 and "  0%" in text and "100%" in text and "ETA" in text, text
    assert "jacprop: 6 rows in " in text


def test_dask_shows_a_bar_and_the_closing_line_on_a_terminal(tmp_path):
    pytest.importorskip("dask.distributed", reason="dask is an optional extra: pip install 'jacprop[dask]'")
    code, text = on_a_terminal("jacobian", MODEL, big_csv(tmp_path, 20_000), "-o", tmp_path / "j.csv",
                               "--engine", "dask", "--workers", "1")
    assert code == 0, text
    assert "jacprop: 1 partitions of 1 input(s) on 1 workers (tcp://127.0.0.1:" in text
    assert "100%" in text and "ETA" in text, text
    assert "jacprop: 20,000 rows in " in text and " s; largest |J| " in text


CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")  # everything but the line end: escapes, CR, backspace


@pytest.mark.parametrize("command", ["jacobian", "hessian", "propagate", "check", "dask"])
def test_stderr_that_is_not_a_terminal_has_no_control_characters(tmp_path, command):
    """A CI log: one plain closing line (and the notes), no progress, no escape codes."""
    big = big_csv(tmp_path, 70_000 if command != "hessian" else 20_000)
    args = {"jacobian": ["jacobian", MODEL, big, "-o", tmp_path / "j.npz"],
            "hessian": ["hessian", MODEL, big, "-o", tmp_path / "h.npz"],
            "propagate": ["propagate", MODEL, big, "--dx", "0.1", "-o", tmp_path / "u.csv"],
            "check": ["check", MODEL, big, "-o", tmp_path / "c.json"],
            "dask": ["jacobian", MODEL, big, "-o", tmp_path / "j.csv", "--engine", "dask", "--workers", "1"]}[command]
    if command == "dask":
        pytest.importorskip("dask.distributed", reason="dask is an optional extra: pip install 'jacprop[dask]'")
    p = subprocess.run([sys.executable, "-m", "jacprop", *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm", "FORCE_COLOR": "1"}, timeout=300)
    assert p.returncode == 0, p.stderr
    assert not CONTROL.search(p.stderr), repr(p.stderr)
    assert re.fullmatch(r"jacprop: [\d,]+ rows(?: in [\d.]+ s)?; largest \S.* at row \d+ \S+\n", p.stderr), p.stderr


def test_the_closing_line_of_hessian_and_check(tmp_path):
    H = jacprop.hessian(jacprop.load(MODEL), np.loadtxt(INPUTS, delimiter=",", skiprows=1))[2]
    n, k, a, b = np.unravel_index(np.abs(H).argmax(), H.shape)
    a, b = sorted((a, b))
    r = run("hessian", MODEL, INPUTS, "--format", "csv", "-o", "-")
    assert r.exit_code == 0 and r.stderr == ""  # the data on stdout, no gate: stderr stays empty
    for extra in (["--format", "npz"], ["--format", "csv"]):
        r = run("hessian", MODEL, INPUTS, *extra, "-o", str(tmp_path / f"h.{extra[1]}"))
        assert r.stderr == (f"jacprop: 6 rows; largest |H| {abs(H[n, k, a, b]):.4g} at row {n + 1} "
                            f"d2(y[{k}])/d({NAMES[a]})d({NAMES[b]})\n"), r.stderr
    r = run("check", MODEL, INPUTS, "--format", "json")
    report = __import__("json").loads(r.stdout)
    worst = max(report["outputs"], key=lambda o: o["max_scaled_error"])
    assert r.exit_code == 0 and r.stderr == (
        f"jacprop: 6 rows; largest |J - J_fd| / max|J| {worst['max_scaled_error']:.4g} at row {worst['row']} "
        f"d({worst['output']})/d({worst['input']})\n")
