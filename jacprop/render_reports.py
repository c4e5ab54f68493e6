"""The reports beside the row tables: ``jacprop hessian``'s largest interactions, ``check``'s
error tables and ``inspect``'s layer graph (rich, on the consoles of ``render``)."""

from __future__ import annotations

import numpy as np
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from .render import TextBridge, _label, console, number, shade, shorten


def _largest(H, top, diagonal):
    """The ``top`` (a, b, value) of one output's H (D, D), or of its diagonal (D,), by |value|, a <= b."""
    if diagonal:
        a = b = np.arange(len(H))
        v = H
    else:
        a, b = np.triu_indices(len(H))
        v = H[a, b]
    order = np.argsort(-np.abs(v), kind="stable")[:top]
    return [(int(a[i]), int(b[i]), float(v[i])) for i in order]


def _interaction_table(title, H, y, meta, what="d2y/dxi dxj") -> Table:
    """Per output: its largest interactions |H_ij| (i <= j), one line each."""
    names = meta["input_names"]
    table = Table(title=escape(title), title_justify="left", show_edge=False, pad_edge=False)
    for col in ("output", "y", "x_i", "x_j", what):
        table.add_column(col, justify="right" if col in ("y", what) else "left")
    vmax = float(np.abs(H).max(initial=0))
    for k, out in enumerate(meta["output_names"]):
        top = _largest(H[k], meta["top"], meta["diagonal"])
        if vmax == 0 or all(v == 0 for _, _, v in top):
            table.add_row(escape(shorten(out)), "" if y is None else number(y[k]), "", "", Text("H = 0", style="dim"))
            continue
        for r, (a, b, v) in enumerate(top):
            table.add_row(escape(shorten(out)) if r == 0 else "", number(y[k]) if r == 0 and y is not None else "",
                          escape(shorten(names[a])), "u" if meta.get("hvp") else escape(shorten(names[b])),
                          Text(number(v), style=shade(v, vmax)))
    return table


def hessian_rows(console, rows, ids, arrays, meta) -> int:
    """Each row's largest second derivatives d2y_k/dx_i dx_j per output (``jacprop hessian --format table``);
    with --direction u the largest entries (H_k u)_i, "u" in the x_j column."""
    H = arrays[meta["npy_field"]]
    what = "(H u)_i" if meta.get("hvp") else "d2y/dxi^2" if meta["diagonal"] else "d2y/dxi dxj"
    for n in range(len(rows)):
        console.print(_interaction_table(_label(rows[n], None if ids is None else ids[n]), H[n], arrays["y"][n], meta,
                                         what))
    return len(rows)


def close_hessian_table(console, writer, mean_abs, meta):
    """After the first rows: for longer inputs, the largest mean |H| over all rows."""
    if writer.n > writer.shown:
        console.print(f"... {writer.n - writer.shown} more rows not shown; over all {writer.n} rows:")
        what = "mean |(H u)_i|" if meta.get("hvp") else "mean |d2y/dxi^2|" if meta["diagonal"] else \
            "mean |d2y/dxi dxj|"
        console.print(_interaction_table(f"largest mean |H| over {writer.n} rows", mean_abs["sum"] / mean_abs["n"],
                                         None, meta, what))


def inspect_table(info: dict) -> None:
    """``jacprop inspect``: the model's source, its layers, D, K and the parameter count, on stdout."""
    out = console()
    src = info["source"]
    where = src.get("path") or ", ".join(s.get("path", "?") for s in src.get("chain", []))
    fmt = src.get("format") or "chain"
    version = f" (Keras {src['keras_version']})" if src.get("keras_version") else ""
    version = f" ({src['description']})" if src.get("description") else version
    out.print(f"[bold]{escape(where)}[/bold]: {escape(fmt)}{escape(version)}")
    table = Table(show_edge=False, pad_edge=False)
    for col, justify in (("layer", "left"), ("type", "left"), ("activation", "left"), ("inputs", "left"),
                         ("output shape", "right"), ("params", "right")):
        table.add_column(col, justify=justify)
    for layer in info["layers"]:
        table.add_row(escape(layer["name"]), escape(layer["type"]), layer["activation"] or "",
                      escape(", ".join(layer["inputs"])), str(tuple(layer["output_shape"])), f"{layer['params']:,}")
    out.print(table)
    names = escape(", ".join(info["input_names"]))
    out.print(f"D = {info['D']} inputs: {names} (names: {escape(info['input_names_from'])})")
    out.print(f"K = {info['K']} outputs: {escape(', '.join(info['output_names']))}")
    out.print(f"{info['params']:,} parameters")
    for note in src.get("notes", []):
        out.print(f"note: {escape(note)}")


def check_tables(result: dict, file=None) -> None:
    """``jacprop check``: per output, the largest error of J (or H) on the scale of its own max |J| (max |H|),
    on a binary ``file`` (default stdout)."""
    out = console(file=None if file is None else TextBridge(file))
    d, ref = ("H", "H_fd") if result["order"] == 2 else ("J", "J_fd")
    dtype = f", J in {result['dtype']}" if result.get("dtype", "float64") != "float64" else ""
    table = Table(title=f"{d} vs central differences{' of J' if d == 'H' else ''}, {result['rows']} rows, "
                        f"tol {result['tolerance']:g}, floor {result['floor']:g}{dtype}", title_justify="left",
                  show_edge=False, pad_edge=False)
    for col in ("output", f"max|{d}|", f"max |{d} - {ref}| / max|{d}|", "tol", "row",
                "inputs" if d == "H" else "input", ""):
        table.add_column(col)
    for o in result["outputs"]:
        status = ("flat" if result["allow_flat"] else "[bold red]FLAT[/]") if o["flat"] else \
            "ok" if o["ok"] else "[bold red]FAIL[/]"
        table.add_row(escape(o["output"]), f"{o['scale']:.3g}", f"{o['max_scaled_error']:.3g}", f"{o['tolerance']:.2g}",
                      str(o["row"]), escape(o["input"]), status)
    out.print(table)
    if "y" in result:
        t = Table(title=f"y vs --expect-y, tol {result['y_tolerance']:g}", title_justify="left", show_edge=False,
                  pad_edge=False)
        for col in ("output", "max |y - expected| / max(1, |expected|)", ""):
            t.add_column(col)
        for o in result["y"]:
            t.add_row(escape(o["output"]), f"{o['max_scaled_error']:.3g}", "ok" if o["ok"] else "[bold red]FAIL[/]")
        out.print(t)
