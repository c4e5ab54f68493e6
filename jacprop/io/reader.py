"""Reading input rows from CSV in chunks, with errors that name the row and column.

Rows are numbered as a spreadsheet user sees them: the first data row is row 1;
``line`` is the physical line in the file (header = line 1).

Speed: text is read in large pieces; a chunk whose lines are plain (ASCII, LF or CRLF,
none blank) is cut at its newlines with numpy and, when pyarrow is installed (the ``fast``
extra), parsed by pyarrow straight from its bytes.  Anything else goes line by line to
``numpy.loadtxt``, the reference, which also locates errors.  Both give the same float64
values, so the output never depends on which path a chunk took.
"""

from __future__ import annotations

import csv
import io
import itertools
import operator
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..errors import InputError, UsageError

CHUNK_ROWS = 65536  # rows per chunk handed to the engine (a Dask partition is a multiple of it)
BLOCK_CHARS = 1 << 20  # text read at a time
_SPACE = np.frombuffer(b" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f", np.uint8)  # what str.strip() strips, in ASCII
FAST_MIN_ROWS = 1024  # smaller chunks: numpy parses them before pyarrow would be imported
INVALID_POLICIES = ("error", "skip", "keep")
csv.field_size_limit(2**31 - 1)  # the default 128 KiB limit would turn a long cell into a csv.Error


@dataclass
class Chunk:
    """A block of input rows: X (n, D), their ids, and their 1-based data row numbers."""

    X: np.ndarray
    ids: np.ndarray | None
    rows: np.ndarray
    extra: dict  # other numeric columns asked for by name (e.g. per-row uncertainties)


class Lines:
    """Input lines and their physical line numbers; ``data``: the same lines as one ASCII
    block when they are plain (see ``CsvReader._plain_block``), for the fast parser."""

    def __init__(self, numbers: np.ndarray, data: bytes | None = None, lines: list[str] | None = None):
        self.numbers, self.data, self._lines = numbers, data, lines

    def __len__(self):
        return len(self.numbers)

    @property
    def lines(self) -> list[str]:
        if self._lines is None:
            self._lines = list(io.StringIO(self.data.decode("ascii"), newline=""))
        return self._lines


def open_text(source) -> io.TextIOBase:
    """A text stream on a file, stdin ("-") or an open binary stream: UTF-8 with an optional
    BOM, any newline style."""
    if hasattr(source, "read"):
        return io.TextIOWrapper(source, encoding="utf-8-sig", newline="")
    if str(source) == "-":
        return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline="")
    try:
        return open(source, encoding="utf-8-sig", newline="")
    except OSError as e:
        raise InputError(f"{source}: cannot open input: {e.strerror or e}") from None


class CsvReader:
    """A CSV of numbers with a header line (or ``header=False``: columns c0, c1, ...).

    ``columns`` picks the input columns by name, in order (default: every column but
    the id column and the ``exclude`` columns, which are read alongside); ``id_column`` is
    carried through as text.  ``on_invalid`` says what to
    do with NaN/inf cells: error (default), skip the row, or keep it.
    """

    def __init__(self, path, delimiter=",", header=True, columns=None, id_column=None,
                 on_invalid="error", chunk_rows=CHUNK_ROWS, exclude=(), name=None):
        self.path, self.delimiter, self.chunk_rows = name or str(path), delimiter, chunk_rows
        self._file = None if hasattr(path, "read") or str(path) == "-" else str(path)  # for locating bad UTF-8
        if on_invalid not in INVALID_POLICIES:
            raise UsageError(f"--on-invalid must be one of {', '.join(INVALID_POLICIES)}")
        self.on_invalid = on_invalid
        self.skipped = 0
        self._f = open_text(path)
        self._line, self._tail = 0, ""  # _tail: text read from _f but not yet used
        first = self._readline()
        if first is None:
            raise InputError(f"{self.path}: empty input: expected a header line and rows of numbers")
        cells = self._split(first)
        if header:
            self.names = [c.strip() for c in cells]
            dup = {n for n in self.names if self.names.count(n) > 1}
            if dup:
                raise InputError(f"{self.path}: line 1: duplicate column name(s) {sorted(dup)}")
            if "" in self.names:
                raise InputError(f"{self.path}: line 1: column {self.names.index('') + 1} has no name")
        else:
            self.names = [f"c{i}" for i in range(len(cells))]
            self._tail, self._line = first, 0  # the first line is data: read it again
        self._row = 0
        self._left = None  # rows still to read, when a limit is set (a Dask partition)
        self.select(columns, id_column, exclude)

    def select(self, columns=None, id_column=None, exclude=()):
        """Which columns to read: see the class docstring (callable again before reading,
        once the header, ``names``, has been looked at)."""
        index = {n: i for i, n in enumerate(self.names)}
        for name in [*(columns or []), *([id_column] if id_column else []), *exclude]:
            if name not in index:
                raise UsageError(f"{self.path}: no column named {name!r}; the columns are {self.names}")
        self.id_index = index[id_column] if id_column else None
        chosen = columns or [n for n in self.names if n != id_column and n not in exclude]
        self.columns = list(chosen)
        self.extra = list(dict.fromkeys(exclude))
        self.usecols = [index[n] for n in chosen + self.extra]

    def _readline(self):
        try:
            line = self._f.readline()
        except UnicodeDecodeError as e:
            raise InputError(f"{self.path}: {_first_bad_utf8(self._file) or 'not UTF-8 text'} ({e.reason})") from None
        if not line:
            return None
        self._line += 1
        return line

    def _split(self, line):
        try:
            return next(csv.reader([line], delimiter=self.delimiter))
        except csv.Error as e:
            raise InputError(f"{self.path}: line {self._line}: {e}") from None

    def _ids(self, block: Lines) -> np.ndarray:
        """The id column's text, row by row."""
        lines, line_numbers = block.lines, block.numbers
        try:
            rows = list(csv.reader(lines, delimiter=self.delimiter))  # one call: fast
        except csv.Error:
            rows = []
        if len(rows) != len(lines):  # a quote spanning lines: split them one by one
            rows = [self._split(line) for line in lines]
        try:
            return np.array(list(map(operator.itemgetter(self.id_index), rows)))
        except IndexError:  # a short row: say which
            offset = next(i for i, cells in enumerate(rows) if len(cells) <= self.id_index)
            raise InputError(f"{self.path}: row {self._row + offset + 1} (line {line_numbers[offset]}): "
                             f"{len(rows[offset])} fields, but the header has {len(self.names)}") from None

    def _fetch(self) -> str:
        """The next piece of the input (about ``BLOCK_CHARS``), ending at a line end or at the end."""
        try:
            text = self._f.read(BLOCK_CHARS)
            if text and text[-1] != "\n":
                text += self._f.readline()
        except UnicodeDecodeError as e:
            raise InputError(f"{self.path}: {_first_bad_utf8(self._file) or 'not UTF-8 text'} ({e.reason})") from None
        return text

    def _read_lines(self, n) -> list[str]:
        """Up to ``n`` more physical lines, split as the universal-newline text reader splits them."""
        lines: list[str] = []
        while len(lines) < n:
            if not self._tail:
                self._tail = self._fetch()
                if not self._tail:
                    break
            got = list(itertools.islice(io.StringIO(self._tail, newline=""), n - len(lines)))
            self._tail = self._tail[sum(map(len, got)) :]
            lines += got
        self._line += len(lines)
        return lines

    def _plain_block(self, n) -> Lines | None:
        """The next ``n`` lines as one text when that is plain: ASCII, every line ending in LF
        or CRLF, none blank or starting with white space (else None: ``_read_lines`` decides)."""
        pieces, have = [self._tail], self._tail.count("\n")
        while have < n and (piece := self._fetch()):
            pieces.append(piece)
            have += piece.count("\n")
        self._tail = "".join(pieces)
        if not self._tail or not self._tail.isascii():
            return None
        data = self._tail.encode("ascii")
        ends = np.flatnonzero(np.frombuffer(data, np.uint8) == 10)
        if len(ends) >= n:
            size, count = int(ends[n - 1]) + 1, n
        else:  # the end of the input: all of it, with a last line that may lack its LF
            size, count = len(data), len(ends) + (not data.endswith(b"\n"))
        block = data[:size]
        codes = np.frombuffer(block, np.uint8)
        if np.isin(codes[np.concatenate([[0], ends[: count - 1] + 1])], _SPACE).any():
            return None  # a blank line, or one starting with white space
        if b"\r" in block:
            cr = np.flatnonzero(codes == 13)
            if cr[-1] == size - 1 or (codes[cr + 1] != 10).any():
                return None  # a line ending in a bare CR
        self._tail = self._tail[size:]
        first = self._line + 1
        self._line += count
        return Lines(np.arange(first, first + count), block)

    def _lines(self) -> Lines:
        """The next chunk's non-blank lines: at most ``chunk_rows``, and at most ``_left`` when set."""
        want = self.chunk_rows if self._left is None else min(self.chunk_rows, self._left)
        block = self._plain_block(want) if want else None
        if block is None:
            lines, numbers = [], [np.zeros(0, np.int64)]
            while len(lines) < want:
                first = self._line + 1
                got = self._read_lines(want - len(lines))
                if not got:
                    break
                numbered = np.arange(first, first + len(got))
                if not all(map(str.strip, got)):  # blank lines are rare: filter only when there are some
                    keep = [bool(line.strip()) for line in got]
                    got, numbered = list(itertools.compress(got, keep)), numbered[keep]
                lines += got
                numbers.append(numbered)
            block = Lines(np.concatenate(numbers), lines=lines)
        if self._left is not None:
            self._left -= len(block)
        return block

    def chunks(self) -> Iterator[Chunk]:
        """Yield the rows in chunks of at most ``chunk_rows``."""
        while True:
            block = self._lines()
            if not len(block):
                break
            X = self._parse(block)
            X, extra = X[:, : len(self.columns)], dict(zip(self.extra, X[:, len(self.columns) :].T))
            ids = None
            if self.id_index is not None:
                ids = self._ids(block)
            rows = np.arange(self._row + 1, self._row + 1 + len(block))
            self._row += len(block)
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

    def _parse(self, block: Lines) -> np.ndarray:
        """The chunk's ``usecols`` as float64: by pyarrow when installed and the chunk is large
        (``FAST_MIN_ROWS``), else (and whenever pyarrow refuses the chunk) by ``numpy.loadtxt``,
        whose errors are then located.  Both read every number correctly rounded, so the
        result does not depend on which one ran (tests/test_csv_fast.py checks this)."""
        if block.data is not None and len(block) >= FAST_MIN_ROWS:
            X = _arrow_parse(block.data, len(block), len(self.names), self.usecols, self.delimiter)
            if X is not None:
                return X
        lines, line_numbers = block.lines, block.numbers
        try:
            X = np.loadtxt(lines, delimiter=self.delimiter, usecols=self.usecols, quotechar='"',
                           ndmin=2, dtype=np.float64, comments=None)
        except ValueError:
            self._locate_error(lines, line_numbers)
            raise  # pragma: no cover  (_locate_error always raises)
        # loadtxt reads the columns it is asked for and says nothing of extra fields (pyarrow refuses them)
        counts = np.fromiter(map(str.count, lines, itertools.repeat(self.delimiter)), np.int64, len(lines))
        for offset in np.flatnonzero(counts != len(self.names) - 1):
            cells = self._split(lines[offset])  # a quoted delimiter is not a separator: count again, exactly
            if len(cells) != len(self.names):
                raise InputError(f"{self.path}: row {self._row + offset + 1} (line {line_numbers[offset]}): "
                                 f"{len(cells)} fields, but the header has {len(self.names)}")
        return X

    def _locate_error(self, lines, line_numbers):
        """Find the first bad cell of a chunk that failed to parse, and say where it is."""
        for offset, line in enumerate(lines):
            cells = self._split(line)
            where = f"{self.path}: row {self._row + offset + 1} (line {line_numbers[offset]})"
            if len(cells) != len(self.names):
                raise InputError(f"{where}: {len(cells)} fields, but the header has {len(self.names)}")
            for c in self.usecols:
                try:
                    float(cells[c].strip().strip('"'))
                except ValueError:
                    raise InputError(f"{where}, column {self.names[c]!r}: {cells[c][:40]!r} is not a number") from None
        raise InputError(f"{self.path}: rows {self._row + 1}-{self._row + len(lines)}: cannot parse as numbers")

    @property
    def rows_read(self) -> int:
        """Data rows read so far (the row number of the last one), skipped rows included."""
        return self._row

    def start_at(self, offset: int, lines_before: int, skip: int, first_row: int, n_rows: int) -> None:
        """Read only ``n_rows`` rows from byte ``offset`` (a line start), after skipping ``skip``
        non-blank lines there; ``lines_before`` lines and ``first_row`` data rows precede it in
        the file, so row and line numbers stay the file's own (a Dask partition).  Call before
        reading; the header has been read and checked already."""
        if self._file is None:
            raise UsageError(f"{self.path}: a partition needs a file, not a stream")
        self._f.close()
        raw = open(self._file, "rb")
        raw.seek(offset)
        line_no = lines_before
        while skip:
            line = raw.readline()
            if not line:
                raw.close()
                raise InputError(f"{self.path}: the file changed while it was being read (fewer rows than counted)")
            line_no += 1
            skip -= has_text(line)
        self._f = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        self._tail, self._line, self._row, self._left = "", line_no, first_row, n_rows

    def close(self):
        if self._f is not sys.stdin:
            self._f.close()


def has_text(line: bytes) -> bool:
    """Whether a line holds something (CsvReader skips lines whose str.strip() is empty)."""
    s = line.strip()
    if not s:
        return False
    if s[0] < 0x80 and not 0x1C <= s[0] <= 0x1F:
        return True
    return bool(line.decode("utf-8", "replace").strip())


def no_data_rows(where: str | None, skipped: int = 0) -> InputError:
    """The one error for an input without data rows (``where``: the file, "N inputs", or None)."""
    prefix = f"{where}: " if where else ""
    return InputError(f"{prefix}no data rows" + (f" ({skipped} skipped for NaN/inf values)" if skipped else ""))


def _arrow_parse(data: bytes, n_rows, n_columns, usecols, delimiter) -> np.ndarray | None:
    """pyarrow's multi-threaded CSV parser over a chunk of lines (the ``fast`` extra), or None
    when pyarrow is not installed or the chunk is anything but a plain table of numbers
    (ragged rows, empty cells, words, quotes around a newline): numpy then decides."""
    try:
        import pyarrow as pa
        from pyarrow import csv as pacsv
    except ImportError:
        return None
    names = [str(i) for i in range(n_columns)]
    wanted = list(dict.fromkeys(usecols))  # a column may be asked for twice (as input and as --dx-column)
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(column_names=names, block_size=1 << 20),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, quote_char='"', ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types={names[c]: pa.float64() for c in wanted}, include_columns=[names[c] for c in wanted],
                null_values=[], strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except (pa.ArrowException, ValueError):
        return None
    if table.num_rows != n_rows or any(column.null_count for column in table.columns):
        return None
    X = np.empty((n_rows, len(usecols)))
    for j, c in enumerate(usecols):  # straight from the float64 buffers (to_numpy would import pandas)
        X[:, j] = np.concatenate([np.frombuffer(a.buffers()[1], np.float64, len(a), 8 * a.offset)
                                  for a in table.column(wanted.index(c)).chunks])
    return X


def _first_bad_utf8(path) -> str | None:
    """'line L, byte B: not UTF-8 text' for the first undecodable line of a file (None for a stream)."""
    if path is None:
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
        raise no_data_rows(reader.path)
    X = np.concatenate([p.X for p in parts])
    ids = np.concatenate([p.ids for p in parts]) if reader.id_index is not None else None
    return X, ids, reader
