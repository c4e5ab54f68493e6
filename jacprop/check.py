"""``check``: backprop J against central finite differences of the model's own forward pass.

The step for input i is h_i = eps^(1/3) * max(1, RMS of column i over the first block of
rows): it balances the truncation error O(h^2 f''') against rounding O(eps |f| / h).  The
error reported per output k is max |J - J_fd| / max(1, max |J_fd|) over rows and inputs.
With expected outputs, y is compared too: max |y - expected| / max(1, |expected|).
"""

from __future__ import annotations

import numpy as np

from .engine import jacobian


def fd_steps(X: np.ndarray) -> np.ndarray:
    """h_i = eps^(1/3) * max(1, RMS of column i): (D,)."""
    scale = np.maximum(np.sqrt((X * X).mean(axis=0)), 1e-8)
    return np.finfo(float).eps ** (1 / 3) * np.maximum(scale, 1.0)


def central_jacobian(model, X: np.ndarray, step: np.ndarray) -> np.ndarray:
    """J_fd[n, k, i] = (f(x_n + h_i e_i) - f(x_n - h_i e_i))_k / 2 h_i: one batched forward pass
    per input column and side."""
    J_fd = np.empty((len(X), model.K, model.D))
    for i in range(model.D):
        Xp, Xm = X.copy(), X.copy()
        Xp[:, i] += step[i]
        Xm[:, i] -= step[i]
        J_fd[:, :, i] = (model.forward(Xp) - model.forward(Xm)) / (2 * step[i])
    return J_fd


class Checker:
    """Accumulates the worst scaled errors over blocks of rows (``add``), then ``result``."""

    def __init__(self, model, input_names, tol=1e-6, y_tol=1e-5, dtype=np.float64):
        """``dtype``: the precision J (and y) are computed in, as ``jacobian --dtype`` would; the
        central differences are always float64, so float32 shows the float32 Jacobian's error."""
        self.model, self.input_names, self.tol, self.y_tol = model, list(input_names), tol, y_tol
        self.dtype = np.dtype(dtype)
        self.worst = np.zeros(model.K)
        self.worst_at = [(0, 0)] * model.K
        self.y_err, self.y_rows, self.rows, self.step = np.zeros(model.K), 0, 0, None

    def add(self, rows: np.ndarray, X: np.ndarray, expected: np.ndarray | None = None) -> None:
        """Rows (1-based numbers) X of one block; ``expected``: their expected outputs."""
        if self.step is None:
            self.step = fd_steps(X)
        Y, J = (a.astype(np.float64) for a in jacobian(self.model, X, dtype=self.dtype))
        J_fd = central_jacobian(self.model, X, self.step)
        err = np.abs(J - J_fd) / np.maximum(1.0, np.abs(J_fd).max(axis=(0, 2)))[None, :, None]
        for k in range(self.model.K):
            n, i = np.unravel_index(err[:, k].argmax(), err[:, k].shape)
            if err[n, k, i] > self.worst[k]:
                self.worst[k], self.worst_at[k] = err[n, k, i], (int(rows[n]), i)
        if expected is not None:
            self.y_err = np.maximum(self.y_err, (np.abs(Y - expected) / np.maximum(1.0, np.abs(expected))).max(axis=0))
            self.y_rows += len(Y)

    def result(self, rows_read: int, with_y: bool = False) -> dict:
        names = self.model.output_names
        result = {
            "rows": int(rows_read), "tolerance": self.tol,
            "outputs": [{"output": o, "max_scaled_error": float(self.worst[k]), "row": self.worst_at[k][0],
                         "input": self.input_names[self.worst_at[k][1]], "ok": bool(self.worst[k] <= self.tol)}
                        for k, o in enumerate(names)],
            "steps": {n: float(s) for n, s in zip(self.input_names, self.step)},
            "dtype": self.dtype.name,
        }
        if with_y:
            result["y"] = [{"output": o, "max_scaled_error": float(e), "ok": bool(e <= self.y_tol)}
                           for o, e in zip(names, self.y_err)]
            result["y_tolerance"] = self.y_tol
        result["ok"] = all(o["ok"] for o in result["outputs"] + result.get("y", []))
        return result


def check(model, X, tol=1e-6, expected=None, y_tol=1e-5, input_names=None) -> dict:
    """Check J at every row of X (N, D) against central differences (and y against ``expected``
    (N, K) when given); returns the report ``jacprop check --format json`` prints, with ``ok``."""
    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    checker = Checker(model, input_names or model.input_names, tol, y_tol)
    checker.add(np.arange(1, len(X) + 1), X, None if expected is None else np.asarray(expected, dtype=np.float64))
    return checker.result(len(X), with_y=expected is not None)
