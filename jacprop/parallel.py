"""Blocks of rows on both cores: a small thread pool, with BLAS held to one thread inside.

Blocks are independent (each row's Jacobian depends on that row only), and numpy releases
the GIL in its ufunc loops and in BLAS, so ``map_blocks`` runs blocks on ``workers()``
threads and yields their results in order.  Inside, the BLAS library runs one thread per
call (``one_blas_thread``): its own threads would compete with ours, and OpenBLAS's spin-wait
for a core that another process holds (measured 5x slower beside one busy process,
benchmarks/RESULTS.md); our threads block instead of spinning, so under load we lose only
the share of the machine that is taken.

Determinism: a block's result does not depend on the thread that computed it (the same
single-threaded BLAS call on the same data), so the output is the same for any number of
threads; BLAS is held to one thread in the serial case too, for the same reason.

The BLAS library is found without importing anything but numpy: the OpenBLAS that numpy
itself loaded (its path in /proc/self/maps, Linux; else in numpy's own ``.libs`` folder),
called through ctypes; ``threadpoolctl`` when installed and OpenBLAS is not found that way;
else BLAS keeps its own settings (it still computes right; only the speed under load suffers).
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads", "openblas_set_num_threads64_",
            "openblas_set_num_threads")
_GETTERS = tuple(s.replace("set", "get") for s in _SETTERS)
# OpenBLAS runs a matrix product of m x k by k x n on one thread while m k n < 2**19 (0.3.31, measured:
# benchmarks/RESULTS.md; older versions up to m k n = 2**18), and a dot product of length k while k <= 10,000
BLAS_SERIAL_MNK = 2**18
BLAS_SERIAL_K = 10_000
_lock = threading.Lock()
_state = {"depth": 0, "saved": None}
_blas = None  # (get, set) once looked up; () when not found
_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def _openblas_paths() -> list[str]:
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line}
    except OSError:
        paths = set()
    if not paths:  # not Linux: numpy's wheel ships OpenBLAS beside it
        root = os.path.dirname(os.path.dirname(np.__file__))
        paths = set(glob.glob(os.path.join(root, "numpy*libs", "*openblas*")))
    return sorted(paths)


def _find_blas():
    """(get_num_threads, set_num_threads) of numpy's OpenBLAS, or () when there is none to find."""
    global _blas
    if _blas is None:
        _blas = ()
        for path in _openblas_paths():
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for set_name, get_name in zip(_SETTERS, _GETTERS):
                if hasattr(lib, set_name) and hasattr(lib, get_name):
                    getter, setter = getattr(lib, get_name), getattr(lib, set_name)
                    getter.restype, setter.argtypes = ctypes.c_int, [ctypes.c_int]
                    _blas = (getter, setter)
                    return _blas
    return _blas


class one_blas_thread:  # noqa: N801  (used as ``with one_blas_thread():``, like a function)
    """BLAS calls in this block (from any thread) run on one thread; the previous setting is
    restored when the last nested user leaves.  Process-wide, like BLAS's own setting.  A class,
    not a generator: entered on every call of the engine, it costs ~0.5 us instead of ~2."""

    __slots__ = ("_limit",)

    def __enter__(self):
        blas = _blas if _blas is not None else _find_blas()
        self._limit = None
        if not blas:
            self._limit = _threadpoolctl_limit()
            self._limit.__enter__()
            return self
        get, set_ = blas
        with _lock:
            if _state["depth"] == 0:
                _state["saved"] = get()
                if _state["saved"] != 1:
                    set_(1)
            _state["depth"] += 1
        return self

    def __exit__(self, *exc):
        if self._limit is not None:
            return self._limit.__exit__(*exc)
        with _lock:
            _state["depth"] -= 1
            if _state["depth"] == 0 and _state["saved"] not in (None, 1):
                _blas[1](_state["saved"])
        return None


@contextlib.contextmanager
def _threadpoolctl_limit():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def workers() -> int:
    """Threads for blocks: the cores this process may use (``JACPROP_THREADS`` overrides, >= 1)."""
    env = os.environ.get("JACPROP_THREADS", "").strip()
    if env.isdigit() and int(env) >= 1:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _forget_after_fork() -> None:
    """In a forked child the pool's threads (and a lock another thread held) are gone: start afresh, or the
    child's first map_blocks waits forever on a future no thread will run."""
    global _lock, _pool, _pool_size
    _lock, _pool, _pool_size = threading.Lock(), None, 0


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_forget_after_fork)


def _get_pool(n: int) -> ThreadPoolExecutor:
    """The pool of ``n`` threads.  One of another size is dropped, not shut down: a block iterator still alive
    (a lazily consumed ``iter_jacobian``) holds it and submits to it; its threads end when the last holder lets
    it go."""
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size != n:
            _pool, _pool_size = ThreadPoolExecutor(n, thread_name_prefix="jacprop"), n
        return _pool


def map_blocks(fn: Callable, items: Iterable, threads: int | None = None, hold: bool = True) -> Iterator:
    """fn(item) for every item, in order, computed on ``threads`` threads (``workers()`` by
    default) with at most 2 x threads results alive at once (memory stays flat in N), BLAS on
    one thread.  A single item, or one thread, runs in the caller's thread.  ``hold=False``: the
    caller knows that no BLAS product in fn is large enough for BLAS to thread (``BLAS_SERIAL_MNK``),
    so BLAS runs one thread anyway and is left as it is (the same bits, without the hold's cost)."""
    with one_blas_thread() if hold else contextlib.nullcontext():
        it = iter(items)
        first = next(it, _END)
        if first is _END:
            return
        second = next(it, _END)
        if second is _END:
            yield fn(first)
            return
        n = workers() if threads is None else max(1, int(threads))
        if n == 1:
            yield fn(first)
            yield fn(second)
            for item in it:
                yield fn(item)
            return
        pool = _get_pool(n)
        pending = deque([pool.submit(fn, first), pool.submit(fn, second)])
        try:
            for item in it:
                if len(pending) >= 2 * n:
                    yield pending.popleft().result()
                pending.append(pool.submit(fn, item))
            while pending:
                yield pending.popleft().result()
        finally:
            for f in pending:  # the consumer stopped early or a block raised: drop the rest
                f.cancel()
            for f in pending:
                if not f.cancelled():
                    f.exception()  # wait: nothing may still write into the caller's arrays


_END = object()
