"""What every command shares: the frozen specs of its options, the model and input set-up,
and the row stream from the CSV reader through the engine to a writer.

A command module holds a ``*Spec`` (its options, frozen), ``prepare(spec) -> Plan`` (the
model loaded, the inputs opened and checked, the names and output fields resolved: every
usage error is raised here, before any row is computed) and ``run(plan) -> Outcome`` (the
rows streamed and written).  Nothing here prints or exits: notes for stderr and the exit
code travel back in the ``Outcome``; the CLI shows them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..errors import JacpropError, UsageError
from ..io.reader import CsvReader, no_data_rows
from ..io.writers import FORMATS, check_format, format_for, open_writer


@dataclass(frozen=True)
class ModelSpec:
    """The MODEL files (a chain, applied in order) and how to read them."""

    paths: tuple
    activation: str | None = None  # NPZ weight lists: the hidden layers' activation
    output_activation: str = "linear"
    refuse_nonfinite: bool = False
    logits: bool = False
    output_names: tuple | None = None
    configs: tuple = ()  # --config: the JSON architectures of the weights-only Keras files among paths


@dataclass(frozen=True)
class InputSpec:
    """The INPUTS csv ('-' = stdin), how it is written and which of its columns and rows to read."""

    path: str
    columns: tuple | None = None
    id_column: str | None = None
    delimiter: str | None = None  # None: sniffed from the header line
    header: bool | None = None  # None: a first line of numbers is data
    on_invalid: str = "error"
    rows: str | None = None  # --rows 1-5,10,20-
    extra_columns: tuple = ()  # numeric columns read alongside (per-row uncertainties)
    na_values: tuple | None = None  # None: io.dialect.NA_VALUES
    comment: str | None = None
    by_position: bool = False  # take the columns in order even where the model knows its input names

    def reader_options(self) -> dict:
        return dict(delimiter=self.delimiter, header=self.header, columns=list(self.columns or ()) or None,
                    id_column=self.id_column, on_invalid=self.on_invalid, exclude=tuple(self.extra_columns),
                    na_values=self.na_values, comment=self.comment)


@dataclass(frozen=True)
class OutputSpec:
    """Where results go (None or '-' = stdout), in which format, precision and verbosity."""

    path: str | None = None
    fmt: str | None = None
    dtype: str = "float64"
    max_rows: int = 10  # rows shown one by one in the table format
    quiet: bool = False
    row: bool = True  # csv: a first column 'row', the data row number of the input (--no-row: none)

    def format(self, allowed=FORMATS) -> str:
        """The format asked for, else from -o's extension, else a table on a terminal, csv in a pipe."""
        fmt = format_for(self.path, self.fmt, sys.stdout.isatty())
        check_format(fmt, allowed)
        return fmt


@dataclass
class Outcome:
    """What a run ends with: the exit code (0, or 1 when a check or gate failed) and the lines
    for stderr (notes, warnings, findings), in order."""

    code: int = 0
    notes: list = field(default_factory=list)


def load_model(spec: ModelSpec, notes: list):
    """The model(s) as one chain, --logits and --output-names applied; load warnings go to ``notes``."""
    from ..loaders import load

    options = {"activation": spec.activation, "output_activation": spec.output_activation,
               "refuse_nonfinite": spec.refuse_nonfinite}
    model = load(*spec.paths, configs=spec.configs, **{k: v for k, v in options.items() if v is not None})
    notes += [f"jacprop: warning: {w} (--refuse-nonfinite-weights makes this an error)"
              for w in model.source.get("warnings", [])]
    model = model.logits() if spec.logits else model
    if spec.output_names:
        if len(spec.output_names) != model.K:
            raise UsageError(f"--output-names: {len(spec.output_names)} names for {model.K} outputs")
        model.output_names = list(spec.output_names)
    return model


def open_inputs(model, spec: InputSpec, path=None, notes=None) -> CsvReader:
    """A CsvReader whose selected columns are the model's D inputs (plus the extra columns):
    by name where the header names the model's inputs (``match_names``), else in order.
    The reader's notes (sniffed delimiter, headerless file, columns matched by name) are
    added to ``notes`` (None: dropped, as with --quiet)."""
    reader = CsvReader(path or spec.path, **spec.reader_options())
    try:
        match_names(reader, model.input_names, spec)
        if len(reader.columns) != model.D:
            hint = "" if spec.columns else " (choose them with --columns, or name the id column with --id-column)"
            if len(reader.columns) == 1 and any(c in reader.columns[0] for c in " ;\t|,"):
                hint = " (is the delimiter right? --delimiter chooses it)"
            raise UsageError(
                f"{reader.path}: the model takes {model.D} inputs but {len(reader.columns)} columns were selected "
                f"{reader.columns[:6]}{'...' if len(reader.columns) > 6 else ''}{hint}"
            )
    except BaseException:
        reader.close()
        raise
    if notes is not None:
        notes += reader.notes
    return reader


def _listed(names, n=6) -> str:
    return ", ".join(names[:n]) + (f", ... ({len(names)} in all)" if len(names) > n else "")


def match_names(reader: CsvReader, model_names, spec: InputSpec) -> None:
    """Select the model's inputs by name when the header names them: every one of them, once,
    in another order or among other columns (a note says so).  A header (or --columns) that
    names some of the model's inputs but not all, or one twice, is refused: a column taken by
    position under another input's name would give a wrong number.  Nothing changes when no
    selected name is a model input name, with --no-header, or with --by-position."""
    if spec.by_position or not reader.has_header:
        return
    chosen = list(spec.columns) if spec.columns else reader.columns
    named = [n for n in chosen if n in set(model_names)]
    if not named:
        return
    where = "--columns" if spec.columns else f"{reader.path}: line 1"
    twice = sorted({n for n in named if named.count(n) > 1})
    if twice:
        raise UsageError(f"{where}: names the model's input(s) {_listed(twice)} twice")
    missing = [n for n in model_names if n not in named]
    if missing:
        raise UsageError(
            f"{where}: names the model's inputs {_listed(named)} but not {_listed(missing)}; columns are matched to "
            "the model's inputs by name, so name all of them (or none: then they are taken in order), or give "
            "--by-position to take the selected columns in order")
    if chosen == list(model_names):
        return
    reader.select(list(model_names), reader.id_column, reader.extra)
    unused = [n for n in chosen if n not in set(model_names)]
    reader.notes.append(f"jacprop: note: {reader.path}: inputs matched to the model's by name "
                        f"({_listed(list(model_names))})"
                        + (f"; the file's order was {_listed(named)}" if named != list(model_names) else "")
                        + (f"; columns not used: {_listed(unused)}" if unused else ""))


def resolve(names_or_indices, names, what) -> list[int] | None:
    """--outputs/--wrt: names or integer indices -> indices (None = all)."""
    if not names_or_indices:
        return None
    index = {n: i for i, n in enumerate(names)}
    out = []
    for item in names_or_indices:
        if item in index:
            out.append(index[item])
        elif item.lstrip("-").isdigit() and -len(names) <= int(item) < len(names):
            out.append(int(item) % len(names))
        else:
            raise UsageError(f"--{what}: {item!r} is neither a name nor an index; the names are {names}")
    return out


def pick(names, index):
    """The names at ``index`` (None = all of them)."""
    return list(names) if index is None else [names[i] for i in index]


def parse_rows(spec: str | None):
    """--rows 1-5,10,20-: a predicate on 1-based data row numbers (None = every row)."""
    if spec is None:
        return None
    ranges = []
    for part in spec.split(","):
        lo, dash, hi = part.strip().partition("-")
        if not lo and not hi:
            raise UsageError(f"--rows {spec}: expected row numbers and ranges like 1-5,10,20-")
        try:
            a = int(lo) if lo else 1
            b = (int(hi) if hi else np.iinfo(np.int64).max) if dash else a
        except ValueError:
            raise UsageError(f"--rows {spec}: expected row numbers and ranges like 1-5,10,20-") from None
        if a < 1 or b < a:
            raise UsageError(f"--rows {spec}: {part!r} is not a range of rows counted from 1")
        ranges.append((a, b))
    return lambda rows: np.logical_or.reduce([(rows >= a) & (rows <= b) for a, b in ranges])


@dataclass
class RowBlock:
    """One block of rows on its way to a writer: their 1-based row numbers, ids, X, y, J and
    the extra columns."""

    rows: np.ndarray
    ids: np.ndarray | None
    X: np.ndarray | None
    Y: np.ndarray
    J: np.ndarray
    extra: dict
    hessian: np.ndarray | None = None  # H (N, K, D, D), or (N, K, D) diagonal, when read from `jacprop hessian`


def selected_chunks(reader, keep=None) -> Iterator[tuple]:
    """The reader's chunks as (X, ids, rows, extra), only the rows ``keep`` (--rows) accepts."""
    for chunk in reader.chunks():
        X, ids, rows, extra = chunk.X, chunk.ids, chunk.rows, chunk.extra
        if keep is not None:
            mask = keep(rows)
            X, rows = X[mask], rows[mask]
            ids = ids[mask] if ids is not None else None
            extra = {k: v[mask] for k, v in extra.items()}
        del chunk
        yield X, ids, rows, extra
        del X, ids, rows, extra  # before the reader makes the next chunk: one chunk alive at a time


def jacobian_blocks(model, reader, mode, outputs, wrt, dtype, keep=None) -> Iterator[RowBlock]:
    """The reader's chunks through the engine, block by block (X holds every input column)."""
    from ..engine import iter_jacobian

    for X, ids, rows, extra in selected_chunks(reader, keep):
        for start, Y, J in iter_jacobian(model, X, mode, outputs, wrt, np.dtype(dtype), deterministic=True):
            sl = slice(start, start + len(Y))
            extra_sl = {k: v[sl] for k, v in extra.items()}
            yield RowBlock(rows[sl], None if ids is None else ids[sl], X[sl], Y, J, extra_sl)
        del X, ids, rows, extra  # before the reader makes the next chunk: one chunk alive at a time


def open_output(fmt, output: OutputSpec, fields, meta, allowed=FORMATS):
    """The writer for ``fmt``: a rich table (render) or a data format (io.writers)."""
    check_format(fmt, allowed)
    if fmt == "table":
        from ..render import open_table

        return open_table(output.path, fields, meta, output.max_rows)
    return open_writer(fmt, output.path, fields, meta, np.dtype(output.dtype), allowed)


@dataclass
class Tally:
    """Rows written, the time taken and the largest |value| of one quantity with where it was, for
    the closing line on stderr.  ``pick(arrays)`` -> (N, ...) the values watched; ``where(flat)``
    names a position within a row (e.g. 'y[1]' or 'd(y[1])/d(flow)'); NaN counts as the largest, and
    of equal values the first one seen.  ``source`` (e.g. ' of b.csv') follows the row number."""

    what: str
    pick: object
    where: object
    rows: int = 0
    worst: float = -1.0
    at: str = ""
    start: float = field(default_factory=time.perf_counter)
    source: str = ""

    def add(self, rows, arrays) -> None:
        values = np.abs(np.asarray(self.pick(arrays), dtype=np.float64)).reshape(len(rows), -1)
        self.rows += len(rows)
        if values.size:
            j = int(np.nan_to_num(values, nan=np.inf).argmax())
            n, i = divmod(j, values.shape[1])
            self.offer(float(values[n, i]), f"row {int(rows[n])}{self.source} {self.where(i)}")

    def offer(self, value: float, at: str, rows: int = 0) -> None:
        """``value`` seen at ``at`` (and ``rows`` more rows): kept if larger than the largest so far."""
        self.rows += rows
        if at and not np.isnan(self.worst) and (np.isnan(value) or value > self.worst):
            self.worst, self.at = value, at

    def line(self) -> str:
        """'jacprop: 6 rows; largest dy_gum 0.05918 at row 6 y[1]'; the time taken too on a terminal or
        past 10 s (a log of a quick run stays the same from run to run)."""
        seconds = time.perf_counter() - self.start
        took = f" in {seconds:.2f} s" if sys.stderr.isatty() or seconds >= 10 else ""
        worst = f"; largest {self.what} {self.worst:.4g} at {self.at}" if self.at else ""
        return f"jacprop: {self.rows:,} rows{took}{worst}"


def stream_to(writer, blocks, produce, show_progress=False, source=None, tally: Tally | None = None) -> None:
    """Write produce(block) -> (rows, ids, arrays) for every block, then close the writer; on any
    error remove the partial file and say how many rows had reached stdout.  ``tally`` watches the
    rows for the closing line."""
    from ..render import progress

    try:
        with progress(show_progress, input_size(source)) as advance:
            for block in blocks:
                rows, ids, arrays = produce(block)
                writer.write(rows, ids, arrays)
                if tally is not None:
                    tally.add(rows, arrays)
                advance(len(rows))
        if writer.n == 0:
            skipped = getattr(source, "skipped", 0)
            raise no_data_rows(getattr(source, "path", None), skipped, getattr(source, "rows_read", 0) - skipped)
        writer.close()
    except JacpropError as e:
        writer.out.abort()
        if writer.n and writer.out.path is None:
            e.args = (f"{e.args[0]} ({writer.n} rows were already written to stdout)",)
        raise
    except BaseException as e:
        writer.out.abort()
        writer.out.name_in(e)
        raise


def show_progress(output: OutputSpec, inputs) -> bool:
    """Progress only for people: stderr a terminal, input a file (not stdin), not --quiet."""
    return not output.quiet and str(inputs) != "-" and sys.stderr.isatty()


def show_tally(output: OutputSpec, gated=False) -> bool:
    """The closing line (rows, time, largest value and where) on stderr, unless --quiet: for a person
    (stderr a terminal), beside an -o file (stdout is free), or under a gate (so a CI log shows the
    margin on success too)."""
    return not output.quiet and (sys.stderr.isatty() or output.path not in (None, "-") or gated)


def input_size(source):
    """What a progress bar's percentage and time left come from: (rows, None) when the source knows
    its row count (``n_rows``: an npz), (bytes in the input file, a function giving the bytes read so
    far) for a regular file, else None (stdin, a pipe: a spinner)."""
    import os

    if getattr(source, "n_rows", None):
        return source.n_rows, None
    try:
        fd = source.file.fileno()
        st = os.fstat(fd)
    except (AttributeError, OSError, ValueError):
        return None
    if not (st.st_mode & 0o170000 == 0o100000 and st.st_size):  # a regular, non-empty file
        return None

    def done():
        try:
            return os.lseek(fd, 0, os.SEEK_CUR)  # of the file itself: right for compressed input too
        except OSError:
            return None

    return st.st_size, done


def skipped_note(reader, quiet) -> list[str]:
    return [f"jacprop: skipped {reader.skipped} rows with NaN/inf inputs"] if reader.skipped and not quiet else []
