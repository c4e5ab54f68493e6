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
    head = (width - 1) // 2 + (width - 1) % 2
    return name[:head] + "…" + name[len(name) - (width - 1 - head):]


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


def jacobian_table(label, input_names, output_names, x, y, J) -> Table:
    """One row's K x D Jacobian dy_k/dx_i, with y_k beside each output and x_i under each input."""
    table = Table(title=escape(label), title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("dy/dx", style="bold")
    table.add_column("y", justify="right")
    for name in input_names:
        table.add_column(escape(shorten(name)), justify="right")
    vmax = float(np.abs(J).max(initial=0))
    table.add_row(Text("x", style="dim"), "", *[Text(number(v), style="dim") for v in x])
    for k, name in enumerate(output_names):
        table.add_row(escape(shorten(name)), number(y[k]), *[Text(number(v), style=shade(v, vmax)) for v in J[k]])
    return table
