"""Dense layers and elementwise activations: y = h(x W + b) and y = h(x)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .activations import ELEMENTWISE, Activation
from .base import Op, dot_last, register

FOLD_MIN_ROWS, FOLD_ALWAYS = 32, 2**16  # Dense.vjp folds the seed into the kernel from this many rows, or always
# when the folded matrix has at most this many numbers


@register
@dataclass
class Dense(Op):
    """y = h(a), a = x @ kernel + bias over the last axis.

    vjp: g -> (g * h'(a)) @ kernel^T  (Bishop's recursion, eq. 8.1.5: dy/da_j = h'(a_j) sum_l w_lj dy/da_l);
    jvp: t -> h'(a) * (t @ kernel).  Each product is one 2-D matrix multiply over (rows x seeds).
    """

    kernel: np.ndarray = None
    bias: np.ndarray | None = None
    activation: Activation = field(default_factory=Activation)

    def out_shape(self, s):
        n_in, n_out = self.kernel.shape
        if not s or s[-1] != n_in:
            raise ValueError(f"kernel expects {n_in} input features, got shape {s}")
        if self.bias is not None and self.bias.shape != (n_out,):
            raise ValueError(f"bias shape {self.bias.shape} does not match kernel {self.kernel.shape}")
        return (*s[:-1], n_out)

    def forward(self, x):
        a = dot_last(x, self.kernel)
        if self.bias is not None:
            a += self.bias
        y = self.activation(a)
        return y, (a, y)

    def vjp(self, saved, g, out=None):
        """``out``: a contiguous (N, K, n_in) array to write the cotangent into (the engine
        passes the caller's J when this product is the last one); used when the result has N rows."""
        a, y = saved
        folded = g.size * len(self.kernel)  # M's size below
        fold = folded <= 2**22 and (len(a) >= FOLD_MIN_ROWS or folded <= FOLD_ALWAYS)
        if g.shape[0] == 1 and g.ndim == 3 and a.ndim == 2 and fold and self._elementwise():
            # g is the same for every row (the seed): (g * h') @ kernel^T = h' @ M with
            # M[j, (k, i)] = g[k, j] kernel[i, j], one product and no (rows, K, units) temporary;
            # M is K times the kernel, so for a few rows the plain product reads less (benchmarks/RESULTS.md).
            d = self.activation.derivative(a, y)
            flat = None if out is None else out.reshape(len(a), -1)
            return (np.matmul(d, self._folded(g[0]), out=flat).reshape(len(a), g.shape[1], -1),)
        gh = self.activation.vjp(a, y, g)
        return (dot_last(gh, self.kernel.T, out if out is not None and out.shape[:-1] == gh.shape[:-1] else None),)

    def blas_bound(self):
        """Per row and seed, x @ kernel, (g h') @ kernel^T and h' @ M (``vjp``) each multiply kernel.size numbers
        for every position of the leading axes; inner lengths n_in or units."""
        if not self.in_shapes:
            return None
        return math.prod(self.in_shapes[0][:-1]) * self.kernel.size, max(self.kernel.shape)

    def _elementwise(self):
        return self.activation.name in ELEMENTWISE and not self.activation.is_linear

    def _folded(self, g):
        key = (g.dtype.str, g.shape, g.tobytes())
        cache = getattr(self, "_fold_cache", None)  # the seed is the same chunk after chunk
        if cache is None or cache[0] != key:  # one tuple, replaced whole: safe when threads share the op
            cache = (key, np.einsum("kj,ij->jki", g, self.kernel).reshape(len(self.kernel.T), -1))
            self._fold_cache = cache
        return cache[1]

    def jvp(self, saved, ts):
        return self.activation.jvp(*saved, dot_last(ts[0], self.kernel))

    def jvp_pre(self, saved, ts, tangent=True):
        """(jvp, t W): the pre-activation tangent kept for ``hess_term``."""
        tw = dot_last(ts[0], self.kernel)
        return (self.activation.jvp(*saved, tw) if tangent else None), tw

    @property
    def linear(self):
        return self.activation.is_piecewise_linear

    def vjp2(self, saved, g, ts):
        """((g h''(a)) (t W)) W^T for elementwise h; softmax and log_softmax as ``Activation.second``."""
        a, y = saved
        return (dot_last(self.activation.second(a, y, g, dot_last(ts[0], self.kernel)), self.kernel.T),)

    def hess_term(self, saved, g, ts, diagonal=False, pre=None):
        """(t W)^T diag(g h''(a)) (t W): contracted on the layer's units, no product with W^T; ``pre``: t W as
        ``jvp_pre`` gave it."""
        return self.activation.hess_term(*saved, g, dot_last(ts[0], self.kernel) if pre is None else pre, diagonal)


@register
@dataclass
class Act(Op):
    """y = h(x) for an activation of the table in activations.py."""

    activation: Activation = field(default_factory=Activation)
    blas_free = True

    def forward(self, x):
        y = self.activation(x)
        return y, (x, y)

    def vjp(self, saved, g, out=None):
        return (self.activation.vjp(*saved, g),)

    def jvp(self, saved, ts):
        return self.activation.jvp(*saved, ts[0])

    @property
    def linear(self):
        return self.activation.is_piecewise_linear

    def vjp2(self, saved, g, ts):
        """g h''(x) t (``Activation.second``)."""
        return (self.activation.second(*saved, g, ts[0]),)

    def hess_term(self, saved, g, ts, diagonal=False):
        return self.activation.hess_term(*saved, g, ts[0], diagonal)


