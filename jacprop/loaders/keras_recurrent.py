"""Keras recurrent layers and wrappers: SimpleRNN, LSTM, GRU (both ``reset_after`` conventions),
CuDNNLSTM/CuDNNGRU (Keras <= 2.2), Bidirectional and TimeDistributed, as ops.Recurrent and
ops.TimeDistributed.

Weights: [kernel (F, G U), recurrent_kernel (U, G U), bias] in both Keras versions; the bias is
(G U,), or (2, 3 U) for a reset_after GRU (input and recurrent bias rows); CuDNNLSTM stores
(8 U,) = input and recurrent biases, which add up; CuDNNGRU (6 U,) = a reset_after GRU's two rows.
Legacy HDF5 files list a layer's weights under its own group (a Bidirectional's forward ones
first); Keras 3 ``.keras`` files keep them in sub-groups (``<layer>/cell``,
``<layer>/forward_layer/cell``, ``<layer>/layer``), which ``_stored`` falls back to.

Refused, with the reason: ``stateful=True`` (state carried between batches: a row's outputs
would depend on the rows before it), ``return_state=True`` (several outputs), ``time_major``,
Masking (masked steps), and an unknown number of time steps.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .. import ops
from ..graph import GraphBuilder
from .keras_layers import BUILDERS as BASE_BUILDERS
from .keras_layers import Call, activation

GATES = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3, "CuDNNLSTM": 4, "CuDNNGRU": 3}
CELL = {"SimpleRNN": "simple", "LSTM": "lstm", "GRU": "gru", "CuDNNLSTM": "lstm", "CuDNNGRU": "gru"}


def _stored(c: Call, layer, subs) -> list[np.ndarray]:
    """The weights of ``layer``: its own group (legacy HDF5), else its sub-groups ``subs`` (.keras)."""
    store = c.loader.store
    arrays = store.arrays(layer)
    if arrays or not layer.store_path:
        return [a for _, a in arrays]
    out = []
    for sub in subs:
        out += [a for _, a in store.arrays(replace(layer, store_path=f"{layer.store_path}/{sub}", check_tag=False))]
    return out


def _check(c: Call, cls: str, cfg: dict):
    for key, what in (("stateful", "stateful=True carries state from one batch to the next, so a row's outputs "
                                   "would depend on the rows before it"),
                      ("return_state", "return_state=True (the states as extra outputs) is not supported"),
                      ("time_major", "time_major=True is not supported")):
        if cfg.get(key):
            raise c.fail(f"refused: {what}")
    if len(c.shape) != 2:
        raise c.fail(f"expects (time steps, features) per row, got shape {c.shape}")


def recurrent_op(c: Call, cls: str, cfg: dict, arrays: list, go_backwards=None, reverse_output=False) -> ops.Op:
    """The ops.Recurrent of one recurrent layer config and its stored weights (shapes checked)."""
    _check(c, cls, cfg)
    u, f, g = int(cfg["units"]), c.shape[-1], GATES[cls]
    reset_after = bool(cfg.get("reset_after", False)) if cls == "GRU" else cls == "CuDNNGRU"
    bias_shape = {"CuDNNLSTM": (8 * u,), "CuDNNGRU": (6 * u,)}.get(cls, (2, g * u) if reset_after else (g * u,))
    use_bias = cfg.get("use_bias", True) or cls.startswith("CuDNN")
    specs = [("kernel", (f, g * u)), ("recurrent_kernel", (u, g * u))] + ([("bias", bias_shape)] if use_bias else [])
    if len(arrays) != len(specs):
        raise c.fail(f"{len(arrays)} weights stored, expected {len(specs)} ({', '.join(s[0] for s in specs)})")
    for (what, shape), a in zip(specs, arrays):
        if tuple(a.shape) != shape:
            raise c.fail(f"weight '{what}' expected shape {shape}, got {tuple(a.shape)}")
    bias = arrays[2] if use_bias else None
    if cls == "CuDNNLSTM":
        bias = bias[:4 * u] + bias[4 * u:]
    elif cls == "CuDNNGRU":
        bias = bias.reshape(2, 3 * u)
    acts = {"activation": "tanh", "recurrent_activation": "sigmoid"}
    if not cls.startswith("CuDNN"):
        acts = {k: cfg.get(k, v) for k, v in acts.items()}
    act, rec = (activation(c, acts[k]) for k in ("activation", "recurrent_activation"))
    for a in (act, rec):
        if a.name not in ops.ELEMENTWISE:
            raise c.fail(f"activation {a.name!r} is not elementwise; a recurrent cell needs one")
    return ops.Recurrent(cell=CELL[cls], kernel=arrays[0], recurrent_kernel=arrays[1], bias=bias, activation=act,
                         recurrent_activation=rec, reset_after=reset_after,
                         return_sequences=bool(cfg.get("return_sequences", False)),
                         go_backwards=bool(cfg.get("go_backwards", False)) if go_backwards is None else go_backwards,
                         reverse_output=reverse_output)


def _recurrent(c: Call) -> int:
    return c.add(recurrent_op(c, c.layer.cls, c.cfg, _stored(c, c.layer, ["cell"])))


def _inner(c: Call, key: str) -> tuple[str, dict]:
    entry = c.cfg.get(key)
    if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
        raise c.fail(f"malformed wrapper config (no '{key}')")
    return str(entry.get("class_name")), entry["config"]


MERGES = {"concat": None, "sum": "add", "mul": "multiply", "ave": "average"}


def _bidirectional(c: Call) -> int:
    """forward(x) and backward(x) (the layer reading the steps last to first, its sequence put back in
    time order), merged by ``merge_mode``; the stored weights are the forward layer's, then the backward's."""
    mode = c.cfg.get("merge_mode", "concat")
    if mode not in MERGES:
        raise c.fail(f"merge_mode {mode!r} is not supported (concat, sum, mul, ave; None gives two outputs)")
    cls, cfg = _inner(c, "layer")
    back_cls, back_cfg = _inner(c, "backward_layer") if c.cfg.get("backward_layer") else (cls, None)
    for k in (cls, back_cls):
        if k not in GATES:
            raise c.fail(f"Bidirectional around {k} is not supported (SimpleRNN, LSTM, GRU)")
    arrays = _stored(c, c.layer, ["forward_layer/cell", "backward_layer/cell"])
    half = len(arrays) // 2
    fwd = recurrent_op(c, cls, cfg, arrays[:half])
    seq = fwd.return_sequences
    if back_cfg is None:
        back = recurrent_op(c, cls, cfg, arrays[half:], go_backwards=not fwd.go_backwards, reverse_output=seq)
    else:
        back = recurrent_op(c, back_cls, back_cfg, arrays[half:], reverse_output=seq)
    a = c.add(fwd, last=False)
    b = c.add(back, last=False)
    merge = ops.Concat(axis=-1) if MERGES[mode] is None else ops.Merge(MERGES[mode])
    return c.add(merge, [a, b])


PER_STEP = {"Dense", "Activation", "Dropout", "LeakyReLU", "ELU", "ReLU"}  # they act on the last axis alone


def _time_distributed(c: Call) -> int:
    """The wrapped layer on every time step.  Layers acting on the last axis alone are added as
    they are; others are built for one step's shape and wrapped in ops.TimeDistributed."""
    cls, cfg = _inner(c, "layer")
    BUILDERS, Layer = c.loader.builders, type(c.layer)  # noqa: N806 (keras_config's, without importing it back)
    if cls not in BUILDERS:
        raise c.fail(f"TimeDistributed around {cls} is not supported")
    if len(c.shape) < 2:
        raise c.fail(f"expects (time steps, ...) per row, got shape {c.shape}")
    inner = Layer(cls, str(cfg.get("name", "?")), cfg, {"class_name": cls, "config": cfg}, c.layer.names,
                  f"{c.layer.store_path}/layer" if c.layer.store_path else "", check_tag=False)
    if not c.layer.store_path:
        inner = replace(inner, names=c.layer.names)
    if cls in PER_STEP:
        sub = Call(c.loader, c.b, _fallback(c, inner), c.inputs, c.shared)
        node = BUILDERS[cls](sub)
        c.b.nodes[node].name, c.b.nodes[node].kind = c.layer.name, f"TimeDistributed({cls})"
        return node
    sb = GraphBuilder([("step", c.shape[1:])])
    sub = Call(c.loader, sb, _fallback(c, inner), list(sb.inputs))
    last = BUILDERS[cls](sub)
    chain = sb.nodes[2:last + 1]
    if any(n.inputs != (i,) for i, n in enumerate(chain, start=1)):
        raise c.fail(f"TimeDistributed around {cls}: only layers that are a chain of ops are supported")
    return c.add(ops.TimeDistributed(inner=tuple(n.op for n in chain)))


def _fallback(c: Call, inner):
    """The inner layer's weights live in ``<wrapper>/layer`` (.keras) or in the wrapper's group (legacy)."""
    if inner.store_path and not c.loader.store.arrays(replace(inner, check_tag=False)):
        own = c.loader.store.arrays(replace(c.layer, check_tag=False))
        if own:
            return replace(inner, store_path=c.layer.store_path)
    return inner


def _masking(c: Call) -> int:
    raise c.fail("refused: masked time steps are not supported (jacprop reads every step of every row); "
                 "remove the Masking layer or give rows without masked steps to a model without it")


BUILDERS = {
    **{cls: _recurrent for cls in GATES},
    "Bidirectional": _bidirectional,
    "TimeDistributed": _time_distributed,
    "Masking": _masking,
}
assert not set(BUILDERS) & set(BASE_BUILDERS)
