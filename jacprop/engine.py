"""Batched Jacobians J[n, k, i] = dy_k/dx_i of a Model at every row x_n.

Reverse mode is Bishop's backward recursion (Deep Learning, 8.1.5) for all rows of a
chunk and all requested outputs at once: seed the output node with the identity
(dy_k/dy_l = delta_kl), then walk the nodes backwards, each op's vjp turning the
cotangent dy/d(out) into dy/d(in), accumulating (+=) where a node feeds several
others.  Forward mode pushes the identity tangent dx/dx forward instead.  Reverse
costs ~K passes' worth of products, forward ~D; ``mode="auto"`` takes the cheaper.

Seeds carry a leading batch axis of 1 (they are the same for every row), so the
first products after a seed are done once per block, not per row.  Rows go through
in blocks sized from a memory budget (``graph.blocks``); there is no Python loop over rows.
The value pass y = f(x) itself is ``graph.forward``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .errors import UsageError
from .graph import DEFAULT_MEMORY, Model, block_rows, blocks, check_X, run_forward, serial_blas
from .parallel import map_blocks

MODES = ("auto", "reverse", "forward")
SPLIT_MIN_ROWS = 32  # hessian: a non-deterministic call of 64 rows up to two blocks is cut in two halves
SPLIT_HALF_ROWS, SPLIT_MIN_WORK = 32, 2**21  # jacobian: halves of at least this many rows and multiply-adds (Plan.work)


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse (process-wide); False where that is
    not glibc.

    Every block of rows allocates the same temporaries as the block before (up to several
    MB each).  With glibc's defaults, large ones are mmapped afresh or the heap is trimmed
    when they are freed, so each block pays its page faults again: measured over the four
    benchmark shapes, 340,000 faults instead of 20,000, and medium a third slower
    (benchmarks/RESULTS.md).
    Freed memory then stays with the process, up to about ``2 * DEFAULT_MEMORY``.  The CLI
    calls this; a program that runs many Jacobians may.
    """
    import ctypes

    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, 32 * 2**20) & libc.mallopt(M_TRIM_THRESHOLD, 2 * DEFAULT_MEMORY))
    except (OSError, AttributeError):  # not glibc (macOS, musl without mallopt, Windows)
        return False


def _select(index, n, what) -> np.ndarray:
    if index is None:
        return np.arange(n)
    index = np.asarray(index, dtype=np.int64).reshape(-1)
    if index.size == 0 or index.min() < -n or index.max() >= n:
        raise UsageError(f"{what} indices must lie in [0, {n}), got {index.tolist()}")
    return index % n


def reverse(model: Model, saved, outputs: np.ndarray, out: np.ndarray | None = None, seed=None) -> np.ndarray:
    """dy_k/dx for the selected outputs: (B, len(outputs), D) with B in {1, N}.

    ``out``: a contiguous (N, len(outputs), D) array that the last product writes into when
    its op can (see ``_writer``); the result is then a view of it.  ``seed``: the plan's (``_seed``)."""
    nodes = model.nodes
    writer = model.memo("writer", lambda: _writer(model)) if out is not None else None
    cot = [None] * len(nodes)
    cot[-1] = _seed(model, outputs, model.K) if seed is None else seed
    for i in range(len(nodes) - 1, 0, -1):
        if cot[i] is None:
            continue
        grads = nodes[i].op.vjp(saved[i], cot[i], out=out if i == writer else None)
        cot[i] = None  # free as we go
        for j, g in zip(nodes[i].inputs, grads):
            cot[j] = g if cot[j] is None else cot[j] + g
    return cot[0]


def _seed(model: Model, picked: np.ndarray, size: int) -> np.ndarray:
    """The identity seed (1, len(picked), size): dy_k/dy_l = delta_kl, read-only (plans share it)."""
    seed = np.zeros((1, len(picked), size), _dtype(model))
    seed[0, np.arange(len(picked)), picked] = 1
    seed.flags.writeable = False
    return seed


def _writer(model: Model) -> int | None:
    """The node whose vjp result becomes dy/dx unchanged: from node 0, follow its only reader
    while that reader's vjp merely views its cotangent (``Op.vjp_is_view``); None if x is read twice."""
    nodes, j = model.nodes, 0
    while True:
        readers = [i for i, n in enumerate(nodes) if j in n.inputs]
        if len(readers) != 1 or nodes[readers[0]].inputs != (j,):
            return None
        if not nodes[readers[0]].op.vjp_is_view:
            return readers[0]
        j = readers[0]


def forward_mode(model: Model, saved, wrt: np.ndarray, seed=None) -> np.ndarray:
    """dy/dx_i for the selected inputs: (B, len(wrt), K) with B in {1, N}."""
    nodes = model.nodes
    tan = [_seed(model, wrt, model.D) if seed is None else seed]
    for i in range(1, len(nodes)):
        tan.append(nodes[i].op.jvp(saved[i], tuple(tan[j] for j in nodes[i].inputs)))
    return tan[-1]


def _dtype(model: Model):
    return model.memo("dtype", lambda: _first_float(model))


def _first_float(model: Model):
    for n in model.nodes[1:]:
        for a in n.op.arrays().values():
            if a.dtype.kind == "f":
                return a.dtype
    return np.dtype(np.float64)


def choose_mode(model: Model, n_outputs: int, n_wrt: int, mode: str = "auto") -> str:
    """reverse when it pushes fewer seed vectors (n_outputs <= n_wrt), else forward."""
    if mode not in MODES:
        raise UsageError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode != "auto":
        return mode
    return "reverse" if n_outputs <= n_wrt else "forward"


@dataclass(frozen=True)
class Plan:
    """What a call computes, fixed by the (cast) model, the mode asked for and the selections: built once
    and kept on the model (``Model.memo``), so that a one-row call does not select, seed or size again."""

    mode: str
    outputs: np.ndarray  # indices into the K outputs (all by default)
    wrt: np.ndarray
    pick_out: slice | np.ndarray  # what Y and J keep: slice(None), no copy, when all are wanted
    pick_wrt: slice | np.ndarray
    seed: np.ndarray  # (1, S, K) in reverse mode, (1, S, D) forward; read-only
    work: int  # about the multiply-adds per row: S (parameters + values of every node)

    @property
    def n_seeds(self) -> int:
        return self.seed.shape[1]


def _key(index):
    return None if index is None else tuple(np.asarray(index).reshape(-1).tolist())


def plan(model: Model, mode="auto", outputs=None, wrt=None) -> Plan:
    """The Plan for ``model`` (already cast to the call's dtype); raises UsageError on a bad mode or index."""
    return model.memo(("plan", str(mode), _key(outputs), _key(wrt)), lambda: _make_plan(model, mode, outputs, wrt))


def _make_plan(m: Model, mode, outputs, wrt) -> Plan:
    pick_out = slice(None) if outputs is None else _select(outputs, m.K, "output")
    pick_wrt = slice(None) if wrt is None else _select(wrt, m.D, "wrt")
    outputs, wrt = _select(outputs, m.K, "output"), _select(wrt, m.D, "wrt")
    mode = choose_mode(m, len(outputs), len(wrt), mode)
    seed = _seed(m, outputs, m.K) if mode == "reverse" else _seed(m, wrt, m.D)
    per_seed = sum(math.prod(n.shape) + (n.op.n_params() if n.op else 0) for n in m.nodes)
    return Plan(mode, outputs, wrt, pick_out, pick_wrt, seed, max(1, seed.shape[1]) * per_seed)


def _steps(m: Model, p: Plan, n_rows: int, dtype, memory, rows, deterministic) -> tuple[int, bool]:
    """(rows per block, whether BLAS must be held to one thread for them).  A non-deterministic call of up to
    two blocks is cut in two halves, for two cores, when a half is worth a thread: smaller halves cost more
    CPU time than they save in wall time (``SPLIT_HALF_ROWS``, ``SPLIT_MIN_WORK``; benchmarks/RESULTS.md).
    Not from the thread count, so the same bits for any."""
    step = rows or m.memo(("rows", p.n_seeds, dtype, memory),
                          lambda: block_rows(m, p.n_seeds, np.dtype(dtype).itemsize, memory))
    if rows is None and not deterministic and 2 * SPLIT_HALF_ROWS <= n_rows < 2 * step \
            and n_rows // 2 * p.work >= SPLIT_MIN_WORK:
        step = -(-n_rows // 2)
    return step, not serial_blas(m, step if deterministic else min(step, n_rows), p.n_seeds)


def _jacobian_blocks(m: Model, p: Plan, X, step, hold, deterministic, out, threads):
    """(start, Y, J, whether J was computed straight into ``out``) per block, on ``map_blocks``."""
    reverse_mode, whole = p.mode == "reverse", isinstance(p.pick_wrt, slice)

    def one(block):
        start, n, Xc = block
        values, saved = run_forward(m, Xc)
        target = out[start : start + n] if out is not None and n == len(Xc) and whole and reverse_mode else None
        if reverse_mode:
            J = reverse(m, saved, p.outputs, target, p.seed)[:, :, p.pick_wrt]
        else:
            J = forward_mode(m, saved, p.wrt, p.seed)[:, :, p.pick_out].transpose(0, 2, 1)
        if len(J) != len(Xc):  # the same for every row (a linear model)
            J = np.broadcast_to(J, (len(Xc), *J.shape[1:]))
        in_place = target is not None and np.shares_memory(J, target)  # an op wrote J into out (``_writer``)
        return start, values[-1][:n, p.pick_out], J[:n], in_place

    return map_blocks(one, blocks(X, step, deterministic), threads, hold)


def iter_jacobian(
    model: Model, X, mode="auto", outputs=None, wrt=None, dtype=np.float64, memory=DEFAULT_MEMORY, rows=None,
    deterministic=False, out=None, threads=None,
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Yield (start_row, Y_chunk, J_chunk) over X in chunks; see ``jacobian``.  The chunks are
    views of the engine's buffers, not copies: treat them as read-only; not always contiguous.  ``out``: an
    (N, K', D') array that J chunks are computed straight into where the model allows (the
    yielded chunk is then that view of ``out``).  ``threads``: blocks computed at once (default: the
    cores this process may use, ``parallel.workers``); the result does not depend on it."""
    m = model.astype(dtype)
    X = check_X(m, X, dtype)
    p = plan(m, mode, outputs, wrt)
    step, hold = _steps(m, p, len(X), dtype, memory, rows, deterministic)
    for start, Y, J, _ in _jacobian_blocks(m, p, X, step, hold, deterministic, out, threads):
        yield start, Y, J


def jacobian(model: Model, X, mode="auto", outputs=None, wrt=None, dtype=np.float64, memory=DEFAULT_MEMORY,
             deterministic=False, threads=None):
    """Evaluate y = f(x) and J = dy/dx at every row of X.

    X: (N, D) array.  Returns Y (N, K') and J (N, K', D') with J[n, k, i] = dy_k/dx_i at
    x_n, where K' and D' are the selected ``outputs`` (indices into the K outputs) and
    ``wrt`` (indices into the D inputs), all of them by default.  ``mode`` is
    "reverse" (cost ~ K' seeds), "forward" (~ D' seeds) or "auto" (the cheaper).
    ``dtype`` float64 (default) or float32.  Memory stays within about ``memory`` bytes
    beyond X, Y and J themselves.  ``deterministic``: compute every row in a block of the
    same height (padding the last one), so that a row's bits do not depend on N or on the
    other rows; the CLI always does this; it costs a whole block (``graph.block_rows``) when N is small.
    ``threads``: blocks computed at once (default: every core this process may use); the result is
    the same bits for any number of threads.
    """
    m = model.astype(dtype)
    X = check_X(m, X, dtype)
    p = plan(m, mode, outputs, wrt)
    step, hold = _steps(m, p, len(X), dtype, memory, None, deterministic)
    Y, J = np.empty((len(X), len(p.outputs)), dtype), np.empty((len(X), len(p.outputs), len(p.wrt)), dtype)
    for start, Yc, Jc, in_place in _jacobian_blocks(m, p, X, step, hold, deterministic, J, threads):
        Y[start : start + len(Yc)] = Yc
        if not in_place:
            J[start : start + len(Jc)] = Jc
    return Y, J
