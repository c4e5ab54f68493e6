"""Convolutions beyond ``spatial.Conv``: depthwise (Keras DepthwiseConv1D/2D, the first half of
SeparableConv1D/2D) and transposed (Conv1DTranspose/Conv2DTranspose).  Both reuse
``spatial.Window``: its ``gather`` collects each output position's window, its ``scatter`` is the
transpose that sums the windows back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .base import dot_last, register
from .spatial import WindowedAffine, _make_shape, _per_axis, _spatial_shape


class _Windowed(WindowedAffine):
    """The variants' bias check (fields, bind and window: WindowedAffine)."""

    def _check_bias(self, n):
        if self.bias is not None and self.bias.shape != (n,):
            raise ValueError(f"bias shape {self.bias.shape} does not fit {n} output channels")


@register
@dataclass
class Depthwise(_Windowed):
    """DepthwiseConv: every input channel c convolved with its own M filters, kernel (*size, C, M):
    a[o, c M + m] = bias[c M + m] + sum_j x[o s + j d - pad, c] kernel[j, c, m]."""

    def out_shape(self, s):
        spatial, c = _spatial_shape(s, self.window_rank, self.channels_first)
        if c != self.kernel.shape[-2]:
            raise ValueError(f"kernel expects {self.kernel.shape[-2]} input channels, got shape {tuple(s)}")
        self._check_bias(c * self.kernel.shape[-1])
        return _make_shape(self._window(spatial).out, c * self.kernel.shape[-1], self.channels_first)

    @cached_property
    def window(self):
        return self._window(_spatial_shape(self.in_shapes[0], self.window_rank, self.channels_first)[0])

    @cached_property
    def _k(self):
        return self.kernel.reshape(-1, *self.kernel.shape[-2:])  # (kp, C, M)

    def _linear(self, x):
        def conv(v):
            cols = self.window.gather(v)  # (B, *out, kp, C)
            y = np.einsum("...kc,kcm->...cm", cols, self._k.astype(v.dtype, copy=False), optimize=True)
            return y.reshape(*y.shape[:-2], -1)
        return self._map(conv, x)

    def _transpose(self, g):
        c, m = self.kernel.shape[-2:]

        def back(v):
            v = v.reshape(*v.shape[:-1], c, m)
            cols = np.einsum("...cm,kcm->...kc", v, self._k.astype(v.dtype, copy=False), optimize=True)
            return self.window.scatter(cols)
        return self._map(back, g)


@register
@dataclass
class ConvTranspose(_Windowed):
    """ConvTranspose, kernel (*size, C_out, C_in) as Keras stores it: the transpose of a convolution
    from the output grid to the input grid, y[o s + j d - pad, f] += x[o, c] kernel[j, f, c].  Output
    length per axis (Keras' deconv_output_length): valid L s + max(e - s, 0) with e = (k - 1) d + 1 (a stride
    longer than the window leaves positions only the bias reaches), same L s."""

    def _out_spatial(self, spatial):
        rank = self.window_rank
        k, s, d = self.kernel.shape[:-2], _per_axis(self.strides, rank), _per_axis(self.dilation, rank)
        if self.padding == "same":
            return tuple(n * si for n, si in zip(spatial, s))
        if self.padding == "valid":
            return tuple(n * si + max((ki - 1) * di + 1 - si, 0) for n, si, ki, di in zip(spatial, s, k, d))
        raise ValueError(f"padding {self.padding!r} is not supported for a transposed convolution")

    def out_shape(self, s):
        spatial, c = _spatial_shape(s, self.window_rank, self.channels_first)
        if c != self.kernel.shape[-1]:
            raise ValueError(f"kernel expects {self.kernel.shape[-1]} input channels, got shape {tuple(s)}")
        self._check_bias(self.kernel.shape[-2])
        out = self._out_spatial(spatial)
        if self._window(out).out != tuple(spatial):
            raise ValueError(f"a transposed convolution of {tuple(spatial)} to {out} does not fit the kernel")
        return _make_shape(out, self.kernel.shape[-2], self.channels_first)

    @cached_property
    def window(self):
        spatial = _spatial_shape(self.in_shapes[0], self.window_rank, self.channels_first)[0]
        return self._window(self._out_spatial(spatial))

    @cached_property
    def _w(self):
        """(C_in, kp C_out)."""
        kp, c_out, c_in = math.prod(self.kernel.shape[:-2]), *self.kernel.shape[-2:]
        return np.moveaxis(self.kernel.reshape(kp, c_out, c_in), -1, 0).reshape(c_in, kp * c_out)

    def _linear(self, x):
        c_out = self.kernel.shape[-2]
        return self._map(lambda v: self.window.scatter(dot_last(v, self._w.astype(v.dtype, copy=False))
                                                       .reshape(*v.shape[:-1], -1, c_out)), x)

    def _transpose(self, g):
        def back(v):
            cols = self.window.gather(v)  # (B, *in, kp, C_out)
            return dot_last(cols.reshape(*cols.shape[:-2], -1), self._w.T.astype(v.dtype, copy=False))
        return self._map(back, g)
