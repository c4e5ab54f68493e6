"""Float64 Hessian references for the recurrent Keras samples, from torch.func on the same weights.

    H[n, k, i, j] = d^2 y_k / dx_i dx_j  at row n

Development-only (jacprop never imports torch).  Run from the repository root with the bench environment:

    /work/devenv-bench/bin/python sample_models/keras/make_rnn_hessian_refs.py

For lstm, rnn_stack, gru_variants, rnn_acts (one ref per Keras version: the two hard_sigmoid definitions),
bidirectional and time_distributed it reads the model's legacy HDF5 file with h5py (the config in
``model_config``, the weights in ``model_weights`` in ``weight_names`` order; rnn_acts.k3 from rnn_acts.k3.h5),
rebuilds the network in torch float64 from the Keras equations written out below (not from jacprop), and takes
y = f(x), J = torch.func.jacrev(f) and H = torch.func.hessian(f) (= jacfwd(jacrev(f))), vmapped over rows.
The rebuild is checked against TensorFlow's own float64 y and J in NAME.ref.npz (to 1e-12, else it stops), and
H against central differences of the torch J (printed and stored).  The rows are the first 8 of NAME.csv.

Keras' cells (gates in Keras' column order; s = recurrent_activation, h = activation):
SimpleRNN h_t = h(x W + b + h_{t-1} R); LSTM [i, f, g, o] = [s, s, h, s](x W + b + h_{t-1} R),
c_t = f c_{t-1} + i g, h_t = o h(c_t); GRU reset_after: z = s(xW_z + b_z + h R_z + b'_z), r likewise,
n = h(xW_n + b_n + r (h R_n + b'_n)); reset_after=False: n = h(xW_n + b_n + (r h) R_n); h_t = z h_{t-1} + (1 - z) n.
go_backwards reads the steps last to first and returns the sequence in that order; Bidirectional's backward
layer is the go_backwards twin, its sequence reversed back to time order, merged by concat/sum/mul/ave.
Keras 2 hard_sigmoid = clip(0.2 a + 0.5, 0, 1); Keras 3 hard_sigmoid = relu6(a + 3) / 6.

Arrays (allow_pickle=False), as sample_models/make_hessian_refs.py writes them: x, y, jacobian, hessian,
input_names, output_names, source, framework, fd_max_abs_error, fd_max_rel_error, fd_step.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.func import hessian, jacrev, vmap

HERE = Path(__file__).resolve().parent
MAX_ROWS, FD_STEP = 8, 1e-5
CASES = [("lstm", "k2.h5", 2, "lstm.hess.npz"), ("rnn_stack", "k2.h5", 2, "rnn_stack.hess.npz"),
         ("gru_variants", "k2.h5", 2, "gru_variants.hess.npz"), ("rnn_acts", "k2.h5", 2, "rnn_acts.k2.hess.npz"),
         ("rnn_acts", "k3.h5", 3, "rnn_acts.k3.hess.npz"), ("bidirectional", "k2.h5", 2, "bidirectional.hess.npz"),
         ("time_distributed", "k2.h5", 2, "time_distributed.hess.npz")]


def activation(name, version):
    return {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu, "linear": lambda a: a,
            "softsign": lambda a: a / (1 + a.abs()), "elu": torch.nn.functional.elu,
            "hard_sigmoid": (lambda a: torch.clamp(0.2 * a + 0.5, 0, 1)) if version == 2
            else (lambda a: torch.clamp(a + 3, 0, 6) / 6)}[name]


def weights(f, name):
    group = f["model_weights"][name]
    names = [w.decode() if isinstance(w, bytes) else w for w in group.attrs["weight_names"]]
    return [torch.tensor(np.asarray(group[w], np.float64)) for w in names]


def rnn(cls, cfg, ws, version, backwards=False):
    """x (T, F) -> h_T (U,) or the sequence (T, U) in reading order."""
    h_act, s_act = activation(cfg["activation"], version), activation(cfg.get("recurrent_activation", "linear"),
                                                                      version)
    W, R = ws[0], ws[1]
    u = R.shape[0]
    b = ws[2] if len(ws) > 2 else torch.zeros(W.shape[1] if cls != "GRU" or not cfg["reset_after"] else (2, W.shape[1]))
    go_back = bool(cfg.get("go_backwards")) != backwards

    def f(x):
        xs = x.flip(0) if go_back else x
        h, c, out = torch.zeros(u), torch.zeros(u), []
        for t in range(xs.shape[0]):
            if cls == "SimpleRNN":
                h = h_act(xs[t] @ W + b + h @ R)
            elif cls == "LSTM":
                a = xs[t] @ W + b + h @ R
                i, fg, g, o = s_act(a[:u]), s_act(a[u:2 * u]), h_act(a[2 * u:3 * u]), s_act(a[3 * u:])
                c = fg * c + i * g
                h = o * h_act(c)
            elif cfg["reset_after"]:
                mx, mi = xs[t] @ W + b[0], h @ R + b[1]
                z, r = s_act(mx[:u] + mi[:u]), s_act(mx[u:2 * u] + mi[u:2 * u])
                h = z * h + (1 - z) * h_act(mx[2 * u:] + r * mi[2 * u:])
            else:
                mx = xs[t] @ W + b
                z, r = s_act(mx[:u] + h @ R[:, :u]), s_act(mx[u:2 * u] + h @ R[:, u:2 * u])
                h = z * h + (1 - z) * h_act(mx[2 * u:] + (r * h) @ R[:, 2 * u:])
            out.append(h)
        return torch.stack(out) if cfg.get("return_sequences") else h
    return f


def per_step(cls, cfg, ws, version):
    """A TimeDistributed inner layer on one step (channels last)."""
    if cls == "Dense":
        act = activation(cfg["activation"], version)
        return lambda v: act(v @ ws[0] + ws[1])
    if cls == "Conv1D":  # valid, stride 1, no dilation: y[p, o] = sum_{k, i} x[p + k, i] W[k, i, o] + b[o]
        assert cfg["padding"] == "valid" and tuple(cfg["strides"]) == (1,) and tuple(cfg["dilation_rate"]) == (1,)
        act, K = activation(cfg["activation"], version), ws[0].shape[0]
        return lambda v: act(sum(v[k:v.shape[0] - K + 1 + k] @ ws[0][k] for k in range(K)) + ws[1])
    if cls == "MaxPooling1D":
        assert cfg["padding"] == "valid" and tuple(cfg["pool_size"]) == (2,) and tuple(cfg["strides"]) == (2,)
        return lambda v: torch.maximum(v[0:v.shape[0] // 2 * 2:2], v[1:v.shape[0] // 2 * 2:2])
    if cls == "Flatten":
        return lambda v: v.reshape(-1)
    raise ValueError(cls)


def layer_fn(f, layer, version):
    cls, cfg = layer["class_name"], layer["config"]
    if cls in ("SimpleRNN", "LSTM", "GRU"):
        return rnn(cls, cfg, weights(f, cfg["name"]), version)
    if cls == "Bidirectional":
        inner_cls, inner = cfg["layer"]["class_name"], cfg["layer"]["config"]
        ws = weights(f, cfg["name"])
        fwd = rnn(inner_cls, inner, ws[:len(ws) // 2], version)
        back = rnn(inner_cls, inner, ws[len(ws) // 2:], version, backwards=True)
        seq = inner.get("return_sequences")
        merge = {"concat": lambda a, b: torch.cat([a, b], -1), "sum": torch.add, "mul": torch.mul,
                 "ave": lambda a, b: (a + b) / 2}[cfg["merge_mode"]]
        return lambda v: merge(fwd(v), back(v).flip(0) if seq else back(v))
    if cls == "TimeDistributed":
        inner_cls, inner = cfg["layer"]["class_name"], cfg["layer"]["config"]
        step = per_step(inner_cls, inner, weights(f, cfg["name"]) if inner_cls in ("Dense", "Conv1D") else [],
                        version)
        return lambda v: torch.stack([step(v[t]) for t in range(v.shape[0])])
    if cls == "Dense":
        return per_step(cls, cfg, weights(f, cfg["name"]), version)
    if cls == "Flatten":
        return lambda v: v.reshape(-1)
    raise ValueError(f"{cls} is not rebuilt here")


def build(path, version):
    """The model of a legacy HDF5 file as f(x (D,)) -> y (K,) and its per-row input shape."""
    with h5py.File(path, "r") as f:
        cfg = json.loads(f.attrs["model_config"])
        layers = cfg["config"]["layers"]
        shape = tuple(layers[0]["config"].get("batch_input_shape") or layers[0]["config"]["batch_shape"])[1:]
        prev = layers[0]["config"]["name"]
        fns = []
        for layer in layers[1:]:
            inbound = layer.get("inbound_nodes")
            if inbound:  # Functional: every sample here is a chain
                first = inbound[0]
                src = first[0][0] if isinstance(first, list) else first["args"][0]["config"]["keras_history"][0]
                assert src == prev, (layer["config"]["name"], src, prev)
            prev = layer["config"]["name"]
            fns.append(layer_fn(f, layer, version))

    def model(x):
        v = x.reshape(shape)
        for fn in fns:
            v = fn(v)
        return v.reshape(-1)
    return model


def read_csv(path):
    with open(path) as f:
        header = f.readline().strip().split(",")
    return header, np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)[:MAX_ROWS]


def main():
    torch.set_default_dtype(torch.float64)
    for name, fmt, version, out in CASES:
        f = build(HERE / f"{name}.{fmt}", version)
        names, x = read_csv(HERE / f"{name}.csv")
        xt = torch.tensor(x)
        y, J, H = vmap(f)(xt).numpy(), vmap(jacrev(f))(xt).numpy(), vmap(hessian(f))(xt).numpy()
        ref = np.load(HERE / (f"{name}.k{version}.ref.npz" if name == "rnn_acts" else f"{name}.ref.npz"))
        y_err = float(np.abs(y - ref["y64"][:len(x)]).max() / max(1.0, np.abs(ref["y64"]).max()))
        j_err = float(np.abs(J - ref["jacobian"][:len(x)]).max() / max(1.0, np.abs(ref["jacobian"]).max()))
        if max(y_err, j_err) > 1e-12:
            raise SystemExit(f"{name}: the torch rebuild differs from TensorFlow's y/J ({y_err:.1e}, {j_err:.1e})")
        h = FD_STEP * np.maximum(1.0, np.abs(x))
        H_fd = np.empty_like(H)
        for j in range(x.shape[1]):
            step = np.zeros_like(x)
            step[:, j] = h[:, j]
            Jp, Jm = vmap(jacrev(f))(torch.tensor(x + step)).numpy(), vmap(jacrev(f))(torch.tensor(x - step)).numpy()
            H_fd[:, :, :, j] = (Jp - Jm) / (2 * h[:, j, None, None])
        err = float(np.abs(H - H_fd).max())
        rel = err / float(np.abs(H).max())
        np.savez_compressed(HERE / out, x=x, y=y, jacobian=J, hessian=H, input_names=np.array(names, dtype=np.str_),
                            output_names=ref["output_names"], source=np.str_(f"keras/{name}.{fmt}"),
                            framework=np.str_(f"torch {torch.__version__} (torch.func.hessian, float64)"),
                            fd_max_abs_error=np.float64(err), fd_max_rel_error=np.float64(rel),
                            fd_step=np.float64(FD_STEP))
        print(json.dumps({"model": name, "file": f"{name}.{fmt}", "written": out, "hessian_shape": list(H.shape),
                          "y_vs_tf": y_err, "J_vs_tf": j_err, "max_abs_H": float(np.abs(H).max()),
                          "fd_max_rel_error": rel}), flush=True)


if __name__ == "__main__":
    main()
