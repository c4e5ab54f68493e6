"""Everything people see: rich tables, the progress display and the consoles.  Only this
module and ``render_reports`` (the hessian, check and inspect reports) import rich; the data
formats are written by ``io.writers``."""

from __future__ import annotations

import sys
from contextlib import contextmanager, nullcontext
from functools import partial

import numpy as np
from rich.console import Console, Group
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from .io.writers import AtomicOutput, Writer

NAME_WIDTH = 16  # characters of a name shown in a column header


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """rich would exit 1 here; the CLI ends a closed pipe quietly with 0, as for csv."""
        raise BrokenPipeError


WIDE = 200  # characters: the width of tables written to a file or a pipe (nobody's terminal to fit)
TOP_INPUTS = 8  # inputs shown per output when a row's Jacobian does not fit as a matrix
TALL_INPUTS = 40  # up to this many inputs, a Jacobian too wide for the screen is shown transposed


def console(stderr=False, file=None, width=None) -> Console:
    """The one way jacprop makes a rich console: no syntax highlighting of numbers; results that
    do not go to a terminal get the fixed width WIDE, not 80 columns."""
    if width is None and not stderr and not getattr(file if file is not None else sys.stdout, "isatty", bool)():
        width = WIDE
    return _Console(stderr=stderr, file=file, width=width, highlight=False)


def fits(console, renderable) -> bool:
    """Whether ``renderable`` fits the console's width without wrapping or cutting a cell."""
    unbounded = console.options.update(width=10**6, max_width=10**6)  # (a measure is capped at the given width)
    return Measurement.get(console, unbounded, renderable).maximum <= console.width


def print_fitting(console, *layouts) -> None:
    """Print the first of ``layouts`` (functions making a renderable) that fits; the last one
    (which must wrap rather than cut) when none does."""
    for make in layouts[:-1]:
        table = make()
        if fits(console, table):
            console.print(table)
            return
    console.print(layouts[-1]())


def records(title, headers, rows, note=None):
    """A table's rows as wrapped lines 'header value, header value, ...': the layout that never cuts a number."""
    lines = [Text(title, style="bold")] if title else []
    for cells in rows:
        lines.append(Text(", ".join(f"{h} {c}".strip() for h, c in zip(headers, cells) if str(c) != "")))
    if note:
        lines.append(Text(note, style="dim"))
    return Group(*lines)


def status(line: str) -> None:
    """A line of progress information on stderr (a person is watching)."""
    console(stderr=True).print(escape(line))


def open_table(output, fields, meta, max_rows=10) -> TableWriter:
    return TableWriter(AtomicOutput(output), fields, meta, max_rows=max_rows)


def progress(show: bool, size=None):
    """Progress on stderr, transient; a no-op unless ``show`` (stderr a terminal, not --quiet).
    ``size``: (total bytes, a function giving the bytes read so far) when the input is a file, or
    (total rows, None) when the row count is known: a bar with the percentage and the time left;
    otherwise a spinner with the rows done."""
    if not show:
        return nullcontext(lambda n: None)
    from rich.progress import (
        BarColumn,
        Progress,
        SpinnerColumn,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    total, done = size if size else (None, None)
    columns = [SpinnerColumn(), TextColumn("{task.fields[rows]:,} rows"), TimeElapsedColumn()]
    if total:
        columns[2:2] = [BarColumn(), TaskProgressColumn(), TextColumn("ETA"), TimeRemainingColumn()]

    @contextmanager
    def bar():
        with Progress(*columns, console=console(stderr=True), transient=True) as p:
            task = p.add_task("rows", total=total, rows=0)
            count = 0

            def advance(n):
                nonlocal count
                count += n
                at = done() if done else count if total else None
                p.update(task, rows=count, **({"completed": min(at, total)} if at is not None else {}))

            yield advance

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
    """Each row's K x D Jacobian dy_k/dx_i, with y_k beside each output and x_i above; transposed
    (inputs down) when that fits and the matrix does not; else the largest TOP_INPUTS per output."""
    x, y, J = arrays["x"], arrays["y"], arrays["jacobian"]
    ins, outs = meta["input_names"], meta["output_names"]
    for n in range(len(rows)):
        title = escape(_label(rows[n], None if ids is None else ids[n]))
        vmax = float(np.abs(J[n]).max(initial=0))
        layouts = [partial(_matrix, title, x[n], y[n], J[n], ins, outs, vmax)]
        if len(ins) <= TALL_INPUTS:
            layouts.append(partial(_matrix, title, y[n], x[n], J[n].T, outs, ins, vmax, transposed=True))
        print_fitting(console, *layouts, partial(_top_inputs, title, y[n], J[n], ins, outs),
                      partial(_top_inputs, title, y[n], J[n], ins, outs, lines=True))
    return len(rows)


def _matrix(title, top, side, M, columns, lines, vmax, transposed=False):
    """M (len(lines), len(columns)) with ``top`` above the columns and ``side`` beside the lines."""
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("dx/dy" if transposed else "dy/dx", style="bold", no_wrap=True)
    table.add_column("x" if transposed else "y", justify="right", no_wrap=True)
    for name in columns:
        table.add_column(escape(shorten(name)), justify="right", no_wrap=True)
    table.add_row(Text("y" if transposed else "x", style="dim"), "", *[Text(number(v), style="dim") for v in top])
    for k, name in enumerate(lines):
        table.add_row(escape(shorten(name)), number(side[k]), *[Text(number(v), style=shade(v, vmax)) for v in M[k]])
    return table


def _top_inputs(title, y, J, ins, outs, lines=False):
    """Per output, the TOP_INPUTS inputs with the largest |dy/dx|, with a note; as a table, or as
    wrapped lines (``lines``: the layout that never cuts a number)."""
    top = min(TOP_INPUTS, len(ins))
    head = f"the {top} largest |dy/dx| of {len(ins)} inputs"
    note = f"{len(ins) - top} more inputs per output not shown; all of them in --format csv, jsonl or npz"
    rows = []
    for k, out in enumerate(outs):
        order = np.argsort(-np.nan_to_num(np.abs(J[k]), nan=np.inf), kind="stable")[:top]
        largest = ", ".join(f"{escape(ins[i])} {number(J[k, i])}" for i in order)
        rows.append([escape(shorten(out)), number(y[k]), largest])
    if lines:
        return records(title, ["", "y", f"{head}:"], rows, note if top < len(ins) else None)
    table = grid(title, ["output", "y", head], rows, left=(0, 2), caption=note if top < len(ins) else None)
    table.columns[2].no_wrap = False
    return table


def grid(title, headers, rows, left=(), styles=None, caption=None):
    """A table of text cells: ``left`` the columns justified left; ``styles`` a style per row."""
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False, caption=caption)
    for j, h in enumerate(headers):
        table.add_column(h, justify="left" if j in left else "right", no_wrap=True)
    for r, cells in enumerate(rows):
        table.add_row(*cells, style=styles[r] if styles else None)
    return table


def summary_table(console, stats: dict, input_names, output_names, n_rows: int, top: int = 10) -> None:
    """Per output, the inputs ranked by mean |J| with their statistics over rows (RMS is in the data formats)."""
    headers = ["#", "input", "mean|J|", "mean", "std", "min", "max", "row max|J|"]
    for k, out in enumerate(output_names):
        title = f"{escape(shorten(out, 40))}: inputs ranked by mean |dy/dx| over {n_rows} rows"
        rows = [[str(r), escape(shorten(input_names[i], 24)),
                 *[number(stats[s][k, i]) for s in ("mean_abs", "mean", "std", "min", "max")],
                 str(stats["row_of_max_abs"][k, i])] for r, i in enumerate(stats["rank"][k][:top], start=1)]
        note = f"{len(input_names) - top} more inputs not shown" if len(input_names) > top else None
        print_fitting(console, partial(grid, title, headers, rows, left=(1,), caption=note),
                      partial(records, title, headers, rows, note))
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
    """One line per (row, output): y, each method's estimate, and the dominant input; when that is
    too wide, a table per row with the estimates down and the outputs across; else wrapped lines."""
    shown = [name for name, _ in meta["columns"] if name in arrays]
    heads = ["y", *[dict(meta["columns"])[name] for name in shown]] + (["top input"] if "budget" in arrays else [])
    outs, flag = meta["output_names"], meta.get("flag")
    cells = {}  # (n, k) -> the cells of heads
    for n in range(len(rows)):
        for k in range(len(outs)):
            cells[n, k] = [number(arrays["y"][n, k]), *[_cell(q, arrays[q][n, k]) for q in shown]]
            if "budget" in arrays:
                share = arrays["budget"][n, k]
                i = int(np.nan_to_num(share, nan=-1).argmax())
                cells[n, k].append("nan" if np.isnan(share[i]) else
                                   f"{escape(shorten(meta['input_names'][i], 12))} {share[i]:.0%}")
    label = [_label(rows[n], None if ids is None else ids[n]) for n in range(len(rows))]
    bad = {(n, k): flag is not None and bool(flag(arrays, n, k)) for n, k in cells}
    wide = [[label[n].removeprefix("row ") if k == 0 else "", escape(shorten(outs[k])), *c]
            for (n, k), c in cells.items()]
    styles = ["bold red" if bad[key] else None for key in cells]
    left = (1, len(heads) + 1) if "budget" in arrays else (1,)  # the output's name and the top input
    print_fitting(console, lambda: grid(None, ["row", "output", *heads], wide, left=left, styles=styles),
                  lambda: Group(*[_per_row(label[n], heads, outs, cells, n, bad) for n in range(len(rows))]),
                  lambda: records(None, ["row", "output", *heads], wide))
    return len(rows)


def _cell(name: str, v: float) -> str:
    """A propagate table cell: gum_valid/gum2_valid as yes/no, standard errors to 2 digits, the rest to 4."""
    if name.endswith("_valid"):
        return "yes" if v == 1 else "NO"
    return number(v, 2) if name.endswith("_se") else number(v)


def propagate_footer(s) -> list[str]:
    """What a propagate table's numbers mean, from its ``propagate.Settings``: the coverage factor,
    the Monte Carlo's interval and tolerance, the validation."""
    from .uncertainty.coverage import normal_quantile

    lines = []
    if ("gum" in s.methods or "gum2" in s.methods) and s.expanded:
        if s.k is not None:
            lines.append(f"U = k·u with k = {s.k:g} (--coverage)")
        elif s.dof is not None:
            lines.append(f"U = k·u with k = t_p(ν eff) per row, p = {(1 + s.level) / 2:g}: Student's t at the "
                         "Welch-Satterthwaite degrees of freedom (JCGM 100 G.4)")
        else:
            lines.append(f"U = k·u with k = {normal_quantile((1 + s.level) / 2):.4g} (normal, level {s.level:g})")
    if "mc" in s.methods:
        digits = s.mc_options().digits
        run = (f"adaptive (JCGM 101 7.9) to {digits} significant digits, at most {s.samples:,} draws per row" if digits
               else f"{s.samples:,} draws per row")
        lines.append(f"σ mc ± se: standard error from the draws; mc lo/hi: {s.interval} {s.mc_level:.4g} "
                     f"interval; {run}")
    if s.validate:
        lines.append("valid: GUM's y ± U within δ of the Monte Carlo interval ends (JCGM 101 8)"
                     + ("; valid2: the same for y ± U2" if "gum2" in s.methods else ""))
    return lines


def _per_row(title, heads, outs, cells, n, bad):
    """One row's estimates (down) for every output (across); a flagged output's name in red."""
    names = [f"[bold red]{escape(shorten(o))}[/]" if bad[n, k] else escape(shorten(o)) for k, o in enumerate(outs)]
    return grid(escape(title), ["", *names], [[h, *[cells[n, k][j] for k in range(len(outs))]]
                                              for j, h in enumerate(heads)], left=(0,))


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
            self.console.print(f"... {self.n - self.shown} more rows not shown (--max-rows, or --format "
                               "csv/jsonl/npz for all)")
        for line in self.meta.get("footer", ()):  # what the numbers mean (propagate: k, the Monte Carlo's settings)
            self.console.print(Text(line, style="dim"), soft_wrap=True)
        self.out.commit()


def close_jacobian_table(console, writer, stats, meta):
    """After the first rows' matrices: for longer inputs, the summary over all rows."""
    if writer.n > writer.shown:
        console.print(f"... {writer.n - writer.shown} more rows not shown; over all {writer.n} rows:")
        summary_table(console, stats.result(), meta["input_names"], meta["output_names"], writer.n)


def summary_to(binary_file, stats, input_names, output_names, n_rows, what="input") -> None:
    """``jacobian --summary --format table`` onto a binary file (stdout's buffer or an -o file);
    ``what="estimate"``: ``propagate --summary``, the estimates' statistics over rows."""
    out = console(file=TextBridge(binary_file))
    if what == "input":
        summary_table(out, stats, input_names, output_names, n_rows)
    else:
        estimates_table(out, stats, input_names, output_names, n_rows)


def estimates_table(console, stats: dict, names, output_names, n_rows: int) -> None:
    """``propagate --summary``: per output, each estimate's statistics over the rows."""
    headers = ["estimate", "mean", "RMS", "std", "min", "max", "row max|.|"]
    for k, out in enumerate(output_names):
        title = f"{escape(shorten(out, 40))}: estimates over {n_rows} rows"
        rows = [[name, *[number(stats[s][k, i]) for s in ("mean", "rms", "std", "min", "max")],
                 str(stats["row_of_max_abs"][k, i])] for i, name in enumerate(names)]
        print_fitting(console, partial(grid, title, headers, rows, left=(0,)), partial(records, title, headers, rows))
