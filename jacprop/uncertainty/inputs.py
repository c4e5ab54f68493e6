"""Input uncertainties as given on the command line or to ``jacprop.propagate``: --dx (absolute,
relative, per-row columns), a covariance or correlation matrix, --dist and --dof per input."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from ..errors import UsageError
from .distributions import parse_kind


@dataclass
class Uncertainty:
    """Input uncertainty: per-input absolute values ``absolute`` (D,), relative fractions
    ``relative`` (D,) of |x|, per-row values from columns, and a correlation matrix ``corr``
    (D, D; None = uncorrelated).  A covariance file becomes absolute = sqrt(diag), corr."""

    absolute: np.ndarray
    relative: np.ndarray
    columns: dict  # input index -> name of a CSV column holding per-row values
    corr: np.ndarray | None = None

    def dx(self, X: np.ndarray, column_values: dict | None = None, rows=None, names=None) -> np.ndarray:
        """Delta x per row: (N, D).  A relative uncertainty of a NaN/inf input kept by --on-invalid keep
        is NaN (its results are reported as non-finite); every other value must be finite and >= 0.
        ``rows``/``names``: the rows' data row numbers and the input names, for errors."""
        with np.errstate(invalid="ignore"):
            dx = self.absolute + np.where(self.relative > 0, self.relative * np.abs(X), 0.0)
        for i, values in (column_values or {}).items():
            dx[:, i] = values
        bad = (dx < 0) | ~np.isfinite(dx)
        bad &= ~((self.relative > 0) & ~np.isfinite(X))
        if bad.any():
            r, c = np.argwhere(bad)[0]
            row = r + 1 if rows is None else int(rows[r])
            name = c if names is None else repr(names[c])
            raise UsageError(f"row {row}: uncertainty of input {name} is {dx[r, c]}; it must be finite and >= 0")
        return dx

    @property
    def needs_x(self) -> bool:
        return bool(self.relative.any())


def parse_dx(specs, input_names, dx_columns=(), corr=None) -> Uncertainty:
    """--dx 0.01 | NAME=0.5 | NAME=2% (NAME may be an index; repeatable), --dx-column NAME=COLUMN."""
    d = len(input_names)
    absolute, relative = np.zeros(d), np.zeros(d)
    index = {n: i for i, n in enumerate(input_names)}
    for spec in specs:
        name, sep, value = spec.rpartition("=")
        if sep and name not in index and name.isdigit() and int(name) < d:
            name = input_names[int(name)]  # an input given by its index
        targets = [index[name]] if sep and name in index else list(range(d)) if not sep else None
        if targets is None:
            raise UsageError(f"--dx {spec}: no input named {name!r}; the inputs are {input_names}")
        m = re.fullmatch(r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(%?)\s*", value)
        if not m:
            raise UsageError(f"--dx {spec}: expected a number or a percentage (e.g. 0.01, temp=0.5, temp=2%)")
        v = float(m[1])
        if v < 0 or not math.isfinite(v):
            raise UsageError(f"--dx {spec}: an uncertainty must be finite and >= 0")
        for i in targets:
            if m[2]:
                relative[i], absolute[i] = v / 100, 0.0
            else:
                absolute[i], relative[i] = v, 0.0
    columns = {}
    for spec in dx_columns:
        name, sep, column = spec.partition("=")
        if not sep or name not in index:
            raise UsageError(f"--dx-column {spec}: expected INPUT=COLUMN with INPUT one of {input_names}")
        columns[index[name]] = column
    return Uncertainty(absolute, relative, columns, corr)


def split_covariance(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cov -> (sigma, R) with cov = diag(sigma) R diag(sigma); R_ii = 1 where sigma_i = 0."""
    sigma = np.sqrt(np.diag(cov))
    outer = np.outer(sigma, sigma)
    corr = np.divide(cov, outer, out=np.zeros_like(cov), where=outer > 0)
    np.fill_diagonal(corr, 1.0)
    return sigma, corr


def check_covariance(cov: np.ndarray, where: str) -> np.ndarray:
    """A covariance must be square, finite, symmetric and positive semi-definite."""
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1] or not np.isfinite(cov).all():
        raise UsageError(f"{where}: a covariance must be a finite square matrix, got shape {cov.shape}")
    scale = max(float(np.abs(cov).max()), 1e-300)
    if np.abs(cov - cov.T).max() > 1e-10 * scale:
        i, j = np.unravel_index(np.abs(cov - cov.T).argmax(), cov.shape)
        raise UsageError(f"{where}: not symmetric: entry ({i + 1}, {j + 1}) is {cov[i, j]} but ({j + 1}, {i + 1}) "
                         f"is {cov[j, i]}")
    lowest = float(np.linalg.eigvalsh((cov + cov.T) / 2).min())
    if lowest < -1e-10 * scale:
        raise UsageError(f"{where}: not positive semi-definite (smallest eigenvalue {lowest:.3g})")
    return (cov + cov.T) / 2


def per_input(specs, input_names, option: str, parse) -> dict:
    """NAME=VALUE (NAME a name or an index) or VALUE (every input), repeatable -> {index: parse(VALUE)}."""
    index = {n: i for i, n in enumerate(input_names)}
    out = {}
    for spec in specs:
        name, sep, value = spec.rpartition("=")
        if sep and name not in index and name.isdigit() and int(name) < len(input_names):
            name = input_names[int(name)]
        if sep and name not in index:
            raise UsageError(f"{option} {spec}: no input named {name!r}; the inputs are {input_names}")
        parsed = parse(value, f"{option} {spec}")
        for i in [index[name]] if sep else range(len(input_names)):
            out[i] = parsed
    return out


def parse_dof(value: str, where: str) -> float:
    try:
        nu = float(value)
    except ValueError:
        raise UsageError(f"{where}: expected a number of degrees of freedom >= 1 (or inf)") from None
    if not nu >= 1:
        raise UsageError(f"{where}: degrees of freedom must be >= 1 (or inf), got {value}")
    return nu


def distributions_of(specs, input_names) -> tuple | None:
    """--dist NAME=KIND... -> ((kind, nu) per input), None when every input is normal."""
    kinds = per_input(specs, input_names, "--dist", parse_kind)
    if all(k == "normal" for k, _ in kinds.values()):
        return None
    return tuple(kinds.get(i, ("normal", 0.0)) for i in range(len(input_names)))


def dof_of(specs, input_names) -> tuple | None:
    """--dof NAME=NU... -> (nu per input, inf where not given), None when none is given."""
    dof = per_input(specs, input_names, "--dof", parse_dof)
    return tuple(dof.get(i, math.inf) for i in range(len(input_names))) if dof else None


def check_independent(corr, kinds, dof, input_names) -> None:
    """Non-normal inputs and degrees of freedom need inputs without correlation (no copula here;
    Welch-Satterthwaite holds for independent inputs, JCGM 100 G.4.1)."""
    if corr is None:
        return
    off = np.abs(corr - np.diag(np.diag(corr))) > 0
    for i, name in enumerate(input_names):
        if not off[i].any():
            continue
        if kinds is not None and kinds[i][0] != "normal":
            raise UsageError(f"--dist {name}={kinds[i][0]}: a correlated input must be normal (jacprop has no copula); "
                             "remove its correlation or its --dist")
        if dof is not None and math.isfinite(dof[i]):
            raise UsageError(f"--dof {name}: Welch-Satterthwaite (JCGM 100 G.4) needs independent inputs, "
                             f"but {name} is correlated")
