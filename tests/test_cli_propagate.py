"""propagate's --outputs, --wrt and --summary, its gate report and its stdin at a terminal, from
the user's side; references are numpy computations on jacprop's J (checked elsewhere against
central differences and frameworks) or on the full run's own columns."""

import csv
import io
import os
import pty
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
ALL = ["--method", "all", "--check-linearity", "--budget", "--samples", "200"]


def run(*args, input=None):
    return CliRunner().invoke(main, list(args), input=input)


def columns(text):
    rows = list(csv.reader(io.StringIO(text)))
    return {name: np.array([float(r[i]) for r in rows[1:]]) for i, name in enumerate(rows[0]) if name != "row"}


def test_outputs_gives_the_full_runs_columns_of_that_output():
    full = columns(run("propagate", MODEL, INPUTS, "--dx", "0.1", *ALL, "--format", "csv").stdout)
    r = run("propagate", MODEL, INPUTS, "--dx", "0.1", *ALL, "--outputs", "1", "--format", "csv")
    assert r.exit_code == 0, r.output
    one = columns(r.stdout)
    assert list(one) == [c for c in full if "y[1]" in c and "y[0]" not in c]
    for name, values in one.items():
        np.testing.assert_allclose(values, full[name], rtol=1e-13, atol=2e-15, err_msg=name)  # MC: summation order


def test_outputs_on_a_jacobian_stream():
    stream = run("jacobian", MODEL, INPUTS, "--format", "jsonl").stdout
    full = columns(run("propagate", MODEL, INPUTS, "--dx", "0.1", "--method", "worst", "--format", "csv").stdout)
    r = subprocess.run([sys.executable, "-m", "jacprop", "propagate", "--dx", "0.1", "--method", "worst", "--outputs",
                        "0", "--format", "csv"], input=stream, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    got = columns(r.stdout)  # JSON Lines carries the names (issue 18.3)
    assert list(got) == ["y[0]", "dy_worst(y[0])"]
    assert got["dy_worst(y[0])"].tobytes() == full["dy_worst(y[0])"].tobytes()


def test_wrt_is_the_uncertainty_from_those_inputs_alone(tmp_path):
    X = np.loadtxt(INPUTS, delimiter=",", skiprows=1)
    _, J = jacprop.jacobian(jacprop.load(MODEL), X)
    cov = np.array([[0.04, 0.01, 0.002], [0.01, 0.09, -0.003], [0.002, -0.003, 0.01]])
    path = tmp_path / "cov.csv"
    path.write_text("temperature,pressure,flow\n" + "".join(",".join(repr(float(v)) for v in r) + "\n" for r in cov))
    r = run("propagate", MODEL, INPUTS, "--cov", str(path), "--wrt", "temperature,pressure", "--format", "csv")
    assert r.exit_code == 0, r.output
    Jw = J[:, :, :2]
    u = np.sqrt(np.einsum("nki,ij,nkj->nk", Jw, cov[:2, :2], Jw))
    got = columns(r.stdout)
    np.testing.assert_allclose(np.stack([got["dy_gum(y[0])"], got["dy_gum(y[1])"]], 1), u, rtol=1e-13)
    only = columns(run("propagate", MODEL, INPUTS, "--dx", "temperature=0.1", "--format", "csv").stdout)
    wrt = columns(run("propagate", MODEL, INPUTS, "--dx", "0.1", "--wrt", "temperature", "--format", "csv").stdout)
    assert all(wrt[c].tobytes() == only[c].tobytes() for c in only)


def test_summary_is_the_statistics_of_the_rows_columns():
    full = columns(run("propagate", MODEL, INPUTS, "--dx", "0.1", "--method", "all", "--format", "csv").stdout)
    r = run("propagate", MODEL, INPUTS, "--dx", "0.1", "--method", "all", "--summary", "--format", "csv")
    assert r.exit_code == 0, r.output
    records = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [(x["output"], x["estimate"]) for x in records][:3] == [("y[0]", "dy_linear"), ("y[0]", "dy_gum"),
                                                                  ("y[0]", "dy_worst")]
    for rec in records:
        v = full[f"{rec['estimate']}({rec['output']})"]
        assert float(rec["mean"]) == pytest.approx(v.mean(), rel=1e-12)
        assert float(rec["max"]) == v.max() and float(rec["min"]) == v.min()
        assert float(rec["std"]) == pytest.approx(v.std(ddof=1), rel=1e-9)
        assert int(rec["row_of_max_abs"]) == np.abs(v).argmax() + 1
    table = run("propagate", MODEL, INPUTS, "--dx", "0.1", "--summary", "--format", "table")
    assert "y[1]: estimates over 6 rows" in table.stdout and "dy_gum" in table.stdout


def test_gate_failures_name_the_estimate_and_the_bound_worst_first():
    args = ["propagate", MODEL, INPUTS, "--dx", "0.1", "--method", "linear", "--method", "gum", "--coverage", "2"]
    full = columns(run(*args, "--format", "csv").stdout)
    r = run(*args, "--max-dy", "y[0]=0.05", "--format", "csv")
    assert r.exit_code == 1
    size = {q: np.abs(full[f"{q}(y[0])"]) * (2 if q == "dy_gum" else 1) for q in ("dy_linear", "dy_gum")}
    worst = np.maximum(size["dy_linear"], size["dy_gum"])
    order = [n + 1 for n in np.argsort(-worst, kind="stable") if worst[n] > 0.05]
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith(f"jacprop: {len(order)} (row, output) pairs exceed the bounds, the worst first: ")
    shown = [int(part.split()[1]) for part in line.split("first: ", 1)[1].split("; ")]
    assert shown == order
    n = order[0] - 1
    assert f"row {order[0]} y[0]: dy_gum x k=2 = {size['dy_gum'][n]:.4g} > --max-dy 0.05" in line


def test_gates_report_only_the_worst_twenty_of_many(tmp_path):
    rng = np.random.default_rng(1)
    p = tmp_path / "many.csv"
    np.savetxt(p, rng.normal(size=(500, 3)), delimiter=",", header="temperature,pressure,flow", comments="")
    r = run("propagate", MODEL, str(p), "--dx", "0.1", "--max-dy", "0", "-o", str(tmp_path / "u.csv"))
    assert r.exit_code == 1
    u = columns((tmp_path / "u.csv").read_text())
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("jacprop: 1000 (row, output) pairs exceed the bounds, the 20 worst first: ")
    assert line.endswith(" ...") and line.count("; ") == 19
    largest = max(u["dy_gum(y[0])"].max(), u["dy_gum(y[1])"].max())
    assert f"= {largest:.4g} > --max-dy 0" in line.split("; ")[0]


def pty_run(args, typed=None):
    """jacprop with stdin a terminal (a pseudo-terminal); ``typed``: what a person types there."""
    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "jacprop", *args], stdin=slave, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    os.close(slave)
    if typed is not None:
        os.write(master, typed.encode())
    try:
        out, err = p.communicate(timeout=60)
    finally:
        os.close(master)
    return p.returncode, out, err


def test_propagate_at_a_terminal_with_nothing_to_read_says_so():
    code, out, err = pty_run(["propagate", "--dx", "0.1"])
    assert code == 2 and out == ""
    assert err.startswith("jacprop: error: nothing to read: give MODEL... INPUTS, or pipe what `jacprop jacobian` "
                          "wrote into stdin")


def test_reading_inputs_from_a_terminal_says_what_it_waits_for():
    code, out, err = pty_run(["jacobian", MODEL, "-", "--format", "csv"], "temperature,pressure,flow\n1,2,3\n\x04")
    assert code == 0, err
    assert err == "jacprop: reading the INPUTS csv from the terminal; end with Ctrl-D (Ctrl-Z Enter on Windows)\n"
    assert out.count("\n") == 2
