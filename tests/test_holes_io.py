"""Reading and writing from the user's side (issue #20): an existing output survives a failed run
byte for byte, and the plain reader (no pyarrow, as in `pip install jacprop`) reads a last line
without its newline and CR-only files, each checked against numbers parsed in the test."""

import io
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import jacprop
from jacprop.cli import main

SAMPLES = Path(__file__).parent.parent / "sample_models"
MODEL, INPUTS = str(SAMPLES / "bishop_tanh.npz"), str(SAMPLES / "bishop_tanh.csv")
HEADER = "temperature,pressure,flow"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def no_pyarrow(monkeypatch):
    """As on a plain install: `import pyarrow` raises ImportError."""
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.csv", None)


@pytest.fixture
def plain_reader(no_pyarrow):
    """read(path, **options) -> (X, ids) by jacprop's CSV reader without pyarrow.  The one place
    these tests name the reader's module (it may move)."""
    from jacprop.io.reader import read_all

    def read(path, **kw):
        X, ids, _ = read_all(path, **kw)
        return X, ids

    return read


def rows_text(X):
    return [",".join(repr(v) for v in row) for row in X.tolist()]


def sample_rows(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 3)) * [1.0, 1e-3, 1e4]


# ---------------------------------------------------------------------------
# an existing output survives a failed run unchanged


def bad_late(path, rows):
    """A CSV whose cell at data row ``rows + 1`` is not a number."""
    lines = [HEADER] + ["0.1,0.2,0.3"] * rows + ["1,oops,3"]
    path.write_text("\n".join(lines) + "\n")
    return path


# the error before anything is written (every format), or after the first chunk of 65,536 rows
CASES = [(e, 2) for e in ("csv", "jsonl", "npy", "npz", "txt")] + [("csv", 70_000), ("npz", 70_000)]


@pytest.mark.parametrize("ext,rows", CASES)
def test_jacobian_leaves_an_existing_output_byte_identical_when_it_fails(tmp_path, ext, rows):
    bad = bad_late(tmp_path / "bad.csv", rows)
    out = tmp_path / f"out.{ext}"
    old = os.urandom(256) + b"an earlier result\n"
    out.write_bytes(old)
    r = run("jacobian", MODEL, bad, "-o", out)
    assert r.exit_code == 2, r.output
    assert "'oops' is not a number" in r.stderr
    assert out.read_bytes() == old
    assert sorted(os.listdir(tmp_path)) == sorted(["bad.csv", f"out.{ext}"])  # no temporary file left


@pytest.mark.parametrize("ext", ["csv", "npz"])
def test_propagate_leaves_an_existing_output_byte_identical_when_it_fails(tmp_path, ext):
    bad = bad_late(tmp_path / "bad.csv", 5)
    out = tmp_path / f"out.{ext}"
    old = b"keep me\x00\xff" * 10
    out.write_bytes(old)
    r = run("propagate", MODEL, bad, "--dx", "0.1", "--method", "all", "--samples", "10", "-o", out)
    assert r.exit_code == 2, r.output
    assert out.read_bytes() == old
    assert sorted(os.listdir(tmp_path)) == sorted(["bad.csv", f"out.{ext}"])


def test_a_successful_run_replaces_the_output_whole(tmp_path):
    out = tmp_path / "out.csv"
    out.write_bytes(b"x" * 100_000)  # longer than the new content: nothing of it may remain
    r = run("jacobian", MODEL, INPUTS, "-o", out)
    assert r.exit_code == 0, r.output
    piped = run("jacobian", MODEL, INPUTS, "--format", "csv")
    assert out.read_bytes() == piped.stdout_bytes and b"xxx" not in out.read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["out.csv"]


# ---------------------------------------------------------------------------
# the plain reader: a last line without its newline, CR-only, CRLF, mixed line ends


ENDINGS = {"lf": "\n", "crlf": "\r\n", "cr": "\r"}


# one line; a few; more than a fast block (1,024 rows); more than a chunk (65,536 rows)
@pytest.mark.parametrize("n,ending", [(n, e) for n in (1, 5, 1500) for e in ENDINGS] + [(70_000, "lf"), (70_000, "cr")])
@pytest.mark.parametrize("final", [True, False])
def test_plain_reader_reads_every_line_whatever_the_line_ends(tmp_path, plain_reader, n, ending, final):
    X = sample_rows(n)
    eol = ENDINGS[ending]
    text = eol.join([HEADER] + rows_text(X)) + (eol if final else "")
    path = tmp_path / "x.csv"
    path.write_bytes(text.encode())
    got, ids = plain_reader(path)
    assert ids is None
    assert got.shape == X.shape
    assert np.array_equal(got, X)  # repr round-trips: the same float64, the last line included


@pytest.mark.parametrize("final", [True, False])
def test_plain_reader_with_mixed_line_ends_and_an_id_column(tmp_path, plain_reader, final):
    X = sample_rows(40, seed=1)
    ends = ["\r\n", "\n", "\r"]
    lines = [f"id,{HEADER}"] + [f"r{i},{line}" for i, line in enumerate(rows_text(X))]
    text = "".join(line + ends[i % 3] for i, line in enumerate(lines))
    if not final:
        text = text.rstrip("\r\n")
    (tmp_path / "x.csv").write_bytes(text.encode())
    got, ids = plain_reader(tmp_path / "x.csv", id_column="id")
    assert np.array_equal(got, X)
    assert ids.tolist() == [f"r{i}" for i in range(40)]


@pytest.mark.parametrize("ending", ["lf", "crlf", "cr"])
def test_cli_without_pyarrow_reads_the_last_line_without_newline(tmp_path, no_pyarrow, ending):
    X = sample_rows(1500, seed=2) * [0.1, 1e3, 1e-4]  # values the sample model takes
    eol = ENDINGS[ending]
    (tmp_path / "x.csv").write_bytes((eol.join([HEADER] + rows_text(X))).encode())
    r = CliRunner().invoke(main, ["jacobian", MODEL, str(tmp_path / "x.csv"), "--format", "npz"])
    assert r.exit_code == 0, r.output
    with np.load(io.BytesIO(r.stdout_bytes)) as z:
        assert np.array_equal(z["x"], X)
        Y, J = jacprop.jacobian(jacprop.load(MODEL), X)
        np.testing.assert_allclose(z["y"], Y, rtol=1e-13)
        np.testing.assert_allclose(z["jacobian"], J, rtol=1e-12, atol=1e-15)
    # CSV out: one line per input line, the last one too
    r = CliRunner().invoke(main, ["jacobian", MODEL, str(tmp_path / "x.csv"), "--format", "csv"])
    assert r.exit_code == 0 and r.stdout.count("\n") == 1 + len(X)
    last = [float(v) for v in r.stdout.splitlines()[-1].split(",")]
    assert last[0] == len(X)  # the row column
    np.testing.assert_allclose(last[1:3], Y[-1], rtol=1e-13)


@pytest.mark.parametrize("ending", ["lf", "crlf", "cr"])
def test_stdin_with_a_bom_non_ascii_ids_and_any_line_end(ending):
    X = sample_rows(7, seed=3) * [0.1, 1e3, 1e-4]
    eol = ENDINGS[ending]
    text = "\ufeff" + eol.join([f"id,{HEADER}"] + [f"rü{i},{line}" for i, line in enumerate(rows_text(X))])
    r = CliRunner().invoke(main, ["jacobian", MODEL, "-", "--id-column", "id", "--columns", HEADER, "--format", "npz"],
                           input=text.encode("utf-8"))
    assert r.exit_code == 0, r.output
    with np.load(io.BytesIO(r.stdout_bytes)) as z:
        assert np.array_equal(z["x"], X)
        assert z["ids"].tolist() == [f"rü{i}" for i in range(7)]
        assert z["input_names"].tolist() == HEADER.split(",")


def _jsonl_records(n, x=True):
    return [json.dumps({"row": i + 1, **({"x": [i, 2.0]} if x else {}), "y": [i / 8], "jacobian": [[i, -i / 2]],
                        "input_names": ["p", "q"], "output_names": ["v"]}) for i in range(n)]


def test_jsonl_read_back_skips_blank_lines_anywhere_and_names_the_physical_line(tmp_path):
    from jacprop.errors import InputError
    from jacprop.io.readback import read_jacobian

    recs = _jsonl_records(5)
    path = tmp_path / "j.jsonl"
    path.write_text("\n  \n" + recs[0] + "\n\n" + "\n".join(recs[1:]) + "\n\n")  # blank lines 1, 2, 4, 9
    s = read_jacobian(path)
    parts = list(s.chunks)
    rows, X, J = (np.concatenate([p[i] for p in parts]) for i in (0, 2, 4))
    assert rows.tolist() == [1, 2, 3, 4, 5] and s.input_names == ["p", "q"]
    np.testing.assert_array_equal(J[:, 0, 1], [-i / 2 for i in range(5)])
    np.testing.assert_array_equal(X[:, 0], range(5))
    recs[3] = recs[3].replace('"jacobian": [[3, -1.5]]', '"jacobian": [[3]]')
    path.write_text("\n  \n" + recs[0] + "\n\n" + "\n".join(recs[1:]) + "\n")  # recs[3] is on line 7
    with pytest.raises(InputError, match=r"j\.jsonl: line 7: malformed record \("):
        list(read_jacobian(path).chunks)
    path.write_text("\n\n" + '{"row": 1, "y": [1]}' + "\n")
    with pytest.raises(InputError, match=r"j\.jsonl: line 3: not a `jacprop jacobian --format jsonl` record"):
        read_jacobian(path)


@pytest.mark.parametrize("row", ["0", "-2", "2.5", '"3"', "true", "[1]", "1" + "0" * 30])
def test_jsonl_read_back_refuses_a_row_that_is_no_row_number(tmp_path, row):
    from jacprop.errors import InputError
    from jacprop.io.readback import read_jacobian

    recs = _jsonl_records(3)
    recs[2] = recs[2].replace('"row": 3', f'"row": {row}')
    path = tmp_path / "j.jsonl"
    path.write_text("\n".join(recs) + "\n")
    refused = r"j\.jsonl: line 3: malformed record \(('row' is not a row number|Python int too large)"
    with pytest.raises(InputError, match=refused):
        list(read_jacobian(path).chunks)


def test_jsonl_read_back_keeps_x_across_blocks_or_refuses(tmp_path, monkeypatch):
    """x is in the stream when the first record has it: a later block starting without x is refused (it
    would have been a block without X in a stream that says it has X)."""
    from jacprop.errors import InputError
    from jacprop.io import readback

    monkeypatch.setattr(readback, "CHUNK_ROWS", 2)
    path = tmp_path / "j.jsonl"
    path.write_text("\n".join(_jsonl_records(2) + _jsonl_records(2, x=False)) + "\n")
    with pytest.raises(InputError, match=r"j\.jsonl: line 3: malformed record \('x'\)"):
        list(readback.read_jacobian(path).chunks)
    path.write_bytes(("\n".join(_jsonl_records(2)) + "\n").encode() + b'{"row": 3, "y": [\xff]}\n')
    with pytest.raises(InputError, match=r"j\.jsonl: not UTF-8 text"):
        list(readback.read_jacobian(path).chunks)


def test_a_jacobian_csv_cut_inside_its_last_line_is_refused_not_read_as_a_shorter_number(tmp_path):
    """`jacprop jacobian | jacprop propagate`: when the first command dies, the second may see a last
    line cut inside a number (-0.65688417 of -0.656884176...), which parses.  What jacprop writes ends
    with a line end, so the read-back refuses an input that does not."""
    from jacprop.errors import InputError
    from jacprop.io.readback import read_jacobian

    full = "row,y,d(y)/d(a),d(y)/d(b)\n1,0.5,-0.6568841766471,2.25\n2,0.25,1.5,-3.125\n"
    for ending in ("\n", "\r\n"):
        path = tmp_path / "j.csv"
        path.write_bytes(full.replace("\n", ending).encode())
        parts = list(read_jacobian(path).chunks)
        np.testing.assert_array_equal(np.concatenate([p[4] for p in parts])[:, 0], [[-0.6568841766471, 2.25],
                                                                                   [1.5, -3.125]])
    for cut in (len(full) - 1, len(full) - 4, full.index("-3.125") + 2, full.index("66471") + 2):
        path.write_text(full[:cut])
        with pytest.raises(InputError, match=r"j\.csv: the input ends inside a line: it was cut short"):
            list(read_jacobian(path).chunks)
