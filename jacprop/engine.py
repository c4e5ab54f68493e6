"""Batched Jacobians J[n, k, i] = dy_k/dx_i of a Model at every row x_n.

Reverse mode is Bishop's backward recursion (Deep Learning, 8.1.5) for all rows of a
chunk and all requested outputs at once: seed the output node with the identity
(dy_k/dy_l = delta_kl), then walk the nodes backwards, each op's vjp turning the
cotangent dy/d(out) into dy/d(in), accumulating (+=) where a node feeds several
others.  Forward mode pushes the identity tangent dx/dx forward instead.  Reverse
costs ~K passes' worth of products, forward ~D; ``mode="auto"`` takes the cheaper.

Seeds carry a leading batch axis of 1 (they are the same for every row), so the
first products after a seed are done once per chunk, not per row.  Rows go through
in chunks sized from a memory budget; there is no Python loop over rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from .errors import UsageError
from .graph import Model

DEFAULT_MEMORY = 256 * 2**20
CHUNK_ROWS = 512  # at most: small chunks stay in cache, large ones spill (see benchmarks/RESULTS.md)
MODES = ("auto", "reverse", "forward")


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


def run_forward(model: Model, X: np.ndarray):
    """Values and saved state of every node for a chunk X (N, D)."""
    values, saved = [X], [None]
    for node in model.nodes[1:]:
        y, s = node.op.forward(*[values[j] for j in node.inputs])
        values.append(y)
        saved.append(s)
    return values, saved


def reverse(model: Model, saved, outputs: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """dy_k/dx for the selected outputs: (B, len(outputs), D) with B in {1, N}.

    ``out``: a contiguous (N, len(outputs), D) array that the last product writes into when
    the model allows (see ``_input_dense``); the result is then a view of it."""
    nodes = model.nodes
    writer = _input_dense(model) if out is not None else None
    seed = np.zeros((1, len(outputs), model.K), _dtype(model))
    seed[0, np.arange(len(outputs)), outputs] = 1
    cot = [None] * len(nodes)
    cot[-1] = seed
    for i in range(len(nodes) - 1, 0, -1):
        if cot[i] is None:
            continue
        grads = nodes[i].op.vjp(saved[i], cot[i], out=out) if i == writer else nodes[i].op.vjp(saved[i], cot[i])
        cot[i] = None  # free as we go
        for j, g in zip(nodes[i].inputs, grads):
            cot[j] = g if cot[j] is None else cot[j] + g
    return cot[0]


def _input_dense(model: Model) -> int | None:
    """The node whose vjp gives dy/dx itself, if any: a Dense that alone reads the whole input
    row (through the Slice of node 1, the only reader of node 0)."""
    from .ops import Dense, Slice

    nodes = model.nodes
    readers = [i for i, n in enumerate(nodes) if 1 in n.inputs]
    if len(nodes) < 3 or not isinstance(nodes[1].op, Slice) or tuple(nodes[1].op.shape) != (model.D,):
        return None
    if any(0 in n.inputs for n in nodes[2:]) or len(readers) != 1 or not isinstance(nodes[readers[0]].op, Dense):
        return None
    return readers[0] if tuple(nodes[readers[0]].inputs) == (1,) else None


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


def chunk_rows(model: Model, n_seeds: int, itemsize: int, memory: int = DEFAULT_MEMORY) -> int:
    """Rows per chunk so that forward state plus live seed tensors fit in ``memory`` bytes;
    at most ``CHUNK_ROWS``, as cache-sized chunks are faster than large ones."""
    sizes = [math.prod(n.shape) for n in model.nodes]
    per_row = itemsize * (3 * sum(sizes) + 4 * n_seeds * max(sizes))
    return max(1, min(CHUNK_ROWS, int(memory // per_row)))


def blocks(X: np.ndarray, step: int, pad: bool = True) -> Iterator[tuple[int, int, np.ndarray]]:
    """(start, rows, block) over X in blocks of ``step`` rows.  With ``pad`` the last one is
    padded with copies of its last row to the same height: BLAS may round a row differently
    in a product of another height, so with one height for every block a row's result does
    not depend on how the rows were chunked before they got here (nor on N)."""
    for start in range(0, len(X), step):
        block = X[start : start + step]
        n = len(block)
        if pad and n < step:
            block = np.concatenate([block, np.broadcast_to(block[-1:], (step - n, X.shape[1]))])
        yield start, n, block


def _check_X(model: Model, X, dtype) -> np.ndarray:
    X = np.asarray(X, dtype=dtype)
    if X.ndim == 1:
        X = X[None]
    if X.ndim != 2 or X.shape[1] != model.D:
        raise UsageError(f"inputs must have shape (N, {model.D}), got {X.shape}")
    return X


def iter_jacobian(
    model: Model, X, mode="auto", outputs=None, wrt=None, dtype=np.float64, memory=DEFAULT_MEMORY, rows=None,
    deterministic=False, out=None,
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Yield (start_row, Y_chunk, J_chunk) over X in chunks; see ``jacobian``.  The chunks are
    views of the engine's buffers, not copies: treat them as read-only; not always contiguous.  ``out``: an
    (N, K', D') array that J chunks are computed straight into where the model allows (the
    yielded chunk is then that view of ``out``)."""
    m = model.astype(dtype)
    X = _check_X(m, X, dtype)
    pick_out = slice(None) if outputs is None else _select(outputs, m.K, "output")  # no copy when all are wanted
    pick_wrt = slice(None) if wrt is None else _select(wrt, m.D, "wrt")
    outputs, wrt = _select(outputs, m.K, "output"), _select(wrt, m.D, "wrt")
    mode = choose_mode(m, len(outputs), len(wrt), mode)
    n_seeds = len(outputs) if mode == "reverse" else len(wrt)
    step = rows or chunk_rows(m, n_seeds, np.dtype(dtype).itemsize, memory)
    for start, n, Xc in blocks(X, step, deterministic):
        values, saved = run_forward(m, Xc)
        if mode == "reverse":
            direct = out is not None and n == len(Xc) and isinstance(pick_wrt, slice)
            J = reverse(m, saved, outputs, out[start : start + n] if direct else None)[:, :, pick_wrt]
        else:
            J = forward_mode(m, saved, wrt)[:, :, pick_out].transpose(0, 2, 1)
        if len(J) != len(Xc):  # the same for every row (a linear model)
            J = np.broadcast_to(J, (len(Xc), *J.shape[1:]))
        yield start, values[-1][:n, pick_out], J[:n]


def jacobian(model: Model, X, mode="auto", outputs=None, wrt=None, dtype=np.float64, memory=DEFAULT_MEMORY,
             deterministic=False):
    """Evaluate y = f(x) and J = dy/dx at every row of X.

    X: (N, D) array.  Returns Y (N, K') and J (N, K', D') with J[n, k, i] = dy_k/dx_i at
    x_n, where K' and D' are the selected ``outputs`` (indices into the K outputs) and
    ``wrt`` (indices into the D inputs), all of them by default.  ``mode`` is
    "reverse" (cost ~ K' seeds), "forward" (~ D' seeds) or "auto" (the cheaper).
    ``dtype`` float64 (default) or float32.  Memory stays within about ``memory`` bytes
    beyond X, Y and J themselves.  ``deterministic``: compute every row in a block of the
    same height (padding the last one), so that a row's bits do not depend on N or on the
    other rows; the CLI always does this; it costs a whole block (up to 512 rows) when N is small.
    """
    X = _check_X(model, X, dtype)
    k = len(_select(outputs, model.K, "output"))
    d = len(_select(wrt, model.D, "wrt"))
    Y, J = np.empty((len(X), k), dtype), np.empty((len(X), k, d), dtype)
    for start, Yc, Jc in iter_jacobian(model, X, mode, outputs, wrt, dtype, memory, deterministic=deterministic, out=J):
        Y[start : start + len(Yc)] = Yc
        dest = J[start : start + len(Jc)]
        if not (Jc.ctypes.data == dest.ctypes.data and Jc.strides == dest.strides):  # not computed in place
            dest[...] = Jc
    return Y, J


def forward(model: Model, X, dtype=np.float64, memory=DEFAULT_MEMORY, deterministic=False) -> np.ndarray:
    """y = f(x) at every row of X (N, D), in chunks; returns (N, K).  ``deterministic``: see ``jacobian``."""
    m = model.astype(dtype)
    X = _check_X(m, X, dtype)
    step = chunk_rows(m, 0, np.dtype(dtype).itemsize, memory)
    out = np.empty((len(X), m.K), dtype)
    for start, n, block in blocks(X, step, deterministic):
        out[start : start + n] = run_forward(m, block)[0][-1][:n]
    return out
