"""ONNX loader: samples torch and skl2onnx wrote, against torch.func / analytic references (sample_models/onnx,
made by make_onnx_samples.py); jacprop's decoder against the onnx package's; onnx's backend node tests as an
op-level oracle; hostile files, each one line and exit 2 through the CLI.

Hostile files are written here with a small protobuf encoder, so those tests need no onnx package.
"""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_close_jacobian, central_jacobian
from onnx_hostile import HEADER, ext_model, fld, gemm_model, model, node, tensor, write

import jacprop
from jacprop.engine import jacobian
from jacprop.errors import ModelError
from jacprop.loaders import detect
from jacprop.loaders.onnx import read_proto, tensor_array
from jacprop.loaders.onnx_proto import MAX_DEPTH, ProtoError, decode
from jacprop.ops import tensor as ops_onnx
from jacprop.ops import tensor_index

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_models" / "onnx"
JACPROP = Path(sys.executable).parent / "jacprop"
NAMES = sorted(p.name[: -len(".onnx")] for p in SAMPLES.glob("*.onnx"))


def sample_ref(name):
    return np.load(SAMPLES / f"{name}.ref.npz")


# ---------------------------------------------------------------------------
# Samples


@pytest.mark.parametrize("name", NAMES)
def test_sample_matches_source_framework(name):
    """float64 files: |J - J_ref| <= 1e-8 max(1, max|J_ref|), y likewise; float32 files: 1e-4 relative."""
    ref = sample_ref(name)
    model = jacprop.load(SAMPLES / f"{name}.onnx")
    assert model.source["format"] == "onnx"
    assert model.input_names == list(ref["input_names"]) and model.output_names == list(ref["output_names"])
    tol = 1e-4 if ref["float32"] else 1e-8
    for mode in ("reverse", "forward"):
        y, J = jacobian(model, ref["x"], mode=mode)
        assert np.abs(J - ref["jacobian"]).max() <= tol * max(1.0, np.abs(ref["jacobian"]).max()), mode
        assert np.abs(y - ref["y"]).max() <= tol * max(1.0, np.abs(ref["y"]).max()), mode
        assert np.abs(y - ref["y_ort"]).max() <= 1e-4 * max(1.0, np.abs(ref["y"]).max()), mode


def test_samples_cover_both_exporters_external_data_and_sklearn():
    manifest = json.loads((SAMPLES / "manifest.json").read_text())["samples"]
    exporters = {m["exporter"] for m in manifest}
    assert exporters == {"torch legacy", "torch dynamo", "skl2onnx"}
    assert any(f.endswith(".onnx.data") for m in manifest for f in m["files"])
    assert {m["float32"] for m in manifest} == {True, False}
    assert sum(p.stat().st_size for p in SAMPLES.iterdir()) < 2 * 2**20


EXPORTER_IDIOMS = {
    "Gemm", "MatMul", "Clip", "Sigmoid", "Mul", "Abs", "Div", "Mish", "Softplus", "Greater", "Where", "Gelu", "Erf",
    "Tanh", "LayerNormalization", "BatchNormalization", "Shape", "Gather", "Unsqueeze", "Concat", "Reshape", "Flatten",
    "GlobalAveragePool", "ReduceMean", "Conv", "MaxPool", "AveragePool", "Softmax", "LogSoftmax", "ai.onnx.ml:Scaler",
    "Cast", "ArgMax", "ai.onnx.ml:ArrayFeatureExtractor", "Constant", "Transpose", "Slice", "ReduceSum",
}  # fmt: skip


def test_samples_hold_the_exporter_idioms():
    """The idioms issue 16 lists (ReLU6/Hardtanh as Clip with inputs, SiLU as Sigmoid*Mul, Softsign as
    Abs/Add/Div, Softplus' threshold as Greater/Where, GELU as Gelu, Erf or a Tanh chain, shape subgraphs, ...)
    stay in the samples when they are made again."""
    found = set()
    for name in NAMES:
        for n in read_proto(SAMPLES / f"{name}.onnx")["graph"]["node"]:
            found.add(f"{n['domain']}:{n['op_type']}" if n.get("domain") else n["op_type"])
    assert EXPORTER_IDIOMS <= found, EXPORTER_IDIOMS - found


def test_decoder_parse_time():
    """A model parses in a few ms (the dynamo files carry ~35 KB of metadata)."""
    for name in NAMES:
        data = (SAMPLES / f"{name}.onnx").read_bytes()
        start = time.perf_counter()
        decode(data)
        assert time.perf_counter() - start < 0.1, name


def test_label_output_is_left_out_with_a_note():
    model = jacprop.load(SAMPLES / "skl_mlp_classifier_f64.onnx")
    assert model.K == 3 and any("label" in n for n in model.source["notes"])


def run_cli(*args, timeout=60):
    p = subprocess.run([str(JACPROP), *map(str, args)], capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def test_cli_inspect_convert_and_chain(tmp_path):
    onnx_path = SAMPLES / "torch_mlp_dynamo_f64.onnx"
    code, out, err = run_cli("inspect", onnx_path)
    assert code == 0, err
    assert "onnx" in out and "pytorch" in out and "opset" in out and "Gemm" in out
    npz = tmp_path / "m.npz"
    assert run_cli("convert", onnx_path, "-o", npz)[0] == 0
    ref = sample_ref("torch_mlp_dynamo_f64")
    y1, J1 = jacobian(jacprop.load(npz), ref["x"])
    y0, J0 = jacobian(jacprop.load(onnx_path), ref["x"])
    assert np.array_equal(J0, J1) and np.array_equal(y0, y1)
    # a chain: the ONNX MLP (3 outputs) feeds a Keras-free NPZ weight list, then an ONNX model again
    np.savez(tmp_path / "lin.npz", W0=np.arange(12.0).reshape(3, 4) / 10, b0=np.zeros(4))
    chain = jacprop.load(onnx_path, tmp_path / "lin.npz", SAMPLES / "skl_mlp_classifier_f64.onnx")
    X = ref["x"]
    assert np.allclose(central_jacobian(chain.forward, X), jacobian(chain, X)[1], atol=1e-7)
    code, out, err = run_cli("jacobian", onnx_path, SAMPLES / "torch_mlp_dynamo_f64.csv", "--format", "csv")
    assert code == 0, err
    assert out.splitlines()[0].startswith("row,y[0],y[1],y[2],d(y[0])/d(x0)")


KERAS = ROOT / "sample_models" / "keras"


@pytest.mark.parametrize(
    "files",
    [
        (SAMPLES / "torch_softplus_gelu_dynamo_f64.onnx", KERAS / "mlp_tanh.k3.keras"),  # 3 -> 4 -> 2
        (KERAS / "act_layers.k3.keras", SAMPLES / "torch_mlp_dynamo_f64.onnx"),  # 5 -> 4 -> 3
    ],
    ids=["onnx-then-keras", "keras-then-onnx"],
)
def test_chain_mixes_onnx_and_keras(files, tmp_path):
    """J of the chain = J_B(A(x)) J_A(x), each module's J computed on its own; and the CLI takes the chain."""
    a, b = jacprop.load(files[0]), jacprop.load(files[1])
    X = np.random.default_rng(5).normal(size=(4, a.D))
    ya, Ja = jacobian(a, X)
    yb, Jb = jacobian(b, ya)
    y, J = jacobian(jacprop.load(*files), X)
    assert np.allclose(y, yb, rtol=0, atol=1e-14) and np.allclose(J, np.einsum("nkl,nld->nkd", Jb, Ja), atol=1e-13)
    csv = tmp_path / "x.csv"
    np.savetxt(csv, X, delimiter=",", header=",".join(a.input_names), comments="")
    code, out, err = run_cli("jacobian", *files, csv, "--format", "csv")
    assert code == 0, err
    rows = np.loadtxt(out.splitlines()[1:], delimiter=",")
    assert np.allclose(rows[:, 1 : 1 + b.K], y, atol=1e-12)


# ---------------------------------------------------------------------------
# The ONNX ops (jacprop/ops/tensor.py): vjp and jvp against central differences, as tests/test_ops.py does

_R = np.random.default_rng(11)
OP_CASES = [
    *[(f"pointwise-{n}", ops_onnx.Pointwise(n, *{"pow": (3.0, 0), "selu": (1.67, 1.05), "celu": (0.8, 0),
                                                 "clip": (-0.9, 1.1), "hard_sigmoid": (0.2, 0.5),
                                                 "thresholded_relu": (0.3, 0)}.get(n, (0, 0))),
       [(3, 2)], (0.5, 2.5) if n in ("log", "sqrt", "reciprocal") else (-2.4, 2.4)) for n in ops_onnx.POINTWISE],
    *[(f"binary-{h}", ops_onnx.Binary(h), [(2, 3), (3,)], (0.5, 2)) for h in ("add", "sub", "mul", "div")],
    ("binary-mul-keepdims", ops_onnx.Binary("mul"), [(2, 1), (2, 3)], (-2, 2)),
    ("matmul", ops_onnx.MatMul(), [(2, 3), (3, 4)], (-2, 2)),
    ("matmul-batched", ops_onnx.MatMul(), [(2, 3, 2), (2, 2, 3)], (-2, 2)),
    ("where", ops_onnx.Where("greater", np.array(0.1)), [(4,), (4,), (4,)], (-2, 2)),
    ("const", ops_onnx.Const(value=np.arange(3.0)), [(5,)], (-1, 1)),
    ("take", tensor_index.Take(indices=np.array([[2, 0], [2, 1]]), axis=-1), [(2, 3)], (-2, 2)),
    ("strided", tensor_index.Strided(index=((1,), (3, 1))), [(2, 4)], (-2, 2)),
    ("pad", tensor_index.Pad(pads=((0, 0), (1, 2)), value=-1.0), [(2, 3)], (-2, 2)),
    ("reduce-mean", tensor_index.Reduce("mean", (-1,), False), [(2, 3)], (-2, 2)),
    ("reduce-sum-keepdims", tensor_index.Reduce("sum", (-2, -1), True), [(2, 3, 2)], (-2, 2)),
]


@pytest.mark.parametrize("name,op,shapes,span", OP_CASES, ids=[c[0] for c in OP_CASES])
def test_onnx_op_vjp_and_jvp_match_central_differences(name, op, shapes, span):
    from test_ops import op_jacobians

    xs = [_R.uniform(*span, size=(3, *s)) for s in shapes]
    for j_rev, j_fwd, j_num in op_jacobians(op, shapes, xs):
        assert_close_jacobian(j_rev, j_num, 1e-7)
        assert_close_jacobian(j_fwd, j_rev, 1e-12)


# ---------------------------------------------------------------------------
# jacprop's decoder against the onnx package


@pytest.mark.parametrize("name", NAMES)
def test_decoder_agrees_with_onnx(name):
    onnx = pytest.importorskip("onnx", reason="the onnx package (test extra) is not installed")
    from onnx import numpy_helper

    path = SAMPLES / f"{name}.onnx"
    theirs = onnx.load(str(path), load_external_data=True)
    ours = read_proto(path)
    assert ours.get("ir_version") == theirs.ir_version and ours.get("producer_name", "") == theirs.producer_name
    assert {o.get("domain", ""): o["version"] for o in ours["opset_import"]} == {
        o.domain: o.version for o in theirs.opset_import
    }
    g = ours["graph"]
    assert [n["op_type"] for n in g["node"]] == [n.op_type for n in theirs.graph.node]
    assert [n.get("input", []) for n in g["node"]] == [list(n.input) for n in theirs.graph.node]
    assert [n.get("output", []) for n in g["node"]] == [list(n.output) for n in theirs.graph.node]
    for ours_n, theirs_n in zip(g["node"], theirs.graph.node):
        for a, b in zip(ours_n.get("attribute", []), theirs_n.attribute):
            assert a["name"] == b.name
            value = onnx.helper.get_attribute_value(b)
            if isinstance(value, (int, float)):
                assert a.get("i", a.get("f")) == value
            elif isinstance(value, list) and value and isinstance(value[0], (int, float)):
                assert list(a.get("ints", a.get("floats"))) == value
    assert [t["name"] for t in g.get("initializer", [])] == [t.name for t in theirs.graph.initializer]
    for t, u in zip(g.get("initializer", []), theirs.graph.initializer):
        assert np.array_equal(tensor_array(t, str(SAMPLES), str(path)), numpy_helper.to_array(u))
    for ours_v, theirs_v in zip(g["input"] + g["output"], list(theirs.graph.input) + list(theirs.graph.output)):
        assert ours_v["name"] == theirs_v.name
        dims = ours_v["type"]["tensor_type"]["shape"].get("dim", [])
        assert [d.get("dim_value", d.get("dim_param", "")) for d in dims] == [
            d.dim_value if d.HasField("dim_value") else d.dim_param for d in theirs_v.type.tensor_type.shape.dim
        ]


# ---------------------------------------------------------------------------
# Op-level oracle: onnx's backend node tests

SUPPORTED = {
    "Relu", "Tanh", "Sigmoid", "Softplus", "Softsign", "Mish", "LeakyRelu", "Elu", "Abs", "Neg", "Exp", "Log",
    "Sqrt", "Reciprocal", "Erf", "Sin", "Cos", "Selu", "Celu", "HardSigmoid", "HardSwish", "ThresholdedRelu",
    "Gelu", "Softmax", "LogSoftmax", "Clip", "Add", "Sub", "Mul", "Div", "Pow", "Sum", "Mean", "Max", "Min",
    "Gemm", "MatMul", "BatchNormalization", "LayerNormalization", "Conv", "MaxPool", "AveragePool",
    "GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceSum", "Identity", "Dropout", "Constant", "Cast",
    "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Concat", "Slice", "Gather", "Where",
}  # fmt: skip


# ops without an axis: adding a leading axis of 1 to every graph input and output (one row holding the whole
# test tensor) or a trailing one (every element a row, where all inputs have one shape) keeps their meaning
ELEMENTWISE = {
    "Relu", "Tanh", "Sigmoid", "Softplus", "Softsign", "Mish", "LeakyRelu", "Elu", "Abs", "Neg", "Exp", "Log",
    "Sqrt", "Reciprocal", "Erf", "Sin", "Cos", "Selu", "Celu", "HardSigmoid", "HardSwish", "ThresholdedRelu",
    "Gelu", "Clip", "Add", "Sub", "Mul", "Div", "Pow", "Sum", "Mean", "Max", "Min", "Identity", "Where", "Cast",
}  # fmt: skip


def node_cases():
    """(case, variant): every node test whose ops jacprop supports, as onnx writes it and in the variants a
    saved model would have: "constants" (graph inputs 2.. as initializers: weights), "nonfloat" (the non-float
    inputs as initializers: Where's condition), "lifted" (elementwise ops on inputs without a batch axis,
    given one), "first" (only the first graph output: LayerNormalization's Mean and InvStdDev are optional)."""
    try:
        from onnx.backend.test.loader import load_model_tests
    except ImportError:
        reason = "the onnx package (test extra) is not installed"
        return [pytest.param(None, None, marks=pytest.mark.skip(reason=reason))]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = load_model_tests(kind="node")
    out = []
    for case in cases:
        g = case.model.graph
        ops = {n.op_type for n in g.node}
        if not ops <= SUPPORTED or any(n.domain not in ("", "ai.onnx") for n in g.node):
            continue
        types = [vi.type.tensor_type.elem_type for vi in g.input]
        lift = ops <= ELEMENTWISE and any(len(vi.type.tensor_type.shape.dim) < 2 for vi in g.input)
        variants = [()]
        if len(g.input) > 1:
            variants.append(("constants",))
        if 9 in types and any(t in (1, 11) for t in types):  # bool and float inputs
            variants.append(("nonfloat",))
            lift = lift or ops <= ELEMENTWISE  # the condition constant, broadcast over rows
        if lift:
            variants += [(*v, "lifted") for v in variants]
        if len(g.output) > 1:
            variants += [(*v, "first") for v in variants]
        out += [pytest.param(case, v, id="-".join((case.name, *v))) for v in variants]
    return out


def _variant(case, variant):
    """(model, inputs, expected) of the case in the variant (node_cases)."""
    from onnx import TensorProto, numpy_helper

    m = type(case.model)()
    m.CopyFrom(case.model)
    def array(a):  # the Cast tests hold TensorProtos
        return numpy_helper.to_array(a) if isinstance(a, TensorProto) else a

    inputs, expected = [array(a) for a in case.data_sets[0][0]], [array(a) for a in case.data_sets[0][1]]
    keep = list(range(len(inputs)))
    if "constants" in variant:
        keep = [0]
    elif "nonfloat" in variant:
        keep = [i for i, vi in enumerate(m.graph.input) if vi.type.tensor_type.elem_type != TensorProto.BOOL]
    for i, (vi, value) in enumerate(zip(m.graph.input, inputs)):
        if i not in keep:
            if np.asarray(value).dtype.kind not in "fiub":
                pytest.skip("an input that is not a plain array")
            m.graph.initializer.append(numpy_helper.from_array(np.asarray(value), vi.name))
    kept = [vi for i, vi in enumerate(m.graph.input) if i in keep]
    del m.graph.input[:]
    m.graph.input.extend(kept)
    inputs = [np.asarray(inputs[i]) for i in keep]
    if "first" in variant:
        del m.graph.output[1:]
        expected = expected[:1]
    if "lifted" in variant:
        # trailing only where no input became a constant (a constant's axes must keep aligning on the right)
        trail = len({a.shape for a in inputs}) == 1 and inputs[0].ndim >= 1 and not m.graph.initializer
        for vi in list(m.graph.input) + list(m.graph.output):
            dims = vi.type.tensor_type.shape.dim
            values = [d.dim_value for d in dims]
            del dims[:]
            for v in values + [1] if trail else [1] + values:
                dims.add().dim_value = v
        inputs = [a[..., None] if trail else a[None] for a in inputs]
        expected = [np.asarray(e)[..., None] if trail else np.asarray(e)[None] for e in expected]
    return m, inputs, expected


def _float_rows(arrays):
    return np.concatenate([np.asarray(a, np.float64).reshape(len(a), -1) for a in arrays], axis=1)


def _load_or_skip(path):
    try:
        return jacprop.load(path)
    except ModelError as e:
        assert "\n" not in str(e) and str(e).startswith(str(path))
        pytest.skip(f"refused: {str(e)[len(str(path)) + 2 :]}")


@pytest.mark.parametrize("case,variant", node_cases())
def test_backend_node(case, variant, tmp_path):
    """Forward values against onnx's expected outputs; J against central differences of jacprop's own float64
    forward pass, H against central differences of J.  Cases jacprop refuses (an axis over the batch,
    integer inputs, ...) must be refused with one line naming the file."""
    path = tmp_path / f"{case.name}.onnx"
    proto, inputs, expected = _variant(case, variant)
    path.write_bytes(proto.SerializeToString())
    model = _load_or_skip(path)
    feeds = [a for a in inputs if np.asarray(a).dtype.kind == "f"]
    n = len(feeds[0]) if feeds else 0
    if not feeds or any(np.ndim(a) < 2 or len(a) != n for a in feeds) or len(feeds) != len(inputs):
        pytest.skip("inputs without a common batch axis")
    X = _float_rows(feeds)
    y = model.forward(X)
    want = _float_rows([e for e in expected if np.asarray(e).dtype.kind == "f"])
    assert y.shape == want.shape
    assert np.allclose(y, want, rtol=max(case.rtol, 1e-5), atol=max(case.atol, 1e-6), equal_nan=True), np.nanmax(
        np.abs(y - want)
    )
    if X.size * y.shape[1] > 2_000_000:
        return  # J too large to hold; the forward values were checked
    _, J = jacobian(model, X)
    _, Jf = jacobian(model, X, mode="forward")
    assert np.allclose(J, Jf, rtol=1e-12, atol=1e-12)
    if not np.isfinite(y).all():
        return
    _assert_close_where_smooth(J, model.forward, X)
    if X.size * X.shape[1] * y.shape[1] <= 200_000:
        _, J2, H = jacprop.hessian(model, X)
        assert np.allclose(J2, J, rtol=1e-12, atol=1e-12)
        dJ = lambda A: jacobian(model, A)[1].reshape(len(A), -1)  # noqa: E731
        _assert_close_where_smooth(H.reshape(len(X), -1, X.shape[1]), dJ, X)


def _assert_close_where_smooth(A, f, X, eps=1e-6):
    """A (N, K, D) = df/dx against central differences of f, on the entries where the forward and the backward
    difference agree (to 1e-3): at a kink (relu at 0, a tie in max; the examples put x right on them) the
    derivative has two values and jacprop takes one.  At least half of the entries must be smooth."""
    X = np.asarray(X, np.float64)
    fwd, bwd = [], []
    f0 = f(X)
    for i in range(X.shape[1]):
        h = eps * np.maximum(1.0, np.abs(X[:, i]))[:, None]
        Xp, Xm = X.copy(), X.copy()
        Xp[:, i] += h[:, 0]
        Xm[:, i] -= h[:, 0]
        fwd.append((f(Xp) - f0) / h)
        bwd.append((f0 - f(Xm)) / h)
    fwd, bwd = np.stack(fwd, axis=-1), np.stack(bwd, axis=-1)
    central = (fwd + bwd) / 2
    scale = max(1.0, np.abs(central).max())
    smooth = np.abs(fwd - bwd) <= 1e-3 * scale
    assert smooth.mean() >= 0.5, f"only {smooth.sum()} of {smooth.size} entries are smooth"
    err = np.abs(A - central)[smooth]
    assert (err <= 1e-5 * scale).all(), f"{(err > 1e-5 * scale).sum()} of {smooth.sum()} differ; max {err.max():.2e}"


# ---------------------------------------------------------------------------
# Hand-made files (tests/onnx_hostile.py encodes them; its refusals are rows of the bad-input matrix,
# tests/test_bad_inputs.py)


def assert_one_line_error(path, *words, timeout=60):
    code, out, err = run_cli("jacobian", path, path.parent / "x.csv", timeout=timeout)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"jacprop: error: {path}"), (code, err)
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def test_a_well_formed_hand_made_model_loads(tmp_path):
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    path = write(tmp_path, gemm_model(tensor("W", (2, 3), raw=w.tobytes())[:0] + tensor("W", (3, 2), w.T.tobytes())))
    assert detect(path) == "onnx"
    y, J = jacobian(jacprop.load(path), np.array([[1.0, 2.0, 3.0]]))
    assert np.array_equal(J[0], w) and np.array_equal(y[0], w @ [1, 2, 3])
    code, out, err = run_cli("jacobian", path, tmp_path / "x.csv", "--format", "csv")
    assert code == 0, err


def test_external_data_in_the_folder_is_read(tmp_path):
    (tmp_path / "w.bin").write_bytes(b"\0" * 8 + np.ones(6, np.float32).tobytes())
    path = ext_model(tmp_path, offset=8)
    assert np.array_equal(jacobian(jacprop.load(path), np.ones((1, 3)))[1][0], np.ones((2, 3)))


def test_deep_nesting_is_refused(tmp_path):
    graph = fld(2, "g")
    for _ in range(MAX_DEPTH):
        graph = fld(1, node("If", ["c"], ["y"], fld(5, fld(1, "then_branch") + fld(20, 5) + fld(6, graph))))
    with pytest.raises(ProtoError, match="nested deeper"):
        decode(HEADER + fld(7, graph))
    assert_one_line_error(write(tmp_path, HEADER + fld(7, graph)), "nested deeper than")


def test_plain_install_has_no_onnx_dependency():
    text = (ROOT / "pyproject.toml").read_text()
    deps = text.split("dependencies = [", 1)[1].split("]", 1)[0]
    assert "onnx" not in deps and "protobuf" not in deps
    src = "".join(p.read_text() for p in (ROOT / "jacprop").rglob("*.py"))
    assert not re.search(r"^\s*(import onnx|from onnx[ .])", src, re.M) and "google.protobuf" not in src


def test_matmul_of_two_tensors_mixing_rows_is_refused(tmp_path):
    """x (N, 3) @ x^T would contract over the batch axis: refused naming the node, never a wrong J; per row
    (m, k) @ (k, n) is the bilinear MatMul (the attention samples)."""
    path = write(tmp_path, model([node("MatMul", ["x", "x"], ["y"])], outputs=(("y", ("N", "N")),)))
    with pytest.raises(jacprop.errors.ModelError, match="MatMul.*per-row shapes \\(3,\\) and \\(3,\\)"):
        jacprop.load(path)
    with pytest.raises(ValueError, match="needs \\(..., m, k\\) @ \\(..., k, n\\)"):
        ops_onnx.MatMul().out_shape((2, 3), (2, 4))


def test_batched_matmul_with_a_constant(tmp_path):
    """x (N, 2, 3, 4) @ W (2, 4, 5), then Tanh: J[(b, m, n), (b', m', k)] = [b = b'][m = m'] (1 - y^2) W[b, k, n]."""
    W = np.random.default_rng(0).normal(size=(2, 4, 5)).astype(np.float32)
    path = write(tmp_path, model([node("MatMul", ["x", "W"], ["h"]), node("Tanh", ["h"], ["y"])],
                                 [tensor("W", (2, 4, 5), W.tobytes())], inputs=(("x", ("N", 2, 3, 4)),),
                                 outputs=(("y", ("N", 2, 3, 5)),)))
    X = np.random.default_rng(1).normal(size=(3, 24))
    y, J = jacobian(jacprop.load(path), X)
    w = W.astype(np.float64)
    Y = np.tanh(X.reshape(3, 2, 3, 4) @ w)
    ref = np.einsum("bc,mq,nbmo,bko->nbmocqk", np.eye(2), np.eye(3), 1 - Y**2, w).reshape(3, 30, 24)
    np.testing.assert_allclose(y, Y.reshape(3, 30), rtol=0, atol=1e-15)
    np.testing.assert_allclose(J, ref, rtol=0, atol=1e-15)
