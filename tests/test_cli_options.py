"""Option values at the edges of their ranges, from the user's side: accepted edges give the
right numbers (checked against numpy written here), refused ones are one line naming the
option (the refusals themselves are rows of the bad-input matrix, tests/test_bad_inputs.py)."""

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import jacprop
from jacprop.cli import main

SAMPLES = Path(__file__).parent.parent / "sample_models"
MODEL, INPUTS = str(SAMPLES / "bishop_tanh.npz"), str(SAMPLES / "bishop_tanh.csv")


def run(*args, input=None):
    return CliRunner().invoke(main, list(args), input=input)


def table(text):
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0], np.array(rows[1:], dtype=float)


def gum_reference(dx=0.1):
    """u_k = sqrt(sum_i J_ki^2 dx^2) at every row, from jacprop's API (whose J the other tests check)."""
    X = np.loadtxt(INPUTS, delimiter=",", skiprows=1)
    _, J = jacprop.jacobian(jacprop.load(MODEL), X)
    return np.sqrt((J ** 2).sum(axis=2)) * dx


def test_coverage_one_gives_u_and_level_gives_the_normal_quantile():
    u = gum_reference()
    r = run("propagate", MODEL, INPUTS, "--dx", "0.1", "--coverage", "1", "--format", "csv")
    assert r.exit_code == 0, r.output
    head, data = table(r.stdout)
    assert data[:, head.index("U_gum(y[0])")] == pytest.approx(u[:, 0], rel=1e-14)
    r = run("propagate", MODEL, INPUTS, "--dx", "0.1", "--level", "0.95", "--format", "csv")
    head, data = table(r.stdout)
    assert data[:, head.index("U_gum(y[1])")] == pytest.approx(1.959963984540054 * u[:, 1], rel=1e-12)


def test_two_samples_are_enough_for_a_finite_monte_carlo_sigma():
    r = subprocess.run([sys.executable, "-m", "jacprop", "propagate", MODEL, INPUTS, "--dx", "0.1", "--method", "mc",
                        "--samples", "2", "--digits", "0", "--format", "csv"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == "", r.stderr  # no numpy warning
    head, data = table(r.stdout)
    assert np.isfinite(data).all() and (data[:, head.index("dy_mc(y[0])")] >= 0).all()


def test_a_kept_nan_row_gives_nan_without_warnings_or_errors(tmp_path):
    p = tmp_path / "nan.csv"
    p.write_text("temperature,pressure,flow\n1,2,3\nnan,2,3\n")
    r = subprocess.run([sys.executable, "-W", "default", "-m", "jacprop", "propagate", MODEL, str(p), "--dx", "0.1",
                        "--on-invalid", "keep", "--method", "all", "--format", "csv"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "Warning" not in r.stderr and "uncertainty of input" not in r.stderr
    head, data = table(r.stdout)
    assert np.isfinite(data[0]).all() and np.isnan(data[1, head.index("dy_gum(y[0])")])


def test_uncertainty_errors_count_data_rows_of_the_file(tmp_path):
    p = tmp_path / "u.csv"
    p.write_text("temperature,pressure,flow,u\n" + "1,2,3,0.1\n" * 70_000 + "1,2,3,-1\n")
    r = run("propagate", MODEL, str(p), "--columns", "temperature,pressure,flow", "--dx-column", "flow=u",
            "-o", str(tmp_path / "o.csv"))
    assert r.exit_code == 2
    assert r.stderr == "jacprop: error: row 70001: uncertainty of input 'flow' is -1.0; it must be finite and >= 0\n"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["u.csv"]


def test_rows_edges():
    r = run("jacobian", MODEL, INPUTS, "--rows", "6-", "--format", "csv")
    assert r.exit_code == 0 and len(table(r.stdout)[1]) == 1
    r = run("jacobian", MODEL, INPUTS, "--rows", "7-", "--format", "csv")
    assert r.exit_code == 2 and r.stderr.endswith(": no data rows (6 rows read, none among --rows)\n"), r.stderr


def test_max_rows_zero_shows_no_row_tables():
    r = run("propagate", MODEL, INPUTS, "--dx", "0.1", "--format", "table", "--max-rows", "0")
    assert r.exit_code == 0 and "6 more rows not shown" in r.stdout


def test_check_rows_output_and_dtype(tmp_path):
    out = tmp_path / "c.json"
    r = run("check", MODEL, INPUTS, "--rows", "2-3", "-o", str(out))
    assert r.exit_code == 0 and r.stdout == ""
    report = json.loads(out.read_text())
    assert report["rows"] == 2 and report["dtype"] == "float64"
    assert {o["row"] for o in report["outputs"]} <= {2, 3}
    assert max(o["max_scaled_error"] for o in report["outputs"]) < 1e-9
    r = run("check", MODEL, INPUTS, "--dtype", "float32", "--format", "json")
    report32 = json.loads(r.stdout)
    assert report32["dtype"] == "float32"
    # float32 J differs from the float64 differences by float32 rounding, far above float64's
    assert 1e-9 < max(o["max_scaled_error"] for o in report32["outputs"]) < 1e-5
    r = run("check", MODEL, INPUTS, "-o", str(tmp_path / "c.txt"))
    assert r.exit_code == 0 and "J vs central differences, 6 rows" in (tmp_path / "c.txt").read_text()
