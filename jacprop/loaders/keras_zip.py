"""Keras 3 ``.keras`` archives: a zip holding ``metadata.json`` (keras_version),
``config.json`` (the model config) and ``model.weights.h5``, which is read from the zip in
memory.  In it each layer's variables are the datasets ``vars/0``, ``vars/1``, ... of a
group named after the layer's *class* (``layers/dense_2`` is the config's third Dense;
see ``keras_config.Loader.call_model``), with the layer's real name in the ``name`` attribute of
``vars`` where Keras wrote one; we check it.
"""

from __future__ import annotations

import io
import json
import zipfile

import h5py
import numpy as np

from ..errors import ModelError, one_line
from ..graph import Model
from . import keras_config as keras
from .hdf5 import READ_ERRORS, open_hdf5, read_array, text
from .keras_config import Layer

MAX_MEMBER = 2 * 2**30  # bytes, uncompressed


def read_member(z: zipfile.ZipFile, name: str, path) -> bytes:
    try:
        info = z.getinfo(name)
    except KeyError:
        raise ModelError(f"{path}: the .keras archive has no {name}") from None
    if info.file_size > MAX_MEMBER:
        raise ModelError(f"{path}: refused: {name} is {info.file_size} bytes uncompressed (limit {MAX_MEMBER})")
    if info.flag_bits & 0x1:
        raise ModelError(f"{path}: {name} is encrypted")
    return z.read(name)


class ZipStore:
    """Weights of ``model.weights.h5``: ``<store_path>/vars/<i>``, in numeric order."""

    def __init__(self, f: h5py.File, path):
        self.f, self.path = f, path

    def arrays(self, layer: Layer) -> list[tuple[str, np.ndarray]]:
        if not layer.store_path:
            return []
        g = self.f.get(f"{layer.store_path}/vars")
        if g is None:  # files from Keras 2.13-2.15 used another group name
            g = self.f.get(f"{layer.store_path.replace('layers', '_layer_checkpoint_dependencies')}/vars")
        if not isinstance(g, h5py.Group):
            return []
        tag = g.attrs.get("name")
        if tag is not None and layer.check_tag and text(tag) != layer.name:
            raise ModelError(f"{self.path}: {layer.where}: the weights at {layer.store_path} "
                             f"belong to layer '{text(tag)}'")
        keys = sorted(g.keys(), key=int)
        return [(k, read_array(g[k], self.path, layer.where, k)) for k in keys]


def load(path) -> Model:
    """A Keras 3 .keras model archive."""
    try:
        with zipfile.ZipFile(path) as z:
            config = json.loads(read_member(z, "config.json", path))
            meta = json.loads(read_member(z, "metadata.json", path)) if "metadata.json" in z.namelist() else {}
            weights = read_member(z, "model.weights.h5", path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, *READ_ERRORS) as e:
        raise ModelError(f"{path}: not a readable .keras archive ({type(e).__name__}: {one_line(e)})") from None
    version = str(meta.get("keras_version", "")) if isinstance(meta, dict) else ""
    f = open_hdf5(io.BytesIO(weights), path)
    try:
        # Keras 2.13-2.15 (tf.keras) wrote this format too, with their own version in metadata.json
        fmt = "keras2-keras" if keras.version_major(version, config) == 2 else "keras3-keras"
        return keras.build(config, ZipStore(f, path), path, fmt, version)
    except READ_ERRORS as e:
        raise ModelError(f"{path}: malformed .keras archive ({type(e).__name__}: {one_line(e)})") from None
    finally:
        f.close()
