"""Convolution and pooling: sliding windows over the spatial axes (channels last inside)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from .activations import Activation
from .base import Op, dot_last, register


@dataclass
class Window:
    """A sliding window over the spatial axes of channels-last tensors (B, *spatial, C).

    Output length per axis: valid floor((L - e)/s) + 1, same ceil(L/s), causal
    floor((L - 1)/s) + 1, with e = (k - 1) d + 1 the dilated window; ``same`` pads
    max((out - 1) s + e - L, 0) in all, the smaller half first (TensorFlow's rule).
    """

    size: tuple
    strides: tuple
    dilation: tuple
    padding: str = "valid"

    def setup(self, spatial):
        if self.padding not in ("valid", "same", "causal"):
            raise ValueError(f"unknown padding {self.padding!r}")
        if min(self.size + self.strides + self.dilation) < 1:
            raise ValueError(f"window {self.size}, strides {self.strides} and dilation {self.dilation} must be >= 1")
        self.spatial, self.out, self.pads = tuple(spatial), [], []
        for n, k, s, d in zip(spatial, self.size, self.strides, self.dilation):
            e = (k - 1) * d + 1
            if self.padding == "same":
                out = -(-n // s)
                total = max((out - 1) * s + e - n, 0)
                pad = (total // 2, total - total // 2)
            else:
                pad = (e - 1, 0) if self.padding == "causal" else (0, 0)
                out = (n + pad[0] - e) // s + 1
            if out < 1:
                raise ValueError(f"window {self.size} (dilation {self.dilation}) is larger than input {spatial}")
            self.out.append(out)
            self.pads.append(pad)
        self.out = tuple(self.out)
        return self.out

    def _offsets(self):
        for j in np.ndindex(*self.size):
            yield tuple(
                slice(ji * d, ji * d + (o - 1) * s + 1, s)
                for ji, d, o, s in zip(j, self.dilation, self.out, self.strides)
            )

    def gather(self, x, fill=0.0):
        """(B, *spatial, C) -> (B, *out, prod(size), C): the window of every output position."""
        pad = [(0, 0)] + self.pads + [(0, 0)]
        xp = np.pad(x, pad, constant_values=fill) if any(map(any, self.pads)) else x
        return np.stack([xp[(slice(None), *sl)] for sl in self._offsets()], axis=-2)

    def scatter(self, cols):
        """The transpose of ``gather``: (B, *out, prod(size), C) -> (B, *spatial, C), summing overlaps."""
        b, c = cols.shape[0], cols.shape[-1]
        padded = [n + lo + hi for n, (lo, hi) in zip(self.spatial, self.pads)]
        out = np.zeros((b, *padded, c), cols.dtype)
        for i, sl in enumerate(self._offsets()):
            out[(slice(None), *sl)] += cols[..., i, :]
        crop = tuple(slice(lo, lo + n) for n, (lo, _) in zip(self.spatial, self.pads))
        return out[(slice(None), *crop)]


def to_channels_last(x, rank, channels_first):
    """(*lead, *per_row) -> ((B', *spatial, C), lead): merge the lead axes, channels last."""
    lead = x.shape[: x.ndim - rank - 1]
    x = x.reshape(-1, *x.shape[x.ndim - rank - 1 :])
    return (np.moveaxis(x, 1, -1) if channels_first else x), lead


def from_channels_last(y, lead, channels_first):
    """The inverse of ``to_channels_last``."""
    if channels_first:
        y = np.moveaxis(y, -1, 1)
    return np.ascontiguousarray(y).reshape(*lead, *y.shape[1:])


def _per_axis(value, rank) -> tuple:
    """An int or 1-tuple for every spatial axis, or one value per axis."""
    value = tuple(np.atleast_1d(value).tolist())
    if len(value) == 1:
        value *= rank
    if len(value) != rank:
        raise ValueError(f"expected {rank} values, got {value}")
    return tuple(int(v) for v in value)


def _spatial_shape(s, rank, channels_first):
    if len(s) != rank + 1:
        raise ValueError(f"expects {rank} spatial axes and channels, got shape {tuple(s)}")
    return (s[1:], s[0]) if channels_first else (s[:-1], s[-1])


def _make_shape(spatial, channels, channels_first):
    return (channels, *spatial) if channels_first else (*spatial, channels)


class Spatial(Op):
    """Shared plumbing of ops over a channels-last window (Conv, Pool)."""

    def _map(self, fn, x):
        v, lead = to_channels_last(x, self.window_rank, self.channels_first)
        return from_channels_last(fn(v), lead, self.channels_first)


@dataclass
class WindowedAffine(Spatial):
    """y = h(a), a = L x + bias, for a subclass's linear map L (``_linear``) and its transpose
    (``_transpose``): the fields and derivative rules shared by Conv and the convolution variants
    (kernel (*size, ., .), strides and dilation per window axis, padding).
    vjp: L^T (h'(a) g); jvp: h'(a) (L t); second order: L^T (g h''(a) L t), and for the engine
    (L t)^T diag(g h''(a)) (L t), contracted on the output positions and channels."""

    kernel: np.ndarray = None
    bias: np.ndarray | None = None
    activation: Activation = field(default_factory=Activation)
    strides: tuple = (1,)
    dilation: tuple = (1,)
    padding: str = "valid"
    channels_first: bool = False

    @property
    def window_rank(self):
        return self.kernel.ndim - 2

    def bind(self, s):
        rank = self.window_rank
        return replace(super().bind(s), strides=_per_axis(self.strides, rank), dilation=_per_axis(self.dilation, rank))

    def _window(self, spatial):
        rank = self.window_rank
        window = Window(self.kernel.shape[:-2], _per_axis(self.strides, rank), _per_axis(self.dilation, rank),
                        self.padding)
        window.setup(spatial)
        return window

    def forward(self, x):
        a = self._linear(x)
        if self.bias is not None:
            a += self.bias.reshape(-1, *[1] * self.window_rank) if self.channels_first else self.bias
        y = self.activation(a)
        return y, (a, y)

    def vjp(self, saved, g, out=None):
        return (self._transpose(self.activation.vjp(*saved, g)),)

    def jvp(self, saved, ts):
        return self.activation.jvp(*saved, self._linear(ts[0]))

    def jvp_pre(self, saved, ts, tangent=True):
        """(jvp, L t): the pre-activation tangent kept for ``hess_term``."""
        lt = self._linear(ts[0])
        return (self.activation.jvp(*saved, lt) if tangent else None), lt

    @property
    def linear(self):
        return self.activation.is_piecewise_linear

    def vjp2(self, saved, g, ts):
        return (self._transpose(self.activation.second(*saved, g, self._linear(ts[0]))),)

    def hess_term(self, saved, g, ts, diagonal=False, pre=None):
        return self.activation.hess_term(*saved, g, self._linear(ts[0]) if pre is None else pre, diagonal)


@register
@dataclass
class Conv(WindowedAffine):
    """Conv1D/Conv2D: y = h(a), a[o, f] = bias[f] + sum_{j, c} x[o s + j d - pad, c] kernel[j, c, f].

    kernel has shape (*size, C_in, C_out).  The linear part is one matrix product of
    the gathered windows (rows x positions, size x C_in) with the flattened kernel; its
    transpose multiplies by the kernel's transpose and scatters the windows back.
    """

    def out_shape(self, s):
        spatial, c = _spatial_shape(s, self.window_rank, self.channels_first)
        if c != self.kernel.shape[-2]:
            raise ValueError(f"kernel expects {self.kernel.shape[-2]} input channels, got shape {tuple(s)}")
        if self.bias is not None and self.bias.shape != (self.kernel.shape[-1],):
            raise ValueError(f"bias shape {self.bias.shape} does not match kernel {self.kernel.shape}")
        window = self._window(spatial)
        return _make_shape(window.out, self.kernel.shape[-1], self.channels_first)

    @cached_property
    def window(self):
        return self._window(_spatial_shape(self.in_shapes[0], self.window_rank, self.channels_first)[0])

    def _linear(self, x):
        w = self.kernel.reshape(-1, self.kernel.shape[-1])
        return self._map(lambda v: dot_last(self.window.gather(v).reshape(*v.shape[:1], *self.window.out, -1), w), x)

    def _transpose(self, g):
        w = self.kernel.reshape(-1, self.kernel.shape[-1])
        c_in = self.kernel.shape[-2]
        return self._map(lambda v: self.window.scatter(dot_last(v, w.T).reshape(*v.shape[:-1], -1, c_in)), g)


@register
@dataclass
class Pool(Spatial):
    """MaxPooling/AveragePooling 1D/2D over windows of ``size`` (Keras: strides default to size).

    max: y = x at the window's argmax; on ties the first position in row-major window
    order takes the whole gradient, as TensorFlow's CPU MaxPoolGrad (strict > while scanning).
    average: y = sum / count, where count excludes ``same`` padding (TensorFlow's rule).
    Both are (piecewise) linear: no second-order term.
    """

    linear = True

    how: str = "max"
    size: tuple = (2,)
    strides: tuple = (2,)
    padding: str = "valid"
    channels_first: bool = False

    @property
    def window_rank(self):
        return len(self.size)

    def out_shape(self, s):
        if self.how not in ("max", "average"):
            raise ValueError(f"unknown pooling {self.how!r}")
        spatial, c = _spatial_shape(s, len(self.size), self.channels_first)
        return _make_shape(self._window(spatial).out, c, self.channels_first)

    def bind(self, s):
        rank = len(self.size)
        return replace(super().bind(s), size=_per_axis(self.size, rank), strides=_per_axis(self.strides, rank))

    def _window(self, spatial):
        rank = len(self.size)
        window = Window(_per_axis(self.size, rank), _per_axis(self.strides, rank), (1,) * rank, self.padding)
        window.setup(spatial)
        return window

    @cached_property
    def window(self):
        return self._window(_spatial_shape(self.in_shapes[0], len(self.size), self.channels_first)[0])

    @cached_property
    def count(self):
        """Values under each window, padding excluded: (1, *out, 1)."""
        return self.window.gather(np.ones((1, *self.window.spatial, 1))).sum(axis=-2)

    def forward(self, x):
        if self.how == "average":
            return self._map(lambda v: self.window.gather(v).sum(axis=-2) / self.count.astype(v.dtype), x), None
        v, lead = to_channels_last(x, len(self.size), self.channels_first)
        cols = self.window.gather(v, -np.inf)
        idx = cols.argmax(axis=-2)[..., None, :]  # (N, *out, 1, C), channels last
        return from_channels_last(np.take_along_axis(cols, idx, axis=-2)[..., 0, :], lead, self.channels_first), idx

    def vjp(self, saved, g, out=None):
        kp = math.prod(self.size)
        if self.how == "average":
            def spread(v):
                share = (v / self.count.astype(v.dtype))[..., None, :]  # each window's value, 1/count to each input
                return self.window.scatter(np.broadcast_to(share, (*v.shape[:-1], kp, v.shape[-1])))
            return (self._map(spread, g),)
        idx = saved
        v, lead = to_channels_last(g, len(self.size), self.channels_first)
        v = v.reshape(*lead, *v.shape[1:])  # (B, K, *out, C)
        onehot = idx[:, None] == np.arange(kp)[:, None]  # (N, 1, *out, kp, C)
        cols = v[..., None, :] * onehot
        lead = cols.shape[:2]
        return (from_channels_last(self.window.scatter(cols.reshape(-1, *cols.shape[2:])), lead, self.channels_first),)

    def jvp(self, saved, ts):
        if self.how == "average":
            return self.forward(ts[0])[0]
        v, lead = to_channels_last(ts[0], len(self.size), self.channels_first)
        cols = self.window.gather(v).reshape(*lead, *self.window.out, -1, v.shape[-1])
        picked = np.take_along_axis(cols, saved[:, None], axis=-2)[..., 0, :]
        return from_channels_last(picked.reshape(-1, *picked.shape[2:]), picked.shape[:2], self.channels_first)


@register
@dataclass
class GlobalPool(Op):
    """GlobalAverage/GlobalMaxPooling 1D/2D: mean or max over the ``rank`` spatial axes.

    max: TensorFlow's reduce_max gradient splits the cotangent equally among tied maxima;
    so do we (mask = [x == max] / count).  Both are (piecewise) linear: no second-order term.
    """

    linear = True

    how: str = "average"
    rank: int = 1
    channels_first: bool = False
    keepdims: bool = False

    def out_shape(self, s):
        spatial, c = _spatial_shape(s, self.rank, self.channels_first)
        return _make_shape((1,) * self.rank, c, self.channels_first) if self.keepdims else (c,)

    @property
    def in_shape(self):
        return self.in_shapes[0]

    @property
    def count(self):
        return math.prod(_spatial_shape(self.in_shape, self.rank, self.channels_first)[0])

    @property
    def axes(self):
        return tuple(range(-self.rank, 0)) if self.channels_first else tuple(range(-self.rank - 1, -1))

    def _expand(self, g):
        return g if self.keepdims else np.expand_dims(g, self.axes)

    def forward(self, x):
        if self.how == "average":
            return x.mean(axis=self.axes, keepdims=self.keepdims), None
        m = x.max(axis=self.axes, keepdims=True)
        mask = (x == m).astype(x.dtype)
        mask /= mask.sum(axis=self.axes, keepdims=True)
        return (m if self.keepdims else np.squeeze(m, self.axes)), mask

    def vjp(self, saved, g, out=None):
        if self.how == "average":
            return (np.broadcast_to(self._expand(g) / self.count, (*g.shape[:2], *self.in_shape)),)
        return (self._expand(g) * saved[:, None],)

    def jvp(self, saved, ts):
        if self.how == "average":
            return ts[0].mean(axis=self.axes, keepdims=self.keepdims)
        return (ts[0] * saved[:, None]).sum(axis=self.axes, keepdims=self.keepdims)


