"""A model file is data: no code from it ever runs."""

import re
from pathlib import Path

import numpy as np
import pytest

import jacprop
from jacprop.errors import ModelError

PACKAGE = Path(jacprop.__file__).parent


class _Payload:
    """Unpickling this object creates the marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_npz_pickle_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "marker"
    np.savez(tmp_path / "evil.npz", W0=np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    assert not marker.exists()
    with pytest.raises(ModelError, match="object arrays"):
        jacprop.load(tmp_path / "evil.npz")
    assert not marker.exists()


def test_no_code_execution_primitives_anywhere_in_the_package():
    """eval, exec, marshal, pickle and allow_pickle=True have no place in jacprop/."""
    pattern = re.compile(r"\beval\(|\bexec\(|\bimport marshal|\bmarshal\.|\bimport pickle|\bpickle\.|"
                         r"allow_pickle\s*=\s*True|__import__\(")
    offenders = [f"{p.relative_to(PACKAGE)}:{i}: {line.strip()}"
                 for p in PACKAGE.rglob("*.py") for i,
                 line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert offenders == []
