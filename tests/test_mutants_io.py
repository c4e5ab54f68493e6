"""The CSV reader's pieces that mutation testing (issue #20, tests/README.md) found unchecked:
reading from a byte offset (a Dask partition), the options carried to other files, the
"holds text" rule of the row counter, each checked against rows and numbers computed here."""

from pathlib import Path

import numpy as np
import pytest

from jacprop.errors import InputError, UsageError
from jacprop.io import reader as csvio

HEADER = "a,b,c"


def table(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 3)) * [1.0, 1e-3, 1e4]


def write(path: Path, lines, end="\n"):
    path.write_bytes((end.join(lines) + end).encode())
    return path


def offsets(path: Path):
    """Byte offset of every physical line start of ``path`` (as counted independently here)."""
    data, out, pos = path.read_bytes(), [], 0
    for line in data.splitlines(keepends=True):
        out.append(pos)
        pos += len(line)
    return out


@pytest.mark.parametrize("start_line,skip,n_rows", [(3, 0, 5), (3, 2, 4), (6, 1, 3), (3, 0, 100)])
def test_start_at_reads_the_partition_with_the_files_own_row_and_line_numbers(tmp_path, start_line, skip, n_rows):
    X = table(12)
    # line 1 header, line 2 data row 1, line 3 blank, then rows 2.. on lines 4..
    lines = [HEADER, ",".join(map(repr, X[0].tolist())), ""] + [",".join(map(repr, r)) for r in X[1:].tolist()]
    path = write(tmp_path / "x.csv", lines)
    starts = offsets(path)
    # partition from physical line ``start_line`` (1-based): lines before it, data rows before it
    lines_before = start_line - 1
    rows_before = sum(1 for text in lines[: start_line - 1][1:] if text.strip())
    reader = csvio.CsvReader(path, chunk_rows=2)
    reader.start_at(starts[start_line - 1], lines_before, skip, rows_before + skip, n_rows)
    chunks = list(reader.chunks())
    reader.close()
    got = np.concatenate([c.X for c in chunks])
    rows = np.concatenate([c.rows for c in chunks])
    first = rows_before + skip  # data rows before the first one read
    want = X[first: first + n_rows]
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(rows, np.arange(first + 1, first + 1 + len(want)))
    assert all(len(c.X) <= 2 for c in chunks)
    assert reader.rows_read == first + len(want)


def test_start_at_names_the_files_own_line_in_an_error(tmp_path):
    lines = [HEADER] + ["1,2,3"] * 5 + ["1,x,3"] + ["1,2,3"] * 3
    path = write(tmp_path / "x.csv", lines)
    reader = csvio.CsvReader(path)
    reader.start_at(offsets(path)[3], 3, 1, 3, 10)  # from line 4 (row 3), skipping row 3
    with pytest.raises(InputError, match=r"row 6 \(line 7\), column 'b': 'x' is not a number"):
        list(reader.chunks())
    reader.close()


def test_start_at_refuses_a_file_that_shrank(tmp_path):
    path = write(tmp_path / "x.csv", [HEADER, "1,2,3", "4,5,6"])
    reader = csvio.CsvReader(path)
    with pytest.raises(InputError, match="the file changed while it was being read"):
        reader.start_at(offsets(path)[1], 1, 5, 0, 1)
    reader.close()


@pytest.mark.parametrize("kind", ["stream", "gz", "comment"])
def test_start_at_needs_a_plain_file(tmp_path, kind):
    import gzip
    import io

    text = f"{HEADER}\n1,2,3\n"
    if kind == "stream":
        source, kw = io.BytesIO(text.encode()), {}
    elif kind == "gz":
        source, kw = tmp_path / "x.csv.gz", {}
        source.write_bytes(gzip.compress(text.encode()))
    else:
        source, kw = write(tmp_path / "x.csv", [HEADER, "1,2,3"]), {"comment": "#"}
    reader = csvio.CsvReader(source, **kw)
    with pytest.raises(UsageError, match="a partition needs a plain file, not a stream, compressed or with comments"):
        reader.start_at(0, 0, 0, 0, 1)


@pytest.mark.parametrize("line,text", [
    (b"1,2\n", True), (b"\n", False), (b"  \t\r\n", False), (b"", False), (b"\x1c\x1d\n", False),
    (b"\x1e1\n", True), (" \u2028 \n".encode(), False), ("\u00e91\n".encode(), True), (b" x\n", True),
    (b"\x7f\n", True), (b"\x1f\n", False), (b"\x1f1\n", True),
])
def test_has_text_agrees_with_str_strip(line, text):
    assert csvio.has_text(line) is text
    assert bool(line.decode("utf-8").strip()) is text  # the reader's own rule for a blank line


def test_has_text_of_bytes_that_are_not_utf8():
    """Counted as text (the reader then refuses the line as not UTF-8, naming it)."""
    assert csvio.has_text(b"\xff1,2\n") is True and csvio.has_text(b"\x80\n") is True


def test_options_read_another_file_as_this_one(tmp_path):
    a = write(tmp_path / "a.csv", ["id;a;b;c;u", "r1;1;2;3;0.5", "r2;NA;5;6;0.25"])
    reader = csvio.CsvReader(a, delimiter=";", header=True, columns=["c", "a"], id_column="id", on_invalid="keep",
                             chunk_rows=7, exclude=("u",), na_values=("NA",), comment="#")
    opts = reader.options()
    reader.close()
    assert opts == dict(delimiter=";", header=True, columns=["c", "a"], id_column="id", on_invalid="keep",
                        chunk_rows=7, exclude=("u",), na_values=("NA",), comment="#")
    b = write(tmp_path / "b.csv", ["id;a;b;c;u", "s1;7;8;9;1.5 # note", "s2;NA;0;1;2"])
    other = csvio.CsvReader(b, **opts)
    (chunk,) = list(other.chunks())
    np.testing.assert_array_equal(chunk.X, [[9, 7], [1, np.nan]])
    assert chunk.ids.tolist() == ["s1", "s2"]
    np.testing.assert_array_equal(chunk.extra["u"], [1.5, 2])
    assert other.chunk_rows == 7


@pytest.mark.parametrize("kind", ["gz", "stream", "file"])
def test_bad_utf8_is_located_only_where_the_bytes_are_the_files_own(tmp_path, kind):
    import gzip
    import io

    data = f"{HEADER}\n1,2,3\n".encode() + b"4,\xff5,6\n" + b"7,8,9\n" * 3000
    if kind == "gz":  # the compressed bytes are not the text: no line/byte position of them
        source = tmp_path / "x.csv.gz"
        source.write_bytes(gzip.compress(data))
        want = rf"{source}: not UTF-8 text \(invalid start byte\)$"
    elif kind == "stream":
        source, want = io.BytesIO(data), r"not UTF-8 text \(invalid start byte\)$"
    else:
        source = tmp_path / "x.csv"
        source.write_bytes(data)
        want = rf"{source}: line 3, byte 3: not UTF-8 text \(invalid start byte\)$"
    with pytest.raises(InputError, match=want):
        csvio.read_all(source)


def test_read_all_of_a_header_only_file_names_it(tmp_path):
    path = write(tmp_path / "x.csv", [HEADER, "", "  "])
    with pytest.raises(InputError) as e:
        csvio.read_all(path)
    assert str(e.value) == f"{path}: no data rows"


# ---------------------------------------------------------------------------
# reading back what `jacprop jacobian` wrote (propagate at the end of a pipe)

SAMPLES = Path(__file__).parent.parent / "sample_models"
MODEL, INPUTS = SAMPLES / "bishop_tanh.npz", SAMPLES / "bishop_tanh.csv"


def jacobian_output(tmp_path, fmt, *extra, inputs=INPUTS):
    from click.testing import CliRunner

    from jacprop.cli import main

    out = tmp_path / f"j.{fmt}"
    r = CliRunner().invoke(main, ["jacobian", str(MODEL), str(inputs), "--format", fmt, "-o", str(out), *extra])
    assert r.exit_code == 0, r.output
    return out


def read_back(path):
    from jacprop.io.readback import read_jacobian

    s = read_jacobian(path)
    parts = list(s.chunks)
    rows, ids, X, Y, J = (None if parts[0][i] is None else np.concatenate([p[i] for p in parts]) for i in range(5))
    return s, rows, ids, X, Y, J


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "npz"])
@pytest.mark.parametrize("with_id", [False, True])
def test_read_back_gives_the_models_jacobian_rows_and_ids(tmp_path, fmt, with_id):
    import jacprop

    X = np.loadtxt(INPUTS, delimiter=",", skiprows=1)
    Y, J = jacprop.jacobian(jacprop.load(str(MODEL)), X)
    n = len(X)
    inputs, extra = INPUTS, []
    if with_id:  # an id column, and a blank line so that data row numbers differ from line numbers
        lines = INPUTS.read_text().splitlines()
        text = ["name," + lines[0]] + [f"p{i}," + line for i, line in enumerate(lines[1:])]
        inputs = tmp_path / "in.csv"
        inputs.write_text("\n".join(text[:3] + [""] + text[3:]) + "\n")
        extra = ["--id-column", "name"]
    s, rows, ids, Xb, Yb, Jb = read_back(jacobian_output(tmp_path, fmt, *extra, inputs=inputs))
    assert s.input_names == ["temperature", "pressure", "flow"]
    assert s.output_names == jacprop.load(str(MODEL)).output_names
    assert s.id_name == (("name" if fmt == "csv" else "id") if with_id else None)
    np.testing.assert_array_equal(rows, np.arange(1, n + 1))
    assert (ids.tolist() == [f"p{i}" for i in range(n)]) if with_id else ids is None
    np.testing.assert_array_equal(Yb, Y)
    np.testing.assert_array_equal(Jb, J)
    if fmt == "csv":
        assert Xb is None and not s.has_x
    else:
        np.testing.assert_array_equal(Xb, X)
        assert s.has_x


def test_read_back_the_older_forms_without_row_numbers_or_names(tmp_path):
    csv = tmp_path / "old.csv"
    csv.write_text("y0,y1,d(y0)/d(a),d(y0)/d(b),d(y1)/d(a),d(y1)/d(b)\n1,2,3,4,5,6\n7,8,9,10,11,12\n")
    s, rows, ids, X, Y, J = read_back(csv)
    assert (s.input_names, s.output_names, s.id_name) == (["a", "b"], ["y0", "y1"], None)
    np.testing.assert_array_equal(rows, [1, 2])
    np.testing.assert_array_equal(Y, [[1, 2], [7, 8]])
    np.testing.assert_array_equal(J, [[[3, 4], [5, 6]], [[9, 10], [11, 12]]])
    jsonl = tmp_path / "old.jsonl"
    jsonl.write_text('{"row": 3, "y": [1], "jacobian": [[2, 3]]}\n\n{"row": 5, "y": [4], "jacobian": [[5, 6]]}\n')
    s, rows, ids, X, Y, J = read_back(jsonl)
    assert (s.input_names, s.output_names, s.id_name, s.has_x) == (["x0", "x1"], ["y0"], None, False)
    np.testing.assert_array_equal(rows, [3, 5])
    np.testing.assert_array_equal(J, [[[2, 3]], [[5, 6]]])
    npz = tmp_path / "old.npz"
    np.savez(npz, y=np.ones((2, 1)), jacobian=np.arange(4.0).reshape(2, 1, 2), input_names=np.array(["a", "b"]),
             output_names=np.array(["q"]))
    s, rows, ids, X, Y, J = read_back(npz)
    np.testing.assert_array_equal(rows, [1, 2])
    assert s.id_name is None and X is None and not s.has_x


def test_read_back_a_long_jsonl_in_chunks(tmp_path, monkeypatch):
    from jacprop.io import readback

    monkeypatch.setattr(readback, "CHUNK_ROWS", 4)
    path = tmp_path / "j.jsonl"
    path.write_text("".join(f'{{"row": {i + 1}, "id": {i}, "y": [{i}], "jacobian": [[{2 * i}]]}}\n' for i in range(10)))
    s = readback.read_jacobian(path)
    parts = list(s.chunks)
    assert [len(p[0]) for p in parts] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([p[4] for p in parts]).ravel(), 2 * np.arange(10))
    assert np.concatenate([p[1] for p in parts]).tolist() == [str(i) for i in range(10)]


@pytest.mark.parametrize("name,content,message", [
    ("e.csv", b"", "e.csv: empty input: expected what `jacprop jacobian` writes (csv, jsonl or npz)"),
    ("a.csv", b"a,b\n1,2\n", "a.csv: line 1: no d(<output>)/d(<input>) columns"),
    ("p.csv", b"y,d(y)/d(a),d(y)/d(b),d(z)/d(a)\n1,2,3,4\n", "p.csv: line 1: the J columns do not form a full 2 x 2"),
    ("m.csv", b"y,d(y)/d(a),d(z)/d(a)\n1,2,3\n", "m.csv: line 1: no column for output 'z'"),
    ("r.csv", b"row,y,d(y)/d(a)\n1,2,3\n2.5,2,3\n", "r.csv: row 2: row 2.5 is not a row number"),
    ("r0.csv", b"row,y,d(y)/d(a)\n0,2,3\n", "r0.csv: row 1: row 0.0 is not a row number"),
    ("j.jsonl", b'{"y": [1]}\n', "j.jsonl: line 1: not a `jacprop jacobian --format jsonl` record"),
    ("k.jsonl", b'{"row": 1, "y": [1], "jacobian": [[1]]}\n{"row": 2, "y": [1, 2], "jacobian": [[1]]}\n',
     "k.jsonl: line 2: malformed record"),
    ("z.npz", b"PK\x03\x04broken", "z.npz: unreadable NPZ"),
])
def test_read_back_refuses_what_jacobian_did_not_write(tmp_path, name, content, message):
    from jacprop.io.readback import read_jacobian

    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError) as e:
        list(read_jacobian(path).chunks)
    assert str(e.value).startswith(f"{tmp_path}/{message}")


def test_read_back_an_npz_without_the_jacobian_names_what_lacks(tmp_path):
    from jacprop.io.readback import read_jacobian

    path = tmp_path / "x.npz"
    np.savez(path, y=np.ones((1, 1)))
    with pytest.raises(InputError, match=r"x.npz: NPZ lacks \['input_names', 'jacobian', 'output_names'\]"):
        read_jacobian(path)
    with pytest.raises(InputError, match="nothing.csv: cannot open: No such file or directory"):
        read_jacobian(tmp_path / "nothing.csv")


# ---------------------------------------------------------------------------
# --summary in a data format (jacobian: per input with its rank; propagate: per estimate)

STAT_NAMES = ("mean", "mean_abs", "rms", "std", "min", "max", "row_of_max_abs")


def summary_stats(k=2, d=3, sequences=()):
    rng = np.random.default_rng(1)
    stats = {s: rng.normal(size=(k, d)) for s in STAT_NAMES}
    stats["row_of_max_abs"] = rng.integers(1, 50, size=(k, d)).astype(float)
    stats["rank"] = np.argsort(-stats["mean_abs"], axis=1, kind="stable")  # input indices, most influential first
    if sequences:
        stats["sequences"] = [dict(input=name, per_step=rng.normal(size=(k, 4)), per_feature=rng.normal(size=(k, 2)))
                              for name in sequences]
    return stats


def summary_written(fmt, stats, what="input", inputs=("a", "b", "c"), outputs=("y", "z"), n_rows=49):
    import io

    from jacprop.io.writers import write_summary

    buf = io.BytesIO()
    write_summary(buf, fmt, stats, list(inputs), list(outputs), n_rows, what=what)
    return buf.getvalue()


def ranks_of(stats):
    """rank[k, i]: 1 for the input with the largest mean |J| of output k, computed by sorting here."""
    k, d = stats["mean_abs"].shape
    out = np.zeros((k, d), int)
    for j in range(k):
        for place, i in enumerate(sorted(range(d), key=lambda i: (-stats["mean_abs"][j, i], i))):
            out[j, i] = place + 1
    return out


@pytest.mark.parametrize("sequences", [(), ("s",), ("s", "t")])
def test_summary_npz_holds_every_statistic_the_names_and_the_profiles(sequences):
    import io

    stats = summary_stats(sequences=sequences)
    with np.load(io.BytesIO(summary_written("npz", dict(stats))), allow_pickle=False) as z:
        got = {k: z[k] for k in z.files}
    assert int(got["rows"]) == 49
    assert got["input_names"].tolist() == ["a", "b", "c"] and got["output_names"].tolist() == ["y", "z"]
    for s in (*STAT_NAMES, "rank"):
        np.testing.assert_array_equal(got[s], stats[s])
    tags = [""] if len(sequences) == 1 else [f":{s}" for s in sequences]
    assert sorted(k for k in got if k.startswith("per_")) == sorted(f"per_{w}{t}" for w in ("step", "feature")
                                                                    for t in tags)
    for tag, seq in zip(tags, stats.get("sequences", [])):
        np.testing.assert_array_equal(got[f"per_step{tag}"], seq["per_step"])
        np.testing.assert_array_equal(got[f"per_feature{tag}"], seq["per_feature"])


def test_summary_npz_of_estimates_has_no_rank():
    import io

    stats = summary_stats()
    with np.load(io.BytesIO(summary_written("npz", stats, what="estimate")), allow_pickle=False) as z:
        assert "rank" not in z.files and "input_names" not in z.files
        assert z["estimate_names"].tolist() == ["a", "b", "c"]
        np.testing.assert_array_equal(z["std"], stats["std"])


@pytest.mark.parametrize("what", ["input", "estimate"])
def test_summary_csv_has_one_record_per_output_and_input_with_its_rank(what):
    import csv
    import io

    stats = summary_stats()
    text = summary_written("csv", stats, what=what).decode()
    records = list(csv.DictReader(io.StringIO(text)))
    assert text.splitlines()[0] == ",".join(["output", what, *STAT_NAMES] + (["rank"] if what == "input" else []))
    assert len(records) == 6
    ranks = ranks_of(stats)
    for n, rec in enumerate(records):
        k, i = divmod(n, 3)
        assert (rec["output"], rec[what]) == (("y", "z")[k], ("a", "b", "c")[i])
        for s in STAT_NAMES:
            assert float(rec[s]) == stats[s][k, i]  # repr: read back exactly
        if what == "input":
            assert int(rec["rank"]) == ranks[k, i]


def test_summary_jsonl_adds_the_sequence_profiles():
    import json

    stats = summary_stats(sequences=("s",))
    records = [json.loads(line) for line in summary_written("jsonl", stats).decode().splitlines()]
    ranks = ranks_of(stats)
    assert len(records) == 6 + 2 * 4 + 2 * 2
    for n, rec in enumerate(records[:6]):
        k, i = divmod(n, 3)
        assert rec == {"output": ("y", "z")[k], "input": ("a", "b", "c")[i],
                       **{s: stats[s][k, i].item() for s in STAT_NAMES}, "rank": int(ranks[k, i])}
    seq = stats["sequences"][0]
    steps = [r for r in records[6:] if "step" in r]
    feats = [r for r in records[6:] if "feature" in r]
    assert [(r["output"], r["sequence"], r["step"]) for r in steps] == [(o, "s", t) for o in "yz" for t in range(4)]
    np.testing.assert_array_equal([r["mean_abs_over_features"] for r in steps], seq["per_step"].ravel())
    assert [(r["output"], r["sequence"], r["feature"]) for r in feats] == [(o, "s", f) for o in "yz" for f in range(2)]
    np.testing.assert_array_equal([r["mean_abs_over_steps"] for r in feats], seq["per_feature"].ravel())


def test_summary_refuses_a_format_it_cannot_write():
    with pytest.raises(UsageError) as e:
        summary_written("npy", summary_stats())
    assert str(e.value) == "--summary writes table, csv, jsonl or npz"


def test_bad_utf8_on_stdin_is_named_without_a_position():
    from click.testing import CliRunner

    from jacprop.cli import main

    data = f"{HEADER.replace('a,b,c', 'temperature,pressure,flow')}\n1,2,3\n4,\xff5,6\n".encode("latin-1")
    r = CliRunner().invoke(main, ["jacobian", str(MODEL), "-", "--format", "csv"], input=data)
    assert r.exit_code == 2
    assert r.stderr.strip().splitlines()[-1] == "jacprop: error: stdin: not UTF-8 text (invalid start byte)"


def test_the_reader_refuses_an_unknown_invalid_policy(tmp_path):
    path = write(tmp_path / "x.csv", [HEADER, "1,2,3"])
    with pytest.raises(UsageError) as e:
        csvio.CsvReader(path, on_invalid="drop")
    assert str(e.value) == "--on-invalid must be one of error, skip, keep"


def test_a_headerless_files_errors_name_the_files_own_line(tmp_path):
    path = write(tmp_path / "x.csv", ["1,2,3", "4,five,6"])
    with pytest.raises(InputError) as e:
        csvio.read_all(path)
    assert str(e.value) == f"{path}: row 2 (line 2), column 'c1': 'five' is not a number"


def test_a_given_delimiter_wins_over_the_sniffed_one(tmp_path):
    path = write(tmp_path / "x.csv", ["p,q|r", "1|2"])
    reader = csvio.CsvReader(path, delimiter="|")
    assert reader.names == ["p,q", "r"] and reader.notes == []
    np.testing.assert_array_equal(next(reader.chunks()).X, [[1, 2]])
    reader.close()


def test_a_truncated_gzip_is_named_as_such(tmp_path):
    import gzip

    data = gzip.compress((f"{HEADER}\n" + "1,2,3\n" * 20000).encode())
    path = tmp_path / "x.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=rf"^{path}: corrupt or truncated gzip data \(.+\)$"):
        csvio.read_all(path)



def test_summary_is_per_input_by_default():
    import io

    from jacprop.io.writers import write_summary

    stats = summary_stats()
    buf = io.BytesIO()
    write_summary(buf, "csv", stats, ["a", "b", "c"], ["y", "z"], 49)
    assert buf.getvalue() == summary_written("csv", stats, what="input")


@pytest.mark.parametrize("block", [7, 8, 9, 10, 11, 13, 16])
@pytest.mark.parametrize("blank", [False, True])  # True: blank lines send every chunk through the line-by-line path
def test_pieces_of_any_size_end_at_line_ends(tmp_path, monkeypatch, block, blank):
    monkeypatch.setattr(csvio, "BLOCK_CHARS", block)
    X = np.arange(1, 61, dtype=float).reshape(20, 3) * [1, 10, 100] + [0.5, 0, 0.25]
    lines = [HEADER]
    for i, row in enumerate(X.tolist()):
        lines.append(",".join(repr(v) for v in row))
        if blank and i % 3 == 0:
            lines.append("")
    path = write(tmp_path / "x.csv", lines)
    got, _, reader = csvio.read_all(path, chunk_rows=4)
    np.testing.assert_array_equal(got, X)


def test_summary_csv_of_one_output_and_one_input_has_lf_line_ends():
    stats = summary_stats(k=1, d=1)
    text = summary_written("csv", stats, inputs=("a",), outputs=("y",)).decode()
    assert "\r" not in text and text.endswith("\n")
    header, record = text.splitlines()
    assert header == ",".join(["output", "input", *STAT_NAMES, "rank"])
    assert record.split(",")[:2] == ["y", "a"] and record.split(",")[-1] == "1"
