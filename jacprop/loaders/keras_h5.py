"""Keras legacy HDF5 files: Keras 2 (tf_keras) ``model.save("m.h5")`` and the same layout
written by Keras 3.  The root attribute ``model_config`` holds the model's JSON config;
``/model_weights/<layer>`` holds each layer's weights, listed in order by its
``weight_names`` attribute (a nested model's group lists the weights of all its layers,
each name ending ``<inner layer>/<weight>``).  Optimizer state and training config are ignored.

Also the HDF5 safety rules both Keras containers share (``open_hdf5``): a model file must
not make jacprop read other files (external links, external raw storage, virtual datasets
are refused) nor allocate without bound (a dataset over ``MAX_ELEMENTS`` is refused before
it is read).
"""

from __future__ import annotations

import json

import h5py
import numpy as np

from ..errors import ModelError
from ..graph import Model
from . import keras
from .keras import Layer, one_line

MAX_ELEMENTS = 10**9
MAX_OBJECTS = 1_000_000
MAX_DEPTH = 64
# What a malformed file can raise from h5py, json or the config walk; all become one-line ModelErrors.
READ_ERRORS = (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError, RuntimeError, RecursionError)


def text(value) -> str:
    """An HDF5 attribute as str (h5py 3 gives str, files from older h5py give bytes)."""
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode("utf-8")
    return str(value)


def attr_list(group, name) -> list[str]:
    """A list attribute, joined from ``name0``, ``name1``, ... where Keras split a long one."""
    if name in group.attrs:
        values = list(group.attrs[name])
    else:
        values, i = [], 0
        while f"{name}{i}" in group.attrs:
            values += list(group.attrs[f"{name}{i}"])
            i += 1
    return [text(v) for v in values]


def open_hdf5(source, path) -> h5py.File:
    """Open read-only and check the whole file with ``check_hdf5`` before anything is read."""
    try:
        f = h5py.File(source, "r")
    except READ_ERRORS as e:
        raise ModelError(f"{path}: not a readable HDF5 file ({one_line(e)})") from None
    try:
        check_hdf5(f, path)
    except READ_ERRORS as e:
        f.close()
        raise ModelError(f"{path}: corrupt HDF5 file ({one_line(e)})") from None
    except ModelError:
        f.close()
        raise
    return f


def check_hdf5(f: h5py.File, path) -> None:
    """Walk every link without following soft or external ones: refuse external links,
    external raw storage, virtual datasets and datasets over MAX_ELEMENTS."""
    stack, seen = [(f, 0)], 0
    while stack:
        group, depth = stack.pop()
        for key in group:
            where = f"{group.name.rstrip('/')}/{key}"
            link = group.get(key, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise ModelError(f"{path}: refused: HDF5 external link {where} -> {link.filename}:{link.path} "
                                 "(a model file must not make jacprop read other files)")
            if isinstance(link, h5py.SoftLink):
                continue
            seen += 1
            if seen > MAX_OBJECTS:
                raise ModelError(f"{path}: refused: more than {MAX_OBJECTS} HDF5 objects")
            obj = group[key]
            if isinstance(obj, h5py.Dataset):
                check_dataset(obj, path)
            elif isinstance(obj, h5py.Group):
                if depth >= MAX_DEPTH:
                    raise ModelError(f"{path}: refused: HDF5 groups nested deeper than {MAX_DEPTH} at {where}")
                stack.append((obj, depth + 1))


def check_dataset(ds: h5py.Dataset, path) -> None:
    if ds.is_virtual:
        raise ModelError(f"{path}: refused: {ds.name} is a virtual HDF5 dataset "
                         "(a model file must not make jacprop read other files)")
    if ds.external:
        raise ModelError(f"{path}: refused: {ds.name} is stored in external files "
                         "(a model file must not make jacprop read other files)")
    size = int(np.prod(ds.shape, dtype=np.float64)) if ds.shape else 1
    if size > MAX_ELEMENTS:
        raise ModelError(f"{path}: refused: dataset {ds.name} declares {size} elements (limit {MAX_ELEMENTS})")


def read_array(ds, path, layer: Layer, what: str) -> np.ndarray:
    """A weight dataset as float64 (integers such as Normalization's count stay integers)."""
    if not isinstance(ds, h5py.Dataset):
        raise ModelError(f"{path}: layer '{layer.name}' ({layer.cls}): weight '{what}' is not a dataset")
    check_dataset(ds, path)
    if ds.dtype.kind not in "fiub":
        raise ModelError(f"{path}: layer '{layer.name}' ({layer.cls}): weight '{what}' has dtype {ds.dtype}, not a number")
    arr = np.asarray(ds[()])
    return arr.astype(np.float64) if arr.dtype.kind == "f" else arr


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
                raise ModelError(f"{self.path}: layer '{layer.name}' ({layer.cls}): missing weight '{n}'")
            out.append((n, read_array(g[n], self.path, layer, n)))
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
