"""propagate.py (issue #20, tests/mutation-mut-prop.md): the survivors of the 2026-12-04 run, each checked against
a formula or a re-computation written here: Welch-Satterthwaite's nu_eff and Student's k through the API, gum2
with a correlation and a given coverage factor, the Monte Carlo options and its per-row seeding, the columns'
names, the refusals word for word, a model without second-order rules, and a row's bits in any chunk."""

import math
import warnings

import numpy as np
import pytest

import jacprop
from jacprop import ops
from jacprop import propagate as P
from jacprop.errors import ModelError, UsageError
from jacprop.graph import GraphBuilder
from jacprop.ops.activations import Activation
from jacprop.uncertainty import montecarlo as mc
from jacprop.uncertainty.coverage import t_quantile

NAMES = ["temp", "press", "flow"]
R3 = np.array([[1.0, 0.6, -0.2], [0.6, 1.0, 0.1], [-0.2, 0.1, 1.0]])


def usage_error(fn):
    with pytest.raises(UsageError) as e:
        fn()
    return str(e.value)


def weights(seed=0, d=3, m=4, k=2):
    rng = np.random.default_rng(seed)
    return {"W": rng.normal(size=(d, m)), "b": rng.normal(size=m), "V": rng.normal(size=(m, k)),
            "c": rng.normal(size=k)}


def named_model(w, dense=ops.Dense):
    """y = tanh(x W + b) V + c with three named one-feature inputs (the model knows NAMES)."""
    g = GraphBuilder([(name, (1,)) for name in NAMES])
    x = g.add("cat", ops.Concat(axis=-1), g.inputs, "Concatenate")
    h = g.add("h", dense(kernel=w["W"], bias=w["b"], activation=Activation("tanh")), [x], "Dense")
    o = g.add("o", ops.Dense(kernel=w["V"], bias=w["c"], activation=Activation("linear")), [h], "Dense")
    return g.finish([o])


def f(w, X):
    return np.tanh(X @ w["W"] + w["b"]) @ w["V"] + w["c"]


def jac(w, X):
    s = 1 - np.tanh(X @ w["W"] + w["b"]) ** 2  # (N, m)
    return np.einsum("mk,nm,im->nki", w["V"], s, w["W"])


def hess(w, X):
    t = np.tanh(X @ w["W"] + w["b"])
    d2 = -2 * t * (1 - t * t)  # tanh''
    return np.einsum("mk,nm,im,jm->nkij", w["V"], d2, w["W"], w["W"])


# --- Settings.mc_options --------------------------------------------------------------------------------------

def test_monte_carlo_options_carry_every_setting():
    dist = (("rect", 0.0), ("normal", 0.0), ("t", 5.0))
    s = P.Settings(samples=1234, seed=7, level=0.9, interval="shortest", digits=3, dist=dist)
    assert s.mc_options() == mc.McOptions(samples=1234, seed=7, level=0.9, interval="shortest", digits=3, kinds=dist)
    # --validate: one digit more than the validation's (JCGM 101 8.2)
    assert P.Settings(digits=3, validate=True, level=0.95).mc_options().digits == 4
    assert P.Settings(digits=1, validate=True).mc_options().digits == 2
    assert P.Settings(digits=0).mc_options().digits is None  # 0 digits: a fixed run of `samples`
    assert P.Settings().mc_options() == mc.McOptions(200_000, 0, 0.95, "symmetric", 2, None)


# --- gum: degrees of freedom, Welch-Satterthwaite, Student's k ---------------------------------------------------

def test_gum_with_degrees_of_freedom_gives_nu_eff_and_students_k():
    rng = np.random.default_rng(1)
    J = rng.normal(size=(3, 2, 3))
    dx = np.array([0.1, 0.25, 0.05])
    r = jacprop.propagate(J=J, dx=dx, input_names=NAMES, dof={"temp": 4, "flow": 9.5}, level=0.95)
    terms = J * dx  # c_i u_i
    u2 = (terms**2).sum(axis=-1)
    nu = u2**2 / (terms[..., 0] ** 4 / 4 + terms[..., 2] ** 4 / 9.5)  # press: infinitely many, adds nothing
    np.testing.assert_allclose(r["dy_gum"], np.sqrt(u2), rtol=1e-14)
    np.testing.assert_allclose(r["nu_eff"], nu, rtol=1e-13)
    k = np.vectorize(lambda v: t_quantile(0.975, v))(nu)  # t_quantile: against 50-digit values in test_mutants_coverage
    np.testing.assert_allclose(r["k"], k, rtol=1e-14)
    assert r["k"].dtype == np.float64 and r["k"].shape == (3, 2) and (r["k"] > 1.96).all()
    np.testing.assert_allclose(r["U_gum"], k * np.sqrt(u2), rtol=1e-14)
    assert list(r) == ["y", "dy_gum", "U_gum", "k", "nu_eff"]
    # a given coverage factor wins over Student's t; nu_eff is still reported
    r = jacprop.propagate(J=J, dx=dx, input_names=NAMES, dof={"temp": 4}, k=2.0)
    assert (r["k"] == 2.0).all()
    np.testing.assert_allclose(r["nu_eff"], u2**2 / (terms[..., 0] ** 4 / 4), rtol=1e-13)
    # dof without a level or k: nu_eff only
    r = jacprop.propagate(J=J, dx=dx, dof={"x1": 3})
    assert list(r) == ["y", "dy_gum", "nu_eff"]
    np.testing.assert_allclose(r["nu_eff"], u2**2 / (terms[..., 1] ** 4 / 3), rtol=1e-13)


# --- gum2 with a correlation and a coverage factor ---------------------------------------------------------------

def test_gum2_with_a_correlation_a_given_k_and_a_level():
    w = weights(2)
    X = np.random.default_rng(3).normal(size=(2, 3))
    J, H = jac(w, X), hess(w, X)
    dx = np.array([0.1, 0.3, 0.2])
    S = np.outer(dx, dx) * R3
    u2 = np.einsum("nki,ij,nkj->nk", J, S, J) + 0.5 * np.einsum("nkij,jl,nklm,mi->nk", H, S, H, S)
    shift = 0.5 * np.einsum("nkij,ji->nk", H, S)
    r = jacprop.propagate(J=J, H=H, dx=dx, corr=R3, methods=("gum2",), k=2.0)
    np.testing.assert_allclose(r["dy_gum2"], np.sqrt(u2), rtol=1e-13)
    np.testing.assert_allclose(r["gum2_shift"], shift, rtol=1e-13)
    np.testing.assert_allclose(r["U_gum2"], 2.0 * np.sqrt(u2), rtol=1e-13)
    assert (r["k"] == 2.0).all() and r["k"].shape == (2, 2)
    r = jacprop.propagate(J=J, H=H, dx=dx, corr=R3, methods=("gum", "gum2"), level=0.9)
    z = 1.6448536269514722  # Phi^-1(0.95)
    np.testing.assert_allclose(r["k"], z, rtol=1e-15)
    np.testing.assert_allclose(r["U_gum2"], z * np.sqrt(u2), rtol=1e-13)
    np.testing.assert_allclose(r["dy_gum"], np.sqrt(np.einsum("nki,ij,nkj->nk", J, S, J)), rtol=1e-13)


# --- the column names, each once -----------------------------------------------------------------------------

def test_quantities_name_each_column_once_in_order():
    q = P.quantities(P.Settings(methods=("gum", "gum2"), level=0.95))
    assert q == ["dy_gum", "U_gum", "k", "dy_gum2", "U_gum2", "gum2_shift"]
    assert P.quantities(P.Settings(methods=("gum2",), k=2.0)) == ["dy_gum2", "U_gum2", "k", "gum2_shift"]
    assert P.quantities(P.Settings(methods=("gum",), dof=(4.0, math.inf), level=0.9)) == [
        "dy_gum", "U_gum", "k", "nu_eff"]
    assert P.quantities(P.Settings(methods=("gum",), dof=(4.0,))) == ["dy_gum", "nu_eff"]
    # and they are what the API returns, each once
    J = np.random.default_rng(4).normal(size=(2, 2, 3))
    H = np.zeros((2, 2, 3, 3))
    for given in ({"methods": ("gum", "gum2"), "level": 0.95}, {"methods": ("gum",), "dof": {"x0": 4}, "k": 3.0}):
        s = P.settings_for(**{key: v for key, v in given.items() if key != "dof"}, dof=(4.0, math.inf, math.inf)
                           if "dof" in given else None)
        r = jacprop.propagate(J=J, H=H, dx=0.1, **given)
        assert sorted(r) == sorted(["y", *P.quantities(s)])  # the same names (in another order)


def test_estimate_adds_the_budget_only_when_asked():
    J = np.random.default_rng(5).normal(size=(2, 2, 3))
    b = P.Block(J, np.full((2, 3), 0.1))
    assert list(P.estimate(b, P.Settings())) == ["dy_gum"]
    assert list(P.estimate(b, P.Settings(), with_budget=True)) == ["dy_gum", "budget"]
    np.testing.assert_allclose(P.estimate(b, P.Settings(budget=True))["budget"].sum(axis=-1), 1.0, rtol=1e-14)
    assert "budget" not in jacprop.propagate(J=J, dx=0.1)


# --- propagate: names from the model, refusals ---------------------------------------------------------------

def test_dx_by_the_models_input_names():
    w = weights(6)
    model = named_model(w)
    assert model.input_names == NAMES
    X = np.random.default_rng(7).normal(size=(2, 3))
    r = jacprop.propagate(model, X, dx=["press=0.5", "flow=10%"])
    J = jac(w, X)
    want = np.sqrt((J[:, :, 1] * 0.5) ** 2 + (J[:, :, 2] * 0.1 * np.abs(X[:, 2:3])) ** 2)
    np.testing.assert_allclose(r["dy_gum"], want, rtol=1e-12)
    np.testing.assert_allclose(r["y"], f(w, X), rtol=1e-13)


def test_refusals_word_for_word():
    J = np.random.default_rng(8).normal(size=(2, 2, 3))
    network = "--method mc and --check-linearity run the network: give the model"
    assert usage_error(lambda: jacprop.propagate(J=J, dx=0.1, methods=("mc",))) == network
    assert usage_error(lambda: jacprop.propagate(J=J, dx=0.1, check_linearity=True)) == network
    assert usage_error(lambda: jacprop.propagate(J=J, dx=0.1, methods=("gum", "mc"), check_linearity=True)) == network
    assert usage_error(lambda: jacprop.propagate(J=J, dx=0.1, methods=("gum2",))) == (
        "--method gum2 needs H: give the model, or H (N, K, D, D)")
    assert usage_error(lambda: jacprop.propagate(J=J, H=np.zeros((2, 2, 3, 2)), dx=0.1, methods=("gum2",))) == (
        "H: expected shape (2, 2, 3, 3) (rows, outputs, inputs, inputs), got (2, 2, 3, 2)")
    # correlated inputs: only normal ones, and no degrees of freedom
    assert usage_error(lambda: jacprop.propagate(J=J, dx=0.1, corr=R3, dof={"x1": 5})) == (
        "--dof x1: Welch-Satterthwaite (JCGM 100 G.4) needs independent inputs, but x1 is correlated")
    assert usage_error(lambda: jacprop.propagate(J=J, dx=0.1, corr=R3, dist={"x2": "rect"})) == (
        "--dist x2=rect: a correlated input must be normal (jacprop has no copula); remove its correlation or its "
        "--dist")
    R = np.eye(3)
    R[0, 1] = R[1, 0] = 0.5  # x2 is independent: its dof and dist are fine
    r = jacprop.propagate(J=J, dx=0.1, corr=R, dof={"x2": 5}, dist={"x2": "rect"})
    assert np.isfinite(r["nu_eff"]).all()


# --- Monte Carlo through propagate: row n is seeded (seed, n), n counted from 1 ------------------------------------

def test_monte_carlo_rows_are_seeded_by_their_one_based_numbers():
    w = weights(9)
    model = named_model(w)
    X = np.random.default_rng(10).normal(size=(3, 3))
    dx = np.array([0.05, 0.1, 0.02])
    m = 4000
    r = jacprop.propagate(model, X, dx=dx, methods=("mc",), samples=m, digits=0, seed=11)
    for n in range(3):
        z = np.random.default_rng([11, n + 1]).standard_normal((m, 3))  # the documented draws
        ys = f(w, X[n] + z * dx)
        np.testing.assert_allclose(r["dy_mc"][n], ys.std(axis=0, ddof=1), rtol=1e-12)
        np.testing.assert_allclose(r["mc_shift"][n], ys.mean(axis=0) - f(w, X[n : n + 1])[0], rtol=1e-9, atol=1e-15)
    assert (r["mc_samples"] == m).all()


# --- a model without second-order rules --------------------------------------------------------------------------

class DenseWithoutSecondOrder(ops.Dense):
    vjp2 = None


def test_a_model_without_second_order_rules_gives_linearity_without_the_hessian_index():
    w = weights(12)
    model = named_model(w, DenseWithoutSecondOrder)
    X = np.random.default_rng(13).normal(size=(2, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = jacprop.propagate(model, X, dx=0.05, check_linearity=True)
    assert {"nonlinearity", "dy_plus", "dy_minus"} <= set(r) and not {"nonlinearity_hess", "shift_rel"} & set(r)
    np.testing.assert_allclose(r["dy_plus"], f(w, X + 0.05) - f(w, X), rtol=1e-12)
    full = jacprop.propagate(named_model(w), X, dx=0.05, check_linearity=True)  # with H: the index as well
    assert set(full) == set(r) | {"nonlinearity_hess", "shift_rel"}
    np.testing.assert_array_equal(full["nonlinearity"], r["nonlinearity"])
    with pytest.raises(ModelError, match="has no second-order rule"):
        jacprop.propagate(model, X, dx=0.05, methods=("gum2",))


# --- a row's bits do not depend on the other rows (the padded blocks of `deterministic`) -------------------------

def wide(seed=0, d=2, m=400, k=3):
    """y = tanh(x W + b) V + c, a wide hidden layer: BLAS may round a row of a short product differently from a row
    of a taller one, so only padded blocks give a row the same bits however many rows came with it."""
    w = weights(seed, d, m, k)
    g = GraphBuilder([("x", (d,))])
    h = g.add("h", ops.Dense(kernel=w["W"], bias=w["b"], activation=Activation("tanh")), [g.inputs[0]], "Dense")
    o = g.add("o", ops.Dense(kernel=w["V"], bias=w["c"], activation=Activation("linear")), [h], "Dense")
    return g.finish([o])


def test_linearity_and_gum2_give_a_row_the_same_bits_in_any_chunk():
    model = wide()
    X = np.random.default_rng(14).normal(size=(13, 2))
    kw = {"methods": ("gum", "gum2"), "check_linearity": True}
    r = jacprop.propagate(model, X, dx=0.01, **kw)
    for i in (0, 6, 12):
        one = jacprop.propagate(model, X[i : i + 1], dx=0.01, **kw)
        for key in ("dy_gum2", "gum2_shift", "nonlinearity", "dy_plus", "dy_minus", "nonlinearity_hess"):
            assert (one[key][0] == r[key][i]).all(), (key, i)


# --- settings_for: the checks, word for word, and what --validate adds -------------------------------------------

def test_settings_for_methods_and_validate():
    s = P.settings_for()
    assert s == P.Settings() and s.methods == ("gum",)
    assert P.settings_for(methods=["worst", "gum", "worst", "linear"]).methods == ("worst", "gum", "linear")
    s = P.settings_for(methods=("worst",), validate=True)  # gum (the validated one) first, then the rest, then mc
    assert s.methods == ("gum", "worst", "mc") and s.level == 0.95 and s.validate and s.digits == 2
    assert P.settings_for(methods=("mc", "gum"), validate=True, level=None).methods == ("gum", "mc")
    assert P.settings_for(methods=("mc",), validate=True, level=None).level == 0.95
    assert P.settings_for(validate=True, level=0.99, digits=1).level == 0.99
    s = P.settings_for(methods=("gum2",), validate=True)  # gum2 alone validates gum2 alone
    assert s.methods == ("gum2", "mc") and s.validated == ["gum2"]
    s = P.settings_for(methods=("gum2", "gum"), validate=True)
    assert s.methods == ("gum2", "gum", "mc") and s.validated == ["gum", "gum2"]
    s = P.settings_for(methods=("linear",), k=3.0, samples=5000, seed=4, interval="shortest", budget=True)
    assert (s.methods, s.k, s.samples, s.seed, s.interval, s.budget, s.validate) == (
        ("linear",), 3.0, 5000, 4, "shortest", True, False)
    assert P.settings_for(validate=False, k=2.0).k == 2.0  # --coverage is fine without --validate
    assert P.settings_for(methods=("gum",), dof=(3.0,)).dof == (3.0,)


def test_settings_for_refusals_word_for_word():
    def refused(**given):
        return usage_error(lambda: P.settings_for(**given))

    digits = "--validate needs --digits >= 1 (its tolerance delta comes from them)"
    assert refused(validate=True, digits=0) == digits
    assert refused(validate=True, digits=-1) == digits
    assert refused(validate=True, digits=0, k=2.0) == digits  # digits is checked first
    assert refused(validate=True, k=2.0) == (
        "--validate compares coverage intervals at a probability: give --level, not --coverage")
    assert refused(methods=("gum2",), dof=(4.0, math.inf)) == (
        "--dof with --method gum2: Welch-Satterthwaite is a first-order formula; gum2's k comes from --coverage or "
        "the normal quantile at --level (drop --dof, or use --method gum)")
    assert refused(methods=("gum", "bogus", "alpha")) == (
        "unknown method(s) ['alpha', 'bogus']; the methods are ['linear', 'gum', 'gum2', 'worst', 'mc']")
    assert refused(interval="widest") == "interval 'widest': expected symmetric or shortest"
    for level in (0.0, 1.0, -0.5, 1.5):
        assert refused(level=level) == f"a probability must lie in (0, 1), got {(1 + level) / 2}"
    assert P.settings_for(level=0.5).level == 0.5 and P.settings_for(interval="symmetric").interval == "symmetric"
    assert P.settings_for(methods=("gum2",), dof=None).methods == ("gum2",)


# --- estimate: validation of gum and gum2, the Hessian index, the covariances ------------------------------------

def tolerance(u, digits):
    """JCGM 101 7.9.2: u = c 10^l with c of `digits` digits, delta = 10^l / 2."""
    return 0.5 * 10.0 ** (np.floor(np.log10(u)) - digits + 1)


@pytest.mark.parametrize("output_cov", [False, True])
def test_estimate_validates_gum_and_gum2_and_gives_the_hessian_index(output_cov):
    w = weights(15)
    model = named_model(w)
    X = np.random.default_rng(16).normal(size=(2, 3))
    dx = np.array([0.02, 0.05, 0.01])
    r = jacprop.propagate(model, X, dx=dx, methods=("gum", "gum2"), validate=True, digits=1, samples=20_000,
                          check_linearity=True, output_cov=output_cov)
    J, H, Y = jac(w, X), hess(w, X), f(w, X)
    S = np.diag(dx**2)
    u = np.sqrt(np.einsum("nki,ij,nkj->nk", J, S, J))
    var2 = 0.5 * np.einsum("nkij,jl,nklm,mi->nk", H, S, H, S)
    shift = 0.5 * np.einsum("nkij,ji->nk", H, S)
    z = 1.959963984540054
    np.testing.assert_allclose(r["k"], z, rtol=1e-15)
    for name, uu in (("gum", u), ("gum2", np.sqrt(u**2 + var2))):
        np.testing.assert_allclose(r[f"dy_{name}"], uu, rtol=1e-12)
        np.testing.assert_allclose(r[f"{name}_d_low"], np.abs(Y - z * uu - r["mc_lo"]), rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(r[f"{name}_d_high"], np.abs(Y + z * uu - r["mc_hi"]), rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(r[f"{name}_delta"], tolerance(uu, 1), rtol=1e-15)
        valid = (r[f"{name}_d_low"] <= r[f"{name}_delta"]) & (r[f"{name}_d_high"] <= r[f"{name}_delta"])
        np.testing.assert_array_equal(r[f"{name}_valid"], valid.astype(float))
    assert r["gum_valid"].all()  # dx small: the network is linear enough here
    np.testing.assert_allclose(r["nonlinearity_hess"], np.sqrt(var2) / u, rtol=1e-12)
    np.testing.assert_allclose(r["shift_rel"], np.abs(shift) / u, rtol=1e-12)
    np.testing.assert_allclose(r["gum2_shift"], shift, rtol=1e-12)
    assert ("cov_y" in r, "cov_mc" in r, "cov_gum2" in r) == (output_cov,) * 3
    if output_cov:
        np.testing.assert_allclose(r["cov_y"], np.einsum("nki,ij,nlj->nkl", J, S, J), rtol=1e-12)
        np.testing.assert_allclose(np.einsum("nkk->nk", r["cov_mc"]), r["dy_mc"] ** 2, rtol=1e-12)


def test_linearity_and_the_hessian_index_use_the_correlation_and_gaussian_moments():
    w = weights(17)
    model = named_model(w)
    X = np.random.default_rng(18).normal(size=(2, 3))
    dx = np.array([0.1, 0.2, 0.15])
    J, H, Y = jac(w, X), hess(w, X), f(w, X)
    S = np.outer(dx, dx) * R3
    r = jacprop.propagate(model, X, dx=dx, corr=R3, check_linearity=True)
    u = np.sqrt(np.einsum("nki,ij,nkj->nk", J, S, J))  # the correlated u
    dep = np.zeros_like(Y)
    for i in range(3):
        e = np.zeros(3)
        e[i] = dx[i]
        up, down = f(w, X + e) - Y - J[:, :, i] * dx[i], Y - f(w, X - e) - J[:, :, i] * dx[i]
        dep += np.maximum(np.abs(up), np.abs(down)) ** 2
    np.testing.assert_allclose(r["nonlinearity"], np.sqrt(dep) / (u + 1e-12 * (1 + np.abs(Y))), rtol=1e-10)
    var2 = 0.5 * np.einsum("nkij,jl,nklm,mi->nk", H, S, H, S)
    np.testing.assert_allclose(r["nonlinearity_hess"], np.sqrt(var2) / u, rtol=1e-12)
    np.testing.assert_allclose(r["shift_rel"], np.abs(0.5 * np.einsum("nkij,ji->nk", H, S)) / u, rtol=1e-12)
    # the index is defined for Gaussian inputs whatever --dist says; gum2 beside it takes the rectangular input's
    # fourth moment (so the two must not share the moments)
    r = jacprop.propagate(model, X, dx=dx, dist={"temp": "rect"}, methods=("gum", "gum2"), check_linearity=True)
    S = np.diag(dx**2)
    u = np.sqrt(np.einsum("nki,ij,nkj->nk", J, S, J))
    var2 = 0.5 * np.einsum("nkij,jl,nklm,mi->nk", H, S, H, S)
    np.testing.assert_allclose(r["nonlinearity_hess"], np.sqrt(var2) / u, rtol=1e-12)
    assert (np.abs(r["dy_gum2"] ** 2 - (u**2 + var2)) > 1e-9 * u**2).all()  # rect's excess kurtosis -6/5 shows


def test_the_network_methods_need_x_as_well():
    # bug found through mutant propagate 163: with a model and J but no X, mc and --check-linearity crashed with an
    # AttributeError deep in the Monte Carlo instead of a usage error
    w = weights(19)
    model = named_model(w)
    J = jac(w, np.zeros((2, 3)))
    for kw in ({"methods": ("mc",)}, {"check_linearity": True}, {"methods": ("gum", "mc"), "validate": True}):
        assert usage_error(lambda kw=kw: jacprop.propagate(model, J=J, dx=0.1, **kw)) == (
            "--method mc and --check-linearity run the network at X: give X")
    r = jacprop.propagate(model, J=J, dx=0.1)  # J alone is enough for gum
    assert np.isnan(r["y"]).all() and r["dy_gum"].shape == (2, 2)


def test_a_float32_covariance_is_taken_at_its_exact_values():
    # (C + C^T) / 2 keeps float32: without the float64 cast first, sigma and R would be computed in float32
    J = np.random.default_rng(20).normal(size=(2, 2, 3))
    cov = (np.outer([0.1, 0.3, 0.2], [0.1, 0.3, 0.2]) * R3).astype(np.float32)
    exact = cov.astype(np.float64)
    r = jacprop.propagate(J=J, cov=cov, output_cov=True)
    np.testing.assert_allclose(r["dy_gum"], np.sqrt(np.einsum("nki,ij,nkj->nk", J, exact, J)), rtol=1e-14)
    np.testing.assert_allclose(r["cov_y"], np.einsum("nki,ij,nlj->nkl", J, exact, J), rtol=1e-13)
    assert r["dy_gum"].dtype == np.float64
