"""Propagation and uncertainty (issue #20, tests/mutation-mut-unc.md): the Monte Carlo mean and batch size
fixed here, and the mutants of propagate.py, uncertainty/ and commands/gates.py, curvature.py that
survived the selection, each against a formula or a re-computation written in the test."""

import math

import numpy as np
import pytest

from jacprop.uncertainty import montecarlo as mc

A = np.array([[1.5, -2.0, 0.5], [0.25, 1.0, -3.0], [0.1, 0.2, 0.3]])  # y = A x + C, K = 3
C = np.array([0.1, -7.0, 1e3])


def linear(X):
    return X @ A.T + C


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
