"""--engine dask and jacprop.dask on a real dask.distributed LocalCluster on 127.0.0.1 (no mocks):
the distributed output equals the single-machine output byte for byte, a killed worker changes
nothing, and a bad row gives the local path's error."""

import glob
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import jacprop

pytest.importorskip("dask.distributed", reason="dask is an optional extra: pip install 'jacprop[dask]'")

from click.testing import CliRunner  # noqa: E402
from dask.distributed import Client, LocalCluster  # noqa: E402

from jacprop import ops  # noqa: E402
from jacprop.cli import main  # noqa: E402
from jacprop.cluster import runner as distributed  # noqa: E402
from jacprop.commands.common import InputSpec, ModelSpec, OutputSpec  # noqa: E402
from jacprop.commands.jacobian import JacobianSpec  # noqa: E402
from jacprop.errors import JacpropError  # noqa: E402
from jacprop.graph import GraphBuilder  # noqa: E402
from jacprop.io import reader as csvio  # noqa: E402
from jacprop.loaders import npz  # noqa: E402
from jacprop.ops.activations import Activation  # noqa: E402

SAMPLES = Path(__file__).parent.parent / "sample_models"
MODEL = str(SAMPLES / "bishop_tanh.npz")
NAMES = ["temperature", "pressure", "flow"]


def local_cluster(n=2):
    return LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                        dashboard_address="127.0.0.1:0", silence_logs=logging.CRITICAL)


@pytest.fixture(scope="module")
def cluster():
    with local_cluster() as c:
        yield c


def tune(monkeypatch, chunk=64, partition=128, split=2000):
    """Small reader chunks for both paths (the single-machine one too), partitions of a few chunks
    and small counting ranges: many partitions from small files, chunked as the local path is."""
    original = csvio.CsvReader.__init__

    def init(self, *args, **kwargs):
        kwargs.setdefault("chunk_rows", chunk)
        original(self, *args, **kwargs)

    monkeypatch.setattr(csvio.CsvReader, "__init__", init)
    monkeypatch.setattr(distributed, "CHUNK_ROWS", chunk)
    monkeypatch.setattr(distributed, "PARTITION_ROWS", partition)
    monkeypatch.setattr(distributed, "SPLIT_BYTES", split)


@pytest.fixture
def small(monkeypatch):
    tune(monkeypatch)


def write_csv(path, X, ids=None, blank_every=0, names=NAMES, bad=None):
    """X as CSV (repr numbers), optional id column, blank lines now and then, ``bad`` = (row, col, text)."""
    lines = [",".join((["id"] if ids is not None else []) + names)]
    for n, row in enumerate(X):
        cells = [repr(float(v)) for v in row]
        if bad and bad[0] == n + 1:
            cells[bad[1]] = bad[2]
        lines.append(",".join(([str(ids[n])] if ids is not None else []) + cells))
        if blank_every and n % blank_every == 3:
            lines.append("")
    Path(path).write_text("\r\n".join(lines) + "\r\n" if ids is not None else "\n".join(lines) + "\n")
    return str(path)


def data(n, seed=0, d=3):
    return np.random.default_rng(seed).normal(size=(n, d))


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def on(cluster, *args):
    return cli(*args, "--engine", "dask", "--scheduler", cluster.scheduler_address)


def ok(result):
    assert result.exit_code == 0, (result.output, result.exception)
    return result


# ---------------------------------------------------------------------------


def test_models_come_first_then_inputs_files_or_globs(tmp_path):
    for name in ("part-2.csv", "part-1.csv", "part-10.csv"):
        write_csv(tmp_path / name, data(3))
    models, inputs = distributed.split_models_inputs(
        [MODEL, MODEL, str(tmp_path / "part-*.csv"), str(tmp_path / "part-1.csv")])
    assert models == [MODEL, MODEL]
    assert inputs == [str(tmp_path / n) for n in ("part-1.csv", "part-10.csv", "part-2.csv", "part-1.csv")]
    for paths, message in [([str(tmp_path / "part-1.csv"), MODEL], "not a model file"),
                           ([MODEL, str(tmp_path / "part-1.csv"), MODEL], "a model file after the inputs"),
                           ([MODEL], "the inputs are the arguments that are not model files"),
                           ([MODEL, "-"], "not stdin"),
                           ([MODEL, str(tmp_path / "nothing-*.csv")], "no input files match")]:
        with pytest.raises(JacpropError, match=message):
            distributed.split_models_inputs(paths)


def test_usage_errors_before_any_cluster(tmp_path):
    csv = write_csv(tmp_path / "a.csv", data(5))
    for args, message in [(["--scheduler", "tcp://127.0.0.1:1"], "--scheduler needs --engine dask"),
                          (["--engine", "dask", "--summary"], "--summary is not available with --engine dask"),
                          (["--engine", "dask", "--format", "table"],
                           "--format table is not available with --engine dask"),
                          (["-o", str(tmp_path)], "is a directory (a directory of part files needs --engine dask)")]:
        r = cli("jacobian", MODEL, csv, *args)
        assert r.exit_code == 2 and message in r.stderr, r.output
    assert ("MODEL files (HDF5 or zip content) up to the first that is not"
            in " ".join(cli("jacobian", "--help").output.split()))


def test_local_engine_does_not_import_dask(tmp_path):
    csv = write_csv(tmp_path / "a.csv", data(5))
    code = ("import sys, contextlib; from jacprop.cli import main\n"
            "with contextlib.suppress(SystemExit): "
            f"main(['jacobian', {MODEL!r}, {csv!r}, '-o', {str(tmp_path / 'o.csv')!r}])\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed', 'jacprop.dask')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_text_output_is_byte_identical(cluster, small, tmp_path, fmt):
    X = data(1000)
    csv = write_csv(tmp_path / "a.csv", X, ids=[f"r{i}" for i in range(len(X))], blank_every=97)
    ok(cli("jacobian", MODEL, csv, "--id-column", "id", "-o", tmp_path / f"local.{fmt}"))
    ok(on(cluster, "jacobian", MODEL, csv, "--id-column", "id", "-o", tmp_path / f"dask.{fmt}"))
    assert (tmp_path / f"dask.{fmt}").read_bytes() == (tmp_path / f"local.{fmt}").read_bytes()
    assert not glob.glob(str(tmp_path / ".jacprop-*"))  # the staging directory is gone


@pytest.mark.parametrize("fmt", ["npy", "npz"])
def test_array_output_is_identical(cluster, small, tmp_path, fmt):
    csv = write_csv(tmp_path / "a.csv", data(700), ids=list(range(700)))
    ok(cli("jacobian", MODEL, csv, "--id-column", "id", "--wrt", "flow,temperature", "-o", tmp_path / f"local.{fmt}"))
    ok(on(cluster, "jacobian", MODEL, csv, "--id-column", "id", "--wrt", "flow,temperature", "-o",
          tmp_path / f"dask.{fmt}"))
    if fmt == "npy":
        assert (tmp_path / "dask.npy").read_bytes() == (tmp_path / "local.npy").read_bytes()
        return
    a, b = np.load(tmp_path / "local.npz", allow_pickle=False), np.load(tmp_path / "dask.npz", allow_pickle=False)
    assert sorted(a.files) == sorted(b.files)
    for k in a.files:
        assert a[k].dtype == b[k].dtype and a[k].tobytes() == b[k].tobytes(), k


def test_several_files_a_glob_and_a_directory_of_parts(cluster, small, tmp_path):
    sizes = {"part-a.csv": 300, "part-b.csv": 1, "part-c.csv": 260}
    files = {n: write_csv(tmp_path / n, data(k, seed=i)) for i, (n, k) in enumerate(sizes.items())}
    pattern = str(tmp_path / "part-*.csv")
    ok(on(cluster, "jacobian", MODEL, pattern, "-o", tmp_path / "all.csv"))
    ok(on(cluster, "jacobian", MODEL, pattern, "-o", f"{tmp_path}/out/"))
    expected = b""
    for n, path in files.items():
        ok(cli("jacobian", MODEL, path, "-o", tmp_path / f"local-{n}"))
        body = (tmp_path / f"local-{n}").read_bytes()
        expected += body if not expected else body.split(b"\n", 1)[1]
    assert (tmp_path / "all.csv").read_bytes() == expected

    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["rows"] == 561 and manifest["format"] == "csv" and manifest["inputs"] == list(files.values())
    spans = [(p["input"], p["first_row"], p["last_row"], p["rows"]) for p in manifest["parts"]]
    assert spans == [(files["part-a.csv"], 1, 128, 128), (files["part-a.csv"], 129, 256, 128),
                     (files["part-a.csv"], 257, 300, 44),
                     (files["part-b.csv"], 1, 1, 1),
                     (files["part-c.csv"], 1, 128, 128), (files["part-c.csv"], 129, 256, 128),
                     (files["part-c.csv"], 257, 260, 4)]
    assert sorted(os.listdir(tmp_path / "out")) == ["manifest.json"] + [p["part"] for p in manifest["parts"]]
    local_a = (tmp_path / "local-part-a.csv").read_bytes().split(b"\n")
    part_1 = (tmp_path / "out" / manifest["parts"][1]["part"]).read_bytes().split(b"\n")
    assert part_1[0] == local_a[0] and part_1[1:-1] == local_a[129:257]  # its own header, then rows 129-256


def test_propagate_is_identical_with_monte_carlo_and_gates(cluster, small, tmp_path):
    csv = write_csv(tmp_path / "a.csv", data(400, seed=3))
    args = ["--dx", "temperature=0.05", "--dx", "pressure=2%", "--method", "all", "--samples", "50",
            "--check-linearity", "--max-dy", "0.05", "--format", "csv"]
    local = cli("propagate", MODEL, csv, *args, "-o", tmp_path / "local.csv")
    dask = on(cluster, "propagate", MODEL, csv, *args, "-o", tmp_path / "dask.csv")
    assert local.exit_code == dask.exit_code == 1  # the --max-dy gate
    assert local.stderr.startswith("jacprop: 400 rows; largest dy_linear ")  # the closing line, then the findings
    assert dask.stderr == local.stderr and "exceed the bounds, the 20 worst first: row " in local.stderr
    assert (tmp_path / "dask.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()


def test_propagate_gum2_and_the_hessian_index_are_identical(cluster, small, tmp_path):
    """gum2 on dask: each partition computes its rows' H through the same Estimator."""
    csv = write_csv(tmp_path / "a.csv", data(300, seed=4))
    args = ["--dx", "temperature=0.3", "--dx", "flow=1%", "--method", "gum2", "--level", "0.95", "--output-cov",
            "--check-linearity", "--max-nonlinearity", "0.5", "--format", "csv", "-q"]
    local = cli("propagate", MODEL, csv, *args, "-o", tmp_path / "local.csv")
    dask = on(cluster, "propagate", MODEL, csv, *args, "-o", tmp_path / "dask.csv")
    assert local.exit_code == dask.exit_code == 1 and "nonlinearity_hess" in dask.stderr
    assert dask.stderr == local.stderr
    assert (tmp_path / "dask.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()
    assert b"cov_gum2(y[0],y[1])" in (tmp_path / "dask.csv").read_bytes()


def test_a_bad_row_gives_the_local_error(cluster, small, tmp_path):
    a = write_csv(tmp_path / "a.csv", data(300))
    b = write_csv(tmp_path / "b.csv", data(900, seed=1), blank_every=200, bad=(700, 1, "oops"))
    local = cli("jacobian", MODEL, b, "-o", tmp_path / "local.csv")
    dask = on(cluster, "jacobian", MODEL, a, b, "-o", tmp_path / "dask.csv")
    assert local.exit_code == dask.exit_code == 2
    assert dask.stderr == local.stderr == (f"jacprop: error: {b}: row 700 (line 705), "
                                           "column 'pressure': 'oops' is not a number\n")
    assert sorted(os.listdir(tmp_path)) == ["a.csv", "b.csv"]  # no output, no parts left


def test_real_chunk_size_several_partitions_byte_identical(cluster, tmp_path):
    """No tuning: the reader's 65536-row chunks, partitions chosen from the row count."""
    csv = write_csv(tmp_path / "a.csv", data(140_000, seed=5))
    ok(cli("jacobian", MODEL, csv, "-o", tmp_path / "local.csv"))
    ok(on(cluster, "jacobian", MODEL, csv, "-o", f"{tmp_path}/parts/"))
    parts = json.loads((tmp_path / "parts" / "manifest.json").read_text())["parts"]
    assert [(p["first_row"], p["last_row"]) for p in parts] == [(1, 65536), (65537, 131072), (131073, 140000)]
    bodies = [(tmp_path / "parts" / p["part"]).read_bytes().split(b"\n", 1) for p in parts]
    assert bodies[0][0] + b"\n" + b"".join(body for _, body in bodies) == (tmp_path / "local.csv").read_bytes()


def test_local_cluster_started_by_the_command(tmp_path):
    csv = write_csv(tmp_path / "a.csv", data(50))
    local = ok(cli("jacobian", MODEL, csv, "--format", "jsonl"))
    dask = ok(cli("jacobian", MODEL, csv, "--format", "jsonl", "--engine", "dask", "--workers", "2"))
    assert dask.stdout == local.stdout and dask.stderr == ""


def mlp_file(path, d=16, hidden=(256, 256), k=4):
    rng = np.random.default_rng(0)
    b = GraphBuilder([("x", (d,))])
    node, n_in = b.inputs[0], d
    for i, h in enumerate([*hidden, k]):
        act = Activation("tanh" if i < len(hidden) else "linear")
        node = b.add(f"dense_{i}",
                     ops.Dense(kernel=rng.normal(size=(n_in, h)) / np.sqrt(n_in), bias=rng.normal(size=h) * 0.1,
                               activation=act), [node], "Dense")
        n_in = h
    with open(path, "wb") as f:
        npz.save(b.finish([node]), f)
    return str(path)


def test_a_killed_worker_changes_nothing(tmp_path, monkeypatch):
    """Kill one of two worker processes with SIGKILL while partitions run: Dask reruns its task
    elsewhere (the nanny restarts the worker) and the output is the same, byte for byte."""
    tune(monkeypatch, chunk=256, partition=512, split=50_000)
    model = mlp_file(tmp_path / "mlp.npz")
    csv = write_csv(tmp_path / "x.csv", data(16 * 512, seed=7, d=16), names=[f"x{i}" for i in range(16)])
    ok(cli("jacobian", model, csv, "-o", tmp_path / "local.csv"))

    with local_cluster(2) as cluster, Client(cluster) as client:
        before = client.run(os.getpid)  # worker address -> pid
        errors = []

        def run():
            try:
                out = OutputSpec(str(tmp_path / "dask.csv"), quiet=True)
                distributed.run_jacobian([model, csv], lambda m, i: JacobianSpec(ModelSpec(m), InputSpec(i), out),
                                         scheduler=cluster.scheduler_address)
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)

        thread = threading.Thread(target=run)
        thread.start()
        deadline, victim = time.monotonic() + 30, None
        while victim is None and time.monotonic() < deadline and thread.is_alive():
            done = glob.glob(str(tmp_path / ".jacprop-parts-*" / "part-*.csv"))
            busy = [w for w, keys in client.processing().items() if any("-part-" in str(k) for k in keys)]
            if len(done) >= 2 and busy:
                deps = client.run_on_scheduler(lambda dask_scheduler: {
                    str(k): sorted(str(d.key) for d in ts.dependencies)
                    for k, ts in dask_scheduler.tasks.items() if "-part-" in str(k)})
                victim = busy[0]
                os.kill(before[victim], signal.SIGKILL)
            time.sleep(0.02)
        assert victim is not None, "no worker was busy with a partition to kill"
        assert thread.is_alive()  # killed mid-run
        thread.join(60)
        assert not errors, errors
        after = client.run(os.getpid)
    assert len(done) < 16
    # every partition task reads the model from one task (sent once per worker), not from its own copy
    assert len({tuple(v) for v in deps.values()}) == 1 and next(iter(deps.values()))[0].startswith("jacprop-model-")
    assert before[victim] not in after.values()  # the killed process is gone; its nanny started another
    assert (tmp_path / "dask.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()


# ---------------------------------------------------------------------------
# the Python API


def test_api_dask_array_lazy_with_chunks_dtype_and_meta(cluster):
    import dask
    import dask.array as da

    import jacprop.dask

    model = jacprop.load(MODEL)
    Xn = data(1000)
    X = da.from_array(Xn, chunks=(300, 2))
    Y, J = jacprop.dask.jacobian(model, X)
    assert Y.shape == (1000, 2) and J.shape == (1000, 2, 3)
    assert Y.chunks == ((300, 300, 300, 100), (2,)) and J.chunks == ((300, 300, 300, 100), (2,), (3,))
    assert Y.dtype == J.dtype == np.float64 and J._meta.ndim == 3 and isinstance(J._meta, np.ndarray)
    graph = dict(J.__dask_graph__())
    assert sum("jacprop.graph.Model" in repr(type(v)) or type(v).__name__ == "Model" for v in graph.values()) <= 1
    with Client(cluster) as client:
        Yc, Jc = dask.compute(Y, J, scheduler=client)
    blocks = [jacprop.jacobian(model, Xn[s : s + 300]) for s in range(0, 1000, 300)]  # the same blocks: the same bits
    assert Yc.tobytes() == np.concatenate([b[0] for b in blocks]).tobytes()
    assert Jc.tobytes() == np.concatenate([b[1] for b in blocks]).tobytes()

    Y1, J1 = jacprop.jacobian(model, Xn, outputs=[1], wrt=[2, 0], dtype=np.float32)
    Y2, J2 = jacprop.dask.jacobian(model, X, outputs=[1], wrt=[2, 0], dtype=np.float32)
    assert J2.shape == (1000, 1, 2) and J2.dtype == np.float32
    np.testing.assert_allclose(J2.compute(), J1, rtol=1e-5)
    np.testing.assert_allclose(Y2.compute(), Y1, rtol=1e-5)


def test_api_dask_dataframe_numeric_columns():
    pytest.importorskip("dask.dataframe", reason="the DataFrame input needs dask[dataframe] (pandas)")
    import dask
    import dask.dataframe as dd
    import pandas as pd

    import jacprop.dask

    model = jacprop.load(MODEL)
    Xn = data(500, seed=2)
    frame = pd.DataFrame(Xn, columns=NAMES)
    frame.insert(0, "id", [f"r{i}" for i in range(len(frame))])
    df = dd.from_pandas(frame, npartitions=3)
    Y, J = jacprop.dask.jacobian(model, df)  # the id column is not numeric: left out
    assert Y.shape[1:] == (2,) and J.shape[1:] == (2, 3) and len(J.chunks[0]) == 3
    Yc, Jc = dask.compute(Y, J, scheduler="threads")
    Y0, J0 = jacprop.jacobian(model, Xn)
    np.testing.assert_allclose(Jc, J0, rtol=1e-14)  # other blocks than one call: equal to the last bits or so
    np.testing.assert_allclose(Yc, Y0, rtol=1e-14)
    _, Jr = jacprop.dask.jacobian(model, df, columns=["flow", "pressure", "temperature"])
    np.testing.assert_allclose(Jr.compute(scheduler="threads"), jacprop.jacobian(model, Xn[:, ::-1])[1], rtol=1e-14)


@pytest.mark.parametrize("variant", ["bom-no-header", "skip-nan", "rows", "bare-cr", "long-header"])
def test_input_variants_are_identical(cluster, small, tmp_path, variant):
    X = data(500, seed=4)
    args = []
    if variant == "skip-nan":
        X[[10, 200, 201, 450]] = np.nan
        args = ["--on-invalid", "skip"]
    csv = write_csv(tmp_path / "a.csv", X, blank_every=50)
    text = Path(csv).read_bytes()
    if variant == "bom-no-header":
        Path(csv).write_bytes(b"\xef\xbb\xbf" + text.split(b"\n", 1)[1])
        args = ["--no-header"]
    if variant == "rows":
        args = ["--rows", "3-70,129,250-"]
    if variant == "bare-cr":  # old Mac line ends: not cut by bytes, read whole (one partition)
        Path(csv).write_bytes(text.replace(b"\n", b"\r"))
    if variant == "long-header":  # a header longer than a counting block: the first blocks hold no row
        name = "i" * 5000
        lines = text.split(b"\n")
        Path(csv).write_bytes(b"\n".join([name.encode() + b"," + lines[0]]
                                         + [(b"%d," % n + line) if line else line for n, line in enumerate(lines[1:])]))
        args = ["--id-column", name]
    local = cli("jacobian", MODEL, csv, *args, "-o", tmp_path / "local.jsonl")
    dask = on(cluster, "jacobian", MODEL, csv, *args, "-o", tmp_path / "dask.jsonl")
    assert " rows; largest |J| " in local.stderr  # the closing line, on both engines
    assert local.exit_code == dask.exit_code == 0 and dask.stderr == local.stderr, (local.output, dask.output)
    assert (tmp_path / "dask.jsonl").read_bytes() == (tmp_path / "local.jsonl").read_bytes()
    if variant == "rows":  # partitions without a selected row are complete CSV files all the same
        ok(on(cluster, "jacobian", MODEL, csv, "--rows", "1-5,400", "-o", f"{tmp_path}/parts/"))
        manifest = json.loads((tmp_path / "parts" / "manifest.json").read_text())
        assert [p["rows"] for p in manifest["parts"]] == [5, 0, 0, 1]
        header = (tmp_path / "parts" / "part-00000.csv").read_bytes().split(b"\n")[0] + b"\n"
        assert (tmp_path / "parts" / "part-00001.csv").read_bytes() == header
        ok(on(cluster, "jacobian", MODEL, csv, "--rows", "1-5,400", "-o", tmp_path / "few.csv"))
        assert ((tmp_path / "few.csv").read_bytes().count(header) == 1
                and len((tmp_path / "few.csv").read_bytes().splitlines()) == 7)


def test_several_inputs_the_closing_line_names_the_file(cluster, small, tmp_path):
    """The largest |J| of all inputs and where: its row and its file, as the findings name them."""
    model, X = jacprop.load(MODEL), data(500, seed=8)
    top = int(np.abs(jacprop.jacobian(model, X)[1]).reshape(500, -1).max(axis=1).argmax())
    X[[top, 450]] = X[[450, top]]  # the row with the largest |J| goes to the second file, its row 151
    a, b = write_csv(tmp_path / "a.csv", X[:300]), write_csv(tmp_path / "b.csv", X[300:])
    J = jacprop.jacobian(model, X)[1]
    n, k, i = np.unravel_index(np.abs(J).argmax(), J.shape)
    assert n == 450
    r = ok(on(cluster, "jacobian", MODEL, a, b, "-o", tmp_path / "j.npz"))
    assert r.stderr == (f"jacprop: 500 rows; largest |J| {abs(J[n, k, i]):.4g} at row {n - 300 + 1} of {b} "
                        f"d(y[{k}])/d({NAMES[i]})\n")
