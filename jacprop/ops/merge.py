"""Merges of several same-shape inputs: add, subtract, multiply, average, maximum, minimum."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .base import Op, register


@register
@dataclass
class Merge(Op):
    """y = combination of several same-shape inputs: ``how`` is add, subtract (two
    inputs), multiply, average, maximum or minimum.

    maximum/minimum send the cotangent to the first input among ties, as TF's
    Maximum/Minimum gradients (x >= y, x <= y) do in Keras' left-to-right fold.

    Second order: every merge but multiply is (piecewise) linear.  multiply, y = prod_j x_j:
    d/dx_l (g prod_{j != i} x_j) t_l = g t_l prod_{j != i, l} x_j, summed over l != i.
    """

    how: str = "add"
    n_inputs = None

    @property
    def n(self):
        return len(self.in_shapes)

    def out_shape(self, *shapes):
        if len(set(map(tuple, shapes))) != 1:
            raise ValueError(f"inputs of different shapes {list(shapes)}")
        if self.how == "subtract" and len(shapes) != 2:
            raise ValueError(f"subtract takes 2 inputs, got {len(shapes)}")
        if self.how not in ("add", "subtract", "multiply", "average", "maximum", "minimum"):
            raise ValueError(f"unknown merge {self.how!r}")
        return shapes[0]

    def forward(self, *xs):
        how = self.how
        if how == "add":
            return sum(xs[1:], xs[0]), None
        if how == "subtract":
            return xs[0] - xs[1], None
        if how == "average":
            return sum(xs[1:], xs[0]) / len(xs), None
        if how == "multiply":
            return math.prod(xs[1:], start=xs[0]), xs
        pick = (np.argmax if how == "maximum" else np.argmin)(np.stack(xs), axis=0)
        return np.choose(pick, xs), pick

    def vjp(self, saved, g, out=None):
        n, how = self.n, self.how
        if how == "add":
            return (g,) * n
        if how == "subtract":
            return g, -g
        if how == "average":
            return (g / n,) * n
        if how == "multiply":
            xs = saved
            return tuple(g * math.prod([x for j, x in enumerate(xs) if j != i])[:, None] for i in range(n))
        return tuple(g * (saved == i)[:, None] for i in range(n))

    @property
    def linear(self):
        return self.how != "multiply"

    def vjp2(self, saved, g, ts):
        xs, n = saved, self.n
        g = g[:, :, None]

        def others(i, m):  # prod_{j != i, m} x_j, shaped for (B, K, D, *shape); 1 for two inputs
            rest = [x[:, None, None] for j, x in enumerate(xs) if j not in (i, m)]
            return math.prod(rest[1:], start=rest[0]) if rest else 1.0

        return tuple(g * sum(ts[m][:, None] * others(i, m) for m in range(n) if m != i) for i in range(n))

    def jvp(self, saved, ts):
        if self.how == "multiply":
            xs = saved
            return sum(t * math.prod([x for j, x in enumerate(xs) if j != i])[:, None] for i, t in enumerate(ts))
        if self.how in ("maximum", "minimum"):
            return np.choose(saved[:, None], ts)
        return self.forward(*ts)[0]


