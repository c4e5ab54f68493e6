"""ONNX op handlers, the structural families: constants and shapes (folded at load time), casts,
reshapes and transposes, concatenation, slicing and gathering, comparisons and Where, and the
ai.onnx.ml ops jacprop reads (Scaler, ArrayFeatureExtractor; ZipMap and ArgMax give no float).
As ``onnx_math``: a handler and a line in ``HANDLERS``.
"""

from __future__ import annotations

import math

import numpy as np

from .. import ops
from ..ops import tensor as ops_onnx
from ..ops import tensor_index
from .onnx_tensors import BATCH, DTYPES, FLOAT_TYPES, TYPE_NAMES, Const, Mask, NonFloat, Tensor, float64


def _identity(L, node, a, ins):
    if node["op_type"] == "Dropout" and len(ins) > 2 and ins[2] is not None:
        if bool(np.any(L.const(node, ins[2], "training_mode"))):
            raise L.fail(node, "training_mode=True is not supported")
    return [ins[0]]


def _constant(L, node, a, ins):
    for key in ("sparse_value", "value_string", "value_strings"):
        if key in a:
            raise L.fail(node, f"{key} is not supported")
    if "value" in a:
        return [Const(float64(a["value"]))]
    if "value_float" in a:
        return [Const(np.array(a["value_float"], np.float64))]
    if "value_floats" in a:
        return [Const(np.array(a["value_floats"], np.float64))]
    if "value_int" in a:
        return [Const(np.array(a["value_int"], np.int64))]
    if "value_ints" in a:
        return [Const(np.array(a["value_ints"], np.int64))]
    raise L.fail(node, "no value")


def _int_or_batch(a):
    """A folded shape array: int64 when it does not hold the batch size, else an object array."""
    a = np.asarray(a, dtype=object)
    return a if any(v is BATCH for v in a.reshape(-1)) else a.astype(np.int64)


def _shape(L, node, a, ins):
    x = ins[0]
    full = [BATCH, *x.shape] if isinstance(x, Tensor) else list(np.shape(x.value))
    if isinstance(x, Mask):
        full = [BATCH, *x.tensor.shape]
    start, end = a.get("start", 0), a.get("end", None)
    return [Const(_int_or_batch(np.array(full, dtype=object)[slice(start, end)]))]


def _cast(L, node, a, ins):
    x, to = ins[0], a.get("to", 1)
    if isinstance(x, Const):
        v = x.value
        if v.dtype == object:
            return [Const(v)]
        if to not in DTYPES:
            raise L.fail(node, f"cast to {TYPE_NAMES.get(to, to)} is not supported")
        return [Const(float64(v.astype(DTYPES[to])))]
    if to in FLOAT_TYPES:
        return [x]
    return [NonFloat(f"cast to {DTYPES.get(to, to)}")]


def _reshape(L, node, a, ins):
    x = ins[0]
    target = (
        list(np.asarray(L.const(node, ins[1], "the shape"), dtype=object).reshape(-1))
        if L.opset >= 5
        else list(a.get("shape", []))
    )
    if isinstance(x, Const):
        if any(t is BATCH for t in target) or x.value.dtype == object:
            raise L.fail(node, "reshaping a constant by the batch size")
        shape = [int(t) for t in target]
        if not a.get("allowzero", 0):
            shape = [x.value.shape[i] if d == 0 else d for i, d in enumerate(shape)]
        return [Const(x.value.reshape(shape))]
    return [L.emit(node, ops.Reshape(shape=_row_shape(L, node, x, target, a.get("allowzero", 0))), [x])]


def _row_shape(L, node, x, target, allowzero):
    """The per-row target of Reshape: the first entry must keep the batch (N, 0, the static batch, or -1 when
    the rest fixes the row size); the rest may not mention N."""
    if not target:
        raise L.fail(node, "a reshape to a scalar drops the batch axis")
    first, rest = target[0], target[1:]
    if any(t is BATCH for t in rest):
        raise L.fail(node, f"shape {target} moves the batch size off the first axis")
    rest = [x.shape[i] if (t == 0 and not allowzero and i < len(x.shape)) else int(t) for i, t in enumerate(rest)]
    size = math.prod(x.shape)
    if first is BATCH or (first == 0 and not allowzero) or (first in L.batch_sizes and first != -1):
        return tuple(rest)
    if first == -1 and -1 not in rest and math.prod(rest) == size:
        return tuple(rest)
    raise L.fail(node, f"shape {target} does not keep the batch axis first (row shape {x.shape})")


def _flatten(L, node, a, ins):
    x = ins[0]
    axis = a.get("axis", 1)
    if isinstance(x, Const):
        v = x.value
        axis = axis + v.ndim if axis < 0 else axis
        return [Const(v.reshape(math.prod(v.shape[:axis]), -1))]
    axis = axis + x.rank if axis < 0 else axis
    if axis < 1 or any(d != 1 for d in x.shape[: axis - 1]):
        raise L.fail(node, f"axis {a.get('axis', 1)} merges the batch axis with others")
    return [L.emit(node, ops.Reshape(shape=(-1,)), [x])]


def _transpose(L, node, a, ins):
    x = ins[0]
    rank = x.rank if isinstance(x, Tensor) else np.ndim(x.value)
    perm = a.get("perm") or list(range(rank))[::-1]
    if isinstance(x, Const):
        return [Const(np.transpose(x.value, perm))]
    if sorted(perm) != list(range(rank)) or perm[0] != 0:
        raise L.fail(node, f"perm {perm} moves the batch axis")
    return [L.emit(node, ops.Transpose(tuple(p - 1 for p in perm[1:])), [x])]


def _axes_arg(L, node, a, ins, what):
    if L.opset >= 13 and len(ins) > 1:
        return L.ints(node, ins[1], "axes")
    return a.get("axes")


def _squeeze(L, node, a, ins):
    x = ins[0]
    axes = _axes_arg(L, node, a, ins, "axes")
    if isinstance(x, Const):
        return [Const(np.squeeze(x.value, axis=None if axes is None else tuple(axes)))]
    if axes is None:
        shape = tuple(d for d in x.shape if d != 1)
    else:
        drop = {len(x.shape) + L.axis(node, ax, x, "axes") for ax in axes}
        if any(x.shape[i] != 1 for i in drop):
            raise L.fail(node, f"axes {axes} are not of size 1 in {x.shape}")
        shape = tuple(d for i, d in enumerate(x.shape) if i not in drop)
    return [L.emit(node, ops.Reshape(shape=shape), [x])]


def _unsqueeze(L, node, a, ins):
    x = ins[0]
    axes = _axes_arg(L, node, a, ins, "axes") or []
    rank = (x.rank if isinstance(x, Tensor) else np.ndim(x.value)) + len(axes)
    axes = sorted(ax + rank if ax < 0 else ax for ax in axes)
    if isinstance(x, Const):
        return [Const(np.expand_dims(x.value, tuple(axes)))]
    if 0 in axes:
        raise L.fail(node, "a new axis 0 moves the batch axis")
    shape = list(x.shape)
    for ax in axes:
        shape.insert(ax - 1, 1)
    return [L.emit(node, ops.Reshape(shape=tuple(shape)), [x])]


def _concat(L, node, a, ins):
    ins = [v for v in ins if v is not None]
    if all(isinstance(v, Const) for v in ins):
        vals = [v.value for v in ins]
        dtype = object if any(v.dtype == object for v in vals) else None
        return [
            Const(
                _int_or_batch(np.concatenate([np.asarray(v, dtype=dtype) for v in vals], axis=a.get("axis", 0)))
                if dtype
                else np.concatenate(vals, axis=a.get("axis", 0))
            )
        ]
    t = next(v for v in ins if isinstance(v, Tensor))
    ax = L.axis(node, a.get("axis", 0), t)
    return [L.emit(node, ops.Concat(axis=ax), ins)]


def _slice(L, node, a, ins):
    x = ins[0]
    if L.opset >= 10:
        starts, ends = L.ints(node, ins[1], "starts"), L.ints(node, ins[2], "ends")
        axes = L.ints(node, ins[3], "axes") if len(ins) > 3 and ins[3] is not None else None
        steps = L.ints(node, ins[4], "steps") if len(ins) > 4 and ins[4] is not None else None
    else:
        starts, ends, axes, steps = a.get("starts", []), a.get("ends", []), a.get("axes"), None
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    if isinstance(x, Const):
        index = [slice(None)] * np.ndim(x.value)
        for ax, st, en, sp in zip(axes, starts, ends, steps):
            index[ax] = slice(st, en, sp)
        return [Const(x.value[tuple(index)])]
    index = [tuple(range(d)) for d in x.shape]
    for ax, st, en, sp in zip(axes, starts, ends, steps):
        neg = L.axis(node, ax, Const(np.zeros((1,) * x.rank)), "axes")
        if neg == -x.rank:
            if st != 0 or sp != 1 or en < 2**31 - 1 and en not in L.batch_sizes:
                raise L.fail(node, "slices the batch axis")
            continue
        if sp == 0:
            raise L.fail(node, "step 0")
        index[len(x.shape) + neg] = tuple(range(*slice(st, en, sp).indices(x.shape[len(x.shape) + neg])))
    if index == [tuple(range(d)) for d in x.shape]:
        return [x]
    return [L.emit(node, tensor_index.Strided(index=tuple(index)), [x])]


def _gather(L, node, a, ins):
    x, idx = ins
    idx = L.const(node, idx, "the indices")
    if isinstance(x, Const):
        return [
            Const(
                _int_or_batch(np.take(x.value, idx, axis=a.get("axis", 0)))
                if x.value.dtype == object
                else np.take(x.value, idx, axis=a.get("axis", 0))
            )
        ]
    ax = L.axis(node, a.get("axis", 0), x)
    n = x.shape[len(x.shape) + ax]
    idx = np.asarray(idx, np.int64)
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise L.fail(node, f"indices out of range for an axis of length {n}")
    return [L.emit(node, tensor_index.Take(indices=np.where(idx < 0, idx + n, idx), axis=ax), [x])]


COMPARISONS = {
    "Greater": "greater",
    "Less": "less",
    "GreaterOrEqual": "greater_equal",
    "LessOrEqual": "less_equal",
    "Equal": "equal",
}
FLIPPED = {
    "greater": "less",
    "less": "greater",
    "greater_equal": "less_equal",
    "less_equal": "greater_equal",
    "equal": "equal",
}
NEGATED = {"greater": "less_equal", "less": "greater_equal", "greater_equal": "less", "less_equal": "greater"}


def _compare(L, node, a, ins):
    how = COMPARISONS[node["op_type"]]
    x, y = ins
    if isinstance(x, Const) and isinstance(y, Const):
        return [Const(ops_onnx.COMPARE[how](x.value, y.value))]
    if isinstance(x, Tensor) and isinstance(y, Const):
        return [Mask(x, how, L.per_row(node, y.value, x.rank).astype(np.float64))]
    if isinstance(y, Tensor) and isinstance(x, Const):
        return [Mask(y, FLIPPED[how], L.per_row(node, x.value, y.rank).astype(np.float64))]
    raise L.fail(node, "only a comparison of a tensor with a constant is supported")


def _not(L, node, a, ins):
    x = ins[0]
    if isinstance(x, Const):
        return [Const(np.logical_not(x.value))]
    if isinstance(x, Mask) and x.how in NEGATED:
        return [Mask(x.tensor, NEGATED[x.how], x.value)]
    raise L.fail(node, "only the negation of a comparison with a constant is supported")


def _where(L, node, a, ins):
    c, x, y = ins
    if all(isinstance(v, Const) for v in ins):
        return [Const(np.where(c.value, x.value, y.value))]
    if isinstance(c, Const):
        ref = next(v for v in (x, y) if isinstance(v, Tensor))
        c = Mask(L.tensor(node, Const(c.value.astype(np.float64)), ref.rank), "greater", np.array(0.5))
    if not isinstance(c, Mask):
        raise L.fail(node, "the condition must be a comparison of a tensor with a constant")
    return [L.emit(node, ops_onnx.Where(how=c.how, value=c.value), [c.tensor, x, y])]


def _non_float(L, node, a, ins):
    return [NonFloat(f"{node['op_type']} output")] * len(node.get("output", []))


def _scaler(L, node, a, ins):
    scale = np.asarray(a.get("scale", [1.0]), np.float64)
    offset = np.asarray(a.get("offset", [0.0]), np.float64)
    if scale.size == 1:
        scale = scale.reshape(())
    if offset.size == 1:
        offset = offset.reshape(())
    return [L.emit(node, ops.Affine(scale=scale, shift=-offset * scale), ins[:1])]


def _feature_extractor(L, node, a, ins):
    x, idx = ins
    if isinstance(x, Const):
        return [Const(np.take(x.value, L.const(node, idx, "indices"), axis=-1))]
    return _gather(L, node, {"axis": -1}, [x, idx])


HANDLERS = {
    "Identity": _identity,
    "Dropout": _identity,
    "Constant": _constant,
    "Shape": _shape,
    "Cast": _cast,
    "Reshape": _reshape,
    "Flatten": _flatten,
    "Transpose": _transpose,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Concat": _concat,
    "Slice": _slice,
    "Gather": _gather,
    "Where": _where,
    "Not": _not,
    **{k: _compare for k in COMPARISONS},
    "ArgMax": _non_float,
    "ArgMin": _non_float,
    "ml:Scaler": _scaler,
    "ml:ArrayFeatureExtractor": _feature_extractor,
    "ml:ZipMap": _non_float,
}
