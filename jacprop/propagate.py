"""From (x, y, J) and input uncertainties to output uncertainties, per row and output.

With Sigma = diag(dx) R diag(dx) the input covariance (R the correlation matrix, identity unless
given) and c = J_k. the sensitivities of output k:

- ``linear``: the signed change Delta y_k = sum_i J_ki Delta x_i for the given perturbation.
- ``gum``: the standard uncertainty u(y_k) = sqrt((J Sigma J^T)_kk), GUM's law of propagation
  (JCGM 100 5.1.2, 5.2.2; first order); the expanded uncertainty U = k u with k given
  (``k``) or from a coverage probability ``level``: the normal quantile, or with degrees of freedom
  (``dof``) Student's t at the Welch-Satterthwaite nu_eff (``uncertainty.coverage``).
- ``worst``: the bound sum_i |J_ki| |Delta x_i| (exact for linear f, any signs).
- ``gum2``: the second-order law for Gaussian inputs (exact for a quadratic f): u^2(y_k) =
  (J Sigma J^T)_kk + 1/2 tr(H_k Sigma H_k Sigma), the mean shift 1/2 tr(H_k Sigma) and U = k u
  (k as for gum, no degrees of freedom); H_k = d2 y_k / dx dx over the inputs with uncertainty
  (``uncertainty.curvature``, which also holds the fourth-moment term of non-Gaussian inputs).
- ``mc``: JCGM 101's Monte Carlo through the real network, adaptive (``uncertainty.montecarlo``).

``budget``: the share of u(y_k)^2 from input i, c_i (Sigma c)_i / u^2; the shares sum to 1 and
reduce to c_i^2 dx_i^2 / u^2 without correlation (a negative share: a correlation that lowers u).

``linearity``: the departure from linearity along each input separately, combined in quadrature
and compared with u: sqrt(sum_i e_i^2) / u_k with e_i = max(|f(x + dx_i e_i) - f(x) - J_ki dx_i|,
|f(x) - f(x - dx_i e_i) - J_ki dx_i|) (e_i the unit vector of input i).  Terms of opposite sign
in J Delta x cannot cancel in it.  For a quadratic f, e_i = |H_ii| dx_i^2 / 2.  It sees no mixed
term H_ij (i != j): f = x_0 x_1 is linear along each input.  The Hessian index beside it does:
``nonlinearity_hess`` = sqrt(1/2 tr(H Sigma H Sigma)) / u and ``shift_rel`` = |1/2 tr(H Sigma)| / u
(0 where the quadratic term and u are both 0, inf where only u is).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field, replace

import numpy as np

from .errors import UsageError
from .uncertainty import montecarlo as mc
from .uncertainty.coverage import coverage_factors, normal_quantile, welch_satterthwaite  # noqa: F401
from .uncertainty.curvature import block_moments, check_fourth_moments, hessian_index
from .uncertainty.first_order import (  # noqa: F401  (the public names of the formulas)
    budget,
    gum,
    linear,
    output_covariance,
    power_of_two_scale,
    quadratic_form,
    scaled_terms,
    terms,
    worst,
)
from .uncertainty.inputs import (  # noqa: F401  (the public names of the input side)
    Uncertainty,
    check_covariance,
    check_independent,
    distributions_of,
    dof_of,
    parse_dx,
    split_covariance,
)


def linearity(forward, X, Y, J, dx, corr=None):
    """(nonlinearity, f(x+dx) - f(x), f(x) - f(x-dx), unresolved) per row and output: the departure along
    each input separately, combined in quadrature, over u (see the module's docstring); the next two move
    every input at once (what a plot of J dx against f shows).  At rows where the float grid of an input is
    too coarse for its dx (``montecarlo.coarse_inputs``: x + dx may be x itself), the three are NaN and
    ``unresolved`` is True (y's own rounding is beside the 1e-12 (1 + |y|) that ``scale`` adds to u)."""
    n, d = X.shape
    steps = np.zeros((2 * d + 2, n, d))
    for i in range(d):
        steps[2 * i, :, i], steps[2 * i + 1, :, i] = dx[:, i], -dx[:, i]
    steps[-2], steps[-1] = dx, -dx
    f_net = np.asarray(forward((X[None] + steps).reshape(-1, d)))
    f = f_net.astype(np.float64).reshape(2 * d + 2, n, -1)
    jdx = terms(J, dx)  # (N, K, D)
    plus, minus = (np.moveaxis(f[side : 2 * d : 2], 0, -1) for side in (0, 1))  # f(x +- dx_i e_i): (N, K, D)
    E = np.maximum(np.abs(plus - Y[..., None] - jdx), np.abs(Y[..., None] - minus - jdx))
    e_scale = power_of_two_scale(E)  # sum_i e_i^2 over a power of two, as gum's
    E = E / e_scale[..., None]
    departure = np.zeros_like(Y)
    for i in range(d):  # in input order
        departure = departure + E[..., i] * E[..., i]
    u = gum(J, dx, corr)
    scale = u + 1e-12 * (1 + np.abs(Y))  # rounding in f(x +- dx) - f(x) is ~1e-16 |y|
    out = [e_scale * np.sqrt(departure) / scale, f[-2] - Y, Y - f[-1]]
    lost = np.broadcast_to(mc.coarse_inputs(X, dx, f_net.dtype if f_net.dtype.kind == "f" else np.float64)[:, None],
                           Y.shape)
    for a in out:
        a[lost] = np.nan
    return (*out, lost)


# ---------------------------------------------------------------------------
# The methods as a table, over one block of rows


@dataclass(frozen=True)
class Settings:
    """What to estimate: the ``methods`` (names of ``METHODS``); the coverage factor ``k`` of the
    expanded uncertainty or a coverage probability ``level`` (k from it; also the Monte Carlo
    interval's, 0.95 when None); Monte Carlo's cap ``samples``, ``seed``, ``digits`` (adaptive
    tolerance) and ``interval`` (symmetric | shortest); per input ``dist`` ((kind, nu) or None:
    normal) and ``dof`` (None: infinite); and the optional diagnostics."""

    methods: tuple = ("gum",)
    k: float | None = None
    level: float | None = None
    samples: int = 200_000
    seed: int = 0
    digits: int = 2
    interval: str = "symmetric"
    dist: tuple | None = None
    dof: tuple | None = None
    check_linearity: bool = False
    hessian_index: bool = True  # with check_linearity: also the index from H (off for a model without H)
    output_cov: bool = False
    budget: bool = False
    validate: bool = False

    @property
    def mc_level(self) -> float:
        return self.level if self.level is not None else 0.95

    @property
    def validated(self) -> list[str]:
        """The GUM estimates --validate compares with the Monte Carlo interval: gum and gum2 as asked for."""
        return [m for m in ("gum", "gum2") if m in self.methods] if self.validate else []

    @property
    def expanded(self) -> bool:
        return self.k is not None or self.level is not None

    def mc_options(self) -> mc.McOptions:
        """With ``validate`` the Monte Carlo runs to one more digit than the validation's delta, so that
        its own numerical error is small against delta (JCGM 101 8.2)."""
        digits = (self.digits + 1 if self.validate else self.digits) or None
        return mc.McOptions(self.samples, self.seed, self.mc_level, self.interval, digits, self.dist)


@dataclass
class Block:
    """One block of rows: J (N, K, D) in float64, the input uncertainties dx (N, D), their
    correlation (or None), and for the methods that run the network x, y, the rows' 1-based
    numbers (Monte Carlo seeds) and ``forward`` (M, D) -> (M, K); for gum2 and the Hessian index,
    ``hessian(wrt)`` -> (start, H (n, K, W, W)) blocks over the inputs ``wrt``, covering the rows."""

    J: np.ndarray
    dx: np.ndarray
    corr: np.ndarray | None = None
    X: np.ndarray | None = None
    Y: np.ndarray | None = None
    rows: np.ndarray | None = None
    forward: object = field(default=None, repr=False)
    hessian: object = field(default=None, repr=False)
    cache: dict = field(default_factory=dict, repr=False)


def _linear(b: Block, s: Settings) -> dict:
    return {"dy_linear": linear(b.J, b.dx)}


def _gum(b: Block, s: Settings) -> dict:
    u = gum(b.J, b.dx, b.corr)
    out = {"dy_gum": u}
    nu = welch_satterthwaite(scaled_terms(b.J, b.dx)[0], np.asarray(s.dof)) if s.dof is not None else None
    if s.expanded:
        k = np.full(u.shape, float(s.k)) if s.k is not None else np.broadcast_to(coverage_factors(s.level, nu), u.shape)
        out.update(U_gum=k * u, k=np.array(k, dtype=np.float64))
    if nu is not None:
        out["nu_eff"] = nu
    return out


def _worst(b: Block, s: Settings) -> dict:
    return {"dy_worst": worst(b.J, b.dx)}


def second_order(b: Block, s: Settings, gaussian: bool = False):
    """(shift (N, K), second-order covariance (N, K, K) or variance (N, K)), once per block and kind:
    for the inputs' distributions (gum2), or ``gaussian`` (the Hessian index, defined with Gaussian
    inputs whatever --dist says)."""
    kinds = None if gaussian else s.dist
    if kinds not in b.cache:
        b.cache[kinds] = block_moments(b.J.shape[:2], b.dx, b.corr, b.hessian, kinds, s.output_cov)
    return b.cache[kinds]


def _gum2(b: Block, s: Settings) -> dict:
    shift, var = second_order(b, s)
    cov = output_covariance(b.J, b.dx, b.corr) + var if s.output_cov else None
    a, scale = scaled_terms(b.J, b.dx)  # u^2 = s^2 (|a / s|^2 + var / s^2): no under- or overflow in the squares
    u = scale * np.sqrt(np.maximum(quadratic_form(a, b.corr) + (np.einsum("nkk->nk", var) if s.output_cov else var)
                                   / scale / scale, 0))
    out = {"dy_gum2": u, "gum2_shift": shift}
    if s.expanded:
        k = float(s.k) if s.k is not None else normal_quantile((1 + s.level) / 2)
        out.update(U_gum2=k * u, **({} if "gum" in s.methods else {"k": np.full(u.shape, k)}))
    if cov is not None:
        out["cov_gum2"] = cov
    return out


def _mc(b: Block, s: Settings) -> dict:
    return mc.monte_carlo(b.forward, b.X, b.dx, b.corr, b.rows, s.mc_options())


METHODS = {"linear": _linear, "gum": _gum, "gum2": _gum2, "worst": _worst, "mc": _mc}
FIRST_ORDER_ALL = ("linear", "gum", "worst", "mc")  # --method all: not gum2 (it needs H, i.e. second-order rules)
NEEDS_NETWORK = ("mc",)  # methods that run the model (gum2 needs H: the model or a Hessian npz; the rest J only)
MC_QUANTITIES = ("dy_mc", "dy_mc_se", "mc_shift", "mc_shift_se", "mc_lo", "mc_lo_se", "mc_hi", "mc_hi_se", "mc_samples")
VALIDATION = ("d_low", "d_high", "delta", "valid")  # per validated method m: m_d_low, ...
LINEARITY = ("nonlinearity", "dy_plus", "dy_minus")
HESSIAN_INDEX = ("nonlinearity_hess", "shift_rel")


def quantities(s: Settings) -> list[str]:
    """The per-output (N, K) arrays ``estimate`` returns for ``s``, in column order (y first, not listed)."""
    names = []
    for m in s.methods:
        if m == "gum":
            names += ["dy_gum"] + (["U_gum", "k"] if s.expanded else []) + (["nu_eff"] if s.dof is not None else [])
        elif m == "gum2":
            names += ["dy_gum2"] + (["U_gum2"] + ([] if "gum" in s.methods else ["k"]) if s.expanded else [])
            names += ["gum2_shift"]
        else:
            names += list(MC_QUANTITIES) if m == "mc" else [f"dy_{m}"]
    linearity = list(LINEARITY) + (list(HESSIAN_INDEX) if s.hessian_index else []) if s.check_linearity else []
    return names + [f"{m}_{v}" for m in s.validated for v in VALIDATION] + linearity


def estimate(b: Block, s: Settings, with_budget: bool = False) -> dict:
    """Every asked-for estimate for one block, as (N, K) arrays by name (``cov_y``, ``cov_mc`` (N, K, K),
    ``budget`` (N, K, D), ``mc_converged`` (N,), ``unresolved`` (N, K) with mc or the linearity check);
    ``with_budget`` adds the budget even when not asked for."""
    out = {}
    for m in s.methods:
        out.update(METHODS[m](b, s))
    lost = out.pop("mc_unresolved", False)
    if "gum" in s.validated:
        out.update(mc.validate(b.Y, out["dy_gum"], out["k"], out["mc_lo"], out["mc_hi"], s.digits))
    if "gum2" in s.validated:  # about y = f(x) as JCGM 101 8 (and 9.4's higher-order GUF) do, not y + shift
        k = normal_quantile((1 + s.level) / 2)
        out.update(mc.validate(b.Y, out["dy_gum2"], k, out["mc_lo"], out["mc_hi"], s.digits, "gum2"))
    if s.check_linearity:
        out["nonlinearity"], out["dy_plus"], out["dy_minus"], lost_here = linearity(b.forward, b.X, b.Y, b.J, b.dx,
                                                                                    b.corr)
        lost = lost | lost_here
        if s.hessian_index:
            shift, var = second_order(b, s, gaussian=True)
            var = np.einsum("nkk->nk", var) if s.output_cov else var
            out["nonlinearity_hess"], out["shift_rel"] = hessian_index(var, shift, gum(b.J, b.dx, b.corr))
    if s.output_cov:
        out["cov_y"] = output_covariance(b.J, b.dx, b.corr)
    elif "cov_mc" in out:
        del out["cov_mc"]
    if s.budget or with_budget:
        out["budget"] = budget(b.J, b.dx, b.corr)
    if lost is not False:
        out["unresolved"] = lost
    return out


def settings_for(**given) -> Settings:
    """Settings from keyword arguments, checked: the methods known, --validate with gum and mc at a level."""
    methods = tuple(dict.fromkeys(given.pop("methods", ("gum",))))
    validate = given.get("validate", False)
    if validate:
        if given.get("digits", 2) < 1:
            raise UsageError("--validate needs --digits >= 1 (its tolerance delta comes from them)")
        if given.get("k") is not None:
            raise UsageError("--validate compares coverage intervals at a probability: give --level, not --coverage")
        gum_family = () if "gum2" in methods else ("gum",)  # --method gum2 alone validates gum2 alone
        methods = tuple(dict.fromkeys((*gum_family, *methods, "mc")))
        given.setdefault("level", 0.95)
        if given["level"] is None:
            given["level"] = 0.95
    if "gum2" in methods and given.get("dof") is not None:
        raise UsageError("--dof with --method gum2: Welch-Satterthwaite is a first-order formula; gum2's k comes "
                         "from --coverage or the normal quantile at --level (drop --dof, or use --method gum)")
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise UsageError(f"unknown method(s) {sorted(unknown)}; the methods are {list(METHODS)}")
    if given.get("interval", "symmetric") not in ("symmetric", "shortest"):
        raise UsageError(f"interval {given['interval']!r}: expected symmetric or shortest")
    if given.get("level") is not None and not 0 < given["level"] < 1:
        raise UsageError(f"a probability must lie in (0, 1), got {(1 + given['level']) / 2}")
    return Settings(methods=methods, **given)


def _dx_rows(dx, cov, corr, names, X, n, d):
    """(dx (N, D), corr) from a number, an array, --dx strings or a covariance."""
    if cov is not None:
        sigma, corr = split_covariance(check_covariance(np.asarray(cov, dtype=np.float64), "cov"))
        return np.broadcast_to(sigma, (n, d)), corr
    if isinstance(dx, (str, list, tuple)) and all(isinstance(v, str) for v in np.atleast_1d(dx)):
        unc = parse_dx(list(np.atleast_1d(dx)), names, (), corr)
        return unc.dx(np.zeros((n, d)) if X is None else np.atleast_2d(X)), corr
    values = np.asarray(dx, dtype=np.float64)
    if not np.isfinite(values).all() or (values < 0).any():
        raise UsageError("dx: an uncertainty must be finite and >= 0")
    return np.broadcast_to(values, (n, d)), corr


def propagate(model=None, X=None, dx=None, *, J=None, H=None, cov=None, corr=None, **settings) -> dict:
    """Output uncertainty from input uncertainty at every row, as ``jacprop propagate`` computes it.

    Give ``model`` and X (N, D), or a Jacobian J (N, K, D) (then only methods that need J alone;
    gum2 also needs the Hessian H (N, K, D, D), from the model or given).
    ``dx``: the standard uncertainty of each input, a number, a (D,) or an (N, D) array, or
    ``--dx`` strings ("0.01", "temp=0.5", "temp=2%"; names from ``input_names`` or the model);
    or ``cov`` (D, D) instead; ``corr`` (D, D) correlates the dx; ``input_names`` (D,) name the
    inputs for ``dx``, ``dist`` and ``dof``.  ``dist``: {name or index: "rect",
    "triangular", "arcsine", "t:5", "normal"} for Monte Carlo; ``dof``: {name or index: nu}.
    ``settings``: the fields of ``Settings`` (methods=("gum", "gum2", "mc"), coverage factor ``k`` or
    ``level``, samples (the Monte Carlo cap), seed, digits, interval, check_linearity, output_cov,
    budget, validate).  Returns arrays named as in the NPZ output (the CSV column stems): y, dy_gum,
    U_gum, k, nu_eff, dy_gum2, U_gum2, gum2_shift, cov_gum2, nonlinearity_hess, shift_rel, dy_linear,
    dy_worst, dy_mc, dy_mc_se, mc_shift, mc_shift_se, mc_lo, mc_lo_se, mc_hi, mc_hi_se, mc_samples,
    mc_converged, unresolved (N, K: where the float grid is too coarse for Monte Carlo's draws or the linearity
    check's steps; their results NaN),
    gum_d_low, gum_d_high, gum_delta, gum_valid (gum2_d_low, ... for gum2),
    nonlinearity, dy_plus, dy_minus, cov_y, cov_mc, budget, as computed.
    """
    if J is None:
        if model is None or X is None:
            raise UsageError("give a model and X, or a Jacobian J")
        from .engine import jacobian

        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        Y, J = jacobian(model, X, deterministic=True)
    else:
        J = np.asarray(J, dtype=np.float64)
        Y = np.full(J.shape[:2], np.nan) if X is None or model is None else model.forward(X)
    n, _, d = J.shape
    input_names, dist, dof = (settings.pop(key, None) for key in ("input_names", "dist", "dof"))
    names = list(input_names or (model.input_names if model is not None else [f"x{i}" for i in range(d)]))
    specs = {key: [f"{name}={value}" for name, value in (given or {}).items()]
             for key, given in (("dist", dist), ("dof", dof))}
    s = settings_for(**settings, dist=distributions_of(specs["dist"], names), dof=dof_of(specs["dof"], names))
    if model is None and (set(s.methods) & set(NEEDS_NETWORK) or s.check_linearity):
        raise UsageError("--method mc and --check-linearity run the network: give the model")
    if X is None and (set(s.methods) & set(NEEDS_NETWORK) or s.check_linearity):
        raise UsageError("--method mc and --check-linearity run the network at X: give X")
    s, hessian = _hessian_source(model, X, H, s, n, J.shape[1], d, names)
    dxs, corr = _dx_rows(dx, cov, corr, names, X, n, d)
    check_independent(corr, s.dist, s.dof, names)
    forward = None if model is None else (lambda Z: model.forward(Z, deterministic=True))
    block = Block(J, np.array(dxs, dtype=np.float64), corr, None if X is None else np.atleast_2d(X), Y,
                  np.arange(1, n + 1), forward, hessian)
    return {"y": Y, **estimate(block, s)}


def _hessian_source(model, X, H, s: Settings, n, k, d, names):
    """(settings, Block.hessian) for the API: H given (N, K, D, D), else from the model when gum2 or the
    Hessian index asks (the index is left out for a model without second-order rules)."""
    if "gum2" not in s.methods and not (s.check_linearity and s.hessian_index):
        return s, None
    if "gum2" in s.methods:
        check_fourth_moments(s.dist, names)
    if H is not None:
        H = np.asarray(H, dtype=np.float64)
        if H.shape != (n, k, d, d):
            raise UsageError(f"H: expected shape {(n, k, d, d)} (rows, outputs, inputs, inputs), got {H.shape}")
        return s, lambda wrt: [(0, H[:, :, wrt][:, :, :, wrt])]
    if model is None:
        raise UsageError("--method gum2 needs H: give the model, or H (N, K, D, D)")
    from .errors import ModelError
    from .second_order import check_second_order, iter_hessian

    try:
        check_second_order(model)
    except ModelError:
        if "gum2" in s.methods:
            raise
        return replace(s, hessian_index=False), None
    return s, lambda wrt: ((start, Hc) for start, _, _, Hc in iter_hessian(model, X, wrt=wrt, deterministic=True))


class _CallableModule(type(math)):
    """``jacprop.propagate`` is both this module and its function: once the module is imported, the
    package attribute is the module, and calling it must still mean ``propagate(...)``."""

    def __call__(self, *args, **kwargs):
        return propagate(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
