"""``jacprop plot KIND [MODEL... INPUTS | RESULT.npz] -o FILE.{png,svg,pdf}``.

The pictures are drawn by ``jacprop.plot``; this module reads the data for them, from an npz that
``jacprop jacobian``/``propagate``/``hessian`` wrote or by computing from MODEL... INPUTS, and writes
the file.  ``outputs`` and ``columns`` arrive as tuples of names (the CLI splits them).
"""

from __future__ import annotations

from ..errors import InputError, UsageError
from .common import InputSpec, jacobian_blocks, open_inputs, parse_rows, resolve

# jacprop.plot's KINDS and STATS (a test checks), written out so that `jacprop --version` does not import numpy
KINDS = ("heatmap", "ranking", "profile", "budget", "linearity", "interactions")
STATS = ("mean-abs", "rms", "mean")
TOP = {"heatmap": 12, "ranking": 10, "profile": 5, "budget": 7, "interactions": 12}


def run(kind, paths, output, stat, top, outputs, row, input_name, features, dx, samples, seed, dpi,
             columns, id_column, delimiter, no_header, rows, activation, output_activation):
    from .. import plot as P

    P.format_for(output)  # a bad suffix fails before any work
    P.pyplot()  # and so does a missing matplotlib
    top = top if top is not None else TOP.get(kind)
    model_options = dict(columns=columns, id_column=id_column, delimiter=delimiter, header=False if no_header else None,
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

    from .. import propagate as P
    from ..loaders import load

    model = load(*paths[:-1], **{k: v for k, v in load_options.items() if v is not None})
    reader = open_inputs(model, InputSpec(paths[-1], columns, id_column, delimiter, header))
    blocks = jacobian_blocks(model, reader, "auto", None, None, "float64", parse_rows(rows))
    try:
        parts = [(b.rows.copy(), b.X.copy(), b.Y.copy(), b.J.copy()) for b in blocks]
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
        import jacprop

        hessian = getattr(jacprop, "hessian", None)  # jacprop.hessian is on its way (DESIGN.md)
        if hessian is None:
            raise UsageError("this jacprop cannot compute Hessians yet: "
                             "give an npz with a 'hessian' array (N, K, D, D)")
        data["hessian"] = hessian(model, X)[2]
    return data, model


def monte_carlo_panel(model, data, r, k, samples, seed):
    """The linearity plot's second panel: y at row r (0-based) under x + dx z, and GUM's u."""
    from ..plot import mc_samples

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
    return resolve(outputs, names, "outputs")


def _one(out_idx):
    if out_idx and len(out_idx) > 1:
        raise UsageError("this plot draws one output: give one with --outputs")
    return out_idx[0] if out_idx else 0


def _index(name, names, option):
    return resolve([name], names, option.lstrip("-"))[0]
