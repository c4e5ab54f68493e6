"""Reading input rows from CSV in chunks, with errors that name the row and column.

Rows are numbered as a spreadsheet user sees them: the first data row is row 1; ``line`` is the physical line in
the file (header = line 1).  Blank lines and comment lines (``comment``) are not rows.  How the file is written
(compression, delimiter, header, missing values) is ``io.dialect``'s.

Speed: text is read in large pieces; a chunk whose lines are plain (ASCII, LF or CRLF, none blank, no comment
character) is cut at its newlines with numpy and, when pyarrow is installed (the ``fast`` extra), parsed by pyarrow
straight from its bytes.  Anything else goes line by line to ``numpy.loadtxt``, the reference, and a chunk loadtxt
refuses (missing-value tokens, words) or reads as fewer rows (a quote left open runs on over line ends in loadtxt;
here a row is a line) to a cell-by-cell parse that also locates errors.  All give the same float64 values.
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

from ..errors import InputError, UsageError, no_data_rows  # noqa: F401 (the commands import it from here)
from . import dialect
from .dialect import has_text  # noqa: F401 (cluster.partitions imports it from here)
from .fastcsv import arrow_parse as _arrow_parse

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


class CsvReader:
    """A CSV of numbers with a header line; ``header``: True (the first line names the columns), False (it is
    data: columns c0, c1, ...) or None (data when every field of it is a number, with a note).  ``delimiter``
    None: sniffed from the first line (a note when it is not a comma).  ``columns`` picks the input columns by
    name, in order (default: every column but the id column and the ``exclude`` columns, which are read
    alongside); ``id_column`` is carried through as text.  ``na_values``: cell texts read as NaN (default
    ``dialect.NA_VALUES``); ``on_invalid`` says what to do with NaN/inf cells: error (default), skip the row,
    or keep it.  ``comment``: a character starting a comment.
    """

    def __init__(self, path, delimiter=None, header=None, columns=None, id_column=None, on_invalid="error",
                 chunk_rows=CHUNK_ROWS, exclude=(), name=None, na_values=None, comment=None):
        self.path, self.chunk_rows, self.notes, self.skipped = name or dialect.input_name(path), chunk_rows, [], 0
        self._file = None if hasattr(path, "read") or str(path) == "-" else str(path)  # for locating bad UTF-8
        if on_invalid not in INVALID_POLICIES:
            raise UsageError(f"--on-invalid must be one of {', '.join(INVALID_POLICIES)}")
        self.on_invalid, self.comment, self.given = on_invalid, dialect.parse_comment(comment), (delimiter, header)
        self.na_values = tuple(dialect.NA_VALUES if na_values is None else na_values)
        self._na_numbers = dialect.na_numbers(self.na_values)
        self._f, self.compression = dialect.open_text(path)
        self._line, self._tail = 0, ""  # _tail: text read from _f but not yet used
        first = self._first_line()
        self.delimiter = dialect.parse_delimiter(delimiter) or dialect.sniff_delimiter(first, self.path)
        if delimiter is None and self.delimiter != ",":
            self.notes.append(f"jacprop: note: {self.path}: fields separated by {dialect.shown(self.delimiter)} "
                              "(sniffed from line 1; --delimiter chooses)")
        cells = self._split(first)
        if header is None and dialect.is_data_line(cells, self.na_values):
            header = False
            self.notes.append(f"jacprop: note: {self.path}: line {self._line} holds only numbers, so it is read as "
                              "data (columns c0, c1, ...); --header takes it for names, --no-header says so")
        self.has_header = header is not False
        if self.has_header:
            self._names(cells)
        else:
            self.names = [f"c{i}" for i in range(len(cells))]
            self._tail, self._line = first, self._line - 1  # the first line is data: read it again
        self._row = 0
        self._left = None  # rows still to read, when a limit is set (a Dask partition)
        self.select(columns, id_column, exclude)

    def _first_line(self) -> str:
        """The first line that is not a comment line, without its comment."""
        while True:
            first = self._readline()
            if first is None:
                raise InputError(f"{self.path}: empty input: expected a header line and rows of numbers")
            if not self.comment:
                return first
            if not first.lstrip().startswith(self.comment):
                return dialect.cut_comment(first, self.comment)

    def _names(self, cells):
        self.names = [c.strip() for c in cells]
        dup = {n for n in self.names if self.names.count(n) > 1}
        if dup:
            raise InputError(f"{self.path}: line {self._line}: duplicate column name(s) {sorted(dup)}")
        if "" in self.names:
            raise InputError(f"{self.path}: line {self._line}: column {self.names.index('') + 1} has no name")

    def select(self, columns=None, id_column=None, exclude=()):
        """Which columns to read: see the class docstring (callable again before reading,
        once the header, ``names``, has been looked at)."""
        index = {n: i for i, n in enumerate(self.names)}
        for name in [*(columns or []), *([id_column] if id_column else []), *exclude]:
            if name not in index:
                raise UsageError(f"{self.path}: no column named {name!r}; the columns are {self.names}")
        self.id_column, self.id_index = id_column, index[id_column] if id_column else None
        chosen = columns or [n for n in self.names if n != id_column and n not in exclude]
        self.columns = list(chosen)
        self.extra = list(dict.fromkeys(exclude))
        self.usecols = [index[n] for n in chosen + self.extra]

    def options(self) -> dict:
        """The constructor's options that read another file (or a part of this one) as this one
        is read: the selected columns by name, the delimiter and header as given (each file is
        sniffed on its own)."""
        delimiter, header = self.given
        return dict(delimiter=delimiter, header=header, columns=list(self.columns), id_column=self.id_column,
                    on_invalid=self.on_invalid, chunk_rows=self.chunk_rows, exclude=tuple(self.extra),
                    na_values=self.na_values, comment=self.comment)

    def _decode_error(self, e) -> InputError:
        if isinstance(e, UnicodeDecodeError):
            where = None if self.compression else dialect.first_bad_utf8(self._file)
            return InputError(f"{self.path}: {where or 'not UTF-8 text'} ({e.reason})")
        return InputError(f"{self.path}: corrupt or truncated {self.compression} data ({e})")

    def _read(self, method, *args) -> str:
        try:
            return method(*args)
        except UnicodeDecodeError as e:
            raise self._decode_error(e) from None
        except dialect.DECOMPRESSION_ERRORS as e:
            if not self.compression:
                raise
            raise self._decode_error(e) from None

    def _readline(self):
        line = self._read(self._f.readline)
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
        text = self._read(self._f.read, BLOCK_CHARS)
        if text and text[-1] != "\n":
            text += self._read(self._f.readline)
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
        or CRLF, none blank or starting with white space, no comment character (else None:
        ``_read_lines`` decides)."""
        pieces, have = [self._tail], self._tail.count("\n")
        while have < n and (piece := self._fetch()):
            pieces.append(piece)
            have += _line_ends(piece)
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
        if self.comment and self.comment.encode() in block:
            return None
        if b"\r" in block:
            cr = np.flatnonzero(codes == 13)
            if cr[-1] == size - 1 or (codes[cr + 1] != 10).any():
                return None  # a line ending in a bare CR
        self._tail = self._tail[size:]
        first = self._line + 1
        self._line += count
        return Lines(np.arange(first, first + count), block)

    def _lines(self) -> Lines:
        """The next chunk's rows (lines with data): at most ``chunk_rows``, and at most ``_left`` when set."""
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
                if self.comment:
                    got = [dialect.cut_comment(line, self.comment) for line in got]
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
            ids = self._ids(block) if self.id_index is not None else None
            rows = np.arange(self._row + 1, self._row + 1 + len(block))
            self._row += len(block)
            bad = ~np.isfinite(X)
            if bad.any():
                if self.on_invalid == "error":
                    r, c = np.argwhere(bad)[0]
                    what = "" if np.isinf(X[r, c]) else " (a NaN or missing cell: see --na-values)"
                    raise InputError(f"{self.path}: row {rows[r]}, column {self.columns[c]!r}: value {X[r, c]} is not "
                                     f"finite{what} (use --on-invalid skip or keep)")
                if self.on_invalid == "skip":
                    keep = ~bad.any(axis=1)
                    self.skipped += int((~keep).sum())
                    X, rows = X[keep], rows[keep]
                    ids = ids[keep] if ids is not None else None
                    extra = {k: v[keep] for k, v in extra.items()}
            yield Chunk(X, ids, rows, extra)

    def _parse(self, block: Lines) -> np.ndarray:
        """The chunk's ``usecols`` as float64, missing values as NaN: by pyarrow when installed
        and the chunk is large (``FAST_MIN_ROWS``), else (and whenever pyarrow refuses the chunk)
        by ``numpy.loadtxt``, else cell by cell (``_parse_cells``).  All read every number
        correctly rounded, so the result does not depend on which one ran (tests/test_csv_fast.py)."""
        X = None
        if block.data is not None and len(block) >= FAST_MIN_ROWS:
            X = _arrow_parse(block.data, len(block), len(self.names), self.usecols, self.delimiter, self.na_values)
        if X is None:
            X = self._parse_lines(block)
        if self._na_numbers:
            X[np.isin(X, self._na_numbers)] = np.nan
        return X

    def _parse_lines(self, block: Lines) -> np.ndarray:
        lines, line_numbers = block.lines, block.numbers
        try:
            X = np.loadtxt(lines, delimiter=self.delimiter, usecols=self.usecols, quotechar='"',
                           ndmin=2, dtype=np.float64, comments=None)
        except ValueError:
            X = None
        if X is None or len(X) != len(lines):  # a bad cell, or a quote left open that loadtxt read on past a line end
            return self._parse_cells(lines, line_numbers)
        # loadtxt reads the columns it is asked for and says nothing of extra fields (pyarrow refuses them)
        counts = np.fromiter(map(str.count, lines, itertools.repeat(self.delimiter)), np.int64, len(lines))
        for offset in np.flatnonzero(counts != len(self.names) - 1):
            cells = self._split(lines[offset])  # a quoted delimiter is not a separator: count again, exactly
            if len(cells) != len(self.names):
                raise InputError(f"{self.path}: row {self._row + offset + 1} (line {line_numbers[offset]}): "
                                 f"{len(cells)} fields, but the header has {len(self.names)}")
        return X

    def _parse_cells(self, lines, line_numbers) -> np.ndarray:
        """Cell by cell, missing-value tokens as NaN; the first bad cell raises, located."""
        na, X = set(self.na_values), np.empty((len(lines), len(self.usecols)))
        for offset, line in enumerate(lines):
            cells = self._split(line)
            where = f"{self.path}: row {self._row + offset + 1} (line {line_numbers[offset]})"
            if len(cells) != len(self.names):
                raise InputError(f"{where}: {len(cells)} fields, but the header has {len(self.names)}")
            for j, c in enumerate(self.usecols):
                text = cells[c].strip()
                try:
                    X[offset, j] = np.nan if text in na else float(text if "_" not in text else "?")
                except ValueError:
                    raise InputError(f"{where}, column {self.names[c]!r}: {dialect.not_a_number(cells[c])}") from None
        return X

    @property
    def file(self):
        """The open input (the progress display reads its position)."""
        return self._f

    @property
    def rows_read(self) -> int:
        """Data rows read so far (the row number of the last one), skipped rows included."""
        return self._row

    def start_at(self, offset: int, lines_before: int, skip: int, first_row: int, n_rows: int) -> None:
        """Read only ``n_rows`` rows from byte ``offset`` (a line start), after skipping ``skip``
        non-blank lines there; ``lines_before`` lines and ``first_row`` data rows precede it in
        the file, so row and line numbers stay the file's own (a Dask partition of a plain file:
        not compressed, no comments).  Call before reading; the header has been read and checked."""
        if self._file is None or self.compression or self.comment:
            raise UsageError(f"{self.path}: a partition needs a plain file, not a stream, compressed or with comments")
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


def _line_ends(text: str) -> int:
    """text.count("\\n"), a third of the time for ASCII text (a comparison of its bytes)."""
    if not text.isascii():
        return text.count("\n")
    return int(np.count_nonzero(np.frombuffer(text.encode("ascii"), np.uint8) == 10))


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
