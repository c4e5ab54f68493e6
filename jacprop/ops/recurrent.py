"""Recurrent layers (Keras SimpleRNN, LSTM, GRU) unrolled over the time axis.

A recurrent op maps a sequence x (T, F) per row to the last state h_T (U,) or, with
``return_sequences``, to every state (T, U).  With the input projections a_x[t] = x[t] W + b
(all steps in one product) and h_0 = c_0 = 0, one step is (gates in Keras' column order;
s = recurrent_activation, h = activation; both elementwise):

- simple: h_t = h(a_x + h_{t-1} R);
- lstm:   [i, f, g, o] = [s, s, h, s](a_x + h_{t-1} R),  c_t = f c_{t-1} + i g,  h_t = o h(c_t);
- gru (reset_after, Keras' default since 2.3; bias rows [input, recurrent]):
          [a_z, a_r, a_n] = a_x,  [r_z, r_r, r_n] = h_{t-1} R + b_rec,
          z = s(a_z + r_z), r = s(a_r + r_r), n = h(a_n + r r_n),  h_t = z h_{t-1} + (1 - z) n;
- gru (reset_after=False, Keras <= 2.2's default): the same with n = h(a_n + (r h_{t-1}) R_n)
  and z, r from h_{t-1} [R_z R_r] alone.

``go_backwards`` reads the steps last to first, and the sequence returned is in that reading
order (Keras'); ``reverse_output`` turns it back into time order (Bidirectional's backward layer).

Derivatives: the forward pass keeps, per step, the products the chain rule needs (e.g. for
lstm P_i = g s'(a_i), P_f = c_{t-1} s'(a_f), P_g = i h'(a_g), P_o = h(c_t) s'(a_o),
P_c = o h'(c_t), and f).  vjp is backpropagation through time: walking the steps backwards
with dh (B, K, U) and dc,
    dc += dh P_c,  da = [dc P_i, dc P_f, dc P_g, dh P_o],  dc <- dc f,  dh <- da R^T (+ g_t),
and dx_t = da_t W^T at each step.  jvp walks forwards with the tangents of h and c:
    da = dx W + dh R,  dc <- f dc + da_i P_i + da_f P_f + da_g P_g,  dh <- da_o P_o + P_c dc.
GRU and SimpleRNN follow the same pattern with their own products (written out below).
Both are batched over rows and over all K (or D) seed vectors at once; the only Python loop
is over the T steps.  Second order (``vjp2``, Hessians): forward over reverse through the same steps,
in recurrent_second.py.  Activations with a kink take the derivative of the activation table
(activations.py), which follows TensorFlow's gradient kernels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import recurrent_second
from .activations import ELEMENTWISE, Activation
from .base import Op, dot_last, register

CELLS = {"simple": 1, "lstm": 4, "gru": 3}  # gates per unit


def _sigmoid():
    return Activation("sigmoid")


def _tanh():
    return Activation("tanh")


@register
@dataclass
class Recurrent(Op):
    """One Keras recurrent layer; see the module docstring.  kernel (F, G U), recurrent_kernel
    (U, G U), bias (G U,) or, for a reset_after GRU, (2, 3 U)."""

    cell: str = "lstm"
    kernel: np.ndarray = None
    recurrent_kernel: np.ndarray = None
    bias: np.ndarray | None = None
    activation: Activation = field(default_factory=_tanh)
    recurrent_activation: Activation = field(default_factory=_sigmoid)
    reset_after: bool = True
    return_sequences: bool = False
    go_backwards: bool = False
    reverse_output: bool = False

    @property
    def units(self) -> int:
        return self.recurrent_kernel.shape[0]

    def out_shape(self, s):
        if self.cell not in CELLS:
            raise ValueError(f"unknown recurrent cell {self.cell!r}")
        for a in (self.activation, self.recurrent_activation):
            if a.name not in ELEMENTWISE:
                raise ValueError(f"activation {a.name!r} is not elementwise; a recurrent cell needs one")
        u, g = self.units, CELLS[self.cell] * self.units
        if len(s) != 2 or s[-1] != self.kernel.shape[0]:
            raise ValueError(f"expects (time steps, {self.kernel.shape[0]} features), got shape {tuple(s)}")
        if self.kernel.shape[1] != g or self.recurrent_kernel.shape != (u, g):
            raise ValueError(f"kernel {self.kernel.shape} and recurrent kernel {self.recurrent_kernel.shape} "
                             f"do not make a {self.cell} cell")
        if self.bias is not None and self.bias.shape not in ((g,), (2, g)):
            raise ValueError(f"bias shape {self.bias.shape} does not fit {self.units} units")
        if self.bias is not None and self.bias.shape == (2, g) and not (self.cell == "gru" and self.reset_after):
            raise ValueError(f"bias shape {self.bias.shape}: only a reset_after GRU has two bias rows")
        return (s[0], u) if self.return_sequences else (u,)

    # ---- helpers

    def _biases(self, dtype):
        g = CELLS[self.cell] * self.units
        if self.bias is None:
            return np.zeros(g, dtype), None
        if self.bias.ndim == 2:
            return self.bias[0], self.bias[1]
        return self.bias, None

    def _order(self, x):
        """(…, T, F) in reading order."""
        return x[..., ::-1, :] if self.go_backwards else x

    def _h(self, a):
        y = self.activation(a)
        return y, self.activation.derivative(a, y)

    def _s(self, a):
        y = self.recurrent_activation(a)
        return y, self.recurrent_activation.derivative(a, y)

    # ---- the value pass

    def forward(self, x):
        xs = self._order(x)
        n, steps = xs.shape[0], xs.shape[1]
        b_in, b_rec = self._biases(x.dtype)
        ax = dot_last(xs, self.kernel) + b_in  # (N, T, G U)
        u = self.units
        h = np.zeros((n, u), x.dtype)
        hs = np.empty((n, steps, u), x.dtype)
        step = {"simple": self._simple_step, "lstm": self._lstm_step, "gru": self._gru_step}[self.cell]
        saved = []
        c = np.zeros((n, u), x.dtype)
        for t in range(steps):
            h, c, keep = step(ax[:, t], h, c, b_rec)
            hs[:, t] = h
            saved.append(keep)
        stacked = {k: np.stack([s[k] for s in saved], axis=1) for k in saved[0]}
        stacked["x"] = x  # the input, for the second-order rule's value pass (no copy)
        if self.return_sequences:
            y = hs[:, ::-1] if self.reverse_output else hs
        else:
            y = h
        return np.ascontiguousarray(y), stacked

    def _simple_step(self, ax, h, c, b_rec):
        h, dh = self._h(ax + h @ self.recurrent_kernel)
        return h, c, {"P": dh}

    def _lstm_step(self, ax, h, c, b_rec):
        u = self.units
        a = ax + h @ self.recurrent_kernel
        i, di = self._s(a[:, :u])
        f, df = self._s(a[:, u:2 * u])
        g, dg = self._h(a[:, 2 * u:3 * u])
        o, do = self._s(a[:, 3 * u:])
        c_new = f * c + i * g
        tc, dtc = self._h(c_new)
        keep = {"Pi": g * di, "Pf": c * df, "Pg": i * dg, "Po": tc * do, "Pc": o * dtc, "f": f}
        return o * tc, c_new, keep

    def _gru_step(self, ax, h, c, b_rec):
        u = self.units
        R = self.recurrent_kernel
        if self.reset_after:
            rec = h @ R
            if b_rec is not None:
                rec = rec + b_rec
            z, dz = self._s(ax[:, :u] + rec[:, :u])
            r, dr = self._s(ax[:, u:2 * u] + rec[:, u:2 * u])
            inner = rec[:, 2 * u:]
            n, dn = self._h(ax[:, 2 * u:] + r * inner)
            keep = {"Pr": inner * dr}
        else:
            rec = h @ R[:, :2 * u]
            z, dz = self._s(ax[:, :u] + rec[:, :u])
            r, dr = self._s(ax[:, u:2 * u] + rec[:, u:])
            n, dn = self._h(ax[:, 2 * u:] + (r * h) @ R[:, 2 * u:])
            keep = {"Pr": h * dr}
        keep.update(Pz=(h - n) * dz, Pn=(1 - z) * dn, z=z, r=r)
        return z * h + (1 - z) * n, c, keep

    # ---- reverse mode: backpropagation through time

    def _seq_cotangent(self, g, steps):
        """g as per-step cotangents of h in reading order (B, K, T, U), or None (only h_T has one)."""
        if not self.return_sequences:
            return None
        return g[:, :, ::-1] if self.reverse_output else g

    def vjp(self, saved, g, out=None):
        steps = saved[next(iter(saved))].shape[1]
        gs = self._seq_cotangent(g, steps)
        b, k, u = g.shape[0], g.shape[1], self.units
        n = saved[next(iter(saved))].shape[0]
        rows, dtype = max(b, n), np.result_type(g, self.kernel)
        # one step's gate cotangents at a time (not all T of them: (rows, K, T, G U) can be large)
        da = np.empty((rows, k, CELLS[self.cell] * u), dtype)
        dx = np.empty((rows, k, steps, self.kernel.shape[0]), dtype)
        dh = gs[:, :, -1] if gs is not None else g
        dc = None
        back = {"simple": self._simple_back, "lstm": self._lstm_back, "gru": self._gru_back}[self.cell]
        for t in range(steps - 1, -1, -1):
            at = {key: v[:, t][:, None] for key, v in saved.items() if key != "x"}
            dh, dc = back(at, dh, dc, da, t)
            dx[:, :, t] = dot_last(da, self.kernel.T)
            if gs is not None and t > 0:
                dh = dh + gs[:, :, t - 1]
        return (np.ascontiguousarray(self._order(dx)),)

    def _simple_back(self, at, dh, dc, da, t):
        da[...] = dh * at["P"]
        return (da @ self.recurrent_kernel.T if t else None), None

    def _lstm_back(self, at, dh, dc, da, t):
        u = self.units
        dc = dh * at["Pc"] if dc is None else dc + dh * at["Pc"]
        da[..., :u] = dc * at["Pi"]
        da[..., u:2 * u] = dc * at["Pf"]
        da[..., 2 * u:3 * u] = dc * at["Pg"]
        da[..., 3 * u:] = dh * at["Po"]
        if not t:
            return None, None
        return da @ self.recurrent_kernel.T, dc * at["f"]

    def _gru_back(self, at, dh, dc, da, t):
        u = self.units
        R = self.recurrent_kernel
        da[..., :u] = dh * at["Pz"]
        dn = dh * at["Pn"]
        da[..., 2 * u:] = dn
        if self.reset_after:
            da[..., u:2 * u] = dn * at["Pr"]
            if not t:
                return None, None
            drec = np.concatenate([da[..., :2 * u], dn * at["r"]], axis=-1)
            return dh * at["z"] + drec @ R.T, None
        drh = dn @ R[:, 2 * u:].T  # cotangent of r * h_{t-1}
        da[..., u:2 * u] = drh * at["Pr"]
        if not t:
            return None, None
        return dh * at["z"] + drh * at["r"] + da[..., :2 * u] @ R[:, :2 * u].T, None

    # ---- forward mode

    def jvp(self, saved, ts):
        xs = self._order(ts[0])  # (B, D, T, F); projected one step at a time (all at once can be large)
        steps, u = xs.shape[2], self.units
        dh = dc = None
        fwd = {"simple": self._simple_fwd, "lstm": self._lstm_fwd, "gru": self._gru_fwd}[self.cell]
        outs = []
        for t in range(steps):
            at = {key: v[:, t][:, None] for key, v in saved.items() if key != "x"}
            dh, dc = fwd(at, dot_last(xs[:, :, t], self.kernel), dh, dc)
            if self.return_sequences:
                outs.append(dh)
        if not self.return_sequences:
            return dh
        lead = np.broadcast_shapes(*(o.shape[:2] for o in outs))
        seq = np.stack([np.broadcast_to(o, (*lead, u)) for o in outs], axis=2)
        return seq[:, :, ::-1] if self.reverse_output else seq

    def _simple_fwd(self, at, dax, dh, dc):
        a = dax if dh is None else dax + dh @ self.recurrent_kernel
        return a * at["P"], None

    def _lstm_fwd(self, at, dax, dh, dc):
        u = self.units
        a = dax if dh is None else dax + dh @ self.recurrent_kernel
        new_c = a[..., :u] * at["Pi"] + a[..., u:2 * u] * at["Pf"] + a[..., 2 * u:3 * u] * at["Pg"]
        if dc is not None:
            new_c = new_c + dc * at["f"]
        return a[..., 3 * u:] * at["Po"] + at["Pc"] * new_c, new_c

    def _gru_fwd(self, at, dax, dh, dc):
        u = self.units
        R = self.recurrent_kernel
        if dh is None:
            dz, dr, dn_in = dax[..., :u], dax[..., u:2 * u], dax[..., 2 * u:]
            return dz * at["Pz"] + (dn_in + dr * at["Pr"]) * at["Pn"], None
        if self.reset_after:
            rec = dh @ R
            dz, dr = dax[..., :u] + rec[..., :u], dax[..., u:2 * u] + rec[..., u:2 * u]
            dn_in = dax[..., 2 * u:] + at["r"] * rec[..., 2 * u:]
        else:
            rec = dh @ R[:, :2 * u]
            dz, dr = dax[..., :u] + rec[..., :u], dax[..., u:2 * u] + rec[..., u:]
            dn_in = dax[..., 2 * u:] + (at["r"] * dh) @ R[:, 2 * u:]
        # reset_after: d(r r_n) = dr s'(.) r_n + r d r_n; classic: d((r h) R_n) = (dr s'(.) h + r dh) R_n
        if self.reset_after:
            dn_pre = dn_in + dr * at["Pr"]
        else:
            dn_pre = dn_in + (dr * at["Pr"]) @ R[:, 2 * u:]
        return dz * at["Pz"] + at["z"] * dh + dn_pre * at["Pn"], None

    # ---- second order (recurrent_second.py: forward over reverse through the steps)

    @property
    def linear(self):
        """A SimpleRNN with a piecewise-linear activation (relu, linear, ...) is piecewise linear in x."""
        return self.cell == "simple" and self.activation.is_piecewise_linear

    def vjp2(self, saved, g, ts):
        return (recurrent_second.vjp2(self, saved, g, ts),)

    def hess_scratch(self, n_outputs, n_wrt):
        return recurrent_second.scratch(self, self.in_shapes[0], n_wrt)
