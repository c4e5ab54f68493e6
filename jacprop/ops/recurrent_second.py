"""Second-order rule of the recurrent cells (``Recurrent.vjp2``): forward over reverse through the unrolled steps.

``vjp2(saved, g, ts)`` is the derivative of the layer's vjp (backpropagation through time, recurrent.py) in the
W tangent directions ts of its input, the cotangents g held fixed: (B, K, W, T, F), i.e.
sum_o g_o d2y_o / dx dx' t.  It is exact (no differences) and done in two sweeps:

1. forwards, the value pass again (h_t, c_t and the gates, N rows) and with it the tangents of the states
   (h., c.: (B, W, U)) and of every product P the first-order sweep saved (P.), e.g. for the LSTM, with
   a. = x._t W + h._{t-1} R the gates' pre-activation tangents and s, h the recurrent and main activations:
       i. = s'(a_i) a._i, f. = s'(a_f) a._f, g. = h'(a_g) a._g, o. = s'(a_o) a._o,
       c. = f. c_{t-1} + f c._{t-1} + i. g + i g.,  h. = o. h(c) + o h'(c) c.,
       P._i = g. s'(a_i) + g s''(a_i) a._i,   P._f = c._{t-1} s'(a_f) + c_{t-1} s''(a_f) a._f,
       P._g = i. h'(a_g) + i h''(a_g) a._g,   P._o = h'(c) c. s'(a_o) + h(c) s''(a_o) a._o,
       P._c = o. h'(c) + o h''(c) c.,         f. (the forget gate's own tangent);
2. backwards, the first-order sweep (dh, dc: (B, K, U)) together with its own tangents (dh., dc.:
   (B, K, W, U)): every step of recurrent.py's reverse recursion is bilinear in (cotangent, P), so its tangent
   is the same recursion applied to the tangents plus the one with P. in place of P, e.g. for the LSTM
       dc~ = dc + dh P_c,   dc~. = dc. + dh. P_c + dh P._c,
       da. = [dc~. P_i + dc~ P._i, dc~. P_f + dc~ P._f, dc~. P_g + dc~ P._g, dh. P_o + dh P._o],
       dx._t = da. W^T,  dh._{t-1} = da. R^T,  dc._{t-1} = dc~. f + dc~ f..
   GRU (both ``reset_after`` conventions) and SimpleRNN follow the same pattern with their own products,
   written out in their functions below.  The seeds g_t of ``return_sequences`` are constants: no tangent.

h'' is the activation table's second derivative (activations.SECOND; 0 for the piecewise-linear ones, both
hard_sigmoid definitions and relu included, which follow h' at the kinks).  Cost per row: the first-order sweep,
one tangent sweep with W directions, and the reverse one with K W: about K W T G U^2 multiply-adds; memory per
row: the P. of every step, W T (#P) U numbers (``scratch``), and the (K, W, T, F) result.
"""

from __future__ import annotations

import numpy as np

from .activations import SECOND
from .base import dot_last

N_TANGENTS = {"simple": 1, "lstm": 6, "gru": 5}  # tangent products kept per step, U numbers each


def _act(act, a):
    """h(a), h'(a), h''(a) for an elementwise activation."""
    y = act(a)
    rule = SECOND[act.name]
    return y, act.derivative(a, y), (np.zeros_like(a) if rule is None else rule(a, y, act.alpha))


def _e(v):
    """(N, U) -> (N, 1, U): a per-row value against W tangents (B, W, U)."""
    return v[:, None]


# ---- sweep 1: values and tangents forwards (one step: state (h, c, h., c.) in, state and P. out)


def _simple_fwd2(op, ax, dax, state, b_rec):
    h, c, th, tc = state
    a = ax + h @ op.recurrent_kernel
    h, d1, d2 = _act(op.activation, a)
    ta = dax if th is None else dax + th @ op.recurrent_kernel
    return (h, c, _e(d1) * ta, None), {"P": _e(d2) * ta}


def _lstm_fwd2(op, ax, dax, state, b_rec):
    h, c, th, tc = state
    u, R = op.units, op.recurrent_kernel
    a = ax + h @ R
    ta = dax if th is None else dax + th @ R
    (i, di, d2i), (f, df, d2f), (g, dg, d2g), (o, do, d2o) = (
        _act(op.activation if k == 2 else op.recurrent_activation, a[:, k * u:(k + 1) * u]) for k in range(4))
    tai, taf, tag, tao = (ta[..., k * u:(k + 1) * u] for k in range(4))
    ti, tf, tg, to = _e(di) * tai, _e(df) * taf, _e(dg) * tag, _e(do) * tao
    c_new = f * c + i * g
    tcn = tf * _e(c) + ti * _e(g) + _e(i) * tg + (0 if tc is None else _e(f) * tc)
    hc, dhc, d2hc = _act(op.activation, c_new)
    thc = _e(dhc) * tcn
    dots = {"Pi": tg * _e(di) + _e(g * d2i) * tai, "Pf": _e(c * d2f) * taf, "Pg": ti * _e(dg) + _e(i * d2g) * tag,
            "Po": thc * _e(do) + _e(hc * d2o) * tao, "Pc": to * _e(dhc) + _e(o * d2hc) * tcn, "f": tf}
    if tc is not None:
        dots["Pf"] = dots["Pf"] + tc * _e(df)
    return (o * hc, c_new, to * _e(hc) + _e(o) * thc, tcn), dots


def _gru_fwd2(op, ax, dax, state, b_rec):
    """The value step of recurrent.py's _gru_step with its tangents (rec. = h._{t-1} R; classic: q = r h_{t-1})."""
    h, c, th, tc = state
    u, R = op.units, op.recurrent_kernel
    if op.reset_after:
        rec = h @ R + (0 if b_rec is None else b_rec)
        trec = 0 * dax if th is None else th @ R
        z, dz, d2z = _act(op.recurrent_activation, ax[:, :u] + rec[:, :u])
        r, dr, d2r = _act(op.recurrent_activation, ax[:, u:2 * u] + rec[:, u:2 * u])
        taz, tar = dax[..., :u] + trec[..., :u], dax[..., u:2 * u] + trec[..., u:2 * u]
        tz, tr = _e(dz) * taz, _e(dr) * tar
        n, dn, d2n = _act(op.activation, ax[:, 2 * u:] + r * rec[:, 2 * u:])
        tan = dax[..., 2 * u:] + tr * _e(rec[:, 2 * u:]) + _e(r) * trec[..., 2 * u:]
        t_pr = trec[..., 2 * u:] * _e(dr) + _e(rec[:, 2 * u:] * d2r) * tar  # P_r = r_n s'(a_r)
    else:
        rec = h @ R[:, :2 * u]
        trec = 0 * dax[..., :2 * u] if th is None else th @ R[:, :2 * u]
        z, dz, d2z = _act(op.recurrent_activation, ax[:, :u] + rec[:, :u])
        r, dr, d2r = _act(op.recurrent_activation, ax[:, u:2 * u] + rec[:, u:])
        taz, tar = dax[..., :u] + trec[..., :u], dax[..., u:2 * u] + trec[..., u:]
        tz, tr = _e(dz) * taz, _e(dr) * tar
        n, dn, d2n = _act(op.activation, ax[:, 2 * u:] + (r * h) @ R[:, 2 * u:])
        tq = tr * _e(h) + (0 if th is None else _e(r) * th)  # (r h_{t-1}).
        tan = dax[..., 2 * u:] + tq @ R[:, 2 * u:]
        t_pr = _e(h * d2r) * tar + (0 if th is None else th * _e(dr))  # P_r = h_{t-1} s'(a_r)
    tn = _e(dn) * tan
    th_new = tz * _e(h - n) + _e(1 - z) * tn + (0 if th is None else _e(z) * th)
    t_pz = _e((h - n) * d2z) * taz - tn * _e(dz) + (0 if th is None else th * _e(dz))  # P_z = (h_{t-1} - n) s'(a_z)
    dots = {"Pr": t_pr, "Pz": t_pz, "Pn": -tz * _e(dn) + _e((1 - z) * d2n) * tan, "z": tz, "r": tr}
    return (z * h + (1 - z) * n, c, th_new, None), dots


# ---- sweep 2: one reverse step's tangent.  at: the saved P of the step, (N, 1, U); dots: its P., (B, W, U);
# dh, dc: the first-order cotangents (B, K, U) before the step; ddh, ddc: their tangents (B, K, W, U) or 0;
# tr: the kernels' transposes (contiguous).


def _k(v):
    """(B, K, U) -> (B, K, 1, U): a cotangent (or a saved product) against W tangents."""
    return v[:, :, None]


def _w(v):
    """(B, W, U) -> (B, 1, W, U): a tangent against K cotangents."""
    return v[:, None]


def _simple_back2(op, at, dots, dh, dc, tangents, dda, tr):
    ddh, ddc = tangents
    dda[...] = ddh * _k(at["P"]) + _k(dh) * _w(dots["P"])
    return dot_last(dda, tr["R"]), 0.0


def _lstm_back2(op, at, dots, dh, dc, tangents, dda, tr):
    ddh, ddc = tangents
    u = op.units
    dct = dh * at["Pc"] + (0 if dc is None else dc)
    ddct = ddc + ddh * _k(at["Pc"]) + _k(dh) * _w(dots["Pc"])
    for k, key in enumerate(("Pi", "Pf", "Pg")):
        dda[..., k * u:(k + 1) * u] = ddct * _k(at[key]) + _k(dct) * _w(dots[key])
    dda[..., 3 * u:] = ddh * _k(at["Po"]) + _k(dh) * _w(dots["Po"])
    return dot_last(dda, tr["R"]), ddct * _k(at["f"]) + _k(dct) * _w(dots["f"])


def _gru_back2(op, at, dots, dh, dc, tangents, dda, tr):
    """reset_after: da = [dh P_z, dn P_r, dn] with dn = dh P_n, dh_{t-1} = dh z + [da_z, da_r, dn r] R^T;
    classic: drh = dn R_n^T, da_r = drh P_r, dh_{t-1} = dh z + drh r + [da_z, da_r] R_zr^T."""
    ddh, _ = tangents
    u, R = op.units, op.recurrent_kernel
    dda[..., :u] = ddh * _k(at["Pz"]) + _k(dh) * _w(dots["Pz"])
    ddn = ddh * _k(at["Pn"]) + _k(dh) * _w(dots["Pn"])
    dda[..., 2 * u:] = ddn
    back = ddh * _k(at["z"]) + _k(dh) * _w(dots["z"])
    dn = dh * at["Pn"]
    if op.reset_after:
        dda[..., u:2 * u] = ddn * _k(at["Pr"]) + _k(dn) * _w(dots["Pr"])
        last = ddn * _k(at["r"]) + _k(dn) * _w(dots["r"])
        return back + dot_last(np.concatenate([dda[..., :2 * u], last], axis=-1), tr["R"]), 0.0
    drh, ddrh = dn @ R[:, 2 * u:].T, dot_last(ddn, tr["Rn"])
    dda[..., u:2 * u] = ddrh * _k(at["Pr"]) + _k(drh) * _w(dots["Pr"])
    back = back + ddrh * _k(at["r"]) + _k(drh) * _w(dots["r"])
    return back + dot_last(dda[..., :2 * u], tr["Rzr"]), 0.0


FWD2 = {"simple": _simple_fwd2, "lstm": _lstm_fwd2, "gru": _gru_fwd2}
BACK2 = {"simple": _simple_back2, "lstm": _lstm_back2, "gru": _gru_back2}


def tangent_sweep(op, x, tx) -> list[dict]:
    """Sweep 1: P. of every step in reading order; x (N, T, F) and tx (B, W, T, F) in reading order."""
    b_in, b_rec = op._biases(x.dtype)
    ax = dot_last(x, op.kernel) + b_in
    n, u = x.shape[0], op.units
    state = (np.zeros((n, u), x.dtype), np.zeros((n, u), x.dtype), None, None)
    out = []
    for t in range(x.shape[1]):
        state, dots = FWD2[op.cell](op, ax[:, t], dot_last(tx[:, :, t], op.kernel), state, b_rec)
        out.append(dots)
    return out


def vjp2(op, saved, g, ts) -> np.ndarray:
    """d/dx of ``op.vjp(saved, g)`` in the directions ts[0] (B, W, T, F): (B, K, W, T, F); see the module docstring."""
    x, tx = op._order(saved["x"]), op._order(ts[0])
    dots = tangent_sweep(op, x, tx)
    steps, k, wn = x.shape[1], g.shape[1], tx.shape[1]
    gs = op._seq_cotangent(g, steps)
    rows, dtype = max(g.shape[0], x.shape[0], tx.shape[0]), np.result_type(g, tx, op.kernel)
    da = np.empty((rows, k, len(op.kernel.T)), dtype)  # the first-order sweep's buffer (recurrent.py)
    dda = np.empty((rows, k, wn, len(op.kernel.T)), dtype)
    out = np.empty((rows, k, wn, steps, x.shape[2]), dtype)
    dh, dc, tangents = (gs[:, :, -1] if gs is not None else g), None, (0.0, 0.0)
    back = {"simple": op._simple_back, "lstm": op._lstm_back, "gru": op._gru_back}[op.cell]
    u, R = op.units, op.recurrent_kernel  # contiguous transposes: numpy's matmul with a .T view measured 7x slower
    tr = {"W": np.ascontiguousarray(op.kernel.T), "R": np.ascontiguousarray(R.T),
          "Rn": np.ascontiguousarray(R[:, 2 * u:].T), "Rzr": np.ascontiguousarray(R[:, :2 * u].T)}
    for t in range(steps - 1, -1, -1):
        at = {key: v[:, t][:, None] for key, v in saved.items() if key != "x"}
        tangents = BACK2[op.cell](op, at, dots[t], dh, dc, tangents, dda, tr)
        out[:, :, :, t] = dot_last(dda, tr["W"])
        dots[t] = None  # free as we go
        if t:
            dh, dc = back(at, dh, dc, da, t)
            if gs is not None:
                dh = dh + gs[:, :, t - 1]
    return op._order(out)


def scratch(op, in_shape, n_wrt: int) -> int:
    """Numbers per row ``vjp2`` keeps beyond its result: the P. of every step (and one step's buffers)."""
    steps, gates = in_shape[0], len(op.kernel.T)
    return n_wrt * steps * N_TANGENTS[op.cell] * op.units + 4 * n_wrt * gates
