"""Uncertainties far from 1, and Monte Carlo where the float grid is too coarse for dx: the right
number or NaN with a warning, never a silent 0 (a u of 1e-300 used to come out 0.0: its squares underflowed)."""

import math
import subprocess
import sys

import numpy as np
import pytest

import jacprop
from jacprop import propagate as P
from jacprop.uncertainty.coverage import welch_satterthwaite

RNG = np.random.default_rng(11)
J = RNG.normal(size=(3, 2, 4))
DX = RNG.uniform(0.2, 2.0, size=(3, 4))
CORR = np.array([[1.0, 0.6, -0.2, 0.0], [0.6, 1.0, 0.1, 0.3], [-0.2, 0.1, 1.0, 0.0], [0.0, 0.3, 0.0, 1.0]])
SAMPLE = "sample_models/bishop_tanh.npz"


@pytest.mark.parametrize("e", [-1000, -600, -80, 80, 600, 1000])  # dx and J dx stay normal numbers
def test_gum_budget_and_nu_eff_scale_exactly_with_a_power_of_two(e):
    """u(J, 2^e dx) = 2^e u(J, dx) to the bit (the squares of a u of 1e-300 under- and of 1e300 overflow),
    and the budget and Welch-Satterthwaite's nu_eff do not change at all."""
    dx = np.ldexp(DX, e)
    for corr in (None, CORR):
        np.testing.assert_array_equal(P.gum(J, dx, corr), np.ldexp(P.gum(J, DX, corr), e))
        np.testing.assert_array_equal(P.budget(J, dx, corr), P.budget(J, DX, corr))
    dof = np.array([3.0, np.inf, 8.0, 5.0])
    nu = welch_satterthwaite(P.scaled_terms(J, dx)[0], dof)
    np.testing.assert_array_equal(nu, welch_satterthwaite(P.terms(J, DX), dof))
    assert np.isfinite(nu).all() and (nu > 3).all()


@pytest.mark.parametrize("scale", [1e-300, 1e-200, 1e-155, 1.0, 1e155, 1e300])
def test_gum_against_math_hypot(scale):
    u = P.gum(J, DX * scale)
    for n in range(3):
        for k in range(2):
            assert u[n, k] == pytest.approx(math.hypot(*(J[n, k] * DX[n] * scale)), rel=4e-16)


def test_gum2_at_a_tiny_dx_is_gum_not_zero():
    model = jacprop.load(SAMPLE)
    X = np.loadtxt("sample_models/bishop_tanh.csv", delimiter=",", skiprows=1)
    out = jacprop.propagate(model, X, 1e-200, methods=("gum", "gum2"))
    assert (out["dy_gum"] > 1e-203).all()
    np.testing.assert_array_equal(out["dy_gum2"], out["dy_gum"])  # the second-order term is (1e-200)^2 smaller


def test_the_cli_gives_u_of_a_dx_of_1e_300():
    X = np.loadtxt("sample_models/bishop_tanh.csv", delimiter=",", skiprows=1)
    _, Jm = jacprop.jacobian(jacprop.load(SAMPLE), X)
    p = subprocess.run([sys.executable, "-m", "jacprop", "propagate", SAMPLE, "sample_models/bishop_tanh.csv",
                        "--dx", "1e-300", "--format", "npz", "-o", "-"], capture_output=True)
    assert p.returncode == 0, p.stderr
    import io

    u = np.load(io.BytesIO(p.stdout))["dy_gum"]
    expected = [[math.hypot(*(Jm[n, k] * 1e-300)) for k in range(2)] for n in range(len(X))]
    np.testing.assert_allclose(u, expected, rtol=4e-16)


def _linear_model(tmp_path, weight, bias):
    path = tmp_path / "lin.npz"
    np.savez(path, W0=np.array([[weight]]), b0=np.array([bias]), activations=np.array(["linear"]))
    return jacprop.load(path)


@pytest.mark.parametrize("x,dx,bias,resolved", [
    (9192631770.0, 1e-6, 0.0, False),  # spacing(x) = 1.9e-6 > dx: x + dx z lands on three grid points
    (9192631770.0, 1e-2, 0.0, True),
    (0.5, 1e-6, 0.0, True),
    (0.5, 1e-6, 1e10, False),  # y = 2x + 1e10: spacing(y) = 1.9e-6 beside u = 2e-6
    (0.0, 1e-300, 0.0, True),  # near 0 the grid is fine: the draws' moments are taken over a power of two
    (0.0, 1e-140, 0.0, True),
])
def test_monte_carlo_refuses_draws_the_float_grid_cannot_hold(tmp_path, x, dx, bias, resolved):
    model = _linear_model(tmp_path, 2.0, bias)
    out = jacprop.propagate(model, [[x]], dx, methods=("gum", "mc"), digits=1, samples=40_000)
    assert out["dy_gum"][0, 0] == 2 * dx
    assert out["unresolved"][0, 0] == (not resolved)
    if resolved:  # y = 2x + b: the draws' std is 2 dx, to its standard error
        assert abs(out["dy_mc"][0, 0] - 2 * dx) < 4 * out["dy_mc_se"][0, 0]
    else:
        for q in ("dy_mc", "dy_mc_se", "mc_shift", "mc_lo", "mc_hi", "mc_hi_se"):
            assert np.isnan(out[q][0, 0]), q
        assert out["mc_samples"][0, 0] > 0


def test_unresolved_monte_carlo_is_said_once_and_fails_a_gate(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a\n9192631770\n0.5\n")
    np.savez(tmp_path / "lin.npz", W0=np.array([[2.0]]), b0=np.array([0.0]), activations=np.array(["linear"]))
    cmd = [sys.executable, "-m", "jacprop", "propagate", str(tmp_path / "lin.npz"), str(path), "--dx", "1e-6",
           "--method", "mc", "--digits", "1"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    assert p.returncode == 0
    lines = [line for line in p.stderr.splitlines() if "warning" in line]
    assert len(lines) == 1 and "1 (row, output) pairs: the float grid is too coarse" in lines[0], p.stderr
    assert lines[0].endswith(": row 1 y"), lines[0]  # the only output of a one-unit NPZ model is named y
    rows = p.stdout.splitlines()
    assert rows[1].split(",")[2] == "nan" and float(rows[2].split(",")[2]) == pytest.approx(2e-6, rel=0.05)
    assert subprocess.run(cmd + ["--max-dy", "1"], capture_output=True).returncode == 1


def test_the_linearity_check_refuses_steps_the_float_grid_cannot_hold(tmp_path):
    """x = 9192631770, dx = 1e-6: x + dx == x, so f(x + dx) - f(x) = 0 would read as a departure of J dx =
    u (nonlinearity 1 for a linear model); NaN instead, and the gate fails on it.  dx = 1e-2 is linear: 0."""
    model = _linear_model(tmp_path, 2.0, 0.0)
    for dx, lost in ((1e-6, True), (1e-2, False)):
        out = jacprop.propagate(model, [[9192631770.0], [0.5]], dx, check_linearity=True)
        assert out["unresolved"].ravel().tolist() == [lost, False]
        assert np.isnan(out["nonlinearity"][0, 0]) == lost and np.isnan(out["dy_plus"][0, 0]) == lost
        assert out["nonlinearity"][1, 0] < 1e-9 and out["dy_plus"][1, 0] == pytest.approx(2 * dx)
        if not lost:  # only y's rounding: a few grid steps of y = 1.8e10 over u = 2 dx
            assert out["nonlinearity"][0, 0] < 4 * np.spacing(2 * 9192631770.0) / (2 * dx)


def test_the_linearity_index_does_not_overflow():
    """At dx = 1e300 the tanh network is flat on both sides: f(x +- dx_i) - f(x) is bounded, so each departure
    e_i is |J_i| dx_i up to that bound and the index sqrt(sum e_i^2) / u is 1 (its squares used to overflow: inf)."""
    model = jacprop.load(SAMPLE)
    X = np.loadtxt("sample_models/bishop_tanh.csv", delimiter=",", skiprows=1)
    with np.errstate(over="ignore"):  # the Hessian index beside it overflows to inf: (H dx^2)^2 is 1e1200
        out = jacprop.propagate(model, X, 1e300, check_linearity=True)
    np.testing.assert_allclose(out["nonlinearity"], 1.0, rtol=1e-12)


def test_budget_of_one_input_is_all_of_u_whatever_its_scale():
    """One uncertain input: its share is 1 (also when its term is a power of two, where the scaled sum of
    squares is exactly 1, and with a correlation that makes u smaller than either term)."""
    J1 = np.array([[[1.0, 0.0], [0.25, 0.0]]])
    for dx in ([[0.5, 0.3]], [[2.0**-700, 1.0]], [[3.0, 7.0]]):
        np.testing.assert_array_equal(P.budget(J1, np.array(dx))[0, :, 0], [1.0, 1.0])
    R = np.array([[1.0, -0.9], [-0.9, 1.0]])
    b = P.budget(np.array([[[1.0, 1.0]]]), np.array([[1.0, 1.0]]), R)[0, 0]  # u^2 = 2 - 1.8 = 0.2
    np.testing.assert_allclose(b, [0.5, 0.5], rtol=1e-12)


def test_each_row_and_output_has_its_own_scale():
    """Rows of 1e-300 and 1 in one call: each (row, output) is scaled by its own power of two (one scale for
    the whole block would underflow the small row's squares back to 0)."""
    dx = DX * np.array([[1e-300], [1.0], [1e300]])
    u = P.gum(J, dx, CORR)
    for n, f in enumerate((1e-300, 1.0, 1e300)):
        np.testing.assert_allclose(u[n], P.gum(J[n : n + 1], DX[n : n + 1], CORR)[0] * f, rtol=1e-15)
    np.testing.assert_allclose(P.budget(J, dx)[0], P.budget(J, DX)[0], rtol=1e-15)
