"""The moments of a quadratic model, the second-order law of propagation (``--method gum2``).

Expanding f to second order about x, y_k = f_k(x) + J_k z + 1/2 z^T H_k z with z = X - x of
mean 0 and covariance Sigma.  For Gaussian z this is exact for the quadratic model:

    E[y_k] - f_k(x) = 1/2 tr(H_k Sigma)                                   (the mean shift)
    Cov(y_k, y_l)   = J_k Sigma J_l^T + 1/2 tr(H_k Sigma H_l Sigma)

(the cross term Cov(J z, z^T H z) needs third moments, 0 for a symmetric z).  With
Sigma = L L^T, L = diag(dx) R^(1/2), and B_k = L^T H_k L: tr(H_k Sigma) = tr(B_k) and
tr(H_k Sigma H_l Sigma) = <B_k, B_l> (Frobenius), so the variance term is a sum of squares.

Non-Gaussian inputs (independent of every other input, ``--dist``): the fourth cumulant adds
1/4 sum_i (kappa_i - 3) H_k,ii H_l,ii u_i^4 with kappa_i the kurtosis of input i (rect 9/5,
triangular 12/5, arcsine 3/2, t:NU 3 + 6/(NU - 4), NU > 4; a t with NU <= 4 has no fourth
moment and is refused).  Every supported distribution is symmetric, so the cross term stays 0.
"""

from __future__ import annotations

import numpy as np

from ..errors import UsageError

KURTOSIS = {"normal": 3.0, "rect": 9 / 5, "triangular": 12 / 5, "arcsine": 3 / 2}


def check_fourth_moments(kinds, names) -> None:
    """Refuse a t input with NU <= 4 (no fourth moment: the second-order variance is infinite)."""
    for (kind, nu), name in zip(kinds or (), names):
        if kind == "t" and not nu > 4:
            raise UsageError(f"--dist {name}=t:{nu:g} with --method gum2: a t with NU <= 4 "
                             "has no fourth moment, so the second-order variance is infinite; use --method mc")


def excess_kurtosis(kinds) -> np.ndarray | None:
    """kappa_i - 3 per input from (kind, nu) pairs (``check_fourth_moments`` first); None when all are normal."""
    out = np.array([6 / (nu - 4) if kind == "t" else KURTOSIS[kind] - 3 for kind, nu in kinds], dtype=np.float64)
    return out if out.any() else None


def root(corr: np.ndarray) -> np.ndarray:
    """The symmetric square root of a correlation matrix (negative rounding eigenvalues taken as 0)."""
    w, V = np.linalg.eigh(corr)
    return (V * np.sqrt(np.clip(w, 0, None))) @ V.T


def quadratic_moments(H, dx, corr=None, excess=None, cross=False):
    """(shift (N, K), second-order variance (N, K) or, with ``cross``, covariance (N, K, K)).

    H (N, K, W, W) the Hessians over the W inputs with uncertainty, dx (N, W) their standard
    uncertainties, corr (W, W) their correlation (None: independent), excess (W,) kappa_i - 3.
    """
    G = H * dx[:, None, :, None] * dx[:, None, None, :]  # diag(dx) H diag(dx)
    if corr is None:
        B = G
    else:
        S = root(corr)
        B = np.einsum("ia,nkab,bj->nkij", S, G, S)
    shift = 0.5 * np.einsum("nkii->nk", B)
    var = 0.5 * (np.einsum("nkij,nlij->nkl", B, B) if cross else np.einsum("nkij,nkij->nk", B, B))
    if excess is not None:
        g = np.einsum("nkii->nki", G)  # H_k,ii u_i^2
        var = var + 0.25 * np.einsum("nki,i,nli->nkl" if cross else "nki,i,nki->nk", g, excess, g)
    return shift, var


def hessian_index(var2, shift, u):
    """(sqrt(var2) / u, |shift| / u): the second-order term's standard deviation and the mean shift
    over the first-order u; 0 where both sides are 0 (the quadratic model is flat), inf where only u is."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = []
        for num in (np.sqrt(np.maximum(var2, 0)), np.abs(shift)):
            r = num / u
            r[(num == 0) & (u == 0)] = 0.0
            out.append(r)
    return tuple(out)



def block_moments(shape, dx, corr, hessian, kinds=None, cross=False):
    """``quadratic_moments`` of a block of rows (shape (N, K)) over the inputs with uncertainty there
    (H of the others is never needed): ``hessian(wrt)`` yields (start, H (n, K, W, W)) sub-blocks;
    ``kinds`` the inputs' (kind, nu) or None (all normal)."""
    n, k = shape
    wrt = np.flatnonzero(dx.any(axis=0) | np.isnan(dx).any(axis=0))
    shift, var = np.zeros((n, k)), np.zeros((n, k, k) if cross else (n, k))
    if not len(wrt):
        return shift, var
    if hessian is None:
        raise UsageError("--method gum2 and the Hessian index need H: give the model, or the npz that "
                         "`jacprop hessian` writes")
    corr = None if corr is None else corr[np.ix_(wrt, wrt)]
    excess = None if kinds is None else excess_kurtosis([kinds[i] for i in wrt])
    for start, H in hessian(wrt):
        sl = slice(start, start + len(H))
        shift[sl], var[sl] = quadratic_moments(np.asarray(H, np.float64), dx[sl][:, wrt], corr, excess, cross)
    return shift, var
