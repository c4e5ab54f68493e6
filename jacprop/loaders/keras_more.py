"""Keras layer builders for the padding, cropping, upsampling, depthwise, separable and transposed
convolution layers, RepeatVector, Identity and the augmentation layers (identity at inference).

Keras axes and layouts: ZeroPadding/Cropping take ``padding``/``cropping`` as an int, a pair per axis
or (for 1D) one pair; UpSampling ``size`` per spatial axis (1D: ``size`` repeats each step);
DepthwiseConv kernel (*k, C, M) gives C M channels ordered c M + m; SeparableConv is a depthwise
conv (strides, dilation, padding) then a 1x1 conv with the bias and activation;
ConvTranspose kernel (*k, C_out, C_in).
"""

from __future__ import annotations

from .. import ops
from ..ops.tensor_index import Pad, Strided
from .keras_layers import Call, _data_format, _identity, _tuple


def _spatial(c: Call, rank: int) -> tuple[bool, list[int]]:
    """channels_first, and the negative per-row axes of the spatial dimensions."""
    cf = _data_format(c)
    if len(c.shape) != rank + 1:
        raise c.fail(f"expects {rank} spatial axes and channels, got shape {c.shape}")
    axes = list(range(-rank, 0)) if cf else list(range(-rank - 1, -1))
    return cf, axes


def _pairs(c: Call, value, rank: int, what: str) -> list[tuple[int, int]]:
    """Keras' int | (a, b) for 1D | ((a, b), (c, d)) or (a, b) per axis for 2D, as one pair per axis."""
    if isinstance(value, int):
        pairs = [(value, value)] * rank
    elif rank == 1 and len(value) == 2 and all(isinstance(v, int) for v in value):
        pairs = [tuple(value)]
    elif len(value) == rank:
        pairs = [(v, v) if isinstance(v, int) else tuple(v) for v in value]
    else:
        raise c.fail(f"{what} {value!r} does not give {rank} axes")
    if any(len(p) != 2 or min(p) < 0 for p in pairs):
        raise c.fail(f"{what} {value!r} must be non-negative pairs")
    return [(int(a), int(b)) for a, b in pairs]


def _zero_padding(rank):
    def build(c: Call) -> int:
        """Zeros before and after each spatial axis (ops.tensor_index.Pad, whose transpose crops)."""
        c.weights()
        _, axes = _spatial(c, rank)
        pairs = dict(zip(axes, _pairs(c, c.cfg.get("padding", 1), rank, "padding")))
        return c.add(Pad(pads=tuple(pairs.get(a, (0, 0)) for a in range(-len(c.shape), 0))))
    return build


def _cropping(rank):
    def build(c: Call) -> int:
        """Steps cut from each end of each spatial axis (ops.tensor_index.Strided).  Keras' defaults:
        Cropping1D (1, 1), Cropping2D ((0, 0), (0, 0))."""
        c.weights()
        _, axes = _spatial(c, rank)
        pairs = dict(zip(axes, _pairs(c, c.cfg.get("cropping", 1 if rank == 1 else 0), rank, "cropping")))
        index = []
        for a in range(-len(c.shape), 0):
            lo, hi = pairs.get(a, (0, 0))
            if lo + hi >= c.shape[a]:
                raise c.fail(f"cropping {lo} + {hi} leaves nothing of an axis of {c.shape[a]}")
            index.append(tuple(range(lo, c.shape[a] - hi)))
        return c.add(Strided(index=tuple(index)))
    return build


def _upsampling(rank):
    def build(c: Call) -> int:
        """Each spatial axis ``size`` times longer: nearest repeats, bilinear as tf.image.resize."""
        c.weights()
        _, axes = _spatial(c, rank) if rank > 1 else (False, [-2])
        if rank == 1 and len(c.shape) != 2:
            raise c.fail(f"expects (steps, features), got shape {c.shape}")
        size = _tuple(c.cfg.get("size", 2), rank)
        how = c.cfg.get("interpolation", "nearest")
        if how not in ("nearest", "bilinear"):
            raise c.fail(f"interpolation {how!r} is not supported (nearest, bilinear)")
        return c.add(ops.Resize(axes=tuple(axes), factors=tuple(int(s) for s in size), how=how))
    return build


def _conv_args(c: Call, rank: int, transpose=False) -> dict:
    padding = c.cfg.get("padding", "valid")
    if padding not in ("valid", "same"):
        raise c.fail(f"padding {padding!r} is not supported")
    dilation = _tuple(c.cfg.get("dilation_rate", 1), rank)
    if transpose and (c.cfg.get("output_padding") is not None or any(d != 1 for d in dilation)):
        raise c.fail("output_padding and dilation_rate != 1 are not supported for a transposed convolution")
    return dict(strides=_tuple(c.cfg.get("strides", 1), rank), dilation=dilation, padding=padding,
                channels_first=_spatial(c, rank)[0])


def _depthwise(rank):
    def build(c: Call) -> int:
        """DepthwiseConv{rank}D: kernel (*kernel_size, C, depth_multiplier), bias (C M,)."""
        args = _conv_args(c, rank)
        ch = c.shape[0 if args["channels_first"] else -1]
        m, size = int(c.cfg.get("depth_multiplier", 1)), _tuple(c.cfg["kernel_size"], rank)
        specs = [("depthwise_kernel", (*size, ch, m))] + ([("bias", (ch * m,))] if c.cfg.get("use_bias", True) else [])
        kernel, *bias = c.weights(*specs)
        return c.add(ops.Depthwise(kernel=kernel, bias=bias[0] if bias else None,
                                   activation=c.activation(c.cfg.get("activation")), **args))
    return build


def _separable(rank):
    def build(c: Call) -> int:
        """SeparableConv{rank}D: a depthwise conv without bias, then a 1x1 conv with bias and activation."""
        args = _conv_args(c, rank)
        ch = c.shape[0 if args["channels_first"] else -1]
        m, size, filters = int(c.cfg.get("depth_multiplier", 1)), _tuple(c.cfg["kernel_size"], rank), c.cfg["filters"]
        specs = [("depthwise_kernel", (*size, ch, m)), ("pointwise_kernel", (*(1,) * rank, ch * m, filters))]
        specs += [("bias", (filters,))] if c.cfg.get("use_bias", True) else []
        dw, pw, *bias = c.weights(*specs)
        node = c.add(ops.Depthwise(kernel=dw, **args), last=False)
        activation = c.activation(c.cfg.get("activation"))
        return c.add(ops.Conv(kernel=pw, bias=bias[0] if bias else None, activation=activation,
                              channels_first=args["channels_first"]), [node])
    return build


def _transpose(rank):
    def build(c: Call) -> int:
        """Conv{rank}DTranspose: kernel (*kernel_size, filters, C_in), bias (filters,)."""
        args = _conv_args(c, rank, transpose=True)
        ch, filters = c.shape[0 if args["channels_first"] else -1], c.cfg["filters"]
        size = _tuple(c.cfg["kernel_size"], rank)
        specs = [("kernel", (*size, filters, ch))] + ([("bias", (filters,))] if c.cfg.get("use_bias", True) else [])
        kernel, *bias = c.weights(*specs)
        return c.add(ops.ConvTranspose(kernel=kernel, bias=bias[0] if bias else None,
                                       activation=c.activation(c.cfg.get("activation")), **args))
    return build


def _repeat_vector(c: Call) -> int:
    c.weights()
    return c.add(ops.Repeat(n=int(c.cfg["n"])))


AUGMENTATION = ("RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomContrast",
                "RandomBrightness", "Identity")  # identity at inference (the shape-changing ones are not)

BUILDERS = {
    "ZeroPadding1D": _zero_padding(1), "ZeroPadding2D": _zero_padding(2),
    "Cropping1D": _cropping(1), "Cropping2D": _cropping(2),
    "UpSampling1D": _upsampling(1), "UpSampling2D": _upsampling(2),
    "DepthwiseConv1D": _depthwise(1), "DepthwiseConv2D": _depthwise(2),
    "SeparableConv1D": _separable(1), "SeparableConv2D": _separable(2),
    "SeparableConvolution1D": _separable(1), "SeparableConvolution2D": _separable(2),
    "Conv1DTranspose": _transpose(1), "Conv2DTranspose": _transpose(2),
    "Convolution1DTranspose": _transpose(1), "Convolution2DTranspose": _transpose(2), "Deconvolution2D": _transpose(2),
    "RepeatVector": _repeat_vector,
    **{cls: _identity for cls in AUGMENTATION},
}
