"""Numbers as text fast: pyarrow (the ``fast`` extra) spelling float64 values exactly as ``repr``
(and ``json.dumps``) do, for the CSV and JSON Lines writers (``io.writers``)."""

from __future__ import annotations

import json

import numpy as np

ARROW_MIN_VALUES = 256  # below this, the plain path is as fast as calling pyarrow
# Where pyarrow's shortest text is spelled otherwise than repr: it writes 1e-7 < |x| < 1e10 without an
# exponent (repr: 1e-4 <= |x| < 1e16), one-digit exponents (e-9, repr e-09) and integers without ".0".
# Numbers in these bands (with a margin) are given to repr; integers below 1e10 get ".0".
_REPR_BANDS = ((0.99e-10, 1.01e-4), (0.99e10, 1.01e16))


def _arrow():
    try:
        import pyarrow as pa
        import pyarrow.compute  # noqa: F401
    except ImportError:
        return None
    return pa


def _s(text):
    """A large_string scalar.  (These helpers build arrays from buffers: ``pa.array`` and ``pa.scalar``
    import pandas when it is installed, 0.3 s or more.)"""
    return _strings([text])[0]


def _numbers(x: np.ndarray):
    """A contiguous 1-D float64, int64 or bool numpy array as a pyarrow array (no copy for numbers)."""
    import pyarrow as pa

    if x.dtype == bool:
        return pa.Array.from_buffers(pa.bool_(), len(x), [None, pa.py_buffer(np.packbits(x, bitorder="little"))])
    kind = {np.dtype(np.float64): pa.float64(), np.dtype(np.int64): pa.int64()}[x.dtype]
    return pa.Array.from_buffers(kind, len(x), [None, pa.py_buffer(np.ascontiguousarray(x))])


def _strings(texts: list[str]):
    import pyarrow as pa

    encoded = [t.encode() for t in texts]
    offsets = np.zeros(len(encoded) + 1, np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
    return pa.Array.from_buffers(pa.large_string(), len(encoded), buffers)


def _arrow_numbers(values: np.ndarray, for_json: bool = False):
    """Every value (flattened) as repr's text, by pyarrow's float-to-string cast (shortest round-trip
    digits) with the numbers whose spelling would differ formatted by repr; ``for_json``: NaN,
    Infinity and -Infinity as ``json.dumps`` spells them.  A pyarrow large_string array."""
    import pyarrow as pa
    import pyarrow.compute as pc

    x = np.ascontiguousarray(values, dtype=np.float64).reshape(-1)
    text = pc.cast(_numbers(x), pa.large_string())
    ax = np.abs(x)
    odd = np.zeros(len(x), bool)
    for lo, hi in _REPR_BANDS:
        odd |= (ax >= lo) & (ax < hi)
    with np.errstate(invalid="ignore"):  # floor of nan and inf
        whole = (ax < _REPR_BANDS[1][0]) & (x == np.floor(x)) & ~odd
    if whole.any():
        text = pc.binary_join_element_wise(text, pc.if_else(_numbers(whole), _s(".0"), _s("")), _s(""))
    spell = json.dumps if for_json else repr
    if for_json:
        odd |= ~np.isfinite(x)
    if odd.any():
        text = pc.replace_with_mask(text, _numbers(odd), _strings([spell(v) for v in x[odd].tolist()]))
    return text


def _join_groups(text, size: int, sep: str):
    """Consecutive groups of ``size`` strings joined by ``sep``: one string per group."""
    import pyarrow as pa
    import pyarrow.compute as pc

    offsets = _numbers(np.arange(0, len(text) + 1, size, dtype=np.int64))
    return pc.binary_join(pa.LargeListArray.from_arrays(offsets, text), _s(sep))


def _concat_lines(lines, n) -> bytes:
    """The strings, each followed by a newline, as one bytes object."""
    import pyarrow as pa
    import pyarrow.compute as pc

    lines = pc.binary_join_element_wise(lines, _s("\n"), _s(""))
    whole = pa.LargeListArray.from_arrays(_numbers(np.array([0, n], np.int64)), lines)
    return pc.binary_join(whole, _s(""))[0].as_buffer().to_pybytes()


def _arrow_nested(values: np.ndarray, n: int, tail: tuple):
    """One JSON text per row of ``values`` (n, *tail): nested lists as ``json.dumps`` writes them."""
    import pyarrow.compute as pc

    text = _arrow_numbers(values, for_json=True)
    for size in reversed(tail):
        text = pc.binary_join_element_wise(_s("["), _join_groups(text, size, ", "), _s("]"), _s(""))
    return text


def csv_lines(flat: np.ndarray, id_cells: list[str] | None = None) -> bytes:
    """Rows of numbers (N, C) as CSV lines, each number in ``repr`` form (the shortest text that
    reads back as the same float64), after its row's id cell if given.  pyarrow (the ``fast``
    extra) formats floats when installed (``_arrow_numbers``), 3-6x faster, to the same bytes."""
    if len(flat) == 0:
        return b""
    pa = _arrow() if flat.size >= ARROW_MIN_VALUES and flat.dtype.kind == "f" else None
    if pa is None:
        lines = [",".join(map(repr, r)) for r in flat.tolist()]
        if id_cells is not None:
            lines = [f"{i},{line}" for i, line in zip(id_cells, lines)]
        return ("\n".join(lines) + "\n").encode()
    pc, n = pa.compute, len(flat)
    lines = _join_groups(_arrow_numbers(flat), flat.shape[1], ",")
    if id_cells is not None:
        lines = pc.binary_join_element_wise(_strings(id_cells), lines, _s(","))
    return _concat_lines(lines, n)


def jsonl_lines(rows, ids, arrays: dict, fields: list, close: str = "}") -> bytes:
    """``JsonlWriter``'s lines: {"row": n, ["id": ...,] <field>: nested lists, ...} per row, as
    ``json.dumps`` writes them, each ended by ``close`` (the closing brace, or more keys and it);
    by pyarrow when installed and every field is float (same bytes)."""
    n = len(rows)
    pa = _arrow() if n and all(arrays[f.name].dtype.kind == "f" for f in fields) else None
    if pa is None or sum(arrays[f.name].size for f in fields) < ARROW_MIN_VALUES:
        lists = {f.name: arrays[f.name].tolist() for f in fields}
        out = []
        for i in range(n):
            obj = {"row": int(rows[i])}
            if ids is not None:
                obj["id"] = str(ids[i])
            obj.update((name, values[i]) for name, values in lists.items())
            out.append(json.dumps(obj)[:-1] + close)
        return ("\n".join(out) + "\n").encode() if out else b""
    pc = pa.compute
    parts = [_s('{"row": '), pc.cast(_numbers(np.asarray(rows, dtype=np.int64)), pa.large_string())]
    if ids is not None:
        parts += [_s(', "id": '), _strings([json.dumps(str(i)) for i in ids.tolist()])]
    for f in fields:
        parts += [_s(f", {json.dumps(f.name)}: "), _arrow_nested(arrays[f.name], n, tuple(f.tail))]
    parts.append(_s(close))
    return _concat_lines(pc.binary_join_element_wise(*parts, _s("")), n)
