"""IO pieces that mutation testing (issue #20, tests/mutation-mut-io.md) found unchecked, and stdin's name in
the reader's messages; each checked against rows, numbers or texts computed here."""

from pathlib import Path

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
