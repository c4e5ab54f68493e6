"""A bounded protobuf decoder for the few ONNX messages a model needs (onnx.proto, IR version <= 10).

The wire format: a message is a sequence of (key, value) pairs, key = varint (field << 3 | wire type);
wire type 0 is a varint, 1 eight bytes, 2 a varint length then that many bytes (a string, a nested
message or a packed repeated field), 5 four bytes.  Groups (3, 4) are obsolete and refused.

Bounds, checked before anything is used: a varint has at most 10 bytes (and fits 64 bits); every
length lies within the bytes of the enclosing message; messages nest at most ``MAX_DEPTH`` deep;
packed fields have a whole number of items.  Unknown fields are skipped (their bytes still checked).
A decoded message is a dict from field name to value (lists for repeated fields); bytes fields stay
``memoryview`` slices of the file, so tensors are not copied here.
"""

from __future__ import annotations

import numpy as np

MAX_DEPTH = 32


class ProtoError(ValueError):
    """Malformed protobuf bytes."""


# message -> {field number: (name, kind, repeated)}; kind is a scalar kind or another message's name.
# Scalar kinds: int (varint, int64 two's complement), float (fixed32), str, bytes.
SCHEMA = {
    "Model": {
        1: ("ir_version", "int", False),
        2: ("producer_name", "str", False),
        3: ("producer_version", "str", False),
        4: ("domain", "str", False),
        5: ("model_version", "int", False),
        7: ("graph", "Graph", False),
        8: ("opset_import", "OpsetId", True),
        25: ("functions", "bytes", True),
        20: ("training_info", "bytes", True),
    },
    "OpsetId": {1: ("domain", "str", False), 2: ("version", "int", False)},
    "Graph": {
        1: ("node", "Node", True),
        2: ("name", "str", False),
        5: ("initializer", "Tensor", True),
        15: ("sparse_initializer", "bytes", True),
        11: ("input", "ValueInfo", True),
        12: ("output", "ValueInfo", True),
        13: ("value_info", "ValueInfo", True),
    },
    "Node": {
        1: ("input", "str", True),
        2: ("output", "str", True),
        3: ("name", "str", False),
        4: ("op_type", "str", False),
        7: ("domain", "str", False),
        5: ("attribute", "Attribute", True),
    },
    "Attribute": {
        1: ("name", "str", False),
        20: ("type", "int", False),
        2: ("f", "float", False),
        3: ("i", "int", False),
        4: ("s", "bytes", False),
        5: ("t", "Tensor", False),
        6: ("g", "Graph", False),
        7: ("floats", "float", True),
        8: ("ints", "int", True),
        9: ("strings", "bytes", True),
        10: ("tensors", "Tensor", True),
        11: ("graphs", "Graph", True),
        21: ("ref_attr_name", "str", False),
        22: ("sparse_tensor", "bytes", False),
        23: ("sparse_tensors", "bytes", True),
    },
    "Tensor": {
        1: ("dims", "int", True),
        2: ("data_type", "int", False),
        4: ("float_data", "float", True),
        5: ("int32_data", "int", True),
        7: ("int64_data", "int", True),
        8: ("name", "str", False),
        9: ("raw_data", "bytes", False),
        10: ("double_data", "double", True),
        11: ("uint64_data", "uint", True),
        13: ("external_data", "Entry", True),
        14: ("data_location", "int", False),
        3: ("segment", "bytes", False),
        6: ("string_data", "bytes", True),
    },
    "Entry": {1: ("key", "str", False), 2: ("value", "str", False)},
    "ValueInfo": {1: ("name", "str", False), 2: ("type", "Type", False)},
    "Type": {
        1: ("tensor_type", "TensorType", False),
        4: ("sequence_type", "Type1", False),
        5: ("map_type", "bytes", False),
        8: ("sparse_tensor_type", "TensorType", False),
        9: ("optional_type", "Type1", False),
    },
    "Type1": {1: ("elem_type", "Type", False)},  # Sequence and Optional: one element type
    "TensorType": {1: ("elem_type", "int", False), 2: ("shape", "Shape", False)},
    "Shape": {1: ("dim", "Dim", True)},
    "Dim": {1: ("dim_value", "int", False), 2: ("dim_param", "str", False)},
}
WIRE = {"int": 0, "uint": 0, "float": 5, "double": 1, "str": 2, "bytes": 2}  # messages: 2


def read_varint(buf, pos: int, end: int) -> tuple[int, int]:
    """(value, next position) of the varint at ``pos``: at most 10 bytes, within ``end``."""
    value = shift = 0
    for i in range(10):
        if pos + i >= end:
            raise ProtoError(f"truncated varint at byte {pos}")
        b = buf[pos + i]
        value |= (b & 0x7F) << shift
        if b < 0x80:
            if i == 9 and b > 1:
                raise ProtoError(f"varint at byte {pos} overflows 64 bits")
            return value, pos + i + 1
        shift += 7
    raise ProtoError(f"varint at byte {pos} longer than 10 bytes")


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _skip(buf, pos, end, wire, depth):
    if wire == 0:
        return read_varint(buf, pos, end)[1]
    if wire == 1 or wire == 5:
        n = 8 if wire == 1 else 4
        if pos + n > end:
            raise ProtoError(f"truncated fixed-size field at byte {pos}")
        return pos + n
    if wire == 2:
        n, pos = read_varint(buf, pos, end)
        if n > end - pos:
            raise ProtoError(f"length {n} at byte {pos} runs past the end of its message")
        return pos + n
    raise ProtoError(f"wire type {wire} at byte {pos} (groups are not allowed)")


def _packed(buf, start, stop, kind):
    """The items of a packed repeated field in buf[start:stop]."""
    if kind in ("float", "double"):
        size = 4 if kind == "float" else 8
        if (stop - start) % size:
            raise ProtoError(f"packed {kind} field at byte {start} has {stop - start} bytes, not a multiple of {size}")
        return np.frombuffer(buf[start:stop], "<f4" if size == 4 else "<f8").tolist()
    out, pos = [], start
    while pos < stop:
        v, pos = read_varint(buf, pos, stop)
        out.append(v if kind == "uint" else _signed(v))
    return out


def decode(buf, message: str = "Model", start: int = 0, end: int | None = None, depth: int = 0) -> dict:
    """Decode buf[start:end] as ``message`` (a key of ``SCHEMA``)."""
    if depth > MAX_DEPTH:
        raise ProtoError(f"messages nested deeper than {MAX_DEPTH} levels at byte {start}")
    buf = memoryview(buf) if not isinstance(buf, memoryview) else buf
    end = len(buf) if end is None else end
    fields = SCHEMA[message]
    out: dict = {}
    pos = start
    while pos < end:
        key_at = pos
        key, pos = read_varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ProtoError(f"field number 0 at byte {key_at}")
        spec = fields.get(number)
        if spec is None or wire in (3, 4):
            pos = _skip(buf, pos, end, wire, depth)
            continue
        name, kind, repeated = spec
        expected = WIRE.get(kind, 2)
        if repeated and wire == 2 and expected != 2:  # packed scalars
            n, pos = read_varint(buf, pos, end)
            if n > end - pos:
                raise ProtoError(f"length {n} at byte {pos} runs past the end of its message")
            out.setdefault(name, []).extend(_packed(buf, pos, pos + n, kind))
            pos += n
            continue
        if wire != expected:
            raise ProtoError(f"{message}.{name} at byte {key_at}: wire type {wire}, expected {expected}")
        if wire == 0:
            raw, pos = read_varint(buf, pos, end)
            value = raw if kind == "uint" else _signed(raw)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > end:
                raise ProtoError(f"truncated fixed-size field at byte {pos}")
            value = float(np.frombuffer(buf[pos : pos + size], "<f8" if size == 8 else "<f4")[0])
            pos += size
        else:
            n, pos = read_varint(buf, pos, end)
            if n > end - pos:
                raise ProtoError(f"length {n} at byte {pos} runs past the end of its message")
            if kind == "str":
                try:
                    value = bytes(buf[pos : pos + n]).decode("utf-8")
                except UnicodeDecodeError:
                    raise ProtoError(f"{message}.{name} at byte {pos} is not UTF-8") from None
            elif kind == "bytes":
                value = buf[pos : pos + n]
            else:
                value = decode(buf, kind, pos, pos + n, depth + 1)
            pos += n
        if repeated:
            out.setdefault(name, []).append(value)
        else:
            out[name] = value
    if pos != end:
        raise ProtoError(f"message ends at byte {pos}, expected {end}")
    return out


def looks_like_model(head: bytes) -> bool:
    """True when ``head`` (the file's first bytes) starts as an ONNX ModelProto: field 1 (ir_version,
    a varint) first, as every ONNX writer puts it, with a plausible value, then another valid key."""
    try:
        key, pos = read_varint(head, 0, len(head))
        if key != 0x08:
            return False
        version, pos = read_varint(head, pos, len(head))
        if not 1 <= version <= 100:
            return False
        key, _ = read_varint(head, pos, len(head))
        return (key >> 3) in (2, 3, 4, 5, 6, 7, 8, 14, 20, 25) and (key & 7) in (0, 2)
    except ProtoError:
        return False
