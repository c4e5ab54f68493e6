"""A Keras model with use_bias=False layers (issue #20), in the three formats real Keras wrote,
against TensorFlow's float64 outputs and GradientTape Jacobians (sample_models/keras/bias_free.*,
made by make_samples.py --only bias_free).  Only jacprop.load/forward/jacobian and the CLI are used."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import jacprop
from jacprop.cli import main

SAMPLES = Path(__file__).resolve().parent.parent / "sample_models" / "keras"
REF = SAMPLES / "bias_free.ref.npz"


@pytest.mark.parametrize("fmt", ["k2.h5", "k3.keras", "k3.h5"])
def test_bias_free_layers_match_tensorflow(fmt):
    ref = np.load(REF, allow_pickle=False)
    model = jacprop.load(SAMPLES / f"bias_free.{fmt}")
    x = ref["x"]
    y, J = jacprop.jacobian(model, x)
    scale = max(1.0, float(np.abs(ref["jacobian"]).max()))
    assert np.abs(y - ref["y64"]).max() <= 1e-12 * max(1.0, float(np.abs(ref["y64"]).max()))
    assert np.abs(J - ref["jacobian"]).max() <= 1e-12 * scale
    np.testing.assert_allclose(model.forward(x), ref["y64"], rtol=0, atol=1e-12)
    # the float32 predict, within float32 precision
    assert np.abs(model.forward(x, dtype=np.float32) - ref["y32"]).max() <= 1e-5


@pytest.mark.parametrize("fmt", ["k2.h5", "k3.keras", "k3.h5"])
def test_bias_free_layers_have_only_their_kernels(fmt):
    r = CliRunner().invoke(main, ["inspect", str(SAMPLES / f"bias_free.{fmt}"), "--format", "json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    layers = {entry["name"]: entry for entry in doc["layers"]}
    # Conv1D(3, 3) on 2 channels, Dense(5) on 12 and Dense(2) on 4 without bias; Dense(4) on 5 with it
    assert {n: layers[n]["params"] for n in ("conv_nb", "fc_nb", "fc_bias", "out_nb")} == \
        {"conv_nb": 18, "fc_nb": 60, "fc_bias": 24, "out_nb": 8}
