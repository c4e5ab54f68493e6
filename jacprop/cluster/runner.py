"""``--engine dask``: ``jacobian`` and ``propagate`` over many CSV files on a Dask cluster.

1. The client prepares the command's plan as the local run does (the model loaded once, every usage
   error raised here) and opens every input with the same checks.
2. ``partitions.plan_partitions`` counts the rows of ``dask.bytes.read_bytes`` blocks and cuts them
   into partitions of whole reader chunks: each computes exactly the local run's blocks.
3. A task per partition (``partitions.run_part``, the command's own ``stream_of``) writes one part
   file; the model is one task every partition depends on (fetched once by each worker).  Dask
   reruns the tasks of a worker that dies (``ALLOWED_FAILURES``); the tasks are not retried on an
   error of their own (a bad row stays bad): the earliest failing partition's error is raised.
4. ``output``: the parts move into ``-o DIR/`` beside ``manifest.json``, or are joined into one
   file (atomically) or onto stdout; the closing line and the findings are merged in input order.

Workers must see the inputs and the output directory at the same paths as the client (a shared
filesystem; always true for the LocalCluster started without ``--scheduler``).
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import shutil
import sys
import uuid
from dataclasses import replace

from ..commands.common import Outcome, open_inputs, skipped_note
from ..errors import JacpropError, UsageError
from ..io.reader import no_data_rows
from ..loaders import is_model_file
from . import output, partitions

__all__ = ["ClusterError", "run_jacobian", "run_propagate", "split_models_inputs"]

SPLIT_BYTES = 64 * 2**20  # bytes per counting task
CHUNK_ROWS = None  # None: the local reader's chunk (partitions are multiples of it)
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


def run_tasks(client, model, job, parts, size=None) -> list:
    """``run_part`` for every partition, results in input order, so that the error raised is that
    of the earliest failing partition (the first bad row of the inputs, as locally); the other
    tasks are then cancelled.  ``size``: the progress display's (rows, None), else None (no display)."""
    from dask.distributed import KilledWorker

    from ..render import progress

    token = uuid.uuid4().hex[:12]
    held = client.submit(partitions.hold, model, key=f"jacprop-model-{token}", pure=False)
    futures = client.map(partitions.run_part, parts, model=held, job=job, pure=False,
                         key=[f"jacprop-part-{p.index}-{token}" for p in parts])
    results = []
    try:
        with progress(size is not None, size if size and size[0] else None) as advance:
            for part, future in zip(parts, futures):
                try:
                    results.append(future.result())
                except KilledWorker as e:
                    rows = f"{part.first_row + 1}-{part.first_row + part.n_rows}" if part.n_rows else \
                        f"from {part.first_row + 1}"
                    raise ClusterError(f"{part.path}: rows {rows}: the task died with {ALLOWED_FAILURES + 1} workers "
                                       f"(out of memory?): {e}") from None
                advance(results[-1]["last_row"] - part.first_row)
        return results
    finally:
        client.cancel([*futures, held])


def split_models_inputs(paths) -> tuple[list[str], list[str]]:
    """MODEL... INPUTS...: the leading arguments that are model files, then the inputs (files or
    globs, expanded here in sorted order so that a quoted 'data/part-*.csv' works)."""
    paths = [os.fspath(p) for p in paths]
    n = next((i for i, p in enumerate(paths) if not is_model_file(p)), len(paths))
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


def _open_all(model, inputs, spec_inputs) -> list:
    """Every input's header, with the local run's checks (all must select the same columns); per
    input whether its first line is a header, or None when it cannot be cut by bytes."""
    headers, names = [], None
    for path in inputs:
        reader = open_inputs(model, spec_inputs, path)
        reader.close()
        if names is not None and reader.columns != names:
            raise UsageError(f"{path}: the input columns {reader.columns} differ from {inputs[0]}'s {names} "
                             "(name them with --columns)")
        names = reader.columns
        headers.append(None if reader.compression or reader.comment else reader.has_header)
    return headers


def _place(out: output.OutputPlan, job: partitions.Job, parts, results, manifest: dict) -> None:
    """The parts into -o DIR/ beside their manifest, or joined into one file or onto stdout."""
    names, plan = [p.name for p in parts], job.plan
    if out.kind == "dir":
        rows = [{"part": p.name, "input": p.path, "first_row": p.first_row + 1, "last_row": r["last_row"],
                 "rows": r["rows"]} for p, r in zip(parts, results)]
        output.write_directory(out, job.staging, names, {**manifest, "rows": sum(r["rows"] for r in results),
                                                         "parts": rows})
    else:
        output.join(out, plan.fields, plan.meta, plan.spec.output.dtype, [os.path.join(job.staging, n) for n in names])


def _compute(client, local, job: partitions.Job, inputs, headers, quiet) -> tuple[list, list]:
    """Cut the inputs into partitions and run them: (results, partitions), in input order."""
    from ..render import status

    parts, total = partitions.plan_partitions(client, inputs, headers, job.reader["chunk_rows"], PARTITION_ROWS,
                                              SPLIT_BYTES)
    parts = [replace(p, name=name) for p, name in zip(parts, output.part_names(len(parts), job.fmt))]
    show = not quiet and sys.stderr.isatty()
    if show:
        status(f"jacprop: {len(parts)} partitions of {len(inputs)} input(s) on {len(client.nthreads())} workers "
               f"({client.scheduler.address})")
    results = run_tasks(client, local.model, job, parts, (total, None) if show else None) if parts else []
    local.reader.skipped = sum(r["skipped"] for r in results)  # of every partition, for the local note
    if sum(r["rows"] for r in results) == 0:
        raise no_data_rows(inputs[0] if len(inputs) == 1 else f"{len(inputs)} inputs", local.reader.skipped)
    return results, parts


def _run(command, allowed, paths, spec_for, scheduler, workers) -> Outcome:
    """MODEL... INPUTS... of ``command`` (commands.jacobian or .propagate): the spec made by
    ``spec_for(models, first input)`` and prepared as the local run prepares it (output on stdout
    in the cluster's format: the runner places the file), then run over the partitions."""
    models, inputs = split_models_inputs(paths)
    spec = spec_for(tuple(models), inputs[0])
    if getattr(spec, "summary", False):
        raise UsageError("--summary is not available with --engine dask; use the local engine")
    out = output.plan_output(spec.output.path, spec.output.fmt, allowed)
    local = command.prepare(replace(spec, output=replace(spec.output, path=None, fmt=out.fmt)))
    local.reader.close()
    extra = command.extra_columns(spec) if hasattr(command, "extra_columns") else ()
    headers = _open_all(local.model, inputs, replace(spec.inputs, extra_columns=extra))
    tally = command.tally_of(local, spec.output)  # the closing line, shown as the local run shows it
    options = {**local.reader.options(), "chunk_rows": CHUNK_ROWS or local.reader.chunk_rows}
    job = None
    try:
        with connect(scheduler, workers) as client:
            job = partitions.Job(replace(local, model=None, reader=None), options, out.part_fmt,
                                 output.make_staging(out, scheduler is not None), len(inputs) > 1)
            results, parts = _compute(client, local, job, inputs, headers, spec.output.quiet)
            name = command.__name__.rpartition(".")[2]
            _place(out, job, parts, results, output.manifest(name, models, inputs, out, local.meta))
    finally:  # after a local cluster's workers have stopped: a cancelled task still running may write a part
        if job is not None:
            shutil.rmtree(job.staging, ignore_errors=True)
    return _outcome(command, spec, local, tally, job, results, parts)


def _outcome(command, spec, local, tally, job, results, parts) -> Outcome:
    """The local run's lines: its notes, the closing line (the partitions' largest values, in input
    order), the skipped rows; propagate's findings merged (rows named with their file when several)."""
    for r in results if tally is not None else ():
        tally.offer(*r["largest"], rows=r["rows"])
    quiet = spec.output.quiet
    notes = local.notes + ([tally.line()] if tally is not None else []) + skipped_note(local.reader, quiet)
    if not hasattr(command, "findings_outcome"):
        return Outcome(0, notes)
    found = command.merge_findings(results, parts, lambda r, part: f"{r} of {part.path}" if job.many else r)
    return command.findings_outcome(found, spec.tol, quiet, notes, local.estimator.settings)


def run_jacobian(paths, spec_for, scheduler=None, workers=None) -> Outcome:
    """``jacprop jacobian MODEL... INPUTS... --engine dask``: ``spec_for(models, first input)`` makes
    the command's spec, prepared exactly as the local run prepares it."""
    from ..commands import jacobian

    return _run(jacobian, ("csv", "jsonl", "npy", "npz"), paths, spec_for, scheduler, workers)


def run_propagate(paths, spec_for, scheduler=None, workers=None) -> Outcome:
    """``jacprop propagate MODEL... INPUTS... --engine dask``; as ``run_jacobian``."""
    from ..commands import propagate

    return _run(propagate, ("csv", "jsonl", "npz"), paths, spec_for, scheduler, workers)
