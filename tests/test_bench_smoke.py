"""The benchmark still runs (tiny sizes, jacprop only); no timing is asserted."""

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"


def test_bench_smoke():
    out = subprocess.run([sys.executable, str(BENCH), "--smoke"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "| small | float64 | 50 | reverse, 50 |" in out.stdout
    assert "| small | float32 | 50 |" in out.stdout


def test_bench_e2e_smoke():
    script = BENCH.parent / "bench_e2e.py"
    out = subprocess.run([sys.executable, str(script), "--rows", "2000", "--repeats", "1"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "| `jacprop jacobian` CLI, whole run |" in out.stdout
    assert "| parse alone: numpy.loadtxt |" in out.stdout


def test_bench_hessian_smoke():
    script = BENCH.parent / "bench_hessian.py"
    out = subprocess.run([sys.executable, str(script), "--smoke"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "| small | 8 (8) | 2 | float64 | 50 |" in out.stdout


def test_bench_rnn_hessian_smoke():
    script = BENCH.parent / "bench_rnn_hessian.py"
    out = subprocess.run([sys.executable, str(script), "--smoke"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "| 4 | jacprop hessian --wrt |" in out.stdout
