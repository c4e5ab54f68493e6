"""jacprop: Jacobians dy/dx of saved neural networks at every input row, and
first-order propagation of input uncertainty, Delta y ~= J Delta x.

    >>> import jacprop
    >>> model = jacprop.load("sample_models/bishop_tanh.npz")
    >>> Y, J = jacprop.jacobian(model, X)      # X (N, D) -> Y (N, K), J (N, K, D)
    >>> Y, J, H = jacprop.hessian(model, X)    # H (N, K, D, D): d2y_k/dx_i dx_j
    >>> Y, J, Hu = jacprop.hvp(model, X, u)    # H u (N, K, D) along a direction u (D,)
    >>> u = jacprop.propagate(model, X, dx=0.01)["dy_gum"]   # (N, K)
    >>> jacprop.check(model, X)["ok"]
    >>> jacprop.save(model, "model.npz")
"""

__version__ = "0.1.0"
__all__ = ["load", "save", "jacobian", "hessian", "hvp", "forward", "propagate", "check", "Model", "JacpropError"]


def save(model, path) -> None:
    """Write ``model`` (one file's or a chain's) to ``path`` as NPZ in jacprop's schema, whole or
    not at all; ``jacprop.load(path)`` gives the same function back."""
    from .io.writers import atomic_output
    from .loaders import npz

    with atomic_output(path) as out:
        npz.save(model, out.file)


def __getattr__(name):
    # Imported lazily so that `jacprop --version` starts without numpy's full weight.
    if name == "propagate":
        from .propagate import propagate

        return propagate
    if name == "check":
        from .fdcheck import check

        return check
    if name == "jacobian":
        from .engine import jacobian

        return jacobian
    if name == "hessian":
        from .second_order import hessian

        return hessian
    if name == "hvp":
        from .second_order import hvp

        return hvp
    if name == "forward":
        from .graph import forward

        return forward
    if name == "load":
        from .loaders import load

        return load
    if name == "Model":
        from .graph import Model

        return Model
    if name == "JacpropError":
        from .errors import JacpropError

        return JacpropError
    raise AttributeError(f"module 'jacprop' has no attribute {name!r}")
