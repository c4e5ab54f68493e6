"""The op table's base: what every op is, its registry and its (de)serialisation.

Every op is a dataclass with

- ``out_shape(*in_shapes)``: the per-row output shape (raises ``ValueError`` on a mismatch);
  a pure query, it changes nothing;
- ``bind(*in_shapes) -> Op``: a copy fixed to those input shapes (``in_shapes``), with every
  quantity derived from them resolved in fields or computed from ``in_shapes`` on demand, so
  ``dataclasses.replace`` keeps a bound op right and a shared layer is bound once per call;
- ``forward(*xs) -> (y, saved)``: xs batched over rows, each (N, *in_shape);
- ``vjp(saved, g, out=None) -> cotangents``: g of shape (B, K, *out_shape), one cotangent per
  input of shape (B', K, *in_shape), i.e. g @ J for a batch of K row vectors g.  ``out``: an
  array of the (single) cotangent's shape that the op may write it into (the engine passes the
  caller's J); an op that does not use it returns a new array, and the caller copies;
- ``jvp(saved, ts) -> t``: ts of shape (B, D, *in_shape), the tangent J @ t;
- ``vjp_is_view``: True when the vjp returns a view of g (no arithmetic), so a caller's ``out``
  can be handed on to the op before it;
- ``blas_bound() -> (p, k) | None``: for R rows and S seeds, every BLAS product that forward, vjp and jvp
  make has m k n <= R S p and an inner length <= k (the engine leaves BLAS's thread setting alone for a block
  whose products are too small for BLAS to thread, ``graph.serial_blas``); None where the op does not say,
  (0, 0) for an op that makes none (``blas_free``).

Second order (Hessians, ``jacprop.second_order``): ``vjp2(saved, g, ts) -> one array per input``,
of shape (B, K, D, *in_shape): the derivative of ``vjp(saved, g)`` with respect to the op's inputs in
each of the D tangent directions ts (one (B, D, *in_shape) per input), g held fixed; i.e.
sum_o g_o d2y_o / dx dx' t.  An op whose vjp does not depend on its inputs (a linear map, or a
piecewise-linear one such as max pooling, where it is locally constant) says so once with
``linear = True`` (a class attribute, or a property where it depends on the op's parameters) and
needs no ``vjp2``.  An op with neither has no second-order rule, and ``hessian`` refuses it.
``hess_term(saved, g, ts, diagonal)`` is what the Hessian engine calls: the op's whole contribution
sum_o g_o t^T (d2 y_o / dx dx') t', (B, K, D, D), i.e. ``vjp2`` contracted with the tangents once more
(``contract``); Dense and Conv compute it from the pre-activation tangents instead, where it is cheaper.
``jvp_pre(saved, ts, tangent=True) -> (jvp, pre)``: the tangent and a part of its computation that ``hess_term``
may take back as ``pre=`` (Dense and Conv: the pre-activation tangent, so it is not computed twice); by default
(jvp, None), and the engine then calls ``hess_term`` without ``pre``, so an op defining neither is unchanged.
With ``tangent=False`` (no later node reads the op's tangent) the jvp is not computed and None takes its place.

B is N or 1: a leading 1 marks a tensor that is the same for every row (the seed of
either mode, and what linear ops make of it), so the first products are done once,
not N times; numpy broadcasting does the rest.  Shapes never include the batch axis;
axes stored in ops are negative (counted from the last axis), so the same code serves
(N, *shape), (B, K, *shape) and (B, D, *shape).

Linear ops (``Linear`` subclasses) define ``apply`` (the map without its constant
part) and ``transpose``; their vjp and jvp follow.  Parameters are numpy arrays;
``astype`` casts them for a float32 or float64 run.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field

import numpy as np

from .activations import Activation
from .contract import contract  # noqa: F401  (ops import it from here)

OPS: dict[str, type] = {}


def register(cls):
    OPS[cls.__name__] = cls
    return cls


def dot_last(x: np.ndarray, w: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """x @ w over x's last axis, done as one large 2-D matrix product (into ``out``, a
    contiguous array of the result's shape, when given)."""
    lead = x.shape[:-1]
    flat = None if out is None else out.reshape(-1, w.shape[1])
    return np.matmul(np.ascontiguousarray(x).reshape(-1, x.shape[-1]), w, out=flat).reshape(*lead, w.shape[1])


@dataclass
class Op:
    """Base class; see the module docstring."""

    in_shapes: tuple = field(default=(), kw_only=True, repr=False, compare=False)
    n_inputs = 1  # None = any number >= 2
    vjp_is_view = False
    blas_free = False  # True: forward, vjp and jvp make no BLAS product (``blas_bound``)
    linear = False  # True: vjp independent of the inputs, no second-order term (see the module docstring)
    vjp2 = None  # the second-order rule, where the op has one

    def out_shape(self, *shapes):
        return shapes[0]

    def bind(self, *shapes) -> Op:
        return dataclasses.replace(self, in_shapes=tuple(tuple(int(d) for d in s) for s in shapes))

    def blas_bound(self) -> tuple[int, int] | None:
        """(p, k) as the module docstring says; None: not known (BLAS is then held to one thread)."""
        return (0, 0) if self.blas_free else None

    def arrays(self) -> dict:
        """The op's parameter arrays by field name."""
        return {f.name: v for f in dataclasses.fields(self) if isinstance(v := getattr(self, f.name), np.ndarray)}

    def astype(self, dtype):
        new = copy.copy(self)
        for name, value in self.arrays().items():
            if value.dtype.kind == "f":
                setattr(new, name, value.astype(dtype))
        return new

    def jvp_pre(self, saved, ts, tangent=True):
        """(jvp(saved, ts), what ``hess_term`` may reuse as ``pre=``, or None): see the module docstring.
        ``tangent=False``: nothing reads the jvp, only the part is wanted (None in its place)."""
        return (self.jvp(saved, ts) if tangent else None), None

    def hess_term(self, saved, g, ts, diagonal=False):
        """sum_o g_o t^T (d2 y_o / dx dx') t over the inputs: ``vjp2`` contracted with the tangents ts."""
        total = None
        for v, t in zip(self.vjp2(saved, g, ts), ts):
            term = contract(v, t, diagonal)
            total = term if total is None else total + term
        return total

    def hess_scratch(self, n_outputs: int, n_wrt: int) -> int:
        """Numbers per row the op's second-order rule keeps beyond its result (``hessian_rows`` adds them)."""
        return 0

    def n_params(self) -> int:
        return sum(a.size for a in self.arrays().values())


class Linear(Op):
    """An op y = A x + c: vjp is the transpose, jvp is A itself; no second-order term."""

    linear = True

    def forward(self, x):
        return self.apply(x), None

    def vjp(self, saved, g, out=None):
        return (self.transpose(g),)

    def jvp(self, saved, ts):
        return self.apply(ts[0], constant=False)


# ---------------------------------------------------------------------------
# Serialisation: an op is its class name, its scalar config and its arrays


def op_config(op: Op) -> dict:
    """The op's non-array fields as JSON-ready values (activations as dicts); an op holding other ops
    (TimeDistributed) says how with its own ``saved_config``."""
    if hasattr(op, "saved_config"):
        return op.saved_config()
    out = {}
    for f in dataclasses.fields(op):
        v = getattr(op, f.name)
        if f.name == "in_shapes":  # derived again when the graph is rebuilt
            continue
        if isinstance(v, np.ndarray) or v is None:
            continue
        if isinstance(v, Activation):
            v = dataclasses.asdict(v)
        elif isinstance(v, tuple):
            v = list(v)
        out[f.name] = v
    return out


def make_op(name: str, config: dict, arrays: dict) -> Op:
    """Build an op from ``op_config`` output and its arrays; raises ValueError on anything unknown."""
    cls = OPS.get(name)
    if cls is None:
        raise ValueError(f"unknown op {name!r}")
    if hasattr(cls, "from_saved"):
        return cls.from_saved(config, arrays)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "in_shapes"}
    kwargs = {}
    for key, v in {**config, **arrays}.items():
        if key not in fields:
            raise ValueError(f"op {name} has no parameter {key!r}")
        if key in ("activation", "recurrent_activation"):
            v = Activation(**v)
        elif isinstance(v, list):
            v = tuple(v)
        kwargs[key] = v
    return cls(**kwargs)
