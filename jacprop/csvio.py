"""Reading input rows from CSV in chunks, with errors that name the row and column.

Rows are numbered as a spreadsheet user sees them: the first data row is row 1;
``line`` is the physical line in the file (header = line 1).
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .errors import InputError, UsageError

CHUNK_ROWS = 65536
INVALID_POLICIES = ("error", "skip", "keep")
csv.field_size_limit(2**31 - 1)  # the default 128 KiB limit would turn a long cell into a csv.Error


@dataclass
class Chunk:
    """A block of input rows: X (n, D), their ids, and their 1-based data row numbers."""

    X: np.ndarray
    ids: np.ndarray | None
    rows: np.ndarray
    extra: dict  # other numeric columns asked for by name (e.g. per-row uncertainties)


def open_text(path) -> io.TextIOBase:
    """A text stream on a file or stdin ("-"): UTF-8 with an optional BOM, any newline style."""
    if str(path) == "-":
        return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline="")
    try:
        return open(path, encoding="utf-8-sig", newline="")
    except OSError as e:
        raise InputError(f"{path}: cannot open input: {e.strerror or e}") from None


class CsvReader:
    """A CSV of numbers with a header line (or ``header=False``: columns c0, c1, ...).

    ``columns`` picks the input columns by name, in order (default: every column but
    the id column and the ``exclude`` columns, which are read alongside); ``id_column`` is
    carried through as text.  ``on_invalid`` says what to
    do with NaN/inf cells: error (default), skip the row, or keep it.
    """

    def __init__(self, path, delimiter=",", header=True, columns=None, id_column=None,
                 on_invalid="error", chunk_rows=CHUNK_ROWS, exclude=()):
        self.path, self.delimiter, self.chunk_rows = str(path), delimiter, chunk_rows
        if on_invalid not in INVALID_POLICIES:
            raise UsageError(f"--on-invalid must be one of {', '.join(INVALID_POLICIES)}")
        self.on_invalid = on_invalid
        self.skipped = 0
        self._f = open_text(path)
        self._line = 0
        first = self._readline()
        if first is None:
            raise InputError(f"{self.path}: empty input: expected a header line and rows of numbers")
        cells = self._split(first)
        if header:
            self.names = [c.strip() for c in cells]
            self._pending = []
            dup = {n for n in self.names if self.names.count(n) > 1}
            if dup:
                raise InputError(f"{self.path}: line 1: duplicate column name(s) {sorted(dup)}")
            if "" in self.names:
                raise InputError(f"{self.path}: line 1: column {self.names.index('') + 1} has no name")
        else:
            self.names = [f"c{i}" for i in range(len(cells))]
            self._pending = [first]
            self._line = 0
        index = {n: i for i, n in enumerate(self.names)}
        for name in [*(columns or []), *([id_column] if id_column else []), *exclude]:
            if name not in index:
                raise UsageError(f"{self.path}: no column named {name!r}; the columns are {self.names}")
        self.id_index = index[id_column] if id_column else None
        chosen = columns or [n for n in self.names if n != id_column and n not in exclude]
        self.columns = list(chosen)
        self.extra = list(dict.fromkeys(exclude))
        self.usecols = [index[n] for n in chosen + self.extra]
        self._row = 0

    def _readline(self):
        try:
            line = self._f.readline()
        except UnicodeDecodeError as e:
            raise InputError(f"{self.path}: {_first_bad_utf8(self.path) or 'not UTF-8 text'} ({e.reason})") from None
        if not line:
            return None
        self._line += 1
        return line

    def _split(self, line):
        try:
            return next(csv.reader([line], delimiter=self.delimiter))
        except csv.Error as e:
            raise InputError(f"{self.path}: line {self._line}: {e}") from None

    def _lines(self) -> list[str]:
        lines, self._pending = self._pending, []
        while len(lines) < self.chunk_rows:
            line = self._readline()
            if line is None:
                break
            if line.strip():
                lines.append(line)
        return lines

    def chunks(self) -> Iterator[Chunk]:
        """Yield the rows in chunks of at most ``chunk_rows``."""
        while True:
            first_line = self._line - len(self._pending) + 1
            lines = self._lines()
            if not lines:
                break
            X = self._parse(lines, first_line)
            X, extra = X[:, : len(self.columns)], dict(zip(self.extra, X[:, len(self.columns) :].T))
            ids = None
            if self.id_index is not None:
                ids = np.array([self._split(line)[self.id_index] for line in lines])
            rows = np.arange(self._row + 1, self._row + 1 + len(lines))
            self._row += len(lines)
            bad = ~np.isfinite(X)
            if bad.any():
                if self.on_invalid == "error":
                    r, c = np.argwhere(bad)[0]
                    raise InputError(
                        f"{self.path}: row {rows[r]}, column {self.columns[c]!r}: value {X[r, c]} is not finite "
                        "(use --on-invalid skip or keep)"
                    )
                if self.on_invalid == "skip":
                    keep = ~bad.any(axis=1)
                    self.skipped += int((~keep).sum())
                    X, rows = X[keep], rows[keep]
                    ids = ids[keep] if ids is not None else None
                    extra = {k: v[keep] for k, v in extra.items()}
            yield Chunk(X, ids, rows, extra)

    def _parse(self, lines, first_line) -> np.ndarray:
        try:
            return np.loadtxt(lines, delimiter=self.delimiter, usecols=self.usecols, quotechar='"',
                              ndmin=2, dtype=np.float64, comments=None)
        except ValueError:
            self._locate_error(lines, first_line)
            raise  # pragma: no cover  (_locate_error always raises)

    def _locate_error(self, lines, first_line):
        """Find the first bad cell of a chunk that failed to parse, and say where it is."""
        for offset, line in enumerate(lines):
            cells = self._split(line)
            where = f"{self.path}: row {self._row + offset + 1} (line {first_line + offset})"
            if len(cells) != len(self.names):
                raise InputError(f"{where}: {len(cells)} fields, but the header has {len(self.names)}")
            for c in self.usecols:
                try:
                    float(cells[c].strip().strip('"'))
                except ValueError:
                    raise InputError(f"{where}, column {self.names[c]!r}: {cells[c][:40]!r} is not a number") from None
        raise InputError(f"{self.path}: rows {self._row + 1}-{self._row + len(lines)}: cannot parse as numbers")

    def close(self):
        if self._f is not sys.stdin:
            self._f.close()


def _first_bad_utf8(path) -> str | None:
    """'line L, byte B: not UTF-8 text' for the first undecodable line of a file (None for stdin)."""
    if str(path) == "-":
        return None
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as e:
                return f"line {number}, byte {e.start + 1}: not UTF-8 text"
    return None


def read_all(path, **kwargs) -> tuple[np.ndarray, np.ndarray | None, CsvReader]:
    """The whole input as one array X (N, D) (and ids); for small inputs and the API."""
    reader = CsvReader(path, **kwargs)
    parts = list(reader.chunks())
    reader.close()
    if not parts:
        raise InputError(f"{reader.path}: no data rows after the header")
    X = np.concatenate([p.X for p in parts])
    ids = np.concatenate([p.ids for p in parts]) if reader.id_index is not None else None
    return X, ids, reader
