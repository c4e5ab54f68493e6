"""The speed work's contracts: the same bits for any number of threads, any run and any N
(deterministic mode), BLAS held to one thread only while jacprop computes, no padding of a small
API call, errors from worker threads reaching the caller, and CSV text that is byte for byte
repr's whether pyarrow formats it or not."""

import os
import subprocess
import sys

import numpy as np
import pytest

from jacprop import engine, graph, ops, parallel
from jacprop.graph import GraphBuilder
from jacprop.io import numtext, writers
from jacprop.ops.activations import Activation


def central_jacobian(model, X, h=1e-6):
    """dy/dx by central differences, column by column: an independent reference."""
    cols = [(graph.forward(model, X + h * e) - graph.forward(model, X - h * e)) / (2 * h) for e in np.eye(X.shape[1])]
    return np.stack(cols, axis=-1)


def mlp(sizes, seed=0, act="tanh"):
    rng = np.random.default_rng(seed)
    b = GraphBuilder([("x", (sizes[0],))])
    node = b.inputs[0]
    for i, (a, c) in enumerate(zip(sizes, sizes[1:])):
        layer = ops.Dense(kernel=rng.normal(size=(a, c)) / np.sqrt(a), bias=rng.normal(size=c) * 0.1,
                          activation=Activation(act if i < len(sizes) - 2 else "linear"))
        node = b.add(f"d{i}", layer, [node], "Dense")
    return b.finish([node])


SHAPES = {"reverse": (8, 64, 64, 2), "forward": (4, 128, 128, 64), "wide-in": (300, 32, 10)}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_same_bits_for_any_threads_runs_and_n(shape):
    model = mlp(SHAPES[shape])
    step = graph.block_rows(model, min(model.K, model.D), 8)
    X = np.random.default_rng(1).normal(size=(2 * step + 37, model.D))  # three blocks, the last one partial
    ref_Y, ref_J = engine.jacobian(model, X, deterministic=True, threads=1)
    for threads in (2, 3, 1):
        Y, J = engine.jacobian(model, X, deterministic=True, threads=threads)
        assert Y.tobytes() == ref_Y.tobytes() and J.tobytes() == ref_J.tobytes(), threads
    for n in (1, 5, step, step + 1):  # a row's bits do not depend on N
        Y, J = engine.jacobian(model, X[-n:], deterministic=True, threads=2)
        assert J.tobytes() == ref_J[-n:].tobytes() and Y.tobytes() == ref_Y[-n:].tobytes(), n
    assert graph.forward(model, X, deterministic=True, threads=2).tobytes() == \
        graph.forward(model, X, deterministic=True, threads=1).tobytes()
    np.testing.assert_allclose(graph.forward(model, X), ref_Y, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("sizes", [(8, 64, 64, 2), (4, 32, 32, 16)], ids=["small", "wide-out"])
@pytest.mark.parametrize("form", ["full", "diagonal", "direction"])
def test_hessian_same_bits_for_any_threads_and_n(sizes, form):
    """H, its diagonal and H u: a row's bits depend neither on the thread count nor on N (deterministic mode).
    wide-out (K = 16 > 2 D) takes the pairs form of the activations' hess_term, small the shared-tangent one."""
    from jacprop import second_order

    model = mlp(sizes)
    kw = {"diagonal": form == "diagonal", "direction": np.linspace(-1, 1, model.D) if form == "direction" else None}
    narrow = form != "full"
    step = second_order.hessian_rows(model, model.K * (2 if form == "direction" else 1),
                                     1 if form == "direction" else model.D, 8, diagonal=narrow)
    X = np.random.default_rng(1).normal(size=(2 * step + 37, model.D))
    ref = second_order.hessian(model, X, deterministic=True, threads=1, **kw)
    for threads in (2, 3):
        got = second_order.hessian(model, X, deterministic=True, threads=threads, **kw)
        assert all(a.tobytes() == b.tobytes() for a, b in zip(got, ref)), threads
    for n in (1, 5, step + 1):
        got = second_order.hessian(model, X[-n:], deterministic=True, threads=2, **kw)
        assert all(a.tobytes() == b[-n:].tobytes() for a, b in zip(got, ref)), n
    fast = second_order.hessian(model, X, threads=2, **kw)[2]  # unpadded blocks: the same numbers, not the bits
    np.testing.assert_allclose(fast, ref[2], rtol=1e-13, atol=1e-14)


def test_threads_give_the_same_numbers_without_padding_too():
    model = mlp(SHAPES["reverse"])
    X = np.random.default_rng(2).normal(size=(3000, 8))
    a = engine.jacobian(model, X, threads=1)[1]
    b = engine.jacobian(model, X, threads=2)[1]
    assert a.tobytes() == b.tobytes()


def test_small_api_call_is_not_padded(monkeypatch):
    heights = []
    real = engine.run_forward
    monkeypatch.setattr(engine, "run_forward", lambda m, X: heights.append(len(X)) or real(m, X))
    model = mlp(SHAPES["reverse"])
    engine.jacobian(model, np.zeros((1, 8)))
    engine.jacobian(model, np.zeros((100, 8)))
    engine.jacobian(model, np.zeros((600, 8)))
    assert heights == [1, 100, 300, 300]  # 100 rows of this small MLP: a half (50 x its work) is not worth a thread
    heights.clear()
    medium = mlp((32, 256, 256, 8))
    engine.jacobian(medium, np.zeros((100, 32)))
    engine.jacobian(medium, np.zeros((63, 32)))
    assert heights == [50, 50, 63]  # halves of 32 rows or more, one per core, when their work is worth it
    engine.jacobian(model, np.zeros((1, 8)), deterministic=True)
    assert heights[-1] == graph.block_rows(model, 2, 8)
    heights.clear()
    monkeypatch.setattr(engine, "SPLIT_MIN_WORK", 600 // 2 * engine.plan(model).work + 1)  # a half not worth it
    engine.jacobian(model, np.zeros((600, 8)))
    assert heights == [600]


def test_one_block_below_blas_threading_is_not_held_and_gives_the_pooled_bits(monkeypatch):
    """A call whose products are all too small for OpenBLAS to thread leaves BLAS's setting alone (no hold, no
    pool) and gives the bits of the same block computed held to one thread on the pool; a larger one is held."""
    blas = parallel._find_blas()
    if not blas:
        pytest.skip("numpy's OpenBLAS not found")
    get, set_ = blas
    model = mlp((8, 64, 64, 2))
    # rows x 2 seeds x the largest kernel (64 x 64) against 2**18: serial up to 31 rows
    assert graph.serial_blas(model, 31, 2) and not graph.serial_blas(model, 32, 2)
    assert graph.serial_blas(model, 63, 1) and not graph.serial_blas(model, 64, 0)  # the value pass: one "seed"
    seen = []
    real = engine.run_forward
    monkeypatch.setattr(engine, "run_forward", lambda m, X: seen.append(get()) or real(m, X))
    X = np.random.default_rng(3).normal(size=(31, 8))
    before = get()
    try:
        set_(2)
        fast = engine.jacobian(model, X)  # one block of 31 rows: BLAS left at 2 threads
        engine.jacobian(model, np.concatenate([X, X])[:40])  # 40 rows x 2 x 4096 > 2**18: held
        assert seen == [2, 1]
        monkeypatch.setattr(graph, "BLAS_SERIAL_MNK", 0)  # nothing serial: the same blocks held, on the pool
        pooled = list(engine.iter_jacobian(model, np.concatenate([X, X]), rows=31, threads=2))  # two blocks
    finally:
        set_(before)
    assert seen[2:] == [1, 1]
    for start, Y, J in pooled:
        assert Y.tobytes() == fast[0].tobytes() and J.tobytes() == fast[1].tobytes(), start
    np.testing.assert_allclose(fast[1], central_jacobian(model, X), rtol=1e-6, atol=1e-8)


def test_block_height_rule():
    small, wide_out = mlp((8, 64, 64, 2)), mlp((4, 128, 128, 64))
    assert graph.block_rows(small, 2, 8) == 1024 and graph.block_rows(small, 2, 4) == 2048
    assert graph.block_rows(wide_out, 4, 8) == 256
    assert graph.block_rows(small, 2, 8, memory=2**20) < 1024  # the memory budget still bounds it
    huge = mlp((4, 2000, 2000, 2000, 3))
    assert graph.MIN_BLOCK_ROWS <= graph.block_rows(huge, 3, 8) <= graph.MAX_BLOCK_ROWS


def test_blas_held_to_one_thread_only_inside():
    blas = parallel._find_blas()
    if not blas:
        pytest.skip("numpy's OpenBLAS not found")
    get, set_ = blas
    before = get()
    try:
        set_(2)
        with parallel.one_blas_thread():
            assert get() == 1
            with parallel.one_blas_thread():
                assert get() == 1
            assert get() == 1
        assert get() == 2
    finally:
        set_(before)


def test_the_first_hold_in_a_fresh_process_finds_blas_and_holds_it():
    """In a new process nothing has looked the BLAS library up yet: the first hold must (the test above runs
    after other tests have found it), or BLAS would keep its two threads and their rounding."""
    if not parallel._find_blas():
        pytest.skip("numpy's OpenBLAS not found")
    code = ("import numpy, jacprop.parallel as p\n"
            "with p.one_blas_thread():\n    inside = p._find_blas()[0]()\n"
            "print(inside, p._find_blas()[0]())")
    r = subprocess.run([sys.executable, "-c", code], env={**os.environ, "OPENBLAS_NUM_THREADS": "2"},
                       capture_output=True, text=True, timeout=60)
    assert r.stdout.split() == ["1", "2"], r.stderr


def test_an_error_in_a_worker_reaches_the_caller():
    def fn(i):
        if i == 5:
            raise ValueError("block 5")
        return i

    seen = []
    with pytest.raises(ValueError, match="block 5"):
        for v in parallel.map_blocks(fn, range(20), threads=2):
            seen.append(v)
    assert seen == list(range(5))
    assert list(parallel.map_blocks(fn, range(3), threads=2)) == [0, 1, 2]
    assert list(parallel.map_blocks(fn, [], threads=2)) == []


def test_workers_env(monkeypatch):
    monkeypatch.setenv("JACPROP_THREADS", "3")
    assert parallel.workers() == 3
    monkeypatch.setenv("JACPROP_THREADS", "0")
    assert parallel.workers() >= 1


def hard_numbers():
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**64, size=20000, dtype=np.uint64).view(np.float64)
    mags = rng.normal(size=20000) * 10.0 ** rng.integers(-320, 300, size=20000)
    ints = np.round(rng.normal(size=5000) * 10.0 ** rng.integers(0, 20, size=5000))
    special = [0.0, -0.0, np.nan, np.inf, -np.inf, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 1e-4,
               1e-5, 1e-7, 1e-10, 9.999999999999999e-05, 1e10, 1e15, 1e16, 9999999999.999998, 2.0**53, 1e22, 0.1]
    edges = (10.0 ** np.arange(-12, 18)[:, None] * np.array([1, 1 - 2**-52, 1 + 2**-52, 0.5, 0.999])).ravel()
    f32 = np.float32(rng.normal(size=5000)).astype(np.float64)
    v = np.concatenate([bits, mags, ints, special, edges, -edges, f32])
    return v[: len(v) // 5 * 5].reshape(-1, 5)


def test_csv_numbers_are_reprs_whether_pyarrow_formats_them_or_not():
    pytest.importorskip("pyarrow")
    flat = hard_numbers()
    plain = ("\n".join(",".join(map(repr, r)) for r in flat.tolist()) + "\n").encode()
    assert writers.csv_lines(flat) == plain
    ids = [f"id{i}" for i in range(len(flat))]
    assert writers.csv_lines(flat, ids) == b"".join(f"{i},".encode() + line + b"\n"
                                                     for i, line in zip(ids, plain.split(b"\n")[:-1]))
    back = np.array([[float(t) for t in line.split(",")] for line in plain.decode().splitlines()])
    assert back.tobytes() == flat.tobytes() or np.array_equal(back, flat, equal_nan=True)
    assert writers.csv_lines(flat[:0]) == b""
    odd_ids = [f'"é,{i}"' for i in range(len(flat))]  # as _csv_cell quotes them
    assert writers.csv_lines(flat, odd_ids) == b"".join(f"{i},".encode() + line + b"\n"
                                                         for i, line in zip(odd_ids, plain.split(b"\n")[:-1]))
    assert writers.csv_lines(np.array([[1.0, -0.0]])) == b"1.0,-0.0\n"  # small: the plain path
    assert writers.csv_lines(np.arange(600).reshape(300, 2)) == b"".join(b"%d,%d\n" % (2 * i, 2 * i + 1)
                                                                         for i in range(300))  # integers: repr's


def test_jsonl_lines_are_json_dumps_whether_pyarrow_formats_them_or_not(monkeypatch):
    pytest.importorskip("pyarrow")
    flat = hard_numbers().ravel()[44000:47000].reshape(300, 10)  # integers, the special values, edges, float32s
    fields = [writers.Field("x", (5,)), writers.Field("y", (2,)), writers.Field("jacobian", (2, 5)),
              writers.Field("s", ())]
    arrays = {"x": flat[:, :5], "y": flat[:, 5:7], "jacobian": flat.reshape(300, 2, 5), "s": flat[:, 9]}
    rows = np.arange(1, 301)
    ids = np.array([f'i"d{i}' for i in range(300)])
    fast = [writers.jsonl_lines(rows, i, arrays, fields) for i in (None, ids)]
    monkeypatch.setattr(numtext, "_arrow", lambda: None)  # the plain path
    plain = [writers.jsonl_lines(rows, i, arrays, fields) for i in (None, ids)]
    assert fast == plain
    assert b"NaN" in plain[0] and b"Infinity" in plain[0]


def test_cli_output_is_the_same_for_any_thread_count(tmp_path):
    sample = os.path.join(os.path.dirname(__file__), "..", "sample_models")
    model, data = os.path.join(sample, "bishop_tanh.npz"), os.path.join(sample, "bishop_tanh.csv")
    outs = []
    for threads in ("1", "2"):
        env = {**os.environ, "JACPROP_THREADS": threads}
        r = subprocess.run([sys.executable, "-m", "jacprop", "jacobian", model, data, "--format", "csv"],
                           capture_output=True, env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        outs.append(r.stdout)
    assert outs[0] == outs[1] and outs[0].count(b"\n") > 1


def test_dense_vjp_folds_the_seed_only_where_it_pays():
    """Dense.vjp of a row-independent cotangent: h' @ M (M = the seed folded into the kernel, K times its size)
    from FOLD_MIN_ROWS rows or when M is small; else (g h') @ kernel^T, which reads less for a few rows.
    Each path's bits against the formula written here."""
    from jacprop.ops import dense

    rng = np.random.default_rng(5)
    big = ops.Dense(kernel=rng.normal(size=(128, 128)), activation=Activation("tanh")).bind((128,))
    g = rng.normal(size=(1, 8, 128))  # M: 128 x 1024 > FOLD_ALWAYS
    assert g.size * 128 > dense.FOLD_ALWAYS
    for rows, fold in ((1, False), (dense.FOLD_MIN_ROWS - 1, False), (dense.FOLD_MIN_ROWS, True)):
        x = rng.normal(size=(rows, 128))
        _, saved = big.forward(x)
        d = 1 - np.tanh(x @ big.kernel) ** 2
        if fold:
            expected = (d @ np.einsum("kj,ij->jki", g[0], big.kernel).reshape(128, -1)).reshape(rows, 8, 128)
        else:
            expected = ((g * d[:, None]).reshape(-1, 128) @ big.kernel.T).reshape(rows, 8, 128)
        (got,) = big.vjp(saved, g)
        np.testing.assert_allclose(got, np.einsum("kj,nj,ij->nki", g[0], d, big.kernel), rtol=1e-12, atol=1e-12)
        assert got.tobytes() == expected.tobytes(), (rows, fold)
    small = ops.Dense(kernel=rng.normal(size=(8, 64)), activation=Activation("tanh")).bind((8,))
    g, x = rng.normal(size=(1, 2, 64)), rng.normal(size=(1, 8))  # M: 64 x 16 <= FOLD_ALWAYS: folded at one row
    d = 1 - np.tanh(x @ small.kernel) ** 2
    (got,) = small.vjp(small.forward(x)[1], g)
    assert got.tobytes() == (d @ np.einsum("kj,ij->jki", g[0], small.kernel).reshape(64, -1)).reshape(1, 2, 8).tobytes()
