"""parallel.py's behaviour where its mutants survived (issue #20, helper mut-load): which BLAS library the hold
finds and how (checked against /proc/self/maps and numpy's own folder read here), the hold on a machine
without OpenBLAS, the thread count users get, and thread pools shared by block iterators that are alive at
the same time."""

import glob
import os
import sys
import threading

import numpy as np
import pytest

from jacprop import engine, parallel
from jacprop.graph import GraphBuilder
from jacprop.ops import Dense
from jacprop.ops.activations import Activation

LINUX_MAPS = os.path.exists("/proc/self/maps")


def mapped_openblas():
    """The OpenBLAS files this process has mapped, read from /proc/self/maps here."""
    with open("/proc/self/maps") as f:
        return sorted({line.split()[-1] for line in f if "/" in line and "openblas" in line.split()[-1].lower()})


def bundled_openblas():
    """The OpenBLAS a numpy wheel ships in site-packages/numpy*libs/ (the fallback where /proc is missing)."""
    root = os.path.dirname(os.path.dirname(np.__file__))
    return sorted(p for d in glob.glob(os.path.join(root, "numpy*libs")) for p in glob.glob(os.path.join(d, "*"))
                  if "openblas" in os.path.basename(p).lower())


@pytest.fixture
def fresh_lookup(monkeypatch):
    """The lookup as a new process makes it (nothing cached), the cache put back afterwards."""
    monkeypatch.setattr(parallel, "_blas", None)
    return monkeypatch


# ---------------------------------------------------------------------------
# Finding OpenBLAS


@pytest.mark.skipif(not LINUX_MAPS, reason="Linux only")
def test_openblas_paths_are_the_mapped_openblas_files_even_with_numpys_folder_elsewhere(monkeypatch):
    """On Linux the paths come from /proc/self/maps: the same list with numpy's own folder out of reach."""
    expected = mapped_openblas()
    if not expected:
        pytest.skip("numpy here is not linked against OpenBLAS")
    assert parallel._openblas_paths() == expected
    monkeypatch.setattr(parallel.np, "__file__", "/nonexistent/site-packages/numpy/__init__.py")
    assert parallel._openblas_paths() == expected


def test_openblas_paths_without_proc_maps_come_from_numpys_wheel_folder(monkeypatch):
    expected = bundled_openblas()
    if not expected:
        pytest.skip("numpy here is not a wheel that ships OpenBLAS")
    real_open = open

    def no_proc(path, *args, **kwargs):
        if str(path).startswith("/proc/"):
            raise FileNotFoundError(2, "No such file or directory", path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(parallel, "open", no_proc, raising=False)
    assert parallel._openblas_paths() == expected


def test_find_blas_skips_a_path_that_does_not_load_and_caches_what_it_finds(fresh_lookup):
    real = parallel._openblas_paths()
    if not real:
        pytest.skip("numpy's OpenBLAS not found")
    fresh_lookup.setattr(parallel, "_openblas_paths", lambda: ["/nonexistent/libopenblas.so", *real])
    found = parallel._find_blas()
    assert len(found) == 2 and found[0]() >= 1
    assert parallel._blas is found and parallel._find_blas() is found


def test_find_blas_needs_both_the_getter_and_the_setter_of_one_symbol_pair(fresh_lookup):
    """A library exporting only the setter of the first spelling is passed over for the next pair it has whole."""
    calls = []

    class Fn:
        def __init__(self, name):
            self.name = name

        def __call__(self, *a):
            calls.append((self.name, a))
            return 1

    class Lib:
        scipy_openblas_set_num_threads64_ = Fn("set64")  # its getter is missing
        openblas_set_num_threads = Fn("set")
        openblas_get_num_threads = Fn("get")

    fresh_lookup.setattr(parallel, "_openblas_paths", lambda: ["/fake/libopenblas.so"])
    fresh_lookup.setattr(parallel.ctypes, "CDLL", lambda path: Lib())
    get, set_ = parallel._find_blas()
    get(), set_(3)
    assert calls == [("get", ()), ("set", (3,))]


def test_without_openblas_the_lookup_gives_an_empty_tuple_and_the_hold_still_works(fresh_lookup):
    fresh_lookup.setattr(parallel, "_openblas_paths", lambda: [])
    assert parallel._find_blas() == ()
    assert parallel._blas == ()
    with parallel.one_blas_thread():  # threadpoolctl when installed, else BLAS keeps its settings
        with parallel.one_blas_thread():
            pass
    assert list(parallel.map_blocks(lambda i: i + 1, range(5), threads=2)) == [1, 2, 3, 4, 5]


# ---------------------------------------------------------------------------
# The thread count


def test_jacprop_threads_1_is_one_thread(monkeypatch):
    monkeypatch.setenv("JACPROP_THREADS", "1")
    monkeypatch.setattr(parallel.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert parallel.workers() == 1
    monkeypatch.setenv("JACPROP_THREADS", " 2 ")
    assert parallel.workers() == 2


def test_workers_follow_the_affinity_mask(monkeypatch):
    monkeypatch.delenv("JACPROP_THREADS", raising=False)
    for cores in ({0}, {0, 1, 5}):
        monkeypatch.setattr(parallel.os, "sched_getaffinity", lambda pid, c=cores: c, raising=False)
        assert parallel.workers() == len(cores)


@pytest.mark.parametrize("count,expected", [(None, 1), (1, 1), (3, 3)])
def test_workers_without_sched_getaffinity_use_cpu_count(monkeypatch, count, expected):
    monkeypatch.delenv("JACPROP_THREADS", raising=False)
    monkeypatch.delattr(parallel.os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(parallel.os, "cpu_count", lambda: count)
    assert parallel.workers() == expected


# ---------------------------------------------------------------------------
# The pool


def test_threads_n_runs_n_blocks_at_once():
    """Three blocks that each wait for the other two finish only if three threads run them together."""
    for n in (2, 3):
        barrier = threading.Barrier(n, timeout=20)
        assert list(parallel.map_blocks(lambda i, b=barrier: (b.wait(), i)[1], range(n), threads=n)) == list(range(n))


def test_iterators_alive_at_once_with_different_thread_counts_both_finish():
    """A block iterator half consumed while another call runs on a different number of threads (a chain's
    stages, a caller consuming iter_jacobian lazily): before the fix the second call shut the first one's pool
    down, and the first then raised 'cannot schedule new futures after shutdown'."""
    first = parallel.map_blocks(lambda i: i * i, range(40), threads=2)
    assert next(first) == 0
    assert list(parallel.map_blocks(lambda i: -i, range(40), threads=3)) == [-i for i in range(40)]
    assert list(parallel.map_blocks(lambda i: i + 1, range(40), threads=2)) == list(range(1, 41))
    assert list(first) == [i * i for i in range(1, 40)]


def test_the_same_thread_count_shares_one_pool_between_live_iterators():
    first = parallel.map_blocks(lambda i: i, range(30), threads=2)
    assert next(first) == 0
    assert list(parallel.map_blocks(lambda i: 2 * i, range(30), threads=2)) == [2 * i for i in range(30)]
    assert list(first) == list(range(1, 30))


def test_threads_n_never_runs_more_than_n_blocks_at_once_on_jacprops_threads():
    lock, running, most, names = threading.Lock(), [0], [0], set()

    def fn(i):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
            names.add(threading.current_thread().name)
        threading.Event().wait(0.01)
        with lock:
            running[0] -= 1
        return i

    assert list(parallel.map_blocks(fn, range(24), threads=2)) == list(range(24))
    assert most[0] <= 2 and names and all(n.startswith("jacprop_") for n in names), (most, names)


def test_one_thread_or_one_item_runs_in_the_callers_thread():
    me = threading.current_thread()
    for threads in (1, 0):
        assert all(t is me for t in parallel.map_blocks(lambda i: threading.current_thread(), range(5), threads))
    assert list(parallel.map_blocks(lambda i: threading.current_thread(), [0], threads=4)) == [me]


def test_at_most_two_results_per_thread_are_computed_ahead_of_the_consumer():
    """The docstring's memory bound: when the consumer takes result k, at most k + 2 n blocks have been started."""
    for n in (2, 3):
        started, ahead = [0], []

        def fn(i, started=started):
            started[0] += 1
            return i

        for k, _ in enumerate(parallel.map_blocks(fn, range(40), threads=n)):
            threading.Event().wait(0.02)  # the threads run whatever was submitted meanwhile
            ahead.append(started[0] - k)
        assert max(ahead) <= 2 * n, (n, ahead)


def test_map_blocks_holds_blas_to_one_thread_unless_told_not_to():
    """second_order.py calls map_blocks without ``hold``: the default must hold."""
    blas = parallel._find_blas()
    if not blas:
        pytest.skip("numpy's OpenBLAS not found")
    get, set_ = blas
    before = get()
    try:
        set_(2)
        assert set(parallel.map_blocks(lambda i: get(), range(6), threads=2)) == {1}
        assert get() == 2
        assert set(parallel.map_blocks(lambda i: get(), range(6), threads=2, hold=False)) == {2}
    finally:
        set_(before)


def _mlp(seed=0):
    rng = np.random.default_rng(seed)
    b = GraphBuilder([("x", (6,))])
    h = b.add("h", Dense(kernel=rng.normal(size=(6, 40)), bias=rng.normal(size=40), activation=Activation("tanh")),
              [b.inputs[0]], "Dense")
    y = b.add("y", Dense(kernel=rng.normal(size=(40, 3)), bias=rng.normal(size=3), activation=Activation()), [h],
              "Dense")
    return b.finish([y])


def test_iter_jacobian_consumed_lazily_around_another_jacobian_on_other_threads():
    model = _mlp()
    X = np.random.default_rng(1).normal(size=(5000, 6))
    ref_Y, ref_J = engine.jacobian(model, X, deterministic=True, threads=1)
    chunks = engine.iter_jacobian(model, X, deterministic=True, threads=2)
    got = [tuple(np.array(a) for a in next(chunks))]  # the chunks are views of the engine's buffers: copied
    Y3, J3 = engine.jacobian(model, X, deterministic=True, threads=3)
    got += [tuple(np.array(a) for a in chunk) for chunk in chunks]
    assert len(got) >= 3 and np.array_equal(Y3, ref_Y) and np.array_equal(J3, ref_J)
    assert np.array_equal(np.concatenate([y for _, y, _ in got]), ref_Y)
    assert np.array_equal(np.concatenate([j for _, _, j in got]), ref_J)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")
def test_a_forked_child_gets_a_new_lock_and_no_pool():
    """The at-fork handler gives the child a lock of its own (the parent's may be held by a thread the child
    does not have) and no pool (its threads are gone)."""
    assert list(parallel.map_blocks(lambda i: i, range(4), threads=2)) == [0, 1, 2, 3]
    parent_lock = parallel._lock
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        ok = parallel._pool is None and parallel._lock is not parent_lock
        ok = ok and not parallel._lock.locked()
        os.write(w, b"1" if ok else b"0")
        os._exit(0)
    os.close(w)
    answer = os.read(r, 1)
    os.close(r)
    os.waitpid(pid, 0)
    assert answer == b"1"


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
