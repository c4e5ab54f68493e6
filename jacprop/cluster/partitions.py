"""Partitions of the inputs, and the task that computes one into its part file.

Counting: ``dask.bytes.read_bytes(paths, delimiter=b"\\n", blocksize=...)`` cuts every file into
blocks that begin at line starts and together cover it; a task per block counts its non-blank and
its physical lines (a file's first block holds its header line).  Cutting: with C the reader's
chunk, a partition holds P = C * m data rows (the last one of a file what is left), so inside a
partition the reader's chunks, and so the engine's blocks, are those of the local run: the output
is byte-identical.  A partition starts reading at the block that holds its first row and skips the
non-blank lines before it (the header too, in the first block), keeping the file's own row and
line numbers.  A file that cannot be cut by bytes (compressed, with comments, with a bare CR line
end, which the reader splits at but ``b"\\n"`` does not) is one partition, read whole.
"""

from __future__ import annotations

import bisect
import math
import os
from dataclasses import dataclass, replace

import numpy as np

from ..commands import jacobian, propagate
from ..commands.common import OutputSpec
from ..io import writers
from ..io.reader import CsvReader, has_text

MAX_PARTITION_CHUNKS = 16  # at most this many reader chunks per partition
PARTS_PER_THREAD = 4  # aim for this many partitions per worker thread (load balance, reruns)
BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Partition:
    """Data rows [first_row + 1, first_row + n_rows] (n_rows None: to the end) of ``path`` (as given;
    ``open_path`` absolute), read from byte ``offset`` (a line start, ``lines_before`` lines into
    the file) after ``skip`` non-blank lines; ``offset`` None: the whole file, as the local run."""

    index: int
    path: str
    open_path: str
    offset: int | None = None
    lines_before: int = 0
    skip: int = 0
    first_row: int = 0
    n_rows: int | None = None
    name: str = ""  # the part file's


@dataclass(frozen=True)
class Job:
    """What every partition's task shares besides the model (a task of its own): the command's local
    plan without its model and reader, the local reader's resolved options, where parts go."""

    plan: object
    reader: dict
    fmt: str  # of the part files
    staging: str = ""
    many: bool = False  # several inputs: the closing line names the file


def count_block(block: bytes, first: bool) -> tuple[int, int, int, bool, int]:
    """(length, non-blank lines, physical lines, a bare CR seen, BOM bytes) of one block."""
    bom = len(BOM) if first and block.startswith(BOM) else 0
    lines = block[bom:].split(b"\n")
    if lines[-1] == b"":  # the block ends with a line end (or is empty)
        lines.pop()
    return len(block), sum(map(has_text, lines)), len(lines), block.count(b"\r") != block.count(b"\r\n"), bom


def partition_rows(total_rows, threads, chunk) -> int:
    """Rows per partition: a multiple of the reader's chunk, about PARTS_PER_THREAD partitions per
    worker thread, at most MAX_PARTITION_CHUNKS chunks."""
    per = math.ceil(total_rows / max(1, PARTS_PER_THREAD * threads) / chunk) if total_rows else 1
    return chunk * min(MAX_PARTITION_CHUNKS, max(1, per))


def plan_partitions(client, inputs, headers, chunk, rows_per_partition=None, split_bytes=2**26):
    """Count the rows of every file on the cluster, then cut them into chunk-aligned partitions;
    returns (partitions, total rows or None when a file is read whole).  ``headers``: per input,
    whether its first line is a header, or None (not to be cut by bytes)."""
    import dask
    from dask.bytes import read_bytes

    paths = [os.path.abspath(p) for p in inputs]
    _, blocks = read_bytes(paths, delimiter=b"\n", blocksize=split_bytes, sample=False)
    count = dask.delayed(count_block)
    (counts,) = dask.compute([[count(b, i == 0) for i, b in enumerate(bs)] if h is not None else []
                              for bs, h in zip(blocks, headers)], scheduler=client)
    totals = [sum(c[1] for c in cs) - bool(h) if h is not None and not any(c[3] for c in cs) else None
              for cs, h in zip(counts, headers)]
    if rows_per_partition is None:
        rows_per_partition = partition_rows(sum(t for t in totals if t), sum(client.nthreads().values()) or 1, chunk)
    per = chunk * max(1, math.ceil(rows_per_partition / chunk))
    parts: list[Partition] = []
    for path, open_path, cs, header, total in zip(inputs, paths, counts, headers, totals):
        if total is None:
            parts.append(Partition(len(parts), path, open_path))
            continue
        starts, rows, lines, offset = [], -bool(header), 0, cs[0][4] if cs else 0  # per block: its first row
        for size, texts, n_lines, _, bom in cs:
            starts.append((max(rows, 0), offset, lines, header and rows < 0))
            rows, lines, offset = rows + texts, lines + n_lines, offset + size - bom
        for r0 in range(0, total, per):
            row, offset, lines, in_header = starts[bisect.bisect_right(starts, (r0, math.inf)) - 1]
            parts.append(Partition(len(parts), path, open_path, offset, lines, r0 - row + in_header, r0,
                                   None if r0 + per >= total else per))
    return parts, None if None in totals else sum(totals)


def run_part(part: Partition, model, job: Job) -> dict:
    """One partition through the command's own stream (``stream_of``) into its part file; what comes
    back: rows written, skipped, the last row read, the closing line's largest value, the findings."""
    plan = job.plan
    reader = CsvReader(part.open_path, name=part.path, **job.reader)
    if part.offset is not None:
        reader.start_at(part.offset, part.lines_before, part.skip, part.first_row, part.n_rows)
    plan = replace(plan, model=model, reader=reader)
    command = propagate if isinstance(plan, propagate.PropagatePlan) else jacobian
    findings, path = propagate.Findings(), os.path.join(job.staging, part.name)
    blocks, produce = command.stream_of(plan, findings)
    tally = replace(command.tally_of(plan, OutputSpec(path)), source=f" of {part.path}" if job.many else "")
    writer = writers.open_writer(job.fmt, path, plan.fields, plan.meta, np.dtype(plan.spec.output.dtype))
    try:
        for block in blocks:
            rows, ids, arrays = produce(block)
            writer.write(rows, ids, arrays)
            tally.add(rows, arrays)
        if writer.n == 0 and job.fmt == "csv":  # a part without rows is still a CSV file, with its header
            writer.out.file.write(writers.csv_header(plan.fields, plan.meta))
        writer.close()
    except BaseException:
        writer.out.abort()
        raise
    finally:
        reader.close()
    return {"rows": writer.n, "skipped": reader.skipped, "last_row": reader.rows_read,
            "largest": (tally.worst, tally.at), **findings.result()}


def hold(model):
    """The model as a task of its own: each worker fetches it once, and a lost copy is rebuilt."""
    return model
