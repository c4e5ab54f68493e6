"""Writers for the jacobian results: csv, jsonl, npy, npz (for programs) and table (for people).

Every writer takes the rows chunk by chunk (``write``) and finishes with ``close``;
files are written to a temporary file beside the target and renamed into place only
when everything succeeded (``AtomicOutput``), so an output file is whole or absent.
NPY and NPZ need the row count in their headers, so they are written to temporary
files first and assembled at the end (memory stays flat).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import zipfile

import numpy as np

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
        from .errors import UsageError

        raise UsageError(f"-o {path}: cannot tell the format from the extension; give --format ({', '.join(FORMATS)})")
    return "table" if stdout_isatty else "csv"


class AtomicOutput:
    """A binary file opened beside ``path`` and renamed onto it by ``commit``; or stdout."""

    def __init__(self, path):
        self.path = None if path in (None, "-") else str(path)
        if self.path is None:
            self.file = sys.stdout.buffer
            return
        directory = os.path.dirname(os.path.abspath(self.path))
        from .errors import UsageError

        if not os.path.isdir(directory):
            raise UsageError(f"-o {self.path}: directory {directory} does not exist")
        try:
            fd, self.tmp = tempfile.mkstemp(prefix=".jacprop-", suffix=".part", dir=directory)
        except OSError as e:
            raise UsageError(f"-o {self.path}: cannot write there: {e.strerror or e}") from None
        self.file = os.fdopen(fd, "wb")

    def commit(self):
        if self.path is None:
            self.file.flush()
            return
        self.file.close()
        os.replace(self.tmp, self.path)

    def abort(self):
        if self.path is not None:
            self.file.close()
            try:
                os.unlink(self.tmp)
            except OSError:
                pass


def _fmt(values) -> list[str]:
    """Shortest strings that round-trip float64 (repr), for a flat array."""
    return list(map(repr, values.tolist()))


def jacobian_columns(input_names, output_names) -> list[str]:
    """CSV column names of J: d(<output>)/d(<input>), outputs major, inputs minor."""
    return [f"d({o})/d({i})" for o in output_names for i in input_names]


class Writer:
    def __init__(self, out: AtomicOutput, input_names, output_names, id_name=None):
        self.out, self.input_names, self.output_names, self.id_name = out, input_names, output_names, id_name
        self.n = 0

    def close(self):
        self.out.commit()


class CsvWriter(Writer):
    """Header: [id], outputs, d(out)/d(in) for every J entry; one line per row."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        import csv
        import io

        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(
            ([self.id_name] if self.id_name else []) + list(self.output_names)
            + jacobian_columns(self.input_names, self.output_names)
        )
        self.out.file.write(buf.getvalue().encode())

    def write(self, rows, ids, X, Y, J):
        flat = np.concatenate([Y, J.reshape(len(J), -1)], axis=1)
        lines = [",".join(_fmt(r)) for r in flat]
        if ids is not None:
            lines = [f"{_csv_cell(i)},{line}" for i, line in zip(ids.tolist(), lines)]
        self.out.file.write(("\n".join(lines) + "\n").encode() if lines else b"")
        self.out.file.flush()
        self.n += len(Y)


def _csv_cell(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n\r') else text


class JsonlWriter(Writer):
    """{"row": n, ["id": ...,] "x": [...], "y": [...], "jacobian": [[...] x K]} per line."""

    def write(self, rows, ids, X, Y, J):
        out = []
        for n in range(len(Y)):
            obj = {"row": int(rows[n])}
            if ids is not None:
                obj["id"] = str(ids[n])
            obj.update(x=X[n].tolist(), y=Y[n].tolist(), jacobian=J[n].tolist())
            out.append(json.dumps(obj, allow_nan=True))
        if out:
            self.out.file.write(("\n".join(out) + "\n").encode())
            self.out.file.flush()
        self.n += len(Y)


class NpyStream:
    """An .npy file of shape (?, *tail) written row block by row block; the header is
    finalised by ``finish`` once the row count is known."""

    HEADER = 128  # bytes reserved for the header (multiple of 64)

    def __init__(self, tail, dtype):
        self.tail, self.dtype, self.n = tuple(tail), np.dtype(dtype), 0
        self.file = tempfile.TemporaryFile()
        self.file.write(b"\0" * self.HEADER)

    def write(self, a):
        a = np.ascontiguousarray(a, dtype=self.dtype)
        self.file.write(a.tobytes())
        self.n += len(a)

    def finish(self):
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                  "shape": (self.n, *self.tail)}
        text = repr(header).encode("latin1")
        pad = self.HEADER - 10 - len(text) - 1
        self.file.seek(0)
        self.file.write(b"\x93NUMPY\x01\x00" + (self.HEADER - 10).to_bytes(2, "little") + text + b" " * pad + b"\n")
        self.file.seek(0)
        return self.file


class NpyWriter(Writer):
    """One array J of shape (N, K, D)."""

    def __init__(self, *args, dtype=np.float64, **kw):
        super().__init__(*args, **kw)
        self.stream = NpyStream((len(self.output_names), len(self.input_names)), dtype)

    def write(self, rows, ids, X, Y, J):
        self.stream.write(J)
        self.n += len(J)

    def close(self):
        shutil.copyfileobj(self.stream.finish(), self.out.file)
        self.out.commit()


class NpzWriter(Writer):
    """Arrays x (N, D), y (N, K), jacobian (N, K, D), input_names, output_names[, ids]."""

    def __init__(self, *args, dtype=np.float64, **kw):
        super().__init__(*args, **kw)
        k, d = len(self.output_names), len(self.input_names)
        self.streams = {"x": NpyStream((d,), dtype), "y": NpyStream((k,), dtype), "jacobian": NpyStream((k, d), dtype)}
        self.ids = []

    def write(self, rows, ids, X, Y, J):
        for name, a in (("x", X), ("y", Y), ("jacobian", J)):
            self.streams[name].write(a)
        if ids is not None:
            self.ids.append(ids)
        self.n += len(J)

    def close(self):
        extra = {"input_names": np.array(self.input_names, dtype=str), "output_names": np.array(self.output_names, dtype=str)}
        if self.id_name:
            extra["ids"] = np.concatenate(self.ids) if self.ids else np.array([], dtype=str)
        with zipfile.ZipFile(self.out.file, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
            for name, stream in self.streams.items():
                with z.open(name + ".npy", "w", force_zip64=True) as member:
                    shutil.copyfileobj(stream.finish(), member)
            for name, a in extra.items():
                with z.open(name + ".npy", "w") as member:
                    np.lib.format.write_array(member, a, allow_pickle=False)
        self.out.commit()


class TableWriter(Writer):
    """Each row's K x D Jacobian as a rich table, coloured by sign and magnitude; at most
    ``max_rows`` rows are shown (the rest are counted)."""

    def __init__(self, *args, max_rows=10, width=None, **kw):
        super().__init__(*args, **kw)
        from rich.console import Console

        self.console = Console(file=_TextBridge(self.out.file), width=width, highlight=False)
        self.max_rows, self.shown = max_rows, 0

    def write(self, rows, ids, X, Y, J):
        from .tables import jacobian_table

        for n in range(len(Y)):
            if self.shown >= self.max_rows:
                break
            label = f"row {rows[n]}" + (f" (id {ids[n]})" if ids is not None else "")
            self.console.print(jacobian_table(label, self.input_names, self.output_names, X[n], Y[n], J[n]))
            self.shown += 1
        self.n += len(Y)

    def close(self):
        if self.n > self.shown:
            self.console.print(f"... {self.n - self.shown} more rows not shown (use --format csv/jsonl/npz for all rows)")
        self.out.commit()


class _TextBridge:
    """A text file on top of a binary one, for rich."""

    def __init__(self, binary):
        self.binary = binary

    def write(self, text):
        self.binary.write(text.encode())
        return len(text)

    def flush(self):
        self.binary.flush()

    def isatty(self):
        return self.binary.isatty() if hasattr(self.binary, "isatty") else False


WRITERS = {"csv": CsvWriter, "jsonl": JsonlWriter, "npy": NpyWriter, "npz": NpzWriter, "table": TableWriter}
