"""Reading jacprop's npz results and writing pictures (atomically, without dates: reproducible
bytes); matplotlib is imported here only, on the Agg backend, when a figure is made."""

from __future__ import annotations

import os

import numpy as np

from ..errors import InputError, JacpropError, UsageError

FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}


class PlotUnavailable(JacpropError):
    """matplotlib (the optional extra ``jacprop[plot]``) is not installed."""


def pyplot():
    """matplotlib.pyplot on the Agg backend; PlotUnavailable when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        raise PlotUnavailable("jacprop plot needs matplotlib: pip install 'jacprop[plot]'") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt



def load_result(path) -> dict:
    """The arrays of an npz written by jacprop (jacobian, propagate, hessian), read with
    allow_pickle=False; ``input_names``/``output_names`` as lists of str."""
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {name: z[name] for name in z.files}
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except ValueError as e:  # pickled object arrays, or not an npz at all
        raise InputError(f"{path}: not an npz of plain arrays written by jacprop ({e})") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}") from None
    for key in ("input_names", "output_names"):
        if key in data:
            data[key] = [str(n) for n in data[key]]
    if not data.keys() & {"jacobian", "budget", "dy_plus", "hessian", "y"}:
        raise InputError(f"{path}: holds no results of jacprop (arrays {sorted(data)}); "
                         "is it a model? Then give MODEL... INPUTS")
    return data


HOW_TO_WRITE = {
    "jacobian": "jacprop jacobian MODEL INPUTS -o FILE.npz",
    "x": "jacprop jacobian MODEL INPUTS -o FILE.npz",
    "budget": "jacprop propagate MODEL INPUTS --dx ... --budget -o FILE.npz",
    "dy_linear": "jacprop propagate MODEL INPUTS --dx ... --method linear --check-linearity -o FILE.npz",
    "dy_plus": "jacprop propagate MODEL INPUTS --dx ... --method linear --check-linearity -o FILE.npz",
    "dy_minus": "jacprop propagate MODEL INPUTS --dx ... --method linear --check-linearity -o FILE.npz",
    "hessian": "jacprop hessian MODEL INPUTS -o FILE.npz",
}


def require(data: dict, names, kind: str, path="the result") -> list:
    """data[name] for each name, or an InputError naming the first missing array and how to write it."""
    for name in names:
        if name not in data:
            how = HOW_TO_WRITE.get(name)
            raise InputError(f"{path}: the {kind} plot needs the array {name!r}, which is not there "
                             f"(arrays: {', '.join(sorted(data))})" + (f"; write it with {how}" if how else ""))
    return [data[name] for name in names]


def format_for(path) -> str:
    """png, svg or pdf from the suffix of ``path``; a UsageError otherwise."""
    suffix = os.path.splitext(str(path))[1].lower()
    if suffix not in FORMATS:
        raise UsageError(f"-o {path}: the picture's format comes from the suffix: .png, .svg or .pdf")
    return FORMATS[suffix]


def save(fig, path, dpi=100) -> None:
    """Write ``fig`` to ``path`` (format from the suffix) atomically: a temporary file beside it,
    renamed onto it when complete.  SVG keeps its text as text (svg.fonttype none)."""
    from ..io.writers import atomic_output

    fmt = format_for(path)
    plt = pyplot()
    try:
        with atomic_output(path) as out, plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "jacprop",
                                                         "pdf.fonttype": 42}):
            fig.savefig(out.file, format=fmt, dpi=dpi, metadata=_metadata(fmt))
    finally:
        plt.close(fig)


def _metadata(fmt):
    """No creation date in the files, so that `make docs` rewrites an unchanged picture byte for byte."""
    return {"png": {"Software": None}, "svg": {"Date": None}, "pdf": {"CreationDate": None}}[fmt]
