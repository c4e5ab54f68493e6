"""The Monte Carlo method of JCGM 101 through the real network, per row, with its standard errors.

Draws: x + dx * (R^1/2 z), z of unit variance from each input's distribution (``distributions``),
R the correlation matrix (normal inputs only).  A row's draws come from a generator seeded with
(seed, row number), so a row's result does not depend on how rows are chunked.

Adaptive procedure (JCGM 101 7.9): batches of M = max(10^4, J) draws, J the smallest integer
>= 100 / (1 - p) for p as written in decimal (fewer when ``samples`` is smaller); after each batch
h >= 2 the standard deviation of the mean of the h batch values of y, u(y) and the two interval
ends, s = std(batch values) / sqrt(h), is compared with the numerical tolerance delta = 10^l / 2
of u(y) written with ``digits`` significant digits, u = c 10^l (7.9.2); the row is done when
2 s <= delta for all four and every output.  ``samples`` caps the draws of a row (rows that reach
it are reported).  The results use all draws of the row.

Standard errors, from the draws themselves (no Gaussian assumption):
- of the standard deviation s: sqrt((m4 - s^4 (n - 3) / (n - 1)) / n) / (2 s), the delta method on
  Var(s^2) = mu4 / n - sigma^4 (n - 3) / (n (n - 1)), m4 the fourth central moment of the draws;
- of the mean: s / sqrt(n);
- of an interval end y_(r): (y_(r + d) - y_(r - d)) / 2 with d = sqrt(n q (1 - q)), q = r / n (the
  spread of the order statistic's rank, a distribution-free interval for the quantile).

Coverage intervals (JCGM 101 7.7): with q = pM rounded (q = floor(pM + 1/2)) of the sorted draws
y_(1) <= ... <= y_(M), ``symmetric`` is [y_(r), y_(r+q)] with r = (M - q)/2 (or (M - q + 1)/2 when
that is not an integer); ``shortest`` is the r with the smallest y_(r+q) - y_(r).

Resolution: the draws are numbers of the network's dtype.  Where an input's grid step
spacing(x_i) exceeds dx_i / 1024 (x = 9192631770 with dx = 1e-6 in float64: x + dx z falls on a
few grid points), or an output's spacing(y_k) exceeds u_k / 1024 (y's own rounding is not small
beside u), the draws cannot show the uncertainty: those results are NaN and ``mc_unresolved``
says where (GUM, from J, is not affected).  At 1/1024, the grid's rounding changes u by about
(1/1024)^2 / 24 < 10^-7 of itself, below the tolerance of --digits 6.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..errors import UsageError
from .distributions import draws
from .first_order import power_of_two_scale

MEMORY = 256 * 2**20  # bytes of stored draws per group of rows
GRID = 2.0**-10  # the most a grid step may be of dx_i (inputs) or of u (outputs): see Resolution


@dataclass(frozen=True)
class McOptions:
    """samples: the cap per row; digits: significant digits of the adaptive tolerance (None: a
    fixed run of ``samples``); level p and ``interval`` (symmetric | shortest) of the interval."""

    samples: int = 200_000
    seed: int = 0
    level: float = 0.95
    interval: str = "symmetric"
    digits: int | None = 2
    kinds: tuple | None = None  # per input (name, nu); None: all normal

    @property
    def batch(self) -> int:
        """M = max(10^4, J), J the smallest integer >= 100 / (1 - p) (JCGM 101 7.9.2), in exact rational
        arithmetic on p's shortest decimal (in floating point 100 / (1 - 0.9995) is 200000.00000002)."""
        if self.digits is None:
            return self.samples
        return min(self.samples, max(10_000, math.ceil(100 / (1 - Fraction(str(float(self.level)))))))


def tolerance(u: np.ndarray, digits: int) -> np.ndarray:
    """delta = 10^l / 2 where u = c 10^l with c an integer of ``digits`` digits (JCGM 101 7.9.2); 0 where u = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ell = np.floor(np.log10(np.where(u > 0, u, 1.0))) - digits + 1
    return np.where(u > 0, 0.5 * 10.0**ell, 0.0)


def interval_index(m: int, level: float, sorted_y: np.ndarray | None, kind: str):
    """0-based indices (lo, hi) of the interval ends among m sorted draws; with ``shortest`` an
    array of lo indices over the leading axes of ``sorted_y`` (..., m, K) -> (..., K)."""
    pm = level * m
    q = int(pm) if float(pm).is_integer() else int(math.floor(pm + 0.5))
    q = min(max(q, 1), m - 1) if m > 1 else 0
    if kind == "shortest" and m > 1:
        widths = sorted_y[..., q:, :] - sorted_y[..., : m - q, :]
        lo = widths.argmin(axis=-2)
        return lo, lo + q
    r = (m - q) // 2 if (m - q) % 2 == 0 else (m - q + 1) // 2  # 1-based
    r = max(r, 1)
    return r - 1, min(r - 1 + q, m - 1)


def _take(sorted_y, index):
    """sorted_y[..., index, k]: a scalar index or one per (..., k)."""
    if np.ndim(index) == 0:
        return sorted_y[..., int(index), :]
    return np.take_along_axis(sorted_y, np.asarray(index)[..., None, :], axis=-2)[..., 0, :]


def mean_of_draws(ys: np.ndarray) -> np.ndarray:
    """The mean of (..., n, K) draws over n: c + mean(y_i - c) with c the first draw, the deviations summed
    pairwise (numpy sums pairwise only along a contiguous axis, so they are laid out (..., K, n)): exactly c
    when all draws are equal, and an error ~ eps log2(n) max|y_i - c| otherwise."""
    c = ys[..., :1, :]
    dev = np.empty((*ys.shape[:-2], ys.shape[-1], ys.shape[-2]))  # (..., K, n): n contiguous
    np.subtract(np.swapaxes(ys, -1, -2), np.swapaxes(c, -1, -2), out=dev)
    return c[..., 0, :] + dev.mean(axis=-1)


def summary(ys: np.ndarray, opts: McOptions) -> dict:
    """The figures of (..., n, K) draws: mean, std, lo, hi and their standard errors."""
    n = ys.shape[-2]
    mean = mean_of_draws(ys)
    dev = ys - mean[..., None, :]
    scale = power_of_two_scale(dev, axis=-2)  # the moments of dev / scale neither under- nor overflow
    dev = dev / scale[..., None, :]
    var = (dev * dev).sum(axis=-2) / max(n - 1, 1)
    std = np.sqrt(var)
    m4 = (dev**4).mean(axis=-2)
    var_s2 = np.maximum(m4 - var * var * (n - 3) / max(n - 1, 1), 0) / n
    with np.errstate(divide="ignore", invalid="ignore"):
        std_se = np.where(std > 0, np.sqrt(var_s2) / (2 * np.where(std > 0, std, 1)), 0.0)
    std, std_se = scale * std, scale * np.where(np.isfinite(std), std_se, np.nan)
    s = np.sort(ys, axis=-2)
    lo_i, hi_i = interval_index(n, opts.level, s, opts.interval)
    out = {"mean": mean, "std": std, "std_se": std_se, "mean_se": std / math.sqrt(n),
           "lo": _take(s, lo_i), "hi": _take(s, hi_i)}
    for name, index in (("lo_se", lo_i), ("hi_se", hi_i)):
        i = np.asarray(index)
        d = np.ceil(np.sqrt(n * ((i + 1) / n) * (1 - (i + 1) / n))).astype(int)
        out[name] = (_take(s, np.minimum(i + d, n - 1)) - _take(s, np.maximum(i - d, 0))) / 2
    return out


def _batch_figures(ys, opts: McOptions) -> dict:
    """A batch's (g, m, K) estimate, standard deviation and interval ends."""
    m = ys.shape[-2]
    s = np.sort(ys, axis=-2)
    lo_i, hi_i = interval_index(m, opts.level, s, opts.interval)
    return {"mean": mean_of_draws(ys), "std": ys.std(axis=-2, ddof=1), "lo": _take(s, lo_i), "hi": _take(s, hi_i)}


def _pooled_std(means, stds, m):
    """The standard deviation of h batches of m draws together, from their means and deviations (h, K)."""
    h = len(means)
    grand = means.mean(axis=0)
    ss = (m - 1) * (stds**2).sum(axis=0) + m * ((means - grand) ** 2).sum(axis=0)
    return np.sqrt(ss / (h * m - 1))


def _noise(rng, m, dx_row, root, kinds):
    z = draws(rng, m, kinds)
    if root is not None:
        z = z @ root.T
    return z * dx_row


def _group(forward, X, dx, rows, root, opts: McOptions, kinds):
    """Adaptive MC for a few rows at once: (draws per row list, converged flags)."""
    g, m = len(X), opts.batch
    rngs = [np.random.default_rng([opts.seed, int(r)]) for r in rows]
    stored = [[] for _ in range(g)]
    stats = [[] for _ in range(g)]
    active = np.ones(g, bool)
    converged = np.zeros(g, bool)
    max_batches = max(opts.samples // m, 1)
    for h in range(1, max_batches + 1):
        idx = np.flatnonzero(active)
        noise = np.stack([_noise(rngs[i], m, dx[i], root, kinds) for i in idx])
        ys = forward((X[idx, None, :] + noise).reshape(-1, X.shape[1])).reshape(len(idx), m, -1)
        ys = np.asarray(ys, dtype=np.float64)
        if opts.digits is not None:
            batch = _batch_figures(ys, opts)
        for j, i in enumerate(idx):
            stored[i].append(ys[j])
            if opts.digits is None:
                continue
            stats[i].append(np.stack([batch["mean"][j], batch["std"][j], batch["lo"][j], batch["hi"][j]]))
            if not np.isfinite(ys[j]).all():
                active[i] = False  # a NaN/inf result: more draws cannot help (reported as non-finite)
            elif h >= 2:
                values = np.stack(stats[i])  # (h, 4, K)
                spread = np.std(values, axis=0, ddof=1) / math.sqrt(h)
                u = _pooled_std(values[:, 0], values[:, 1], m)
                if np.all(2 * spread <= tolerance(u, opts.digits)):
                    active[i], converged[i] = False, True
        if not active.any():
            break
    return [np.concatenate(s) for s in stored], converged


def monte_carlo(forward, X, dx, corr, rows, opts: McOptions) -> dict:
    """Per row and output (N, K each): dy_mc (std), dy_mc_se, mc_shift (mean - f(x)), mc_shift_se,
    mc_lo, mc_lo_se, mc_hi, mc_hi_se, mc_samples; also ``cov_mc`` (N, K, K) and ``mc_converged`` (N,)."""
    n, d = X.shape
    kinds = opts.kinds or (("normal", 0.0),) * d
    root = None
    if corr is not None:
        w, v = np.linalg.eigh(corr)
        # the symmetric root V sqrt(W) V^T: root @ root.T == R, also when R is singular, and block diagonal
        # where R is, so an uncorrelated (perhaps non-normal) input keeps its own draws unmixed
        root = (v * np.sqrt(np.maximum(w, 0))) @ v.T
    y_net = np.asarray(forward(X))
    y0 = y_net.astype(np.float64)
    k = y0.shape[1]
    per_row = opts.samples * k * 8
    if per_row > 4 * MEMORY:
        raise UsageError(f"--samples {opts.samples} with {k} outputs keeps {per_row / 2**30:.1f} GiB of draws per "
                         "row; lower --samples")
    size = max(1, min(n, MEMORY // per_row, max(1, 200_000 // opts.batch)))
    names = ("dy_mc", "dy_mc_se", "mc_shift", "mc_shift_se", "mc_lo", "mc_lo_se", "mc_hi", "mc_hi_se", "mc_samples")
    out = {q: np.empty((n, k)) for q in names}
    out["cov_mc"] = np.empty((n, k, k))
    out["mc_converged"] = np.zeros(n, bool)
    for start in range(0, n, size):
        sl = slice(start, min(start + size, n))
        samples, converged = _group(forward, X[sl], dx[sl], rows[sl], root, opts, kinds)
        out["mc_converged"][sl] = converged if opts.digits is not None else True
        counts = np.array([len(ys) for ys in samples])
        for count in np.unique(counts):  # rows with as many draws, at once
            js = np.flatnonzero(counts == count)
            ys = np.stack([samples[j] for j in js])
            i = start + js
            s = summary(ys, opts)
            out["dy_mc"][i], out["dy_mc_se"][i] = s["std"], s["std_se"]
            out["mc_shift"][i], out["mc_shift_se"][i] = s["mean"] - y0[i], s["mean_se"]
            out["mc_lo"][i], out["mc_lo_se"][i] = s["lo"], s["lo_se"]
            out["mc_hi"][i], out["mc_hi_se"][i] = s["hi"], s["hi_se"]
            out["mc_samples"][i] = count
            dev = ys - s["mean"][:, None, :]
            out["cov_mc"][i] = np.einsum("gnk,gnl->gkl", dev, dev) / max(count - 1, 1)
    lost = unresolved(X, dx, y0, out["dy_mc"], y_net.dtype if y_net.dtype.kind == "f" else np.float64)
    for q in names[:-1]:
        out[q][lost] = np.nan
    out["cov_mc"][lost[:, :, None] | lost[:, None, :]] = np.nan
    out["mc_unresolved"] = lost
    return out


def unresolved(X, dx, y, u, dtype) -> np.ndarray:
    """(N, K) True where draws in ``dtype`` cannot show the uncertainty (the module's Resolution): at a row
    with uncertainty where some input's spacing(x_i) > GRID dx_i, or output k's spacing(y_k) > GRID u_k."""
    coarse_y = _spacing(y, dtype) > GRID * u  # False where u or y is NaN: those are reported as such
    return (coarse_inputs(X, dx, dtype)[:, None] | coarse_y) & (dx > 0).any(axis=1)[:, None]


def coarse_inputs(X, dx, dtype) -> np.ndarray:
    """(N,) True at rows where some input with dx_i > 0 has spacing(x_i) > GRID dx_i in ``dtype``."""
    return ((dx > 0) & (_spacing(X, dtype) > GRID * dx)).any(axis=1)


def _spacing(a, dtype):
    return np.spacing(np.abs(a).astype(dtype)).astype(np.float64)


def validate(y, u, k, lo, hi, digits: int, name: str = "gum") -> dict:
    """JCGM 101 8.1: d_low = |y - U - y_low|, d_high = |y + U - y_high| with U = k u the GUM expanded
    uncertainty about the estimate ``y`` and [y_low, y_high] the Monte Carlo interval; valid where both
    <= delta, the numerical tolerance of u at ``digits`` significant digits.  Columns ``<name>_d_low``,
    ``<name>_d_high``, ``<name>_delta``, ``<name>_valid`` (1/0)."""
    U = k * u
    d_low, d_high = np.abs(y - U - lo), np.abs(y + U - hi)
    delta = tolerance(u, digits)
    valid = (d_low <= delta) & (d_high <= delta) & np.isfinite(d_low) & np.isfinite(d_high)
    return {f"{name}_d_low": d_low, f"{name}_d_high": d_high, f"{name}_delta": delta,
            f"{name}_valid": valid.astype(np.float64)}
