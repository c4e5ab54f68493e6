"""Keras 2's CuDNNLSTM / CuDNNGRU (a file tf_keras wrote: sample_models/keras/cudnn.k2.h5) against
TensorFlow's own float64 LSTM and reset_after GRU given the same weights (the reference and how it was
made: sample_models/keras/make_cudnn_sample.py): y and J in both modes, and check --order 2 (H against
central differences of J)."""

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import jacprop
from jacprop.cli import main

KERAS = Path(__file__).resolve().parent.parent / "sample_models" / "keras"
MODEL, INPUTS, REF = KERAS / "cudnn.k2.h5", KERAS / "cudnn.csv", KERAS / "cudnn.ref.npz"


@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_cudnn_layers_match_tensorflow(mode):
    ref = np.load(REF)
    Y, J = jacprop.jacobian(jacprop.load(str(MODEL)), ref["x"], mode=mode)
    np.testing.assert_allclose(Y, ref["y"], rtol=0, atol=1e-13)
    assert np.abs(J - ref["jacobian"]).max() <= 1e-12 * max(1, np.abs(ref["jacobian"]).max())
    assert np.abs(ref["jacobian"]).max() > 0.01  # not a flat model (max|J| 0.023)
    np.testing.assert_allclose(J, ref["jacobian"], rtol=1e-10, atol=1e-16)


def test_cudnn_file_is_read_as_what_it_is_and_checks_pass():
    r = CliRunner().invoke(main, ["inspect", str(MODEL)])
    assert r.exit_code == 0 and "CuDNNLSTM" in r.stdout and "CuDNNGRU" in r.stdout, r.output
    for order in ("1", "2"):
        c = CliRunner().invoke(main, ["check", str(MODEL), str(INPUTS), "--order", order])
        assert c.exit_code == 0, c.output
