"""The pyarrow CSV path (the ``fast`` extra) against numpy.loadtxt, the reference parser.

The fast path may refuse a chunk (numpy then parses it and locates any error), but when it
accepts one it must give exactly numpy's float64 values: the output must not depend on
whether pyarrow is installed.
"""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from jacprop.io import reader as csvio

pytest.importorskip("pyarrow")

# numbers that are hard to round correctly, and spellings the two parsers may treat differently
HARD = [
    "0.1", "9007199254740993", "9007199254740993.0000000000001", "2.2250738585072011e-308", "2.2250738585072014e-308",
    "4.9406564584124654e-324", "2.4703282292062327e-324", "2.4703282292062328e-324", "1.7976931348623157e308",
    "1.7976931348623158e308", "1e309", "-0", "-0.0", "0.1000000000000000055511151231257827021181583404541015625",
    "123456789012345678901234567890e-20", "7.038531e-26", "1e-400", "0x10", "1_000", "1e", ".5", "5.", "+3", "--3",
    "1,5", "nan", "NaN", "-nan", "inf", "-inf", "Infinity", "-Infinity", "INF", "", " ", " 1.5", "1.5 ", '"2.5"',
    '"2,5"', "1d5", "1e+05", "1E-05", "١", "½", "\t7", "NA", "null", "true", "0001.5000", "1.", "e5", "+.5e-3",
]


def both(lines, n_columns, usecols, delimiter=","):
    """(fast result or None, numpy result or the exception numpy raised)."""
    fast = csvio._arrow_parse("".join(lines).encode(), len(lines), n_columns, usecols, delimiter)
    try:
        slow = np.loadtxt(lines, delimiter=delimiter, usecols=usecols, quotechar='"', ndmin=2, dtype=np.float64,
                          comments=None)
    except ValueError as e:
        slow = e
    return fast, slow


def assert_same_or_refused(fast, slow):
    if fast is None:
        return
    assert isinstance(slow, np.ndarray), f"pyarrow accepted what numpy rejects ({slow})"
    assert fast.shape == slow.shape
    same = (fast.view(np.int64) == slow.view(np.int64)) | (np.isnan(fast) & np.isnan(slow))
    assert same.all(), (fast[~same], slow[~same])


def test_plain_numbers_take_the_fast_path_and_round_exactly():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 4)) * np.exp(rng.normal(size=(3000, 4)) * 30)
    lines = [",".join(map(repr, row)) + "\n" for row in X.tolist()]
    fast, slow = both(lines, 4, [0, 1, 2, 3])
    assert fast is not None
    assert np.array_equal(fast.view(np.int64), X.view(np.int64))
    assert_same_or_refused(fast, slow)


@pytest.mark.parametrize("cell", HARD)
def test_each_hard_cell_is_read_alike_or_refused(cell):
    lines = [f"1.25,{cell},3\n", "4,5,6\r\n"] * 3
    fast, slow = both(lines, 3, [0, 1, 2])
    assert_same_or_refused(fast, slow)
    if fast is not None and cell.strip().strip('"'):
        try:
            expected = float(cell.strip().strip('"'))
        except ValueError:
            return
        assert fast[0, 1] == expected or (np.isnan(fast[0, 1]) and np.isnan(expected))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(st.lists(st.sampled_from(HARD + ["1", "-2.5", "3e2"]), min_size=1, max_size=4),
                  min_size=1, max_size=6),
    usecols=st.sampled_from([[0], [0, 2], [2, 0], [1, 1], [0, 1, 2]]),
    delimiter=st.sampled_from([",", ";", "\t"]),
    end=st.sampled_from(["\n", "\r\n", ""]),
)
def test_random_tables_are_read_alike_or_refused(rows, usecols, delimiter, end):
    lines = [delimiter.join(r) + end for r in rows]
    lines = [line if line.endswith("\n") else line + "\n" for line in lines[:-1]] + lines[-1:]
    assume(all(line.strip() for line in lines))  # the reader drops blank lines before parsing
    fast, slow = both(lines, 3, usecols, delimiter)
    assert_same_or_refused(fast, slow)


def test_a_duplicated_column_is_returned_twice():
    fast, slow = both(["1,2,3\n", "4,5,6\n"], 3, [2, 0, 2])
    assert fast is not None and np.array_equal(fast, slow)


def test_the_reader_output_does_not_depend_on_the_parser(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(5000, 3))
    text = "a,b,c\n" + "".join(",".join(map(repr, r)) + "\n" for r in X.tolist())
    path = tmp_path / "x.csv"
    path.write_text(text.replace("\n", "\n \n", 7))  # a few blank lines
    results = []
    for fast_min in (1, 10**9):
        monkeypatch.setattr(csvio, "FAST_MIN_ROWS", fast_min)
        got, _, _ = csvio.read_all(path, chunk_rows=1500)
        results.append(got)
    assert np.array_equal(results[0].view(np.int64), X.view(np.int64))
    assert np.array_equal(results[1].view(np.int64), X.view(np.int64))


def test_an_error_in_a_fast_chunk_is_located_by_row_and_line(tmp_path):
    lines = ["a,b"] + [f"{i},{i}" for i in range(3000)]
    lines[2001] = "7,x7"
    (tmp_path / "x.csv").write_text("\n\n".join(lines[:3]) + "\n" + "\n".join(lines[3:]) + "\n")
    with pytest.raises(csvio.InputError, match=r"row 2001 \(line 2004\), column 'b': 'x7' is not a number"):
        csvio.read_all(tmp_path / "x.csv", chunk_rows=2500)


def _variant(name, n=40):
    rows = [f"r{i},{i * 0.5!r},{-i / 3!r}" for i in range(n)]
    ends = ["\n"] * n
    if name == "crlf":
        ends = ["\r\n"] * n
    if name == "bare-cr":
        ends = ["\r"] * n
    if name == "mixed-ends":
        ends = ["\r\n" if i % 3 else "\n" for i in range(n)]
    if name == "blank-lines":
        rows = [r if i % 9 else "  \t" for i, r in enumerate(rows)]
    if name == "leading-space":
        rows = [" " + r if i % 5 == 2 else r for i, r in enumerate(rows)]
    if name == "non-ascii":
        rows = [r.replace("r1", "rü") for r in rows]
    text = "id,a,b\n" + "".join(r + e for r, e in zip(rows, ends))
    if name == "no-final-newline":
        text = text.rstrip("\n")
    if name == "bom":
        text = "\ufeff" + text
    return text


@pytest.mark.parametrize("name", ["plain", "crlf", "bare-cr", "mixed-ends", "blank-lines", "leading-space", "non-ascii",
                                  "no-final-newline", "bom"])
@pytest.mark.parametrize("chunk_rows", [1, 7, 40, 1000])
def test_plain_blocks_give_what_line_by_line_reading_gives(tmp_path, monkeypatch, name, chunk_rows):
    path = tmp_path / "x.csv"
    path.write_bytes(_variant(name).encode())
    monkeypatch.setattr(csvio, "FAST_MIN_ROWS", 1)

    def read(**kw):
        reader = csvio.CsvReader(path, id_column="id", chunk_rows=chunk_rows, **kw)
        chunks = list(reader.chunks())
        return [(c.X.tolist(), c.ids.tolist(), c.rows.tolist()) for c in chunks], reader._line

    fast = read()
    monkeypatch.setattr(csvio.CsvReader, "_plain_block", lambda self, n: None)
    assert fast == read()
    assert sum(len(c[0]) for c in fast[0]) == 40 - (5 if name == "blank-lines" else 0)


@pytest.mark.parametrize("name", ["plain", "crlf", "blank-lines"])
def test_an_error_is_located_alike_by_both_readers(tmp_path, monkeypatch, name):
    text = _variant(name).replace("r33,16.5", "r33,16.5x")
    (tmp_path / "x.csv").write_text(text, newline="")
    monkeypatch.setattr(csvio, "FAST_MIN_ROWS", 1)
    messages = []
    for plain in (True, False):
        if not plain:
            monkeypatch.setattr(csvio.CsvReader, "_plain_block", lambda self, n: None)
        with pytest.raises(csvio.InputError) as e:
            csvio.read_all(tmp_path / "x.csv", id_column="id", chunk_rows=16)
        messages.append(str(e.value))
    assert messages[0] == messages[1]
    assert "column 'a': '16.5x' is not a number" in messages[0]


def test_without_pyarrow_numpy_reads_the_same(tmp_path, monkeypatch):
    path = tmp_path / "x.csv"
    path.write_bytes(_variant("plain").encode())
    monkeypatch.setattr(csvio, "FAST_MIN_ROWS", 1)
    with_arrow = csvio.read_all(path, id_column="id")[0]
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now raises ImportError
    assert csvio._arrow_parse(b"1,2\n", 1, 2, [0, 1], ",") is None
    assert np.array_equal(csvio.read_all(path, id_column="id")[0], with_arrow)


def test_the_fast_path_does_not_import_pandas(tmp_path):
    """pyarrow's to_numpy imports pandas (0.4 s); the reader takes the float64 buffers directly."""
    path = tmp_path / "x.csv"
    path.write_text("a,b\n" + "".join(f"{i},{i / 7!r}\n" for i in range(3000)))
    code = ("import sys; from jacprop.io import reader as csvio; X = csvio.read_all(sys.argv[1])[0]; "
            "assert X.shape == (3000, 2) and 'pyarrow' in sys.modules; print('pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _big_csv(variant):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(3000, 3))
    lines = [f"r{i},{a!r},{b!r},{c!r}" for i, (a, b, c) in enumerate(X.tolist())]
    header, sep = "id,temperature,pressure,flow", ","
    if variant == "nan-row":
        lines[2500] = "r2500,nan,1,2"
    if variant == "ragged":
        lines[2700] += ",9"
    if variant == "word":
        lines[1999] = "r1999,1,two,3"
    if variant == "quoted":
        lines = [line.replace(",", ',"', 1).replace(",", '",', 2).replace('",', ",", 1) for line in lines]
    if variant == "semicolon":
        header, sep = header.replace(",", ";"), ";"
        lines = [line.replace(",", ";") for line in lines]
    if variant == "bom":
        header = "\ufeff" + header
    return header + "\n" + "\n".join(lines) + "\n", sep


@pytest.mark.parametrize("variant", ["plain", "nan-row", "ragged", "word", "quoted", "semicolon", "bom"])
@pytest.mark.parametrize("extra", [[], ["--on-invalid", "skip"]])
def test_cli_output_and_errors_do_not_depend_on_the_parser(tmp_path, monkeypatch, variant, extra):
    from click.testing import CliRunner

    from jacprop.cli import main

    text, sep = _big_csv(variant)
    path = tmp_path / "x.csv"
    path.write_text(text, encoding="utf-8")
    model = str(csvio.__file__).replace("jacprop/io/reader.py", "sample_models/bishop_tanh.npz")
    args = ["jacobian", model, str(path), "--id-column", "id", "--format", "csv", "--delimiter", sep, *extra]
    results = []
    for fast_min in (1024, 10**9):
        monkeypatch.setattr(csvio, "FAST_MIN_ROWS", fast_min)
        r = CliRunner().invoke(main, args, input=None)
        results.append((r.exit_code, r.stdout, r.stderr))
    assert results[0] == results[1]
    assert results[0][0] == (0 if variant in ("plain", "quoted", "semicolon", "bom") or (variant == "nan-row" and extra)
                             else 2)
    if variant == "ragged":
        assert "row 2701 (line 2702): 5 fields, but the header has 4" in results[0][2]
