"""The jacobian command: every format parsed back and compared with the API; errors are one line."""

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import jacprop
from jacprop.cli import main

SAMPLES = Path(__file__).parent.parent / "sample_models"
MODEL, INPUTS = str(SAMPLES / "bishop_tanh.npz"), str(SAMPLES / "bishop_tanh.csv")


def run(*args, input=None):
    return CliRunner().invoke(main, list(args), input=input)


def reference():
    X = np.loadtxt(INPUTS, delimiter=",", skiprows=1)
    return (X, *jacprop.jacobian(jacprop.load(MODEL), X))


def test_csv_round_trips_float64_exactly():
    X, Y, J = reference()
    r = run("jacobian", MODEL, INPUTS, "--format", "csv")
    assert r.exit_code == 0, r.output
    rows = list(csv.reader(io.StringIO(r.stdout)))
    assert rows[0][:4] == ["row", "y[0]", "y[1]", "d(y[0])/d(temperature)"]
    data = np.array(rows[1:], dtype=float)
    assert data[:, 0].tolist() == list(range(1, len(X) + 1))
    data = data[:, 1:]
    assert data[:, :2].tobytes() == Y.tobytes()
    assert data[:, 2:].reshape(J.shape).tobytes() == J.tobytes()


@pytest.mark.parametrize("ext", ["npy", "npz", "jsonl", "csv"])
def test_output_file_format_from_extension(tmp_path, ext):
    X, Y, J = reference()
    out = tmp_path / f"j.{ext}"
    r = run("jacobian", MODEL, INPUTS, "-o", str(out))
    assert r.exit_code == 0, r.output
    assert r.stdout == ""
    if ext == "npy":
        assert np.load(out).tobytes() == J.tobytes()
    elif ext == "npz":
        with np.load(out, allow_pickle=False) as z:
            assert z["jacobian"].tobytes() == J.tobytes() and z["y"].tobytes() == Y.tobytes()
            assert z["x"].tobytes() == X.tobytes()
            assert list(z["input_names"]) == ["temperature", "pressure", "flow"]
            assert list(z["output_names"]) == ["y[0]", "y[1]"]
    elif ext == "jsonl":
        objs = [json.loads(line) for line in out.read_text().splitlines()]
        assert [o["row"] for o in objs] == list(range(1, len(X) + 1))
        assert np.array([o["jacobian"] for o in objs]).tobytes() == J.tobytes()
    assert not list(tmp_path.glob(".jacprop-*"))  # no temporary left behind


def test_id_column_outputs_and_wrt_by_name():
    r = run("jacobian", str(SAMPLES / "torch_mlp.npz"), str(SAMPLES / "torch_mlp.csv"), "--id-column", "id",
            "--activation", "relu", "--outputs", "y[2]", "--wrt", "d,a", "--format", "csv")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0] == "row,id,y[2],d(y[2])/d(d),d(y[2])/d(a)"
    assert lines[1].startswith("1,s0,")


def test_table_for_people(tmp_path):
    r = run("jacobian", MODEL, INPUTS, "--format", "table", "--max-rows", "1")
    assert r.exit_code == 0, r.output
    assert "row 1" in r.stdout and "temperature" in r.stdout and "5 more rows not shown" in r.stdout


def test_inspect_and_convert(tmp_path):
    r = run("inspect", MODEL, "--format", "json")
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert (info["D"], info["K"], info["params"]) == (3, 2, 32)
    out = tmp_path / "c.npz"
    assert run("convert", MODEL, "-o", str(out)).exit_code == 0
    X, Y, J = reference()
    assert jacprop.jacobian(jacprop.load(out), X)[1].tobytes() == J.tobytes()


@pytest.mark.parametrize(
    "args,message",
    [
        (["jacobian", MODEL], "give one or more MODEL files and then the INPUTS"),
        (["jacobian", MODEL, INPUTS, "--columns", "nope"], "no column named 'nope'"),
        (["jacobian", MODEL, INPUTS, "--columns", "temperature"],
         "the model takes 3 inputs but 1 columns were selected"),
        (["jacobian", INPUTS, INPUTS], "not a model file"),
        (["jacobian", MODEL, "missing.csv"], "missing.csv: cannot open input"),
        (["jacobian", MODEL, INPUTS, "--outputs", "zz"], "--outputs: 'zz' is neither a name nor an index"),
    ],
)
def test_errors_are_one_line_and_exit_2(args, message):
    r = run(*args)
    assert r.exit_code == 2, r.output
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("jacprop: error: ")
    assert message in r.stderr


def test_bad_cell_names_row_and_column(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("temperature,pressure,flow\n1,2,3\n4,oops,6\n")
    r = run("jacobian", MODEL, str(bad))
    assert r.exit_code == 2
    assert r.stderr == f"jacprop: error: {bad}: row 2 (line 3), column 'pressure': 'oops' is not a number\n"


def test_stdin_pipeline_and_python_m():
    csv_text = Path(INPUTS).read_text()
    p = subprocess.run([sys.executable, "-m", "jacprop", "jacobian", MODEL, "-", "--format", "jsonl"],
                       input=csv_text, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert len(p.stdout.splitlines()) == len(csv_text.splitlines()) - 1


def test_tables_shorten_long_names_and_respect_no_color(tmp_path, monkeypatch):
    from jacprop.render import shorten

    assert shorten("temperature_sensor_number_3", 16) == "temperat…umber_3"
    assert len(shorten("x" * 100, 16)) == 16 and shorten("short", 16) == "short"
    long = "inlet_temperature_sensor_number_3"
    (tmp_path / "in.csv").write_text(f"{long},pressure,flow\n1,2,3\n")
    args = ["jacobian", MODEL, str(tmp_path / "in.csv"), "--format", "table"]
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("NO_COLOR", raising=False)
    coloured = CliRunner().invoke(main, args).stdout
    assert "\x1b[" in coloured and "inlet_te…umber_3" in coloured and long not in coloured
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("FORCE_COLOR")
    assert "\x1b[" not in CliRunner().invoke(main, args).stdout


def test_logits_output_names_and_no_header(tmp_path):
    from models import mlp

    from jacprop.loaders import npz

    soft = mlp([3, 4, 3], ["tanh", "softmax"], seed=5)
    npz.save(soft, tmp_path / "soft.npz")
    linear = mlp([3, 4, 3], ["tanh", "linear"], seed=5)
    X = np.random.default_rng(0).normal(size=(4, 3))
    (tmp_path / "x.csv").write_text("".join(",".join(map(repr, r)) + "\n" for r in X.tolist()))
    r = run("jacobian", str(tmp_path / "soft.npz"), str(tmp_path / "x.csv"), "--no-header", "--logits",
            "-o", str(tmp_path / "j.npz"),
            "--output-names", "a,b,c")
    assert r.exit_code == 0, r.output
    with np.load(tmp_path / "j.npz") as z:
        np.testing.assert_allclose(z["jacobian"], jacprop.jacobian(linear, X)[1], rtol=1e-14)
        assert list(z["output_names"]) == ["a", "b", "c"] and list(z["input_names"]) == ["c0", "c1", "c2"]
        np.testing.assert_array_equal(z["x"], X)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "npy", "npz"])
def test_output_bytes_do_not_depend_on_runs_or_reader_chunks(tmp_path, monkeypatch, fmt):
    from models import mlp

    from jacprop.io import reader as csvio
    from jacprop.loaders import npz

    npz.save(mlp([16, 64, 64, 4], ["tanh", "tanh", "linear"]), tmp_path / "m.npz")  # wide enough for BLAS blocking
    X = np.random.default_rng(1).normal(size=(1500, 16))
    (tmp_path / "in.csv").write_text(",".join(f"x{i}" for i in range(16)) + "\n"
                                     + "".join(",".join(map(repr, r)) + "\n" for r in X.tolist()))
    args = ["jacobian", str(tmp_path / "m.npz"), str(tmp_path / "in.csv"), "--format", fmt]
    outputs = [CliRunner().invoke(main, args).stdout_bytes for _ in range(2)]
    original = csvio.CsvReader.__init__
    for chunk in (1000, 7, 3):
        monkeypatch.setattr(csvio.CsvReader, "__init__",
                            lambda self, *a, chunk=chunk, **k: original(self, *a, **{**k, "chunk_rows": chunk}))
        outputs.append(CliRunner().invoke(main, args).stdout_bytes)
    assert len(outputs[0]) > 1000 and all(o == outputs[0] for o in outputs)  # fails without engine.blocks' padding
    if fmt == "csv":  # a --rows selection gives the very same bytes for its rows
        lines = outputs[0].splitlines()
        picked = CliRunner().invoke(main, args + ["--rows", "700-702,1400"]).stdout_bytes.splitlines()
        assert picked == [lines[0], *lines[700:703], lines[1400]]
