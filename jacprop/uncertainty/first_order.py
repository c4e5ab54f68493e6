"""The first-order formulas over the terms a_i = c_i u_i = J_ki dx_i, per row and output
(``jacprop.propagate`` names the methods): J Delta x, GUM's u = sqrt(a^T R a), the covariance
J Sigma J^T, the worst-case bound and the budget.  Sums of squares are taken over a / s with s a
power of two (``scaled_terms``), so that a u of 1e-170 or 1e170 neither under- nor overflows."""

from __future__ import annotations

import numpy as np


def linear(J, dx):
    """Delta y = J Delta x: (N, K)."""
    return np.einsum("nki,ni->nk", J, dx)


def terms(J, dx):
    """a_i = c_i u_i = J_ki dx_i: (N, K, D)."""
    return J * dx[:, None, :]


def power_of_two_scale(a, axis=-1):
    """s, a power of two with 1 <= max |a| / s < 2 along ``axis`` (1/2 where that max is 0 or not finite),
    that axis dropped.  Dividing by a power of two is exact, so sums of squares (and fourth powers) of a / s
    give the bits of a's own wherever a's do not under- or overflow, and the right value where they would (a u
    of 1e-170 or 1e170)."""
    _, e = np.frexp(np.abs(a).max(axis=axis, initial=0.0))
    return np.ldexp(1.0, e - 1)


def scaled_terms(J, dx):
    """(a / s (N, K, D), s (N, K)): the terms a_i = c_i u_i over their ``power_of_two_scale``."""
    a = terms(J, dx)
    s = power_of_two_scale(a)
    return a / s[..., None], s


def gum(J, dx, corr=None):
    """u(y_k) = sqrt((J Sigma J^T)_kk), Sigma = diag(dx) R diag(dx): sqrt(sum_i J_ki^2 dx_i^2) when R = I
    (over the scaled terms: see ``scaled_terms``)."""
    b, s = scaled_terms(J, dx)
    return s * np.sqrt(quadratic_form(b, corr))


def quadratic_form(b, corr=None):
    """b^T R b over the last axis (R = I when None; rounding below 0 taken as 0)."""
    if corr is None:
        return np.einsum("nki,nki->nk", b, b)
    return np.maximum(np.einsum("nki,ij,nkj->nk", b, corr, b), 0)


def output_covariance(J, dx, corr=None):
    """J Sigma J^T per row: (N, K, K)."""
    JD = terms(J, dx)
    if corr is None:
        return np.einsum("nki,nli->nkl", JD, JD)
    return np.einsum("nki,ij,nlj->nkl", JD, corr, JD)


def worst(J, dx):
    """sum_i |J_ki| |dx_i|."""
    return np.einsum("nki,ni->nk", np.abs(J), np.abs(dx))


def budget(J, dx, corr=None):
    """Share of u(y_k)^2 from each input, a_i (R a)_i / (a^T R a) with a_i = J_ki dx_i, i.e.
    c_i (Sigma c)_i / u^2: (N, K, D), summing to 1 over inputs; 0 where u = 0."""
    a, _ = scaled_terms(J, dx)  # the shares do not depend on the scale
    parts = a * a if corr is None else a * np.einsum("nki,ij->nkj", a, corr)
    total = parts.sum(axis=-1, keepdims=True)
    return np.divide(parts, total, out=np.zeros_like(parts), where=total > 0)
