"""``jacprop hessian``: y, J and H[k, i, j] = d2y_k/dx_i dx_j at every row of the inputs, streamed to a writer.

Formats: npz arrays x, y, jacobian, hessian (N, K, D, D) and the names; npy the hessian array; csv the
outputs, J and the upper triangle of each H_k in columns d2(<out>)/d(<a>)d(<b>) (a <= b in input order);
jsonl per row x, y, jacobian and hessian (K lists of D lists of D, the whole symmetric matrix, nested as
jacobian's are).  ``--diagonal`` writes hessian_diagonal (N, K, D) = d2y_k/dx_i^2 instead (csv columns
d2(<out>)/d(<a>)d(<a>)); ``--direction u`` writes hvp (N, K, D) = H_k u (csv columns Hv(<out>)/d(<a>); npz also
the direction (D,)).  The table shows, per row and output, the largest |d2y/dx_i dx_j| (or |(H u)_i|).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import UsageError
from ..io.writers import Field, jacobian_columns
from .common import (
    InputSpec,
    ModelSpec,
    Outcome,
    OutputSpec,
    RowBlock,
    Tally,
    load_model,
    open_inputs,
    open_output,
    parse_rows,
    pick,
    resolve,
    selected_chunks,
    show_progress,
    show_tally,
    skipped_note,
    stream_to,
)

HUGE_ROW = 2**20  # H values per row above which the command warns (8 MB a row in float64)


@dataclass(frozen=True)
class HessianSpec:
    model: ModelSpec
    inputs: InputSpec
    output: OutputSpec = OutputSpec()
    outputs: tuple | None = None  # names or indices
    wrt: tuple | None = None
    diagonal: bool = False
    top: int = 5  # table: interactions shown per output
    direction: tuple = ()  # --direction: NAME=VALUE, or VALUE (every input), or V1,...,VD (all of them)
    direction_file: str | None = None  # --direction-file: CSV, a header of input names and one row


@dataclass
class HessianPlan:
    """The spec made concrete: the model, the open reader, the selected outputs and inputs."""

    spec: HessianSpec
    model: object
    reader: object
    out_idx: list | None
    wrt_idx: list | None
    input_names: list
    output_names: list
    fmt: str
    notes: list = field(default_factory=list)
    direction: np.ndarray | None = None  # u over the selected inputs, with --direction

    @property
    def h_name(self) -> str:
        return "hvp" if self.direction is not None else "hessian_diagonal" if self.spec.diagonal else "hessian"

    @property
    def fields(self) -> list[Field]:
        if self.direction is not None:
            return hessian_fields(self.input_names, self.output_names, self.fmt, True)[:3] + [
                Field("hvp", (len(self.output_names), len(self.input_names)),
                      hvp_columns(self.input_names, self.output_names))]
        return hessian_fields(self.input_names, self.output_names, self.fmt, self.spec.diagonal)

    @property
    def meta(self) -> dict:
        hvp = self.direction is not None
        return {"input_names": self.input_names, "output_names": self.output_names,
                "id_name": self.spec.inputs.id_column, "npy_field": self.h_name, "top": self.spec.top,
                "diagonal": self.spec.diagonal or hvp, "hvp": hvp, "row": self.spec.output.row,
                "npz_extra": {"direction": self.direction} if hvp else {}}


def hvp_columns(input_names, output_names) -> list[str]:
    """CSV column names of H u: Hv(<out>)/d(<a>), outputs major."""
    return [f"Hv({o})/d({a})" for o in output_names for a in input_names]


def parse_direction(specs, path, names) -> np.ndarray | None:
    """--direction NAME=VALUE (NAME a name or an index among ``names``; the others 0), VALUE (every input) or
    V1,...,VD (all, in order), repeatable, later ones overriding; or --direction-file.  None: neither given."""
    from ..io.matrices import read_vector

    if specs and path:
        raise UsageError("--direction and --direction-file exclude each other")
    if not specs:
        return None if path is None else read_vector(path, list(names), "--direction-file")
    u, index = np.zeros(len(names)), {n: i for i, n in enumerate(names)}
    for spec in specs:
        name, sep, value = spec.rpartition("=")
        if sep and name not in index and name.strip().isdigit() and int(name) < len(names):
            name = names[int(name)]
        if sep and name not in index:
            raise UsageError(f"--direction {spec}: no input named {name!r}; the inputs are {list(names)}")
        values = [value] if sep else value.split(",")
        if not sep and len(values) not in (1, len(names)):
            raise UsageError(f"--direction {spec}: {len(values)} values for {len(names)} inputs; give one (every "
                             "input), all of them, or NAME=VALUE")
        try:
            numbers = [float(v) for v in values]
        except ValueError:
            raise UsageError(f"--direction {spec}: expected numbers (e.g. 1, temp=0.5, 1,0,-2)") from None
        if not np.isfinite(numbers).all():
            raise UsageError(f"--direction {spec}: every value must be finite")
        u[[index[name]] if sep else slice(None)] = numbers
    return u


def hessian_columns(input_names, output_names, diagonal=False) -> list[str]:
    """CSV column names of H: d2(<out>)/d(<a>)d(<b>), outputs major, then the upper triangle row by row."""
    d = len(input_names)
    pairs = [(a, a) for a in range(d)] if diagonal else list(zip(*np.triu_indices(d)))
    return [f"d2({o})/d({input_names[a]})d({input_names[b]})" for o in output_names for a, b in pairs]


def hessian_fields(input_names, output_names, fmt, diagonal=False) -> list[Field]:
    """x, y, J and H (csv: H's upper triangle as ``hessian_upper``; --diagonal: ``hessian_diagonal``)."""
    k, d = len(output_names), len(input_names)
    fields = [Field("x", (d,)), Field("y", (k,), list(output_names)),
              Field("jacobian", (k, d), jacobian_columns(input_names, output_names))]
    columns = hessian_columns(input_names, output_names, diagonal)
    if diagonal:
        return fields + [Field("hessian_diagonal", (k, d), columns)]
    if fmt == "csv":
        return fields + [Field("hessian_upper", (k, d * (d + 1) // 2), columns)]
    return fields + [Field("hessian", (k, d, d))]


def prepare(spec: HessianSpec, allowed=("table", "csv", "jsonl", "npy", "npz")) -> HessianPlan:
    from ..second_order import check_second_order

    notes = []
    model = load_model(spec.model, notes)
    check_second_order(model)
    parse_rows(spec.inputs.rows)
    fmt = spec.output.format(allowed)
    reader = open_inputs(model, spec.inputs)
    out_idx = resolve(spec.outputs, model.output_names, "outputs")
    wrt_idx = resolve(spec.wrt, reader.columns, "wrt")
    plan = HessianPlan(spec, model, reader, out_idx, wrt_idx, pick(reader.columns, wrt_idx),
                       pick(model.output_names, out_idx), fmt, notes)
    try:
        plan.direction = parse_direction(spec.direction, spec.direction_file, plan.input_names)
        if plan.direction is not None and spec.diagonal:
            raise UsageError("--direction and --diagonal exclude each other: H u is a vector per output already")
    except BaseException:
        reader.close()
        raise
    k, d = len(plan.output_names), len(plan.input_names)
    narrow = spec.diagonal or plan.direction is not None
    per_row = k * d * (1 if narrow else d)
    if per_row > HUGE_ROW and not spec.output.quiet:
        what = f"{plan.h_name} has {k} x {d}" if narrow else f"H has {k} x {d} x {d}"
        notes.insert(0, f"jacprop: warning: {what} = {per_row:,} values per row "
                        f"({per_row * 8 / 2**20:.0f} MB a row in float64); "
                        "--diagonal, --direction, --wrt or --outputs make it smaller")
    return plan


def hessian_blocks(plan: HessianPlan):
    """(RowBlock, H) for every block of rows, through ``second_order.iter_hessian``."""
    from ..second_order import iter_hessian

    spec = plan.spec
    for X, ids, rows, _ in selected_chunks(plan.reader, parse_rows(spec.inputs.rows)):
        for start, Y, J, H in iter_hessian(plan.model, X, plan.out_idx, plan.wrt_idx, np.dtype(spec.output.dtype),
                                           deterministic=True, diagonal=spec.diagonal, direction=plan.direction):
            sl = slice(start, start + len(Y))
            yield RowBlock(rows[sl], None if ids is None else ids[sl], X[sl], Y, J, {}), H
        del X, ids, rows


def run(plan: HessianPlan) -> Outcome:
    """Stream y, J and H of every row to the writer of ``plan.fmt``."""
    spec, wrt = plan.spec, plan.wrt_idx
    meta = plan.meta
    mean_abs = {"sum": 0.0, "n": 0}
    if plan.fmt == "table":
        from ..render_reports import close_hessian_table, hessian_rows

        meta.update(table=hessian_rows, table_close=lambda console, w: close_hessian_table(console, w, mean_abs, meta))
    writer = open_output(plan.fmt, spec.output, plan.fields, meta)
    upper = None if spec.diagonal else np.triu_indices(len(plan.input_names))

    def produce(item):
        b, H = item
        arrays = {"x": b.X if wrt is None else b.X[:, wrt], "y": b.Y, "jacobian": b.J}
        if plan.fmt == "csv" and plan.h_name == "hessian":
            arrays["hessian_upper"] = H[:, :, upper[0], upper[1]]
        else:
            arrays[plan.h_name] = H
        if plan.fmt == "table":
            mean_abs["sum"] = mean_abs["sum"] + np.abs(H).sum(axis=0)
            mean_abs["n"] += len(H)
        return b.rows, b.ids, arrays

    tally = tally_of(plan) if show_tally(spec.output) else None
    try:
        stream_to(writer, hessian_blocks(plan), produce, show_progress(spec.output, spec.inputs.path), plan.reader,
                  tally)
    finally:
        plan.reader.close()
    closing = [tally.line()] if tally is not None else []
    return Outcome(0, plan.notes + closing + skipped_note(plan.reader, spec.output.quiet))


def tally_of(plan: HessianPlan) -> Tally:
    """The closing line's largest |d2y/dx_a dx_b| and where, over the upper triangle (or the diagonal);
    with --direction the largest |(H u)_a|."""
    if plan.direction is not None:
        return Tally("|H u|", lambda a: a["hvp"], hvp_columns(plan.input_names, plan.output_names).__getitem__)
    columns = hessian_columns(plan.input_names, plan.output_names, plan.spec.diagonal)
    upper = np.triu_indices(len(plan.input_names))

    def pick(a):
        if "hessian" in a:
            return a["hessian"][:, :, upper[0], upper[1]]
        return a["hessian_diagonal" if plan.spec.diagonal else "hessian_upper"]

    return Tally("|H|", pick, columns.__getitem__)
