"""Lazy Jacobians of Dask collections: ``jacprop.dask.jacobian(model, X) -> (Y, J)``.

    >>> import dask, dask.array as da, jacprop, jacprop.dask
    >>> model = jacprop.load("sample_models/bishop_tanh.npz")
    >>> X = da.random.normal(size=(1_000_000, 3), chunks=(100_000, 3))
    >>> Y, J = jacprop.dask.jacobian(model, X)      # lazy: Y (N, K), J (N, K, D), chunked by rows
    >>> Y, J = dask.compute(Y, J)                    # each block of rows is computed once, for both

Every block of rows goes through ``jacprop.jacobian`` where the scheduler puts it (threads,
processes or a ``dask.distributed`` cluster).  The model enters the graph once, as one task
that each worker fetches once, not inside every block's task.  Needs ``pip install jacprop[dask]``.
"""

from __future__ import annotations

import numpy as np

from .errors import UsageError
from .graph import Model


def _block(x, model, mode, outputs, wrt, dtype):
    """One block of rows -> (n, K', D' + 1): J in [..., :D'], y in [..., D']."""
    from .engine import jacobian

    Y, J = jacobian(model, x, mode=mode, outputs=outputs, wrt=wrt, dtype=dtype, deterministic=True)
    out = np.empty((J.shape[0], J.shape[1], J.shape[2] + 1), dtype=J.dtype)
    out[:, :, :-1] = J
    out[:, :, -1] = Y
    return out


def as_array(X, columns=None):
    """A dask array (N, D) from a dask array, a dask DataFrame (its numeric columns, or
    ``columns`` in that order) or anything numpy takes."""
    import dask.array as da

    if hasattr(X, "select_dtypes") and hasattr(X, "to_dask_array"):  # a dask DataFrame
        frame = X[list(columns)] if columns is not None else X.select_dtypes("number")
        return frame.to_dask_array()  # row chunks of unknown length stay lazy (nan)
    if columns is not None:
        raise UsageError("columns= selects DataFrame columns; X is an array")
    return X if isinstance(X, da.Array) else da.asarray(np.asarray(X))


def jacobian(model, X, mode="auto", outputs=None, wrt=None, dtype=np.float64, columns=None):
    """Lazy Y (N, K') and J (N, K', D') of ``model`` at every row of ``X``, as ``jacprop.jacobian``.

    ``X``: a dask array (N, D) (chunks along rows; the D columns are gathered into one chunk), or
    a dask DataFrame (its numeric columns, or ``columns``, in the model's input order).
    Y is chunked like X's rows; J has the same row chunks and one chunk over (K', D').
    """
    import dask
    import dask.array as da

    from .engine import MODES, _select

    if mode not in MODES:
        raise UsageError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    dtype = np.dtype(dtype)
    X = as_array(X, columns)
    if X.ndim != 2:
        raise UsageError(f"inputs must have shape (N, D), got {X.shape}")
    if not isinstance(model, Model):
        raise UsageError(f"model must be a jacprop Model (jacprop.load), got {type(model).__name__}")
    if X.shape[1] != model.D:
        raise UsageError(f"inputs must have shape (N, {model.D}), got {X.shape}")
    k = len(_select(outputs, model.K, "output"))
    d = len(_select(wrt, model.D, "wrt"))
    model = dask.delayed(model, pure=True, traverse=False)  # one task in the graph, not a copy in every block
    outputs = None if outputs is None else [int(i) for i in np.atleast_1d(outputs)]
    wrt = None if wrt is None else [int(i) for i in np.atleast_1d(wrt)]
    X = X.rechunk({1: -1})
    both = da.map_blocks(_block, X, model, mode, outputs, wrt, dtype, dtype=dtype, new_axis=2,
                         chunks=(X.chunks[0], (k,), (d + 1,)), meta=np.empty((0, 0, 0), dtype), name="jacprop-jacobian")
    return both[:, :, d], both[:, :, :d]
