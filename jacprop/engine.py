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

from collections.abc import Iterator

import numpy as np

from .errors import UsageError
from .graph import DEFAULT_MEMORY, Model, block_rows, blocks, check_X, run_forward
from .parallel import map_blocks

MODES = ("auto", "reverse", "forward")
SPLIT_MIN_ROWS = 32  # a non-deterministic call of 64 rows up to two blocks is cut in two halves


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


def reverse(model: Model, saved, outputs: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """dy_k/dx for the selected outputs: (B, len(outputs), D) with B in {1, N}.

    ``out``: a contiguous (N, len(outputs), D) array that the last product writes into when
    its op can (see ``_writer``); the result is then a view of it."""
    nodes = model.nodes
    writer = _writer(model) if out is not None else None
    seed = np.zeros((1, len(outputs), model.K), _dtype(model))
    seed[0, np.arange(len(outputs)), outputs] = 1
    cot = [None] * len(nodes)
    cot[-1] = seed
    for i in range(len(nodes) - 1, 0, -1):
        if cot[i] is None:
            continue
        grads = nodes[i].op.vjp(saved[i], cot[i], out=out if i == writer else None)
        cot[i] = None  # free as we go
        for j, g in zip(nodes[i].inputs, grads):
            cot[j] = g if cot[j] is None else cot[j] + g
    return cot[0]


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


def forward_mode(model: Model, saved, wrt: np.ndarray) -> np.ndarray:
    """dy/dx_i for the selected inputs: (B, len(wrt), K) with B in {1, N}."""
    nodes = model.nodes
    seed = np.zeros((1, len(wrt), model.D), _dtype(model))
    seed[0, np.arange(len(wrt)), wrt] = 1
    tan = [seed]
    for i in range(1, len(nodes)):
        tan.append(nodes[i].op.jvp(saved[i], tuple(tan[j] for j in nodes[i].inputs)))
    return tan[-1]


def _dtype(model: Model):
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
    pick_out = slice(None) if outputs is None else _select(outputs, m.K, "output")  # no copy when all are wanted
    pick_wrt = slice(None) if wrt is None else _select(wrt, m.D, "wrt")
    outputs, wrt = _select(outputs, m.K, "output"), _select(wrt, m.D, "wrt")
    mode = choose_mode(m, len(outputs), len(wrt), mode)
    n_seeds = len(outputs) if mode == "reverse" else len(wrt)
    step = rows or block_rows(m, n_seeds, np.dtype(dtype).itemsize, memory)
    if rows is None and not deterministic and 2 * SPLIT_MIN_ROWS <= len(X) < 2 * step:
        step = -(-len(X) // 2)  # two halves, for two cores (not from the thread count: the same bits for any)

    def one(block):
        start, n, Xc = block
        values, saved = run_forward(m, Xc)
        if mode == "reverse":
            direct = out is not None and n == len(Xc) and isinstance(pick_wrt, slice)
            J = reverse(m, saved, outputs, out[start : start + n] if direct else None)[:, :, pick_wrt]
        else:
            J = forward_mode(m, saved, wrt)[:, :, pick_out].transpose(0, 2, 1)
        if len(J) != len(Xc):  # the same for every row (a linear model)
            J = np.broadcast_to(J, (len(Xc), *J.shape[1:]))
        return start, values[-1][:n, pick_out], J[:n]

    yield from map_blocks(one, blocks(X, step, deterministic), threads)


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
    X = check_X(model, X, dtype)
    k = len(_select(outputs, model.K, "output"))
    d = len(_select(wrt, model.D, "wrt"))
    Y, J = np.empty((len(X), k), dtype), np.empty((len(X), k, d), dtype)
    for start, Yc, Jc in iter_jacobian(model, X, mode, outputs, wrt, dtype, memory, deterministic=deterministic, out=J,
                                     threads=threads):
        Y[start : start + len(Yc)] = Yc
        dest = J[start : start + len(Jc)]
        if not (Jc.ctypes.data == dest.ctypes.data and Jc.strides == dest.strides):  # not computed in place
            dest[...] = Jc
    return Y, J

