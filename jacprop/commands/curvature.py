"""``jacprop propagate``'s second-order side (``--method gum2`` and the Hessian index of
--check-linearity): where H comes from (the network, or the npz that ``jacprop hessian`` wrote)
and the checks made before any row is read."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .. import propagate as P
from ..errors import ModelError, UsageError


def second_order_of(settings: P.Settings, model, stream, unc: P.Uncertainty, in_names, notes) -> P.Settings:
    """The checks of gum2 and the Hessian index at prepare time: a model without second-order rules
    refuses gum2 and drops the index (with a note: --max-nonlinearity then bounds the re-run ratio
    alone); a diagonal H serves one input with uncertainty only; a t input needs NU > 4."""
    from ..second_order import check_second_order
    from ..uncertainty.curvature import check_fourth_moments

    if "gum2" not in settings.methods and not settings.check_linearity:
        return settings
    if "gum2" in settings.methods:
        check_fourth_moments(settings.dist, in_names)
    if model is not None:
        try:
            check_second_order(model)
        except ModelError as e:
            if "gum2" in settings.methods:
                raise ModelError(f"--method gum2: {e}") from None
            notes.append(f"jacprop: note: no Hessian index beside --check-linearity's re-run ratio ({e})")
            return replace(settings, hessian_index=False)
    elif stream.hessian_diagonal:
        uncertain = [n for n, a, r in zip(in_names, unc.absolute, unc.relative) if a > 0 or r > 0]
        if len(uncertain) > 1:
            raise UsageError(f"--method gum2 from `jacprop hessian --diagonal`: the mixed terms d2y/dx_i dx_j of "
                             f"the inputs with uncertainty ({', '.join(uncertain)}) are missing; write H without "
                             "--diagonal")
    return settings


def block_hessian(s, b, forward, out_idx):
    """``Block.hessian`` for gum2 and the Hessian index: H read with J (a `jacprop hessian` npz; a
    diagonal one serves a single input with uncertainty), else the network's (``Network.hessian``)."""
    if "gum2" not in s.methods and not (s.check_linearity and s.hessian_index):
        return None
    if b.hessian is not None:
        H = b.hessian
        if H.ndim == 3:
            return lambda wrt: [(0, H[:, :, wrt][:, :, :, None])] if len(wrt) == 1 else _diagonal_refused()
        return lambda wrt: [(0, H[:, :, wrt][:, :, :, wrt])]
    return None if forward is None else (lambda wrt: forward.hessian(b.X, out_idx, wrt))


def _diagonal_refused():
    raise UsageError("--method gum2 from `jacprop hessian --diagonal`: the mixed terms d2y/dx_i dx_j of the inputs "
                     "with uncertainty are missing; write H without --diagonal (or give one input an uncertainty)")


@dataclass(frozen=True)
class Network:
    """The model as propagate runs it: forward (M, D) -> (M, K) in ``dtype``, and its Hessians (float64)."""

    model: object
    dtype: str = "float64"

    def __call__(self, X):
        return self.model.forward(X, dtype=self.dtype, deterministic=True)

    def hessian(self, X, outputs, wrt):
        """(start, H (n, K', W, W)) over the rows of X in blocks sized from the Hessian engine's budget."""
        from ..second_order import iter_hessian

        return ((start, H) for start, _, _, H in iter_hessian(self.model, X, outputs, wrt, deterministic=True))
