"""Keras legacy HDF5 files: Keras 2 (tf_keras) ``model.save("m.h5")`` and the same layout
written by Keras 3.  The root attribute ``model_config`` holds the model's JSON config;
``/model_weights/<layer>`` holds each layer's weights, listed in order by its
``weight_names`` attribute (a nested model's group lists the weights of all its layers,
each name ending ``<inner layer>/<weight>``).  Optimizer state and training config are ignored.  The file is
opened with ``hdf5.open_hdf5``'s safety rules.
"""

from __future__ import annotations

import json

import h5py
import numpy as np

from ..errors import ModelError, one_line
from ..graph import Model
from . import keras_config as keras
from .hdf5 import READ_ERRORS, attr_list, open_hdf5, read_array, text
from .keras_config import Layer
from .keras_zip import ZipStore


class LegacyStore:
    """Weights of ``/model_weights``: a layer's group by name, its weights in ``weight_names`` order."""

    def __init__(self, group, path):
        self.group, self.path = group, path

    def arrays(self, layer: Layer) -> list[tuple[str, np.ndarray]]:
        g = self.group.get(layer.names[0])
        if not isinstance(g, h5py.Group):
            return []
        names = attr_list(g, "weight_names")
        if len(layer.names) > 1:  # a layer inside a nested model: its names end "<layer>/<weight>"
            names = [n for n in names if n.split("/")[-2:-1] == [layer.names[-1]]]
        out = []
        for n in names:
            if n not in g:
                raise ModelError(f"{self.path}: {layer.where}: missing weight '{n}'")
            out.append((n, read_array(g[n], self.path, layer.where, n)))
        return out


MAX_CONFIG_BYTES = 64 * 2**20


def read_config(config_path) -> dict:
    """The JSON ``model.to_json()`` writes (``--config``), read with a size limit."""
    try:
        with open(config_path, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise ModelError(f"--config {config_path}: cannot read it: {e.strerror or e}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ModelError(f"--config {config_path}: larger than {MAX_CONFIG_BYTES} bytes; not a model config")
    try:
        config = json.loads(raw.decode("utf-8-sig"))
    except (ValueError, RecursionError) as e:
        raise ModelError(f"--config {config_path}: not JSON ({one_line(e)})") from None
    if not isinstance(config, dict) or "class_name" not in config or "config" not in config:
        raise ModelError(f"--config {config_path}: not a Keras model config (the JSON model.to_json() writes, "
                         "an object with class_name and config)")
    return config


def _top_layers(config) -> list[tuple[str, str]]:
    inner = keras.list_form(config).get("config")
    layers = inner.get("layers") if isinstance(inner, dict) else None
    if not isinstance(layers, list):
        return []
    return [(str(e.get("class_name")), str((e.get("config") or {}).get("name", e.get("name"))))
            for e in layers if isinstance(e, dict)]


def check_weight_names(f, config, path, config_path) -> None:
    """A weights-only file against the config given for it: the same layers, by name (legacy layout:
    ``layer_names``) or by the group names Keras 3 derives from the layer classes (``layers/<snake>``)."""
    top = _top_layers(config)
    if "layer_names" in f.attrs:
        stored = [n for n in attr_list(f, "layer_names") if n != "top_level_model_weights"]
        with_weights = [n for n in stored if isinstance(f.get(n), h5py.Group) and attr_list(f[n], "weight_names")]
        names = [n for cls, n in top if cls != "InputLayer"]
        missing = [n for n in with_weights if n not in names]
        if missing:
            shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
            raise ModelError(f"{path}: holds weights of layer '{missing[0]}', which --config {config_path} does not "
                             f"have (its layers: {shown})")
        return
    group = f.get("layers")
    if not isinstance(group, h5py.Group):
        raise ModelError(f"{path}: neither a legacy weights file (layer_names) nor a Keras 3 .weights.h5 (layers/)")
    sequential = keras.list_form(config).get("class_name") == "Sequential"
    counts, expected = {}, []
    for cls, _ in top:
        if sequential and cls == "InputLayer":
            continue
        snake = keras.to_snake_case(cls)
        counts[snake] = counts.get(snake, -1) + 1
        expected.append(snake + (f"_{counts[snake]}" if counts[snake] else ""))
    extra = [g for g in group if g not in expected]
    if extra:
        shown = ", ".join(expected[:8]) + (", ..." if len(expected) > 8 else "")
        raise ModelError(f"{path}: holds weights layers/{extra[0]}, which no layer of --config {config_path} "
                         f"matches (it expects: {shown})")


def load(path, config_path=None) -> Model:
    """A Keras 2 or Keras 3 legacy .h5 model file; or a weights-only file (``save_weights``, legacy or
    Keras 3 ``.weights.h5`` layout) with its architecture from ``config_path`` (``--config``)."""
    f = open_hdf5(path, path)
    try:
        raw = f.attrs.get("model_config")
        if raw is None and config_path is None:
            raise ModelError(f"{path}: HDF5 file without a model_config attribute (weights only?); give its "
                             "architecture with --config model.json (the JSON model.to_json() writes)")
        if raw is not None and config_path is not None:
            raise ModelError(f"{path}: holds its own model config; --config {config_path} is for weights-only files")
        if raw is not None:
            config = json.loads(text(raw))
            version = text(f.attrs.get("keras_version", ""))
            fmt = "keras3-h5" if keras.version_major(version, config) == 3 else "keras2-h5"
            return keras.build(config, LegacyStore(f.get("model_weights", f), path), path, fmt, version)
        config = read_config(config_path)
        version = text(f.attrs.get("keras_version", "")) or str(config.get("keras_version", ""))
        check_weight_names(f, config, path, config_path)
        major = keras.version_major(version, config)
        if "layer_names" in f.attrs:
            store, fmt = LegacyStore(f, path), f"keras{major}-weights-h5"
        else:
            store, fmt = ZipStore(f, path), f"keras{major}-weights"
        model = keras.build(config, store, path, fmt, version)
        model.source["config"] = str(config_path)
        return model
    except READ_ERRORS as e:
        raise ModelError(f"{path}: malformed Keras HDF5 file ({type(e).__name__}: {one_line(e)})") from None
    finally:
        f.close()
