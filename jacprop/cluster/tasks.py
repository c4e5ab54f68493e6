"""What runs on the workers: one partition of ``jacobian`` or ``propagate`` through the local
path's blocks, producer and writer, into one part file."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..commands.common import InputSpec, jacobian_blocks, parse_rows
from ..io import writers
from .output import EXTENSIONS
from .partitions import Partition, open_partition


@dataclass(frozen=True)
class Job:
    """Everything a partition task needs besides the model (small: sent with every task)."""

    command: str
    fmt: str
    fields: list
    meta: dict
    dtype: str
    mode: str
    inputs: InputSpec  # the reader's options and --rows
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
    reader = open_partition(part, job.inputs.reader_options(), job.chunk)
    return reader, jacobian_blocks(model, reader, job.mode, outputs, wrt, job.dtype, parse_rows(job.inputs.rows))


def jacobian_part(model, job: Job, part: Partition) -> dict:
    """One partition of ``jacprop jacobian``."""
    reader, blocks = _blocks(model, job, part, job.out_idx, job.wrt_idx)
    wrt = job.wrt_idx

    def produce(b):
        return b.rows, b.ids, {"x": b.X if wrt is None else b.X[:, wrt], "y": b.Y, "jacobian": b.J}

    return _write_part(job, part, reader, blocks, produce)


def propagate_part(model, job: Job, part: Partition) -> dict:
    """One partition of ``jacprop propagate``, with the local path's Estimator; the first 20
    linearity flags and gate violations come back with their counts."""
    from ..commands.propagate import Findings

    reader, blocks = _blocks(model, job, part)
    findings, dtype = Findings(), job.dtype

    def forward(X):
        return model.forward(X, dtype=dtype, deterministic=True)

    result = _write_part(job, part, reader, blocks, lambda b: job.estimator.produce(b, forward, findings))
    result.update(flagged=findings.flagged[:20], n_flagged=len(findings.flagged),
                  violations=findings.violations[:20], n_violations=len(findings.violations))
    return result


def hold(model):
    """The model as a task of its own: each worker fetches it once, and a lost copy is rebuilt."""
    return model
