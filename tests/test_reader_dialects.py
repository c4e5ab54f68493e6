"""CSV dialects (issue 18 item 4), headerless files (issue 13 item 3) and missing values (issue 18
item 3): sniffed delimiters, compressed input, comments, NA tokens; and every reading path (numpy,
pyarrow, cell by cell, Dask partitions) gives the same numbers."""

import bz2
import gzip
import io
import lzma
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from jacprop.cli import main
from jacprop.io import dialect
from jacprop.io import reader as csvio

SAMPLES = Path(__file__).parent.parent / "sample_models"
NPZ, CSV = SAMPLES / "bishop_tanh.npz", SAMPLES / "bishop_tanh.csv"
HEADER = "temperature,pressure,flow"


def run(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def plain_output():
    r = run("jacobian", NPZ, CSV, "--format", "csv")
    assert r.exit_code == 0
    return r.stdout


@pytest.mark.parametrize("sep,name,note", [
    (";", "in.csv", "fields separated by ';'"), ("\t", "in.csv", "fields separated by tab ('\\t')"),
    ("|", "in.csv", "fields separated by '|'"), ("\t", "in.tsv", "fields separated by tab ('\\t')"),
    (",", "in.csv", None),
])
def test_the_delimiter_is_sniffed_from_the_header_line(tmp_path, sep, name, note):
    path = tmp_path / name
    path.write_text(CSV.read_text().replace(",", sep))
    r = run("jacobian", NPZ, path, "--format", "csv")
    assert r.exit_code == 0, r.output
    assert r.stdout == plain_output()
    expected = f"jacprop: note: {path}: {note} (sniffed from line 1; --delimiter chooses)\n" if note else ""
    assert r.stderr == expected


def test_a_tsv_name_means_tab_and_tab_spellings_are_accepted(tmp_path):
    path = tmp_path / "in.tsv"
    path.write_text(CSV.read_text().replace(",", "\t"))
    for spelling in ("\\t", "tab", "TAB", "\t"):
        r = run("jacobian", NPZ, path, "--format", "csv", "--delimiter", spelling)
        assert r.exit_code == 0 and r.stderr == "" and r.stdout == plain_output(), spelling
    comma_tsv = tmp_path / "commas.tsv"
    comma_tsv.write_text(CSV.read_text())
    r = run("jacobian", NPZ, comma_tsv)
    assert r.exit_code == 2 and "1 columns were selected ['temperature,pressure,flow']" in r.stderr
    assert "--delimiter" in r.stderr


@pytest.mark.parametrize("bad", ["", ";;", "a", "7", '"', ".", "-"])
def test_a_bad_delimiter_is_refused_naming_the_option(bad):
    r = run("jacobian", NPZ, CSV, "--delimiter", bad)
    assert r.exit_code == 2 and r.stderr.startswith("jacprop: error: Invalid value for '--delimiter'")
    assert r.stderr.count("\n") == 1


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress])
def test_compressed_input_is_told_by_its_magic_bytes(tmp_path, compress):
    path = tmp_path / "data.csv"  # the name says nothing
    path.write_bytes(compress(CSV.read_bytes()))
    r = run("jacobian", NPZ, path, "--format", "csv")
    assert r.exit_code == 0 and r.stderr == "" and r.stdout == plain_output()
    r = run("jacobian", NPZ, "-", "--format", "csv", input=compress(CSV.read_bytes().replace(b",", b";")))
    assert r.exit_code == 0 and r.stdout == plain_output() and "fields separated by ';'" in r.stderr


def test_a_corrupt_gzip_file_is_one_line(tmp_path):
    path = tmp_path / "t.csv.gz"
    rows = np.random.default_rng(0).normal(size=(5000, 3))
    text = "a,b,c\n" + "".join(f"{a!r},{b!r},{c!r}\n" for a, b, c in rows.tolist())
    path.write_bytes(gzip.compress(text.encode())[:20000])
    r = run("jacobian", NPZ, path, "-o", tmp_path / "out.csv")
    assert r.exit_code == 2 and r.stderr.startswith(f"jacprop: error: {path}: corrupt or truncated gzip data")
    assert r.stderr.count("\n") == 1 and not (tmp_path / "out.csv").exists()


def test_comments_are_not_rows_and_errors_count_data_rows(tmp_path):
    path = tmp_path / "c.csv"
    rows = CSV.read_text().splitlines()
    path.write_text("# written by a logger\n  # and edited\n" + rows[0].replace(",", ";") + " # units: K;bar;l/s\n"
                    + rows[1] + "  # first\n# gap\n"
                    + "\n".join(rows[2:]) + "\n")
    path.write_text(path.read_text().replace(",", ";"))
    r = run("jacobian", NPZ, path, "--format", "csv", "--comment", "#")
    assert r.exit_code == 0, r.output
    assert r.stdout == plain_output() and "fields separated by ';'" in r.stderr  # sniffed without the comment
    path.write_text("# x\n" + HEADER + "\n1,2,3\n# y\n4,oops,6\n")
    r = run("jacobian", NPZ, path, "--comment", "#")
    assert r.stderr == f"jacprop: error: {path}: row 2 (line 5), column 'pressure': 'oops' is not a number\n"
    r = run("jacobian", NPZ, path)  # without --comment, '# x' is the header
    assert r.exit_code == 2


def test_a_header_of_numbers_is_data_with_a_note(tmp_path):
    path = tmp_path / "noheader.csv"
    path.write_text("".join(CSV.read_text().splitlines(True)[1:]))
    r = run("jacobian", NPZ, path, "--format", "csv")
    assert r.exit_code == 0
    assert r.stderr == (f"jacprop: note: {path}: line 1 holds only numbers, so it is read as data (columns c0, c1, "
                        "...); --header takes it for names, --no-header says so\n")
    lines, plain = r.stdout.splitlines(), plain_output().splitlines()
    assert lines[0] == plain[0].replace("temperature", "c0").replace("pressure", "c1").replace("flow", "c2")
    assert lines[1:] == plain[1:]  # the first data row is kept: row 1 is -2.88355,...
    quiet = run("jacobian", NPZ, path, "--format", "csv", "--no-header")
    assert quiet.exit_code == 0 and quiet.stderr == "" and quiet.stdout == r.stdout
    forced = run("jacobian", NPZ, path, "--format", "csv", "--header")  # line 1 as names: one row fewer
    assert forced.exit_code == 0 and forced.stdout.splitlines()[0].startswith("row,y[0],y[1],d(y[0])/d(-2.88355)")
    assert len(forced.stdout.splitlines()) == len(lines) - 1
    na_first = tmp_path / "na.csv"
    na_first.write_text("1,NA,3\n4,5,6\n")
    r = run("jacobian", NPZ, na_first, "--format", "csv", "--on-invalid", "skip")
    assert r.exit_code == 0 and [line[:2] for line in r.stdout.splitlines()[1:]] == ["2,"]


@pytest.mark.parametrize("token", ["", "NA", "NaN", "nan", "null", " NA "])
def test_missing_values_follow_on_invalid(tmp_path, token):
    path = tmp_path / "m.csv"
    path.write_text(f"{HEADER}\n-2.88355,0.10074,-1.1018\n1,{token},2\n0.245891,-0.221047,-3.70894\n")
    r = run("jacobian", NPZ, path, "-o", tmp_path / "o.csv")
    assert r.exit_code == 2
    assert r.stderr == (f"jacprop: error: {path}: row 2, column 'pressure': value nan is not finite "
                        "(a NaN or missing cell: see --na-values) (use --on-invalid skip or keep)\n")
    skip = run("jacobian", NPZ, path, "--format", "csv", "--on-invalid", "skip")
    assert skip.exit_code == 0 and skip.stderr == "jacprop: skipped 1 rows with NaN/inf inputs\n"
    plain = plain_output().splitlines()
    assert skip.stdout.splitlines() == [plain[0], plain[1], "3" + plain[2][1:]]
    keep = run("jacobian", NPZ, path, "--format", "npz", "--on-invalid", "keep")
    with np.load(io.BytesIO(keep.stdout_bytes)) as z:
        assert np.isnan(z["x"][1, 1]) and np.isfinite(z["x"][[0, 2]]).all()


def test_na_values_can_be_chosen_and_numbers_mark_sentinels(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(f"{HEADER}\n-2.88355,0.10074,-1.1018\n-999,7,2\n1,n/a,2\n1,,2\n")
    r = run("jacobian", NPZ, path, "--format", "csv", "--on-invalid", "skip", "--na-values", "-999,n/a,")
    assert r.exit_code == 0 and r.stderr == "jacprop: skipped 3 rows with NaN/inf inputs\n"
    assert r.stdout.splitlines()[1:] == plain_output().splitlines()[1:2]
    r = run("jacobian", NPZ, path, "--on-invalid", "skip", "--na-values", "n/a")  # -999 is a number, '' is not NA now
    assert r.exit_code == 2 and r.stderr.endswith("row 4 (line 5), column 'pressure': '' is not a number\n")


def arrow_table(n=3000, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)) * [1e-3, 1, 1e4]
    cells = [[repr(v) for v in row] for row in X.tolist()]
    for r, c, token in [(7, 1, "NA"), (1500, 0, ""), (2999, 2, "null"), (2100, 1, "-999")]:
        cells[r][c] = token
        X[r, c] = np.nan
    return X, cells


@pytest.mark.parametrize("sep", [",", ";", "\t"])
def test_every_parser_reads_the_same_numbers(tmp_path, monkeypatch, sep):
    """pyarrow (chunks of >= 1024 plain lines), numpy's loadtxt (small chunks), the cell-by-cell parse
    (chunks loadtxt refuses: NA tokens) and the plain reader without pyarrow all give the same bits."""
    X, cells = arrow_table()
    path = tmp_path / "t.csv"
    path.write_text(sep.join(["a", "b", "c"]) + "\n" + "".join(sep.join(row) + "\n" for row in cells))
    options = dict(on_invalid="keep", na_values=(*dialect.NA_VALUES, "-999"))
    if csvio._arrow_parse(b"1", 1, 1, [0], ",") is not None:  # pyarrow installed: it takes the whole file
        data = path.read_bytes().split(b"\n", 1)[1]
        fast = csvio._arrow_parse(data, len(X), 3, [0, 1, 2], sep, options["na_values"])
        fast[np.isin(fast, [-999.0])] = np.nan
        assert fast.tobytes() == X.tobytes()
    results = {"default": csvio.read_all(path, **options)[0],
               "small": csvio.read_all(path, chunk_rows=100, **options)[0]}
    monkeypatch.setattr(csvio, "_arrow_parse", lambda *a, **k: None)
    results["numpy"] = csvio.read_all(path, **options)[0]
    monkeypatch.setattr(np, "loadtxt", lambda *a, **k: (_ for _ in ()).throw(ValueError("forced")))
    results["cells"] = csvio.read_all(path, **options)[0]
    for name, got in results.items():
        assert got.tobytes() == X.tobytes(), name


def test_pyarrow_fills_missing_values_as_nan():
    pytest.importorskip("pyarrow")
    from jacprop.io.fastcsv import arrow_parse

    X = arrow_parse(b"1,NA,3\n,5,6\n", 2, 3, [0, 1, 2], ",", dialect.NA_VALUES)
    assert np.isnan(X[0, 1]) and np.isnan(X[1, 0]) and X[1, 2] == 6.0
    assert arrow_parse(b"1,NA,3\n", 1, 3, [0, 1, 2], ",") is None  # without tokens NA is refused: numpy decides


def test_the_reader_without_pyarrow_at_all(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.csv", None)
    X, cells = arrow_table(seed=2)
    path = tmp_path / "t.csv.gz"
    path.write_bytes(gzip.compress(("a;b;c\n" + "".join(";".join(r) + "\n" for r in cells)).encode()))
    got = csvio.read_all(path, on_invalid="keep", na_values=(*dialect.NA_VALUES, "-999"))[0]
    assert got.tobytes() == X.tobytes()


@pytest.fixture(scope="module")
def cluster():
    pytest.importorskip("dask.distributed", reason="dask is an optional extra: pip install 'jacprop[dask]'")
    import logging

    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0", silence_logs=logging.CRITICAL) as c:
        yield c


@pytest.mark.parametrize("variant", ["headerless", "semicolon", "gzip", "comments", "na-skip", "reordered", "tsv"])
def test_dask_partitions_read_as_the_local_path(cluster, tmp_path, monkeypatch, variant):
    from jacprop.cluster import runner

    monkeypatch.setattr(runner, "CHUNK_ROWS", 64)
    monkeypatch.setattr(runner, "PARTITION_ROWS", 128)
    monkeypatch.setattr(runner, "SPLIT_BYTES", 2000)
    original = csvio.CsvReader.__init__
    monkeypatch.setattr(csvio.CsvReader, "__init__",
                        lambda self, *a, **k: original(self, *a, **{"chunk_rows": 64, **k}))
    rng = np.random.default_rng(5)
    X = rng.normal(size=(700, 3))
    lines = [[repr(v) for v in row] for row in X.tolist()]
    header, sep, args, name = ["x0", "x1", "x2"], ",", [], "in.csv"
    if variant == "na-skip":
        lines[10][1], lines[400][0] = "NA", ""
        args = ["--on-invalid", "skip"]
    if variant == "reordered":  # the numbered names x0, x1, x2 in another order: matched by name
        header, lines = header[::-1], [row[::-1] for row in lines]
    sep = ";" if variant == "semicolon" else "\t" if variant == "tsv" else ","
    name = "in.tsv" if variant == "tsv" else name
    text = (sep.join(header) + "\n" if variant != "headerless" else "") + "".join(
        sep.join(row) + (" # c" if variant == "comments" and n % 50 == 0 else "") + "\n"
        + ("# note\n" if variant == "comments" and n % 70 == 0 else "") for n, row in enumerate(lines))
    path = tmp_path / name
    path.write_bytes(gzip.compress(text.encode()) if variant == "gzip" else text.encode())
    args += ["--comment", "#"] if variant == "comments" else []
    local = run("jacobian", NPZ, path, *args, "-o", tmp_path / "local.csv")
    on = run("jacobian", NPZ, path, *args, "-o", tmp_path / "dask.csv", "--engine", "dask", "--scheduler",
             cluster.scheduler_address)
    assert local.exit_code == on.exit_code == 0, (local.output, on.output)
    assert re.search(r"^jacprop: \d+ rows; largest ", local.stderr, re.M)  # the closing line, on both engines
    assert on.stderr == local.stderr
    assert (tmp_path / "dask.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()
    rows = [line.split(",")[0] for line in (tmp_path / "local.csv").read_text().splitlines()[1:]]
    expected = [str(n) for n in range(1, 701) if variant != "na-skip" or n not in (11, 401)]
    assert rows == expected
