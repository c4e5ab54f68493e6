"""Where the workers' part files go and how they become the output.

Workers write parts into a fresh staging directory (beside the output, so moves are renames).
With ``-o DIR/`` the parts move into DIR beside ``manifest.json`` (written last); otherwise they
are joined in input order into one file (atomically) or onto stdout, with the bytes the local
writers write: csv/jsonl parts byte for byte (one CSV header); for npy and npz the parts are npz
files, re-streamed through the local writer.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass

import numpy as np

from ..errors import UsageError
from ..io import writers

EXTENSIONS = {"csv": ".csv", "jsonl": ".jsonl", "npy": ".npy", "npz": ".npz"}
SLAB_ROWS = 65536  # rows per read when re-streaming NPZ parts


@dataclass(frozen=True)
class OutputPlan:
    """``dir`` (part files + manifest.json), ``file`` or ``stdout`` (the parts joined)."""

    kind: str
    path: str | None
    fmt: str

    @property
    def part_fmt(self) -> str:
        """The parts' format: the output's, but npz for one npy file (re-streamed with its rows)."""
        return "npz" if self.kind != "dir" and self.fmt == "npy" else self.fmt


def plan_output(output, fmt, allowed) -> OutputPlan:
    """-o DIR/ (a trailing slash or an existing directory), -o FILE, or stdout; the format."""
    if output and output != "-" and (output.endswith(("/", os.sep)) or os.path.isdir(output)):
        plan = OutputPlan("dir", output, fmt or "csv")
    elif output and output != "-":
        plan = OutputPlan("file", output, writers.format_for(output, fmt))
        directory = os.path.dirname(os.path.abspath(output))
        if not os.path.isdir(directory):
            raise UsageError(f"-o {output}: directory {directory} does not exist")
    else:
        plan = OutputPlan("stdout", None, fmt or "csv")
    if plan.fmt not in allowed:
        raise UsageError(f"--format {plan.fmt} is not available with --engine dask; choose one of {', '.join(allowed)}")
    return plan


def make_staging(plan: OutputPlan, remote: bool) -> str:
    """A fresh directory for the parts: in DIR, beside FILE, or (stdout) in the temporary
    directory a local cluster shares, or the working directory a remote one may share."""
    if plan.kind == "dir":
        try:
            os.makedirs(plan.path, exist_ok=True)
        except OSError as e:
            raise UsageError(f"-o {plan.path}: cannot create the directory: {e.strerror or e}") from None
        where = plan.path
    else:
        where = os.path.dirname(os.path.abspath(plan.path)) if plan.kind == "file" else os.getcwd() if remote else None
    try:
        return os.path.abspath(tempfile.mkdtemp(prefix=".jacprop-parts-", dir=where))
    except OSError as e:
        raise UsageError(f"-o {plan.path or '-'}: cannot write there: {e.strerror or e}") from None


def part_names(n_parts: int, fmt: str) -> list[str]:
    width = max(5, len(str(n_parts - 1)))
    return [f"part-{i:0{width}d}{EXTENSIONS[fmt]}" for i in range(n_parts)]


def _npy_slabs(f):
    """Slabs (rows, *tail) of an .npy stream, SLAB_ROWS rows at a time."""
    read = np.lib.format.read_array_header_1_0 if np.lib.format.read_magic(f) == (1, 0) else \
        np.lib.format.read_array_header_2_0
    shape, _, dtype = read(f)
    row_bytes = math.prod(shape[1:]) * dtype.itemsize
    for start in range(0, shape[0], SLAB_ROWS):
        k = min(SLAB_ROWS, shape[0] - start)
        data = f.read(k * row_bytes)
        if len(data) != k * row_bytes:
            raise OSError(f"{getattr(f, 'name', 'a part file')}: truncated")
        yield np.frombuffer(data, dtype).reshape(k, *shape[1:])


def _npz_slabs(path, names, with_ids):
    """(rows, ids, arrays) slabs of an NPZ part."""
    with zipfile.ZipFile(path) as z:
        ids = np.load(z.open("ids.npy"), allow_pickle=False) if with_ids else None
        start = 0
        for slabs in zip(*[_npy_slabs(z.open(name + ".npy")) for name in names]):
            n = len(slabs[0])
            arrays = dict(zip(names, slabs))
            yield arrays["rows"], None if ids is None else ids[start : start + n], arrays
            start += n


def join(plan: OutputPlan, fields, meta, dtype, paths) -> None:
    """The parts at ``paths``, in order, as one file or onto stdout (see the module docstring)."""
    with writers.atomic_output(plan.path) as out:
        if plan.fmt in ("csv", "jsonl"):
            header = writers.csv_header(fields, meta) if plan.fmt == "csv" else b""
            out.file.write(header)
            for path in paths:
                with open(path, "rb") as f:
                    if f.read(len(header)) != header:  # every CSV part starts with the header
                        raise OSError(f"{path}: unexpected CSV header")
                    shutil.copyfileobj(f, out.file, 2**20)
            return
        writer = writers.WRITERS[plan.fmt](out, fields, meta, dtype=np.dtype(dtype))
        for path in paths:
            for slab in _npz_slabs(path, [f.name for f in fields] + ["rows"], bool(meta.get("id_name"))):
                writer.write(*slab)
        writer.finish()


def write_directory(plan: OutputPlan, staging: str, names: list[str], manifest: dict) -> None:
    """Move the parts into DIR and write manifest.json (atomically, last); drop the parts an
    earlier run's manifest listed that this run does not."""
    old = set()
    with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):
        with open(os.path.join(plan.path, "manifest.json")) as f:
            old = {p["part"] for p in json.load(f).get("parts", []) if isinstance(p, dict) and "part" in p}
    staged = os.path.join(staging, "manifest.json")  # written first: a full disk fails before any part moves
    with writers.atomic_output(staged) as out:
        out.file.write((json.dumps(manifest, indent=2) + "\n").encode())
    for name in [*names, "manifest.json"]:  # renames: no space needed; the manifest last
        target = os.path.join(plan.path, name)
        mode = writers.existing_mode(target)  # a replaced part keeps its mode, as a replaced -o file does
        if mode is not None:
            os.chmod(os.path.join(staging, name), mode)
        os.replace(os.path.join(staging, name), target)
    for name in old - set(names):
        if isinstance(name, str) and os.path.basename(name) == name and name.startswith("part-"):
            with contextlib.suppress(OSError):
                os.remove(os.path.join(plan.path, name))


def manifest(command, models, inputs, plan: OutputPlan, meta) -> dict:
    """manifest.json of ``-o DIR/`` (the runner adds the rows and each part's input rows)."""
    from .. import __version__

    return {"jacprop": __version__, "command": command, "format": plan.fmt, "models": list(models),
            "inputs": list(inputs), "input_names": list(meta["input_names"]),
            "output_names": list(meta["output_names"]), "id_column": meta.get("id_name")}
