"""Activation functions h(a) and their derivatives, as one table.

Elementwise activations are rows of ``ELEMENTWISE``: ``name -> (h, dh)`` with
``h(a, p)`` the function and ``dh(a, y, p)`` its derivative h'(a), which may use
the saved output y = h(a) where that is cheaper (tanh: 1 - y^2).  ``p`` is the
activation's single parameter (leaky_relu's slope, elu's alpha), unused elsewhere.

Kinks follow TensorFlow's gradient kernels, so our Jacobians equal
``GradientTape`` ones exactly at the kink too:

- relu'(0) = 0 (ReluGrad passes gradient where a > 0);
- relu6'(0) = relu6'(6) = 0 (Relu6Grad: 0 < a < 6);
- leaky_relu'(0) = slope (LeakyReluGrad: a > 0 ? 1 : slope);
- elu'(0) = alpha (Keras: where(a > 0, elu(a), alpha * elu(a)); alpha = 1 gives 1, as EluGrad);
- selu'(0) = scale (SeluGrad tests y < 0);
- hard_sigmoid_k2 = clip(0.2 a + 0.5, 0, 1): clip passes gradient at both ends (a = +-2.5);
- hard_sigmoid (Keras 3) = relu6(a + 3) / 6: derivative 0 at a = -3 and a = 3;
- relu_max = clip(a, 0, p) (Keras ReLU(max_value=p)): relu then clip_by_value, so 0 at 0, 1 at p;
- hard_tanh = clip(a, -1, 1): clip passes gradient at both ends;
- soft_shrink, hard_shrink (threshold 0.5), sparse_sigmoid, sparse_plus: tf.where with the
  comparisons of Keras 3's TensorFlow backend (strict where it uses strict).
- celu'(0) = 1 (TF would give 2 there, the sum of both tf.maximum/tf.minimum branches;
  celu is C^1, so 1 is the true derivative).

The Keras 3-only activations (hard_silu, celu, log_sigmoid, sparse_plus, squareplus,
soft_shrink, hard_shrink, tanh_shrink, hard_tanh, sparse_sigmoid) follow
keras/src/backend/tensorflow/nn.py (3.15); their extra arguments take Keras' defaults
(celu alpha = 1, squareplus b = 4, shrink threshold 0.5), the only values an activation
string can give.

softmax and log_softmax act along an axis and have non-diagonal Jacobians; they
are written out in ``Activation.vjp``/``jvp``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
# TensorFlow's tf.nn.gelu (used by Keras 2 and 3) writes math_ops.cast(0.7071067811865476, dtype)
# and math_ops.cast(0.044715, dtype): a Python float cast that way becomes a float32 tensor first,
# so even a float64 model uses these float32-rounded constants (1/sqrt(2) off by ~1e-8 relative).
# Measured on float64 models with TF 2.21, Keras 3.15 and tf_keras 2.21 (sample_models/keras/CONSTANTS.md):
# 1/sqrt(2) and 0.044715 are float32-rounded, 0.7978845608028654 (a plain Python float) is exact, and
# selu's alpha/scale are exact.  We use the same ones, so our gelu matches Keras' to rounding.
_INV_SQRT_2 = float(np.float32(1.0 / math.sqrt(2.0)))
_GELU_TANH_C = float(np.float32(0.044715))
_INV_SQRT_PI = 1.0 / math.sqrt(math.pi)


def erf(x: np.ndarray) -> np.ndarray:
    """The error function, vectorised, to about 1e-15 absolute (numpy has none).

    For |x| <= 3 the series erf(x) = 2/sqrt(pi) e^{-x^2} sum_n 2^n x^{2n+1} / (2n+1)!!
    (all terms positive, no cancellation); beyond, 1 - erfc(x) with erfc from its
    continued fraction erfc(x) = e^{-x^2}/sqrt(pi) * 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))),
    evaluated bottom-up.  Tested against ``math.erf``.
    """
    x = np.asarray(x)
    ax = np.abs(x)
    small = np.minimum(ax, 3.0)
    x2 = small * small
    term = small.copy()
    total = small.copy()
    for n in range(1, 90):
        term = term * (2.0 * x2 / (2 * n + 1))
        total = total + term
    series = 2.0 * _INV_SQRT_PI * np.exp(-x2) * total
    big = np.maximum(ax, 3.0)
    frac = big
    for n in range(60, 0, -1):
        frac = big + (n / 2.0) / frac
    erfc_big = np.exp(-big * big) * _INV_SQRT_PI / frac
    out = np.where(ax <= 3.0, series, 1.0 - erfc_big)
    return np.copysign(out, x).astype(x.dtype, copy=False)


def _sigmoid(a):
    """1 / (1 + e^-a) without overflow for large |a|."""
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _softplus(a):
    """log(1 + e^a) = max(a, 0) + log1p(e^-|a|)."""
    return np.maximum(a, 0) + np.log1p(np.exp(-np.abs(a)))


def _gelu_tanh_inner(a):
    return _SQRT_2_OVER_PI * (a + _GELU_TANH_C * a**3)


def _one_minus_square(y):
    """1 - y^2 in one buffer (tanh' from the saved y)."""
    d = np.multiply(y, y)
    return np.subtract(1, d, out=d)


def _mish_dh(a, y, p):
    sp_t = np.tanh(_softplus(a))
    return sp_t + a * (1 - sp_t**2) * _sigmoid(a)


def _gelu_tanh_dh(a, y, p):
    t = np.tanh(_gelu_tanh_inner(a))
    return 0.5 * (1 + t) + 0.5 * a * (1 - t**2) * _SQRT_2_OVER_PI * (1 + 3 * _GELU_TANH_C * a**2)


# name -> (h(a, p), dh(a, y, p)).  Written to be correct for float32 and float64 arrays.
ELEMENTWISE = {
    "linear": (lambda a, p: a, lambda a, y, p: np.ones_like(a)),
    "relu": (lambda a, p: np.maximum(a, 0), lambda a, y, p: (a > 0).astype(a.dtype)),
    "relu6": (lambda a, p: np.clip(a, 0, 6), lambda a, y, p: ((a > 0) & (a < 6)).astype(a.dtype)),
    "leaky_relu": (
        lambda a, p: np.where(a > 0, a, p * a),
        lambda a, y, p: np.where(a > 0, 1.0, p).astype(a.dtype),
    ),
    "elu": (
        lambda a, p: np.where(a > 0, a, p * np.expm1(np.minimum(a, 0))),
        lambda a, y, p: np.where(a > 0, 1.0, p * np.exp(np.minimum(a, 0))).astype(a.dtype),
    ),
    "selu": (
        lambda a, p: SELU_SCALE * np.where(a < 0, SELU_ALPHA * np.expm1(np.minimum(a, 0)), a),
        lambda a, y, p: SELU_SCALE * np.where(a < 0, SELU_ALPHA * np.exp(np.minimum(a, 0)), 1.0).astype(a.dtype),
    ),
    "gelu": (
        lambda a, p: 0.5 * a * (1 + erf(a * _INV_SQRT_2)),
        lambda a, y, p: 0.5 * (1 + erf(a * _INV_SQRT_2))
        + a * np.exp(-((a * _INV_SQRT_2) ** 2)) * (_INV_SQRT_2 * _INV_SQRT_PI),
    ),
    "gelu_tanh": (lambda a, p: 0.5 * a * (1 + np.tanh(_gelu_tanh_inner(a))), _gelu_tanh_dh),
    "sigmoid": (lambda a, p: _sigmoid(a), lambda a, y, p: y * (1 - y)),
    "hard_sigmoid_k2": (
        lambda a, p: np.clip(0.2 * a + 0.5, 0, 1),
        lambda a, y, p: np.where((a >= -2.5) & (a <= 2.5), 0.2, 0.0).astype(a.dtype),
    ),
    "hard_sigmoid": (
        lambda a, p: np.clip(a + 3, 0, 6) / 6,
        lambda a, y, p: np.where((a > -3) & (a < 3), 1 / 6, 0.0).astype(a.dtype),
    ),
    "tanh": (lambda a, p: np.tanh(a), lambda a, y, p: _one_minus_square(y)),
    "softplus": (lambda a, p: _softplus(a), lambda a, y, p: _sigmoid(a)),
    "softsign": (lambda a, p: a / (1 + np.abs(a)), lambda a, y, p: 1 / (1 + np.abs(a)) ** 2),
    "swish": (
        lambda a, p: a * _sigmoid(a),
        lambda a, y, p: _sigmoid(a) * (1 + a * (1 - _sigmoid(a))),
    ),
    "mish": (lambda a, p: a * np.tanh(_softplus(a)), _mish_dh),
    "exponential": (lambda a, p: np.exp(a), lambda a, y, p: y),
    # ---- Keras 3 only
    "relu_max": (lambda a, p: np.clip(a, 0, p), lambda a, y, p: ((a > 0) & (a <= p)).astype(a.dtype)),
    "hard_silu": (
        lambda a, p: a * (np.clip(a + 3, 0, 6) / 6),
        lambda a, y, p: np.clip(a + 3, 0, 6) / 6 + a * np.where((a > -3) & (a < 3), 1 / 6, 0.0),
    ),
    "celu": (
        lambda a, p: np.maximum(a, 0) + np.expm1(np.minimum(a, 0)),
        lambda a, y, p: np.where(a > 0, 1.0, np.exp(np.minimum(a, 0))).astype(a.dtype),
    ),
    "log_sigmoid": (lambda a, p: -_softplus(-a), lambda a, y, p: _sigmoid(-a)),
    "sparse_plus": (
        lambda a, p: np.where(a <= -1, 0.0, np.where(a < 1, 0.25 * (a + 1) ** 2, a)).astype(a.dtype),
        lambda a, y, p: np.where(a <= -1, 0.0, np.where(a < 1, 0.5 * (a + 1), 1.0)).astype(a.dtype),
    ),
    "squareplus": (
        lambda a, p: (a + np.sqrt(a * a + 4)) / 2,
        lambda a, y, p: (1 + a / np.sqrt(a * a + 4)) / 2,
    ),
    "soft_shrink": (
        lambda a, p: np.where(a > 0.5, a - 0.5, np.where(a < -0.5, a + 0.5, 0.0)).astype(a.dtype),
        lambda a, y, p: (np.abs(a) > 0.5).astype(a.dtype),
    ),
    "hard_shrink": (
        lambda a, p: np.where(np.abs(a) > 0.5, a, 0.0).astype(a.dtype),
        lambda a, y, p: (np.abs(a) > 0.5).astype(a.dtype),
    ),
    "tanh_shrink": (lambda a, p: a - np.tanh(a), lambda a, y, p: np.tanh(a) ** 2),
    "hard_tanh": (lambda a, p: np.clip(a, -1, 1), lambda a, y, p: ((a >= -1) & (a <= 1)).astype(a.dtype)),
    "sparse_sigmoid": (
        lambda a, p: np.where(a <= -1, 0.0, np.where(a >= 1, 1.0, 0.5 * (a + 1))).astype(a.dtype),
        lambda a, y, p: ((a > -1) & (a < 1)).astype(a.dtype) * 0.5,
    ),
}
# ---- Second derivatives h''(a), for Hessians (jacprop.second_order).  name -> d2h(a, y, p), or None where h is
# piecewise linear (h'' = 0 wherever h' is defined; no rule needed).  Kinks follow h' above: h'' is the
# derivative of the branch that h' takes there (elu''(0) = alpha: the left branch, as elu'(0) = alpha).
# A name missing here has no second-order rule: ``jacprop hessian`` refuses it.
def _swish_d2h(a, y, p):
    s = _sigmoid(a)
    return s * (1 - s) * (2 + a * (1 - 2 * s))


def _mish_d2h(a, y, p):
    """h = a T, T = tanh(softplus a), T' = (1 - T^2) s: h'' = (1 - T^2) s (2 + a (1 - s - 2 T s))."""
    t, s = np.tanh(_softplus(a)), _sigmoid(a)
    return (1 - t * t) * s * (2 + a * (1 - s - 2 * t * s))


def _gelu_d2h(a, y, p):
    """h = a Phi(a c') with Keras' c = 1/sqrt(2) (float32-rounded):
    h'' = (c / sqrt(pi)) e^(-(a c)^2) (2 - 2 (a c)^2)."""
    u = a * _INV_SQRT_2
    return (_INV_SQRT_2 * _INV_SQRT_PI) * np.exp(-u * u) * (2 - 2 * u * u)


def _gelu_tanh_d2h(a, y, p):
    """u = k (a + c a^3), t = tanh u: h'' = (1 - t^2) (u' + a (u'' - 2 t u'^2) / 2),
    u' = k (1 + 3 c a^2), u'' = 6 k c a."""
    t = np.tanh(_gelu_tanh_inner(a))
    du = _SQRT_2_OVER_PI * (1 + 3 * _GELU_TANH_C * a * a)
    return (1 - t * t) * (du + 0.5 * a * (6 * _SQRT_2_OVER_PI * _GELU_TANH_C * a - 2 * t * du * du))


SECOND = {
    "linear": None, "relu": None, "relu6": None, "leaky_relu": None, "hard_sigmoid_k2": None, "hard_sigmoid": None,
    "relu_max": None, "soft_shrink": None, "hard_shrink": None, "hard_tanh": None, "sparse_sigmoid": None,
    "elu": lambda a, y, p: np.where(a > 0, 0.0, p * np.exp(np.minimum(a, 0))).astype(a.dtype),
    "selu": lambda a, y, p: SELU_SCALE * np.where(a < 0, SELU_ALPHA * np.exp(np.minimum(a, 0)), 0.0).astype(a.dtype),
    "gelu": _gelu_d2h,
    "gelu_tanh": _gelu_tanh_d2h,
    "sigmoid": lambda a, y, p: y * (1 - y) * (1 - 2 * y),
    "tanh": lambda a, y, p: -2 * y * (1 - y * y),
    "softplus": lambda a, y, p: _sigmoid(a) * _sigmoid(-a),
    "softsign": lambda a, y, p: -2 * np.sign(a) / (1 + np.abs(a)) ** 3,
    "swish": _swish_d2h,
    "mish": _mish_d2h,
    "exponential": lambda a, y, p: y,
    "hard_silu": lambda a, y, p: np.where((a > -3) & (a < 3), 1 / 3, 0.0).astype(a.dtype),
    "celu": lambda a, y, p: np.where(a > 0, 0.0, np.exp(np.minimum(a, 0))).astype(a.dtype),
    "log_sigmoid": lambda a, y, p: -_sigmoid(a) * _sigmoid(-a),
    "sparse_plus": lambda a, y, p: np.where((a > -1) & (a < 1), 0.5, 0.0).astype(a.dtype),
    "squareplus": lambda a, y, p: 2 / (a * a + 4) ** 1.5,
    "tanh_shrink": lambda a, y, p: 2 * np.tanh(a) * (1 - np.tanh(a) ** 2),
}
ALIASES = {"silu": "swish", "hard_swish": "hard_silu", "identity": "linear", None: "linear"}
AXIS_ACTIVATIONS = ("softmax", "log_softmax")
# hess_term by pairs i <= j (below) when K > PAIRS_MIN_RATIO x D: measured on the benchmark shapes (1 thread),
# K = 64, D = 4: 5.4 ms instead of 26 ms a block; K = 2, D = 8 and K = 8..10, D = 32: 2-3x slower by pairs.
PAIRS_MIN_RATIO = 2
SHARED_MAX = 2**21  # entries of the t_i t_j table for a tangent shared by every row (16 MB in float64)


def _pair_term(c, t):
    """sum_s c[b, k, s] t[b, i, s] t[b, j, s] as (B, K, D, D), formed from the D(D+1)/2 products t_i t_j (i <= j)
    and one matmul with c: K (D + 1) / 2 times fewer products than K D (D + 1) when K is large.  Exactly symmetric."""
    d = t.shape[1]
    rows = max(len(c), len(t))
    upper = np.triu_indices(d)
    pairs = np.empty((rows, len(upper[0]), t.shape[2]), np.result_type(c, t))
    o = 0
    for i in range(d):
        np.multiply(t[:, i : i + 1], t[:, i:], out=pairs[:, o : o + d - i])
        o += d - i
    r = np.matmul(c, pairs.transpose(0, 2, 1))  # (B, K, D(D+1)/2)
    H = np.empty((rows, c.shape[1], d, d), r.dtype)
    H[:, :, upper[0], upper[1]] = r
    H[:, :, upper[1], upper[0]] = r
    return H
NAMES = tuple(ELEMENTWISE) + AXIS_ACTIVATIONS


@dataclass(frozen=True)
class Activation:
    """An activation h with its parameter: ``alpha`` is leaky_relu's slope or elu's
    alpha; ``axis`` (negative, counted from the last axis) is softmax's axis.

    vjp and jvp take cotangents g of shape (B, K, *shape) and tangents t of shape
    (B, D, *shape), where the saved a and y have shape (N, *shape) and B is N or 1
    (a row-independent seed); both broadcast.
    """

    name: str = "linear"
    alpha: float = 0.0
    axis: int = -1

    def __post_init__(self):
        name = ALIASES.get(self.name, self.name)
        if name not in NAMES:
            raise ValueError(f"unknown activation {self.name!r}")
        object.__setattr__(self, "name", name)

    @property
    def is_linear(self) -> bool:
        return self.name == "linear"

    def __call__(self, a: np.ndarray) -> np.ndarray:
        if self.name == "softmax":
            e = np.exp(a - a.max(axis=self.axis, keepdims=True))
            return e / e.sum(axis=self.axis, keepdims=True)
        if self.name == "log_softmax":
            s = a - a.max(axis=self.axis, keepdims=True)
            return s - np.log(np.exp(s).sum(axis=self.axis, keepdims=True))
        return ELEMENTWISE[self.name][0](a, self.alpha)

    def derivative(self, a: np.ndarray, y: np.ndarray) -> np.ndarray:
        """h'(a), elementwise activations only."""
        return ELEMENTWISE[self.name][1](a, y, self.alpha)

    def vjp(self, a, y, g):
        """g J_h: softmax s(g - <g, s>); log_softmax g - s <g, 1>; else g h'(a)."""
        if self.name == "linear":
            return g
        ax = self.axis
        if self.name == "softmax":
            s = y[:, None]
            return s * (g - (g * s).sum(axis=ax, keepdims=True))
        if self.name == "log_softmax":
            return g - np.exp(y[:, None]) * g.sum(axis=ax, keepdims=True)
        return g * self.derivative(a, y)[:, None]

    @property
    def has_second_order(self) -> bool:
        """Whether h has a second-order rule (``second``)."""
        return self.name in SECOND or self.name in AXIS_ACTIVATIONS

    @property
    def is_piecewise_linear(self) -> bool:
        """h'' = 0 wherever h' is defined: the Hessian skips ``second``."""
        return self.name in SECOND and SECOND[self.name] is None

    def second(self, a, y, g, t):
        """d/da (g J_h(a)) in each direction t, g held fixed: (B, K, D, *shape) from g (B, K, *shape) and
        t (B, D, *shape).  Elementwise: g h''(a) t.  softmax (ds = J_h t = s (t - <t, s>)):
        ds (g - <g, s>) - s <g, ds>.  log_softmax: -ds <g, 1>."""
        ax = self.axis
        if self.name in AXIS_ACTIVATIONS:
            s = np.exp(y[:, None]) if self.name == "log_softmax" else y[:, None]
            ds = (s * (t - (t * s).sum(axis=ax, keepdims=True)))[:, None]  # (B, 1, D, *shape)
            if self.name == "log_softmax":
                return -ds * g.sum(axis=ax, keepdims=True)[:, :, None]
            gc = (g - (g * s).sum(axis=ax, keepdims=True))[:, :, None]
            return ds * gc - s[:, None] * (g[:, :, None] * ds).sum(axis=ax, keepdims=True)
        d2 = SECOND[self.name](a, y, self.alpha)
        return g[:, :, None] * (d2[:, None] * t)[:, None]

    def hess_term(self, a, y, g, t, diagonal=False):
        """sum_s g_s h''(a_s) t_ws t_vs: (B, K, D, D) (``diagonal``: w = v only, (B, K, D)); softmax and
        log_softmax contract ``second`` with t."""
        if self.name in AXIS_ACTIVATIONS:
            from .contract import contract

            return contract(self.second(a, y, g, t), t, diagonal)
        k, d = g.shape[1], t.shape[1]
        c = g * SECOND[self.name](a, y, self.alpha)[:, None]
        c = c.reshape(c.shape[0], k, -1)  # (N, K, S)
        t = t.reshape(t.shape[0], d, -1)
        if len(t) == 1 and len(c) > 1 and d * d * t.shape[2] <= SHARED_MAX:
            # one tangent for every row (the first layer after the seed): one product over the units,
            # (N K, S) @ (S, D D) with the products t_i t_j formed once, instead of N small ones
            q = t[0] * t[0] if diagonal else (t[0][:, None] * t[0][None]).reshape(d * d, -1)
            return (c.reshape(-1, c.shape[2]) @ q.T).reshape((len(c), k, d) + (() if diagonal else (d,)))
        if diagonal:
            return np.matmul(c, (t * t).transpose(0, 2, 1))
        if k > PAIRS_MIN_RATIO * d:
            return _pair_term(c, t)
        ct = (c[:, :, None, :] * t[:, None]).reshape(max(len(c), len(t)), k * d, -1)
        return np.matmul(ct, t.transpose(0, 2, 1)).reshape(-1, k, d, d)

    def jvp(self, a, y, t):
        """J_h t: softmax s(t - <t, s>) (J is symmetric); log_softmax t - <t, s>; else h'(a) t."""
        if self.name == "linear":
            return t
        ax = self.axis
        if self.name == "softmax":
            s = y[:, None]
            return s * (t - (t * s).sum(axis=ax, keepdims=True))
        if self.name == "log_softmax":
            return t - (t * np.exp(y[:, None])).sum(axis=ax, keepdims=True)
        return t * self.derivative(a, y)[:, None]
