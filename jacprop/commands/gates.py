"""What ``jacprop propagate`` finds while streaming, and how it is told: linearity flags, gate
violations (the worst first), non-finite results and Monte Carlo rows that reached the cap;
gathered per block (``Findings``), merged across Dask partitions (``merge_findings``) and turned
into stderr lines and the exit code (``findings_outcome``).

Non-finite results: a NaN or inf in y, J or any estimate (nu_eff = inf excepted: no degrees of
freedom given means infinitely many) fails every gate for that (row, output), and is reported
on stderr when no gate is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import propagate as P
from ..errors import UsageError
from .common import Outcome, Tally, resolve, show_tally

FINITE_ANYWAY = ("nu_eff",)  # inf is a legitimate value
GATED = ("dy_linear", "dy_gum", "dy_gum2", "dy_worst", "dy_mc")  # what --max-dy bounds (u-like ones times k)
U_LIKE = ("dy_gum", "dy_gum2", "dy_mc")  # standard uncertainties
NONLINEARITY = ("nonlinearity", "nonlinearity_hess", "shift_rel")  # what --max-nonlinearity and --tol bound
WORST_KEPT = 20  # gate violations named on stderr, the worst first


@dataclass
class Findings:
    """What streaming finds, gathered per block: linearity flags (row, output), the first WORST_KEPT;
    gate violations, the WORST_KEPT largest by how far they cross their bound (``ratio`` = value /
    bound, NaN counted as infinitely far; ties by the value), as (ratio, value, row, output, why);
    non-finite results (row, output, what) when no gate is given; Monte Carlo rows that reached the
    cap; and the count of each."""

    flagged: list = field(default_factory=list)
    violations: list = field(default_factory=list)
    nonfinite: list = field(default_factory=list)
    capped: list = field(default_factory=list)
    unresolved: list = field(default_factory=list)
    n_flagged: int = 0
    n_violations: int = 0
    n_nonfinite: int = 0
    n_capped: int = 0
    n_unresolved: int = 0

    def flag(self, pairs) -> None:
        self.n_flagged += len(pairs)
        self.flagged.extend(pairs[: max(0, WORST_KEPT - len(self.flagged))])

    def note(self, kind: str, items) -> None:
        """Append ``items`` to the list ``kind`` ('nonfinite', 'capped' or 'unresolved'), keeping the first
        WORST_KEPT."""
        setattr(self, f"n_{kind}", getattr(self, f"n_{kind}") + len(items))
        kept = getattr(self, kind)
        kept.extend(items[: max(0, WORST_KEPT - len(kept))])

    def violate(self, ratio, value, rows, outs, why) -> None:
        """Violations at (n, k) where ``ratio`` (N, K) > 1 (or NaN); ``value``: what was bounded;
        ``why(n, k)`` says what crossed what."""
        bad = np.argwhere(~(ratio <= 1))
        self.n_violations += len(bad)
        score = np.nan_to_num(ratio[bad[:, 0], bad[:, 1]], nan=np.inf)
        size = np.nan_to_num(value[bad[:, 0], bad[:, 1]], nan=np.inf)
        for j in np.lexsort((-size, -score))[:WORST_KEPT]:
            n, k = bad[j]
            self.violations.append((float(score[j]), float(size[j]), int(rows[n]), outs[k], why(n, k)))
        self.violations = merge_worst(self.violations)

    def result(self) -> dict:
        """The kept findings of each kind and their counts (what a Dask partition sends back)."""
        kinds = ("flagged", "violations", "nonfinite", "capped", "unresolved")
        return {**{k: list(getattr(self, k)) for k in kinds}, **{f"n_{k}": getattr(self, f"n_{k}") for k in kinds}}


def worst_nonlinearity(a: dict):
    """(the largest of the nonlinearity indices computed (N, K; NaN counts as the largest), which of them
    (N, K) indexing ``names``, names): the re-run ratio and, with H, the Hessian index and the shift."""
    names = [q for q in NONLINEARITY if q in a]
    stack = np.stack([np.asarray(a[q], dtype=np.float64) for q in names])
    which = np.nan_to_num(stack, nan=np.inf).argmax(axis=0)
    return np.take_along_axis(stack, which[None], axis=0)[0], which, names


def apply_gates(est, a, rows, ok, findings) -> None:
    """--max-dy, --max-nonlinearity and --require-valid of the Estimator ``est`` on the finite (row,
    output) pairs ``ok``.  --max-nonlinearity bounds the worst of the re-run ratio, the Hessian index
    and the relative shift (a curvature that the +-dx re-runs miss still fails it)."""
    outs = est.out_names
    if est.gate_dy is not None:
        _gate_dy(est, a, rows, ok, findings)
    if est.max_nonlinearity is not None:
        bound, (nl, which, names) = est.max_nonlinearity, worst_nonlinearity(a)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = nl / bound if bound else np.where(nl > 0, np.inf, 0.0)
        findings.violate(np.where(ok, ratio, 0.0), nl, rows, outs,
                         lambda n, k: f"{names[which[n, k]]} {nl[n, k]:.4g} > --max-nonlinearity {bound:.4g}")
    if est.require_valid:
        for m in ("gum", "gum2"):
            if f"{m}_valid" in a:
                _gate_valid(m, a, rows, outs, ok, findings)


def _gate_valid(m, a, rows, outs, ok, findings) -> None:
    """--require-valid: every row where method ``m``'s interval fails JCGM 101 8's test."""
    d_low, d_high, delta = a[f"{m}_d_low"], a[f"{m}_d_high"], a[f"{m}_delta"]
    failed = np.where((a[f"{m}_valid"] == 0) & ok, np.inf, 0.0)
    label = "GUM" if m == "gum" else "gum2 (second order)"
    findings.violate(failed, np.maximum(d_low, d_high), rows, outs,
                     lambda n, k: f"{label} not validated by Monte Carlo: d_low {d_low[n, k]:.3g}, "
                                  f"d_high {d_high[n, k]:.3g} > delta {delta[n, k]:.3g}")


def _gate_dy(est, a, rows, ok, findings) -> None:
    """--max-dy: each gated estimate (u-like ones times k) against its output's bound; a
    violation names the estimate that crossed it by the most."""
    from ..uncertainty.coverage import normal_quantile

    s = est.settings
    k_factor = np.broadcast_to(a["k"] if "k" in a else s.k if s.k is not None else (
        normal_quantile((1 + s.level) / 2) if s.level is not None else 1.0), a["y"].shape)
    gated = [q for q in GATED if q in a]
    size = np.stack([np.abs(a[q]) * (k_factor if q in U_LIKE else 1) for q in gated])  # (Q, N, K)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(size == 0, 0.0, size / est.gate_dy)
    which = np.nan_to_num(ratio, nan=np.inf).argmax(axis=0)
    worst = np.take_along_axis(ratio, which[None], axis=0)[0]
    value = np.take_along_axis(size, which[None], axis=0)[0]

    def why(n, k):
        q, kf = gated[which[n, k]], float(k_factor[n, k])
        label = f"{q} x k={kf:g}" if kf != 1 and q in U_LIKE else q
        return f"{label} = {size[which[n, k], n, k]:.4g} > --max-dy {est.gate_dy[k]:.4g}"

    findings.violate(np.where(ok, worst, 0.0), value, rows, est.out_names, why)


def merge_worst(violations, keep=WORST_KEPT) -> list:
    """The ``keep`` worst (ratio, value, row, output, why) records, worst first (ties: in row order)."""
    return sorted(violations, key=lambda v: (-v[0], -v[1]))[:keep]


def nonfinite(a: dict, J) -> dict:
    """{(n, k): [names of the quantities that are NaN or inf there]} over y, J and every (N, K, ...) estimate."""
    y = a["y"]
    arrays = {"y": y, "J": J, **{q: v for q, v in a.items() if q not in ("x", "y") and q not in FINITE_ANYWAY
                                 and np.ndim(v) >= 2 and v.shape[:2] == y.shape}}
    bad = {}
    for name, v in arrays.items():
        v = np.asarray(v, dtype=np.float64)
        flags = ~np.isfinite(v).reshape(*y.shape, -1).all(axis=-1)
        for n, k in np.argwhere(flags):
            bad.setdefault((int(n), int(k)), []).append(name)
    return bad


def findings_outcome(found: dict, tol, quiet, notes, settings=None) -> Outcome:
    """The findings (``Findings.result()``, or merged from Dask partitions) as lines for stderr;
    exit 1 when a gate was crossed."""
    notes = list(notes)
    n_flagged, n_violations = found["n_flagged"], found["n_violations"]
    n_nonfinite, n_capped = found.get("n_nonfinite", 0), found.get("n_capped", 0)
    if n_nonfinite:
        notes.append(f"jacprop: warning: {n_nonfinite} (row, output) pairs have non-finite results (NaN or inf): "
                     + "; ".join(f"row {r} {o}: {what}" for r, o, what in found["nonfinite"][:20])
                     + (" ..." if n_nonfinite > 20 else ""))
    n_unresolved = found.get("n_unresolved", 0)
    if n_unresolved:
        notes.append(f"jacprop: warning: {n_unresolved} (row, output) pairs: the float grid is too coarse for the "
                     "uncertainty (a step of x or y in the network's float type is more than 1/1024 of dx or u), so "
                     "the Monte Carlo and linearity-check results there are NaN (GUM's are not affected): "
                     + ", ".join(f"row {r} {o}" for r, o in found["unresolved"][:10])
                     + (" ..." if n_unresolved > 10 else ""))
    if n_capped and not quiet and settings is not None:
        digits = settings.mc_options().digits
        why = " (--validate runs it to one digit more than --digits)" if settings.validate else ""
        notes.append(f"jacprop: note: {n_capped} rows reached --samples {settings.samples} before the Monte Carlo "
                     f"was stable to {digits} significant digits{why}: rows "
                     + ", ".join(map(str, found["capped"][:20]))
                     + (" ..." if n_capped > 20 else "") + (" (their standard errors say how far to trust them"
                     + ("; --validate's verdict there rests on a Monte Carlo less precise than delta" if why else "")
                     + ")"))
    if n_flagged and not quiet:
        notes.append(f"jacprop: {n_flagged} (row, output) pairs depart from linearity by more than --tol {tol:g}: "
                     + ", ".join(f"row {r} {o}" for r, o in found["flagged"][:10]) + (" ..." if n_flagged > 10 else ""))
    if n_violations:
        worst = merge_worst(found["violations"])
        shown = "; ".join(f"row {r} {o}: {why}" for _, _, r, o, why in worst)
        notes.append(f"jacprop: {n_violations} (row, output) pairs exceed the bounds"
                     + (f", the {len(worst)} worst first" if n_violations > len(worst) else ", the worst first"
                        if n_violations > 1 else "")
                     + f": {shown}" + (" ..." if n_violations > len(worst) else ""))
    return Outcome(1 if n_violations else 0, notes)


def merge_findings(results, parts, where) -> dict:
    """The findings of Dask partitions (``Findings.result()`` each) as one, rows named by ``where(row, part)``."""
    merged = {}
    for name in ("flagged", "violations", "nonfinite", "capped", "unresolved"):
        merged[f"n_{name}"] = sum(r.get(f"n_{name}", 0) for r in results)
        if name == "capped":
            merged[name] = [where(r, p) for p, res in zip(parts, results) for r in res.get(name, [])]
        elif name == "violations":  # (ratio, value, row, output, why)
            merged[name] = merge_worst([(*v[:2], where(v[2], p), *v[3:]) for p, res in zip(parts, results)
                                        for v in res.get(name, [])])
        else:
            merged[name] = [(where(item[0], p), *item[1:]) for p, res in zip(parts, results)
                            for item in res.get(name, [])]
    return merged


def parse_gate(specs, output_names, what) -> np.ndarray | None:
    """--max-dy 0.1 | OUTPUT=0.1 (repeatable) -> a bound per output (inf where none)."""
    if not specs:
        return None
    bound = np.full(len(output_names), np.inf)
    for spec in specs:
        name, sep, value = spec.rpartition("=")
        try:
            v = float(value)
        except ValueError:
            raise UsageError(f"{what} {spec}: expected a number or OUTPUT=NUMBER") from None
        if not v >= 0:  # NaN too: a gate must be able to fail
            raise UsageError(f"{what} {spec}: the bound must be a number >= 0")
        idx = resolve([name], output_names, what.lstrip("-")) if sep else None
        bound[idx if idx else slice(None)] = v
    return bound


def tally_of(plan, output) -> Tally | None:
    """propagate's closing line watches the first gated estimate asked for (else the first estimate);
    None: no closing line for ``output`` (an OutputSpec)."""
    est = plan.estimator
    if not show_tally(output, est.gate_dy is not None or est.max_nonlinearity is not None):
        return None
    names = P.quantities(est.settings)
    what = next((q for q in GATED if q in names), names[0] if names else "y")
    return Tally(what, lambda a: a[what], lambda k: est.out_names[k])
