"""``--engine dask``: ``jacobian`` and ``propagate`` over many CSV files on a Dask cluster.

How a run goes:

1. The client prepares the command's plan as the local run does (the model loaded once, every
   usage error raised here) and reads every input's header with the same checks.
2. ``partitions``: ``dask.bytes.read_bytes`` cuts the files into blocks at line starts; a task per
   block counts its rows; the rows are cut into partitions of whole reader chunks, so that each
   partition computes exactly the local run's blocks: the output is byte-identical.
3. ``run_tasks``: a task per partition (``partitions.jacobian_part``, ``propagate_part``) reads its
   rows with the local reader, computes with the model (one task, fetched once by each worker)
   and writes one part file.  Dask reruns the tasks of a worker that dies.
4. ``output``: with ``-o DIR/`` the parts move into DIR beside ``manifest.json``; otherwise they
   are concatenated in input order into one file (atomically) or onto stdout.

Workers must see the inputs and the output directory at the same paths as the client (a
shared filesystem; always true for the LocalCluster started without ``--scheduler``).
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import shutil
import sys
import uuid
from dataclasses import dataclass, replace

from ..commands.common import Outcome, open_inputs
from ..errors import JacpropError, UsageError
from ..io.reader import CHUNK_ROWS as READER_CHUNK_ROWS
from ..io.reader import no_data_rows
from ..loaders import is_model_file
from . import output
from .partitions import Job, hold, jacobian_part, plan_partitions, propagate_part

__all__ = ["ClusterError", "Tuning", "run_jacobian", "run_propagate", "split_models_inputs"]

SPLIT_BYTES = 64 * 2**20  # bytes per counting task
CHUNK_ROWS = None  # None: io.reader.CHUNK_ROWS, the local reader's chunk (partitions are multiples of it)
PARTITION_ROWS = None  # None: from the row count and the cluster's threads (partitions.partition_rows)
ALLOWED_FAILURES = 5  # a task may be on this many dying workers before the run gives up (LocalCluster)


class ClusterError(JacpropError):
    """The cluster could not run the work (unreachable scheduler, workers dying)."""


@contextlib.contextmanager
def connect(scheduler=None, workers=None):
    """A Client on ``scheduler`` (an address), or on a LocalCluster of ``workers`` processes
    (default: one per CPU) with one thread each on 127.0.0.1, closed afterwards."""
    try:
        import dask
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise UsageError("--engine dask needs Dask: pip install 'jacprop[dask]'") from None
    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as e:
            raise ClusterError(f"--scheduler {scheduler}: cannot connect ({e})") from None
        with client:
            yield client
        return
    n = workers or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES}):
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address="127.0.0.1:0", silence_logs=logging.CRITICAL)
    with cluster, Client(cluster) as client:
        yield client


def run_tasks(client, task, model, job, parts, show_progress=False) -> list:
    """``task(model, job, part)`` for every partition, results in input order.  The model is one
    task that every partition depends on (sent once per worker).  Results are taken in input
    order, so the error raised is that of the earliest failing partition (the first bad row of
    the inputs, as locally); the other tasks are then cancelled."""
    from dask.distributed import KilledWorker

    from ..render import progress

    token = uuid.uuid4().hex[:12]
    held = client.submit(hold, model, key=f"jacprop-model-{token}", pure=False)
    futures = [client.submit(task, held, job, part, key=f"jacprop-{job.command}-part-{part.index}-{token}", pure=False)
               for part in parts]
    results = []
    try:
        with progress(show_progress) as advance:
            for part, future in zip(parts, futures):
                try:
                    results.append(future.result())
                except KilledWorker as e:
                    rows = f"{part.first_row + 1}-{part.first_row + part.n_rows}" if part.n_rows else \
                        f"from {part.first_row + 1}"
                    raise ClusterError(f"{part.path}: rows {rows}: the task died with {ALLOWED_FAILURES + 1} workers "
                                       f"(out of memory?): {e}") from None
                advance(results[-1]["rows"])
        return results
    finally:
        client.cancel([*futures, held])


def split_models_inputs(paths) -> tuple[list[str], list[str]]:
    """MODEL... INPUTS...: the leading arguments that are model files, then the inputs (files or
    globs, expanded here in sorted order so that a quoted 'data/part-*.csv' works)."""
    paths = [os.fspath(p) for p in paths]
    n = 0
    while n < len(paths) and is_model_file(paths[n]):
        n += 1
    models, rest = paths[:n], paths[n:]
    if not models:
        if paths:
            from ..loaders import detect

            detect(paths[0])  # raises why the first argument is not a model
        raise UsageError("give one or more MODEL files and then the INPUTS (CSV files or globs)")
    if not rest:
        raise UsageError("give one or more MODEL files and then the INPUTS (CSV files or globs); "
                         "with --engine dask the inputs are the arguments that are not model files")
    inputs = []
    for arg in rest:
        if arg == "-":
            raise UsageError("--engine dask reads input files, not stdin ('-')")
        matches = sorted(p for p in glob.glob(arg) if os.path.isfile(p)) if glob.has_magic(arg) else [arg]
        if not matches:
            raise UsageError(f"{arg}: no input files match")
        for p in matches:
            if is_model_file(p):
                raise UsageError(f"{p}: a model file after the inputs: give every MODEL first, then the INPUTS")
        inputs.extend(matches)
    return models, inputs


def _check_inputs(model, inputs, spec_inputs) -> None:
    """Every input's header, with the local path's checks; all must select the same columns."""
    names = None
    for path in inputs:
        reader = open_inputs(model, spec_inputs, path)
        reader.close()
        if names is not None and reader.columns != names:
            raise UsageError(f"{path}: the input columns {reader.columns} differ from {inputs[0]}'s {names} "
                             "(name them with --columns)")
        names = reader.columns


@dataclass(frozen=True)
class Tuning:
    """For tests and benchmarks: an existing ``client``, and the reader chunk, partition and
    counting-block sizes (None: the defaults above)."""

    client: object = None
    chunk_rows: int | None = None
    partition_rows: int | None = None
    split_bytes: int | None = None


@dataclass(frozen=True)
class Run:
    """One distributed run: what was asked for and where it goes."""

    models: list
    inputs: list
    out: output.OutputPlan
    scheduler: str | None
    workers: int | None
    quiet: bool
    tuning: Tuning


def _execute(run: Run, task, job: Job, model) -> tuple[list, list, list]:
    """Plan the partitions, run them and assemble the output; returns (results, parts, notes)."""
    from ..render import status

    tuning = run.tuning
    job = replace(job, chunk=tuning.chunk_rows or CHUNK_ROWS or READER_CHUNK_ROWS)
    connection = contextlib.nullcontext(tuning.client) if tuning.client else connect(run.scheduler, run.workers)
    with connection as client:
        job = replace(job, staging=output.make_staging(run.out, run.scheduler is not None))
        try:
            parts = plan_partitions(client, run.inputs, job.reader, job.chunk,
                                    tuning.partition_rows or PARTITION_ROWS, tuning.split_bytes or SPLIT_BYTES)
            parts = [replace(p, name=name) for p, name in zip(parts, output.part_names(len(parts), run.out.fmt))]
            show = not run.quiet and sys.stderr.isatty()
            if show:
                status(f"jacprop: {len(parts)} partitions of {len(run.inputs)} input(s) on "
                       f"{len(client.nthreads())} workers ({client.scheduler.address})")
            results = run_tasks(client, task, model, job, parts, show) if parts else []
            total, skipped = sum(r["rows"] for r in results), sum(r["skipped"] for r in results)
            if total == 0:
                raise no_data_rows(run.inputs[0] if len(run.inputs) == 1 else f"{len(run.inputs)} inputs", skipped)
            names = [p.name for p in parts]
            if run.out.kind == "dir":
                manifest = output.manifest(job.command, run.models, run.inputs, run.out, job, parts, results)
                output.write_directory(run.out, job.staging, names, manifest)
            else:
                output.concatenate(run.out, job, [os.path.join(job.staging, n) for n in names], total)
        finally:
            shutil.rmtree(job.staging, ignore_errors=True)
    notes = [f"jacprop: skipped {skipped} rows with NaN/inf inputs"] if skipped and not run.quiet else []
    return results, parts, notes


def _prepare(command, paths, spec_for, allowed, cluster: dict, tuning: Tuning):
    """(run, spec, the command's local plan) for MODEL... INPUTS...: the spec made by
    ``spec_for(models, first input)`` and prepared as the local run prepares it, with its
    output on stdout in the cluster's format (the runner places the file)."""
    models, inputs = split_models_inputs(paths)
    spec = spec_for(tuple(models), inputs[0])
    if getattr(spec, "summary", False):
        raise UsageError("--summary is not available with --engine dask; use the local engine")
    out = output.plan_output(spec.output.path, spec.output.fmt, allowed)
    local = command.prepare(replace(spec, output=replace(spec.output, path=None, fmt=out.fmt)))
    local.reader.close()
    run = Run(models, inputs, out, cluster.get("scheduler"), cluster.get("workers"), spec.output.quiet, tuning)
    return run, spec, local


def run_jacobian(paths, spec_for, scheduler=None, workers=None, tuning: Tuning = Tuning()) -> Outcome:
    """``jacprop jacobian MODEL... INPUTS... --engine dask``: ``spec_for(models, first input)`` makes
    the command's spec, prepared exactly as the local run prepares it."""
    from ..commands import jacobian as command

    run, spec, local = _prepare(command, paths, spec_for, ("csv", "jsonl", "npy", "npz"),
                                {"scheduler": scheduler, "workers": workers}, tuning)
    _check_inputs(local.model, run.inputs, spec.inputs)
    job = Job("jacobian", run.out.fmt, local.fields, local.meta, spec.output.dtype, spec.mode, spec.inputs,
              local.reader.options(), out_idx=local.out_idx, wrt_idx=local.wrt_idx)
    _, _, notes = _execute(run, jacobian_part, job, local.model)
    return Outcome(0, local.notes + notes)


def run_propagate(paths, spec_for, scheduler=None, workers=None, tuning: Tuning = Tuning()) -> Outcome:
    """``jacprop propagate MODEL... INPUTS... --engine dask``; as ``run_jacobian``."""
    from ..commands import propagate as command

    run, spec, local = _prepare(command, paths, spec_for, ("csv", "jsonl", "npz"),
                                {"scheduler": scheduler, "workers": workers}, tuning)
    spec_inputs = replace(spec.inputs, extra_columns=command.extra_columns(spec))
    _check_inputs(local.model, run.inputs, spec_inputs)
    job = Job("propagate", run.out.fmt, local.fields, local.meta, spec.output.dtype, spec.mode, spec_inputs,
              local.reader.options(), estimator=local.estimator)
    results, parts, notes = _execute(run, propagate_part, job, local.model)

    def where(r, part):
        return f"{r} of {part.path}" if len(run.inputs) > 1 else r

    return command.findings_outcome(command.merge_findings(results, parts, where), spec.tol, spec.output.quiet,
                                    local.notes + notes, local.estimator.settings)
