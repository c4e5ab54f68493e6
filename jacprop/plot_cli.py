"""``jacprop plot KIND [MODEL... INPUTS | RESULT.npz] -o FILE.{png,svg,pdf}``: the click command.

The pictures are drawn by ``jacprop.plot``; this module reads the data for them, from an npz that
``jacprop jacobian``/``propagate``/``hessian`` wrote or by computing through the public API from
MODEL... INPUTS, and writes the file.  It imports nothing from ``jacprop.cli`` at import time, so that
cli.py can register it with ``main.add_command(plot)``.
"""

from __future__ import annotations

import click

# jacprop.plot's KINDS and STATS (a test checks), written out so that `jacprop --version` does not import numpy
KINDS = ("heatmap", "ranking", "profile", "budget", "linearity", "interactions")
STATS = ("mean-abs", "rms", "mean")
CONTEXT = {"help_option_names": ["-h", "--help"]}
TOP = {"heatmap": 12, "ranking": 10, "profile": 5, "budget": 7, "interactions": 12}


@click.command(context_settings=CONTEXT)
@click.argument("kind", type=click.Choice(KINDS))
@click.argument("paths", nargs=-1, required=True, metavar="[MODEL... INPUTS | RESULT.npz]")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The picture: FILE.png, FILE.svg or FILE.pdf (format from the suffix).")
@click.option("--stat", type=click.Choice(STATS), default="mean-abs", show_default=True,
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
@click.option("--samples", default=4000, show_default=True, help="linearity: Monte Carlo draws at --row.")
@click.option("--seed", default=0, show_default=True, help="linearity: Monte Carlo seed (as in jacprop propagate).")
@click.option("--dpi", type=click.IntRange(10, 1200), default=100, show_default=True, help="PNG resolution.")
@click.option("--columns", multiple=True, help="MODEL... INPUTS: input columns by name, in order.")
@click.option("--id-column", help="MODEL... INPUTS: a column identifying rows (not an input).")
@click.option("--delimiter", default=",", show_default=True, help="MODEL... INPUTS: CSV field delimiter.")
@click.option("--no-header", is_flag=True, help="MODEL... INPUTS: the CSV has no header line.")
@click.option("--rows", "rows", help="MODEL... INPUTS: only these data rows (counted from 1), e.g. 1-100.")
@click.option("--activation", help="NPZ weight lists: the hidden layers' activation, when the file does not say.")
@click.option("--output-activation", default="linear", show_default=True,
              help="NPZ weight lists: the last layer's activation.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def plot(debug, **options):
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
    from .cli import handle_errors  # at call time: cli.py imports this module

    return handle_errors(run_plot)(debug=debug, **options)


def run_plot(kind, paths, output, stat, top, outputs, row, input_name, features, dx, samples, seed, dpi,
             columns, id_column, delimiter, no_header, rows, activation, output_activation):
    from . import plot as P
    from .cli import split_list
    from .errors import UsageError

    P.format_for(output)  # a bad suffix fails before any work
    P.pyplot()  # and so does a missing matplotlib
    top = top if top is not None else TOP.get(kind)
    model_options = dict(columns=split_list(columns), id_column=id_column, delimiter=delimiter, header=not no_header,
                         rows=rows, load_options={"activation": activation, "output_activation": output_activation})
    if len(paths) == 1:
        given = [opt for opt, v in (("--dx", dx), ("--columns", columns), ("--id-column", id_column), ("--rows", rows))
                 if v]
        if given:
            raise UsageError(f"{given[0]} needs MODEL... INPUTS; {paths[0]} is a result to draw as it is")
        data, source, model = P.load_result(paths[0]), paths[0], None
    else:
        data, model = compute(kind, paths, dx, **model_options)
        source = paths[-1]
    in_names, out_names = data.get("input_names"), data.get("output_names")
    if in_names is None or out_names is None:
        raise UsageError(f"{source}: no input_names/output_names arrays (is it an npz written by jacprop?)")
    out_idx = _outputs(outputs, out_names)
    n = _rows_in(data)
    if row is not None and row > n:
        raise UsageError(f"--row {row}: {source} has {n} rows")
    r0 = None if row is None else row - 1

    if kind == "heatmap":
        (J,) = P.require(data, ["jacobian"], kind, source)
        keep = out_idx or list(range(len(out_names)))
        fig = P.plot_heatmap(J[:, keep], in_names, [out_names[k] for k in keep], stat, top)
    elif kind == "ranking":
        (J,) = P.require(data, ["jacobian"], kind, source)
        fig = P.plot_ranking(J, in_names, out_names, stat, top, out_idx)
    elif kind == "profile":
        (J,) = P.require(data, ["jacobian"], kind, source)
        if features:
            if input_name:
                raise UsageError("give --input or --features, not both")
            fig = P.plot_profile_steps(J, in_names, out_names, features, stat, out_idx)
        else:
            x = x_label = None
            if input_name:
                (X,) = P.require(data, ["x"], kind, source)
                i = _index(input_name, in_names, "--input")
                x, x_label = X[:, i], in_names[i]
            fig = P.plot_profile(J, data.get("y"), in_names, out_names, _one(out_idx), x, x_label or "row", top, stat)
    elif kind == "budget":
        (B,) = P.require(data, ["budget"], kind, source)
        fig = P.plot_budget(B, in_names, out_names, data.get("dy_gum"), r0, top, out_idx)
    elif kind == "linearity":
        lin, plus, minus = P.require(data, ["dy_linear", "dy_plus", "dy_minus"], kind, source)
        keep = out_idx or list(range(len(out_names)))
        mc = None
        if model is not None:
            mc = monte_carlo_panel(model, data, r0 or 0, _one(out_idx), samples, seed)
        fig = P.plot_linearity(lin[:, keep], plus[:, keep], minus[:, keep], [out_names[k] for k in keep], mc)
    else:
        (H,) = P.require(data, ["hessian"], kind, source)
        fig = P.plot_interactions(H, in_names, out_names, _one(out_idx), r0, top)
    P.save(fig, output, dpi)


def compute(kind, paths, dx, columns, id_column, delimiter, header, rows, load_options):
    """The arrays the kind needs, from MODEL... INPUTS, through jacprop's public API and CSV reader;
    returns (data, model) with data shaped like the npz the commands write."""
    import numpy as np

    import jacprop

    from . import propagate as P
    from .errors import InputError, UsageError
    from .pipeline import jacobian_chunks, open_inputs, parse_rows

    model = jacprop.load(*paths[:-1], **{k: v for k, v in load_options.items() if v is not None})
    reader = open_inputs(model, paths[-1], columns, id_column, delimiter, header)
    chunks = jacobian_chunks(model, reader, "auto", None, None, "float64", parse_rows(rows))
    try:
        parts = [(r.copy(), X.copy(), Y.copy(), J.copy()) for r, _, X, Y, J, _ in chunks]
    finally:
        reader.close()
    if not parts:
        raise InputError(f"{paths[-1]}: no data rows")
    rows, X, Y, J = (np.concatenate(a) for a in zip(*parts))
    data = {"rows": rows, "x": X, "y": Y, "jacobian": J, "input_names": list(reader.columns),
            "output_names": list(model.output_names)}
    if kind in ("budget", "linearity"):
        if not dx:
            raise UsageError(f"the {kind} plot from MODEL... INPUTS needs --dx (the input uncertainty)")
        d = P.parse_dx(list(dx), data["input_names"]).dx(X)
        data["dx"] = d
        data["dy_gum"] = P.gum(J, d)
        data["budget"] = P.budget(J, d)
        if kind == "linearity":
            forward = lambda A: model.forward(A, deterministic=True)
            data["dy_linear"] = P.linear(J, d)
            _, data["dy_plus"], data["dy_minus"] = P.linearity(forward, X, Y, J, d)
    if kind == "interactions":
        hessian = getattr(jacprop, "hessian", None)  # jacprop.hessian is on its way (DESIGN.md)
        if hessian is None:
            raise UsageError("this jacprop cannot compute Hessians yet: "
                             "give an npz with a 'hessian' array (N, K, D, D)")
        data["hessian"] = hessian(model, X)[2]
    return data, model


def monte_carlo_panel(model, data, r, k, samples, seed):
    """The linearity plot's second panel: y at row r (0-based) under x + dx z, and GUM's u."""
    from .plot import mc_samples

    ys = mc_samples(lambda A: model.forward(A, deterministic=True), data["x"][r], data["dx"][r], samples, seed,
                    data["rows"][r])
    return {"samples": ys[:, k], "y": data["y"][r, k], "u": data["dy_gum"][r, k], "row": int(data["rows"][r]),
            "output": data["output_names"][k]}


def _rows_in(data):
    for name in ("jacobian", "budget", "dy_plus", "hessian", "y", "x"):
        if name in data:
            return len(data[name])
    return 0


def _outputs(outputs, names):
    from .cli import split_list
    from .pipeline import resolve

    return resolve(split_list(outputs), names, "outputs")


def _one(out_idx):
    from .errors import UsageError

    if out_idx and len(out_idx) > 1:
        raise UsageError("this plot draws one output: give one with --outputs")
    return out_idx[0] if out_idx else 0


def _index(name, names, option):
    from .pipeline import resolve

    return resolve([name], names, option.lstrip("-"))[0]
