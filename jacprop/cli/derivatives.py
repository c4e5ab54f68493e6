"""``jacprop jacobian``, ``jacprop hessian`` and ``jacprop check``: the derivatives at every row."""

from __future__ import annotations

import sys

import click

from .app import CONTEXT, finish, handle_errors, main, models_and_inputs, split_list, waiting_note
from .options import engine_options, input_spec, model_and_input_options, model_spec, output_options, output_spec
from .types import COUNT, COVERAGE, LEVEL, NON_NEGATIVE, POSITIVE, SAMPLES, SEED, check_rows  # noqa: F401


@main.command(context_settings=CONTEXT)
@click.argument("paths", nargs=-1, required=True, metavar="MODEL... INPUTS")
@model_and_input_options
@output_options(["table", "csv", "jsonl", "npy", "npz"])
@engine_options
@click.option("--mode", type=click.Choice(["auto", "reverse", "forward"]), default="auto", show_default=True,
              help="reverse: cost ~ outputs; forward: cost ~ inputs; auto: the cheaper.")
@click.option("--outputs", multiple=True, help="Only these outputs (names or indices, comma-separated).")
@click.option("--wrt", multiple=True, help="Only derivatives with respect to these inputs (names or indices).")
@click.option("--output-names", multiple=True,
              help="Names for the K outputs (comma-separated), instead of the model's.")
@click.option("--logits", is_flag=True, help="Jacobian of the output layers' pre-activations (e.g. before a softmax).")
@click.option("--rows", "rows", callback=check_rows, help="Only these data rows (counted from 1), e.g. 1-5,10,20-.")
@click.option("--summary", is_flag=True,
              help="Statistics of J over all rows per output and input, inputs ranked by mean |J|.")
@click.option("--max-rows", type=COUNT, default=10, show_default=True,
              help="Rows shown one by one in the table format.")
@handle_errors
def jacobian(paths, **o):
    """J[k, i] = dy_k/dx_i (and y) at every row of INPUTS.

    Several MODEL files are applied in order (the output of one feeds the next).

    \b
    Example:
      jacprop jacobian sample_models/bishop_tanh.npz sample_models/bishop_tanh.csv
      jacprop jacobian model.h5 data.csv --id-column id -o jac.npz
      jacprop jacobian model.keras data.csv --summary
      jacprop jacobian model.h5 'data/part-*.csv' --engine dask -o out/   # parts + manifest.json
    """
    from ..commands import jacobian as command

    def spec_for(models, inputs):
        model = model_spec(models, o, logits=o["logits"], output_names=split_list(o["output_names"]))
        return command.JacobianSpec(model, input_spec(inputs, o), output_spec(o), o["mode"], split_list(o["outputs"]),
                                    split_list(o["wrt"]), o["summary"])

    if o["cluster"] is not None:
        from ..cluster import runner

        finish(runner.run_jacobian(paths, spec_for, **o["cluster"]))
    models, inputs = models_and_inputs(paths)
    if inputs == "-" and sys.stdin.isatty():
        waiting_note("the INPUTS csv", o["quiet"])
    finish(command.run(command.prepare(spec_for(models, inputs))))


@main.command(context_settings=CONTEXT)
@click.argument("paths", nargs=-1, required=True, metavar="MODEL... INPUTS")
@model_and_input_options
@output_options(["table", "csv", "jsonl", "npy", "npz"])
@click.option("--outputs", multiple=True, help="Only these outputs (names or indices, comma-separated).")
@click.option("--wrt", multiple=True, help="Only these inputs (names or indices): J and the D' x D' block of H.")
@click.option("--diagonal", is_flag=True, help="Only d2y/dxi^2 (N, K, D): D times less output, the same cost.")
@click.option("--direction", multiple=True,
              help="Only H u (N, K, D) along u: NAME=VALUE (the others 0), VALUE (every input) or V1,V2,... (all, "
                   "in input order). Repeatable. About D/2 times cheaper than H for wide D.")
@click.option("--direction-file", type=click.Path(dir_okay=False),
              help="u from a CSV: a header of input names, one row of values (inputs not named: 0).")
@click.option("--output-names", multiple=True,
              help="Names for the K outputs (comma-separated), instead of the model's.")
@click.option("--logits", is_flag=True,
              help="Derivatives of the output layers' pre-activations (e.g. before a softmax).")
@click.option("--rows", "rows", callback=check_rows, help="Only these data rows (counted from 1), e.g. 1-5,10,20-.")
@click.option("--top", type=click.IntRange(1), default=5, show_default=True,
              help="Table: the largest interactions shown per output.")
@click.option("--max-rows", type=COUNT, default=10, show_default=True,
              help="Rows shown one by one in the table format.")
@handle_errors
def hessian(paths, **o):
    """H[k, i, j] = d2y_k/dx_i dx_j (and y, J) at every row of INPUTS.

    Exact (forward-over-reverse), in blocks of rows. H has K x D x D values per row: --wrt, --outputs
    and --diagonal make it smaller. Several MODEL files are applied in order (the chain rule).

    \b
    Example:
      jacprop hessian sample_models/bishop_tanh.npz sample_models/bishop_tanh.csv
      jacprop hessian model.h5 data.csv -o hess.npz
      jacprop hessian model.h5 data.csv --wrt temp,pressure --outputs 0 --format csv
      jacprop hessian model.h5 data.csv --diagonal -o curvature.npz
      jacprop hessian model.h5 data.csv --direction temp=1 --direction pressure=-0.5 -o hu.npz
    """
    from ..commands import hessian as command

    models, inputs = models_and_inputs(paths)
    spec = command.HessianSpec(
        model_spec(models, o, logits=o["logits"], output_names=split_list(o["output_names"])), input_spec(inputs, o),
        output_spec(o), split_list(o["outputs"]), split_list(o["wrt"]), o["diagonal"], o["top"], tuple(o["direction"]),
        o["direction_file"])
    finish(command.run(command.prepare(spec)))


@main.command(context_settings=CONTEXT)
@click.argument("paths", nargs=-1, required=True, metavar="MODEL... INPUTS")
@model_and_input_options
@click.option("--order", type=click.IntRange(1, 2), default=1, show_default=True,
              help="1: J against central differences of y; 2: H against central differences of J.")
@click.option("--tol", type=POSITIVE, default=1e-6, show_default=True,
              help="Largest accepted |J - J_fd| / max(1e-8, max|J|) per output (order 2: H), plus the rounding "
                   "bound (> 0).")
@click.option("--allow-flat", is_flag=True,
              help="Pass outputs whose J (H) is below 1e-8 at every row, where nothing can be tested.")
@click.option("--logits", is_flag=True, help="Check the output layers' pre-activations (e.g. before a softmax).")
@click.option("--expect-y", type=click.Path(dir_okay=False),
              help="CSV of expected outputs (e.g. the framework's predict) to compare y with.")
@click.option("--y-tol", type=POSITIVE, default=1e-5, show_default=True,
              help="Largest accepted |y - expected| / max(1, |expected|) (> 0).")
@click.option("--rows", "rows", callback=check_rows, help="Only these data rows (counted from 1), e.g. 1-5,10,20-.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write the report to this file (json for a .json name, else the table); default stdout.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]),
              help="Report format. Default: json for an -o name ending .json, else table.")
@handle_errors
def check(paths, **o):
    """Check backprop J (--order 2: H) against central finite differences at every row of INPUTS.

    The step for input i is eps^(1/3) * max(1, RMS of column i).  Each output is compared on
    the scale of its own max |J| (floor 1e-8).  Exit 1 when an error exceeds its tolerance (or
    --y-tol with --expect-y), or when an output's J is below 1e-8 everywhere (saturated: nothing
    was tested) unless --allow-flat: a gate for CI.  With --dtype float32, J and y are computed
    in float32 (as jacobian --dtype float32 would) and compared with float64 differences.

    \b
    Example:
      jacprop check sample_models/bishop_tanh.npz sample_models/bishop_tanh.csv
      jacprop check model.h5 data.csv --order 2
      jacprop check model.h5 data.csv --expect-y predictions.csv --format json -o check.json
    """
    from ..commands import check as command
    from ..io.writers import atomic_output

    models, inputs = models_and_inputs(paths)
    output = o["output"]
    fmt = o["fmt"] or ("json" if output and output.lower().endswith(".json") else "table")
    spec = command.CheckSpec(model_spec(models, o, logits=o["logits"]), input_spec(inputs, o), o["tol"], o["expect_y"],
                             o["y_tol"], o["dtype"], o["order"], o["allow_flat"])
    result, outcome = command.run(spec)
    with atomic_output(output) as out:
        if fmt == "json":
            import json

            out.file.write((json.dumps(result, indent=2) + "\n").encode())
        else:
            from ..render_reports import check_tables

            check_tables(result, out.file)
    finish(outcome)
