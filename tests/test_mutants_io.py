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
    (b"\x7f\n", True),
])
def test_has_text_agrees_with_str_strip(line, text):
    assert csvio.has_text(line) is text
    assert bool(line.decode("utf-8").strip()) is text  # the reader's own rule for a blank line


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
