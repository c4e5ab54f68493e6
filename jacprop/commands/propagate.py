"""``jacprop propagate``: output uncertainty from input uncertainty at every row, with gates.

Reads MODEL... INPUTS (J computed here), or what ``jacprop jacobian`` wrote (a J stream).
The estimates are ``propagate.estimate``'s; this module adds the options, the columns, the
--max-dy / --max-nonlinearity / --require-valid gates, the linearity flags and the notes on
non-finite results and on Monte Carlo rows that reached --samples (``commands.gates``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .. import propagate as P
from ..errors import UsageError
from ..io.matrices import read_matrix
from ..io.writers import Field
from .common import (
    InputSpec,
    ModelSpec,
    Outcome,
    OutputSpec,
    RowBlock,
    jacobian_blocks,
    load_model,
    open_inputs,
    open_output,
    parse_rows,
    pick,
    resolve,
    show_progress,
    skipped_note,
    stream_to,
)
from .curvature import Network, block_hessian, second_order_of  # noqa: F401
from .gates import (  # noqa: F401
    GATED,
    Findings,
    apply_gates,
    findings_outcome,
    merge_findings,
    merge_worst,
    nonfinite,
    parse_gate,
    tally_of,
    worst_nonlinearity,
)

TABLE_COLUMNS = [  # array name, table header
    ("dy_linear", "Δy lin"), ("dy_gum", "u gum"), ("U_gum", "U=k·u"), ("k", "k"), ("nu_eff", "ν eff"),
    ("dy_gum2", "u gum2"), ("U_gum2", "U2=k·u2"), ("gum2_shift", "shift2"),
    ("dy_worst", "worst"), ("dy_mc", "σ mc"), ("dy_mc_se", "± se"), ("mc_shift", "mc shift"),
    ("gum_valid", "valid"), ("gum2_valid", "valid2"), ("nonlinearity", "nonlin"), ("nonlinearity_hess", "nonlin H"),
]  # the data formats also hold mc_lo/hi, the other standard errors, mc_samples, d_low/d_high, dy_plus/minus,
# cov, budget


@dataclass(frozen=True)
class UncertaintySpec:
    """--dx, --dx-column, --cov, --corr as given."""

    dx: tuple = ()
    dx_columns: tuple = ()
    cov_file: str | None = None
    corr_file: str | None = None


@dataclass(frozen=True)
class PropagateSpec:
    model: ModelSpec | None  # None: read a J stream from inputs.path
    inputs: InputSpec
    output: OutputSpec = OutputSpec()
    uncertainty: UncertaintySpec = UncertaintySpec()
    methods: tuple = ()
    mode: str = "auto"
    samples: int = 200_000
    seed: int = 0
    digits: int = 2
    interval: str = "symmetric"
    dist: tuple = ()
    dof: tuple = ()
    validate: bool = False
    require_valid: bool = False
    coverage: float | None = None
    level: float | None = None
    output_cov: bool = False
    check_linearity: bool = False
    tol: float = 0.1
    budget: bool = False
    max_dy: tuple = ()
    max_nonlinearity: float | None = None
    outputs: tuple | None = None  # --outputs: only these outputs
    wrt: tuple | None = None  # --wrt: only the uncertainty of these inputs (the others taken as exact)
    summary: bool = False  # --summary: statistics of every estimate over the rows instead of the rows


@dataclass(frozen=True)
class Estimator:
    """Everything a block needs to become propagate's arrays (small and picklable: the Dask
    runner sends it with every partition)."""

    settings: P.Settings
    unc: P.Uncertainty
    in_names: list
    out_names: list
    gate_dy: np.ndarray | None
    max_nonlinearity: float | None
    tol: float
    table: bool  # the table's "top input" column: the budget even when not asked for (not beside mc: too wide)
    require_valid: bool = False
    out_idx: list | None = None  # --outputs, as indices of the model's outputs

    @property
    def gated(self) -> bool:
        return self.gate_dy is not None or self.max_nonlinearity is not None or self.require_valid

    def produce(self, b: RowBlock, forward, findings: Findings):
        """(rows, ids, arrays) for one block; appends to ``findings``."""
        J64 = b.J.astype(np.float64, copy=False)
        Xd = b.X if b.X is not None else np.zeros((len(b.Y), len(self.in_names)))
        d = self.unc.dx(Xd, {i: b.extra[c] for i, c in self.unc.columns.items()}, b.rows, self.in_names)
        hessian = block_hessian(self.settings, b, forward, self.out_idx)
        if forward is not None and self.out_idx is not None:
            forward = _outputs_of(forward, self.out_idx)
        block = P.Block(J64, d, self.unc.corr, b.X, b.Y, b.rows, forward, hessian)
        a = {"y": b.Y, **({"x": b.X} if b.X is not None else {}), **P.estimate(block, self.settings, self.table)}
        rows, outs = b.rows, self.out_names
        if self.settings.check_linearity:
            findings.flag([(int(rows[n]), outs[k]) for n, k in np.argwhere(worst_nonlinearity(a)[0] > self.tol)])
        lost = a.pop("unresolved", np.zeros(a["y"].shape, bool))  # NaN on purpose: said once, below
        bad = nonfinite(a, b.J)
        ok = np.ones(a["y"].shape, bool)
        for n, k in bad:
            ok[n, k] = False
        if self.gated:  # a non-finite result fails every gate: infinitely far past its bound
            inf = np.where(ok, 0.0, np.inf)
            findings.violate(inf, inf, rows, outs, lambda n, k: f"non-finite {', '.join(bad[n, k])}")
        else:
            said = [(n, k, rest) for (n, k), what in sorted(bad.items())
                    if (rest := [q for q in what if not (lost[n, k] and _of_steps(q))])]
            findings.note("nonfinite", [(int(rows[n]), outs[k], ", ".join(rest)) for n, k, rest in said])
        findings.note("unresolved", [(int(rows[n]), outs[k]) for n, k in np.argwhere(lost)])
        if "mc_converged" in a:  # rows stopped by the cap (not those stopped by a NaN: reported above)
            capped = ~a.pop("mc_converged") & np.isfinite(a["dy_mc"]).all(axis=1)
            findings.note("capped", [int(r) for r in rows[capped]])
        apply_gates(self, a, rows, ok, findings)
        return rows, b.ids, a



def _of_steps(quantity) -> bool:
    """A result of the network at x + dx: Monte Carlo's, a validation against it, the linearity check's."""
    return (quantity in P.MC_QUANTITIES or quantity in P.LINEARITY
            or quantity.endswith(tuple(f"_{v}" for v in P.VALIDATION)))


def _outputs_of(forward, index):
    """The network restricted to the outputs ``index`` (--outputs), for Monte Carlo and linearity."""
    return lambda X: forward(X)[:, index]


@dataclass
class PropagatePlan:
    spec: PropagateSpec
    model: object
    reader: object  # a CsvReader (MODEL... INPUTS), else None
    stream: object  # a JacobianStream (reading J), else None
    estimator: Estimator
    fields: list
    meta: dict
    fmt: str
    notes: list = field(default_factory=list)

    @property
    def forward(self):
        return None if self.model is None else Network(self.model, self.spec.output.dtype)


def settings_of(spec: PropagateSpec, in_names=None) -> P.Settings:
    """--method, --coverage/--level, --samples, --dist, --dof... as ``propagate.Settings`` (the
    per-input ones need the input names)."""
    given = [m for m in spec.methods if m != "all"] if "all" in spec.methods else spec.methods or ["gum"]
    methods = list(dict.fromkeys([*P.FIRST_ORDER_ALL, *given] if "all" in spec.methods else given))
    if spec.coverage is not None and spec.level is not None:
        raise UsageError("give --coverage or --level, not both")
    if spec.level is not None:
        P.normal_quantile((1 + spec.level) / 2)  # a level outside (0, 1) fails here, naming the probability
    if spec.dof and "gum" not in methods and not spec.validate and not spec.require_valid:
        raise UsageError("--dof gives the GUM method's degrees of freedom: add --method gum")
    names = list(in_names or ())
    return P.settings_for(methods=tuple(methods), k=spec.coverage, level=spec.level, samples=spec.samples,
                          seed=spec.seed, digits=spec.digits, interval=spec.interval,
                          dist=P.distributions_of(spec.dist, names) if names else None,
                          dof=P.dof_of(spec.dof, names) if names else None,
                          check_linearity=spec.check_linearity or spec.max_nonlinearity is not None,
                          output_cov=spec.output_cov, budget=spec.budget, validate=spec.validate or spec.require_valid)


def uncertainty_of(u: UncertaintySpec, in_names) -> P.Uncertainty:
    """--dx, --dx-column, --cov or --corr as ``propagate.Uncertainty`` over the inputs ``in_names``."""
    corr = sigma = None
    if u.cov_file or u.corr_file:
        path = u.cov_file or u.corr_file
        matrix = P.check_covariance(read_matrix(path, in_names, "--cov" if u.cov_file else "--corr"), path)
        if u.cov_file:
            if u.dx:
                raise UsageError("--cov gives the uncertainties; do not also give --dx")
            sigma, corr = P.split_covariance(matrix)
        else:
            corr = matrix
            if not np.allclose(np.diag(corr), 1):
                raise UsageError(f"--corr {u.corr_file}: a correlation matrix has ones on its diagonal")
    if not u.dx and not u.dx_columns and sigma is None:
        raise UsageError("say how uncertain the inputs are: --dx 0.01, --dx NAME=0.5, --dx NAME=2%, --dx-column "
                         "or --cov")
    unc = P.parse_dx(list(u.dx), in_names, list(u.dx_columns), corr)
    if sigma is not None:
        unc.absolute = sigma
    return unc


def _open_source(spec: PropagateSpec, settings: P.Settings, notes: list):
    """(model, reader, stream, input names, output names, id column) for MODEL... INPUTS or a J stream."""
    if spec.model is not None:
        model = load_model(spec.model, notes)
        reader = open_inputs(model, replace(spec.inputs, extra_columns=extra_columns(spec)),
                             notes=None if spec.output.quiet else notes)
        return model, reader, None, reader.columns, model.output_names, spec.inputs.id_column
    from ..io.readback import read_jacobian

    for opt, given in (("--columns", spec.inputs.columns), ("--id-column", spec.inputs.id_column),
                       ("--dx-column", spec.uncertainty.dx_columns)):
        if given:
            raise UsageError(f"{opt} needs MODEL... INPUTS (it reads the input CSV)")
    stream = read_jacobian(spec.inputs.path)
    if set(settings.methods) & set(P.NEEDS_NETWORK) or settings.check_linearity:
        raise UsageError("--method mc, --validate and --check-linearity run the network: give MODEL... INPUTS, "
                         "not a Jacobian stream")
    if "gum2" in settings.methods and stream.hessian is None:
        raise UsageError("--method gum2 needs H: give MODEL... INPUTS, or pipe the npz of `jacprop hessian "
                         "--format npz` (a Jacobian stream holds no second derivatives)")
    return None, None, stream, stream.input_names, stream.output_names, stream.id_name


def fields_of(settings: P.Settings, in_names, out_names, has_x: bool) -> list:
    """The output's per-row arrays and their CSV columns."""
    k = len(out_names)
    fields = [Field("x", (len(in_names),))] if has_x else []
    fields.append(Field("y", (k,), list(out_names)))
    fields += [Field(q, (k,), [f"{q}({o})" for o in out_names]) for q in P.quantities(settings)]
    if settings.output_cov:
        fields.append(Field("cov_y", (k, k), [f"cov({a},{b})" for a in out_names for b in out_names]))
        if "gum2" in settings.methods:
            fields.append(Field("cov_gum2", (k, k), [f"cov_gum2({a},{b})" for a in out_names for b in out_names]))
        if "mc" in settings.methods:
            fields.append(Field("cov_mc", (k, k), [f"cov_mc({a},{b})" for a in out_names for b in out_names]))
    if settings.budget:
        fields.append(Field("budget", (k, len(in_names)), [f"budget({o},{i})" for o in out_names for i in in_names]))
    return fields


def extra_columns(spec: PropagateSpec) -> tuple:
    """The CSV columns --dx-column INPUT=COLUMN reads alongside the inputs."""
    return tuple(c.partition("=")[2] for c in spec.uncertainty.dx_columns)


def prepare(spec: PropagateSpec, allowed=("table", "csv", "jsonl", "npz")) -> PropagatePlan:
    settings = settings_of(spec)  # the checks that need no names, before the model is read
    if spec.uncertainty.cov_file and spec.uncertainty.corr_file:
        raise UsageError("give --cov or --corr, not both")
    parse_rows(spec.inputs.rows)
    notes = []
    model, reader, stream, in_names, out_names, id_name = _open_source(spec, settings, notes)
    try:
        settings = settings_of(spec, in_names)
        out_idx, wrt_idx = resolve(spec.outputs, out_names, "outputs"), resolve(spec.wrt, in_names, "wrt")
        out_names = pick(out_names, out_idx)
        unc = only_from(uncertainty_of(spec.uncertainty, in_names), wrt_idx)
        P.check_independent(unc.corr, settings.dist, settings.dof, list(in_names))
        settings = second_order_of(settings, model, stream, unc, list(in_names), notes)
        has_x = model is not None or stream.has_x
        if unc.needs_x and not has_x:
            raise UsageError("a relative --dx (%) needs the inputs x: give MODEL... INPUTS, "
                             "or pipe jsonl/npz from `jacprop jacobian`")
        gate_dy = parse_gate(spec.max_dy, out_names, "--max-dy")
        fmt = spec.output.format(allowed)
    except BaseException:
        if reader is not None:
            reader.close()
        raise
    if spec.summary and fmt not in SUMMARY_FORMATS:
        raise UsageError(f"--summary writes {', '.join(SUMMARY_FORMATS)}")
    estimator = Estimator(settings, unc, list(in_names), list(out_names), gate_dy, spec.max_nonlinearity, spec.tol,
                          fmt == "table" and not spec.summary and (settings.budget or "mc" not in settings.methods),
                          spec.require_valid, out_idx)
    meta = {"input_names": in_names, "output_names": out_names, "id_name": id_name, "row": spec.output.row}
    return PropagatePlan(spec, model, reader, stream, estimator, fields_of(settings, in_names, out_names, has_x),
                         meta, fmt, notes)


def only_from(unc: P.Uncertainty, wrt_idx) -> P.Uncertainty:
    """--wrt: the other inputs' uncertainty set to zero (they are taken as exact), so every estimate is
    the part of the output uncertainty that comes from the --wrt inputs (with --cov: their block of Sigma)."""
    if wrt_idx is None:
        return unc
    other = np.ones(len(unc.absolute), bool)
    other[wrt_idx] = False
    unc.absolute, unc.relative = np.where(other, 0.0, unc.absolute), np.where(other, 0.0, unc.relative)
    unc.columns = {i: c for i, c in unc.columns.items() if not other[i]}
    return unc


def _blocks(plan: PropagatePlan):
    keep, out_idx = parse_rows(plan.spec.inputs.rows), plan.estimator.out_idx
    if plan.reader is not None:
        return jacobian_blocks(plan.model, plan.reader, plan.spec.mode, out_idx, None, plan.spec.output.dtype, keep)
    keep = keep or (lambda r: np.ones(len(r), bool))
    k = slice(None) if out_idx is None else out_idx
    H = plan.stream.hessian  # an npz: one chunk
    return (RowBlock(r[m], None if i is None else i[m], None if X is None else X[m], Y[m][:, k], J[m][:, k], {},
                     None if H is None else H[m][:, k])
            for r, i, X, Y, J in plan.stream.chunks for m in [keep(r)])


def run(plan: PropagatePlan) -> Outcome:
    from ..render import propagate_footer, propagate_rows

    est, spec = plan.estimator, plan.spec
    meta = dict(plan.meta)
    if plan.fmt == "table":
        hidden = () if est.settings.dof is not None else ("k",)  # a constant k is in the footer
        meta.update(columns=[c for c in TABLE_COLUMNS if c[0] not in hidden], table=propagate_rows,
                    footer=propagate_footer(est.settings),
                    flag=(lambda a, n, k: worst_nonlinearity(a)[0][n, k] > est.tol)
                    if est.settings.check_linearity else None)
    findings, tally = Findings(), tally_of(plan, spec.output)
    blocks, produce = stream_of(plan, findings)
    try:
        if spec.summary:
            _summary(plan, blocks, produce, tally)
        else:
            stream_to(open_output(plan.fmt, spec.output, plan.fields, meta), blocks, produce,
                      show_progress(spec.output, spec.inputs.path), plan.reader or plan.stream, tally)
    finally:
        if plan.reader is not None:
            plan.reader.close()
    notes = plan.notes + ([tally.line()] if tally is not None else [])
    notes += skipped_note(plan.reader, spec.output.quiet) if plan.reader is not None else []
    return findings_outcome(findings.result(), est.tol, spec.output.quiet, notes, est.settings)


def stream_of(plan: PropagatePlan, findings: Findings):
    """(blocks, produce): as ``jacobian.stream_of``, the estimates of every block, ``findings`` gathered."""
    return _blocks(plan), lambda b: plan.estimator.produce(b, plan.forward, findings)


SUMMARY_FORMATS = ("table", "csv", "jsonl", "npz")


def _summary(plan: PropagatePlan, blocks, produce, tally) -> None:
    """--summary: per output and estimate, its statistics over all rows (mean, mean |.|, RMS, std,
    min, max and the row of the largest |value|), as ``jacobian --summary`` gives them for J."""
    from ..io.reader import no_data_rows
    from ..io.writers import atomic_output, write_summary
    from ..summary import Summary

    names = [q for q in P.quantities(plan.estimator.settings)]
    acc = None
    for b in blocks:
        rows, _, a = produce(b)
        acc = acc or Summary(len(plan.estimator.out_names), len(names))
        acc.add(rows, np.stack([a[q] for q in names], axis=-1))
        if tally is not None:
            tally.add(rows, a)
    if acc is None:
        raise no_data_rows(plan.spec.inputs.path, getattr(plan.reader, "skipped", 0))
    stats = acc.result()
    stats["rank"] = np.tile(np.arange(len(names)), (len(plan.estimator.out_names), 1))  # the estimates in order
    with atomic_output(plan.spec.output.path) as out:
        if plan.fmt == "table":
            from ..render import summary_to

            summary_to(out.file, stats, names, plan.estimator.out_names, acc.n, what="estimate")
        else:
            write_summary(out.file, plan.fmt, stats, names, plan.estimator.out_names, acc.n, what="estimate")
