"""The command line: thin click commands over the library.

Errors become one line on stderr, ``jacprop: error: ...``, and an exit code:
0 success, 1 a check or threshold failed, 2 bad usage or input, 130 interrupted.
"""

from __future__ import annotations

import functools
import sys

import click

from . import __version__
from .cli_inputs import checked, dialect_parser, input_dialect_options
from .cli_options import COUNT, COVERAGE, LEVEL, NON_NEGATIVE, POSITIVE, SAMPLES, SEED, check_rows

CONTEXT = {"help_option_names": ["-h", "--help"]}


def fail(message: str, code: int = 2):
    click.echo(f"jacprop: error: {message}", err=True)
    sys.exit(code)


def handle_errors(fn):
    """Turn library errors into messages and exit codes; never a traceback unless --debug."""

    @functools.wraps(fn)
    def wrapper(*args, debug=False, **kwargs):
        from .errors import JacpropError

        try:
            return fn(*args, **kwargs)
        except JacpropError as e:
            if debug:
                raise
            fail(str(e), e.exit_code)
        except KeyboardInterrupt:
            click.echo("jacprop: interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:
            _silence_stdout()
            sys.exit(0)
        except OSError as e:  # writing: disk full, stdout closed, permissions
            if debug:
                raise
            where = f"{e.filename}: " if e.filename else ""
            fail(f"{where}cannot write the output: {e.strerror or e}")
        except click.exceptions.Exit:
            raise
        except Exception as e:  # a bug: say so in one line
            if debug:
                raise
            fail(f"internal error: {type(e).__name__}: {e} (a bug in jacprop; rerun with --debug for details)")

    return click.option("--debug", is_flag=True, help="Show tracebacks.")(wrapper)


def _silence_stdout():
    """Point stdout at /dev/null, dropping what is buffered, so that exiting cannot fail on it again."""
    import os

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def split_list(values) -> tuple[str, ...] | None:
    """--columns a,b --columns c -> ('a', 'b', 'c')."""
    out = tuple(v.strip() for value in values or () for v in value.split(",") if v.strip())
    return out or None


def finish(outcome) -> None:
    """Show a command's notes on stderr and exit with its code."""
    for line in outcome.notes:
        click.echo(line, err=True)
    sys.exit(outcome.code)


def model_and_input_options(fn):
    """Options shared by the commands that read models and an input CSV: they arrive as
    ``load_options`` (for a ModelSpec) and ``csv_options`` (for an InputSpec)."""
    decorators = [
        click.option("--columns", multiple=True,
                     help="Input columns by name, in order (comma-separated or repeated). Default: all but the id "
                          "column. Where the model knows its input names (see inspect), columns are matched to them by name."),
        click.option("--by-position", is_flag=True,
                     help="Take the selected columns in order as the model's inputs, even where their names are the "
                          "model's input names in another order."),
        click.option("--id-column", help="A column carried through to the output to identify rows."),
        *input_dialect_options(),
        click.option("--on-invalid", type=click.Choice(["error", "skip", "keep"]), default="error", show_default=True,
                     help="What to do with rows holding NaN/inf or missing input cells."),
        click.option("--dtype", type=click.Choice(["float64", "float32"]), default="float64", show_default=True),
        click.option("--activation", help="NPZ weight lists: the hidden layers' activation, when the file does not say."),
        click.option("--output-activation", default="linear", show_default=True,
                     help="NPZ weight lists: the last layer's activation."),
        click.option("--refuse-nonfinite-weights", is_flag=True, help="Refuse models with NaN/inf weights (default: warn)."),
        click.option("--config", "configs", multiple=True, type=click.Path(dir_okay=False),
                     help="Keras weights-only file (save_weights): its architecture, the JSON model.to_json() "
                          "wrote; one per weights-only MODEL, in order."),
        click.option("-q", "--quiet", is_flag=True, help="No progress or notes on stderr."),
    ]

    @functools.wraps(fn)
    def with_options(*args, activation, output_activation, refuse_nonfinite_weights, configs, columns, by_position, id_column,
                     delimiter, header, na_values, comment, on_invalid, **kwargs):
        load_options = dict(activation=activation, output_activation=output_activation,
                            refuse_nonfinite=refuse_nonfinite_weights, configs=tuple(configs))
        csv_options = dict(columns=split_list(columns), id_column=id_column, delimiter=delimiter, header=header,
                           on_invalid=on_invalid, na_values=na_values, comment=comment, by_position=by_position)
        return fn(*args, load_options=load_options, csv_options=csv_options, **kwargs)

    for d in reversed(decorators):
        with_options = d(with_options)
    return with_options


OUTPUT_HELP = ("Output file (format from the extension); default stdout. With --engine dask also DIR/ "
               "(a part file per partition + manifest.json).")


def output_options(formats):
    def decorate(fn):
        fn = click.option("--no-row", is_flag=True, help="csv: leave out the first column, row (the data row number "
                          "of the input, counted from 1).")(fn)
        fn = click.option("-o", "--output", type=click.Path(allow_dash=True), help=OUTPUT_HELP)(fn)
        return click.option("--format", "fmt", type=click.Choice(formats),
                            help="Output format. Default: from -o's extension; on stdout a table on a terminal, "
                                 "csv otherwise.")(fn)
    return decorate


def engine_options(fn):
    """--engine {local,dask}, --scheduler, --workers; a directory -o only with --engine dask."""

    @functools.wraps(fn)
    def wrapper(*args, engine, scheduler, workers, **kwargs):
        import os

        if engine == "local" and (scheduler or workers):
            fail(f"{'--scheduler' if scheduler else '--workers'} needs --engine dask")
        output = kwargs.get("output")
        if engine == "local" and output and output != "-" and os.path.isdir(output):
            fail(f"-o {output}: is a directory (a directory of part files needs --engine dask)")
        cluster = {"scheduler": scheduler, "workers": workers} if engine == "dask" else None
        return fn(*args, cluster=cluster, **kwargs)

    wrapped = click.option("--workers", type=click.IntRange(1),
                           help="--engine dask without --scheduler: worker processes (1 thread each) of the "
                                "LocalCluster started on 127.0.0.1. Default: one per CPU.")(wrapper)
    wrapped = click.option("--scheduler", metavar="ADDRESS",
                           help="--engine dask: a running Dask scheduler, e.g. tcp://host:8786 "
                                "(default: start a LocalCluster).")(wrapped)
    return click.option("--engine", type=click.Choice(["local", "dask"]), default="local", show_default=True,
                        help="local: this process; dask: partitions of the INPUTS on a Dask cluster "
                             "(pip install 'jacprop[dask]'). With dask, the arguments are MODEL files (HDF5 or zip "
                             "content) up to the first that is not; the rest are INPUTS: CSV files or quoted globs "
                             "like 'data/part-*.csv'.")(wrapped)


def waiting_note(what: str, quiet: bool) -> None:
    """stdin is a terminal: say what jacprop waits for (a silent wait looks like a hang), then take
    everything typed up to the first Ctrl-D (the readers' block reads would each need one more)."""
    import io

    if not quiet:
        click.echo(f"jacprop: reading {what} from the terminal; end with Ctrl-D (Ctrl-Z Enter on Windows)", err=True)
    typed = sys.stdin.buffer.read()
    sys.stdin = io.TextIOWrapper(io.BufferedReader(io.BytesIO(typed)), encoding="utf-8")


def models_and_inputs(paths):
    """MODEL... INPUTS -> (models, inputs); the last argument is the input."""
    if len(paths) < 2:
        from .errors import UsageError

        raise UsageError("give one or more MODEL files and then the INPUTS csv ('-' for stdin)")
    return tuple(paths[:-1]), paths[-1]


class Main(click.Group):
    """Click's own usage errors become one ``jacprop: error:`` line too, exit code 2."""

    def main(self, *args, **kwargs):
        kwargs.pop("standalone_mode", None)
        try:
            try:
                super().main(*args, standalone_mode=False, **kwargs)
            except SystemExit:
                _flush_stdout()
                raise
            _flush_stdout()  # here, not at interpreter exit where a failure would print a traceback
        except click.ClickException as e:
            fail(f"{' '.join(e.format_message().split())} (see jacprop --help)", e.exit_code)
        except click.exceptions.Abort:
            click.echo("jacprop: interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:  # `jacprop ... | head -1`: the reader has all it wanted
            _silence_stdout()
            sys.exit(0)
        except OSError as e:  # help or a table onto a full disk (`> /dev/full`)
            _silence_stdout()
            fail(f"cannot write the output: {e.strerror or e}")


def _flush_stdout():
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        raise


@click.group(cls=Main, context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="jacprop")
def main():
    """Jacobians dy/dx of saved neural networks at every input row, and how input
    uncertainty becomes output uncertainty (Delta y ~= J Delta x).

    Models: Keras .h5 (Keras 2 and 3), Keras 3 .keras, NPZ.  Inputs: CSV, '-' for stdin.
    """
    import warnings

    import numpy as np

    from .engine import keep_freed_memory

    keep_freed_memory()
    np.seterr(all="ignore")  # NaN and overflow show in the results and in jacprop's own notes, not as numpy warnings
    warnings.filterwarnings("ignore", category=RuntimeWarning)


@main.command(context_settings=CONTEXT)
@click.argument("paths", nargs=-1, required=True, metavar="MODEL... INPUTS")
@model_and_input_options
@output_options(["table", "csv", "jsonl", "npy", "npz"])
@engine_options
@click.option("--mode", type=click.Choice(["auto", "reverse", "forward"]), default="auto", show_default=True,
              help="reverse: cost ~ outputs; forward: cost ~ inputs; auto: the cheaper.")
@click.option("--outputs", multiple=True, help="Only these outputs (names or indices, comma-separated).")
@click.option("--wrt", multiple=True, help="Only derivatives with respect to these inputs (names or indices).")
@click.option("--output-names", multiple=True, help="Names for the K outputs (comma-separated), instead of the model's.")
@click.option("--logits", is_flag=True, help="Jacobian of the output layers' pre-activations (e.g. before a softmax).")
@click.option("--rows", "rows", callback=check_rows, help="Only these data rows (counted from 1), e.g. 1-5,10,20-.")
@click.option("--summary", is_flag=True,
              help="Statistics of J over all rows per output and input, inputs ranked by mean |J|.")
@click.option("--max-rows", type=COUNT, default=10, show_default=True, help="Rows shown one by one in the table format.")
@handle_errors
def jacobian(paths, load_options, csv_options, dtype, quiet, output, no_row, fmt, mode, outputs, wrt, output_names,
             logits, rows, summary, max_rows, cluster):
    """J[k, i] = dy_k/dx_i (and y) at every row of INPUTS.

    Several MODEL files are applied in order (the output of one feeds the next).

    \b
    Example:
      jacprop jacobian sample_models/bishop_tanh.npz sample_models/bishop_tanh.csv
      jacprop jacobian model.h5 data.csv --id-column id -o jac.npz
      jacprop jacobian model.keras data.csv --summary
      jacprop jacobian model.h5 'data/part-*.csv' --engine dask -o out/   # parts + manifest.json
    """
    from .commands import jacobian as command
    from .commands.common import InputSpec, ModelSpec, OutputSpec

    def spec_for(models, inputs):
        return command.JacobianSpec(
            ModelSpec(models, logits=logits, output_names=split_list(output_names), **load_options),
            InputSpec(inputs, rows=rows, **csv_options),
            OutputSpec(output, fmt, dtype, max_rows, quiet, not no_row), mode,
            split_list(outputs), split_list(wrt), summary)

    if cluster is not None:
        from .cluster import runner

        finish(runner.run_jacobian(paths, spec_for, **cluster))
    models, inputs = models_and_inputs(paths)
    if inputs == "-" and sys.stdin.isatty():
        waiting_note("the INPUTS csv", quiet)
    finish(command.run(command.prepare(spec_for(models, inputs))))


@main.command(context_settings=CONTEXT)
@click.argument("paths", nargs=-1, required=True, metavar="MODEL... INPUTS")
@model_and_input_options
@output_options(["table", "csv", "jsonl", "npy", "npz"])
@click.option("--outputs", multiple=True, help="Only these outputs (names or indices, comma-separated).")
@click.option("--wrt", multiple=True, help="Only these inputs (names or indices): J and the D' x D' block of H.")
@click.option("--diagonal", is_flag=True, help="Only d2y/dxi^2 (N, K, D): D times less output, the same cost.")
@click.option("--output-names", multiple=True, help="Names for the K outputs (comma-separated), instead of the model's.")
@click.option("--logits", is_flag=True, help="Derivatives of the output layers' pre-activations (e.g. before a softmax).")
@click.option("--rows", "rows", callback=check_rows, help="Only these data rows (counted from 1), e.g. 1-5,10,20-.")
@click.option("--top", type=click.IntRange(1), default=5, show_default=True,
              help="Table: the largest interactions shown per output.")
@click.option("--max-rows", type=COUNT, default=10, show_default=True, help="Rows shown one by one in the table format.")
@handle_errors
def hessian(paths, load_options, csv_options, dtype, quiet, output, no_row, fmt, outputs, wrt, diagonal, output_names,
            logits, rows, top, max_rows):
    """H[k, i, j] = d2y_k/dx_i dx_j (and y, J) at every row of INPUTS.

    Exact (forward-over-reverse), in blocks of rows. H has K x D x D values per row: --wrt, --outputs
    and --diagonal make it smaller. Several MODEL files are applied in order (the chain rule).

    \b
    Example:
      jacprop hessian sample_models/bishop_tanh.npz sample_models/bishop_tanh.csv
      jacprop hessian model.h5 data.csv -o hess.npz
      jacprop hessian model.h5 data.csv --wrt temp,pressure --outputs 0 --format csv
      jacprop hessian model.h5 data.csv --diagonal -o curvature.npz
    """
    from .commands import hessian as command
    from .commands.common import InputSpec, ModelSpec, OutputSpec

    models, inputs = models_and_inputs(paths)
    spec = command.HessianSpec(
        ModelSpec(models, logits=logits, output_names=split_list(output_names), **load_options),
        InputSpec(inputs, rows=rows, **csv_options), OutputSpec(output, fmt, dtype, max_rows, quiet, not no_row),
        split_list(outputs), split_list(wrt), diagonal, top)
    finish(command.run(command.prepare(spec)))


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
@click.option("--method", "methods", multiple=True, type=click.Choice(["linear", "gum", "worst", "mc", "all"]),
              help="linear: J dx; gum: sqrt(J Sigma J^T) (default); worst: sum |J| |dx|; mc: Monte Carlo through "
                   "the network.")
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
              help="Coverage probability in (0, 1), e.g. 0.95: k from the normal distribution (Student's t with --dof); also "
                   "the mc interval.")
@click.option("--output-cov", is_flag=True,
              help="Also write the output covariance per row: J Sigma J^T (cov), and from the draws with mc (cov_mc).")
@click.option("--check-linearity", is_flag=True,
              help="Departure from linearity along each input i: e_i = max(|f(x+dx_i)-f(x)-J_i dx_i|, "
                   "|f(x)-f(x-dx_i)-J_i dx_i|); nonlinearity = sqrt(sum_i e_i^2) / u; flag rows above --tol.")
@click.option("--tol", type=POSITIVE, default=0.1, show_default=True,
              help="The nonlinearity (> 0) that --check-linearity flags.")
@click.option("--budget", is_flag=True,
              help="Write each input's share of u(y)^2: c_i (Sigma c)_i / u^2 (c = J's row; the shares sum to 1; "
                   "c_i^2 dx_i^2 / u^2 without correlation; negative where a correlation lowers u).")
@click.option("--validate", is_flag=True,
              help="Validate GUM by Monte Carlo (JCGM 101 8): gum_valid = 1 where |y -/+ U - mc interval end| <= "
                   "delta (the tolerance of u at --digits), at --level (default 0.95). Implies --method gum and mc.")
@click.option("--require-valid", is_flag=True, help="Gate: exit 1 if --validate fails on any row (implies --validate).")
@click.option("--max-dy", multiple=True,
              help="Gate: exit 1 if an estimate exceeds VALUE or OUTPUT=VALUE (or is NaN/inf).")
@click.option("--max-nonlinearity", type=NON_NEGATIVE,
              help="Gate: exit 1 if the nonlinearity exceeds this (>= 0; or is NaN/inf).")
@click.option("--rows", "rows", callback=check_rows, help="Only these data rows (counted from 1), e.g. 1-5,10.")
@click.option("--max-rows", type=COUNT, default=10, show_default=True, help="Rows shown in the table format.")
@click.option("--outputs", multiple=True, help="Only these outputs (names or indices, comma-separated).")
@click.option("--wrt", multiple=True, help="Only the uncertainty of these inputs (names or indices); the others are "
              "taken as exact, so each estimate is the part of u(y) that comes from these inputs.")
@click.option("--summary", is_flag=True, help="Statistics of every estimate over all rows per output (mean, RMS, "
              "std, min, max, row of the largest), instead of the rows.")
@handle_errors
def propagate(paths, load_options, csv_options, dtype, quiet, output, no_row, fmt, mode, dx, dx_column, cov_file, corr_file,
              methods, samples, digits, interval, seed, dist, dof, coverage, level, output_cov, check_linearity, tol,
              budget, validate, require_valid, max_dy, max_nonlinearity, rows, max_rows, outputs, wrt, summary,
              cluster):
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
    from .commands import propagate as command
    from .commands.common import InputSpec, ModelSpec, OutputSpec

    def spec_for(models, inputs):
        return command.PropagateSpec(
            ModelSpec(models, **load_options) if models else None, InputSpec(inputs, rows=rows, **csv_options),
            OutputSpec(output, fmt, dtype, max_rows, quiet, not no_row),
            command.UncertaintySpec(tuple(dx), tuple(dx_column), cov_file, corr_file), tuple(methods), mode,
            samples=samples, seed=seed, digits=digits, interval=interval, dist=tuple(dist), dof=tuple(dof),
            validate=validate, require_valid=require_valid, coverage=coverage, level=level, output_cov=output_cov,
            check_linearity=check_linearity, tol=tol, budget=budget, max_dy=tuple(max_dy),
            max_nonlinearity=max_nonlinearity, outputs=split_list(outputs), wrt=split_list(wrt), summary=summary)

    if cluster is not None:
        from .cluster import runner

        finish(runner.run_propagate(paths, spec_for, **cluster))
    models, inputs = models_and_inputs(paths) if len(paths) >= 2 else ((), paths[0] if paths else "-")
    if inputs == "-" and sys.stdin.isatty():
        if not paths:
            fail("nothing to read: give MODEL... INPUTS, or pipe what `jacprop jacobian` wrote into stdin "
                 "(jacprop jacobian model.h5 data.csv | jacprop propagate --dx 0.01)")
        waiting_note("what `jacprop jacobian` wrote (csv or jsonl)" if not models else "the INPUTS csv", quiet)
    finish(command.run(command.prepare(spec_for(models, inputs))))


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
def check(paths, load_options, csv_options, dtype, quiet, order, tol, allow_flat, logits, expect_y, y_tol, rows,
          output, fmt):
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
    from .commands import check as command
    from .commands.common import InputSpec, ModelSpec
    from .io.writers import atomic_output

    models, inputs = models_and_inputs(paths)
    fmt = fmt or ("json" if output and output.lower().endswith(".json") else "table")
    spec = command.CheckSpec(ModelSpec(models, logits=logits, **load_options), InputSpec(inputs, rows=rows, **csv_options),
                             tol, expect_y, y_tol, dtype, order, allow_flat)
    result, outcome = command.run(spec)
    with atomic_output(output) as out:
        if fmt == "json":
            import json

            out.file.write((json.dumps(result, indent=2) + "\n").encode())
        else:
            from .render import check_tables

            check_tables(result, out.file)
    finish(outcome)


NPZ_OPTIONS = [
    click.option("--activation", help="NPZ weight lists: the hidden layers' activation, when the file does not say."),
    click.option("--output-activation", default="linear", show_default=True,
                 help="NPZ weight lists: the last layer's activation."),
    click.option("--config", "configs", multiple=True, type=click.Path(dir_okay=False),
                 help="Keras weights-only file (save_weights): its architecture, the JSON model.to_json() "
                      "wrote; one per weights-only MODEL, in order."),
]


def npz_options(fn):
    for d in reversed(NPZ_OPTIONS):
        fn = d(fn)
    return fn


@main.command(context_settings=CONTEXT)
@click.argument("models", nargs=-1, required=True, metavar="MODEL...")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@npz_options
@handle_errors
def inspect(models, fmt, activation, output_activation, configs):
    """The layer graph of MODEL(s): layers, types, activations, shapes, parameters, D and K.

    \b
    Example:
      jacprop inspect sample_models/bishop_tanh.npz
      jacprop inspect model.keras --format json | jq .D
    """
    from .commands.common import ModelSpec, Outcome, load_model
    from .commands.inspect import describe

    notes = []
    info = describe(load_model(ModelSpec(tuple(models), activation, output_activation, configs=tuple(configs)), notes))
    if fmt == "json":
        import json

        click.echo(json.dumps(info, indent=2))
    else:
        from .render import inspect_table

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
def convert(models, output, input_names, activation, output_activation, configs):
    """Write MODEL(s) (a chain, if several) as one NPZ file in jacprop's schema.

    \b
    Example:
      jacprop convert model.h5 -o model.npz
      jacprop convert sample_models/bishop_tanh.npz -o named.npz --input-names sample_models/bishop_tanh.csv
    """
    from .commands import convert as command
    from .commands.common import ModelSpec

    finish(command.run(ModelSpec(tuple(models), activation, output_activation, configs=tuple(configs)), output, input_names))


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
              "(inputs x0, x1, ... or <input>_0, ... in time-major order): the sensitivity per time step.")
@click.option("--dx", multiple=True, help="MODEL... INPUTS, budget and linearity: the input uncertainty, as for "
              "jacprop propagate (0.01, NAME=0.5, NAME=2%). Repeatable.")
@click.option("--samples", type=SAMPLES, default=4000, show_default=True, help="linearity: Monte Carlo draws at --row.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="linearity: Monte Carlo seed (as in jacprop propagate).")
@click.option("--dpi", type=click.IntRange(10, 1200), default=100, show_default=True, help="PNG resolution.")
@click.option("--columns", multiple=True, help="MODEL... INPUTS: input columns by name, in order.")
@click.option("--id-column", help="MODEL... INPUTS: a column identifying rows (not an input).")
@click.option("--delimiter", callback=checked(dialect_parser("parse_delimiter")),
              help="MODEL... INPUTS: CSV field delimiter (default: sniffed, as in jacprop jacobian).")
@click.option("--no-header", is_flag=True, help="MODEL... INPUTS: the CSV has no header line (default: a line 1 of "
              "numbers is data).")
@click.option("--rows", "rows", callback=check_rows, help="MODEL... INPUTS: only these data rows (counted from 1), e.g. 1-100.")
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
    from .commands import plot as command

    command.run(outputs=split_list(outputs), columns=split_list(columns), **options)
