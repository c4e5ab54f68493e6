"""Model files -> Model.  The container is recognised by its first bytes, not its name:
HDF5 (``\\x89HDF``) is a Keras legacy .h5 file; a zip (``PK``) holding ``config.json``
is a Keras 3 .keras archive, one holding ``.npy`` members an NPZ file.  Protobuf has no magic: a file
that starts as an ONNX ModelProto (ir_version, field 1, first) is read as ONNX."""

from __future__ import annotations

import os
import zipfile

import numpy as np

from ..errors import ModelError
from ..graph import Model, chain

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"
ZIP_EMPTY = b"PK\x05\x06"  # an empty zip archive: only its end record


def is_model_file(path) -> bool:
    """Whether a file's content is a model container (HDF5 or a zip archive): the rule that
    tells MODEL arguments from INPUTS where both are files (``--engine dask``)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return False
    return head == HDF5_MAGIC or head.startswith((ZIP_MAGIC, ZIP_EMPTY))


def detect(path) -> str:
    """'keras_h5', 'keras_zip', 'npz' or 'onnx', from the file's content."""
    try:
        with open(path, "rb") as f:
            head = f.read(32)
    except OSError as e:
        raise ModelError(f"{path}: cannot read model file: {e.strerror or e}") from None
    if head[:8] == HDF5_MAGIC:
        return "keras_h5"
    if head.startswith((ZIP_MAGIC, ZIP_EMPTY)):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError, ValueError) as e:
            raise ModelError(f"{path}: not a readable zip file ({e})") from None
        if "config.json" in names:
            return "keras_zip"
        if names and all(n.endswith(".npy") for n in names):
            return "npz"
        raise ModelError(f"{path}: a zip file that is neither a Keras .keras archive (no config.json) nor an NPZ file")
    from .onnx_proto import looks_like_model

    if looks_like_model(head):
        return "onnx"
    raise ModelError(f"{path}: not a model file (expected HDF5 .h5, Keras .keras, NPZ or ONNX content)")


def check_finite(model: Model, path, refuse: bool) -> None:
    """NaN/inf weights make every J entry they touch NaN: refuse, or note it in
    ``model.source["warnings"]`` for the caller to show."""
    for node in model.nodes[1:]:
        for field, a in node.op.arrays().items():
            bad = int(np.count_nonzero(~np.isfinite(a))) if a.dtype.kind == "f" else 0
            if bad:
                message = f"{path}: layer {node.name!r} ({node.kind}): weight {field!r} holds {bad} NaN/inf value(s)"
                if refuse:
                    raise ModelError(message)
                model.source.setdefault("warnings", []).append(message)


def load_one(path, refuse_nonfinite=False, config=None, **options) -> Model:
    """Load one model file.  ``options`` go to the NPZ loader (``activation``, ``output_activation``);
    ``refuse_nonfinite`` turns NaN/inf weights from a warning into an error; ``config``: the JSON
    architecture of a Keras weights-only file."""
    try:
        kind = detect(path)
        if config is not None and kind != "keras_h5":
            raise ModelError(f"--config {config} is for Keras weights-only HDF5 files, and this is not one")
        if config is not None:
            from . import keras_h5

            model = keras_h5.load(path, config)
        else:
            model = _load_by_kind(path, kind, options)
    except ModelError as e:
        if not str(e).startswith(os.fspath(path)):
            raise ModelError(f"{os.fspath(path)}: {e}") from None
        raise
    model.source.setdefault("path", os.fspath(path))
    check_finite(model, path, refuse_nonfinite)
    return model


def _load_by_kind(path, kind, options) -> Model:
    if kind == "npz":
        from . import npz

        return npz.load(path, **options)
    if kind == "onnx":
        from . import onnx

        return onnx.load(path)
    if kind == "keras_h5":
        from . import keras_h5

        return keras_h5.load(path)
    from . import keras_zip

    return keras_zip.load(path)


def weights_only(path) -> bool:
    """An HDF5 file without a model config (Keras ``save_weights``)."""
    if detect(path) != "keras_h5":
        return False
    from .hdf5 import open_hdf5

    f = open_hdf5(path, path)
    try:
        return "model_config" not in f.attrs
    finally:
        f.close()


def load(*paths, configs=(), **options) -> Model:
    """Load one or more model files; several are applied in order (a chain).  ``configs``: the JSON
    architectures (``model.to_json()``) of the weights-only files among them, in the same order."""
    if not paths:
        raise ModelError("no model file given")
    given = [None] * len(paths)
    if configs:
        slots = [i for i, p in enumerate(paths) if weights_only(p)]
        if len(slots) != len(configs):
            raise ModelError(f"--config: {len(configs)} config file(s) given for {len(slots)} weights-only model "
                             "file(s); give one --config per weights-only file, in order")
        for i, c in zip(slots, configs):
            given[i] = c
    models = [load_one(p, config=c, **options) for p, c in zip(paths, given)]
    model = chain(models)
    if len(models) > 1:
        model.source["warnings"] = [w for m in models for w in m.source.get("warnings", [])]
    return model
