"""Tables never hide numbers: at any width every value shows with 4 significant digits (the
layout changes instead: matrix, transposed, top inputs per output, one table per row, wrapped
lines); a table written to a pipe or a file is WIDE columns wide, not 80."""

import io
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import jacprop
from jacprop import render
from jacprop.cli import main

ROOT = Path(__file__).parent.parent
MODEL, INPUTS = str(ROOT / "sample_models" / "bishop_tanh.npz"), str(ROOT / "sample_models" / "bishop_tanh.csv")
CONV, CONV_CSV = ROOT / "sample_models" / "keras" / "conv2d.k3.keras", ROOT / "sample_models" / "keras" / "conv2d.csv"
NAMES = ["temperature", "pressure", "flow"]


def tokens(text):
    return set(text.replace("│", " ").replace(",", " ").split())


def bishop():
    X = np.loadtxt(INPUTS, delimiter=",", skiprows=1)
    Y, J = jacprop.jacobian(jacprop.load(MODEL), X)
    return X, Y, J


def draw(fn, width, *args):
    buf = io.StringIO()
    fn(render.console(file=buf, width=width), *args)
    return buf.getvalue()


@pytest.mark.parametrize("width", [200, 60, 42, 24])
def test_a_jacobian_row_shows_every_number_at_every_width(width):
    X, Y, J = bishop()
    meta = {"input_names": NAMES, "output_names": ["y[0]", "y[1]"]}
    text = draw(render.jacobian_rows, width, np.array([1]), None, {"x": X[:1], "y": Y[:1], "jacobian": J[:1]}, meta)
    assert all(len(line) <= width for line in text.splitlines())
    assert {f"{v:.4g}" for v in J[0].ravel()} | {f"{v:.4g}" for v in Y[0]} <= tokens(text), text
    assert "…" not in text


def test_the_layouts_change_with_the_width():
    X, Y, J = bishop()
    meta = {"input_names": NAMES, "output_names": ["y[0]", "y[1]"]}
    args = (np.array([1]), None, {"x": X[:1], "y": Y[:1], "jacobian": J[:1]}, meta)
    assert "dy/dx" in draw(render.jacobian_rows, 200, *args)
    assert "dx/dy" in draw(render.jacobian_rows, 42, *args)  # transposed: inputs down
    assert "largest |dy/dx|" in draw(render.jacobian_rows, 24, *args)


def test_84_inputs_show_the_top_ones_per_output_with_a_note():
    r = CliRunner().invoke(main, ["jacobian", str(CONV), str(CONV_CSV), "--format", "table", "--max-rows", "1"])
    assert r.exit_code == 0, r.output
    assert "the 8 largest |dy/dx| of 84 inputs" in r.stdout
    assert "76 more inputs per output not shown; all of them in --format csv, jsonl or npz" in r.stdout
    model = jacprop.load(str(CONV))
    X = np.loadtxt(CONV_CSV, delimiter=",", skiprows=1)[:1]
    _, J = jacprop.jacobian(model, X)
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith(model.output_names[0]))
    top = np.argsort(-np.abs(J[0, 0]), kind="stable")[:8]
    assert line.split("│")[2].strip() == ", ".join(f"{model.input_names[i]} {J[0, 0, i]:.4g}" for i in top)


@pytest.mark.parametrize("width", [200, 60, 30])
def test_propagate_rows_show_every_estimate_at_every_width(width):
    r = CliRunner().invoke(main, ["propagate", MODEL, INPUTS, "--dx", "0.1", "--method", "all", "--budget",
                                  "--format", "csv"])
    import csv

    rows = list(csv.reader(io.StringIO(r.stdout)))
    head, data = rows[0], np.array(rows[1:3], dtype=float)
    from jacprop.commands.propagate import TABLE_COLUMNS

    arrays = {q: np.stack([data[:, head.index(f"{q}({o})")] for o in ("y[0]", "y[1]")], 1)
              for q in ["y"] + [c for c, _ in TABLE_COLUMNS] if f"{q}(y[0])" in head}
    arrays["y"] = data[:, 1:3]  # after the row column
    budget = np.stack([[data[:, head.index(f"budget({o},{i})")] for i in NAMES] for o in ("y[0]", "y[1]")], 1)
    arrays["budget"] = budget.transpose(2, 0, 1)
    meta = {"input_names": NAMES, "output_names": ["y[0]", "y[1]"], "columns": TABLE_COLUMNS}
    text = draw(render.propagate_rows, width, np.array([1, 2]), None, arrays, meta)
    assert all(len(line) <= width for line in text.splitlines()), text
    wanted = {f"{v:.2g}" if q.endswith("_se") else f"{v:.4g}"  # standard errors to 2 digits
              for q, a in arrays.items() if q != "budget" for v in a.ravel()}
    assert wanted <= tokens(text), wanted - tokens(text)


def test_a_table_into_a_pipe_is_wide():
    r = CliRunner().invoke(main, ["propagate", MODEL, INPUTS, "--dx", "0.1", "--method", "all", "--check-linearity",
                                  "--budget", "--format", "table"])
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert lines[0].startswith("row ┃ output ┃") and 80 < max(map(len, lines)) <= render.WIDE
    assert "…" not in r.stdout
