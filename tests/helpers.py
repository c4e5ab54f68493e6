"""Reference derivatives for the tests: central finite differences, written independently of jacprop."""

import numpy as np


def central_jacobian(f, X, eps=1e-6):
    """J[n, k, i] ~= (f(x_n + h e_i) - f(x_n - h e_i))_k / 2h with h = eps * max(1, |x_ni|).

    f maps (N, D) -> (N, K) row by row.  Error O(h^2 f''') + O(1e-16 |f| / h).
    """
    X = np.asarray(X, dtype=np.float64)
    N, D = X.shape
    cols = []
    for i in range(D):
        h = eps * np.maximum(1.0, np.abs(X[:, i]))
        Xp, Xm = X.copy(), X.copy()
        Xp[:, i] += h
        Xm[:, i] -= h
        cols.append((f(Xp) - f(Xm)) / (2 * h)[:, None])
    return np.stack(cols, axis=-1)


def assert_close_jacobian(J, J_ref, rtol):
    """|J - J_ref| <= rtol * max(1, max|J_ref|), reporting the worst entry."""
    J, J_ref = np.asarray(J), np.asarray(J_ref)
    assert J.shape == J_ref.shape, (J.shape, J_ref.shape)
    scale = max(1.0, float(np.abs(J_ref).max(initial=0)))
    err = np.abs(J - J_ref).max(initial=0) / scale
    assert err <= rtol, f"max error {err:.3g} (relative to {scale:.3g}) > {rtol}"
    return err
