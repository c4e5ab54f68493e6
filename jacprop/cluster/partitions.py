"""Partitions of the inputs: row ranges [R0, R1) of one file, with R0 a multiple of the reader's chunk.

Counting: ``dask.bytes.read_bytes(paths, delimiter=b"\\n")`` cuts every file into blocks of about
``split_bytes`` that begin at line starts and together cover the file; a task per block (on the
worker that read it) counts its rows (non-blank lines) and physical lines.  The blocks' lengths
give their byte offsets, the counts the rows and lines before each block.

Cutting: with C the reader's chunk, partitions hold P = C * m rows (the last one of a file what
is left).  Inside a partition the reader's chunks, and so the engine's blocks, are exactly those
of the single-machine path, so the output is byte-identical.  A partition starts reading at the
first line of the block that holds row R0, skips to R0, and keeps the file's real row and line
numbers.  A file whose lines cannot be cut by bytes (a bare CR line end, which the text reader
splits at but ``b"\\n"`` does not; an endless header line) is one partition, read whole.
"""

from __future__ import annotations

import bisect
import math
import os
from dataclasses import dataclass

import numpy as np

from ..commands.common import InputSpec, jacobian_blocks, parse_rows
from ..io import writers
from ..io.reader import CsvReader, has_text
from .output import EXTENSIONS

MAX_HEADER = 64 * 2**20  # bytes a CSV header line may take before the file is read whole
MAX_PARTITION_CHUNKS = 16  # at most this many reader chunks per partition
PARTS_PER_THREAD = 4  # aim for this many partitions per worker thread (load balance, retries)


@dataclass(frozen=True)
class Partition:
    """Rows [first_row + 1, first_row + n_rows] (1-based data rows; n_rows None: to the end) of ``path``.

    Reading starts at byte ``offset`` (a line start, ``lines_before`` physical lines into the
    file) and skips ``skip`` rows; ``offset`` None reads the whole file as the local path does."""

    index: int
    path: str  # as given (messages, manifest)
    open_path: str  # absolute (workers)
    offset: int | None
    skip: int
    lines_before: int
    first_row: int
    n_rows: int | None
    name: str = ""  # the part file's name


def data_start(path, options: dict) -> tuple[int, int] | None:
    """(byte offset of the first data line, physical lines before it), or None when the file
    cannot be cut by bytes (compressed, with comments, bare CR line ends, an endless header line)."""
    probe = CsvReader(path, **options)  # the header as the local path reads it: given, or told from line 1
    probe.close()
    if probe.compression or probe.comment:
        return None
    header = probe.has_header
    with open(path, "rb") as f:
        bom = 3 if f.read(3) == b"\xef\xbb\xbf" else 0
        if not header:
            return bom, 0
        f.seek(bom)
        line = f.readline(MAX_HEADER)
    if not line.endswith(b"\n") or line.count(b"\r") != line.count(b"\r\n"):
        return None
    return bom + len(line), 1


def count_block(block: bytes, skip: int) -> tuple[int, int, int, bool]:
    """(length, rows, physical lines, a bare CR seen) of one block, past its first ``skip`` bytes
    (the BOM and header, in a file's first block)."""
    body = block[skip:] if skip else block
    lines = body.split(b"\n")
    if lines[-1] == b"":  # the block ends with a line end (or is empty)
        lines.pop()
    return len(block), sum(map(has_text, lines)), len(lines), body.count(b"\r") != body.count(b"\r\n")


def count_rows(client, paths, options: dict, split_bytes: int) -> list:
    """Per file: None (read it whole), or (marks, rows) with a mark (rows before, byte offset,
    lines before) at the start of every block that holds rows."""
    import dask
    from dask.bytes import read_bytes

    starts = [data_start(p, options) for p in paths]
    _, blocks = read_bytes(list(paths), delimiter=b"\n", blocksize=split_bytes, sample=False)
    count = dask.delayed(count_block)
    tasks = [[count(b, start[0] if i == 0 else 0) for i, b in enumerate(bs)] if start else []
             for bs, start in zip(blocks, starts)]
    (counts,) = dask.compute(tasks, scheduler=client)
    layouts = []
    for start, mine in zip(starts, counts):
        if start is None or any(bare for *_, bare in mine):
            layouts.append(None)
            continue
        marks, rows, lines, pos = [], 0, start[1], 0
        for i, (size, n_rows, n_lines, _) in enumerate(mine):
            if n_rows:
                marks.append((rows, start[0] if i == 0 else pos, lines))
            rows, lines, pos = rows + n_rows, lines + n_lines, pos + size
        layouts.append((marks, rows))
    return layouts


def partition_rows(total_rows, threads, chunk) -> int:
    """Rows per partition: a multiple of the reader's chunk, about PARTS_PER_THREAD partitions per
    worker thread, at most MAX_PARTITION_CHUNKS chunks."""
    per = math.ceil(total_rows / max(1, PARTS_PER_THREAD * threads) / chunk) if total_rows else 1
    return chunk * min(MAX_PARTITION_CHUNKS, max(1, per))


def plan_partitions(client, inputs, options, chunk, rows_per_partition=None, split_bytes=2**26) -> list[Partition]:
    """Count every file's rows on the cluster, then cut them into chunk-aligned partitions."""
    paths = [os.path.abspath(p) for p in inputs]
    layouts = count_rows(client, paths, options, split_bytes)
    if rows_per_partition is None:
        total = sum(layout[1] for layout in layouts if layout)
        rows_per_partition = partition_rows(total, sum(client.nthreads().values()) or 1, chunk)
    per = chunk * max(1, math.ceil(rows_per_partition / chunk))
    parts: list[Partition] = []
    for path, open_path, layout in zip(inputs, paths, layouts):
        if layout is None:
            parts.append(Partition(len(parts), path, open_path, None, 0, 0, 0, None))
            continue
        marks, n_rows = layout
        keys = [m[0] for m in marks]
        for r0 in range(0, n_rows, per):
            rows_before, offset, lines_before = marks[bisect.bisect_right(keys, r0) - 1]
            parts.append(Partition(len(parts), path, open_path, offset, r0 - rows_before, lines_before, r0,
                                   None if r0 + per >= n_rows else per))
    return parts


def open_partition(part: Partition, options: dict, chunk: int) -> CsvReader:
    """A CsvReader over one partition: the header is read and checked as usual, then reading
    jumps to the partition's first row, keeping the file's real row and line numbers."""
    reader = CsvReader(part.open_path, name=part.path, **{**options, "chunk_rows": chunk})
    if part.offset is not None:
        reader.start_at(part.offset, part.lines_before, part.skip, part.first_row, part.n_rows)
    return reader


# ---------------------------------------------------------------------------
# the tasks


@dataclass(frozen=True)
class Job:
    """Everything a partition task needs besides the model (small: sent with every task)."""

    command: str
    fmt: str
    fields: list
    meta: dict
    dtype: str
    mode: str
    inputs: InputSpec  # --rows
    reader: dict  # the local reader's resolved options (CsvReader.options()): columns by name, dialect
    chunk: int = 0  # the reader's chunk (set by the runner)
    staging: str = ""  # where the part files go (set by the runner)
    out_idx: list | None = None
    wrt_idx: list | None = None
    estimator: object = None  # propagate: commands.propagate.Estimator


def _write_part(job: Job, part: Partition, reader, blocks, produce) -> dict:
    """produce(block) -> (rows, ids, arrays) for every block, into the part file; a CSV part
    without rows is still a CSV file with its header."""
    writer = writers.open_writer(job.fmt, os.path.join(job.staging, part.name), job.fields, job.meta,
                                 np.dtype(job.dtype), allowed=tuple(EXTENSIONS))
    try:
        for block in blocks:
            writer.write(*produce(block))
        if writer.n == 0 and job.fmt == "csv":
            writer.out.file.write(writers.csv_header(job.fields, job.meta))
        writer.close()
    except BaseException:
        writer.out.abort()
        raise
    finally:
        reader.close()
    return {"rows": writer.n, "skipped": reader.skipped, "last_row": reader.rows_read}


def _blocks(model, job: Job, part: Partition, outputs=None, wrt=None):
    reader = open_partition(part, job.reader, job.chunk)
    return reader, jacobian_blocks(model, reader, job.mode, outputs, wrt, job.dtype, parse_rows(job.inputs.rows))


def jacobian_part(model, job: Job, part: Partition) -> dict:
    """One partition of ``jacprop jacobian``."""
    reader, blocks = _blocks(model, job, part, job.out_idx, job.wrt_idx)
    wrt = job.wrt_idx

    def produce(b):
        return b.rows, b.ids, {"x": b.X if wrt is None else b.X[:, wrt], "y": b.Y, "jacobian": b.J}

    return _write_part(job, part, reader, blocks, produce)


def propagate_part(model, job: Job, part: Partition) -> dict:
    """One partition of ``jacprop propagate``, with the local path's Estimator; the kept
    findings (``Findings.result()``) come back with their counts."""
    from ..commands.propagate import Findings, Network

    reader, blocks = _blocks(model, job, part, job.estimator.out_idx)
    findings, forward = Findings(), Network(model, job.dtype)  # the Hessian too, for gum2
    result = _write_part(job, part, reader, blocks, lambda b: job.estimator.produce(b, forward, findings))
    result.update(findings.result())
    return result


def hold(model):
    """The model as a task of its own: each worker fetches it once, and a lost copy is rebuilt."""
    return model
