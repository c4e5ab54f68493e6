"""What the commands do, as plain functions: read rows in chunks, compute, write."""

from __future__ import annotations

import sys

import numpy as np

from .errors import InputError, JacpropError, UsageError


def load_model(paths, logits=False, **load_options):
    from .loaders import load

    model = load(*paths, **{k: v for k, v in load_options.items() if v is not None})
    return model.logits() if logits else model


def open_inputs(model, inputs, columns=None, id_column=None, delimiter=",", header=True, on_invalid="error"):
    """A CsvReader whose selected columns are the model's D inputs."""
    from .csvio import CsvReader

    reader = CsvReader(inputs, delimiter=delimiter, header=header, columns=columns, id_column=id_column, on_invalid=on_invalid)
    if len(reader.columns) != model.D:
        hint = "" if columns else " (choose them with --columns, or name the id column with --id-column)"
        raise UsageError(
            f"{reader.path}: the model takes {model.D} inputs but {len(reader.columns)} columns were selected "
            f"{reader.columns[:6]}{'...' if len(reader.columns) > 6 else ''}{hint}"
        )
    return reader


def run_jacobian(models, inputs, columns, id_column, delimiter, header, on_invalid, dtype, load_options, quiet,
                 output, fmt, mode, outputs, wrt, output_names, logits, max_rows):
    from .cli import _resolve
    from .engine import iter_jacobian
    from .report import WRITERS, AtomicOutput, format_for

    model = load_model(models, logits=logits, **load_options)
    if output_names:
        if len(output_names) != model.K:
            raise UsageError(f"--output-names: {len(output_names)} names for {model.K} outputs")
        model.output_names = list(output_names)
    reader = open_inputs(model, inputs, columns, id_column, delimiter, header, on_invalid)
    input_names = reader.columns
    out_idx = _resolve(outputs, model.output_names, "outputs")
    wrt_idx = _resolve(wrt, input_names, "wrt")
    fmt = format_for(output, fmt, sys.stdout.isatty())
    out = AtomicOutput(output)
    kwargs = {"max_rows": max_rows} if fmt == "table" else {"dtype": dtype} if fmt in ("npy", "npz") else {}
    writer = WRITERS[fmt](
        out,
        [input_names[i] for i in wrt_idx] if wrt_idx else input_names,
        [model.output_names[k] for k in out_idx] if out_idx else model.output_names,
        id_column,
        **kwargs,
    )
    try:
        for chunk in reader.chunks():
            for start, Y, J in iter_jacobian(model, chunk.X, mode, out_idx, wrt_idx, np.dtype(dtype)):
                sl = slice(start, start + len(Y))
                X = chunk.X[sl] if wrt_idx is None else chunk.X[sl][:, wrt_idx]
                writer.write(chunk.rows[sl], None if chunk.ids is None else chunk.ids[sl], X, Y, J)
        if writer.n == 0:
            raise InputError(f"{reader.path}: no data rows" + (f" ({reader.skipped} skipped as invalid)" if reader.skipped else ""))
        writer.close()
    except JacpropError as e:
        out.abort()
        if writer.n and out.path is None:
            e.args = (f"{e.args[0]} ({writer.n} rows were already written to stdout)",)
        raise
    except BaseException:
        out.abort()
        raise
    finally:
        reader.close()
    if reader.skipped and not quiet:
        print(f"jacprop: skipped {reader.skipped} rows with NaN/inf inputs", file=sys.stderr)
