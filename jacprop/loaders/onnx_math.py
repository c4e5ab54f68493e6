"""ONNX op handlers, the numeric families: activations, arithmetic, Gemm/MatMul, normalisation,
convolution and pooling, reductions.  A handler is ``(loader, node, attrs, input values) -> output
values`` (``onnx_tensors``' kinds); ``HANDLERS`` maps the op type to it (``onnx.Loader.node``).
A new ONNX op of these families is a handler here and a line in ``HANDLERS``.
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..ops import Activation, tensor_index
from ..ops import tensor as ops_onnx
from .onnx_tensors import Const, Tensor, f32


def _act(name, alpha=None):
    def handler(L, node, a, ins):
        act = Activation(name, f32(a.get("alpha", alpha)) if alpha is not None else 0.0)
        return [L.emit(node, ops.Act(activation=act), ins[:1])]

    return handler


def _pointwise(name, **defaults):
    def handler(L, node, a, ins):
        p = [f32(a.get(k, v)) for k, v in defaults.items()] + [0.0, 0.0]
        return [L.emit(node, ops_onnx.Pointwise(name, p[0], p[1]), ins[:1])]

    return handler


def _gelu(L, node, a, ins):
    return [L.emit(node, ops_onnx.Pointwise("gelu_tanh" if a.get("approximate") == "tanh" else "gelu"), ins[:1])]


def _softmax(name):
    def handler(L, node, a, ins):
        x = ins[0]
        rank = x.rank if isinstance(x, Tensor) else np.ndim(x.value)
        axis = a.get("axis", -1 if L.opset >= 13 else 1)
        ax = L.axis(node, axis, x)
        if L.opset < 13 and ax != -1:
            raise L.fail(
                node,
                f"axis {axis} of rank {rank} before opset 13 flattens the trailing axes; only the last "
                "axis is supported",
            )
        return [L.emit(node, ops.Act(activation=Activation(name, axis=ax)), [x])]

    return handler


def _clip(L, node, a, ins):
    if L.opset < 11:
        lo, hi = a.get("min", -np.inf), a.get("max", np.inf)
    else:
        lo = L.const(node, ins[1] if len(ins) > 1 else None, "min")
        hi = L.const(node, ins[2] if len(ins) > 2 else None, "max")
        lo, hi = (-np.inf if lo is None else float(lo)), (np.inf if hi is None else float(hi))
    return [L.emit(node, ops_onnx.Pointwise("clip", lo, hi), ins[:1])]


NUMPY = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}
MERGE = {"Add": "add", "Sub": "subtract", "Mul": "multiply"}


def _arith(L, node, a, ins):
    op_type = node["op_type"]
    x, y = ins
    if isinstance(x, Const) and isinstance(y, Const):
        try:
            if op_type == "Div" and x.value.dtype.kind in "iu" and y.value.dtype.kind in "iu":
                return [Const(np.floor_divide(x.value, y.value))]  # integer shape arithmetic
            return [Const(NUMPY[op_type](x.value, y.value))]
        except TypeError:
            raise L.fail(node, "computes with the batch size") from None
    if isinstance(x, Tensor) and isinstance(y, Tensor):
        if x.shape == y.shape and op_type in MERGE:
            return [L.emit(node, ops.Merge(MERGE[op_type]), [x, y])]
        return [L.emit(node, ops_onnx.Binary(op_type.lower()), [x, y])]
    t, c, flipped = (x, y, False) if isinstance(x, Tensor) else (y, x, True)
    if not isinstance(t, Tensor) or not isinstance(c, Const):
        return [L.emit(node, ops.Identity(), [L.tensor(node, v, 2) for v in (x, y)][:1])]  # raises the right error
    c = L.per_row(node, c.value, t.rank)
    if c.dtype == object:
        raise L.fail(node, "computes with the batch size")
    c = c.astype(np.float64)
    if np.broadcast_shapes(t.shape, c.shape) != t.shape:
        raise L.fail(node, f"constant of shape {c.shape} broadcasts the row {t.shape} to a larger shape")
    one, zero = np.ones(()), np.zeros(())
    if op_type == "Add":
        op = ops.Affine(scale=one, shift=c)
    elif op_type == "Mul":
        op = ops.Affine(scale=c, shift=zero)
    elif op_type == "Sub":
        op = ops.Affine(scale=-one, shift=c) if flipped else ops.Affine(scale=one, shift=-c)
    elif not flipped:
        op = ops.Affine(scale=1.0 / c, shift=zero)
    else:  # c / x
        t = L.emit(node, ops_onnx.Pointwise("reciprocal"), [t], name=node["output"][0] + "/reciprocal")
        op = ops.Affine(scale=c, shift=zero)
    return [L.emit(node, op, [t])]


def _pow(L, node, a, ins):
    x, e = ins
    e = L.const(node, e, "the exponent")
    if isinstance(x, Const):
        return [Const(np.power(x.value.astype(np.float64), e))]
    if np.size(e) != 1:
        raise L.fail(node, "only a scalar constant exponent is supported")
    return [L.emit(node, ops_onnx.Pointwise("pow", float(np.reshape(e, ()))), [x])]


def _variadic(how):
    def handler(L, node, a, ins):
        if all(isinstance(v, Const) for v in ins):
            f = {"add": np.add, "average": np.add, "maximum": np.maximum, "minimum": np.minimum}[how]
            out = ins[0].value
            for v in ins[1:]:
                out = f(out, v.value)
            return [Const(out / len(ins) if how == "average" else out)]
        if len(ins) == 1:
            return [ins[0]]
        shapes = {v.shape for v in ins if isinstance(v, Tensor)}
        if len(shapes) != 1 or any(isinstance(v, Const) for v in ins):
            raise L.fail(node, "inputs must be tensors of one shape")
        return [L.emit(node, ops.Merge(how), ins)]

    return handler


def _gemm(L, node, a, ins):
    A, B = ins[0], ins[1]
    C = ins[2] if len(ins) > 2 else None
    alpha, beta = a.get("alpha", 1.0), a.get("beta", 1.0)
    if not isinstance(A, Tensor):
        raise L.fail(node, "only A may be a tensor (B times a tensor would mix rows)")
    if a.get("transA", 0):
        raise L.fail(node, "transA=1 on a tensor transposes the batch axis")
    B = L.const(node, B, "B")
    B = (B.T if a.get("transB", 0) else B).astype(np.float64)
    if B.ndim != 2:
        raise L.fail(node, f"B must be a matrix, got shape {B.shape}")
    bias = None
    if C is not None:
        c = L.per_row(node, L.const(node, C, "C"), 2).astype(np.float64)
        try:
            bias = beta * np.broadcast_to(c, (B.shape[1],))
        except ValueError:
            raise L.fail(node, f"C of shape {np.shape(C.value)} does not broadcast to ({B.shape[1]},)") from None
    return [L.emit(node, ops.Dense(kernel=alpha * B, bias=bias), [A])]


def _matmul(L, node, a, ins):
    A, B = ins
    if isinstance(A, Const) and isinstance(B, Const):
        return [Const(np.matmul(A.value, B.value))]
    if isinstance(A, Tensor) and isinstance(B, Const):
        w = B.value.astype(np.float64)
        if w.ndim == 1:
            h = L.emit(node, ops.Dense(kernel=w[:, None]), [A], name=node["output"][0] + "/matmul")
            return [L.emit(node, ops.Reshape(shape=A.shape[:-1]), [h])]
        if w.ndim > 2:  # batched: the constant becomes a node and the bilinear product's tangent there is zero
            return [_bilinear(L, node, A, B)]
        return [L.emit(node, ops.Dense(kernel=w), [A])]
    if isinstance(A, Const) and isinstance(B, Tensor):
        w = A.value.astype(np.float64)
        if w.ndim != 2 or B.rank < 3:
            raise L.fail(node, "a constant times a tensor would mix rows unless the tensor has rank >= 3")
        n = len(B.shape)
        swap = tuple(range(n - 2)) + (n - 1, n - 2)
        name = node["output"][0]
        t = L.emit(node, ops.Transpose(swap), [B], name=name + "/T")
        t = L.emit(node, ops.Dense(kernel=w.T), [t], name=name + "/matmul")
        return [L.emit(node, ops.Transpose(swap), [t])]
    return [_bilinear(L, node, A, B)]


def _bilinear(L, node, A, B):
    """A @ B per row, (..., m, k) @ (..., k, n) with the same leading axes (ops.tensor.MatMul)."""
    rank = max(v.rank for v in (A, B) if isinstance(v, Tensor))
    shapes = [v.shape if isinstance(v, Tensor) else np.shape(L.per_row(node, v.value, rank)) for v in (A, B)]
    ranks = [len(s) for s in shapes]
    if min(ranks) < 2 or shapes[0][:-2] != shapes[1][:-2]:
        raise L.fail(node, f"a product of per-row shapes {shapes[0]} and {shapes[1]}: only (..., m, k) @ "
                           "(..., k, n) with the same leading axes is supported")
    return L.emit(node, ops_onnx.MatMul(), [A, B])


def _batchnorm(L, node, a, ins):
    if a.get("training_mode", 0):
        raise L.fail(node, "training_mode=1 (batch statistics) is not supported; export the model in eval mode")
    x = ins[0]
    gamma, beta, mean, var = (L.const(node, v, "a parameter").astype(np.float64) for v in ins[1:5])
    if not isinstance(x, Tensor):
        raise L.fail(node, "the input must be a tensor")
    if not x.shape:
        raise L.fail(node, "the input has no channel axis")
    op = ops.batch_norm(gamma, beta, mean, var, a.get("epsilon", f32(1e-5)), -len(x.shape), len(x.shape))
    return [L.emit(node, op, [x])]


def _layernorm(L, node, a, ins):
    x = ins[0]
    if not isinstance(x, Tensor):
        raise L.fail(node, "the input must be a tensor")
    ax = L.axis(node, a.get("axis", -1), x)
    gamma = L.const(node, ins[1], "Scale").astype(np.float64)
    beta = L.const(node, ins[2] if len(ins) > 2 else None, "B")
    op = ops.LayerNorm(
        axes=tuple(range(ax, 0)),
        epsilon=a.get("epsilon", f32(1e-5)),
        gamma=gamma,
        beta=None if beta is None else beta.astype(np.float64),
    )
    return [L.emit(node, op, [x])]


def _spatial(L, node, a, x, kernel_shape):
    """(strides, dilations, pads per spatial axis as (lo, hi)) from Conv/Pool attributes."""
    if not isinstance(x, Tensor) or len(x.shape) < 2:
        raise L.fail(node, "the input must be a tensor (channels, *spatial) per row")
    rank = len(x.shape) - 1
    strides = a.get("strides") or [1] * rank
    dil = a.get("dilations") or [1] * rank
    pads = a.get("pads") or [0] * (2 * rank)
    if len(strides) != rank or len(dil) != rank or len(pads) != 2 * rank or len(kernel_shape) != rank:
        raise L.fail(node, f"attributes do not fit {rank} spatial axes")
    auto = a.get("auto_pad", "NOTSET")
    if auto == "VALID":
        pads = [0] * (2 * rank)
    elif auto in ("SAME_UPPER", "SAME_LOWER"):
        pads = [0] * (2 * rank)
        for i, (n, k, s, d) in enumerate(zip(x.shape[1:], kernel_shape, strides, dil)):
            total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
            small = total // 2
            pads[i], pads[i + rank] = (small, total - small) if auto == "SAME_UPPER" else (total - small, small)
    elif auto != "NOTSET":
        raise L.fail(node, f"auto_pad {auto!r} is not supported")
    return list(strides), list(dil), [(pads[i], pads[i + rank]) for i in range(rank)]


def _pad(L, node, x, pads, value, name):
    if not any(lo or hi for lo, hi in pads):
        return x
    if min(min(p) for p in pads) < 0:
        raise L.fail(node, f"negative pads {pads} are not supported")
    return L.emit(node, tensor_index.Pad(pads=((0, 0), *pads), value=value), [x], kind="Pad", name=name)


def _conv(L, node, a, ins):
    x, w = ins[0], L.const(node, ins[1], "the kernel W").astype(np.float64)
    bias = L.const(node, ins[2] if len(ins) > 2 else None, "the bias B")
    strides, dil, pads = _spatial(L, node, a, x, a.get("kernel_shape") or list(w.shape[2:]))
    groups, c_in, m = a.get("group", 1), x.shape[0], w.shape[0]
    if w.ndim != len(x.shape) + 1 or groups < 1 or c_in % groups or m % groups or w.shape[1] != c_in // groups:
        raise L.fail(node, f"kernel {w.shape} with group={groups} does not fit input channels {c_in}")
    name = node["output"][0]
    x = _pad(L, node, x, pads, 0.0, name + "/pad")
    kernel = np.moveaxis(w, (0, 1), (-1, -2))  # (M, C/g, *k) -> (*k, C/g, M)
    bias = None if bias is None else bias.astype(np.float64)
    parts, cg, mg = [], c_in // groups, m // groups
    for j in range(groups):
        xj = x
        if groups > 1:
            index = (tuple(range(j * cg, (j + 1) * cg)), *(tuple(range(d)) for d in x.shape[1:]))
            xj = L.emit(node, tensor_index.Strided(index=index), [x], kind="Slice", name=f"{name}/group{j}")
        op = ops.Conv(
            kernel=np.ascontiguousarray(kernel[..., j * mg : (j + 1) * mg]),
            bias=None if bias is None else bias[j * mg : (j + 1) * mg],
            strides=tuple(strides),
            dilation=tuple(dil),
            padding="valid",
            channels_first=True,
        )
        parts.append(L.emit(node, op, [xj], name=name if groups == 1 else f"{name}/conv{j}"))
    if groups == 1:
        return parts
    return [L.emit(node, ops.Concat(axis=-len(x.shape)), parts, kind="Concat")]


def _pool(how):
    def handler(L, node, a, ins):
        x, k = ins[0], list(a.get("kernel_shape", []))
        strides, dil, pads = _spatial(L, node, a, x, k)
        if any(d != 1 for d in dil):
            raise L.fail(node, "dilated pooling is not supported")
        if a.get("ceil_mode", 0):
            for n, (lo, hi), kk, s in zip(x.shape[1:], pads, k, strides):
                if (n + lo + hi - kk) % s:
                    raise L.fail(node, "ceil_mode=1 that changes the output size is not supported")
        name = node["output"][0]
        if how == "average" and not a.get("count_include_pad", 0) and any(lo or hi for lo, hi in pads):
            raise L.fail(node, "count_include_pad=0 with padding is not supported")
        x = _pad(L, node, x, pads, -np.inf if how == "max" else 0.0, name + "/pad")
        op = ops.Pool(how=how, size=tuple(k), strides=tuple(strides), padding="valid", channels_first=True)
        return [L.emit(node, op, [x])]

    return handler


def _global_pool(how):
    def handler(L, node, a, ins):
        x = ins[0]
        if not isinstance(x, Tensor) or len(x.shape) < 2:
            raise L.fail(node, "the input must be a tensor (channels, *spatial) per row")
        return [L.emit(node, ops.GlobalPool(how=how, rank=len(x.shape) - 1, channels_first=True, keepdims=True), [x])]

    return handler


def _reduce(how):
    def handler(L, node, a, ins):
        x = ins[0]
        axes = a.get("axes")
        if len(ins) > 1 and ins[1] is not None:
            axes = L.ints(node, ins[1], "axes")
        keep = bool(a.get("keepdims", 1))
        if not axes:
            if a.get("noop_with_empty_axes", 0):
                return [x]
            if isinstance(x, Tensor):
                raise L.fail(node, "reducing over all axes includes the batch axis")
        if isinstance(x, Const):
            f = np.mean if how == "mean" else np.sum
            return [Const(f(x.value, axis=None if not axes else tuple(axes), keepdims=keep))]
        op = tensor_index.Reduce(how=how, axes=tuple(L.axis(node, ax, x, "axes") for ax in axes), keepdims=keep)
        return [L.emit(node, op, [x])]

    return handler


HANDLERS = {
    "Relu": _act("relu"),
    "Tanh": _act("tanh"),
    "Sigmoid": _act("sigmoid"),
    "Softplus": _act("softplus"),
    "Softsign": _act("softsign"),
    "Mish": _act("mish"),
    "LeakyRelu": _act("leaky_relu", 0.01),
    "Elu": _act("elu", 1.0),
    "Abs": _pointwise("abs"),
    "Neg": _pointwise("neg"),
    "Exp": _pointwise("exp"),
    "Log": _pointwise("log"),
    "Sqrt": _pointwise("sqrt"),
    "Reciprocal": _pointwise("reciprocal"),
    "Erf": _pointwise("erf"),
    "Sin": _pointwise("sin"),
    "Cos": _pointwise("cos"),
    "Selu": _pointwise("selu", alpha=1.67326319217681884765625, gamma=1.05070102214813232421875),
    "Celu": _pointwise("celu", alpha=1.0),
    "HardSigmoid": _pointwise("hard_sigmoid", alpha=0.2, beta=0.5),
    "HardSwish": _pointwise("hard_swish"),
    "ThresholdedRelu": _pointwise("thresholded_relu", alpha=1.0),
    "Gelu": _gelu,
    "Softmax": _softmax("softmax"),
    "LogSoftmax": _softmax("log_softmax"),
    "Clip": _clip,
    "Add": _arith,
    "Sub": _arith,
    "Mul": _arith,
    "Div": _arith,
    "Pow": _pow,
    "Sum": _variadic("add"),
    "Mean": _variadic("average"),
    "Max": _variadic("maximum"),
    "Min": _variadic("minimum"),
    "Gemm": _gemm,
    "MatMul": _matmul,
    "BatchNormalization": _batchnorm,
    "LayerNormalization": _layernorm,
    "Conv": _conv,
    "MaxPool": _pool("max"),
    "AveragePool": _pool("average"),
    "GlobalAveragePool": _global_pool("average"),
    "GlobalMaxPool": _global_pool("max"),
    "ReduceMean": _reduce("mean"),
    "ReduceSum": _reduce("sum"),
}
