"""The bad-input matrix: every case exits 2 with one `jacprop: error:` line naming the place,
no traceback, and no output file left behind.  tests/BAD_INPUTS.md is this table, rendered
(regenerate with JACPROP_UPDATE_README=1); a test keeps the two in step."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from onnx_hostile import CASES as ONNX_CASES

from jacprop.cli import main

ROOT = Path(__file__).parent.parent
SAMPLES = ROOT / "sample_models"
NPZ, CSV = SAMPLES / "bishop_tanh.npz", SAMPLES / "bishop_tanh.csv"
KERAS = SAMPLES / "keras" / "mlp_tanh.k2.h5"
KCSV = SAMPLES / "keras" / "mlp_tanh.csv"
MATRIX = Path(__file__).parent / "BAD_INPUTS.md"


def text(name, content):
    def make(tmp):
        p = tmp / name
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
        return p
    return make


def keras_config(edit):
    """A copy of the Keras 2 sample with its model_config JSON changed by ``edit``."""
    return keras_weights(lambda f: f.attrs.__setitem__("model_config", edit(json.loads(f.attrs["model_config"]))))


def keras_weights(edit):
    """A copy of the Keras 2 sample changed by ``edit(h5py.File)``."""
    def make(tmp):
        p = tmp / "m.h5"
        shutil.copy(KERAS, p)
        with h5py.File(p, "a") as f:
            edit(f)
        return p
    return make


def with_layer(key, value):
    def edit(c):
        c["config"]["layers"][1]["config"][key] = value
        return json.dumps(c)
    return edit


def external_link(f):
    del f["model_weights/hidden/hidden/kernel:0"]
    f["model_weights/hidden/hidden/kernel:0"] = h5py.ExternalLink("/etc/passwd", "/x")


def zip_of(members):
    def make(tmp):
        p = tmp / "m.keras"
        with zipfile.ZipFile(p, "w") as z:
            for name, data in members.items():
                z.writestr(name, data)
        return p
    return make


def npz_object(tmp):
    p = tmp / "p.npz"
    np.savez(p, W0=np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return p


def truncated(src, size):
    def make(tmp):
        p = tmp / ("t" + src.suffix)
        p.write_bytes(src.read_bytes()[:size])
        return p
    return make


def matrix_file(rows):
    def make(tmp):
        p = tmp / "m.csv"
        p.write_text("temperature,pressure,flow\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
        return p
    return make


# (id, what, model maker or None, inputs maker or None, extra args, expected text in the message)
M, I = "model", "inputs"
CASES = [
    # CSV
    ("csv-empty", "CSV: empty file", None, text("e.csv", ""), [], "e.csv: empty input"),
    ("csv-header-only", "CSV: header only", None, text("h.csv", "temperature,pressure,flow\n"), [],
     "h.csv: no data rows"),
    ("csv-ragged", "CSV: ragged rows", None, text("r.csv", "temperature,pressure,flow\n1,2,3\n1,2\n"), [],
     "r.csv: row 2 (line 3): 2 fields, but the header has 3"),
    ("csv-extra-field", "CSV: a row with more fields than the header", None,
     text("e.csv", "temperature,pressure,flow\n1,2,3\n1,2,3,4\n"), [],
     "e.csv: row 2 (line 3): 4 fields, but the header has 3"),
    ("csv-not-a-number", "CSV: a non-numeric cell", None,
     text("n.csv", "temperature,pressure,flow\n1,2,3\n4,x7,6\n"), [],
     "n.csv: row 2 (line 3), column 'pressure': 'x7' is not a number"),
    ("csv-decimal-comma", "CSV: decimal commas (a semicolon-separated export)", None,
     text("dc.csv", "temperature;pressure;flow\n1,5;2,0;-3,25e2\n"), [],
     "dc.csv: row 1 (line 2), column 'temperature': '1,5' is not a number (a decimal comma? jacprop reads "
     "numbers with a point: 1.5)"),
    ("csv-nan", "CSV: NaN cell (default --on-invalid error)", None,
     text("nan.csv", "temperature,pressure,flow\n1,nan,3\n"), [],
     "nan.csv: row 1, column 'pressure': value nan is not finite"),
    ("csv-inf-all-skipped", "CSV: inf cells, every row skipped", None,
     text("inf.csv", "temperature,pressure,flow\n1,inf,3\n"),
     ["--on-invalid", "skip"], "inf.csv: no data rows (1 skipped for NaN/inf values)"),
    ("csv-duplicate-names", "CSV: duplicate column names", None, text("d.csv", "a,a,b\n1,2,3\n"), [],
     "d.csv: line 1: duplicate column name(s) ['a']"),
    ("csv-missing-name", "CSV: a column without a name", None, text("m.csv", "a,,b\n1,2,3\n"), [],
     "m.csv: line 1: column 2 has no name"),
    ("csv-absent-column", "--columns names an absent column", None, None, ["--columns", "temperature,nope,flow"],
     "no column named 'nope'"),
    ("csv-absent-id", "--id-column names an absent column", None, None, ["--id-column", "id"], "no column named 'id'"),
    ("csv-wrong-d", "CSV: wrong number of columns for the model's D", None, text("w.csv", "a,b\n1,2\n"), [],
     "the model takes 3 inputs but 2 columns were selected"),
    ("csv-other-delimiter", "CSV: space-separated without --delimiter", None, text("s.csv", "a b c\n1 2 3\n"), [],
     "the model takes 3 inputs but 1 columns were selected ['a b c'] (is the delimiter right? --delimiter chooses it)"),
    ("csv-names-some-inputs", "CSV: a header naming some of the model's inputs (x0..x3) but not all", lambda tmp: KERAS,
     text("p.csv", "x1,x2,x3,x4\n1,2,3,4\n"), [], "p.csv: line 1: names the model's inputs x1, x2, x3 but not x0"),
    ("csv-columns-twice", "--columns naming a model input twice", lambda tmp: KERAS,
     text("t.csv", "x0,x1,x2,x3\n1,2,3,4\n"),
     ["--columns", "x0,x1,x2,x2"], "--columns: names the model's input(s) x2 twice"),
    ("csv-columns-some-inputs", "--columns naming some of the model's inputs", lambda tmp: KERAS,
     text("t.csv", "x0,x1,x2,x3,a\n1,2,3,4,5\n"), ["--columns", "a,x1,x2,x3"],
     "--columns: names the model's inputs x1, x2, x3 but not x0"),
    ("csv-missing-value", "CSV: an NA cell (default --on-invalid error)", None,
     text("na.csv", "temperature,pressure,flow\n1,NA,3\n"),
     [], "na.csv: row 1, column 'pressure': value nan is not finite (a NaN or missing cell: see --na-values)"),
    ("csv-empty-cell-not-na", "CSV: an empty cell when --na-values leaves it out", None,
     text("e.csv", "temperature,pressure,flow\n1,,3\n"), ["--na-values", "NA"],
     "e.csv: row 1 (line 2), column 'pressure': '' is not a number"),
    ("csv-truncated-gzip", "CSV: a truncated gzip file", None,
     text("t.csv.gz", __import__("gzip").compress(b"a,b,c\n" + b"1.5,2.5,3.5\n" * 100000)[:2000]), [],
     "t.csv.gz: corrupt or truncated gzip data"),
    ("csv-bad-delimiter", "--delimiter of two characters", None, None, ["--delimiter", ";;"],
     "Invalid value for '--delimiter'"),
    ("csv-digit-delimiter", "--delimiter a digit", None, None, ["--delimiter", "1"], "not a letter, digit, quote"),
    ("csv-bad-comment", "--comment of two characters", None, None, ["--comment", "//"],
     "Invalid value for '--comment'"),
    ("csv-id-column-row", "--id-column row, clashing with the output's row column", None,
     text("r.csv", "row,temperature,pressure,flow\n7,1,2,3\n"), ["--id-column", "row"],
     "--id-column row: the output has a 'row' column"),
    ("csv-long-line", "CSV: a 5 MB cell", None, text("l.csv", "a,b,c\n1,2," + "7" * 5_000_000 + "x\n"), [],
     "l.csv: row 1 (line 2), column 'c': '7777777777777777777777777777777777777777' is not a number"),
    ("csv-not-utf8", "CSV: non-UTF-8 bytes", None, text("u.csv", b"a,b,c\n1,\xff\xfe,3\n"), [],
     "u.csv: line 2, byte 3: not UTF-8 text"),
    ("csv-binary", "CSV: binary garbage", None, text("g.csv", bytes(range(256)) * 8), [],
     "g.csv: line 2, byte 118: not UTF-8 text"),
    ("csv-missing-file", "CSV: no such file", None, lambda tmp: tmp / "absent.csv", [],
     "absent.csv: cannot open input"),
    # model files
    ("model-not-a-model", "model: not a model", text("x.h5", "hello"), None, [], "x.h5: not a model file"),
    ("model-truncated-hdf5", "model: truncated HDF5", truncated(KERAS, 3000), None, [],
     "t.h5: not a readable HDF5 file"),
    ("model-truncated-zip", "model: truncated .keras zip", truncated(SAMPLES / "keras" / "mlp_tanh.k3.keras", 3000),
     None, [],
     "t.keras: not a readable zip file"),
    ("model-zip-not-keras", "model: a zip that is not a Keras archive", zip_of({"a.txt": "hi"}), None, [],
     "neither a Keras .keras archive"),
    ("model-zip-garbage-weights", "model: .keras whose weights are not HDF5",
     zip_of({"config.json": "{}", "model.weights.h5": "junk"}), None, [],
     "m.keras: not a readable HDF5 file"),
    ("model-absurd-shape", "model: a weight declaring 1e9+ elements",
     keras_weights(lambda f: (f["model_weights/hidden/hidden"].__delitem__("kernel:0"),
                              f["model_weights/hidden/hidden"].create_dataset(
                                  "kernel:0", shape=(40000, 40000), dtype="f4"))),
     None, [],
     "m.h5: refused: dataset /model_weights/hidden/hidden/kernel:0 declares 1600000000 elements (limit 1000000000)"),
    ("model-missing-weight", "model: a missing weight",
     keras_weights(lambda f: f["model_weights/hidden/hidden"].__delitem__("bias:0")), None, [],
     "layer 'hidden' (Dense): missing weight"),
    ("model-shape-mismatch", "model: a weight of the wrong shape", keras_config(with_layer("units", 9)), None, [],
     "layer 'hidden' (Dense): weight 'kernel' expected shape (4, 9), got (4, 8)"),
    ("model-nan-weights", "model: NaN weights with --refuse-nonfinite-weights",
     keras_weights(lambda f: f["model_weights/hidden/hidden/kernel:0"].__setitem__((0, 0), np.nan)), None,
     ["--refuse-nonfinite-weights"], "layer 'hidden' (Dense): weight 'kernel' holds 1 NaN/inf value(s)"),
    ("model-deep-json", "model: config JSON nested 100,000 deep", keras_config(lambda c: "[" * 100000 + "]" * 100000),
     None, [],
     "m.h5: malformed Keras HDF5 file (RecursionError"),
    ("model-huge-number", "model: a huge number in the config", keras_config(with_layer("units", 10**30)), None, [],
     "layer 'hidden' (Dense): weight 'kernel' expected shape (4, 1000000000000000000000000000000), got (4, 8)"),
    ("model-wrong-type", "model: a wrong type in the config", keras_config(with_layer("units", "abc")), None, [],
     "layer 'hidden' (Dense): weight 'kernel' expected shape (4, 'abc'), got (4, 8)"),
    ("model-unknown-layer", "model: an unknown layer class",
     keras_config(lambda c: json.dumps({**c, "config": {**c["config"], "layers": [
         c["config"]["layers"][0], {**c["config"]["layers"][1], "class_name": "Quux"}]}})),
     None, [], "layer 'hidden' (Quux): not a built-in Keras layer class"),
    ("model-lambda", "model: a Lambda layer", lambda tmp: SAMPLES / "keras" / "lambda.k2.h5",
     lambda tmp: SAMPLES / "keras" / "lambda.csv", [],
     "(Lambda): refused: Lambda layers hold Python code"),
    ("model-custom", "model: a custom layer", lambda tmp: SAMPLES / "keras" / "custom.k3.keras",
     lambda tmp: SAMPLES / "keras" / "custom.csv", [],
     "not a built-in Keras layer class; custom layers cannot be loaded"),
    ("model-external-link", "model: an HDF5 external link", keras_weights(external_link), None, [],
     "m.h5: refused: HDF5 external link /model_weights/hidden/hidden/kernel:0 -> /etc/passwd:/x"),
    ("model-npz-pickle", "model: NPZ holding object arrays", npz_object, None, [], "p.npz: NPZ holds object arrays"),
    # options
    ("opt-dx-malformed", "--dx malformed", None, None, ["propagate", "--dx", "temperature=lots"],
     "--dx temperature=lots: expected a number"),
    ("opt-dx-negative", "--dx negative", None, None, ["propagate", "--dx", "-0.1"], "must be finite and >= 0"),
    ("opt-dx-unknown", "--dx names an unknown input", None, None, ["propagate", "--dx", "speed=1"],
     "no input named 'speed'"),
    ("opt-cov-asymmetric", "--cov not symmetric", None, None,
     ["propagate", "--cov", matrix_file([[1, 0.5, 0], [0.4, 1, 0], [0, 0, 1]])],
     "not symmetric"),
    ("opt-cov-not-psd", "--cov not positive semi-definite", None, None,
     ["propagate", "--cov", matrix_file([[1, 2, 0], [2, 1, 0], [0, 0, 1]])],
     "not positive semi-definite"),
    ("opt-conflict", "conflicting options (--coverage and --level)", None, None,
     ["propagate", "--dx", "1", "--coverage", "2", "--level", "0.9"],
     "give --coverage or --level, not both"),
    ("opt-unknown-output", "--outputs names an unknown output", None, None, ["--outputs", "zz"],
     "--outputs: 'zz' is neither a name nor an index"),
    ("opt-bad-choice", "an invalid choice", None, None, ["--mode", "sideways"], "Invalid value for '--mode'"),
    # option ranges (click types in jacprop/cli/types.py)
    ("opt-samples-zero", "--samples 0", None, None, ["propagate", "--dx", "0.1", "--method", "mc", "--samples", "0"],
     "Invalid value for '--samples': 0 is not in [2, 100000000]"),
    ("opt-samples-negative", "--samples -5", None, None, ["propagate", "--dx", "0.1", "--samples", "-5"],
     "Invalid value for '--samples': -5 is not in [2, 100000000]"),
    ("opt-samples-one", "--samples 1 (no standard deviation from one draw)", None, None,
     ["propagate", "--dx", "0.1", "--method", "mc", "--samples", "1"], "needs at least 2 draws per row"),
    ("opt-samples-fraction", "--samples 1.5", None, None, ["propagate", "--dx", "0.1", "--samples", "1.5"],
     "Invalid value for '--samples': '1.5' is not an integer"),
    ("opt-samples-huge", "--samples 10^9", None, None, ["propagate", "--dx", "0.1", "--samples", "1000000000"],
     "Invalid value for '--samples': 1000000000 is not in [2, 100000000]"),
    ("opt-seed-negative", "--seed -1", None, None, ["propagate", "--dx", "0.1", "--seed", "-1"],
     "Invalid value for '--seed': -1 is not >= 0"),
    ("opt-coverage-probability", "--coverage 0.95 (a probability given as k)", None, None,
     ["propagate", "--dx", "0.1", "--coverage", "0.95"],
     "'--coverage': 0.95 is not >= 1; k is a coverage factor (U = k u) "
     "and must be >= 1; did you mean --level 0.95?"),
    ("opt-coverage-negative", "--coverage -2", None, None, ["propagate", "--dx", "0.1", "--coverage", "-2"],
     "Invalid value for '--coverage': -2 is not >= 1"),
    ("opt-coverage-inf", "--coverage inf", None, None, ["propagate", "--dx", "0.1", "--coverage", "inf"],
     "Invalid value for '--coverage': inf is not >= 1"),
    ("opt-level-percent", "--level 95 (a percentage)", None, None, ["propagate", "--dx", "0.1", "--level", "95"],
     "Invalid value for '--level': 95 is not in (0, 1); a probability; did you mean --level 0.95?"),
    ("opt-level-zero", "--level 0", None, None, ["propagate", "--dx", "0.1", "--level", "0"],
     "Invalid value for '--level': 0 is not in (0, 1)"),
    ("opt-level-one", "--level 1", None, None, ["propagate", "--dx", "0.1", "--level", "1"],
     "Invalid value for '--level': 1 is not in (0, 1)"),
    ("opt-level-nan", "--level nan", None, None, ["propagate", "--dx", "0.1", "--level", "nan"],
     "Invalid value for '--level': nan is not in (0, 1)"),
    ("opt-level-text", "--level high", None, None, ["propagate", "--dx", "0.1", "--level", "high"],
     "Invalid value for '--level': 'high' is not a number"),
    ("opt-tol-negative", "propagate --tol -1", None, None,
     ["propagate", "--dx", "0.1", "--check-linearity", "--tol", "-1"],
     "Invalid value for '--tol': -1 is not > 0"),
    ("opt-tol-zero", "propagate --tol 0", None, None, ["propagate", "--dx", "0.1", "--tol", "0"],
     "Invalid value for '--tol': 0 is not > 0"),
    ("opt-tol-nan", "propagate --tol nan", None, None, ["propagate", "--dx", "0.1", "--tol", "nan"],
     "Invalid value for '--tol': nan is not > 0"),
    ("opt-max-nonlinearity-negative", "--max-nonlinearity -0.1", None, None,
     ["propagate", "--dx", "0.1", "--max-nonlinearity", "-0.1"],
     "Invalid value for '--max-nonlinearity': -0.1 is not >= 0"),
    ("opt-max-dy-negative", "--max-dy -1", None, None, ["propagate", "--dx", "0.1", "--max-dy", "-1"],
     "--max-dy -1: the bound must be a number >= 0"),
    ("opt-max-dy-nan", "--max-dy OUTPUT=nan (a gate that could never fail)", None, None,
     ["propagate", "--dx", "0.1", "--max-dy", "y[0]=nan"], "--max-dy y[0]=nan: the bound must be a number >= 0"),
    ("opt-rows-zero", "--rows 0", None, None, ["--rows", "0"],
     "Invalid value for '--rows': '0' is not a range of rows counted from 1"),
    ("opt-rows-empty", "--rows ''", None, None, ["--rows", ""],
     "Invalid value for '--rows': expected row numbers and ranges"),
    ("opt-rows-comma", "--rows 1,,3", None, None, ["--rows", "1,,3"],
     "Invalid value for '--rows': expected row numbers and ranges"),
    ("opt-rows-reversed", "--rows 5-2", None, None, ["--rows", "5-2"],
     "Invalid value for '--rows': '5-2' is not a range"),
    ("opt-rows-beyond", "--rows past the last row", None, None, ["--rows", "99"],
     "no data rows (6 rows read, none among --rows)"),
    ("opt-rows-text", "propagate --rows first", None, None, ["propagate", "--dx", "0.1", "--rows", "first"],
     "Invalid value for '--rows': expected row numbers and ranges"),
    ("opt-max-rows-negative", "--max-rows -1", None, None, ["--max-rows", "-1"],
     "Invalid value for '--max-rows': -1 is not >= 0"),
    ("opt-workers-zero", "--engine dask --workers 0", None, None, ["--engine", "dask", "--workers", "0"],
     "Invalid value for '--workers': 0 is not in the range x>=1"),
    ("opt-check-tol-negative", "check --tol -1", None, None, ["check", "--tol", "-1"],
     "Invalid value for '--tol': -1 is not > 0"),
    ("opt-check-y-tol-zero", "check --y-tol 0", None, None, ["check", "--y-tol", "0"],
     "Invalid value for '--y-tol': 0 is not > 0"),
    ("opt-propagate-unknown-output", "propagate --outputs names an unknown output", None, None,
     ["propagate", "--dx", "0.1", "--outputs", "zz"], "--outputs: 'zz' is neither a name nor an index"),
    ("opt-propagate-unknown-wrt", "propagate --wrt names an unknown input", None, None,
     ["propagate", "--dx", "0.1", "--wrt", "speed"], "--wrt: 'speed' is neither a name nor an index"),
    ("opt-propagate-summary-npy", "propagate --summary -o x.npy", None, None,
     ["propagate", "--dx", "0.1", "--summary", "-o", "x.npy"], "--format npy is not available here"),
    ("opt-gum2-dof", "--method gum2 with --dof (Welch-Satterthwaite is first order)", None, None,
     ["propagate", "--dx", "0.1", "--method", "gum", "--method", "gum2", "--dof", "5"],
     "--dof with --method gum2: Welch-Satterthwaite is a first-order formula"),
    ("opt-gum2-t-no-fourth-moment", "--method gum2 with --dist NAME=t:4 (no fourth moment)", None, None,
     ["propagate", "--dx", "0.1", "--method", "gum2", "--dist", "flow=t:4"],
     "--dist flow=t:4 with --method gum2: a t with NU <= 4 has no fourth moment"),
    # I/O
    ("io-missing-directory", "-o into a missing directory", None, None, ["-o", "nodir/out.csv"], "does not exist"),
    ("io-output-is-directory", "-o names a directory", None, None, ["-o", "."], "is a directory"),
    ("io-unknown-extension", "-o with an unknown extension", None, None, ["-o", "out.xyz"],
     "cannot tell the format from the extension"),
    # ONNX (tests/onnx_hostile.py writes the files)
    *[(cid, what, make, text("x.csv", "a,b,c\n1,2,3\n"), [], expect) for cid, what, make, expect in ONNX_CASES
      if hasattr(os, "mkfifo") or "fifo" not in cid],
]


def args_for(case, tmp):
    _, _, make_model, make_inputs, extra, _ = case
    extra = [str(a(tmp)) if callable(a) else a for a in extra]
    command = "jacobian"
    if extra and extra[0] in ("propagate", "check"):
        command, extra = extra[0], extra[1:]
    model = make_model(tmp) if make_model else NPZ
    inputs = make_inputs(tmp) if make_inputs else (KCSV if make_model else CSV)
    return [command, str(model), str(inputs), *extra]


def render() -> str:
    lines = ["# The bad-input matrix", "",
             "Generated from `tests/test_bad_inputs.py`, where each case is a test: exit code 2, one line on stderr",
             "starting `jacprop: error:` that names the place, no traceback, no output file left behind.", "",
             "| case | what | the message contains |", "|---|---|---|"]
    lines += [f"| `{c[0]}` | {c[1]} | `{c[5]}` |" for c in CASES]
    lines += ["",
              "Accepted, not errors: quoted numbers, a UTF-8 BOM, CRLF line ends, other delimiters (sniffed or",
              "`--delimiter`), gzip/bzip2/xz files, `--comment` lines, a headerless file (a note), "
              "columns in another order",
              "that name the model's inputs (a note), NaN/inf/NA/empty cells with `--on-invalid skip|keep`.  "
              "Also tested: Ctrl-C (exit 130, no partial file), a full disk",
              "(exit 2), a closed stdout pipe (quiet exit), "
              "an error in the middle of a stream (the message says how many",
              "rows were written)."]
    return "\n".join(lines) + "\n"


if os.environ.get("JACPROP_UPDATE_README"):
    MATRIX.write_text(render())


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = args_for(case, tmp_path)
    if "-o" not in args:
        args += ["-o", "out.csv"]
    before = set(os.listdir(tmp_path))
    old = None
    if "fifo" in case[0]:  # a reader that opened the FIFO would block: fail after 20 s instead of hanging
        def hang(*_):
            raise TimeoutError("jacprop blocked on the FIFO")
        old = signal.signal(signal.SIGALRM, hang)
        signal.alarm(20)
    try:
        r = CliRunner().invoke(main, args)
    finally:
        if old is not None:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)
    assert r.exit_code == 2, (r.exit_code, r.output)
    assert r.stderr.startswith("jacprop: error: ") and r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.output and "internal error" not in r.stderr, r.stderr
    assert case[5] in r.stderr, r.stderr
    assert set(os.listdir(tmp_path)) == before  # no output, no temporary file


def test_matrix_document_is_current():
    assert MATRIX.read_text() == render(), "run JACPROP_UPDATE_README=1 pytest tests/test_bad_inputs.py"


@pytest.mark.parametrize("content,extra", [
    (b'temperature,pressure,flow\n"1","2","3"\n', []),
    (b"\xef\xbb\xbftemperature,pressure,flow\r\n1,2,3\r\n", []),
    (b"temperature;pressure;flow\n1;2;3\n", ["--delimiter", ";"]),
    (b"temperature;pressure;flow\n1;2;3\n", []),
    (b"temperature\tpressure\tflow\n1\t2\t3\n", ["--delimiter", "tab"]),
    (b"temperature|pressure|flow\n1|2|3\n", []),
    (b"# a comment\ntemperature,pressure,flow\n1,2,3 # inline\n# more\n", ["--comment", "#"]),
    (b"1,2,3\n", []),
    (b"pressure,flow,temperature\n2,3,1\n", []),  # an NPZ model whose inputs are named: matched by name
    (b"temperature,pressure,flow\n1,nan,3\n4,5,6\n", ["--on-invalid", "skip"]),
    (b"temperature,pressure,flow\n1,NA,3\n4,5,6\n", ["--on-invalid", "skip"]),
    (b"temperature,pressure,flow\n1,,3\n4,5,6\n", ["--on-invalid", "skip"]),
    (b"temperature,pressure,flow\n1,-999,3\n4,5,6\n", ["--on-invalid", "skip", "--na-values", "-999"]),
])
def test_accepted_variants_give_the_same_numbers(tmp_path, content, extra):
    """Dialects, comments, missing values, a headerless file and reordered named columns all give
    the numbers of the plain file (the header differs only for the headerless one: c0, c1, c2)."""
    import jacprop

    p = tmp_path / "in.csv"
    p.write_bytes(content)
    model = NPZ
    if content.startswith(b"pressure,flow,temperature"):
        named = jacprop.load(NPZ)
        named.input_names = ["temperature", "pressure", "flow"]
        model = tmp_path / "named.npz"
        jacprop.save(named, model)
    r = CliRunner().invoke(main, ["jacobian", str(model), str(p), "--format", "csv", "--no-row", *extra])
    assert r.exit_code == 0, r.output
    plain = CliRunner().invoke(main, ["jacobian", str(NPZ), "-", "--format", "csv", "--no-row"],
                               input="temperature,pressure,flow\n" +
                               ("4,5,6\n" if "skip" in extra else "1,2,3\n"))
    assert r.stdout.splitlines()[1:] == plain.stdout.splitlines()[1:]
    header = plain.stdout.splitlines()[0]
    if content == b"1,2,3\n":
        assert "line 1 holds only numbers, so it is read as data" in r.stderr
        header = header.replace("temperature", "c0").replace("pressure", "c1").replace("flow", "c2")
    assert r.stdout.splitlines()[0] == header


def big_csv(path, rows=400_000):
    rng = np.random.default_rng(0)
    np.savetxt(path, rng.normal(size=(rows, 3)), delimiter=",", header="temperature,pressure,flow", comments="",
               fmt="%.6f")


def jacprop_cmd(*args):
    return [sys.executable, "-m", "jacprop", *map(str, args)]


def test_ctrl_c_exits_130_and_leaves_no_file(tmp_path):
    """Ctrl-C while jacprop waits for more input on a pipe (deterministic, however fast the engine is):
    exit 130, one line, and neither the output nor its temporary left behind."""
    p = subprocess.Popen(jacprop_cmd("jacobian", NPZ, "-", "-o", tmp_path / "out.jsonl"), stdin=subprocess.PIPE,
                         stderr=subprocess.PIPE, cwd=tmp_path)
    rows = np.random.default_rng(0).normal(size=(20_000, 3))
    p.stdin.write(b"temperature,pressure,flow\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows).encode())
    p.stdin.flush()  # and keep stdin open: jacprop reads on, waiting for the rest
    deadline = time.monotonic() + 30
    while not any(name.startswith(".jacprop") for name in os.listdir(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.05)  # until the output's temporary exists: the run is under way
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert err.splitlines()[-1] == b"jacprop: interrupted" and b"Traceback" not in err
    assert os.listdir(tmp_path) == []


def test_full_disk_on_stdout():
    with open("/dev/full", "wb") as full:
        p = subprocess.run(jacprop_cmd("jacobian", NPZ, CSV, "--format", "csv"), stdout=full, stderr=subprocess.PIPE)
    assert p.returncode == 2
    assert p.stderr == b"jacprop: error: cannot write the output: No space left on device\n"


def test_closed_pipe_ends_quietly(tmp_path):
    big_csv(tmp_path / "big.csv", rows=200_000)
    p = subprocess.Popen(jacprop_cmd("jacobian", NPZ, tmp_path / "big.csv", "--format", "csv"), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdout.readline()
    p.stdout.close()
    err = p.stderr.read()
    assert p.wait(timeout=60) == 0
    assert err == b""


def test_error_mid_stream_says_how_many_rows_were_written(tmp_path):
    rows = 70_000  # past the first chunk of 65,536 rows
    lines = ["temperature,pressure,flow"] + ["0.1,0.2,0.3"] * rows + ["1,oops,3"]
    (tmp_path / "late.csv").write_text("\n".join(lines) + "\n")
    p = subprocess.run(jacprop_cmd("jacobian", NPZ, tmp_path / "late.csv", "--format", "csv"), capture_output=True)
    assert p.returncode == 2
    assert p.stderr.decode() == (f"jacprop: error: {tmp_path / 'late.csv'}: row {rows + 1} (line {rows + 2}), "
                                 "column 'pressure': "
                                 f"'oops' is not a number (65536 rows were already written to stdout)\n")
    assert p.stdout.count(b"\n") == 65536 + 1
    p = subprocess.run(jacprop_cmd("jacobian", NPZ, tmp_path / "late.csv", "-o", tmp_path / "out.csv"),
                       capture_output=True)
    assert p.returncode == 2 and not (tmp_path / "out.csv").exists()
