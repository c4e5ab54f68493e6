"""Ops that ONNX graphs need beyond the Keras ones, in the conventions of ``ops`` (see its docstring):
per-row shapes, negative axes, g of shape (B, K, *out), t of shape (B, D, *in), B in {1, N}.

Elementwise functions with the file's own parameters (Selu's float32 alpha and gamma, Clip's
bounds, HardSigmoid's alpha and beta) are rows of ``POINTWISE``; binary ops of two tensors
broadcast as ONNX (numpy) does; ``Where`` selects by a comparison of a tensor with a constant,
whose derivative is zero; ``Const`` is a tensor that is the same for every row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from . import base as ops
from .activations import _SQRT_2_OVER_PI, erf

_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _gelu_tanh_inner(x):
    return _SQRT_2_OVER_PI * (x + 0.044715 * x**3)


def _gelu_tanh_dh(x, y, a, b):
    t = np.tanh(_gelu_tanh_inner(x))
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)


def _mask(cond, x):
    return cond.astype(x.dtype)


# name -> (h(x, a, b), dh(x, y, a, b)); a and b are the op's parameters.  At kinks: abs'(0) = 0;
# clip' = 1 strictly inside (a, b) and hard_sigmoid' likewise (torch's Hardtanh/ReLU6/Hardsigmoid rules);
# selu'(0) = gamma alpha and celu'(0) = 1 (the left limits), thresholded_relu'(a) = 0.
POINTWISE = {
    "abs": (lambda x, a, b: np.abs(x), lambda x, y, a, b: np.sign(x)),
    "neg": (lambda x, a, b: -x, lambda x, y, a, b: np.full_like(x, -1)),
    "exp": (lambda x, a, b: np.exp(x), lambda x, y, a, b: y),
    "log": (lambda x, a, b: np.log(x), lambda x, y, a, b: 1 / x),
    "sqrt": (lambda x, a, b: np.sqrt(x), lambda x, y, a, b: 0.5 / y),
    "reciprocal": (lambda x, a, b: 1 / x, lambda x, y, a, b: -y * y),
    "sin": (lambda x, a, b: np.sin(x), lambda x, y, a, b: np.cos(x)),
    "cos": (lambda x, a, b: np.cos(x), lambda x, y, a, b: -np.sin(x)),
    "erf": (lambda x, a, b: erf(x), lambda x, y, a, b: (2 / math.sqrt(math.pi)) * np.exp(-x * x)),
    "pow": (lambda x, a, b: x**a, lambda x, y, a, b: a * x ** (a - 1)),  # x^a, a constant
    "selu": (  # gamma (x > 0 ? x : alpha (e^x - 1)), a = alpha, b = gamma
        lambda x, a, b: b * np.where(x > 0, x, a * np.expm1(np.minimum(x, 0))),
        lambda x, y, a, b: b * np.where(x > 0, 1.0, a * np.exp(np.minimum(x, 0))).astype(x.dtype),
    ),
    "celu": (  # max(0, x) + min(0, a (e^(x/a) - 1))
        lambda x, a, b: np.maximum(x, 0) + a * np.expm1(np.minimum(x, 0) / a),
        lambda x, y, a, b: np.where(x > 0, 1.0, np.exp(np.minimum(x, 0) / a)).astype(x.dtype),
    ),
    "clip": (lambda x, a, b: np.clip(x, a, b), lambda x, y, a, b: _mask((x > a) & (x < b), x)),
    "hard_sigmoid": (  # max(0, min(1, a x + b))
        lambda x, a, b: np.clip(a * x + b, 0, 1),
        lambda x, y, a, b: a * _mask((a * x + b > 0) & (a * x + b < 1), x),
    ),
    "hard_swish": (  # x max(0, min(1, x/6 + 1/2))
        lambda x, a, b: x * np.clip(x / 6 + 0.5, 0, 1),
        lambda x, y, a, b: np.clip(x / 6 + 0.5, 0, 1) + x * _mask((x > -3) & (x < 3), x) / 6,
    ),
    "thresholded_relu": (lambda x, a, b: np.where(x > a, x, 0).astype(x.dtype), lambda x, y, a, b: _mask(x > a, x)),
    "gelu": (  # x Phi(x), exact: 0.5 x (1 + erf(x / sqrt 2)); derivative Phi(x) + x phi(x)
        lambda x, a, b: 0.5 * x * (1 + erf(x * _INV_SQRT_2)),
        lambda x, y, a, b: 0.5 * (1 + erf(x * _INV_SQRT_2)) + x * np.exp(-0.5 * x * x) * _INV_SQRT_2PI,
    ),
    "gelu_tanh": (lambda x, a, b: 0.5 * x * (1 + np.tanh(_gelu_tanh_inner(x))), _gelu_tanh_dh),
}


# name -> h''(x, y, a, b), or None where h is piecewise linear (h'' = 0).  At kinks, the branch h' takes.
POINTWISE2 = {
    "abs": None, "neg": None, "clip": None, "hard_sigmoid": None, "thresholded_relu": None,
    "exp": lambda x, y, a, b: y,
    "log": lambda x, y, a, b: -1 / (x * x),
    "sqrt": lambda x, y, a, b: -0.25 / (y * y * y),
    "reciprocal": lambda x, y, a, b: 2 * y * y * y,
    "sin": lambda x, y, a, b: -y,
    "cos": lambda x, y, a, b: -y,
    "erf": lambda x, y, a, b: (-4 / math.sqrt(math.pi)) * x * np.exp(-x * x),
    "pow": lambda x, y, a, b: a * (a - 1) * x ** (a - 2),
    "selu": lambda x, y, a, b: b * np.where(x > 0, 0.0, a * np.exp(np.minimum(x, 0))).astype(x.dtype),
    "celu": lambda x, y, a, b: np.where(x > 0, 0.0, np.exp(np.minimum(x, 0) / a) / a).astype(x.dtype),
    "hard_swish": lambda x, y, a, b: _mask((x > -3) & (x < 3), x) / 3,
    "gelu": lambda x, y, a, b: _INV_SQRT_2PI * np.exp(-0.5 * x * x) * (2 - x * x),  # phi(x) (2 - x^2)
    "gelu_tanh": lambda x, y, a, b: _gelu_tanh_d2h(x),
}


def _gelu_tanh_d2h(x):
    """u = k (x + c x^3), t = tanh u: h'' = (1 - t^2) (u' + x (u'' - 2 t u'^2) / 2)."""
    t = np.tanh(_gelu_tanh_inner(x))
    du = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)
    return (1 - t * t) * (du + 0.5 * x * (6 * _SQRT_2_OVER_PI * 0.044715 * x - 2 * t * du * du))


@ops.register
@dataclass
class Pointwise(ops.Op):
    """y = h(x) elementwise for a row of ``POINTWISE``, with parameters a = ``alpha``, b = ``beta``.
    vjp: g h'(x); jvp: h'(x) t; vjp2: g h''(x) t (``POINTWISE2``).  Test range: x in [-3, 3] away from
    kinks (log, sqrt: x in [0.5, 3])."""

    name: str = "abs"
    alpha: float = 0.0
    beta: float = 0.0

    def out_shape(self, s):
        if self.name not in POINTWISE:
            raise ValueError(f"unknown pointwise function {self.name!r}")
        return s

    def forward(self, x):
        y = POINTWISE[self.name][0](x, self.alpha, self.beta)
        return y, (POINTWISE[self.name][1](x, y, self.alpha, self.beta), x, y)

    def vjp(self, saved, g, out=None):
        return (g * saved[0][:, None],)

    def jvp(self, saved, ts):
        return ts[0] * saved[0][:, None]

    @property
    def linear(self):
        return self.name in POINTWISE2 and POINTWISE2[self.name] is None

    @property
    def vjp2(self):
        if self.name not in POINTWISE2:
            return None

        def rule(saved, g, ts):
            d2 = POINTWISE2[self.name](saved[1], saved[2], self.alpha, self.beta)
            return (g[:, :, None] * (d2[:, None] * ts[0])[:, None],)

        return rule


def _expand(x, shape, rank):
    """x (*lead, *shape) -> (*lead, 1, ..., 1, *shape) with ``rank`` per-row axes (numpy's alignment, batch kept)."""
    lead = x.shape[: x.ndim - len(shape)]
    return x.reshape(*lead, *(1,) * (rank - len(shape)), *shape)


def _unbroadcast(g, shape, out):
    """Sum g (*lead, *out) down to (*lead, *shape): the transpose of broadcasting ``shape`` to ``out``."""
    n = g.ndim - len(out)
    padded = (1,) * (len(out) - len(shape)) + tuple(shape)
    axes = tuple(n + i for i, (d, o) in enumerate(zip(padded, out)) if d == 1 and o != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(*g.shape[:n], *shape)


@ops.register
@dataclass
class Binary(ops.Op):
    """y = a (how) b for two tensors broadcast as numpy does over the per-row axes: add, sub, mul, div.

    vjp (before summing over broadcast axes): add (g, g); sub (g, -g); mul (g b, g a);
    div (g / b, -g y / b).  jvp: the same partials times (ta, tb), summed.
    Second order: add and sub are linear; mul (g tb, g ta); div (-g tb / b^2, g (2 y tb - ta) / b^2).
    """

    how: str = "add"
    n_inputs = 2

    def out_shape(self, sa, sb):
        if self.how not in ("add", "sub", "mul", "div"):
            raise ValueError(f"unknown binary op {self.how!r}")
        return tuple(np.broadcast_shapes(tuple(sa), tuple(sb)))

    @property
    def shapes(self):
        return self.in_shapes

    @cached_property
    def out(self):
        return self.out_shape(*self.in_shapes)

    def _pair(self, a, b):
        r = len(self.out)
        return _expand(a, self.shapes[0], r), _expand(b, self.shapes[1], r)

    def forward(self, a, b):
        a, b = self._pair(a, b)
        y = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide}[self.how](a, b)
        return y, (a, b, y)

    def _partials(self, saved):
        a, b, y = (s[:, None] for s in saved)
        if self.how == "add":
            return 1, 1
        if self.how == "sub":
            return 1, -1
        if self.how == "mul":
            return b, a
        return 1 / b, -y / b

    def vjp(self, saved, g, out=None):
        da, db = self._partials(saved)
        return _unbroadcast(g * da, self.shapes[0], self.out), _unbroadcast(g * db, self.shapes[1], self.out)

    def jvp(self, saved, ts):
        da, db = self._partials(saved)
        ta, tb = self._pair(*ts)
        return ta * da + tb * db

    @property
    def linear(self):
        return self.how in ("add", "sub")

    def vjp2(self, saved, g, ts):
        ta, tb = (t[:, None] for t in self._pair(*ts))  # (B, 1, D, *out)
        g = g[:, :, None]
        if self.how == "mul":
            ga, gb = g * tb, g * ta
        else:
            _, b, y = (s[:, None, None] for s in saved)
            ga, gb = -g * tb / (b * b), g * (2 * y * tb - ta) / (b * b)
        return _unbroadcast(ga, self.shapes[0], self.out), _unbroadcast(gb, self.shapes[1], self.out)


@ops.register
@dataclass
class MatMul(ops.Op):
    """y = a @ b for two tensors, per row (..., m, k) @ (..., k, n) with the same leading axes: bilinear.

    vjp: (g @ b^T, a^T @ g); jvp: ta @ b + a @ tb.  Second order (the vjp differentiated along the
    tangents): (g @ tb^T, ta^T @ g); the same-operand terms are zero.
    """

    n_inputs = 2

    def out_shape(self, sa, sb):
        sa, sb = tuple(sa), tuple(sb)
        if len(sa) < 2 or len(sb) < 2 or sa[:-2] != sb[:-2] or sa[-1] != sb[-2]:
            raise ValueError(f"a product of per-row shapes {sa} and {sb}: needs (..., m, k) @ (..., k, n) "
                             "with the same leading axes")
        return (*sa[:-1], sb[-1])

    def forward(self, a, b):
        return np.matmul(a, b), (a, b)

    def vjp(self, saved, g, out=None):
        a, b = (s[:, None] for s in saved)
        return np.matmul(g, np.swapaxes(b, -1, -2)), np.matmul(np.swapaxes(a, -1, -2), g)

    def jvp(self, saved, ts):
        a, b = (s[:, None] for s in saved)
        return np.matmul(ts[0], b) + np.matmul(a, ts[1])

    def vjp2(self, saved, g, ts):
        ta, tb = (t[:, None] for t in ts)  # (B, 1, W, *in)
        g = g[:, :, None]  # (B, K, 1, *out)
        return np.matmul(g, np.swapaxes(tb, -1, -2)), np.matmul(np.swapaxes(ta, -1, -2), g)


COMPARE = {
    "greater": np.greater,
    "less": np.less,
    "greater_equal": np.greater_equal,
    "less_equal": np.less_equal,
    "equal": np.equal,
}


@ops.register
@dataclass
class Where(ops.Op):
    """y = where(c (how) value, a, b) for tensors c, a, b (broadcast) and a constant ``value``.

    The mask m = [c (how) value] is piecewise constant, so dy/dc = 0; dy/da = m, dy/db = 1 - m.
    Piecewise linear: no second-order term.
    """

    linear = True
    how: str = "greater"
    value: np.ndarray = None
    n_inputs = 3

    def out_shape(self, sc, sa, sb):
        if self.how not in COMPARE:
            raise ValueError(f"unknown comparison {self.how!r}")
        return tuple(np.broadcast_shapes(tuple(sc), tuple(sa), tuple(sb), np.shape(self.value)))

    @property
    def shapes(self):
        return self.in_shapes

    @cached_property
    def out(self):
        return self.out_shape(*self.in_shapes)

    def forward(self, c, a, b):
        r = len(self.out)
        m = COMPARE[self.how](_expand(c, self.shapes[0], r), self.value)
        m = np.broadcast_to(m, (len(c), *self.out))
        return np.where(m, _expand(a, self.shapes[1], r), _expand(b, self.shapes[2], r)), m

    def vjp(self, saved, g, out=None):
        m = saved[:, None]
        zero = np.zeros((g.shape[0], g.shape[1], *self.shapes[0]), g.dtype)
        return (
            zero,
            _unbroadcast(np.where(m, g, 0), self.shapes[1], self.out),
            _unbroadcast(np.where(m, 0, g), self.shapes[2], self.out),
        )

    def jvp(self, saved, ts):
        r = len(self.out)
        return np.where(saved[:, None], _expand(ts[1], self.shapes[1], r), _expand(ts[2], self.shapes[2], r))


@ops.register
@dataclass
class Const(ops.Op):
    """y = value for every row (it reads the input row only to know how many rows there are); dy/dx = 0."""

    linear = True

    value: np.ndarray = None

    def out_shape(self, s):
        return np.shape(self.value)

    @property
    def d(self):
        return self.in_shapes[0][0]

    def forward(self, x):
        return np.repeat(self.value[None], len(x), axis=0), None

    def vjp(self, saved, g, out=None):
        return (np.zeros((1, g.shape[1], self.d), g.dtype),)

    def jvp(self, saved, ts):
        return np.zeros((1, ts[0].shape[1], *np.shape(self.value)), ts[0].dtype)
