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
    """The INPUTS csv ('-' = stdin) and which of its columns and rows to read."""

    path: str
    columns: tuple | None = None
    id_column: str | None = None
    delimiter: str = ","
    header: bool = True
    on_invalid: str = "error"
    rows: str | None = None  # --rows 1-5,10,20-
    extra_columns: tuple = ()  # numeric columns read alongside (per-row uncertainties)

    def reader_options(self) -> dict:
        return dict(delimiter=self.delimiter, header=self.header, columns=list(self.columns or ()) or None,
                    id_column=self.id_column, on_invalid=self.on_invalid, exclude=tuple(self.extra_columns))


@dataclass(frozen=True)
class OutputSpec:
    """Where results go (None or '-' = stdout), in which format, precision and verbosity."""

    path: str | None = None
    fmt: str | None = None
    dtype: str = "float64"
    max_rows: int = 10  # rows shown one by one in the table format
    quiet: bool = False

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


def open_inputs(model, spec: InputSpec, path=None) -> CsvReader:
    """A CsvReader whose selected columns are the model's D inputs (plus the extra columns)."""
    reader = CsvReader(path or spec.path, **spec.reader_options())
    if len(reader.columns) != model.D:
        reader.close()
        hint = "" if spec.columns else " (choose them with --columns, or name the id column with --id-column)"
        raise UsageError(
            f"{reader.path}: the model takes {model.D} inputs but {len(reader.columns)} columns were selected "
            f"{reader.columns[:6]}{'...' if len(reader.columns) > 6 else ''}{hint}"
        )
    return reader


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
    if not spec:
        return None
    ranges = []
    for part in spec.split(","):
        lo, dash, hi = part.strip().partition("-")
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


def jacobian_blocks(model, reader, mode, outputs, wrt, dtype, keep=None) -> Iterator[RowBlock]:
    """The reader's chunks through the engine, block by block (X holds every input column)."""
    from ..engine import iter_jacobian

    for chunk in reader.chunks():
        X, ids, rows, extra = chunk.X, chunk.ids, chunk.rows, chunk.extra
        if keep is not None:
            mask = keep(rows)
            X, rows = X[mask], rows[mask]
            ids = ids[mask] if ids is not None else None
            extra = {k: v[mask] for k, v in extra.items()}
        for start, Y, J in iter_jacobian(model, X, mode, outputs, wrt, np.dtype(dtype), deterministic=True):
            sl = slice(start, start + len(Y))
            yield RowBlock(rows[sl], None if ids is None else ids[sl], X[sl], Y, J, {k: v[sl] for k, v in extra.items()})
        del chunk, X, ids, rows, extra  # before the reader makes the next chunk: one chunk alive at a time


def open_output(fmt, output: OutputSpec, fields, meta, allowed=FORMATS):
    """The writer for ``fmt``: a rich table (render) or a data format (io.writers)."""
    check_format(fmt, allowed)
    if fmt == "table":
        from ..render import open_table

        return open_table(output.path, fields, meta, output.max_rows)
    return open_writer(fmt, output.path, fields, meta, np.dtype(output.dtype), allowed)


def stream_to(writer, blocks, produce, show_progress=False, source=None) -> None:
    """Write produce(block) -> (rows, ids, arrays) for every block, then close the writer; on any
    error remove the partial file and say how many rows had reached stdout."""
    from ..render import progress

    try:
        with progress(show_progress) as advance:
            for block in blocks:
                rows, ids, arrays = produce(block)
                writer.write(rows, ids, arrays)
                advance(len(rows))
        if writer.n == 0:
            raise no_data_rows(source.path if source is not None else None, getattr(source, "skipped", 0))
        writer.close()
    except JacpropError as e:
        writer.out.abort()
        if writer.n and writer.out.path is None:
            e.args = (f"{e.args[0]} ({writer.n} rows were already written to stdout)",)
        raise
    except BaseException:
        writer.out.abort()
        raise


def show_progress(output: OutputSpec, inputs) -> bool:
    """Progress only for people: stderr a terminal, input a file (not stdin), not --quiet."""
    return not output.quiet and str(inputs) != "-" and sys.stderr.isatty()


def skipped_note(reader, quiet) -> list[str]:
    return [f"jacprop: skipped {reader.skipped} rows with NaN/inf inputs"] if reader.skipped and not quiet else []
