"""Keras model configs -> Model: the config walk the three Keras containers share.

A container module (``keras_h5`` for legacy HDF5 files of Keras 2 and 3, ``keras_zip``
for Keras 3 ``.keras`` archives) finds the model config (the JSON Keras wrote) and a
weight store, then calls ``build``.  Here the config becomes a graph:

- every layer class, nested models included, is screened *before* any layer config is
  read, so Lambda layers (marshalled Python code), custom classes (also inside Bidirectional and
  TimeDistributed), unsupported built-in layers and integer-input layers are refused by class name alone;
- Sequential models are chains; Functional models are walked node by node
  (``inbound_nodes``), which handles skip connections, merges, several inputs and outputs,
  a layer called twice (its ops are built once and shared) and models nested as layers;
- each supported layer class has a small builder in ``keras_layers.BUILDERS`` that reads its
  config and weights (shapes checked against the config) and adds ops to a ``GraphBuilder``.

Keras axes count the batch axis; ops take negative per-row axes (``_axis``).  Where the
two Keras versions differ, builders look at ``Call.keras3`` (hard_sigmoid) or accept both
spellings (LeakyReLU ``alpha``/``negative_slope``, InputLayer ``batch_input_shape``/``batch_shape``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..errors import ModelError, one_line
from ..graph import GraphBuilder, Model
from . import keras_layers, keras_more, keras_norm, keras_recurrent
from .keras_layers import Call

BUILDERS = {**keras_layers.BUILDERS, **keras_norm.BUILDERS, **keras_more.BUILDERS, **keras_recurrent.BUILDERS}
MODEL_CLASSES = ("Sequential", "Functional", "Model")
WRAPPERS = {"Bidirectional": ("layer", "backward_layer"), "TimeDistributed": ("layer",)}
INTEGER_INPUT = {"Embedding", "CategoryEncoding", "StringLookup", "IntegerLookup", "Hashing", "TextVectorization"}
# Built-in Keras 2/3 layer classes jacprop does not read, with the reason where there is one.
NOT_SUPPORTED = {
    **dict.fromkeys(("RNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D", "LSTMCell", "GRUCell", "SimpleRNNCell",
                     "StackedRNNCells"), "this recurrent layer is not supported (SimpleRNN, LSTM, GRU and "
                                         "Bidirectional are)"),
    **dict.fromkeys(("RandomCrop", "RandomHeight", "RandomWidth"), "this augmentation layer changes the shape"),
    **dict.fromkeys(("Conv3D", "Conv3DTranspose", "MaxPooling3D", "AveragePooling3D", "GlobalAveragePooling3D",
                     "GlobalMaxPooling3D", "ZeroPadding3D", "Cropping3D", "UpSampling3D", "LocallyConnected1D",
                     "LocallyConnected2D", "Attention", "AdditiveAttention", "MultiHeadAttention",
                     "GroupQueryAttention", "Dot", "GroupNormalization", "UnitNormalization",
                     "SpectralNormalization", "Resizing", "CenterCrop", "Discretization", "EinsumDense",
                     "Wrapper", "TFSMLayer", "TorchModuleWrapper", "JaxLayer", "FlaxLayer", "ThresholdedReLU",
                     "InputSpec", "AutoContrast", "Solarization", "Equalization",
                     "MelSpectrogram", "STFTSpectrogram", "ReversibleEmbedding", "MaxNumBoundingBoxes"), ""),
}
@dataclass
class Layer:
    """One layer entry of a config and where its weights live.

    ``names``: the enclosing model layers' names and its own (legacy HDF5 lookup);
    ``store_path``: its group in a Keras 3 weights file, e.g. ``layers/sequential/layers/dense_1``.
    """

    cls: str
    name: str
    config: dict
    entry: dict
    names: tuple
    store_path: str
    check_tag: bool = True  # a .keras group's @name must be the layer's (not for a wrapper's sub-layer)

    @property
    def where(self) -> str:
        """How errors name it: layer 'dense_1' (Dense)."""
        return f"layer '{self.name}' ({self.cls})"


class WeightStore(Protocol):
    def arrays(self, layer: Layer) -> list[tuple[str, np.ndarray]]:
        """The layer's stored weights in Keras' order, as (name, float64 or integer array)."""


def to_snake_case(name: str) -> str:
    """Keras 3's naming.to_snake_case: group names in .keras weight files."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


# ---------------------------------------------------------------------------
# Building


class Loader:
    """Builds one Model from a config; ``fail`` makes the one-line errors."""

    builders = BUILDERS  # the layer builders by class name (also for the layers nested in wrappers)

    def __init__(self, path, store: WeightStore, keras3: bool):
        self.path, self.store, self.keras3 = str(path), store, keras3
        self.shared: dict[str, list] = {}  # store_path -> ops of the layer's first call

    def fail(self, layer: Layer | None, message: str) -> ModelError:
        where = f"{layer.where}: " if layer is not None else ""
        return ModelError(f"{self.path}: {where}{message}")

    # ---- screening: refuse by class name before reading anything else

    def screen(self, entries, scope=""):
        for entry in entries:
            cls = entry.get("class_name") if isinstance(entry, dict) else None
            config = entry.get("config") if isinstance(entry, dict) else None
            name = config.get("name", "?") if isinstance(config, dict) else "?"
            if not isinstance(cls, str):
                raise self.fail(None, f"malformed layer entry in {scope or 'the model'} (no class_name)")
            reg = entry.get("registered_name")
            module = entry.get("module")
            custom = (reg not in (None, cls) or (isinstance(module, str) and not module.startswith("keras")))
            shown = reg if isinstance(reg, str) and reg != cls else cls
            layer = Layer(shown, str(name), {}, entry, (), "")
            if cls == "Lambda":
                raise self.fail(layer, "refused: Lambda layers hold Python code, and jacprop never runs code from "
                                       "a model file")
            known = cls in BUILDERS or cls in MODEL_CLASSES or cls == "InputLayer" or cls in INTEGER_INPUT
            if custom or not (known or cls in NOT_SUPPORTED):
                raise self.fail(layer, "not a built-in Keras layer class; custom layers cannot be loaded")
            if not known:
                raise self.fail(layer, NOT_SUPPORTED[cls] or "this built-in Keras layer is not supported by jacprop")
            if cls in INTEGER_INPUT:
                raise self.fail(layer, "takes integer indices, so it has no Jacobian")
            if cls in MODEL_CLASSES:
                self.screen(_layers_of(config, self, layer), name)
            for key in WRAPPERS.get(cls, ()):
                inner = config.get(key) if isinstance(config, dict) else None
                if inner is not None:
                    self.screen([inner], name)

    # ---- models

    def build(self, config: dict, source: dict) -> Model:
        cls = config.get("class_name")
        if cls not in MODEL_CLASSES:
            raise self.fail(None, f"the model config describes a {cls!r}, not a Sequential or Functional model")
        top = Layer(cls, str(config["config"].get("name", "model")), config["config"], config, (), "")
        self.screen(_layers_of(config["config"], self, top))
        inputs = self.model_inputs(top)
        b = GraphBuilder(inputs)
        outputs = self.call_model(b, top, list(b.inputs))
        return b.finish(outputs, source)

    def model_inputs(self, model: Layer) -> list[tuple[str, tuple]]:
        """[(name, per-row shape)] in ``input_layers`` order (Sequential: one), from the InputLayer's
        batch_input_shape (Keras 2) or batch_shape (Keras 3), else input_shape, else the first
        layer's batch_input_shape, else the Sequential's build_input_shape.  A Sequential config without an
        InputLayer entry (Keras <= 2.2; tf_keras reads one too) names its input "<first layer>_input", as
        Keras 2 does."""
        layers = _layers_of(model.config, self, model)
        if model.cls == "Sequential":
            first = layers[0] if layers else {}
            cfg = first.get("config", {})
            name = str(cfg.get("name", "x"))
            if first.get("class_name") != "InputLayer":  # the input Keras 2 makes for it (measured with tf_keras)
                name = f"{name}_input"
            for key in ("batch_input_shape", "batch_shape"):
                if cfg.get(key) is not None:
                    return [(name, self.shape(cfg[key][1:], model))]
            if cfg.get("input_shape") is not None:
                return [(name, self.shape(cfg["input_shape"], model))]
            if model.config.get("build_input_shape") is not None:
                return [("x", self.shape(model.config["build_input_shape"][1:], model))]
            raise self.fail(model, "the model does not record its input shape")
        by_name = {e.get("config", {}).get("name", e.get("name")): e for e in layers}
        out = []
        for ref in _refs(model.config.get("input_layers")):
            entry = by_name.get(ref[0])
            if entry is None or entry.get("class_name") != "InputLayer":
                raise self.fail(model, f"input layer {ref[0]!r} is not in the model")
            cfg = entry["config"]
            shape = cfg.get("batch_input_shape", cfg.get("batch_shape"))
            if shape is not None:
                shape = shape[1:]
            else:
                shape = cfg.get("input_shape", cfg.get("shape"))
            if shape is None:
                raise self.fail(model, f"input layer {ref[0]!r} has no shape")
            out.append((str(ref[0]), self.shape(shape, model)))
        return out

    def shape(self, dims, layer: Layer) -> tuple:
        if not isinstance(dims, (list, tuple)) or any(not isinstance(d, int) or d < 1 for d in dims):
            raise self.fail(layer, f"input shape {list(dims) if isinstance(dims, (list, tuple)) else dims} "
                                   "has unknown or invalid dimensions; jacprop needs fixed shapes")
        return tuple(dims)

    def call_model(self, b: GraphBuilder, model: Layer, inputs: list[int]) -> list[int]:
        """Add the model's layers applied to ``inputs`` (node indices); returns its output nodes.

        Each layer's Keras 3 weights group counts the snake-cased class names in config order
        (dense, dense_1, ...), InputLayers included for Functional models but not Sequential ones."""
        entries = _layers_of(model.config, self, model)
        sequential = model.cls == "Sequential"
        counts: dict[str, int] = {}
        prefix = f"{model.store_path}/" if model.store_path else ""
        layers = []
        for entry in entries:
            cls, cfg = entry["class_name"], entry.get("config") or {}
            name = str(cfg.get("name", entry.get("name", "?")))
            group = None
            if not (sequential and cls == "InputLayer"):  # Keras 3 lists a Sequential's layers without it
                snake = to_snake_case(cls)
                counts[snake] = counts.get(snake, -1) + 1
                group = f"{prefix}layers/{snake}" + (f"_{counts[snake]}" if counts[snake] else "")
            layers.append(Layer(cls, name, cfg, entry, (*model.names, name), group or ""))
        if sequential:
            if len(inputs) != 1:
                raise self.fail(model, f"a Sequential model takes one input, got {len(inputs)}")
            node = inputs[0]
            for layer in layers:
                if layer.cls != "InputLayer":
                    (node,) = self.call_layer(b, layer, [node])
            return [node]
        return self.walk_functional(b, model, layers, inputs)

    def walk_functional(self, b, model: Layer, layers: list[Layer], inputs: list[int]) -> list[int]:
        refs_in = _refs(model.config.get("input_layers"))
        if len(refs_in) != len(inputs):
            raise self.fail(model, f"takes {len(refs_in)} inputs, got {len(inputs)}")
        done: dict[tuple, list[int]] = {(r[0], r[1]): [i] for r, i in zip(refs_in, inputs)}
        pending = []
        for layer in layers:
            if layer.cls == "InputLayer":
                continue
            # Keras 2 numbers a nested model's nodes from 1: node 0 is its own Input -> output node.
            skip = not self.keras3 and layer.cls in MODEL_CLASSES and _has_own_input(layer)
            for k, node in enumerate(layer.entry.get("inbound_nodes") or []):
                pending.append((layer, k + skip, self.inbound(layer, node)))
        while pending:
            ready = [p for p in pending if all((r[0], r[1]) in done for r in p[2])]
            if not ready:
                layer, _, refs = pending[0]
                missing = [r[0] for r in refs if (r[0], r[1]) not in done]
                raise self.fail(layer, f"its inputs {missing} are never computed")
            for p in ready:
                layer, k, refs = p
                xs = [self.pick(layer, done[(r[0], r[1])], r) for r in refs]
                done[(layer.name, k)] = self.call_layer(b, layer, xs)
                pending.remove(p)
        outputs = []
        for r in _refs(model.config.get("output_layers")):
            if (r[0], r[1]) not in done:
                raise self.fail(model, f"output {list(r)} is never computed")
            outputs.append(self.pick(model, done[(r[0], r[1])], r))
        return outputs

    def pick(self, layer, produced: list[int], ref) -> int:
        t = ref[2] if len(ref) > 2 else 0
        if not 0 <= t < len(produced):
            raise self.fail(layer, f"refers to output {t} of {ref[0]!r}, which has {len(produced)}")
        return produced[t]

    def inbound(self, layer: Layer, node) -> list[tuple]:
        """One inbound node as [(layer_name, node_index, tensor_index)].

        Keras 2: a list of [name, node, tensor, kwargs]; Keras 3: {"args": [...], "kwargs": {...}}
        with ``__keras_tensor__`` objects (keras_history [name, node, tensor]) anywhere in args.
        """
        if isinstance(node, dict):
            found = []

            def collect(v):
                if isinstance(v, dict) and v.get("class_name") == "__keras_tensor__":
                    found.append(tuple(v["config"]["keras_history"]))
                elif isinstance(v, (list, tuple)):
                    for item in v:
                        collect(item)

            collect(node.get("args", []))
            return found
        if isinstance(node, list):
            return [tuple(r[:3]) for r in node]
        raise self.fail(layer, "malformed inbound_nodes")

    def call_layer(self, b: GraphBuilder, layer: Layer, inputs: list[int]) -> list[int]:
        if layer.cls in MODEL_CLASSES:
            return self.call_model(b, layer, inputs)
        key = layer.store_path or "/".join(layer.names)
        call = Call(self, b, layer, inputs, self.shared.setdefault(key, []))
        return [BUILDERS[layer.cls](call)]


def _layers_of(config, loader: Loader, model: Layer) -> list[dict]:
    layers = config.get("layers") if isinstance(config, dict) else None
    if not isinstance(layers, list):
        raise loader.fail(model, "malformed model config (no layer list)")
    return layers


def _refs(value) -> list[list]:
    """input_layers/output_layers: Keras 3 writes a single tensor flat, ["x", 0, 0]."""
    if not value:
        return []
    if isinstance(value[0], str):
        return [value]
    return list(value)


def _has_own_input(layer: Layer) -> bool:
    if layer.cls != "Sequential":
        return True
    layers = layer.config.get("layers") or []
    return bool(layers) and layers[0].get("class_name") == "InputLayer"


# ---------------------------------------------------------------------------
# Entry point for the containers


def list_form(config):
    """Keras <= 2.2 wrote a Sequential model's config as the bare list of its layers (no InputLayer; the
    first layer carries batch_input_shape): made the dict form later versions write, nested models too."""
    if isinstance(config, dict):
        inner = config.get("config")
        if config.get("class_name") == "Sequential" and isinstance(inner, list):
            config = {**config, "config": {"name": str(config.get("name", "sequential")), "layers": inner}}
        inner = config.get("config")
        if isinstance(inner, dict) and isinstance(inner.get("layers"), list):
            config = {**config, "config": {**inner, "layers": [list_form(e) for e in inner["layers"]]}}
    return config


def build(model_config: dict, store: WeightStore, path, fmt: str, keras_version: str) -> Model:
    """The Model of a Keras config; ``fmt`` is keras2-h5, keras3-keras or keras3-h5."""
    model_config = list_form(model_config)
    if not isinstance(model_config, dict) or not isinstance(model_config.get("config"), dict):
        raise ModelError(f"{path}: malformed Keras model config (expected an object with class_name and config)")
    keras3 = version_major(keras_version, model_config) == 3
    source = {"path": str(path), "format": fmt, "keras_version": keras_version}
    try:
        return Loader(path, store, keras3).build(model_config, source)
    except CONFIG_ERRORS as e:
        raise ModelError(f"{path}: malformed Keras model config ({type(e).__name__}: {one_line(e)})") from None


# A config of the wrong JSON types (a list where an object belongs, a string for a shape) makes
# the walk raise these; builders raise ModelError themselves for what they check.
CONFIG_ERRORS = (TypeError, AttributeError, IndexError, KeyError, ValueError)


def version_major(version: str, config: dict) -> int:
    """2 or 3, from the file's keras_version, else from the config's shape (Keras 3 layers
    carry ``module`` or dict-shaped inbound nodes)."""
    m = re.match(r"\s*(\d+)", version or "")
    if m:
        return 3 if int(m.group(1)) >= 3 else 2
    text_markers = ("batch_shape", "__keras_tensor__", "DTypePolicy")
    return 3 if any(t in repr(config) for t in text_markers) else 2

