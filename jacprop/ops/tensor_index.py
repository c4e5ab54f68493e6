"""Selection and reduction ops ONNX graphs need (Gather with constant indices, strided Slice, Pad,
ReduceSum/Mean): all linear in x, so their transposes are their whole derivative and they have no
second-order term.  Conventions as in ``ops`` (per-row shapes, negative axes)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from . import base as ops


@ops.register
@dataclass
class Take(ops.Linear):
    """y = take(x, indices, axis): ONNX Gather with constant indices on a per-row axis.
    The transpose adds each cotangent back at its index (indices may repeat)."""

    indices: np.ndarray = None
    axis: int = -1

    def out_shape(self, s):
        p = len(s) + self.axis
        if not 0 <= p < len(s):
            raise ValueError(f"axis {self.axis} out of range for shape {tuple(s)}")
        idx = np.asarray(self.indices)
        if idx.size and (idx.min() < 0 or idx.max() >= s[p]):
            raise ValueError(f"indices out of range [0, {s[p]}) on axis of length {s[p]}")
        return (*s[:p], *idx.shape, *s[p + 1 :])

    @property
    def in_shape(self):
        return self.in_shapes[0]

    def apply(self, x, constant=True):
        return np.take(x, self.indices, axis=self.axis)

    def transpose(self, g):
        s, idx = self.in_shape, np.asarray(self.indices)
        p = len(s) + self.axis
        lead = g.shape[: g.ndim - (len(s) - 1 + idx.ndim)]
        out = np.zeros((*lead, *s), g.dtype)
        g = g.reshape(*lead, *s[:p], idx.size, *s[p + 1 :])
        np.add.at(out, (*(slice(None),) * (len(lead) + p), idx.ravel()), g)
        return out


@ops.register
@dataclass
class Strided(ops.Linear):
    """y = x[..., i0, i1, ...]: ``index`` holds, for every per-row axis, the indices kept (ONNX Slice
    with any steps).  The transpose scatters the cotangent back into zeros (indices are distinct)."""

    index: tuple = ()
    in_shape: tuple = ()

    def out_shape(self, s):
        if len(self.index) != len(s) or any(len(i) == 0 or min(i) < 0 or max(i) >= d for i, d in zip(self.index, s)):
            raise ValueError(f"slice does not fit shape {tuple(s)}")
        return tuple(len(i) for i in self.index)

    def bind(self, s):
        return replace(super().bind(s), in_shape=tuple(s))

    @cached_property
    def _ix(self):
        return np.ix_(*[np.asarray(i, dtype=np.intp) for i in self.index])

    def apply(self, x, constant=True):
        return x[(Ellipsis, *self._ix)]

    def transpose(self, g):
        out = np.zeros((*g.shape[: g.ndim - len(self.in_shape)], *self.in_shape), g.dtype)
        out[(Ellipsis, *self._ix)] = g
        return out


@ops.register
@dataclass
class Pad(ops.Linear):
    """y = x padded with ``value`` by ``pads`` ((before, after) per per-row axis); the transpose crops."""

    pads: tuple = ()
    value: float = 0.0

    def out_shape(self, s):
        if len(self.pads) != len(s) or min(min(p) for p in self.pads) < 0:
            raise ValueError(f"pads {self.pads} do not fit shape {tuple(s)}")
        return tuple(d + lo + hi for d, (lo, hi) in zip(s, self.pads))

    def bind(self, s):
        return replace(super().bind(s), pads=tuple(tuple(int(v) for v in p) for p in self.pads))

    def apply(self, x, constant=True):
        width = [(0, 0)] * (x.ndim - len(self.pads)) + list(self.pads)
        return np.pad(x, width, constant_values=self.value if constant else 0)

    def transpose(self, g):
        crop = tuple(slice(lo, g.shape[i - len(self.pads)] - hi) for i, (lo, hi) in enumerate(self.pads))
        return g[(Ellipsis, *crop)]


@ops.register
@dataclass
class Reduce(ops.Linear):
    """y = sum or mean of x over ``axes`` (negative, per row); the transpose broadcasts g back (/ count)."""

    how: str = "mean"
    axes: tuple = (-1,)
    keepdims: bool = True

    def out_shape(self, s):
        if self.how not in ("mean", "sum") or any(not -len(s) <= a < 0 for a in self.axes):
            raise ValueError(f"cannot reduce ({self.how}) axes {self.axes} of shape {tuple(s)}")
        return tuple(
            1 if i - len(s) in self.axes else d for i, d in enumerate(s) if self.keepdims or i - len(s) not in self.axes
        )

    def bind(self, s):
        return replace(super().bind(s), axes=tuple(sorted(set(self.axes))))

    @property
    def in_shape(self):
        return self.in_shapes[0]

    @property
    def count(self):
        return math.prod(self.in_shape[a] for a in self.axes)

    def apply(self, x, constant=True):
        return (x.mean if self.how == "mean" else x.sum)(axis=self.axes, keepdims=self.keepdims)

    def transpose(self, g):
        if not self.keepdims:
            g = np.expand_dims(g, self.axes)
        g = g / self.count if self.how == "mean" else g
        return np.broadcast_to(g, (*g.shape[: g.ndim - len(self.in_shape)], *self.in_shape))
