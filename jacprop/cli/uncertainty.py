"""``jacprop propagate``: output uncertainty from input uncertainty at every row, with gates."""

from __future__ import annotations

import sys

import click

from .app import CONTEXT, fail, finish, handle_errors, main, models_and_inputs, split_list, waiting_note
from .options import engine_options, input_spec, model_and_input_options, model_spec, output_options, output_spec
from .types import COUNT, COVERAGE, LEVEL, NON_NEGATIVE, POSITIVE, SAMPLES, SEED, check_rows  # noqa: F401

# PropagateSpec fields given as the options of the same name
SETTINGS = ("samples", "seed", "digits", "interval", "validate", "require_valid", "coverage", "level", "output_cov",
            "check_linearity", "tol", "budget", "max_nonlinearity", "summary")


@main.command(context_settings=CONTEXT)
@click.argument("paths", nargs=-1, metavar="[MODEL... INPUTS | JACOBIAN]")
@model_and_input_options
@engine_options
@output_options(["table", "csv", "jsonl", "npz"])
@click.option("--mode", type=click.Choice(["auto", "reverse", "forward"]), default="auto", show_default=True)
@click.option("--dx", multiple=True,
              help="Input uncertainty: 0.01 (every input), NAME=0.5, NAME=2% (of |x| at each row). Repeatable.")
@click.option("--dx-column", multiple=True, help="Per-row uncertainty from a CSV column: INPUT=COLUMN. Repeatable.")
@click.option("--cov", "cov_file", type=click.Path(dir_okay=False),
              help="A D x D input covariance (CSV, header = input names).")
@click.option("--corr", "corr_file", type=click.Path(dir_okay=False),
              help="A D x D input correlation matrix (CSV); the sigmas come from --dx.")
@click.option("--method", "methods", multiple=True, type=click.Choice(["linear", "gum", "gum2", "worst", "mc", "all"]),
              help="linear: J dx; gum: sqrt(J Sigma J^T) (default); gum2: second order, sqrt(J Sigma J^T + "
                   "tr(H Sigma H Sigma)/2) and the mean shift tr(H Sigma)/2 (needs H: the model, or a `jacprop "
                   "hessian` npz); worst: sum |J| |dx|; mc: Monte Carlo through the network; all: linear, gum, "
                   "worst, mc.")
@click.option("--samples", type=SAMPLES, default=200_000, show_default=True,
              help="Monte Carlo: the most draws per row (the cap of the adaptive procedure; a note names the rows "
                   "that reach it).")
@click.option("--digits", type=click.IntRange(0, 6), default=2, show_default=True,
              help="Monte Carlo: draw batches of 10^4 until u, the mean and the interval ends are stable to this many "
                   "significant digits of u (JCGM 101 7.9); 0: exactly --samples draws (7.2). Also the tolerance "
                   "of --validate (which needs digits >= 1).")
@click.option("--interval", type=click.Choice(["symmetric", "shortest"]), default="symmetric", show_default=True,
              help="Monte Carlo coverage interval at --level (default 0.95): probabilistically symmetric or shortest "
                   "(JCGM 101 7.7).")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Monte Carlo random seed (an integer >= 0).")
@click.option("--dist", multiple=True, metavar="[NAME=]normal|rect|triangular|arcsine|t:NU",
              help="Monte Carlo: an input's distribution, scaled so that its standard deviation is --dx (rect: "
                   "half-width sqrt(3)·dx; triangular: sqrt(6)·dx; arcsine: sqrt(2)·dx; t:NU: NU > 2). "
                   "Correlated inputs must be normal. Repeatable.")
@click.option("--dof", multiple=True, metavar="[NAME=]NU",
              help="Degrees of freedom of an input's uncertainty (default infinite): gum writes the "
                   "Welch-Satterthwaite nu_eff and, with --level, takes k from Student's t (JCGM 100 G.4). Repeatable.")
@click.option("--coverage", type=COVERAGE, help="Coverage factor k >= 1: expanded uncertainty U = k u.")
@click.option("--level", type=LEVEL,
              help="Coverage probability in (0, 1), e.g. 0.95: k from the normal distribution (Student's t with "
                   "--dof); also "
                   "the mc interval.")
@click.option("--output-cov", is_flag=True,
              help="Also write the output covariance per row: J Sigma J^T (cov), and from the draws with mc (cov_mc).")
@click.option("--check-linearity", is_flag=True,
              help="Departure from linearity along each input i: e_i = max(|f(x+dx_i)-f(x)-J_i dx_i|, "
                   "|f(x)-f(x-dx_i)-J_i dx_i|); nonlinearity = sqrt(sum_i e_i^2) / u; with H also nonlinearity_hess = "
                   "sqrt(tr(H Sigma H Sigma)/2) / u and shift_rel = |tr(H Sigma)/2| / u; flag rows where the worst "
                   "of the three is above --tol.")
@click.option("--tol", type=POSITIVE, default=0.1, show_default=True,
              help="The nonlinearity (> 0) that --check-linearity flags.")
@click.option("--budget", is_flag=True,
              help="Write each input's share of u(y)^2: c_i (Sigma c)_i / u^2 (c = J's row; the shares sum to 1; "
                   "c_i^2 dx_i^2 / u^2 without correlation; negative where a correlation lowers u).")
@click.option("--validate", is_flag=True,
              help="Validate GUM by Monte Carlo (JCGM 101 8): gum_valid = 1 where |y -/+ U - mc interval end| <= "
                   "delta (the tolerance of u at --digits), at --level (default 0.95); with --method gum2 also "
                   "gum2_valid (y -/+ U_gum2). Implies mc, and gum unless gum2 is asked for.")
@click.option("--require-valid", is_flag=True, help="Gate: exit 1 if --validate fails on any row (implies --validate).")
@click.option("--max-dy", multiple=True,
              help="Gate: exit 1 if an estimate exceeds VALUE or OUTPUT=VALUE (or is NaN/inf).")
@click.option("--max-nonlinearity", type=NON_NEGATIVE,
              help="Gate: exit 1 if the worst of nonlinearity, nonlinearity_hess and shift_rel exceeds this "
                   "(>= 0; or is NaN/inf).")
@click.option("--rows", "rows", callback=check_rows, help="Only these data rows (counted from 1), e.g. 1-5,10.")
@click.option("--max-rows", type=COUNT, default=10, show_default=True, help="Rows shown in the table format.")
@click.option("--outputs", multiple=True, help="Only these outputs (names or indices, comma-separated).")
@click.option("--wrt", multiple=True, help="Only the uncertainty of these inputs (names or indices); the others are "
              "taken as exact, so each estimate is the part of u(y) that comes from these inputs.")
@click.option("--summary", is_flag=True, help="Statistics of every estimate over all rows per output (mean, RMS, "
              "std, min, max, row of the largest), instead of the rows.")
@handle_errors
def propagate(paths, **o):
    """Output uncertainty from input uncertainty, Delta y ~= J Delta x, at every row.

    Reads MODEL... INPUTS, or what `jacprop jacobian` wrote (csv, jsonl or npz; a file
    or stdin).  Exit code 1 when a --max-dy, --max-nonlinearity or --require-valid gate is
    crossed, or a gated result is NaN/inf (reported on stderr also without a gate).

    \b
    Example:
      jacprop propagate sample_models/bishop_tanh.npz sample_models/bishop_tanh.csv --dx 0.01
      jacprop jacobian model.h5 data.csv | jacprop propagate --dx 0.01 --method worst
      jacprop propagate model.h5 data.csv --dx temp=0.5 --dx pressure=2% --method all --check-linearity
      jacprop propagate model.h5 data.csv --cov cov.csv --max-dy 0.05   # a CI gate
      jacprop propagate model.h5 a.csv b.csv --dx 0.01 --engine dask --scheduler tcp://host:8786 -o u.csv
    """
    from ..commands import propagate as command

    def spec_for(models, inputs):
        unc = command.UncertaintySpec(tuple(o["dx"]), tuple(o["dx_column"]), o["cov_file"], o["corr_file"])
        settings = {key: o[key] for key in SETTINGS}
        return command.PropagateSpec(
            model_spec(models, o) if models else None, input_spec(inputs, o), output_spec(o), unc, tuple(o["methods"]),
            o["mode"], dist=tuple(o["dist"]), dof=tuple(o["dof"]), max_dy=tuple(o["max_dy"]),
            outputs=split_list(o["outputs"]), wrt=split_list(o["wrt"]), **settings)

    if o["cluster"] is not None:
        from ..cluster import runner

        finish(runner.run_propagate(paths, spec_for, **o["cluster"]))
    models, inputs = models_and_inputs(paths) if len(paths) >= 2 else ((), paths[0] if paths else "-")
    if inputs == "-" and sys.stdin.isatty():
        if not paths:
            fail("nothing to read: give MODEL... INPUTS, or pipe what `jacprop jacobian` wrote into stdin "
                 "(jacprop jacobian model.h5 data.csv | jacprop propagate --dx 0.01)")
        waiting_note("what `jacprop jacobian` wrote (csv or jsonl)" if not models else "the INPUTS csv", o["quiet"])
    finish(command.run(command.prepare(spec_for(models, inputs))))
