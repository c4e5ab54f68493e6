"""propagate from the user's side, each result against an independent numpy computation.

Written for issue #20: realistic bugs that the rest of the suite let through (Monte Carlo with
correlated inputs, its interval, the off-diagonal output covariance, both sides of the linearity
check, --max-dy with a coverage factor, budgets).  Only the CLI and jacprop.load/jacobian/forward
are used, so the tests do not depend on where the modules live.
"""

import io
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import jacprop
from jacprop.cli import main

SAMPLES = Path(__file__).parent.parent / "sample_models"
MODEL, INPUTS = str(SAMPLES / "bishop_tanh.npz"), str(SAMPLES / "bishop_tanh.csv")
NAMES = ["temperature", "pressure", "flow"]
SIGMA = np.array([0.3, 0.05, 0.2])
R = np.array([[1.0, 0.8, -0.6], [0.8, 1.0, -0.3], [-0.6, -0.3, 1.0]])  # strong correlations, positive definite
COV = R * np.outer(SIGMA, SIGMA)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def npz_result(*args):
    r = run(*args, "--format", "npz")
    assert r.exit_code == 0, r.output
    with np.load(io.BytesIO(r.stdout_bytes), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def reference():
    X = np.loadtxt(INPUTS, delimiter=",", skiprows=1)
    return (X, *jacprop.jacobian(jacprop.load(MODEL), X))


def write_csv(path, header, rows):
    lines = [",".join(header)] + [",".join(map(repr, row)) for row in np.asarray(rows).tolist()]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_matrix(path, matrix):
    return write_csv(path, NAMES, matrix)


def sigma_options():
    return [f"--dx={n}={s!r}" for n, s in zip(NAMES, SIGMA.tolist())]


# ---------------------------------------------------------------------------
# Monte Carlo with correlated inputs, and its interval


@pytest.fixture(scope="module")
def independent_mc():
    """10^6 draws per row of x + L z (L the Cholesky factor of the covariance, not jacprop's
    eigen-root) through model.forward: mean shift, std and the 5 % / 95 % quantiles."""
    X, Y, _ = reference()
    model = jacprop.load(MODEL)
    L = np.linalg.cholesky(COV)
    rng = np.random.default_rng(12345)
    out = {k: np.empty_like(Y) for k in ("shift", "std", "lo", "hi")}
    for n, x in enumerate(X):
        ys = model.forward(x + rng.standard_normal((1_000_000, 3)) @ L.T)
        out["shift"][n] = ys.mean(0) - Y[n]
        out["std"][n] = ys.std(0, ddof=1)
        out["lo"][n], out["hi"][n] = np.quantile(ys, [0.05, 0.95], axis=0)
    return out


@pytest.mark.parametrize("given", ["corr", "cov"])
def test_mc_with_correlated_inputs_matches_an_independent_monte_carlo(tmp_path, independent_mc, given):
    if given == "corr":
        options = ["--corr", write_matrix(tmp_path / "corr.csv", R), *sigma_options()]
    else:
        options = ["--cov", write_matrix(tmp_path / "cov.csv", COV)]
    out = npz_result("propagate", MODEL, INPUTS, *options, "--method", "mc", "--method", "gum",
                     "--samples", "200000", "--digits", "0", "--level", "0.9")
    ref = independent_mc
    # sampling error of a std from n draws: ~ sigma / sqrt(2 n): 0.16 % for 2e5, 0.07 % for 1e6; allow ~5x
    np.testing.assert_allclose(out["dy_mc"], ref["std"], rtol=0.01)
    # the mean: sigma / sqrt(n) ~ 0.0022 sigma; a 5 % quantile: ~ 0.005 sigma for 2e5 draws
    scale = ref["std"]
    assert np.all(np.abs(out["mc_shift"] - ref["shift"]) < 0.02 * scale)
    assert np.all(np.abs(out["mc_lo"] - ref["lo"]) < 0.04 * scale)
    assert np.all(np.abs(out["mc_hi"] - ref["hi"]) < 0.04 * scale)
    # and the interval is the central one: y + shift -/+ about 1.645 sigma on this mildly curved model
    assert np.all(out["mc_lo"] < out["y"] + out["mc_shift"]) and np.all(out["mc_hi"] > out["y"] + out["mc_shift"])


def test_mc_on_a_linear_model_reproduces_gum_with_correlations_and_the_normal_interval(tmp_path):
    """On y = W x + b the Monte Carlo sigma is the GUM u exactly (up to sampling) and the interval
    at --level 0.95 is y -/+ 1.96 u."""
    W = np.array([[1.5, -2.0, 0.5], [0.3, 0.7, -1.2]])
    np.savez(tmp_path / "lin.npz", W0=W.T, b0=np.array([0.1, -0.4]))
    x = np.array([[0.2, -1.0, 3.0], [1.0, 2.0, -0.5]])
    write_csv(tmp_path / "x.csv", NAMES, x)
    corr = write_matrix(tmp_path / "corr.csv", R)
    out = npz_result("propagate", tmp_path / "lin.npz", tmp_path / "x.csv", "--corr", corr, *sigma_options(),
                     "--method", "mc", "--method", "gum", "--samples", "200000", "--digits", "0", "--level", "0.95")
    u = np.sqrt(np.einsum("ki,ij,kj->k", W, COV, W))
    np.testing.assert_allclose(out["dy_gum"], np.tile(u, (2, 1)), rtol=1e-12)
    np.testing.assert_allclose(out["dy_mc"], np.tile(u, (2, 1)), rtol=0.01)
    y = x @ W.T + [0.1, -0.4]
    assert np.all(np.abs(out["mc_shift"]) < 0.015 * u)
    assert np.all(np.abs(out["mc_lo"] - (y - 1.959964 * u)) < 0.03 * u)
    assert np.all(np.abs(out["mc_hi"] - (y + 1.959964 * u)) < 0.03 * u)


# ---------------------------------------------------------------------------
# --output-cov: every entry of J Sigma J^T


@pytest.mark.parametrize("correlated", [False, True])
def test_output_covariance_is_the_whole_of_j_sigma_jt(tmp_path, correlated):
    _, _, J = reference()
    if correlated:
        options, sigma = ["--cov", write_matrix(tmp_path / "cov.csv", COV)], COV
    else:
        options, sigma = sigma_options(), np.diag(SIGMA**2)
    out = npz_result("propagate", MODEL, INPUTS, *options, "--output-cov")
    expected = np.array([Jn @ sigma @ Jn.T for Jn in J])
    assert out["cov_y"].shape == (len(J), 2, 2)
    np.testing.assert_allclose(out["cov_y"], expected, rtol=1e-12, atol=1e-15)
    # the off-diagonal terms are not negligible here: correlations of 0.09 to 0.99 between the outputs
    assert np.all(np.abs(expected[:, 0, 1]) > 0.05 * np.sqrt(expected[:, 0, 0] * expected[:, 1, 1]))
    # the same numbers in CSV, named cov(a,b)
    r = run("propagate", MODEL, INPUTS, *options, "--output-cov", "--format", "csv")
    header, *lines = r.stdout.splitlines()
    assert _cells(header)[-4:] == [f"cov({a},{b})" for a in ("y[0]", "y[1]") for b in ("y[0]", "y[1]")]
    got = np.array([[float(v) for v in _cells(line)[-4:]] for line in lines]).reshape(-1, 2, 2)
    assert len(got) == len(J)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)


def _cells(line):
    import csv

    return next(csv.reader([line]))


# ---------------------------------------------------------------------------
# --check-linearity: both sides, on a model that bends differently on each side


W0 = np.array([[1.0, -0.5, 0.2], [0.4, 1.2, -0.3], [-0.8, 0.3, 1.0]])  # (hidden, in)
B0 = np.array([0.05, -0.1, 0.2])
W1 = np.array([[1.0, 2.0, -1.0], [-0.5, 0.7, 1.5]])
B1 = np.array([0.3, -0.2])


def relu_forward(X):
    return np.maximum(X @ W0.T + B0, 0) @ W1.T + B1


def relu_jacobian(X):
    active = (X @ W0.T + B0 > 0).astype(float)  # relu'(a) = 0 at a = 0, as TensorFlow
    return np.einsum("kh,nh,hi->nki", W1, active, W0)


def test_linearity_check_reports_each_side_and_flags_a_bend_on_either(tmp_path):
    """y = W1 relu(W0 x + b0) + b1 (an NPZ weight list) at rows placed so that one hidden unit
    switches off on the minus side only (row 1), on the plus side only (row 2), or never (row 3); at row 4
    every unit is off, J = 0, and one switches on above x: J dx = 0 but f(x + dx) - f(x) is not."""
    np.savez(tmp_path / "relu.npz", W0=W0.T, b0=B0, W1=W1.T, b1=B1, activations=np.array(["relu", "linear"]))
    dx = np.array([0.2, 0.1, 0.1])
    step = W0 @ dx  # the change of the pre-activations: [0.17, 0.17, -0.03]
    a = np.array([[0.5 * step[0], 1.0, 1.0], [-0.5 * step[0], 1.0, 1.0], [1.0, 1.0, 1.0], [-0.5 * step[0], -1.0, -1.0]])
    X = np.linalg.solve(W0, (a - B0).T).T
    write_csv(tmp_path / "x.csv", "abc", X)
    X = np.loadtxt(tmp_path / "x.csv", delimiter=",", skiprows=1)
    dx_options = [f"--dx={n}={v!r}" for n, v in zip("abc", dx.tolist())]
    r = run("propagate", tmp_path / "relu.npz", tmp_path / "x.csv", *dx_options, "--method", "linear",
            "--check-linearity", "--format", "npz")
    assert r.exit_code == 0, r.output
    with np.load(io.BytesIO(r.stdout_bytes)) as out:
        out = dict(out)
    Y, J = relu_forward(X), relu_jacobian(X)
    jdx = J @ dx
    plus, minus = relu_forward(X + dx) - Y, Y - relu_forward(X - dx)
    np.testing.assert_allclose(out["y"], Y, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(out["dy_linear"], jdx, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(out["dy_plus"], plus, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(out["dy_minus"], minus, rtol=1e-12, atol=1e-15)
    # issue 13.5: the departure along each input alone, in quadrature, over u (not over |J dx|)
    departure = np.zeros_like(Y)
    for i in range(3):
        step = np.zeros(3)
        step[i] = dx[i]
        e = np.maximum(np.abs(relu_forward(X + step) - Y - J[:, :, i] * dx[i]),
                       np.abs(Y - relu_forward(X - step) - J[:, :, i] * dx[i]))
        departure += e**2
    u = np.sqrt(((J * dx) ** 2).sum(-1))
    expected = np.sqrt(departure) / (u + 1e-12 * (1 + np.abs(Y)))
    np.testing.assert_allclose(out["nonlinearity"], expected, rtol=1e-6, atol=1e-12)
    # the sides really differ: row 1 bends on the minus side only, row 2 on the plus side only
    assert np.allclose(plus[0], jdx[0], atol=1e-14) and not np.allclose(minus[0], jdx[0], atol=1e-3)
    assert np.allclose(minus[1], jdx[1], atol=1e-14) and not np.allclose(plus[1], jdx[1], atol=1e-3)
    assert np.all(out["nonlinearity"][:2].max(axis=1) > 0.2) and np.all(out["nonlinearity"][2] < 1e-9)
    assert np.all(J[3] == 0) and np.all(np.abs(plus[3]) > 0.01) and np.all(out["nonlinearity"][3] > 1e9)
    assert ("6 (row, output) pairs depart from linearity by more than --tol 0.1: "
            "row 1 y[0], row 1 y[1], row 2 y[0], row 2 y[1], row 4 y[0], row 4 y[1]") in r.stderr
    # the gate fails on a row that bends only below x
    write_csv(tmp_path / "row1.csv", "abc", X[:1])
    gate = run("propagate", tmp_path / "relu.npz", tmp_path / "row1.csv", *dx_options, "--max-nonlinearity", "0.2",
               "--format", "csv")
    assert gate.exit_code == 1
    assert expected[0, 0] > 0.2 > expected[0, 1]
    message = (f"1 (row, output) pairs exceed the bounds: row 1 y[0]: nonlinearity {expected[0, 0]:.4g} "
               "> --max-nonlinearity 0.2\n")
    assert message in gate.stderr


# ---------------------------------------------------------------------------
# --max-dy with a coverage factor: the gate is on U = k u (and k sigma for mc)


@pytest.mark.parametrize("factor", [["--coverage", "2.5"], ["--level", "0.99"]])
def test_max_dy_gates_the_expanded_uncertainty(factor):
    out = npz_result("propagate", MODEL, INPUTS, "--dx", "0.05", *factor)
    k = 2.5 if factor[0] == "--coverage" else 2.5758293035489004
    np.testing.assert_allclose(out["U_gum"], k * out["dy_gum"], rtol=1e-12)
    top_u, top_U = float(out["dy_gum"].max()), float(out["U_gum"].max())
    # a bound above every u but below the largest k u must fail
    r = run("propagate", MODEL, INPUTS, "--dx", "0.05", *factor, "--max-dy", repr(top_u * 1.01), "--format", "csv")
    assert r.exit_code == 1, r.output
    over = (out["U_gum"] > top_u * 1.01).sum()
    assert f"jacprop: {over} (row, output) pairs exceed the bounds" in r.stderr
    n, kk = np.unravel_index(out["U_gum"].argmax(), out["U_gum"].shape)
    assert f"row {n + 1} y[{kk}]: dy_gum x k={k:g} = {top_U:.4g} > --max-dy {top_u * 1.01:.4g}" in r.stderr
    ok = run("propagate", MODEL, INPUTS, "--dx", "0.05", *factor, "--max-dy", repr(top_U * 1.0001), "--format", "csv")
    assert ok.exit_code == 0, ok.output
    assert run("propagate", MODEL, INPUTS, "--dx", "0.05", *factor, "--max-dy", repr(top_U * 0.9999),
               "--format", "csv").exit_code == 1


def test_max_dy_gates_k_times_the_mc_sigma_and_the_largest_estimate():
    common = ["--dx", "0.05", "--method", "mc", "--method", "worst", "--samples", "300", "--coverage", "1.5"]
    out = npz_result("propagate", MODEL, INPUTS, *common)
    size = np.maximum(1.5 * out["dy_mc"], out["dy_worst"])
    assert (1.5 * out["dy_mc"] > out["dy_worst"]).any() and (1.5 * out["dy_mc"] < out["dy_worst"]).any()
    top = float(size.max())
    assert run("propagate", MODEL, INPUTS, *common, "--max-dy", repr(top * 1.0001), "--format", "csv").exit_code == 0
    r = run("propagate", MODEL, INPUTS, *common, "--max-dy", repr(top * 0.9999), "--format", "csv")
    assert r.exit_code == 1 and "1 (row, output) pairs exceed the bounds" in r.stderr
    n, k = np.unravel_index(size.argmax(), size.shape)
    assert f"row {n + 1} y[{k}]: " in r.stderr and f" = {top:.4g} > --max-dy" in r.stderr
    # per output: y[1]'s bound alone
    top1 = float(size[:, 1].max())
    r = run("propagate", MODEL, INPUTS, *common, "--max-dy", f"y[1]={top1 * 0.9999!r}", "--format", "csv")
    assert r.exit_code == 1 and "1 (row, output) pairs exceed the bounds" in r.stderr and "y[0]" not in r.stderr


# ---------------------------------------------------------------------------
# --budget, uncorrelated inputs: budget_i = J_i^2 dx_i^2 / u^2


def test_budget_of_uncorrelated_inputs_from_the_formula(tmp_path):
    X, _, J = reference()
    dx = np.array([0.5, 0.02, 0.1])
    out = npz_result("propagate", MODEL, INPUTS, *[f"--dx={n}={v!r}" for n, v in zip(NAMES, dx.tolist())], "--budget")
    u2 = (J**2 * dx**2).sum(-1)
    expected = J**2 * dx**2 / u2[:, :, None]
    assert out["budget"].shape == (len(X), 2, 3)
    np.testing.assert_allclose(out["budget"], expected, rtol=1e-12)
    np.testing.assert_allclose(out["budget"].sum(-1), 1.0, rtol=1e-13)
    np.testing.assert_allclose(out["dy_gum"] ** 2, u2, rtol=1e-13)
    # the CSV columns budget(<out>,<in>), outputs major
    r = run("propagate", MODEL, INPUTS, *[f"--dx={n}={v!r}" for n, v in zip(NAMES, dx.tolist())], "--budget",
            "--format", "csv")
    header, *lines = r.stdout.splitlines()
    names = _cells(header)
    assert names[-6:] == [f"budget({o},{i})" for o in ("y[0]", "y[1]") for i in NAMES]
    got = np.array([[float(v) for v in _cells(line)[-6:]] for line in lines]).reshape(-1, 2, 3)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_budget_with_per_row_uncertainties_and_a_row_without_any(tmp_path):
    X, _, J = reference()
    dx = np.abs(np.sin(np.arange(X.size).reshape(X.shape))) * 0.3
    dx[2] = 0.0  # no uncertainty at row 3: u = 0 and every share 0
    cols = [f"u_{n}" for n in NAMES]
    write_csv(tmp_path / "in.csv", NAMES + cols, np.hstack([X, dx]))
    out = npz_result("propagate", MODEL, tmp_path / "in.csv", *[f"--dx-column={n}=u_{n}" for n in NAMES], "--budget")
    parts = J**2 * dx[:, None, :] ** 2
    total = parts.sum(-1, keepdims=True)
    expected = np.divide(parts, total, out=np.zeros_like(parts), where=total > 0)
    np.testing.assert_allclose(out["budget"], expected, rtol=1e-12)
    assert np.all(out["budget"][2] == 0) and np.all(out["dy_gum"][2] == 0)
    np.testing.assert_allclose(out["budget"][[0, 1, 3, 4, 5]].sum(-1), 1.0, rtol=1e-13)


# ---------------------------------------------------------------------------
# Options and checks that mutants of propagate.py showed untested (make mutate, tests/README.md)


def test_inputs_by_index_exponents_and_zero_uncertainty():
    by_name = npz_result("propagate", MODEL, INPUTS, "--dx", "pressure=0.02", "--dx", "flow=0")
    for spec in (["--dx", "1=0.02"], ["--dx", "1=2E-2"], ["--dx", "1=2e-2", "--dx", "2=0"]):
        np.testing.assert_array_equal(npz_result("propagate", MODEL, INPUTS, *spec)["dy_gum"], by_name["dy_gum"])
    _, _, J = reference()
    np.testing.assert_allclose(by_name["dy_gum"], np.abs(J[:, :, 1]) * 0.02, rtol=1e-13)
    names = "['temperature', 'pressure', 'flow']"
    for spec, message in ((["--dx", "3=1"], f"--dx 3=1: no input named '3'; the inputs are {names}"),
                          (["--dx", "-1"], "--dx -1: an uncertainty must be finite and >= 0"),
                          (["--dx", "1e999"], "--dx 1e999: an uncertainty must be finite and >= 0")):
        r = run("propagate", MODEL, INPUTS, *spec)
        assert r.exit_code == 2 and f"jacprop: error: {message}\n" == r.stderr, r.output


def write_with_column(tmp_path, name, values):
    X, _, _ = reference()
    return write_csv(tmp_path / "in.csv", NAMES + [name], np.hstack([X, np.asarray(values, float)[:, None]]))


@pytest.mark.parametrize("values,message", [
    ([0.1, 0.2, -0.5, 0.1, -1.0, 0.1], "row 3: uncertainty of input 'temperature' is -0.5"),
    ([0.1, np.nan, -0.5, 0.1, 0.1, 0.1], "row 2: uncertainty of input 'temperature' is nan"),
    ([0.1, 0.1, 0.1, np.inf, 0.1, 0.1], "row 4: uncertainty of input 'temperature' is inf"),
])
def test_a_bad_per_row_uncertainty_is_refused_naming_its_row(tmp_path, values, message):
    path = write_with_column(tmp_path, "u", values)
    r = run("propagate", MODEL, path, "--dx-column", "temperature=u")
    assert r.exit_code == 2 and r.stderr == f"jacprop: error: {message}; it must be finite and >= 0\n", r.output


def test_dx_column_names_with_an_equals_sign_and_unknown_inputs(tmp_path):
    X, _, J = reference()
    path = write_with_column(tmp_path, "u=t", np.full(len(X), 0.25))
    out = npz_result("propagate", MODEL, path, "--dx-column", "temperature=u=t", "--method", "worst")
    np.testing.assert_allclose(out["dy_worst"], np.abs(J[:, :, 0]) * 0.25, rtol=1e-13)
    r = run("propagate", MODEL, path, "--dx-column", "nosuch=u=t")
    assert r.exit_code == 2 and r.stderr == ("jacprop: error: --dx-column nosuch=u=t: expected INPUT=COLUMN with "
                                             "INPUT one of ['temperature', 'pressure', 'flow']\n"), r.output


def test_a_covariance_with_an_input_of_zero_variance(tmp_path):
    _, _, J = reference()
    cov = COV.copy()
    cov[1, :] = cov[:, 1] = 0.0  # pressure known exactly
    out = npz_result("propagate", MODEL, INPUTS, "--cov", write_matrix(tmp_path / "cov.csv", cov), "--output-cov")
    np.testing.assert_allclose(out["dy_gum"], np.sqrt(np.einsum("nki,ij,nkj->nk", J, cov, J)), rtol=1e-12)
    np.testing.assert_allclose(out["cov_y"], np.einsum("nki,ij,nlj->nkl", J, cov, J), rtol=1e-12, atol=1e-16)


@pytest.mark.parametrize("matrix,message", [
    ([[1, 0.5, 0], [0.4, 1, 0], [0, 0, 1]], "not symmetric: entry (1, 2) is 0.5 but (2, 1) is 0.4"),
    ([[1, 0, 0], [0, 1, 0.3], [0, 0.2, 1]], "not symmetric: entry (2, 3) is 0.3 but (3, 2) is 0.2"),
    ([[1, 2, 0], [2, 1, 0], [0, 0, 1]], "not positive semi-definite (smallest eigenvalue -1)"),
    ([[1e-12, 0, 0], [0, 1e-12, 1e-20], [0, 0, 1e-12]], "not symmetric: entry (2, 3) is 1e-20 but (3, 2) is 0.0"),
    ([[1, 0, 0], [0, np.nan, 0], [0, 0, 1]], "a covariance must be a finite square matrix, got shape (3, 3)"),
])
def test_a_bad_covariance_is_refused_with_the_entry_that_is_wrong(tmp_path, matrix, message):
    path = write_matrix(tmp_path / "c.csv", np.array(matrix, float))
    r = run("propagate", MODEL, INPUTS, "--cov", path)
    assert r.exit_code == 2 and r.stderr == f"jacprop: error: {path}: {message}\n", r.output


def test_a_covariance_within_rounding_of_semi_definite_is_accepted(tmp_path):
    """Smallest eigenvalue -2e-10 on entries up to 4: within the tolerance 1e-10 x max|entry|."""
    _, _, J = reference()
    d = 2.5e-10
    cov = np.array([[4.0, 2.0, 0.0], [2.0, 1.0 - d, 0.0], [0.0, 0.0, 0.04]])
    assert -3e-10 < np.linalg.eigvalsh(cov).min() < -1e-10
    out = npz_result("propagate", MODEL, INPUTS, "--cov", write_matrix(tmp_path / "c.csv", cov))
    np.testing.assert_allclose(out["dy_gum"], np.sqrt(np.maximum(np.einsum("nki,ij,nkj->nk", J, cov, J), 0)), rtol=1e-9)


@pytest.mark.parametrize("level", ["1", "-1", "1.5"])
def test_a_level_outside_0_1_is_refused(level):
    r = run("propagate", MODEL, INPUTS, "--dx", "0.1", "--level", level)
    assert r.exit_code == 2 and r.stderr.startswith(
        f"jacprop: error: Invalid value for '--level': {level} is not in (0, 1)")


def test_mc_sigma_is_the_unbiased_sample_estimate(tmp_path):
    """3 draws per row on y = 2 x: E[s^2] = (2 dx)^2 only with the n - 1 divisor (n: 2/3 of it)."""
    np.savez(tmp_path / "lin.npz", W0=np.array([[2.0]]), b0=np.array([0.0]))
    write_csv(tmp_path / "x.csv", ["x"], np.linspace(-1, 1, 20_000)[:, None])
    out = npz_result("propagate", tmp_path / "lin.npz", tmp_path / "x.csv", "--dx", "0.5", "--method", "mc",
                     "--samples", "3")
    # var(s^2) = 2 sigma^4 / (n - 1) = sigma^4: the mean over 20,000 rows is within ~0.7 % (x 5 here)
    assert abs(np.mean(out["dy_mc"] ** 2) - 1.0) < 0.035
