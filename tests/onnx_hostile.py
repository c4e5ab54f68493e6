"""Hostile ONNX files, written with a small protobuf encoder (no onnx package needed): the ONNX rows of the
bad-input matrix (tests/test_bad_inputs.py, tests/BAD_INPUTS.md) and the encoder tests/test_onnx.py uses.

Each case is (id, what, maker, the message contains); ``maker(tmp)`` writes the model (and whatever lies
beside it) into the folder ``tmp`` and returns the model's path.  The model is a Gemm y = x W (x: 3
columns) unless the case needs another.
"""

import math
import os
import struct

import numpy as np


def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def fld(num, value):
    """One field: int -> varint, float -> fixed32, bytes/str -> length-delimited."""
    if isinstance(value, bool) or isinstance(value, int):
        return varint(num << 3) + varint(value)
    if isinstance(value, float):
        return varint(num << 3 | 5) + struct.pack("<f", value)
    if isinstance(value, str):
        value = value.encode()
    return varint(num << 3 | 2) + varint(len(value)) + value


def tensor(name, dims, raw=None, external=None, dtype=1):
    out = b"".join(fld(1, d) for d in dims) + fld(2, dtype) + fld(8, name)
    if external is not None:
        out += b"".join(fld(13, fld(1, k) + fld(2, str(v))) for k, v in external.items()) + fld(14, 1)
    else:
        out += fld(9, raw if raw is not None else np.zeros(math.prod(dims), np.float32).tobytes())
    return out


def value_info(name, dims, elem=1, sequence=False, kind=None):
    """A ValueInfoProto: a tensor (TypeProto field 1), a sequence of it (4), or ``kind`` = (field, bytes)."""
    shape = b"".join(fld(1, fld(2, d) if isinstance(d, str) else fld(1, d)) for d in dims)
    tt = fld(1, fld(1, elem) + fld(2, shape))
    if kind is not None:
        return fld(1, name) + fld(2, fld(*kind))
    return fld(1, name) + fld(2, fld(4, fld(1, tt)) if sequence else tt)


def node(op, ins, outs, attrs=b"", domain="", name=None):
    return b"".join(fld(1, i) for i in ins) + b"".join(fld(2, o) for o in outs) + fld(3, name or op) + fld(4, op) + (
        fld(7, domain) if domain else b""
    ) + attrs


def model(nodes, inits=(), inputs=(("x", ("N", 3)),), outputs=(("y", ("N", 2)),), extra_graph=b"", seq_out=False,
          out_kind=None, in_kind=None):  # fmt: skip
    graph = b"".join(fld(1, n) for n in nodes) + fld(2, "g") + b"".join(fld(5, t) for t in inits)
    graph += b"".join(fld(11, value_info(n, d, kind=in_kind)) for n, d in inputs)
    graph += b"".join(fld(12, value_info(n, d, sequence=seq_out, kind=out_kind)) for n, d in outputs) + extra_graph
    return fld(1, 8) + fld(2, "hostile") + fld(7, graph) + fld(8, fld(2, 17))


def gemm_model(b_tensor):
    return model([node("Gemm", ["x", "W"], ["y"])], [b_tensor])


def write(tmp_path, data, name="bad.onnx"):
    path = tmp_path / name
    path.write_bytes(data)
    (tmp_path / "x.csv").write_text("a,b,c\n1,2,3\n")
    return path


HEADER = fld(1, 8) + fld(2, "hostile")
EXT = {"location": "w.bin", "offset": 0, "length": 24}
ONES = np.ones(6, np.float32).tobytes()


def ext_model(tmp_path, **external):
    return write(tmp_path, gemm_model(tensor("W", (3, 2), external={**EXT, **external})))


def subgraph_attr(name="body"):
    """An attribute of type GRAPH (20: type 5) holding an empty graph."""
    return fld(5, fld(1, name) + fld(20, 5) + fld(6, fld(2, "b")))


# ---------------------------------------------------------------------------
# The makers


def with_file(name, data, **external):
    def make(tmp):
        (tmp / name).write_bytes(data)
        return ext_model(tmp, **external)

    return make


def data_of(data):
    return lambda tmp: write(tmp, data)


def traversal(tmp):
    """The model in tmp/model, its external data "../x" (a real file, in tmp)."""
    (tmp / "x").write_bytes(ONES)
    (tmp / "model").mkdir()
    return ext_model(tmp / "model", location="../x")


def symlink_out(tmp):
    outside, inside = tmp / "outside", tmp / "model"
    outside.mkdir()
    inside.mkdir()
    (outside / "w.bin").write_bytes(ONES)
    os.symlink(outside / "w.bin", inside / "w.bin")
    return ext_model(inside)


def symlink_in(tmp):
    (tmp / "real.bin").write_bytes(ONES)
    os.symlink(tmp / "real.bin", tmp / "w.bin")
    return ext_model(tmp)


def fifo(tmp):
    os.mkfifo(tmp / "w.bin")
    return ext_model(tmp)


def control_flow(op):
    return data_of(model([node(op, ["x"], ["y"], subgraph_attr(), name="flow")]))


def truncated_sample(tmp):
    src = os.path.join(os.path.dirname(__file__), "..", "sample_models", "onnx", "torch_mlp_legacy_f64.onnx")
    with open(src, "rb") as f:
        return write(tmp, f.read()[:3000], "t.onnx")


RELU = [node("Relu", ["x"], ["y"])]
MAP = (5, fld(1, 7) + fld(2, fld(1, fld(1, 1))))  # map<int64, tensor(float)>
ZIPMAP = [node("ZipMap", ["x"], ["y"], fld(5, fld(1, "classlabels_int64s") + fld(20, 7) + fld(8, 0)),
               domain="ai.onnx.ml", name="zip")]  # fmt: skip
SOFTMAX_ROWS = [node("Softmax", ["x"], ["y"], fld(5, fld(1, "axis") + fld(20, 2) + fld(3, 0)), name="sm")]

CASES = [
    ("onnx-external-traversal", "ONNX: external data location with '..'", traversal,
     "bad.onnx tensor 'W': external data location '../x' contains '..'"),
    ("onnx-external-absolute", "ONNX: external data at an absolute path",
     lambda tmp: ext_model(tmp, location="/etc/passwd"),
     "bad.onnx tensor 'W': external data location '/etc/passwd' is absolute"),
    ("onnx-external-symlink-out", "ONNX: external data a symlink leading out of the model's folder", symlink_out,
     "bad.onnx tensor 'W': external data location 'w.bin' resolves outside the model's folder"),
    ("onnx-external-symlink-in", "ONNX: external data a symlink inside the folder", symlink_in,
     "bad.onnx tensor 'W': external data 'w.bin' is not a regular file"),
    ("onnx-external-fifo", "ONNX: external data a FIFO (refused before opening: no hang)", fifo,
     "bad.onnx tensor 'W': external data 'w.bin' is not a regular file"),
    ("onnx-external-missing", "ONNX: external data file absent", lambda tmp: ext_model(tmp),
     "bad.onnx tensor 'W': cannot read external data 'w.bin'"),
    ("onnx-external-beyond", "ONNX: external offset + length beyond the file", with_file("w.bin", b"\0" * 16, offset=8),
     "bad.onnx tensor 'W': external data offset 8 + length 24 lies beyond 'w.bin' (16 bytes)"),
    ("onnx-external-size", "ONNX: external length other than the declared shape needs",
     with_file("w.bin", b"\0" * 64, length=64),
     "bad.onnx tensor 'W': shape (3, 2) needs 24 bytes, external data has 64"),
    ("onnx-raw-size", "ONNX: raw_data shorter than the declared shape",
     data_of(gemm_model(tensor("W", (3, 2), raw=b"\0" * 8))),
     "bad.onnx tensor 'W': shape (3, 2) of float32 needs 24 bytes, raw_data has 8"),
    ("onnx-huge-shape", "ONNX: a tensor declaring 2^60 elements (checked before allocating)",
     data_of(gemm_model(tensor("W", (2**40, 2**20), raw=b"\0" * 8))),
     "needs 4611686018427387904 bytes, raw_data has 8"),
    ("onnx-truncated", "ONNX: a truncated model file", truncated_sample, "t.onnx: malformed ONNX protobuf"),
    ("onnx-truncated-varint", "ONNX: a varint cut off", data_of(HEADER + b"\x3a\xff\xff"),
     "bad.onnx: malformed ONNX protobuf: truncated varint"),
    ("onnx-long-varint", "ONNX: an 11-byte varint", data_of(HEADER + b"\x28" + b"\xff" * 10 + b"\x01"),
     "longer than 10 bytes"),
    ("onnx-group", "ONNX: a protobuf group", data_of(HEADER + b"\x3a\x05\x0b\x00\x00\x00\x00"), "wire type 3"),
    ("onnx-length-past-end", "ONNX: a length beyond the file", data_of(HEADER + b"\x3a\x40\x0a\x01"),
     "runs past the end"),
    ("onnx-unknown-op", "ONNX: an unknown op", data_of(model([node("FooBar", ["x"], ["y"], name="n1")])),
     "bad.onnx: node 'n1' (FooBar): unsupported op 'FooBar'"),
    ("onnx-unknown-domain", "ONNX: an op of a custom domain",
     data_of(model([node("Relu", ["x"], ["y"], domain="com.microsoft", name="n1")])),
     "bad.onnx: node 'n1' (Relu): domain 'com.microsoft' is not supported"),
    ("onnx-if", "ONNX: an If node", control_flow("If"),
     "bad.onnx: node 'flow' (If): control flow (If) is not supported"),
    ("onnx-loop", "ONNX: a Loop node", control_flow("Loop"),
     "node 'flow' (Loop): control flow (Loop) is not supported"),
    ("onnx-scan", "ONNX: a Scan node", control_flow("Scan"),
     "node 'flow' (Scan): control flow (Scan) is not supported"),
    ("onnx-subgraph-attribute", "ONNX: a subgraph attribute on another op",
     data_of(model([node("Relu", ["x"], ["y"], subgraph_attr("g"), name="r")], outputs=(("y", ("N", 3)),))),
     "node 'r' (Relu): attribute 'g' holds a subgraph"),
    ("onnx-sparse-attribute", "ONNX: a Constant holding a sparse tensor",
     data_of(model([node("Constant", [], ["c"], fld(5, fld(1, "sparse_value") + fld(20, 11) + fld(22, b"")), name="c"),
                    *RELU], outputs=(("y", ("N", 3)),))),
     "node 'c' (Constant): attribute 'sparse_value' holds a sparse tensor; sparse tensors are not supported"),
    ("onnx-sparse-initializer", "ONNX: a sparse initializer",
     data_of(model(RELU, outputs=(("y", ("N", 3)),), extra_graph=fld(15, fld(1, tensor("values", (1,))) + fld(3, 1)))),
     "bad.onnx: sparse initializers are not supported"),
    ("onnx-functions", "ONNX: model-local functions",
     data_of(model(RELU, outputs=(("y", ("N", 3)),)) + fld(25, fld(1, "f"))),
     "bad.onnx: model-local functions are not supported"),
    ("onnx-sequence-output", "ONNX: a sequence output", data_of(model(RELU, outputs=(("y", ("N", 3)),), seq_out=True)),
     "bad.onnx: output 'y' is a sequence; jacprop reads tensors only"),
    ("onnx-map-output", "ONNX: a map output (skl2onnx's ZipMap)",
     data_of(model(ZIPMAP, outputs=(("y", ()),), out_kind=MAP)),
     "bad.onnx: output 'y' is a map; jacprop reads tensors only (skl2onnx's ZipMap: export with "
     "options={'zipmap': False}"),
    ("onnx-sequence-of-maps-output", "ONNX: a sequence of maps (ZipMap's output type)",
     data_of(model(ZIPMAP, outputs=(("y", ()),), out_kind=(4, fld(1, fld(*MAP))))),
     "bad.onnx: output 'y' is a sequence; jacprop reads tensors only (skl2onnx's ZipMap"),
    ("onnx-sequence-input", "ONNX: a sequence input",
     data_of(model(RELU, outputs=(("y", ("N", 3)),), in_kind=(4, fld(1, fld(1, fld(1, 1)))))),
     "bad.onnx: input 'x' is a sequence; jacprop reads tensors only"),
    ("onnx-optional-output", "ONNX: LayerNormalization's Mean as a graph output",
     data_of(model([node("LayerNormalization", ["x", "s"], ["y", "mean"], name="ln")], [tensor("s", (3,))],
                   outputs=(("y", ("N", 3)), ("mean", ("N", 1))))),
     "bad.onnx: output 'mean' is an optional output jacprop does not compute"),
    ("onnx-mixes-rows", "ONNX: an op over the batch axis", data_of(model(SOFTMAX_ROWS, outputs=(("y", ("N", 3)),))),
     "bad.onnx: node 'sm' (Softmax): axis 0 is the batch axis; jacprop computes each row on its own"),
]  # fmt: skip
