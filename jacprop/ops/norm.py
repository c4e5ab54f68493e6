"""Normalisations: affine maps (BatchNormalization at inference, Normalization, Rescaling)
and layer normalisation, whose variance makes it nonlinear."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import Linear, Op, register


@register
@dataclass
class Affine(Linear):
    """y = x * scale + shift, elementwise, scale and shift broadcast over the trailing axes.

    BatchNormalization (inference), Normalization and Rescaling are affine maps; see
    the constructors below for their parameters.
    """

    scale: np.ndarray = None
    shift: np.ndarray = None

    def out_shape(self, s):
        try:
            fits = np.broadcast_shapes(tuple(s), np.shape(self.scale), np.shape(self.shift)) == tuple(s)
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"parameters of shape {np.shape(self.scale)} do not fit input {tuple(s)}")
        return s

    def apply(self, x, constant=True):
        return x * self.scale + self.shift if constant else x * self.scale

    def transpose(self, g):
        return g * self.scale


def batch_norm(gamma, beta, mean, var, epsilon, channel_axis, ndim):
    """BatchNormalization at inference: y = gamma (x - mean) / sqrt(var + epsilon) + beta,
    statistics along ``channel_axis`` (negative) of a per-row tensor of ``ndim`` axes."""
    inv = gamma / np.sqrt(var + epsilon)
    shape = [1] * (-channel_axis)
    shape[0] = -1
    return Affine(scale=inv.reshape(shape), shift=(beta - mean * inv).reshape(shape))


def normalization(mean, var, invert=False, epsilon=1e-7):
    """Keras Normalization: y = (x - mean) / max(sqrt(var), eps); invert: y = mean + x max(sqrt(var), eps)."""
    std = np.maximum(np.sqrt(var), epsilon)
    if invert:
        return Affine(scale=std, shift=np.asarray(mean, dtype=std.dtype))
    return Affine(scale=1.0 / std, shift=-mean / std)


@register
@dataclass
class LayerNorm(Op):
    """y = gamma * xhat + beta over ``axes``: xhat = (x - mu) r, r = 1/sqrt(var + eps) (biased var).

    With ``rms``: y = gamma * x r, r = 1/sqrt(mean(x^2) + eps), no centring (RMSNorm;
    Keras 3 RMSNormalization).
    With ``rms_scaling``: y = gamma * x r, r = 1/sqrt(var(x) + eps), the variance *centred*
    but x not, and no beta.  This is what Keras 3 LayerNormalization(rms_scaling=True)
    computes (keras/src/ops/nn.py ``_layer_normalization``, 3.15; deprecated there because
    it is not RMSNorm).

    Every case has the Jacobian of xhat = y before gamma and beta in the form
    r (I - [1 1^T / n] - a b^T / n), the bracket only for plain layer normalisation:
    a = b = xhat for plain and rms; a = x r, b = (x - mu) r for rms_scaling
    (dr/dx = -r^3 (x - mu) / n).  vjp: g -> r (g - [mean g] - b mean(g a)), gamma applied
    first; jvp: t -> r (t - [mean t] - a mean(b t)), gamma applied after.

    Second order (``vjp2``), with g' = g gamma: in every case dr = -r^2 mean(b t), so
    d vjp = -r^2 mean(b t) (g' - [mean g'] - b mean(g' a)) - r (db mean(g' a) + b mean(g' da)),
    da = the jvp above (before gamma) and db = r (t - [mean t] - b mean(b t)), the bracket unless rms
    (db = da except for rms_scaling).
    """

    axes: tuple = (-1,)
    epsilon: float = 1e-3
    gamma: np.ndarray | None = None
    beta: np.ndarray | None = None
    rms: bool = False
    rms_scaling: bool = False

    def out_shape(self, s):
        if any(-a > len(s) for a in self.axes):
            raise ValueError(f"axes {self.axes} out of range for shape {s}")
        return s

    def forward(self, x):
        ax = tuple(self.axes)
        if self.rms:
            r = 1.0 / np.sqrt((x * x).mean(axis=ax, keepdims=True) + self.epsilon)
            xhat = b = x * r
        else:
            c = x - x.mean(axis=ax, keepdims=True)
            r = 1.0 / np.sqrt((c * c).mean(axis=ax, keepdims=True) + self.epsilon)
            b = c * r
            xhat = x * r if self.rms_scaling else b
        y = xhat if self.gamma is None else xhat * self.gamma
        if self.beta is not None:
            y = y + self.beta
        return y, (xhat, b, r)

    def _normalize_tangent(self, saved, t, transpose):
        a, b, r = (s[:, None] for s in saved)
        if transpose:
            a, b = b, a
        ax = tuple(self.axes)
        out = t - a * (t * b).mean(axis=ax, keepdims=True)
        if not (self.rms or self.rms_scaling):
            out = out - t.mean(axis=ax, keepdims=True)
        return out * r

    def vjp(self, saved, g, out=None):
        return (self._normalize_tangent(saved, g if self.gamma is None else g * self.gamma, True),)

    def jvp(self, saved, ts):
        t = self._normalize_tangent(saved, ts[0], False)
        return t if self.gamma is None else t * self.gamma

    def vjp2(self, saved, g, ts):
        a, b, r = (s[:, None, None] for s in saved)  # (N, 1, 1, *shape)
        ax = tuple(self.axes)

        def mean(v):
            return v.mean(axis=ax, keepdims=True)

        gp = (g if self.gamma is None else g * self.gamma)[:, :, None]  # (B, K, 1, *shape)
        t = ts[0][:, None]  # (B, 1, D, *shape)
        bt, mt = mean(b * t), mean(t)
        da = r * (t - a * bt - (mt if not (self.rms or self.rms_scaling) else 0))
        db = da if not self.rms_scaling else r * (t - mt - b * bt)
        mga = mean(gp * a)
        inner = gp - b * mga - (mean(gp) if not (self.rms or self.rms_scaling) else 0)
        return (-r * r * bt * inner - r * (db * mga + b * mean(gp * da)),)


