"""Structure ops: identity, permutations, reshapes, slices and concatenations (all linear)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from .base import Linear, Op, register


@register
@dataclass
class Identity(Linear):
    """y = x.  Dropout, GaussianNoise and other train-only layers at inference."""

    blas_free = True
    vjp_is_view = True

    def apply(self, x, constant=True):
        return x

    def transpose(self, g):
        return g


@register
@dataclass
class Transpose(Linear):
    """y = x with its per-row axes permuted: y.shape[i] = x.shape[perm[i]] (perm 0-based, per row).

    Keras Permute, and Flatten(data_format="channels_first"), which moves the channels
    last before flattening.  The transpose applies the inverse permutation.
    """

    blas_free = True

    perm: tuple = ()

    def out_shape(self, s):
        if sorted(self.perm) != list(range(len(s))):
            raise ValueError(f"permutation {tuple(self.perm)} does not fit shape {tuple(s)}")
        return tuple(s[p] for p in self.perm)

    @staticmethod
    def _permute(x, perm):
        lead = x.ndim - len(perm)
        return np.transpose(x, (*range(lead), *(lead + p for p in perm)))

    def apply(self, x, constant=True):
        return self._permute(x, self.perm)

    def transpose(self, g):
        return self._permute(g, tuple(np.argsort(self.perm)))


@register
@dataclass
class Reshape(Linear):
    """y = x reshaped (row-major) to ``shape`` per row.  Flatten is shape (-1,)."""

    blas_free = True

    shape: tuple = (-1,)
    in_shape: tuple = ()
    vjp_is_view = True

    def bind(self, s):
        return replace(super().bind(s), shape=self.out_shape(s), in_shape=tuple(s))

    def out_shape(self, s):
        size = math.prod(s)
        shape = tuple(self.shape)
        if -1 in shape:
            known = math.prod(d for d in shape if d != -1)
            if known == 0 or size % known:
                raise ValueError(f"cannot reshape {s} to {shape}")
            shape = tuple(size // known if d == -1 else d for d in shape)
        if math.prod(shape) != size:
            raise ValueError(f"cannot reshape {s} ({size} values) to {shape}")
        return shape

    def apply(self, x, constant=True):
        return x.reshape(*x.shape[: x.ndim - len(self.in_shape)], *self.shape)

    def transpose(self, g):
        return g.reshape(*g.shape[: g.ndim - len(self.shape)], *self.in_shape)


@register
@dataclass
class Slice(Linear):
    """y = x[..., start:stop] reshaped to ``shape``: one model input taken from the flat row."""

    blas_free = True

    start: int = 0
    stop: int = 0
    shape: tuple = ()
    in_size: int = 0

    def bind(self, s):
        return replace(super().bind(s), in_size=s[0])

    @property
    def vjp_is_view(self):
        return self.stop - self.start == self.in_size

    def out_shape(self, s):
        if len(s) != 1 or not (0 <= self.start <= self.stop <= s[0]):
            raise ValueError(f"cannot take columns {self.start}:{self.stop} of {s}")
        if math.prod(self.shape) != self.stop - self.start:
            raise ValueError(f"{self.stop - self.start} columns do not make shape {self.shape}")
        return tuple(self.shape)

    def apply(self, x, constant=True):
        return x[..., self.start : self.stop].reshape(*x.shape[:-1], *self.shape)

    def transpose(self, g):
        lead = g.shape[: g.ndim - len(self.shape)]
        if self.vjp_is_view:  # the whole row (a one-input model): no copy
            return g.reshape(*lead, self.in_size)
        out = np.zeros((*lead, self.in_size), g.dtype)
        out[..., self.start : self.stop] = g.reshape(*lead, -1)
        return out


@register
@dataclass
class FlatConcat(Op):
    """y = concatenation of the inputs, each flattened per row: the model's output vector."""

    blas_free = True
    n_inputs = None
    linear = True

    def out_shape(self, *shapes):
        return (sum(math.prod(s) for s in shapes),)

    @cached_property
    def sizes(self):
        return [math.prod(s) for s in self.in_shapes]

    @property
    def shapes(self):
        return self.in_shapes

    def _cat(self, xs):
        nd = [len(s) for s in self.shapes]
        lead = np.broadcast_shapes(*(x.shape[: x.ndim - n] for x, n in zip(xs, nd)))
        return np.concatenate(
            [np.broadcast_to(x, (*lead, *x.shape[x.ndim - n :])).reshape(*lead, -1) for x, n in zip(xs, nd)],
            axis=-1,
        )

    def forward(self, *xs):
        return self._cat(xs), None

    def vjp(self, saved, g, out=None):
        parts = np.split(g, np.cumsum(self.sizes)[:-1], axis=-1)
        return tuple(p.reshape(*g.shape[:-1], *s) for p, s in zip(parts, self.shapes))

    def jvp(self, saved, ts):
        return self._cat(ts)



@register
@dataclass
class Concat(Op):
    """y = concatenation of the inputs along ``axis`` (negative)."""

    blas_free = True

    axis: int = -1
    n_inputs = None
    linear = True

    def out_shape(self, *shapes):
        ax = self.axis
        if any(-ax > len(s) for s in shapes) or len({s[:ax] + s[ax:][1:] for s in map(tuple, shapes)}) != 1:
            raise ValueError(f"cannot concatenate shapes {list(shapes)} along axis {ax}")
        out = list(shapes[0])
        out[ax] = sum(s[ax] for s in shapes)
        return tuple(out)

    @cached_property
    def sizes(self):
        return [s[self.axis] for s in self.in_shapes]

    def forward(self, *xs):
        return np.concatenate(xs, axis=self.axis), None

    def vjp(self, saved, g, out=None):
        return tuple(np.split(g, np.cumsum(self.sizes)[:-1], axis=self.axis))

    def jvp(self, saved, ts):
        lead = np.broadcast_shapes(*(t.shape[:2] for t in ts))
        return np.concatenate([np.broadcast_to(t, (*lead, *t.shape[2:])) for t in ts], axis=self.axis)




@register
@dataclass
class Repeat(Linear):
    """Keras RepeatVector(n): y[j] = x for j < n, (F,) -> (n, F); the transpose sums over the n copies."""

    blas_free = True

    n: int = 1

    def out_shape(self, s):
        if len(s) != 1 or self.n < 1:
            raise ValueError(f"RepeatVector({self.n}) takes a vector per row, got shape {tuple(s)}")
        return (self.n, s[0])

    def apply(self, x, constant=True):
        return np.repeat(x[..., None, :], self.n, axis=-2)

    def transpose(self, g):
        return g.sum(axis=-2)


def interpolation_matrix(n_in: int, n_out: int, how: str) -> np.ndarray:
    """A (n_out, n_in) so that y = A x resizes one axis as TensorFlow's resize does (half-pixel centres):
    nearest takes x[floor((i + 1/2) n_in / n_out)]; bilinear weights x[lo] and x[hi] at
    s = (i + 1/2) n_in / n_out - 1/2, lo = max(floor(s), 0), hi = min(ceil(s), n_in - 1), by 1 - (s - floor(s))
    and s - floor(s)."""
    A = np.zeros((n_out, n_in))
    i = np.arange(n_out)
    scale = n_in / n_out
    if how == "nearest":
        A[i, np.minimum(np.floor((i + 0.5) * scale).astype(int), n_in - 1)] = 1.0
        return A
    if how != "bilinear":
        raise ValueError(f"interpolation {how!r} is not supported (nearest, bilinear)")
    s = (i + 0.5) * scale - 0.5
    fl = np.floor(s)
    lerp = s - fl
    lo, hi = np.maximum(fl, 0).astype(int), np.minimum(np.ceil(s), n_in - 1).astype(int)
    np.add.at(A, (i, lo), 1 - lerp)
    np.add.at(A, (i, hi), lerp)
    return A


@register
@dataclass
class Resize(Linear):
    """UpSampling1D/2D: each spatial axis a (negative per-row axis, ``axes``) multiplied by ``factors``,
    y = A_a x along it with ``interpolation_matrix`` (nearest = repeat); the transpose applies A_a^T."""

    axes: tuple = (-2,)
    factors: tuple = (2,)
    how: str = "nearest"

    def out_shape(self, s):
        out = list(s)
        for a, f in zip(self.axes, self.factors):
            if not -len(s) <= a < 0 or f < 1:
                raise ValueError(f"cannot upsample axis {a} of shape {tuple(s)} by {f}")
            out[a] = s[a] * f
        return tuple(out)

    @cached_property
    def matrices(self):
        return [interpolation_matrix(self.in_shapes[0][a], self.in_shapes[0][a] * f, self.how)
                for a, f in zip(self.axes, self.factors)]

    @staticmethod
    def _along(x, A, axis):
        return np.moveaxis(np.tensordot(x, A, axes=([axis], [1])), -1, axis)

    def apply(self, x, constant=True):
        for a, A in zip(self.axes, self.matrices):
            x = self._along(x, A.astype(x.dtype), a)
        return x

    def transpose(self, g):
        for a, A in zip(self.axes, self.matrices):
            g = self._along(g, A.T.astype(g.dtype), a)
        return g
