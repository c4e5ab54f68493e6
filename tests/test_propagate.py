"""propagate: each method against an independent computation, pipelines, gates; check; summary."""

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from models import mlp

import jacprop
from jacprop.cli import main
from jacprop.loaders import npz
from jacprop.propagate import normal_quantile

SAMPLES = Path(__file__).parent.parent / "sample_models"
MODEL, INPUTS = str(SAMPLES / "bishop_tanh.npz"), str(SAMPLES / "bishop_tanh.csv")
NAMES = ["temperature", "pressure", "flow"]


def run(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def npz_result(*args):
    r = CliRunner().invoke(main, [str(a) for a in args] + ["--format", "npz"])
    assert r.exit_code == 0, r.output
    with np.load(io.BytesIO(r.stdout_bytes), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def reference():
    X = np.loadtxt(INPUTS, delimiter=",", skiprows=1)
    return (X, *jacprop.jacobian(jacprop.load(MODEL), X))


def test_gum_worst_linear_against_independent_sums():
    X, Y, J = reference()
    dx = np.array([0.5, 0.02, 0.1])
    out = npz_result("propagate", MODEL, INPUTS, *[f"--dx={n}={v}" for n, v in zip(NAMES, dx)], "--method", "all",
                     "--samples", "10", "--coverage", "2", "--output-cov")
    u = np.sqrt(np.array([[sum(J[n, k,
                                 i] ** 2 * dx[i] ** 2 for i in range(3)) for k in range(2)] for n in range(len(X))]))
    np.testing.assert_allclose(out["dy_gum"], u, rtol=1e-13)
    np.testing.assert_allclose(out["U_gum"], 2 * u, rtol=1e-13)
    np.testing.assert_allclose(out["dy_worst"], (np.abs(J) * dx).sum(-1), rtol=1e-13)
    np.testing.assert_allclose(out["dy_linear"], (J * dx).sum(-1), rtol=1e-13)
    np.testing.assert_allclose(np.diagonal(out["cov_y"], axis1=1, axis2=2), u**2, rtol=1e-12)
    np.testing.assert_array_equal(out["x"], X)
    np.testing.assert_array_equal(out["y"], Y)


def test_relative_dx_is_a_percentage_of_each_rows_x():
    X, _, J = reference()
    out = npz_result("propagate", MODEL, INPUTS, "--dx", "flow=2%", "--method", "worst")
    np.testing.assert_allclose(out["dy_worst"], np.abs(J[:, :, 2]) * 0.02 * np.abs(X[:, 2])[:, None], rtol=1e-13)


def test_dx_column_gives_per_row_uncertainty(tmp_path):
    X, _, J = reference()
    u = np.linspace(0.01, 0.06, len(X))
    path = tmp_path / "in.csv"
    path.write_text("temperature,pressure,flow,u_t\n"
                    + "".join(",".join(map(repr, [*x, s])) + "\n" for x, s in zip(X.tolist(), u.tolist())))
    out = npz_result("propagate", MODEL, path, "--dx-column", "temperature=u_t", "--method", "worst")
    np.testing.assert_allclose(out["dy_worst"], np.abs(J[:, :, 0]) * u[:, None], rtol=1e-13)


def test_covariance_and_correlation_files(tmp_path):
    X, _, J = reference()
    sigma = np.array([0.3, 0.05, 0.2])
    R = np.array([[1, 0.5, 0], [0.5, 1, -0.3], [0, -0.3, 1]])
    cov = R * np.outer(sigma, sigma)
    order = [2, 0, 1]  # a header in another order than the inputs
    (tmp_path / "cov.csv").write_text(",".join(NAMES[i] for i in order) + "\n"
                                      + "".join(",".join(repr(float(cov[a, b])) for b in order) + "\n" for a in order))
    (tmp_path / "corr.csv").write_text("," + ",".join(NAMES) + "\n"
                                       + "".join(f"{NAMES[a]}," + ",".join(map(repr, R[a].tolist())) + "\n"
                                                 for a in range(3)))
    expected = np.sqrt(np.einsum("nki,ij,nkj->nk", J, cov, J))
    by_cov = npz_result("propagate", MODEL, INPUTS, "--cov", tmp_path / "cov.csv")
    by_corr = npz_result("propagate", MODEL, INPUTS, "--corr", tmp_path / "corr.csv",
                         *[f"--dx={n}={s!r}" for n, s in zip(NAMES, sigma.tolist())])
    np.testing.assert_allclose(by_cov["dy_gum"], expected, rtol=1e-12)
    np.testing.assert_allclose(by_corr["dy_gum"], expected, rtol=1e-12)


@pytest.mark.parametrize("matrix,message", [
    ([[1, 0.5, 0], [0.4, 1, 0], [0, 0, 1]], "not symmetric"),
    ([[1, 2, 0], [2, 1, 0], [0, 0, 1]], "not positive semi-definite"),
])
def test_bad_covariance_is_refused(tmp_path, matrix, message):
    (tmp_path / "c.csv").write_text(",".join(NAMES) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in matrix))
    r = run("propagate", MODEL, INPUTS, "--cov", tmp_path / "c.csv")
    assert r.exit_code == 2 and message in r.stderr


def test_level_gives_the_normal_coverage_factor():
    assert normal_quantile(0.975) == pytest.approx(1.959963984540054, abs=1e-12)
    X, _, J = reference()
    out = npz_result("propagate", MODEL, INPUTS, "--dx", "0.01", "--level", "0.95")
    np.testing.assert_allclose(out["U_gum"] / out["dy_gum"], 1.959963984540054, rtol=1e-12)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "npz"])
def test_jacobian_pipe_into_propagate_equals_propagate_from_the_model(fmt):
    direct = subprocess.run([sys.executable, "-m", "jacprop", "propagate", MODEL, INPUTS, "--dx", "0.05",
                             "--method", "gum", "--method", "worst", "--format", "csv"],
                            capture_output=True, check=True)
    jac = subprocess.run([sys.executable, "-m", "jacprop", "jacobian", MODEL, INPUTS, "--format", fmt],
                         capture_output=True, check=True)
    piped = subprocess.run([sys.executable, "-m", "jacprop", "propagate", "--dx", "0.05", "--method", "gum",
                            "--method", "worst", "--format", "csv"], input=jac.stdout, capture_output=True)
    assert piped.returncode == 0, piped.stderr
    if fmt == "jsonl":  # JSON Lines records carry no names: compare the numbers
        assert piped.stdout.splitlines()[1:] == direct.stdout.splitlines()[1:]
    else:
        assert piped.stdout == direct.stdout


def nonlinear_model(tmp_path):
    """y = tanh(3 x): linear near 0, strongly curved at |x| ~ 0.5."""
    model = mlp([1, 1], ["tanh"])
    model.nodes[-1].op.kernel[:] = 3.0
    model.nodes[-1].op.bias[:] = 0.0
    npz.save(model, tmp_path / "tanh.npz")
    (tmp_path / "x.csv").write_text("x0\n0.5\n")
    return tmp_path / "tanh.npz", tmp_path / "x.csv"


def test_mc_agrees_with_gum_when_linear_and_not_when_curved(tmp_path):
    model, inputs = nonlinear_model(tmp_path)
    small = npz_result("propagate", model, inputs, "--dx", "0.001", "--method", "gum", "--method", "mc",
                       "--samples", "4000", "--check-linearity")
    # the sample standard deviation of 4000 draws is within ~3 * 1/sqrt(2*4000) = 3.4% of sigma
    assert abs(small["dy_mc"][0, 0] / small["dy_gum"][0, 0] - 1) < 0.034
    assert small["nonlinearity"][0, 0] < 0.01
    r = run("propagate", model, inputs, "--dx", "0.5", "--method", "gum", "--method", "mc", "--samples", "4000",
            "--check-linearity", "--format", "npz")
    assert r.exit_code == 0
    with np.load(io.BytesIO(r.stdout_bytes)) as big:
        # the spread reaches the steep part of tanh near 0: far from what J dx at x = 0.5 says
        assert abs(big["dy_mc"][0, 0] / big["dy_gum"][0, 0] - 1) > 0.5
        assert big["nonlinearity"][0, 0] > 0.5
    assert "1 (row, output) pairs depart from linearity by more than --tol 0.1: row 1 dense_0" in r.stderr
    assert run("propagate", model, inputs, "--dx", "0.5", "--max-nonlinearity", "0.2", "--format", "csv").exit_code == 1


def test_gates_exit_1_exactly_when_a_bound_is_crossed():
    out = npz_result("propagate", MODEL, INPUTS, "--dx", "0.05", "--method", "gum")
    top = float(out["dy_gum"].max())
    assert run("propagate", MODEL, INPUTS, "--dx", "0.05", "--max-dy", repr(top * 1.0001),
               "--format", "csv").exit_code == 0
    r = run("propagate", MODEL, INPUTS, "--dx", "0.05", "--max-dy", repr(top * 0.9999), "--format", "csv")
    assert r.exit_code == 1
    n, k = np.unravel_index(out["dy_gum"].argmax(), out["dy_gum"].shape)
    assert f"1 (row, output) pairs exceed the bounds: row {n + 1} y[{k}]" in r.stderr
    per_output = float(out["dy_gum"][:, 0].max())
    assert run("propagate", MODEL, INPUTS, "--dx", "0.05", "--max-dy", f"y[0]={per_output * 1.0001!r}",
               "--format", "csv").exit_code == 0


@pytest.mark.parametrize("args,message", [
    (["--dx", "temperature=abc"], "expected a number or a percentage"),
    (["--dx", "nosuch=1"], "no input named 'nosuch'"),
    (["--dx", "-1"], "must be finite and >= 0"),
    ([], "say how uncertain the inputs are"),
    (["--dx", "1", "--coverage", "2", "--level", "0.9"], "not both"),
])
def test_bad_propagate_options(args, message):
    r = run("propagate", MODEL, INPUTS, *args)
    assert r.exit_code == 2 and message in r.stderr, r.output


def test_check_passes_and_gates(tmp_path):
    r = run("check", MODEL, INPUTS, "--format", "json")
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert all(o["max_scaled_error"] < 1e-8 for o in result["outputs"])
    r = run("check", MODEL, INPUTS, "--tol", "1e-30", "--format", "json")  # the tolerance floors at the rounding bound
    assert all(1e-30 < o["tolerance"] < 1e-8 for o in json.loads(r.stdout)["outputs"])
    _, Y, _ = reference()
    (tmp_path / "y.csv").write_text("y[0],y[1]\n" + "".join(",".join(map(repr, y)) + "\n" for y in Y.tolist()))
    assert run("check", MODEL, INPUTS, "--expect-y", tmp_path / "y.csv").exit_code == 0
    (tmp_path / "y2.csv").write_text("a,b\n" + "".join(",".join(map(repr, y)) + "\n" for y in (Y + [0, 1e-3]).tolist()))
    r = run("check", MODEL, INPUTS, "--expect-y", tmp_path / "y2.csv", "--format", "json")
    assert r.exit_code == 1 and json.loads(r.stdout)["y"][1]["ok"] is False


def test_summary_statistics_over_rows():
    X, _, J = reference()
    r = CliRunner().invoke(main, ["jacobian", MODEL, INPUTS, "--summary", "--format", "npz"])
    assert r.exit_code == 0, r.output
    with np.load(io.BytesIO(r.stdout_bytes)) as s:
        np.testing.assert_allclose(s["mean"], J.mean(0), rtol=1e-13)
        np.testing.assert_allclose(s["mean_abs"], np.abs(J).mean(0), rtol=1e-13)
        np.testing.assert_allclose(s["std"], J.std(0, ddof=1), rtol=1e-10)
        np.testing.assert_array_equal(s["row_of_max_abs"], np.abs(J).argmax(0) + 1)
        np.testing.assert_array_equal(s["rank"], np.argsort(-np.abs(J).mean(0), axis=1, kind="stable"))


def test_mc_draws_depend_on_the_row_not_on_the_chunking():
    full = npz_result("propagate", MODEL, INPUTS, "--dx", "0.3", "--method", "mc", "--samples", "50")
    one = npz_result("propagate", MODEL, INPUTS, "--dx", "0.3", "--method", "mc", "--samples", "50", "--rows", "4")
    np.testing.assert_array_equal(one["dy_mc"][0], full["dy_mc"][3])
    assert not np.array_equal(full["mc_shift"][0], full["mc_shift"][1])
