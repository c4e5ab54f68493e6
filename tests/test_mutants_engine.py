"""The engine's contracts that mutation testing (issue #20, tests/README.md) showed unchecked: index
selection at and beyond its bounds, the requested mode and dtype honoured to the bit, J written
straight into the caller's array, the memory budget, and glibc's malloc settings."""

import re
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from models import branchy, mlp

from jacprop import engine, ops
from jacprop.errors import UsageError
from jacprop.graph import GraphBuilder
from jacprop.ops.activations import Activation

RNG = np.random.default_rng(11)
ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------
# outputs= / wrt= indices


def test_index_bounds_accept_minus_n_to_n_minus_1_and_refuse_the_rest():
    model = branchy()  # K = 15, D = 15
    X = RNG.normal(size=(2, model.D))
    _, J = engine.jacobian(model, X)
    K, D = model.K, model.D
    _, Jneg = engine.jacobian(model, X, outputs=[-K, K - 1], wrt=[-D, 0])
    np.testing.assert_allclose(Jneg, J[:, [0, K - 1]][:, :, [0, 0]], rtol=1e-12, atol=1e-14)
    _, J1 = engine.jacobian(model, X, outputs=[3], wrt=[2])  # a single index is a selection, not "none"
    np.testing.assert_allclose(J1, J[:, [3]][:, :, [2]], rtol=1e-12, atol=1e-14)
    _, Js = engine.jacobian(model, X, outputs=3, wrt=np.int8(2))  # scalars, any integer type
    np.testing.assert_allclose(Js, J1, rtol=0, atol=0)
    _, Jf = engine.jacobian(model, X, outputs=[3.0, 1.0])  # whole floats taken as indices
    np.testing.assert_allclose(Jf, J[:, [3, 1]], rtol=1e-12, atol=1e-14)
    for bad in ([K], [-K - 1], [0, K], []):
        with pytest.raises(UsageError, match=rf"^output indices must lie in \[0, {K}\), got {re.escape(str(bad))}$"):
            engine.jacobian(model, X, outputs=bad)
        with pytest.raises(UsageError, match=rf"^wrt indices must lie in \[0, {D}\), got {re.escape(str(bad))}$"):
            engine.jacobian(model, X, wrt=bad)


def test_iter_jacobian_names_the_bad_selection():
    model = mlp([3, 4, 2], ["tanh", "linear"])
    X = RNG.normal(size=(2, 3))
    with pytest.raises(UsageError, match=r"^output indices must lie in \[0, 2\), got \[2\]$"):
        next(engine.iter_jacobian(model, X, outputs=[2]))
    with pytest.raises(UsageError, match=r"^wrt indices must lie in \[0, 3\), got \[-4\]$"):
        next(engine.iter_jacobian(model, X, wrt=[-4]))


def test_unknown_mode_is_refused_with_the_choices():
    model = mlp([3, 4, 2], ["tanh", "linear"])
    with pytest.raises(UsageError, match=r"^--mode must be one of auto, reverse, forward, got 'sideways'$"):
        engine.jacobian(model, np.zeros((1, 3)), mode="sideways")


# ---------------------------------------------------------------------------
# the mode asked for is the mode used (the two round differently in the last bits)


def test_each_mode_gives_that_recursion_s_bits():
    from jacprop.graph import run_forward

    model = mlp([6, 9, 7, 5], ["tanh", "gelu", "sigmoid"], seed=4)
    X = RNG.normal(size=(40, 6))
    m = model.astype(np.float64)
    _, saved = run_forward(m, X)
    rev = engine.reverse(m, saved, np.arange(5))
    fwd = engine.forward_mode(m, saved, np.arange(6)).transpose(0, 2, 1)
    assert rev.tobytes() != fwd.tobytes()  # so that the test below can tell the modes apart
    np.testing.assert_allclose(rev, fwd, rtol=1e-12, atol=1e-15)
    for mode, expected in (("reverse", rev), ("forward", fwd)):
        for it in (True, False):
            if it:
                J = np.concatenate([Jc for _, _, Jc in engine.iter_jacobian(model, X, mode=mode, rows=64)])
            else:
                J = engine.jacobian(model, X, mode=mode)[1]
            assert J.tobytes() == np.ascontiguousarray(expected).tobytes(), (mode, it)
    # auto: 5 outputs < 6 inputs -> reverse; with one input selected -> forward
    assert engine.jacobian(model, X)[1].tobytes() == rev.tobytes()
    J_auto = engine.jacobian(model, X, wrt=[2])[1]
    assert J_auto.tobytes() == np.ascontiguousarray(fwd[:, :, [2]]).tobytes()


# ---------------------------------------------------------------------------
# float32 runs are float32 throughout


def first_op_on_x():
    """A graph whose node 1 (the first op, reading x itself) holds the only float parameters."""
    b = GraphBuilder([], d=3)
    rng = np.random.default_rng(5)
    h = b.add("d", ops.Dense(kernel=rng.normal(size=(3, 4)), bias=rng.normal(size=4), activation=Activation("tanh")),
              [0], "Dense")
    return b.finish([h])


@pytest.mark.parametrize("make", [first_op_on_x, lambda: mlp([4, 6, 3], ["tanh", "sigmoid"])])
@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_float32_chunks_are_computed_in_float32(make, mode):
    model = make()
    X = RNG.normal(size=(7, model.D))  # float64 inputs: cast to float32 first
    chunks = list(engine.iter_jacobian(model, X, mode=mode, dtype=np.float32))
    for _, Yc, Jc in chunks:
        assert Yc.dtype == np.float32 and Jc.dtype == np.float32
    Y32, J32 = engine.jacobian(model, X, mode=mode, dtype=np.float32)
    _, J64 = engine.jacobian(model, X, mode=mode)
    np.testing.assert_allclose(J32, J64, rtol=2e-5, atol=1e-6)
    # float32 arithmetic, not float64 rounded at the end
    assert not np.array_equal(J32, J64.astype(np.float32))
    assert np.concatenate([Jc for _, _, Jc in chunks]).tobytes() == J32.tobytes()
    assert model.astype(np.float32).nodes[-1].op.kernel.dtype == np.float32


def test_n_params_counts_every_parameter_once():
    model = mlp([4, 6, 3], ["tanh", "linear"])
    assert model.n_params() == 4 * 6 + 6 + 6 * 3 + 3
    assert model.nodes[2].op.n_params() == 4 * 6 + 6


# ---------------------------------------------------------------------------
# J written straight into the caller's array; memory within the budget


def test_reverse_chunks_are_views_of_out_where_the_model_allows():
    model = mlp((5, 7, 3), ("tanh", "linear"))
    X = RNG.normal(size=(1100, 5))
    out = np.empty((1100, 3, 5))
    chunks = list(engine.iter_jacobian(model, X, mode="reverse", out=out, rows=512))
    assert [s for s, _, _ in chunks] == [0, 512, 1024]
    for start, _, Jc in chunks:
        assert np.shares_memory(Jc, out) and Jc.ctypes.data == out[start:].ctypes.data
    _, J = engine.jacobian(model, X)
    np.testing.assert_array_equal(out, J)
    # forward mode, or a subset of the inputs, cannot write into out: the chunks are the engine's own
    for kw in ({"mode": "forward"}, {"wrt": [4, 1]}):
        buf = np.empty((1100, 3, 5 if "mode" in kw else 2))
        assert not any(np.shares_memory(Jc, buf) for _, _, Jc in engine.iter_jacobian(model, X, out=buf, **kw))
    padded = list(engine.iter_jacobian(model, X, out=np.empty((1100, 3, 5)), deterministic=True, rows=512))
    assert [len(Jc) for _, _, Jc in padded] == [512, 512, 76]


def peak_bytes(f):
    tracemalloc.start()
    try:
        f()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_budget_bounds_the_block_state():
    """jacobian(memory=M): beyond X, Y and J themselves, about M bytes (numpy reports its buffers to
    tracemalloc); the default budget (256 MiB) takes all 120 rows in one block here, over 12 MB."""
    model = mlp([40, 300, 300, 20], ["tanh", "tanh", "linear"], seed=1)
    X = RNG.normal(size=(120, 40))
    own = 120 * 20 * 8 * (1 + 40)  # Y and J
    budget = 2 * 2**20
    for dtype in (np.float64, np.float32):  # once before: lazy imports and the cast model are not blocks
        engine.jacobian(model, X[:20], dtype=dtype, memory=budget)
    for mode in ("reverse", "forward"):
        peak = peak_bytes(lambda mode=mode: engine.jacobian(model, X, mode=mode, memory=budget))
        assert peak - own < 4 * budget, (mode, peak - own)
    peak32 = peak_bytes(lambda: engine.jacobian(model, X, dtype=np.float32, memory=budget))
    assert peak32 - own / 2 < 4 * budget
    assert engine.jacobian(model, X[:3], memory=budget)[1].shape == (3, 20, 40)


# ---------------------------------------------------------------------------
# glibc malloc: large temporaries stay in the heap instead of being mmapped afresh


MALLINFO = textwrap.dedent("""
    import ctypes, sys
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    from jacprop.engine import keep_freed_memory

    class Info(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in
                    "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = Info
    if sys.argv[2] == "1":
        assert keep_freed_memory() is True
    mmapped = []
    for mb in (4, 31, 32.5, 80):
        before = libc.mallinfo2().hblks
        a = np.ones(int(mb * 2**20) // 8)
        mmapped.append(libc.mallinfo2().hblks - before)
        del a
    print(mmapped)
""")


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's malloc")
def test_keep_freed_memory_keeps_blocks_up_to_32_mib_in_the_heap():
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallinfo2  # noqa: B018  (glibc >= 2.33)
    except AttributeError:
        pytest.skip("no mallinfo2")

    def run(flag):
        r = subprocess.run([sys.executable, "-c", MALLINFO, str(ROOT), flag], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    from jacprop.engine import keep_freed_memory

    assert keep_freed_memory() is True  # here too, so that mutmut knows this test reaches the function
    assert run("0").endswith(", 1, 1, 1]")  # glibc's default (dynamic, from 128 KiB) mmaps 31 MiB
    assert run("1") == "[0, 0, 1, 1]"  # M_MMAP_THRESHOLD = 32 MiB


# ---------------------------------------------------------------------------
# chain: names, sources and the refusal


def test_chain_keeps_the_first_inputs_the_last_outputs_and_every_source():
    from dataclasses import replace

    from jacprop.errors import ModelError
    from jacprop.graph import chain

    a = replace(mlp([4, 6, 3], ["tanh", "linear"]), input_names=list("pqrs"), source={"path": "a.npz"})
    b = replace(mlp([3, 5, 2], ["tanh", "linear"], seed=1), output_names=["u", "v"], source={"path": "b.npz"})
    c = replace(mlp([2, 2, 2], ["sigmoid", "linear"], seed=2), output_names=["y0", "y1"], source={"path": "c.npz"})
    ab = chain([a, b])
    assert ab.input_names == list("pqrs") and ab.output_names == ["u", "v"]
    assert ab.source == {"chain": [{"path": "a.npz"}, {"path": "b.npz"}]}
    abc = chain([a, b, c])
    assert abc.output_names == ["y0", "y1"] and abc.source == {"chain": [a.source, b.source, c.source]}
    assert chain([a]).source == {"path": "a.npz"} and chain([a]).output_names == a.output_names
    X = RNG.normal(size=(3, 4))
    np.testing.assert_allclose(abc.forward(X), c.forward(b.forward(a.forward(X))), rtol=1e-14)
    with pytest.raises(ModelError, match=r"^cannot chain: b\.npz has 2 outputs but a\.npz takes 4 inputs$"):
        chain([a, b, a])
    with pytest.raises(ModelError, match=r"^cannot chain: model has 3 outputs but the next model takes 2 inputs$"):
        chain([replace(a, source={}), replace(c, source={})])
