"""Activations where mutation testing (issue #20, tests/README.md) found no test: softmax and
log_softmax far from zero and along their own axis only, aliases, the refusal message, float32 erf."""

import math

import numpy as np
import pytest

from jacprop.ops.activations import ELEMENTWISE, Activation, erf


def softmax_ref(row):
    """Softmax of one row in exact-ish arithmetic (math.fsum, shifted by hand)."""
    m = max(row)
    e = [math.exp(v - m) for v in row]
    s = math.fsum(e)
    return [v / s for v in e]


def test_softmax_is_shifted_per_row_along_its_own_axis():
    """Rows of very different size: a shift by the global maximum (or by +max) underflows or
    overflows; exp(a) alone overflows at 1000."""
    a = np.array([[0.0, 1.0, 2.0], [1000.0, 1001.0, 1003.0], [-800.0, -799.5, -801.0]])
    expected = np.array([softmax_ref(r) for r in a.tolist()])
    for name, f in (("softmax", lambda r: r), ("log_softmax", np.log)):
        y = Activation(name)(a)
        np.testing.assert_allclose(y, f(expected), rtol=1e-14, atol=0)
        y2 = Activation(name, axis=-2)(a.T.copy())  # the same along the first axis
        np.testing.assert_allclose(y2, f(expected).T, rtol=1e-14, atol=0)
        y3 = Activation(name, axis=-2)(np.stack([a.T, a.T + 500.0]))  # batch of two: each its own shift
        np.testing.assert_allclose(y3, np.stack([f(expected).T] * 2), rtol=1e-14, atol=0)


@pytest.mark.parametrize("alias,name", [("silu", "swish"), ("hard_swish", "hard_silu"), ("identity", "linear"),
                                        (None, "linear")])
def test_aliases_are_the_activation_they_name(alias, name):
    a = np.linspace(-4, 4, 17)
    act = Activation(alias)
    assert act.name == name and act == Activation(name)
    np.testing.assert_array_equal(act(a), ELEMENTWISE[name][0](a, 0.0))
    np.testing.assert_array_equal(act.derivative(a, act(a)), ELEMENTWISE[name][1](a, act(a), 0.0))


def test_an_unknown_activation_is_named():
    with pytest.raises(ValueError, match=r"^unknown activation 'swishy'$"):
        Activation("swishy")


def test_erf_keeps_float32():
    x = np.linspace(-4, 4, 33, dtype=np.float32)
    y = erf(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, [math.erf(v) for v in x.astype(float)], rtol=0, atol=2.4e-7)  # 2 float32 ulps near 1
    y_gelu = Activation("gelu")(x)
    assert y_gelu.dtype == np.float32
