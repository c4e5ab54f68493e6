"""Each constant of an activation or normalisation layer against a float64 reference Keras computed itself.

Samples and refs: sample_models/keras/constants/ (made by sample_models/keras/make_constant_refs.py, findings in
sample_models/keras/CONSTANTS.md). Each model is float64 throughout, so a constant jacprop rounds differently
from Keras shows as a relative difference of ~1e-8, far above the 1e-13 allowed here.
"""

from pathlib import Path

import numpy as np
import pytest

import jacprop
from jacprop.errors import ModelError
from jacprop.ops.activations import Activation

CONSTANTS = Path(__file__).resolve().parent.parent / "sample_models" / "keras" / "constants"
FILES = {"k2": "k2.h5", "k3": "k3.keras"}
RTOL = 1e-13


def ref(name, version):
    path = CONSTANTS / f"{name}.{version}.ref.npz"
    if not path.exists():
        pytest.skip(f"{path} not generated")
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def assert_close(got, want):
    """|got - want| <= RTOL * max|want|, over the whole array (a float32 constant gives ~1e-8)."""
    err = np.abs(got - want).max() / np.abs(want).max()
    assert err <= RTOL, f"relative error {err:.3g}"


def check(name, version):
    r = ref(name, version)
    model = jacprop.load(CONSTANTS / f"{name}.{FILES[version]}")
    assert_close(jacprop.forward(model, r["x"]), r["y"])
    y, J = jacprop.jacobian(model, r["x"])
    assert_close(y, r["y"])
    assert_close(J, r["jacobian"])


VERSIONS = pytest.mark.parametrize("version", ["k2", "k3"])


@VERSIONS
def test_gelu_string_inv_sqrt2(version):
    """Dense(activation='gelu'): Keras uses float32(1/sqrt(2)) (measured, both versions)."""
    check("gelu_string", version)


@VERSIONS
def test_gelu_layer_inv_sqrt2(version):
    """Activation('gelu') layer: float32(1/sqrt(2)) (measured)."""
    check("gelu_layer", version)


@VERSIONS
def test_gelu_approximate_coeff(version):
    """gelu(approximate=True): float32(0.044715), exact sqrt(2/pi) (measured). No file can hold it, so
    the activation the loader maps it to is checked directly against keras.activations.gelu."""
    r = ref("gelu_approx", version)
    act = Activation("gelu_tanh")
    x = r["x"]
    y = act(x)
    assert_close(y, r["y"])
    J = np.einsum("nk,kd->nkd", act.derivative(x, y), np.eye(x.shape[1]))
    assert_close(J, r["jacobian"])


@VERSIONS
def test_leaky_relu_string_slope(version):
    """'leaky_relu' string, slope 0.2: float32(0.2) (measured)."""
    check("leaky_string", version)


@VERSIONS
def test_leaky_relu_layer_slope(version):
    """LeakyReLU(0.2) layer: float32(0.2) (measured)."""
    check("leaky_layer_02", version)


@VERSIONS
def test_leaky_relu_layer_default_slope(version):
    """LeakyReLU() with its default 0.3: float32(0.3) (measured)."""
    check("leaky_layer_default", version)


@VERSIONS
def test_leaky_relu_object_slope(version):
    """Dense(activation=LeakyReLU(0.1)) layer object: float32(0.1) (measured)."""
    check("leaky_object_01", version)


@VERSIONS
def test_relu_max_value(version):
    """ReLU(max_value=6.1): exact 6.1 in Keras 2, float32(6.1) in Keras 3 (measured); an input between the
    two values tells them apart in y and J."""
    check("relu_max_value", version)


@VERSIONS
def test_relu_negative_slope(version):
    """ReLU(negative_slope=0.15): float32(0.15) (measured; Keras calls leaky_relu)."""
    check("relu_negative_slope", version)


@VERSIONS
def test_relu_threshold_refused(version):
    """ReLU(threshold=0.3): Keras 2 compares with the exact 0.3, Keras 3 with float32(0.3) (measured, refs
    kept). jacprop does not support a threshold, and says so."""
    ref("relu_threshold", version)
    with pytest.raises(ModelError, match="threshold=0.3"):
        jacprop.load(CONSTANTS / f"relu_threshold.{FILES[version]}")


@VERSIONS
def test_elu_alpha(version):
    """ELU(alpha=0.7): exact 0.7 (measured)."""
    check("elu_alpha", version)


@VERSIONS
def test_selu_constants(version):
    """selu's alpha and scale: exact (measured)."""
    check("selu", version)


@VERSIONS
def test_hard_sigmoid(version):
    """hard_sigmoid: Keras 2's 0.2 is exact (measured); Keras 3 relu6(x + 3) / 6 has no rounded constant."""
    check("hard_sigmoid", version)


@VERSIONS
def test_rescaling_scale_and_offset(version):
    """Rescaling(1/255., -0.1): float32(scale) and float32(offset) (measured)."""
    check("rescaling", version)


@VERSIONS
def test_normalization_epsilon(version):
    """Normalization divides by max(sqrt(variance), 1e-7) with the exact 1e-7 (measured)."""
    check("normalization_epsilon", version)


@VERSIONS
def test_normalization_config_mean_variance(version):
    """Normalization(mean=0.1, variance=0.3) from the config: exact in Keras 2, float32 in Keras 3 (measured)."""
    check("normalization_config", version)


@VERSIONS
def test_batch_norm_epsilon(version):
    """BatchNormalization(epsilon=1e-3): exact (measured)."""
    check("batchnorm_epsilon", version)


@VERSIONS
def test_layer_norm_epsilon(version):
    """LayerNormalization(epsilon=1e-3): exact (measured)."""
    check("layernorm_epsilon", version)
