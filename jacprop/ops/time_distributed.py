"""Keras TimeDistributed(layer): a chain of ops applied to every time step, the steps becoming rows of the
inner ops; its second-order rule is the chain rule over those ops."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import OPS, Op, make_op, op_config, register


@register
@dataclass
class TimeDistributed(Op):
    """Keras TimeDistributed(layer): the layer's ops (a chain, ``inner``) applied to every step of
    x (T, *s) per row.  The steps become rows of the inner ops, (N, T, *s) -> (N T, *s); cotangents
    (B, K, T, *o) and tangents (B, D, T, *s) become (B T, K, *o) and (B T, D, *s) the same way
    (a seed shared by the rows, B = 1, is broadcast to N first)."""

    inner: tuple = ()

    def out_shape(self, s):
        if len(s) < 2:
            raise ValueError(f"expects (time steps, ...) per row, got shape {tuple(s)}")
        shape = tuple(s[1:])
        for op in self.inner:
            shape = tuple(op.out_shape(shape))
        return (s[0], *shape)

    def bind(self, s):
        shape, bound = tuple(s[1:]), []
        for op in self.inner:
            bound.append(op.bind(shape))
            shape = tuple(op.out_shape(shape))
        new = super().bind(s)
        new.inner = tuple(bound)
        return new

    def arrays(self) -> dict:
        return {f"{i}.{k}": v for i, op in enumerate(self.inner) for k, v in op.arrays().items()}

    def astype(self, dtype):
        new = super().astype(dtype)
        new.inner = tuple(op.astype(dtype) for op in self.inner)
        return new

    def saved_config(self) -> dict:
        return {"inner": [{"op": type(op).__name__, "config": op_config(op)} for op in self.inner]}

    @classmethod
    def from_saved(cls, config, arrays):
        """The inverse of ``saved_config`` and ``arrays`` (keys "<i>.<field>")."""
        inner = []
        for i, part in enumerate(config.get("inner", [])):
            mine = {k.split(".", 1)[1]: v for k, v in arrays.items() if k.split(".", 1)[0] == str(i)}
            if part["op"] not in OPS or part["op"] == cls.__name__:
                raise ValueError(f"unknown op {part['op']!r} inside TimeDistributed")
            inner.append(make_op(part["op"], part.get("config", {}), mine))
        return cls(inner=tuple(inner))

    def forward(self, x):
        n, steps = x.shape[0], x.shape[1]
        v, saved = x.reshape(n * steps, *x.shape[2:]), []
        for op in self.inner:
            v, s = op.forward(v)
            saved.append(s)
        return v.reshape(n, steps, *v.shape[1:]), (n, steps, saved)

    def _rows(self, a, n, steps):
        """(B, K, T, *r) -> (N T, K, *r)."""
        a = np.broadcast_to(a, (n, *a.shape[1:])) if a.shape[0] != n else a
        a = np.moveaxis(a, 2, 1)
        return a.reshape(n * steps, a.shape[2], *a.shape[3:])

    def _back(self, a, n, steps):
        """(N T, K, *r) -> (N, K, T, *r)."""
        a = a.reshape(n, steps, *a.shape[1:])
        return np.moveaxis(a, 1, 2)

    def vjp(self, saved, g, out=None):
        n, steps, inner_saved = saved
        v = self._rows(g, n, steps)
        for op, s in zip(reversed(self.inner), reversed(inner_saved)):
            (v,) = op.vjp(s, v)
            if v.shape[0] != n * steps:
                v = np.broadcast_to(v, (n * steps, *v.shape[1:]))
        return (np.ascontiguousarray(self._back(v, n, steps)),)

    def jvp(self, saved, ts):
        n, steps, inner_saved = saved
        v = self._rows(ts[0], n, steps)
        for op, s in zip(self.inner, inner_saved):
            v = op.jvp(s, (v,))
            if v.shape[0] != n * steps:
                v = np.broadcast_to(v, (n * steps, *v.shape[1:]))
        return self._back(v, n, steps)

    # ---- second order

    @property
    def linear(self):
        return all(op.linear for op in self.inner)

    def vjp2(self, saved, g, ts):
        """The chain rule once more over the inner chain y = f_m(...f_1(x)) (each step's rows are rows of the
        inner ops): with t_i the tangent of f_i's input (jvp) and v_i the cotangent of its output (vjp), the
        tangent of the cotangent goes back as  dv_{i-1} = vjp_i(dv_i) + vjp2_i(v_i, t_i),  dv_m = 0."""
        n, steps, inner_saved = saved
        k, w = g.shape[1], ts[0].shape[1]
        rows = n * steps
        tans = [self._rows(ts[0], n, steps)]
        for op, s in zip(self.inner[:-1], inner_saved):
            t = op.jvp(s, (tans[-1],))
            tans.append(np.broadcast_to(t, (rows, *t.shape[1:])) if t.shape[0] != rows else t)
        v, dv = self._rows(g, n, steps), None
        for op, s, t in zip(reversed(self.inner), reversed(inner_saved), reversed(tans)):
            if dv is not None:  # (N T, K, W, *o) as K W seeds through the op's (linear in g) vjp
                (dv,) = op.vjp(s, dv.reshape(rows, k * w, *dv.shape[3:]))
                dv = np.broadcast_to(dv, (rows, *dv.shape[1:])).reshape(rows, k, w, *dv.shape[2:])
            if not op.linear:
                (term,) = op.vjp2(s, v, (t,))
                term = np.broadcast_to(term, (rows, *term.shape[1:]))
                dv = term if dv is None else dv + term
            (v,) = op.vjp(s, v)
            if v.shape[0] != rows:
                v = np.broadcast_to(v, (rows, *v.shape[1:]))
        if dv is None:
            dv = np.zeros((rows, k, w, *tans[0].shape[2:]), np.result_type(g, ts[0]))
        dv = dv.reshape(n, steps, k, w, *dv.shape[3:])
        return (np.ascontiguousarray(np.moveaxis(dv, 1, 3)),)

    def hess_scratch(self, n_outputs, n_wrt):
        """Per row: the inner ops' tangents and their own scratch, for each of the T steps."""
        steps = self.in_shapes[0][0]
        return steps * sum(n_wrt * int(np.prod(op.in_shapes[0])) + op.hess_scratch(n_outputs, n_wrt)
                           for op in self.inner)
