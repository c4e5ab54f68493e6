"""ONNX tensors: the arrays of TensorProtos (external data read only from regular files inside the
model's folder, ``_external``) and the four kinds of value the graph walk (``onnx.Loader``) gives
every name:

- ``Const``: an array known at load time (initializers, Constant nodes, and anything computed from
  constants only: shape subgraphs are folded, the batch size being the symbol ``BATCH``, shown N);
- ``Tensor``: a node of the layer graph, with its per-row shape;
- ``Mask``: a comparison of a tensor with a constant, to be used as Where's condition;
- ``NonFloat``: an integer or boolean result of a tensor (ArgMax, a cast label): no derivative, left out.
"""

from __future__ import annotations

import math
import os
import re
import stat
from dataclasses import dataclass

import numpy as np

from ..errors import ModelError

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


def float64(a: np.ndarray) -> np.ndarray:
    """Float arrays as float64 (jacprop computes in float64; ``--dtype`` casts later), others as they are."""
    return a.astype(np.float64) if a.dtype.kind == "f" else a


def f32(v) -> float:
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
# TensorProto arrays and external data


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
