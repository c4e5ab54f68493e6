"""jacprop hessian through the CLI: every format against the API, the options, bad input, atomic output."""

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import jacprop
from jacprop.cli import main

SAMPLES = Path(__file__).parent.parent / "sample_models"
MODEL, INPUTS = str(SAMPLES / "bishop_tanh.npz"), str(SAMPLES / "bishop_tanh.csv")
NAMES = ["temperature", "pressure", "flow"]


def run(*args, **kw):
    return CliRunner().invoke(main, ["hessian", *map(str, args)], **kw)


@pytest.fixture(scope="module")
def ref():
    X = np.loadtxt(INPUTS, delimiter=",", skiprows=1)
    return (X, *jacprop.hessian(jacprop.load(MODEL), X))


def one_line_error(r, *fragments, code=2):
    assert r.exit_code == code, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jacprop: error: "), r.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


def test_npz(tmp_path, ref):
    X, Y, J, H = ref
    r = run(MODEL, INPUTS, "-o", tmp_path / "h.npz")
    assert r.exit_code == 0, r.output
    with np.load(tmp_path / "h.npz", allow_pickle=False) as z:
        assert sorted(z.files) == ["hessian", "input_names", "jacobian", "output_names", "rows", "x", "y"]
        np.testing.assert_array_equal(z["rows"], np.arange(1, len(X) + 1))
        np.testing.assert_array_equal(z["x"], X)
        np.testing.assert_array_equal(z["y"], Y)
        np.testing.assert_array_equal(z["jacobian"], J)
        np.testing.assert_array_equal(z["hessian"], H)
        assert list(z["input_names"]) == NAMES and list(z["output_names"]) == ["y[0]", "y[1]"]


def test_npy_and_selections(tmp_path, ref):
    X, Y, J, H = ref
    r = run(MODEL, INPUTS, "--wrt", "flow,temperature", "--outputs", "1", "--rows", "2-4", "-o", tmp_path / "h.npy")
    assert r.exit_code == 0, r.output
    np.testing.assert_array_equal(np.load(tmp_path / "h.npy"), H[1:4, 1:2][:, :, [2, 0]][:, :, :, [2, 0]])


def test_csv_upper_triangle(ref):
    X, Y, J, H = ref
    r = run(MODEL, INPUTS, "--format", "csv")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    header = lines[0].split(",")
    assert header[:3] == ["row", "y[0]", "y[1]"] and header[3] == "d(y[0])/d(temperature)"
    h_cols = header[9:]
    assert h_cols[:3] == ["d2(y[0])/d(temperature)d(temperature)", "d2(y[0])/d(temperature)d(pressure)",
                          "d2(y[0])/d(temperature)d(flow)"]
    assert len(h_cols) == 2 * 6 and "d2(y[1])/d(flow)d(flow)" == h_cols[-1]
    data = np.loadtxt(io.StringIO(r.stdout), delimiter=",", skiprows=1)
    a, b = np.triu_indices(3)
    np.testing.assert_array_equal(data[:, 0], np.arange(1, len(X) + 1))  # the data row numbers
    np.testing.assert_array_equal(data[:, 9:].reshape(-1, 2, 6), H[:, :, a, b])  # repr round-trips float64
    np.testing.assert_array_equal(data[:, 3:9].reshape(-1, 2, 3), J)


def test_jsonl_and_id_column(tmp_path, ref):
    X, Y, J, H = ref
    src = tmp_path / "in.csv"
    lines = [f"r{n}," + ",".join(map(repr, x.tolist())) for n, x in enumerate(X)]
    src.write_text("id," + ",".join(NAMES) + "\n" + "\n".join(lines) + "\n")
    r = run(MODEL, src, "--id-column", "id", "--format", "jsonl")
    assert r.exit_code == 0, r.output
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert [o["id"] for o in records] == [f"r{n}" for n in range(len(X))]
    np.testing.assert_array_equal(np.array([o["hessian"] for o in records]), H)


def test_diagonal(ref):
    X, Y, J, H = ref
    r = run(MODEL, INPUTS, "--diagonal", "--format", "csv", "--outputs", "y[0]")
    assert r.exit_code == 0, r.output
    header = r.stdout.splitlines()[0].split(",")
    assert header[-3:] == ["d2(y[0])/d(temperature)d(temperature)", "d2(y[0])/d(pressure)d(pressure)",
                           "d2(y[0])/d(flow)d(flow)"]
    data = np.loadtxt(io.StringIO(r.stdout), delimiter=",", skiprows=1)
    np.testing.assert_allclose(data[:, -3:], np.diagonal(H[:, 0], axis1=1, axis2=2), rtol=1e-13, atol=1e-16)


def test_table_shows_the_largest_interactions(ref):
    X, Y, J, H = ref
    r = run(MODEL, INPUTS, "--format", "table", "--top", "2", "--max-rows", "1")
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert "row 1" in out and "row 2" not in out and "5 more rows not shown" in out
    first = out.split("row 1")[1].split("...")[0]
    assert "0.2384" in first and "0.1486" in first  # y[0]'s two largest |H| at row 1: flow^2, temperature^2
    assert "-0.1243" not in first  # the third is not shown with --top 2
    mean = np.abs(H).mean(axis=0)[0]
    assert f"{mean.max():.4g}" in out.split("over all")[1]


def test_chain_of_modules(tmp_path, ref):
    """Two files: bishop_tanh, then a model reading its 2 outputs; H by the chain rule inside the engine."""
    from models import mlp

    second = mlp([2, 3, 1], ["softplus", "linear"], seed=4)
    jacprop.save(second, tmp_path / "b.npz")
    r = run(MODEL, tmp_path / "b.npz", INPUTS, "-o", tmp_path / "h.npz")
    assert r.exit_code == 0, r.output
    X = ref[0]
    _, _, H = jacprop.hessian(jacprop.load(MODEL, str(tmp_path / "b.npz")), X)
    np.testing.assert_array_equal(np.load(tmp_path / "h.npz")["hessian"], H)
    assert H.shape == (len(X), 1, 3, 3)


def test_bad_options(tmp_path):
    one_line_error(run(MODEL, INPUTS, "--wrt", "nope"), "--wrt", "'nope'")
    one_line_error(run(MODEL, INPUTS, "--outputs", "7"), "--outputs")
    one_line_error(run(MODEL, INPUTS, "--rows", "0-2"), "--rows")
    one_line_error(run(MODEL, INPUTS, "--top", "0"), "--top")
    one_line_error(run(MODEL, INPUTS, "-o", tmp_path / "h.xyz"), "-o")
    one_line_error(run(INPUTS), "MODEL")
    assert not list(tmp_path.iterdir())


def test_refused_model_leaves_no_file(tmp_path, monkeypatch):
    from jacprop.ops import activations

    monkeypatch.delitem(activations.SECOND, "tanh")
    r = run(MODEL, INPUTS, "-o", tmp_path / "h.npz")
    one_line_error(r, "layer", "activation 'tanh' has no second-order rule")
    assert not list(tmp_path.iterdir())


def test_bad_row_midway_leaves_no_file(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text(",".join(NAMES) + "\n1,2,3\n1,x,3\n")
    one_line_error(run(MODEL, src, "-o", tmp_path / "h.npz"), "in.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_huge_rows_are_warned_about(tmp_path):
    """K x D x D over 2^20 values a row: one warning line up front, naming the cheaper forms."""
    from models import mlp

    d = 1025
    jacprop.save(mlp([d, 1], ["tanh"]), tmp_path / "wide.npz")
    (tmp_path / "in.csv").write_text(",".join(f"x{i}" for i in range(d)) + "\n" + ",".join(["0.01"] * d) + "\n")
    r = run(tmp_path / "wide.npz", tmp_path / "in.csv", "--diagonal", "-o", tmp_path / "d.npz")
    closing = r"jacprop: 1 rows; largest \|H\| \S+ at row 1 d2\(dense_0\)/d\((x\d+)\)d\(\1\)\n"
    assert r.exit_code == 0 and re.fullmatch(closing, r.stderr), r.stderr  # no warning: the closing line alone
    r = run(tmp_path / "wide.npz", tmp_path / "in.csv", "-o", tmp_path / "h.npy")
    assert r.exit_code == 0, r.output
    assert r.stderr.startswith("jacprop: warning: H has 1 x 1025 x 1025 = 1,050,625 values per row")
    assert "--diagonal" in r.stderr
    assert np.load(tmp_path / "h.npy").shape == (1, 1, d, d)
