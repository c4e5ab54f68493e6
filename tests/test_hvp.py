"""Hessian-vector products H_k u (jacprop.hvp, hessian(direction=), jacprop hessian --direction): against H u
from the framework references beside the sample models (TensorFlow, torch.func.hessian), against torch.func's own
forward-over-reverse H u (sample_models/*.hvp.npz, made by make_hessian_refs.py hvp), against central differences
of J along u, and against jacprop's full H; the CLI's formats and its refusals."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import assert_close_jacobian
from models import branchy, mlp
from test_hessian import CASES

import jacprop
from jacprop.cli import main
from jacprop.errors import UsageError
from jacprop.graph import chain

SAMPLES = Path(__file__).parent.parent / "sample_models"
MODEL, INPUTS = str(SAMPLES / "bishop_tanh.npz"), str(SAMPLES / "bishop_tanh.csv")
NAMES = ["temperature", "pressure", "flow"]


@pytest.mark.parametrize("path,ref,options", CASES, ids=[f"{p.name}-{r.name}" for p, r, _ in CASES])
def test_hvp_matches_the_framework_hessian_times_u(path, ref, options):
    """H u against H_ref u, H_ref the framework's (TensorFlow or torch.func), to 1e-8 max(1, max|H_ref u|)."""
    z = np.load(ref, allow_pickle=False)
    X, H = z["x"], z["hessian"]
    u = np.random.default_rng(1).normal(size=X.shape[1])
    Y, J, Hu = jacprop.hvp(jacprop.load(str(path), **options), X, u)
    assert_close_jacobian(J, z["jacobian"], 1e-12)
    assert_close_jacobian(Hu, np.einsum("nkij,j->nki", H, u), 1e-8)


TORCH_HVP = sorted(SAMPLES.glob("*.hvp.npz"))


def test_torch_hvp_references_exist():
    assert {p.name for p in TORCH_HVP} == {"bishop_tanh.hvp.npz", "torch_mlp.hvp.npz", "torch_mlp.tanh.hvp.npz"}


@pytest.mark.parametrize("ref", TORCH_HVP, ids=[p.name for p in TORCH_HVP])
def test_hvp_matches_torch_func_jvp_of_jacrev(ref):
    """torch.func.jvp(jacrev(f), x, u) in float64, per row and with one u for every row."""
    z = np.load(ref, allow_pickle=False)
    options = {"activation": str(z["activations"][0])} if str(z["source"]) == "torch_mlp.npz" else {}
    model = jacprop.load(str(SAMPLES / str(z["source"])), **options)
    for u, hu in ((z["direction"], z["hvp"]), (z["row_directions"], z["row_hvp"])):
        _, _, Hu = jacprop.hvp(model, z["x"], u)
        assert_close_jacobian(Hu, hu, 1e-12)


def central_along(model, X, u, eps=1e-5):
    """(J(x + h u) - J(x - h u)) / 2h, h = eps max(1, |x|_inf) per row: H u to O(h^2)."""
    h = eps * np.maximum(1.0, np.abs(X).max(axis=1))[:, None]
    Jp, Jm = jacprop.jacobian(model, X + h * u)[1], jacprop.jacobian(model, X - h * u)[1]
    return (Jp - Jm) / (2 * h[:, :, None])


@pytest.mark.parametrize("name", ["branchy", "chain", "softmax"])
def test_hvp_against_central_differences_of_j_along_u(name):
    model = {"branchy": lambda: branchy(),
             "chain": lambda: chain([mlp([6, 5, 4], ["tanh", "softplus"], seed=1), mlp([4, 3], ["swish"], seed=2)]),
             "softmax": lambda: mlp([5, 7, 3], ["gelu", "softmax"], seed=3)}[name]()
    rng = np.random.default_rng(4)
    X = rng.normal(size=(6, model.D))
    U = rng.normal(size=(6, model.D))  # one direction per row
    _, _, Hu = jacprop.hvp(model, X, U)
    assert_close_jacobian(Hu, central_along(model, X, U), 1e-7)
    assert np.abs(Hu).max() > 1e-2
    _, _, H = jacprop.hessian(model, X)
    assert_close_jacobian(Hu, np.einsum("nkij,nj->nki", H, U), 1e-13)


def test_selections_and_blocks():
    """--outputs/--wrt: (H u) over the wrt inputs is the wrt block of H times u; any block height, any thread
    count and with or without padding give the same bits."""
    model = branchy()
    rng = np.random.default_rng(5)
    X = rng.normal(size=(37, model.D))
    outputs, wrt = [4, 0], [14, 2, 7]
    u = np.array([0.5, -2.0, 1.0])
    Y, J, Hs = jacprop.hessian(model, X, outputs=outputs, wrt=wrt)
    _, Js, Hu = jacprop.hvp(model, X, u, outputs=outputs, wrt=wrt)
    np.testing.assert_array_equal(Js, J)
    assert_close_jacobian(Hu, Hs @ u, 1e-14)
    from jacprop.second_order import iter_hessian

    for rows, threads, det in ((1, 1, False), (5, 2, True), (64, 2, True)):
        parts = list(iter_hessian(model, X, outputs, wrt, rows=rows, threads=threads, deterministic=det,
                                  direction=u))
        got = np.concatenate([p[3] for p in parts])
        assert_close_jacobian(got, Hu, 1e-14)
    a = jacprop.hvp(model, X, u, wrt=wrt, deterministic=True, threads=1)[2]
    b = jacprop.hvp(model, X, u, wrt=wrt, deterministic=True, threads=2)[2]
    np.testing.assert_array_equal(a, b)


def test_linear_model_has_zero_hvp():
    model = mlp([4, 3, 2], ["linear", "linear"])
    _, _, Hu = jacprop.hvp(model, np.ones((3, 4)), np.ones(4))
    assert Hu.shape == (3, 2, 4) and not Hu.any()


@pytest.mark.parametrize("u,message", [
    (np.ones(2), "direction must have shape (3,) or (4, 3)"),
    (np.ones((2, 3)), "direction must have shape"),
    (np.array([1.0, np.nan, 0.0]), "every value must be finite"),
    (np.array([1.0, np.inf, 0.0]), "every value must be finite"),
])
def test_bad_directions_are_refused(u, message):
    model = jacprop.load(MODEL)
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        jacprop.hvp(model, np.zeros((4, 3)), u)
    with pytest.raises(UsageError, match="exclude each other"):
        jacprop.hessian(model, np.zeros((4, 3)), direction=np.ones(3), diagonal=True)


# ---------------------------------------------------------------------------------------------- the CLI


def run(*args):
    return CliRunner().invoke(main, ["hessian", *map(str, args)])


@pytest.fixture(scope="module")
def ref():
    X = np.loadtxt(INPUTS, delimiter=",", skiprows=1)
    return (X, *jacprop.hessian(jacprop.load(MODEL), X))


def test_npz_and_npy(tmp_path, ref):
    X, Y, J, H = ref
    r = run(MODEL, INPUTS, "--direction", "temperature=1", "--direction", "flow=-0.5", "-o", tmp_path / "h.npz")
    assert r.exit_code == 0, r.output
    u = np.array([1.0, 0.0, -0.5])
    with np.load(tmp_path / "h.npz", allow_pickle=False) as z:
        assert sorted(z.files) == ["direction", "hvp", "input_names", "jacobian", "output_names", "rows", "x", "y"]
        np.testing.assert_array_equal(z["direction"], u)
        np.testing.assert_array_equal(z["jacobian"], J)
        np.testing.assert_array_equal(z["y"], Y)
        assert_close_jacobian(z["hvp"], H @ u, 1e-14)
    r = run(MODEL, INPUTS, "--direction", "1,0,-0.5", "-o", tmp_path / "h.npy")
    assert r.exit_code == 0, r.output
    assert_close_jacobian(np.load(tmp_path / "h.npy"), H @ u, 1e-14)


def test_direction_over_wrt_inputs(tmp_path, ref):
    X, Y, J, H = ref
    r = run(MODEL, INPUTS, "--wrt", "flow,temperature", "--direction", "2,-1", "-o", tmp_path / "h.npy")
    assert r.exit_code == 0, r.output
    sub = H[:, :, [2, 0]][:, :, :, [2, 0]]
    assert_close_jacobian(np.load(tmp_path / "h.npy"), sub @ np.array([2.0, -1.0]), 1e-14)


def test_csv_columns_and_jsonl(ref):
    X, Y, J, H = ref
    r = run(MODEL, INPUTS, "--direction", "1", "--format", "csv", "--rows", "1-2")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    header = lines[0].split(",")
    assert header[-6:] == [f"Hv(y[{k}])/d({n})" for k in range(2) for n in NAMES]
    values = np.array([line.split(",")[-6:] for line in lines[1:]], dtype=float)
    assert_close_jacobian(values, (H[:2] @ np.ones(3)).reshape(2, 6), 1e-14)
    r = run(MODEL, INPUTS, "--direction", "pressure=3", "--format", "jsonl", "--rows", "3")
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)
    assert_close_jacobian(np.array(row["hvp"]), H[2] @ np.array([0.0, 3.0, 0.0]), 1e-14)


def test_direction_file(tmp_path, ref):
    X, Y, J, H = ref
    (tmp_path / "u.csv").write_text("flow,temperature\n-0.5,1\n")
    r = run(MODEL, INPUTS, "--direction-file", tmp_path / "u.csv", "-o", tmp_path / "h.npy")
    assert r.exit_code == 0, r.output
    assert_close_jacobian(np.load(tmp_path / "h.npy"), H @ np.array([1.0, 0.0, -0.5]), 1e-14)


def test_table_shows_the_largest_entries(ref):
    r = run(MODEL, INPUTS, "--direction", "1", "--format", "table", "--rows", "1", "--top", "1")
    assert r.exit_code == 0, r.output
    assert "(H u)_i" in r.stdout and " u " in r.stdout


def one_line_error(r, *fragments):
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jacprop: error: "), r.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


@pytest.mark.parametrize("args,fragments", [
    (["--direction", "nope=1"], ["--direction nope=1: no input named 'nope'"]),
    (["--direction", "1,2"], ["2 values for 3 inputs"]),
    (["--direction", "x"], ["expected numbers"]),
    (["--direction", "temperature=nan"], ["must be finite"]),
    (["--direction", "1e999"], ["must be finite"]),
    (["--direction", "3=1"], ["no input named '3'"]),
    (["--direction", "1", "--diagonal"], ["--direction and --diagonal exclude each other"]),
    (["--wrt", "flow", "--direction", "temperature=1"], ["no input named 'temperature'", "['flow']"]),
])
def test_bad_directions(tmp_path, args, fragments):
    r = run(MODEL, INPUTS, *args, "-o", tmp_path / "h.npz")
    one_line_error(r, *fragments)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("text,fragment", [
    ("flow,temperature\n1\n", "expected a header naming inputs"),
    ("flow,nope\n1,2\n", "unknown input 'nope'"),
    ("flow,flow\n1,2\n", "each once"),
    ("flow\n1\n2\n", "one row"),
    ("flow\nabc\n", "could not convert"),
    ("flow\nnan\n", "must be finite"),
    ("", "expected a header"),
])
def test_bad_direction_files(tmp_path, text, fragment):
    (tmp_path / "u.csv").write_text(text)
    r = run(MODEL, INPUTS, "--direction-file", tmp_path / "u.csv", "-o", tmp_path / "h.npz")
    one_line_error(r, "--direction-file", fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["u.csv"]


def test_direction_and_file_exclude_each_other(tmp_path):
    (tmp_path / "u.csv").write_text("flow\n1\n")
    one_line_error(run(MODEL, INPUTS, "--direction", "1", "--direction-file", tmp_path / "u.csv"), "exclude each other")
    one_line_error(run(MODEL, INPUTS, "--direction-file", tmp_path / "none.csv"), "cannot read")


def test_wide_model_needs_no_warning(tmp_path):
    """H u has K x D values a row: no 'H has ... values per row' warning where the full H would get one."""
    d = 1025
    jacprop.save(mlp([d, 1], ["tanh"]), tmp_path / "wide.npz")
    (tmp_path / "in.csv").write_text(",".join(f"x{i}" for i in range(d)) + "\n" + ",".join(["0.01"] * d) + "\n")
    r = run(tmp_path / "wide.npz", tmp_path / "in.csv", "--direction", "1", "-o", tmp_path / "hu.npy")
    assert r.exit_code == 0 and "values per row" not in r.stderr, r.output
    assert r.stderr.startswith("jacprop: 1 rows; largest |H u|") and r.stderr.count("\n") == 1  # the closing line
    assert np.load(tmp_path / "hu.npy").shape == (1, 1, d)


def test_the_closing_line_names_the_largest_hv_entry(tmp_path):
    r = run(MODEL, INPUTS, "--direction", "temperature=1", "-o", tmp_path / "h.npz")
    assert r.exit_code == 0, r.output
    hv = np.abs(np.load(tmp_path / "h.npz")["hvp"])
    n, k, i = np.unravel_index(hv.argmax(), hv.shape)
    names = ["temperature", "pressure", "flow"]
    assert f"largest |H u| {hv.max():.4g} at row {n + 1} Hv(y[{k}])/d({names[i]})" in r.stderr
