"""ONNX models (.onnx, with external data beside them) -> Model, with jacprop's own protobuf decoder.

Axis 0 of every graph input is the batch (the rows of the CSV); the other axes are a row.  The graph
is walked in its (topological) order and every value becomes one of

- ``Const``: an array known at load time (initializers, Constant nodes, and anything computed from
  constants only: shape subgraphs are folded here, the batch size being the symbol ``N``);
- ``Tensor``: a node of the layer graph, with its per-row shape;
- ``Mask``: a comparison of a tensor with a constant, to be used as Where's condition;
- ``NonFloat``: an integer or boolean result of a tensor (ArgMax, a cast label): no derivative, left out.

An op on tensors must keep rows apart: an axis argument may not name the batch axis, a constant
operand broadcasts over rows only, Reshape keeps the batch first.  What does not fit is refused by
name.  External data is read only from regular files inside the model's folder (``_external``).
"""

from __future__ import annotations

import math
import os
import re
import stat
from dataclasses import dataclass

import numpy as np

from .. import ops
from ..errors import ModelError
from ..graph import GraphBuilder, Model
from ..ops import Activation
from ..ops import tensor as ops_onnx
from .onnx_proto import ProtoError, decode

MAX_FILE = 2**31  # protobuf's own limit for one message
DTYPES = {
    1: "float32",
    2: "uint8",
    3: "int8",
    4: "uint16",
    5: "int16",
    6: "int32",
    7: "int64",
    9: "bool",
    10: "float16",
    11: "float64",
    12: "uint32",
    13: "uint64",
}
TYPE_NAMES = {
    8: "STRING",
    14: "COMPLEX64",
    15: "COMPLEX128",
    16: "BFLOAT16",
    17: "FLOAT8E4M3FN",
    18: "FLOAT8E4M3FNUZ",
    19: "FLOAT8E5M2",
    20: "FLOAT8E5M2FNUZ",
    21: "UINT4",
    22: "INT4",
    23: "FLOAT4E2M1",
}
FLOAT_TYPES = {1, 10, 11}
TYPED_FIELD = {1: "float_data", 11: "double_data", 7: "int64_data", 12: "uint64_data", 13: "uint64_data"}
REFUSED = {
    "If": "control flow (If)",
    "Loop": "control flow (Loop)",
    "Scan": "control flow (Scan)",
    "SequenceConstruct": "sequences",
    "SequenceAt": "sequences",
    "SplitToSequence": "sequences",
}
DOMAINS = ("", "ai.onnx", "ai.onnx.ml")


def _f32(v) -> float:
    """ONNX float attributes are float32: a default is rounded as the file's value would be."""
    return float(np.float32(v))


class Batch:
    """The batch size N inside folded shape tensors: it may be moved around, never computed with."""

    def __repr__(self):
        return "N"


BATCH = Batch()


@dataclass
class Const:
    value: np.ndarray


@dataclass
class Tensor:
    node: int
    shape: tuple

    @property
    def rank(self):
        return len(self.shape) + 1


@dataclass
class Mask:
    tensor: Tensor
    how: str
    value: np.ndarray


@dataclass
class NonFloat:
    why: str


# ---------------------------------------------------------------------------
# Tensors and external data


def _ints(values, what):
    return [int(v) for v in values]


def tensor_array(t: dict, folder: str, where: str) -> np.ndarray:
    """The array of a TensorProto, its declared size checked against its bytes before anything is allocated."""
    name = t.get("name", "")
    where = f"{where} tensor {name!r}" if name else where
    code = t.get("data_type", 0)
    if code not in DTYPES:
        raise ModelError(f"{where}: data type {TYPE_NAMES.get(code, code)} is not supported")
    if "segment" in t:
        raise ModelError(f"{where}: segmented tensors are not supported")
    dims = t.get("dims", [])
    if any(d < 0 for d in dims):
        raise ModelError(f"{where}: negative dimension in {dims}")
    dtype = np.dtype(DTYPES[code]).newbyteorder("<")
    count = math.prod(dims)
    nbytes = count * dtype.itemsize
    if t.get("data_location", 0) == 1:
        raw = _external(t, folder, where, nbytes)
    elif "raw_data" in t:
        raw = t["raw_data"]
        if len(raw) != nbytes:
            raise ModelError(
                f"{where}: shape {tuple(dims)} of {DTYPES[code]} needs {nbytes} bytes, raw_data has {len(raw)}"
            )
    else:
        field = TYPED_FIELD.get(code, "int32_data")
        values = t.get(field, [])
        if len(values) != count:
            raise ModelError(f"{where}: shape {tuple(dims)} declares {count} values, {field} has {len(values)}")
        if code == 10:
            return np.array(values, np.uint16).view(np.float16).reshape(dims)
        return np.array(values, dtype=DTYPES[code]).reshape(dims)
    return np.frombuffer(raw, dtype).reshape(dims).astype(dtype.newbyteorder("="))


def _external(t, folder, where, nbytes) -> bytes:
    """The bytes of an external tensor: only a relative path without '..', resolving inside the model's folder,
    to a regular file (lstat: links, FIFOs and devices are refused before opening), offset + length within it."""
    info = {e.get("key", ""): e.get("value", "") for e in t.get("external_data", [])}
    loc = info.get("location", "")
    if not loc:
        raise ModelError(f"{where}: external data without a location")
    if os.path.isabs(loc) or loc.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", loc) or "\0" in loc:
        raise ModelError(
            f"{where}: external data location {loc!r} is absolute; only paths inside the model's folder are read"
        )
    if ".." in re.split(r"[\\/]", loc):
        raise ModelError(
            f"{where}: external data location {loc!r} contains '..'; only paths inside the model's folder are read"
        )
    full = os.path.join(folder, loc)
    base = os.path.realpath(folder)
    if os.path.commonpath([base, os.path.realpath(full)]) != base:
        raise ModelError(f"{where}: external data location {loc!r} resolves outside the model's folder")
    try:
        st = os.lstat(full)
    except OSError as e:
        raise ModelError(f"{where}: cannot read external data {loc!r}: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ModelError(f"{where}: external data {loc!r} is not a regular file")
    try:
        offset = int(info.get("offset") or 0)
        length = int(info.get("length") or (st.st_size - offset))
    except ValueError:
        raise ModelError(
            f"{where}: external data offset/length {info.get('offset')!r}/{info.get('length')!r} are not integers"
        ) from None
    if offset < 0 or length < 0 or offset + length > st.st_size:
        raise ModelError(
            f"{where}: external data offset {offset} + length {length} lies beyond {loc!r} ({st.st_size} bytes)"
        )
    if length != nbytes:
        raise ModelError(f"{where}: shape {tuple(t.get('dims', []))} needs {nbytes} bytes, external data has {length}")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(full, flags)
    except OSError as e:
        raise ModelError(f"{where}: cannot read external data {loc!r}: {e.strerror or e}") from None
    try:
        now = os.fstat(fd)
        if not stat.S_ISREG(now.st_mode) or (now.st_ino, now.st_dev) != (st.st_ino, st.st_dev):
            raise ModelError(f"{where}: external data {loc!r} changed while it was being opened")
        os.lseek(fd, offset, os.SEEK_SET)
        chunks, left = [], length
        while left:
            chunk = os.read(fd, min(left, 2**24))
            if not chunk:
                raise ModelError(f"{where}: external data {loc!r} ended early")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------
# The graph walk


class Loader:
    def __init__(self, path, proto: dict):
        self.path, self.folder = os.fspath(path), os.path.dirname(os.path.abspath(path))
        self.proto = proto
        self.opsets = {o.get("domain", "") or "": o.get("version", 1) for o in proto.get("opset_import", [])}
        self.opset = self.opsets.get("", self.opsets.get("ai.onnx", 1))
        self.values: dict[str, object] = {}
        self.notes: list[str] = []
        self.batch_sizes: set = set()

    def fail(self, node, message) -> ModelError:
        where = (
            f"node {node.get('name') or (node.get('output') or ['?'])[0]!r} ({node.get('op_type', '?')}): "
            if node
            else ""
        )
        return ModelError(f"{self.path}: {where}{message}")

    # ---- values

    def get(self, node, name):
        if name == "":
            return None
        if name not in self.values:
            raise self.fail(node, f"input {name!r} is not defined before this node")
        v = self.values[name]
        if v is None:
            raise self.fail(node, f"uses {name!r}, an optional output jacprop does not compute")
        return v

    def const(self, node, v, what="this input"):
        if v is None:
            return None
        if not isinstance(v, Const):
            raise self.fail(node, f"{what} must be a constant (an initializer or computed from constants only)")
        return v.value

    def ints(self, node, v, what):
        a = self.const(node, v, what)
        if a is None:
            return None
        if a.dtype == object:
            raise self.fail(node, f"{what} depends on the batch size")
        return [int(x) for x in np.asarray(a).reshape(-1)]

    def axis(self, node, axis, value, what="axis"):
        """An ONNX axis as a negative per-row axis; for a tensor it may not be the batch axis 0."""
        rank = value.rank if isinstance(value, Tensor) else np.ndim(value.value)
        a = axis - rank if axis >= 0 else axis
        if not -rank <= a < 0:
            raise self.fail(node, f"{what} {axis} out of range for rank {rank}")
        if isinstance(value, Tensor) and a == -rank:
            raise self.fail(node, f"{what} {axis} is the batch axis; jacprop computes each row on its own")
        return a

    def per_row(self, node, c, rank):
        """A constant operand of a tensor of full rank ``rank``, without its batch axis: it must broadcast over rows."""
        c = np.asarray(c)
        if c.ndim >= rank:
            if c.ndim > rank or c.shape[0] != 1:
                raise self.fail(node, f"constant of shape {c.shape} differs between rows (the batch axis is not 1)")
            c = c[0]
        return c

    def emit(self, node, op, ins, kind=None, name=None):
        """Apply op to the values ``ins``: folded when all are constants, else a new node (constant operands
        become Const nodes)."""
        kind = kind or node["op_type"]
        name = name or node["output"][0]
        if all(isinstance(v, Const) for v in ins):
            try:
                arrays = [np.asarray(v.value, np.float64)[None] for v in ins]
                op.out_shape(*[a.shape[1:] for a in arrays])
                return Const(op.forward(*arrays)[0][0])
            except (TypeError, ValueError) as e:
                raise self.fail(node, f"cannot fold constants: {e}") from None
        rank = max(v.rank for v in ins if isinstance(v, Tensor))
        idx = [self.tensor(node, v, rank).node for v in ins]
        i = self.b.add(name, op, idx, kind)
        return Tensor(i, self.b.nodes[i].shape)

    def tensor(self, node, v, rank):
        if isinstance(v, Tensor):
            return v
        if isinstance(v, Const):
            c = self.per_row(node, v.value, rank)
            if c.dtype == object or c.dtype.kind not in "fiub":
                raise self.fail(node, "a constant operand depends on the batch size")
            i = self.b.add(f"{node['output'][0]}/const", ops_onnx.Const(value=c.astype(np.float64)), [0], "Constant")
            return Tensor(i, self.b.nodes[i].shape)
        raise self.fail(
            node,
            "a comparison is used other than as Where's condition"
            if isinstance(v, Mask)
            else f"an input is not a float tensor ({getattr(v, 'why', v)})",
        )

    def attrs(self, node) -> dict:
        out = {}
        for a in node.get("attribute", []):
            name, kind = a.get("name", ""), a.get("type", 0)
            if "ref_attr_name" in a:
                raise self.fail(node, f"attribute {name!r} refers to a function attribute")
            if kind in (5, 10) or "g" in a or "graphs" in a:
                raise self.fail(node, f"attribute {name!r} holds a subgraph; control flow is not supported")
            if kind in (11, 12) or "sparse_tensor" in a or "sparse_tensors" in a:
                raise self.fail(node, f"attribute {name!r} holds a sparse tensor; sparse tensors are not supported")
            if kind == 1 or (not kind and "f" in a):
                out[name] = a.get("f", 0.0)
            elif kind == 2 or (not kind and "i" in a):
                out[name] = a.get("i", 0)
            elif kind == 3 or (not kind and "s" in a):
                out[name] = bytes(a.get("s", b"")).decode("utf-8", "replace")
            elif kind == 4 or (not kind and "t" in a):
                out[name] = tensor_array(a.get("t", {}), self.folder, f"{self.path}: attribute {name!r}")
            elif kind == 6 or "floats" in a:
                out[name] = list(a.get("floats", []))
            elif kind == 7 or "ints" in a:
                out[name] = list(a.get("ints", []))
            elif kind == 8 or "strings" in a:
                out[name] = [bytes(s).decode("utf-8", "replace") for s in a.get("strings", [])]
            else:
                out[name] = None
        return out

    # ---- the model

    def build(self) -> Model:
        p = self.proto
        if p.get("functions"):
            raise ModelError(f"{self.path}: model-local functions are not supported")
        g = p.get("graph")
        if g is None:
            raise ModelError(f"{self.path}: no graph in the model")
        if g.get("sparse_initializer"):
            raise ModelError(f"{self.path}: sparse initializers are not supported")
        for t in g.get("initializer", []):
            self.values[t.get("name", "")] = Const(self._float64(tensor_array(t, self.folder, self.path)))
        inputs = []
        for vi in g.get("input", []):
            name = vi.get("name", "")
            if name in self.values:
                continue  # IR < 4 lists initializers among the inputs
            code, dims = self._tensor_type(vi, "input")
            if code not in FLOAT_TYPES:
                raise ModelError(
                    f"{self.path}: input {name!r} has type {DTYPES.get(code, code)}; only float inputs have a Jacobian"
                )
            if len(dims) < 2:
                raise ModelError(f"{self.path}: input {name!r} has shape {dims}; jacprop needs a batch axis first")
            if not all(isinstance(d, int) and d >= 1 for d in dims[1:]):
                raise ModelError(f"{self.path}: input {name!r} has shape {dims}; only the batch axis may be symbolic")
            if isinstance(dims[0], int):
                self.batch_sizes.add(dims[0])
            inputs.append((name, tuple(dims[1:])))
        if not inputs:
            raise ModelError(f"{self.path}: the graph has no inputs")
        self.b = GraphBuilder(inputs)
        for (name, shape), i in zip(inputs, self.b.inputs):
            self.values[name] = Tensor(i, shape)
        for node in g.get("node", []):
            self.node(node)
        outputs = []
        for vi in g.get("output", []):
            name = vi.get("name", "")
            code, _ = self._tensor_type(vi, "output")
            v = self.values.get(name)
            if v is None:
                raise ModelError(f"{self.path}: output {name!r} is not computed by the graph")
            if code not in FLOAT_TYPES or isinstance(v, NonFloat):
                self.notes.append(f"output {name!r} ({DTYPES.get(code, code)}) is not a float tensor: left out")
                continue
            if isinstance(v, Mask):
                raise ModelError(f"{self.path}: output {name!r} is a comparison, not a float tensor")
            if isinstance(v, Const):
                v = self.tensor({"output": [name], "op_type": "Constant"}, v, np.ndim(v.value))
            if self.b.nodes[v.node].name != name or v.node in outputs:
                v = Tensor(self.b.add(name, ops.Identity(), [v.node], "Identity"), v.shape)
            outputs.append(v.node)
        if not outputs:
            raise ModelError(f"{self.path}: the graph has no float outputs")
        source = {
            "format": "onnx",
            "producer": f"{p.get('producer_name', '')} {p.get('producer_version', '')}".strip(),
            "ir_version": p.get("ir_version"),
            "opset": {k or "ai.onnx": v for k, v in self.opsets.items()},
        }
        opsets = ", ".join(f"{k} {v}" for k, v in source["opset"].items())
        source["description"] = f"{source['producer'] or 'unknown producer'}, opset {opsets}"
        if self.notes:
            source["notes"] = self.notes
        model = self.b.finish(outputs, source=source)
        return model

    @staticmethod
    def _float64(a):
        return a.astype(np.float64) if a.dtype.kind == "f" else a

    def _tensor_type(self, vi, what):
        name = vi.get("name", "")
        t = vi.get("type", {})
        for other, label in (
            ("sequence_type", "a sequence"),
            ("map_type", "a map"),
            ("optional_type", "an optional"),
            ("sparse_tensor_type", "a sparse tensor"),
        ):
            if other in t:
                raise ModelError(f"{self.path}: {what} {name!r} is {label}; jacprop reads tensors only")
        tt = t.get("tensor_type")
        if tt is None:
            raise ModelError(f"{self.path}: {what} {name!r} has no tensor type")
        dims = [
            d["dim_value"] if "dim_value" in d else d.get("dim_param", "?") for d in tt.get("shape", {}).get("dim", [])
        ]
        return tt.get("elem_type", 0), dims

    def node(self, node):
        op_type, domain = node.get("op_type", ""), node.get("domain", "") or ""
        if domain not in DOMAINS:
            raise self.fail(node, f"domain {domain!r} is not supported (custom ops cannot be loaded)")
        if op_type in REFUSED:
            raise self.fail(node, f"{REFUSED[op_type]} is not supported")
        key = ("ml:" if domain == "ai.onnx.ml" else "") + op_type
        handler = HANDLERS.get(key)
        if handler is None:
            raise self.fail(node, f"unsupported op {op_type!r}" + (f" of domain {domain!r}" if domain else ""))
        attrs = self.attrs(node)
        ins = [self.get(node, name) for name in node.get("input", [])]
        outs = node.get("output", [])
        if any(isinstance(v, NonFloat) for v in ins):
            results = [NonFloat(f"computed by {op_type} from a non-float value")] * len(outs)
        else:
            results = handler(self, node, attrs, ins)
        for name, v in zip(outs, list(results) + [None] * len(outs)):
            if name:
                self.values[name] = v


# ---------------------------------------------------------------------------
# Handlers: (loader, node, attrs, input values) -> output values


def _act(name, alpha=None):
    def handler(L, node, a, ins):
        act = Activation(name, _f32(a.get("alpha", alpha)) if alpha is not None else 0.0)
        return [L.emit(node, ops.Act(activation=act), ins[:1])]

    return handler


def _pointwise(name, **defaults):
    def handler(L, node, a, ins):
        p = [_f32(a.get(k, v)) for k, v in defaults.items()] + [0.0, 0.0]
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
        if w.ndim != 2:
            raise L.fail(node, f"a constant operand of rank {w.ndim} (batched matmul) is not supported")
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
    raise L.fail(node, "a product of two tensors is not supported")


def _batchnorm(L, node, a, ins):
    if a.get("training_mode", 0):
        raise L.fail(node, "training_mode=1 (batch statistics) is not supported; export the model in eval mode")
    x = ins[0]
    gamma, beta, mean, var = (L.const(node, v, "a parameter").astype(np.float64) for v in ins[1:5])
    if not isinstance(x, Tensor):
        raise L.fail(node, "the input must be a tensor")
    if not x.shape:
        raise L.fail(node, "the input has no channel axis")
    op = ops.batch_norm(gamma, beta, mean, var, a.get("epsilon", _f32(1e-5)), -len(x.shape), len(x.shape))
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
        epsilon=a.get("epsilon", _f32(1e-5)),
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
    return L.emit(node, ops_onnx.Pad(pads=((0, 0), *pads), value=value), [x], kind="Pad", name=name)


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
            xj = L.emit(node, ops_onnx.Strided(index=index), [x], kind="Slice", name=f"{name}/group{j}")
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
        op = ops_onnx.Reduce(how=how, axes=tuple(L.axis(node, ax, x, "axes") for ax in axes), keepdims=keep)
        return [L.emit(node, op, [x])]

    return handler


# ---- structure


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
        return [Const(L._float64(a["value"]))]
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
        return [Const(L._float64(v.astype(DTYPES[to])))]
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
    return [L.emit(node, ops_onnx.Strided(index=tuple(index)), [x])]


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
    return [L.emit(node, ops_onnx.Take(indices=np.where(idx < 0, idx + n, idx), axis=ax), [x])]


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


# ---------------------------------------------------------------------------


def read_proto(path) -> dict:
    """The decoded ModelProto of the file at ``path``."""
    try:
        size = os.stat(path).st_size
        if size > MAX_FILE:
            raise ModelError(f"{path}: {size} bytes, beyond protobuf's 2 GiB limit for a model file")
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ModelError(f"{path}: cannot read model file: {e.strerror or e}") from None
    try:
        return decode(data)
    except ProtoError as e:
        raise ModelError(f"{path}: malformed ONNX protobuf: {e}") from None
    except RecursionError:
        raise ModelError(f"{path}: malformed ONNX protobuf: nested too deeply") from None


def load(path) -> Model:
    model = Loader(path, read_proto(path)).build()
    model.source["path"] = os.fspath(path)
    return model
