"""The graph's contracts that the second mutation round (issue #20, tests/mutation-mut-num.md) showed
unchecked: block heights from the cost rule, padding of the last block, the input and output names,
pruning, logits, casting, and the builder's refusals, each against numbers worked out in the test."""

import numpy as np
import pytest
from models import mlp

from jacprop import graph, ops
from jacprop.errors import ModelError, UsageError
from jacprop.graph import GraphBuilder
from jacprop.ops.activations import Activation

R = np.random.default_rng(41)


def dense(n_in, n_out, act="tanh", bias=True):
    return ops.Dense(kernel=R.normal(size=(n_in, n_out)), bias=R.normal(size=n_out) if bias else None,
                     activation=Activation(act))


def test_block_rows_follow_the_cost_rule():
    """rows = the power of two at or below 2^20 / (itemsize seeds widest), within [256, 2048], then at most
    memory / 2 / (itemsize (3 sum(sizes) + 4 seeds max(sizes)))."""
    model = mlp([5, 40, 3], ["tanh", "linear"])  # node sizes: 5 (x), 5 (slice, a view), 40, 3
    sizes = [5, 5, 40, 3]
    assert [int(np.prod(n.shape)) for n in model.nodes] == sizes
    for seeds, itemsize in ((1, 8), (3, 8), (64, 4), (200, 8), (0, 8)):
        ideal = 2**20 // (itemsize * max(1, seeds) * 40)
        rows = min(2048, max(256, 2 ** (ideal.bit_length() - 1) if ideal else 1))
        cap = 256 * 2**20 // 2 // (itemsize * (3 * sum(sizes) + 4 * seeds * 40))
        assert graph.block_rows(model, seeds, itemsize) == max(1, min(rows, cap)), (seeds, itemsize)
    assert graph.block_rows(model, 1, 8) == 2048  # ideal 3276 -> 2048
    assert graph.block_rows(model, 20, 8) == 256  # ideal 163 -> 128 -> at least 256
    assert graph.block_rows(model, 5, 8) == 512  # ideal 655 -> 512
    per_row = 8 * (3 * 53 + 4 * 5 * 40)
    assert graph.block_rows(model, 5, 8, memory=2 * per_row * 100) == 100  # the memory bound
    assert graph.block_rows(model, 5, 8, memory=2 * per_row * 100 - 1) == 99
    assert graph.block_rows(model, 5, 8, memory=10) == 1


def test_blocks_pad_the_last_one_with_its_last_row():
    X = np.arange(14.0).reshape(7, 2)
    got = list(graph.blocks(X, 3))
    assert [(s, n) for s, n, _ in got] == [(0, 3), (3, 3), (6, 1)]
    np.testing.assert_array_equal(got[2][2], [[12.0, 13.0]] * 3)
    np.testing.assert_array_equal(got[1][2], X[3:6])
    plain = list(graph.blocks(X, 3, pad=False))
    np.testing.assert_array_equal(plain[2][2], X[6:])
    assert [len(b) for _, _, b in graph.blocks(X, 7)] == [7]
    two = list(graph.blocks(X[:5], 3))[1]  # two rows left, padded with the last one
    np.testing.assert_array_equal(two[2], X[[3, 4, 4]])


def test_forward_pads_only_when_deterministic_and_gives_every_row():
    model = mlp([3, 4, 2], ["tanh", "linear"])
    X = R.normal(size=(5, 3))
    W1, b1 = model.nodes[2].op.kernel, model.nodes[2].op.bias
    W2, b2 = model.nodes[3].op.kernel, model.nodes[3].op.bias
    want = np.tanh(X @ W1 + b1) @ W2 + b2
    for det in (False, True):
        for threads in (1, 2):
            y = graph.forward(model, X, memory=2 * 8 * (3 * 15 + 0) * 2, deterministic=det, threads=threads)
            np.testing.assert_allclose(y, want, rtol=1e-13)
    np.testing.assert_allclose(model.forward(X[0]), want[:1], rtol=1e-13)  # one row as a vector
    y32 = model.forward(X, dtype=np.float32)
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, want, rtol=1e-5)
    for bad in (np.zeros((2, 4)), np.zeros((2, 3, 1)), np.zeros(4)):
        with pytest.raises(UsageError, match=r"inputs must have shape \(N, 3\), got"):
            model.forward(bad)


def test_shapes_must_be_positive_integers_within_the_limit():
    for shape in ((0,), (2, -1), (True,), (2.0,)):
        with pytest.raises(ModelError, match="^input 'x' has shape .*; every dimension must be a positive integer"):
            GraphBuilder([("x", shape)])
    with pytest.raises(ModelError, match=r"^the model input has shape \(0,\); every dimension"):
        GraphBuilder([], d=0)
    with pytest.raises(ModelError, match="values per row"):
        GraphBuilder([("x", (2**13, 2**13 + 1))])
    graph._check_shape((2**13, 2**13), "x")  # exactly the limit: accepted
    with pytest.raises(ValueError, match="67,108,865 values per row"):
        graph._check_shape((2**26 + 1,), "x")
    GraphBuilder([("x", (np.int64(3),))])
    b = GraphBuilder([("x", (4,))])
    with pytest.raises(ModelError, match=r"layer 'r' \(Reshape\): output has shape \(0,\)"):
        b.add("r", ops.Slice(0, 0, (0,)), b.inputs, "Reshape")


def test_builder_names_inputs_and_outputs():
    b = GraphBuilder([("a", (2,)), ("b", (1,)), ("c", (2, 2))])
    assert b.input_names == ["a_0", "a_1", "b", "c_0", "c_1", "c_2", "c_3"]
    assert b.names_from == "the model's inputs"
    assert [b.nodes[i].op.start for i in b.inputs] == [0, 2, 3]
    assert [n.kind for n in b.nodes] == ["Input", "InputLayer", "InputLayer", "InputLayer"]
    one = GraphBuilder([("x", (3,))])
    assert one.input_names == ["x0", "x1", "x2"] and one.names_from == graph.NUMBERED
    flat = GraphBuilder([], d=4)
    assert flat.input_names == ["x0", "x1", "x2", "x3"] and len(flat.nodes) == 1 and flat.nodes[0].shape == (4,)
    s = b.add("s", dense(2, 1), [b.inputs[0]], "Dense")
    t = b.add("t", dense(4, 3, "linear"), [b.add("f", ops.Reshape(shape=(-1,)), [b.inputs[2]], "Flatten")], "Dense")
    model = b.finish([s, t], source={"path": "m.h5"})
    assert model.output_names == ["s", "t[0]", "t[1]", "t[2]"]
    assert model.source == {"input_names_from": "the model's inputs", "path": "m.h5"}
    assert isinstance(model.nodes[-1].op, ops.FlatConcat) and model.K == 4 and model.D == 7
    assert model.nodes[-1].kind == "Output" and model.input_names == ["a_0", "a_1", "b", "c_0", "c_1", "c_2", "c_3"]
    assert GraphBuilder([("a", (1,)), ("b", (2,))]).input_names == ["a", "b_0", "b_1"]  # two inputs: by name
    assert graph.input_names_from(model) == "the model's inputs"
    # pruned: input b is used by nothing and is dropped; the kept nodes are renumbered in order
    assert [n.name for n in model.nodes] == ["x", "a", "c", "s", "f", "t", "output"]
    assert [n.inputs for n in model.nodes] == [(), (0,), (0,), (1,), (2,), (4,), (3, 5)]
    X = R.normal(size=(2, 7))
    y = model.forward(X)
    np.testing.assert_allclose(y[:, :1], np.tanh(X[:, :2] @ model.nodes[3].op.kernel + model.nodes[3].op.bias))
    unused_first = GraphBuilder([("a", (2,)), ("b", (1,))])
    m1 = unused_first.finish([unused_first.add("e", dense(1, 2), [unused_first.inputs[1]], "Dense")])
    assert [n.name for n in m1.nodes] == ["x", "b", "e"] and m1.D == 3  # input a dropped, x keeps all columns
    one_out = GraphBuilder([("x", (3,))])
    m2 = one_out.finish([one_out.add("y", ops.Reshape(shape=(1, 3)), one_out.inputs, "Reshape")])
    assert isinstance(m2.nodes[-1].op, ops.FlatConcat) and m2.output_names == ["y[0]", "y[1]", "y[2]"]
    m3 = one_out.finish([one_out.add("z", dense(3, 1), one_out.inputs, "Dense")])
    assert m3.output_names == ["z"] and isinstance(m3.nodes[-1].op, ops.Dense)


def test_builder_refuses_wrong_input_counts_by_layer_name():
    b = GraphBuilder([("x", (3,))])
    with pytest.raises(ModelError, match=r"layer 'd' \(Dense\): expects 1 input\(s\), got 2"):
        b.add("d", dense(3, 2), [1, 1], "Dense")
    with pytest.raises(ModelError, match=r"layer 'm' \(Add\): has no inputs"):
        b.add("m", ops.Merge(how="add"), [], "Add")
    with pytest.raises(ModelError, match=r"layer 'd' \(Dense\): kernel expects 4 input features"):
        b.add("d", dense(4, 2), [1], "Dense")
    assert b.add("m", ops.Merge(how="add"), [1, 1, 1], "Add") == 2


def test_logits_remove_the_output_activations():
    b = GraphBuilder([("x", (3,))])
    h = b.add("h", dense(3, 4), b.inputs, "Dense")
    s = b.add("s", dense(4, 2, "softmax"), [h], "Dense")
    a = b.add("a", ops.Act(Activation("sigmoid")), [h], "Activation")
    model = b.finish([s, a])
    X = R.normal(size=(2, 3))
    hx = np.tanh(X @ model.nodes[2].op.kernel + model.nodes[2].op.bias)
    lg = model.logits()
    np.testing.assert_allclose(lg.forward(X), np.concatenate([hx @ model.nodes[3].op.kernel + model.nodes[3].op.bias,
                                                              hx], 1), rtol=1e-13)
    assert [n.kind for n in lg.nodes][3:5] == ["Dense", "Activation (removed)"]
    assert model.nodes[3].op.activation.name == "softmax"  # the original is unchanged
    single = GraphBuilder([("x", (3,))])
    m = single.finish([single.add("d", dense(3, 2, "sigmoid"), single.inputs, "Dense")])
    np.testing.assert_allclose(m.logits().forward(X), X @ m.nodes[-1].op.kernel + m.nodes[-1].op.bias, rtol=1e-13)
    bad = GraphBuilder([("x", (3,))])
    bm = bad.finish([bad.add("r", ops.Reshape(shape=(3,)), bad.inputs, "Reshape")])
    with pytest.raises(ModelError, match=r"--logits: output layer 'r' \(Reshape\) has no activation to remove"):
        bm.logits()


def test_astype_casts_every_parameter_once_and_caches():
    model = mlp([3, 4, 2], ["tanh", "linear"])
    m32 = model.astype(np.float32)
    assert m32 is model.astype("float32") and m32 is not model
    assert all(a.dtype == np.float32 for n in m32.nodes[1:] for a in n.op.arrays().values())
    assert all(a.dtype == np.float64 for n in model.nodes[1:] for a in n.op.arrays().values())
    assert m32._cast == {} and model.astype(np.float64).nodes[2].op.kernel.dtype == np.float64
    assert model.n_params() == 3 * 4 + 4 + 4 * 2 + 2


def test_n_params_counts_a_first_layer_that_holds_parameters():
    b = GraphBuilder([], d=3)  # explicit slices (NPZ graphs): node 1 may be any layer
    h = b.add("d", dense(3, 2), [0], "Dense")
    model = b.finish([h])
    assert model.n_params() == 3 * 2 + 2


def test_logits_of_a_model_already_cast_are_cast_afresh():
    model = mlp([3, 4, 2], ["tanh", "sigmoid"])
    X = R.normal(size=(2, 3))
    model.astype(np.float32)  # fills the cast cache of the model with its sigmoid
    lg = model.logits()
    W1, b1 = model.nodes[2].op.kernel, model.nodes[2].op.bias
    W2, b2 = model.nodes[3].op.kernel, model.nodes[3].op.bias
    np.testing.assert_allclose(lg.forward(X, dtype=np.float32), np.tanh(X @ W1 + b1) @ W2 + b2, rtol=1e-5)


def test_chain_feeds_each_output_row_to_the_next_model():
    m1 = mlp([3, 4], ["tanh"], seed=1)
    b = GraphBuilder([("u", (2,)), ("v", (2,))])
    m2 = b.finish([b.add("d", dense(4, 2, "sigmoid"), [b.add("c", ops.Concat(axis=-1), b.inputs, "Concatenate")],
                         "Dense")])
    m1.source["path"], m2.source["path"] = "first.h5", "second.h5"
    both = graph.chain([m1, m2])
    X = R.normal(size=(3, 3))
    np.testing.assert_allclose(both.forward(X), m2.forward(m1.forward(X)), rtol=1e-14)
    assert both.D == 3 and both.K == 2 and both.input_names == m1.input_names
    assert both.output_names == m2.output_names
    assert both.source == {"chain": [m1.source, m2.source]}
    assert graph.input_names_from(both) == graph.NUMBERED  # the first model's, not the second's
    assert graph.input_names_from(m2) == "the model's inputs"
    assert graph.input_names_from(graph.chain([m2, mlp([2, 2], ["tanh"])])) == "the model's inputs"
    assert graph.input_names_from(graph.Model(m1.nodes, [], [], {})) == graph.NUMBERED
    assert graph.chain([m1]).source is m1.source
    assert [n.inputs for n in both.nodes] == [(), (0,), (1,), (2,), (2,), (3, 4), (5,)]
    with pytest.raises(ModelError, match="cannot chain: first.h5 has 4 outputs but second.h5 takes 3 inputs"):
        graph.chain([m1, _with_path(mlp([3, 2], ["tanh"]), "second.h5")])
    with pytest.raises(ModelError, match="cannot chain: model has 4 outputs but the next model takes 3 inputs"):
        graph.chain([mlp([3, 4], ["tanh"]), mlp([3, 2], ["tanh"])])


def _with_path(model, path):
    model.source["path"] = path
    return model
