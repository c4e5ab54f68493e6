"""Progress and the closing line on stderr, as a person and as a CI log see them."""

import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import numpy as np
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
    assert run("jacobian", MODEL, INPUTS, "-o", str(tmp_path / "j.npz"), "-q").stderr == ""
    assert run("jacobian", MODEL, INPUTS, "--format", "csv").stderr == ""  # a pipe: stdout is the data, stderr quiet


def test_a_passing_gate_says_so_in_a_ci_log():
    _, J = reference()
    u = np.sqrt((J ** 2).sum(axis=2)) * 0.05
    n, k = np.unravel_index(u.argmax(), u.shape)
    r = run("propagate", MODEL, INPUTS, "--dx", "0.05", "--max-dy", "1", "--format", "csv")
    assert r.exit_code == 0
    assert r.stderr == f"jacprop: 6 rows; largest dy_gum {u[n, k]:.4g} at row {n + 1} y[{k}]\n"


def test_nan_is_the_largest_value(tmp_path):
    p = tmp_path / "nan.csv"
    p.write_text("temperature,pressure,flow\n1,2,3\nnan,2,3\n4,5,6\n")
    r = run("propagate", MODEL, str(p), "--dx", "0.05", "--on-invalid", "keep", "-o", str(tmp_path / "u.csv"))
    assert "jacprop: 3 rows; largest dy_gum nan at row 2 y[0]" in r.stderr.splitlines()


def test_a_bar_with_percentage_and_time_left_on_a_terminal(tmp_path):
    big = tmp_path / "big.csv"
    np.savetxt(big, np.random.default_rng(0).normal(size=(300_000, 3)), delimiter=",", header=",".join(NAMES),
               comments="", fmt="%.6f")
    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "jacprop", "jacobian", MODEL, str(big), "-o", str(tmp_path / "j.npy")],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120", "TERM": "xterm"})
    os.close(slave)
    seen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        try:
            chunk = os.read(master, 65536) if ready else b""
        except OSError:  # the child closed the terminal
            chunk = b""
        if not chunk:
            break
        seen += chunk
    assert p.wait(timeout=60) == 0
    os.close(master)
    text = seen.decode(errors="replace")
    assert "%" in text and "ETA" in text and "rows" in text, text[-500:]
    assert "jacprop: 300,000 rows in " in text and " s; largest |J| " in text
