"""``jacprop check``: J (or, with order 2, H) against central differences at every row (and y against expected
outputs)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError
from ..fdcheck import Checker, flat_note
from ..io.matrices import read_expected
from ..io.reader import no_data_rows
from .common import (
    InputSpec,
    ModelSpec,
    Outcome,
    OutputSpec,
    Tally,
    input_size,
    load_model,
    open_inputs,
    parse_rows,
    show_progress,
)


@dataclass(frozen=True)
class CheckSpec:
    model: ModelSpec
    inputs: InputSpec
    tol: float = 1e-6
    expect_y: str | None = None
    y_tol: float = 1e-5
    dtype: str = "float64"  # J and y computed in this precision (differences in float64)
    order: int = 1
    allow_flat: bool = False


def run(spec: CheckSpec) -> tuple[dict, Outcome]:
    """The report (as ``--format json`` prints it) and the outcome: exit 1 when an error exceeds its tolerance,
    or when an output is flat (its derivatives negligible everywhere) unless ``allow_flat``."""
    notes = []
    model = load_model(spec.model, notes)
    if spec.order == 2:
        from ..second_order import check_second_order

        check_second_order(model)
    reader = open_inputs(model, spec.inputs, notes=notes)
    expected = read_expected(spec.expect_y, model.output_names) if spec.expect_y else None
    checker = Checker(model, reader.columns, spec.tol, spec.y_tol, spec.order, spec.allow_flat, spec.dtype)
    from ..render import progress

    keep, checked = parse_rows(spec.inputs.rows), 0
    tally = Tally("|J - J_fd| / max|J|" if spec.order == 1 else "|H - H_fd| / max|H|", None, None)
    try:
        with progress(show_progress(OutputSpec(), spec.inputs.path), input_size(reader)) as advance:
            for chunk in reader.chunks():
                rows, X = chunk.rows, chunk.X
                if keep is not None:
                    mask = keep(rows)
                    rows, X = rows[mask], X[mask]
                advance(len(rows))
                if not len(rows):
                    continue
                checked += len(rows)
                ref = None
                if expected is not None:
                    if rows.max() > len(expected):
                        raise InputError(f"--expect-y {spec.expect_y}: has {len(expected)} rows, fewer than the inputs")
                    ref = expected[rows - 1]
                checker.add(rows, X, ref)
    finally:
        reader.close()
    if checker.step is None:
        raise no_data_rows(reader.path)
    if expected is not None and keep is None and checker.y_rows != len(expected):
        raise InputError(f"--expect-y {spec.expect_y}: {len(expected)} rows, but the inputs have {checker.y_rows}")
    result = checker.result(checked, with_y=expected is not None)
    note = flat_note(result)
    return result, Outcome(0 if result["ok"] else 1, notes + [closing_line(tally, result)] + ([note] if note else []))


def closing_line(tally: Tally, result: dict) -> str:
    """'jacprop: 6 rows; largest |J - J_fd| / max|J| 8.074e-11 at row 6 d(y[0])/d(flow)': the worst output's
    scaled error (a check is a gate: the line shows on success too, for a CI log)."""
    tally.rows = result["rows"]
    for o in result["outputs"]:
        if not o["row"]:  # no row to name (a flat output: nothing was compared)
            continue
        ins = o["input"].split(",")
        where = f"d({o['output']})/d({ins[0]})" if len(ins) == 1 else f"d2({o['output']})/d({ins[0]})d({ins[1]})"
        tally.offer(float(o["max_scaled_error"]), f"row {o['row']} {where}")
    return tally.line()
