"""Reading one chunk ahead (parallel.Prefetch, CsvReader.chunks(ahead=True), the CLI's local runs): the same
items in the same order, an input's error after the rows before it, the thread stopped by close(), and the CLI's
output and error lines unchanged when the bad row lies in a later chunk than the one being computed."""

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from jacprop.io import reader as csvreader
from jacprop.parallel import Prefetch


def reading_threads():
    return [t for t in threading.enumerate() if t.name == "jacprop-read"]


def test_items_in_order_and_the_error_after_the_items_before_it():
    def items():
        yield from range(5)
        raise ValueError("row 6")

    got = []
    with pytest.raises(ValueError, match="row 6"):
        for x in Prefetch(items(), depth=2):
            got.append(x)
    assert got == [0, 1, 2, 3, 4]
    assert not reading_threads()


def test_the_consumer_stopping_early_stops_the_thread_at_once():
    produced = []

    def items():
        for i in range(1000):
            produced.append(i)
            yield i

    ahead = Prefetch(items(), depth=1)
    for x in ahead:
        if x == 3:
            break
    ahead.close()  # the loop's break already closed it: a second close is harmless
    assert not reading_threads()
    assert len(produced) <= 6  # the one held, at most ``depth`` waiting, one being put: not all 1,000


def test_close_waits_for_the_item_being_read():
    state = {"finished": False}

    def items():
        yield 0
        time.sleep(0.3)
        state["finished"] = True
        yield 1

    ahead = Prefetch(items())
    it = iter(ahead)
    assert next(it) == 0
    ahead.close()  # the thread is inside the sleep: close returns only after it stopped
    assert state["finished"] and not reading_threads()


def write_csv(path, X):
    np.savetxt(path, X, delimiter=",", fmt="%.17g", header=",".join(f"x{i}" for i in range(X.shape[1])), comments="")


def test_reader_ahead_gives_the_serial_chunks(tmp_path):
    X = np.random.default_rng(1).normal(size=(5000, 3))
    write_csv(tmp_path / "x.csv", X)
    runs = []
    for ahead in (False, True):
        r = csvreader.CsvReader(tmp_path / "x.csv", chunk_rows=700)
        chunks = r.chunks(ahead=ahead)
        first = next(chunks)
        assert bool(reading_threads()) is ahead  # a file is read ahead on a thread when asked, and only then
        runs.append([(c.X.copy(), c.rows.copy()) for c in [first, *chunks]])
        r.close()
    assert len(runs[0]) == len(runs[1]) == 8
    for (a, ra), (b, rb) in zip(*runs):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ra, rb)
    np.testing.assert_array_equal(np.concatenate([a for a, _ in runs[1]]), X)
    assert not reading_threads()


def test_cli_bad_row_in_a_later_chunk(tmp_path):
    """A NaN at row 70,000 (the second 65,536-row chunk): the error names it and -o is not left behind."""
    X = np.random.default_rng(2).normal(size=(70_000, 3))
    X[69_999, 1] = np.nan
    write_csv(tmp_path / "x.csv", X)
    model = tmp_path / "m.npz"
    rng = np.random.default_rng(3)
    np.savez(model, W0=rng.normal(size=(3, 4)), b0=np.zeros(4), W1=rng.normal(size=(4, 2)), b1=np.zeros(2),
             activations=np.array(["tanh", "linear"]))
    out = tmp_path / "J.npy"
    r = subprocess.run([sys.executable, "-m", "jacprop", "jacobian", str(model), str(tmp_path / "x.csv"),
                        "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert r.stderr.strip().splitlines()[-1].endswith(
        "row 70000, column 'x1': value nan is not finite (a NaN or missing cell: see --na-values) "
        "(use --on-invalid skip or keep)"), r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz", "x.csv"]  # no J.npy, no temporary


def test_a_pipe_is_not_read_ahead(tmp_path):
    """A pipe's read may wait for ever (a terminal, a producer that pauses): no thread is left waiting there."""
    r, w = os.pipe()
    os.write(w, b"a,b\n1,2\n3,4\n")
    os.close(w)
    with os.fdopen(r, "rb") as f:
        reader = csvreader.CsvReader(f)
        chunks = reader.chunks(ahead=True)
        assert not reading_threads()
        np.testing.assert_array_equal(np.concatenate([c.X for c in chunks]), [[1, 2], [3, 4]])
        reader.close()
