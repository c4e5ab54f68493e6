"""A bounded fuzzing run (fixed seed) in a subprocess with a memory limit; `make fuzz` runs longer."""

import resource
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, 4 * 2**30))


def test_mutated_models_configs_and_csvs_work_or_fail_cleanly():
    p = subprocess.run([sys.executable, str(HERE / "fuzz.py"), "--examples", "1500"], capture_output=True, text=True,
                       timeout=600, preexec_fn=limit_memory)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "1500 cases, 0 failures, corpus 0 failures" in p.stdout
