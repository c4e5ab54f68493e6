"""Inputs matched to the model by name, names kept through the pipeline, and row identity
(issue 13 item 1, issue 18 item 3), from the user's side: CLI runs with exact numbers,
exit codes and stderr lines."""

import gzip
import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import jacprop
from jacprop.cli import main

SAMPLES = Path(__file__).parent.parent / "sample_models"
KERAS3 = SAMPLES / "keras" / "mlp_tanh.k3.keras"
KCSV = SAMPLES / "keras" / "mlp_tanh.csv"
NPZ, CSV = SAMPLES / "bishop_tanh.npz", SAMPLES / "bishop_tanh.csv"
NAMED_KERAS = Path(__file__).parent / "data" / "keras" / "named_inputs.keras"  # Input per feature: make_named_inputs.py
BISHOP_NAMES = ["temperature", "pressure", "flow"]


def run(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def reversed_csv(tmp_path, src=KCSV, rows=3):
    lines = src.read_text().splitlines()
    path = tmp_path / "rev.csv"
    path.write_text("\n".join(",".join(line.split(",")[::-1]) for line in lines[: rows + 1]) + "\n")
    return path


def csv_numbers(text):
    lines = text.splitlines()
    return lines[0].split(","), np.array([[float(v) for v in line.split(",")] for line in lines[1:]])


def test_the_issue_example_reordered_columns_are_matched_by_name(tmp_path):
    rev = reversed_csv(tmp_path)
    assert rev.read_text().splitlines()[0] == "x3,x2,x1,x0"
    r = run("jacobian", KERAS3, rev, "--format", "csv")
    assert r.exit_code == 0, r.output
    assert r.stderr == (f"jacprop: note: {rev}: inputs matched to the model's by name (x0, x1, x2, x3); "
                        "the file's order was x3, x2, x1, x0\n")
    ordered = run("jacobian", KERAS3, KCSV, "--rows", "1-3", "--format", "csv")
    assert r.stdout == ordered.stdout  # same names, same numbers, byte for byte
    header, values = csv_numbers(r.stdout)
    assert header[:2] == ["row", "out[0]"] and round(values[0, 1], 4) == 0.7819
    # by position (what the issue saw): the reversed columns become x0..x3
    pos = run("jacobian", KERAS3, rev, "--format", "csv", "--by-position")
    assert pos.exit_code == 0 and pos.stderr == ""
    assert round(csv_numbers(pos.stdout)[1][0, 1], 4) == 0.4336


def test_dx_by_name_means_the_right_input_after_reordering(tmp_path):
    rev = reversed_csv(tmp_path)
    args = ["--dx", "x0=0.1", "--method", "linear", "--method", "gum", "--format", "csv"]
    a = run("propagate", KERAS3, rev, *args)
    b = run("propagate", KERAS3, KCSV, "--rows", "1-3", *args)
    assert a.exit_code == b.exit_code == 0, a.output
    assert a.stdout == b.stdout
    J = jacprop.jacobian(jacprop.load(KERAS3), np.loadtxt(KCSV, delimiter=",", skiprows=1)[:3])[1]
    header, values = csv_numbers(a.stdout)
    np.testing.assert_allclose(values[:, header.index("dy_gum(out[1])")], 0.1 * np.abs(J[:, 1, 0]), rtol=1e-14)


def test_a_header_naming_some_model_inputs_is_refused(tmp_path):
    bad = tmp_path / "some.csv"
    bad.write_text("x1,x2,x3,x4\n1,2,3,4\n")
    r = run("jacobian", KERAS3, bad, "-o", tmp_path / "out.csv")
    assert r.exit_code == 2
    assert r.stderr == (f"jacprop: error: {bad}: line 1: names the model's inputs x1, x2, x3 but not x0; columns are "
                        "matched to the model's inputs by name, so name all of them (or none: then they are taken in "
                        "order), or give --by-position to take the selected columns in order\n")
    assert not (tmp_path / "out.csv").exists()
    r = run("jacobian", KERAS3, bad, "--by-position", "--format", "csv")
    assert r.exit_code == 0, r.output
    twice = run("jacobian", KERAS3, KCSV, "--columns", "x0,x1,x1,x3")
    assert twice.exit_code == 2 and twice.stderr == "jacprop: error: --columns: names the model's input(s) x1 twice\n"


def test_all_names_among_other_columns_are_picked_with_a_note(tmp_path):
    path = tmp_path / "wide.csv"
    X = np.loadtxt(KCSV, delimiter=",", skiprows=1)[:2]
    path.write_text("site,x2,x0,extra,x3,x1\n" + "".join(f"s{i},{r[2]!r},{r[0]!r},9.5,{r[3]!r},{r[1]!r}\n"
                                                           for i, r in enumerate(X.tolist())))
    r = run("jacobian", KERAS3, path, "--format", "npz", "--id-column", "site")
    assert r.exit_code == 0, r.output
    assert r.stderr == (f"jacprop: note: {path}: inputs matched to the model's by name (x0, x1, x2, x3); the file's "
                        "order was x2, x0, x3, x1; columns not used: extra\n")
    with np.load(io.BytesIO(r.stdout_bytes)) as z:
        assert z["x"].tobytes() == X.tobytes() and z["ids"].tolist() == ["s0", "s1"] and z["rows"].tolist() == [1, 2]


def test_keras_one_named_input_per_feature_matches_by_name(tmp_path):
    names = run("inspect", NAMED_KERAS, "--format", "json")
    info = json.loads(names.stdout)
    assert info["input_names"] == BISHOP_NAMES and info["input_names_from"] == "the model's inputs"
    path = tmp_path / "shuffled.csv"
    path.write_text("flow,pressure,temperature\n-1.1018,0.10074,-2.88355\n-3.70894,-0.221047,0.245891\n")
    r = run("jacobian", NAMED_KERAS, path, "--format", "csv")
    assert r.exit_code == 0 and "inputs matched to the model's by name" in r.stderr
    header, values = csv_numbers(r.stdout)
    # Keras 3.15's own predict (float32 weights, float32 arithmetic) on the rows in the model's order
    keras_y = [[0.8133589029312134, 1.3280936479568481], [-0.03775094076991081, 1.6947187185287476]]
    np.testing.assert_allclose(values[:, 1:3], keras_y, rtol=2e-6, atol=1e-7)
    assert header[3] == "d(y[0])/d(temperature)"


def test_npz_weight_lists_can_carry_names_and_convert_keeps_a_csvs_names(tmp_path):
    with np.load(NPZ) as z:
        arrays = dict(z)
    np.savez(tmp_path / "named.npz", **arrays, input_names=np.array(BISHOP_NAMES))
    info = json.loads(run("inspect", tmp_path / "named.npz", "--format", "json").stdout)
    assert info["input_names"] == BISHOP_NAMES and info["input_names_from"] == "the NPZ file"
    np.savez(tmp_path / "bad.npz", **arrays, input_names=np.array(["a", "a", "b"]))
    r = run("inspect", tmp_path / "bad.npz")
    assert r.exit_code == 2 and "input_names must be 3 distinct strings" in r.stderr
    # convert --input-names: from a CSV's header, or a list; then inspect says where they came from
    r = run("convert", NPZ, "-o", tmp_path / "conv.npz", "--input-names", CSV)
    assert r.exit_code == 0, r.output
    table = run("inspect", tmp_path / "conv.npz").stdout
    assert "D = 3 inputs: temperature, pressure, flow (names: given to jacprop convert)" in table
    assert "(names: numbered by jacprop)" in run("inspect", NPZ).stdout
    r = run("convert", NPZ, "-o", tmp_path / "two.npz", "--input-names", "a,b")
    assert r.exit_code == 2 and r.stderr == "jacprop: error: --input-names a,b has 2 names for a model of 3 inputs\n"
    shuffled = tmp_path / "s.csv"
    shuffled.write_text("flow,temperature,pressure\n-1.1018,-2.88355,0.10074\n")
    a, b = run("jacobian", tmp_path / "conv.npz", shuffled, "--format", "csv"), run("jacobian", NPZ, CSV, "--rows", "1",
                                                                                   "--format", "csv")
    assert a.exit_code == 0 and a.stdout == b.stdout


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "npz"])
def test_names_and_rows_survive_a_pipe_into_propagate(tmp_path, fmt):
    j = tmp_path / f"j.{fmt}"
    r = run("jacobian", NPZ, CSV, "--rows", "5,2", "-o", j)
    assert r.exit_code == 0, r.output
    if fmt == "jsonl":
        first = json.loads(j.read_text().splitlines()[0])
        assert first["row"] == 2 and first["input_names"] == BISHOP_NAMES and first["output_names"] == ["y[0]", "y[1]"]
    piped = run("propagate", j, "--dx", "pressure=0.01", "--format", "csv")
    direct = run("propagate", NPZ, CSV, "--rows", "2,5", "--dx", "pressure=0.01", "--format", "csv")
    assert piped.exit_code == direct.exit_code == 0, piped.output
    assert piped.stdout == direct.stdout
    assert piped.stdout.splitlines()[0] == "row,y[0],y[1],dy_gum(y[0]),dy_gum(y[1])"
    assert [line.split(",")[0] for line in piped.stdout.splitlines()[1:]] == ["2", "5"]


def test_readback_accepts_the_older_forms(tmp_path):
    """CSV without a row column (--no-row, as before), JSON Lines records without names."""
    old_csv = tmp_path / "old.csv"
    old_csv.write_bytes(run("jacobian", NPZ, CSV, "--format", "csv", "--no-row").stdout_bytes)
    assert old_csv.read_text().startswith("y[0],y[1],d(y[0])/d(temperature)")
    new = run("propagate", NPZ, CSV, "--dx", "0.01", "--format", "csv")
    assert run("propagate", old_csv, "--dx", "0.01", "--format", "csv").stdout == new.stdout
    records = [json.loads(line) for line in run("jacobian", NPZ, CSV, "--format", "jsonl").stdout.splitlines()]
    old_jsonl = tmp_path / "old.jsonl"
    old_jsonl.write_text("".join(json.dumps({k: v for k, v in rec.items() if not k.endswith("_names")}) + "\n"
                                 for rec in records))
    r = run("propagate", old_jsonl, "--dx", "0.01", "--format", "csv")
    assert r.exit_code == 0 and r.stdout.splitlines()[0] == "row,y0,y1,dy_gum(y0),dy_gum(y1)"
    assert r.stdout.splitlines()[1:] == new.stdout.splitlines()[1:]
    bad = tmp_path / "bad.csv"
    bad.write_text(run("jacobian", NPZ, CSV, "--format", "csv").stdout.replace("\n1,", "\n1.5,", 1))
    r = run("propagate", bad, "--dx", "0.01")
    assert r.exit_code == 2 and "row 1.5 is not a row number" in r.stderr


def test_row_column_after_skip_and_no_row(tmp_path):
    path = tmp_path / "gaps.csv"
    path.write_text("temperature,pressure,flow\n1,2,3\n1,NA,3\n\n4,5,6\n,1,1\n0.5,0.5,0.5\n")
    r = run("jacobian", NPZ, path, "--on-invalid", "skip", "--format", "csv")
    assert r.exit_code == 0 and r.stderr == "jacprop: skipped 2 rows with NaN/inf inputs\n"
    assert [line.split(",")[0] for line in r.stdout.splitlines()] == ["row", "1", "3", "5"]
    r = run("jacobian", NPZ, path, "--on-invalid", "skip", "--format", "csv", "--no-row", "--id-column", "flow",
            "--columns", "temperature,pressure,pressure")
    assert r.exit_code == 0 and r.stdout.splitlines()[0].startswith("flow,y[0]")
    keep = run("jacobian", NPZ, path, "--on-invalid", "keep", "--format", "npz")
    with np.load(io.BytesIO(keep.stdout_bytes)) as z:
        assert z["rows"].tolist() == [1, 2, 3, 4, 5] and np.isnan(z["x"][1, 1]) and np.isnan(z["y"][3]).all()


def test_gzip_stdin_and_names(tmp_path):
    data = gzip.compress(reversed_csv(tmp_path).read_bytes())
    r = run("jacobian", KERAS3, "-", "--format", "csv", input=data)
    assert r.exit_code == 0, r.output
    assert r.stdout == run("jacobian", KERAS3, KCSV, "--rows", "1-3", "--format", "csv").stdout
