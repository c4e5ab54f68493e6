"""Reading back what ``jacprop jacobian`` wrote (CSV, JSON Lines or NPZ; sniffed from the
first bytes), for ``jacprop propagate`` at the end of a pipe.

Both forms are read: today's, whose rows carry their data row numbers (the CSV ``row``
column, the NPZ ``rows`` array) and whose JSON Lines records carry ``input_names`` and
``output_names``; and the older one without them (rows 1, 2, ...; names x0.., y0..)."""

from __future__ import annotations

import io
import json
import re
import sys
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .dialect import input_name
from .writers import ROW_COLUMN

_J_COLUMN = re.compile(r"^d\((.*)\)/d\((.*)\)$")
CHUNK_ROWS = 16384


@dataclass
class JacobianStream:
    """input_names, output_names, id_name, and chunks of (rows, ids, X or None, Y, J); for the progress
    display, the open ``file`` (csv, jsonl) or the row count ``n_rows`` (npz)."""

    input_names: list
    output_names: list
    id_name: str | None
    chunks: object
    has_x: bool
    hessian: np.ndarray | None = None  # an npz of `jacprop hessian`: H (N, K, D, D), or (N, K, D) diagonal
    hessian_diagonal: bool = False
    file: object = None
    n_rows: int | None = None


def read_jacobian(path) -> JacobianStream:
    """Sniff and open ``path`` ("-" = stdin); CSV and JSONL are read in chunks as they come."""
    stream = sys.stdin.buffer if str(path) == "-" else _open(path)
    where = input_name(path)
    head = stream.peek(64)[:64]
    if not head:
        raise InputError(f"{where}: empty input: expected what `jacprop jacobian` writes (csv, jsonl or npz)")
    if head.startswith(b"PK"):
        return _npz(io.BytesIO(stream.read()), where)
    if head.lstrip()[:1] == b"{":
        return _jsonl(stream, where)
    return _csv(stream, where)


def _open(path):
    try:
        return open(path, "rb")
    except OSError as e:
        raise InputError(f"{path}: cannot open: {e.strerror or e}") from None


def _npz(stream, where):
    try:
        with np.load(stream, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:
        raise InputError(f"{where}: unreadable NPZ ({e})") from None
    missing = {"y", "jacobian", "input_names", "output_names"} - set(arrays)
    if missing:
        raise InputError(f"{where}: NPZ lacks {sorted(missing)}; expected the output of "
                         "`jacprop jacobian --format npz`")
    Y, J = arrays["y"].astype(np.float64), arrays["jacobian"].astype(np.float64)
    X = arrays["x"].astype(np.float64) if "x" in arrays else None
    ids = arrays.get("ids")
    rows = arrays["rows"].astype(np.int64) if "rows" in arrays else np.arange(1, len(Y) + 1)
    H, diagonal = _hessian_of(arrays, J, where)
    return JacobianStream(list(arrays["input_names"]), list(arrays["output_names"]), "id" if ids is not None else None,
                          iter([(rows, ids, X, Y, J)]), X is not None, H, diagonal, n_rows=len(Y))


def _hessian_of(arrays, J, where):
    """(H or None, diagonal): the ``hessian`` (N, K, D, D) or ``hessian_diagonal`` (N, K, D) of
    `jacprop hessian --format npz`, checked against J (N, K, D)."""
    diagonal = "hessian" not in arrays and "hessian_diagonal" in arrays
    H = arrays.get("hessian", arrays.get("hessian_diagonal"))
    if H is None:
        return None, False
    expected = J.shape + (() if diagonal else J.shape[-1:])
    if H.shape != expected:
        name = "hessian_diagonal" if diagonal else "hessian"
        raise InputError(f"{where}: {name} has shape {H.shape}, but the jacobian {J.shape} needs {expected}")
    return H.astype(np.float64), diagonal


def _jsonl(stream, where):
    """JSON Lines records, blank lines skipped wherever they are; errors name the physical line."""
    numbered = _numbered_records(io.TextIOWrapper(stream, encoding="utf-8"), where)
    first_number, first_line = next(numbered)  # there is one: the input was sniffed by its "{"
    try:
        first = json.loads(first_line)
        k, d = len(first["jacobian"]), len(first["jacobian"][0])
    except (ValueError, KeyError, TypeError, IndexError) as e:
        what = "not a `jacprop jacobian --format jsonl` record"
        raise InputError(f"{where}: line {first_number}: {what} ({e})") from None
    has_id, has_x = "id" in first, "x" in first
    in_names, out_names = first.get("input_names"), first.get("output_names")
    if not (isinstance(in_names, list) and len(in_names) == d and isinstance(out_names, list) and len(out_names) == k):
        in_names, out_names = [f"x{i}" for i in range(d)], [f"y{j}" for j in range(k)]  # the older form: no names

    def chunks():
        numbers, lines = [first_number], [first_line]
        for number, line in numbered:
            numbers.append(number)
            lines.append(line)
            if len(lines) >= CHUNK_ROWS:
                yield _jsonl_block(lines, numbers, where, (k, d), has_id, has_x)
                numbers, lines = [], []
        if lines:
            yield _jsonl_block(lines, numbers, where, (k, d), has_id, has_x)

    return JacobianStream([str(n) for n in in_names], [str(n) for n in out_names], "id" if has_id else None,
                          chunks(), has_x, file=stream)


def _numbered_records(text, where):
    """(physical line number, line) of every line that is not blank."""
    try:
        for number, line in enumerate(text, 1):
            if line.strip():
                yield number, line
    except UnicodeDecodeError as e:
        raise InputError(f"{where}: not UTF-8 text ({e.reason})") from None


def _jsonl_block(lines, numbers, where, shape, has_id, has_x):
    """rows, ids, X, Y (n, K), J (n, K, D) of the records; a malformed one is refused with its line."""
    (k, d), n = shape, len(lines)
    try:
        objs = [json.loads(line) for line in lines]
        rows = [o["row"] for o in objs]
        if not all(type(r) is int and r >= 1 for r in rows):  # bool is an int subclass: not a row number
            raise ValueError("'row' is not a row number (an integer from 1)")
        rows = np.array(rows, dtype=np.int64)
        Y = np.array([o["y"] for o in objs], dtype=np.float64).reshape(n, k)
        J = np.array([o["jacobian"] for o in objs], dtype=np.float64).reshape(n, k, d)
        X = np.array([o["x"] for o in objs], dtype=np.float64).reshape(n, d) if has_x else None
        ids = np.array([str(o["id"]) for o in objs]) if has_id else None
    except (ValueError, KeyError, TypeError, OverflowError) as e:
        if n == 1:
            raise InputError(f"{where}: line {numbers[0]}: malformed record ({e})") from None
        for number, line in zip(numbers, lines):  # which record: the first that fails on its own
            _jsonl_block([line], [number], where, shape, has_id, has_x)
        raise InputError(f"{where}: lines {numbers[0]}-{numbers[-1]}: malformed records ({e})") from None
    return rows, ids, X, Y, J


class _EndChecked(io.RawIOBase):
    """A binary stream that may not end inside a line: what `jacprop jacobian` writes ends with a line end,
    so a last line without one was cut short (the command before the pipe stopped), and its last number
    may be a prefix of the one written (-0.65688417 of -0.6568841766...)."""

    def __init__(self, raw, where):
        self.raw, self.where, self.last = raw, where, b"\n"

    def readable(self):
        return True

    def readinto(self, b):
        n = self.raw.readinto(b)
        if n:
            self.last = bytes(b[n - 1 : n])
        elif self.last not in (b"\n", b"\r"):
            raise InputError(f"{self.where}: the input ends inside a line: it was cut short (did the command before "
                             "the pipe fail?)")
        return n


def _csv(stream, where):
    from .reader import CsvReader

    checked = io.BufferedReader(_EndChecked(stream, where))
    reader = CsvReader(checked, name=where, on_invalid="keep", chunk_rows=CHUNK_ROWS,  # NaN rows pass through
                       delimiter=",", header=True)
    header = reader.names
    j_cols = [(c, m[1], m[2]) for c in header if (m := _J_COLUMN.match(c))]
    if not j_cols:
        raise InputError(f"{where}: line 1: no d(<output>)/d(<input>) columns; expected what `jacprop jacobian` writes")
    outputs = list(dict.fromkeys(o for _, o, _ in j_cols))
    inputs = list(dict.fromkeys(i for _, _, i in j_cols))
    k, d = len(outputs), len(inputs)
    if len(j_cols) != k * d:
        raise InputError(f"{where}: line 1: the J columns do not form a full {k} x {d} matrix")
    missing = [o for o in outputs if o not in header]
    if missing:
        raise InputError(f"{where}: line 1: no column for output {missing[0]!r}")
    rest = [c for c in header if c not in outputs and not _J_COLUMN.match(c)]
    row_column = header[0] == ROW_COLUMN and ROW_COLUMN not in outputs
    rest = rest[1:] if row_column else rest
    id_name = rest[0] if rest else None
    reader.select(outputs + [c for c, _, _ in j_cols], id_column=id_name, exclude=(ROW_COLUMN,) if row_column else ())

    def chunks():
        for chunk in reader.chunks():
            rows = chunk.extra[ROW_COLUMN] if row_column else chunk.rows
            if row_column and not (np.isfinite(rows).all() and (rows == np.round(rows)).all() and (rows >= 1).all()):
                bad = int(np.flatnonzero(~(np.isfinite(rows) & (rows == np.round(rows)) & (rows >= 1)))[0])
                raise InputError(f"{where}: row {chunk.rows[bad]}: {ROW_COLUMN} {rows[bad]} is not a row number")
            yield rows.astype(np.int64), chunk.ids, None, chunk.X[:, :k], chunk.X[:, k:].reshape(-1, k, d)

    return JacobianStream(inputs, outputs, id_name, chunks(), False, file=stream)
