"""``jacprop jacobian``: y and J = dy/dx at every row of the inputs, streamed to a writer."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import UsageError
from ..io.writers import atomic_output, jacobian_fields, write_summary
from ..summary import Summary, sequence_inputs, sequence_profiles
from .common import (
    InputSpec,
    ModelSpec,
    Outcome,
    OutputSpec,
    Tally,
    jacobian_blocks,
    load_model,
    open_inputs,
    open_output,
    parse_rows,
    pick,
    resolve,
    show_progress,
    show_tally,
    skipped_note,
    stream_to,
)


@dataclass(frozen=True)
class JacobianSpec:
    model: ModelSpec
    inputs: InputSpec
    output: OutputSpec = OutputSpec()
    mode: str = "auto"
    outputs: tuple | None = None  # names or indices
    wrt: tuple | None = None
    summary: bool = False


@dataclass
class JacobianPlan:
    """The spec made concrete: the model, the open reader, the selected outputs and inputs."""

    spec: JacobianSpec
    model: object
    reader: object
    out_idx: list | None
    wrt_idx: list | None
    input_names: list
    output_names: list
    fmt: str
    notes: list = field(default_factory=list)

    @property
    def fields(self):
        return jacobian_fields(self.input_names, self.output_names)

    @property
    def meta(self) -> dict:
        return {"input_names": self.input_names, "output_names": self.output_names,
                "id_name": self.spec.inputs.id_column, "npy_field": "jacobian", "row": self.spec.output.row}


def prepare(spec: JacobianSpec, allowed=("table", "csv", "jsonl", "npy", "npz")) -> JacobianPlan:
    notes = []
    model = load_model(spec.model, notes)
    parse_rows(spec.inputs.rows)
    fmt = spec.output.format(allowed)
    if spec.summary and fmt == "npy":
        raise UsageError("--summary writes table, csv, jsonl or npz")
    reader = open_inputs(model, spec.inputs, notes=None if spec.output.quiet else notes)
    out_idx = resolve(spec.outputs, model.output_names, "outputs")
    wrt_idx = resolve(spec.wrt, reader.columns, "wrt")
    return JacobianPlan(spec, model, reader, out_idx, wrt_idx, pick(reader.columns, wrt_idx),
                        pick(model.output_names, out_idx), fmt, notes)


def stream_of(plan: JacobianPlan, findings=None):
    """(blocks, produce): the reader's rows through the engine, and produce(block) -> (rows, ids, arrays)
    for a writer; the local run and every Dask partition stream this way (``findings``: unused here)."""
    spec, wrt = plan.spec, plan.wrt_idx
    blocks = jacobian_blocks(plan.model, plan.reader, spec.mode, plan.out_idx, wrt, spec.output.dtype,
                             parse_rows(spec.inputs.rows))

    def produce(b):
        return b.rows, b.ids, {"x": b.X if wrt is None else b.X[:, wrt], "y": b.Y, "jacobian": b.J}

    return blocks, produce


def tally_of(plan: JacobianPlan, output: OutputSpec) -> Tally | None:
    """The closing line's tally, the largest |J| and where (None: no closing line for ``output``)."""
    if not show_tally(output):
        return None
    d, ins, outs = len(plan.input_names), plan.input_names, plan.output_names
    return Tally("|J|", lambda a: a["jacobian"], lambda j: f"d({outs[j // d]})/d({ins[j % d]})")


def run(plan: JacobianPlan) -> Outcome:
    spec = plan.spec
    blocks, produce = stream_of(plan)
    try:
        if spec.summary:
            _summary(plan, blocks)
        else:
            _stream(plan, blocks, produce)
    finally:
        plan.reader.close()
    return Outcome(0, plan.notes + skipped_note(plan.reader, spec.output.quiet))


def _stream(plan: JacobianPlan, blocks, produce) -> None:
    meta = plan.meta
    stats = Summary(len(plan.output_names), len(plan.input_names))
    if plan.fmt == "table":
        from ..render import close_jacobian_table, jacobian_rows

        meta.update(table=jacobian_rows, table_close=lambda console, w: close_jacobian_table(console, w, stats, meta))
    writer = open_output(plan.fmt, plan.spec.output, plan.fields, meta)

    def shown(b):
        if plan.fmt == "table":
            stats.add(b.rows, b.J)
        return produce(b)

    tally = tally_of(plan, plan.spec.output)
    stream_to(writer, blocks, shown, show_progress(plan.spec.output, plan.spec.inputs.path), plan.reader, tally)
    if tally is not None:
        plan.notes.append(tally.line())


def _summary(plan: JacobianPlan, blocks) -> None:
    """--summary: statistics of J over rows, per output and input, ranked by mean |J|."""
    from ..io.reader import no_data_rows

    acc, tally = None, tally_of(plan, plan.spec.output)
    for b in blocks:
        acc = acc or Summary(b.J.shape[1], b.J.shape[2])
        acc.add(b.rows, b.J)
        if tally is not None:
            tally.add(b.rows, {"jacobian": b.J})
    if acc is None:
        raise no_data_rows(None if plan.reader is None else plan.reader.path, plan.reader.skipped)
    stats = acc.result()
    if plan.wrt_idx is None:  # every input: sequence inputs get their per-step / per-feature profiles
        stats["sequences"] = sequence_profiles(stats["mean_abs"], sequence_inputs(plan.model))
    with atomic_output(plan.spec.output.path) as out:
        if plan.fmt == "table":
            from ..render import summary_to

            summary_to(out.file, stats, plan.input_names, plan.output_names, acc.n)
        else:
            write_summary(out.file, plan.fmt, stats, plan.input_names, plan.output_names, acc.n)
    if tally is not None:
        plan.notes.append(tally.line())
