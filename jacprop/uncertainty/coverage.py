"""Coverage factors: the normal and Student's t quantiles, Welch-Satterthwaite (JCGM 100 G.4).

numpy has no t quantile, so it is computed here exactly: the upper tail of Student's t with nu
degrees of freedom is P(T > t) = 1/2 I_x(nu/2, 1/2) with x = nu / (nu + t^2) and I the regularised
incomplete beta function (a continued fraction, Numerical Recipes 6.4), inverted by safeguarded
Newton steps to full double precision.  Checked against scipy and JCGM 100 table G.2 in the tests.
"""

from __future__ import annotations

import math
import statistics

import numpy as np

from ..errors import UsageError


def normal_quantile(p: float) -> float:
    """Phi^-1(p), the standard normal quantile (``statistics.NormalDist``, exact to rounding)."""
    if not 0 < p < 1:
        raise UsageError(f"a probability must lie in (0, 1), got {p}")
    return statistics.NormalDist().inv_cdf(p)


def _beta_cf(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b) (modified Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 100_000):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1 + num * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1) < 1e-16:
            return h
    return h


def _log_inv_beta(a: float, b: float) -> float:
    """log(Gamma(a + b) / (Gamma(a) Gamma(b))); for b = 1/2 and large a from Stirling's series
    (ln Gamma(a + 1/2) - ln Gamma(a) = a log1p(1/(2a)) + ln(a)/2 - 1/2 + S(a + 1/2) - S(a)),
    where lgamma's difference would cancel."""
    big, half = (a, b) if a >= b else (b, a)
    if half != 0.5 or big < 50:
        return math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)

    def series(z):
        return 1 / (12 * z) - 1 / (360 * z**3) + 1 / (1260 * z**5) - 1 / (1680 * z**7)

    ratio = big * math.log1p(0.5 / big) + 0.5 * math.log(big) - 0.5 + series(big + 0.5) - series(big)
    return ratio - math.lgamma(0.5)


def beta_inc(a: float, b: float, x: float, y: float | None = None) -> float:
    """The regularised incomplete beta function I_x(a, b), 0 <= x <= 1; ``y`` = 1 - x when the
    caller knows it more exactly than 1 - x rounds."""
    y = 1 - x if y is None else y
    if x <= 0:
        return 0.0
    if y <= 0:
        return 1.0
    log_x = math.log(x) if x < 0.5 else math.log1p(-y)
    log_y = math.log(y) if y < 0.5 else math.log1p(-x)
    log_front = _log_inv_beta(a, b) + a * log_x + b * log_y
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_cf(a, b, x) / a
    return 1 - math.exp(log_front) * _beta_cf(b, a, y) / b


def t_tail(t: float, nu: float) -> float:
    """P(T > t) for Student's t with nu degrees of freedom, t >= 0: 1/2 I_{nu/(nu+t^2)}(nu/2, 1/2)."""
    return 0.5 * beta_inc(nu / 2, 0.5, nu / (nu + t * t), t * t / (nu + t * t))


def t_central(t: float, nu: float) -> float:
    """P(0 < T < t) = 1/2 I_{t^2/(nu+t^2)}(1/2, nu/2): no cancellation for small t."""
    return 0.5 * beta_inc(0.5, nu / 2, t * t / (nu + t * t), nu / (nu + t * t))


def t_pdf(t: float, nu: float) -> float:
    log_c = _log_inv_beta(nu / 2, 0.5) + math.lgamma(0.5) - 0.5 * math.log(nu * math.pi)
    return math.exp(log_c - (nu + 1) / 2 * math.log1p(t * t / nu))


def _cornish_fisher(z: float, nu: float) -> float:
    """t_p(nu) ~ z + g1/nu + g2/nu^2 + g3/nu^3 (Abramowitz & Stegun 26.7.5)."""
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    return z + g1 / nu + g2 / nu**2 + g3 / nu**3


def t_quantile(p: float, nu: float) -> float:
    """t_p(nu): the p quantile of Student's t with nu > 0 degrees of freedom (nu = inf: normal)."""
    if not 0 < p < 1:
        raise UsageError(f"a probability must lie in (0, 1), got {p}")
    if not nu > 0:
        raise UsageError(f"degrees of freedom must be > 0, got {nu}")
    if p < 0.5:
        return -t_quantile(1 - p, nu)
    if p == 0.5:
        return 0.0
    z = normal_quantile(p)
    if math.isinf(nu) or nu > 1e4:  # the expansion's error ~ nu^-4 is below rounding there
        return z if math.isinf(nu) else _cornish_fisher(z, nu)
    if nu == 1:
        return 1 / math.tan(math.pi * (1 - p))
    if nu == 2:
        return (2 * p - 1) / math.sqrt(2 * p * (1 - p))
    central = p < 0.75  # solve P(0 < T < t) = p - 1/2 near the centre, P(T > t) = 1 - p in the tail
    target = p - 0.5 if central else 1 - p
    lo, hi = 0.0, math.inf
    t = max(_cornish_fisher(z, nu), z)
    for _ in range(200):
        excess = target - t_central(t, nu) if central else t_tail(t, nu) - target  # > 0: t is too small
        lo, hi = (t, hi) if excess > 0 else (lo, t)
        step = excess / t_pdf(t, nu)
        new = t + step
        if not lo < new < hi:  # out of the bracket: bisect (or double while unbounded)
            new = (lo + hi) / 2 if math.isfinite(hi) else 2 * t
        if abs(new - t) <= 4e-16 * abs(t):
            return new
        t = new
    return t


def welch_satterthwaite(terms: np.ndarray, dof: np.ndarray) -> np.ndarray:
    """nu_eff = u^4 / sum_i (c_i u_i)^4 / nu_i (JCGM 100 G.2b), u^2 = sum_i (c_i u_i)^2, over the last
    axis of ``terms`` = c_i u_i; inputs with nu_i = inf add nothing; inf where the sum is 0."""
    u2 = (terms * terms).sum(axis=-1)
    denom = (terms**4 / dof).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, u2 * u2 / np.where(denom > 0, denom, 1), np.inf)


def coverage_factors(level: float, nu_eff: np.ndarray | None) -> np.ndarray | float:
    """k for a coverage probability ``level``: the normal quantile z_{(1+p)/2}, or with degrees of
    freedom Student's t_{(1+p)/2}(nu_eff) at the real nu_eff (the limit of interpolating JCGM 100
    table G.2, which G.4.1 allows beside truncating nu_eff to an integer)."""
    p = (1 + level) / 2
    z = normal_quantile(p)
    if nu_eff is None:
        return z
    nu = np.asarray(nu_eff, dtype=np.float64)
    k = np.full(nu.shape, z)
    cache: dict = {}
    for index in zip(*np.nonzero(np.isfinite(nu))):
        v = max(float(nu[index]), 1.0)
        if v not in cache:
            cache[v] = t_quantile(p, v)
        k[index] = cache[v]
    return k
