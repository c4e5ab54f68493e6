"""Propagation and uncertainty (issue #20, tests/mutation-mut-unc.md): the Monte Carlo mean and batch size
fixed here, and the mutants of propagate.py, uncertainty/ and commands/gates.py, curvature.py that
survived the selection, each against a formula or a re-computation written in the test."""

import contextlib
import math
import os
import signal
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from jacprop.uncertainty import montecarlo as mc

A = np.array([[1.5, -2.0, 0.5], [0.25, 1.0, -3.0], [0.1, 0.2, 0.3]])  # y = A x + C, K = 3
C = np.array([0.1, -7.0, 1e3])


def linear(X):
    return X @ A.T + C


@contextlib.contextmanager
def no_runtime_warnings():
    """numpy's warnings as errors, whatever np.seterr an earlier CLI test left (the CLI ignores them all): the
    library itself must not warn (Python API users see numpy's warnings)."""
    with warnings.catch_warnings(), np.errstate(all="warn"):
        warnings.simplefilter("error")
        yield


# --- the mean of the draws: exact for equal draws, pairwise otherwise ---------------------------------------

@pytest.mark.parametrize("value", [0.1, -7.3, 1e3 / 3])
def test_the_mean_of_equal_draws_is_that_draw(value):
    ys = np.full((2, 20_000, 3), value)
    s = mc.summary(ys, mc.McOptions())
    assert (s["mean"] == value).all() and (s["std"] == 0).all() and (s["std_se"] == 0).all()


def test_the_mean_of_many_draws_is_within_a_few_ulps_of_the_exact_one():
    ys = 1e3 + np.random.default_rng(3).standard_normal((2, 200_000, 3))
    mean = mc.summary(ys, mc.McOptions())["mean"]
    for g in range(2):
        for k in range(3):
            exact = math.fsum(ys[g, :, k]) / 200_000  # the correctly rounded sum, one more rounding
            assert abs(mean[g, k] - exact) <= 2 * np.spacing(exact)


def test_a_row_without_uncertainty_has_zero_monte_carlo_spread_and_shift():
    X = np.array([[0.3, -1.1, 2.0], [0.7, 0.2, -0.4]])
    dx = np.array([[0.0, 0.0, 0.0], [0.01, 0.02, 0.0]])
    out = mc.monte_carlo(linear, X, dx, None, np.array([1, 2]), mc.McOptions(samples=20_000, digits=None))
    assert (out["dy_mc"][0] == 0).all() and (out["mc_shift"][0] == 0).all() and (out["cov_mc"][0] == 0).all()
    assert (out["mc_lo"][0] == linear(X)[0]).all() and (out["mc_hi"][0] == linear(X)[0]).all()
    u = np.sqrt((A**2 * dx[1] ** 2).sum(axis=1))  # GUM for a linear model; the MC within its standard error
    assert np.abs(out["dy_mc"][1] - u).max() < 5 * out["dy_mc_se"][1].max()


# --- the batch size M = max(10^4, J), J = ceil(100 / (1 - p)) (JCGM 101 7.9.2) ---------------------------------

@pytest.mark.parametrize("text", ["0.5", "0.9", "0.95", "0.99", "0.995", "0.999", "0.9995", "0.9999", "0.99995",
                                  "0.99999", "0.999999", "0.9999999"])
def test_batch_size_is_the_smallest_integer_at_least_100_over_1_minus_p(text):
    digits = len(text) - 2
    num, den = int(text[2:]), 10**digits  # p = num / den exactly
    j = -(-100 * den // (den - num))  # ceil in integers
    assert mc.McOptions(level=float(text), samples=10**9).batch == max(10_000, j)
    assert mc.McOptions(level=float(text), samples=1234).batch == min(1234, max(10_000, j))
    assert mc.McOptions(level=float(text), samples=1234, digits=None).batch == 1234


# --- uncertainty/curvature.py: the second-order moments against the trace formulas ------------------------------

def sym_hessians(seed, n, k, d):
    H = np.random.default_rng(seed).normal(size=(n, k, d, d))
    return H + H.transpose(0, 1, 3, 2)


def trace_moments(H, dx, corr=None, excess=None):
    """shift_k = tr(H_k S) / 2, Cov_kl = tr(H_k S H_l S) / 2 + sum_i e_i H_k,ii H_l,ii u_i^4 / 4, S = D R D, per row."""
    n, k, d, _ = H.shape
    shift, cov = np.zeros((n, k)), np.zeros((n, k, k))
    for r in range(n):
        S = np.outer(dx[r], dx[r]) * (np.eye(d) if corr is None else corr)
        for a in range(k):
            shift[r, a] = 0.5 * np.trace(H[r, a] @ S)
            for b in range(k):
                cov[r, a, b] = 0.5 * np.trace(H[r, a] @ S @ H[r, b] @ S)
                if excess is not None:
                    cov[r, a, b] += 0.25 * sum(excess[i] * H[r, a, i, i] * H[r, b, i, i] * dx[r, i] ** 4
                                               for i in range(d))
    return shift, cov


def test_excess_kurtosis_of_each_distribution_from_its_fourth_moment():
    from jacprop.uncertainty.curvature import excess_kurtosis

    # E z^4 of the unit-variance laws: rect on +-a, a = sqrt 3: a^4 / 5; triangular on +-a, a = sqrt 6: a^4 / 15;
    # sqrt 2 sin(theta), theta uniform: 4 E sin^4 = 4 * 3/8; Student's t (NU > 4): 3 (NU - 2) / (NU - 4)
    expect = [math.sqrt(3) ** 4 / 5, math.sqrt(6) ** 4 / 15, 4 * 3 / 8, 3 * (6.5 - 2) / (6.5 - 4), 3.0]
    kinds = [("rect", 0.0), ("triangular", 0.0), ("arcsine", 0.0), ("t", 6.5), ("normal", 0.0)]
    np.testing.assert_allclose(excess_kurtosis(kinds), np.array(expect) - 3, rtol=1e-14, atol=1e-15)
    assert excess_kurtosis([("normal", 0.0), ("normal", 0.0)]) is None


@pytest.mark.parametrize("nu,refused", [(4.0, True), (3.0, True), (4.01, False), (4.5, False)])
def test_gum2_needs_a_t_with_more_than_four_degrees_of_freedom(nu, refused):
    from jacprop.errors import UsageError
    from jacprop.uncertainty.curvature import check_fourth_moments

    kinds = (("normal", 0.0), ("t", nu))
    if refused:
        with pytest.raises(UsageError) as e:
            check_fourth_moments(kinds, ["a", "b"])
        assert str(e.value) == (f"--dist b=t:{nu:g} with --method gum2: a t with NU <= 4 has no fourth moment, so "
                                "the second-order variance is infinite; use --method mc")
    else:
        check_fourth_moments(kinds, ["a", "b"])
    check_fourth_moments(None, ["a", "b"])


@pytest.mark.parametrize("cross", [False, True])
@pytest.mark.parametrize("case", ["independent", "correlated", "rect"])
def test_block_moments_in_several_hessian_blocks_over_the_uncertain_inputs(case, cross):
    from jacprop.uncertainty.curvature import block_moments

    n, k, d = 7, 2, 4
    H = sym_hessians(1, n, k, d)
    dx = np.abs(np.random.default_rng(2).normal(size=(n, d))) * 0.3
    dx[:, 1] = 0  # no uncertainty: H over inputs 0, 2, 3 only
    corr = kinds = excess = None
    if case == "correlated":
        corr = np.array([[1, 0.9, 0.4, 0], [0.9, 1, 0, 0], [0.4, 0, 1, -0.5], [0, 0, -0.5, 1.0]])
    if case == "rect":
        kinds = (("normal", 0.0), ("rect", 0.0), ("t", 9.0), ("arcsine", 0.0))
        excess = np.array([0, -1.2, 6 / 5, -1.5])
    asked = []

    def hessian(wrt):  # three blocks of rows, H over wrt only
        asked.append(list(wrt))
        Hw = H[:, :, wrt][:, :, :, wrt]
        return [(0, Hw[:3]), (3, Hw[3:4]), (4, Hw[4:])]

    shift, var = block_moments((n, k), dx, corr, hessian, kinds, cross)
    assert asked == [[0, 2, 3]]
    want_shift, want_cov = trace_moments(H, dx, corr, excess)
    np.testing.assert_allclose(shift, want_shift, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(var, want_cov if cross else np.einsum("nkk->nk", want_cov), rtol=1e-12, atol=1e-15)


def test_block_moments_without_uncertainty_or_without_h():
    from jacprop.errors import UsageError
    from jacprop.uncertainty.curvature import block_moments

    shift, var = block_moments((3, 2), np.zeros((3, 4)), None, None, None, True)
    assert shift.shape == (3, 2) and var.shape == (3, 2, 2) and not shift.any() and not var.any()
    shift, var = block_moments((3, 2), np.zeros((3, 4)), None, None)
    assert var.shape == (3, 2) and not var.any()
    with pytest.raises(UsageError, match="^--method gum2 and the Hessian index need H: give the model, or the npz "
                                         "that `jacprop hessian` writes$"):
        block_moments((3, 2), np.full((3, 4), 0.1), None, None)
    dx = np.zeros((3, 4))
    dx[1, 2] = np.nan  # a relative uncertainty of a NaN input: that input is still asked for, and its rows are NaN
    H = sym_hessians(3, 3, 2, 4)
    asked = []
    shift, var = block_moments((3, 2), dx, None,
                               lambda wrt: asked.append(list(wrt)) or [(0, H[:, :, wrt][:, :, :, wrt])])
    assert asked == [[2]]  # H over that input only (a diagonal H serves one input)
    assert np.isnan(shift[1]).all() and np.isnan(var[1]).all() and not shift[[0, 2]].any()


def test_block_moments_of_perfectly_correlated_inputs():
    """R = 1 1^T is singular: eigh gives an eigenvalue of -5e-16, which the square root must take as 0."""
    from jacprop.uncertainty.curvature import block_moments

    H = sym_hessians(5, 2, 2, 3)
    dx = np.array([[0.1, 0.2, 0.3], [0.3, 0.1, 0.2]])
    corr = np.ones((3, 3))
    assert np.linalg.eigvalsh(corr).min() < 0  # the case
    shift, cov = block_moments((2, 2), dx, corr, lambda wrt: [(0, H)], None, True)
    want_shift, want_cov = trace_moments(H, dx, corr)
    np.testing.assert_allclose(shift, want_shift, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(cov, want_cov, rtol=1e-12, atol=1e-15)


def test_hessian_index_ratios():
    from jacprop.uncertainty.curvature import hessian_index

    var2 = np.array([[4.0, 0.0, 0.0, 9.0, -1e-30]])
    shift = np.array([[-3.0, 0.0, 2.0, 0.0, 0.0]])
    u = np.array([[2.0, 0.0, 0.0, 3.0, 1.0]])
    sd, rel = hessian_index(var2, shift, u)
    np.testing.assert_array_equal(sd, [[1.0, 0.0, 0.0, 1.0, 0.0]])
    np.testing.assert_array_equal(rel, [[1.5, 0.0, np.inf, 0.0, 0.0]])
    with no_runtime_warnings():  # 0 / 0 and x / 0 are expected here: no RuntimeWarning on stderr
        hessian_index(var2, shift, u)


# --- commands/curvature.py: where H comes from -------------------------------------------------------------

def test_block_hessian_reads_h_from_the_block_or_the_network():
    from types import SimpleNamespace as NS

    from jacprop.commands.curvature import block_hessian
    from jacprop.errors import UsageError

    H = sym_hessians(4, 3, 2, 4)
    gum2 = NS(methods=("gum", "gum2"), check_linearity=False, hessian_index=True)
    index = NS(methods=("gum",), check_linearity=True, hessian_index=True)
    for s in (NS(methods=("gum", "mc"), check_linearity=False, hessian_index=True),
              NS(methods=("gum",), check_linearity=True, hessian_index=False)):
        assert block_hessian(s, NS(hessian=H, X=None), None, None) is None
    for s in (gum2, index):
        [(start, Hw)] = block_hessian(s, NS(hessian=H, X=None), None, None)([3, 1])
        assert start == 0 and (Hw == H[:, :, [3, 1]][:, :, :, [3, 1]]).all()
    diagonal = np.einsum("nkii->nki", H)
    [(start, Hw)] = block_hessian(gum2, NS(hessian=diagonal, X=None), None, None)([2])
    assert start == 0 and Hw.shape == (3, 2, 1, 1) and (Hw[:, :, 0, 0] == H[:, :, 2, 2]).all()
    with pytest.raises(UsageError) as e:
        block_hessian(gum2, NS(hessian=diagonal, X=None), None, None)([0, 2])
    assert str(e.value) == ("--method gum2 from `jacprop hessian --diagonal`: the mixed terms d2y/dx_i dx_j of the "
                            "inputs with uncertainty are missing; write H without --diagonal (or give one input an "
                            "uncertainty)")
    assert block_hessian(gum2, NS(hessian=None, X=None), None, None) is None
    calls = []
    network = NS(hessian=lambda X, outs, wrt: calls.append((X, outs, wrt)) or "blocks")
    X = np.zeros((3, 4))
    assert block_hessian(index, NS(hessian=None, X=X), network, [1])([0, 3]) == "blocks"
    assert calls == [(X, [1], [0, 3])]


def test_network_runs_the_model_deterministically_in_its_dtype_and_gives_h():
    import jacprop
    from jacprop.commands.curvature import Network

    root = Path(__file__).parent.parent / "sample_models"
    model = jacprop.load(root / "bishop_tanh.npz")
    X = np.loadtxt(root / "bishop_tanh.csv", delimiter=",", skiprows=1)
    W1, b1, W2, b2 = (np.asarray(a, np.float64) for a in model_weights(root / "bishop_tanh.npz"))
    y = np.tanh(X @ W1 + b1) @ W2 + b2  # the network written out
    np.testing.assert_allclose(Network(model)(X), y, rtol=1e-14, atol=1e-15)
    y32 = Network(model, "float32")(X)
    assert y32.dtype == np.float32 and np.abs(y32 - y).max() < 1e-5 and np.abs(y32 - y).max() > 0
    blocks = list(Network(model).hessian(X, [1], [0, 2]))
    assert [start for start, _ in blocks] == [0]
    H = blocks[0][1]
    # H of y[1] by central differences of the Jacobian written out: J = (1 - t^2) W1 .. W2
    def jac(Z):
        t = np.tanh(Z @ W1 + b1)
        return np.einsum("nm,im,mk->nki", 1 - t * t, W1, W2)
    h = 1e-5
    for j, i in enumerate([0, 2]):
        e = np.zeros(3)
        e[i] = h
        col = (jac(X + e) - jac(X - e)) / (2 * h)  # d J_k,a / d x_i: (N, K, D)
        np.testing.assert_allclose(H[:, 0, :, j], col[:, 1][:, [0, 2]], rtol=1e-6, atol=1e-8)


def model_weights(path):
    z = np.load(path, allow_pickle=False)
    assert list(z["activations"]) == ["tanh", "linear"]
    return z["W0"], z["b0"], z["W1"], z["b1"]


# --- uncertainty/inputs.py: --dx, --dist, --dof and covariances as the user gives them --------------------------

NAMES = ["temp", "press", "flow"]


def usage_error(fn, *args):
    from jacprop.errors import UsageError

    with pytest.raises(UsageError) as e:
        fn(*args)
    return str(e.value)


def test_parse_dx_absolute_relative_by_name_index_and_for_all():
    from jacprop.uncertainty.inputs import parse_dx

    u = parse_dx(["0.5", "press=2%", "2=+.25e-1", "temp= 1.5 %"], NAMES)
    # "0.5" sets all; press=2% replaces press's absolute; 2 is flow by index; temp= 1.5 % is relative
    np.testing.assert_array_equal(u.absolute, [0.0, 0.0, 0.025])
    np.testing.assert_array_equal(u.relative, [0.015, 0.02, 0.0])
    assert u.columns == {} and u.corr is None and u.needs_x
    u = parse_dx(["1e-3", "flow=7"], NAMES, ["press=col_p"], np.eye(3))
    np.testing.assert_array_equal(u.absolute, [1e-3, 1e-3, 7.0])
    assert not u.relative.any() and not u.needs_x and u.columns == {1: "col_p"} and (u.corr == np.eye(3)).all()
    X = np.array([[2.0, -4.0, 1.0], [np.nan, 1.0, 3.0]])
    dx = parse_dx(["temp=10%", "press=0.5"], NAMES, ["flow=f"]).dx(X, {2: np.array([0.1, 0.2])})
    np.testing.assert_array_equal(dx[0], [0.2, 0.5, 0.1])
    assert np.isnan(dx[1, 0]) and (dx[1, 1:] == [0.5, 0.2]).all()  # relative of a kept NaN input: NaN


@pytest.mark.parametrize("spec,message", [
    ("3=0.1", "--dx 3=0.1: no input named '3'; the inputs are ['temp', 'press', 'flow']"),
    ("speed=0.1", "--dx speed=0.1: no input named 'speed'; the inputs are ['temp', 'press', 'flow']"),
    ("temp=abc", "--dx temp=abc: expected a number or a percentage (e.g. 0.01, temp=0.5, temp=2%)"),
    ("temp=1e400", "--dx temp=1e400: an uncertainty must be finite and >= 0"),
    ("-0.1", "--dx -0.1: an uncertainty must be finite and >= 0"),
])
def test_parse_dx_refusals(spec, message):
    from jacprop.uncertainty.inputs import parse_dx

    assert usage_error(parse_dx, [spec], NAMES) == message


@pytest.mark.parametrize("column", ["flow", "speed=c"])
def test_parse_dx_column_refusals(column):
    from jacprop.uncertainty.inputs import parse_dx

    assert usage_error(parse_dx, [], NAMES, [column]) == (
        f"--dx-column {column}: expected INPUT=COLUMN with INPUT one of ['temp', 'press', 'flow']")


@pytest.mark.parametrize("values,row,message", [
    ([0.1, -0.2], 2, "row 12: uncertainty of input 'flow' is -0.2; it must be finite and >= 0"),
    ([np.inf, 0.2], 1, "row 11: uncertainty of input 'flow' is inf; it must be finite and >= 0"),
])
def test_dx_refuses_negative_or_non_finite_columns(values, row, message):
    from jacprop.uncertainty.inputs import parse_dx

    u = parse_dx(["temp=1%"], NAMES, ["flow=f"])
    X = np.ones((2, 3))
    assert usage_error(u.dx, X, {2: np.array(values)}, np.array([11, 12]), NAMES) == message
    bare = usage_error(u.dx, X, {2: np.array(values)})
    assert bare == message.replace("row 1" + str(row), f"row {row}").replace("'flow'", "2")


def test_dx_refuses_a_bad_column_value_whatever_x_holds():
    """Only a relative uncertainty of a non-finite x may be NaN; an absolute one (a column) is checked even there,
    and x = inf with a 0 relative uncertainty raises no numpy warning (0 * inf is never used)."""
    from jacprop.uncertainty.inputs import parse_dx

    X = np.array([[1.0, np.inf, np.nan]])
    u = parse_dx(["temp=1%", "flow=0.5"], NAMES, ["press=p"])
    with no_runtime_warnings():
        np.testing.assert_array_equal(u.dx(X, {1: np.array([0.2])}), [[0.01, 0.2, 0.5]])
    assert usage_error(u.dx, X, {1: np.array([-0.2])}, np.array([3]), NAMES) == (
        "row 3: uncertainty of input 'press' is -0.2; it must be finite and >= 0")
    u = parse_dx(["flow=1%"], NAMES, ["press=p"])
    assert usage_error(u.dx, X, {1: np.array([np.nan])}, np.array([3]), NAMES) == (
        "row 3: uncertainty of input 'press' is nan; it must be finite and >= 0")
    assert np.isnan(u.dx(X, {1: np.array([0.1])})[0, 2])


def test_split_covariance_sets_r_to_0_beside_a_zero_sigma_whatever_the_memory_held():
    """R_ij for sigma_i = 0 is 0 by definition; numpy reuses freed small buffers, so NaN-filled ones freed just
    before would show through entries that were never written."""
    from jacprop.uncertainty.inputs import split_covariance

    cov = np.diag([0.25, 0.0, 4.0])
    cov[0, 2] = cov[2, 0] = -0.4
    junk = [np.full((3, 3), np.nan) for _ in range(8)]
    del junk
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sigma, R = split_covariance(cov)
    np.testing.assert_array_equal(sigma, [0.5, 0.0, 2.0])
    np.testing.assert_array_equal(R, [[1.0, 0.0, -0.4], [0.0, 1.0, 0.0], [-0.4, 0.0, 1.0]])


def test_dx_of_a_relative_uncertainty_refuses_nan_only_where_the_input_is_finite():
    from jacprop.uncertainty.inputs import Uncertainty

    u = Uncertainty(np.array([0.0, 0.1]), np.array([0.0, 0.0]), {})
    X = np.array([[np.nan, 1.0]])
    assert u.dx(X)[0, 1] == 0.1  # an absolute uncertainty ignores x
    u = Uncertainty(np.array([0.0, np.nan]), np.array([0.0, 0.0]), {})
    assert "uncertainty of input 1 is nan" in usage_error(u.dx, X)


def test_per_input_options_by_name_index_and_for_all():
    from jacprop.uncertainty.inputs import distributions_of, dof_of, parse_dof

    assert distributions_of(["rect", "1=t:5", "flow=normal"], NAMES) == (("rect", 0.0), ("t", 5.0), ("normal", 0.0))
    assert distributions_of(["temp=rect"], NAMES) == (("rect", 0.0), ("normal", 0.0), ("normal", 0.0))
    assert distributions_of(["normal", "temp=t:inf"], NAMES) is None
    assert distributions_of([], NAMES) is None
    assert dof_of(["press=4.5"], NAMES) == (math.inf, 4.5, math.inf)
    assert dof_of(["9", "0=1"], NAMES) == (1.0, 9.0, 9.0)
    assert dof_of([], NAMES) is None
    assert parse_dof("inf", "x") == math.inf and parse_dof("1", "x") == 1.0
    assert usage_error(dof_of, ["3=2"], NAMES) == "--dof 3=2: no input named '3'; the inputs are " \
        "['temp', 'press', 'flow']"
    assert usage_error(parse_dof, "0.99", "--dof a=0.99") == ("--dof a=0.99: degrees of freedom must be >= 1 (or "
                                                               "inf), got 0.99")
    assert usage_error(parse_dof, "nan", "--dof a=nan").endswith("got nan")
    assert usage_error(parse_dof, "many", "--dof a=many") == ("--dof a=many: expected a number of degrees of "
                                                               "freedom >= 1 (or inf)")


def test_check_independent_names_the_correlated_input():
    from jacprop.uncertainty.inputs import check_independent

    corr = np.array([[1, 0, 0], [0, 1, 0.3], [0, 0.3, 1.0]])
    normal, rect = ("normal", 0.0), ("rect", 0.0)
    check_independent(None, (rect, rect, rect), (3.0, 3.0, 3.0), NAMES)
    check_independent(corr, (rect, normal, normal), (3.0, math.inf, math.inf), NAMES)  # temp is uncorrelated
    check_independent(corr, None, None, NAMES)
    assert usage_error(check_independent, corr, (normal, normal, rect), None, NAMES) == (
        "--dist flow=rect: a correlated input must be normal (jacprop has no copula); remove its correlation or "
        "its --dist")
    assert usage_error(check_independent, corr, None, (math.inf, 5.0, math.inf), NAMES) == (
        "--dof press: Welch-Satterthwaite (JCGM 100 G.4) needs independent inputs, but press is correlated")


def test_covariance_checks_and_split():
    from jacprop.uncertainty.inputs import check_covariance, split_covariance

    sigma = np.array([0.5, 0.0, 2.0])
    R = np.array([[1, 0, -0.4], [0, 1, 0], [-0.4, 0, 1.0]])
    cov = np.outer(sigma, sigma) * R
    cov[0, 2] += 1e-12  # asymmetry below 1e-10 of the largest entry: symmetrised
    got = check_covariance(cov, "c")
    assert (got == got.T).all() and got[0, 2] == pytest.approx(-0.4, abs=1e-11)
    s, r = split_covariance(got)
    np.testing.assert_array_equal(s, sigma)
    np.testing.assert_allclose(r, R, rtol=1e-11, atol=1e-12)
    bad = np.eye(2)
    bad[0, 1] = 0.5
    assert usage_error(check_covariance, bad, "cov.csv") == ("cov.csv: not symmetric: entry (1, 2) is 0.5 but "
                                                             "(2, 1) is 0.0")
    assert usage_error(check_covariance, np.array([[1.0, 2.0], [2.0, 1.0]]), "c") == (
        "c: not positive semi-definite (smallest eigenvalue -1)")
    for m in (np.ones((2, 3)), np.ones(3), np.array([[1.0, np.nan], [np.nan, 1.0]])):
        assert usage_error(check_covariance, m, "c") == (f"c: a covariance must be a finite square matrix, got "
                                                          f"shape {m.shape}")
    check_covariance(np.zeros((2, 2)), "c")  # all zero: symmetric and semi-definite


# --- found through mutmut's "timeouts": jacprop in a forked child ------------------------------------------------

@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")
def test_blocks_run_in_a_forked_child_after_the_parent_used_the_thread_pool():
    """mutmut (and multiprocessing's fork start method) fork a process whose block pool has threads; the
    child has none of them, so before the fix its first map_blocks waited forever."""
    from jacprop import parallel

    assert list(parallel.map_blocks(lambda i: i * i, range(6), threads=2)) == [i * i for i in range(6)]
    pid = os.fork()
    if pid == 0:  # the child: the same blocks on two threads again
        os._exit(0 if list(parallel.map_blocks(lambda i: 3 * i + 1, range(6), threads=2)) == [1, 4, 7, 10, 13, 16]
                 else 1)
    for _ in range(200):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail("the forked child's map_blocks did not finish in 10 s")


def wide_model(seed=0, d=300, m=64, k=3):
    """y = tanh(x W + b) V + c with a wide input: BLAS rounds a row of a 1-row product differently from a row
    of a taller one, so only padded blocks give a row the same bits however the rows were chunked."""
    from jacprop import ops
    from jacprop.graph import GraphBuilder
    from jacprop.ops.activations import Activation

    rng = np.random.default_rng(seed)
    w = {"W": rng.normal(size=(d, m)), "b": rng.normal(size=m), "V": rng.normal(size=(m, k)), "c": rng.normal(size=k)}
    g = GraphBuilder([("x", (d,))])
    h = g.add("h", ops.Dense(kernel=w["W"], bias=w["b"], activation=Activation("tanh")), [g.inputs[0]], "Dense")
    o = g.add("o", ops.Dense(kernel=w["V"], bias=w["c"], activation=Activation("linear")), [h], "Dense")
    return g.finish([o]), w


def test_network_gives_a_row_the_same_bits_in_any_chunk():
    from jacprop.commands.curvature import Network

    model, w = wide_model()
    X = np.random.default_rng(1).normal(size=(9, 300))
    net = Network(model)
    y = net(X)
    np.testing.assert_allclose(y, np.tanh(X @ w["W"] + w["b"]) @ w["V"] + w["c"], rtol=1e-12, atol=1e-12)
    [(start, H)] = list(net.hessian(X, [0, 2], [0, 5]))
    assert start == 0 and H.shape == (9, 2, 2, 2)
    t = np.tanh(X @ w["W"] + w["b"])  # H_k,ij = sum_m V_mk tanh''(a_m) W_im W_jm, tanh'' = -2 t (1 - t^2)
    want = np.einsum("nm,mk,im,jm->nkij", -2 * t * (1 - t * t), w["V"][:, [0, 2]], w["W"][[0, 5]], w["W"][[0, 5]])
    np.testing.assert_allclose(H, want, rtol=1e-10, atol=1e-12)
    for i in range(9):
        assert (net(X[i : i + 1])[0] == y[i]).all()
        assert (list(net.hessian(X[i : i + 1], [0, 2], [0, 5]))[0][1][0] == H[i]).all()


def test_gum2_refusals_at_prepare_time_name_the_inputs(tmp_path):
    from click.testing import CliRunner

    from jacprop.cli import main

    root = Path(__file__).parent.parent / "sample_models"
    run = CliRunner().invoke
    tanh = [str(root / "bishop_tanh.npz"), str(root / "bishop_tanh.csv")]
    r = run(main, ["hessian", *tanh, "--format", "npz", "--diagonal", "-o", str(tmp_path / "d.npz")])
    assert r.exit_code == 0, r.output
    r = run(main, ["propagate", str(tmp_path / "d.npz"), "--dx", "temperature=5%", "--dx", "flow=0.1", "--method",
                   "gum2"])
    assert r.exit_code == 2 and r.stderr == (
        "jacprop: error: --method gum2 from `jacprop hessian --diagonal`: the mixed terms d2y/dx_i dx_j of the inputs "
        "with uncertainty (temperature, flow) are missing; write H without --diagonal\n")
    one = run(main, ["propagate", str(tmp_path / "d.npz"), "--dx", "flow=5%", "--method", "gum2", "--format", "csv"])
    assert one.exit_code == 0, one.output
    r = run(main, ["propagate", *tanh, "--dx", "0.1", "--dist", "flow=t:4", "--method", "gum2"])
    assert r.exit_code == 2 and r.stderr == (
        "jacprop: error: --dist flow=t:4 with --method gum2: a t with NU <= 4 has no fourth moment, so the "
        "second-order variance is infinite; use --method mc\n")


# --- commands/gates.py: findings, gates and their messages -----------------------------------------------------

def test_findings_count_everything_and_keep_the_first_twenty():
    from jacprop.commands.gates import WORST_KEPT, Findings

    assert WORST_KEPT == 20
    f = Findings()
    pairs = [(r, "y") for r in range(1, 16)]
    f.flag(pairs)
    f.flag([(r, "z") for r in range(16, 26)])
    f.flag([(99, "w")])
    assert f.n_flagged == 26 and f.flagged == pairs + [(r, "z") for r in range(16, 21)]
    for kind in ("nonfinite", "capped"):
        f.note(kind, list(range(18)))
        f.note(kind, list(range(100, 105)))
        f.note(kind, [7])
        assert getattr(f, f"n_{kind}") == 24 and getattr(f, kind) == list(range(18)) + [100, 101]


def test_violations_worst_first_nan_as_infinitely_far():
    from jacprop.commands.gates import Findings

    ratio = np.array([[1.0, 2.0], [np.nan, 0.5], [3.0, 2.0]])  # 1.0 is on the bound: no violation
    value = np.array([[10.0, 20.0], [5.0, 1.0], [30.0, np.nan]])
    f = Findings()
    f.violate(ratio, value, np.array([10, 11, 12]), ["a", "b"], lambda n, k: f"{n}{k}")
    assert f.n_violations == 4
    assert f.violations == [(math.inf, 5.0, 11, "a", "10"), (3.0, 30.0, 12, "a", "20"),
                            (2.0, math.inf, 12, "b", "21"), (2.0, 20.0, 10, "b", "01")]
    big = Findings()
    big.violate(np.arange(1.5, 31.5).reshape(30, 1), np.ones((30, 1)), np.arange(30), ["y"], lambda n, k: "")
    assert big.n_violations == 30 and [v[2] for v in big.violations] == list(range(29, 9, -1))


def test_merge_worst_orders_by_ratio_then_value():
    from jacprop.commands.gates import merge_worst

    v = [(2.0, 1.0, 1, "y", ""), (3.0, 0.5, 2, "y", ""), (2.0, 7.0, 3, "y", ""), (9.0, 0.1, 4, "y", "")]
    assert [r[2] for r in merge_worst(v)] == [4, 2, 3, 1]
    assert [r[2] for r in merge_worst(v, keep=2)] == [4, 2]


def test_worst_nonlinearity_counts_nan_as_the_largest():
    from jacprop.commands.gates import worst_nonlinearity

    a = {"nonlinearity": np.array([[np.nan, 0.2]]), "nonlinearity_hess": np.array([[0.5, 0.1]]),
         "shift_rel": np.array([[0.1, 0.3]]), "dy_gum": np.array([[9.0, 9.0]])}
    nl, which, names = worst_nonlinearity(a)
    assert names == ["nonlinearity", "nonlinearity_hess", "shift_rel"]
    assert np.isnan(nl[0, 0]) and nl[0, 1] == 0.3 and which.tolist() == [[0, 2]]


def gate_estimator(gate_dy=None, max_nl=None, require_valid=False, k=None, level=None):
    from types import SimpleNamespace as NS

    return NS(out_names=["a", "b"], gate_dy=gate_dy, max_nonlinearity=max_nl, require_valid=require_valid,
              settings=NS(k=k, level=level))


@pytest.mark.parametrize("m,label", [("gum", "GUM"), ("gum2", "gum2 (second order)")])
def test_require_valid_flags_only_the_finite_failed_pairs(m, label):
    from jacprop.commands.gates import Findings, apply_gates

    a = {f"{m}_valid": np.array([[1.0, 0.0], [0.0, 0.0]]), f"{m}_d_low": np.array([[1.0, 2.0], [3.0, 4.0]]),
         f"{m}_d_high": np.array([[0.5, 2.5], [0.25, 5.0]]), f"{m}_delta": np.array([[0.5, 0.25], [1.0, 2.0]])}
    ok = np.array([[True, True], [False, True]])  # row 2 a is non-finite: reported elsewhere, not here
    f = Findings()
    apply_gates(gate_estimator(require_valid=True), a, np.array([5, 6]), ok, f)
    why = "{} not validated by Monte Carlo: d_low {}, d_high {} > delta {}"
    assert f.n_violations == 2 and [v[1:] for v in f.violations] == [
        (5.0, 6, "b", why.format(label, 4, 5, 2)), (2.5, 5, "b", why.format(label, 2, 2.5, 0.25))]
    assert min(v[0] for v in f.violations) > 1e308  # infinitely far (nan_to_num keeps inf as the largest float)


def test_max_dy_scales_the_standard_uncertainties_by_k_and_names_the_worst():
    from jacprop.commands.gates import Findings, apply_gates

    y = np.zeros((2, 2))
    a = {"y": y, "dy_linear": np.array([[-0.3, 0.0], [0.01, 0.0]]), "dy_gum": np.array([[0.1, 0.0], [0.05, 0.2]]),
         "dy_mc": np.array([[0.11, 0.0], [0.04, 0.3]])}
    ok = np.array([[True, True], [True, False]])
    rows = np.array([1, 2])
    bound = np.array([0.25, 0.0])  # b must be exactly 0: any nonzero estimate crosses it

    def gate(a, **kw):
        f = Findings()
        with no_runtime_warnings():  # x / 0 and 0 / 0 are expected
            apply_gates(gate_estimator(gate_dy=bound, **kw), a, rows, ok, f)
        return f.n_violations, f.violations

    # k from the arrays (per row, e.g. Student's t) before --coverage or --level
    n, v = gate({**a, "k": np.array([[3.0, 3.0], [2.0, 2.0]])}, k=9.0, level=0.5)
    assert n == 1 and v == [(pytest.approx(0.33 / 0.25), pytest.approx(0.33), 1, "a",
                             "dy_mc x k=3 = 0.33 > --max-dy 0.25")]
    n, v = gate(a, k=2.5)  # --coverage 2.5, no k column: dy_mc x 2.5 = 0.275 < dy_linear's 0.3
    assert n == 1 and v[0][2:] == (1, "a", "dy_linear = 0.3 > --max-dy 0.25")
    z = 1.6448536269514722  # the normal quantile at (1 + 0.9) / 2
    n, v = gate({**a, "dy_linear": np.zeros((2, 2)), "dy_mc": np.array([[0.2, 0.0], [0.04, 0.3]])}, level=0.9)
    assert n == 1 and v[0][1] == pytest.approx(0.2 * z, rel=1e-14) and v[0][4] == (
        "dy_mc x k=1.64485 = 0.329 > --max-dy 0.25")
    n, v = gate({**a, "dy_gum": np.array([[0.2, 0.0], [0.0, 0.0]]), "dy_linear": np.zeros((2, 2))})  # k = 1
    assert n == 0
    n, v = gate({**a, "dy_gum": np.array([[0.26, 0.0], [0.0, 0.0]]), "dy_linear": np.zeros((2, 2))})
    assert n == 1 and v[0][4] == "dy_gum = 0.26 > --max-dy 0.25"
    n, v = gate({**a, "dy_linear": np.array([[0.0, 1.0], [0.0, 0.0]])}, level=None)  # b: 1.0 over 0
    assert n == 1 and v[0][0] > 1e308 and v[0][1:4] == (1.0, 1, "b") and v[0][4] == "dy_linear = 1 > --max-dy 0"


def test_merge_findings_of_partitions():
    from jacprop.commands.gates import merge_findings

    parts = ["p1", "p2", "p3"]
    results = [
        {"flagged": [(1, "y")], "violations": [(2.0, 1.0, 3, "y", "w1")], "nonfinite": [(4, "y", "J")],
         "capped": [5], "n_flagged": 7, "n_violations": 1, "n_nonfinite": 2, "n_capped": 1,
         "unresolved": [(6, "z")], "n_unresolved": 3},
        {"flagged": [(2, "z")], "violations": [(5.0, 1.0, 1, "z", "w2"), (2.0, 3.0, 9, "y", "w3")],
         "capped": [8, 9], "n_flagged": 1, "n_violations": 4, "n_capped": 2},
        {"n_flagged": 0, "n_violations": 0},  # a part with none of the lists
    ]
    m = merge_findings(results, parts, lambda r, p: f"{r} of {p}")
    assert m == {"n_flagged": 8, "flagged": [("1 of p1", "y"), ("2 of p2", "z")],
                 "n_violations": 5, "violations": [(5.0, 1.0, "1 of p2", "z", "w2"), (2.0, 3.0, "9 of p2", "y", "w3"),
                                                   (2.0, 1.0, "3 of p1", "y", "w1")],
                 "n_nonfinite": 2, "nonfinite": [("4 of p1", "y", "J")],
                 "n_capped": 3, "capped": ["5 of p1", "8 of p2", "9 of p2"],
                 "n_unresolved": 3, "unresolved": [("6 of p1", "z")]}


def found(**given):
    base = {"flagged": [], "violations": [], "nonfinite": [], "capped": [], "n_flagged": 0, "n_violations": 0,
            "n_nonfinite": 0, "n_capped": 0}
    return {**base, **given}


def test_findings_outcome_lines_word_for_word():
    from types import SimpleNamespace as NS

    from jacprop.commands.gates import findings_outcome
    from jacprop.uncertainty.montecarlo import McOptions

    assert findings_outcome(found(), 0.1, False, ["a note"]) == findings_outcome(found(), 0.1, True, ["a note"])
    out = findings_outcome(found(), 0.1, False, ["a note"])
    assert out.code == 0 and out.notes == ["a note"]
    nonfinite = [(r, "y", "J, dy_gum") for r in range(1, 23)]
    out = findings_outcome(found(nonfinite=nonfinite, n_nonfinite=25), 0.1, True, [])
    assert out.code == 0 and out.notes == [
        "jacprop: warning: 25 (row, output) pairs have non-finite results (NaN or inf): "
        + "; ".join(f"row {r} y: J, dy_gum" for r in range(1, 21)) + " ..."]
    out = findings_outcome(found(nonfinite=nonfinite[:2], n_nonfinite=20), 0.1, True, [])
    assert out.notes[0].endswith("row 2 y: J, dy_gum") and "..." not in out.notes[0]

    settings = NS(samples=5000, validate=False, mc_options=lambda: McOptions(digits=2))
    capped = found(capped=list(range(1, 23)), n_capped=23)
    assert findings_outcome(capped, 0.1, True, [], settings).notes == []  # quiet
    assert findings_outcome(capped, 0.1, False, []).notes == []  # no settings (a Dask part)
    assert findings_outcome(capped, 0.1, False, [], settings).notes == [
        "jacprop: note: 23 rows reached --samples 5000 before the Monte Carlo was stable to 2 significant digits: rows "
        + ", ".join(map(str, range(1, 21))) + " ... (their standard errors say how far to trust them)"]
    settings = NS(samples=7, validate=True, mc_options=lambda: McOptions(digits=3))
    assert findings_outcome(found(capped=[4], n_capped=20), 0.1, False, [], settings).notes == [
        "jacprop: note: 20 rows reached --samples 7 before the Monte Carlo was stable to 3 significant digits "
        "(--validate runs it to one digit more than --digits): rows 4 (their standard errors say how far to trust "
        "them; --validate's verdict there rests on a Monte Carlo less precise than delta)"]

    flagged = [(r, "y") for r in range(1, 13)]
    assert findings_outcome(found(flagged=flagged, n_flagged=12), 0.25, True, []).notes == []
    out = findings_outcome(found(flagged=flagged, n_flagged=12), 0.25, False, ["n"])
    assert out.code == 0 and out.notes == ["n", "jacprop: 12 (row, output) pairs depart from linearity by more than "
                                           "--tol 0.25: " + ", ".join(f"row {r} y" for r in range(1, 11)) + " ..."]
    out = findings_outcome(found(flagged=flagged[:10], n_flagged=10), 0.25, False, [])
    assert out.notes[0].endswith("row 10 y")
    out = findings_outcome(found(flagged=flagged[:10], n_flagged=11), 0.25, False, [])
    assert out.notes[0].endswith("row 10 y ...")
    settings = NS(samples=7, validate=False, mc_options=lambda: McOptions(digits=1))
    out = findings_outcome(found(capped=list(range(1, 21)), n_capped=21), 0.1, False, [], settings)
    assert out.notes[0].endswith("rows " + ", ".join(map(str, range(1, 21))) + " ... (their standard errors say how "
                                 "far to trust them)")

    one = [(2.0, 1.0, 3, "y", "dy_gum = 1 > --max-dy 0.5")]
    out = findings_outcome(found(violations=one, n_violations=1), 0.1, True, [])
    assert out.code == 1 and out.notes == ["jacprop: 1 (row, output) pairs exceed the bounds: row 3 y: dy_gum = 1 > "
                                           "--max-dy 0.5"]
    two = [(2.0, 1.0, 3, "y", "w3"), (5.0, 1.0, 4, "z", "w4")]
    out = findings_outcome(found(violations=two, n_violations=2), 0.1, True, [])
    assert out.notes == ["jacprop: 2 (row, output) pairs exceed the bounds, the worst first: row 4 z: w4; row 3 y: w3"]
    many = [(float(i), 1.0, i, "y", f"w{i}") for i in range(1, 25)]
    out = findings_outcome(found(violations=many, n_violations=30), 0.1, True, [])
    assert out.code == 1 and out.notes == [
        "jacprop: 30 (row, output) pairs exceed the bounds, the 20 worst first: "
        + "; ".join(f"row {i} y: w{i}" for i in range(24, 4, -1)) + " ..."]


@pytest.mark.parametrize("specs,bound", [(["0.5"], [0.5, 0.5]), (["b=2", "0.5"], [0.5, 0.5]),
                                         (["0.5", "b=2"], [0.5, 2.0]), (["a=0"], [0.0, math.inf]),
                                         (["1=3e-2"], [math.inf, 0.03])])
def test_parse_gate_per_output(specs, bound):
    from jacprop.commands.gates import parse_gate

    assert parse_gate(specs, ["a", "b"], "--max-dy").tolist() == bound


def test_parse_gate_refusals():
    from jacprop.commands.gates import parse_gate

    assert parse_gate([], ["a"], "--max-dy") is None and parse_gate(None, ["a"], "--max-dy") is None
    assert usage_error(parse_gate, ["a=x"], ["a"], "--max-dy") == "--max-dy a=x: expected a number or OUTPUT=NUMBER"
    for v in ("-1", "nan", "a=-0.5"):
        assert usage_error(parse_gate, [v], ["a"], "--max-dy") == f"--max-dy {v}: the bound must be a number >= 0"
    assert usage_error(parse_gate, ["c=1"], ["a", "b"], "--max-dy") == (
        "--max-dy: 'c' is neither a name nor an index; the names are ['a', 'b']")


def test_nonfinite_names_each_quantity_at_its_row_and_output():
    from jacprop.commands.gates import nonfinite

    y = np.array([[1.0, np.inf], [2.0, 3.0]])
    J = np.zeros((2, 2, 3))
    J[1, 0, 2] = np.nan
    a = {"x": np.full((2, 3), np.nan), "y": y, "dy_gum": np.array([[np.nan, 1.0], [1.0, 1.0]]),
         "nu_eff": np.full((2, 2), np.inf), "cov_y": np.zeros((2, 2, 2)), "budget": np.ones((2, 2, 3)),
         "mc_converged": np.array([True, False]), "k": np.array(2.0)}
    a["cov_y"][1, 1, 0] = np.inf
    a["budget"][0, 0, 1] = np.nan
    assert nonfinite(a, J) == {(0, 1): ["y"], (1, 0): ["J"], (0, 0): ["dy_gum", "budget"], (1, 1): ["cov_y"]}


@pytest.mark.parametrize("bound", [0.0, 0.4, math.inf])
def test_max_nonlinearity_bounds_the_worst_index(bound):
    from jacprop.commands.gates import Findings, apply_gates

    a = {"nonlinearity": np.array([[0.0, 0.5], [2.0, 0.0], [np.inf, 0.1]]),
         "nonlinearity_hess": np.array([[0.0, 0.1], [0.3, 0.45], [0.0, 0.0]]), "dy_gum": np.ones((3, 2))}
    ok = np.array([[True, True], [True, True], [False, True]])  # row 3 a is non-finite: reported elsewhere
    f = Findings()
    with no_runtime_warnings():  # inf / inf and 0 / 0 are expected
        apply_gates(gate_estimator(max_nl=bound), a, np.array([1, 2, 3]), ok, f)
    why = "{} {} > --max-nonlinearity {:.4g}"
    if bound == 0:  # every positive index is infinitely far over 0; an index of exactly 0 passes
        assert f.n_violations == 4 and [v[1:] for v in f.violations] == [
            (2.0, 2, "a", why.format("nonlinearity", 2, 0)), (0.5, 1, "b", why.format("nonlinearity", 0.5, 0)),
            (0.45, 2, "b", why.format("nonlinearity_hess", 0.45, 0)), (0.1, 3, "b", why.format("nonlinearity", 0.1, 0))]
    elif bound == 0.4:
        assert f.n_violations == 3 and f.violations == [
            (5.0, 2.0, 2, "a", why.format("nonlinearity", 2, 0.4)), (1.25, 0.5, 1, "b", why.format("nonlinearity", 0.5,
                                                                                                    0.4)),
            (pytest.approx(1.125), 0.45, 2, "b", why.format("nonlinearity_hess", 0.45, 0.4))]
    else:
        assert f.n_violations == 0


# --- uncertainty/coverage.py -------------------------------------------------------------------------------

def t_constant(nu):
    """c of Student's t density c (1 + t^2 / nu)^(-(nu + 1) / 2)."""
    return math.exp(math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2)) / math.sqrt(nu * math.pi)


def test_t_central_against_the_integral_of_the_density_and_its_far_tail():
    from jacprop.uncertainty.coverage import t_central

    nu = 1.5
    c = t_constant(nu)
    x = np.linspace(0.0, 3.0, 20_001)  # Simpson's rule, error ~ h^4: below 1e-15 here
    f = c * (1 + x * x / nu) ** (-(nu + 1) / 2)
    simpson = (x[1] - x[0]) / 3 * (f[0] + f[-1] + 4 * f[1:-1:2].sum() + 2 * f[2:-1:2].sum())
    assert t_central(3.0, nu) == pytest.approx(simpson, rel=1e-14)  # x = t^2 / (nu + t^2) = 0.86: y is used
    t = 1e8  # P(T > t) = c nu^((nu + 1) / 2) t^-nu / nu (1 + O(t^-2)): 1 - x = nu / (nu + t^2) is lost in 1 - x
    assert abs(t_central(t, nu) - (0.5 - c * nu ** ((nu + 1) / 2) * t**-nu / nu)) < 1e-16


def test_welch_satterthwaite_formula_zero_and_infinite_terms():
    from jacprop.uncertainty.coverage import welch_satterthwaite

    terms = np.array([[0.3, -0.4, 0.0], [0.0, 0.0, 0.0], [1.0, 2.0, 2.0], [np.inf, 1.0, 0.0]])
    dof = np.array([4.0, 9.0, math.inf])
    with no_runtime_warnings():  # inf / inf (infinite term and dof) is expected
        nu = welch_satterthwaite(terms, dof)
    assert nu[0] == pytest.approx(0.25**2 / (0.3**4 / 4 + 0.4**4 / 9), rel=1e-15)
    assert nu[1] == math.inf  # no uncertainty: infinitely many degrees of freedom
    assert nu[2] == pytest.approx(81 / (1 / 4 + 16 / 9), rel=1e-15)  # the term with nu = inf adds to u only
    assert np.isnan(nu[3]) and nu.dtype == np.float64


def test_findings_outcome_without_the_optional_counts_and_nonfinite_ignores_x():
    from types import SimpleNamespace as NS

    from jacprop.commands.gates import findings_outcome, nonfinite
    from jacprop.uncertainty.montecarlo import McOptions

    settings = NS(samples=5000, validate=False, mc_options=lambda: McOptions(digits=2))
    out = findings_outcome({"flagged": [], "violations": [], "n_flagged": 0, "n_violations": 0}, 0.1, False, [],
                           settings)
    assert out.code == 0 and out.notes == []
    kept = [(r, "y", "J") for r in range(1, 21)]
    out = findings_outcome(found(nonfinite=kept, n_nonfinite=21), 0.1, True, [])
    assert out.notes[0].endswith("row 20 y: J ...")
    y = np.ones((2, 2))
    a = {"x": np.array([[np.nan, 1.0], [1.0, 1.0]]), "y": y, "dy_gum": np.ones((2, 2))}  # D = K: x has y's shape
    assert nonfinite(a, np.zeros((2, 2, 2))) == {}


# --- propagate.py: the correlated paths against the formulas ----------------------------------------------------

R3 = np.array([[1.0, 0.6, -0.2], [0.6, 1.0, 0.1], [-0.2, 0.1, 1.0]])


def test_budget_and_gum_with_a_correlation_and_a_covariance():
    import jacprop
    from jacprop import propagate as P

    J = np.random.default_rng(6).normal(size=(2, 2, 3))
    dx = np.array([[0.1, 0.2, 0.3], [0.3, 0.0, 0.1]])
    got = P.budget(J, dx, R3)
    for n in range(2):
        S = np.outer(dx[n], dx[n]) * R3
        for k in range(2):
            c = J[n, k]
            u2 = c @ S @ c
            np.testing.assert_allclose(got[n, k], c * (S @ c) / u2, rtol=1e-12)  # c_i (Sigma c)_i / u^2
    np.testing.assert_allclose(got.sum(axis=-1), 1.0, rtol=1e-12)
    cov = np.outer(dx[0], dx[0]) * R3
    r = jacprop.propagate(J=J, cov=cov, methods=("gum",), output_cov=True, budget=True)
    want = np.einsum("nki,ij,nlj->nkl", J, cov, J)
    np.testing.assert_allclose(r["cov_y"], want, rtol=1e-12)
    np.testing.assert_allclose(r["dy_gum"], np.sqrt(np.einsum("nkk->nk", want)), rtol=1e-12)
    np.testing.assert_allclose(r["budget"][0], got[0], rtol=1e-12)
    ints = [[4, 1, 0], [1, 9, 0], [0, 0, 1]]  # a covariance of Python integers is taken as float64
    r = jacprop.propagate(J=J, cov=ints, methods=("gum",))
    np.testing.assert_allclose(r["dy_gum"], np.sqrt(np.einsum("nki,ij,nkj->nk", J, np.array(ints, float), J)),
                               rtol=1e-14)
    bad = cov.copy()
    bad[0, 1] += 1e-3
    assert usage_error(lambda: jacprop.propagate(J=J, cov=bad)) == (
        f"cov: not symmetric: entry (1, 2) is {bad[0, 1]} but (2, 1) is {bad[1, 0]}")


def test_linearity_index_over_the_correlated_u():
    from jacprop import propagate as P

    def f(X):
        return np.stack([X[:, 0] ** 2 + X[:, 1], X[:, 0] * X[:, 2] - X[:, 1] ** 3], axis=1)

    X = np.array([[0.5, -1.0, 2.0], [1.5, 0.3, -0.7]])
    J = np.stack([np.stack([2 * X[:, 0], np.ones(2), np.zeros(2)], 1),
                  np.stack([X[:, 2], -3 * X[:, 1] ** 2, X[:, 0]], 1)], axis=1)
    dx = np.array([[0.1, 0.05, 0.2], [0.02, 0.1, 0.1]])
    Y = f(X)
    nl, plus, minus, lost = P.linearity(f, X, Y, J, dx, R3)
    assert not lost.any()
    for n in range(2):
        u = np.sqrt(np.einsum("ki,ij,kj->k", J[n] * dx[n], R3, J[n] * dx[n]))
        dep = np.zeros(2)
        for i in range(3):
            e = np.zeros(3)
            e[i] = dx[n, i]
            up = f(X[n : n + 1] + e)[0] - Y[n] - J[n, :, i] * dx[n, i]
            down = Y[n] - f(X[n : n + 1] - e)[0] - J[n, :, i] * dx[n, i]
            dep += np.maximum(np.abs(up), np.abs(down)) ** 2
        np.testing.assert_allclose(nl[n], np.sqrt(dep) / (u + 1e-12 * (1 + np.abs(Y[n]))), rtol=1e-12)
        np.testing.assert_allclose(plus[n], f(X[n : n + 1] + dx[n])[0] - Y[n], rtol=1e-12)
        np.testing.assert_allclose(minus[n], Y[n] - f(X[n : n + 1] - dx[n])[0], rtol=1e-12)


def test_linearity_flags_rows_the_models_own_float_grid_cannot_resolve():
    """x = 1000 with dx = 1e-5: float32's spacing there is 6.1e-5 (x + dx rounds back to x), float64's 1.1e-13.
    A float32 model gets NaN and ``unresolved`` at that row, the same function in float64 gets numbers."""
    from jacprop import propagate as P

    X = np.array([[1000.0, 1.0], [1.0, 2.0]])
    dx = np.array([[1e-5, 1e-3], [1e-3, 1e-3]])
    J = np.stack([np.stack([2 * X[:, 0], np.ones(2)], 1)], axis=1)  # f = x0^2 + x1
    for dtype, coarse in ((np.float32, [True, False]), (np.float64, [False, False])):
        def f(Z, dtype=dtype):
            Z = Z.astype(dtype)
            return (Z[:, :1] ** 2 + Z[:, 1:]).astype(dtype)

        Y = f(X).astype(np.float64)
        nl, plus, minus, lost = P.linearity(f, X, Y, J, dx)
        assert lost[:, 0].tolist() == coarse, dtype
        for a in (nl, plus, minus):
            assert np.isnan(a[:, 0]).tolist() == coarse, dtype
        np.testing.assert_allclose(plus[1], f(X[1:] + dx[1])[0] - Y[1], rtol=1e-5)


def test_propagate_takes_dx_as_strings_relative_to_x():
    import jacprop

    J = np.random.default_rng(8).normal(size=(2, 2, 3))
    X = np.array([[2.0, -4.0, 1.0], [1.0, 0.5, -3.0]])
    names = ["temp", "press", "flow"]

    def u(dx):
        return np.sqrt(np.einsum("nki,ni->nk", J**2, dx**2))

    r = jacprop.propagate(J=J, X=X, dx=["0.5", "press=10%", "2=0.25"], input_names=names)
    np.testing.assert_allclose(r["dy_gum"], u(np.array([[0.5, 0.4, 0.25], [0.5, 0.05, 0.25]])), rtol=1e-14)
    r = jacprop.propagate(J=J, dx="0.5")  # one string, no X: absolute only
    np.testing.assert_allclose(r["dy_gum"], u(np.full((2, 3), 0.5)), rtol=1e-14)
    r = jacprop.propagate(J=J, dx=["x1=1%"])  # no X and a relative uncertainty: |x| taken as 0
    assert (r["dy_gum"] == 0).all()
    r = jacprop.propagate(J=J, dx=[1, 2, 3])  # numbers in a list are numbers
    np.testing.assert_allclose(r["dy_gum"], u(np.broadcast_to([1.0, 2.0, 3.0], (2, 3))), rtol=1e-14)
    R = np.array([[1, 0.5, 0], [0.5, 1, 0], [0, 0, 1.0]])
    r = jacprop.propagate(J=J, X=X, dx=["0.5"], corr=R, input_names=names)
    a = J * 0.5
    np.testing.assert_allclose(r["dy_gum"], np.sqrt(np.einsum("nki,ij,nkj->nk", a, R, a)), rtol=1e-14)


def test_propagate_api_y_from_the_model_nan_without_it_and_its_refusals():
    import jacprop

    model, w = wide_model(d=4, m=3, k=2)
    X = np.random.default_rng(9).normal(size=(3, 4))
    y = np.tanh(X @ w["W"] + w["b"]) @ w["V"] + w["c"]
    _, J = jacprop.jacobian(model, X)
    r = jacprop.propagate(J=J, dx=0.1)
    assert r["y"].shape == (3, 2) and r["y"].dtype == np.float64 and np.isnan(r["y"]).all()
    assert np.isnan(jacprop.propagate(J=J, X=X, dx=0.1)["y"]).all()
    np.testing.assert_allclose(jacprop.propagate(model, X, J=J, dx=0.1)["y"], y, rtol=1e-13)
    np.testing.assert_allclose(jacprop.propagate(model, X, dx=0.1)["y"], y, rtol=1e-13)
    for args in ((), (model,)):
        assert usage_error(jacprop.propagate, *args) == "give a model and X, or a Jacobian J"
    for dx in ([-0.1, 0.0, 0.0, 0.0], [np.inf, 0.0, 0.0, 0.0], [np.nan, 0, 0, 0]):
        assert usage_error(lambda dx=dx: jacprop.propagate(J=J, dx=dx)) == "dx: an uncertainty must be finite and >= 0"


def test_propagate_api_gives_a_row_the_same_bits_in_any_chunk():
    import jacprop

    model, _ = wide_model()
    X = np.random.default_rng(10).normal(size=(9, 300))
    r = jacprop.propagate(model, X, dx=0.01, methods=("gum", "linear"))
    for i in (0, 4, 8):
        one = jacprop.propagate(model, X[i : i + 1], dx=0.01, methods=("gum", "linear"))
        assert (one["dy_gum"][0] == r["dy_gum"][i]).all() and (one["dy_linear"][0] == r["dy_linear"][i]).all()


def test_tally_watches_the_first_gated_estimate():
    from types import SimpleNamespace as NS

    from jacprop import propagate as P
    from jacprop.commands.gates import tally_of

    def plan(methods=("gum", "mc"), gate=None, nl=None, **kw):
        est = NS(gate_dy=gate, max_nonlinearity=nl, settings=P.Settings(methods=methods, **kw), out_names=["a", "b"])
        return NS(estimator=est)

    to_file, quiet, to_stdout = NS(quiet=False, path="o.csv"), NS(quiet=True, path="o.csv"), NS(quiet=False, path="-")
    t = tally_of(plan(), to_file)
    a = {"dy_gum": np.array([[1.0, 2.0]]), "dy_mc": np.zeros((1, 2))}
    assert t.what == "dy_gum" and t.pick(a) is a["dy_gum"] and t.where(1) == "b" and t.where(0) == "a"
    assert tally_of(plan(("mc", "linear")), to_file).what == "dy_linear"
    assert tally_of(plan(("gum2",)), to_file).what == "dy_gum2"
    assert tally_of(plan(("gum",), k=2.0), to_file).what == "dy_gum"  # before U_gum and k
    assert tally_of(plan((), check_linearity=True), to_file).what == "nonlinearity"  # nothing gated: the first
    assert tally_of(plan(()), to_file).what == "y"
    assert tally_of(plan(), quiet) is None and tally_of(plan(gate=np.ones(2)), quiet) is None
    assert tally_of(plan(), to_stdout) is None  # stderr is not a terminal under pytest, no -o, no gate
    assert tally_of(plan(gate=np.ones(2)), to_stdout).what == "dy_gum"
    assert tally_of(plan(nl=0.5), to_stdout).what == "dy_gum"
