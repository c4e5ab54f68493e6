"""jacprop: Jacobians dy/dx of saved neural networks at every input row, and
first-order propagation of input uncertainty, Delta y ~= J Delta x.

    >>> import jacprop
    >>> model = jacprop.load("sample_models/bishop_tanh.npz")
    >>> Y, J = jacprop.jacobian(model, X)      # X (N, D) -> Y (N, K), J (N, K, D)
"""

__version__ = "0.1.0"
__all__ = ["load", "jacobian", "forward", "Model", "JacpropError"]


def __getattr__(name):
    # Imported lazily so that `jacprop --version` starts without numpy's full weight.
    if name == "jacobian":
        from .engine import jacobian

        return jacobian
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
