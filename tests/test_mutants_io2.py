"""IO pieces that mutation testing (issue #20, tests/mutation-mut-io.md) found unchecked, and stdin's name in
the reader's messages; each checked against rows, numbers or texts computed here."""

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from jacprop.cli import main

SAMPLES = Path(__file__).resolve().parent.parent / "sample_models"
MODEL = SAMPLES / "bishop_tanh.npz"
NAMES = "temperature,pressure,flow"


@pytest.mark.parametrize("data,message", [
    (f"{NAMES}\n1,2,3\n4,\xff5,6\n".encode("latin-1"), "stdin: not UTF-8 text (invalid start byte)"),
    (b"", "stdin: empty input: expected a header line and rows of numbers"),
])
def test_stdin_is_named_stdin_in_the_readers_errors(data, message):
    """stdin is "stdin" in an error, as in propagate's read-back of jacobian output, never "-"."""
    r = CliRunner().invoke(main, ["jacobian", str(MODEL), "-", "--format", "csv"], input=data)
    assert r.exit_code == 2
    assert r.stderr.strip().splitlines()[-1] == f"jacprop: error: {message}"


# ---------------------------------------------------------------------------
# io/matrices.py: --cov/--corr matrices, --direction-file vectors, --expect-y outputs

def test_a_matrix_is_reordered_to_the_models_inputs_with_or_without_row_names(tmp_path):
    from jacprop.io.matrices import read_matrix

    M = np.array([[4.0, 0.5, -1.25], [0.5, 9.0, 2.0], [-1.25, 2.0, 16.0]])  # in the file's order b, c, a
    names = ["a", "b", "c"]
    order = [2, 0, 1]  # a, b, c in the file's order
    want = M[np.ix_(order, order)]
    plain = tmp_path / "m.csv"
    plain.write_bytes(("\ufeff b , c ,a\n\n" + "".join(",".join(map(repr, r)) + "\n" for r in M.tolist())).encode())
    np.testing.assert_array_equal(read_matrix(plain, names, "--cov"), want)
    labelled = tmp_path / "l.csv"
    labelled.write_text("name,b,c,a\n" + "".join(f"{n},{','.join(map(repr, r))}\n"
                                                 for n, r in zip("bca", M.tolist())))
    np.testing.assert_array_equal(read_matrix(labelled, names, "--corr"), want)


@pytest.mark.parametrize("text,error,message", [
    ("", "InputError", "--cov {p}: empty file"),
    ("a,b\n1,0\n0,1\n", "UsageError",
     "--cov {p}: expected a 3 x 3 matrix with a header naming the inputs ['a', 'b', 'c']"),
    ("a,b,c\n1,0,0\n0,1,0\n", "UsageError",
     "--cov {p}: expected a 3 x 3 matrix with a header naming the inputs ['a', 'b', 'c']"),
    ("a,b,c\n1,0,0\n0,x,0\n0,0,1\n", "InputError",
     "--cov {p}: could not convert string to float: 'x'"),
])
def test_a_bad_matrix_is_refused_by_name(tmp_path, text, error, message):
    from jacprop import errors
    from jacprop.io.matrices import read_matrix

    path = tmp_path / "m.csv"
    path.write_text(text)
    with pytest.raises(getattr(errors, error)) as e:
        read_matrix(path, ["a", "b", "c"], "--cov")
    assert type(e.value) is getattr(errors, error)
    assert str(e.value) == message.format(p=path)


def test_a_missing_matrix_or_vector_file_is_named(tmp_path):
    from jacprop.errors import InputError
    from jacprop.io.matrices import read_matrix, read_vector

    path = tmp_path / "none.csv"
    for read, what in ((read_matrix, "--corr"), (read_vector, "--direction-file")):
        with pytest.raises(InputError) as e:
            read(path, ["a"], what)
        assert str(e.value) == f"{what} {path}: cannot read: No such file or directory"


def test_a_vector_names_some_inputs_in_any_order_and_the_rest_are_zero(tmp_path):
    from jacprop.io.matrices import read_vector

    path = tmp_path / "u.csv"
    path.write_bytes("\ufeff c , a\n\n-2.5,0.125\n".encode())
    np.testing.assert_array_equal(read_vector(path, ["a", "b", "c"], "--direction-file"), [0.125, 0.0, -2.5])


@pytest.mark.parametrize("text,error,why", [
    ("a,d\n1,2\n", "UsageError", "unknown input 'd'; "),
    ("a,a\n1,2\n", "UsageError", ""),
    ("a,b\n1,2\n3,4\n", "UsageError", ""),
    ("a,b\n1\n", "UsageError", ""),
    ("a\n", "UsageError", ""),
    ("", "UsageError", ""),
    ("a,b\n1,x\n", "InputError", None),
    ("a,b\n1,inf\n", "InputError", None),
    ("a,b\nnan,1\n", "InputError", None),
])
def test_a_bad_vector_is_refused_by_name(tmp_path, text, error, why):
    from jacprop import errors
    from jacprop.io.matrices import read_vector

    path = tmp_path / "u.csv"
    path.write_text(text)
    with pytest.raises(getattr(errors, error)) as e:
        read_vector(path, ["a", "b", "c"], "--direction-file")
    assert type(e.value) is getattr(errors, error)
    if why is not None:
        assert str(e.value) == (f"--direction-file {path}: {why}expected a header naming inputs among ['a', 'b', 'c'] "
                                "(each once) and one row of as many numbers")
    elif "x" in text:
        assert str(e.value) == f"--direction-file {path}: could not convert string to float: 'x'"
    else:
        assert str(e.value) == f"--direction-file {path}: every value must be finite"


def test_expected_outputs_by_name_or_by_position(tmp_path):
    from jacprop.errors import UsageError
    from jacprop.io.matrices import read_expected

    Y = np.array([[1.5, -2.0], [3.25, 4e-3]])
    named = tmp_path / "n.csv"
    named.write_text("z,other,y\n" + "".join(f"{b!r},7,{a!r}\n" for a, b in Y.tolist()))
    np.testing.assert_array_equal(read_expected(named, ["y", "z"]), Y)
    positional = tmp_path / "p.csv"
    positional.write_text("p,q\n" + "".join(f"{a!r},{b!r}\n" for a, b in Y.tolist()))
    np.testing.assert_array_equal(read_expected(positional, ["y", "z"]), Y)
    with pytest.raises(UsageError) as e:
        read_expected(positional, ["y", "z", "w"])
    assert str(e.value) == f"--expect-y {positional}: expected columns ['y', 'z', 'w'] or 3 numeric columns"


# ---------------------------------------------------------------------------
# io/dialect.py: the options' parsers and the sniffing rules, against the rules written in its docstring

@pytest.mark.parametrize("text,value", [
    ("tab", "\t"), ("TAB", "\t"), ("\\t", "\t"), ("\t", "\t"), ("comma", ","), ("Semicolon", ";"), ("pipe", "|"),
    ("space", " "), (" ", " "), (";", ";"), ("|", "|"), (":", ":"), (None, None), ("\\T", "\t"), ("Pipe", "|"),
])
def test_delimiter_names_and_characters(text, value):
    from jacprop.io.dialect import parse_delimiter

    assert parse_delimiter(text) == value


@pytest.mark.parametrize("text", ['"', "\r", "\n", "a", "T", "7", ".", "+", "-", ";;", "tabs", ""])
def test_a_delimiter_that_is_no_delimiter_is_refused(text):
    from jacprop.errors import UsageError
    from jacprop.io.dialect import parse_delimiter

    with pytest.raises(UsageError) as e:
        parse_delimiter(text)
    assert str(e.value) == (f"--delimiter {text!r}: expected one character (e.g. ';' or '|') or one of tab, \\t, "
                            "comma, semicolon, pipe, space; not a letter, digit, quote, '.', '+' or '-'")


@pytest.mark.parametrize("text,ok", [("#", True), ("%", True), (";", True), (None, True), ('"', False),
                                     ("\r", False), ("\n", False), ("x", False), ("1", False), (".", False),
                                     ("+", False), ("-", False), ("##", False), ("", False)])
def test_comment_characters(text, ok):
    from jacprop.errors import UsageError
    from jacprop.io.dialect import parse_comment

    if ok:
        assert parse_comment(text) == text
    else:
        with pytest.raises(UsageError) as e:
            parse_comment(text)
        assert str(e.value) == f"--comment {text!r}: expected one character such as '#'"


def test_na_values_tokens_and_the_numbers_among_them():
    from jacprop.io.dialect import na_numbers, parse_na_values

    assert parse_na_values(None) is None and parse_na_values([]) is None
    assert parse_na_values(["NA, -999", " ,NA", "x"]) == ("NA", "-999", "", "x")
    assert na_numbers(["NA", "-999", "", "nan", "1e3", "inf", "NaN"]) == [-999.0, 1000.0, float("inf")]


@pytest.mark.parametrize("line,path,delimiter", [
    ("a,b;c\n", "x.csv", ","), ("a;b;c,d\n", "x.csv", ";"), ("a\tb\tc;d\n", "x.csv", "\t"), ("a|b|c\n", "x", "|"),
    ("a;b,c|d\te\n", "x.csv", ","), ("a|b\tc\n", "x.csv", "\t"), ("a|b;c\n", "x.csv", ";"), ("abc\n", "x.csv", ","),
    ('"a;b;c",d,"e;f"\n', "x.csv", ","), ("a,b,c\n", "dir/X.TSV", "\t"), ("a,b\n", "x.tsv.gz", "\t"),
    ("a,b\n", "x.tsv.bz2", "\t"), ("a,b\n", "x.tsv.xz", "\t"), ("a,b\n", "x.tsv.zip", ","), ("a,b\n", "tsv.d/x", ","),
])
def test_the_sniffed_delimiter_is_the_most_frequent_outside_quotes_ties_in_order(line, path, delimiter):
    from jacprop.io.dialect import sniff_delimiter

    assert sniff_delimiter(line, path) == delimiter


@pytest.mark.parametrize("cells,data", [
    (["1", " 2.5", "-3e4 "], True), (["NA", "1"], True), (["NA", ""], False), (["1", "x"], False),
    (["x", "NA"], False), ([], False), (["inf", "nan"], True),
])
def test_a_first_line_is_data_when_every_field_is_a_number_or_missing(cells, data):
    from jacprop.io.dialect import NA_VALUES, is_data_line

    assert is_data_line(cells, NA_VALUES) is data


def test_cutting_a_comment_and_naming_compression_and_delimiters():
    from jacprop.io.dialect import compression_of, cut_comment, shown

    assert cut_comment("1,2 # three\r\n", "#") == "1,2 \n" and cut_comment("1,2\r\n", "#") == "1,2\r\n"
    assert cut_comment("#x\n", "#") == "\n" and cut_comment("1 # a # b\n", "#") == "1 \n"
    assert cut_comment("1,2", "#") == "1,2"  # a last line without its line end keeps its last character
    assert [compression_of(h) for h in (b"\x1f\x8bxxxx", b"BZh91A", b"\xfd7zXZ\x00", b"\xfd7zXZ\x01", b"\x1f")] == [
        "gzip", "bzip2", "xz", None, None]
    assert (shown("\t"), shown(";"), shown("|")) == ("tab ('\\t')", "';'", "'|'")


def test_the_first_bad_utf8_is_located_by_line_and_byte(tmp_path):
    from jacprop.io.dialect import first_bad_utf8

    path = tmp_path / "u.csv"
    path.write_bytes("a,b\n1,2\n\u00e9,\xff\n".encode("latin-1").replace(b"\xe9", "\u00e9".encode()))
    assert first_bad_utf8(path) == "line 3, byte 4: not UTF-8 text"
    path.write_bytes("a,b\n\u00e9,1\n".encode())
    assert first_bad_utf8(path) is None and first_bad_utf8(None) is None


# ---------------------------------------------------------------------------
# io/writers.py: formats, the atomic output and each writer's bytes, against texts and arrays built here

@pytest.mark.parametrize("path,fmt,tty,want", [
    ("o.csv", None, False, "csv"), ("O.JSONL", None, False, "jsonl"), ("o.ndjson", None, True, "jsonl"),
    ("d/o.npy", None, False, "npy"), ("o.NPZ", None, False, "npz"), ("o.txt", None, False, "table"),
    ("o.csv", "jsonl", False, "jsonl"), (None, None, True, "table"), (None, None, False, "csv"),
    ("-", None, True, "table"), ("-", None, False, "csv"), ("-", "npz", True, "npz"),
])
def test_the_format_is_the_option_else_the_extension_else_the_terminal(path, fmt, tty, want):
    from jacprop.io.writers import format_for

    assert format_for(path, fmt, stdout_isatty=tty) == want


def test_an_unknown_extension_or_format_is_refused_by_name():
    from jacprop.errors import UsageError
    from jacprop.io.writers import check_format, format_for

    with pytest.raises(UsageError) as e:
        format_for("out.dat")
    assert str(e.value) == "-o out.dat: cannot tell the format from the extension; give --format (table, csv, " \
                           "jsonl, npy, npz)"
    with pytest.raises(UsageError) as e:
        check_format("npy", ("table", "csv"))
    assert str(e.value) == "--format npy is not available here; choose one of table, csv"
    check_format("npz")


def parts_in(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".part"))


def test_atomic_output_appears_whole_keeps_the_mode_and_leaves_no_temporary(tmp_path):
    import os
    import stat

    from jacprop.io.writers import atomic_output, existing_mode

    target = tmp_path / "o.csv"
    old = os.umask(0o022)
    try:
        with atomic_output(target) as out:
            out.file.write(b"one\n")
            assert not target.exists() and len(parts_in(tmp_path)) == 1
            (part,) = parts_in(tmp_path)
            assert part.startswith(".jacprop-") and len(part) == len(".jacprop-") + 12 + len(".part")
        assert target.read_bytes() == b"one\n" and stat.S_IMODE(target.stat().st_mode) == 0o644
        target.chmod(0o600)
        with atomic_output(target) as out:
            out.file.write(b"two\n")
        assert target.read_bytes() == b"two\n" and stat.S_IMODE(target.stat().st_mode) == 0o600
        assert existing_mode(target) == 0o600 and existing_mode(tmp_path) is None
        assert existing_mode(tmp_path / "none") is None
        with pytest.raises(KeyError), atomic_output(target) as out:
            out.file.write(b"three\n")
            raise KeyError("x")
        assert target.read_bytes() == b"two\n" and parts_in(tmp_path) == []
    finally:
        os.umask(old)


def test_a_full_disk_names_the_output_and_a_missing_directory_is_refused(tmp_path):
    import errno

    from jacprop.errors import UsageError
    from jacprop.io.writers import AtomicOutput, atomic_output

    target = tmp_path / "o.csv"
    for code, named in ((errno.ENOSPC, True), (errno.EDQUOT, True), (errno.EFBIG, True), (errno.EIO, False)):
        with pytest.raises(OSError) as e, atomic_output(target):
            raise OSError(code, "full")
        assert e.value.filename == (str(target) if named else None)
        assert not target.exists() and parts_in(tmp_path) == []
    with pytest.raises(OSError) as e, atomic_output(None):
        raise OSError(errno.ENOSPC, "full")
    assert e.value.filename is None
    with pytest.raises(UsageError) as e:
        AtomicOutput(tmp_path / "no" / "o.csv")
    assert str(e.value) == f"-o {tmp_path / 'no' / 'o.csv'}: directory {tmp_path / 'no'} does not exist"


def test_a_write_error_at_commit_or_abort_removes_the_temporary(tmp_path, monkeypatch):
    import io

    from jacprop.io import writers

    class Failing(io.BytesIO):
        def close(self):
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(writers, "open_fd", lambda fd: (writers.os.close(fd), Failing())[1])
    target = tmp_path / "o.csv"
    out = writers.AtomicOutput(target)
    with pytest.raises(OSError):
        out.commit()
    assert parts_in(tmp_path) == [] and not target.exists()
    out = writers.AtomicOutput(target)
    out.abort()  # the close error is swallowed: the run's own error is what the user sees
    assert parts_in(tmp_path) == [] and not target.exists()


def meta(id_name=None, row=True):
    return dict(input_names=["a", "b"], output_names=["y", "z"], id_name=id_name, row=row, npy_field="jacobian")


def arrays(n, seed=0):
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=(n, 2)), "y": rng.normal(size=(n, 2)) * 1e5, "jacobian": rng.normal(size=(n, 2, 2))}


def written(tmp_path, fmt, chunks, m, dtype=np.float64):
    from jacprop.io.writers import jacobian_fields, open_writer

    path = tmp_path / f"o.{fmt}"
    w = open_writer(fmt, path, jacobian_fields(m["input_names"], m["output_names"]), m, dtype=dtype)
    for rows, ids, a in chunks:
        w.write(rows, ids, a)
    w.close()
    return path, w


def two_chunks(with_ids):
    a, b = arrays(3, 1), arrays(2, 2)
    ids = (np.array(["p,1", 'q"2', "r"]), np.array(["s\nt", "u"])) if with_ids else (None, None)
    return [(np.array([1, 2, 4]), ids[0], a), (np.array([5, 9]), ids[1], b)]


@pytest.mark.parametrize("with_ids,row", [(False, True), (True, True), (True, False), (False, False)])
def test_csv_is_the_header_once_then_row_id_y_and_j_in_repr(tmp_path, with_ids, row):
    chunks = two_chunks(with_ids)
    path, w = written(tmp_path, "csv", chunks, meta("name" if with_ids else None, row))
    head = (["row"] if row else []) + (["name"] if with_ids else []) + ["y", "z"] + [
        "d(y)/d(a)", "d(y)/d(b)", "d(z)/d(a)", "d(z)/d(b)"]
    quoted = {"p,1": '"p,1"', 'q"2': '"q""2"', "s\nt": '"s\nt"'}
    lines = [",".join(head)]
    for rows, ids, a in chunks:
        for i in range(len(rows)):
            cells = ([str(rows[i])] if row else []) + ([quoted.get(ids[i], ids[i])] if with_ids else [])
            lines.append(",".join(cells + [repr(v) for v in [*a["y"][i].tolist(), *a["jacobian"][i].ravel().tolist()]]))
    assert path.read_text() == "\n".join(lines) + "\n"
    assert w.n == 5


def test_the_csv_header_quotes_names_and_refuses_an_id_column_named_row():
    from jacprop.errors import UsageError
    from jacprop.io.writers import Field, csv_header

    fields = [Field("x", (1,)), Field("y", (3,), ["a,b", 'say "hi"', "c\rd"])]
    assert csv_header(fields, {"id_name": "id"}) == b'row,id,"a,b","say ""hi""","c\rd"\n'
    assert csv_header(fields, {"row": False}) == b'"a,b","say ""hi""","c\rd"\n'
    assert csv_header(fields, {"row": False, "id_name": "row"}) == b'row,"a,b","say ""hi""","c\rd"\n'
    with pytest.raises(UsageError) as e:
        csv_header(fields, {"id_name": "row"})
    assert str(e.value) == ("--id-column row: the output has a 'row' column of its own (the data row number); give "
                            "--no-row to leave it out, or rename the id column")


@pytest.mark.parametrize("with_ids", [False, True])
def test_jsonl_is_one_json_dumps_record_per_row_with_the_names(tmp_path, with_ids):
    import json

    chunks = two_chunks(with_ids)
    path, w = written(tmp_path, "jsonl", chunks, meta("name" if with_ids else None))
    want = []
    for rows, ids, a in chunks:
        for i in range(len(rows)):
            rec = {"row": int(rows[i]), **({"id": str(ids[i])} if with_ids else {}), "x": a["x"][i].tolist(),
                   "y": a["y"][i].tolist(), "jacobian": a["jacobian"][i].tolist(), "input_names": ["a", "b"],
                   "output_names": ["y", "z"]}
            want.append(json.dumps(rec))
    assert path.read_text() == "\n".join(want) + "\n"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("with_ids", [False, True])
def test_npz_and_npy_hold_every_array_with_rows_names_and_ids(tmp_path, dtype, with_ids):
    chunks = two_chunks(with_ids)
    m = meta("name" if with_ids else None)
    m["npz_extra"] = {"direction": np.array([0.5, -1.0])}
    path, _ = written(tmp_path, "npz", chunks, m, dtype)
    with np.load(path, allow_pickle=False) as z:
        got = {k: z[k] for k in z.files}
    assert sorted(got) == sorted(["x", "y", "jacobian", "rows", "input_names", "output_names", "direction"]
                                 + (["ids"] if with_ids else []))
    for name in ("x", "y", "jacobian"):
        want = np.concatenate([a[name] for _, _, a in chunks]).astype(dtype)
        assert got[name].dtype == dtype
        np.testing.assert_array_equal(got[name], want)
    assert got["rows"].dtype == np.int64 and got["rows"].tolist() == [1, 2, 4, 5, 9]
    assert got["input_names"].tolist() == ["a", "b"] and got["output_names"].tolist() == ["y", "z"]
    np.testing.assert_array_equal(got["direction"], [0.5, -1.0])
    if with_ids:
        assert got["ids"].tolist() == ["p,1", 'q"2', "r", "s\nt", "u"]
    path, _ = written(tmp_path, "npy", chunks, m, dtype)
    J = np.load(path, allow_pickle=False)
    assert J.dtype == dtype and J.shape == (5, 2, 2)
    np.testing.assert_array_equal(J, np.concatenate([a["jacobian"] for _, _, a in chunks]).astype(dtype))


def test_an_npz_without_rows_has_empty_arrays_of_the_right_shape(tmp_path):
    path, w = written(tmp_path, "npz", [], meta("name"))
    with np.load(path, allow_pickle=False) as z:
        assert z["jacobian"].shape == (0, 2, 2) and z["x"].shape == (0, 2) and z["rows"].shape == (0,)
        assert z["ids"].shape == (0,) and z["ids"].dtype.kind == "U"
    assert w.n == 0
    path, _ = written(tmp_path, "csv", [], meta())
    assert path.read_bytes() == b""


# ---------------------------------------------------------------------------
# io/readback.py: what `jacprop jacobian`/`hessian` wrote, read back, against arrays and texts written here

def read_back(source):
    from jacprop.io.readback import read_jacobian

    s = read_jacobian(source)
    parts = list(s.chunks)
    return s, parts


def test_read_back_from_stdin_is_named_stdin(monkeypatch):
    import io
    import sys

    from jacprop.errors import InputError

    class Stdin:
        def __init__(self, data):
            self.buffer = io.BufferedReader(io.BytesIO(data))

    monkeypatch.setattr(sys, "stdin", Stdin(b""))
    with pytest.raises(InputError) as e:
        read_back("-")
    assert str(e.value) == "stdin: empty input: expected what `jacprop jacobian` writes (csv, jsonl or npz)"
    monkeypatch.setattr(sys, "stdin", Stdin(b' {"row": 7, "y": [1.5], "jacobian": [[2.5, -3]]}\n'))
    s, parts = read_back("-")
    assert (s.input_names, s.output_names, s.has_x) == (["x0", "x1"], ["y0"], False)
    ((rows, ids, X, Y, J),) = parts
    assert rows.tolist() == [7] and ids is None and X is None
    np.testing.assert_array_equal(J, [[[2.5, -3.0]]])
    monkeypatch.setattr(sys, "stdin", Stdin(b"y,d(y)/d(a)\n1,\xff\n"))
    with pytest.raises(InputError) as e:
        read_back("-")
    assert str(e.value) == "stdin: not UTF-8 text (invalid start byte)"


def test_read_back_an_npz_of_float32_with_ids_rows_and_a_hessian(tmp_path):
    J = np.arange(12, dtype=np.float32).reshape(2, 2, 3) / 8
    H = np.arange(36, dtype=np.float32).reshape(2, 2, 3, 3) / 4
    X = np.array([[1, 2, 3], [4, 5, 6]], np.float32) / 16
    path = tmp_path / "h.npz"
    np.savez(path, y=np.ones((2, 2), np.float32), jacobian=J, hessian=H, x=X, ids=np.array(["p", "q"]),
             rows=np.array([3, 8], np.int32), input_names=np.array(["a", "b", "c"]), output_names=np.array(["y", "z"]))
    s, ((rows, ids, Xb, Y, Jb),) = read_back(path)
    assert (s.input_names, s.output_names, s.id_name, s.has_x, s.n_rows) == (["a", "b", "c"], ["y", "z"], "id", True, 2)
    assert rows.dtype == np.int64 and rows.tolist() == [3, 8] and ids.tolist() == ["p", "q"]
    for got, want in ((Xb, X), (Y, np.ones((2, 2))), (Jb, J), (s.hessian, H)):
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, want.astype(np.float64))
    assert s.hessian_diagonal is False
    np.savez(path, y=np.ones((2, 2)), jacobian=J, hessian_diagonal=H[..., 0], input_names=np.array(["a", "b", "c"]),
             output_names=np.array(["y", "z"]))
    s, ((rows, ids, Xb, Y, Jb),) = read_back(path)
    assert s.hessian_diagonal is True and s.hessian.dtype == np.float64 and s.id_name is None and not s.has_x
    np.testing.assert_array_equal(s.hessian, H[..., 0])
    assert rows.tolist() == [1, 2] and Xb is None and ids is None


@pytest.mark.parametrize("key,shape,message", [
    ("hessian", (2, 2, 3), "hessian has shape (2, 2, 3), but the jacobian (2, 2, 3) needs (2, 2, 3, 3)"),
    ("hessian_diagonal", (2, 2, 3, 3), "hessian_diagonal has shape (2, 2, 3, 3), but the jacobian (2, 2, 3) "
                                       "needs (2, 2, 3)"),
])
def test_read_back_refuses_a_hessian_of_the_wrong_shape(tmp_path, key, shape, message):
    from jacprop.errors import InputError

    path = tmp_path / "h.npz"
    np.savez(path, y=np.ones((2, 2)), jacobian=np.ones((2, 2, 3)), input_names=np.array(["a", "b", "c"]),
             output_names=np.array(["y", "z"]), **{key: np.ones(shape)})
    with pytest.raises(InputError) as e:
        read_back(path)
    assert str(e.value) == f"{path}: {message}"


def test_a_hessian_beside_a_diagonal_is_the_full_one(tmp_path):
    path = tmp_path / "h.npz"
    H = np.arange(8.0).reshape(1, 2, 2, 2)
    np.savez(path, y=np.ones((1, 2)), jacobian=np.ones((1, 2, 2)), input_names=np.array(["a", "b"]),
             output_names=np.array(["y", "z"]), hessian=H, hessian_diagonal=np.ones((1, 2, 2)))
    s, _ = read_back(path)
    assert s.hessian_diagonal is False
    np.testing.assert_array_equal(s.hessian, H)


def test_read_back_jsonl_with_names_ids_x_in_chunks_and_a_bad_record_named_by_its_lines(tmp_path, monkeypatch):
    import json

    from jacprop.errors import InputError
    from jacprop.io import readback

    monkeypatch.setattr(readback, "CHUNK_ROWS", 3)
    recs = [{"row": 2 * i + 1, "id": i, "x": [i, -i], "y": [0.5 * i], "jacobian": [[i / 4, 1 - i]],
             "input_names": ["p", "q"], "output_names": ["v"]} for i in range(7)]
    path = tmp_path / "j.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" + ("\n" if i == 1 else "") for i, r in enumerate(recs)))
    s, parts = read_back(path)
    assert (s.input_names, s.output_names, s.id_name, s.has_x) == (["p", "q"], ["v"], "id", True)
    assert [len(p[0]) for p in parts] == [3, 3, 1]
    rows, ids, X, Y, J = (np.concatenate([p[i] for p in parts]) for i in range(5))
    assert rows.tolist() == [2 * i + 1 for i in range(7)] and ids.tolist() == [str(i) for i in range(7)]
    np.testing.assert_array_equal(X, [[i, -i] for i in range(7)])
    np.testing.assert_array_equal(Y, [[0.5 * i] for i in range(7)])
    np.testing.assert_array_equal(J, [[[i / 4, 1 - i]] for i in range(7)])
    recs[4]["jacobian"] = [[1.0]]
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    with pytest.raises(InputError) as e:
        read_back(path)
    assert str(e.value).startswith(f"{path}: line 5: malformed record (")  # the record's own line
    del recs[4]["jacobian"]
    path.write_text("".join(json.dumps(r) + "\n" for r in recs[3:]))  # the first record is fine, not the second
    with pytest.raises(InputError) as e:
        read_back(path)
    assert str(e.value) == f"{path}: line 2: malformed record ('jacobian')"


@pytest.mark.parametrize("names", [
    '"input_names": ["p"], "output_names": ["v"]', '"input_names": ["p", "q"], "output_names": ["v", "w"]',
    '"input_names": "pq", "output_names": ["v"]', '"input_names": ["p", "q"], "output_names": "v"',
    '"input_names": ["p", "q"]',
])
def test_jsonl_names_that_do_not_fit_the_jacobian_fall_back_to_x_and_y(tmp_path, names):
    path = tmp_path / "j.jsonl"
    path.write_text('{"row": 1, "y": [1], "jacobian": [[2, 3]], ' + names + "}\n")
    s, _ = read_back(path)
    assert (s.input_names, s.output_names) == (["x0", "x1"], ["y0"])


@pytest.mark.parametrize("first", ['{"row": 1, "y": [1], "jacobian": []}', '{"row": 1, "y": [1], "jacobian": 3}',
                                   '{"row": 1, "y": [1]', '{"row": 1, "y": [1], "jacobian": [[]]}x'])
def test_a_first_jsonl_line_that_is_no_record_is_refused(tmp_path, first):
    from jacprop.errors import InputError

    path = tmp_path / "j.jsonl"
    path.write_text(first + "\n")
    with pytest.raises(InputError) as e:
        read_back(path)
    assert str(e.value).startswith(f"{path}: line 1: not a `jacprop jacobian --format jsonl` record (")


def test_read_back_csv_with_an_id_column_and_rows_and_j_in_output_major_order(tmp_path):
    path = tmp_path / "j.csv"
    path.write_text("row,name,y,z,d(y)/d(a),d(y)/d(b),d(z)/d(a),d(z)/d(b)\n"
                    "4,p,1,2,3,4,5,6\n9,q,7,8,9,10,11,nan\n")
    s, ((rows, ids, X, Y, J),) = read_back(path)
    assert (s.input_names, s.output_names, s.id_name, s.has_x) == (["a", "b"], ["y", "z"], "name", False)
    assert rows.dtype == np.int64 and rows.tolist() == [4, 9] and ids.tolist() == ["p", "q"] and X is None
    np.testing.assert_array_equal(Y, [[1, 2], [7, 8]])
    np.testing.assert_array_equal(J, [[[3, 4], [5, 6]], [[9, 10], [11, np.nan]]])
    path.write_text("row,y,d(y)/d(a)\n1,2,3\ninf,2,3\n")
    from jacprop.errors import InputError

    with pytest.raises(InputError) as e:
        read_back(path)
    assert str(e.value) == f"{path}: row 2: row inf is not a row number"
    path.write_text("row,y,d(y)/d(a)\n-1,2,3\n")
    with pytest.raises(InputError) as e:
        read_back(path)
    assert str(e.value) == f"{path}: row 1: row -1.0 is not a row number"


def test_a_csv_output_named_row_is_an_output_not_the_row_numbers(tmp_path):
    path = tmp_path / "j.csv"
    path.write_text("row,d(row)/d(a)\n0.5,3\n-2,4\n")
    s, ((rows, ids, X, Y, J),) = read_back(path)
    assert s.output_names == ["row"] and s.id_name is None and rows.tolist() == [1, 2]
    np.testing.assert_array_equal(Y, [[0.5], [-2]])
    np.testing.assert_array_equal(J, [[[3]], [[4]]])


# ---------------------------------------------------------------------------
# io/fastcsv.py: pyarrow's parse itself (the reader falls back to numpy when it returns None, so only a direct
# call shows whether pyarrow read the chunk, and read it right)

def test_arrow_parse_reads_the_chosen_columns_in_the_order_asked_even_twice():
    pytest.importorskip("pyarrow")
    from jacprop.io.fastcsv import arrow_parse

    rng = np.random.default_rng(3)
    X = rng.normal(size=(40000, 4)) * [1, 1e-300, 1e300, 7]  # about 3 MiB: more than one 1 MiB pyarrow block
    X[5, 2], X[7, 0] = np.nan, np.nan
    lines = ["|".join("NA" if np.isnan(v) else repr(v) for v in row) + "\n" for row in X.tolist()]
    data = "".join(lines).encode()
    got = arrow_parse(data, len(X), 4, [2, 0, 2, 3], "|", ("NA",))
    assert got is not None and got.dtype == np.float64 and got.shape == (len(X), 4)
    assert got.tobytes() == X[:, [2, 0, 2, 3]].tobytes()
    assert arrow_parse(data, len(X) - 1, 4, [0], "|", ("NA",)) is None  # not the row count expected
    assert arrow_parse(data, len(X), 4, [0], ",", ("NA",)) is None  # another delimiter: one column of text
    assert arrow_parse(b'1,"2",3\n', 1, 3, [0, 1, 2], ",").tolist() == [[1.0, 2.0, 3.0]]  # quotes around a number
    assert arrow_parse(b"1,\n", 1, 2, [0, 1], ",", ("",)).tolist()[0][0] == 1.0
    assert np.isnan(arrow_parse(b"1,x\n", 1, 2, [0, 1], ",", ("x",))[0, 1])
    assert arrow_parse(b"1,2\n\n3,4\n", 3, 2, [0, 1], ",") is None  # an empty line is not skipped: numpy decides
    assert arrow_parse(b"1,2\n", 1, 2, [0, 1], ",", ()).tolist() == [[1.0, 2.0]]
    assert arrow_parse(b"1,\n", 1, 2, [0, 1], ",", ()) is None  # an empty cell without the "" token


# ---------------------------------------------------------------------------
# io/reader.py

@pytest.mark.parametrize("n", [3, 1500])  # numpy's loadtxt; a plain block for pyarrow (FAST_MIN_ROWS = 1024)
def test_a_quote_left_open_in_an_id_cell_ends_at_its_line_end(tmp_path, n):
    """A row is a line: an id cell `"p` that opens a quote and never closes it does not swallow the next lines
    (loadtxt reads a quoted field on over line ends, and gave one row of numbers for three ids)."""
    from jacprop.io import reader as csvio

    X = np.arange(3.0 * n).reshape(n, 3) / 8
    ids = [f"r{i}" for i in range(n)]
    ids[1] = '"p'  # line 3 (row 2)
    path = tmp_path / "q.csv"
    path.write_text("a,b,c,id\n" + "".join(f"{a!r},{b!r},{c!r},{i}\n" for (a, b, c), i in zip(X.tolist(), ids)))
    got, got_ids, _ = csvio.read_all(path, id_column="id")
    np.testing.assert_array_equal(got, X)
    assert got_ids.tolist() == [i if i != '"p' else "p\n" for i in ids]


@pytest.mark.parametrize("block", range(1, 13))
def test_pieces_of_one_column_end_at_line_ends_whatever_their_second_or_last_but_one_character(
        tmp_path, monkeypatch, block):
    """One short column: pieces of ``block`` characters often have a line end as their second or their last but
    one character; each is still completed to its line end, so no number is cut in two."""
    from jacprop.io import reader as csvio

    monkeypatch.setattr(csvio, "BLOCK_CHARS", block)
    values = [5, 12345, 7, 123, 1, 99999, 42, 3, 1000, 8, 76, 2, 654321, 9, 11]
    path = tmp_path / "one.csv"
    path.write_text("v\n" + "".join(f"{v}\n" for v in values))
    got, _, _ = csvio.read_all(path, chunk_rows=4)
    np.testing.assert_array_equal(got, np.array(values, dtype=float)[:, None])


def test_a_truncated_gzip_names_the_decompressors_own_error(tmp_path):
    import gzip
    import zlib

    from jacprop.errors import InputError
    from jacprop.io import reader as csvio

    data = gzip.compress(("a,b,c\n" + "1,2,3\n" * 20000).encode())
    path = tmp_path / "x.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    try:  # the error Python's gzip gives for these bytes, found independently of the reader
        gzip.decompress(path.read_bytes())
    except (EOFError, OSError, zlib.error) as e:
        expected = str(e)
    with pytest.raises(InputError) as e:
        csvio.read_all(path)
    assert str(e.value) == f"{path}: corrupt or truncated gzip data ({expected})"


@pytest.mark.parametrize("n,chunk_rows", [(6, 4), (1500, 65536)])  # small blocks (numpy), a large one (pyarrow)
def test_lines_of_only_white_space_are_not_rows_in_a_plain_block(tmp_path, n, chunk_rows):
    """White space only, as the last line of a block too (line 4 of 4, the file's last line): not a row."""
    from jacprop.io import reader as csvio

    X = np.arange(3.0 * n).reshape(n, 3) + 0.5
    text = [f"{a!r},{b!r},{c!r}" for a, b, c in X.tolist()]
    text[3:3] = ["   "]
    text.append("\t")
    path = tmp_path / "w.csv"
    path.write_text("a,b,c\n" + "\n".join(text) + "\n")
    parts = list(csvio.CsvReader(path, chunk_rows=chunk_rows).chunks())
    np.testing.assert_array_equal(np.concatenate([p.X for p in parts]), X)
    assert np.concatenate([p.rows for p in parts]).tolist() == list(range(1, n + 1))


@pytest.mark.parametrize("block", range(3, 15))
def test_chunks_with_many_blank_lines_hold_chunk_rows_rows_whatever_the_piece_size(tmp_path, monkeypatch, block):
    """Blank lines send chunks through the line-by-line path, which reads on (a new piece) when the lines held
    run out; every chunk still has exactly ``chunk_rows`` rows (the last the rest), the file's rows in order."""
    from jacprop.io import reader as csvio

    monkeypatch.setattr(csvio, "BLOCK_CHARS", block)
    values = np.arange(1.0, 24.0)
    lines = []
    for i, v in enumerate(values.tolist()):
        lines += [repr(v)] + [""] * (i % 3)
    path = tmp_path / "b.csv"
    path.write_text("v\n" + "\n".join(lines) + "\n")
    parts = list(csvio.CsvReader(path, chunk_rows=4).chunks())
    assert [len(p.rows) for p in parts] == [4, 4, 4, 4, 4, 3]
    np.testing.assert_array_equal(np.concatenate([p.X for p in parts]).ravel(), values)
    assert np.concatenate([p.rows for p in parts]).tolist() == list(range(1, 24))


@pytest.mark.parametrize("cell,what", [("inf", ""), ("-inf", ""), ("nan", " (a NaN or missing cell: see --na-values)"),
                                       ("NA", " (a NaN or missing cell: see --na-values)")])
def test_a_cell_that_is_not_finite_is_named_with_its_row_and_column(tmp_path, cell, what):
    from jacprop.errors import InputError
    from jacprop.io import reader as csvio

    path = tmp_path / "f.csv"
    path.write_text(f"a,b,c\n1,2,3\n\n4,{cell},6\n")
    with pytest.raises(InputError) as e:
        csvio.read_all(path)
    value = float(cell) if cell != "NA" else float("nan")
    assert str(e.value) == (f"{path}: row 2, column 'b': value {value} is not finite{what} "
                            "(use --on-invalid skip or keep)")


def test_skipped_rows_are_counted_over_every_chunk_and_the_kept_rows_keep_their_ids(tmp_path):
    from jacprop.io import reader as csvio

    rows = [(f"p{i}", float(i), float("nan") if i % 4 == 1 else i / 2) for i in range(1, 11)]
    path = tmp_path / "s.csv"
    path.write_text("id,a,b\n" + "".join(f"{i},{a!r},{b!r}\n" for i, a, b in rows))
    reader = csvio.CsvReader(path, id_column="id", on_invalid="skip", chunk_rows=3)
    parts = list(reader.chunks())
    kept = [r for r in rows if r[2] == r[2]]
    assert reader.skipped == len(rows) - len(kept) == 3
    assert np.concatenate([p.ids for p in parts]).tolist() == [i for i, _, _ in kept]
    np.testing.assert_array_equal(np.concatenate([p.X for p in parts]), [[a, b] for _, a, b in kept])
    assert np.concatenate([p.rows for p in parts]).tolist() == [int(i[1:]) for i, _, _ in kept]


def test_read_back_jsonl_of_whole_numbers_gives_float64_and_the_open_file(tmp_path):
    path = tmp_path / "i.jsonl"
    path.write_text('{"row": 1, "x": [1, 2], "y": [3], "jacobian": [[4, 5]]}\n')
    s, ((rows, ids, X, Y, J),) = read_back(path)
    assert X.dtype == Y.dtype == J.dtype == np.float64 and J.tolist() == [[[4.0, 5.0]]] and X.tolist() == [[1.0, 2.0]]
    assert s.file.name == str(path)  # the progress display reads how far it is
    csv = tmp_path / "i.csv"
    csv.write_text("y,d(y)/d(a)\n1,2\n")
    s, _ = read_back(csv)
    assert s.file.name == str(csv)


def test_read_back_an_npz_that_lacks_arrays_says_what_wrote_it(tmp_path):
    from jacprop.errors import InputError

    path = tmp_path / "x.npz"
    np.savez(path, y=np.ones((1, 1)), jacobian=np.ones((1, 1, 1)))
    with pytest.raises(InputError) as e:
        read_back(path)
    assert str(e.value) == (f"{path}: NPZ lacks ['input_names', 'output_names']; expected the output of "
                            "`jacprop jacobian --format npz`")


def test_read_back_csv_with_semicolons_in_names_an_id_without_row_numbers_and_other_columns(tmp_path):
    """The CSV is comma-separated whatever the names hold (a sniffer would take ';' here); the id column is the
    first other column also without a row column; other columns are not read as outputs or J."""
    path = tmp_path / "j.csv"
    path.write_text("name,note,y;1,d(y;1)/d(p;q;r;s),d(y;1)/d(t)\na,7,1.5,2.5,-3\nb,8,4,5,6\n")
    s, ((rows, ids, X, Y, J),) = read_back(path)
    assert (s.input_names, s.output_names, s.id_name) == (["p;q;r;s", "t"], ["y;1"], "name")
    assert rows.tolist() == [1, 2] and ids.tolist() == ["a", "b"]
    np.testing.assert_array_equal(Y, [[1.5], [4.0]])
    np.testing.assert_array_equal(J, [[[2.5, -3.0]], [[5.0, 6.0]]])


def test_a_one_by_one_matrix_and_names_holding_a_line_break(tmp_path):
    """D = 1 (one row below the header); a quoted name may hold CRLF, kept as written (csv reads with newline='')."""
    from jacprop.io.matrices import read_matrix, read_vector

    path = tmp_path / "m.csv"
    path.write_text("a\n2.25\n")
    np.testing.assert_array_equal(read_matrix(path, ["a"], "--cov"), [[2.25]])
    names = ["p\r\nq", "b"]
    path.write_bytes(b'"p\r\nq",b\r\n1,0.5\r\n-0.5,4\r\n')
    np.testing.assert_array_equal(read_matrix(path, names, "--cov"), [[1, 0.5], [-0.5, 4]])
    path.write_bytes(b'b,"p\r\nq"\r\n3,-7\r\n')
    np.testing.assert_array_equal(read_vector(path, names, "--direction-file"), [-7.0, 3.0])


def test_read_back_an_npz_never_unpickles_and_without_a_hessian_has_none(tmp_path):
    from jacprop.errors import InputError

    path = tmp_path / "o.npz"
    base = dict(y=np.ones((1, 1)), jacobian=np.ones((1, 1, 2)), output_names=np.array(["y"]))
    np.savez(path, input_names=np.array(["a", "b"], dtype=object), **base)  # an object array: a pickle inside
    with pytest.raises(InputError) as e:
        read_back(path)
    assert str(e.value) == f"{path}: unreadable NPZ (Object arrays cannot be loaded when allow_pickle=False)"
    np.savez(path, input_names=np.array(["a", "b"]), **base)
    s, _ = read_back(path)
    assert s.hessian is None and s.hessian_diagonal is False


def test_an_underscore_number_is_refused_on_every_path_and_close_closes_the_file(tmp_path):
    """float() takes '1_000', numpy's parser does not: the cell-by-cell path (here because of the NA cell) refuses
    it too, so the result never depends on the path; and close() closes the input file."""
    from jacprop.errors import InputError
    from jacprop.io import reader as csvio

    path = tmp_path / "u.csv"
    path.write_text("a,b\nNA,2\n1_000,3\n")
    with pytest.raises(InputError) as e:
        csvio.read_all(path, on_invalid="keep")
    assert str(e.value) == f"{path}: row 2 (line 3), column 'a': '1_000' is not a number"
    reader = csvio.CsvReader(path)
    reader.close()
    assert reader.file.closed


def test_a_missing_input_is_named_with_the_systems_reason(tmp_path):
    import errno
    import os

    from jacprop.errors import InputError
    from jacprop.io import reader as csvio

    path = tmp_path / "none.csv"
    with pytest.raises(InputError) as e:
        csvio.CsvReader(path)
    assert str(e.value) == f"{path}: cannot open input: {os.strerror(errno.ENOENT)}"


@pytest.mark.parametrize("line,fields", [("4,5,6,7", 4), ("4,5,6,7,8", 5), ("4,5", 2), ('4,"5",6,7', 4),
                                         ('"4,5",6', 2)])
def test_a_row_of_the_wrong_width_is_refused_on_the_line_by_line_path(tmp_path, line, fields):
    """The blank line sends the chunk line by line (numpy's loadtxt, which ignores extra fields): each line's fields
    are counted, a quoted delimiter not being a separator."""
    from jacprop.errors import InputError
    from jacprop.io import reader as csvio

    path = tmp_path / "w.csv"
    path.write_text(f"a,b,c\n1,2,3\n\n{line}\n")
    with pytest.raises(InputError) as e:
        csvio.read_all(path)
    assert str(e.value) == f"{path}: row 2 (line 4): {fields} fields, but the header has 3"


def test_atomic_output_to_stdout_and_when_no_temporary_can_be_made(tmp_path, monkeypatch, capfdbinary):
    import errno
    import os

    from jacprop.errors import UsageError
    from jacprop.io import writers

    assert writers.format_for(None) == "csv"  # stdout not a terminal unless told
    with writers.atomic_output("-") as out:
        out.file.write(b"to stdout\n")
    assert capfdbinary.readouterr().out == b"to stdout\n" and os.listdir(tmp_path) == []
    monkeypatch.chdir(tmp_path)
    calls = []
    monkeypatch.setattr(writers.secrets, "token_hex", lambda n: calls.append(n) or "ab" * n)
    taken = tmp_path / f".jacprop-{'ab' * 6}.part"
    taken.write_bytes(b"someone else's")
    target = tmp_path / "o.csv"
    with pytest.raises(UsageError) as e:
        writers.AtomicOutput(target)
    assert str(e.value) == f"-o {target}: cannot write there: {tmp_path}: no free temporary file name"
    assert calls == [6] * 100 and taken.read_bytes() == b"someone else's"
    taken.unlink()

    def refuse(fd, mode):
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))

    target.write_bytes(b"old")
    monkeypatch.setattr(writers.os, "fchmod", refuse)
    with pytest.raises(UsageError) as e:
        writers.AtomicOutput(target)
    assert str(e.value) == f"-o {target}: cannot write there: {os.strerror(errno.EPERM)}"
    assert sorted(os.listdir(tmp_path)) == ["o.csv"] and target.read_bytes() == b"old"


def test_csv_rows_are_numbered_unless_meta_says_row_false(tmp_path):
    m = meta()
    del m["row"]
    path, _ = written(tmp_path, "csv", [(np.array([3]), None, {"x": np.zeros((1, 2)), "y": np.array([[0.5, 2.0]]),
                                                              "jacobian": np.array([[[1.0, -1.0], [0.25, 4.0]]])})], m)
    assert path.read_text() == "row,y,z,d(y)/d(a),d(y)/d(b),d(z)/d(a),d(z)/d(b)\n3,0.5,2.0,1.0,-1.0,0.25,4.0\n"


def test_open_writer_checks_the_format_allowed_and_the_csv_header_before_any_file(tmp_path):
    from jacprop.errors import UsageError
    from jacprop.io.writers import Field, csv_header, jacobian_fields, open_writer

    assert csv_header([Field("y", (2,), ["Xa", "b X"])], {"row": False}) == b"Xa,b X\n"  # only , " CR LF quote
    fields, path = jacobian_fields(["a", "b"], ["y", "z"]), tmp_path / "o.csv"
    with pytest.raises(UsageError) as e:
        open_writer("npy", path, fields, meta(), allowed=("table", "csv"))
    assert str(e.value) == "--format npy is not available here; choose one of table, csv"
    with pytest.raises(UsageError) as e:
        open_writer("csv", path, fields, meta(id_name="row"))
    assert str(e.value).startswith("--id-column row: the output has a 'row' column of its own")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # refused before the temporary was made
    w = open_writer("jsonl", tmp_path / "o.jsonl", fields, meta(id_name="row"))  # JSON Lines has "id": no clash
    w.write(np.array([1]), np.array(["p"]), arrays(1))
    w.close()
    assert (tmp_path / "o.jsonl").read_text().startswith('{"row": 1, "id": "p", ')


# ---------------------------------------------------------------------------
# io/numtext.py

@pytest.mark.parametrize("dtype", [np.float64, np.int64])
def test_jsonl_lines_are_json_dumps_for_any_field_dtype_and_one_wide_tails(dtype):
    """A field of whole numbers stays whole (json.dumps writes 3, not 3.0); a tail of width one nests as [[x]];
    no rows, no bytes."""
    import json

    from jacprop.io.writers import Field, jsonl_lines

    n = 300  # above ARROW_MIN_VALUES: pyarrow formats the floats
    rng = np.random.default_rng(5)
    arrays = {"y": rng.normal(size=(n, 1)), "jacobian": rng.normal(size=(n, 1, 1)),
              "k": (rng.integers(-5, 5, size=(n, 2)) if dtype == np.int64 else rng.normal(size=(n, 2)))}
    fields = [Field("y", (1,)), Field("jacobian", (1, 1)), Field("k", (2,))]
    rows = np.arange(1, n + 1)
    want = "".join(json.dumps({"row": int(r), **{f.name: arrays[f.name][i].tolist() for f in fields}}) + "\n"
                   for i, r in enumerate(rows.tolist()))
    assert jsonl_lines(rows, None, arrays, fields).decode() == want
    assert jsonl_lines(rows[:0], None, {k: v[:0] for k, v in arrays.items()}, fields) == b""
    only_k = [fields[2]]  # every field whole numbers, or every field float
    want = "".join(json.dumps({"row": int(r), "k": k}) + "\n" for r, k in zip(rows.tolist(), arrays["k"].tolist()))
    assert jsonl_lines(rows, None, {"k": arrays["k"]}, only_k).decode() == want
