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

The modules: ``onnx_proto`` decodes the protobuf, ``onnx_tensors`` reads tensors and names the
kinds of value, ``onnx_math`` and ``onnx_structure`` translate ops by family; this one walks the
graph (``Loader``: values, constant folding in ``emit``, the inputs and outputs).
"""

from __future__ import annotations

import os

import numpy as np

from .. import ops
from ..errors import ModelError
from ..graph import GraphBuilder, Model
from ..ops import tensor as ops_onnx
from . import onnx_math, onnx_structure
from .onnx_proto import ProtoError, decode
from .onnx_tensors import DTYPES, FLOAT_TYPES, Const, Mask, NonFloat, Tensor, float64, tensor_array

__all__ = ["Loader", "load", "read_proto", "tensor_array"]

MAX_FILE = 2**31  # protobuf's own limit for one message
REFUSED = {
    "If": "control flow (If)",
    "Loop": "control flow (Loop)",
    "Scan": "control flow (Scan)",
    "SequenceConstruct": "sequences",
    "SequenceAt": "sequences",
    "SplitToSequence": "sequences",
}
DOMAINS = ("", "ai.onnx", "ai.onnx.ml")
HANDLERS = {**onnx_math.HANDLERS, **onnx_structure.HANDLERS}


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
        """The Model: initializers as constants, the inputs as the graph's inputs, every node in
        order (``node``), then the float outputs."""
        p = self.proto
        if p.get("functions"):
            raise ModelError(f"{self.path}: model-local functions are not supported")
        g = p.get("graph")
        if g is None:
            raise ModelError(f"{self.path}: no graph in the model")
        if g.get("sparse_initializer"):
            raise ModelError(f"{self.path}: sparse initializers are not supported")
        for t in g.get("initializer", []):
            self.values[t.get("name", "")] = Const(float64(tensor_array(t, self.folder, self.path)))
        inputs = self._inputs(g)
        self.b = GraphBuilder(inputs)
        for (name, shape), i in zip(inputs, self.b.inputs):
            self.values[name] = Tensor(i, shape)
        for node in g.get("node", []):
            self.node(node)
        return self.b.finish(self._outputs(g), source=self._source())

    def _inputs(self, g) -> list[tuple[str, tuple]]:
        """(name, per-row shape) of every graph input that is not an initializer."""
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
        return inputs

    def _outputs(self, g) -> list[int]:
        """The nodes of the float graph outputs, each named as its output (an Identity where needed)."""
        outputs = []
        for vi in g.get("output", []):
            name = vi.get("name", "")
            code, _ = self._tensor_type(vi, "output")
            v = self.values.get(name)
            if v is None:
                why = "an optional output jacprop does not compute"
                why = why if name in self.values else "not computed by the graph"
                raise ModelError(f"{self.path}: output {name!r} is {why}")
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
        return outputs

    def _source(self) -> dict:
        """What ``inspect`` tells of the file: producer, IR version, opsets, notes."""
        p = self.proto
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
        return source

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
                v = self.values.get(name)
                hint = (
                    " (skl2onnx's ZipMap: export with options={'zipmap': False} for the probabilities as a tensor)"
                    if isinstance(v, NonFloat) and v.why.startswith("ZipMap")
                    else ""
                )
                raise ModelError(f"{self.path}: {what} {name!r} is {label}; jacprop reads tensors only{hint}")
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
