"""The bad-input matrix of tests/test_bad_inputs.py (tests/BAD_INPUTS.md), as golden-output cases.

The files are made the same way test_bad_inputs.py makes them, but this module imports only numpy and
h5py, not jacprop, so the golden test keeps working while jacprop's modules move.  Each entry is
(case id, model maker or None, inputs maker or None, extra arguments); a maker takes the temporary
directory and returns the path of the file it made there (or of a shipped sample).  The ids must stay
those of tests/BAD_INPUTS.md: tests/test_golden.py checks that.
"""

import json
import os
import shutil
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from onnx_hostile import CASES as ONNX_CASES  # noqa: E402 (numpy only, like this module)

SAMPLES = ROOT / "sample_models"
NPZ, CSV = SAMPLES / "bishop_tanh.npz", SAMPLES / "bishop_tanh.csv"
KERAS = SAMPLES / "keras" / "mlp_tanh.k2.h5"
KCSV = SAMPLES / "keras" / "mlp_tanh.csv"


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


def sample(path):
    return lambda tmp: path


def in_tmp(name):
    """An output path inside the temporary directory (test_bad_inputs.py runs in it and names it relatively)."""
    return lambda tmp: tmp / name if name != "." else tmp


CASES = [
    # CSV
    ("csv-empty", None, text("e.csv", ""), []),
    ("csv-header-only", None, text("h.csv", "temperature,pressure,flow\n"), []),
    ("csv-ragged", None, text("r.csv", "temperature,pressure,flow\n1,2,3\n1,2\n"), []),
    ("csv-extra-field", None, text("e.csv", "temperature,pressure,flow\n1,2,3\n1,2,3,4\n"), []),
    ("csv-not-a-number", None, text("n.csv", "temperature,pressure,flow\n1,2,3\n4,x7,6\n"), []),
    ("csv-decimal-comma", None, text("dc.csv", "temperature;pressure;flow\n1,5;2,0;-3,25e2\n"), []),
    ("csv-nan", None, text("nan.csv", "temperature,pressure,flow\n1,nan,3\n"), []),
    ("csv-inf-all-skipped", None, text("inf.csv", "temperature,pressure,flow\n1,inf,3\n"), ["--on-invalid", "skip"]),
    ("csv-duplicate-names", None, text("d.csv", "a,a,b\n1,2,3\n"), []),
    ("csv-missing-name", None, text("m.csv", "a,,b\n1,2,3\n"), []),
    ("csv-absent-column", None, None, ["--columns", "temperature,nope,flow"]),
    ("csv-absent-id", None, None, ["--id-column", "id"]),
    ("csv-wrong-d", None, text("w.csv", "a,b\n1,2\n"), []),
    ("csv-other-delimiter", None, text("s.csv", "a b c\n1 2 3\n"), []),
    ("csv-names-some-inputs", lambda tmp: KERAS, text("p.csv", "x1,x2,x3,x4\n1,2,3,4\n"), []),
    ("csv-columns-twice", lambda tmp: KERAS, text("t.csv", "x0,x1,x2,x3\n1,2,3,4\n"), ["--columns", "x0,x1,x2,x2"]),
    ("csv-columns-some-inputs", lambda tmp: KERAS, text("t.csv", "x0,x1,x2,x3,a\n1,2,3,4,5\n"),
     ["--columns", "a,x1,x2,x3"]),
    ("csv-missing-value", None, text("na.csv", "temperature,pressure,flow\n1,NA,3\n"), []),
    ("csv-empty-cell-not-na", None, text("e.csv", "temperature,pressure,flow\n1,,3\n"), ["--na-values", "NA"]),
    ("csv-truncated-gzip", None,
     text("t.csv.gz", __import__("gzip").compress(b"a,b,c\n" + b"1.5,2.5,3.5\n" * 100000)[:2000]), []),
    ("csv-bad-delimiter", None, None, ["--delimiter", ";;"]),
    ("csv-digit-delimiter", None, None, ["--delimiter", "1"]),
    ("csv-bad-comment", None, None, ["--comment", "//"]),
    ("csv-id-column-row", None, text("r.csv", "row,temperature,pressure,flow\n7,1,2,3\n"), ["--id-column", "row"]),
    ("csv-long-line", None, text("l.csv", "a,b,c\n1,2," + "7" * 5_000_000 + "x\n"), []),
    ("csv-not-utf8", None, text("u.csv", b"a,b,c\n1,\xff\xfe,3\n"), []),
    ("csv-binary", None, text("g.csv", bytes(range(256)) * 8), []),
    ("csv-missing-file", None, lambda tmp: tmp / "absent.csv", []),
    # model files
    ("model-not-a-model", text("x.h5", "hello"), None, []),
    ("model-truncated-hdf5", truncated(KERAS, 3000), None, []),
    ("model-truncated-zip", truncated(SAMPLES / "keras" / "mlp_tanh.k3.keras", 3000), None, []),
    ("model-zip-not-keras", zip_of({"a.txt": "hi"}), None, []),
    ("model-zip-garbage-weights", zip_of({"config.json": "{}", "model.weights.h5": "junk"}), None, []),
    ("model-absurd-shape",
     keras_weights(lambda f: (f["model_weights/hidden/hidden"].__delitem__("kernel:0"),
                              f["model_weights/hidden/hidden"].create_dataset(
                                  "kernel:0", shape=(40000, 40000), dtype="f4"))),
     None, []),
    ("model-missing-weight", keras_weights(lambda f: f["model_weights/hidden/hidden"].__delitem__("bias:0")), None, []),
    ("model-shape-mismatch", keras_config(with_layer("units", 9)), None, []),
    ("model-nan-weights",
     keras_weights(lambda f: f["model_weights/hidden/hidden/kernel:0"].__setitem__((0, 0), np.nan)), None,
     ["--refuse-nonfinite-weights"]),
    ("model-deep-json", keras_config(lambda c: "[" * 100000 + "]" * 100000), None, []),
    ("model-huge-number", keras_config(with_layer("units", 10**30)), None, []),
    ("model-wrong-type", keras_config(with_layer("units", "abc")), None, []),
    ("model-unknown-layer",
     keras_config(lambda c: json.dumps({**c, "config": {**c["config"], "layers": [
         c["config"]["layers"][0], {**c["config"]["layers"][1], "class_name": "Quux"}]}})),
     None, []),
    ("model-lambda", sample(SAMPLES / "keras" / "lambda.k2.h5"), sample(SAMPLES / "keras" / "lambda.csv"), []),
    ("model-custom", sample(SAMPLES / "keras" / "custom.k3.keras"), sample(SAMPLES / "keras" / "custom.csv"), []),
    ("model-external-link", keras_weights(external_link), None, []),
    ("model-npz-pickle", npz_object, None, []),
    # options
    ("opt-dx-malformed", None, None, ["propagate", "--dx", "temperature=lots"]),
    ("opt-dx-negative", None, None, ["propagate", "--dx", "-0.1"]),
    ("opt-dx-unknown", None, None, ["propagate", "--dx", "speed=1"]),
    ("opt-cov-asymmetric", None, None, ["propagate", "--cov", matrix_file([[1, 0.5, 0], [0.4, 1, 0], [0, 0, 1]])]),
    ("opt-cov-not-psd", None, None, ["propagate", "--cov", matrix_file([[1, 2, 0], [2, 1, 0], [0, 0, 1]])]),
    ("opt-conflict", None, None, ["propagate", "--dx", "1", "--coverage", "2", "--level", "0.9"]),
    ("opt-unknown-output", None, None, ["--outputs", "zz"]),
    ("opt-bad-choice", None, None, ["--mode", "sideways"]),
    # option ranges
    ('opt-samples-zero', None, None, ['propagate', '--dx', '0.1', '--method', 'mc', '--samples', '0']),
    ('opt-samples-negative', None, None, ['propagate', '--dx', '0.1', '--samples', '-5']),
    ('opt-samples-one', None, None, ['propagate', '--dx', '0.1', '--method', 'mc', '--samples', '1']),
    ('opt-samples-fraction', None, None, ['propagate', '--dx', '0.1', '--samples', '1.5']),
    ('opt-samples-huge', None, None, ['propagate', '--dx', '0.1', '--samples', '1000000000']),
    ('opt-seed-negative', None, None, ['propagate', '--dx', '0.1', '--seed', '-1']),
    ('opt-coverage-probability', None, None, ['propagate', '--dx', '0.1', '--coverage', '0.95']),
    ('opt-coverage-negative', None, None, ['propagate', '--dx', '0.1', '--coverage', '-2']),
    ('opt-coverage-inf', None, None, ['propagate', '--dx', '0.1', '--coverage', 'inf']),
    ('opt-level-percent', None, None, ['propagate', '--dx', '0.1', '--level', '95']),
    ('opt-level-zero', None, None, ['propagate', '--dx', '0.1', '--level', '0']),
    ('opt-level-one', None, None, ['propagate', '--dx', '0.1', '--level', '1']),
    ('opt-level-nan', None, None, ['propagate', '--dx', '0.1', '--level', 'nan']),
    ('opt-level-text', None, None, ['propagate', '--dx', '0.1', '--level', 'high']),
    ('opt-tol-negative', None, None, ['propagate', '--dx', '0.1', '--check-linearity', '--tol', '-1']),
    ('opt-tol-zero', None, None, ['propagate', '--dx', '0.1', '--tol', '0']),
    ('opt-tol-nan', None, None, ['propagate', '--dx', '0.1', '--tol', 'nan']),
    ('opt-max-nonlinearity-negative', None, None, ['propagate', '--dx', '0.1', '--max-nonlinearity', '-0.1']),
    ('opt-max-dy-negative', None, None, ['propagate', '--dx', '0.1', '--max-dy', '-1']),
    ('opt-max-dy-nan', None, None, ['propagate', '--dx', '0.1', '--max-dy', 'y[0]=nan']),
    ('opt-rows-zero', None, None, ['--rows', '0']),
    ('opt-rows-empty', None, None, ['--rows', '']),
    ('opt-rows-comma', None, None, ['--rows', '1,,3']),
    ('opt-rows-reversed', None, None, ['--rows', '5-2']),
    ('opt-rows-beyond', None, None, ['--rows', '99']),
    ('opt-rows-text', None, None, ['propagate', '--dx', '0.1', '--rows', 'first']),
    ('opt-max-rows-negative', None, None, ['--max-rows', '-1']),
    ('opt-workers-zero', None, None, ['--engine', 'dask', '--workers', '0']),
    ('opt-check-tol-negative', None, None, ['check', '--tol', '-1']),
    ('opt-check-y-tol-zero', None, None, ['check', '--y-tol', '0']),
    ('opt-propagate-unknown-output', None, None, ['propagate', '--dx', '0.1', '--outputs', 'zz']),
    ('opt-propagate-unknown-wrt', None, None, ['propagate', '--dx', '0.1', '--wrt', 'speed']),
    ('opt-propagate-summary-npy', None, None, ['propagate', '--dx', '0.1', '--summary', '-o', in_tmp("x.npy")]),
    ("opt-gum2-dof", None, None, ["propagate", "--dx", "0.1", "--method", "gum", "--method", "gum2", "--dof", "5"]),
    ("opt-gum2-t-no-fourth-moment", None, None, ["propagate", "--dx", "0.1", "--method", "gum2", "--dist", "flow=t:4"]),
    # I/O
    ("io-missing-directory", None, None, ["-o", in_tmp("nodir/out.csv")]),
    ("io-output-is-directory", None, None, ["-o", in_tmp(".")]),
    ("io-unknown-extension", None, None, ["-o", in_tmp("out.xyz")]),
    # ONNX (tests/onnx_hostile.py writes the files)
    *[(cid, make, text("x.csv", "a,b,c\n1,2,3\n"), []) for cid, _, make, _ in ONNX_CASES
      if hasattr(os, "mkfifo") or "fifo" not in cid],
]

# Inputs test_bad_inputs.py accepts (not errors); the golden files record what they give.
ACCEPTED = [
    ("accepted-quoted-numbers", text("in.csv", b'temperature,pressure,flow\n"1","2","3"\n'), []),
    ("accepted-bom-crlf", text("in.csv", b"\xef\xbb\xbftemperature,pressure,flow\r\n1,2,3\r\n"), []),
    ("accepted-delimiter", text("in.csv", b"temperature;pressure;flow\n1;2;3\n"), ["--delimiter", ";"]),
    ("accepted-nan-skipped", text("in.csv", b"temperature,pressure,flow\n1,nan,3\n4,5,6\n"), ["--on-invalid", "skip"]),
    ("accepted-sniffed-semicolon", text("in.csv", b"temperature;pressure;flow\n1;2;3\n"), []),
    ("accepted-headerless", text("in.csv", b"1,2,3\n4,5,6\n"), []),
    ("accepted-na-skipped", text("in.csv", b"temperature,pressure,flow\n1,NA,3\n,5,6\n7,8,9\n"),
     ["--on-invalid", "skip"]),
    ("accepted-comments", text("in.csv", b"# made by hand\ntemperature,pressure,flow\n1,2,3 # first\n"),
     ["--comment", "#"]),
]

MAKERS = {c[0]: c for c in CASES}
ACCEPTED_MAKERS = {c[0]: c for c in ACCEPTED}


def _arg(path: Path) -> str:
    """A path as a command-line argument: relative to the repository root when it is in it."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def make(setup: str, tmp: Path) -> list[str]:
    """Make the files of ``setup`` ("bad:<id>" or "accepted:<id>") in ``tmp``; return the jacprop arguments
    (without the leading "jacprop") that test_bad_inputs.py would run, with real paths."""
    kind, _, name = setup.partition(":")
    if kind == "bad":
        _, make_model, make_inputs, extra = MAKERS[name]
        extra = [_arg(a(tmp)) if callable(a) else a for a in extra]
        command = "jacobian"
        if extra and extra[0] in ("propagate", "check"):
            command, extra = extra[0], extra[1:]
        model = make_model(tmp) if make_model else NPZ
        inputs = make_inputs(tmp) if make_inputs else (KCSV if make_model else CSV)
        args = [command, _arg(model), _arg(inputs), *extra]
        if "-o" not in args:  # as test_bad_inputs.py does: an output file that must not be left behind
            args += ["-o", _arg(tmp / "out.csv")]
        return args
    if kind == "accepted":
        _, make_inputs, extra = ACCEPTED_MAKERS[name]
        return ["jacobian", _arg(NPZ), _arg(make_inputs(tmp)), "--format", "csv", *extra]
    raise ValueError(f"unknown setup {setup!r}")
