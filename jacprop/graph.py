"""The layer graph and its value pass y = f(x).

Node 0 is the flat input row x (D values): the model's inputs, flattened and
concatenated in order.  Each model input is a ``Slice`` of it.  The last node is
the flat output row y (K values): the model's outputs, flattened and concatenated
in order (a ``FlatConcat`` node where needed).

Rows go through in blocks (``blocks``) of at most ``MAX_BLOCK_ROWS`` rows, sized from a
memory budget (``block_rows``); ``run_forward`` is one block's value pass, keeping what
each op's derivative needs, and ``forward`` the whole of X.  Derivatives are the engine's.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np

from . import ops
from .errors import ModelError, UsageError
from .ops import Activation
from .parallel import BLAS_SERIAL_K, BLAS_SERIAL_MNK, map_blocks

DEFAULT_MEMORY = 256 * 2**20  # bytes of per-block state the value pass and the engine aim to stay within
NUMBERED = "numbered by jacprop"  # where input names x0, x1, ... come from (Model.source["input_names_from"])
MIN_BLOCK_ROWS, MAX_BLOCK_ROWS = 256, 2048  # rows per block (``block_rows``; benchmarks/RESULTS.md)
BLOCK_SEED_BYTES = 2**20  # the cost rule's target size of a block's widest seed tensor


@dataclass
class Node:
    """One op application: ``inputs`` are indices of earlier nodes; ``shape`` is per row;
    ``kind`` is the layer class in the source file (e.g. "BatchNormalization")."""

    name: str
    op: ops.Op | None
    inputs: tuple[int, ...] = ()
    shape: tuple[int, ...] = ()
    kind: str = ""


@dataclass
class Model:
    """A network y = f(x) from R^D to R^K, ready for ``jacprop.jacobian``."""

    nodes: list[Node]
    input_names: list[str]
    output_names: list[str]
    source: dict = field(default_factory=dict)
    _cast: dict = field(default_factory=dict, repr=False, compare=False)
    _memo: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def D(self) -> int:
        return self.nodes[0].shape[0]

    @property
    def K(self) -> int:
        return self.nodes[-1].shape[0]

    def astype(self, dtype) -> Model:
        """The same model with float parameters cast to ``dtype`` (cached)."""
        dtype = np.dtype(dtype)
        if dtype not in self._cast:
            nodes = [replace(n, op=n.op.astype(dtype) if n.op else None) for n in self.nodes]
            self._cast[dtype] = replace(self, nodes=nodes, _cast={}, _memo={})
        return self._cast[dtype]

    def memo(self, key, make):
        """make(), computed once per key: what a call derives from the nodes alone (block heights, the
        engine's plans), kept so that a one-row call does not derive it again.  A model is not changed
        after it is built (``astype`` and ``logits`` make new ones)."""
        try:
            return self._memo[key]
        except KeyError:
            if len(self._memo) >= 64:  # many different selections: start again rather than grow
                self._memo.clear()
            value = self._memo[key] = make()
            return value

    def forward(self, X, dtype=np.float64, deterministic=False) -> np.ndarray:
        """y = f(x) for every row of X (N, D); returns (N, K).  ``deterministic``: see ``blocks``."""
        return forward(self, X, dtype=dtype, deterministic=deterministic)

    def n_params(self) -> int:
        """Parameters counted once, however many nodes share them (a shared layer)."""
        seen = {id(a): a.size for n in self.nodes[1:] for a in n.op.arrays().values()}
        return sum(seen.values())

    def logits(self) -> Model:
        """The model with the output layers' final activations removed (y = their pre-activations)."""
        nodes = list(self.nodes)
        out = nodes[-1]
        heads = out.inputs if isinstance(out.op, ops.FlatConcat) else (len(nodes) - 1,)
        for i in heads:
            node = nodes[i]
            if isinstance(node.op, ops.Act):
                nodes[i] = replace(node, op=ops.Identity(), kind=node.kind + " (removed)")
            elif isinstance(node.op, (ops.Dense, ops.Conv)):
                nodes[i] = replace(node, op=replace(node.op, activation=Activation()))
            else:
                raise ModelError(f"--logits: output layer {node.name!r} ({node.kind}) has no activation to remove")
        return replace(self, nodes=nodes, _cast={}, _memo={})


MAX_ROW_SIZE = 2**26  # values per row in any tensor: far beyond real models, and it bounds memory


def _check_shape(shape, what):
    """Refuse shapes that are not positive integers, or absurdly large, before anything is allocated."""
    if not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1 for d in shape):
        raise ValueError(f"{what} has shape {tuple(shape)}; every dimension must be a positive integer")
    if math.prod(shape) > MAX_ROW_SIZE:
        raise ValueError(f"{what} has shape {tuple(shape)}, {math.prod(shape):,} values per row "
                         f"(limit {MAX_ROW_SIZE:,})")


class GraphBuilder:
    """Builds a Model node by node, inferring and checking shapes as it goes.

    >>> b = GraphBuilder([("x", (4,))])
    >>> h = b.add("hidden", ops.Dense(kernel=np.ones((4, 3))), b.inputs, "Dense")
    """

    def __init__(self, inputs: list[tuple[str, tuple]], d: int | None = None):
        """One ``Slice`` node per (name, shape) input; or, with ``d`` and no inputs, only
        the flat input node (for graphs whose slices are stored explicitly)."""
        try:
            for name, shape in inputs:
                _check_shape(tuple(shape), f"input {name!r}")
            d = sum(math.prod(shape) for _, shape in inputs) if d is None else d
            _check_shape((d,), "the model input")
        except ValueError as e:
            raise ModelError(str(e)) from None
        self.nodes = [Node("x", None, (), (d,), "Input")]
        self.inputs, start = [], 0
        for name, shape in inputs:
            size = math.prod(shape)
            self.inputs.append(self.add(name, ops.Slice(start, start + size, tuple(shape)), [0], "InputLayer"))
            start += size
        self.input_names = [  # several inputs: by their names (one per feature: the name alone)
            (name if math.prod(shape) == 1 else f"{name}_{i}") if len(inputs) > 1 else f"x{i}"
            for name, shape in inputs
            for i in range(math.prod(shape))
        ] or [f"x{i}" for i in range(d)]
        self.names_from = "the model's inputs" if len(inputs) > 1 else NUMBERED

    def add(self, name: str, op: ops.Op, inputs, kind: str) -> int:
        shapes = [self.nodes[i].shape for i in inputs]
        if op.n_inputs is not None and len(shapes) != op.n_inputs:
            raise ModelError(f"layer {name!r} ({kind}): expects {op.n_inputs} input(s), got {len(shapes)}")
        if op.n_inputs is None and len(shapes) < 1:
            raise ModelError(f"layer {name!r} ({kind}): has no inputs")
        try:
            shape = tuple(int(d) for d in op.out_shape(*shapes))
            _check_shape(shape, "output")
            op = op.bind(*shapes)
        except ValueError as e:
            raise ModelError(f"layer {name!r} ({kind}): {e}") from None
        self.nodes.append(Node(name, op, tuple(inputs), shape, kind))
        return len(self.nodes) - 1

    def finish(self, outputs: list[int], source=None) -> Model:
        """Close the graph on ``outputs`` (flattened, concatenated) and drop unused nodes."""
        names = []
        for i in outputs:
            node = self.nodes[i]
            size = math.prod(node.shape)
            names += [node.name] if size == 1 else [f"{node.name}[{j}]" for j in range(size)]
        if len(outputs) == 1 and len(self.nodes[outputs[0]].shape) == 1:
            last = outputs[0]
        else:
            last = self.add("output", ops.FlatConcat(), outputs, "Output")
        return Model(prune(self.nodes, last), self.input_names, names,
                     {"input_names_from": self.names_from, **(source or {})})


def prune(nodes: list[Node], last: int) -> list[Node]:
    """Keep node 0 and the nodes ``last`` depends on, ``last`` becoming the final node."""
    keep = {0, last}
    for i in range(last, 0, -1):
        if i in keep:
            keep.update(nodes[i].inputs)
    new_index = {old: new for new, old in enumerate(sorted(keep))}
    return [replace(nodes[i], inputs=tuple(new_index[j] for j in nodes[i].inputs)) for i in sorted(keep)]


def input_names_from(model: Model) -> str:
    """Where the model's input names come from: its file ("the NPZ file"), its named inputs, or
    jacprop (x0, x1, ...; ``NUMBERED``)."""
    source = model.source.get("chain", [model.source])[0] if "chain" in model.source else model.source
    return source.get("input_names_from", NUMBERED)


def chain(models: list[Model]) -> Model:
    """Compose models in order: the output row of each is the input row of the next,
    so J = J_last ... J_first (the chain rule; Bishop Fig. 8.3)."""
    nodes = list(models[0].nodes)
    for prev, m in zip(models, models[1:]):
        if m.D != prev.K:
            raise ModelError(
                f"cannot chain: {prev.source.get('path', 'model')} has {prev.K} outputs "
                f"but {m.source.get('path', 'the next model')} takes {m.D} inputs"
            )
        offset = len(nodes) - 1  # node 0 of m is the last node so far
        nodes += [replace(n, inputs=tuple(j + offset for j in n.inputs)) for n in m.nodes[1:]]
    sources = [m.source for m in models]
    source = {"chain": sources} if len(models) > 1 else sources[0]
    return Model(nodes, models[0].input_names, models[-1].output_names, source)


# ---------------------------------------------------------------------------
# The value pass, in blocks of rows


def block_rows(model: Model, n_seeds: int, itemsize: int, memory: int = DEFAULT_MEMORY) -> int:
    """Rows per block, from a cost rule per model: the block's widest seed tensor (rows x seeds x
    the widest layer a cotangent or tangent passes through, the input and views of it excluded)
    about ``BLOCK_SEED_BYTES``, as a power of two in [MIN_BLOCK_ROWS, MAX_BLOCK_ROWS]; fewer when
    the forward state plus ``n_seeds`` live seed tensors would not fit in ``memory`` / 2 (two blocks
    are computed at once).  It depends on the model, the seeds and the dtype only (not on N nor on
    the threads), so a row's bits do not either.  Measured best heights (benchmarks/RESULTS.md):
    small 1,024, wide-out 128-256, wide-in 256-1,024, medium flat from 64 to 1,024."""
    sizes = [math.prod(n.shape) for n in model.nodes]
    widest = max([s for n, s in zip(model.nodes[1:], sizes[1:]) if not n.op.vjp_is_view] or sizes)
    ideal = BLOCK_SEED_BYTES // (itemsize * max(1, n_seeds) * widest)
    rows = min(MAX_BLOCK_ROWS, max(MIN_BLOCK_ROWS, 1 << max(0, int(ideal).bit_length() - 1)))
    per_row = itemsize * (3 * sum(sizes) + 4 * n_seeds * max(sizes))
    return max(1, min(rows, int(memory // 2 // per_row)))


def serial_blas(model: Model, rows: int, n_seeds: int) -> bool:
    """True when no BLAS product of a block of ``rows`` rows and ``n_seeds`` seeds (forward, vjp, jvp) is large
    enough for BLAS to run it on more than one thread (``parallel.BLAS_SERIAL_MNK``, ``BLAS_SERIAL_K``), from
    each op's ``blas_bound``; False when an op does not say.  Such a block computes the same bits whatever
    BLAS's thread setting, so ``map_blocks`` need not hold it to one thread."""
    p, k = model.memo("blas_bound", lambda: _blas_bound(model))
    return p is not None and rows * max(1, n_seeds) * p < BLAS_SERIAL_MNK and k <= BLAS_SERIAL_K


def _blas_bound(model: Model) -> tuple[int | None, int]:
    bounds = [n.op.blas_bound() for n in model.nodes[1:]]
    if any(b is None for b in bounds):
        return None, 0
    return max((p for p, _ in bounds), default=0), max((k for _, k in bounds), default=0)


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


def check_X(model: Model, X, dtype) -> np.ndarray:
    """X as an (N, D) array of ``dtype`` (one row may be given as a vector)."""
    X = np.asarray(X, dtype=dtype)
    if X.ndim == 1:
        X = X[None]
    if X.ndim != 2 or X.shape[1] != model.D:
        raise UsageError(f"inputs must have shape (N, {model.D}), got {X.shape}")
    return X


def run_forward(model: Model, X: np.ndarray):
    """Values and saved state of every node for a block X (N, D)."""
    values, saved = [X], [None]
    for node in model.nodes[1:]:
        y, s = node.op.forward(*[values[j] for j in node.inputs])
        values.append(y)
        saved.append(s)
    return values, saved


def forward(model: Model, X, dtype=np.float64, memory=DEFAULT_MEMORY, deterministic=False, threads=None) -> np.ndarray:
    """y = f(x) at every row of X (N, D), in blocks on ``threads`` threads (``parallel.map_blocks``);
    returns (N, K).  ``deterministic``: pad the last block (see ``blocks``)."""
    m = model.astype(dtype)
    X = check_X(m, X, dtype)
    step = m.memo(("rows", 0, dtype, memory), lambda: block_rows(m, 0, np.dtype(dtype).itemsize, memory))
    out = np.empty((len(X), m.K), dtype)

    def one(block):
        start, n, Xb = block
        out[start : start + n] = run_forward(m, Xb)[0][-1][:n]

    hold = not serial_blas(m, step if deterministic else min(step, len(X)), 0)
    for _ in map_blocks(one, blocks(X, step, deterministic), threads, hold):
        pass
    return out
