"""Rich tables for people at a terminal.  Only the human format uses rich."""

from __future__ import annotations

import numpy as np
from rich.markup import escape
from rich.table import Table
from rich.text import Text

NAME_WIDTH = 16


def shorten(name: str, width: int = NAME_WIDTH) -> str:
    """Keep the start and the end of a long name: 'temperature_sensor_3' -> 'temperat…ensor_3'."""
    if len(name) <= width:
        return name
    head = width // 2
    return name[:head] + "…" + name[len(name) - (width - 1 - head) :]


def number(v: float, digits: int = 4) -> str:
    """Four significant digits, in plain or exponent form, whichever reads better."""
    return f"{v:.{digits}g}"


def shade(v: float, vmax: float) -> str:
    """A style for v: blue for positive, red for negative, bolder as |v| nears vmax."""
    if vmax == 0 or v == 0 or not np.isfinite(v):
        return "dim"
    strength = abs(v) / vmax
    colour = "blue" if v > 0 else "red"
    return f"bold {colour}" if strength > 0.5 else colour if strength > 0.1 else f"dim {colour}"


def _label(row, ident):
    return f"row {row}" + (f" (id {ident})" if ident is not None else "")


def jacobian_rows(console, rows, ids, arrays, meta) -> int:
    """Each row's K x D Jacobian dy_k/dx_i, with y_k beside each output and x_i above."""
    x, y, J = arrays["x"], arrays["y"], arrays["jacobian"]
    for n in range(len(rows)):
        table = Table(title=escape(_label(rows[n], None if ids is None else ids[n])), title_justify="left",
                      show_edge=False, pad_edge=False)
        table.add_column("dy/dx", style="bold")
        table.add_column("y", justify="right")
        for name in meta["input_names"]:
            table.add_column(escape(shorten(name)), justify="right")
        vmax = float(np.abs(J[n]).max(initial=0))
        table.add_row(Text("x", style="dim"), "", *[Text(number(v), style="dim") for v in x[n]])
        for k, name in enumerate(meta["output_names"]):
            table.add_row(escape(shorten(name)), number(y[n, k]), *[Text(number(v), style=shade(v, vmax)) for v in J[n, k]])
        console.print(table)
    return len(rows)


def summary_table(console, stats: dict, input_names, output_names, n_rows: int, top: int = 10) -> None:
    """Per output, the inputs ranked by mean |J| with their statistics over rows (RMS is in the data formats)."""
    for k, out in enumerate(output_names):
        table = Table(title=f"{escape(shorten(out, 40))}: inputs ranked by mean |dy/dx| over {n_rows} rows",
                      title_justify="left", show_edge=False, pad_edge=False)
        for col in ("#", "input", "mean|J|", "mean", "std", "min", "max", "row max|J|"):
            table.add_column(col, justify="left" if col == "input" else "right", no_wrap=True)
        vmax = float(stats["mean_abs"][k].max(initial=0))
        for r, i in enumerate(stats["rank"][k][:top], start=1):
            table.add_row(str(r), escape(shorten(input_names[i], 24)),
                          Text(number(stats["mean_abs"][k, i]), style=shade(stats["mean_abs"][k, i], vmax)),
                          *[number(stats[s][k, i]) for s in ("mean", "std", "min", "max")],
                          str(stats["row_of_max_abs"][k, i]))
        if len(input_names) > top:
            table.caption = f"{len(input_names) - top} more inputs not shown"
        console.print(table)


def propagate_rows(console, rows, ids, arrays, meta) -> int:
    """One line per (row, output): y, each method's estimate, and the dominant input."""
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("row", justify="right")
    table.add_column("output")
    table.add_column("y", justify="right")
    shown = [name for name, _ in meta["columns"] if name in arrays]
    for name in shown:
        table.add_column(dict(meta["columns"])[name], justify="right")
    if "budget" in arrays:
        table.add_column("top input", no_wrap=True)
    for n in range(len(rows)):
        for k, out in enumerate(meta["output_names"]):
            cells = [_label(rows[n], None if ids is None else ids[n]).removeprefix("row ") if k == 0 else "",
                     escape(shorten(out)), number(arrays["y"][n, k])]
            cells += [number(arrays[name][n, k]) for name in shown]
            if "budget" in arrays:
                i = int(arrays["budget"][n, k].argmax())
                cells.append(f"{escape(shorten(meta['input_names'][i], 12))} {arrays['budget'][n, k, i]:.0%}")
            flag = meta.get("flag")
            style = "bold red" if flag is not None and flag(arrays, n, k) else None
            table.add_row(*cells, style=style)
    console.print(table)
    return len(rows)
