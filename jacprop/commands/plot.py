"""``jacprop plot KIND [MODEL... INPUTS | RESULT.npz] -o FILE.{png,svg,pdf}``.

The pictures are drawn by ``jacprop.plot``; this module reads the data for them, from an npz that
``jacprop jacobian``/``propagate``/``hessian`` wrote or by computing from MODEL... INPUTS, and writes
the file.  ``outputs`` and ``columns`` arrive as tuples of names (the CLI splits them).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError
from .common import InputSpec, jacobian_blocks, open_inputs, parse_rows, resolve

# jacprop.plot's KINDS and STATS (a test checks), written out so that `jacprop --version` does not import numpy
KINDS = ("heatmap", "ranking", "profile", "budget", "linearity", "interactions")
STATS = ("mean-abs", "rms", "mean")
TOP = {"heatmap": 12, "ranking": 10, "profile": 5, "budget": 7, "interactions": 12}


@dataclass(frozen=True)
class PlotSpec:
    """The options of ``jacprop plot`` (as the CLI names them)."""

    kind: str
    paths: tuple
    output: str
    stat: str = "mean-abs"
    top: int | None = None
    outputs: tuple | None = None
    row: int | None = None  # 1-based
    input_name: str | None = None
    features: int | None = None
    dx: tuple = ()
    samples: int = 4000
    seed: int = 0
    dpi: int = 100
    columns: tuple | None = None
    id_column: str | None = None
    delimiter: str | None = None  # None: sniffed from the header line
    no_header: bool = False
    rows: str | None = None
    activation: str | None = None
    output_activation: str = "linear"

    @property
    def inputs(self) -> InputSpec:
        return InputSpec(self.paths[-1], self.columns, self.id_column, self.delimiter,
                         False if self.no_header else None, rows=self.rows)


def run(**options) -> None:
    """Draw ``PlotSpec(**options)`` and write the picture."""
    from .. import plot as P

    spec = PlotSpec(**options)
    P.format_for(spec.output)  # a bad suffix fails before any work
    P.pyplot()  # and so does a missing matplotlib
    if len(spec.paths) == 1:
        given = [opt for opt, v in (("--dx", spec.dx), ("--columns", spec.columns), ("--id-column", spec.id_column),
                                    ("--rows", spec.rows)) if v]
        if given:
            raise UsageError(f"{given[0]} needs MODEL... INPUTS; {spec.paths[0]} is a result to draw as it is")
        data, source, model = P.load_result(spec.paths[0]), spec.paths[0], None
    else:
        (data, model), source = compute(spec), spec.paths[-1]
    if data.get("input_names") is None or data.get("output_names") is None:
        raise UsageError(f"{source}: no input_names/output_names arrays (is it an npz written by jacprop?)")
    out_idx = resolve(spec.outputs, data["output_names"], "outputs")
    n = _rows_in(data)
    if spec.row is not None and spec.row > n:
        raise UsageError(f"--row {spec.row}: {source} has {n} rows")
    P.save(figure(spec, data, source, out_idx, model), spec.output, spec.dpi)


def _features_of(model) -> int | None:
    """F of the model's (T, F) sequence inputs when they are all its inputs and share one F
    (``summary.sequence_inputs``); else None (--features then says it)."""
    from ..summary import sequence_inputs

    seqs = sequence_inputs(model) if model is not None else []
    fs = {f for _, _, (_, f) in seqs}
    return fs.pop() if len(fs) == 1 and sum(t * f for _, _, (t, f) in seqs) == model.D else None


def figure(spec: PlotSpec, data: dict, source: str, out_idx: list | None, model=None):
    """The matplotlib Figure of ``spec.kind`` from the arrays in ``data`` (read from ``source``), for
    the outputs ``out_idx`` (None: all); ``model`` (given MODEL... INPUTS) for the Monte Carlo panel."""
    from .. import plot as P

    kind, stat, in_names, out_names = spec.kind, spec.stat, data["input_names"], data["output_names"]
    top = spec.top if spec.top is not None else TOP.get(kind)
    keep = out_idx or list(range(len(out_names)))
    r0 = None if spec.row is None else spec.row - 1
    if kind == "heatmap":
        (J,) = P.require(data, ["jacobian"], kind, source)
        return P.plot_heatmap(J[:, keep], in_names, [out_names[k] for k in keep], stat, top)
    if kind == "ranking":
        (J,) = P.require(data, ["jacobian"], kind, source)
        return P.plot_ranking(J, in_names, out_names, stat, top, out_idx)
    if kind == "profile":
        (J,) = P.require(data, ["jacobian"], kind, source)
        features = spec.features or (None if spec.input_name else _features_of(model))
        if features:
            if spec.input_name:
                raise UsageError("give --input or --features, not both")
            return P.plot_profile_steps(J, in_names, out_names, features, stat, out_idx)
        against = None
        if spec.input_name:
            (X,) = P.require(data, ["x"], kind, source)
            i = resolve([spec.input_name], in_names, "input")[0]
            against = (in_names[i], X[:, i])
        return P.plot_profile(J, data.get("y"), in_names, out_names, _one(out_idx), against, top, stat)
    if kind == "budget":
        (B,) = P.require(data, ["budget"], kind, source)
        return P.plot_budget(B, in_names, out_names, data.get("dy_gum"), r0, top, out_idx)
    if kind == "linearity":
        lin, plus, minus = P.require(data, ["dy_linear", "dy_plus", "dy_minus"], kind, source)
        mc = None if model is None else monte_carlo_panel(model, data, r0 or 0, _one(out_idx), spec.samples, spec.seed)
        return P.plot_linearity(lin[:, keep], plus[:, keep], minus[:, keep], [out_names[k] for k in keep], mc)
    (H,) = P.require(data, ["hessian"], kind, source)
    return P.plot_interactions(H, in_names, out_names, _one(out_idx), r0, top)


def compute(spec: PlotSpec):
    """The arrays the kind needs, from MODEL... INPUTS, through jacprop's public API and CSV reader;
    returns (data, model) with data shaped like the npz the commands write."""
    import numpy as np

    from .. import propagate as P
    from ..io.reader import no_data_rows
    from ..loaders import load

    options = {"activation": spec.activation, "output_activation": spec.output_activation}
    model = load(*spec.paths[:-1], **{k: v for k, v in options.items() if v is not None})
    reader = open_inputs(model, spec.inputs)
    blocks = jacobian_blocks(model, reader, "auto", None, None, "float64", parse_rows(spec.rows))
    try:
        parts = [(b.rows.copy(), b.X.copy(), b.Y.copy(), b.J.copy()) for b in blocks]
    finally:
        reader.close()
    if not parts:
        raise no_data_rows(reader.path, reader.skipped)
    rows, X, Y, J = (np.concatenate(a) for a in zip(*parts))
    data = {"rows": rows, "x": X, "y": Y, "jacobian": J, "input_names": list(reader.columns),
            "output_names": list(model.output_names)}
    if spec.kind in ("budget", "linearity"):
        if not spec.dx:
            raise UsageError(f"the {spec.kind} plot from MODEL... INPUTS needs --dx (the input uncertainty)")
        d = P.parse_dx(list(spec.dx), data["input_names"]).dx(X)
        data.update(dx=d, dy_gum=P.gum(J, d), budget=P.budget(J, d))
        if spec.kind == "linearity":
            data["dy_linear"] = P.linear(J, d)
            _, data["dy_plus"], data["dy_minus"], _ = P.linearity(lambda A: model.forward(A, deterministic=True), X,
                                                                  Y, J, d)
    if spec.kind == "interactions":
        data["hessian"] = _hessian(model, X)
    return data, model


def _hessian(model, X):
    import jacprop

    hessian = getattr(jacprop, "hessian", None)  # jacprop.hessian is on its way (DESIGN.md)
    if hessian is None:
        raise UsageError("this jacprop cannot compute Hessians yet: give an npz with a 'hessian' array (N, K, D, D)")
    return hessian(model, X)[2]


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


def _one(out_idx):
    if out_idx and len(out_idx) > 1:
        raise UsageError("this plot draws one output: give one with --outputs")
    return out_idx[0] if out_idx else 0
