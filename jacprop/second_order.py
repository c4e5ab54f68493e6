"""Batched per-row Hessians H[n, k, i, j] = d2y_k / dx_i dx_j of a Model, by forward-over-reverse.

A forward tangent pass first pushes the W unit directions e_j (j in ``wrt``) through the graph: every
node v gets its tangents dv/dx_j (B, W, *shape).  The reverse sweep then carries, beside each node's
cotangent g = dy/dv (B, K, *shape) of the Jacobian's backward recursion, its derivative
gdot = d(dy/dv)/dx_j (B, K, W, *shape).  Differentiating the op rule g_in = vjp(saved, g) once more:

    gdot_in = vjp(saved, gdot)  +  vjp2(saved, g, tangents of the op's inputs)

the first term because the vjp is linear in g, the second (the op's second-order rule, zero for ops
declared ``linear``) because the op's local Jacobian depends on its inputs.  At node 0 (the input row)
g = J and gdot = dJ/dx_j, i.e. H[n, k, j, i].  The cost is about W times that of the K-seed Jacobian;
memory per row is about (K W + W) times the largest node, so rows go through in blocks sized from the
same budget as J (``block_rows``): memory is flat in N.

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
        op = node.op
        activation = getattr(op, "activation", None)
        if activation is not None and not activation.has_second_order:
            raise ModelError(f"hessian: layer {node.name!r} ({node.kind}): activation {activation.name!r} "
                             "has no second-order rule")
        if not op.linear and op.vjp2 is None:
            raise ModelError(f"hessian: layer {node.name!r} ({node.kind}): op {type(op).__name__} has no "
                             "second-order rule")


def hessian_rows(model: Model, n_outputs: int, n_wrt: int, itemsize: int, memory: int = DEFAULT_MEMORY) -> int:
    """Rows per block so that the tangents (W per node), the cotangents (K per node, two live) and their
    derivatives (K W, two live, plus a rule's temporaries) fit in ``memory`` bytes."""
    sizes = [math.prod(n.shape) for n in model.nodes]
    per_row = itemsize * (3 * sum(sizes) + n_wrt * sum(sizes) + 4 * n_outputs * max(sizes)
                          + 6 * n_outputs * n_wrt * max(sizes) + n_outputs * n_wrt * model.D)
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


def reverse2(model: Model, saved, tan: list, outputs: np.ndarray):
    """(J (B, K', D), dJ (B, K', W, D) or None when H = 0): the reverse sweep with derivatives."""
    nodes = model.nodes
    seed = np.zeros((1, len(outputs), model.K), _dtype(model))
    seed[0, np.arange(len(outputs)), outputs] = 1
    cot, dcot = [None] * len(nodes), [None] * len(nodes)
    cot[-1] = seed
    for i in range(len(nodes) - 1, 0, -1):
        node, g, gd = nodes[i], cot[i], dcot[i]
        if g is None:
            continue
        cot[i] = dcot[i] = tan[i] = None  # free as we go
        grads = node.op.vjp(saved[i], g)
        dgrads = [None] * len(node.inputs)
        if gd is not None:
            b, k, w = gd.shape[:3]
            merged = node.op.vjp(saved[i], gd.reshape(b, k * w, *gd.shape[3:]))
            dgrads = [m.reshape(m.shape[0], k, w, *m.shape[2:]) for m in merged]
        if not node.op.linear:
            extra = node.op.vjp2(saved[i], g, tuple(tan[j] for j in node.inputs))
            dgrads = [_add(d, e) for d, e in zip(dgrads, extra)]
        for j, gj, dj in zip(node.inputs, grads, dgrads):
            cot[j] = _add(cot[j], gj)
            if dj is not None:
                dcot[j] = _add(dcot[j], dj)
    return cot[0], dcot[0]


def iter_hessian(model: Model, X, outputs=None, wrt=None, dtype=np.float64, memory=DEFAULT_MEMORY, rows=None,
                 deterministic=False, diagonal=False) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """Yield (start_row, Y, J, H) over X in blocks; see ``hessian``."""
    m = model.astype(dtype)
    check_second_order(m)
    X = check_X(m, X, dtype)
    outputs, wrt = _select(outputs, m.K, "output"), _select(wrt, m.D, "wrt")
    step = rows or hessian_rows(m, len(outputs), len(wrt), np.dtype(dtype).itemsize, memory)
    needed = _needed(m)
    for start, n, Xc in blocks(X, step, deterministic):
        values, saved = run_forward(m, Xc)
        tan = tangents(m, saved, wrt)
        tan = [t if need else None for t, need in zip(tan, needed)]
        J, dJ = reverse2(m, saved, tan, outputs)
        J = np.broadcast_to(J[:, :, wrt], (len(Xc), len(outputs), len(wrt)))[:n]
        shape = (n, len(outputs), len(wrt)) + (() if diagonal else (len(wrt),))
        if dJ is None:
            H = np.zeros(shape, dtype)
        elif diagonal:
            H = np.broadcast_to(dJ[:, :, np.arange(len(wrt)), wrt], (len(Xc), *shape[1:]))[:n]
        else:
            H = np.broadcast_to(dJ[:, :, :, wrt], (len(Xc), *shape[1:]))[:n]
            H = 0.5 * (H + H.transpose(0, 1, 3, 2))  # exact up to rounding; made exactly symmetric
        yield start, values[-1][:n, outputs], J, H


def hessian(model: Model, X, outputs=None, wrt=None, dtype=np.float64, memory=DEFAULT_MEMORY, deterministic=False,
            diagonal=False):
    """Evaluate y = f(x), J = dy/dx and H = d2y/dx2 at every row of X.

    X: (N, D).  Returns Y (N, K'), J (N, K', D') and H (N, K', D', D') with H[n, k, i, j] =
    d2 y_k / dx_i dx_j at x_n, for the selected ``outputs`` (K' of the K) and ``wrt`` (D' of the D
    inputs; J and H are then taken with respect to those only); ``diagonal``: H (N, K', D') holds
    d2 y_k / dx_i^2 only (the same cost, D' times less output).  Forward-over-reverse, exact to rounding.
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
