"""Keras layer builders: one small function per supported layer class, reading the layer's
config and weights (shapes checked against the config) and adding ops to a ``GraphBuilder``.

A builder sees one ``Call`` of the layer (its config, its input nodes, its weights) and
returns the node it adds last.  Keras axes count the batch axis; ops take negative per-row
axes (``Call.axis``).  A new Keras layer is a builder here and a line in ``BUILDERS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .. import ops
from ..errors import ModelError, one_line
from ..graph import GraphBuilder
from ..ops import Activation

if TYPE_CHECKING:
    from .keras_config import Layer, Loader

IDENTITY = {
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
    "GaussianDropout", "AlphaDropout", "ActivityRegularization",
}


# ---------------------------------------------------------------------------
# One call of a layer: what builders see


@dataclass
class Call:
    loader: Loader
    b: GraphBuilder
    layer: Layer
    inputs: list[int]
    shared: list = field(default_factory=list)
    n_added: int = 0

    @property
    def cfg(self) -> dict:
        return self.layer.config

    @property
    def keras3(self) -> bool:
        return self.loader.keras3

    @property
    def shapes(self) -> list[tuple]:
        return [self.b.nodes[i].shape for i in self.inputs]

    @property
    def shape(self) -> tuple:
        return self.shapes[0]

    def fail(self, message) -> ModelError:
        return self.loader.fail(self.layer, message)

    def add(self, op: ops.Op, inputs=None, last=True) -> int:
        """Add ``op`` reading ``inputs`` (default: the call's inputs).  A layer called again
        reuses the ops of its first call, so shared layers share their weights."""
        if self.n_added < len(self.shared):
            op = self.shared[self.n_added]
        else:
            self.shared.append(op)
        self.n_added += 1
        name = self.layer.name if last else f"{self.layer.name}/{self.n_added}"
        try:  # GraphBuilder.add infers and checks the shape; its errors name the layer
            return self.b.add(name, op, self.inputs if inputs is None else inputs, self.layer.cls)
        except ModelError as e:
            raise ModelError(f"{self.loader.path}: {one_line(e)}") from None

    def weights(self, *specs) -> list[np.ndarray]:
        """The layer's weights, checked against ``specs`` = (name, expected shape), in Keras' order."""
        stored = self.loader.store.arrays(self.layer)
        if len(stored) > len(specs):
            names = ", ".join(n for n, _ in stored)
            raise self.fail(f"{len(stored)} weights stored ({names}), expected {len(specs)}")
        out = []
        for i, (what, shape) in enumerate(specs):
            if i >= len(stored):
                raise self.fail(f"missing weight '{what}'")
            arr = stored[i][1]
            if tuple(arr.shape) != tuple(shape):
                raise self.fail(f"weight '{what}' expected shape {tuple(shape)}, got {tuple(arr.shape)}")
            out.append(arr)
        return out

    def axis(self, a, rank=None) -> int:
        """A Keras axis (counting the batch axis) as a negative per-row axis."""
        rank = len(self.shape) if rank is None else rank
        if isinstance(a, (list, tuple)):
            if len(a) != 1:
                raise self.fail(f"axis {a}: one axis expected")
            a = a[0]
        neg = a - (rank + 1) if a >= 0 else a
        if not -rank <= neg <= -1:
            raise self.fail(f"axis {a} is the batch axis or out of range for per-row shape {self.shape}")
        return neg

    def activation(self, spec) -> Activation:
        return activation(self, spec)


# ---------------------------------------------------------------------------
# Activations: strings, serialized functions, layer objects


# jacprop's own names for variants that Keras spells with options (gelu approximate=True, Keras 2's
# hard_sigmoid, ReLU(max_value)): no Keras version accepts them as strings, so a file that holds one is refused.
INTERNAL_ACTIVATIONS = frozenset({"gelu_tanh", "hard_sigmoid_k2", "relu_max"})


def activation(c: Call, spec, **kwargs) -> Activation:
    """An activation given as a string, a serialized function or an activation layer object.

    Version differences: hard_sigmoid is clip(0.2a + 0.5, 0, 1) in Keras 2 and relu6(a + 3)/6
    in Keras 3; gelu is exact unless ``approximate``.  leaky_relu's slope goes to TensorFlow as
    a float32 op attribute (tf.nn.leaky_relu), so the slope Keras really uses is
    float32(slope), even in a float64 model: we round it the same way (measured for the string,
    LeakyReLU layers and objects and ReLU(negative_slope), Keras 2 and 3).  ELU's alpha is used
    exactly (measured).  See sample_models/keras/CONSTANTS.md.
    """
    if spec is None:
        return Activation()
    if isinstance(spec, dict):
        cls, cfg = spec.get("class_name"), spec.get("config")
        if cls == "function" and isinstance(cfg, str):
            module = spec.get("module") or ""
            if not (module == "builtins" or module.startswith(("keras", "tf_keras", "tensorflow"))):
                raise c.fail(f"activation {spec.get('registered_name') or cfg!r} is a custom function; "
                             "custom activations cannot be loaded")
            return activation(c, cfg)
        if cls in ACTIVATION_LAYERS and isinstance(cfg, dict):
            return ACTIVATION_LAYERS[cls](c, cfg)
        raise c.fail(f"activation {spec.get('registered_name') or cls!r} is not supported")
    if not isinstance(spec, str) or spec in INTERNAL_ACTIVATIONS:
        raise c.fail(f"activation {spec!r} is not supported")
    name = {"hard_sigmoid": "hard_sigmoid" if c.keras3 else "hard_sigmoid_k2"}.get(spec, spec)
    if name == "gelu" and kwargs.get("approximate"):
        name = "gelu_tanh"
    param = {"leaky_relu": float(np.float32(kwargs.get("slope", 0.2))), "elu": kwargs.get("alpha", 1.0)}
    try:
        return Activation(name, alpha=param.get(name, 0.0), axis=kwargs.get("axis", -1))
    except ValueError:
        raise c.fail(f"activation {spec!r} is not supported") from None


def _relu_layer(c: Call, cfg) -> Activation:
    """Keras ReLU(max_value, negative_slope, threshold): relu, relu6, clip(a, 0, max) or leaky."""
    slope = cfg.get("negative_slope", cfg.get("alpha", 0.0)) or 0.0
    max_value, threshold = cfg.get("max_value"), cfg.get("threshold", 0.0) or 0.0
    if threshold != 0 or (slope != 0 and max_value is not None):
        raise c.fail(f"ReLU with threshold={threshold}, negative_slope={slope}, max_value={max_value} "
                     "is not supported")
    if slope != 0:
        return activation(c, "leaky_relu", slope=slope)
    if max_value is None:
        return Activation("relu")
    # Measured in float64 models (sample_models/keras/CONSTANTS.md): Keras 3 clips at float32(max_value)
    # (ops.cast of a Python float), Keras 2 at the exact max_value (backend._constant_to_tensor).
    cap = float(np.float32(max_value)) if c.keras3 else float(max_value)
    return Activation("relu6") if max_value == 6 else Activation("relu_max", alpha=cap)


ACTIVATION_LAYERS: dict[str, Callable] = {
    "Activation": lambda c, cfg: activation(c, cfg.get("activation")),
    "ReLU": _relu_layer,
    "LeakyReLU": lambda c, cfg: activation(c, "leaky_relu", slope=cfg.get("negative_slope", cfg.get("alpha", 0.3))),
    "ELU": lambda c, cfg: activation(c, "elu", alpha=cfg.get("alpha", 1.0)),
    "Softmax": lambda c, cfg: Activation("softmax", axis=c.axis(cfg.get("axis", -1))),
}


# ---------------------------------------------------------------------------
# Layer builders: Call -> output node index


def _dense(c: Call) -> int:
    """y = act(x @ kernel + bias) over the last axis."""
    units = c.cfg["units"]
    specs = [("kernel", (c.shape[-1], units))] + ([("bias", (units,))] if c.cfg.get("use_bias", True) else [])
    kernel, *bias = c.weights(*specs)
    activation = c.activation(c.cfg.get("activation"))
    return c.add(ops.Dense(kernel=kernel, bias=bias[0] if bias else None, activation=activation))


def _act_layer(c: Call) -> int:
    c.weights()
    return c.add(ops.Act(ACTIVATION_LAYERS[c.layer.cls](c, c.cfg)))


def _prelu(c: Call) -> int:
    """PReLU: y = relu(x) - alpha * relu(-x), alpha per element (1 along ``shared_axes``)."""
    shape = list(c.shape)
    for a in c.cfg.get("shared_axes") or []:
        shape[c.axis(a)] = 1
    (alpha,) = c.weights(("alpha", tuple(shape)))
    pos = c.add(ops.Act(Activation("relu")), last=False)
    neg = c.add(ops.Affine(scale=np.array(-1.0), shift=np.array(0.0)), last=False)
    neg = c.add(ops.Act(Activation("relu")), [neg], last=False)
    neg = c.add(ops.Affine(scale=-alpha, shift=np.zeros_like(alpha)), [neg], last=False)
    return c.add(ops.Merge("add"), [pos, neg])


def _identity(c: Call) -> int:
    c.weights()
    return c.add(ops.Identity())


def _rescaling(c: Call) -> int:
    """y = x * scale + offset (scalars or per-channel lists).  Keras casts them with
    backend.cast, i.e. tf.cast of a Python float, which makes a float32 tensor first: a float64
    model really uses float32(scale) and float32(offset) (measured in Keras 2 and 3, see
    sample_models/keras/CONSTANTS.md), and so do we."""
    c.weights()
    scale = np.asarray(c.cfg.get("scale", 1.0), dtype=np.float32).astype(np.float64)
    offset = np.asarray(c.cfg.get("offset", 0.0), dtype=np.float32).astype(np.float64)
    return c.add(ops.Affine(scale=scale, shift=offset))


def _flatten(c: Call) -> int:
    """Row-major flatten; channels_first moves the channels last first (as Keras does)."""
    c.weights()
    if c.cfg.get("data_format") == "channels_first" and len(c.shape) > 1:
        rank = len(c.shape)
        moved = c.add(ops.Transpose(perm=(*range(1, rank), 0)), last=False)
        return c.add(ops.Reshape(shape=(-1,)), [moved])
    return c.add(ops.Reshape(shape=(-1,)))


def _reshape(c: Call) -> int:
    c.weights()
    return c.add(ops.Reshape(shape=tuple(c.cfg["target_shape"])))


def _permute(c: Call) -> int:
    """Keras Permute(dims): dims are 1-based per-row axes."""
    c.weights()
    return c.add(ops.Transpose(perm=tuple(d - 1 for d in c.cfg["dims"])))


def _merge(how):
    def build(c: Call) -> int:
        c.weights()
        return c.add(ops.Merge(how))
    build.__doc__ = f"Elementwise {how} of the inputs."
    return build


def _concatenate(c: Call) -> int:
    c.weights()
    return c.add(ops.Concat(axis=c.axis(c.cfg.get("axis", -1))))


def _tuple(v, rank) -> tuple:
    v = tuple(v) if isinstance(v, (list, tuple)) else (v,)
    return v * rank if len(v) == 1 else v


def _data_format(c: Call) -> bool:
    fmt = c.cfg.get("data_format") or "channels_last"
    if fmt not in ("channels_last", "channels_first"):
        raise c.fail(f"data_format {fmt!r} is not supported")
    return fmt == "channels_first"


def _conv(rank):
    def build(c: Call) -> int:
        """Conv{rank}D: kernel (*kernel_size, C_in, filters); groups must be 1."""
        if c.cfg.get("groups", 1) != 1:
            raise c.fail(f"groups={c.cfg['groups']} is not supported (only groups=1)")
        padding = c.cfg.get("padding", "valid")
        if padding not in ("valid", "same") and not (padding == "causal" and rank == 1):
            raise c.fail(f"padding {padding!r} is not supported")
        cf = _data_format(c)
        if len(c.shape) != rank + 1:
            raise c.fail(f"expects {rank} spatial axes and channels, got shape {c.shape}")
        c_in, filters = c.shape[0 if cf else -1], c.cfg["filters"]
        size = _tuple(c.cfg["kernel_size"], rank)
        specs = [("kernel", (*size, c_in, filters))] + ([("bias", (filters,))] if c.cfg.get("use_bias", True) else [])
        kernel, *bias = c.weights(*specs)
        return c.add(ops.Conv(kernel=kernel, bias=bias[0] if bias else None,
                              activation=c.activation(c.cfg.get("activation")),
                              strides=_tuple(c.cfg.get("strides", 1), rank),
                              dilation=_tuple(c.cfg.get("dilation_rate", 1), rank), padding=padding, channels_first=cf))
    return build


def _pool(how, rank):
    def build(c: Call) -> int:
        """{how} pooling over windows of pool_size (strides default to pool_size)."""
        c.weights()
        size = _tuple(c.cfg.get("pool_size", 2), rank)
        strides = c.cfg.get("strides")
        strides = size if strides is None else _tuple(strides, rank)
        return c.add(ops.Pool(how, size, strides, c.cfg.get("padding", "valid"), channels_first=_data_format(c)))
    return build


def _global_pool(how, rank):
    def build(c: Call) -> int:
        c.weights()
        keepdims = bool(c.cfg.get("keepdims", False))
        return c.add(ops.GlobalPool(how, rank, channels_first=_data_format(c), keepdims=keepdims))
    return build


BUILDERS: dict[str, Callable[[Call], int]] = {
    "Dense": _dense,
    **{cls: _act_layer for cls in ACTIVATION_LAYERS},
    "PReLU": _prelu,
    **{cls: _identity for cls in IDENTITY},
    "Rescaling": _rescaling,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Permute": _permute,
    **{cls: _merge(cls.lower()) for cls in ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")},
    "Concatenate": _concatenate,
    "Conv1D": _conv(1), "Conv2D": _conv(2), "Convolution1D": _conv(1), "Convolution2D": _conv(2),
    "MaxPooling1D": _pool("max", 1), "MaxPooling2D": _pool("max", 2),
    "MaxPool1D": _pool("max", 1), "MaxPool2D": _pool("max", 2),
    "AveragePooling1D": _pool("average", 1), "AveragePooling2D": _pool("average", 2),
    "AvgPool1D": _pool("average", 1), "AvgPool2D": _pool("average", 2),
    "GlobalAveragePooling1D": _global_pool("average", 1), "GlobalAveragePooling2D": _global_pool("average", 2),
    "GlobalAvgPool1D": _global_pool("average", 1), "GlobalAvgPool2D": _global_pool("average", 2),
    "GlobalMaxPooling1D": _global_pool("max", 1), "GlobalMaxPooling2D": _global_pool("max", 2),
    "GlobalMaxPool1D": _global_pool("max", 1), "GlobalMaxPool2D": _global_pool("max", 2),
}


