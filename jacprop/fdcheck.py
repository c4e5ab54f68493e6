"""``check``: backprop derivatives against central finite differences of the model itself.

Order 1: J against central differences of the forward pass, J_fd[n, k, i] = (f(x + h_i e_i) - f(x - h_i e_i))_k / 2 h_i.
Order 2: H against central differences of J (backprop, itself checked by order 1), D_h[n, k, i, j] =
(J(x + h_j e_j) - J(x - h_j e_j))[k, i] / 2 h_j, extrapolated (Richardson) as H_fd = (4 D_{h/2} - D_h) / 3:
truncation O(h^4) instead of O(h^2) (a strongly curved recurrent sample, rnn_acts, has a plain D_h off by 1e-6
of max|H| from its exact H, the extrapolation by 1e-11), for three times the rounding of D_h.
The step for input i is h_i = eps^(1/3) * max(1, RMS of column i over the first block of rows): it balances
the truncation error O(h^2 f''') against rounding O(eps |f| / h).

Each output k is compared on the scale of its own derivatives, s_k = max |J_fd| over rows and inputs (order
2: max |H_fd|), with the absolute floor FLAT = 1e-8: error_k = max |J - J_fd| / max(s_k, FLAT).  It passes
when error_k <= tol + noise_k / max(s_k, FLAT), where noise_k = 8 eps max(1, max |f_k|) / min_i h_i bounds the
rounding in the difference quotient (f = y for order 1, the row of J for order 2).  An output whose
derivatives are below FLAT at every row and input (saturated: a softmax at 0 or 1, a dead unit) is "flat":
nothing was tested there, and the check fails unless ``allow_flat``.
With expected outputs, y is compared too: max |y - expected| / max(1, |expected|).
"""

from __future__ import annotations

import numpy as np

from .engine import jacobian

FLAT = 1e-8
NOISE = 8.0
H_BLOCK_VALUES = 2**22  # order 2: rows per sub-block so that (rows, K, D, D) stays near 32 MB


def fd_steps(X: np.ndarray) -> np.ndarray:
    """h_i = eps^(1/3) * max(1, RMS of column i): (D,)."""
    scale = np.maximum(np.sqrt((X * X).mean(axis=0)), 1e-8)
    return np.finfo(float).eps ** (1 / 3) * np.maximum(scale, 1.0)


def central_difference(f, X: np.ndarray, step: np.ndarray) -> np.ndarray:
    """(f(x_n + h_i e_i) - f(x_n - h_i e_i)) / 2 h_i for f: (N, D) -> (N, *shape), stacked on a last axis:
    (N, *shape, D).  One batched evaluation per input column and side."""
    cols = []
    for i in range(X.shape[1]):
        Xp, Xm = X.copy(), X.copy()
        Xp[:, i] += step[i]
        Xm[:, i] -= step[i]
        cols.append((f(Xp) - f(Xm)) / (2 * step[i]))
    return np.stack(cols, axis=-1)


def central_jacobian(model, X: np.ndarray, step: np.ndarray) -> np.ndarray:
    """J_fd (N, K, D) from the model's forward pass."""
    return central_difference(model.forward, X, step)


def central_hessian(model, X: np.ndarray, step: np.ndarray) -> np.ndarray:
    """H_fd (N, K, D, D) from backprop J: H_fd[n, k, i, j] = d J[n, k, i] / dx_j, as (4 D_{h/2} - D_h) / 3."""
    def f(A):
        return jacobian(model, A)[1]

    return (4 * central_difference(f, X, step / 2) - central_difference(f, X, step)) / 3


class Checker:
    """Accumulates, per output, the worst absolute error, the scale of the reference and of f over blocks of
    rows (``add``), then ``result``."""

    def __init__(self, model, input_names, tol=1e-6, y_tol=1e-5, order=1, allow_flat=False, dtype=np.float64):
        """``dtype``: the precision J (and y) are computed in, as ``jacobian --dtype`` would; the
        central differences are always float64, so float32 shows the float32 Jacobian's error."""
        self.model, self.input_names, self.tol, self.y_tol = model, list(input_names), tol, y_tol
        self.order, self.allow_flat, self.dtype = order, allow_flat, np.dtype(dtype)
        if order == 2 and self.dtype != np.float64:
            from .errors import UsageError

            raise UsageError("check --order 2 computes H in float64 only (--dtype float64)")
        K = model.K
        self.err, self.scale, self.f_max = np.zeros(K), np.zeros(K), np.zeros(K)
        self.worst_at = [(0, (0,))] * K
        self.y_err, self.y_rows, self.rows, self.step = np.zeros(K), 0, 0, None

    def add(self, rows: np.ndarray, X: np.ndarray, expected: np.ndarray | None = None) -> None:
        """Rows (1-based numbers) X of one block; ``expected``: their expected outputs."""
        if self.step is None:
            self.step = fd_steps(X)
        if self.order == 1:
            Y, J = (a.astype(np.float64) for a in jacobian(self.model, X, dtype=self.dtype))
            self._compare(rows, J, central_jacobian(self.model, X, self.step), Y)
        else:
            from .second_order import hessian

            D = self.model.D
            per = max(1, H_BLOCK_VALUES // (self.model.K * D * D))
            Y = np.empty((len(X), self.model.K))
            for s in range(0, len(X), per):
                Y[s : s + per], J, H = hessian(self.model, X[s : s + per])
                self._compare(rows[s : s + per], H, central_hessian(self.model, X[s : s + per], self.step), J)
        if expected is not None:
            self.y_err = np.maximum(self.y_err, (np.abs(Y - expected) / np.maximum(1.0, np.abs(expected))).max(axis=0))
            self.y_rows += len(Y)

    def _compare(self, rows, value, ref, f):
        """value, ref: (N, K, ...) derivatives; f: (N, K, ...) what was differenced (y, or J)."""
        err = np.abs(value - ref)
        for k in range(self.model.K):
            at = np.unravel_index(err[:, k].argmax(), err[:, k].shape)
            if err[:, k][at] > self.err[k]:
                self.err[k], self.worst_at[k] = err[:, k][at], (int(rows[at[0]]), tuple(int(i) for i in at[1:]))
        axes = tuple(range(2, value.ndim))
        largest = np.maximum(np.abs(ref).max(axis=(0, *axes)), np.abs(value).max(axis=(0, *axes)))
        self.scale = np.maximum(self.scale, largest)
        f_axes = tuple(range(2, f.ndim))
        self.f_max = np.maximum(self.f_max, np.abs(f).max(axis=(0, *f_axes)))

    def result(self, rows_read: int, with_y: bool = False) -> dict:
        names = self.model.output_names
        noise = NOISE * np.finfo(float).eps * np.maximum(1.0, self.f_max) / self.step.min()
        noise = noise * (3 if self.order == 2 else 1)  # (4 D_{h/2} - D_h) / 3 rounds 3 times as much as D_h
        denom = np.maximum(self.scale, FLAT)
        outputs = []
        for k, o in enumerate(names):
            row, at = self.worst_at[k]
            flat = bool(self.scale[k] < FLAT)
            tol_k = float(self.tol + noise[k] / denom[k])
            error = float(self.err[k] / denom[k])
            outputs.append({"output": o, "max_scaled_error": error, "scale": float(self.scale[k]),
                            "tolerance": tol_k, "row": row,
                            "input": ",".join(self.input_names[i] for i in at) if at else self.input_names[0],
                            "flat": flat, "ok": bool(error <= tol_k and (self.allow_flat or not flat))})
        result = {"rows": int(rows_read), "tolerance": self.tol, "outputs": outputs,
                  "steps": {n: float(s) for n, s in zip(self.input_names, self.step)}, "order": self.order,
                  "floor": FLAT, "dtype": self.dtype.name}
        if with_y:
            result["y"] = [{"output": o, "max_scaled_error": float(e), "ok": bool(e <= self.y_tol)}
                           for o, e in zip(names, self.y_err)]
            result["y_tolerance"] = self.y_tol
        result["flat"], result["allow_flat"] = [o["output"] for o in outputs if o["flat"]], self.allow_flat
        result["ok"] = all(o["ok"] for o in result["outputs"] + result.get("y", []))
        return result


def flat_note(result: dict) -> str | None:
    """The stderr line for outputs whose derivatives are negligible everywhere (None if there are none)."""
    flat = result["flat"]
    if not flat:
        return None
    what = "J" if result["order"] == 1 else "H"
    shown = ", ".join(flat[:5]) + (f" and {len(flat) - 5} more" if len(flat) > 5 else "")
    verdict = "accepted (--allow-flat)" if result.get("allow_flat") else "so nothing was tested there"
    return (f"jacprop: check: output{'s' if len(flat) > 1 else ''} {shown}: |{what}| < {FLAT:g} at every row and input "
            f"(saturated?), {verdict}; try --logits (the pre-activations) or other inputs"
            + ("" if result.get("allow_flat") else ", or --allow-flat to accept"))


def check(model, X, tol=1e-6, expected=None, y_tol=1e-5, input_names=None, order=1, allow_flat=False) -> dict:
    """Check J (order 1) or H (order 2) at every row of X (N, D) against central differences (and y against
    ``expected`` (N, K) when given); returns the report ``jacprop check --format json`` prints, with ``ok``."""
    if order not in (1, 2):
        from .errors import UsageError

        raise UsageError(f"order must be 1 or 2, got {order!r}")
    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    checker = Checker(model, input_names or model.input_names, tol, y_tol, order, allow_flat)
    checker.add(np.arange(1, len(X) + 1), X, None if expected is None else np.asarray(expected, dtype=np.float64))
    return checker.result(len(X), with_y=expected is not None)

