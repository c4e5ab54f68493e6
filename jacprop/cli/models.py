"""``jacprop inspect``, ``convert`` and ``plot``: what a model is, its NPZ form, and pictures."""

from __future__ import annotations

import click

from .app import CONTEXT, finish, handle_errors, main, split_list
from .options import checked, dialect_parser, npz_options
from .types import SAMPLES, SEED, check_rows


@main.command(context_settings=CONTEXT)
@click.argument("models", nargs=-1, required=True, metavar="MODEL...")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@npz_options
@handle_errors
def inspect(models, fmt, **load):
    """The layer graph of MODEL(s): layers, types, activations, shapes, parameters, D and K.

    \b
    Example:
      jacprop inspect sample_models/bishop_tanh.npz
      jacprop inspect model.keras --format json | jq .D
    """
    from ..commands.common import ModelSpec, Outcome, load_model
    from ..commands.inspect import describe

    notes = []
    load["configs"] = tuple(load["configs"])
    info = describe(load_model(ModelSpec(tuple(models), **load), notes))
    if fmt == "json":
        import json

        click.echo(json.dumps(info, indent=2))
    else:
        from ..render_reports import inspect_table

        inspect_table(info)
    finish(Outcome(0, notes))


@main.command(context_settings=CONTEXT)
@click.argument("models", nargs=-1, required=True, metavar="MODEL...")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The .npz file to write.")
@click.option("--input-names", metavar="NAMES|CSV",
              help="Name the D inputs: comma-separated names, or a CSV file whose header holds them. CSV columns "
                   "are then matched to the inputs by name.")
@npz_options
@handle_errors
def convert(models, output, input_names, **load):
    """Write MODEL(s) (a chain, if several) as one NPZ file in jacprop's schema.

    \b
    Example:
      jacprop convert model.h5 -o model.npz
      jacprop convert sample_models/bishop_tanh.npz -o named.npz --input-names sample_models/bishop_tanh.csv
    """
    from ..commands import convert as command
    from ..commands.common import ModelSpec

    load["configs"] = tuple(load["configs"])
    finish(command.run(ModelSpec(tuple(models), **load), output, input_names))


PLOT_KINDS = ("heatmap", "ranking", "profile", "budget", "linearity", "interactions")  # as commands.plot.KINDS
PLOT_STATS = ("mean-abs", "rms", "mean")


@main.command(context_settings=CONTEXT)
@click.argument("kind", type=click.Choice(PLOT_KINDS))
@click.argument("paths", nargs=-1, required=True, metavar="[MODEL... INPUTS | RESULT.npz]")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The picture: FILE.png, FILE.svg or FILE.pdf (format from the suffix).")
@click.option("--stat", type=click.Choice(PLOT_STATS), default="mean-abs", show_default=True,
              help="heatmap, ranking, profile: mean |J|, RMS J or the signed mean over rows.")
@click.option("--top", type=click.IntRange(1), help="Show the top N inputs (heatmap and budget: the rest summed). "
              "Default: heatmap 12, ranking 10, profile 5, budget 7, interactions 12.")
@click.option("--outputs", multiple=True, help="Only these outputs (names or indices, comma-separated); "
              "profile and interactions draw one (default: the first).")
@click.option("--row", type=click.IntRange(1), help="One row (counted from 1 in the file or the selected rows): "
              "budget and interactions at that row; linearity's Monte Carlo panel (default 1).")
@click.option("--input", "input_name", help="profile: against this input's values instead of along the rows.")
@click.option("--features", type=click.IntRange(1), help="profile: sequence inputs of F features per time step "
              "(inputs x0, x1, ... or <input>_0, ... in time-major order): the sensitivity per time step and per "
              "feature. Default: F of the model's (T, F) inputs (MODEL... INPUTS).")
@click.option("--dx", multiple=True, help="MODEL... INPUTS, budget and linearity: the input uncertainty, as for "
              "jacprop propagate (0.01, NAME=0.5, NAME=2%). Repeatable.")
@click.option("--samples", type=SAMPLES, default=4000, show_default=True, help="linearity: Monte Carlo draws at --row.")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="linearity: Monte Carlo seed (as in jacprop propagate).")
@click.option("--dpi", type=click.IntRange(10, 1200), default=100, show_default=True, help="PNG resolution.")
@click.option("--columns", multiple=True, help="MODEL... INPUTS: input columns by name, in order.")
@click.option("--id-column", help="MODEL... INPUTS: a column identifying rows (not an input).")
@click.option("--delimiter", callback=checked(dialect_parser("parse_delimiter")),
              help="MODEL... INPUTS: CSV field delimiter (default: sniffed, as in jacprop jacobian).")
@click.option("--no-header", is_flag=True, help="MODEL... INPUTS: the CSV has no header line (default: a line 1 of "
              "numbers is data).")
@click.option("--rows", "rows", callback=check_rows,
              help="MODEL... INPUTS: only these data rows (counted from 1), e.g. 1-100.")
@click.option("--activation", help="NPZ weight lists: the hidden layers' activation, when the file does not say.")
@click.option("--output-activation", default="linear", show_default=True,
              help="NPZ weight lists: the last layer's activation.")
@handle_errors
def plot(outputs, columns, **options):
    """Draw KIND from MODEL... INPUTS or from what jacobian/propagate/hessian wrote (npz).

    \b
    heatmap       outputs x inputs of --stat, annotated
    ranking       inputs ranked per output, with the spread over rows
    profile       y and J along the rows, against --input, or per time step (--features)
    budget        each input's share of u(y)^2 per output (propagate --budget, or --dx)
    linearity     J dx against f(x+dx)-f(x) (propagate --method linear --check-linearity, or --dx);
                  from MODEL... INPUTS also the Monte Carlo distribution of y at --row against GUM's Gaussian
    interactions  |d2y/dxi dxj| of one output (an npz with a hessian array)

    Needs matplotlib: pip install 'jacprop[plot]'.

    \b
    Example:
      jacprop plot heatmap sample_models/bishop_tanh.npz sample_models/bishop_tanh.csv -o heatmap.png
      jacprop jacobian model.h5 data.csv -o jac.npz && jacprop plot ranking jac.npz -o ranking.svg
      jacprop propagate model.h5 data.csv --dx 0.01 --budget -o u.npz && jacprop plot budget u.npz -o budget.pdf
      jacprop plot linearity model.h5 data.csv --dx temp=0.5 --row 3 -o linearity.png
    """
    from ..commands import plot as command

    command.run(outputs=split_list(outputs), columns=split_list(columns), **options)
