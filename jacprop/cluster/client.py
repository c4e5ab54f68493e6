"""The Dask cluster: a client on a scheduler or on a LocalCluster, and the partition tasks run
on it with the model shipped once."""

from __future__ import annotations

import contextlib
import logging
import os
import uuid

from ..errors import JacpropError, UsageError
from .tasks import hold

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
    task that every partition depends on (sent once per worker).  On a failure the error of the
    earliest failing partition is raised: the first bad row of the inputs, as locally."""
    from dask.distributed import as_completed, wait

    from ..render import progress

    token = uuid.uuid4().hex[:12]
    held = client.submit(hold, model, key=f"jacprop-model-{token}", pure=False)
    futures = [client.submit(task, held, job, part, key=f"jacprop-{job.command}-part-{part.index}-{token}", pure=False)
               for part in parts]
    try:
        index = {f.key: i for i, f in enumerate(futures)}
        with progress(show_progress) as advance:
            for f in as_completed(futures):
                if f.status == "error":
                    client.cancel(futures[index[f.key] + 1 :])
                    wait(futures[: index[f.key]])
                    _raise_first(futures, parts)
                advance(f.result()["rows"])
        return client.gather(futures)
    finally:
        client.cancel([*futures, held])


def _raise_first(futures, parts) -> None:
    """Raise the error of the first failed partition; a task that killed its workers (memory,
    a crash) as a ClusterError naming its rows."""
    from dask.distributed import KilledWorker

    first = next(i for i, f in enumerate(futures) if f.status == "error")
    try:
        futures[first].result()
    except KilledWorker as e:
        part = parts[first]
        rows = f"rows {part.first_row + 1}-{part.first_row + part.n_rows}" if part.n_rows else \
            f"rows from {part.first_row + 1}"
        raise ClusterError(f"{part.path}: {rows}: the task died with {ALLOWED_FAILURES + 1} workers "
                           f"(out of memory?): {e}") from None
