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

Hessian-vector products H_k u along one direction u (``direction``, ``hvp``) are the reverse sweep
differentiated along u (``reverse_hvp``): one tangent sweep with W = 1 and the K cotangents plus their K
derivatives along u, so about 2 reverse sweeps' cost instead of D tangents and K D^2 per node: the choice
for wide D when H is wanted only along a direction (a step dx, a Newton or curvature probe).  Blocks of rows
run on ``parallel.map_blocks``'s threads, as the Jacobian's do; a row's bits do not depend on their number.

An op with neither ``linear`` nor ``vjp2`` has no second-order rule: ``check_second_order`` refuses the
model with one line naming the layer and the op, before anything is computed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from .engine import SPLIT_MIN_ROWS, _dtype, _select
from .errors import ModelError, UsageError
from .graph import DEFAULT_MEMORY, MAX_BLOCK_ROWS, Model, blocks, check_X, run_forward
from .parallel import map_blocks

# Bytes of one tangent (rows, W, largest nonlinear node) a block: the tangent sweep and the terms make several
# passes over arrays of that size, faster while they stay in cache.  Measured (1 thread, benchmarks/RESULTS.md
# "Hessians"): small (W = 8, 64 units) 1.29x faster at 512 rows than at 2,048; medium (W = 32, 256 units) ~2x at
# 32 than at 167 (its term's (rows, K W, 256) temporary also stays under malloc's 32 MB mmap threshold); wide-out
# and wide-in unchanged (their budget gives fewer rows already).  2 MB was chosen then (Zen 5); on an AMD EPYC
# Zen 4 (1 MB L2, SkylakeX kernels; 1 thread, freed memory kept as the CLI and the benchmark keep it, CPU time per
# call at N = 1,000, a `/tmp` script over TANGENT_CACHE, machine loaded) 512 KB against 2 MB: small 7.4 / 11.1 ms
# (128 / 512 rows), wide-out 129 / 141 ms, wide-in (wrt 32) 175 / 181 ms, medium within the noise (474-628 /
# 519-601 ms in two runs).  Without kept memory small was 7.4 / 15.5 ms (a fresh mmap per large temporary).
TANGENT_CACHE = 2**19


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
    """Rows per block so that the tangents (W per node, and W per nonlinear node for its ``jvp_pre`` part), the
    cotangents (K per node, two live), a term's (K, W, size) temporary, H (K W W, three live) and the largest
    op's own scratch (``Op.hess_scratch``: a recurrent layer keeps W numbers per step and product) fit in
    ``memory`` bytes, and one tangent of the largest nonlinear node in ``TANGENT_CACHE`` bytes."""
    sizes = [math.prod(n.shape) for n in model.nodes]
    pre = sum(math.prod(n.shape) for n in model.nodes[1:] if not n.op.linear)
    h = n_outputs * n_wrt * (1 if diagonal else n_wrt)
    scratch = max((n.op.hess_scratch(n_outputs, n_wrt) for n in model.nodes[1:]), default=0)  # recurrent ops
    per_row = itemsize * (3 * sum(sizes) + n_wrt * (sum(sizes) + pre) + 4 * n_outputs * max(sizes)
                          + 2 * n_outputs * n_wrt * max(sizes) + 3 * h + scratch)
    # the largest nonlinear node: before the first one, tangents are the seed's (one for every row)
    largest = max((math.prod(n.shape) for n in model.nodes[1:] if not n.op.linear), default=1)
    cache = TANGENT_CACHE // (itemsize * n_wrt * largest)  # one tangent (rows, W, largest node) in cache
    return max(1, min(MAX_BLOCK_ROWS, int(memory // per_row), cache))


def tangents(model: Model, saved, wrt: np.ndarray, direction: np.ndarray | None = None) -> list:
    """dv/dx_j for every node v and j in ``wrt``: (B, W, *shape) each, B in {1, N}; with ``direction`` u
    ((W,) or (B, W), over the ``wrt`` inputs) the one tangent dv/de of x + e u instead: (B, 1, *shape)."""
    if direction is None:
        seed = np.zeros((1, len(wrt), model.D), _dtype(model))
        seed[0, np.arange(len(wrt)), wrt] = 1
    else:
        u = np.atleast_2d(direction)
        seed = np.zeros((len(u), 1, model.D), _dtype(model))
        seed[:, 0, wrt] = u
    tan = [seed]
    for i in range(1, len(model.nodes)):
        node = model.nodes[i]
        tan.append(node.op.jvp(saved[i], tuple(tan[j] for j in node.inputs)))
    return tan


def tangents_pre(model: Model, saved, wrt: np.ndarray, needed: list) -> tuple[list, list]:
    """``tangents`` for H (identity seeds), keeping each nonlinear node's ``jvp_pre`` part for its ``hess_term``
    and only the tangents that ``needed`` marks (the others are dropped once their readers have them); a tangent
    that nothing reads (``_wanted``) is not computed."""
    seed = np.zeros((1, len(wrt), model.D), _dtype(model))
    seed[0, np.arange(len(wrt)), wrt] = 1
    tan, pre = [seed], [None]
    last, wanted = _last_reader(model), _wanted(model)
    for i in range(1, len(model.nodes)):
        node = model.nodes[i]
        ins = tuple(tan[j] for j in node.inputs)
        if node.op.linear:
            t, p = (node.op.jvp(saved[i], ins) if wanted[i] else None), None
        else:
            t, p = node.op.jvp_pre(saved[i], ins, tangent=wanted[i])
        tan.append(t)
        pre.append(p)
        for j in node.inputs:
            if last[j] == i and not needed[j]:
                tan[j] = None
    return tan, pre


def _last_reader(model: Model) -> list:
    last = [len(model.nodes)] * len(model.nodes)
    for i, node in enumerate(model.nodes):
        for j in node.inputs:
            last[j] = i
    return last


def _wanted(model: Model) -> list[bool]:
    """wanted[i]: node i's tangent is read, by a nonlinear node (its ``jvp_pre`` part or its rule) or by a linear
    one whose own tangent is wanted; not so, e.g., past the last nonlinear node (nodes are in topological order)."""
    wanted = [False] * len(model.nodes)
    for i in range(len(model.nodes) - 1, 0, -1):
        if wanted[i] or not model.nodes[i].op.linear:
            for j in model.nodes[i].inputs:
                wanted[j] = True
    return wanted


def _needed(model: Model) -> list[bool]:
    """needed[i]: node i's tangent is read by a second-order rule (not every node's is)."""
    needed = [False] * len(model.nodes)
    for node in model.nodes[1:]:
        if not node.op.linear:
            for j in node.inputs:
                needed[j] = True
    return needed


def _add(acc, v):
    return acc if v is None else v if acc is None else acc + v


def reverse_hessian(model: Model, saved, tan: list, outputs: np.ndarray, diagonal: bool = False, pre=None):
    """(J (B, K', D), H (B, K', W, W) or (B, K', W) when ``diagonal``, or None when H = 0): the reverse
    sweep, each nonlinear node adding its ``hess_term`` with its output's cotangent (and its ``pre`` part)."""
    nodes = model.nodes
    cot, H = [None] * len(nodes), None
    cot[-1] = _seed(model, outputs)
    for i in range(len(nodes) - 1, 0, -1):
        node, g = nodes[i], cot[i]
        if g is None:
            continue
        p = None if pre is None else pre[i]
        cot[i] = tan[i] = None  # free as we go
        if pre is not None:
            pre[i] = None
        if not node.op.linear:
            ts = tuple(tan[j] for j in node.inputs)
            H = _add(H, node.op.hess_term(saved[i], g, ts, diagonal) if p is None
                     else node.op.hess_term(saved[i], g, ts, diagonal, pre=p))
        for j, gj in zip(node.inputs, node.op.vjp(saved[i], g)):
            cot[j] = _add(cot[j], gj)
    return cot[0], H


def reverse_hvp(model: Model, saved, tan: list, outputs: np.ndarray):
    """(J (B, K', D), H u (B, K', D) or None when H = 0): the reverse sweep differentiated along the one
    tangent direction u of ``tan`` (forward-over-reverse with W = 1).  Beside each cotangent g_v = dy/dv runs
    its derivative along u, g'_v = d(g_v)/de, pulled back by the same chain rule plus each nonlinear node's
    second-order term:  g'_u = vjp(g'_v) + vjp2(g_v; t_u),  so g'_x = sum_j H_ij u_j at the input."""
    nodes = model.nodes
    cot, dcot = [None] * len(nodes), [None] * len(nodes)
    cot[-1] = _seed(model, outputs)
    for i in range(len(nodes) - 1, 0, -1):
        node, g, dg = nodes[i], cot[i], dcot[i]
        if g is None:
            continue
        cot[i] = dcot[i] = tan[i] = None  # free as we go
        first = node.op.vjp(saved[i], dg) if dg is not None else [None] * len(node.inputs)
        second = ([None] * len(node.inputs) if node.op.linear
                  else [v[:, :, 0] for v in node.op.vjp2(saved[i], g, tuple(tan[j] for j in node.inputs))])
        for j, gj, a, b in zip(node.inputs, node.op.vjp(saved[i], g), first, second):
            cot[j], dcot[j] = _add(cot[j], gj), _add(_add(dcot[j], a), b)
    return cot[0], dcot[0]


def _seed(model: Model, outputs: np.ndarray) -> np.ndarray:
    seed = np.zeros((1, len(outputs), model.K), _dtype(model))
    seed[0, np.arange(len(outputs)), outputs] = 1
    return seed


def check_direction(direction, n_wrt: int, n_rows: int, dtype) -> np.ndarray:
    """The direction u as a finite (W,) or (N, W) array over the ``wrt`` inputs; UsageError otherwise."""
    u = np.asarray(direction, dtype=dtype)
    if u.shape not in ((n_wrt,), (n_rows, n_wrt)):
        raise UsageError(f"direction must have shape ({n_wrt},) or ({n_rows}, {n_wrt}) (the wrt inputs), "
                         f"got {u.shape}")
    if not np.isfinite(u).all():
        raise UsageError("direction: every value must be finite")
    return u


def _block_direction(u, start, n, height):
    """The block's rows of a per-row direction (padded like the block), or the shared one."""
    if u.ndim == 1:
        return u
    part = u[start : start + n]
    return np.concatenate([part, np.broadcast_to(part[-1:], (height - n, u.shape[1]))]) if n < height else part


def iter_hessian(model: Model, X, outputs=None, wrt=None, dtype=np.float64, memory=DEFAULT_MEMORY, rows=None,
                 deterministic=False, diagonal=False, direction=None,
                 threads=None) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """Yield (start_row, Y, J, H) over X in blocks (H u with ``direction``); see ``hessian``."""
    m = model.astype(dtype)
    check_second_order(m)
    X = check_X(m, X, dtype)
    outputs, wrt = _select(outputs, m.K, "output"), _select(wrt, m.D, "wrt")
    u = None if direction is None else check_direction(direction, len(wrt), len(X), dtype)
    if u is not None and diagonal:
        raise UsageError("direction and diagonal exclude each other: H u is a vector per output already")
    narrow = u is not None or diagonal  # H u and diag(H) cost K W (W = 1 for H u) per node, not K W^2
    step = rows or hessian_rows(m, len(outputs) * (2 if u is not None else 1), 1 if u is not None else len(wrt),
                                np.dtype(dtype).itemsize, memory, narrow)
    if rows is None and not deterministic and 2 * SPLIT_MIN_ROWS <= len(X) < 2 * step:
        step = -(-len(X) // 2)  # two halves, for two cores (not from the thread count: the same bits for any)
    needed = _needed(m)
    k, w = len(outputs), len(wrt)
    shape = (k, w) if narrow else (k, w, w)

    def one(block):
        start, n, Xc = block
        values, saved = run_forward(m, Xc)
        ud = None if u is None else _block_direction(u, start, n, len(Xc))
        if u is None:
            tan, pre = tangents_pre(m, saved, wrt, needed)
            J, H = reverse_hessian(m, saved, tan, outputs, diagonal, pre)
        else:
            tan = [t if need else None for t, need in zip(tangents(m, saved, wrt, ud), needed)]
            J, H = reverse_hvp(m, saved, tan, outputs)
            H = None if H is None else H[:, :, wrt]
        J = np.broadcast_to(J[:, :, wrt], (len(Xc), k, w))[:n]
        if H is None:
            H = np.zeros((n, *shape), dtype)
        else:
            H = np.broadcast_to(H, (len(Xc), *shape))[:n]
            if not narrow:
                H = np.add(H, H.transpose(0, 1, 3, 2))  # symmetric analytically; made so exactly
                H *= 0.5
        return start, values[-1][:n, outputs], J, H

    yield from map_blocks(one, blocks(X, step, deterministic), threads)


def hessian(model: Model, X, outputs=None, wrt=None, dtype=np.float64, memory=DEFAULT_MEMORY, deterministic=False,
            diagonal=False, direction=None, threads=None):
    """Evaluate y = f(x), J = dy/dx and H = d2y/dx2 (or H u) at every row of X.

    X: (N, D).  Returns Y (N, K'), J (N, K', D') and H (N, K', D', D') with H[n, k, i, j] =
    d2 y_k / dx_i dx_j at x_n, for the selected ``outputs`` (K' of the K) and ``wrt`` (D' of the D
    inputs; J and H are then taken with respect to those only); ``diagonal``: H (N, K', D') holds
    d2 y_k / dx_i^2 only (D' times less output and work); ``direction`` u ((D',) for every row, or (N, D'),
    over the ``wrt`` inputs): H u (N, K', D'), (H u)[n, k, i] = sum_j d2 y_k / dx_i dx_j u_j, the Hessian-vector
    product, at the cost of one tangent direction instead of D' (``hvp``).  Exact to rounding (see the module
    docstring).  Memory stays within about ``memory`` bytes beyond X, Y, J and H; raises ModelError (before any
    row is computed) if a layer has no second-order rule.  ``threads``: blocks computed at once (default: every
    core this process may use); the result is the same bits for any number of threads.
    """
    X = check_X(model, X, dtype)
    k = len(_select(outputs, model.K, "output"))
    d = len(_select(wrt, model.D, "wrt"))
    Y, J = np.empty((len(X), k), dtype), np.empty((len(X), k, d), dtype)
    H = np.empty((len(X), k, d) + (() if diagonal or direction is not None else (d,)), dtype)
    for start, Yc, Jc, Hc in iter_hessian(model, X, outputs, wrt, dtype, memory, deterministic=deterministic,
                                          diagonal=diagonal, direction=direction, threads=threads):
        Y[start : start + len(Yc)], J[start : start + len(Yc)], H[start : start + len(Yc)] = Yc, Jc, Hc
    return Y, J, H


def hvp(model: Model, X, direction, outputs=None, wrt=None, dtype=np.float64, deterministic=False, threads=None):
    """(Y, J, H u): ``hessian(model, X, ..., direction=direction)``; H u (N, K', D')."""
    return hessian(model, X, outputs, wrt, dtype, deterministic=deterministic, direction=direction, threads=threads)
