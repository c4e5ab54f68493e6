"""Everything people see: rich tables, the progress display and the consoles.  Only this
module imports rich; the data formats are written by ``io.writers``."""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from .io.writers import AtomicOutput, Writer

NAME_WIDTH = 16  # characters of a name shown in a column header


def console(stderr=False, file=None, width=None) -> Console:
    """The one way jacprop makes a rich console: no syntax highlighting of numbers."""
    return Console(stderr=stderr, file=file, width=width, highlight=False)


def status(line: str) -> None:
    """A line of progress information on stderr (a person is watching)."""
    console(stderr=True).print(escape(line))


def open_table(output, fields, meta, max_rows=10) -> TableWriter:
    return TableWriter(AtomicOutput(output), fields, meta, max_rows=max_rows)


def progress(show: bool):
    """A transient rows-done counter on stderr; a no-op unless ``show`` (stderr a terminal, not --quiet)."""
    if not show:
        return nullcontext(lambda n: None)
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    @contextmanager
    def bar():
        with Progress(SpinnerColumn(), TextColumn("{task.completed:,} rows"), TimeElapsedColumn(),
                      console=console(stderr=True), transient=True) as p:
            task = p.add_task("rows", total=None)
            yield lambda n: p.advance(task, n)

    return bar()


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
    for seq in stats.get("sequences") or []:
        sequence_tables(console, seq, output_names, n_rows)


def sequence_tables(console, seq: dict, output_names, n_rows: int) -> None:
    """A sequence input (T steps x F features): per time step mean Σ_f |dy/dx| and per feature mean Σ_t |dy/dx|,
    each with its share of the total, one column pair per output."""
    for what, key, label in (("time step", "per_step", "step"), ("feature", "per_feature", "feature")):
        over = "features" if key == "per_step" else "time steps"
        table = Table(title=f"{escape(seq['input'])}, {seq['steps']} steps x {seq['features']} features: per {what}, "
                            f"mean over rows of Σ over {over} |dy/dx|",
                      title_justify="left", show_edge=False, pad_edge=False)
        table.add_column(label, justify="right")
        values = seq[key]
        for out in output_names:
            table.add_column(escape(shorten(out, 16)), justify="right", no_wrap=True)
            table.add_column("share", justify="right")
        totals = values.sum(axis=1)
        for j in range(values.shape[1]):
            cells = [str(j)]
            for k in range(len(output_names)):
                vmax = float(values[k].max(initial=0))
                share = values[k, j] / totals[k] if totals[k] > 0 else 0.0
                cells += [Text(number(values[k, j]), style=shade(values[k, j], vmax)), f"{share:.1%}"]
            table.add_row(*cells)
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


class TextBridge:
    """A text file on top of a binary one, for rich."""

    def __init__(self, binary):
        self.binary = binary

    def write(self, text):
        self.binary.write(text.encode())
        return len(text)

    def flush(self):
        self.binary.flush()

    def isatty(self):
        return getattr(self.binary, "isatty", lambda: False)()


class TableWriter(Writer):
    """Rich tables for people: meta["table"] is a callable (console, rows, ids, arrays, meta,
    shown) -> rows shown, and meta["table_close"] (console, writer) prints what ends the output."""

    def __init__(self, *args, max_rows=10, width=None, **kw):
        super().__init__(*args, **kw)
        self.console = console(file=TextBridge(self.out.file), width=width)
        self.max_rows, self.shown = max_rows, 0

    def _write(self, rows, ids, arrays):
        room = self.max_rows - self.shown
        if room > 0:
            self.shown += self.meta["table"](self.console, rows[:room], None if ids is None else ids[:room],
                                             {k: v[:room] for k, v in arrays.items()}, self.meta)

    def close(self):
        if "table_close" in self.meta:
            self.meta["table_close"](self.console, self)
        elif self.n > self.shown:
            self.console.print(f"... {self.n - self.shown} more rows not shown (--max-rows, or --format csv/jsonl/npz for all)")
        self.out.commit()


def close_jacobian_table(console, writer, stats, meta):
    """After the first rows' matrices: for longer inputs, the summary over all rows."""
    if writer.n > writer.shown:
        console.print(f"... {writer.n - writer.shown} more rows not shown; over all {writer.n} rows:")
        summary_table(console, stats.result(), meta["input_names"], meta["output_names"], writer.n)


def summary_to(binary_file, stats, input_names, output_names, n_rows) -> None:
    """``jacobian --summary --format table`` onto a binary file (stdout's buffer or an -o file)."""
    summary_table(console(file=TextBridge(binary_file)), stats, input_names, output_names, n_rows)


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
    out.print(f"D = {info['D']} inputs: {escape(', '.join(info['input_names']))}")
    out.print(f"K = {info['K']} outputs: {escape(', '.join(info['output_names']))}")
    out.print(f"{info['params']:,} parameters")
    for note in src.get("notes", []):
        out.print(f"note: {escape(note)}")


def check_tables(result: dict) -> None:
    """``jacprop check``: per output, the largest scaled error of J (and of y), on stdout."""
    out = console()
    table = Table(title=f"J vs central differences, {result['rows']} rows, tol {result['tolerance']:g}",
                  title_justify="left", show_edge=False, pad_edge=False)
    for col in ("output", "max |J - J_fd| / max(1, max|J|)", "row", "input", ""):
        table.add_column(col)
    for o in result["outputs"]:
        table.add_row(escape(o["output"]), f"{o['max_scaled_error']:.3g}", str(o["row"]), escape(o["input"]),
                      "ok" if o["ok"] else "[bold red]FAIL[/]")
    out.print(table)
    if "y" in result:
        t = Table(title=f"y vs --expect-y, tol {result['y_tolerance']:g}", title_justify="left", show_edge=False,
                  pad_edge=False)
        for col in ("output", "max |y - expected| / max(1, |expected|)", ""):
            t.add_column(col)
        for o in result["y"]:
            t.add_row(escape(o["output"]), f"{o['max_scaled_error']:.3g}", "ok" if o["ok"] else "[bold red]FAIL[/]")
        out.print(t)
