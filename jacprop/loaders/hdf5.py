"""HDF5 files read safely, for every loader that opens one.

A model file must not make jacprop read other files (external links, external raw storage
and virtual datasets are refused) nor allocate without bound (a dataset over
``MAX_ELEMENTS``, more than ``MAX_OBJECTS`` objects or groups nested deeper than
``MAX_DEPTH`` are refused before anything is read).  ``open_hdf5`` checks the whole file
first; ``read_array`` checks each dataset again as it reads it.
"""

from __future__ import annotations

import h5py
import numpy as np

from ..errors import ModelError, one_line

MAX_ELEMENTS = 10**9
MAX_OBJECTS = 1_000_000
MAX_DEPTH = 64
# What h5py and json raise on a malformed file (h5py: OSError, KeyError, ValueError, RuntimeError on a
# corrupt symbol table, seen in fuzzing; json: ValueError, RecursionError on deep nesting).  jacprop's
# own TypeError/AttributeError are bugs and are not caught here.
READ_ERRORS = (OSError, ValueError, KeyError, RuntimeError, RecursionError)


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


def read_array(ds, path, where: str, what: str) -> np.ndarray:
    """A weight dataset as float64 (integers such as Normalization's count stay integers);
    ``where`` names its owner in errors (e.g. "layer 'dense' (Dense)")."""
    if not isinstance(ds, h5py.Dataset):
        raise ModelError(f"{path}: {where}: weight '{what}' is not a dataset")
    check_dataset(ds, path)
    if ds.dtype.kind not in "fiub":
        raise ModelError(f"{path}: {where}: weight '{what}' has dtype {ds.dtype}, not a number")
    arr = np.asarray(ds[()])
    return arr.astype(np.float64) if arr.dtype.kind == "f" else arr
