"""Writers for per-row results: csv, jsonl, npy and npz, for programs (tables for people are
``render.TableWriter``, on the same ``Writer`` base).

A result is a set of named per-row arrays (``Field``s): e.g. x (D,), y (K,), jacobian (K, D).
Writers take them chunk by chunk (``write``) and finish with ``close``.  Files are
written to a temporary file beside the target and renamed into place only when
everything succeeded (``AtomicOutput``), so an output file is whole or absent.  NPY and
NPZ need the row count in their headers, so their arrays are streamed to temporary
files and assembled at the end: memory stays flat however many rows there are.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
import stat
import sys
import tempfile
import zipfile
from dataclasses import dataclass

import numpy as np

from ..errors import UsageError
from .numtext import csv_lines, jsonl_lines  # noqa: F401 (the writers' line formats)

FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}  # write errors that mean "no room for the output"
FORMATS = ("table", "csv", "jsonl", "npy", "npz")
EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".npy": "npy", ".npz": "npz", ".txt": "table"}


def format_for(path, fmt=None, stdout_isatty=False) -> str:
    """The format asked for, else the output file's extension, else table on a terminal, csv in a pipe."""
    if fmt:
        return fmt
    if path and path != "-":
        ext = os.path.splitext(str(path))[1].lower()
        if ext in EXTENSIONS:
            return EXTENSIONS[ext]
        raise UsageError(f"-o {path}: cannot tell the format from the extension; give --format ({', '.join(FORMATS)})")
    return "table" if stdout_isatty else "csv"


class AtomicOutput:
    """A binary file opened beside ``path`` and renamed onto it by ``commit``; or stdout.

    The temporary is created with mode 0666 so that the kernel applies the umask, as for any
    new file (0644 under umask 022); when ``path`` already exists, its mode is kept.  On every
    failure (``abort``, or a ``commit`` that cannot flush, e.g. a full disk) the temporary is
    removed and an existing ``path`` is left as it was."""

    def __init__(self, path):
        self.path = None if path in (None, "-") else str(path)
        self.tmp = None
        if self.path is None:
            self.file = sys.stdout.buffer
            return
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise UsageError(f"-o {self.path}: directory {directory} does not exist")
        try:
            fd, self.tmp = _create_beside(directory)
            mode = existing_mode(self.path)
            if mode is not None:
                os.fchmod(fd, mode)
        except OSError as e:
            if self.tmp:
                _remove(self.tmp)
            raise UsageError(f"-o {self.path}: cannot write there: {e.strerror or e}") from None
        self.file = open_fd(fd)

    def commit(self):
        if self.path is None:
            self.file.flush()
            return
        try:
            self.file.close()  # flushes: a full disk shows here
            os.replace(self.tmp, self.path)
        except BaseException:
            _remove(self.tmp)
            raise

    def name_in(self, error: BaseException) -> None:
        """Name the output file in a full-disk error (OSError's own text does not)."""
        if isinstance(error, OSError) and error.errno in FULL and not error.filename and self.path is not None:
            error.filename = self.path

    def abort(self):
        if self.path is not None:
            try:
                self.file.close()  # may fail flushing what is buffered (ENOSPC): the temporary goes anyway
            except OSError:
                pass
            finally:
                _remove(self.tmp)


def open_fd(fd: int):
    """The temporary's file object (a seam for tests that simulate a full disk)."""
    return os.fdopen(fd, "wb")


def _create_beside(directory) -> tuple[int, str]:
    """A new file ``.jacprop-XXXX.part`` in ``directory``, opened O_EXCL with mode 0666 & ~umask."""
    for _ in range(100):
        tmp = os.path.join(directory, f".jacprop-{secrets.token_hex(6)}.part")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{directory}: no free temporary file name")


def existing_mode(path) -> int | None:
    """The permission bits of an existing regular file ``path`` (kept when it is replaced)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return stat.S_IMODE(st.st_mode) if stat.S_ISREG(st.st_mode) else None


def _remove(path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


@contextlib.contextmanager
def atomic_output(path):
    """``with atomic_output(path) as out: out.file.write(...)``: the file appears whole when the
    block ends normally, and not at all (nor its temporary) when it raises."""
    out = AtomicOutput(path)
    try:
        yield out
        out.commit()
    except BaseException as e:
        out.abort()
        out.name_in(e)
        raise


@dataclass
class Field:
    """A per-row array ``name`` of shape ``tail``; ``columns`` names its flattened entries
    in CSV (None: left out of CSV)."""

    name: str
    tail: tuple
    columns: list | None = None


def jacobian_columns(input_names, output_names) -> list[str]:
    """CSV column names of J: d(<output>)/d(<input>), outputs major, inputs minor."""
    return [f"d({o})/d({i})" for o in output_names for i in input_names]


def jacobian_fields(input_names, output_names) -> list[Field]:
    """x, y and J: the contract of ``jacprop jacobian`` (CSV: the outputs, then J)."""
    k, d = len(output_names), len(input_names)
    return [Field("x", (d,)), Field("y", (k,), list(output_names)),
            Field("jacobian", (k, d), jacobian_columns(input_names, output_names))]


ROW_COLUMN = "row"  # the data row number of the input file, first in CSV output (unless meta["row"] is False)


def csv_header(fields: list[Field], meta: dict) -> bytes:
    """The CSV header line: ``row`` (unless meta["row"] is False), the id column (if any), then
    every field's columns."""
    row = [ROW_COLUMN] if meta.get("row", True) else []
    if row and meta.get("id_name") == ROW_COLUMN:
        raise UsageError(f"--id-column {ROW_COLUMN}: the output has a {ROW_COLUMN!r} column of its own (the data row "
                         "number); give --no-row to leave it out, or rename the id column")
    names = row + ([meta["id_name"]] if meta.get("id_name") else []) + [c for f in fields if f.columns is not None
                                                                        for c in f.columns]
    return (",".join(map(_csv_cell, names)) + "\n").encode()


def _csv_cell(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n\r') else text


class Writer:
    """Base: ``meta`` holds input_names, output_names and id_name."""

    def __init__(self, out: AtomicOutput, fields: list[Field], meta: dict):
        self.out, self.fields, self.meta = out, fields, meta
        self.n = 0

    def write(self, rows, ids, arrays: dict):
        self._write(rows, ids, arrays)
        self.n += len(rows)

    def finish(self):
        """Write what can only be written at the end (the NPY/NPZ headers and arrays)."""

    def close(self):
        """``finish``, then put the file in place."""
        self.finish()
        self.out.commit()


class CsvWriter(Writer):
    """A header ([row], [id], then every field's columns), then one line per row; numbers in
    ``repr`` form, the shortest text that reads back as the same float64."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.csv_fields = [f for f in self.fields if f.columns is not None]
        self.header = csv_header(self.fields, self.meta)  # written with the first rows

    def _write(self, rows, ids, arrays):
        if self.header:
            self.out.file.write(self.header)
            self.header = b""
        flat = np.concatenate([arrays[f.name].reshape(len(rows), -1) for f in self.csv_fields], axis=1)
        prefix = [[str(r) for r in rows.tolist()]] if self.meta.get("row", True) else []
        if ids is not None:
            prefix.append([_csv_cell(i) for i in ids.tolist()])
        text = csv_lines(flat, [",".join(cells) for cells in zip(*prefix)] if prefix else None)
        if text:
            self.out.file.write(text)
            self.out.file.flush()


class JsonlWriter(Writer):
    """One object per row: {"row": n, ["id": ...,] <field>: nested lists, ..., "input_names": [...],
    "output_names": [...]}: every record carries the names, so any line (or a part of a Dask run)
    can be read on its own."""

    def _write(self, rows, ids, arrays):
        names = json.dumps({"input_names": list(self.meta["input_names"]),
                            "output_names": list(self.meta["output_names"])})[1:]  # '"input_names": ..., ...}'
        text = jsonl_lines(rows, ids, arrays, self.fields, close=", " + names)
        if text:
            self.out.file.write(text)
            self.out.file.flush()


class NpyStream:
    """The data of an .npy array of shape (?, *tail), streamed block by block to a temporary
    file; ``copy_to`` writes the header (numpy's own, once the row count is known) and the data."""

    def __init__(self, tail, dtype):
        self.tail, self.dtype, self.n = tuple(tail), np.dtype(dtype), 0
        self.file = tempfile.TemporaryFile()

    def write(self, a):
        self.file.write(np.ascontiguousarray(a, dtype=self.dtype).data)  # the array's own bytes, not a copy
        self.n += len(a)

    def copy_to(self, out):
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                  "shape": (self.n, *self.tail)}
        np.lib.format.write_array_header_1_0(out, header)  # shapes of a few axes fit its 64 KB header
        self.file.seek(0)
        shutil.copyfileobj(self.file, out)


class NpyWriter(Writer):
    """The one array named by meta["npy_field"] (jacobian: (N, K, D))."""

    def __init__(self, *args, dtype=np.float64, **kw):
        super().__init__(*args, **kw)
        field = next(f for f in self.fields if f.name == self.meta["npy_field"])
        self.field, self.stream = field.name, NpyStream(field.tail, dtype)

    def _write(self, rows, ids, arrays):
        self.stream.write(arrays[self.field])

    def finish(self):
        self.stream.copy_to(self.out.file)


class NpzWriter(Writer):
    """Every field as an array (N, *tail), plus rows (the data row numbers), input_names,
    output_names and ids (with an id column)."""

    def __init__(self, *args, dtype=np.float64, **kw):
        super().__init__(*args, **kw)
        self.streams = {f.name: NpyStream(f.tail, dtype) for f in self.fields}
        self.streams["rows"] = NpyStream((), np.int64)
        self.ids = []

    def _write(self, rows, ids, arrays):
        for name, stream in self.streams.items():
            stream.write(rows if name == "rows" else arrays[name])
        if ids is not None:
            self.ids.append(ids)

    def finish(self):
        extra = {"input_names": np.array(self.meta["input_names"], dtype=str),
                 "output_names": np.array(self.meta["output_names"], dtype=str)}
        if self.meta.get("id_name"):
            extra["ids"] = np.concatenate(self.ids) if self.ids else np.array([], dtype=str)
        extra.update(self.meta.get("npz_extra", {}))  # whole-file arrays a command adds (hessian: direction)
        with zipfile.ZipFile(self.out.file, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
            for name, stream in self.streams.items():
                with z.open(name + ".npy", "w", force_zip64=True) as member:
                    stream.copy_to(member)
            for name, a in extra.items():
                with z.open(name + ".npy", "w") as member:
                    np.lib.format.write_array(member, a, allow_pickle=False)


WRITERS = {"csv": CsvWriter, "jsonl": JsonlWriter, "npy": NpyWriter, "npz": NpzWriter}


def check_format(fmt, allowed=FORMATS) -> None:
    if fmt not in allowed:
        raise UsageError(f"--format {fmt} is not available here; choose one of {', '.join(allowed)}")


def open_writer(fmt, output, fields, meta, dtype=np.float64, allowed=FORMATS):
    """The writer for a data format ``fmt`` on ``output`` (None or "-" = stdout)."""
    check_format(fmt, allowed)
    kwargs = {"dtype": dtype} if fmt in ("npy", "npz") else {}
    if fmt == "csv":
        csv_header(fields, meta)  # its errors before any file is made
    return WRITERS[fmt](AtomicOutput(output), fields, meta, **kwargs)


def write_summary(file, fmt, stats: dict, input_names, output_names, n_rows: int, what="input") -> None:
    """``jacobian --summary`` in a data format: one record per (output, input) with every
    statistic and the input's rank for that output (1 = most influential).  ``what="estimate"``
    (``propagate --summary``): the "inputs" are the estimates (dy_gum, ...), without a rank."""
    from ..summary import STATS

    stats = dict(stats)
    sequences = stats.pop("sequences", None) or []
    if fmt == "npz":  # sequence inputs: per_step (K, T) and per_feature (K, F), suffixed :<input> if several
        extra = {}
        for seq in sequences:
            tag = "" if len(sequences) == 1 else f":{seq['input']}"
            extra[f"per_step{tag}"], extra[f"per_feature{tag}"] = seq["per_step"], seq["per_feature"]
        names = {"input_names": np.array(input_names)} if what == "input" else {"estimate_names": np.array(input_names)}
        np.savez(file, rows=np.array(n_rows), **names, output_names=np.array(output_names),
                 **{k: v for k, v in stats.items() if what == "input" or k != "rank"}, **extra)
        return
    rank = np.argsort(stats["rank"], axis=1) + 1
    records = [{"output": o, what: input_names[i], **{s: stats[s][k, i].item() for s in STATS},
                **({"rank": int(rank[k, i])} if what == "input" else {})}
               for k, o in enumerate(output_names) for i in range(len(input_names))]
    if fmt == "csv":
        import csv
        import io

        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(records[0]), lineterminator="\n")
        w.writeheader()
        w.writerows({k: repr(v) if isinstance(v, float) else v for k, v in rec.items()} for rec in records)
        file.write(buf.getvalue().encode())
    elif fmt == "jsonl":  # then, for sequence inputs, one record per output and time step / feature
        for seq in sequences:
            for k, o in enumerate(output_names):
                records += [{"output": o, "sequence": seq["input"], "step": t, "mean_abs_over_features": v}
                            for t, v in enumerate(seq["per_step"][k].tolist())]
                records += [{"output": o, "sequence": seq["input"], "feature": f, "mean_abs_over_steps": v}
                            for f, v in enumerate(seq["per_feature"][k].tolist())]
        file.write("".join(json.dumps(rec) + "\n" for rec in records).encode())
    else:
        raise UsageError("--summary writes table, csv, jsonl or npz")
