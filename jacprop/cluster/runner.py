"""``--engine dask``: ``jacobian`` and ``propagate`` over many CSV files on a Dask cluster.

How a run goes:

1. The client loads the model once and reads every input's header with the same checks as
   the local path (so bad usage fails before any cluster work).
2. Each file's data bytes are cut into ranges of ``SPLIT_BYTES``; a task per range counts the
   rows (non-blank lines) and physical lines that start in it.
3. Partitions are row ranges [R0, R1) of one file with R0 a multiple of the CSV reader's chunk
   size (``io.reader.CHUNK_ROWS``).  Inside a partition the reader's chunks, and so the engine's
   blocks, are then exactly those of the single-machine path: the output is byte-identical
   (the engine also pads every block to one height and Monte Carlo draws are seeded per row,
   so a row's result does not depend on its block; aligned partitions keep it simple).
   A partition starts reading at its range's first line start and skips to R0, so every row
   and line number it reports is the real one of its file.
4. A task per partition reads its rows, computes with the model (shipped once to each worker
   as a Dask future, not inside every task) and writes one part file.
5. With ``-o DIR/`` the parts move into DIR beside ``manifest.json``; otherwise they are
   concatenated in input order into one file (atomically) or onto stdout.

Workers must see the inputs and the output directory at the same paths as the client (a
shared filesystem; always true for the LocalCluster started without ``--scheduler``).
"""

from __future__ import annotations

import bisect
import contextlib
import glob
import json
import math
import os
import shutil
import sys
import tempfile
import uuid
from dataclasses import dataclass, replace

import numpy as np

from ..commands.common import Outcome, jacobian_blocks, open_inputs, parse_rows
from ..errors import JacpropError, UsageError
from ..io import writers
from ..io.reader import CHUNK_ROWS as READER_CHUNK_ROWS
from ..io.reader import CsvReader, has_text, no_data_rows
from ..loaders import is_model_file

SPLIT_BYTES = 64 * 2**20  # bytes per counting task
CHUNK_ROWS = None  # None: io.reader.CHUNK_ROWS, the local reader's chunk (partitions are multiples of it)
PARTITION_ROWS = None  # None: from the row count and the cluster's threads (see partition_rows)
MAX_PARTITION_CHUNKS = 16  # at most this many reader chunks per partition
PARTS_PER_THREAD = 4  # aim for this many partitions per worker thread (load balance, retries)
ALLOWED_FAILURES = 5  # a task may be on this many dying workers before the run gives up (LocalCluster)
EXTENSIONS = {"csv": ".csv", "jsonl": ".jsonl", "npy": ".npy", "npz": ".npz"}
SLAB_ROWS = 65536  # rows per read when assembling NPY/NPZ parts
MAX_HEADER = 64 * 2**20  # bytes a CSV header line may take before the file is read whole


class ClusterError(JacpropError):
    """The cluster could not run the work (unreachable scheduler, workers dying)."""


# ---------------------------------------------------------------------------
# arguments


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


@dataclass
class OutputPlan:
    """Where the parts go: ``dir`` (part files + manifest.json), ``file`` or ``stdout`` (concatenated)."""

    kind: str
    path: str | None
    fmt: str
    staging: str | None = None


def plan_output(output, fmt, allowed, remote: bool) -> OutputPlan:
    if output and output != "-" and (output.endswith(("/", os.sep)) or os.path.isdir(output)):
        plan = OutputPlan("dir", output, fmt or "csv")
    elif output and output != "-":
        plan = OutputPlan("file", output, writers.format_for(output, fmt))
        directory = os.path.dirname(os.path.abspath(output))
        if not os.path.isdir(directory):
            raise UsageError(f"-o {output}: directory {directory} does not exist")
    else:
        plan = OutputPlan("stdout", None, fmt or "csv")
    if plan.fmt not in allowed:
        raise UsageError(f"--format {plan.fmt} is not available with --engine dask; choose one of {', '.join(allowed)}")
    return plan


def _make_staging(plan: OutputPlan, remote: bool) -> str:
    """A fresh directory the workers write parts into (beside the output, so moves are renames)."""
    if plan.kind == "dir":
        try:
            os.makedirs(plan.path, exist_ok=True)
        except OSError as e:
            raise UsageError(f"-o {plan.path}: cannot create the directory: {e.strerror or e}") from None
        where = plan.path
    elif plan.kind == "file":
        where = os.path.dirname(os.path.abspath(plan.path))
    else:  # stdout: a local cluster shares this machine's temp dir; a remote one maybe the working dir
        where = os.getcwd() if remote else None
    try:
        return os.path.abspath(tempfile.mkdtemp(prefix=".jacprop-parts-", dir=where))
    except OSError as e:
        raise UsageError(f"-o {plan.path or '-'}: cannot write there: {e.strerror or e}") from None


# ---------------------------------------------------------------------------
# partitions


def _bare_cr(line: bytes) -> bool:
    """A carriage return that is not part of the line's final CRLF (the text reader would split there)."""
    i = line.find(b"\r")
    return i != -1 and not (i == len(line) - 2 and line.endswith(b"\r\n"))


def count_range(path, start, end, data_start) -> tuple[int, int, int, bool]:
    """For the lines starting in [start, end): (offset of the first, rows, physical lines, bare CR seen)."""
    rows = lines = 0
    bare = False
    with open(path, "rb") as f:
        if start > data_start:
            f.seek(start - 1)
            f.readline()  # to the first line start at or after ``start``
        else:
            f.seek(start)
        first = pos = f.tell()
        while pos < end:
            line = f.readline()
            if not line:
                break
            pos += len(line)
            lines += 1
            rows += has_text(line)
            if b"\r" in line and _bare_cr(line):
                bare = True
    return first, rows, lines, bare


def _data_start(path, header) -> tuple[int, int] | None:
    """(byte offset of the first data line, physical lines before it), or None when the file
    cannot be cut by bytes (bare CR line ends, an endless header line)."""
    with open(path, "rb") as f:
        bom = 3 if f.read(3) == b"\xef\xbb\xbf" else 0
        if not header:
            return bom, 0
        f.seek(bom)
        line = f.readline(MAX_HEADER)
    if not line.endswith(b"\n") or _bare_cr(line):
        return None
    return bom + len(line), 1


@dataclass
class Partition:
    """Rows [first_row + 1, first_row + n_rows] (1-based data rows) of ``path``.

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
    name: str = ""


def partition_rows(total_rows, threads, chunk) -> int:
    """Rows per partition: a multiple of the reader's chunk, about PARTS_PER_THREAD partitions per
    worker thread, at most MAX_PARTITION_CHUNKS chunks."""
    per = math.ceil(total_rows / max(1, PARTS_PER_THREAD * threads) / chunk) if total_rows else 1
    return chunk * min(MAX_PARTITION_CHUNKS, max(1, per))


def plan_partitions(client, inputs, header, chunk, rows_per_partition=None, split_bytes=None) -> list[Partition]:
    """Count every file's rows on the cluster, then cut them into chunk-aligned partitions."""
    split_bytes = split_bytes or SPLIT_BYTES
    files, tasks = [], []
    for path in inputs:
        open_path = os.path.abspath(path)
        size = os.path.getsize(open_path)
        start = _data_start(open_path, header)
        ranges = [] if start is None else [(a, min(a + split_bytes, size)) for a in range(start[0], size, split_bytes)]
        files.append((path, open_path, start, len(tasks), len(ranges)))
        tasks += [(open_path, a, b, start[0]) for a, b in ranges]
    counts = client.gather(client.map(count_range, *zip(*tasks), pure=False, key=[f"jacprop-count-{uuid.uuid4().hex}" for _ in tasks])) if tasks else []

    layouts, total = [], 0
    for path, open_path, start, first, n in files:
        mine = counts[first : first + n]
        if start is None or any(bare for *_, bare in mine):
            layouts.append((path, open_path, None))  # read whole, like the local path
            continue
        starts, rows_before, lines_before = [], 0, start[1]
        for offset, rows, lines, _ in mine:
            if rows:
                starts.append((rows_before, offset, lines_before))
            rows_before += rows
            lines_before += lines
        layouts.append((path, open_path, (starts, rows_before)))
        total += rows_before
    if rows_per_partition is None:
        threads = sum(client.nthreads().values()) or 1
        rows_per_partition = partition_rows(total, threads, chunk)
    rows_per_partition = chunk * max(1, math.ceil(rows_per_partition / chunk))

    parts = []
    for path, open_path, layout in layouts:
        if layout is None:
            parts.append(Partition(len(parts), path, open_path, None, 0, 0, 0, None))
            continue
        starts, n_rows = layout
        keys = [s[0] for s in starts]
        for r0 in range(0, n_rows, rows_per_partition):
            rows_before, offset, lines_before = starts[bisect.bisect_right(keys, r0) - 1]
            last = r0 + rows_per_partition >= n_rows
            parts.append(Partition(len(parts), path, open_path, offset, r0 - rows_before, lines_before, r0,
                                   None if last else rows_per_partition))
    return parts


def open_partition(part: Partition, options: dict) -> CsvReader:
    """A CsvReader over one partition: the header is read and checked as usual, then reading
    jumps to the partition's first row, keeping the file's real row and line numbers."""
    reader = CsvReader(part.open_path, **options)
    reader.path = part.path
    if part.offset is not None:
        reader.start_at(part.offset, part.lines_before, part.skip, part.first_row, part.n_rows)
    return reader


# ---------------------------------------------------------------------------
# tasks (run on the workers)


@dataclass
class Job:
    """Everything a partition task needs besides the model (small: sent with every task)."""

    command: str
    fmt: str
    fields: list
    meta: dict
    dtype: str
    mode: str
    rows: str | None
    reader: dict
    staging: str = ""
    out_idx: list | None = None
    wrt_idx: list | None = None
    estimator: object = None  # propagate: commands.propagate.Estimator


def _write_part(job: Job, part: Partition, reader, blocks, produce) -> dict:
    writer = writers.open_writer(job.fmt, os.path.join(job.staging, part.name), job.fields, job.meta,
                                 np.dtype(job.dtype), allowed=tuple(EXTENSIONS))
    try:
        for block in blocks:
            writer.write(*produce(block))
        if getattr(writer, "header", b""):  # a CSV part without rows is still a CSV file with its header
            writer.out.file.write(writer.header)
        writer.close()
    except BaseException:
        writer.out.abort()
        raise
    finally:
        reader.close()
    return {"rows": writer.n, "skipped": reader.skipped, "last_row": reader.rows_read}


def jacobian_part(model, job: Job, part: Partition) -> dict:
    """One partition of ``jacprop jacobian``: the local path's blocks and writer, on a worker."""
    reader = open_partition(part, job.reader)
    blocks = jacobian_blocks(model, reader, job.mode, job.out_idx, job.wrt_idx, job.dtype, parse_rows(job.rows))
    wrt = job.wrt_idx

    def produce(b):
        return b.rows, b.ids, {"x": b.X if wrt is None else b.X[:, wrt], "y": b.Y, "jacobian": b.J}

    return _write_part(job, part, reader, blocks, produce)


def propagate_part(model, job: Job, part: Partition) -> dict:
    """One partition of ``jacprop propagate``, with the local path's Estimator."""
    from ..commands.propagate import Findings

    reader = open_partition(part, job.reader)
    blocks = jacobian_blocks(model, reader, job.mode, job.estimator.out_idx, None, job.dtype, parse_rows(job.rows))
    findings, dtype = Findings(), job.dtype

    def forward(X):
        return model.forward(X, dtype=dtype, deterministic=True)

    result = _write_part(job, part, reader, blocks, lambda b: job.estimator.produce(b, forward, findings))
    result.update(flagged=findings.flagged, n_flagged=findings.n_flagged, violations=findings.violations,
                  n_violations=findings.n_violations)
    return result


def _hold(model):
    return model


# ---------------------------------------------------------------------------
# the cluster


@contextlib.contextmanager
def connect(scheduler=None, workers=None):
    """A Client on ``scheduler`` (an address), or on a LocalCluster of ``workers`` processes
    with one thread each on 127.0.0.1, closed afterwards."""
    import logging

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


def _show_progress(quiet) -> bool:
    return not quiet and sys.stderr.isatty()


def _collect(client, futures, parts, show_progress) -> list:
    """Results in input order.  On a failure, the error of the earliest failing partition is
    raised (the first bad row of the inputs, as the local path would report it)."""
    from dask.distributed import KilledWorker, as_completed, progress, wait

    if show_progress:
        with contextlib.redirect_stdout(sys.stderr):  # dask's text bar writes to stdout
            progress(futures)
    index = {f.key: i for i, f in enumerate(futures)}
    failed = next((index[f.key] for f in as_completed(futures) if f.status == "error"), None)
    if failed is not None:
        client.cancel(futures[failed + 1 :])
        wait(futures[:failed])
        for f, part in zip(futures[: failed + 1], parts):
            if f.status == "error":
                try:
                    f.result()
                except KilledWorker as e:
                    rows = f"rows {part.first_row + 1}-{part.first_row + part.n_rows}" if part.n_rows else f"rows from {part.first_row + 1}"
                    raise ClusterError(f"{part.path}: {rows}: the task died with {ALLOWED_FAILURES + 1} workers "
                                       f"(out of memory?): {e}") from None
    return client.gather(futures)


def _run(command, task, client, model, job: Job, parts, show_progress) -> list:
    token = uuid.uuid4().hex[:12]
    model_future = client.submit(_hold, model, key=f"jacprop-model-{token}", pure=False)  # sent once per worker
    futures = [client.submit(task, model_future, job, part, key=f"jacprop-{command}-part-{part.index}-{token}", pure=False)
               for part in parts]
    try:
        return _collect(client, futures, parts, show_progress)
    finally:
        client.cancel([*futures, model_future])


# ---------------------------------------------------------------------------
# output


def _part_names(parts, fmt):
    width = max(5, len(str(len(parts) - 1)))
    for p in parts:
        p.name = f"part-{p.index:0{width}d}{EXTENSIONS[fmt]}"


def _read_exact(f, n):
    data = f.read(n)
    if len(data) != n:
        raise OSError(f"{getattr(f, 'name', 'part file')}: truncated")
    return data


def _npy_header(f) -> tuple[tuple, np.dtype]:
    """Read an .npy stream's magic and header, leaving it at the data; returns (shape, dtype)."""
    version = np.lib.format.read_magic(f)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = read_header(f)
    return shape, dtype


def _npy_slabs(f):
    """Slabs (rows, *tail) of an .npy stream, read SLAB_ROWS rows at a time."""
    shape, dtype = _npy_header(f)
    n, tail = shape[0], shape[1:]
    row_bytes = math.prod(tail) * dtype.itemsize
    for start in range(0, n, SLAB_ROWS):
        k = min(SLAB_ROWS, n - start)
        yield np.frombuffer(_read_exact(f, k * row_bytes), dtype).reshape(k, *tail)


def _npz_slabs(path, names, with_ids):
    """(n, ids, arrays) slabs of an NPZ part file."""
    import zipfile

    with zipfile.ZipFile(path) as z:
        ids = np.load(z.open("ids.npy"), allow_pickle=False) if with_ids else None
        members = [z.open(name + ".npy") for name in names]
        start = 0
        for slabs in zip(*[_npy_slabs(m) for m in members]):
            n = len(slabs[0])
            yield n, None if ids is None else ids[start : start + n], dict(zip(names, slabs))
            start += n


def _concatenate(plan: OutputPlan, job: Job, parts, results):
    """The parts, in order, as one file (or stdout): the bytes for csv/jsonl (one CSV header), for npy
    one header then every part's data, for npz the arrays re-streamed through the local path's writer."""
    with writers.atomic_output(plan.path) as out:
        if plan.fmt in ("csv", "jsonl"):
            header = writers.csv_header(job.fields, job.meta) if plan.fmt == "csv" else b""
            out.file.write(header)
            for part, res in zip(parts, results):
                with open(os.path.join(job.staging, part.name), "rb") as f:
                    if header and f.read(len(header)) != header:
                        if res["rows"]:
                            raise OSError(f"{part.name}: unexpected CSV header")
                        f.seek(0)
                    shutil.copyfileobj(f, out.file, 2**20)
            return
        if plan.fmt == "npy":  # the header for the total row count, then each part's data bytes
            field = next(f for f in job.fields if f.name == job.meta["npy_field"])
            shape = (sum(r["rows"] for r in results), *field.tail)
            np.lib.format.write_array_header_1_0(out.file, {"descr": np.lib.format.dtype_to_descr(np.dtype(job.dtype)),
                                                            "fortran_order": False, "shape": shape})
            for part in parts:
                with open(os.path.join(job.staging, part.name), "rb") as f:
                    _npy_header(f)
                    shutil.copyfileobj(f, out.file, 2**20)
            return
        writer = writers.WRITERS[plan.fmt](out, job.fields, job.meta, dtype=np.dtype(job.dtype))
        names = [f.name for f in job.fields]
        for part, res in zip(parts, results):
            if res["rows"]:
                for n, ids, arrays in _npz_slabs(os.path.join(job.staging, part.name), names, bool(job.meta.get("id_name"))):
                    writer.write(np.arange(n), ids, arrays)
        writer.finish()


def _write_directory(plan: OutputPlan, job: Job, parts, results, manifest: dict):
    """Move the parts into DIR and write manifest.json (atomically, last); drop the parts an
    earlier run's manifest listed that this run does not."""
    old = set()
    try:
        with open(os.path.join(plan.path, "manifest.json")) as f:
            old = {p["part"] for p in json.load(f).get("parts", []) if isinstance(p, dict) and "part" in p}
    except (OSError, ValueError, AttributeError):
        pass
    staged = os.path.join(job.staging, "manifest.json")  # written first: a full disk fails before any part moves
    with writers.atomic_output(staged) as out:
        out.file.write((json.dumps(manifest, indent=2) + "\n").encode())
    for name in [p.name for p in parts] + ["manifest.json"]:  # renames: no space needed; the manifest last
        target = os.path.join(plan.path, name)
        mode = writers.existing_mode(target)  # a replaced part keeps its mode, as a replaced -o file does
        if mode is not None:
            os.chmod(os.path.join(job.staging, name), mode)
        os.replace(os.path.join(job.staging, name), target)
    for name in old - {p.name for p in parts}:
        if os.path.basename(name) == name and name.startswith("part-"):
            with contextlib.suppress(OSError):
                os.remove(os.path.join(plan.path, name))


def _manifest(command, models, inputs, plan, job, parts, results) -> dict:
    from .. import __version__

    return {
        "jacprop": __version__, "command": command, "format": plan.fmt, "models": list(models), "inputs": list(inputs),
        "input_names": list(job.meta["input_names"]), "output_names": list(job.meta["output_names"]),
        "id_column": job.meta.get("id_name"), "rows": sum(r["rows"] for r in results),
        "parts": [{"part": p.name, "input": p.path, "first_row": p.first_row + 1, "last_row": r["last_row"], "rows": r["rows"]}
                  for p, r in zip(parts, results)],
    }


# ---------------------------------------------------------------------------
# the commands


def _check_inputs(model, inputs, spec_inputs) -> list[str]:
    """Every input's header, with the local path's checks; all must select the same columns."""
    names = None
    for path in inputs:
        reader = open_inputs(model, spec_inputs, path)
        reader.close()
        if names is None:
            names = reader.columns
        elif reader.columns != names:
            raise UsageError(f"{path}: the input columns {reader.columns} differ from {inputs[0]}'s {names} "
                             "(name them with --columns)")
    return names


@dataclass(frozen=True)
class Tuning:
    """For tests and benchmarks: an existing ``client``, and the reader chunk, partition and
    counting-task sizes (None: the defaults above)."""

    client: object = None
    chunk_rows: int | None = None
    partition_rows: int | None = None
    split_bytes: int | None = None


def _execute(task, models, inputs, plan: OutputPlan, job: Job, model, cluster: dict, quiet, tuning: Tuning):
    """Plan the partitions, run them and assemble the output; returns (results, parts, notes)."""
    from ..render import status

    chunk = tuning.chunk_rows or CHUNK_ROWS or READER_CHUNK_ROWS
    job.reader["chunk_rows"] = chunk
    scheduler = cluster.get("scheduler")
    connection = contextlib.nullcontext(tuning.client) if tuning.client is not None else connect(**cluster)
    with connection as client:
        job.staging = _make_staging(plan, scheduler is not None)
        try:
            parts = plan_partitions(client, inputs, job.reader.get("header", True), chunk,
                                    tuning.partition_rows or PARTITION_ROWS, tuning.split_bytes)
            _part_names(parts, plan.fmt)
            show = _show_progress(quiet)
            if show:
                status(f"jacprop: {len(parts)} partitions of {len(inputs)} input(s) on {len(client.nthreads())} "
                       f"workers ({client.scheduler.address})")
            results = _run(job.command, task, client, model, job, parts, show) if parts else []
            total = sum(r["rows"] for r in results)
            skipped = sum(r["skipped"] for r in results)
            if total == 0:
                raise no_data_rows(inputs[0] if len(inputs) == 1 else f"{len(inputs)} inputs", skipped)
            if plan.kind == "dir":
                _write_directory(plan, job, parts, results, _manifest(job.command, models, inputs, plan, job, parts,
                                                                       results))
            else:
                _concatenate(plan, job, parts, results)
        finally:
            shutil.rmtree(job.staging, ignore_errors=True)
    notes = [f"jacprop: skipped {skipped} rows with NaN/inf inputs"] if skipped and not quiet else []
    return results, parts, notes


def _for_cluster(spec, plan: OutputPlan):
    """The spec with its output on stdout in the cluster's format (the runner places the file)."""
    return replace(spec, output=replace(spec.output, path=None, fmt=plan.fmt))


def run_jacobian(paths, spec_for, scheduler=None, workers=None, tuning: Tuning = Tuning()) -> Outcome:
    """``jacprop jacobian MODEL... INPUTS... --engine dask``: ``spec_for(models, first input)`` makes
    the command's spec, prepared exactly as the local run prepares it."""
    from ..commands import jacobian as command

    models, inputs = split_models_inputs(paths)
    spec = spec_for(tuple(models), inputs[0])
    if spec.summary:
        raise UsageError("--summary is not available with --engine dask; use the local engine")
    out = plan_output(spec.output.path, spec.output.fmt, ("csv", "jsonl", "npy", "npz"), scheduler is not None)
    local = command.prepare(_for_cluster(spec, out))
    local.reader.close()
    _check_inputs(local.model, inputs, spec.inputs)
    job = Job("jacobian", out.fmt, local.fields, local.meta, spec.output.dtype, spec.mode, spec.inputs.rows,
              spec.inputs.reader_options(), out_idx=local.out_idx, wrt_idx=local.wrt_idx)
    _, _, notes = _execute(jacobian_part, models, inputs, out, job, local.model,
                           {"scheduler": scheduler, "workers": workers}, spec.output.quiet, tuning)
    return Outcome(0, local.notes + notes)


def run_propagate(paths, spec_for, scheduler=None, workers=None, tuning: Tuning = Tuning()) -> Outcome:
    """``jacprop propagate MODEL... INPUTS... --engine dask``; as ``run_jacobian``."""
    from ..commands import propagate as command

    models, inputs = split_models_inputs(paths)
    spec = spec_for(tuple(models), inputs[0])
    out = plan_output(spec.output.path, spec.output.fmt, ("csv", "jsonl", "npz"), scheduler is not None)
    local = command.prepare(_for_cluster(spec, out))
    local.reader.close()
    spec_inputs = replace(spec.inputs, extra_columns=command.extra_columns(spec))
    _check_inputs(local.model, inputs, spec_inputs)
    job = Job("propagate", out.fmt, local.fields, local.meta, spec.output.dtype, spec.mode, spec.inputs.rows,
              spec_inputs.reader_options(), estimator=local.estimator)
    results, parts, notes = _execute(propagate_part, models, inputs, out, job, local.model,
                                     {"scheduler": scheduler, "workers": workers}, spec.output.quiet, tuning)

    def where(r, part):
        return f"{r} of {part.path}" if len(inputs) > 1 else r

    flagged = [(where(r, p), o) for p, res in zip(parts, results) for r, o in res["flagged"]]
    violations = [(x, v, where(r, p), o, why) for p, res in zip(parts, results) for x, v, r, o, why in res["violations"]]
    return command.findings_outcome(flagged, violations, sum(r["n_flagged"] for r in results),
                                    sum(r["n_violations"] for r in results), spec.tol, spec.output.quiet,
                                    local.notes + notes)
