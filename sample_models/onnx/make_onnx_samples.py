"""Write the ONNX samples and their references (dev environment: torch 2.13, onnx, onnxruntime, skl2onnx).

    /work/devenv-bench/bin/python sample_models/onnx/make_onnx_samples.py
    /work/devenv-bench/bin/python sample_models/onnx/make_onnx_samples.py --only torch_attention_dynamo_f64 ...

For every sample NAME: NAME.onnx (and NAME.onnx.data where the exporter writes external data), NAME.csv
(the inputs, a header of jacprop's input names) and NAME.ref.npz with

- x (N, D), y (N, K): the source framework's outputs, float64 where the file is float64;
- jacobian (N, K, D): torch.func.vmap(jacrev) on the torch module (float64 for float64 files, the float32
  module itself for float32 files), or analytic (float64) for the scikit-learn MLPs;
- y_ort (N, K): onnxruntime's forward pass on the file (checked here against y);
- float32 (bool), input_names, output_names;
- torch samples also: hessian (R, K, W, W) = torch.func.vmap(torch.func.hessian) of the flat row function
  on the first R rows of x, with respect to the inputs hessian_wrt (W of them: all where D is small, a
  fixed spread of 16 for the CNNs), computed in float64 on the module promoted to float64 (a float32 file's
  weights exactly; folding done by the exporter in float32 is the only difference, hence 1e-4 there too).

Where the file holds a float32 constant the framework had in float64 (Selu's alpha and gamma), the float64
reference uses the file's value: the file is the model.
"""

import copy
import json
import os
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
ROWS = 6
SELU_ALPHA32, SELU_GAMMA32 = float(np.float32(1.6732632423543772)), float(np.float32(1.0507009873554805))


class FileSelu(nn.Module):
    """SELU with the float32 constants an ONNX Selu node carries."""

    def forward(self, x):
        return SELU_GAMMA32 * torch.where(x > 0, x, SELU_ALPHA32 * torch.expm1(x))


def mlp_acts(width=6, selu=nn.SELU):
    layers, n_in = [], 4
    for act in (
        nn.Tanh(),
        nn.ReLU6(),
        nn.SiLU(),
        nn.Softsign(),
        nn.GELU(),
        nn.LeakyReLU(0.125),
        nn.ELU(0.5),
        selu(),
        nn.Mish(),
        nn.Hardtanh(-0.75, 0.75),
        nn.Hardswish(),
        nn.Sigmoid(),
        nn.Softplus(),
    ):
        layers += [nn.Linear(n_in, width), act]
        n_in = width
    layers.append(nn.Linear(n_in, 3))
    with torch.no_grad():  # weights large enough that J is O(1) through 13 activations
        for layer in layers[::2]:
            layer.weight.normal_(0, 1.6 / layer.in_features**0.5)
            layer.bias.uniform_(-0.5, 0.5)
    return nn.Sequential(*layers)


class SoftplusGeluTanh(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(3, 5), nn.Linear(5, 5), nn.Linear(5, 4)

    def forward(self, x):
        h = nn.functional.softplus(self.a(x) * 8)  # some rows above softplus' threshold of 20
        return torch.log_softmax(self.c(nn.functional.gelu(self.b(h), approximate="tanh")), dim=-1)


class Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 3, stride=2, padding=2, dilation=2, groups=2)
        self.pool = nn.MaxPool2d(2, padding=1)
        self.avg = nn.AvgPool2d(2, stride=1)
        self.norm = nn.LayerNorm(4 * 3 * 3 + 4)
        self.fc = nn.Linear(4 * 3 * 3 + 4, 3)

    def forward(self, x):
        h = torch.relu(self.bn(self.conv1(x)))
        a = self.pool(torch.tanh(self.conv2(h)))
        b = nn.functional.adaptive_avg_pool2d(self.avg(h), 1)
        z = torch.cat([a.view(a.size(0), -1), b.reshape(b.size(0), -1)], dim=1)
        return torch.softmax(self.fc(self.norm(z)), dim=-1)


class Conv1d(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(3, 4, 3, padding=2, dilation=2)
        self.c2 = nn.Conv1d(4, 2, 1)
        self.fc = nn.Linear(2 * 5, 2)

    def forward(self, x):
        return self.fc(torch.flatten(self.c2(nn.functional.avg_pool1d(torch.tanh(self.c1(x)), 2)), 1))


class BatchNormNet(nn.Module):
    """BatchNorm1d after a Linear and after a Conv1d + ReLU: the legacy exporter keeps both as
    BatchNormalization(training_mode=0), the dynamo one folds the first into the Gemm."""

    def __init__(self):
        super().__init__()
        self.fc, self.bn1 = nn.Linear(4, 6), nn.BatchNorm1d(6)
        self.conv, self.bn2 = nn.Conv1d(2, 3, 2), nn.BatchNorm1d(3)
        self.out = nn.Linear(6 + 3 * 2, 2)

    def forward(self, x):
        h = torch.tanh(self.bn1(self.fc(x)))
        c = self.bn2(torch.relu(self.conv(h.view(-1, 2, 3))))
        return self.out(torch.cat([h, torch.flatten(c, 1)], dim=1))


class Attention(nn.Module):
    """One self-attention block over 3 tokens of 4 features: softmax(q k^T / 2) v, so MatMul of two tensors
    (q @ k^T and the weights @ v) and a Transpose, then tanh and a Linear."""

    def __init__(self):
        super().__init__()
        self.q, self.k, self.v, self.out = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(12, 2)

    def forward(self, x):
        a = torch.softmax(self.q(x) @ self.k(x).transpose(-1, -2) / 2.0, dim=-1)
        return self.out(torch.tanh(a @ self.v(x)).flatten(1))


class MultiIO(nn.Module):
    def __init__(self):
        super().__init__()
        self.fa, self.fo = nn.Linear(3, 4), nn.Linear(6, 2)

    def forward(self, a, b):
        h = torch.tanh(self.fa(a))
        b2 = b.transpose(1, 2).reshape(-1, 4)
        p = h * b2
        out1 = self.fo(torch.cat([p, a[:, 1:3]], dim=1))
        out2 = (h / (1 + b2.abs())).sum(-1, keepdim=True)
        return out1, out2


def export(module, args, path, dynamo, opset=None):
    names = ["a", "b"][: len(args)] if len(args) > 1 else ["x"]
    outs = ["y", "z"] if isinstance(module, MultiIO) else ["y"]
    if dynamo:
        shapes = tuple({0: torch.export.Dim("N", min=1, max=4096)} for _ in args)
        torch.onnx.export(
            module,
            args,
            str(path),
            dynamo=True,
            input_names=names,
            output_names=outs,
            dynamic_shapes=shapes,
            opset_version=opset,
        )
    else:
        torch.onnx.export(
            module,
            args,
            str(path),
            dynamo=False,
            input_names=names,
            output_names=outs,
            opset_version=opset,
            dynamic_axes={n: {0: "N"} for n in names + outs},
        )
    return names, outs


def flat_outputs(outs):
    outs = outs if isinstance(outs, tuple) else (outs,)
    return torch.cat([o.reshape(o.shape[0], -1) for o in outs], dim=1)


def torch_reference(module, shapes, x):
    """y and J = vmap(jacrev) of the flat row function, in the module's dtype."""
    sizes = [int(np.prod(s)) for s in shapes]

    def row(v):
        parts = torch.split(v, sizes)
        return flat_outputs(module(*[p.reshape(1, *s) for p, s in zip(parts, shapes)]))[0]

    with torch.no_grad():
        xt = torch.as_tensor(x)
        y = torch.stack([row(r) for r in xt])
    J = torch.func.vmap(torch.func.jacrev(row))(xt)
    return y.numpy(), J.detach().numpy()


HESS_ROWS = 3


def torch_hessian(module, shapes, x):
    """(hessian (R, K, W, W), wrt): torch.func.hessian of the flat row function in float64, the other inputs
    held at their values."""
    module = copy.deepcopy(module).to(torch.float64)
    sizes = [int(np.prod(s)) for s in shapes]
    d = sum(sizes)
    wrt = np.arange(d) if d <= 16 else np.unique(np.linspace(0, d - 1, 16).round().astype(int))
    xt = torch.as_tensor(x[:HESS_ROWS], dtype=torch.float64)
    idx = torch.as_tensor(wrt)

    def row(v, base):
        full = base.index_put((idx,), v)
        parts = torch.split(full, sizes)
        return flat_outputs(module(*[p.reshape(1, *s) for p, s in zip(parts, shapes)]))[0]

    H = torch.func.vmap(torch.func.hessian(row))(xt[:, idx], xt)
    return H.detach().numpy(), wrt


CHECKER = {}


def ort_forward(path, names, shapes, x, dtype):
    """onnxruntime's outputs; where it has no kernel for a float64 op (Erf, Selu, ...), onnx's reference
    evaluator's (recorded in the manifest; it has float32 Erf, so
    those are checked to 1e-6 only)."""
    sizes = np.cumsum([int(np.prod(s)) for s in shapes])[:-1]
    feeds = {n: p.reshape(len(x), *s).astype(dtype) for n, p, s in zip(names, np.split(x, sizes, axis=1), shapes)}
    try:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        outs = sess.run(None, feeds)
        CHECKER[path.stem] = f"onnxruntime {ort.__version__}"
    except Exception as e:  # NOT_IMPLEMENTED
        from onnx.reference import ReferenceEvaluator

        outs = ReferenceEvaluator(str(path)).run(None, feeds)
        CHECKER[path.stem] = f"onnx.reference (onnxruntime: {str(e).split(':')[-1].strip()})"
    return np.concatenate([o.reshape(len(x), -1).astype(np.float64) for o in outs if o.dtype.kind == "f"], axis=1)


def column_names(names, shapes):
    if len(names) == 1:
        return [f"x{i}" for i in range(int(np.prod(shapes[0])))]
    return [f"{n}_{i}" for n, s in zip(names, shapes) for i in range(int(np.prod(s)))]


def output_names(outs, y_sizes):
    return [o if k == 1 else f"{o}[{j}]" for o, k in zip(outs, y_sizes) for j in range(k)]


def write(name, x, y, J, y_ort, names, outs, float32, manifest, exporter, extra=None):
    # onnx.reference computes Erf in float32 (np.vectorize(math.erf, otypes=["f"])): a looser check there
    tol = 1e-4 if float32 else 1e-9 if CHECKER[name].startswith("onnxruntime") else 1e-6
    scale = max(1.0, float(np.abs(y).max()))
    assert np.abs(y_ort - y).max() <= tol * scale, (name, np.abs(y_ort - y).max())
    np.savez(
        HERE / f"{name}.ref.npz",
        x=x,
        y=y,
        jacobian=J,
        y_ort=y_ort,
        float32=float32,
        input_names=np.array(names),
        output_names=np.array(outs),
        **(extra or {}),
    )
    with open(HERE / f"{name}.csv", "w") as f:
        f.write(",".join(names) + "\n")
        for r in x:
            f.write(",".join(repr(float(v)) for v in r) + "\n")
    files = sorted(p.name for p in HERE.glob(f"{name}.onnx*"))
    manifest.append(
        {
            "name": name,
            "files": files,
            "exporter": exporter,
            "float32": float32,
            "forward_checked_by": CHECKER[name],
            "y_ort_max_abs_diff": float(np.abs(y_ort - y).max()),
        }
    )
    print(f"{name}: {files}, |y_ort - y| = {np.abs(y_ort - y).max():.2e}")


def torch_sample(name, make, shapes, dynamo, dtype, manifest, opset=None, ref_make=None, scale=1.0):
    torch.manual_seed(sum(map(ord, name)))
    module = make().to(dtype).eval()
    for bn in [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]:
        with torch.no_grad():  # running statistics that are not the identity
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
    rng = np.random.default_rng(sum(map(ord, name)))
    d = sum(int(np.prod(s)) for s in shapes)
    x = (scale * rng.standard_normal((ROWS, d))).astype(np.float32 if dtype == torch.float32 else np.float64)
    x = x.astype(np.float64)
    for p in HERE.glob(f"{name}.onnx*"):
        p.unlink()
    path = HERE / f"{name}.onnx"
    args = tuple(
        torch.as_tensor(
            x[:2, : int(np.prod(s))].reshape(2, *s) if i == 0 else x[:2, -int(np.prod(s)) :].reshape(2, *s)
        ).to(dtype)
        for i, s in enumerate(shapes)
    )
    names, outs = export(module, args, path, dynamo, opset)
    ref = module
    if ref_make is not None:  # the same weights, the file's constants
        ref = ref_make().to(dtype).eval()
        ref.load_state_dict(module.state_dict())
    xin = x.astype(np.float32) if dtype == torch.float32 else x
    y, J = torch_reference(ref, shapes, xin)
    y_ort = ort_forward(path, names, shapes, x, np.float32 if dtype == torch.float32 else np.float64)
    H, wrt = torch_hessian(ref, shapes, x)
    sizes = [int(np.prod(o.shape[1:])) for o in (module(*args) if isinstance(module, MultiIO) else (module(*args),))]
    write(
        name,
        x,
        y.astype(np.float64),
        J.astype(np.float64),
        y_ort,
        column_names(names, shapes),
        output_names(outs, sizes),
        dtype == torch.float32,
        manifest,
        "torch dynamo" if dynamo else "torch legacy",
        {"hessian": H, "hessian_wrt": wrt},
    )


def sklearn_samples(manifest):
    from skl2onnx import to_onnx
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(7)
    X = rng.standard_normal((200, 4)) * [1, 2, 0.5, 3] + [0, 1, -1, 2]
    y_reg = np.sin(X[:, 0]) + X[:, 1] * X[:, 2] + np.tanh(X[:, 3])  # one output: skl2onnx reshapes to (-1, 1)
    y_clf = (X[:, 0] + X[:, 1] > 1).astype(int) + (X[:, 2] > -1).astype(int)
    reg = make_pipeline(
        StandardScaler(), MLPRegressor(hidden_layer_sizes=(8, 6), activation="tanh", max_iter=300, random_state=0)
    )
    clf = make_pipeline(
        StandardScaler(), MLPClassifier(hidden_layer_sizes=(6,), activation="relu", max_iter=300, random_state=0)
    )
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg.fit(X, y_reg)
        clf.fit(X, y_clf)
    x = X[:ROWS]
    for name, pipe, dtype, kind in (
        ("skl_mlp_regressor_f32", reg, np.float32, "reg"),
        ("skl_mlp_classifier_f64", clf, np.float64, "clf"),
    ):
        path = HERE / f"{name}.onnx"
        options = {id(pipe.steps[-1][1]): {"zipmap": False}} if kind == "clf" else None
        onx = to_onnx(pipe, X[:1].astype(dtype), options=options, target_opset={"": 21, "ai.onnx.ml": 3})
        path.write_bytes(onx.SerializeToString())
        y, J = mlp_analytic(pipe, x)
        y_ort = ort_forward(path, [onx.graph.input[0].name], [(4,)], x, dtype)
        outs = [f"probabilities[{j}]" for j in range(y.shape[1])] if kind == "clf" else ["variable"]
        write(name, x, y, J, y_ort, [f"x{i}" for i in range(4)], outs, dtype == np.float32, manifest, "skl2onnx")


def mlp_analytic(pipe, x):
    """y and J of StandardScaler + MLP in float64: z = (x - mean)/scale, a_l = h_{l-1} W_l + b_l,
    dh/dx = prod diag(h'(a_l)) W_l^T ..., then softmax (classifier) or identity (regressor)."""
    scaler, mlp = pipe.steps[0][1], pipe.steps[-1][1]
    act = {"tanh": (np.tanh, lambda a, h: 1 - h**2), "relu": (lambda a: np.maximum(a, 0), lambda a, h: (a > 0) * 1.0)}
    h = (x - scaler.mean_) / scaler.scale_
    J = np.broadcast_to(np.diag(1 / scaler.scale_), (len(x), x.shape[1], x.shape[1])).copy()  # dh/dx: (N, units, D)
    n = len(mlp.coefs_)
    for i, (W, b) in enumerate(zip(mlp.coefs_, mlp.intercepts_)):
        a = h @ W + b
        J = np.einsum("uj,nud->njd", W, J)
        if i < n - 1:
            f, df = act[mlp.activation]
            h = f(a)
            J = df(a, h)[:, :, None] * J
        else:
            h = a
    if not hasattr(mlp, "classes_") and h.shape[1] == 1:
        return h, J
    if hasattr(mlp, "classes_"):
        e = np.exp(h - h.max(axis=1, keepdims=True))
        s = e / e.sum(axis=1, keepdims=True)
        J = s[:, :, None] * (J - np.einsum("nk,nkd->nd", s, J)[:, None])
        h = s
    return h, J


def main():
    manifest = []
    f64, f32 = torch.float64, torch.float32
    torch_sample(
        "torch_mlp_legacy_opset17_f64", mlp_acts, [(4,)], False, f64, manifest, 17, lambda: mlp_acts(selu=FileSelu)
    )
    torch_sample("torch_mlp_legacy_f64", mlp_acts, [(4,)], False, f64, manifest, 20, lambda: mlp_acts(selu=FileSelu))
    torch_sample("torch_mlp_dynamo_f64", mlp_acts, [(4,)], True, f64, manifest, None, lambda: mlp_acts(selu=FileSelu))
    torch_sample(
        "torch_mlp_dynamo_f32",
        lambda: mlp_acts(width=16),
        [(4,)],
        True,
        f32,
        manifest,
        None,
        lambda: mlp_acts(width=16, selu=FileSelu),
    )
    torch_sample("torch_softplus_gelu_dynamo_f64", SoftplusGeluTanh, [(3,)], True, f64, manifest)
    torch_sample("torch_softplus_gelu_legacy_opset18_f64", SoftplusGeluTanh, [(3,)], False, f64, manifest, 18)
    torch_sample("torch_cnn_legacy_f32", Cnn, [(2, 8, 8)], False, f32, manifest, 17)
    torch_sample("torch_cnn_dynamo_f64", Cnn, [(2, 8, 8)], True, f64, manifest)
    torch_sample("torch_conv1d_legacy_f64", Conv1d, [(3, 10)], False, f64, manifest)
    torch_sample("torch_batchnorm_legacy_f64", BatchNormNet, [(4,)], False, f64, manifest)
    torch_sample("torch_batchnorm_dynamo_f64", BatchNormNet, [(4,)], True, f64, manifest)
    torch_sample("torch_attention_dynamo_f64", Attention, [(3, 4)], True, f64, manifest)
    torch_sample("torch_attention_legacy_f64", Attention, [(3, 4)], False, f64, manifest)
    torch_sample("torch_multi_io_dynamo_f64", MultiIO, [(3,), (2, 2)], True, f64, manifest)
    torch_sample("torch_multi_io_legacy_f64", MultiIO, [(3,), (2, 2)], False, f64, manifest)
    sklearn_samples(manifest)
    versions = {"torch": torch.__version__, "onnxruntime": ort.__version__}
    import onnx
    import skl2onnx

    versions.update(onnx=onnx.__version__, skl2onnx=skl2onnx.__version__)
    (HERE / "manifest.json").write_text(json.dumps({"versions": versions, "samples": manifest}, indent=1) + "\n")
    total = sum(p.stat().st_size for p in HERE.iterdir() if p.is_file())
    print(f"total {total} bytes in {HERE}")


def only(names):
    """Make only the named torch samples again (``make_onnx_samples.py --only NAME...``), keeping the others'
    files and manifest entries: the exporters do not write the same bytes twice."""
    calls = {"torch_attention_dynamo_f64": (Attention, [(3, 4)], True),
             "torch_attention_legacy_f64": (Attention, [(3, 4)], False)}
    saved = json.loads((HERE / "manifest.json").read_text())
    made = []
    for name in names:
        make, shapes, dynamo = calls[name]
        torch_sample(name, make, shapes, dynamo, torch.float64, made)
    kept = [e for e in saved["samples"] if e["name"] not in names]
    saved["samples"] = kept + made
    (HERE / "manifest.json").write_text(json.dumps(saved, indent=1) + "\n")


if __name__ == "__main__":
    os.chdir(HERE)
    if sys.argv[1:2] == ["--only"]:
        only(sys.argv[2:])
    else:
        main()
