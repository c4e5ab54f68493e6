"""Keras layer builders for the normalisation layers: BatchNormalization, LayerNormalization,
RMSNormalization (Keras 3) and Normalization (the preprocessing layer).

Keras axes count the batch axis (``Call.axis`` maps them to negative per-row axes); a layer's weights
have the shape of its normalised axes and are reshaped (or, for RMSNormalization, broadcast as Keras
does) against the row shape.
"""

from __future__ import annotations

import numpy as np

from .. import ops
from .keras_layers import Call


def _batch_norm(c: Call) -> int:
    """gamma (x - moving_mean) / sqrt(moving_variance + epsilon) + beta along ``axis``."""
    ax = c.axis(c.cfg.get("axis", -1))
    n = c.shape[ax]
    specs = ([("gamma", (n,))] if c.cfg.get("scale", True) else []) + \
            ([("beta", (n,))] if c.cfg.get("center", True) else []) + [("moving_mean", (n,)), ("moving_variance", (n,))]
    w = dict(zip([s[0] for s in specs], c.weights(*specs)))
    gamma, beta = w.get("gamma", np.ones(n)), w.get("beta", np.zeros(n))
    eps = c.cfg.get("epsilon", 1e-3)
    return c.add(ops.batch_norm(gamma, beta, w["moving_mean"], w["moving_variance"], eps, ax, len(c.shape)))


def _norm_axes(c: Call, axis) -> tuple[int, ...]:
    axis = axis if isinstance(axis, (list, tuple)) else [axis]
    return tuple(sorted({c.axis(a) for a in axis}))


def _layer_norm(c: Call) -> int:
    """Normalise over ``axis``; rms_scaling=True is Keras 3's variant (see ops.LayerNorm)."""
    axes = _norm_axes(c, c.cfg.get("axis", -1))
    rms_scaling = bool(c.cfg.get("rms_scaling", False))
    wshape = tuple(c.shape[a] for a in axes)
    bshape = tuple(c.shape[a] if a in axes else 1 for a in range(-len(c.shape), 0))
    scale = c.cfg.get("scale", True) or rms_scaling
    center = c.cfg.get("center", True) and not rms_scaling
    specs = ([("gamma", wshape)] if scale else []) + ([("beta", wshape)] if center else [])
    w = dict(zip([s[0] for s in specs], c.weights(*specs)))
    gamma, beta = (w[k].reshape(bshape) if k in w else None for k in ("gamma", "beta"))
    return c.add(ops.LayerNorm(axes=axes, epsilon=c.cfg.get("epsilon", 1e-3), gamma=gamma, beta=beta,
                               rms_scaling=rms_scaling))


def _rms_norm(c: Call) -> int:
    """Keras 3 RMSNormalization: x / sqrt(mean(x^2 over ``axis``) + epsilon) * scale.

    scale has the shape of the normalised axes but multiplies x with numpy's broadcasting, aligned with the
    *last* axes (measured, Keras 3.15.1): over a non-last axis of a (2, 2) row, scale runs along the last
    axis; where the shapes do not broadcast, Keras fails when called, and so do we, when loading."""
    axes = _norm_axes(c, c.cfg.get("axis", -1))
    (scale,) = c.weights(("scale", tuple(c.shape[a] for a in axes)))
    try:
        fits = np.broadcast_shapes(scale.shape, c.shape) == c.shape
    except ValueError:
        fits = False
    if not fits:
        raise c.fail(f"scale of shape {scale.shape} does not broadcast against the row shape {c.shape} "
                     "(Keras itself cannot call this layer)")
    gamma = scale.reshape((1,) * (len(c.shape) - scale.ndim) + scale.shape)
    return c.add(ops.LayerNorm(axes=axes, epsilon=c.cfg.get("epsilon", 1e-6), gamma=gamma, rms=True))


def _normalization(c: Call) -> int:
    """(x - mean) / max(sqrt(variance), 1e-7), or its inverse; statistics from the config
    (``mean``/``variance`` given) or else from the weights [mean, variance, count].
    Keras 3 turns config values into tensors with convert_to_tensor, i.e. float32, even in a
    float64 model; Keras 2 keeps them float64; the 1e-7 is exact in both (all measured, see
    sample_models/keras/CONSTANTS.md).  We do the same."""
    axis = c.cfg.get("axis", -1)
    keep = () if axis is None else _norm_axes(c, axis)
    wshape = tuple(c.shape[a] for a in keep)
    bshape = tuple(c.shape[a] if a in keep else 1 for a in range(-len(c.shape), 0))
    if c.cfg.get("mean") is not None:
        c.weights()
        try:
            dtype = np.float32 if c.keras3 else np.float64
            mean = np.broadcast_to(np.asarray(c.cfg["mean"], dtype=dtype), wshape)
            var = np.broadcast_to(np.asarray(c.cfg["variance"], dtype=dtype), wshape)
        except (ValueError, TypeError):
            raise c.fail(f"mean/variance in the config do not fit shape {wshape}") from None
    else:
        mean, var, _ = c.weights(("mean", wshape), ("variance", wshape), ("count", ()))
    return c.add(ops.normalization(mean.reshape(bshape).astype(np.float64), var.reshape(bshape).astype(np.float64),
                                   invert=bool(c.cfg.get("invert", False))))


BUILDERS = {
    "BatchNormalization": _batch_norm,
    "LayerNormalization": _layer_norm,
    "RMSNormalization": _rms_norm,
    "Normalization": _normalization,
}
