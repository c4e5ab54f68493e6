"""From (x, y, J) and input uncertainties to output uncertainties, per row and output.

All methods are first order except ``mc``; they hold for small Delta x (Bishop 8.1.5):

- ``linear``: the signed change Delta y_k = sum_i J_ki Delta x_i for the given perturbation.
- ``gum``: the standard uncertainty u(y_k) = sqrt((J Sigma J^T)_kk) (GUM's law of
  propagation of uncertainty), Sigma = diag(dx) R diag(dx) with R the correlation matrix
  (identity unless given); the expanded uncertainty U = k u with ``coverage`` k.
- ``worst``: the bound sum_i |J_ki| |Delta x_i| (exact for linear f, any signs).
- ``mc``: Monte Carlo through the real network: x + dx * (R^1/2 z) with z ~ N(0, I),
  returning the mean shift, the standard deviation and a central interval.

``linearity`` measures how far f(x + Delta x) - f(x) and f(x) - f(x - Delta x) are from
J Delta x, relative to |J Delta x|: the seed's warning that the relation holds only for
small Delta x, as a number.
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass, field

import numpy as np

from .errors import UsageError


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
        """Delta x per row: (N, D).  A row holding NaN/inf inputs (kept by --on-invalid keep) may
        get a NaN Delta x, which then gives NaN estimates; anywhere else Delta x must be finite
        and >= 0.  ``rows``/``names``: the rows' data row numbers and the input names, for errors."""
        dx = self.absolute + np.where(self.relative != 0, self.relative * np.abs(X), 0.0)  # not 0 * nan
        for i, values in (column_values or {}).items():
            dx[:, i] = values
        kept = ~np.isfinite(X).all(axis=1, keepdims=True)
        bad = (dx < 0) | (~np.isfinite(dx) & ~kept)
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
        raise UsageError(f"{where}: not symmetric: entry ({i + 1}, {j + 1}) is {cov[i, j]} but ({j + 1}, {i + 1}) is {cov[j, i]}")
    lowest = float(np.linalg.eigvalsh((cov + cov.T) / 2).min())
    if lowest < -1e-10 * scale:
        raise UsageError(f"{where}: not positive semi-definite (smallest eigenvalue {lowest:.3g})")
    return (cov + cov.T) / 2


def normal_quantile(p: float) -> float:
    """Phi^-1(p), the standard normal quantile (``statistics.NormalDist``, exact to rounding)."""
    if not 0 < p < 1:
        raise UsageError(f"a probability must lie in (0, 1), got {p}")
    return statistics.NormalDist().inv_cdf(p)


def linear(J, dx):
    """Delta y = J Delta x: (N, K)."""
    return np.einsum("nki,ni->nk", J, dx)


def gum(J, dx, corr=None):
    """u(y_k) = sqrt((J Sigma J^T)_kk), Sigma = diag(dx) R diag(dx): sqrt(sum_i J_ki^2 dx_i^2) when R = I."""
    JD = J * dx[:, None, :]
    if corr is None:
        return np.sqrt(np.einsum("nki,nki->nk", JD, JD))
    return np.sqrt(np.maximum(np.einsum("nki,ij,nkj->nk", JD, corr, JD), 0))


def output_covariance(J, dx, corr=None):
    """J Sigma J^T per row: (N, K, K)."""
    JD = J * dx[:, None, :]
    if corr is None:
        return np.einsum("nki,nli->nkl", JD, JD)
    return np.einsum("nki,ij,nlj->nkl", JD, corr, JD)


def worst(J, dx):
    """sum_i |J_ki| |dx_i|."""
    return np.einsum("nki,ni->nk", np.abs(J), np.abs(dx))


def budget(J, dx):
    """Share of u(y_k)^2 from each input: J_ki^2 dx_i^2 / sum_i (...), (N, K, D); 0 where u = 0.
    With correlated inputs these are the shares of the uncorrelated terms."""
    parts = J * J * (dx * dx)[:, None, :]
    total = parts.sum(axis=-1, keepdims=True)
    return np.divide(parts, total, out=np.zeros_like(parts), where=total > 0)


def monte_carlo(forward, X, dx, corr, samples, seed, level, rows):
    """Sample x + dx * (R^1/2 z) through ``forward``; returns mean shift, std, lo, hi (N, K each).

    forward maps (M, D) -> (M, K).  The draws z of a row come from a generator seeded with
    (seed, row number), so a row's result does not depend on how rows are chunked.  Rows are
    processed in blocks so memory stays bounded.
    """
    n, d = X.shape
    if corr is not None:
        w, v = np.linalg.eigh(corr)
        root = v * np.sqrt(np.maximum(w, 0))  # root @ root.T == R, also when R is singular
    y0 = forward(X)
    shift, std, lo, hi = (np.empty_like(y0) for _ in range(4))
    q = [(1 - level) / 2, (1 + level) / 2]
    block = max(1, 200_000 // max(samples, 1))
    for start in range(0, n, block):
        sl = slice(start, start + block)
        z = np.stack([np.random.default_rng([seed, int(r)]).standard_normal((samples, d)) for r in rows[sl]])
        noise = (z @ root.T if corr is not None else z) * dx[sl, None, :]
        ys = forward((X[sl, None, :] + noise).reshape(-1, d)).reshape(noise.shape[0], samples, -1)
        shift[sl] = ys.mean(axis=1) - y0[sl]
        std[sl] = ys.std(axis=1, ddof=1)
        lo[sl], hi[sl] = np.quantile(ys, q, axis=1)
    return shift, std, lo, hi


def linearity(forward, X, Y, J, dx):
    """Relative departure from linearity per row and output:
    max(|f(x+dx) - f(x) - J dx|, |f(x) - f(x-dx) - J dx|) / max(|J dx|, tiny).
    Returns (nonlinearity, f(x+dx) - f(x), f(x) - f(x-dx))."""
    jdx = linear(J, dx)
    up, down = forward(X + dx) - Y, Y - forward(X - dx)
    err = np.maximum(np.abs(up - jdx), np.abs(down - jdx))
    scale = np.abs(jdx) + 1e-12 * (1 + np.abs(Y))  # rounding in f(x +- dx) - f(x) is ~1e-16 |y|
    return err / scale, up, down


# ---------------------------------------------------------------------------
# The methods as a table, over one block of rows


@dataclass(frozen=True)
class Settings:
    """What to estimate: the ``methods`` (names of ``METHODS``), the coverage factor k of the
    expanded uncertainty (None: none), Monte Carlo's interval level, sample count and seed,
    and the optional diagnostics."""

    methods: tuple = ("gum",)
    k: float | None = None
    mc_level: float = 0.95
    samples: int = 1000
    seed: int = 0
    check_linearity: bool = False
    output_cov: bool = False
    budget: bool = False


@dataclass
class Block:
    """One block of rows: J (N, K, D) in float64, the input uncertainties dx (N, D), their
    correlation (or None), and for the methods that run the network x, y, the rows' 1-based
    numbers (Monte Carlo seeds) and ``forward`` (M, D) -> (M, K)."""

    J: np.ndarray
    dx: np.ndarray
    corr: np.ndarray | None = None
    X: np.ndarray | None = None
    Y: np.ndarray | None = None
    rows: np.ndarray | None = None
    forward: object = field(default=None, repr=False)


def _linear(b: Block, s: Settings) -> dict:
    return {"dy_linear": linear(b.J, b.dx)}


def _gum(b: Block, s: Settings) -> dict:
    u = gum(b.J, b.dx, b.corr)
    return {"dy_gum": u, **({"U_gum": s.k * u} if s.k is not None else {})}


def _worst(b: Block, s: Settings) -> dict:
    return {"dy_worst": worst(b.J, b.dx)}


def _mc(b: Block, s: Settings) -> dict:
    shift, std, lo, hi = monte_carlo(b.forward, b.X, b.dx, b.corr, s.samples, s.seed, s.mc_level, b.rows)
    return {"dy_mc": std, "mc_shift": shift, "mc_lo": lo, "mc_hi": hi}


METHODS = {"linear": _linear, "gum": _gum, "worst": _worst, "mc": _mc}
NEEDS_NETWORK = ("mc",)  # methods that run the model (the rest need J only)
QUANTITIES = {"linear": ("dy_linear",), "gum": ("dy_gum", "U_gum"), "worst": ("dy_worst",),
              "mc": ("dy_mc", "mc_shift", "mc_lo", "mc_hi")}  # what each method writes, in order


def quantities(s: Settings) -> list[str]:
    """The per-output arrays ``estimate`` returns for ``s``, in column order (y first, not listed)."""
    names = [q for m in s.methods for q in QUANTITIES[m] if q != "U_gum" or s.k is not None]
    return names + (["nonlinearity", "dy_plus", "dy_minus"] if s.check_linearity else [])


def estimate(b: Block, s: Settings, with_budget: bool = False) -> dict:
    """Every asked-for estimate for one block, as (N, K) arrays by name (``cov_y`` (N, K, K),
    ``budget`` (N, K, D)); ``with_budget`` adds the budget even when not asked for (tables)."""
    out = {}
    for m in s.methods:
        out.update(METHODS[m](b, s))
    if s.check_linearity:
        out["nonlinearity"], out["dy_plus"], out["dy_minus"] = linearity(b.forward, b.X, b.Y, b.J, b.dx)
    if s.output_cov:
        out["cov_y"] = output_covariance(b.J, b.dx, b.corr)
    if s.budget or with_budget:
        out["budget"] = budget(b.J, b.dx)
    return out


def propagate(model=None, X=None, dx=None, *, J=None, cov=None, corr=None, input_names=None, **settings) -> dict:
    """Output uncertainty from input uncertainty at every row, as ``jacprop propagate`` computes it.

    Give ``model`` and X (N, D), or a Jacobian J (N, K, D) (then only methods that need J alone).
    ``dx``: the standard uncertainty of each input, a number, a (D,) or an (N, D) array, or
    ``--dx`` strings ("0.01", "temp=0.5", "temp=2%"; names from ``input_names`` or the model);
    or ``cov`` (D, D) instead; ``corr`` (D, D) correlates the dx.  ``settings``: the fields of
    ``Settings`` (methods=("gum", "mc"), coverage k as ``k``, mc_level, samples, seed,
    check_linearity, output_cov, budget).  Returns arrays named as in the NPZ output (the CSV
    column stems): y, dy_gum, U_gum, dy_linear, dy_worst, dy_mc, mc_shift, mc_lo, mc_hi,
    nonlinearity, dy_plus, dy_minus, cov_y, budget, as computed.
    """
    s = Settings(**{**settings, "methods": tuple(settings.get("methods", ("gum",)))})
    unknown = set(s.methods) - set(METHODS)
    if unknown:
        raise UsageError(f"unknown method(s) {sorted(unknown)}; the methods are {list(METHODS)}")
    if J is None:
        if model is None or X is None:
            raise UsageError("give a model and X, or a Jacobian J")
        from .engine import jacobian

        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        Y, J = jacobian(model, X, deterministic=True)
    else:
        J = np.asarray(J, dtype=np.float64)
        Y = np.full(J.shape[:2], np.nan) if X is None or model is None else model.forward(X)
        if model is None and (set(s.methods) & set(NEEDS_NETWORK) or s.check_linearity):
            raise UsageError("--method mc and --check-linearity run the network: give the model")
    n, _, d = J.shape
    names = input_names or (model.input_names if model is not None else [f"x{i}" for i in range(d)])
    if cov is not None:
        sigma, corr = split_covariance(check_covariance(np.asarray(cov, dtype=np.float64), "cov"))
        dxs = np.broadcast_to(sigma, (n, d))
    elif isinstance(dx, (str, list, tuple)) and all(isinstance(v, str) for v in np.atleast_1d(dx)):
        unc = parse_dx(list(np.atleast_1d(dx)), names, (), corr)
        dxs = unc.dx(np.zeros((n, d)) if X is None else np.atleast_2d(X))
    else:
        dxs = np.broadcast_to(np.asarray(dx, dtype=np.float64), (n, d))
    forward = None if model is None else (lambda Z: model.forward(Z, deterministic=True))
    block = Block(J, np.array(dxs, dtype=np.float64), corr, None if X is None else np.atleast_2d(X), Y,
                  np.arange(1, n + 1), forward)
    return {"y": Y, **estimate(block, s)}
