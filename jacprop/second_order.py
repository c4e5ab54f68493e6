"""Batched per-row Hessians H[n, k, i, j] = d2y_k / dx_i dx_j of a Model.

The second-order chain rule on the layer graph: with g_v = dy/dv the cotangent of node v's output (the
Jacobian's backward recursion, K seeds) and t_u = du/dx_j the tangents of its inputs u (forward mode, one
per input j in ``wrt``),

    H_k = sum over nodes v = f_v(u_1, ..., u_m) of  sum_o g_{k,v,o} t^T (d2 f_{v,o} / du du') t'

contracted over u's entries: each node's local Hessian, weighted by the adjoint of its output and
pulled back to x by the tangents of its inputs.  Linear ops (``Op.linear``) add nothing; every other op
gives its term through ``Op.hess_term`` (``vjp2`` contracted with the tangents, or for Dense/Conv
(t W)^T diag(g h''(a)) (t W) on the layer's units, without the product with W^T).  So the cost is one
reverse sweep with K seeds (J), one tangent sweep with W seeds, and per nonlinear node about
K W^2 x (its size) multiply-adds; ``diagonal`` (H_kii only) costs K W x (its size).  Memory per row is
about W x (the nodes' sizes) + K x (the largest) + K W^2, so rows go through in blocks sized from a
budget (``hessian_rows``): memory is flat in N.

An op with neither ``linear`` nor ``vjp2`` has no second-order rule: ``check_second_order`` refuses the
model with one line naming the layer and the op, before anything is computed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from .engine import _dtype, _select
from .errors import ModelError
from .graph import DEFAULT_MEMORY, MAX_BLOCK_ROWS, Model, blocks, check_X, run_forward


def check_second_order(model: Model) -> None:
    """Raise ModelError naming the first layer whose op has no second-order rule."""
    for node in model.nodes[1:]:
        for op in (node.op, *getattr(node.op, "inner", ())):  # TimeDistributed's ops too
            for activation in (getattr(op, "activation", None), getattr(op, "recurrent_activation", None)):
                if activation is not None and not activation.has_second_order:
                    raise ModelError(f"hessian: layer {node.name!r} ({node.kind}): activation {activation.name!r} "
                                     "has no second-order rule")
            if not op.linear and op.vjp2 is None:
                raise ModelError(f"hessian: layer {node.name!r} ({node.kind}): op {type(op).__name__} has no "
                                 "second-order rule")


def hessian_rows(model: Model, n_outputs: int, n_wrt: int, itemsize: int, memory: int = DEFAULT_MEMORY,
                 diagonal: bool = False) -> int:
    """Rows per block so that the tangents (W per node), the cotangents (K per node, two live), a term's
    (K, W, size) temporary, H (K W W, three live) and the largest op's own scratch (``Op.hess_scratch``: a
    recurrent layer keeps W numbers per step and product) fit in ``memory`` bytes."""
    sizes = [math.prod(n.shape) for n in model.nodes]
    h = n_outputs * n_wrt * (1 if diagonal else n_wrt)
    scratch = max((n.op.hess_scratch(n_outputs, n_wrt) for n in model.nodes[1:]), default=0)  # recurrent ops
    per_row = itemsize * (3 * sum(sizes) + n_wrt * sum(sizes) + 4 * n_outputs * max(sizes)
                          + 2 * n_outputs * n_wrt * max(sizes) + 3 * h + scratch)
    return max(1, min(MAX_BLOCK_ROWS, int(memory // per_row)))


def tangents(model: Model, saved, wrt: np.ndarray) -> list:
    """dv/dx_j for every node v and j in ``wrt``: (B, W, *shape) each, B in {1, N}."""
    seed = np.zeros((1, len(wrt), model.D), _dtype(model))
    seed[0, np.arange(len(wrt)), wrt] = 1
    tan = [seed]
    for i in range(1, len(model.nodes)):
        node = model.nodes[i]
        tan.append(node.op.jvp(saved[i], tuple(tan[j] for j in node.inputs)))
    return tan


def _needed(model: Model) -> list[bool]:
    """needed[i]: node i's tangent is read by a second-order rule (not every node's is)."""
    needed = [False] * len(model.nodes)
    for node in model.nodes[1:]:
        if not node.op.linear:
            for j in node.inputs:
                needed[j] = True
    return needed


def _add(acc, v):
    return v if acc is None else acc + v


def reverse_hessian(model: Model, saved, tan: list, outputs: np.ndarray, diagonal: bool = False):
    """(J (B, K', D), H (B, K', W, W) or (B, K', W) when ``diagonal``, or None when H = 0): the reverse
    sweep, each nonlinear node adding its ``hess_term`` with its output's cotangent."""
    nodes = model.nodes
    seed = np.zeros((1, len(outputs), model.K), _dtype(model))
    seed[0, np.arange(len(outputs)), outputs] = 1
    cot, H = [None] * len(nodes), None
    cot[-1] = seed
    for i in range(len(nodes) - 1, 0, -1):
        node, g = nodes[i], cot[i]
        if g is None:
            continue
        cot[i] = tan[i] = None  # free as we go
        if not node.op.linear:
            H = _add(H, node.op.hess_term(saved[i], g, tuple(tan[j] for j in node.inputs), diagonal))
        for j, gj in zip(node.inputs, node.op.vjp(saved[i], g)):
            cot[j] = _add(cot[j], gj)
    return cot[0], H


def iter_hessian(model: Model, X, outputs=None, wrt=None, dtype=np.float64, memory=DEFAULT_MEMORY, rows=None,
                 deterministic=False, diagonal=False) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """Yield (start_row, Y, J, H) over X in blocks; see ``hessian``."""
    m = model.astype(dtype)
    check_second_order(m)
    X = check_X(m, X, dtype)
    outputs, wrt = _select(outputs, m.K, "output"), _select(wrt, m.D, "wrt")
    step = rows or hessian_rows(m, len(outputs), len(wrt), np.dtype(dtype).itemsize, memory, diagonal)
    needed = _needed(m)
    for start, n, Xc in blocks(X, step, deterministic):
        values, saved = run_forward(m, Xc)
        tan = [t if need else None for t, need in zip(tangents(m, saved, wrt), needed)]
        J, H = reverse_hessian(m, saved, tan, outputs, diagonal)
        J = np.broadcast_to(J[:, :, wrt], (len(Xc), len(outputs), len(wrt)))[:n]
        shape = (n, len(outputs), len(wrt)) + (() if diagonal else (len(wrt),))
        if H is None:
            H = np.zeros(shape, dtype)
        else:
            H = np.broadcast_to(H, (len(Xc), *shape[1:]))[:n]
            if not diagonal:
                H = 0.5 * (H + H.transpose(0, 1, 3, 2))  # symmetric analytically; made so exactly
        yield start, values[-1][:n, outputs], J, H


def hessian(model: Model, X, outputs=None, wrt=None, dtype=np.float64, memory=DEFAULT_MEMORY, deterministic=False,
            diagonal=False):
    """Evaluate y = f(x), J = dy/dx and H = d2y/dx2 at every row of X.

    X: (N, D).  Returns Y (N, K'), J (N, K', D') and H (N, K', D', D') with H[n, k, i, j] =
    d2 y_k / dx_i dx_j at x_n, for the selected ``outputs`` (K' of the K) and ``wrt`` (D' of the D
    inputs; J and H are then taken with respect to those only); ``diagonal``: H (N, K', D') holds
    d2 y_k / dx_i^2 only (D' times less output and work).  Exact to rounding (see the module docstring).
    Memory stays within about ``memory`` bytes beyond X, Y, J and H; raises ModelError (before any row
    is computed) if a layer has no second-order rule.
    """
    X = check_X(model, X, dtype)
    k = len(_select(outputs, model.K, "output"))
    d = len(_select(wrt, model.D, "wrt"))
    Y, J = np.empty((len(X), k), dtype), np.empty((len(X), k, d), dtype)
    H = np.empty((len(X), k, d) + (() if diagonal else (d,)), dtype)
    for start, Yc, Jc, Hc in iter_hessian(model, X, outputs, wrt, dtype, memory, deterministic=deterministic,
                                          diagonal=diagonal):
        Y[start : start + len(Yc)], J[start : start + len(Yc)], H[start : start + len(Yc)] = Yc, Jc, Hc
    return Y, J, H
