"""Per-row float64 Hessian references for the sample models, computed by the framework that wrote each file.

    H[n, k, i, j] = d^2 y_k / dx_i dx_j  at row n

Development-only (jacprop never imports TensorFlow or torch; tests/test_hessian.py checks jacprop.hessian against
these). Three parts, each run with its own (dev-only, out-of-repo) interpreter, from the repository root:

    /work/devenv-tf/bin/python sample_models/make_hessian_refs.py keras      # sample_models/keras/*.hess.npz
    /work/devenv-tf/bin/python sample_models/make_hessian_refs.py keras pad_1d pad_2d   # only these models
    /work/devenv-bench/bin/python sample_models/make_hessian_refs.py npz     # sample_models/*.hess.npz
    /work/devenv-bench/bin/python sample_models/make_hessian_refs.py hvp     # sample_models/*.hvp.npz (H u)

keras: every model of sample_models/keras/manifest.json with expect "ok" but the recurrent ones (RECURRENT:
their refs are torch.func's, from keras/make_rnn_hessian_refs.py). Each of its files is loaded with its
own Keras version (tf_keras for .k2.h5, keras 3 for .k3.keras / .k3.h5), and its weights are put into a float64
copy of the architecture (make_samples.py's builders, with its channels_last twin for conv2d_cf, which
TensorFlow cannot run on CPU), as make_samples.py does for its Jacobian refs. Then nested
tf.GradientTape.batch_jacobian gives J and H. Three changes to TensorFlow, all in keras_part: gradients are
registered for the SoftsignGrad and ResizeNearestNeighborGrad ops, which have none, and tf.nn.moments loses a
stop_gradient that makes second derivatives through LayerNormalization wrong. The file written is the one from
the .k3.keras file, else the first format. Every other format must agree with it to 1e-12 relative; otherwise one
file per version is written (hard_sigmoid: the two Keras versions define it differently). A framework H further
than FD_ACCEPT from its own central difference is refused (upsample_bilinear: no reference).

npz: bishop_tanh.npz (its activations array) and torch_mlp.npz (no activations in the file: relu, as the
tests give it, in torch_mlp.hess.npz, and tanh in torch_mlp.tanh.hess.npz) are rebuilt as torch float64 MLPs,
and torch.func.vmap(torch.func.hessian(f)) gives H.

Rows: the first 8 rows of the model's sample CSV. When D > 64 and the full H is 2 MB or more, only
d^2 y / dx_i dx_j for i, j in wrt = the first 16 inputs is stored, with the array ``wrt``. Every H is checked
against a central difference of the same framework's float64 J, and the maximum error is printed and stored.

Arrays (allow_pickle=False): x (N, D), y (N, K), jacobian (N, K, D), hessian (N, K, D, D) or (N, K, W, W),
wrt (W,) int64 only if partial, input_names (D,), output_names (K,), source (the file the weights came from),
framework (versions), fd_max_abs_error and fd_max_rel_error (vs max |H|), fd_step (relative step h).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
KERAS_DIR = HERE / "keras"
MAX_ROWS = 8
BIG_D, MAX_H_BYTES, PARTIAL_WRT = 64, 2 * 2**20, 16
FD_STEP = 1e-5  # relative: h_j = FD_STEP * max(1, |x_j|)
# the recurrent samples' refs come from torch.func on the same weights (keras/make_rnn_hessian_refs.py)
RECURRENT = {"lstm", "rnn_stack", "gru_variants", "rnn_acts", "bidirectional", "time_distributed"}
FD_ACCEPT = 1e-6  # a framework H further than this (x max(1, max|H|)) from its own central difference is refused


def read_csv(path, skip=()):
    with open(path) as f:
        header = f.readline().strip().split(",")
    data = np.loadtxt(path, delimiter=",", skiprows=1, dtype=str, ndmin=2)
    keep = [i for i, name in enumerate(header) if name not in skip]
    return [header[i] for i in keep], data[:MAX_ROWS, keep].astype(np.float64)


def choose_wrt(N, K, D):
    if D > BIG_D and N * K * D * D * 8 >= MAX_H_BYTES:
        return np.arange(PARTIAL_WRT)
    return None


def fd_hessian(jac_fn, x, wrt):
    """Central difference of J: H[n, k, i, j] ~ (J(x + h e_j) - J(x - h e_j))[n, k, i] / 2h, for j (and i) in wrt."""
    N, D = x.shape
    cols = np.arange(D) if wrt is None else wrt
    h = FD_STEP * np.maximum(1.0, np.abs(x[:, cols]))  # (N, W)
    xs = np.repeat(x[None], 2 * len(cols), axis=0)  # (2W, N, D)
    for a, j in enumerate(cols):
        xs[2 * a, :, j] += h[:, a]
        xs[2 * a + 1, :, j] -= h[:, a]
    J = jac_fn(xs.reshape(-1, D)).reshape(2 * len(cols), N, -1, D)  # (2W, N, K, D)
    dJ = (J[0::2] - J[1::2]) / (2 * h.T[:, :, None, None])  # (W, N, K, D): d/dx_j of J[n, k, :]
    H = np.moveaxis(dJ, 0, -1)  # (N, K, D, W)
    return H if wrt is None else H[:, :, wrt, :]


def fd_errors(H, H_fd):
    err = float(np.abs(H - H_fd).max())
    return err, err / max(float(np.abs(H).max()), 1e-300)


def save(path, **arrays):
    np.savez_compressed(path, **arrays)
    return path.name


# ------------------------------------------------------------------------------------------------------------
# Keras (TensorFlow)


def keras_part(only=()):
    sys.path.insert(0, str(KERAS_DIR))
    import make_samples as ms  # the builders, weight helpers and I/O conventions of the samples
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")

    # TensorFlow 2.21 has no gradient for SoftsignGrad (softsign's first derivative), so a nested tape fails
    # on softsign (mlp_acts). It is registered here: SoftsignGrad(g, x) = g / (1 + |x|)^2, so
    # d/dg = 1 / (1 + |x|)^2 and d/dx = -2 g sign(x) / (1 + |x|)^3. Every other op in the samples has one.
    @tf.RegisterGradient("SoftsignGrad")
    def _softsign_grad_grad(op, grad):
        g, feat = op.inputs
        d = 1 + tf.abs(feat)
        return grad / d**2, -2 * grad * g * tf.sign(feat) / d**3

    # Nor for ResizeNearestNeighborGrad (UpSampling2D's first derivative: the sum over each block), needed by
    # pad_2d. It is linear in its first input, and its adjoint is the nearest-neighbour resize itself to that
    # input's size; the central difference below checks it.
    @tf.RegisterGradient("ResizeNearestNeighborGrad")
    def _resize_nearest_grad_grad(op, grad):
        size = tf.shape(op.inputs[0])[1:3]
        return tf.raw_ops.ResizeNearestNeighbor(images=grad, size=size, align_corners=op.get_attr("align_corners"),
                                                half_pixel_centers=op.get_attr("half_pixel_centers")), None

    # tf.nn.moments (LayerNormalization in Keras 2 and 3) computes the variance as
    # mean((x - stop_gradient(mean))^2). The first derivative is still right (the dropped term is
    # 2 mean(x - mean) dmean = 0), but the second is not: the nested tape then misses the -2/n^2 term of
    # d^2 var / dx_i dx_j. On `norms` that made H wrong by 0.2 (10% of max |H|) against the central difference.
    # The same moments without the stop_gradient: identical values, exact second derivatives.
    def moments(x, axes, shift=None, keepdims=False, name=None):
        mean = tf.reduce_mean(x, axes, keepdims=True)
        variance = tf.reduce_mean(tf.math.squared_difference(x, mean), axes, keepdims=True)
        if not keepdims:
            mean, variance = tf.squeeze(mean, axes), tf.squeeze(variance, axes)
        return mean, variance

    tf.nn.moments = moments
    tf.compat.v2.nn.moments = moments

    framework = f"tensorflow {tf.__version__}, keras {ms.keras.__version__}, tf_keras {ms.tf_keras.__version__}"
    specs = {s.name: s for s in ms.SPECS}
    manifest = json.loads((KERAS_DIR / "manifest.json").read_text())

    def model_fn(m64, inputs):
        return lambda xt: ms.flat_outputs(m64(ms.model_in(ms.split_inputs(xt, inputs)), training=False))

    def y_j(f, x):
        xt = tf.constant(x, tf.float64)
        with tf.GradientTape() as t:
            t.watch(xt)
            y = f(xt)
        return y.numpy(), t.batch_jacobian(y, xt).numpy()

    def y_j_h(f, x, wrt):
        xt = tf.constant(x, tf.float64)
        with tf.GradientTape() as outer:
            outer.watch(xt)
            with tf.GradientTape() as inner:
                inner.watch(xt)
                y = f(xt)
            J = inner.batch_jacobian(y, xt)  # (N, K, D)
            Jw = J if wrt is None else tf.gather(J, wrt, axis=2)
        H = outer.batch_jacobian(Jw, xt).numpy()  # (N, K, W, D)
        return y.numpy(), J.numpy(), H if wrt is None else H[:, :, :, wrt]

    for entry in manifest:
        if entry["expect"] != "ok" or entry["name"] in RECURRENT or (only and entry["name"] not in only):
            continue
        spec = specs[entry["name"]]
        in_names, x = read_csv(KERAS_DIR / entry["csv"])
        results = {}  # format -> arrays
        for fmt, fname in entry["files"].items():
            version = ms.FORMATS[fmt]
            loaded = ms.load(version, KERAS_DIR / fname)
            weights = {name: layer.get_weights() for name, layer in ms.all_layers(loaded).items()}
            m64 = ms.build(spec, version, "float64", twin=True)
            ms.set_weights(m64, weights)
            inputs, outputs = ms.input_info(m64), ms.output_info(m64)
            f = model_fn(m64, inputs)
            N, D = x.shape
            K = len(ms.output_names(outputs))
            wrt = choose_wrt(N, K, D)
            y, J, H = y_j_h(f, x, wrt)
            ref_file = entry["refs"][fmt]
            with np.load(KERAS_DIR / ref_file) as r:  # the J refs of the same framework: must agree
                assert np.array_equal(r["x"][:N], x), fname
                j_vs_ref = ms.rel_err(J, r["jacobian"][:N])
                y_vs_ref = ms.rel_err(y, r["y64"][:N])
                out_names = r["output_names"]
            if max(j_vs_ref, y_vs_ref) > 1e-12:
                raise RuntimeError(f"{fname}: y/J differ from {ref_file} ({y_vs_ref:.1e}, {j_vs_ref:.1e})")
            H_fd = fd_hessian(lambda xs, f=f: y_j(f, xs)[1], x, wrt)
            err_abs, err_rel = fd_errors(H, H_fd)
            if err_abs > FD_ACCEPT * max(1.0, float(np.abs(H).max())):
                # upsample_bilinear: tf.image.resize computes bilinear in float32 and its nested tape gives H = 0
                raise RuntimeError(f"{fname}: TensorFlow's H is {err_abs:.2g} from its own central difference; "
                                   "not a reference")
            sym = float(np.abs(H - np.swapaxes(H, -1, -2)).max())
            arrays = dict(x=x, y=y, jacobian=J, hessian=H, input_names=np.array(in_names, dtype=np.str_),
                          output_names=out_names, source=np.str_(f"keras/{fname}"), framework=np.str_(framework),
                          fd_max_abs_error=np.float64(err_abs), fd_max_rel_error=np.float64(err_rel),
                          fd_step=np.float64(FD_STEP))
            if wrt is not None:
                arrays["wrt"] = wrt.astype(np.int64)
            results[fmt] = arrays
            print(json.dumps({"model": entry["name"], "file": fname, "hessian_shape": list(H.shape),
                              "partial": wrt is not None, "fd_max_abs_error": err_abs, "fd_max_rel_error": err_rel,
                              "max_abs_H": float(np.abs(H).max()), "asymmetry": sym,
                              "y_vs_ref": y_vs_ref, "J_vs_ref": j_vs_ref}), flush=True)
        main_fmt = "k3.keras" if "k3.keras" in results else next(iter(results))
        main = results[main_fmt]
        agree = all(ms.rel_err(a["hessian"], main["hessian"]) <= 1e-12 and ms.rel_err(a["y"], main["y"]) <= 1e-12
                    for a in results.values())
        for old in KERAS_DIR.glob(f"{entry['name']}.*hess.npz"):
            old.unlink()
        if agree:
            written = [save(KERAS_DIR / f"{entry['name']}.hess.npz", **main)]
        else:
            written = []
            for version in sorted({ms.FORMATS[fmt] for fmt in results}):
                fmts = [fmt for fmt in results if ms.FORMATS[fmt] == version]
                fmt = main_fmt if main_fmt in fmts else fmts[0]
                others = [ms.rel_err(results[o]["hessian"], results[fmt]["hessian"]) for o in fmts]
                if max(others) > 1e-12:
                    raise RuntimeError(f"{entry['name']}: formats of Keras {version} disagree")
                written.append(save(KERAS_DIR / f"{entry['name']}.{version}.hess.npz", **results[fmt]))
        spread = max(ms.rel_err(a["hessian"], main["hessian"]) for a in results.values())
        print(json.dumps({"model": entry["name"], "written": written, "formats_max_rel_diff_H": spread}), flush=True)


# ------------------------------------------------------------------------------------------------------------
# NPZ samples (torch)


def npz_cases():
    """(name, model file, csv, skipped columns, [(W (in, out), b)], activations, reference file) per NPZ sample."""
    cases = []
    z = np.load(HERE / "bishop_tanh.npz", allow_pickle=False)
    layers = [(z["W0"], z["b0"]), (z["W1"], z["b1"])]
    names = [str(a) for a in z["activations"]]
    cases.append(("bishop_tanh", "bishop_tanh.npz", "bishop_tanh.csv", (), layers, names, "bishop_tanh.hess.npz"))
    z = np.load(HERE / "torch_mlp.npz", allow_pickle=False)
    layers = [(z["net.0.weight"].T, z["net.0.bias"]), (z["net.2.weight"].T, z["net.2.bias"])]
    for act, out in (("relu", "torch_mlp.hess.npz"), ("tanh", "torch_mlp.tanh.hess.npz")):
        cases.append(("torch_mlp", "torch_mlp.npz", "torch_mlp.csv", ("id",), layers, [act, "linear"], out))

    return cases


def npz_part():
    import torch
    from torch.func import hessian, jacrev, vmap

    torch.set_default_dtype(torch.float64)
    framework = f"torch {torch.__version__}"
    acts = {"tanh": torch.tanh, "relu": torch.relu, "linear": lambda a: a}

    def mlp(layers, names):
        """layers: [(W (in, out), b)] float64 tensors; names: one activation per layer."""
        def f(x):  # x (D,) -> (K,)
            h = x
            for (W, b), name in zip(layers, names):
                h = acts[name](h @ W + b)
            return h
        return f

    for name, model_file, csv, skip, layers, names, out in npz_cases():
        in_names, x = read_csv(HERE / csv, skip)
        tl = [(torch.tensor(W), torch.tensor(b)) for W, b in layers]
        f = mlp(tl, names)
        xt = torch.tensor(x)
        N, D = x.shape
        K = tl[-1][0].shape[1]
        wrt = choose_wrt(N, K, D)
        y = vmap(f)(xt).numpy()
        J = vmap(jacrev(f))(xt).numpy()
        H = vmap(hessian(f))(xt).numpy()
        if wrt is not None:
            H = H[:, :, wrt][:, :, :, wrt]
        H_fd = fd_hessian(lambda xs, f=f: vmap(jacrev(f))(torch.tensor(xs)).numpy(), x, wrt)
        err_abs, err_rel = fd_errors(H, H_fd)
        # an independent float64 numpy forward pass of the same network
        h = x
        for (W, b), act in zip(layers, names):
            h = {"tanh": np.tanh, "relu": lambda a: np.maximum(a, 0), "linear": lambda a: a}[act](h @ W + b)
        y_np = float(np.abs(h - y).max())
        arrays = dict(x=x, y=y, jacobian=J, hessian=H, input_names=np.array(in_names, dtype=np.str_),
                      output_names=np.array([f"y[{k}]" for k in range(K)], dtype=np.str_),
                      activations=np.array(names, dtype=np.str_), source=np.str_(model_file),
                      framework=np.str_(framework), fd_max_abs_error=np.float64(err_abs),
                      fd_max_rel_error=np.float64(err_rel), fd_step=np.float64(FD_STEP))
        if wrt is not None:
            arrays["wrt"] = wrt.astype(np.int64)
        save(HERE / out, **arrays)
        print(json.dumps({"model": name, "activations": names, "written": out, "hessian_shape": list(H.shape),
                          "fd_max_abs_error": err_abs, "fd_max_rel_error": err_rel,
                          "max_abs_H": float(np.abs(H).max()), "y_vs_numpy": y_np}), flush=True)


def hvp_part():
    """torch.func's own Hessian-vector products of the NPZ samples (sample_models/*.hvp.npz): forward-over-reverse,
    jvp(jacrev(f), x, u) = H u, along one seeded direction for every row and along a direction per row; each
    checked against torch.func.hessian times u.  Arrays: x, direction (D,), hvp (N, K, D), row_directions (N, D),
    row_hvp (N, K, D), activations, source, framework, max_vs_hessian."""
    import torch
    from torch.func import hessian, jacrev, jvp, vmap

    torch.set_default_dtype(torch.float64)
    acts = {"tanh": torch.tanh, "relu": torch.relu, "linear": lambda a: a}
    for name, model_file, csv, skip, layers, names, out in npz_cases():
        tl = [(torch.tensor(W), torch.tensor(b)) for W, b in layers]

        def f(x, tl=tl, names=names):
            for (W, b), act in zip(tl, names):
                x = acts[act](x @ W + b)
            return x

        _, x = read_csv(HERE / csv, skip)
        rng = np.random.default_rng(20261203)
        u, U = rng.normal(size=x.shape[1]), rng.normal(size=x.shape)
        xt = torch.tensor(x)
        along = vmap(lambda xr, ur, f=f: jvp(jacrev(f), (xr,), (ur,))[1])
        one = along(xt, torch.tensor(np.broadcast_to(u, x.shape).copy())).numpy()
        rows = along(xt, torch.tensor(U)).numpy()
        H = vmap(hessian(f))(xt).numpy()
        err = max(float(np.abs(one - H @ u).max()), float(np.abs(rows - np.einsum("nkij,nj->nki", H, U)).max()))
        target = out.replace(".hess.npz", ".hvp.npz")
        save(HERE / target, x=x, direction=u, hvp=one, row_directions=U, row_hvp=rows,
             activations=np.array(names, dtype=np.str_), source=np.str_(model_file),
             framework=np.str_(f"torch {torch.__version__}"), max_vs_hessian=np.float64(err))
        print(json.dumps({"model": name, "activations": names, "written": target, "max_vs_hessian": err}), flush=True)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    part = sys.argv[1] if len(sys.argv) > 1 else ""
    if part == "keras":
        keras_part(set(sys.argv[2:]))
    elif part == "npz":
        npz_part()
    elif part == "hvp":
        hvp_part()
    else:
        sys.exit("usage: make_hessian_refs.py {keras|npz|hvp}")
