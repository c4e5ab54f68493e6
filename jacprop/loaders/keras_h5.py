"""Keras legacy HDF5 files: Keras 2 (tf_keras) ``model.save("m.h5")`` and the same layout
written by Keras 3.  The root attribute ``model_config`` holds the model's JSON config;
``/model_weights/<layer>`` holds each layer's weights, listed in order by its
``weight_names`` attribute (a nested model's group lists the weights of all its layers,
each name ending ``<inner layer>/<weight>``).  Optimizer state and training config are ignored.  The file is opened with ``hdf5.open_hdf5``'s safety rules.
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


def load(path) -> Model:
    """A Keras 2 or Keras 3 legacy .h5 model file."""
    f = open_hdf5(path, path)
    try:
        raw = f.attrs.get("model_config")
        if raw is None:
            raise ModelError(f"{path}: HDF5 file without a model_config attribute (weights only?); "
                             "jacprop needs a whole model saved with model.save()")
        config = json.loads(text(raw))
        version = text(f.attrs.get("keras_version", ""))
        fmt = "keras3-h5" if keras.version_major(version, config) == 3 else "keras2-h5"
        weights = f.get("model_weights", f)
        return keras.build(config, LegacyStore(weights, path), path, fmt, version)
    except READ_ERRORS as e:
        raise ModelError(f"{path}: malformed Keras HDF5 file ({type(e).__name__}: {one_line(e)})") from None
    finally:
        f.close()
