"""The op table: each op maps per-row tensors to a per-row tensor.

Every op has

- ``out_shape(*in_shapes)``: the per-row output shape (raises ``ValueError`` on a mismatch);
- ``forward(*xs) -> (y, saved)``: xs batched over rows, each (N, *in_shape);
- ``vjp(saved, g) -> cotangents``: g of shape (B, K, *out_shape), one cotangent per input
  of shape (B', K, *in_shape), i.e. g @ J for a batch of K row vectors g;
- ``jvp(saved, ts) -> t``: ts of shape (B, D, *in_shape), the tangent J @ t.

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
import math
from dataclasses import dataclass, field

import numpy as np

from .activations import ELEMENTWISE, Activation

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


class Op:
    """Base class; see the module docstring."""

    n_inputs = 1  # None = any number >= 2

    def out_shape(self, *shapes):
        return shapes[0]

    def arrays(self) -> dict:
        """The op's parameter arrays by field name."""
        return {f.name: v for f in dataclasses.fields(self) if isinstance(v := getattr(self, f.name), np.ndarray)}

    def astype(self, dtype):
        new = copy.copy(self)
        for name, value in self.arrays().items():
            if value.dtype.kind == "f":
                setattr(new, name, value.astype(dtype))
        return new

    def n_params(self) -> int:
        return sum(a.size for a in self.arrays().values())


class Linear(Op):
    """An op y = A x + c: vjp is the transpose, jvp is A itself."""

    def forward(self, x):
        return self.apply(x), None

    def vjp(self, saved, g):
        return (self.transpose(g),)

    def jvp(self, saved, ts):
        return self.apply(ts[0], constant=False)


# ---------------------------------------------------------------------------
# Structure: reshapes, slices, identity


@register
@dataclass
class Identity(Linear):
    """y = x.  Dropout, GaussianNoise and other train-only layers at inference."""

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

    shape: tuple = (-1,)
    in_shape: tuple = ()

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
        self.in_shape, self.shape = tuple(s), shape
        return shape

    def apply(self, x, constant=True):
        return x.reshape(*x.shape[: x.ndim - len(self.in_shape)], *self.shape)

    def transpose(self, g):
        return g.reshape(*g.shape[: g.ndim - len(self.shape)], *self.in_shape)


@register
@dataclass
class Slice(Linear):
    """y = x[..., start:stop] reshaped to ``shape``: one model input taken from the flat row."""

    start: int = 0
    stop: int = 0
    shape: tuple = ()
    in_size: int = 0

    def out_shape(self, s):
        if len(s) != 1 or not (0 <= self.start <= self.stop <= s[0]):
            raise ValueError(f"cannot take columns {self.start}:{self.stop} of {s}")
        if math.prod(self.shape) != self.stop - self.start:
            raise ValueError(f"{self.stop - self.start} columns do not make shape {self.shape}")
        self.in_size = s[0]
        return tuple(self.shape)

    def apply(self, x, constant=True):
        return x[..., self.start : self.stop].reshape(*x.shape[:-1], *self.shape)

    def transpose(self, g):
        lead = g.shape[: g.ndim - len(self.shape)]
        if self.stop - self.start == self.in_size:  # the whole row (a one-input model): no copy
            return g.reshape(*lead, self.in_size)
        out = np.zeros((*lead, self.in_size), g.dtype)
        out[..., self.start : self.stop] = g.reshape(*lead, -1)
        return out


@register
@dataclass
class FlatConcat(Op):
    """y = concatenation of the inputs, each flattened per row: the model's output vector."""

    n_inputs = None

    def out_shape(self, *shapes):
        self.sizes = [math.prod(s) for s in shapes]
        self.shapes = [tuple(s) for s in shapes]
        return (sum(self.sizes),)

    def _cat(self, xs):
        nd = [len(s) for s in self.shapes]
        lead = np.broadcast_shapes(*(x.shape[: x.ndim - n] for x, n in zip(xs, nd)))
        return np.concatenate(
            [np.broadcast_to(x, (*lead, *x.shape[x.ndim - n :])).reshape(*lead, -1) for x, n in zip(xs, nd)],
            axis=-1,
        )

    def forward(self, *xs):
        return self._cat(xs), None

    def vjp(self, saved, g):
        parts = np.split(g, np.cumsum(self.sizes)[:-1], axis=-1)
        return tuple(p.reshape(*g.shape[:-1], *s) for p, s in zip(parts, self.shapes))

    def jvp(self, saved, ts):
        return self._cat(ts)


# ---------------------------------------------------------------------------
# Dense and activations


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
        if g.shape[0] == 1 and g.ndim == 3 and a.ndim == 2 and g.size * len(self.kernel) <= 2**22 and self._elementwise():
            # g is the same for every row (the seed): (g * h') @ kernel^T = h' @ M with
            # M[j, (k, i)] = g[k, j] kernel[i, j], one product and no (rows, K, units) temporary.
            d = self.activation.derivative(a, y)
            flat = None if out is None else out.reshape(len(a), -1)
            return (np.matmul(d, self._folded(g[0]), out=flat).reshape(len(a), g.shape[1], -1),)
        gh = self.activation.vjp(a, y, g)
        return (dot_last(gh, self.kernel.T, out if out is not None and out.shape[:-1] == gh.shape[:-1] else None),)

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


@register
@dataclass
class Act(Op):
    """y = h(x) for an activation of the table in activations.py."""

    activation: Activation = field(default_factory=Activation)

    def forward(self, x):
        y = self.activation(x)
        return y, (x, y)

    def vjp(self, saved, g):
        return (self.activation.vjp(*saved, g),)

    def jvp(self, saved, ts):
        return self.activation.jvp(*saved, ts[0])


@register
@dataclass
class Affine(Linear):
    """y = x * scale + shift, elementwise, scale and shift broadcast over the trailing axes.

    BatchNormalization (inference), Normalization and Rescaling are affine maps; see
    the constructors below for their parameters.
    """

    scale: np.ndarray = None
    shift: np.ndarray = None

    def out_shape(self, s):
        try:
            fits = np.broadcast_shapes(tuple(s), np.shape(self.scale), np.shape(self.shift)) == tuple(s)
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"parameters of shape {np.shape(self.scale)} do not fit input {tuple(s)}")
        return s

    def apply(self, x, constant=True):
        return x * self.scale + self.shift if constant else x * self.scale

    def transpose(self, g):
        return g * self.scale


def batch_norm(gamma, beta, mean, var, epsilon, channel_axis, ndim):
    """BatchNormalization at inference: y = gamma (x - mean) / sqrt(var + epsilon) + beta,
    statistics along ``channel_axis`` (negative) of a per-row tensor of ``ndim`` axes."""
    inv = gamma / np.sqrt(var + epsilon)
    shape = [1] * (-channel_axis)
    shape[0] = -1
    return Affine(scale=inv.reshape(shape), shift=(beta - mean * inv).reshape(shape))


def normalization(mean, var, invert=False, epsilon=1e-7):
    """Keras Normalization: y = (x - mean) / max(sqrt(var), eps); invert: y = mean + x max(sqrt(var), eps)."""
    std = np.maximum(np.sqrt(var), epsilon)
    if invert:
        return Affine(scale=std, shift=np.asarray(mean, dtype=std.dtype))
    return Affine(scale=1.0 / std, shift=-mean / std)


@register
@dataclass
class LayerNorm(Op):
    """y = gamma * xhat + beta over ``axes``: xhat = (x - mu) r, r = 1/sqrt(var + eps) (biased var).

    With ``rms``: y = gamma * x r, r = 1/sqrt(mean(x^2) + eps), no centring (RMSNorm;
    Keras 3 RMSNormalization).
    With ``rms_scaling``: y = gamma * x r, r = 1/sqrt(var(x) + eps), the variance *centred*
    but x not, and no beta.  This is what Keras 3 LayerNormalization(rms_scaling=True)
    computes (keras/src/ops/nn.py ``_layer_normalization``, 3.15; deprecated there because
    it is not RMSNorm).

    Every case has the Jacobian of xhat = y before gamma and beta in the form
    r (I - [1 1^T / n] - a b^T / n), the bracket only for plain layer normalisation:
    a = b = xhat for plain and rms; a = x r, b = (x - mu) r for rms_scaling
    (dr/dx = -r^3 (x - mu) / n).  vjp: g -> r (g - [mean g] - b mean(g a)), gamma applied
    first; jvp: t -> r (t - [mean t] - a mean(b t)), gamma applied after.
    """

    axes: tuple = (-1,)
    epsilon: float = 1e-3
    gamma: np.ndarray | None = None
    beta: np.ndarray | None = None
    rms: bool = False
    rms_scaling: bool = False

    def out_shape(self, s):
        if any(-a > len(s) for a in self.axes):
            raise ValueError(f"axes {self.axes} out of range for shape {s}")
        return s

    def forward(self, x):
        ax = tuple(self.axes)
        if self.rms:
            r = 1.0 / np.sqrt((x * x).mean(axis=ax, keepdims=True) + self.epsilon)
            xhat = b = x * r
        else:
            c = x - x.mean(axis=ax, keepdims=True)
            r = 1.0 / np.sqrt((c * c).mean(axis=ax, keepdims=True) + self.epsilon)
            b = c * r
            xhat = x * r if self.rms_scaling else b
        y = xhat if self.gamma is None else xhat * self.gamma
        if self.beta is not None:
            y = y + self.beta
        return y, (xhat, b, r)

    def _normalize_tangent(self, saved, t, transpose):
        a, b, r = (s[:, None] for s in saved)
        if transpose:
            a, b = b, a
        ax = tuple(self.axes)
        out = t - a * (t * b).mean(axis=ax, keepdims=True)
        if not (self.rms or self.rms_scaling):
            out = out - t.mean(axis=ax, keepdims=True)
        return out * r

    def vjp(self, saved, g):
        return (self._normalize_tangent(saved, g if self.gamma is None else g * self.gamma, True),)

    def jvp(self, saved, ts):
        t = self._normalize_tangent(saved, ts[0], False)
        return t if self.gamma is None else t * self.gamma


# ---------------------------------------------------------------------------
# Merges


@register
@dataclass
class Merge(Op):
    """y = combination of several same-shape inputs: ``how`` is add, subtract (two
    inputs), multiply, average, maximum or minimum.

    maximum/minimum send the cotangent to the first input among ties, as TF's
    Maximum/Minimum gradients (x >= y, x <= y) do in Keras' left-to-right fold.
    """

    how: str = "add"
    n_inputs = None

    def out_shape(self, *shapes):
        self.n = len(shapes)
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

    def vjp(self, saved, g):
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

    def jvp(self, saved, ts):
        if self.how == "multiply":
            xs = saved
            return sum(t * math.prod([x for j, x in enumerate(xs) if j != i])[:, None] for i, t in enumerate(ts))
        if self.how in ("maximum", "minimum"):
            return np.choose(saved[:, None], ts)
        return self.forward(*ts)[0]


@register
@dataclass
class Concat(Op):
    """y = concatenation of the inputs along ``axis`` (negative)."""

    axis: int = -1
    n_inputs = None

    def out_shape(self, *shapes):
        ax = self.axis
        if any(-ax > len(s) for s in shapes) or len({s[:ax] + s[ax:][1:] for s in map(tuple, shapes)}) != 1:
            raise ValueError(f"cannot concatenate shapes {list(shapes)} along axis {ax}")
        self.sizes = [s[ax] for s in shapes]
        out = list(shapes[0])
        out[ax] = sum(self.sizes)
        return tuple(out)

    def forward(self, *xs):
        return np.concatenate(xs, axis=self.axis), None

    def vjp(self, saved, g):
        return tuple(np.split(g, np.cumsum(self.sizes)[:-1], axis=self.axis))

    def jvp(self, saved, ts):
        lead = np.broadcast_shapes(*(t.shape[:2] for t in ts))
        return np.concatenate([np.broadcast_to(t, (*lead, *t.shape[2:])) for t in ts], axis=self.axis)


# ---------------------------------------------------------------------------
# Convolution and pooling: sliding windows over the spatial axes


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


@register
@dataclass
class Conv(Spatial):
    """Conv1D/Conv2D: y = h(a), a[o, f] = bias[f] + sum_{j, c} x[o s + j d - pad, c] kernel[j, c, f].

    kernel has shape (*size, C_in, C_out).  The linear part is one matrix product of
    the gathered windows (rows x positions, size x C_in) with the flattened kernel; its
    transpose multiplies by the kernel's transpose and scatters the windows back.
    """

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

    def out_shape(self, s):
        spatial, c = _spatial_shape(s, self.window_rank, self.channels_first)
        if c != self.kernel.shape[-2]:
            raise ValueError(f"kernel expects {self.kernel.shape[-2]} input channels, got shape {tuple(s)}")
        if self.bias is not None and self.bias.shape != (self.kernel.shape[-1],):
            raise ValueError(f"bias shape {self.bias.shape} does not match kernel {self.kernel.shape}")
        rank = self.window_rank
        self.strides, self.dilation = _per_axis(self.strides, rank), _per_axis(self.dilation, rank)
        self.window = Window(self.kernel.shape[:-2], self.strides, self.dilation, self.padding)
        return _make_shape(self.window.setup(spatial), self.kernel.shape[-1], self.channels_first)

    def _linear(self, x):
        w = self.kernel.reshape(-1, self.kernel.shape[-1])
        return self._map(lambda v: dot_last(self.window.gather(v).reshape(*v.shape[:1], *self.window.out, -1), w), x)

    def _transpose(self, g):
        w = self.kernel.reshape(-1, self.kernel.shape[-1])
        c_in = self.kernel.shape[-2]
        return self._map(lambda v: self.window.scatter(dot_last(v, w.T).reshape(*v.shape[:-1], -1, c_in)), g)

    def forward(self, x):
        a = self._linear(x)
        if self.bias is not None:
            a += self.bias.reshape(-1, *[1] * self.window_rank) if self.channels_first else self.bias
        y = self.activation(a)
        return y, (a, y)

    def vjp(self, saved, g):
        return (self._transpose(self.activation.vjp(*saved, g)),)

    def jvp(self, saved, ts):
        return self.activation.jvp(*saved, self._linear(ts[0]))


@register
@dataclass
class Pool(Spatial):
    """MaxPooling/AveragePooling 1D/2D over windows of ``size`` (Keras: strides default to size).

    max: y = x at the window's argmax; on ties the first position in row-major window
    order takes the whole gradient, as TensorFlow's CPU MaxPoolGrad (strict > while scanning).
    average: y = sum / count, where count excludes ``same`` padding (TensorFlow's rule).
    """

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
        self.size = _per_axis(self.size, len(self.size))
        self.strides = _per_axis(self.strides, len(self.size))
        self.window = Window(self.size, self.strides, (1,) * len(self.size), self.padding)
        out = self.window.setup(spatial)
        self.count = self.window.gather(np.ones((1, *spatial, 1))).sum(axis=-2)  # (1, *out, 1)
        return _make_shape(out, c, self.channels_first)

    def forward(self, x):
        if self.how == "average":
            return self._map(lambda v: self.window.gather(v).sum(axis=-2) / self.count.astype(v.dtype), x), None
        v, lead = to_channels_last(x, len(self.size), self.channels_first)
        cols = self.window.gather(v, -np.inf)
        idx = cols.argmax(axis=-2)[..., None, :]  # (N, *out, 1, C), channels last
        return from_channels_last(np.take_along_axis(cols, idx, axis=-2)[..., 0, :], lead, self.channels_first), idx

    def vjp(self, saved, g):
        kp = math.prod(self.size)
        if self.how == "average":
            def spread(v):
                return self.window.scatter(np.broadcast_to((v / self.count)[..., None, :], (*v.shape[:-1], kp, v.shape[-1])))
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
    so do we (mask = [x == max] / count).
    """

    how: str = "average"
    rank: int = 1
    channels_first: bool = False
    keepdims: bool = False

    def out_shape(self, s):
        spatial, c = _spatial_shape(s, self.rank, self.channels_first)
        self.in_shape, self.count = tuple(s), math.prod(spatial)
        return _make_shape((1,) * self.rank, c, self.channels_first) if self.keepdims else (c,)

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

    def vjp(self, saved, g):
        if self.how == "average":
            return (np.broadcast_to(self._expand(g) / self.count, (*g.shape[:2], *self.in_shape)),)
        return (self._expand(g) * saved[:, None],)

    def jvp(self, saved, ts):
        if self.how == "average":
            return ts[0].mean(axis=self.axes, keepdims=self.keepdims)
        return (ts[0] * saved[:, None]).sum(axis=self.axes, keepdims=self.keepdims)


# ---------------------------------------------------------------------------
# Serialisation: an op is its class name, its scalar config and its arrays


def op_config(op: Op) -> dict:
    """The op's non-array fields as JSON-ready values (activations as dicts)."""
    out = {}
    for f in dataclasses.fields(op):
        v = getattr(op, f.name)
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
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, v in {**config, **arrays}.items():
        if key not in fields:
            raise ValueError(f"op {name} has no parameter {key!r}")
        if key == "activation":
            v = Activation(**v)
        elif isinstance(v, list):
            v = tuple(v)
        kwargs[key] = v
    return cls(**kwargs)
