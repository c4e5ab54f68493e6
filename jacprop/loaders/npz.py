"""NPZ models: jacprop's own schema, and plain lists of weight matrices.

(a) jacprop schema, written by ``save``: an array ``__jacprop__`` holding JSON
    {"format": "jacprop", "version": 1, "D": D, "input_names": [...], "output_names": [...],
     "input_names_from": "numbered by jacprop" | "the model's inputs" | "given to jacprop convert" | ...,
     "nodes": [{"name", "kind", "op", "inputs": [node indices], "config": {...}}, ...]}
    and each node's parameter arrays under "<node index>/<field>" (e.g. "2/kernel").
    Node 0 is the flat input row; the last node is the flat output row.  Any op of
    ``jacprop.ops`` can be stored, so every model jacprop reads converts to NPZ.

(b) a list of weight matrices, an MLP y = h_L(W_L ... h_1(W_1 x + b_1) ... + b_L):
    - ``W0, b0, W1, b1, ...`` (also w/weight/kernel and b/bias with an index), W of shape
      (in, out); a W given as (out, in) is recognised from its bias and the chain of shapes;
    - PyTorch ``state_dict`` names ``net.0.weight, net.0.bias, net.2.weight, ...``, weight
      (out, in), ordered by the numbers in the names.
    Activations: an array ``activations`` (one name per layer) in the file, else the
    ``activation`` option for hidden layers and ``output_activation`` (default linear).
    ``NAME:VALUE`` gives an activation's parameter (``leaky_relu:0.01``, ``elu:0.5``).  elu alone is
    alpha 1 (Keras, TensorFlow and PyTorch agree); leaky_relu alone is refused: its slope is 0.01 in
    PyTorch, 0.2 in tf.nn and keras.activations, 0.3 in Keras' LeakyReLU layer.
    Optional string arrays ``input_names`` (D,) and ``output_names`` (K,) name the columns;
    input columns of a CSV are then matched to them by name.

Files are read with ``allow_pickle=False``: object arrays are refused, never unpickled.
"""

from __future__ import annotations

import json
import re
import zipfile
import zlib

import numpy as np

from .. import ops
from ..errors import ModelError
from ..graph import GraphBuilder, Model, input_names_from
from ..ops import Activation

SCHEMA_KEY = "__jacprop__"
# An activation named in a weight list: the parameter its name means where no value is given (ops.Activation's
# alpha defaults to 0, which would make elu and leaky_relu relu); None: the frameworks disagree, it must be given
NAMED_PARAMETER = {"elu": 1.0, "leaky_relu": None}
_LAYER_NAME = re.compile(r"^(?:(?P<wp>w|weight|weights|kernel|W)_?(?P<wi>\d+)|(?P<bp>b|bias|B)_?(?P<bi>\d+))$")


def _read(path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except ValueError as e:
        if "pickle" in str(e) or "object" in str(e):
            raise ModelError(f"{path}: NPZ holds object arrays (pickles); refused, jacprop never unpickles") from None
        raise ModelError(f"{path}: unreadable NPZ file ({e})") from None
    except (OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
        raise ModelError(f"{path}: unreadable NPZ file ({e})") from None


def load(path, activation: str | None = None, output_activation: str = "linear") -> Model:
    arrays = _read(path)
    if SCHEMA_KEY in arrays:
        model = _load_schema(path, arrays)
    else:
        model = _load_weight_list(path, arrays, activation, output_activation)
    model.source.update(path=str(path))
    return model


def _load_schema(path, arrays) -> Model:
    try:
        spec = json.loads(str(arrays[SCHEMA_KEY]))
        if spec.get("format") != "jacprop" or spec.get("version") != 1:
            raise ModelError(f"{path}: unsupported schema {spec.get('format')!r} version {spec.get('version')!r}")
        b = GraphBuilder([], d=int(spec["D"]))
        for i, node in enumerate(spec["nodes"], start=1):
            where = f"{path}: node {i} ({node.get('name')!r})"
            prefix = f"{i}/"
            mine = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
            try:
                op = ops.make_op(node["op"], node.get("config", {}), mine)
            except (ValueError, TypeError) as e:
                raise ModelError(f"{where}: {e}") from None
            if any(not (0 <= j < i) for j in node["inputs"]):
                raise ModelError(f"{where}: inputs {node['inputs']} must name earlier nodes")
            b.add(node["name"], op, node["inputs"], node.get("kind", node["op"]))
        model = b.finish([len(b.nodes) - 1], source={"format": "jacprop-npz"})
    except ModelError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ModelError(f"{path}: malformed jacprop schema ({type(e).__name__}: {e})") from None
    for attr in ("input_names", "output_names"):
        names = spec.get(attr)
        if names is not None:
            if len(names) != (model.D if attr == "input_names" else model.K):
                raise ModelError(f"{path}: {attr} has {len(names)} entries for a model of D={model.D}, K={model.K}")
            setattr(model, attr, [str(n) for n in names])
    if spec.get("input_names") is not None:  # older files do not say where their names came from
        model.source["input_names_from"] = str(spec.get("input_names_from") or "the NPZ file")
    return model


def save(model: Model, file) -> None:
    """Write ``model`` in schema (a) to a path or binary file.  Loading it gives the same function."""
    nodes, arrays = [], {}
    for i, node in enumerate(model.nodes[1:], start=1):
        nodes.append({
            "name": node.name, "kind": node.kind, "op": type(node.op).__name__,
            "inputs": list(node.inputs), "config": ops.op_config(node.op),
        })
        for field, value in node.op.arrays().items():
            arrays[f"{i}/{field}"] = value
    spec = {"format": "jacprop", "version": 1, "D": model.D, "input_names": model.input_names,
            "output_names": model.output_names, "input_names_from": input_names_from(model), "nodes": nodes}
    arrays[SCHEMA_KEY] = np.array(json.dumps(spec))
    np.savez(file, **arrays)


def _natural_key(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _weight_list(path, arrays) -> list[tuple[str, np.ndarray, np.ndarray | None, bool]]:
    """[(layer name, W, b, W is (out, in)), ...] in layer order."""
    torch = {k[: -len(".weight")]: k for k in arrays if k.endswith(".weight")}
    known = {"activations", "input_names", "output_names"} | (
        {k for k in arrays if k.endswith((".weight", ".bias"))} if torch
        else {k for k in arrays if _LAYER_NAME.match(k)})
    extra = sorted(set(arrays) - known)
    if extra and (torch or any(_LAYER_NAME.match(k) for k in arrays)):
        raise ModelError(f"{path}: unexpected array(s) {extra[:5]}: a weight list holds only weights, biases and "
                         "'activations' (other layers need jacprop's schema: see `jacprop convert`)")
    layers = []
    if torch:
        for prefix in sorted(torch, key=_natural_key):
            layers.append((prefix, arrays[torch[prefix]], arrays.get(prefix + ".bias"), True))
        return layers
    ws, bs = {}, {}
    for key in arrays:
        m = _LAYER_NAME.match(key)
        if m and m["wi"] is not None:
            ws[int(m["wi"])] = key
        elif m:
            bs[int(m["bi"])] = key
    if not ws:
        raise ModelError(
            f"{path}: no weights found: expected the jacprop schema, W0/b0/W1/b1... or PyTorch "
            f"'<name>.weight' arrays; found {sorted(arrays)[:8]}"
        )
    if sorted(ws) != list(range(min(ws), min(ws) + len(ws))):
        raise ModelError(f"{path}: weight indices {sorted(ws)} have gaps")
    for i in sorted(ws):
        layers.append((ws[i], arrays[ws[i]], arrays[bs[i]] if i in bs else None, None))
    return layers


def _orient(path, layers):
    """Kernels as (in, out): PyTorch weights are (out, in); W<i> is (in, out) unless its
    bias length or the chain of shapes says it is (out, in)."""
    out, prev = [], None
    for name, w, b, transposed in layers:
        if w.ndim != 2 or w.dtype.kind not in "fiu":
            raise ModelError(f"{path}: {name}: expected a 2-D numeric weight matrix, got {w.dtype} {w.shape}")
        if transposed is None:
            fits_io = (b is None or b.shape == (w.shape[1],)) and (prev is None or w.shape[0] == prev)
            fits_oi = (b is None or b.shape == (w.shape[0],)) and (prev is None or w.shape[1] == prev)
            if not (fits_io or fits_oi):
                raise ModelError(f"{path}: {name} of shape {w.shape} does not follow the previous layer "
                                 f"({prev} outputs)")
            transposed = not fits_io
        kernel = (w.T if transposed else w).astype(np.float64)
        if b is not None and b.shape != (kernel.shape[1],):
            raise ModelError(f"{path}: {name}: bias expected shape ({kernel.shape[1]},), got {b.shape}")
        if prev is not None and kernel.shape[0] != prev:
            raise ModelError(f"{path}: {name}: expects {kernel.shape[0]} inputs but the previous layer has "
                             f"{prev} outputs")
        prev = kernel.shape[1]
        out.append((name, kernel, None if b is None else b.astype(np.float64)))
    return out


def _load_weight_list(path, arrays, activation, output_activation) -> Model:
    layers = _orient(path, _weight_list(path, arrays))
    if "activations" in arrays:
        acts = [str(a) for a in np.atleast_1d(arrays["activations"])]
        if len(acts) != len(layers):
            raise ModelError(f"{path}: 'activations' names {len(acts)} activations for {len(layers)} layers")
    elif activation is None and len(layers) > 1:
        raise ModelError(
            f"{path}: the file does not say which activations the hidden layers use; "
            "add an 'activations' array to it or give --activation (e.g. --activation relu)"
        )
    else:
        acts = [activation] * (len(layers) - 1) + [output_activation]
    b = GraphBuilder([("x", (layers[0][1].shape[0],))])
    node = b.inputs[0]
    for n, ((name, kernel, bias), act) in enumerate(zip(layers, acts), start=1):
        name = "y" if n == len(layers) else name if name.endswith(".weight") else f"hidden_{n}"
        name = name.removesuffix(".weight")
        try:
            op = ops.Dense(kernel=kernel, bias=bias, activation=_activation(act))
        except ValueError as e:
            raise ModelError(f"{path}: layer {name!r}: {e}") from None
        node = b.add(name, op, [node], "Dense")
    model = b.finish([node], source={"format": "npz-weights"})
    _names_from_arrays(path, arrays, model)
    return model


def _activation(text: str) -> Activation:
    """A weight list's activation: NAME or NAME:VALUE (the parameter of elu or leaky_relu)."""
    name, colon, value = text.partition(":")
    if colon:
        if name not in NAMED_PARAMETER:
            raise ValueError(f"activation {text!r}: only {' and '.join(NAMED_PARAMETER)} take a parameter")
        try:
            alpha = float(value)
        except ValueError:
            raise ValueError(f"activation {text!r}: {value!r} is not a number") from None
        if not np.isfinite(alpha):
            raise ValueError(f"activation {text!r}: the parameter must be finite")
        return Activation(name, alpha=alpha)
    if name == "relu_max":  # jacprop's name for clip(a, 0, cap): with no cap given it would be 0 everywhere
        raise ValueError("activation 'relu_max' cannot be given in a weight list (its cap would be 0); "
                         "relu6 is clip(a, 0, 6)")
    if name in NAMED_PARAMETER and NAMED_PARAMETER[name] is None:
        raise ValueError(f"activation {name!r} needs its slope, which the frameworks choose differently "
                         "(PyTorch 0.01, tf.nn and keras.activations 0.2, Keras' LeakyReLU layer 0.3): "
                         f"write {name}:0.01, say")
    return Activation(name, alpha=NAMED_PARAMETER.get(name, 0.0))


def _names_from_arrays(path, arrays, model: Model) -> None:
    """A weight list's optional ``input_names`` (D,) and ``output_names`` (K,) string arrays."""
    for attr, size in (("input_names", model.D), ("output_names", model.K)):
        if attr in arrays:
            names = [str(n) for n in np.atleast_1d(arrays[attr])]
            if len(names) != size or len(set(names)) != size or arrays[attr].dtype.kind not in "US":
                raise ModelError(f"{path}: {attr} must be {size} distinct strings, got {arrays[attr].dtype} "
                                 f"{arrays[attr].shape}")
            setattr(model, attr, names)
    if "input_names" in arrays:
        model.source["input_names_from"] = "the NPZ file"
